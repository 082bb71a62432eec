// The soak run (scripts/soak.sh): a headless hub and a botsim fleet with every fault on, an
// ack-flooding bot and a bot that never reads, and many Operator API callers sending, cancelling
// and fanning out for N minutes. Then it checks what an operator relies on:
//   - every command has exactly one outcome (the API's answer and the Watch's one final event
//   agree);
//   - the outcome matches what the bot side did (botsim's journal): acked means the bot sent an
//     ok ack, rejected a failing one, not connected means no bot ever got it;
//   - no caller waited past its deadline;
//   - hub memory after warm-up stays flat (first vs last minute);
//   - the hub exits 0 on SIGTERM.
// Prints "name value unit" figures; exits 1 when a check fails.
#include "benchprint.h"
#include "opconsole/v1/botlink.grpc.pb.h"
#include "opconsole/v1/operator.grpc.pb.h"

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QTemporaryDir>
#include <QThread>

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

using namespace opconsole;
using namespace std::chrono;

namespace {

google::protobuf::Duration ms(int64_t v)
{
    google::protobuf::Duration d;
    d.set_seconds(v / 1000);
    d.set_nanos(int32_t((v % 1000) * 1'000'000));
    return d;
}

struct Sent
{
    v1::Outcome outcome = v1::OUTCOME_UNSPECIFIED;
    std::string bot;
    std::string reason;
    int64_t allowedMs = 0; // timeout + connect timeout
    int64_t waitedMs = 0;  // 0 for fan-out results
};

struct Shared
{
    std::mutex mutex;
    std::map<std::string, Sent> sent; // by command id
    std::atomic<int> apiErrors{0};
    std::atomic<bool> stop{false};
    void record(const v1::CommandRecord &r, int64_t allowedMs, int64_t waitedMs)
    {
        std::lock_guard lock(mutex);
        Sent &s = sent[r.command_id()];
        s.outcome = r.outcome();
        s.bot = r.bot_id();
        s.reason = r.reason();
        s.allowedMs = allowedMs;
        s.waitedMs = waitedMs;
    }
};

qint64 rssKb(qint64 pid)
{
    QFile f(QStringLiteral("/proc/%1/status").arg(pid));
    if (!f.open(QIODevice::ReadOnly))
        return 0;
    for (const QByteArray &line : f.readAll().split('\n')) {
        if (line.startsWith("VmRSS:"))
            return line.mid(6).trimmed().split(' ').value(0).toLongLong();
    }
    return 0;
}

// One caller of the Operator API (at `address`, the operator listener): send-and-wait, cancel
// some, fan out now and then.
void caller(int index, const std::string &address, int bots, uint64_t seed, Shared &shared)
{
    auto stub =
        v1::Operator::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    std::mt19937_64 rng(seed * 1000 + uint64_t(index));
    std::uniform_real_distribution<double> coin(0, 1);
    int n = 0;
    while (!shared.stop) {
        const double action = coin(rng);
        const int64_t timeout = std::uniform_int_distribution<int64_t>(200, 3000)(rng);
        if (action < 0.08) { // fan-out to group a
            v1::SendToManyRequest request;
            (*request.mutable_label_selector())["group"] = "a";
            request.mutable_command()->mutable_ping();
            *request.mutable_timeout() = ms(timeout);
            grpc::ClientContext context;
            context.set_deadline(system_clock::now() + milliseconds(timeout + 10'000));
            auto reader = stub->SendToMany(&context, request);
            v1::SendToManyEvent event;
            while (reader->Read(&event)) {
                if (event.has_result())
                    shared.record(event.result(), timeout, 0);
            }
            if (!reader->Finish().ok())
                ++shared.apiErrors;
            continue;
        }
        v1::SendCommandRequest request;
        std::string bot;
        const double who = coin(rng);
        if (who < 0.03)
            bot = "sloth"; // never reads: its queue fills
        else if (who < 0.05)
            bot = "ghost-" + std::to_string(index); // never connects
        else
            bot = "soak-" + std::to_string(std::uniform_int_distribution<int>(1, bots)(rng));
        request.set_bot_id(bot);
        const std::string id = "s" + std::to_string(index) + "-" + std::to_string(++n);
        request.mutable_command()->set_command_id(id);
        const double kind = coin(rng);
        if (kind < 0.4)
            request.mutable_command()->mutable_ping();
        else if (kind < 0.6)
            request.mutable_command()->mutable_start();
        else if (kind < 0.8)
            request.mutable_command()->mutable_pause();
        else
            (*request.mutable_command()->mutable_config_update()->mutable_values())["depth"] =
                std::to_string(n % 10);
        *request.mutable_timeout() = ms(timeout);
        const int64_t connect = coin(rng) < 0.1 ? 1500 : 0;
        *request.mutable_connect_timeout() = ms(connect);
        const bool cancelIt = coin(rng) < 0.08;
        grpc::ClientContext context;
        context.set_deadline(system_clock::now() + milliseconds(timeout + connect + 10'000));
        v1::SendCommandResponse response;
        const auto started = steady_clock::now();
        std::unique_ptr<std::thread> canceller;
        if (cancelIt) {
            const auto delay = milliseconds(std::uniform_int_distribution<int>(0, 300)(rng));
            canceller = std::make_unique<std::thread>([&stub, id, delay] {
                std::this_thread::sleep_for(delay); // the load itself: cancel at a random moment
                grpc::ClientContext cancelContext;
                cancelContext.set_deadline(system_clock::now() + 10s);
                v1::CancelCommandRequest cancel;
                cancel.set_command_id(id);
                cancel.set_reason("soak cancel");
                v1::CancelCommandResponse cancelled;
                stub->CancelCommand(&cancelContext, cancel, &cancelled);
            });
        }
        const grpc::Status status = stub->SendCommand(&context, request, &response);
        const int64_t waited = duration_cast<milliseconds>(steady_clock::now() - started).count();
        if (canceller)
            canceller->join();
        if (!status.ok()) {
            ++shared.apiErrors;
            continue;
        }
        shared.record(response.record(), timeout + connect, waited);
    }
}

// Acks commands that do not exist, as fast as it can; the hub ends its stream after a burst
// of violations, and it comes back.
void flooder(const std::string &address, Shared &shared, std::atomic<int> &sessions)
{
    auto stub =
        v1::BotLink::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    uint64_t n = 0;
    while (!shared.stop) {
        grpc::ClientContext context;
        auto stream = stub->Connect(&context);
        v1::BotMessage hello;
        hello.mutable_hello()->set_bot_id("flooder");
        hello.mutable_hello()->set_protocol_version(1);
        if (!stream->Write(hello))
            break;
        ++sessions;
        v1::BotMessage ack;
        ack.mutable_ack()->set_success(true);
        for (int i = 0; i < 100'000 && !shared.stop; ++i) {
            ack.mutable_ack()->set_command_id("nope-" + std::to_string(++n));
            if (!stream->Write(ack))
                break;
        }
        context.TryCancel();
        stream->Finish();
    }
}

// Says Hello and heartbeats, never reads a message.
void sloth(const std::string &address, Shared &shared)
{
    auto stub =
        v1::BotLink::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    while (!shared.stop) {
        grpc::ClientContext context;
        auto stream = stub->Connect(&context);
        v1::BotMessage hello;
        hello.mutable_hello()->set_bot_id("sloth");
        hello.mutable_hello()->set_protocol_version(1);
        stream->Write(hello);
        v1::BotMessage beat;
        beat.mutable_heartbeat()->set_state(v1::BOT_STATE_RUNNING);
        bool up = true;
        while (up && !shared.stop) {
            std::this_thread::sleep_for(300ms); // the heartbeat period itself
            up = stream->Write(beat);
        }
        context.TryCancel();
        stream->Finish();
    }
}

} // namespace

int main(int argc, char **argv)
{
    QCoreApplication app(argc, argv);
    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral("Soak run of the hub; see scripts/soak.sh."));
    parser.addHelpOption();
    parser.addOptions({
        {QStringLiteral("minutes"), QStringLiteral("Length of the load (default 10)."),
         QStringLiteral("m"), QStringLiteral("10")},
        {QStringLiteral("bots"), QStringLiteral("botsim bots (default 40)."), QStringLiteral("n"),
         QStringLiteral("40")},
        {QStringLiteral("callers"), QStringLiteral("API callers (default 16)."),
         QStringLiteral("n"), QStringLiteral("16")},
        {QStringLiteral("seed"), QStringLiteral("Random seed (default 1)."), QStringLiteral("n"),
         QStringLiteral("1")},
    });
    parser.process(app);
    const double minutes = parser.value(QStringLiteral("minutes")).toDouble();
    const int bots = parser.value(QStringLiteral("bots")).toInt();
    const int callers = parser.value(QStringLiteral("callers")).toInt();
    const uint64_t seed = parser.value(QStringLiteral("seed")).toULongLong();
    if (!(minutes > 0 && minutes <= 240) || bots < 1 || bots > 1000 || callers < 1 ||
        callers > 256) {
        std::fprintf(stderr, "soak: --minutes 0..240, --bots 1..1000, --callers 1..256\n");
        return 64;
    }
    const QString bin = QCoreApplication::applicationDirPath();
    QTemporaryDir work;
    const QString journalPath = work.filePath(QStringLiteral("journal.txt"));

    // The hub.
    QProcess hub;
    hub.setProgram(bin + QStringLiteral("/opconsole"));
    // Its own data directory: history, and admission decisions (a bot rejected in the user's
    // own hub must not be refused here).
    hub.setArguments({"--headless", "--listen", "127.0.0.1:0", "--operator-listen", "127.0.0.1:0",
                      "--heartbeat", "1000", "--data-dir", work.filePath(QStringLiteral("data"))});
    hub.setStandardErrorFile(work.filePath(QStringLiteral("hub.log")));
    QFile hubLog(work.filePath(QStringLiteral("hub.log")));
    hub.start();
    if (!hub.waitForStarted(10'000)) {
        std::fprintf(stderr, "soak: cannot start %s\n", qPrintable(hub.program()));
        return 1;
    }
    // Where it listens: its first log line. Bots dial `address`; the Operator API has its own
    // listener, `operatorAddress`.
    std::string address, operatorAddress;
    for (int i = 0; i < 100 && address.empty(); ++i) {
        QThread::msleep(100); // polling a file the hub writes: bounded, 10 s in all
        if (hubLog.open(QIODevice::ReadOnly)) {
            for (const QByteArray &line : hubLog.readAll().split('\n')) {
                const QJsonObject o = QJsonDocument::fromJson(line).object();
                if (o.value("event") == "hub_started") {
                    address = o.value("address").toString().toStdString();
                    operatorAddress = o.value("operator_address").toString().toStdString();
                }
            }
            hubLog.close();
        }
    }
    if (address.empty() || operatorAddress.empty()) {
        std::fprintf(stderr, "soak: the hub did not say where it listens (address and "
                             "operator_address of hub_started)\n");
        return 1;
    }
    const qint64 hubPid = hub.processId();

    // The fleet, every fault on.
    QProcess fleet;
    fleet.setProgram(bin + QStringLiteral("/botsim"));
    fleet.setArguments({"--hub",
                        QString::fromStdString(address),
                        "--bots",
                        QString::number(bots),
                        "--prefix",
                        "soak-",
                        "--latency",
                        "lognormal:40:800",
                        "--fail",
                        "0.05",
                        "--drop",
                        "0.03",
                        "--duplicate",
                        "0.05",
                        "--late",
                        "0.03",
                        "--disconnect",
                        "0.005",
                        "--progress-above",
                        "200",
                        "--seed",
                        QString::number(seed),
                        "--journal",
                        journalPath});
    fleet.setStandardOutputFile(work.filePath(QStringLiteral("botsim.out")));
    fleet.setStandardErrorFile(QProcess::nullDevice());
    fleet.start();
    if (!fleet.waitForStarted(10'000)) {
        std::fprintf(stderr, "soak: cannot start botsim\n");
        return 1;
    }

    Shared shared;
    // The Watch: every final event per command id.
    std::map<std::string, int> finals;
    std::map<std::string, v1::Outcome> watchedOutcome;
    std::mutex watchMutex;
    grpc::ClientContext watchContext;
    auto watchStub = v1::Operator::NewStub(
        grpc::CreateChannel(operatorAddress, grpc::InsecureChannelCredentials()));
    auto watch = watchStub->Watch(&watchContext, v1::WatchRequest());
    std::thread watcher([&] {
        v1::WatchEvent event;
        while (watch->Read(&event)) {
            if (!event.has_command() || event.command().outcome() == v1::OUTCOME_PENDING ||
                event.event() == "late_ack")
                continue;
            std::lock_guard lock(watchMutex);
            ++finals[event.command().command_id()];
            watchedOutcome[event.command().command_id()] = event.command().outcome();
        }
    });

    std::atomic<int> flooderSessions{0};
    std::vector<std::thread> threads;
    threads.reserve(size_t(callers) + 2);
    threads.emplace_back([&] { flooder(address, shared, flooderSessions); });
    threads.emplace_back([&] { sloth(address, shared); });
    // The fleet connects before the callers start.
    for (int i = 0; i < 300; ++i) {
        grpc::ClientContext context;
        v1::ListBotsRequest list;
        list.set_connected_only(true);
        v1::ListBotsResponse listed;
        if (watchStub->ListBots(&context, list, &listed).ok() && listed.bots_size() >= bots)
            break;
        QThread::msleep(100); // polling, bounded: 30 s
    }
    for (int i = 0; i < callers; ++i)
        threads.emplace_back([&, i] { caller(i, operatorAddress, bots, seed, shared); });

    // Load for the given minutes, sampling the hub's memory every 5 s.
    std::vector<std::pair<double, qint64>> rss; // (seconds, kB)
    const auto start = steady_clock::now();
    const auto end = start + duration_cast<steady_clock::duration>(duration<double>(minutes * 60));
    while (steady_clock::now() < end) {
        QThread::msleep(5000); // the sampling period
        rss.emplace_back(duration<double>(steady_clock::now() - start).count(), rssKb(hubPid));
    }
    shared.stop = true;
    for (auto &t : threads)
        t.join();
    QThread::msleep(1500); // the last late and duplicate acks (at most 1.5x a 3 s timeout)

    fleet.terminate();
    fleet.waitForFinished(30'000);
    ::kill(pid_t(hubPid), SIGTERM);
    const bool hubExited = hub.waitForFinished(30'000);
    const int hubExit = hubExited && hub.exitStatus() == QProcess::NormalExit ? hub.exitCode() : -1;
    watcher.join();

    // The bots' side.
    std::map<std::string, std::set<std::string>> journal;
    QFile journalFile(journalPath);
    if (journalFile.open(QIODevice::ReadOnly)) {
        for (const QByteArray &line : journalFile.readAll().split('\n')) {
            const QList<QByteArray> parts = line.split(' ');
            if (parts.size() == 3)
                journal[parts[0].toStdString()].insert(parts[2].toStdString());
        }
    }

    // The checks.
    int total = 0, notOne = 0, disagree = 0, mismatch = 0, waitedTooLong = 0;
    std::map<int, int> byOutcome;
    std::vector<std::string> examples;
    auto example = [&](const std::string &what) {
        if (examples.size() < 10)
            examples.push_back(what);
    };
    for (const auto &[id, s] : shared.sent) {
        ++total;
        ++byOutcome[s.outcome];
        const int seen = finals.count(id) ? finals.at(id) : 0;
        if (seen != 1) {
            ++notOne;
            example(id + ": " + std::to_string(seen) + " final events on Watch");
        } else if (watchedOutcome.at(id) != s.outcome) {
            ++disagree;
            example(id + ": Watch and API disagree");
        }
        if (s.waitedMs > s.allowedMs + 1000) {
            ++waitedTooLong;
            example(id + ": caller waited " + std::to_string(s.waitedMs) + " ms, allowed " +
                    std::to_string(s.allowedMs));
        }
        if (s.bot.rfind("soak-", 0) != 0)
            continue; // only botsim keeps a journal
        const auto j = journal.find(id);
        const bool executed = j != journal.end() && j->second.count("executed");
        const bool ackOk = j != journal.end() && j->second.count("ack-ok");
        const bool ackFail = j != journal.end() && j->second.count("ack-fail");
        bool ok = true;
        switch (s.outcome) {
        case v1::OUTCOME_ACKED:
            ok = ackOk;
            break;
        case v1::OUTCOME_REJECTED:
            ok = ackFail;
            break;
        case v1::OUTCOME_NOT_CONNECTED:
        case v1::OUTCOME_REFUSED:
            ok = !executed; // never reached a bot
            break;
        case v1::OUTCOME_EXPIRED:
            // The bot dropped it or answered late, or it expired before the bot read it:
            // only an answer in time would contradict it, and that would have been acked.
            break;
        default:
            break; // cancelled, disconnected: anything may have happened on the bot
        }
        if (!ok) {
            ++mismatch;
            example(id + ": hub says " + v1::Outcome_Name(s.outcome) + " (" + s.reason +
                    "), the bot's journal disagrees");
        }
    }
    // Memory: the first minute after warm-up (the 5-minute late-ack window fills first) vs the
    // last minute.
    const double warmup = std::min(300.0, minutes * 60 / 2);
    auto meanMb = [&](double from, double to) {
        double sum = 0;
        int n = 0;
        for (const auto &[t, kb] : rss) {
            if (t >= from && t < to) {
                sum += double(kb);
                ++n;
            }
        }
        return n ? sum / n / 1024 : 0.0;
    };
    const double last = rss.empty() ? 0 : rss.back().first;
    const double firstMb = meanMb(warmup, warmup + 60);
    const double lastMb = meanMb(last - 60, last + 1);
    const bool memoryChecked = minutes >= 10;
    const bool memoryFlat = !memoryChecked || (firstMb > 0 && lastMb <= firstMb * 1.15);

    printFigure("soak_minutes", minutes, "min");
    printFigure("soak_commands", total, "commands");
    for (const auto &[outcome, n] : byOutcome)
        printFigure(("soak_outcome_" + v1::Outcome_Name(v1::Outcome(outcome))).c_str(), n,
                    "commands");
    printFigure("soak_api_errors", shared.apiErrors, "calls");
    printFigure("soak_not_exactly_one_outcome", notOne, "commands");
    printFigure("soak_watch_api_disagree", disagree, "commands");
    printFigure("soak_outcome_vs_bot_mismatch", mismatch, "commands");
    printFigure("soak_waited_past_deadline", waitedTooLong, "calls");
    printFigure("soak_flooder_sessions", flooderSessions, "sessions");
    printFigure("soak_hub_rss_first_minute_after_warmup", firstMb, "MB");
    printFigure("soak_hub_rss_last_minute", lastMb, "MB");
    printFigure("soak_hub_exit_code", hubExit, "");
    for (const std::string &e : examples)
        std::fprintf(stderr, "soak: %s\n", e.c_str());
    if (!memoryChecked)
        std::fprintf(stderr, "soak: memory flatness is checked on runs of 10 minutes or more\n");
    const bool pass = total > 0 && notOne == 0 && disagree == 0 && mismatch == 0 &&
                      waitedTooLong == 0 && shared.apiErrors == 0 && memoryFlat && hubExit == 0;
    std::printf("soak: %s\n", pass ? "PASS" : "FAIL");
    return pass ? 0 : 1;
}
