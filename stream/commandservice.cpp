#include "commandservice.h"

#include "commandregistry.h"
#include "hub.h"

#include <QDateTime>
#include <QRandomGenerator>
#include <QTimer>

namespace opconsole {

using namespace std::chrono;

void FanOutSummary::add(const CommandOutcome &outcome)
{
    ++total;
    switch (outcome.state) {
    case CommandState::Pending:
        ++pending;
        break;
    case CommandState::Acked:
        ++acked;
        break;
    case CommandState::Rejected:
        ++rejected;
        break;
    case CommandState::Expired:
        ++expired;
        break;
    case CommandState::NotConnected:
        ++notConnected;
        break;
    case CommandState::Disconnected:
        ++disconnected;
        break;
    case CommandState::Cancelled:
        ++cancelled;
        break;
    case CommandState::Refused:
        ++refused;
        break;
    }
    if (outcome.hasLateAck())
        ++lateAcks;
}

QString FanOutSummary::text() const
{
    QStringList parts;
    parts << QStringLiteral("%1/%2 acked").arg(acked).arg(total);
    auto add = [&](int n, const char *what) {
        if (n > 0)
            parts << QStringLiteral("%1 %2").arg(n).arg(QLatin1String(what));
    };
    add(pending, "pending");
    add(rejected, "rejected");
    add(expired, "expired");
    add(notConnected, "not connected");
    add(disconnected, "disconnected");
    add(cancelled, "cancelled");
    add(refused, "refused");
    add(lateAcks, "late acks");
    return parts.join(QStringLiteral(", "));
}

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
    std::vector<Waiting> waiting;
    {
        std::lock_guard lock(m_mutex);
        waiting.swap(m_waiting);
    }
    for (const Waiting &w : waiting)
        m_registry.failCommand(w.commandId, CommandState::NotConnected, reason);
}

CommandService::~CommandService()
{
    failWaiting(QStringLiteral("shut down while waiting for the bot to connect"));
}

void CommandService::setMaxInFlightPerBot(int count)
{
    m_registry.setMaxPendingPerBot(count);
}

QString CommandService::newCommandId()
{
    return QStringLiteral("c-%1-%2-%3")
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
    QFuture<CommandOutcome> future =
        m_registry.registerCommand(commandId, botId, registered, spec.name());
    if (future.isFinished())
        return future; // refused: duplicate id, bad timeout, ...
    if (const QString problem = spec.validate(); !problem.isEmpty()) {
        m_registry.failCommand(commandId, CommandState::Refused, problem);
        return future;
    }
    if (options.connectTimeout > 0ms && !m_hub.isConnected(botId)) {
        {
            std::lock_guard lock(m_mutex);
            m_waiting.push_back({commandId, botId, spec, timeout, options.connectTimeout});
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
    dispatch(commandId, botId, spec, timeout, mayWait);
    return future;
}

void CommandService::dispatch(const QString &commandId, const QString &botId,
                              const CommandSpec &spec, milliseconds timeout, bool restartDeadline)
{
    const auto responseTimeout = restartDeadline ? std::optional(timeout) : std::nullopt;
    switch (m_hub.sendCommand(botId, commandId, spec, timeout, responseTimeout)) {
    case SendResult::Queued:
    case SendResult::NotPending: // finished meanwhile (cancelled, expired): never written
        return;
    case SendResult::NotConnected:
        m_registry.failCommand(commandId, CommandState::NotConnected,
                               QStringLiteral("bot %1 is not connected").arg(botId));
        return;
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
        std::erase_if(m_waiting, [&](Waiting &w) {
            if (w.botId != botId)
                return false;
            ready.push_back(std::move(w));
            return true;
        });
    }
    for (const Waiting &w : ready)
        dispatch(w.commandId, w.botId, w.spec, w.timeout, true);
}

void CommandService::connectTimedOut(const QString &commandId)
{
    Waiting gone;
    {
        std::lock_guard lock(m_mutex);
        const auto it = std::find_if(m_waiting.begin(), m_waiting.end(),
                                     [&](const Waiting &w) { return w.commandId == commandId; });
        if (it == m_waiting.end())
            return; // sent meanwhile
        gone = std::move(*it);
        m_waiting.erase(it);
    }
    const double seconds = double(gone.connectTimeout.count()) / 1000.0;
    m_registry.failCommand(commandId, CommandState::NotConnected,
                           QStringLiteral("bot %1 did not connect within %2 s")
                               .arg(gone.botId)
                               .arg(seconds, 0, 'g', 6));
}

FanOut CommandService::sendToMany(const QStringList &botIds, const CommandSpec &spec,
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
    fan.summary = tally->promise.future();
    if (botIds.isEmpty()) {
        tally->promise.addResult(FanOutSummary{});
        tally->promise.finish();
        return fan;
    }
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
        std::erase_if(m_waiting, [&](const Waiting &w) { return w.commandId == commandId; });
    }
    if (record->wasSent())
        m_hub.sendCancel(record->botId, commandId, reason);
    return true;
}

} // namespace opconsole
