#include "hubmetrics.h"

#include "changefeed.h"
#include "commandregistry.h"
#include "commandservice.h"
#include "commandspec.h"
#include "historystore.h"
#include "hub.h"
#include "operatorservice.h"

#include <algorithm>
#include <utility>

namespace opconsole::metrics {

namespace {

using Type = Exposition::Type;

// Every HubCounters field, each as opconsole_hub_<field>_total. A field added to HubCounters
// fails the static_assert below until it is listed here (and in docs/operations.md).
struct HubCounter
{
    const char *name;
    const char *help;
    quint64 HubCounters::*field;
};
constexpr HubCounter HubCounterList[] = {
    {"opconsole_hub_streams_accepted_total", "Bot streams that said Hello properly.",
     &HubCounters::streamsAccepted},
    {"opconsole_hub_streams_rejected_total", "Bot streams refused for a bad or missing Hello.",
     &HubCounters::streamsRejected},
    {"opconsole_hub_sessions_replaced_total",
     "Bots that reconnected while their old stream was alive.", &HubCounters::sessionsReplaced},
    {"opconsole_hub_heartbeat_timeouts_total", "Silent bots disconnected.",
     &HubCounters::heartbeatTimeouts},
    {"opconsole_hub_protocol_violations_total",
     "Bot messages that broke a protocol rule (a second Hello, a bad ack, ...).",
     &HubCounters::protocolViolations},
    {"opconsole_hub_stream_errors_total", "Writes that failed: a stream broke under the hub.",
     &HubCounters::streamErrors},
    {"opconsole_hub_queue_full_total", "Sends refused because a bot's outgoing queue was full.",
     &HubCounters::queueFull},
    {"opconsole_hub_hello_timeouts_total", "Streams closed for saying no Hello in time.",
     &HubCounters::helloTimeouts},
    {"opconsole_hub_rate_limited_total",
     "Progress, heartbeat and status messages dropped over their rate.", &HubCounters::rateLimited},
    {"opconsole_hub_not_pending_skipped_total",
     "Sends skipped: the command had finished meanwhile.", &HubCounters::notPendingSkipped},
    {"opconsole_hub_violations_unreported_total",
     "Protocol violations counted but not logged: the bot's report budget was spent.",
     &HubCounters::violationsUnreported},
    {"opconsole_hub_messages_in_total", "Messages received from bots.", &HubCounters::messagesIn},
    {"opconsole_hub_messages_out_total", "Commands queued to bots' streams.",
     &HubCounters::messagesOut},
    {"opconsole_hub_unauthenticated_total", "Bot streams with no credential, or an unknown token.",
     &HubCounters::unauthenticated},
    {"opconsole_hub_permission_denied_total",
     "Bot Hellos refused: an id the credential does not cover, a rejected bot, an impostor of "
     "a live session.",
     &HubCounters::permissionDenied},
    {"opconsole_hub_credential_limited_total",
     "Bot streams refused over their credential's stream limit.", &HubCounters::credentialLimited},
    {"opconsole_hub_held_total", "Bot Hellos held for an admin's approval.", &HubCounters::held},
    {"opconsole_hub_silence_held_total",
     "Silent bots left connected in a mass silence (too many at once: the hub or its network "
     "is the likelier cause), per liveness pass.",
     &HubCounters::silenceHeld},
};
static_assert(sizeof(HubCounters) == std::size(HubCounterList) * sizeof(quint64),
              "export every HubCounters field in /metrics");
static_assert(sizeof(RegistryCounters) == 17 * sizeof(quint64),
              "export every RegistryCounters field in /metrics");
static_assert(sizeof(OperatorAccessCounters) == 4 * sizeof(quint64),
              "export every OperatorAccessCounters field in /metrics");

constexpr std::array<CommandKind, 8> Kinds{
    CommandKind::Start,  CommandKind::Stop, CommandKind::Restart,      CommandKind::Pause,
    CommandKind::Resume, CommandKind::Ping, CommandKind::ConfigUpdate, CommandKind::Custom};

int kindIndex(const QString &kind)
{
    const std::optional<CommandKind> k = CommandSpec::kindFromName(kind);
    if (!k)
        return int(Kinds.size()); // "other"
    return int(std::find(Kinds.cbegin(), Kinds.cend(), *k) - Kinds.cbegin());
}

QString kindName(int index)
{
    return index < int(Kinds.size()) ? CommandSpec::kindName(Kinds[size_t(index)])
                                     : QStringLiteral("other");
}

} // namespace

HubMetrics::HubMetrics(HubSources sources, ChangeFeed &feed, QObject *parent)
    : QObject(parent), m_sources(sources)
{
    Q_ASSERT(m_sources.hub && m_sources.registry);
    static_assert(KindLabels == int(Kinds.size()) + 1);
    // In the feed's thread, as it delivers: a count is never behind the registry's by more
    // than the batch on its way.
    connect(
        &feed, &ChangeFeed::changes, this,
        [this](const QList<CommandOutcome> &records) { observe(records); }, Qt::DirectConnection);
}

HubMetrics::~HubMetrics() = default;

QString HubMetrics::kindLabel(const QString &kind)
{
    return kindName(kindIndex(kind));
}

void HubMetrics::observe(const QList<CommandOutcome> &records)
{
    std::lock_guard lock(m_mutex);
    for (const CommandOutcome &o : records) {
        // An answer comes once per command: a Finished record that was answered (acked or
        // rejected), or the one LateAck a finished command may get. Restored records were
        // counted by the run that saw them.
        bool late;
        if (o.event == ChangeEvent::Finished && o.answered())
            late = false;
        else if (o.event == ChangeEvent::LateAck && o.hasLateAck())
            late = true;
        else
            continue;
        const auto in = o.answeredIn();
        const double seconds = in ? std::max(0.0, double(in->count()) / 1e9) : 0.0;
        m_latency[size_t(kindIndex(o.kind))][late ? 1 : 0].observe(LatencyBuckets, seconds);
    }
}

QByteArray HubMetrics::render() const
{
    Exposition e;

    // The hub: its counters (atomics) and what it holds now.
    const HubCounters hc = m_sources.hub->counters();
    for (const HubCounter &c : HubCounterList)
        e.counter(c.name, c.help, hc.*c.field);
    const HubGauges hg = m_sources.hub->gauges();
    e.gauge("opconsole_bots_connected", "Bots with a live stream.", hg.connected);
    e.gauge("opconsole_bots_handshaking", "Bot streams that have not said Hello yet.",
            hg.handshaking);
    e.gauge("opconsole_bots_awaiting_approval", "Bots held until an admin accepts them.", hg.held);
    e.gauge("opconsole_bots_known", "Bots seen this run, connected or not.", hg.known);
    e.gauge("opconsole_bot_queue_messages",
            "Messages waiting in the bots' outgoing queues, all bots together.",
            double(hg.queuedMessages));
    e.gauge("opconsole_bot_queue_bytes", "Bytes waiting in the bots' outgoing queues.",
            double(hg.queuedBytes));
    e.gauge("opconsole_bot_queue_max_messages", "Messages waiting in the longest one bot's queue.",
            double(hg.maxQueuedMessages));

    // The registry: one copy of its counters under its lock.
    const RegistryCounters rc = m_sources.registry->counters();
    const RegistrySizes rs = m_sources.registry->sizes();
    e.counter("opconsole_commands_registered_total", "Commands registered.", rc.registered);
    e.family("opconsole_commands_finished_total", Type::Counter,
             "Commands that reached a final state, by state.");
    const std::pair<const char *, quint64> finished[] = {
        {"acked", rc.acked},
        {"rejected", rc.rejected},
        {"expired", rc.expired},
        {"cancelled", rc.cancelled},
        {"disconnected", rc.disconnected},
        {"not_connected", rc.notConnected},
        {"refused", rc.failedOther},
    };
    for (const auto &[state, n] : finished)
        e.sample("opconsole_commands_finished_total", {{"state", QString::fromLatin1(state)}}, n);
    e.counter("opconsole_registrations_refused_total",
              "Registrations refused (id in use or invalid, bad timeout, over a cap).",
              rc.refusedRegistrations);
    e.counter("opconsole_late_acks_total", "Acks that came after their command had finished.",
              rc.lateAcks);
    e.family("opconsole_acks_ignored_total", Type::Counter,
             "Acks that resolved nothing, by why: no such command, already answered, from "
             "another bot than the command's.");
    e.sample("opconsole_acks_ignored_total", {{"reason", QStringLiteral("unknown")}},
             rc.unknownAcks);
    e.sample("opconsole_acks_ignored_total", {{"reason", QStringLiteral("duplicate")}},
             rc.duplicateAcks);
    e.sample("opconsole_acks_ignored_total", {{"reason", QStringLiteral("wrong_bot")}},
             rc.wrongBotAcks);
    e.counter("opconsole_progress_unknown_total", "Progress reports for no pending command.",
              rc.unknownProgress);
    e.counter("opconsole_commands_restored_total",
              "Finished commands reloaded from history at start.", rc.restored);
    e.family("opconsole_resent_acks_total", Type::Counter,
             "Acks bots resent when they reconnected, by whether they told an outcome.");
    e.sample("opconsole_resent_acks_total", {{"result", QStringLiteral("applied")}},
             rc.resentAcksApplied);
    e.sample("opconsole_resent_acks_total", {{"result", QStringLiteral("ignored")}},
             rc.resentAcksIgnored);
    e.gauge("opconsole_commands_pending", "Commands waiting for their ack.",
            m_sources.registry->pendingCount());
    e.gauge("opconsole_commands_remembered", "Finished commands kept for late and duplicate acks.",
            double(rs.remembered));
    e.gauge("opconsole_change_batch_records", "Changes waiting for the next change-feed batch.",
            double(rs.batched));
    if (m_sources.service)
        e.gauge("opconsole_commands_waiting_for_bot",
                "Commands waiting for their bot to connect before they are sent.",
                double(m_sources.service->waitingCount()));

    // The Operator API's refusals (atomics) and its Watch streams.
    if (m_sources.operatorApi) {
        const OperatorAccessCounters oc = m_sources.operatorApi->accessCounters();
        e.counter("opconsole_operator_unauthenticated_total",
                  "Operator API calls with no token, or an unknown one.", oc.unauthenticated);
        e.counter("opconsole_operator_permission_denied_total",
                  "Operator API calls refused for their role or scope.", oc.permissionDenied);
        e.counter("opconsole_operator_rate_limited_total",
                  "Operator sends refused over the operator's rate.", oc.rateLimited);
        e.counter("opconsole_operator_refusals_unreported_total",
                  "Operator API refusals counted but not logged: past the report budget.",
                  oc.unreported);
        e.gauge("opconsole_operator_watchers", "Open Watch streams (consoles, opctl watch).",
                m_sources.operatorApi->watcherCount());
    }

    if (m_sources.history) {
        const HistoryStats s = m_sources.history->stats();
        e.gauge("opconsole_history_queued_bytes",
                "Changes waiting for the history writer, in bytes.", double(s.queuedBytes));
        e.counter("opconsole_history_written_total", "Transitions written to history.", s.written);
        e.counter("opconsole_history_dropped_progress_total",
                  "Progress events not written because the writer fell behind.", s.droppedProgress);
        e.counter("opconsole_history_lost_total",
                  "Transitions or fleet events dropped past the queue's hard cap.", s.lost);
        e.gauge("opconsole_history_commands", "Commands kept in history.", double(s.commands));
        e.gauge("opconsole_history_file_bytes", "Size of the history database and its WAL.",
                double(s.fileBytes));
        e.gauge("opconsole_history_write_failing",
                "1 while the history writer's last write failed (it retries), else 0.",
                s.lastError.isEmpty() ? 0 : 1);
    }

    // Ack latency: a series once it has an answer.
    decltype(m_latency) latency;
    {
        std::lock_guard lock(m_mutex);
        latency = m_latency;
    }
    e.family("opconsole_ack_latency_seconds", Type::Histogram,
             "From a command's send to its bot's answer, by command kind; late=\"true\": the "
             "answer came after the command had finished (a late ack).");
    for (int kind = 0; kind < KindLabels; ++kind) {
        for (int late = 0; late < 2; ++late) {
            const LatencyHistogram &h = latency[size_t(kind)][size_t(late)];
            if (h.count == 0)
                continue;
            e.histogram("opconsole_ack_latency_seconds",
                        {{"kind", kindName(kind)},
                         {"late", late ? QStringLiteral("true") : QStringLiteral("false")}},
                        LatencyBuckets, h);
        }
    }
    if (m_sources.extra)
        for (const HubSources::Extra &x : m_sources.extra()) {
            if (x.gauge)
                e.gauge(x.name, x.help, x.value);
            else
                e.counter(x.name, x.help, quint64(x.value));
        }
    return e.text();
}

} // namespace opconsole::metrics
