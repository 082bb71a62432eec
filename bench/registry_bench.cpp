// Prints one line per figure: "name value unit". See docs/performance.md.
#include "benchprint.h"
#include "commandregistry.h"

#include <QCoreApplication>
#include <QElapsedTimer>
#include <QTimer>

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <random>
#include <vector>

using namespace opconsole;
using namespace std::chrono;

namespace {

QString idFor(const char *prefix, int i)
{
    return QString::fromLatin1(prefix) + QString::number(i);
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// Register+resolve pairs on one thread, with `background` other commands pending throughout.
// The median of several rounds: this machine is shared and noisy.
double pairsPerSecond(int background, int pairs, bool withFuture, int rounds)
{
    CommandRegistry registry;
    registry.setMaxRemembered(10'000);
    const QString bot = QStringLiteral("bot-1");
    for (int i = 0; i < background; ++i)
        registry.trackCommand(idFor("bg-", i), QStringLiteral("bot-bg"), 10min);
    CommandAckData ack;
    ack.success = true;
    std::vector<double> rates;
    for (int round = 0; round < rounds; ++round) {
        std::vector<QString> ids;
        ids.reserve(size_t(pairs));
        for (int i = 0; i < pairs; ++i)
            ids.push_back(idFor("cmd-", round * pairs + i));
        QElapsedTimer timer;
        timer.start();
        if (withFuture) {
            for (const QString &id : ids) {
                QFuture<CommandOutcome> future = registry.registerCommand(id, bot, 30s);
                registry.resolveCommand(id, bot, ack);
            }
        } else {
            for (const QString &id : ids) {
                registry.trackCommand(id, bot, 30s);
                registry.resolveCommand(id, bot, ack);
            }
        }
        rates.push_back(pairs / (double(timer.nsecsElapsed()) / 1e9));
    }
    return median(rates);
}

// What Qt's future costs on its own, with no registry: create a QPromise and its QFuture,
// add a CommandOutcome like the registry's, finish, drop both. The median of rounds, ns each.
double promiseCycleNs(int cycles, int rounds)
{
    CommandOutcome outcome;
    outcome.commandId = QStringLiteral("cmd-123456");
    outcome.botId = QStringLiteral("bot-1");
    outcome.state = CommandState::Acked;
    std::vector<double> costs;
    for (int round = 0; round < rounds; ++round) {
        QElapsedTimer timer;
        timer.start();
        for (int i = 0; i < cycles; ++i) {
            QPromise<CommandOutcome> promise;
            QFuture<CommandOutcome> future = promise.future();
            promise.addResult(outcome);
            promise.finish();
        }
        costs.push_back(double(timer.nsecsElapsed()) / cycles);
    }
    return median(costs);
}

// Mean cost of one registerCommand with about `pending` commands pending: batches of 1,000
// are timed on top of them, then cancelled untimed so the count stays where it is.
double registerCostNs(int pending, int batches)
{
    CommandRegistry registry;
    std::mt19937 rng(42);
    std::uniform_int_distribution<int> timeoutMs(60'000, 600'000);
    std::vector<QString> bots;
    for (int i = 0; i < 50; ++i)
        bots.push_back(idFor("bot-", i));
    for (int i = 0; i < pending; ++i)
        registry.trackCommand(idFor("p-", i), bots[size_t(i % 50)], milliseconds(timeoutMs(rng)));
    constexpr int batch = 1000;
    std::vector<double> costs;
    std::vector<QFuture<CommandOutcome>> futures;
    futures.reserve(batch);
    for (int b = 0; b < batches; ++b) {
        std::vector<QString> ids;
        for (int i = 0; i < batch; ++i)
            ids.push_back(idFor("m-", b * batch + i));
        futures.clear();
        QElapsedTimer timer;
        timer.start();
        for (int i = 0; i < batch; ++i)
            futures.push_back(registry.registerCommand(ids[size_t(i)], bots[size_t(i % 50)],
                                                       milliseconds(timeoutMs(rng))));
        costs.push_back(double(timer.nsecsElapsed()) / batch);
        for (const QString &id : ids)
            registry.cancelCommand(id);
    }
    return median(costs);
}

struct Lateness
{
    double p50, p99, max;
    int expired;
};

// 100,000 commands with deadlines spread over `spread`; lateness of each expiry (finishedAt -
// deadline) as recorded by the registry's timer thread.
// With continuationUs, every future gets a continuation that works that long (what the
// Operator API does per outcome: build the response, Finish the call, count a tally).
Lateness expiryLateness(int count, milliseconds spread, int continuationUs = 0)
{
    CommandRegistry registry;
    std::mutex mutex;
    std::vector<double> lateMs;
    lateMs.reserve(size_t(count));
    QObject::connect(
        &registry, &CommandRegistry::expired, &registry,
        [&](const CommandOutcome &o) {
            std::lock_guard lock(mutex);
            lateMs.push_back(
                double(duration_cast<microseconds>(o.finishedAt - o.deadline).count()) / 1000.0);
        },
        Qt::DirectConnection);
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> offset(200, int(spread.count()) + 200);
    std::vector<QFuture<CommandOutcome>> futures;
    futures.reserve(size_t(count));
    for (int i = 0; i < count; ++i) {
        auto future = registry.registerCommand(idFor("e-", i), QStringLiteral("bot-%1").arg(i % 50),
                                               milliseconds(offset(rng)));
        if (continuationUs > 0) {
            future = future.then([continuationUs](const CommandOutcome &o) {
                QElapsedTimer busy;
                busy.start();
                while (busy.nsecsElapsed() < continuationUs * 1000LL) {
                }
                return o;
            });
        }
        futures.push_back(future);
    }
    QElapsedTimer guard;
    guard.start();
    for (auto &f : futures) {
        while (!f.isFinished() && guard.elapsed() < spread.count() + 30'000)
            f.waitForFinished();
    }
    std::lock_guard lock(mutex);
    std::sort(lateMs.begin(), lateMs.end());
    if (lateMs.empty())
        return {0, 0, 0, 0};
    auto at = [&](double q) {
        return lateMs[std::min(lateMs.size() - 1, size_t(q * lateMs.size()))];
    };
    return {at(0.50), at(0.99), lateMs.back(), int(lateMs.size())};
}

// A fan-out of `mass` commands expires at one deadline, each with a continuation working
// continuationUs; `later` commands are due 20 ms after it. How late are those (p99, ms)?
double massExpiryNextLatenessMs(int mass, int later, int continuationUs)
{
    CommandRegistry registry;
    std::mutex mutex;
    std::vector<double> lateMs;
    QObject::connect(
        &registry, &CommandRegistry::expired, &registry,
        [&](const CommandOutcome &o) {
            if (!o.commandId.startsWith(QLatin1String("next-")))
                return;
            std::lock_guard lock(mutex);
            lateMs.push_back(
                double(duration_cast<microseconds>(o.finishedAt - o.deadline).count()) / 1000.0);
        },
        Qt::DirectConnection);
    std::vector<QFuture<CommandOutcome>> futures;
    for (int i = 0; i < mass; ++i) {
        futures.push_back(registry.registerCommand(idFor("mass-", i), idFor("bot-", i), 300ms)
                              .then([continuationUs](const CommandOutcome &o) {
                                  QElapsedTimer busy;
                                  busy.start();
                                  while (busy.nsecsElapsed() < continuationUs * 1000LL) {
                                  }
                                  return o;
                              }));
    }
    for (int i = 0; i < later; ++i)
        futures.push_back(registry.registerCommand(idFor("next-", i), QStringLiteral("bot-x"),
                                                   320ms + milliseconds(i % 20)));
    for (auto &f : futures)
        f.waitForFinished();
    std::lock_guard lock(mutex);
    std::sort(lateMs.begin(), lateMs.end());
    return lateMs.empty() ? 0 : lateMs[std::min(lateMs.size() - 1, size_t(0.99 * lateMs.size()))];
}

// One fan-out: a command for each of `bots` distinct bots, registered in a loop (what
// CommandService::sendToMany does). Per registration, median of `rounds` fresh registries.
double fanOutRegisterNs(int bots, int rounds)
{
    std::vector<QString> botIds;
    for (int i = 0; i < bots; ++i)
        botIds.push_back(idFor("bot-", i));
    std::vector<double> ns;
    for (int round = 0; round < rounds; ++round) {
        CommandRegistry registry;
        QElapsedTimer timer;
        timer.start();
        for (int i = 0; i < bots; ++i)
            registry.trackCommand(idFor("fan-", i), botIds[size_t(i)], 30s);
        ns.push_back(double(timer.nsecsElapsed()) / bots);
    }
    return median(ns);
}

} // namespace

int main(int argc, char **argv)
{
    QCoreApplication app(argc, argv);
    const bool quick = app.arguments().contains(QStringLiteral("--quick"));
    const int pairs = quick ? 100'000 : 300'000;

    // "future": registerCommand() returning a QFuture; "tracked": trackCommand(), signals only.
    const int rounds = quick ? 3 : 7;
    printFigure("pairs_per_s_future_empty", pairsPerSecond(0, pairs, true, rounds), "pairs/s");
    printFigure("pairs_per_s_future_100k_pending", pairsPerSecond(100'000, pairs, true, rounds),
                "pairs/s");
    printFigure("pairs_per_s_tracked_empty", pairsPerSecond(0, pairs, false, rounds), "pairs/s");
    printFigure("qpromise_cycle_ns_no_registry", promiseCycleNs(pairs, rounds), "ns");
    printFigure("pairs_per_s_tracked_100k_pending", pairsPerSecond(100'000, pairs, false, rounds),
                "pairs/s");
    const double small = registerCostNs(1'000, 101);
    const double large = registerCostNs(quick ? 100'000 : 1'000'000, 101);
    printFigure("register_ns_1e3_pending", small, "ns");
    printFigure(quick ? "register_ns_1e5_pending" : "register_ns_1e6_pending", large, "ns");
    printFigure("register_cost_ratio_large_vs_1e3", large / small, "x");
    // Issue 8 item 4: this was quadratic past 4,096 bots (209 ms for 8,000, 1.6 s for 16,000).
    printFigure("fanout_register_ns_per_bot_1000", fanOutRegisterNs(1'000, 5), "ns");
    printFigure("fanout_register_ns_per_bot_16000", fanOutRegisterNs(16'000, 5), "ns");
    printFigure("fanout_register_ns_per_bot_100000", fanOutRegisterNs(100'000, 3), "ns");
    const Lateness l = expiryLateness(100'000, quick ? 1s : 3s);
    printFigure("expiry_count", l.expired, "commands");
    printFigure("expiry_lateness_p50", l.p50, "ms");
    printFigure("expiry_lateness_p99", l.p99, "ms");
    printFigure("expiry_lateness_max", l.max, "ms");
    // Issue 8 item 13: continuations used to run on the timer thread and delay later expiries.
    printFigure("mass_expiry_next_lateness_p99_20k_10us",
                massExpiryNextLatenessMs(20'000, 1'000, 10), "ms");
    return 0;
}
