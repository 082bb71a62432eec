#include "commandservice.h"

#include "commandforwarder.h"
#include "commandregistry.h"
#include "hub.h"

#include <QDateTime>
#include <QRandomGenerator>
#include <QTimer>

namespace opconsole {

using namespace std::chrono;

CommandService::CommandService(CommandRegistry &registry, Hub &hub, QObject *parent)
    : QObject(parent), m_registry(registry), m_hub(hub),
      // A random prefix keeps ids unique across hub restarts within the same millisecond.
      m_idPrefix(QString::number(QRandomGenerator::global()->bounded(36 * 36 * 36), 36))
{
    qRegisterMetaType<FanOutSummary>();
    registry.setMaxPendingPerBot(DefaultMaxInFlightPerBot);
    connect(
        &hub, &Hub::botConnected, this, [this](const BotInfo &info) { onBotConnected(info.botId); },
        Qt::DirectConnection);
    hub.addStopStep(Hub::StopPhase::FailCommands, this,
                    [this](const QString &reason) { failWaiting(reason); });
}

void CommandService::failWaiting(const QString &reason)
{
    std::unordered_map<QString, std::vector<Waiting>> waiting;
    {
        std::lock_guard lock(m_mutex);
        waiting.swap(m_waiting);
        m_waitingBot.clear();
        m_waitingCount = 0;
    }
    for (const auto &[botId, list] : waiting) {
        for (const Waiting &w : list)
            m_registry.failCommand(w.commandId, CommandState::NotConnected, reason);
    }
}

std::optional<CommandService::Waiting> CommandService::takeWaitingLocked(const QString &commandId)
{
    const auto botIt = m_waitingBot.find(commandId);
    if (botIt == m_waitingBot.end())
        return std::nullopt;
    std::optional<Waiting> taken;
    const auto listIt = m_waiting.find(botIt->second);
    if (listIt != m_waiting.end()) {
        auto &list = listIt->second;
        const auto it = std::find_if(list.begin(), list.end(),
                                     [&](const Waiting &w) { return w.commandId == commandId; });
        if (it != list.end()) {
            taken = std::move(*it);
            list.erase(it);
            --m_waitingCount;
        }
        if (list.empty())
            m_waiting.erase(listIt);
    }
    m_waitingBot.erase(botIt);
    return taken;
}

CommandService::~CommandService()
{
    failWaiting(QStringLiteral("shut down while waiting for the bot to connect"));
}

void CommandService::setMaxInFlightPerBot(int count)
{
    m_registry.setMaxPendingPerBot(count);
}

size_t CommandService::waitingCount() const
{
    std::lock_guard lock(m_mutex);
    return m_waitingCount;
}

QString CommandService::newCommandId()
{
    return QStringLiteral("c-%1-%2-%3")
        .arg(QString::number(QDateTime::currentMSecsSinceEpoch(), 36), m_idPrefix)
        .arg(m_counter.fetch_add(1) + 1);
}

QString CommandService::newFanOutId()
{
    return QStringLiteral("f-%1-%2-%3")
        .arg(QString::number(QDateTime::currentMSecsSinceEpoch(), 36), m_idPrefix)
        .arg(m_counter.fetch_add(1) + 1);
}

QFuture<CommandOutcome> CommandService::send(const QString &botId, const CommandSpec &spec,
                                             milliseconds timeout, SendOptions options)
{
    return sendWithId(newCommandId(), botId, spec, timeout, options);
}

QFuture<CommandOutcome> CommandService::sendWithId(const QString &commandId, const QString &botId,
                                                   const CommandSpec &spec, milliseconds timeout,
                                                   SendOptions options)
{
    // Register first: an ack can never arrive for a command the registry does not know.
    // A command that may wait for its bot is registered with room for the wait; its deadline
    // restarts when it is written (connect timeout, then response timeout, as Azure IoT's
    // direct methods have them).
    const bool mayWait =
        options.connectTimeout > 0ms && timeout > 0ms && timeout <= m_registry.maxTimeout();
    const milliseconds registered =
        mayWait ? std::min(timeout + options.connectTimeout, m_registry.maxTimeout()) : timeout;
    QFuture<CommandOutcome> future = m_registry.registerCommand(
        commandId, botId, registered,
        CommandLabels{spec.name(), options.fanOut,
                      options.params.isEmpty() ? spec.paramsJson() : options.params,
                      options.issuer});
    if (future.isFinished())
        return future; // refused: duplicate id, bad timeout, ...
    if (const QString problem = spec.validate(); !problem.isEmpty()) {
        m_registry.failCommand(commandId, CommandState::Refused, problem);
        return future;
    }
    if (options.admit) {
        if (const QString refusal = options.admit(botId); !refusal.isEmpty()) {
            m_registry.failCommand(commandId, CommandState::Refused, refusal);
            return future;
        }
    }
    const auto heldElsewhere = [&] {
        if (!m_forwarder)
            return false;
        const auto remote = m_forwarder->remoteBot(botId);
        return remote && remote->connected;
    };
    if (options.connectTimeout > 0ms && !m_hub.isConnected(botId) && !heldElsewhere()) {
        QString refusal;
        {
            // Checked under the mutex that failWaiting() takes after the hub set stopping:
            // a command is either failed by that step or refused here, never left waiting.
            std::lock_guard lock(m_mutex);
            if (m_hub.isStopping())
                refusal = QStringLiteral("hub shutting down");
            else if (m_waitingCount >= MaxWaiting)
                refusal =
                    QStringLiteral("too many commands waiting for their bots (%1)").arg(MaxWaiting);
            else if (!m_waitingBot.emplace(commandId, botId).second)
                refusal = QStringLiteral("command %1 is already waiting for a bot").arg(commandId);
            else {
                m_waiting[botId].push_back({commandId, botId, spec, timeout, options});
                ++m_waitingCount;
            }
        }
        if (!refusal.isEmpty()) {
            m_registry.failCommand(commandId, CommandState::NotConnected, refusal);
            return future;
        }
        // The bot may have connected between the check and the push.
        if (m_hub.isConnected(botId))
            onBotConnected(botId);
        const auto wait = options.connectTimeout;
        QMetaObject::invokeMethod(
            this,
            [this, commandId, wait] {
                QTimer::singleShot(wait, this, [this, commandId] { connectTimedOut(commandId); });
            },
            Qt::QueuedConnection);
        return future;
    }
    dispatch(commandId, botId, spec, timeout, mayWait, options);
    return future;
}

std::optional<BotInfo> CommandService::findBot(const QString &botId) const
{
    std::optional<BotInfo> local = m_hub.bot(botId);
    if (m_forwarder && !(local && local->connected)) {
        if (auto remote = m_forwarder->remoteBot(botId); remote && (!local || remote->connected))
            return remote;
    }
    if (local && m_forwarder)
        local->holder = m_forwarder->hubId();
    return local;
}

QList<BotInfo> CommandService::fleet() const
{
    QList<BotInfo> bots = m_hub.bots();
    if (!m_forwarder)
        return bots;
    const QString here = m_forwarder->hubId();
    QHash<QString, qsizetype> index;
    index.reserve(bots.size());
    for (qsizetype i = 0; i < bots.size(); ++i) {
        bots[i].holder = here;
        index.insert(bots[i].botId, i);
    }
    // A bot connected here wins; one this hub only remembers gives way to its holder's entry.
    for (BotInfo &remote : m_forwarder->remoteBots()) {
        const auto it = index.constFind(remote.botId);
        if (it == index.cend())
            bots.append(std::move(remote));
        else if (!bots[*it].connected && remote.connected)
            bots[*it] = std::move(remote);
    }
    return bots;
}

void CommandService::dispatch(const QString &commandId, const QString &botId,
                              const CommandSpec &spec, milliseconds timeout, bool restartDeadline,
                              const SendOptions &options)
{
    const auto responseTimeout = restartDeadline ? std::optional(timeout) : std::nullopt;
    switch (m_hub.sendCommand(botId, commandId, spec, timeout, responseTimeout)) {
    case SendResult::Queued:
    case SendResult::NotPending: // finished meanwhile (cancelled, expired): never written
        return;
    case SendResult::NotConnected: {
        // In a cluster, the hub that holds the bot sends it (none: NotConnected from there);
        // not a bot held here for approval. The holder works out the params when none are
        // given, as this hub would.
        if (m_forwarder && !options.forwarded && !m_hub.isStopping() &&
            !m_hub.isAwaitingApproval(botId) &&
            m_forwarder->forward({commandId, botId, spec, timeout, options.fanOut, options.issuer,
                                  options.params, options.scope}))
            return;
        // A bot held for approval has a stream but takes no command: say so.
        const std::optional<BotInfo> bot = m_hub.bot(botId);
        m_registry.failCommand(
            commandId, CommandState::NotConnected,
            bot && bot->admission == BotAdmission::Awaiting && bot->disconnectedAtMs == 0
                ? QStringLiteral("bot %1 is awaiting approval: no command reaches it until an "
                                 "admin accepts it")
                      .arg(botId)
            : bot && bot->admission == BotAdmission::Rejected
                ? QStringLiteral("bot %1 was rejected by an admin").arg(botId)
                : QStringLiteral("bot %1 is not connected").arg(botId));
        return;
    }
    case SendResult::QueueFull:
        m_registry.failCommand(commandId, CommandState::Refused,
                               QStringLiteral("the outgoing queue of %1 is full (%2 messages)")
                                   .arg(botId)
                                   .arg(m_hub.options().maxQueuedPerBot));
        return;
    }
}

void CommandService::onBotConnected(const QString &botId)
{
    std::vector<Waiting> ready;
    {
        std::lock_guard lock(m_mutex);
        const auto it = m_waiting.find(botId);
        if (it == m_waiting.end())
            return;
        ready = std::move(it->second);
        m_waiting.erase(it);
        for (const Waiting &w : ready) {
            const auto index = m_waitingBot.find(w.commandId);
            if (index != m_waitingBot.end() && index->second == botId)
                m_waitingBot.erase(index);
        }
        m_waitingCount -= ready.size();
    }
    for (const Waiting &w : ready) {
        if (w.options.admit) {
            if (const QString refusal = w.options.admit(w.botId); !refusal.isEmpty()) {
                m_registry.failCommand(w.commandId, CommandState::Refused, refusal);
                continue;
            }
        }
        dispatch(w.commandId, w.botId, w.spec, w.timeout, true, w.options);
    }
}

void CommandService::connectTimedOut(const QString &commandId)
{
    std::optional<Waiting> gone;
    {
        std::lock_guard lock(m_mutex);
        gone = takeWaitingLocked(commandId);
    }
    if (!gone)
        return; // sent meanwhile
    const double seconds = double(gone->options.connectTimeout.count()) / 1000.0;
    m_registry.failCommand(commandId, CommandState::NotConnected,
                           QStringLiteral("bot %1 did not connect within %2 s")
                               .arg(gone->botId)
                               .arg(seconds, 0, 'g', 6));
}

FanOut CommandService::sendToMany(const QStringList &botIds, const CommandSpec &spec,
                                  milliseconds timeout, SendOptions options)
{
    if (QString refused = reserveFanOut(&options.fanOut); !refused.isEmpty()) {
        FanOut fan;
        fan.id = options.fanOut;
        fan.refused = std::move(refused);
        return fan;
    }
    return sendToReserved(botIds, spec, timeout, std::move(options));
}

QString CommandService::reserveFanOut(QString *id)
{
    if (id->isEmpty())
        *id = newFanOutId();
    std::lock_guard lock(m_mutex);
    if (!m_fanOutIds.insert(*id).second)
        return QStringLiteral("fan-out id %1 is in use").arg(*id);
    m_fanOutOrder.push_back(*id);
    if (m_fanOutOrder.size() > MaxFanOutIds) {
        m_fanOutIds.erase(m_fanOutOrder.front());
        m_fanOutOrder.pop_front();
    }
    return {};
}

FanOut CommandService::sendToReserved(const QStringList &botIds, const CommandSpec &spec,
                                      milliseconds timeout, SendOptions options)
{
    // A QFuture has one continuation slot, so the tally is kept by a continuation of each
    // registry future, and the caller gets those continuations' futures (same outcomes) with
    // their slots still free. QtFuture::whenAll would take the slots itself.
    struct Tally
    {
        std::mutex mutex;
        FanOutSummary summary;
        int remaining = 0;
        QPromise<FanOutSummary> promise;
    };
    auto tally = std::make_shared<Tally>();
    tally->remaining = int(botIds.size());
    FanOut fan;
    fan.id = options.fanOut;
    tally->summary.id = fan.id;
    tally->summary.kind = spec.name();
    fan.summary = tally->promise.future();
    if (botIds.isEmpty()) {
        FanOutSummary none;
        none.id = fan.id;
        tally->promise.addResult(none);
        tally->promise.finish();
        return fan;
    }
    if (options.params.isEmpty())
        options.params = spec.paramsJson(); // once for every command
    for (const QString &botId : botIds) {
        const QString id = newCommandId();
        fan.commandIds.append(id);
        fan.futures.append(sendWithId(id, botId, spec, timeout, options)
                               .then([tally](const CommandOutcome &outcome) {
                                   std::lock_guard lock(tally->mutex);
                                   tally->summary.add(outcome);
                                   if (--tally->remaining == 0) {
                                       tally->promise.addResult(tally->summary);
                                       tally->promise.finish();
                                   }
                                   return outcome;
                               }));
    }
    return fan;
}

bool CommandService::cancel(const QString &commandId, const QString &reason)
{
    const auto record = m_registry.find(commandId);
    if (!record || !m_registry.cancelCommand(commandId, reason))
        return false;
    {
        std::lock_guard lock(m_mutex);
        takeWaitingLocked(commandId);
    }
    if (record->wasSent() &&
        m_hub.sendCancel(record->botId, commandId, reason) == SendResult::NotConnected &&
        m_forwarder)
        m_forwarder->cancel(record->botId, commandId, reason); // sent by another hub
    return true;
}

} // namespace opconsole
