#pragma once

#include <QObject>

#include <memory>

namespace opconsole::security {
class OperatorDirectory;
}

namespace opconsole {

struct BotInfo;
class ChangeFeed;
class CommandService;
class HistoryStore;
class Hub;
class OperatorServicePrivate;
class RolloutRunner;

// Who may call the Operator API (docs/security.md).
struct OperatorAccessOptions
{
    // Operator tokens, names and roles (--operators); null: no token is asked and every caller
    // may do everything (a listener that reaches only this machine, or --insecure).
    std::shared_ptr<const security::OperatorDirectory> operators;
    double sendsPerSecond = 50; // SendCommand and SendToMany calls per operator (bursts of 2x)
};

struct OperatorAccessCounters
{
    quint64 unauthenticated = 0;  // calls with no token, or an unknown one
    quint64 permissionDenied = 0; // a role too low, a bot outside the operator's scope
    quint64 rateLimited = 0;      // sends over the operator's rate
    quint64 unreported = 0;       // refusals past the report budget (counted only)
};

// The Operator gRPC API (proto/opconsole/v1/operator.proto), served on the hub's operator
// listener:
// send-and-wait, fan-out, listings, cancel and a live Watch stream. No gRPC thread ever
// blocks on an ack: completions come from the registry's futures. Lives in the thread that
// owns the registry; Watch reads the change feed, and a Watch client resumes from its place in
// it after a reconnect (WatchRequest.resume_after).
class OperatorService final : public QObject
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(OperatorService)

public:
    static constexpr int MaxWatchBacklog = 100'000;                  // messages per Watch
    static constexpr qint64 MaxWatchBacklogBytes = 64 * 1024 * 1024; // and their bytes
    static constexpr int MaxSnapshotCommands = 10'000; // newest commands in a Watch snapshot
    static constexpr int MaxPageSize = 1000;
    static constexpr size_t MaxResponseBytes = 2 * 1024 * 1024; // a ListCommands page ends early

    OperatorService(CommandService &commands, ChangeFeed &feed, QObject *parent = nullptr);
    ~OperatorService() override;

    // Adds the service to the hub's server; before hub.start().
    void attachTo(Hub &hub);
    // With history: QueryHistory answers from it, and SendCommand and SendToMany give a caller
    // an outcome only once it is committed there (so a caller never knows an outcome that a
    // crash could lose). Before hub.start(); the store outlives the hub's stop.
    void setHistory(HistoryStore *history);
    // Tokens, roles and rates; before hub.start().
    void setAccess(OperatorAccessOptions access);
    OperatorAccessCounters accessCounters() const;
    int watcherCount() const;
    // A bot another hub of the cluster holds changed (cluster/): every Watch hears of it, so a
    // console sees the whole fleet. Any thread.
    void noteRemoteBot(const BotInfo &bot);
    // The staged rollouts started through SendToMany (stream/rollout.h); in this thread.
    RolloutRunner &rollouts() const;

signals:
    // A call refused for its credential, role, scope or rate (for the log; within a budget).
    void accessRefused(const QString &caller, const QString &method, const QString &why);

private:
    std::unique_ptr<OperatorServicePrivate> d;
};

} // namespace opconsole
