#pragma once

#include "consolebackend.h"

#include <QThreadPool>

namespace opconsole {

class ChangeFeed;
class CommandRegistry;
class CommandService;
class Hub;
class HistoryStore;
class RolloutRunner;

// The console with its hub in the same process (scripts/run.sh, --demo): reads the change
// feed and the hub's bot signals, sends through the CommandService. All in the GUI thread.
class LocalBackend final : public ConsoleBackend
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(LocalBackend)

public:
    // `history` (may be null: --no-history) outlives the backend.
    LocalBackend(CommandRegistry &registry, ChangeFeed &feed, Hub &hub, CommandService &service,
                 HistoryStore *history = nullptr, QObject *parent = nullptr);

    QString address() const override;
    QString operatorAddress() const override;
    bool isRemote() const override { return false; }
    Link link() const override { return Link::Live; }
    QString linkProblem() const override { return {}; }
    QList<BotInfo> bots() const override;
    std::optional<BotInfo> botInfo(const QString &botId) const override;
    QList<CommandOutcome> commands() const override;
    int pendingCount(const QString &botId) const override;
    SendReceipt send(const QStringList &botIds, const CommandSpec &spec,
                     std::chrono::milliseconds timeout, const QString &commandId = {}) override;
    bool cancel(const QString &commandId, const QString &reason, const QString &hub = {}) override;
    // Rollouts go through the hub's runner (OperatorService::rollouts()), which outlives the
    // backend; without one (null, the default) canRollOut() is false.
    void setRollouts(RolloutRunner *runner) { m_rollouts = runner; }
    bool canRollOut() const override { return m_rollouts != nullptr; }
    SendReceipt sendRollout(const QStringList &botIds, const CommandSpec &spec,
                            std::chrono::milliseconds timeout, const RolloutPlan &plan) override;
    bool hasHistory() const override { return m_history != nullptr; }
    QFuture<HistoryPage> queryHistory(const HistoryQuery &query) override;
    QString historySummary() const override;
    // The user of this window is the hub's own: an admin, recorded as "console:<user>".
    ConsoleIdentity identity() const override;
    bool canDecide(const QString &) const override { return true; }
    QFuture<DecisionReply> decideBot(const QString &botId, BotDecision decision,
                                     const QString &reason, const QString &hub = {},
                                     const QString &credential = {}) override;

    CommandService &service() const { return m_service; }

private:
    CommandRegistry &m_registry;
    ChangeFeed &m_feed;
    Hub &m_hub;
    CommandService &m_service;
    HistoryStore *m_history;
    RolloutRunner *m_rollouts = nullptr;
    // The hub's bot signals of this turn of the event loop, emitted as one botsChanged (a
    // connect storm is a batch for the fleet, not a row at a time).
    QList<BotInfo> m_botChanges;
    // Admission decisions run here (they write a file); waited for before the hub can go.
    QThreadPool m_decisions;
};

} // namespace opconsole
