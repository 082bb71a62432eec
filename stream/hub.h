#pragma once

#include "botinfo.h"
#include "commandspec.h"

#include <QList>
#include <QObject>
#include <QString>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>

namespace grpc {
class ServerBuilder;
}

namespace opconsole {

class CommandRegistry;
class HubPrivate;

struct HubOptions
{
    QString listenAddress = QStringLiteral("127.0.0.1:50051"); // port 0 picks a free port
    std::chrono::milliseconds heartbeatInterval{2000};         // told to bots in Welcome
    int missedHeartbeats = 3;                      // silent this many intervals: disconnected
    int maxQueuedPerBot = 4096;                    // outgoing messages waiting for one bot's stream
    qint64 maxQueuedBytesPerBot = 4 * 1024 * 1024; // and their bytes
    int maxMessageBytes = 64 * 1024;               // larger messages from a bot close its stream
    int workerThreads = 0;                         // gRPC callback threads; 0 lets gRPC choose
    // A stream that has not said Hello within this is closed (0: 3 heartbeat intervals).
    std::chrono::milliseconds helloTimeout{0};
    int maxHandshaking = 10'000; // streams waiting for Hello at once; more are refused
    // Per session; more are counted and dropped (0: no limit). Bursts of twice the rate pass.
    double maxProgressPerSecond = 200;
    double maxStatusPerSecond = 20; // heartbeats and status reports together
    // Protocol violations (bad acks, acks for unknown commands, ...) reported per bot id (one
    // budget for all clients before Hello), reconnects included; past the budget (a burst of
    // twice this) the stream is ended with INVALID_ARGUMENT.
    double maxViolationsPerSecond = 5;
    int maxLiveSessions = 100'000; // Hellos past this many connected bots are refused
    int maxKnownBots = 200'000;    // bots remembered (connected or not); the oldest gone go
    std::chrono::milliseconds effectiveHelloTimeout() const
    {
        return helloTimeout > std::chrono::milliseconds::zero() ? helloTimeout
                                                                : heartbeatInterval * 3;
    }
};

struct HubCounters
{
    quint64 streamsAccepted = 0;      // streams that said Hello properly
    quint64 streamsRejected = 0;      // bad or missing Hello
    quint64 sessionsReplaced = 0;     // a bot reconnected while its old stream was alive
    quint64 heartbeatTimeouts = 0;    // silent bots disconnected
    quint64 protocolViolations = 0;   // ignored messages: a second Hello, a bad ack, ...
    quint64 streamErrors = 0;         // writes that failed: the stream broke under the hub
    quint64 queueFull = 0;            // sends refused because a bot's queue was full
    quint64 helloTimeouts = 0;        // streams closed for saying no Hello in time
    quint64 rateLimited = 0;          // progress, heartbeat and status messages dropped
    quint64 notPendingSkipped = 0;    // sends skipped: the command had finished meanwhile
    quint64 violationsUnreported = 0; // counted, not signalled: the bot's budget was spent
    quint64 messagesIn = 0;
    quint64 messagesOut = 0;
};

// Result of handing one message to a bot's stream.
enum class SendResult : quint8
{
    Queued,
    NotConnected,
    QueueFull,
    NotPending, // the command is no longer pending (expired, cancelled): not written
};

// The gRPC side: bots connect to the BotLink service here, one bidirectional stream each.
// Runs on gRPC's own threads, never the caller's; acks go straight into the thread-safe
// registry, bot events leave as signals (queued to receivers in other threads).
class Hub final : public QObject
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(Hub)

public:
    Hub(CommandRegistry &registry, HubOptions options = {}, QObject *parent = nullptr);
    // Stops the hub (see stop()).
    ~Hub() override;

    // Another gRPC service to serve on the same port (the Operator API); before start().
    void addServerExtension(std::function<void(grpc::ServerBuilder &)> extension);
    // Steps of stop(), run after every bot stream has ended and before the server shuts
    // down, in registration order within a phase; skipped once `context` is destroyed.
    enum class StopPhase : quint8
    {
        FailCommands, // fail what a service holds (commands waiting for their bot)
        EndCalls,     // then end the API calls (Watch streams) once they carry every outcome
    };
    void addStopStep(StopPhase phase, QObject *context,
                     std::function<void(const QString &reason)> step);

    bool start(QString *error = nullptr);
    bool isRunning() const;
    // Inside stop(): new streams, Hellos and commands waiting for their bot are refused.
    bool isStopping() const;
    int port() const;        // the bound port once started
    QString address() const; // host:port as bound
    const HubOptions &options() const;

    // Shutdown, in one place and this order: stop accepting streams and Hellos; end every
    // bot stream (UNAVAILABLE) and fail the commands sent on it as Disconnected with
    // `reason`; run the stop steps (services end their calls with outcomes); fail whatever is
    // still pending; shut the server down (a short grace for calls still writing). Idempotent;
    // a second caller waits for the first to finish; start() may be called again afterwards.
    // Call it in the registry's thread: there the last outcomes reach every Watch before it
    // ends (elsewhere the registry's last batch is still queued).
    void stop(const QString &reason = QStringLiteral("hub shutting down"));

    // Writes a command to the bot's current stream and marks it sent in the registry with
    // that session, in one step (BotSession::sendCommand): a command is written at most once
    // and only while pending. The caller registered it first. With responseTimeout, the
    // command's deadline restarts from the write (it waited for its bot to connect).
    SendResult sendCommand(const QString &botId, const QString &commandId, const CommandSpec &spec,
                           std::chrono::milliseconds timeout,
                           std::optional<std::chrono::milliseconds> responseTimeout = std::nullopt);
    // Tells the bot to stop working on a command (the waiter was released already).
    SendResult sendCancel(const QString &botId, const QString &commandId, const QString &reason);

    bool isConnected(const QString &botId) const;
    std::optional<BotInfo> bot(const QString &botId) const;
    QList<BotInfo> bots() const; // every bot seen this run, by id
    QStringList connectedBotIds() const;
    HubCounters counters() const;

signals:
    void botConnected(const opconsole::BotInfo &info);
    void botDisconnected(const opconsole::BotInfo &info); // info.disconnectReason says why
    void botUpdated(const opconsole::BotInfo &info);      // state or status changed
    // A bot sent something that was ignored or closed its stream; for logs.
    void protocolViolation(const QString &botId, const QString &what);

private:
    QList<BotInfo> stopLocked(const QString &reason); // stop()'s steps; the bots that went
    friend class HubPrivate;
    std::unique_ptr<HubPrivate> d;
};

} // namespace opconsole
