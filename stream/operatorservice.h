#pragma once

#include <QObject>

#include <memory>

namespace opconsole {

class ChangeFeed;
class CommandService;
class HistoryStore;
class Hub;
class OperatorServicePrivate;

// The Operator gRPC API (proto/opconsole/v1/operator.proto), served on the hub's port:
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
    int watcherCount() const;

private:
    std::unique_ptr<OperatorServicePrivate> d;
};

} // namespace opconsole
