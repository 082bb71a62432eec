#pragma once
// What the operator's window talks to: the fleet, the commands and sending, whether the hub
// runs in this process (LocalBackend) or elsewhere (RemoteBackend, over the Operator API).
// Qt types only: ui/ depends on this header and never on gRPC or the hub's classes.

#include "botinfo.h"
#include "commandoutcome.h"
#include "commandspec.h"
#include "historyquery.h"
#include "tokens.h"

#include <QFuture>

#include <QCoreApplication>
#include <QList>
#include <QMap>
#include <QObject>
#include <QStringList>

#include <algorithm>
#include <chrono>
#include <optional>

namespace opconsole {

// The answer to a send, at once (the outcome follows on the change feed).
struct SendReceipt
{
    QStringList commandIds; // one per bot, in order
    QString fanOut;         // the fan-out id when sent to several bots
    QString error;          // refused before anything was registered; the rest is empty then
    bool ok() const { return error.isEmpty(); }
};

// A staged rollout as the window asks for it (the hub's RolloutOptions, stream/rollout.h, and
// the Operator API's Rollout): waves of batchCount bots or batchPercent of them, the next wave
// after the one before has every answer and waveDelay, stopped when a wave's failed share is
// above abortAbovePercent.
struct RolloutPlan
{
    int batchCount = 0;                      // bots per wave; or
    int batchPercent = 0;                    // percent of the bots per wave, rounded up
    std::optional<double> abortAbovePercent; // none: never stopped
    std::chrono::milliseconds waveDelay{0};

    // As the hub counts them (RolloutOptions::waveSize).
    int waveSize(int bots) const
    {
        if (batchCount > 0)
            return batchCount;
        return int(std::max<qint64>(1, (qint64(bots) * batchPercent + 99) / 100));
    }
    int waves(int bots) const
    {
        const int size = waveSize(bots);
        return bots <= 0 ? 0 : (bots + size - 1) / size;
    }
};

// An admin's decision on a bot (docs/security.md, "Admission").
enum class BotDecision : quint8
{
    Accept, // a bot awaiting approval goes live (a rejected one is let in again)
    Reject, // a bot awaiting approval is refused from now on
    Revoke, // an accepted bot is refused from now on, and disconnected at once
};

// The hub's answer to a decision.
struct DecisionReply
{
    QString error;              // not taken, and why; empty when taken
    QString message;            // what was done ("bot-7 accepted"), for the status bar
    std::optional<BotInfo> bot; // the bot afterwards, when the hub said
    bool ok() const { return error.isEmpty(); }
};

// Who the hub takes this console for.
struct ConsoleIdentity
{
    // "console:<user>" in the hub's own window; else the operator token's name, or
    // "operator@<peer>" on a hub that asks operators for no token. Empty: not known yet.
    QString name;
    security::Role role = security::Role::None; // None: not known (yet, or an older hub)
    QMap<QString, QString> scope;               // the bots it may command; empty: all
    bool authenticated = false;                 // it presented a token the hub knows
};

class ConsoleBackend : public QObject
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(ConsoleBackend)

public:
    enum class Link
    {
        Live,       // in-process, or attached and up to date
        Connecting, // first attach in progress
        Down,       // the hub is unreachable: what is shown is stale; reconnecting
    };

    using QObject::QObject;
    ~ConsoleBackend() override = default;

    // Where the fleet is: "127.0.0.1:50051" (local) or the hub addresses attached to.
    virtual QString address() const = 0;
    // Where the Operator API is, for opctl (--hub): the hubs attached to, or the operator
    // listener of the hub in this process.
    virtual QString operatorAddress() const { return address(); }
    // Every hub the console shows (one, or several when attached to several).
    virtual QStringList hubs() const { return {address()}; }
    virtual bool isRemote() const = 0;
    virtual Link link() const = 0;
    // Why the link is down, and when the next attempt is; empty while live.
    virtual QString linkProblem() const = 0;
    // Whether anything can be sent now (with several hubs: while any of them is attached).
    virtual bool canSend() const { return link() == Link::Live; }

    // What is known now; afterwards, changes come through the signals.
    virtual QList<BotInfo> bots() const = 0;
    // One bot as known now (its heartbeat included), without a copy of the fleet.
    virtual std::optional<BotInfo> botInfo(const QString &botId) const = 0;
    virtual QList<CommandOutcome> commands() const = 0;
    virtual int pendingCount(const QString &botId) const = 0;

    // Sends to one bot (commandId empty: a new id) or to many (a fan-out). Refused at once,
    // with a clear error, when the hub is unreachable: nothing is queued for later.
    virtual SendReceipt send(const QStringList &botIds, const CommandSpec &spec,
                             std::chrono::milliseconds timeout, const QString &commandId = {}) = 0;
    // Whether sendRollout() can be asked (a hub in this process without its Operator API's
    // rollout runner cannot).
    virtual bool canRollOut() const { return false; }
    // Sends to `botIds` in waves, in that order, under one fan-out id (SendReceipt::fanOut; the
    // command ids come on the feed, wave by wave). Refused at once like send().
    virtual SendReceipt sendRollout(const QStringList &botIds, const CommandSpec &spec,
                                    std::chrono::milliseconds timeout, const RolloutPlan &plan);
    // Releases the waiter (Cancelled) and tells the bot. Asynchronous for a remote hub: the
    // outcome arrives on the feed; false only when it cannot be asked now.
    // `hub`: the record's hub, when the console shows several (an id is unique per hub only).
    virtual bool cancel(const QString &commandId, const QString &reason,
                        const QString &hub = {}) = 0;

    // The hub's history: commands across restarts, searched on the hub (newest first, paged).
    // Whether this console can search one (a remote hub may still answer that it keeps none).
    virtual bool hasHistory() const { return false; }
    // Finishes with HistoryPage::error set when the history cannot be read.
    virtual QFuture<HistoryPage> queryHistory(const HistoryQuery &query);
    // What the history keeps, in a line ("12,034 commands since 1 Nov, 35 MB of 1 GiB, 30
    // days"); empty when not known.
    virtual QString historySummary() const { return {}; }

    // Who this console acts as (on several hubs: what they have in common, see HubSet).
    virtual ConsoleIdentity identity() const { return {}; }
    // Whether this console may accept, reject and revoke bots (the admin role): on `hub`
    // (BotInfo::hub), or on any hub when empty.
    virtual bool canDecide(const QString &hub = {}) const
    {
        Q_UNUSED(hub)
        return false;
    }
    // Decides on a bot of `hub` (BotInfo::hub; empty: the hub that reported it), and only if
    // its credential is still `credential` (the one shown; empty: whatever it is). Finishes
    // with DecisionReply::error set when the hub refused or could not be asked; the bot's new
    // state also comes through botsChanged.
    virtual QFuture<DecisionReply> decideBot(const QString &botId, BotDecision decision,
                                             const QString &reason, const QString &hub = {},
                                             const QString &credential = {});

signals:
    // Every change of every command, in order; a record is never older than one given
    // before for the same command. CommandOutcome::sequence orders rows (first seen first).
    void commandsChanged(const QList<opconsole::CommandOutcome> &records);
    // Bots that appeared or changed.
    void botsChanged(const QList<opconsole::BotInfo> &bots);
    void linkChanged();
    // A send or cancel that a remote hub refused after send() returned (e.g. a bad request).
    void notice(const QString &message);
    // identity() or canDecide() changed (a remote hub answered who it takes this console for).
    void identityChanged();
};

inline QFuture<HistoryPage> ConsoleBackend::queryHistory(const HistoryQuery &)
{
    HistoryPage page;
    page.error = tr("this console has no history");
    return QtFuture::makeReadyFuture(page);
}

// Why a rollout of `spec` to `botIds` cannot be asked for (no bot, a spec that does not
// validate); empty when it can. What every backend checks first in sendRollout().
inline QString rolloutProblem(const QStringList &botIds, const CommandSpec &spec)
{
    if (botIds.isEmpty())
        return QCoreApplication::translate("opconsole::ConsoleBackend", "no bot selected");
    return spec.validate();
}

inline SendReceipt ConsoleBackend::sendRollout(const QStringList &, const CommandSpec &,
                                               std::chrono::milliseconds, const RolloutPlan &)
{
    SendReceipt receipt;
    receipt.error = tr("this console cannot send in waves");
    return receipt;
}

inline QFuture<DecisionReply> ConsoleBackend::decideBot(const QString &, BotDecision,
                                                        const QString &, const QString &,
                                                        const QString &)
{
    DecisionReply reply;
    reply.error = tr("this console cannot decide on bots");
    return QtFuture::makeReadyFuture(reply);
}

} // namespace opconsole
