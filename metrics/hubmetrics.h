#pragma once
// What /metrics says about a hub: every counter it keeps (HubCounters, the registry's
// counters, the Operator API's refusals, history), its gauges (bots, pending commands, queue
// depths) and ack latency histograms per command kind. docs/operations.md lists each metric.

#include "commandoutcome.h"
#include "exposition.h"

#include <QByteArray>
#include <QList>
#include <QObject>

#include <array>
#include <functional>
#include <mutex>
#include <vector>

namespace opconsole {
class ChangeFeed;
class CommandRegistry;
class CommandService;
class HistoryStore;
class Hub;
class OperatorService;
} // namespace opconsole

namespace opconsole::metrics {

// Upper bounds of the ack latency buckets, in seconds: 1 ms to 60 s (+Inf after them).
inline constexpr std::array<double, 15> LatencyBuckets{
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

// What is read at each scrape. The hub and its registry are required; the others are left
// out of the exposition when null. Each must outlive the HubMetrics.
struct HubSources
{
    const Hub *hub = nullptr;
    const CommandRegistry *registry = nullptr;
    const CommandService *service = nullptr;      // commands waiting for their bot
    const OperatorService *operatorApi = nullptr; // refused calls, Watch streams
    const HistoryStore *history = nullptr;        // the writer's queue and what it wrote
    // More series from parts metrics/ does not link (the cluster's): each a name, a help
    // line, a value and whether it is a gauge (else a counter). Called from any thread.
    struct Extra
    {
        const char *name;
        const char *help;
        double value;
        bool gauge;
    };
    std::function<std::vector<Extra>()> extra;
};

// render() may be called from any thread: every source is read thread-safely (the hub's
// counters are atomics; the registry, the command service, the Operator API and history take
// their own locks for a copy). The latency histograms follow the change feed (connected
// directly, in the feed's thread): each command is counted once, when its bot answers it,
// under late="false" when it answered in time (acked or rejected) or late="true" for a late
// ack. Labels never name a bot: a kind is one of CommandSpec's names or "other", so an
// exposition's size does not grow with the fleet.
class HubMetrics final : public QObject
{
public:
    HubMetrics(HubSources sources, ChangeFeed &feed, QObject *parent = nullptr);
    ~HubMetrics() override;

    QByteArray render() const;

    // The kind label of a command's kind: its CommandSpec name, or "other".
    static QString kindLabel(const QString &kind);

private:
    void observe(const QList<CommandOutcome> &records);

    static constexpr int KindLabels = 9; // CommandKind's eight, and "other"
    using LatencyHistogram = Histogram<LatencyBuckets.size()>;
    const HubSources m_sources;
    mutable std::mutex m_mutex;
    std::array<std::array<LatencyHistogram, 2>, KindLabels> m_latency{}; // [kind][late]
};

} // namespace opconsole::metrics
