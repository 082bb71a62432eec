#pragma once

#include "clusteroptions.h"
#include "commandforwarder.h"

#include <QObject>
#include <QTimer>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace opconsole {
class CommandService;
}

namespace opconsole::cluster {

class FleetDirectory;
class NatsLink;
struct NodeCore;

struct ClusterCounters
{
    quint64 forwarded = 0;        // commands this hub sent to another hub
    quint64 noHolder = 0;         // of them, no hub held the bot (NotConnected at once)
    quint64 holderLost = 0;       // of them, the holder went away (Disconnected)
    quint64 served = 0;           // commands other hubs sent here for this hub's bots
    quint64 badMessages = 0;      // cluster messages that broke a rule (ignored or refused)
    quint64 duplicateHubId = 0;   // beacons of another process with this hub's id
    quint64 acksShared = 0;       // bots' acks this hub knew no command for, sent to the others
    quint64 acksUnshared = 0;     // ... past the budget (MaxSharedAcksPerSecond): dropped
    quint64 acksApplied = 0;      // others' shared acks that told this hub an outcome
    quint64 decisionsApplied = 0; // rejections and revocations other hubs shared, recorded here
    quint64 conflictingBots = 0;  // bots another hub holds too, with another credential
    quint64 subscriptions = 0;    // bot subjects this hub listens on now
};

// This hub's part in a cluster (docs/cluster.md), over NATS: it listens on the command
// subject of every bot it holds (a queue group: one holder answers), forwards commands for
// bots it does not hold as NATS requests (CommandForwarder), answers the forwarded commands of
// other hubs from its own registry, says it is alive in beacons and follows the others', and
// keeps its bots in the fleet directory. Lives in the registry's thread; NATS calls it on its
// own threads.
class ClusterNode final : public QObject, public CommandForwarder
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(ClusterNode)

public:
    // Unknown acks shared with the other hubs, per second (bursts of twice that).
    static constexpr double MaxSharedAcksPerSecond = 2000;

    ClusterNode(CommandService &commands, ClusterOptions options, QObject *parent = nullptr);
    ~ClusterNode() override; // stop()

    // Connects to NATS, opens the directory, listens; false with *error (nothing running).
    // After hub.start() (the beacon names its operator address); then
    // commands.setForwarder(this).
    bool start(QString *error);
    // Fails what it forwarded and is still waiting for (Disconnected), stops listening, closes
    // the connection. Call after hub.stop(): the hub's last outcomes reach their issuers.
    void stop();

    // CommandForwarder
    bool forward(const Command &command) override;
    void cancel(const QString &botId, const QString &commandId, const QString &reason) override;
    std::optional<BotInfo> remoteBot(const QString &botId) const override;
    QList<BotInfo> remoteBots() const override;
    QString hubId() const override { return m_options.hubId; }

    // Hubs whose beacons arrive (this one included), by id.
    QStringList liveHubs() const;
    ClusterCounters counters() const;
    const ClusterOptions &options() const { return m_options; }

signals:
    // A bot another hub holds changed, or its hub went away (then it shows disconnected): for
    // the Operator API's Watch (OperatorService::noteRemoteBot). From NATS's thread or this.
    void remoteBotChanged(const opconsole::BotInfo &bot);
    // Something an operator must fix (two hubs with one id), at most once a minute.
    void problem(const QString &what);

private:
    void sweep(); // forwarded commands whose holder went away, or that no hub took
    void claimed(NodeCore *core, const BotInfo &remote); // the directory's watcher thread
    void settleClaims(); // ends this hub's silent streams of bots another hub claimed
    void beacon();

    CommandService &m_commands;
    ClusterOptions m_options;
    std::shared_ptr<NodeCore> m_core;
    std::shared_ptr<FleetDirectory> m_directory;
    QTimer m_timer;
    QStringList m_aliveHubs; // at the last sweep
    quint64 m_duplicatesSaid = 0;
    std::chrono::steady_clock::time_point m_saidAt{};
    quint64 m_conflictsSaid = 0;
    std::chrono::steady_clock::time_point m_conflictSaidAt{};
};

} // namespace opconsole::cluster
