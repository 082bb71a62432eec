#pragma once

#include "botinfo.h"
#include "commandoutcome.h"
#include "commandspec.h"
#include "fanouts.h"

#include <QFuture>
#include <QObject>
#include <QPromise>
#include <QStringList>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace opconsole {

class CommandForwarder;
class CommandRegistry;
class Hub;

struct SendOptions
{
    // How long to wait for a bot that is not connected to come online (Azure IoT's
    // connectTimeout); 0: it must be connected now, else NotConnected at once. The command's
    // timeout is then its response timeout, counted from the moment it is written: a command
    // whose bot does not come in time ends NotConnected and is never sent.
    std::chrono::milliseconds connectTimeout{0};
    // The fan-out the command belongs to (sendToMany sets it; a caller may choose it, e.g. one
    // id for a fan-out across several hubs). Must be a valid id; empty: none.
    QString fanOut;
    // Who sends it, for the record and history ("console:alice", "operator@ipv4:..."); empty:
    // not known.
    QString issuer;
    // The spec's parameters as JSON (CommandSpec::paramsJson()); computed when empty. A
    // fan-out computes it once for all its commands.
    QString params;
    // Asked for each bot before its command is sent, and again when a command that waited for
    // its bot is written: a non-empty answer refuses that bot's command (registered, then
    // Refused with the answer as its reason), e.g. a bot outside the operator's scope. Empty
    // function: every bot is admitted.
    std::function<QString(const QString &botId)> admit;
    // The operator's scope (labels), for a command another hub of a cluster sends: its holder
    // checks it again against the bot as it knows it. Empty: every bot.
    QMap<QString, QString> scope;
    // Sent here by another hub of the cluster for a bot this hub holds: never forwarded again
    // (a bot that left meanwhile is NotConnected here).
    bool forwarded = false;
};

struct FanOut
{
    QString id;                             // on every command's record (CommandOutcome::fanOut)
    QStringList commandIds;                 // one per bot, in the order of the bot ids given
    QList<QFuture<CommandOutcome>> futures; // each free for one continuation of the caller's
    QFuture<FanOutSummary> summary;         // finishes when every future has
    QString refused; // the fan-out id is in use (nothing was sent); empty otherwise
};

// Send-and-wait (the seed's send_command_and_wait): registers the command BEFORE writing it,
// so no ack can be missed, and returns a future that finishes exactly once. Like every
// QFuture, it takes one continuation (then()); a second would replace the first.
class CommandService final : public QObject
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(CommandService)

public:
    static constexpr int DefaultMaxInFlightPerBot = 10'000;
    // Commands waiting for their bots to connect, over all bots; more are NotConnected at once.
    static constexpr size_t MaxWaiting = 100'000;

    CommandService(CommandRegistry &registry, Hub &hub, QObject *parent = nullptr);
    ~CommandService() override;

    QFuture<CommandOutcome> send(const QString &botId, const CommandSpec &spec,
                                 std::chrono::milliseconds timeout, SendOptions options = {});
    // The same with the id chosen by the caller (resend, scripts); refused if it is in use.
    QFuture<CommandOutcome> sendWithId(const QString &commandId, const QString &botId,
                                       const CommandSpec &spec, std::chrono::milliseconds timeout,
                                       SendOptions options = {});
    FanOut sendToMany(const QStringList &botIds, const CommandSpec &spec,
                      std::chrono::milliseconds timeout, SendOptions options = {});
    // A fan-out in parts (a staged rollout's waves): reserveFanOut() takes the id once (picks
    // one when *id is empty; returns why not, empty when reserved), then each
    // sendToReserved() sends one part under it: every part's commands carry the same fan-out
    // id, so its tally is one row. sendToMany() is the two in one.
    QString reserveFanOut(QString *id);
    FanOut sendToReserved(const QStringList &botIds, const CommandSpec &spec,
                          std::chrono::milliseconds timeout, SendOptions options);
    // Releases the waiter at once (Cancelled) and tells the bot; a later ack is kept as late.
    bool cancel(const QString &commandId,
                const QString &reason = QStringLiteral("cancelled by operator"));

    // Unique, time-ordered ids: "c-<ms since epoch, base 36>-<counter>".
    QString newCommandId();
    // The same for fan-outs: "f-...".
    QString newFanOutId();
    // The middle part of new ids: random per process by default (so two hubs' ids differ).
    // With history the run number is added: ids then never repeat one stored by an earlier
    // run in the same data directory. Before any send.
    QString idPrefix() const { return m_idPrefix; }
    void setIdPrefix(const QString &prefix) { m_idPrefix = prefix; }
    // Commands in flight to one bot at most (0: no cap); more are refused at registration.
    void setMaxInFlightPerBot(int count);
    // Commands waiting for their bot to connect now (at most MaxWaiting).
    size_t waitingCount() const;

    CommandRegistry &registry() const { return m_registry; }
    Hub &hub() const { return m_hub; }

    // In a cluster: commands for bots this hub does not hold go to the hub that does
    // (cluster/). Before any send; the forwarder outlives this service's sends.
    void setForwarder(CommandForwarder *forwarder) { m_forwarder = forwarder; }
    CommandForwarder *forwarder() const { return m_forwarder; }
    // A bot as the fleet knows it: this hub's (when connected here), else the cluster's
    // directory entry, else what this hub remembers of it.
    std::optional<BotInfo> findBot(const QString &botId) const;
    // Every bot this hub knows, and every bot other hubs of the cluster hold.
    QList<BotInfo> fleet() const;
    // The bot connected to another hub of the cluster: commands waiting for it go (forwarded).
    void botConnectedElsewhere(const QString &botId) { onBotConnected(botId); }

private:
    struct Waiting
    {
        QString commandId;
        QString botId;
        CommandSpec spec;
        std::chrono::milliseconds timeout{};
        // admit is asked again when the bot connects: its labels may have changed (an
        // operator's scope).
        SendOptions options;
    };
    // restartDeadline: the command waited (or could have) for its bot, so it gets its full
    // response timeout from the moment it is written.
    void dispatch(const QString &commandId, const QString &botId, const CommandSpec &spec,
                  std::chrono::milliseconds timeout, bool restartDeadline,
                  const SendOptions &options);
    void failWaiting(const QString &reason);
    std::optional<Waiting> takeWaitingLocked(const QString &commandId);
    void onBotConnected(const QString &botId);
    void connectTimedOut(const QString &commandId);

    CommandRegistry &m_registry;
    Hub &m_hub;
    CommandForwarder *m_forwarder = nullptr;
    std::atomic<quint64> m_counter{0};
    QString m_idPrefix;
    mutable std::mutex m_mutex;
    // Commands waiting for their bot to connect, by bot (a Hello takes its list in O(its
    // commands)), and which bot each waits for (a timeout or cancel finds its bot's list in
    // O(1), then the command in O(that bot's waiting commands)).
    std::unordered_map<QString, std::vector<Waiting>> m_waiting;
    std::unordered_map<QString, QString> m_waitingBot;
    // Fan-out ids used lately (the newest MaxFanOutIds), reserved before anything registers:
    // two sends with one id cannot both pass.
    std::unordered_set<QString> m_fanOutIds;
    std::deque<QString> m_fanOutOrder;
    static constexpr size_t MaxFanOutIds = 100'000;
    size_t m_waitingCount = 0;
};

} // namespace opconsole
