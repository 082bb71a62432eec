#include "hub.h"

#include "botsession.h"
#include "commandregistry.h"
#include "opconsole/v1/botlink.grpc.pb.h"
#include "protoconvert.h"
#include "wirecheck.h"

#include <QDateTime>
#include <QPointer>

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_map>

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

} // namespace

// The session table: which session is current for each bot, which streams still wait for
// their Hello, and every bot seen this run. It owns the replacement rules (sessionHello).
class HubPrivate final : public SessionHost
{
public:
    HubPrivate(Hub *q, CommandRegistry &registry, HubOptions options)
        : q(q), registry(registry), options(std::move(options))
    {}

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

    void accept(const std::shared_ptr<BotSession> &session);
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
    int port = 0;
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
    std::mutex lifecycle; // start() and stop() one at a time, each to its end
    // The thread inside start() or stop(): a call from it again (a stop step, a continuation
    // or a receiver that runs inline) returns at once instead of locking itself out.
    std::atomic<std::thread::id> lifecycleOwner{};

    mutable std::mutex mutex; // guards everything below; taken before a session's mutex
    std::unordered_map<QString, std::shared_ptr<BotSession>> live; // bot id -> current session
    std::unordered_map<quint64, std::shared_ptr<BotSession>> handshaking; // no Hello yet
    QMap<QString, BotInfo> bots;

    // Counted without the lock: the ack and send paths take no hub-wide lock for them.
    struct
    {
        std::atomic<quint64> streamsAccepted{0}, streamsRejected{0}, sessionsReplaced{0},
            heartbeatTimeouts{0}, protocolViolations{0}, streamErrors{0}, queueFull{0},
            messagesIn{0}, messagesOut{0}, helloTimeouts{0}, rateLimited{0}, notPendingSkipped{0},
            violationsUnreported{0};
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
    Connect(grpc::CallbackServerContext *) override
    {
        auto session = std::make_shared<BotSession>(m_hub, m_hub->nextSession.fetch_add(1));
        m_hub->accept(session);
        return session.get();
    }

private:
    HubPrivate *m_hub;
};

void HubPrivate::accept(const std::shared_ptr<BotSession> &session)
{
    grpc::Status refuse;
    {
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
    std::unique_lock order(eventOrder);
    std::shared_ptr<BotSession> replaced;
    bool replacedHere = false;
    BotInfo info;
    grpc::Status refused;
    {
        std::lock_guard lock(mutex);
        handshaking.erase(session->id());
        if (stopping) {
            refused = grpc::Status(grpc::StatusCode::UNAVAILABLE, "hub shutting down");
        } else if (live.size() >= size_t(options.maxLiveSessions) && !live.count(botId)) {
            refused = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                   "the hub holds its maximum of connected bots");
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
    if (!refused.ok()) {
        ++counters.streamsRejected;
        session->reject(fromStd(refused.error_message()), refused);
        return;
    }
    emit q->botConnected(info);
    order.unlock(); // failing commands runs their continuations: not under the event lock
    // The bot's recent acks, again (docs/protocol.md rule 13), before the replaced stream's
    // commands fail: an ack lost with that stream resolves its command as it should have; one
    // for a command the hub lost track of (disconnected, unknown after a restart) becomes its
    // late ack. Already known outcomes are ignored quietly.
    for (const v1::CommandAck &ack : hello.recent_acks()) {
        const wire::AckCheck checked = wire::checkAck(ack);
        if (!checked.problem.empty())
            continue; // checkHello refused bad ids; kept safe
        registry.applyResentAck(fromStd(ack.command_id()), botId, convert::toAckData(ack, checked));
    }
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
        if (!it->connected)
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
    QString botId;
    {
        std::lock_guard lock(mutex);
        handshaking.erase(session.id());
        botId = session.botId();
        if (botId.isEmpty())
            return; // never said Hello: nothing was published
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
        switch (registry.resolveCommand(id, botId, convert::toAckData(message.ack(), checked))) {
        case ResolveResult::Unknown:
            // Not a violation: a late ack for a command forgotten after the late-ack window,
            // or from before a hub restart, is a healthy bot's. The registry counts it.
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
        std::vector<std::shared_ptr<BotSession>> silent, mute;
        const qint64 now = steadyNs();
        const auto helloDeadline = steady_clock::now() - helloLimit;
        {
            std::lock_guard lock(mutex);
            for (const auto &[botId, session] : live) {
                if (now - session->lastSeenNs() > limitNs)
                    silent.push_back(session);
            }
            for (const auto &[id, session] : handshaking) {
                if (session->startedAt() < helloDeadline)
                    mute.push_back(session);
            }
        }
        for (const auto &session : silent)
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
    d->service = std::make_unique<BotLinkService>(d.get());
    grpc::ServerBuilder builder;
    builder.AddListeningPort(toStd(d->options.listenAddress), grpc::InsecureServerCredentials(),
                             &d->port);
    builder.RegisterService(d->service.get());
    builder.SetMaxReceiveMessageSize(d->options.maxMessageBytes);
    // Consoles and bots may ping to find a dead peer (RemoteBackend pings every 15 s on a
    // quiet Watch); more often than once a second is still refused as abuse.
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1000);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    for (const auto &extension : d->extensions)
        extension(builder);
    d->server = builder.BuildAndStart();
    if (!d->server || d->port == 0) {
        if (error)
            *error = QStringLiteral("cannot listen on %1").arg(d->options.listenAddress);
        d->server.reset();
        return false;
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

QString Hub::address() const
{
    QString host = d->options.listenAddress.section(QLatin1Char(':'), 0, -2);
    if (host.isEmpty() || host == QLatin1String("0.0.0.0") || host == QLatin1String("[::]"))
        host = QStringLiteral("127.0.0.1");
    return QStringLiteral("%1:%2").arg(host).arg(d->port);
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
    // 1. Stop accepting: new streams and Hellos are refused from here on (stopping).
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

    // 4. The server: every call was told to end, so this takes a grace period at most.
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
    return out;
}

} // namespace opconsole
