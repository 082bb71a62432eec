#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace opconsole::botsim {

// A small, fast random generator (splitmix64) for each bot: 8 bytes where std::mt19937_64
// takes 2.5 KB, which counts with 10,000 bots in a process.
struct SimRng
{
    using result_type = uint64_t;
    uint64_t state = 0;
    static constexpr result_type min() { return 0; }
    static constexpr result_type max() { return ~uint64_t(0); }
    result_type operator()()
    {
        uint64_t z = (state += 0x9e3779b97f4a7c15u);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
        return z ^ (z >> 31);
    }
};

// Ack latency: fixed:MS, uniform:MIN:MAX, lognormal:MEDIAN:P99 (milliseconds).
struct LatencyModel
{
    enum class Kind
    {
        Fixed,
        Uniform,
        LogNormal
    };
    Kind kind = Kind::Fixed;
    double a = 0; // fixed value, uniform min, lognormal median
    double b = 0; // uniform max, lognormal p99

    static bool parse(const std::string &text, LatencyModel *out, std::string *error);
    double sampleMs(std::mt19937_64 &rng) const;
    double sampleMs(SimRng &rng) const;
    std::string describe() const;
};

struct SimOptions
{
    // One hub address, or several separated by commas (a cluster): the bots are spread over
    // them and each moves on to the next when its stream ends.
    std::string hub = "127.0.0.1:50051";
    int bots = 10;
    std::string idPrefix = "bot-";
    int firstIndex = 1;
    std::map<std::string, std::string> labels; // given to every bot; "group" alternates a/b
    LatencyModel latency;
    double failRatio = 0;       // ack with success=false
    double dropRatio = 0;       // never ack
    double duplicateRatio = 0;  // ack twice
    double lateRatio = 0;       // ack after the command's timeout
    double disconnectRatio = 0; // drop the connection after a command, then reconnect
    int progressAboveMs = 1000; // send progress for commands slower than this
    bool heartbeats = true;     // false: go silent after Hello (liveness tests)
    // Hello carries the acks of the latest commands (Hello.recent_acks: at most 256, from the
    // last 10 minutes), so a hub that lost an ack with a connection or a restart learns it.
    bool resendAcks = true;
    std::chrono::milliseconds backoffBase{100};
    std::chrono::milliseconds backoffMax{5000};
    uint64_t seed = 1;
    // When set, one line per decision about a command, for checking the hub's outcomes
    // against what the bots did (scripts/soak.sh): "<command_id> <bot_id> <what>", with what
    // one of executed, dropped, ack-ok, ack-fail (an ack written to the stream), dedup.
    std::string journalPath;

    // Security (docs/security.md). TLS is on when tlsCa, tlsCert or tlsServerName is set. In
    // tlsCert and tlsKey, "{id}" stands for each bot's id (one certificate per bot, as
    // scripts/certs.sh makes them: DIR/bots/{id}.pem); without it every bot presents the same.
    std::string tlsCa;         // trust this CA for the hub's certificate
    std::string tlsCert;       // a client certificate (mTLS), with tlsKey
    std::string tlsKey;        // its private key
    std::string tlsServerName; // the name the hub's certificate must carry (default: the host)
    std::string token;         // a bot token, sent as "authorization: Bearer <token>"
    // Refusals (UNAUTHENTICATED, PERMISSION_DENIED, a Reject) and connection failures are
    // logged (one line per bot and distinct reason) through this; null: stderr.
    std::function<void(const std::string &line)> log;
};

struct SimStats
{
    std::atomic<uint64_t> connects{0};
    std::atomic<uint64_t> rejectedByHub{0};
    std::atomic<uint64_t> disconnects{0}; // simulated drops
    std::atomic<uint64_t> streamErrors{0};
    std::atomic<uint64_t> commands{0};
    std::atomic<uint64_t> executed{0};
    std::atomic<uint64_t> deduplicated{0};
    std::atomic<uint64_t> acksOk{0};
    std::atomic<uint64_t> acksFailed{0};
    std::atomic<uint64_t> dropped{0};
    std::atomic<uint64_t> duplicatesSent{0};
    std::atomic<uint64_t> lateAcks{0};
    std::atomic<uint64_t> progressSent{0};
    std::atomic<uint64_t> cancelsReceived{0};
    std::atomic<uint64_t> heartbeatsSent{0};
    std::atomic<uint64_t> acksDone{0};         // acks whose time came (written, or not: no stream)
    std::atomic<uint64_t> acksResent{0};       // acks carried again in a Hello
    std::atomic<uint64_t> held{0};             // Hellos answered with Held (awaiting approval)
    std::atomic<uint64_t> unauthenticated{0};  // streams ended UNAUTHENTICATED
    std::atomic<uint64_t> permissionDenied{0}; // streams ended PERMISSION_DENIED

    std::string summary() const;
};

class FleetPrivate;

// A fleet of simulated bots, each a real gRPC client of the hub on its own stream. The streams
// are gRPC callback reactors on a few shared connections (one per bot when each has its own
// certificate); timers (heartbeats, ack delays, reconnect back-off) are one scheduler thread's
// queue: 10,000 bots take a handful of threads.
class Fleet
{
public:
    explicit Fleet(SimOptions options);
    ~Fleet(); // stops

    // False with *error when the TLS files cannot be used (missing, not PEM, a key that does
    // not match its certificate) or the token is malformed; nothing is started then.
    bool start(std::string *error = nullptr);
    void stop();
    const SimStats &stats() const;
    // How many bots have a live, welcomed stream now.
    int connectedCount() const;
    // How many bots the hub holds awaiting approval now (a Held answer, no Welcome yet).
    int awaitingCount() const;
    bool waitConnected(int count, std::chrono::milliseconds timeout) const;
    std::vector<std::string> botIds() const;

private:
    std::unique_ptr<FleetPrivate> d;
};

} // namespace opconsole::botsim
