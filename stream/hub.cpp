#include "hub.h"

#include "admission.h"
#include "botsession.h"
#include "commandregistry.h"
#include "opconsole/v1/botlink.grpc.pb.h"
#include "protoconvert.h"
#include "tlscredentials.h"
#include "tokens.h"
#include "wirecheck.h"

#include <QDateTime>
#include <QFile>
#include <QPointer>

#include <grpcpp/ext/health_check_service_server_builder_option.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/impl/server_builder_plugin.h>
#include <grpcpp/impl/server_initializer.h>
#include <grpcpp/resource_quota.h>

#include <sys/stat.h>

#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace opconsole {

using namespace std::chrono;
using convert::fromStd;
using convert::toStd;

namespace {

qint64 nowMs()
{
    return QDateTime::currentMSecsSinceEpoch();
}

qint64 steadyNs()
{
    return duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count();
}

// How long gRPC may take to finish calls after every stream and API call was told to end.
constexpr auto ShutdownGrace = 500ms;

// Threads of the operator listener's synchronous services (server reflection): one polls, the
// others serve an open reflection stream each.
constexpr int ReflectionThreads = 8;

// Where a client on this machine reaches a listener: its host (loopback for a wildcard) and the
// port it was bound to.
QString reachableAddress(const QString &listen, int port)
{
    QString host = listen.section(QLatin1Char(':'), 0, -2);
    if (host.isEmpty() || host == QLatin1String("0.0.0.0") || host == QLatin1String("[::]"))
        host = QStringLiteral("127.0.0.1");
    return QStringLiteral("%1:%2").arg(host).arg(port);
}

// Copies the names of the services a server ended up with (its own, and those gRPC adds) when
// it is built, so the health service can say SERVING for each by name.
class ServiceNames final : public grpc::ServerBuilderPlugin
{
public:
    explicit ServiceNames(std::vector<std::string> *names) : m_names(names) {}
    std::string name() override { return "opconsole.service_names"; }
    void InitServer(grpc::ServerInitializer *) override {}
    void Finish(grpc::ServerInitializer *initializer) override
    {
        *m_names = *initializer->GetServiceList();
    }
    void ChangeArguments(const std::string &, void *) override {}

private:
    std::vector<std::string> *m_names;
};

// What a listener serves besides its own services (docs/security.md, docs/operations.md):
// server reflection only where `reflection` (the operator listener, for grpcurl, grpcui, Kreya,
// Postman); and the names of its services, recorded into `names`. Loading libgrpc++_reflection
// registers its plugin for every server of the process (a static initializer), so each
// listener removes it and adds back one of its own where wanted.
class ListenerExtras final : public grpc::ServerBuilderOption
{
public:
    ListenerExtras(bool reflection, std::vector<std::string> *names)
        : m_reflection(reflection), m_names(names)
    {}
    void UpdateArguments(grpc::ChannelArguments *) override {}
    void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>> *plugins) override
    {
        std::erase_if(*plugins, [](const std::unique_ptr<grpc::ServerBuilderPlugin> &plugin) {
            return dynamic_cast<grpc::reflection::ProtoServerReflectionPlugin *>(plugin.get());
        });
        if (m_reflection)
            plugins->push_back(std::make_unique<grpc::reflection::ProtoServerReflectionPlugin>());
        plugins->push_back(std::make_unique<ServiceNames>(m_names));
    }

private:
    bool m_reflection;
    std::vector<std::string> *m_names;
};

// The standard health service (grpc.health.v1.Health) on the operator listener: "" (the server) is
// SERVING from the start, and so is each of the listener's own services by name (not gRPC's
// own, grpc.*). stopLocked() turns every name NOT_SERVING before anything else.
void enableHealthChecks()
{
    static std::once_flag once; // a process-wide switch of gRPC's, and not thread-safe
    std::call_once(once, [] { grpc::EnableDefaultHealthCheckService(true); });
}

void markServing(grpc::Server &server, const std::vector<std::string> &services)
{
    grpc::HealthCheckServiceInterface *health = server.GetHealthCheckService();
    if (!health)
        return;
    for (const std::string &service : services) {
        if (!service.starts_with("grpc."))
            health->SetServingStatus(service, true);
    }
}

void markNotServing(grpc::Server *server)
{
    if (grpc::HealthCheckServiceInterface *health =
            server ? server->GetHealthCheckService() : nullptr)
        health->Shutdown(); // every name NOT_SERVING, and it stays so until the server is gone
}

} // namespace

// The session table: which session is current for each bot, which streams still wait for
// their Hello, and every bot seen this run. It owns the replacement rules (sessionHello).
class HubPrivate final : public SessionHost
{
public:
    HubPrivate(Hub *q, CommandRegistry &registry, HubOptions options)
        : q(q), registry(registry), options(std::move(options))
    {
        if (!this->options.security.admission) {
            QString unused;
            ownAdmission = security::AdmissionStore::open(QString(), &unused);
            this->options.security.admission = ownAdmission.get();
        }
        admission = this->options.security.admission;
    }

    // SessionHost
    const HubOptions &sessionOptions() const override { return options; }
    void sessionHello(const std::shared_ptr<BotSession> &session, const v1::Hello &hello) override;
    QString sessionMessage(BotSession &session, const QString &botId,
                           const v1::BotMessage &message) override;
    void sessionEnded(BotSession &session, const QString &reason) override;
    bool sessionViolation(const QString &botId, const QString &what) override;
    void sessionRateLimited() override { ++counters.rateLimited; }
    void sessionStreamError() override { ++counters.streamErrors; }
    void forgetOldBotsLocked();
    int forgetAgainAt = 0; // under mutex

    // What the stream's caller proved (certificate, token); not OK: refuse the stream.
    grpc::Status identify(grpc::CallbackServerContext &context, BotCredential *credential);
    void accept(const std::shared_ptr<BotSession> &session, grpc::Status refuse);
    void refused(const QString &botId, const QString &credential, const QString &why);
    void livenessLoop();
    std::shared_ptr<BotSession> current(const QString &botId) const; // the live session

    Hub *q;
    CommandRegistry &registry;
    HubOptions options;
    std::vector<std::function<void(grpc::ServerBuilder &)>> extensions;
    struct StopStep
    {
        Hub::StopPhase phase;
        QPointer<QObject> context;
        std::function<void(const QString &)> run;
    };
    std::vector<StopStep> stopSteps;
    std::unique_ptr<v1::BotLink::CallbackService> service;
    std::unique_ptr<grpc::Server> server;
    std::unique_ptr<grpc::Server> operatorServer;
    int port = 0;
    int operatorPort = 0;
    std::unique_ptr<security::AdmissionStore> ownAdmission;
    security::AdmissionStore *admission = nullptr;
    std::mutex credentialMutex;
    std::unordered_map<QString, std::shared_ptr<std::atomic<int>>> streamsByCredential;
    std::atomic<bool> running{false};
    std::atomic<bool> stopping{false};
    std::atomic<quint64> nextSession{1};

    // Taken around a change of the table and the signal that tells of it, so receivers see a
    // bot's connected/updated/disconnected events in the order they happened. Taken before
    // `mutex`; recursive, as a receiver connected directly may close another session.
    std::recursive_mutex eventOrder;
    struct Bucket
    {
        double tokens = 0;
        steady_clock::time_point refilled;
    };
    std::mutex violationMutex;
    std::unordered_map<QString, Bucket> violationBudget; // by bot id; "" before Hello
    std::mutex refusalMutex;
    Bucket refusalBudget{20,
                         steady_clock::now()}; // refusals reported per second (twice in a burst)
    std::mutex lifecycle;                      // start() and stop() one at a time, each to its end
    std::mutex decisionMutex;                  // decideBot, one at a time; taken before eventOrder
    // The thread inside start() or stop(): a call from it again (a stop step, a continuation
    // or a receiver that runs inline) returns at once instead of locking itself out.
    std::atomic<std::thread::id> lifecycleOwner{};

    mutable std::mutex mutex; // guards everything below; taken before a session's mutex
    std::unordered_map<QString, std::shared_ptr<BotSession>> live; // bot id -> current session
    std::unordered_map<quint64, std::shared_ptr<BotSession>> handshaking; // no Hello yet
    struct HeldBot
    {
        std::shared_ptr<BotSession> session;
        v1::Hello hello; // said again (sessionHello) when an admin accepts the bot
    };
    std::unordered_map<QString, HeldBot> held; // awaiting approval, by bot id
    QMap<QString, BotInfo> bots;

    // Counted without the lock: the ack and send paths take no hub-wide lock for them.
    struct
    {
        std::atomic<quint64> streamsAccepted{0}, streamsRejected{0}, sessionsReplaced{0},
            heartbeatTimeouts{0}, protocolViolations{0}, streamErrors{0}, queueFull{0},
            messagesIn{0}, messagesOut{0}, helloTimeouts{0}, rateLimited{0}, notPendingSkipped{0},
            violationsUnreported{0}, unauthenticated{0}, permissionDenied{0}, credentialLimited{0},
            held{0}, silenceHeld{0};
    } counters;

    std::mutex livenessMutex;
    std::condition_variable livenessWake;
    std::thread liveness;
};

class BotLinkService final : public v1::BotLink::CallbackService
{
public:
    explicit BotLinkService(HubPrivate *hub) : m_hub(hub) {}

    grpc::ServerBidiReactor<v1::BotMessage, v1::HubMessage> *
    Connect(grpc::CallbackServerContext *context) override
    {
        BotCredential credential;
        grpc::Status refuse = m_hub->identify(*context, &credential);
        auto session = std::make_shared<BotSession>(m_hub, m_hub->nextSession.fetch_add(1),
                                                    std::move(credential));
        m_hub->accept(session, std::move(refuse));
        return session.get();
    }

private:
    HubPrivate *m_hub;
};

grpc::Status HubPrivate::identify(grpc::CallbackServerContext &context, BotCredential *credential)
{
    const BotSecurity &security = options.security;
    if (!security.requiresIdentity())
        return grpc::Status::OK; // "none": any id (a loopback or --insecure hub)
    QStringList keys;
    if (security.certificates) {
        if (const auto auth = context.auth_context()) {
            const security::PeerCertificate peer = security::peerCertificate(*auth);
            if (peer.present) {
                credential->hasCertificate = true;
                credential->certificateNames = peer.names;
                keys << QStringLiteral("cert:") + peer.fingerprint.left(16);
            }
        }
    }
    if (security.tokens) {
        const auto &metadata = context.client_metadata();
        if (const auto it = metadata.find("authorization"); it != metadata.end()) {
            const QByteArray token =
                security::bearerToken(std::string_view(it->second.data(), it->second.size()));
            const security::BotTokenEntry *entry =
                token.isEmpty() ? nullptr : security.tokens->find(token);
            if (!entry) {
                ++counters.unauthenticated;
                refused(QString(), QString(), QStringLiteral("unknown or malformed bot token"));
                return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown bot token");
            }
            credential->hasToken = true;
            credential->token = *entry;
            keys << QStringLiteral("token:") + entry->name;
        }
    }
    if (keys.isEmpty()) {
        ++counters.unauthenticated;
        const char *needs = security.certificates && security.tokens
                                ? "this hub needs a client certificate or a bot token"
                            : security.certificates ? "this hub needs a client certificate"
                                                    : "this hub needs a bot token";
        refused(QString(), QString(), QString::fromLatin1(needs));
        return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, needs);
    }
    credential->key = keys.join(QLatin1Char('+'));
    QString over;
    {
        std::lock_guard lock(credentialMutex);
        for (const QString &part : std::as_const(keys)) {
            auto &slot = streamsByCredential[part];
            if (!slot)
                slot = std::make_shared<std::atomic<int>>(0);
            credential->streams.push_back(slot); // the session's destructor gives it back
            if (slot->fetch_add(1) >= security.maxStreamsPerCredential && over.isEmpty())
                over = part;
        }
    }
    if (!over.isEmpty()) {
        ++counters.credentialLimited;
        const QString why = QStringLiteral("credential %1 has %2 streams open already")
                                .arg(over)
                                .arg(security.maxStreamsPerCredential);
        refused(QString(), credential->key, why);
        return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, toStd(why));
    }
    return grpc::Status::OK;
}

void HubPrivate::refused(const QString &botId, const QString &credential, const QString &why)
{
    bool report;
    {
        std::lock_guard lock(refusalMutex);
        report = BotSession::allowed(refusalBudget.tokens, refusalBudget.refilled, 20);
    }
    if (report)
        emit q->botRefused(botId, credential, why);
    else
        ++counters.violationsUnreported;
}

void HubPrivate::accept(const std::shared_ptr<BotSession> &session, grpc::Status refuse)
{
    if (refuse.ok()) { // else refused for its credential (identify)
        std::lock_guard lock(mutex);
        if (stopping)
            refuse = grpc::Status(grpc::StatusCode::UNAVAILABLE, "hub shutting down");
        else if (handshaking.size() >= size_t(options.maxHandshaking))
            refuse = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                  "too many streams waiting for Hello");
        else
            handshaking.emplace(session->id(), session);
    }
    session->begin(session);
    if (!refuse.ok()) {
        ++counters.streamsRejected;
        session->close(fromStd(refuse.error_message()), refuse);
    }
}

void HubPrivate::sessionHello(const std::shared_ptr<BotSession> &session, const v1::Hello &hello)
{
    const QString botId = fromStd(hello.bot_id());
    const BotCredential &credential = session->credential();
    std::unique_lock order(eventOrder);
    std::shared_ptr<BotSession> replaced, heldBefore, heldStale;
    bool replacedHere = false;
    bool heldNow = false;
    BotInfo info;
    grpc::Status refusal;
    {
        std::lock_guard lock(mutex);
        // Read under the table's lock (the store's lookups never wait for its file): decideBot
        // writes a decision before it looks at the table, so a Hello either comes before that
        // look (and is acted on) or reads the decision here.
        const security::AdmissionRecord decision = admission->find(botId);
        handshaking.erase(session->id());
        const auto current = live.find(botId);
        if (stopping) {
            refusal = grpc::Status(grpc::StatusCode::UNAVAILABLE, "hub shutting down");
        } else if (!credential.covers(botId)) {
            ++counters.permissionDenied;
            refusal = grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                                   toStd(QStringLiteral("credential %1 does not cover bot id %2")
                                             .arg(credential.key, botId)));
        } else if (decision.decision == security::AdmissionDecision::Rejected) {
            ++counters.permissionDenied;
            refusal = grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                                   toStd(QStringLiteral("bot %1 was rejected by %2%3")
                                             .arg(botId, decision.by,
                                                  decision.reason.isEmpty()
                                                      ? QString()
                                                      : QStringLiteral(": ") + decision.reason)));
        } else if (current != live.end() && current->second != session &&
                   current->second->credential().key != credential.key) {
            // Never replaced by another credential: an impostor cannot kick the bot off.
            ++counters.permissionDenied;
            refusal = grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                                   toStd(QStringLiteral("bot %1 is connected with another "
                                                        "credential")
                                             .arg(botId)));
        } else if (live.size() >= size_t(options.maxLiveSessions) && current == live.end()) {
            refusal = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                   "the hub holds its maximum of connected bots");
        } else if ((options.security.approveNew ||
                    decision.decision == security::AdmissionDecision::Accepted) &&
                   !(decision.decision == security::AdmissionDecision::Accepted &&
                     decision.credential == credential.key)) {
            // Awaiting approval: a new identity on an approving hub, or another credential
            // than the one an admin accepted.
            const auto before = held.find(botId);
            if (before != held.end() && before->second.session != session &&
                before->second.session->credential().key != credential.key) {
                // As for a live session: another credential never displaces a held one (an
                // admin would then approve what they did not see).
                ++counters.permissionDenied;
                refusal = grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                                       toStd(QStringLiteral("bot %1 awaits approval with another "
                                                            "credential")
                                                 .arg(botId)));
            } else if (before == held.end() && held.size() >= size_t(options.security.maxHeld)) {
                refusal = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                       "too many bots awaiting approval");
            } else {
                v1::HubMessage message;
                message.mutable_held()->set_reason(
                    decision.decision == security::AdmissionDecision::Accepted
                        ? "connected with another credential than the accepted one: "
                          "awaiting approval"
                        : "awaiting approval by an admin");
                if (!session->hold(botId, std::move(message)))
                    return; // cancelled meanwhile
                HeldBot &slot = held[botId];
                heldBefore = std::exchange(slot.session, session);
                slot.hello = hello;
                BotInfo &bot = bots[botId];
                bot.botId = botId;
                bot.botVersion = fromStd(hello.bot_version());
                bot.labels.clear();
                for (const auto &[key, value] : hello.labels())
                    bot.labels.insert(fromStd(key), fromStd(value));
                bot.lastSeenMs = nowMs();
                if (!bot.connected) {
                    bot.admission = BotAdmission::Awaiting;
                    bot.credential = credential.key;
                    // Its stream is open (though not live) until sessionEnded says otherwise.
                    bot.disconnectedAtMs = 0;
                    bot.disconnectReason.clear();
                }
                ++counters.held;
                ++counters.messagesIn;
                info = bot;
                heldNow = true;
            }
        } else {
            // Welcome is queued in the same step that publishes the session: it is the first
            // message on the stream, and once the bot has it, the hub can reach the bot.
            v1::HubMessage welcome;
            welcome.mutable_welcome()->set_session_id(std::to_string(session->id()));
            *welcome.mutable_welcome()->mutable_heartbeat_interval() =
                wire::durationFromMs(options.heartbeatInterval.count());
            welcome.mutable_welcome()->set_protocol_version(wire::limits::ProtocolVersion);
            if (!session->goLive(botId, std::move(welcome)))
                return; // the stream was cancelled meanwhile: never published
            // Live now: no session of this id stays held (another one would block every later
            // decision on the bot, or be replayed over this one by an accept).
            if (const auto h = held.find(botId); h != held.end()) {
                if (h->second.session != session)
                    heldStale = h->second.session;
                held.erase(h);
            }
            auto &slot = live[botId];
            replaced = std::move(slot);
            slot = session;
            // The old session leaves Live here, under the table's lock; whoever takes it out
            // of Live fails its commands (here, or its own close() if that came first).
            replacedHere = replaced && replaced->detach();
            BotInfo &bot = bots[botId];
            bot.botId = botId;
            bot.session = session->id();
            bot.connected = true;
            bot.admission = BotAdmission::Accepted;
            bot.credential = credential.key;
            bot.botVersion = fromStd(hello.bot_version());
            bot.labels.clear();
            for (const auto &[key, value] : hello.labels())
                bot.labels.insert(fromStd(key), fromStd(value));
            bot.connectedAtMs = bot.lastSeenMs = nowMs();
            bot.disconnectedAtMs = 0;
            bot.disconnectReason.clear();
            ++bot.connects;
            ++counters.streamsAccepted;
            ++counters.messagesIn;
            if (replaced)
                ++counters.sessionsReplaced;
            info = bot;
            if (bots.size() > qsizetype(std::max(options.maxKnownBots, forgetAgainAt)))
                forgetOldBotsLocked();
        }
    }
    if (!refusal.ok()) {
        ++counters.streamsRejected;
        if (refusal.error_code() == grpc::StatusCode::PERMISSION_DENIED)
            refused(botId, credential.key, fromStd(refusal.error_message()));
        session->reject(fromStd(refusal.error_message()), refusal);
        return;
    }
    if (heldNow) {
        if (heldBefore && heldBefore != session)
            heldBefore->close(QStringLiteral("replaced by a newer connection awaiting approval"),
                              grpc::Status(grpc::StatusCode::ABORTED,
                                           "replaced by a newer connection awaiting approval"));
        emit q->botUpdated(info);
        return;
    }
    emit q->botConnected(info);
    order.unlock(); // failing commands runs their continuations: not under the event lock
    if (heldStale) {
        if (heldStale->credential().key != credential.key)
            heldStale->reject(
                QStringLiteral("bot %1 is connected with another credential").arg(botId),
                grpc::Status(
                    grpc::StatusCode::PERMISSION_DENIED,
                    toStd(
                        QStringLiteral("bot %1 is connected with another credential").arg(botId))));
        else
            heldStale->close(QStringLiteral("replaced by a newer connection"),
                             grpc::Status(grpc::StatusCode::ABORTED,
                                          "replaced by a newer connection of the same bot"));
    }
    // The bot's recent acks, again (docs/protocol.md rule 13), before the replaced stream's
    // commands fail: an ack lost with that stream resolves its command as it should have; one
    // for a command the hub lost track of (disconnected, unknown after a restart) becomes its
    // late ack. Already known outcomes are ignored quietly.
    QStringList unknownIds;
    QList<CommandAckData> unknown;
    for (const v1::CommandAck &ack : hello.recent_acks()) {
        const wire::AckCheck checked = wire::checkAck(ack);
        if (!checked.problem.empty())
            continue; // checkHello refused bad ids; kept safe
        const QString id = fromStd(ack.command_id());
        CommandAckData data = convert::toAckData(ack, checked);
        if (registry.applyResentAck(id, botId, data) == ResolveResult::Unknown) {
            unknownIds << id;
            unknown << std::move(data);
        }
    }
    if (!unknown.isEmpty())
        emit q->unknownAcks(botId, unknownIds, unknown);
    if (replacedHere) {
        // Only commands sent on the old stream fail; the new session's are untouched.
        registry.failBot(botId, QStringLiteral("connection replaced by a newer session"),
                         replaced->id());
        replaced->finishStream(grpc::Status(grpc::StatusCode::ABORTED,
                                            "replaced by a newer connection of the same bot"));
    }
}

void HubPrivate::forgetOldBotsLocked()
{
    // The bots gone longest are forgotten, down to 90% of the cap: amortised over the next
    // tenth of the cap's connects.
    std::vector<std::pair<qint64, QString>> gone;
    for (auto it = bots.cbegin(); it != bots.cend(); ++it) {
        if (!it->connected && !held.count(it.key())) // a held bot awaits a decision: kept
            gone.emplace_back(it->disconnectedAtMs, it.key());
    }
    std::sort(gone.begin(), gone.end());
    const size_t target = size_t(options.maxKnownBots) * 9 / 10;
    for (const auto &[at, id] : gone) {
        if (size_t(bots.size()) <= target)
            break;
        bots.remove(id);
        std::lock_guard lock(violationMutex);
        violationBudget.erase(id);
    }
    // When too many are connected to get down to the target, the next pass waits until a
    // tenth of the cap more bots are known: never a full pass per Hello.
    forgetAgainAt = int(bots.size()) + std::max(1, options.maxKnownBots / 10);
}

void HubPrivate::sessionEnded(BotSession &session, const QString &reason)
{
    std::unique_lock order(eventOrder);
    BotInfo info;
    bool wasCurrent = false;
    bool wasHeld = false;
    QString botId;
    {
        std::lock_guard lock(mutex);
        handshaking.erase(session.id());
        botId = session.botId();
        if (botId.isEmpty())
            return; // never said Hello: nothing was published
        if (const auto h = held.find(botId);
            h != held.end() && h->second.session.get() == &session) {
            held.erase(h);
            BotInfo &bot = bots[botId];
            bot.disconnectedAtMs = nowMs();
            bot.disconnectReason = reason;
            info = bot;
            wasHeld = true;
        }
        const auto it = live.find(botId);
        if (it != live.end() && it->second.get() == &session) {
            live.erase(it);
            BotInfo &bot = bots[botId];
            bot.connected = false;
            bot.disconnectedAtMs = nowMs();
            bot.disconnectReason = reason;
            info = bot;
            wasCurrent = true;
        }
    }
    if (wasCurrent)
        emit q->botDisconnected(info);
    if (wasHeld) {
        emit q->botUpdated(info); // no longer waiting; an admin may still decide on it
        return;                   // never live: no commands
    }
    order.unlock(); // failing commands runs their continuations: not under the event lock
    registry.failBot(botId, QStringLiteral("bot disconnected: %1").arg(reason), session.id());
}

QString HubPrivate::sessionMessage(BotSession &session, const QString &botId,
                                   const v1::BotMessage &message)
{
    switch (message.kind_case()) {
    case v1::BotMessage::kAck: {
        ++counters.messagesIn;
        const wire::AckCheck checked = wire::checkAck(message.ack());
        if (!checked.problem.empty())
            return fromStd(checked.problem);
        const QString id = fromStd(message.ack().command_id());
        CommandAckData ack = convert::toAckData(message.ack(), checked);
        switch (registry.resolveCommand(id, botId, ack)) {
        case ResolveResult::Unknown:
            // Not a violation: a late ack for a command forgotten after the late-ack window,
            // or from before a hub restart, is a healthy bot's. The registry counts it.
            emit q->unknownAcks(botId, {id}, {std::move(ack)});
            return fromStd(checked.fieldProblem);
        case ResolveResult::WrongBot:
            return QStringLiteral("ack for command '%1' of another bot").arg(id);
        default:
            return fromStd(checked.fieldProblem); // applied; empty unless a field was dropped
        }
    }
    case v1::BotMessage::kProgress:
        ++counters.messagesIn;
        if (const std::string problem = wire::checkProgress(message.progress()); !problem.empty())
            return fromStd(problem);
        registry.reportProgress(fromStd(message.progress().command_id()), botId,
                                int(message.progress().percent()),
                                fromStd(message.progress().message()));
        return {};
    case v1::BotMessage::kHeartbeat:
    case v1::BotMessage::kStatus: {
        const bool isStatus = message.kind_case() == v1::BotMessage::kStatus;
        if (isStatus) {
            if (const std::string problem = wire::checkStatus(message.status()); !problem.empty())
                return fromStd(problem);
        }
        const QString state = convert::botStateName(isStatus ? message.status().state()
                                                             : message.heartbeat().state());
        std::optional<BotInfo> changed;
        std::unique_lock order(eventOrder, std::defer_lock);
        {
            std::lock_guard lock(mutex);
            ++counters.messagesIn;
            const auto it = bots.find(botId);
            if (it == bots.end() || it->session != session.id())
                return {}; // a replaced stream still talking: ignore
            BotInfo &bot = *it;
            bot.lastSeenMs = nowMs();
            bool different = !state.isEmpty() && state != bot.state;
            if (!state.isEmpty())
                bot.state = state;
            if (isStatus) {
                QMap<QString, QString> fields;
                for (const auto &[key, value] : message.status().fields())
                    fields.insert(fromStd(key), fromStd(value));
                different = different || fields != bot.status;
                bot.status = std::move(fields);
            }
            if (different)
                changed = bot;
        }
        if (changed) {
            // In order with connects and disconnects: re-read under eventOrder, and tell only
            // if this session is still the bot's current one.
            order.lock();
            std::lock_guard lock(mutex);
            const auto it = bots.find(botId);
            if (it == bots.end() || it->session != session.id() || !it->connected)
                return {};
            changed = *it;
        }
        if (changed)
            emit q->botUpdated(*changed);
        return {};
    }
    case v1::BotMessage::kHello:
        ++counters.messagesIn;
        return QStringLiteral("second Hello on one stream ignored");
    case v1::BotMessage::KIND_NOT_SET:
        ++counters.messagesIn;
        return QStringLiteral("empty message ignored");
    }
    return {};
}

bool HubPrivate::sessionViolation(const QString &botId, const QString &what)
{
    if (botId.isEmpty())
        ++counters.streamsRejected; // before Hello: the stream is refused
    ++counters.protocolViolations;
    bool withinBudget;
    {
        // Per bot id (all anonymous clients share one), so reconnecting does not refill it.
        std::lock_guard lock(violationMutex);
        auto [it, fresh] = violationBudget.try_emplace(botId);
        if (fresh)
            it->second = {2 * options.maxViolationsPerSecond, steady_clock::now()};
        withinBudget = BotSession::allowed(it->second.tokens, it->second.refilled,
                                           options.maxViolationsPerSecond);
        if (violationBudget.size() > 2 * size_t(options.maxKnownBots)) {
            // Bounded: buckets that have refilled since are as good as absent.
            const auto now = steady_clock::now();
            const double full = 2 * options.maxViolationsPerSecond;
            std::erase_if(violationBudget, [&](const auto &entry) {
                const Bucket &b = entry.second;
                return b.tokens + duration<double>(now - b.refilled).count() *
                                      options.maxViolationsPerSecond >=
                       full;
            });
        }
    }
    if (withinBudget)
        emit q->protocolViolation(botId, what);
    else
        ++counters.violationsUnreported;
    return withinBudget;
}

void HubPrivate::livenessLoop()
{
    const auto interval = options.heartbeatInterval;
    const qint64 limitNs = duration_cast<nanoseconds>(interval * options.missedHeartbeats).count();
    const auto helloLimit = options.effectiveHelloTimeout();
    const auto period =
        std::clamp(duration_cast<milliseconds>(std::min(interval, helloLimit) / 4), 10ms, 500ms);
    const qint64 periodNs = duration_cast<nanoseconds>(period).count();
    constexpr qint64 StallNs = 2'000'000'000; // woken 2 s late: the hub was stalled
    constexpr size_t MassSilence = 64;
    qint64 lastPass = 0;
    qint64 graceUntil = 0; // after a stall: no bot is judged before this
    const QString silentReason =
        QStringLiteral("no heartbeat for %1 ms").arg(interval.count() * options.missedHeartbeats);
    const QString helloReason = QStringLiteral("no Hello within %1 ms")
                                    .arg(duration_cast<milliseconds>(helloLimit).count());
    while (!stopping) {
        {
            // Held only while waiting: closing sessions below emits signals, and stop()
            // takes this mutex to wake the loop.
            std::unique_lock wait(livenessMutex);
            livenessWake.wait_for(wait, period, [this] { return stopping.load(); });
        }
        if (stopping)
            break;
        std::vector<std::pair<qint64, std::shared_ptr<BotSession>>> silent; // last seen, session
        std::vector<std::shared_ptr<BotSession>> mute;
        const qint64 now = steadyNs();
        const auto helloDeadline = steady_clock::now() - helloLimit;
        // This loop woke far later than asked: the hub is short of CPU, and so were the
        // threads that read the bots' heartbeats. Their silence is the hub's own: not judged.
        // And for a whole limit after it: the threads that read heartbeats have a backlog to get
        // through first (a stall of 15 s closed 126 healthy bots of 3,000 in the passes after).
        if (lastPass != 0 && now - lastPass > periodNs + StallNs)
            graceUntil = now + limitNs;
        const bool hubStalled = now < graceUntil;
        lastPass = now;
        size_t liveCount = 0;
        size_t quiet = 0; // silent for over half the limit: the silence may be spreading
        {
            std::lock_guard lock(mutex);
            liveCount = live.size();
            for (const auto &[botId, session] : live) {
                if (hubStalled)
                    break;
                const qint64 seen = session->lastSeenNs();
                quiet += now - seen > limitNs / 2;
                if (now - seen > limitNs)
                    silent.push_back({seen, session});
            }
            for (const auto &[id, session] : handshaking) {
                if (session->startedAt() < helloDeadline)
                    mute.push_back(session);
            }
        }
        // A mass silence: a tenth of the fleet (and at least MassSilence bots) quiet at once is
        // likelier the hub (its reading threads short of CPU) or its network than the bots.
        // (Counted from half the limit: a silence that spreads over a few passes is one.)
        // Then only bots silent for twice the limit go, at most a hundredth of the fleet a
        // pass, the longest silent first: a hub that catches up loses none, a fleet that is
        // really gone is closed over a minute rather than at once.
        if (!silent.empty() && quiet >= MassSilence && quiet * 10 > liveCount) {
            // By when each was last seen as collected: the sessions' own clocks move meanwhile
            // (a comparator reading them would not be a strict weak order).
            std::sort(silent.begin(), silent.end(),
                      [](const auto &a, const auto &b) { return a.first < b.first; });
            const size_t cap = std::max<size_t>(10, liveCount / 100);
            size_t keep = 0;
            while (keep < silent.size() && keep < cap && now - silent[keep].first > 2 * limitNs)
                ++keep;
            counters.silenceHeld += silent.size() - keep;
            silent.resize(keep);
        }
        for (const auto &[seen, session] : silent)
            session->close(silentReason,
                           grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, toStd(silentReason)),
                           false, &counters.heartbeatTimeouts);
        for (const auto &session : mute)
            session->close(helloReason,
                           grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, toStd(helloReason)),
                           false, &counters.helloTimeouts);
    }
}

Hub::Hub(CommandRegistry &registry, HubOptions options, QObject *parent)
    : QObject(parent), d(std::make_unique<HubPrivate>(this, registry, std::move(options)))
{
    qRegisterMetaType<BotInfo>();
}

Hub::~Hub()
{
    stop();
}

void Hub::addServerExtension(std::function<void(grpc::ServerBuilder &)> extension)
{
    d->extensions.push_back(std::move(extension));
}

void Hub::addStopStep(StopPhase phase, QObject *context,
                      std::function<void(const QString &reason)> step)
{
    d->stopSteps.push_back({phase, context, std::move(step)});
}

namespace {
// Holds the hub's lifecycle mutex and marks the calling thread as its owner.
struct LifecycleGuard
{
    LifecycleGuard(std::mutex &mutex, std::atomic<std::thread::id> &owner)
        : lock(mutex), owner(owner)
    {
        owner = std::this_thread::get_id();
    }
    ~LifecycleGuard() { owner = std::thread::id(); }
    std::lock_guard<std::mutex> lock;
    std::atomic<std::thread::id> &owner;
};
} // namespace

bool Hub::start(QString *error)
{
    if (d->lifecycleOwner.load() == std::this_thread::get_id())
        return false; // called from inside start() or stop()
    LifecycleGuard lifecycle(d->lifecycle, d->lifecycleOwner);
    if (d->running)
        return true;
    d->stopping = false;
    // Both listeners are built, secured and started here, and shut down in stopLocked().
    d->service = std::make_unique<BotLinkService>(d.get());
    const auto credentialsOf = [](const std::shared_ptr<grpc::ServerCredentials> &c) {
        return c ? c : grpc::InsecureServerCredentials();
    };
    // Consoles and bots may ping to find a dead peer (RemoteBackend pings every 15 s on a
    // quiet Watch); more often than once a second is still refused as abuse.
    const auto allowPings = [](grpc::ServerBuilder &builder) {
        builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1000);
        builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    };
    enableHealthChecks();
    std::vector<std::string> botServices, operatorServices;
    grpc::ServerBuilder builder;
    builder.AddListeningPort(toStd(d->options.listenAddress),
                             credentialsOf(d->options.botCredentials), &d->port);
    builder.RegisterService(d->service.get());
    // Neither reflection nor health on the port bots use (docs/security.md): gRPC's health
    // service lets anyone hold Watch streams with no cap (about 18 KB each, no Hello, no
    // timeout), and this is the port that faces the fleet. Probes use the operator listener.
    builder.SetOption(std::make_unique<ListenerExtras>(false, &botServices));
    builder.SetOption(std::make_unique<grpc::HealthCheckServiceServerBuilderOption>(nullptr));
    // One hub per port: a second one started on it must fail, not share the bots.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.SetMaxReceiveMessageSize(d->options.maxMessageBytes);
    allowPings(builder);
    // A held bot sends nothing (no heartbeats until accepted): the hub pings an idle stream
    // every minute and drops it after 20 s without an answer, so a dead one never keeps its
    // place (or blocks its id) for gRPC's default two hours.
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60'000);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20'000);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    d->server = builder.BuildAndStart();
    if (!d->server || d->port == 0) {
        if (error)
            *error = QStringLiteral("cannot listen on %1").arg(d->options.listenAddress);
        d->server.reset();
        return false;
    }
    markServing(*d->server, botServices);
    if (!d->extensions.empty()) {
        const QString address = d->options.operatorListenAddress;
        const bool unixSocket = address.startsWith(QLatin1String("unix:"));
        grpc::ServerBuilder operators;
        operators.AddListeningPort(toStd(address), credentialsOf(d->options.operatorCredentials),
                                   unixSocket ? nullptr : &d->operatorPort);
        allowPings(operators);
        operators.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
        for (const auto &extension : d->extensions)
            extension(operators);
        operators.SetOption(std::make_unique<ListenerExtras>(true, &operatorServices));
        // Reflection is the listener's one synchronous service: each open stream holds a
        // thread, and anyone who reaches the listener may open one (no token). They share
        // ReflectionThreads threads on one queue; past that, RESOURCE_EXHAUSTED. The Operator
        // API and health are callback services and take none of these.
        grpc::ResourceQuota quota("opconsole operator listener");
        quota.SetMaxThreads(ReflectionThreads);
        operators.SetResourceQuota(quota);
        operators.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS, 1);
        // A socket is made 0600: only this user reaches the API through it. The mask covers
        // the moment between bind and chmod.
        const mode_t mask = unixSocket ? ::umask(0177) : 0;
        d->operatorServer = operators.BuildAndStart();
        if (unixSocket)
            ::umask(mask);
        bool ok = d->operatorServer && (unixSocket || d->operatorPort != 0);
        if (ok && unixSocket)
            ok = ::chmod(QFile::encodeName(address.mid(5)).constData(), 0600) == 0;
        if (!ok) {
            if (error)
                *error = QStringLiteral("cannot listen for operators on %1").arg(address);
            if (d->operatorServer)
                d->operatorServer->Shutdown();
            d->operatorServer.reset();
            d->server->Shutdown();
            d->server.reset();
            return false;
        }
        markServing(*d->operatorServer, operatorServices);
    }
    d->running = true;
    d->liveness = std::thread([this] { d->livenessLoop(); });
    return true;
}

bool Hub::isRunning() const
{
    return d->running && !d->stopping;
}

bool Hub::isStopping() const
{
    return d->running && d->stopping;
}

int Hub::port() const
{
    return d->port;
}

QString Hub::operatorAddress() const
{
    if (!d->operatorServer)
        return {};
    const QString address = d->options.operatorListenAddress;
    if (address.startsWith(QLatin1String("unix:")))
        return address;
    return reachableAddress(address, d->operatorPort);
}

QString Hub::address() const
{
    return reachableAddress(d->options.listenAddress, d->port);
}

const HubOptions &Hub::options() const
{
    return d->options;
}

void Hub::stop(const QString &reason)
{
    if (d->lifecycleOwner.load() == std::this_thread::get_id())
        return; // called from inside stop() (a step, a continuation, a receiver)
    QList<BotInfo> gone;
    {
        // A second caller (a destructor, another thread) waits here until the first is done.
        LifecycleGuard lifecycle(d->lifecycle, d->lifecycleOwner);
        if (!d->running || d->stopping.exchange(true))
            return;
        gone = stopLocked(reason);
    }
    std::lock_guard order(d->eventOrder);
    for (const BotInfo &info : gone)
        emit botDisconnected(info);
}

QList<BotInfo> Hub::stopLocked(const QString &reason)
{
    // 1. Stop accepting: new streams and Hellos are refused from here on (stopping), and
    // both listeners' health service answers NOT_SERVING (load balancers drain the hub).
    markNotServing(d->server.get());
    markNotServing(d->operatorServer.get());
    {
        std::lock_guard wake(d->livenessMutex);
        d->livenessWake.notify_all();
    }
    if (d->liveness.joinable())
        d->liveness.join();

    // 2. Every stream ends; the commands sent on them fail with the reason.
    std::vector<std::shared_ptr<BotSession>> sessions, waiting;
    QList<BotInfo> gone;
    {
        std::lock_guard lock(d->mutex);
        for (auto &[botId, session] : d->live) {
            if (session->detach())
                sessions.push_back(session);
            BotInfo &bot = d->bots[botId];
            bot.connected = false;
            bot.disconnectedAtMs = nowMs();
            bot.disconnectReason = reason;
            gone.append(bot);
        }
        d->live.clear();
        for (auto &[id, session] : d->handshaking)
            waiting.push_back(session);
        d->handshaking.clear();
        for (auto &[botId, h] : d->held)
            waiting.push_back(h.session);
        d->held.clear();
    }
    const grpc::Status unavailable(grpc::StatusCode::UNAVAILABLE, toStd(reason));
    for (const auto &session : sessions) {
        d->registry.failBot(session->botId(), reason, session->id());
        session->finishStream(unavailable);
    }
    for (const auto &session : waiting)
        session->close(reason, unavailable);

    // 3. Services fail what they hold (commands waiting for their bot); whatever is still
    // pending fails with the reason; then services end their calls (Watch) with every outcome.
    auto runSteps = [&](StopPhase phase) {
        for (const auto &step : d->stopSteps) {
            if (step.phase == phase && step.context)
                step.run(reason);
        }
    };
    runSteps(StopPhase::FailCommands);
    d->registry.failAll(CommandState::Disconnected, reason);
    runSteps(StopPhase::EndCalls);

    // 4. The servers: every call was told to end, so this takes a grace period at most.
    if (d->operatorServer) {
        d->operatorServer->Shutdown(system_clock::now() + ShutdownGrace);
        d->operatorServer->Wait();
        d->operatorServer.reset();
    }
    d->server->Shutdown(system_clock::now() + ShutdownGrace);
    d->server->Wait();
    d->server.reset();
    d->running = false;
    return gone;
}

std::shared_ptr<BotSession> HubPrivate::current(const QString &botId) const
{
    std::lock_guard lock(mutex);
    const auto it = live.find(botId);
    return it == live.end() ? nullptr : it->second;
}

SendResult Hub::sendCommand(const QString &botId, const QString &commandId, const CommandSpec &spec,
                            milliseconds timeout, std::optional<milliseconds> responseTimeout)
{
    v1::HubMessage message;
    convert::fillCommand(*message.mutable_command(), commandId, spec,
                         responseTimeout.value_or(timeout));
    SendResult result = SendResult::NotConnected;
    // A session found closing was just replaced or ended: look again, so a reconnect racing
    // this send takes the command on the new session instead of failing it.
    std::shared_ptr<BotSession> tried;
    for (int attempt = 0; attempt < 3; ++attempt) {
        const std::shared_ptr<BotSession> session = d->current(botId);
        if (!session || session == tried)
            break;
        tried = session;
        result = session->sendCommand(d->registry, commandId, message, responseTimeout);
        if (result != SendResult::NotConnected)
            break;
    }
    switch (result) {
    case SendResult::Queued:
        ++d->counters.messagesOut;
        break;
    case SendResult::QueueFull:
        ++d->counters.queueFull;
        break;
    case SendResult::NotPending:
        ++d->counters.notPendingSkipped;
        break;
    case SendResult::NotConnected:
        break;
    }
    return result;
}

SendResult Hub::sendCancel(const QString &botId, const QString &commandId, const QString &reason)
{
    const std::shared_ptr<BotSession> session = d->current(botId);
    if (!session)
        return SendResult::NotConnected;
    v1::HubMessage message;
    message.mutable_cancel()->set_command_id(toStd(commandId));
    message.mutable_cancel()->set_reason(wire::cutText(toStd(reason), wire::limits::TextBytes));
    return session->send(std::move(message));
}

DecisionResult Hub::decideBot(const QString &botId, AdmissionAction action, const QString &by,
                              const QString &reason, const QString &expectedCredential)
{
    using security::AdmissionDecision;
    // One decision at a time, from its write to its effects: an accept and a reject racing
    // each other end as the later one says, in the store and in the table alike. (No receiver
    // of the hub's signals may call this: it runs inside eventOrder's users.)
    std::lock_guard deciding(d->decisionMutex);
    DecisionResult result;
    // What the admin decides on: the held (or live, or last seen) session's credential.
    auto look = [this, &botId](std::shared_ptr<BotSession> *heldSession, v1::Hello *hello,
                               std::shared_ptr<BotSession> *liveSession, QString *credential) {
        bool known = false;
        std::lock_guard lock(d->mutex);
        if (const auto h = d->held.find(botId); h != d->held.end()) {
            *heldSession = h->second.session;
            if (hello)
                *hello = h->second.hello;
        }
        if (const auto l = d->live.find(botId); l != d->live.end())
            *liveSession = l->second;
        if (const auto b = d->bots.constFind(botId); b != d->bots.cend()) {
            known = true;
            *credential = b->credential;
        }
        if (*heldSession)
            *credential = (*heldSession)->credential().key;
        else if (*liveSession)
            *credential = (*liveSession)->credential().key;
        return known;
    };
    std::shared_ptr<BotSession> heldSession, liveSession;
    QString credential;
    const bool known = look(&heldSession, nullptr, &liveSession, &credential);
    if (!expectedCredential.isEmpty() && credential != expectedCredential) {
        result.error = DecisionResult::Error::CredentialChanged;
        result.message =
            QStringLiteral("bot %1 now connects with %2, not %3: look again")
                .arg(botId, credential.isEmpty() ? QStringLiteral("nothing") : credential,
                     expectedCredential);
        return result;
    }
    const security::AdmissionRecord before = d->admission->find(botId);
    security::AdmissionRecord record;
    record.by = by;
    record.reason = reason;
    record.atMs = nowMs();
    record.credential = credential;
    if (action == AdmissionAction::Accept) {
        if (before.decision == AdmissionDecision::Rejected && !heldSession && !liveSession) {
            record.decision = AdmissionDecision::None; // let in again: held or admitted next time
            result.message = QStringLiteral("rejection of %1 lifted").arg(botId);
        } else if (!heldSession && !liveSession && (!known || credential.isEmpty())) {
            result.error = DecisionResult::Error::NotFound;
            result.message = QStringLiteral("bot %1 is not awaiting approval").arg(botId);
            return result;
        } else {
            record.decision = AdmissionDecision::Accepted;
            result.message = QStringLiteral("%1 accepted with %2").arg(botId, credential);
        }
    } else {
        record.decision = AdmissionDecision::Rejected;
        result.message = QStringLiteral("%1 %2").arg(botId, action == AdmissionAction::Revoke
                                                                ? QStringLiteral("revoked")
                                                                : QStringLiteral("rejected"));
    }
    // Written first, then applied to the sessions found afterwards: a Hello racing the
    // decision either published before this look (and is closed here) or reads it
    // (sessionHello reads decisions under the table's lock).
    QString why;
    if (!d->admission->decide(botId, record, &why)) {
        result.error = DecisionResult::Error::StoreFailed;
        result.message = QStringLiteral("the decision was not recorded: %1").arg(why);
        return result;
    }
    heldSession.reset();
    liveSession.reset();
    v1::Hello hello;
    QString now;
    look(&heldSession, &hello, &liveSession, &now);
    if (record.decision == AdmissionDecision::Accepted && heldSession &&
        heldSession->credential().key == record.credential) {
        // Said again, now accepted: the held session goes live as any Hello would.
        d->sessionHello(heldSession, hello);
    } else if (record.decision == AdmissionDecision::Rejected) {
        const QString told =
            QStringLiteral("%1 by %2%3")
                .arg(action == AdmissionAction::Revoke ? QStringLiteral("revoked")
                                                       : QStringLiteral("rejected"),
                     by, reason.isEmpty() ? QString() : QStringLiteral(": ") + reason);
        const grpc::Status denied(grpc::StatusCode::PERMISSION_DENIED, toStd(told));
        if (heldSession)
            heldSession->reject(told, denied);
        if (liveSession)
            liveSession->close(told, denied); // its commands fail as disconnected
    }
    std::optional<BotInfo> info;
    {
        std::unique_lock order(d->eventOrder);
        {
            std::lock_guard lock(d->mutex);
            if (const auto b = d->bots.find(botId); b != d->bots.end()) {
                if (record.decision == AdmissionDecision::Rejected)
                    b->admission = BotAdmission::Rejected;
                else if (record.decision == AdmissionDecision::None && !b->connected)
                    b->admission = d->options.security.approveNew ? BotAdmission::Awaiting
                                                                  : BotAdmission::Accepted;
                info = *b;
            }
        }
        if (info)
            emit botUpdated(*info);
    }
    emit botDecided(botId, action, by, reason);
    result.bot = info;
    return result;
}

bool Hub::closeSession(const QString &botId, quint64 session, const QString &reason)
{
    std::shared_ptr<BotSession> live;
    {
        std::lock_guard lock(d->mutex);
        const auto it = d->live.find(botId);
        if (it == d->live.end() || it->second->id() != session)
            return false;
        live = it->second;
    }
    return live->close(reason, grpc::Status(grpc::StatusCode::ABORTED, toStd(reason)));
}

bool Hub::isAwaitingApproval(const QString &botId) const
{
    std::lock_guard lock(d->mutex);
    return d->held.count(botId) > 0;
}

bool Hub::isConnected(const QString &botId) const
{
    std::lock_guard lock(d->mutex);
    return d->live.count(botId) > 0;
}

std::optional<BotInfo> Hub::bot(const QString &botId) const
{
    std::lock_guard lock(d->mutex);
    const auto it = d->bots.constFind(botId);
    if (it == d->bots.cend())
        return std::nullopt;
    return *it;
}

QList<BotInfo> Hub::bots() const
{
    std::lock_guard lock(d->mutex);
    return d->bots.values();
}

QStringList Hub::connectedBotIds() const
{
    std::lock_guard lock(d->mutex);
    QStringList ids;
    for (const auto &[botId, session] : d->live)
        ids.append(botId);
    ids.sort();
    return ids;
}

HubCounters Hub::counters() const
{
    const auto &c = d->counters;
    HubCounters out;
    out.streamsAccepted = c.streamsAccepted;
    out.streamsRejected = c.streamsRejected;
    out.sessionsReplaced = c.sessionsReplaced;
    out.heartbeatTimeouts = c.heartbeatTimeouts;
    out.protocolViolations = c.protocolViolations;
    out.streamErrors = c.streamErrors;
    out.queueFull = c.queueFull;
    out.messagesIn = c.messagesIn;
    out.messagesOut = c.messagesOut;
    out.helloTimeouts = c.helloTimeouts;
    out.rateLimited = c.rateLimited;
    out.notPendingSkipped = c.notPendingSkipped;
    out.violationsUnreported = c.violationsUnreported;
    out.unauthenticated = c.unauthenticated;
    out.permissionDenied = c.permissionDenied;
    out.credentialLimited = c.credentialLimited;
    out.held = c.held;
    out.silenceHeld = c.silenceHeld;
    return out;
}

HubGauges Hub::gauges() const
{
    HubGauges g;
    std::vector<std::shared_ptr<BotSession>> sessions;
    {
        std::lock_guard lock(d->mutex);
        g.connected = int(d->live.size());
        g.handshaking = int(d->handshaking.size());
        g.held = int(d->held.size());
        g.known = int(d->bots.size());
        sessions.reserve(d->live.size());
        for (const auto &[botId, session] : d->live)
            sessions.push_back(session);
    }
    for (const auto &session : sessions) {
        const auto [messages, bytes] = session->queued();
        g.queuedMessages += messages;
        g.queuedBytes += bytes;
        g.maxQueuedMessages = std::max<quint64>(g.maxQueuedMessages, messages);
    }
    return g;
}

} // namespace opconsole
