#pragma once

#include "commandregistry.h" // IdHash
#include "consolebackend.h"
#include "remotesecurity.h"

#include <QHash>
#include <QSet>

#include <chrono>
#include <deque>
#include <memory>
#include <unordered_map>

namespace opconsole {

class CallBox;
class RemoteLink;

// The console attached to a running hub through its Operator API (opconsole --connect).
// A Watch stream brings the fleet and every command change; it resumes from its place in the
// hub's change feed after a reconnect (no gap, no duplicate), or resyncs from a snapshot when
// the hub no longer holds that far back or is another run. While the hub is unreachable the
// views keep their last state (link() is Down), sends are refused with a clear message, and
// the link retries with back-off. Every record that arrives is checked (wire::checkRecord)
// before use. Lives in the GUI thread; the stream is read on a thread of its own.
class RemoteBackend final : public ConsoleBackend
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(RemoteBackend)

public:
    struct Options
    {
        std::chrono::milliseconds firstRetry{250};
        std::chrono::milliseconds maxRetry{5000};
        // Commands remembered for views and de-duplication; the oldest finished go first.
        int maxCommands = 200'000;
        // Row order (CommandOutcome::sequence), shared by the backends of one HubSet so that
        // rows from several hubs are numbered in the order they were first seen. Own if null.
        std::shared_ptr<quint64> sequence;
        // Bots remembered; more that a hub lists are dropped and counted as bad records.
        int maxBots = 250'000;
        // A silent hub is found by keepalive pings: one after keepaliveTime without data, the
        // link is down when none is answered within keepaliveTimeout. The hub accepts pings
        // every second at most (Hub::start), so neither may be under 1 s.
        std::chrono::milliseconds keepaliveTime{15'000};
        std::chrono::milliseconds keepaliveTimeout{10'000};
        // TLS and the operator token, on every channel and call.
        RemoteSecurity security;
        // After the hub refused this console's credentials (UNAUTHENTICATED,
        // PERMISSION_DENIED): asked again this seldom, not with the back-off above (the
        // problem is shown; a hub given a new operators file takes the console then).
        std::chrono::milliseconds refusedRetry{30'000};
    };
    struct Stats
    {
        quint64 attaches = 0;   // streams that reached the live state
        quint64 resumes = 0;    // reconnects that resumed from the feed position
        quint64 resyncs = 0;    // reconnects that needed a fresh snapshot
        quint64 badRecords = 0; // records or bots from the hub that broke a rule (dropped)
        quint64 duplicates = 0; // changes already seen (dropped)
        quint64 changes = 0;    // command changes applied
    };

    explicit RemoteBackend(const QString &address, QObject *parent = nullptr);
    RemoteBackend(const QString &address, Options options, QObject *parent = nullptr);
    // Ends the stream and waits (bounded) for its thread; in-flight calls are left to finish
    // on the hub: closing a console never cancels a command.
    ~RemoteBackend() override;

    QString address() const override { return m_address; }
    bool isRemote() const override { return true; }
    Link link() const override { return m_link; }
    QString linkProblem() const override { return m_problem; }
    QList<BotInfo> bots() const override;
    std::optional<BotInfo> botInfo(const QString &botId) const override
    {
        const BotInfo *b = bot(botId);
        return b ? std::optional<BotInfo>(*b) : std::nullopt;
    }
    QList<CommandOutcome> commands() const override;
    int pendingCount(const QString &botId) const override;
    SendReceipt send(const QStringList &botIds, const CommandSpec &spec,
                     std::chrono::milliseconds timeout, const QString &commandId = {}) override;
    bool cancel(const QString &commandId, const QString &reason, const QString &hub = {}) override;
    // Through the hub's QueryHistory; its answer is checked like every record it sends.
    bool hasHistory() const override { return true; }
    QFuture<HistoryPage> queryHistory(const HistoryQuery &query) override;
    // From the hub's WhoAmI, asked before every Watch (role None until it answers, and with
    // a hub older than WhoAmI).
    ConsoleIdentity identity() const override { return m_identity; }
    bool canDecide(const QString &hub = {}) const override;
    // Through the hub's DecideBot (the admin role).
    QFuture<DecisionReply> decideBot(const QString &botId, BotDecision decision,
                                     const QString &reason, const QString &hub = {},
                                     const QString &credential = {}) override;

    // Through SendToMany with a Rollout and no_wait: the hub runs the waves. A hub older than
    // rollouts would ignore the rollout and send to every bot at once.
    // Known at each attach: a hub older than staged rollouts has none (ControlRollout).
    bool canRollOut() const override { return m_rollouts; }
    SendReceipt sendRollout(const QStringList &botIds, const CommandSpec &spec,
                            std::chrono::milliseconds timeout, const RolloutPlan &plan) override;
    // A fan-out under an id the caller chose (the same id on several hubs: one tally); in
    // waves when `rollout` is given.
    SendReceipt sendFanOut(const QStringList &botIds, const CommandSpec &spec,
                           std::chrono::milliseconds timeout, const QString &fanOutId,
                           const RolloutPlan *rollout = nullptr);
    bool knows(const QString &commandId) const { return m_commands.count(commandId) > 0; }
    const BotInfo *bot(const QString &botId) const
    {
        const auto it = m_bots.constFind(botId);
        return it == m_bots.cend() ? nullptr : &*it;
    }

    Stats stats() const { return m_stats; }
    // The feed position the next reconnect resumes from (0: none yet).
    quint64 position() const;

private:
    friend class RemoteLink;
    friend class CallBox;
    struct Item; // one checked Watch event, in arrival order
    // Events taken per turn of the event loop, from MinPerDrain to MaxPerDrain: as many as fit
    // DrainTargetMs at the last turn's cost per event (the views' work included).
    static constexpr size_t MaxPerDrain = 3000;
    static constexpr size_t MinPerDrain = 250;
    static constexpr qint64 DrainTargetMs = 16;
    void drain();
    void setLink(Link link, const QString &problem);
    void applyCommand(CommandOutcome record, QList<CommandOutcome> &out);
    void resyncFinished(bool newRun, bool complete, QList<CommandOutcome> &out);
    void forgetOld();
    void forgetUnseenBots(QList<BotInfo> &out);
    QString newId(const char *prefix);

    const QString m_address;
    const Options m_options;
    std::shared_ptr<RemoteLink> m_net;
    std::shared_ptr<CallBox> m_calls; // the asynchronous calls in flight
    Link m_link = Link::Connecting;
    QString m_problem;
    size_t m_perDrain = MinPerDrain * 2;
    bool m_rollouts = false;
    Stats m_stats;
    ConsoleIdentity m_identity;

    struct Known
    {
        CommandOutcome record;
        bool seenInSnapshot = false;
    };
    // By command id. Node-based with cached hashes: growing it never moves a record (a QHash
    // of 131,072 records moved them all at once: a 100 ms stall).
    std::unordered_map<QString, Known, IdHash> m_commands;
    std::deque<QString> m_commandOrder;  // first seen first
    std::shared_ptr<quint64> m_sequence; // the next row number
    QHash<QString, BotInfo> m_bots;
    QSet<QString> m_botsSeen;      // in the current Watch, before its snapshot_end or resumed
    QHash<QString, int> m_pending; // pending commands per bot, from the records seen
    bool m_inSnapshot = false;
    const QString m_idPrefix;
    quint64 m_idCounter = 0;
};

} // namespace opconsole
