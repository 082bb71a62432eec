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
    int missedHeartbeats = 3;        // silent this many intervals: disconnected
    int maxQueuedPerBot = 4096;      // outgoing messages waiting for one bot's stream
    int maxMessageBytes = 64 * 1024; // larger messages from a bot close its stream
    int workerThreads = 0;           // gRPC callback threads; 0 lets gRPC choose
};

struct HubCounters
{
    quint64 streamsAccepted = 0;    // streams that said Hello properly
    quint64 streamsRejected = 0;    // bad or missing Hello
    quint64 sessionsReplaced = 0;   // a bot reconnected while its old stream was alive
    quint64 heartbeatTimeouts = 0;  // silent bots disconnected
    quint64 protocolViolations = 0; // ignored messages: a second Hello, a bad ack, ...
    quint64 streamErrors = 0;       // streams that ended with an error (incl. oversize)
    quint64 queueFull = 0;          // sends refused because a bot's queue was full
    quint64 messagesIn = 0;
    quint64 messagesOut = 0;
};

// Result of handing one message to a bot's stream.
enum class SendResult : quint8
{
    Queued,
    NotConnected,
    QueueFull
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

    bool start(QString *error = nullptr);
    bool isRunning() const;
    int port() const;        // the bound port once started
    QString address() const; // host:port as bound
    const HubOptions &options() const;

    // Graceful: every bot's pending commands fail as Disconnected with `reason`, streams are
    // finished with UNAVAILABLE, the server and every thread of it stop. Idempotent.
    void stop(const QString &reason = QStringLiteral("hub shutting down"));

    // Writes a command to the bot's current stream and marks it sent in the registry with
    // that session. The caller registered it first.
    SendResult sendCommand(const QString &botId, const QString &commandId, const CommandSpec &spec,
                           std::chrono::milliseconds timeout);
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
    friend class HubPrivate;
    friend class BotSession;
    std::unique_ptr<HubPrivate> d;
};

} // namespace opconsole
