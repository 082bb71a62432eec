#include "localbackend.h"

#include <QtConcurrent/QtConcurrentRun>

#include "changefeed.h"
#include "commandregistry.h"
#include "commandservice.h"
#include "historystore.h"
#include "hub.h"
#include "rollout.h"

namespace opconsole {

namespace {
// Who acts from this window, for the records, the history and admission decisions.
QString consoleUser()
{
    return QStringLiteral("console:") +
           qEnvironmentVariable("USER", QStringLiteral("local")).left(64);
}

SendOptions fromConsole()
{
    SendOptions options;
    options.issuer = consoleUser();
    return options;
}
} // namespace

LocalBackend::LocalBackend(CommandRegistry &registry, ChangeFeed &feed, Hub &hub,
                           CommandService &service, HistoryStore *history, QObject *parent)
    : ConsoleBackend(parent), m_registry(registry), m_feed(feed), m_hub(hub), m_service(service),
      m_history(history)
{
    connect(&feed, &ChangeFeed::changes, this, &ConsoleBackend::commandsChanged);
    auto one = [this](const BotInfo &bot) {
        if (m_botChanges.isEmpty())
            QMetaObject::invokeMethod(
                this, [this] { emit botsChanged(std::exchange(m_botChanges, {})); },
                Qt::QueuedConnection);
        m_botChanges << bot;
    };
    connect(&hub, &Hub::botConnected, this, one);
    connect(&hub, &Hub::botDisconnected, this, one);
    connect(&hub, &Hub::botUpdated, this, one);
}

QString LocalBackend::address() const
{
    return m_hub.address();
}

QString LocalBackend::operatorAddress() const
{
    const QString api = m_hub.operatorAddress();
    return api.isEmpty() ? address() : api;
}

ConsoleIdentity LocalBackend::identity() const
{
    ConsoleIdentity me;
    me.name = consoleUser();
    me.role = security::Role::Admin;
    return me;
}

QFuture<DecisionReply> LocalBackend::decideBot(const QString &botId, BotDecision decision,
                                               const QString &reason, const QString &,
                                               const QString &credential)
{
    const AdmissionAction action = decision == BotDecision::Accept   ? AdmissionAction::Accept
                                   : decision == BotDecision::Reject ? AdmissionAction::Reject
                                                                     : AdmissionAction::Revoke;
    // Off the GUI thread: the decision is written to disk first (the whole file, which grows
    // with the fleet). The hub's signals bring the bot's new state.
    return QtConcurrent::run(
        &m_decisions, [hub = &m_hub, botId, action, user = consoleUser(), reason, credential] {
            const DecisionResult result = hub->decideBot(botId, action, user, reason, credential);
            DecisionReply reply;
            if (result.error == DecisionResult::Error::None)
                reply.message = result.message;
            else
                reply.error = result.message;
            reply.bot = result.bot;
            return reply;
        });
}

QList<BotInfo> LocalBackend::bots() const
{
    return m_hub.bots();
}

std::optional<BotInfo> LocalBackend::botInfo(const QString &botId) const
{
    return m_hub.bot(botId);
}

QList<CommandOutcome> LocalBackend::commands() const
{
    return m_registry.snapshot();
}

int LocalBackend::pendingCount(const QString &botId) const
{
    return m_registry.pendingCount(botId);
}

SendReceipt LocalBackend::send(const QStringList &botIds, const CommandSpec &spec,
                               std::chrono::milliseconds timeout, const QString &commandId)
{
    SendReceipt receipt;
    if (botIds.isEmpty()) {
        receipt.error = tr("no bot selected");
        return receipt;
    }
    if (botIds.size() == 1) {
        const QString id = commandId.isEmpty() ? m_service.newCommandId() : commandId;
        const QFuture<CommandOutcome> future =
            m_service.sendWithId(id, botIds.first(), spec, timeout, fromConsole());
        // Refused before it was registered (in-flight cap, shutting down, id in use): no row
        // will show it, so the caller says it.
        if (future.isFinished() && future.result().state == CommandState::Refused &&
            future.result().sequence == 0) {
            receipt.error = future.result().reason;
            return receipt;
        }
        receipt.commandIds << id;
        return receipt;
    }
    const FanOut fan = m_service.sendToMany(botIds, spec, timeout, fromConsole());
    if (!fan.refused.isEmpty()) {
        receipt.error = fan.refused;
        return receipt;
    }
    receipt.commandIds = fan.commandIds;
    receipt.fanOut = fan.id;
    return receipt;
}

SendReceipt LocalBackend::sendRollout(const QStringList &botIds, const CommandSpec &spec,
                                      std::chrono::milliseconds timeout, const RolloutPlan &plan)
{
    SendReceipt receipt;
    if (!m_rollouts) {
        receipt.error = tr("this console cannot send in waves");
        return receipt;
    }
    if (receipt.error = rolloutProblem(botIds, spec); !receipt.ok())
        return receipt;
    RolloutOptions options;
    options.batchCount = plan.batchCount;
    options.batchPercent = plan.batchPercent;
    options.abortAbovePercent = plan.abortAbovePercent;
    options.waveDelay = plan.waveDelay;
    // The runner checks the options and the spec, and refuses with why.
    const RolloutRunner::Started started =
        m_rollouts->start(botIds, spec, timeout, fromConsole(), options, {});
    if (!started.refused.isEmpty()) {
        receipt.error = started.refused;
        return receipt;
    }
    receipt.fanOut = started.id;
    return receipt;
}

QFuture<HistoryPage> LocalBackend::queryHistory(const HistoryQuery &query)
{
    if (!m_history)
        return ConsoleBackend::queryHistory(query);
    return m_history->query(query);
}

QString LocalBackend::historySummary() const
{
    return m_history ? summaryOf(m_history->stats()) : QString();
}

bool LocalBackend::cancel(const QString &commandId, const QString &reason, const QString &)
{
    return m_service.cancel(commandId, reason);
}

} // namespace opconsole
