#include "simfleet.h"

#include "opconsole/v1/botlink.grpc.pb.h"

#include "tlscredentials.h"
#include "tokens.h"
#include "wirecheck.h"
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <list>
#include <mutex>
#include <optional>
#include <queue>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace opconsole::botsim {

namespace v1 = opconsole::v1;
using namespace std::chrono;
using SteadyTime = steady_clock::time_point;

namespace {

std::vector<std::string> split(const std::string &s, char sep)
{
    std::vector<std::string> parts;
    std::stringstream in(s);
    std::string part;
    while (std::getline(in, part, sep))
        parts.push_back(part);
    return parts;
}

bool toDouble(const std::string &s, double *out)
{
    try {
        size_t used = 0;
        *out = std::stod(s, &used);
        return used == s.size() && *out >= 0;
    } catch (...) {
        return false;
    }
}

google::protobuf::Timestamp nowStamp()
{
    return opconsole::wire::timestampFromMs(
        duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

constexpr size_t DedupCapacity = 10'000;

} // namespace

bool LatencyModel::parse(const std::string &text, LatencyModel *out, std::string *error)
{
    const auto parts = split(text, ':');
    LatencyModel m;
    auto bad = [&](const std::string &why) {
        if (error)
            *error = "bad latency '" + text + "': " + why +
                     " (use fixed:MS, uniform:MIN:MAX or lognormal:MEDIAN:P99)";
        return false;
    };
    if (parts.size() == 2 && parts[0] == "fixed") {
        m.kind = Kind::Fixed;
        if (!toDouble(parts[1], &m.a))
            return bad("not a non-negative number");
    } else if (parts.size() == 3 && (parts[0] == "uniform" || parts[0] == "lognormal")) {
        m.kind = parts[0] == "uniform" ? Kind::Uniform : Kind::LogNormal;
        if (!toDouble(parts[1], &m.a) || !toDouble(parts[2], &m.b))
            return bad("not non-negative numbers");
        if (m.b < m.a)
            return bad("the second number must not be smaller than the first");
        if (m.kind == Kind::LogNormal && m.a <= 0)
            return bad("the median must be positive");
    } else {
        return bad("unknown form");
    }
    *out = m;
    return true;
}

namespace {

template <class Rng> double sample(const LatencyModel &m, Rng &rng)
{
    const double a = m.a;
    const double b = m.b;
    using Kind = LatencyModel::Kind;
    switch (m.kind) {
    case Kind::Fixed:
        return a;
    case Kind::Uniform:
        return std::uniform_real_distribution<double>(a, b)(rng);
    case Kind::LogNormal: {
        // p99 = median * exp(2.326 sigma)
        const double sigma = b > a ? std::log(b / a) / 2.3263 : 0.0;
        return std::lognormal_distribution<double>(std::log(a), sigma)(rng);
    }
    }
    return 0;
}

} // namespace

double LatencyModel::sampleMs(std::mt19937_64 &rng) const
{
    return sample(*this, rng);
}

double LatencyModel::sampleMs(SimRng &rng) const
{
    return sample(*this, rng);
}

std::string LatencyModel::describe() const
{
    std::ostringstream out;
    switch (kind) {
    case Kind::Fixed:
        out << "fixed " << a << " ms";
        break;
    case Kind::Uniform:
        out << "uniform " << a << ".." << b << " ms";
        break;
    case Kind::LogNormal:
        out << "lognormal median " << a << " ms, p99 " << b << " ms";
        break;
    }
    return out.str();
}

std::string SimStats::summary() const
{
    std::ostringstream out;
    out << "botsim summary: connects=" << connects << " rejected_by_hub=" << rejectedByHub
        << " simulated_disconnects=" << disconnects << " stream_errors=" << streamErrors
        << " commands=" << commands << " executed=" << executed << " deduplicated=" << deduplicated
        << " acks_ok=" << acksOk << " acks_failed=" << acksFailed << " dropped=" << dropped
        << " duplicate_acks=" << duplicatesSent << " late_acks=" << lateAcks
        << " progress=" << progressSent << " cancels=" << cancelsReceived
        << " heartbeats=" << heartbeatsSent << " acks_resent=" << acksResent << " held=" << held
        << " unauthenticated=" << unauthenticated << " permission_denied=" << permissionDenied;
    return out.str();
}

class SimBot;

class FleetPrivate
{
public:
    struct Item
    {
        enum class Kind
        {
            Message,   // write `message` (an ack is the bot's: any stream of it)
            Heartbeat, // write a heartbeat and schedule the next
            Connect,   // open a stream (the first one, or after the back-off)
        };
        SteadyTime at;
        SimBot *bot;
        uint64_t generation;
        v1::BotMessage message;
        Kind kind = Kind::Message;
        bool operator<(const Item &other) const { return at > other.at; } // min-heap
    };

    explicit FleetPrivate(SimOptions o) : options(std::move(o)) {}

    void schedule(Item item)
    {
        std::lock_guard lock(mutex);
        if (stopping)
            return;
        const bool earliest = queue.empty() || item.at < queue.top().at;
        queue.push(std::move(item));
        if (earliest)
            wake.notify_one();
    }
    void schedulerLoop();
    void journal(const std::string &commandId, const std::string &botId, const char *what)
    {
        if (!journalFile)
            return;
        std::lock_guard lock(journalMutex);
        std::fprintf(journalFile, "%s %s %s\n", commandId.c_str(), botId.c_str(), what);
    }
    std::FILE *journalFile = nullptr;
    std::mutex journalMutex;

    // A line for the log, within a budget (50 lines in 10 s; the rest are counted and said
    // once the budget is back): a fleet of thousands refused at once must not flood it.
    void log(const std::string &line)
    {
        uint64_t suppressed = 0;
        {
            std::lock_guard lock(logMutex);
            const auto now = steady_clock::now();
            if (now - logWindow >= seconds(10)) {
                logWindow = now;
                logLines = 0;
                suppressed = std::exchange(logSuppressed, 0);
            }
            if (++logLines > 50) {
                ++logSuppressed;
                return;
            }
        }
        if (suppressed > 0)
            log("botsim: " + std::to_string(suppressed) + " more log lines were left out");
        if (options.log)
            options.log(line);
        else
            std::fprintf(stderr, "%s\n", line.c_str());
    }
    // True the first time a connection failure reads so (every bot of a fleet meets the same):
    // said once until a bot connects again.
    bool firstFailure(const std::string &text)
    {
        std::lock_guard lock(logMutex);
        return failuresSaid.insert(text).second;
    }
    void connectedAgain()
    {
        std::lock_guard lock(logMutex);
        failuresSaid.clear();
    }
    std::mutex logMutex;
    SteadyTime logWindow{};
    int logLines = 0;
    uint64_t logSuppressed = 0;
    std::set<std::string> failuresSaid;

    SimOptions options;
    SimStats stats;
    std::atomic<bool> stopping{false};
    std::mutex mutex;
    std::condition_variable wake; // the scheduler's
    std::priority_queue<Item> queue;
    std::thread scheduler;
    // The channels the bots share: a few for a fleet with one set of credentials, one per bot
    // when each bot has its own certificate.
    std::vector<std::shared_ptr<grpc::Channel>> channels;
    std::vector<std::unique_ptr<v1::BotLink::Stub>> stubs; // per hub address, channelCount each
    std::vector<std::string> hubs;                         // the addresses of --hub, in order
    int channelCount = 1;
    v1::BotLink::Stub *stubFor(size_t hub, int bot) const
    {
        return stubs[hub * size_t(channelCount) + size_t(bot % channelCount)].get();
    }
    std::vector<std::unique_ptr<SimBot>> bots;

    std::atomic<int> connectedNow{0};
    std::atomic<int> awaitingNow{0};
    std::mutex connectedMutex;
    std::condition_variable connectedChanged;
    void notifyConnected()
    {
        std::lock_guard lock(connectedMutex);
        connectedChanged.notify_all();
    }

    // Streams whose reactor has not had its OnDone yet: stop() waits for none.
    std::mutex sessionsMutex;
    std::condition_variable sessionsChanged;
    int liveSessions = 0;
    void sessionStarted()
    {
        std::lock_guard lock(sessionsMutex);
        ++liveSessions;
    }
    void sessionEnded()
    {
        // Notified under the lock: stop() cannot return (and the fleet go) before it is done.
        std::lock_guard lock(sessionsMutex);
        --liveSessions;
        sessionsChanged.notify_all();
    }
};

// One stream of a bot: a gRPC callback reactor. One read is always pending; writes go through
// a small queue (a reactor has at most one write in flight). A hold keeps OnDone away until
// the stream is closed on our side and no write is in flight, so that writes started from the
// scheduler thread never race with its end.
class Session final : public grpc::ClientBidiReactor<v1::BotMessage, v1::HubMessage>
{
public:
    enum class Phase
    {
        Hello,    // waiting for Welcome (or Held, Reject)
        Welcomed, // commands and heartbeats
        Rejected, // reading to the end after a Reject
    };

    explicit Session(SimBot *bot) : bot(bot) {}

    void OnReadDone(bool ok) override;
    void OnWriteDone(bool ok) override;
    void OnDone(const grpc::Status &status) override;

    SimBot *const bot;
    grpc::ClientContext context;
    v1::HubMessage in;
    // Read side: only in OnReadDone (one read at a time) and then OnDone.
    Phase phase = Phase::Hello;
    bool anyMessage = false;
    std::string rejectReason;
    int readsAfterReject = 0;
    // Under the bot's m_writeMutex.
    uint64_t generation = 0;
    bool welcomed = false;
    bool writing = false;
    bool writeFailed = false;
    bool closed = false;
    bool holdReleased = false;
    bool dropping = false; // a simulated drop: cancelled once what is queued is written
    std::list<v1::BotMessage> out;
};

// One simulated bot: a state machine over its current stream (a Session); timed acks,
// progress, heartbeats and reconnects go through the fleet's scheduler thread.
class SimBot
{
public:
    static std::string idOf(const SimOptions &o, int index)
    {
        return o.idPrefix + std::to_string(o.firstIndex + index);
    }

    SimBot(FleetPrivate *fleet, int index)
        : m_fleet(fleet), m_index(index),
          // Spread over the hubs given; a bot moves on to the next after each stream.
          m_hub(size_t(index) % fleet->hubs.size())
    {
        const SimOptions &o = fleet->options;
        m_id = idOf(o, index);
        m_labels = o.labels;
        m_labels.emplace("group", index % 2 == 0 ? "a" : "b");
        m_rng.state = o.seed * 1'000'003u + uint64_t(index);
        m_backoff = o.backoffBase;
    }

    const std::string &id() const { return m_id; }
    bool connected() const { return m_connected; }
    bool awaiting() const { return m_awaiting; }

    // Opens a stream (scheduler thread, or start() before the scheduler runs).
    void connect()
    {
        if (m_fleet->stopping)
            return;
        auto *session = new Session(this);
        if (!m_fleet->options.token.empty())
            session->context.AddMetadata("authorization", "Bearer " + m_fleet->options.token);
        v1::BotMessage hello;
        hello.mutable_hello()->set_bot_id(m_id);
        hello.mutable_hello()->set_protocol_version(1);
        hello.mutable_hello()->set_bot_version("botsim/1");
        for (const auto &[k, v] : m_labels)
            (*hello.mutable_hello()->mutable_labels())[k] = v;
        if (m_fleet->options.resendAcks)
            addRecentAcks(*hello.mutable_hello());
        const v1::BotMessage *first = nullptr;
        {
            std::lock_guard lock(m_writeMutex);
            m_session = session;
            session->out.push_back(std::move(hello));
            session->writing = true;
            first = &session->out.front();
        }
        m_fleet->sessionStarted();
        m_fleet->stubFor(m_hub, m_index)->async()->Connect(&session->context, session);
        session->AddHold();
        session->StartWrite(first);
        session->StartRead(&session->in);
        session->StartCall();
    }

    // Ends the current stream (stop()).
    void cancel()
    {
        std::lock_guard lock(m_writeMutex);
        if (m_session)
            m_session->context.TryCancel();
    }

    // Queues a write on the current welcomed stream if it is still generation `generation`
    // (any generation: 0).
    bool write(const v1::BotMessage &message, uint64_t generation)
    {
        Session *session = nullptr;
        const v1::BotMessage *next = nullptr;
        {
            std::lock_guard lock(m_writeMutex);
            session = m_session;
            if (!session || !session->welcomed || session->closed || session->writeFailed ||
                session->dropping || (generation != 0 && generation != session->generation))
                return false;
            session->out.push_back(message);
            if (session->writing)
                return true;
            session->writing = true;
            next = &session->out.front();
        }
        // The hold stays while `writing`: the session outlives this call.
        session->StartWrite(next);
        return true;
    }

    void fire(FleetPrivate::Item &item)
    {
        switch (item.kind) {
        case FleetPrivate::Item::Kind::Connect:
            connect();
            return;
        case FleetPrivate::Item::Kind::Heartbeat: {
            v1::BotMessage beat;
            beat.mutable_heartbeat()->set_sequence(++m_heartbeatSequence);
            beat.mutable_heartbeat()->set_state(currentState());
            if (write(beat, item.generation)) {
                ++m_fleet->stats.heartbeatsSent;
                item.at = nextHeartbeat();
                m_fleet->schedule(std::move(item));
            }
            return;
        }
        case FleetPrivate::Item::Kind::Message:
            break;
        }
        if (item.message.has_ack()) {
            v1::CommandAck &ack = *item.message.mutable_ack();
            {
                std::lock_guard lock(m_stateMutex);
                if (m_cancelled.count(ack.command_id())) {
                    ack.set_success(false);
                    ack.set_error_code(v1::ACK_ERROR_CANCELLED);
                    ack.set_message("stopped after CancelCommand");
                }
                m_sentAcks[ack.command_id()] = ack;
            }
            *ack.mutable_completed_at() = nowStamp();
            {
                // Done, whether or not this stream still carries it: the next Hello says it
                // again.
                std::lock_guard lock(m_stateMutex);
                m_recentAcks.emplace_back(steady_clock::now(), ack);
                ++m_fleet->stats.acksDone;
                if (m_recentAcks.size() > size_t(opconsole::wire::limits::MaxResentAcks))
                    m_recentAcks.pop_front();
            }
            // An ack is the bot's, not the connection's: one done after a reconnect goes on the
            // new stream (the hub takes it as a late ack if it lost track of the command).
            write(item.message, 0);
            return;
        }
        write(item.message, item.generation);
    }

    void onReadDone(Session *session, bool ok)
    {
        if (!ok) {
            close(session);
            return;
        }
        const v1::HubMessage &in = session->in;
        session->anyMessage = true;
        switch (session->phase) {
        case Session::Phase::Hello:
            hello(session, in);
            return;
        case Session::Phase::Rejected:
            // The hub ends the stream with its status right after a Reject: read it, not a
            // cancellation of ours.
            if (++session->readsAfterReject >= 16) {
                session->context.TryCancel();
                close(session);
            } else {
                session->StartRead(&session->in);
            }
            return;
        case Session::Phase::Welcomed:
            if (handle(in, session->generation)) {
                // As a bot that crashes after answering: what it wrote goes first.
                ++m_fleet->stats.disconnects;
                bool now = false;
                {
                    std::lock_guard lock(m_writeMutex);
                    session->dropping = true;
                    now = !session->writing;
                }
                if (now) {
                    session->context.TryCancel();
                    close(session);
                }
            } else {
                session->StartRead(&session->in);
            }
            return;
        }
    }

    void onWriteDone(Session *session, bool ok)
    {
        const v1::BotMessage *next = nullptr;
        bool release = false;
        bool drop = false;
        {
            std::lock_guard lock(m_writeMutex);
            if (ok && !session->out.empty() && session->out.front().has_ack()) {
                const v1::CommandAck &ack = session->out.front().ack();
                m_fleet->journal(ack.command_id(), m_id, ack.success() ? "ack-ok" : "ack-fail");
            }
            if (!session->out.empty())
                session->out.pop_front();
            if (!ok) {
                session->writeFailed = true; // the stream is broken: its read ends too
                session->out.clear();
            }
            if (!session->closed && ok && !session->out.empty()) {
                next = &session->out.front();
            } else {
                session->writing = false;
                drop = session->dropping && !session->closed;
                release = session->closed && !session->holdReleased;
                if (release)
                    session->holdReleased = true;
            }
        }
        if (next)
            session->StartWrite(next);
        if (release)
            session->RemoveHold();
        if (drop) {
            session->context.TryCancel();
            close(session);
        }
    }

    void onDone(Session *session, const grpc::Status &status)
    {
        {
            std::lock_guard lock(m_writeMutex);
            if (m_session == session)
                m_session = nullptr;
        }
        setAwaiting(false);
        const SimOptions &o = m_fleet->options;
        if (!session->welcomed) {
            if (status.error_code() == grpc::StatusCode::UNAVAILABLE && !session->anyMessage &&
                !m_fleet->stopping)
                sayWhyNotConnected(status);
            refused(status, session->rejectReason);
            ++m_fleet->stats.streamErrors;
        } else {
            m_backoff = o.backoffBase;
        }
        if (m_fleet->stopping)
            return;
        // With several hubs (a cluster), the next stream goes to the next one: a hub that
        // went away is left at once, and a refusing one does not hold the bot.
        m_hub = (m_hub + 1) % m_fleet->hubs.size();
        const auto delay = m_backoff;
        m_backoff = std::min(m_backoff * 2, o.backoffMax);
        m_fleet->schedule(
            {steady_clock::now() + delay, this, 0, {}, FleetPrivate::Item::Kind::Connect});
    }

private:
    v1::BotState currentState()
    {
        std::lock_guard lock(m_stateMutex);
        return m_state;
    }

    // The next heartbeat's time, on a grid of a fiftieth of the interval (at most 100 ms):
    // the bots' heartbeats fall due together, so that the scheduler wakes up (and gRPC
    // writes to each connection) once for many of them, not once for each.
    SteadyTime nextHeartbeat() const
    {
        const auto interval = milliseconds(m_heartbeatMs.load());
        const auto tick = std::clamp<nanoseconds>(interval / 50, 1ms, 100ms);
        const auto at = (steady_clock::now() + interval).time_since_epoch();
        return SteadyTime(duration_cast<steady_clock::duration>((at / tick + 1) * tick));
    }

    void setConnected(bool on)
    {
        if (m_connected.exchange(on) != on) {
            m_fleet->connectedNow += on ? 1 : -1;
            m_fleet->notifyConnected();
        }
    }
    void setAwaiting(bool on)
    {
        if (m_awaiting.exchange(on) != on) {
            m_fleet->awaitingNow += on ? 1 : -1;
            m_fleet->notifyConnected();
        }
    }

    // Closed on our side (the read ended, a simulated drop, a refusal): no more writes; the
    // hold goes once no write is in flight, and then OnDone comes.
    void close(Session *session)
    {
        bool release = false;
        {
            std::lock_guard lock(m_writeMutex);
            if (session->closed)
                return;
            session->closed = true;
            // What is queued goes, not the write in flight (the front): OnWriteDone pops it.
            session->out.resize(session->writing ? std::min<size_t>(session->out.size(), 1) : 0);
            release = !session->writing && !session->holdReleased;
            if (release)
                session->holdReleased = true;
        }
        if (session->welcomed)
            setConnected(false);
        if (release)
            session->RemoveHold();
    }

    // The answer to the Hello: Held (keep reading), Welcome, or a refusal.
    void hello(Session *session, const v1::HubMessage &in)
    {
        // Held awaiting approval: the stream stays open, with no deadline, until an admin
        // accepts the bot (Welcome) or rejects it (Reject, then PERMISSION_DENIED).
        if (in.has_held()) {
            if (!m_awaiting) {
                ++m_fleet->stats.held;
                setAwaiting(true);
                if (!m_heldSaid) {
                    m_heldSaid = true;
                    m_fleet->log("botsim: " + m_id + " awaiting approval: " + in.held().reason());
                }
            }
            session->StartRead(&session->in);
            return;
        }
        setAwaiting(false);
        if (!in.has_welcome()) {
            if (in.has_reject()) {
                ++m_fleet->stats.rejectedByHub;
                session->rejectReason = in.reject().reason();
                if (session->rejectReason.empty())
                    session->rejectReason = "rejected";
                session->phase = Session::Phase::Rejected;
                session->StartRead(&session->in);
                return;
            }
            session->rejectReason = "the hub's first message was neither Welcome nor Held";
            session->context.TryCancel();
            close(session);
            return;
        }
        m_heldSaid = false;
        m_lastRefusal.clear();
        m_fleet->connectedAgain();
        // Whatever the hub says, within 10 ms .. 1 h (a bad value must not abort a bot).
        int64_t heartbeatMs = 2000;
        (void)opconsole::wire::checkDuration(in.welcome().heartbeat_interval(),
                                             "heartbeat_interval", &heartbeatMs);
        m_heartbeatMs = std::clamp<int64_t>(heartbeatMs, 10, 3'600'000);
        uint64_t generation;
        {
            std::lock_guard lock(m_writeMutex);
            session->welcomed = true;
            session->generation = generation = ++m_generation;
        }
        session->phase = Session::Phase::Welcomed;
        ++m_fleet->stats.connects;
        // The state right away (after a reconnect too), not at the first heartbeat.
        write(statusReport(currentState()), generation);
        setConnected(true);
        if (m_fleet->options.heartbeats)
            m_fleet->schedule(
                {nextHeartbeat(), this, generation, {}, FleetPrivate::Item::Kind::Heartbeat});
        session->StartRead(&session->in);
    }

    // A stream that ended UNAVAILABLE before the hub said a word did not connect: say why
    // (refused, a TLS handshake that failed, a plaintext bot closed by a TLS hub), once for
    // the fleet.
    void sayWhyNotConnected(const grpc::Status &status)
    {
        // "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:50051:
        // Socket closed": the last part says it; the address is in the line already.
        const std::string why = security::connectionError(status.error_message());
        const SimOptions &o = m_fleet->options;
        const bool tls = !o.tlsCa.empty() || !o.tlsCert.empty() || !o.tlsServerName.empty();
        std::string line = "botsim: cannot connect to " + o.hub + ": " + why;
        line += hint(why, tls);
        if (m_fleet->firstFailure(line))
            m_fleet->log(line + "; retrying");
    }

    // What to check, when a failed connection looks like TLS's doing: a handshake that failed,
    // or (plaintext) a connection the hub closed before HTTP/2 began, as a TLS hub does.
    static std::string hint(const std::string &why, bool tls)
    {
        const auto has = [&why](const char *text) { return why.find(text) != std::string::npos; };
        if (tls &&
            (has("SSL") || has("Ssl") || has("andshake") || has("certificate") || has("Peer name")))
            return " (TLS: check --tls-ca, --tls-server-name and the bot certificates)";
        if (!tls && (has("Socket closed") || has("Connection reset") || has("SETTINGS")))
            return " (a hub with TLS needs --tls-ca)";
        return {};
    }

    // Why the hub ended a stream before Welcome, once per bot and reason (until welcomed).
    void refused(const grpc::Status &status, const std::string &rejectReason)
    {
        if (m_fleet->stopping)
            return;
        const SimOptions &o = m_fleet->options;
        std::string what;
        const std::string message =
            status.error_message().empty() ? rejectReason : status.error_message();
        switch (status.error_code()) {
        case grpc::StatusCode::UNAUTHENTICATED:
            ++m_fleet->stats.unauthenticated;
            what = "not authenticated: " + message;
            if (o.token.empty() && o.tlsCert.empty())
                what += " (give --token-file or a client certificate: --tls-cert, --tls-key)";
            break;
        case grpc::StatusCode::PERMISSION_DENIED:
            ++m_fleet->stats.permissionDenied;
            what = "permission denied: " + message;
            break;
        case grpc::StatusCode::RESOURCE_EXHAUSTED:
        case grpc::StatusCode::INVALID_ARGUMENT:
        case grpc::StatusCode::ABORTED:
            what = "refused by the hub: " + message;
            break;
        default:
            if (rejectReason.empty())
                return; // the hub went away (UNAVAILABLE) or the stream broke: reconnect quietly
            what = "refused by the hub: " + rejectReason;
            break;
        }
        if (what == m_lastRefusal)
            return;
        m_lastRefusal = what;
        m_fleet->log("botsim: " + m_id + " " + what + "; retrying with back-off");
    }

public:
    FleetPrivate *fleet() const { return m_fleet; }

private:
    // Returns true when the bot should drop its connection now (simulated failure).
    bool handle(const v1::HubMessage &in, uint64_t generation)
    {
        const SimOptions &o = m_fleet->options;
        if (in.has_cancel()) {
            ++m_fleet->stats.cancelsReceived;
            std::lock_guard lock(m_stateMutex);
            if (m_cancelled.insert(in.cancel().command_id()).second)
                holdLocked(in.cancel().command_id());
            return false;
        }
        if (!in.has_command())
            return false;
        const v1::Command &cmd = in.command();
        ++m_fleet->stats.commands;
        {
            // The command id is the idempotency key: a resent id is never executed twice.
            std::lock_guard lock(m_stateMutex);
            const auto seen = m_sentAcks.find(cmd.command_id());
            if (seen != m_sentAcks.end() || m_inProgress.count(cmd.command_id())) {
                ++m_fleet->stats.deduplicated;
                m_fleet->journal(cmd.command_id(), m_id, "dedup");
                if (seen != m_sentAcks.end()) {
                    v1::BotMessage again;
                    *again.mutable_ack() = seen->second;
                    m_fleet->schedule({steady_clock::now(), this, generation, again});
                }
                return false;
            }
        }
        ++m_fleet->stats.executed;
        m_fleet->journal(cmd.command_id(), m_id, "executed");
        v1::BotMessage reply;
        v1::CommandAck &ack = *reply.mutable_ack();
        ack.set_command_id(cmd.command_id());
        *ack.mutable_received_at() = nowStamp();
        const v1::BotState before = currentState();
        apply(cmd, ack);
        // A state change is reported right after the ack, not at the next heartbeat.
        std::optional<v1::BotMessage> status;
        if (const v1::BotState after = currentState(); after != before)
            status = statusReport(after);

        std::uniform_real_distribution<double> coin(0, 1);
        if (coin(m_rng) < o.dropRatio) {
            ++m_fleet->stats.dropped;
            m_fleet->journal(cmd.command_id(), m_id, "dropped");
            std::lock_guard lock(m_stateMutex);
            if (m_inProgress.insert(cmd.command_id()).second)
                holdLocked(cmd.command_id()); // never acked: bounded by holdLocked
            return coin(m_rng) < o.disconnectRatio;
        }
        if (ack.success() && coin(m_rng) < o.failRatio) {
            ack.set_success(false);
            ack.set_error_code(v1::ACK_ERROR_INTERNAL);
            ack.set_message("simulated failure");
        }
        double latencyMs = o.latency.sampleMs(m_rng);
        if (coin(m_rng) < o.lateRatio) {
            int64_t timeout = 1000;
            (void)opconsole::wire::checkDuration(cmd.timeout(), "timeout", &timeout);
            const double timeoutMs = double(std::clamp<int64_t>(timeout, 0, 3'600'000));
            latencyMs = timeoutMs * std::uniform_real_distribution<double>(1.1, 1.5)(m_rng) + 5;
            ++m_fleet->stats.lateAcks;
        }
        const bool duplicate = coin(m_rng) < o.duplicateRatio;
        ack.success() ? ++m_fleet->stats.acksOk : ++m_fleet->stats.acksFailed;
        if (duplicate)
            ++m_fleet->stats.duplicatesSent;

        if (latencyMs < 0.5) {
            *ack.mutable_completed_at() = nowStamp();
            {
                std::lock_guard lock(m_stateMutex);
                rememberLocked(ack);
            }
            write(reply, generation);
            if (status)
                write(*status, generation);
            if (duplicate)
                write(reply, generation);
        } else {
            const auto now = steady_clock::now();
            const auto at =
                now + duration_cast<nanoseconds>(duration<double, std::milli>(latencyMs));
            if (latencyMs > o.progressAboveMs) {
                for (int pct : {25, 50, 75}) {
                    v1::BotMessage progress;
                    progress.mutable_progress()->set_command_id(cmd.command_id());
                    progress.mutable_progress()->set_percent(uint32_t(pct));
                    progress.mutable_progress()->set_message("working");
                    m_fleet->schedule({now + (at - now) * pct / 100, this, generation, progress});
                    ++m_fleet->stats.progressSent;
                }
            }
            {
                std::lock_guard lock(m_stateMutex);
                m_inProgress.insert(cmd.command_id());
            }
            m_fleet->schedule({at, this, generation, reply});
            if (status) // equal times have no order in the scheduler: just after the ack
                m_fleet->schedule({at + microseconds(1), this, generation, *status});
            if (duplicate)
                m_fleet->schedule({at + milliseconds(1), this, generation, reply});
        }
        return coin(m_rng) < o.disconnectRatio;
    }

    static v1::BotMessage statusReport(v1::BotState state)
    {
        v1::BotMessage message;
        message.mutable_status()->set_state(state);
        return message;
    }

    // Ids kept for dropped commands and cancels are bounded like the acks: the oldest go.
    // The newest acks of the last 10 minutes, each id once, within a third of the hub's
    // message limit.
    void addRecentAcks(v1::Hello &hello)
    {
        std::lock_guard lock(m_stateMutex);
        const auto since = steady_clock::now() - std::chrono::minutes(10);
        std::unordered_set<std::string> ids;
        size_t bytes = 0;
        for (auto it = m_recentAcks.rbegin(); it != m_recentAcks.rend(); ++it) {
            if (it->first < since ||
                hello.recent_acks_size() >= opconsole::wire::limits::MaxResentAcks)
                break;
            bytes += it->second.ByteSizeLong() + 8;
            if (bytes > 20 * 1024)
                break;
            if (ids.insert(it->second.command_id()).second)
                *hello.add_recent_acks() = it->second;
        }
        m_fleet->stats.acksResent += uint64_t(hello.recent_acks_size());
    }

    void holdLocked(const std::string &commandId)
    {
        m_held.push_back(commandId);
        if (m_held.size() > DedupCapacity) {
            m_cancelled.erase(m_held.front());
            if (!m_sentAcks.count(m_held.front()))
                m_inProgress.erase(m_held.front());
            m_held.pop_front();
        }
    }

    void rememberLocked(const v1::CommandAck &ack)
    {
        m_inProgress.erase(ack.command_id());
        if (m_sentAcks.emplace(ack.command_id(), ack).second) {
            m_order.push_back(ack.command_id());
            if (m_order.size() > DedupCapacity) {
                m_sentAcks.erase(m_order.front());
                m_cancelled.erase(m_order.front());
                m_order.pop_front();
            }
        }
    }

    // The bot's state machine: what the command does and what the ack says.
    void apply(const v1::Command &cmd, v1::CommandAck &ack)
    {
        std::lock_guard lock(m_stateMutex);
        auto ok = [&](const std::string &message) {
            ack.set_success(true);
            ack.set_message(message);
        };
        auto refuse = [&](const std::string &message) {
            ack.set_success(false);
            ack.set_error_code(v1::ACK_ERROR_INVALID_STATE);
            ack.set_message(message);
        };
        switch (cmd.action_case()) {
        case v1::Command::kStart:
            ok(m_state == v1::BOT_STATE_RUNNING ? "already running" : "started");
            m_state = v1::BOT_STATE_RUNNING;
            break;
        case v1::Command::kStop:
            ok(m_state == v1::BOT_STATE_STOPPED ? "already stopped" : "stopped");
            m_state = v1::BOT_STATE_STOPPED;
            break;
        case v1::Command::kRestart:
            ok("restarted");
            m_state = v1::BOT_STATE_RUNNING;
            break;
        case v1::Command::kPause:
            if (m_state != v1::BOT_STATE_RUNNING) {
                refuse("cannot pause: not running");
            } else {
                ok("paused");
                m_state = v1::BOT_STATE_PAUSED;
            }
            break;
        case v1::Command::kResume:
            if (m_state != v1::BOT_STATE_PAUSED) {
                refuse("cannot resume: not paused");
            } else {
                ok("resumed");
                m_state = v1::BOT_STATE_RUNNING;
            }
            break;
        case v1::Command::kPing:
            ok("pong");
            break;
        case v1::Command::kConfigUpdate:
            for (const auto &[k, v] : cmd.config_update().values())
                m_config[k] = v;
            ok("config v" + std::to_string(cmd.config_update().version()) + " applied (" +
               std::to_string(cmd.config_update().values_size()) + " keys)");
            break;
        case v1::Command::kCustom:
            ok("custom '" + cmd.custom().name() + "' done");
            ack.set_result(cmd.custom().json_payload());
            break;
        case v1::Command::ACTION_NOT_SET:
            ack.set_success(false);
            ack.set_error_code(v1::ACK_ERROR_INVALID_COMMAND);
            ack.set_message("command has no action");
            break;
        }
    }

    FleetPrivate *m_fleet;
    int m_index;
    size_t m_hub = 0; // index into the fleet's hub addresses
    std::string m_id;
    std::map<std::string, std::string> m_labels;
    SimRng m_rng; // reactor callbacks of the one stream at a time
    std::atomic<bool> m_connected{false};
    std::atomic<bool> m_awaiting{false};
    // Reactor callbacks (one stream at a time; the next one starts from the scheduler after
    // the last one's OnDone).
    bool m_heldSaid = false;   // "awaiting approval" logged since the last Welcome
    std::string m_lastRefusal; // the refusal last logged
    milliseconds m_backoff{100};
    std::atomic<int64_t> m_heartbeatMs{1000};
    uint64_t m_heartbeatSequence = 0; // scheduler thread only

    std::mutex m_writeMutex;
    Session *m_session = nullptr; // the stream until its OnDone
    uint64_t m_generation = 0;    // of the last welcomed stream

    std::mutex m_stateMutex;
    v1::BotState m_state = v1::BOT_STATE_STOPPED;
    std::map<std::string, std::string> m_config;
    std::unordered_map<std::string, v1::CommandAck> m_sentAcks;
    std::unordered_set<std::string> m_inProgress;
    std::unordered_set<std::string> m_cancelled;
    std::list<std::string> m_held; // dropped and cancelled ids, oldest first (holdLocked)
    // Acks done lately, oldest first, for the next Hello (addRecentAcks).
    std::list<std::pair<steady_clock::time_point, v1::CommandAck>> m_recentAcks;
    std::list<std::string> m_order;
};

void Session::OnReadDone(bool ok)
{
    bot->onReadDone(this, ok);
}

void Session::OnWriteDone(bool ok)
{
    bot->onWriteDone(this, ok);
}

void Session::OnDone(const grpc::Status &status)
{
    FleetPrivate *fleet = bot->fleet();
    bot->onDone(this, status);
    delete this;
    fleet->sessionEnded();
}

void FleetPrivate::schedulerLoop()
{
    std::unique_lock lock(mutex);
    while (!stopping) {
        if (queue.empty()) {
            wake.wait(lock);
            continue;
        }
        const auto at = queue.top().at;
        if (steady_clock::now() < at) {
            wake.wait_until(lock, at);
            continue;
        }
        // The top is taken out at once: the heap's order does not depend on the message.
        Item item = std::move(const_cast<Item &>(queue.top()));
        queue.pop();
        lock.unlock();
        item.bot->fire(item);
        lock.lock();
    }
}

Fleet::Fleet(SimOptions options) : d(std::make_unique<FleetPrivate>(std::move(options))) {}

Fleet::~Fleet()
{
    stop();
}

bool Fleet::start(std::string *error)
{
    const SimOptions &o = d->options;
    if (!d->bots.empty())
        return true; // started already
    const auto fail = [error](const std::string &why) {
        if (error)
            *error = why;
        return false;
    };
    if (o.tlsCert.empty() != o.tlsKey.empty())
        return fail("a client certificate needs both --tls-cert and --tls-key");
    if (!o.token.empty() && security::bearerToken("Bearer " + o.token).isEmpty())
        return fail("the bot token has spaces or control characters, or is too long");
    // The credentials: one for the fleet, or one per bot when the files name "{id}".
    const auto tlsFor = [&o](const std::string &id) {
        const auto expand = [&id](std::string path) {
            for (size_t at; (at = path.find("{id}")) != std::string::npos;)
                path.replace(at, 4, id);
            return QString::fromStdString(path);
        };
        security::ClientTls tls;
        tls.ca = QString::fromStdString(o.tlsCa);
        tls.cert = expand(o.tlsCert);
        tls.key = expand(o.tlsKey);
        tls.serverName = QString::fromStdString(o.tlsServerName);
        return tls;
    };
    const bool perBot =
        o.tlsCert.find("{id}") != std::string::npos || o.tlsKey.find("{id}") != std::string::npos;
    std::vector<std::shared_ptr<grpc::ChannelCredentials>> credentials;
    for (int i = 0; i < (perBot ? o.bots : std::min(o.bots, 1)); ++i) {
        const std::string id = SimBot::idOf(o, i);
        QString why;
        auto c = security::channelCredentials(tlsFor(id), &why);
        if (!c)
            return fail(perBot ? id + ": " + why.toStdString() : why.toStdString());
        credentials.push_back(std::move(c));
    }

    // The channels: one per credential (a bot certificate each), and a fleet with one set of
    // credentials spreads its streams over a few connections (BotsPerChannel each).
    constexpr int BotsPerChannel = 500;
    const int channelCount =
        perBot ? o.bots : std::max(1, (o.bots + BotsPerChannel - 1) / BotsPerChannel);
    d->channelCount = channelCount;
    d->hubs.clear();
    for (size_t from = 0; from <= o.hub.size();) {
        const size_t comma = std::min(o.hub.find(',', from), o.hub.size());
        if (comma > from)
            d->hubs.push_back(o.hub.substr(from, comma - from));
        from = comma + 1;
    }
    if (d->hubs.empty())
        return fail("no hub address given");
    for (size_t h = 0; h < d->hubs.size(); ++h)
        for (int c = 0; c < channelCount; ++c) {
            const std::string &hub = d->hubs[h];
            grpc::ChannelArguments args;
            // Its own connection: channels with equal arguments would otherwise share one.
            args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
            // No retries: the retry filter keeps per-call state and copies of what is sent, for a
            // stream that is never retried (a bot reconnects on its own).
            args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
            // The least filter stack: no deadline or message size filters (the streams have no
            // deadline, the hub bounds its messages), a few KB less for each of 10,000 streams.
            args.SetInt(GRPC_ARG_MINIMAL_STACK, 1);
            // gRPC's own reconnect back-off (1 s growing to 2 min) would otherwise make a bot wait
            // far longer than its own back-off says after a hub restart.
            args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, int(o.backoffBase.count()));
            args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, int(o.backoffMax.count()));
            // gRPC takes this one as the least time a connection attempt gets (TCP, TLS handshake,
            // HTTP/2 settings), not as a back-off: the back-off's 100 ms would time out handshakes
            // on a busy machine. A refused connection still fails (and is retried) at once.
            args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 10'000);
            security::ClientTls tls;
            tls.serverName = QString::fromStdString(o.tlsServerName);
            security::applyChannelArguments(tls, args);
            d->channels.push_back(
                grpc::CreateCustomChannel(hub, credentials[perBot ? size_t(c) : 0], args));
            d->stubs.push_back(v1::BotLink::NewStub(d->channels.back()));
        }

    if (!o.journalPath.empty() && !d->journalFile)
        d->journalFile = std::fopen(o.journalPath.c_str(), "w");
    for (int i = 0; i < o.bots; ++i)
        d->bots.push_back(std::make_unique<SimBot>(d.get(), i));
    const auto now = steady_clock::now();
    for (auto &bot : d->bots)
        d->schedule({now, bot.get(), 0, {}, FleetPrivate::Item::Kind::Connect});
    d->scheduler = std::thread([this] { d->schedulerLoop(); });
    return true;
}

void Fleet::stop()
{
    {
        std::lock_guard lock(d->mutex);
        if (d->stopping.exchange(true))
            return;
        d->wake.notify_all();
    }
    // No stream starts once the scheduler is gone; those open end with their OnDone, soon
    // after a cancel (asked again now and then, should one have been missed).
    if (d->scheduler.joinable())
        d->scheduler.join();
    for (int round = 0;; ++round) {
        for (auto &bot : d->bots)
            bot->cancel();
        std::unique_lock lock(d->sessionsMutex);
        if (d->sessionsChanged.wait_for(lock, 1s, [this] { return d->liveSessions == 0; }))
            break;
        if (round == 10)
            d->log("botsim: " + std::to_string(d->liveSessions) +
                   " streams have not ended 10 s after a cancel; still waiting");
    }
    if (d->journalFile) {
        std::fclose(d->journalFile);
        d->journalFile = nullptr;
    }
}

const SimStats &Fleet::stats() const
{
    return d->stats;
}

int Fleet::connectedCount() const
{
    return d->connectedNow;
}

int Fleet::awaitingCount() const
{
    return d->awaitingNow;
}

bool Fleet::waitConnected(int count, milliseconds timeout) const
{
    std::unique_lock lock(d->connectedMutex);
    return d->connectedChanged.wait_for(lock, timeout,
                                        [this, count] { return connectedCount() >= count; });
}

std::vector<std::string> Fleet::botIds() const
{
    std::vector<std::string> ids;
    for (const auto &bot : d->bots)
        ids.push_back(bot->id());
    return ids;
}

} // namespace opconsole::botsim
