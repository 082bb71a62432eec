#include "hub.h"

#include "commandregistry.h"
#include "opconsole/v1/botlink.grpc.pb.h"
#include "outqueue.h"
#include "protoconvert.h"

#include <QDateTime>

#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace opconsole {

using namespace std::chrono;
using convert::fromStd;
using convert::toStd;
using google::protobuf::util::TimeUtil;

namespace {

constexpr int MaxBotIdLength = 128;
constexpr quint32 ProtocolVersion = 1;

qint64 nowMs()
{
    return QDateTime::currentMSecsSinceEpoch();
}

qint64 steadyNs()
{
    return duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count();
}

QString stateName(v1::BotState state)
{
    switch (state) {
    case v1::BOT_STATE_RUNNING:
        return QStringLiteral("running");
    case v1::BOT_STATE_PAUSED:
        return QStringLiteral("paused");
    case v1::BOT_STATE_STOPPED:
        return QStringLiteral("stopped");
    default:
        return {};
    }
}

QString checkBotId(const std::string &id)
{
    if (id.empty())
        return QStringLiteral("bot_id is empty");
    if (id.size() > size_t(MaxBotIdLength))
        return QStringLiteral("bot_id is longer than %1 bytes").arg(MaxBotIdLength);
    for (unsigned char c : id) {
        if (c < 0x20 || c == 0x7f)
            return QStringLiteral("bot_id contains control characters");
    }
    return {};
}

} // namespace

class BotSession;

class HubPrivate
{
public:
    HubPrivate(Hub *q, CommandRegistry &registry, HubOptions options)
        : q(q), registry(registry), options(std::move(options))
    {}

    void attach(const std::shared_ptr<BotSession> &session, const v1::Hello &hello);
    void sessionEnded(BotSession *session, const QString &reason);
    void onMessage(BotSession *session, const v1::BotMessage &message);
    void violation(const QString &botId, const QString &what);
    void livenessLoop();
    std::shared_ptr<BotSession> current(const QString &botId) const; // the live session

    Hub *q;
    CommandRegistry &registry;
    HubOptions options;
    std::vector<std::function<void(grpc::ServerBuilder &)>> extensions;
    std::unique_ptr<v1::BotLink::CallbackService> service;
    std::unique_ptr<grpc::Server> server;
    int port = 0;
    std::atomic<bool> running{false};
    std::atomic<bool> stopping{false};
    std::atomic<quint64> nextSession{1};

    mutable std::mutex mutex;                                      // guards everything below
    std::unordered_map<QString, std::shared_ptr<BotSession>> live; // bot id -> current session
    QMap<QString, BotInfo> bots;

    // Counted without the lock: the ack and send paths take no hub-wide lock for them.
    struct
    {
        std::atomic<quint64> streamsAccepted{0}, streamsRejected{0}, sessionsReplaced{0},
            heartbeatTimeouts{0}, protocolViolations{0}, streamErrors{0}, queueFull{0},
            messagesIn{0}, messagesOut{0};
    } counters;

    std::mutex livenessMutex;
    std::condition_variable livenessWake;
    std::thread liveness;
};

// One bot's stream. Reads are started only from reactions; writes from any thread, at most
// one outstanding, the rest queued (bounded). Finish is called exactly once, never while a
// write is outstanding.
class BotSession final : public grpc::ServerBidiReactor<v1::BotMessage, v1::HubMessage>
{
public:
    BotSession(HubPrivate *hub, quint64 id) : m_hub(hub), m_id(id) { lastSeenNs.store(steadyNs()); }

    void begin(std::shared_ptr<BotSession> self)
    {
        m_self = std::move(self);
        StartRead(&m_in);
    }

    quint64 id() const { return m_id; }
    // Set once, by the reading side, before the session is published to other threads.
    const QString &botId() const { return m_botId; }
    bool helloDone() const { return !m_botId.isEmpty(); }

    SendResult enqueue(v1::HubMessage message)
    {
        std::unique_lock lock(m_mutex);
        if (m_finishRequested)
            return SendResult::NotConnected;
        switch (m_writes.push(std::move(message), size_t(m_hub->options.maxQueuedPerBot))) {
        case OutQueue<v1::HubMessage>::Push::Full:
            return SendResult::QueueFull;
        case OutQueue<v1::HubMessage>::Push::Queued:
            return SendResult::Queued;
        case OutQueue<v1::HubMessage>::Push::StartWrite:
            break;
        }
        lock.unlock();
        StartWrite(m_writes.out()); // Finish waits for this write: see close()
        return SendResult::Queued;
    }

    // Ends the stream with `status`. With drain, messages already queued go out first.
    void close(const grpc::Status &status, bool drain = false)
    {
        std::unique_lock lock(m_mutex);
        if (m_finishRequested)
            return;
        m_finishRequested = true;
        m_status = status;
        if (!drain)
            m_writes.clear();
        if (m_writes.writing())
            return; // OnWriteDone drains what is left, then finishes
        m_finished = true;
        lock.unlock();
        Finish(status);
    }

    void OnReadDone(bool ok) override
    {
        if (!ok) {
            m_hub->sessionEnded(this, QStringLiteral("stream closed by the bot"));
            close(grpc::Status::OK);
            return;
        }
        lastSeenNs.store(steadyNs());
        if (!helloDone()) {
            QString problem;
            if (m_in.kind_case() != v1::BotMessage::kHello)
                problem = QStringLiteral("the first message must be Hello");
            else
                problem = checkBotId(m_in.hello().bot_id());
            if (!problem.isEmpty()) {
                ++m_hub->counters.streamsRejected;
                m_hub->violation(QString(), problem);
                v1::HubMessage reject;
                reject.mutable_reject()->set_reason(toStd(problem));
                enqueue(std::move(reject));
                close(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, toStd(problem)), true);
                return; // no further reads: the stream is over
            }
            m_botId = fromStd(m_in.hello().bot_id());
            m_hub->attach(m_self, m_in.hello());
        } else {
            m_hub->onMessage(this, m_in);
        }
        std::lock_guard lock(m_mutex);
        if (!m_finished)
            StartRead(&m_in);
    }

    void OnWriteDone(bool ok) override
    {
        std::unique_lock lock(m_mutex);
        if (!ok) {
            // The stream broke under us; reading notices too, this only stops writing.
            m_writes.clear();
            if (!m_finishRequested) {
                m_finishRequested = true;
                m_status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed");
            }
        }
        grpc::WriteOptions options;
        if (m_writes.next(options)) {
            lock.unlock();
            StartWrite(m_writes.out(), options);
            return;
        }
        if (m_finishRequested && !m_finished) {
            m_finished = true;
            const grpc::Status status = m_status;
            lock.unlock();
            Finish(status);
        }
    }

    void OnCancel() override
    {
        m_hub->sessionEnded(this, QStringLiteral("stream cancelled"));
        close(grpc::Status::CANCELLED);
    }

    void OnDone() override
    {
        m_hub->sessionEnded(this, QStringLiteral("stream ended"));
        m_self.reset(); // may delete this: last statement
    }

    std::atomic<qint64> lastSeenNs{0};
    bool ended = false; // guarded by the hub's mutex

private:
    HubPrivate *m_hub;
    const quint64 m_id;
    QString m_botId;
    v1::BotMessage m_in;
    std::shared_ptr<BotSession> m_self;

    std::mutex m_mutex;
    OutQueue<v1::HubMessage> m_writes;
    bool m_finishRequested = false;
    bool m_finished = false;
    grpc::Status m_status;
};

class BotLinkService final : public v1::BotLink::CallbackService
{
public:
    explicit BotLinkService(HubPrivate *hub) : m_hub(hub) {}

    grpc::ServerBidiReactor<v1::BotMessage, v1::HubMessage> *
    Connect(grpc::CallbackServerContext *) override
    {
        auto session = std::make_shared<BotSession>(m_hub, m_hub->nextSession.fetch_add(1));
        session->begin(session);
        if (m_hub->stopping)
            session->close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "hub shutting down"));
        return session.get();
    }

private:
    HubPrivate *m_hub;
};

void HubPrivate::attach(const std::shared_ptr<BotSession> &session, const v1::Hello &hello)
{
    const QString botId = session->botId();
    std::shared_ptr<BotSession> replaced;
    BotInfo info;
    {
        std::lock_guard lock(mutex);
        if (stopping) {
            session->close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "hub shutting down"));
            return;
        }
        // Welcome is queued in the same step that publishes the session: it is the first
        // message on the stream, and once the bot has it, the hub can reach the bot.
        v1::HubMessage welcome;
        welcome.mutable_welcome()->set_session_id(std::to_string(session->id()));
        *welcome.mutable_welcome()->mutable_heartbeat_interval() =
            TimeUtil::MillisecondsToDuration(options.heartbeatInterval.count());
        welcome.mutable_welcome()->set_protocol_version(ProtocolVersion);
        session->enqueue(std::move(welcome));
        auto &slot = live[botId];
        replaced = std::move(slot);
        slot = session;
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
        if (replaced) {
            ++counters.sessionsReplaced;
            replaced->ended = true; // its teardown must not touch the new session
        }
        info = bot;
    }
    if (replaced) {
        // Only commands sent on the old stream fail; the new session's are untouched.
        registry.failBot(botId, QStringLiteral("connection replaced by a newer session"),
                         replaced->id());
        replaced->close(grpc::Status(grpc::StatusCode::ABORTED,
                                     "replaced by a newer connection of the same bot"));
    }
    emit q->botConnected(info);
}

void HubPrivate::sessionEnded(BotSession *session, const QString &reason)
{
    BotInfo info;
    bool wasCurrent = false;
    {
        std::lock_guard lock(mutex);
        if (session->ended)
            return;
        session->ended = true;
        if (!session->helloDone())
            return;
        const auto it = live.find(session->botId());
        if (it != live.end() && it->second.get() == session) {
            live.erase(it);
            BotInfo &bot = bots[session->botId()];
            bot.connected = false;
            bot.disconnectedAtMs = nowMs();
            bot.disconnectReason = reason;
            info = bot;
            wasCurrent = true;
        }
    }
    registry.failBot(session->botId(), QStringLiteral("bot disconnected: %1").arg(reason),
                     session->id());
    if (wasCurrent)
        emit q->botDisconnected(info);
}

void HubPrivate::onMessage(BotSession *session, const v1::BotMessage &message)
{
    const QString &botId = session->botId();
    switch (message.kind_case()) {
    case v1::BotMessage::kAck:
        registry.resolveCommand(fromStd(message.ack().command_id()), botId,
                                convert::toAckData(message.ack()));
        break;
    case v1::BotMessage::kProgress:
        registry.reportProgress(fromStd(message.progress().command_id()), botId,
                                int(std::min<quint32>(message.progress().percent(), 100)),
                                fromStd(message.progress().message()));
        break;
    case v1::BotMessage::kHeartbeat:
    case v1::BotMessage::kStatus: {
        const QString state = stateName(message.kind_case() == v1::BotMessage::kHeartbeat
                                            ? message.heartbeat().state()
                                            : message.status().state());
        std::optional<BotInfo> changed;
        {
            std::lock_guard lock(mutex);
            ++counters.messagesIn;
            BotInfo &bot = bots[botId];
            if (bot.session != session->id())
                return; // a replaced stream still talking: ignore
            bot.lastSeenMs = nowMs();
            bool different = !state.isEmpty() && state != bot.state;
            if (!state.isEmpty())
                bot.state = state;
            if (message.kind_case() == v1::BotMessage::kStatus) {
                QMap<QString, QString> fields;
                for (const auto &[key, value] : message.status().fields())
                    fields.insert(fromStd(key), fromStd(value));
                different = different || fields != bot.status;
                bot.status = std::move(fields);
            }
            if (different)
                changed = bot;
        }
        if (changed)
            emit q->botUpdated(*changed);
        return;
    }
    case v1::BotMessage::kHello:
        violation(botId, QStringLiteral("second Hello on one stream ignored"));
        break;
    case v1::BotMessage::KIND_NOT_SET:
        violation(botId, QStringLiteral("empty message ignored"));
        break;
    }
    ++counters.messagesIn;
}

void HubPrivate::violation(const QString &botId, const QString &what)
{
    ++counters.protocolViolations;
    emit q->protocolViolation(botId, what);
}

void HubPrivate::livenessLoop()
{
    const auto interval = options.heartbeatInterval;
    const qint64 limitNs = duration_cast<nanoseconds>(interval * options.missedHeartbeats).count();
    const auto period = std::clamp(duration_cast<milliseconds>(interval / 4), 10ms, 500ms);
    std::unique_lock wait(livenessMutex);
    while (!stopping) {
        livenessWake.wait_for(wait, period);
        if (stopping)
            break;
        std::vector<std::shared_ptr<BotSession>> silent;
        const qint64 now = steadyNs();
        {
            std::lock_guard lock(mutex);
            for (const auto &[botId, session] : live) {
                if (now - session->lastSeenNs.load() > limitNs)
                    silent.push_back(session);
            }
            counters.heartbeatTimeouts += silent.size();
        }
        const QString reason = QStringLiteral("no heartbeat for %1 ms")
                                   .arg(interval.count() * options.missedHeartbeats);
        for (const auto &session : silent) {
            sessionEnded(session.get(), reason);
            session->close(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, toStd(reason)));
        }
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

bool Hub::start(QString *error)
{
    if (d->running)
        return true;
    d->service = std::make_unique<BotLinkService>(d.get());
    grpc::ServerBuilder builder;
    builder.AddListeningPort(toStd(d->options.listenAddress), grpc::InsecureServerCredentials(),
                             &d->port);
    builder.RegisterService(d->service.get());
    builder.SetMaxReceiveMessageSize(d->options.maxMessageBytes);
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
    if (!d->running || d->stopping.exchange(true))
        return;
    {
        std::lock_guard wake(d->livenessMutex);
        d->livenessWake.notify_all();
    }
    if (d->liveness.joinable())
        d->liveness.join();

    std::vector<std::shared_ptr<BotSession>> sessions;
    QList<BotInfo> gone;
    {
        std::lock_guard lock(d->mutex);
        for (auto &[botId, session] : d->live) {
            session->ended = true;
            sessions.push_back(session);
            BotInfo &bot = d->bots[botId];
            bot.connected = false;
            bot.disconnectedAtMs = nowMs();
            bot.disconnectReason = reason;
            gone.append(bot);
        }
        d->live.clear();
    }
    for (const auto &session : sessions) {
        d->registry.failBot(session->botId(), reason);
        session->close(grpc::Status(grpc::StatusCode::UNAVAILABLE, toStd(reason)));
    }
    // Streams are finished; what is still in flight is cancelled after a short grace period.
    d->server->Shutdown(system_clock::now() + 2s);
    d->server->Wait();
    d->server.reset();
    d->running = false;
    for (const BotInfo &info : gone)
        emit botDisconnected(info);
}

std::shared_ptr<BotSession> HubPrivate::current(const QString &botId) const
{
    std::lock_guard lock(mutex);
    const auto it = live.find(botId);
    return it == live.end() ? nullptr : it->second;
}

SendResult Hub::sendCommand(const QString &botId, const QString &commandId, const CommandSpec &spec,
                            milliseconds timeout)
{
    const std::shared_ptr<BotSession> session = d->current(botId);
    if (!session)
        return SendResult::NotConnected;
    v1::HubMessage message;
    convert::fillCommand(*message.mutable_command(), commandId, spec, timeout);
    // Marked with the session before the write, so a fast ack finds it sent, and the
    // session's teardown fails exactly the commands that went down this stream.
    d->registry.markSent(commandId, session->id());
    const SendResult result = session->enqueue(std::move(message));
    if (result == SendResult::QueueFull)
        ++d->counters.queueFull;
    else if (result == SendResult::Queued)
        ++d->counters.messagesOut;
    return result;
}

SendResult Hub::sendCancel(const QString &botId, const QString &commandId, const QString &reason)
{
    const std::shared_ptr<BotSession> session = d->current(botId);
    if (!session)
        return SendResult::NotConnected;
    v1::HubMessage message;
    message.mutable_cancel()->set_command_id(toStd(commandId));
    message.mutable_cancel()->set_reason(toStd(reason));
    return session->enqueue(std::move(message));
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
    return out;
}

} // namespace opconsole
