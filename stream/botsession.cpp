#include "botsession.h"

#include "commandregistry.h"
#include "protoconvert.h"
#include "wirecheck.h"

namespace opconsole {

using namespace std::chrono;
using convert::fromStd;
using convert::toStd;

namespace {
qint64 steadyNs()
{
    return duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count();
}
} // namespace

BotSession::BotSession(SessionHost *host, quint64 id, BotCredential credential)
    : m_host(host), m_id(id), m_credential(std::move(credential)), m_startedAt(steady_clock::now()),
      m_progressTokens(2.0 * host->sessionOptions().maxProgressPerSecond),
      m_statusTokens(2.0 * host->sessionOptions().maxStatusPerSecond),
      m_progressRefilled(m_startedAt), m_statusRefilled(m_startedAt)
{
    m_lastSeenNs.store(steadyNs());
}

BotSession::~BotSession()
{
    for (const auto &streams : m_credential.streams)
        streams->fetch_sub(1);
}

void BotSession::begin(std::shared_ptr<BotSession> self)
{
    m_self = std::move(self);
    StartRead(&m_in);
}

std::pair<size_t, size_t> BotSession::queued() const
{
    std::lock_guard lock(m_mutex);
    return {m_writes.queued(), m_writes.queuedBytes()};
}

QString BotSession::botId() const
{
    std::lock_guard lock(m_mutex);
    return m_botId;
}

BotSession::State BotSession::state() const
{
    std::lock_guard lock(m_mutex);
    return m_state;
}

bool BotSession::goLive(const QString &botId, v1::HubMessage welcome)
{
    bool startWrite = false;
    {
        std::lock_guard lock(m_mutex);
        if (m_state != State::Handshaking && m_state != State::Held)
            return false;
        m_state = State::Live;
        m_botId = botId;
        pushLocked(std::move(welcome), startWrite);
    }
    if (startWrite)
        StartWrite(m_writes.out()); // Finish waits for this write
    return true;
}

bool BotSession::hold(const QString &botId, v1::HubMessage held)
{
    bool startWrite = false;
    {
        std::lock_guard lock(m_mutex);
        if (m_state != State::Handshaking)
            return false;
        m_state = State::Held;
        m_botId = botId;
        pushLocked(std::move(held), startWrite);
    }
    if (startWrite)
        StartWrite(m_writes.out());
    return true;
}

SendResult BotSession::pushLocked(v1::HubMessage &&message, bool &startWrite)
{
    const HubOptions &o = m_host->sessionOptions();
    const QueueLimits limits{size_t(o.maxQueuedPerBot), size_t(o.maxQueuedBytesPerBot)};
    switch (m_writes.push(std::move(message), limits)) {
    case OutQueue<v1::HubMessage>::Push::Full:
        return SendResult::QueueFull;
    case OutQueue<v1::HubMessage>::Push::Queued:
        return SendResult::Queued;
    case OutQueue<v1::HubMessage>::Push::StartWrite:
        startWrite = true;
        return SendResult::Queued;
    }
    return SendResult::QueueFull;
}

SendResult BotSession::sendCommand(CommandRegistry &registry, const QString &commandId,
                                   v1::HubMessage &message,
                                   std::optional<milliseconds> responseTimeout)
{
    const size_t bytes = message.ByteSizeLong();
    const HubOptions &o = m_host->sessionOptions();
    const QueueLimits limits{size_t(o.maxQueuedPerBot), size_t(o.maxQueuedBytesPerBot)};
    bool startWrite = false;
    {
        std::lock_guard lock(m_mutex);
        if (m_state != State::Live || m_finishRequested)
            return SendResult::NotConnected;
        if (!m_writes.fits(bytes, limits))
            return SendResult::QueueFull;
        // In the same step as the write: teardown (close/detach) takes this mutex to leave
        // Live before it fails the session's commands, so every command marked here is
        // either failed by it or was never marked.
        if (!registry.markSent(commandId, m_id, responseTimeout))
            return SendResult::NotPending;
        startWrite = m_writes.push(std::move(message), bytes, limits) ==
                     OutQueue<v1::HubMessage>::Push::StartWrite;
    }
    if (startWrite)
        StartWrite(m_writes.out());
    return SendResult::Queued;
}

SendResult BotSession::send(v1::HubMessage message)
{
    bool startWrite = false;
    SendResult result;
    {
        std::lock_guard lock(m_mutex);
        if (m_state != State::Live || m_finishRequested)
            return SendResult::NotConnected;
        result = pushLocked(std::move(message), startWrite);
    }
    if (startWrite)
        StartWrite(m_writes.out());
    return result;
}

bool BotSession::close(const QString &reason, const grpc::Status &status, bool drain,
                       std::atomic<quint64> *counter)
{
    {
        std::lock_guard lock(m_mutex);
        if (m_state == State::Closing || m_state == State::Done)
            return false;
        m_state = State::Closing;
    }
    if (counter)
        ++*counter;
    m_host->sessionEnded(*this, reason); // fails this session's commands; sends are refused
    finishStream(status, drain);
    return true;
}

bool BotSession::detach()
{
    std::lock_guard lock(m_mutex);
    if (m_state == State::Closing || m_state == State::Done)
        return false;
    m_state = State::Closing;
    return true;
}

void BotSession::finishStream(const grpc::Status &status, bool drain)
{
    std::unique_lock lock(m_mutex);
    finishLocked(lock, status, drain);
}

void BotSession::finishLocked(std::unique_lock<std::mutex> &lock, const grpc::Status &status,
                              bool drain)
{
    if (m_finishRequested || m_state == State::Done)
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

bool BotSession::allowed(double &tokens, steady_clock::time_point &refilled, double perSecond)
{
    if (perSecond <= 0)
        return true;
    const auto now = steady_clock::now();
    tokens = std::min(2 * perSecond, tokens + duration<double>(now - refilled).count() * perSecond);
    refilled = now;
    if (tokens < 1)
        return false;
    tokens -= 1;
    return true;
}

void BotSession::reject(const QString &reason, const grpc::Status &status)
{
    v1::HubMessage message;
    message.mutable_reject()->set_reason(convert::toStd(reason));
    bool startWrite = false;
    {
        std::lock_guard lock(m_mutex);
        if (m_state == State::Handshaking || m_state == State::Held)
            pushLocked(std::move(message), startWrite);
    }
    if (startWrite)
        StartWrite(m_writes.out());
    close(reason, status, true);
}

void BotSession::handleHello()
{
    std::string problem;
    if (m_in.kind_case() != v1::BotMessage::kHello)
        problem = "the first message must be Hello";
    else
        problem = wire::checkHello(m_in.hello());
    if (problem.empty()) {
        m_host->sessionHello(m_self, m_in.hello());
        return;
    }
    const QString why = fromStd(problem);
    m_host->sessionViolation(QString(), why);
    reject(why, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, problem));
}

void BotSession::OnReadDone(bool ok)
{
    if (!ok) {
        close(QStringLiteral("stream closed by the bot"), grpc::Status::OK);
        return;
    }
    m_lastSeenNs.store(steadyNs(), std::memory_order_relaxed);
    State state;
    QString botId;
    {
        std::lock_guard lock(m_mutex);
        state = m_state;
        botId = m_botId;
    }
    if (state == State::Handshaking) {
        handleHello();
    } else if (state == State::Live) {
        const HubOptions &o = m_host->sessionOptions();
        bool pass = true;
        switch (m_in.kind_case()) {
        case v1::BotMessage::kProgress:
            pass = allowed(m_progressTokens, m_progressRefilled, o.maxProgressPerSecond);
            break;
        case v1::BotMessage::kHeartbeat:
        case v1::BotMessage::kStatus:
            pass = allowed(m_statusTokens, m_statusRefilled, o.maxStatusPerSecond);
            break;
        default:
            break;
        }
        if (!pass) {
            m_host->sessionRateLimited();
        } else if (const QString broke = m_host->sessionMessage(*this, botId, m_in);
                   !broke.isEmpty()) {
            // A few violations are reported; a bot that keeps breaking rules has its stream
            // ended, so no bot can flood the log or the hub's event queues with them.
            if (!m_host->sessionViolation(botId, broke)) {
                const QString why =
                    QStringLiteral("too many protocol violations (last: %1)").arg(broke);
                close(why, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, toStd(why)));
                return;
            }
        }
    }
    // A held bot's messages are read and dropped: nothing of it counts until it is accepted.
    std::lock_guard lock(m_mutex);
    if (m_state == State::Handshaking || m_state == State::Held || m_state == State::Live)
        StartRead(&m_in);
}

void BotSession::OnWriteDone(bool ok)
{
    std::unique_lock lock(m_mutex);
    if (!ok) {
        // The stream broke under us; reading notices too, this only stops writing.
        if (!m_finishRequested)
            m_host->sessionStreamError();
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

void BotSession::OnCancel()
{
    close(QStringLiteral("stream cancelled"), grpc::Status::CANCELLED);
}

void BotSession::OnDone()
{
    bool open;
    {
        std::lock_guard lock(m_mutex);
        open = m_state == State::Handshaking || m_state == State::Held || m_state == State::Live;
        m_state = State::Done;
    }
    if (open)
        m_host->sessionEnded(*this, QStringLiteral("stream ended"));
    m_self.reset(); // may delete this: last statement
}

} // namespace opconsole
