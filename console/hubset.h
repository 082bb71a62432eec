#pragma once

#include "remotebackend.h"

#include <memory>
#include <vector>

namespace opconsole {

// The console attached to several hubs at once (opconsole --connect a:1,b:2): one fleet and
// one commands table with a Hub column, a send goes to the hub that holds the bot, and a
// fan-out across hubs is one fan-out id on each of them, so it has one tally. Each hub has
// its own RemoteBackend (its own Watch, resume and back-off); the link is Live only while
// every hub is attached, and a send that needs a hub that is not is refused whole. Every hub
// is reached with the same RemoteBackend::Options::security (TLS and operator token).
class HubSet final : public ConsoleBackend
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(HubSet)

public:
    static constexpr int MaxHubs = 16;

    explicit HubSet(const QStringList &addresses,
                    RemoteBackend::Options options = RemoteBackend::Options{},
                    QObject *parent = nullptr);
    ~HubSet() override;

    QString address() const override;
    QStringList hubs() const override { return m_addresses; }
    bool isRemote() const override { return true; }
    Link link() const override;
    QString linkProblem() const override;
    bool canSend() const override;
    QList<BotInfo> bots() const override;
    std::optional<BotInfo> botInfo(const QString &botId) const override;
    QList<CommandOutcome> commands() const override;
    int pendingCount(const QString &botId) const override;
    SendReceipt send(const QStringList &botIds, const CommandSpec &spec,
                     std::chrono::milliseconds timeout, const QString &commandId = {}) override;
    // In waves on the one hub that holds every bot; refused when they are on several (a
    // rollout's waves and threshold are one hub's).
    // Some hub runs them (a rollout goes to the one hub that holds every bot of it).
    bool canRollOut() const override;
    SendReceipt sendRollout(const QStringList &botIds, const CommandSpec &spec,
                            std::chrono::milliseconds timeout, const RolloutPlan &plan) override;
    bool cancel(const QString &commandId, const QString &reason, const QString &hub = {}) override;
    // Every hub's page, merged newest first: a page holds up to query.pageSize records of
    // each hub, and its token goes on with each hub where that hub's page ended.
    bool hasHistory() const override { return true; }
    QFuture<HistoryPage> queryHistory(const HistoryQuery &query) override;
    // One hub's identity; with several, what they agree on: the names (joined when they
    // differ), the lowest role any of them gave, the scope when they all give the same.
    ConsoleIdentity identity() const override;
    bool canDecide(const QString &hub = {}) const override;
    // On `hub` when given, else on the hub that holds the bot (as a send).
    QFuture<DecisionReply> decideBot(const QString &botId, BotDecision decision,
                                     const QString &reason, const QString &hub = {},
                                     const QString &credential = {}) override;

    RemoteBackend &hub(int i) const { return *m_hubs[size_t(i)]; }
    int size() const { return int(m_hubs.size()); }

private:
    // The hub that holds a bot: where it is connected, else where it was seen last; -1: none.
    int hubOf(const QString &botId) const;

    QStringList m_addresses;
    std::vector<std::unique_ptr<RemoteBackend>> m_hubs;
    QString m_idPrefix;
    quint64 m_fanOuts = 0;
};

} // namespace opconsole
