#include "simfleet.h"

#include "opconsole/v1/botlink.grpc.pb.h"

#include "wirecheck.h"
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <queue>
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

double LatencyModel::sampleMs(std::mt19937_64 &rng) const
{
    switch (kind) {
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
        << " heartbeats=" << heartbeatsSent << " acks_resent=" << acksResent;
    return out.str();
}

class SimBot;

class FleetPrivate
{
public:
    struct Item
    {
        SteadyTime at;
        SimBot *bot;
        uint64_t generation;
        v1::BotMessage message;
        bool heartbeat = false;
        bool operator<(const Item &other) const { return at > other.at; } // min-heap
    };

    explicit FleetPrivate(SimOptions o) : options(std::move(o)) {}

    void schedule(Item item)
    {
        std::lock_guard lock(mutex);
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
    // Sleeps up to `d`; false when the fleet is stopping.
    bool sleepFor(milliseconds d)
    {
        std::unique_lock lock(mutex);
        return !backoffWake.wait_for(lock, d, [this] { return stopping.load(); });
    }

    SimOptions options;
    SimStats stats;
    std::atomic<bool> stopping{false};
    std::mutex mutex;
    std::condition_variable wake;        // the scheduler's: schedule() wakes only it
    std::condition_variable backoffWake; // bots sleeping in reconnect back-off: only stop()
    std::priority_queue<Item> queue;
    std::thread scheduler;
    std::vector<std::unique_ptr<SimBot>> bots;

    std::mutex connectedMutex;
    std::condition_variable connectedChanged;
    void notifyConnected()
    {
        std::lock_guard lock(connectedMutex);
        connectedChanged.notify_all();
    }
};

// One simulated bot: a reader thread that keeps a stream open, reconnecting with exponential
// backoff; timed acks, progress and heartbeats go through the fleet's scheduler thread.
class SimBot
{
public:
    SimBot(FleetPrivate *fleet, int index) : m_fleet(fleet), m_index(index)
    {
        const SimOptions &o = fleet->options;
        m_id = o.idPrefix + std::to_string(o.firstIndex + index);
        m_labels = o.labels;
        m_labels.emplace("group", index % 2 == 0 ? "a" : "b");
        m_rng.seed(o.seed * 1'000'003u + uint64_t(index));
        grpc::ChannelArguments args;
        args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1); // its own connection, like a real bot
        // gRPC's own reconnect back-off (1 s growing to 2 min) would otherwise make a bot wait
        // far longer than its own back-off says after a hub restart.
        args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, int(o.backoffBase.count()));
        args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, int(o.backoffBase.count()));
        args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, int(o.backoffMax.count()));
        m_stub = v1::BotLink::NewStub(
            grpc::CreateCustomChannel(o.hub, grpc::InsecureChannelCredentials(), args));
    }

    void start()
    {
        m_thread = std::thread([this] { run(); });
    }
    void cancelStream()
    {
        std::lock_guard lock(m_contextMutex);
        if (m_context)
            m_context->TryCancel();
    }
    void join()
    {
        if (m_thread.joinable())
            m_thread.join();
    }
    const std::string &id() const { return m_id; }
    bool connected() const { return m_connected; }

    // Writes on the current stream if it is still generation `generation` (any generation: 0).
    bool write(const v1::BotMessage &message, uint64_t generation)
    {
        std::lock_guard lock(m_writeMutex);
        if (!m_stream || (generation != 0 && generation != m_generation))
            return false;
        const bool written = m_stream->Write(message);
        if (written && message.has_ack())
            m_fleet->journal(message.ack().command_id(), m_id,
                             message.ack().success() ? "ack-ok" : "ack-fail");
        return written;
    }

    void fire(FleetPrivate::Item &item)
    {
        if (item.heartbeat) {
            v1::BotMessage beat;
            beat.mutable_heartbeat()->set_sequence(++m_heartbeatSequence);
            beat.mutable_heartbeat()->set_state(currentState());
            if (write(beat, item.generation)) {
                ++m_fleet->stats.heartbeatsSent;
                item.at = steady_clock::now() + m_heartbeatInterval;
                m_fleet->schedule(std::move(item));
            }
            return;
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
            // Done, whether or not this stream still carries it: the next Hello says it again.
            std::lock_guard lock(m_stateMutex);
            m_recentAcks.emplace_back(steady_clock::now(), ack);
            ++m_fleet->stats.acksDone;
            if (m_recentAcks.size() > size_t(opconsole::wire::limits::MaxResentAcks))
                m_recentAcks.pop_front();
            // An ack is the bot's, not the connection's: one done after a reconnect goes on the
            // new stream (the hub takes it as a late ack if it lost track of the command).
            write(item.message, 0);
            return;
        }
        write(item.message, item.generation);
    }

private:
    v1::BotState currentState()
    {
        std::lock_guard lock(m_stateMutex);
        return m_state;
    }

    void run()
    {
        const SimOptions &o = m_fleet->options;
        auto backoff = o.backoffBase;
        while (!m_fleet->stopping) {
            grpc::ClientContext context;
            // Waits for the channel to connect instead of failing at once while gRPC backs off.
            context.set_wait_for_ready(true);
            {
                std::lock_guard lock(m_contextMutex);
                m_context = &context;
            }
            if (!m_fleet->stopping && session(context))
                backoff = o.backoffBase;
            {
                std::lock_guard lock(m_contextMutex);
                m_context = nullptr;
            }
            if (m_fleet->stopping || !m_fleet->sleepFor(backoff))
                break;
            backoff = std::min(backoff * 2, o.backoffMax);
        }
    }

    // One connection; true when it was welcomed.
    bool session(grpc::ClientContext &context)
    {
        auto stream = m_stub->Connect(&context);
        v1::BotMessage hello;
        hello.mutable_hello()->set_bot_id(m_id);
        hello.mutable_hello()->set_protocol_version(1);
        hello.mutable_hello()->set_bot_version("botsim/1");
        for (const auto &[k, v] : m_labels)
            (*hello.mutable_hello()->mutable_labels())[k] = v;
        if (m_fleet->options.resendAcks)
            addRecentAcks(*hello.mutable_hello());
        v1::HubMessage in;
        if (!stream->Write(hello) || !stream->Read(&in) || !in.has_welcome()) {
            if (in.has_reject())
                ++m_fleet->stats.rejectedByHub;
            context.TryCancel();
            stream->Finish();
            ++m_fleet->stats.streamErrors;
            return false;
        }
        // Whatever the hub says, within 10 ms .. 1 h (a bad value must not abort a bot).
        int64_t heartbeatMs = 2000;
        (void)opconsole::wire::checkDuration(in.welcome().heartbeat_interval(),
                                             "heartbeat_interval", &heartbeatMs);
        m_heartbeatInterval = milliseconds(std::clamp<int64_t>(heartbeatMs, 10, 3'600'000));
        uint64_t generation;
        {
            std::lock_guard lock(m_writeMutex);
            m_stream = stream.get();
            generation = ++m_generation;
        }
        m_connected = true;
        ++m_fleet->stats.connects;
        // The state right away (after a reconnect too), not at the first heartbeat.
        write(statusReport(currentState()), generation);
        m_fleet->notifyConnected();
        if (m_fleet->options.heartbeats)
            m_fleet->schedule(
                {steady_clock::now() + m_heartbeatInterval, this, generation, {}, true});

        bool drop = false;
        while (!drop && stream->Read(&in))
            drop = handle(in, generation);
        m_connected = false;
        m_fleet->notifyConnected();
        {
            std::lock_guard lock(m_writeMutex);
            m_stream = nullptr;
            ++m_generation; // scheduled items of this connection are void now
        }
        if (drop) {
            ++m_fleet->stats.disconnects;
            context.TryCancel();
        }
        stream->Finish();
        return true;
    }

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
    std::string m_id;
    std::map<std::string, std::string> m_labels;
    std::mt19937_64 m_rng;
    std::unique_ptr<v1::BotLink::Stub> m_stub;
    std::thread m_thread;
    std::atomic<bool> m_connected{false};
    milliseconds m_heartbeatInterval{1000};
    uint64_t m_heartbeatSequence = 0; // scheduler thread only

    std::mutex m_contextMutex;
    grpc::ClientContext *m_context = nullptr;

    std::mutex m_writeMutex;
    grpc::ClientReaderWriter<v1::BotMessage, v1::HubMessage> *m_stream = nullptr;
    uint64_t m_generation = 0;

    std::mutex m_stateMutex;
    v1::BotState m_state = v1::BOT_STATE_STOPPED;
    std::map<std::string, std::string> m_config;
    std::unordered_map<std::string, v1::CommandAck> m_sentAcks;
    std::unordered_set<std::string> m_inProgress;
    std::unordered_set<std::string> m_cancelled;
    std::deque<std::string> m_held; // dropped and cancelled ids, oldest first (holdLocked)
    // Acks done lately, oldest first, for the next Hello (addRecentAcks).
    std::deque<std::pair<steady_clock::time_point, v1::CommandAck>> m_recentAcks;
    std::deque<std::string> m_order;
};

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
        Item item = queue.top();
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

void Fleet::start()
{
    if (!d->options.journalPath.empty() && !d->journalFile)
        d->journalFile = std::fopen(d->options.journalPath.c_str(), "w");
    for (int i = 0; i < d->options.bots; ++i)
        d->bots.push_back(std::make_unique<SimBot>(d.get(), i));
    d->scheduler = std::thread([this] { d->schedulerLoop(); });
    for (auto &bot : d->bots)
        bot->start();
}

void Fleet::stop()
{
    {
        std::lock_guard lock(d->mutex);
        if (d->stopping.exchange(true))
            return;
        d->wake.notify_all();
        d->backoffWake.notify_all();
    }
    for (auto &bot : d->bots)
        bot->cancelStream();
    for (auto &bot : d->bots)
        bot->join();
    if (d->scheduler.joinable())
        d->scheduler.join();
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
    return int(std::count_if(d->bots.begin(), d->bots.end(),
                             [](const auto &bot) { return bot->connected(); }));
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
