#pragma once

#include "botinfo.h"
#include "commandoutcome.h"
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
class ServerCredentials;
} // namespace grpc

namespace opconsole::security {
class AdmissionStore;
class BotTokens;
} // namespace opconsole::security

namespace opconsole {

class CommandRegistry;
class HubPrivate;

// Who may connect as which bot, and who decides (docs/security.md).
struct BotSecurity
{
    // Bearer tokens bots may present (metadata "authorization: Bearer <token>"); null: none.
    std::shared_ptr<const security::BotTokens> tokens;
    // Client certificates name bots (a client CA verifies them): a Hello's id must be the
    // certificate's common name or one of its DNS names.
    bool certificates = false;
    // Admission decisions (accept, reject, revoke), persisted there; null: in memory only.
    security::AdmissionStore *admission = nullptr;
    // A bot whose identity no admin accepted is held "awaiting approval" (else admitted).
    bool approveNew = false;
    int maxStreamsPerCredential = 1000; // open streams of one certificate or token
    int maxHeld = 10'000;               // bots awaiting approval at once
    bool requiresIdentity() const { return certificates || tokens; }
};

struct HubOptions
{
    QString listenAddress = QStringLiteral("127.0.0.1:50051"); // port 0 picks a free port
    // The Operator API's own listener ("host:port" or "unix:/path", made 0600): bots never
    // reach it through theirs. Built only when a service is added (addServerExtension).
    QString operatorListenAddress = QStringLiteral("127.0.0.1:0");
    // TLS of each listener (security::serverCredentials); null: plaintext.
    std::shared_ptr<grpc::ServerCredentials> botCredentials;
    std::shared_ptr<grpc::ServerCredentials> operatorCredentials;
    BotSecurity security;
    std::chrono::milliseconds heartbeatInterval{2000}; // told to bots in Welcome
    int missedHeartbeats = 3;                          // silent this many intervals: disconnected
    int maxQueuedPerBot = 4096;                    // outgoing messages waiting for one bot's stream
    qint64 maxQueuedBytesPerBot = 4 * 1024 * 1024; // and their bytes
    int maxMessageBytes = 64 * 1024;               // larger messages from a bot close its stream
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
    quint64 unauthenticated = 0;   // streams with no credential, or an unknown token
    quint64 permissionDenied = 0;  // Hellos for an id the credential does not cover, rejected
                                   // bots, impostors of a live session
    quint64 credentialLimited = 0; // streams over a credential's limit
    quint64 held = 0;              // Hellos held for approval
    // Silent bots left connected for now in a mass silence (HubPrivate::livenessLoop): so
    // many at once that the hub (short of CPU) or its network is the likelier cause.
    quint64 silenceHeld = 0;
};

// How much the hub holds right now (for metrics): bots and the outgoing queues.
struct HubGauges
{
    int connected = 0;             // bots with a live stream
    int handshaking = 0;           // streams that have not said Hello yet
    int held = 0;                  // bots awaiting approval
    int known = 0;                 // bots seen this run, connected or not
    quint64 queuedMessages = 0;    // waiting in the live bots' outgoing queues, all together
    quint64 queuedBytes = 0;       // and their bytes
    quint64 maxQueuedMessages = 0; // in the longest one bot's queue
};

// An admin's decision on a bot (Hub::decideBot).
enum class AdmissionAction : quint8
{
    Accept, // a held bot goes live (its credential is remembered); a rejected one is let in again
    Reject, // refused from now on; a held or live session ends
    Revoke, // the same for an accepted bot: disconnected at once
};

struct DecisionResult
{
    enum class Error : quint8
    {
        None,
        NotFound,          // nothing known of the bot to accept
        StoreFailed,       // the decision could not be written: not taken
        CredentialChanged, // not the credential the caller expected: not taken
    };
    Error error = Error::None;
    QString message;
    std::optional<BotInfo> bot; // the bot afterwards, when known
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

    // A gRPC service for the operator listener (the Operator API); before start().
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
    // The operator listener's address as bound ("unix:/path" for a socket); empty without one.
    QString operatorAddress() const;
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

    // Admission (docs/security.md): recorded (and persisted) before it takes effect.
    // With expectedCredential, only if the bot's held (or live, or last) credential is that one:
    // the admin decides on what they saw, not on a session that took its place meanwhile.
    DecisionResult decideBot(const QString &botId, AdmissionAction action, const QString &by,
                             const QString &reason, const QString &expectedCredential = {});

    bool isConnected(const QString &botId) const;
    // Its stream is open and held until an admin decides (no command reaches it).
    bool isAwaitingApproval(const QString &botId) const;
    // Ends the bot's live stream if it is still `session` (never a newer one), as a replaced
    // stream ends: its commands fail as disconnected with `reason`. In a cluster, for a bot
    // that connected to another hub since (its stream here is stale). False: not that session.
    bool closeSession(const QString &botId, quint64 session, const QString &reason);
    std::optional<BotInfo> bot(const QString &botId) const;
    QList<BotInfo> bots() const; // every bot seen this run, by id
    QStringList connectedBotIds() const;
    HubCounters counters() const;
    // One pass over the live sessions, each locked briefly (none under the hub's lock).
    HubGauges gauges() const;

signals:
    void botConnected(const opconsole::BotInfo &info);
    void botDisconnected(const opconsole::BotInfo &info); // info.disconnectReason says why
    void botUpdated(const opconsole::BotInfo &info);      // state or status changed
    // A bot sent something that was ignored or closed its stream; for logs.
    void protocolViolation(const QString &botId, const QString &what);
    // A stream refused for its credential (unauthenticated, not covering the id, an impostor,
    // rejected, over its limit); for logs, within a budget (the rest are counted only).
    void botRefused(const QString &botId, const QString &credential, const QString &why);
    // Acks of a bot for commands this hub does not know (one another hub of a cluster sent,
    // or from before a restart), live or resent in its Hello; in the reading thread. A
    // cluster hands them to the hub that knows the command (cluster/).
    void unknownAcks(const QString &botId, const QStringList &commandIds,
                     const QList<opconsole::CommandAckData> &acks);
    // An admission decision was recorded and applied (decideBot); in the deciding thread,
    // under the decision lock (a receiver must not decide in turn). A cluster shares
    // rejections and revocations with every hub (cluster/).
    void botDecided(const QString &botId, opconsole::AdmissionAction action, const QString &by,
                    const QString &reason);

private:
    QList<BotInfo> stopLocked(const QString &reason); // stop()'s steps; the bots that went
    friend class HubPrivate;
    std::unique_ptr<HubPrivate> d;
};

} // namespace opconsole
