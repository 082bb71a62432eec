// The console under load, offscreen: 100,000 rows in the commands table, then acks arriving
// at a fixed rate from another thread, while a 5 ms probe timer on the GUI thread measures
// how late it fires (a stall). Prints "name value unit" lines; see docs/performance.md.
// --remote: the same console attached over the Operator API (RemoteBackend, loopback gRPC) to
// a hub on another thread of this process; first the Watch path's sustained throughput, then
// the stall at a fixed rate of transitions arriving over Watch.
#include "benchprint.h"
#include "changefeed.h"
#include "commandregistry.h"
#include "commandservice.h"
#include "commandtablemodel.h"
#include "hub.h"
#include "hubset.h"
#include "latencychart.h"
#include "localbackend.h"
#include "mainwindow.h"
#include "operatorservice.h"

#include <QApplication>
#include <QCommandLineParser>
#include <QDateTime>
#include <QElapsedTimer>
#include <QFile>
#include <QRandomGenerator>
#include <QTableView>
#include <QTest>
#include <QThread>
#include <QTimer>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>

using namespace opconsole;
using namespace std::chrono;

namespace {

double peakRssMb()
{
    QFile status(QStringLiteral("/proc/self/status"));
    if (!status.open(QIODevice::ReadOnly))
        return 0;
    for (const QByteArray &line : status.readAll().split('\n')) {
        if (line.startsWith("VmHWM:"))
            return line.mid(6).trimmed().split(' ').first().toDouble() / 1024.0;
    }
    return 0;
}

// Registers and acks `pairsPerMs` commands per millisecond, paced in 1 ms slices, for
// `seconds` (plus one second's slack) or until `stop`; `sent` follows the count.
void pacedLoad(CommandRegistry &registry, double pairsPerMs, double seconds,
               const std::atomic<bool> &stop, std::atomic<quint64> &sent)
{
    CommandAckData ack;
    ack.success = true;
    ack.message = QStringLiteral("ok");
    const auto start = steady_clock::now();
    quint64 n = 0;
    for (int slice = 1; !stop && slice <= int(seconds * 1000) + 1000; ++slice) {
        const auto due = quint64(slice * pairsPerMs);
        for (; n < due; ++n) {
            const QString id = QStringLiteral("live-%1").arg(n);
            const QString bot = QStringLiteral("bot-%1").arg(n % 50);
            registry.trackCommand(id, bot, 30s, QStringLiteral("ping"));
            registry.resolveCommand(id, bot, ack);
        }
        sent = n;
        std::this_thread::sleep_until(start + milliseconds(slice)); // pacing, not syncing
    }
}

// A 5 ms Qt::PreciseTimer on the GUI thread and how late each tick comes.
struct StallProbe
{
    StallProbe()
    {
        timer.setTimerType(Qt::PreciseTimer);
        timer.setInterval(5);
        QObject::connect(&timer, &QTimer::timeout, [this] {
            const qint64 now = clock.nsecsElapsed();
            if (last > 0)
                stalls.push_back(std::max(0.0, double(now - last) / 1e6 - 5.0));
            last = now;
        });
    }
    void start()
    {
        clock.start();
        timer.start();
    }
    void print(const char *prefix)
    {
        timer.stop();
        std::sort(stalls.begin(), stalls.end());
        const auto pct = [&](double q) {
            return stalls.empty() ? 0.0
                                  : stalls[std::min(stalls.size() - 1, size_t(q * stalls.size()))];
        };
        printFigure(
            QStringLiteral("%1max_stall_ms").arg(QLatin1String(prefix)).toUtf8().constData(),
            stalls.empty() ? 0 : stalls.back(), "ms");
        printFigure(
            QStringLiteral("%1p99_stall_ms").arg(QLatin1String(prefix)).toUtf8().constData(),
            pct(0.99), "ms");
        printFigure(
            QStringLiteral("%1p50_stall_ms").arg(QLatin1String(prefix)).toUtf8().constData(),
            pct(0.50), "ms");
    }
    QTimer timer;
    QElapsedTimer clock;
    qint64 last = 0;
    std::vector<double> stalls;
};

// The hub side of --remote, created and destroyed in its own thread (the registry's batches,
// the feed and Watch's conversions run there, as in a hub process).
struct HubSide
{
    HubSide()
    {
        HubOptions options;
        options.listenAddress = QStringLiteral("127.0.0.1:0");
        options.operatorListenAddress = QStringLiteral("127.0.0.1:0"); // the console's
        hub = std::make_unique<Hub>(registry, options);
        service = std::make_unique<CommandService>(registry, *hub);
        api = std::make_unique<OperatorService>(*service, feed);
        api->attachTo(*hub);
        if (!hub->start())
            qFatal("hub did not start");
    }
    ~HubSide() { api.reset(); } // stops the hub first
    CommandRegistry registry;
    ChangeFeed feed{registry};
    std::unique_ptr<Hub> hub;
    std::unique_ptr<CommandService> service;
    std::unique_ptr<OperatorService> api;
};

int runRemote(QApplication &app, int rows, int rate, double seconds, int pendingEvery)
{
    QThread hubThread;
    hubThread.start();
    QObject inHubThread;
    inHubThread.moveToThread(&hubThread);
    std::unique_ptr<HubSide> side;
    QMetaObject::invokeMethod(
        &inHubThread, [&] { side = std::make_unique<HubSide>(); }, Qt::BlockingQueuedConnection);
    CommandRegistry &registry = side->registry;

    HubSet backend({side->hub->operatorAddress()});
    MainWindow window(backend);
    window.resize(1400, 900);
    window.show();
    std::atomic<quint64> received{0};
    QObject::connect(&backend, &ConsoleBackend::commandsChanged,
                     [&](const QList<CommandOutcome> &records) { received += records.size(); });
    if (!QTest::qWaitFor([&] { return backend.link() == ConsoleBackend::Link::Live; }, 10'000))
        qFatal("the console did not attach");

    CommandAckData ack;
    ack.success = true;
    ack.message = QStringLiteral("ok");
    // 1. Throughput: `rows` commands (two transitions each, but every pendingEvery-th one
    // stays pending) as fast as the console takes them: the producer stays at most `window`
    // transitions ahead of what the console has applied, so the hub's per-Watch backlog never
    // overflows and the rate is what the whole path sustains.
    std::atomic<quint64> produced{0};
    std::atomic<bool> stop{false};
    std::atomic<bool> preloaded{false};
    constexpr quint64 Window = 20'000;
    QElapsedTimer fill;
    fill.start();
    std::thread preload([&] {
        for (int i = 0; i < rows && !stop; ++i) {
            while (produced - received > Window && !stop)
                std::this_thread::yield();
            const QString id = QStringLiteral("pre-%1").arg(i);
            const QString bot = QStringLiteral("bot-%1").arg(i % 50);
            registry.trackCommand(id, bot, 60s, QStringLiteral("ping"));
            ++produced;
            if (pendingEvery == 0 || i % pendingEvery != 0) {
                registry.resolveCommand(id, bot, ack);
                ++produced;
            }
        }
        preloaded = true;
    });
    const bool filled =
        QTest::qWaitFor([&] { return preloaded.load() && received >= produced; }, 300'000);
    const double fillSeconds = double(fill.nsecsElapsed()) / 1e9;
    stop = true;
    preload.join();
    if (!filled)
        qFatal("the console did not receive every transition (%llu of %llu)",
               (unsigned long long)received.load(), (unsigned long long)produced.load());
    printFigure("remote_watch_transitions_per_s", double(received.load()) / fillSeconds,
                "transitions/s");
    const RemoteBackend::Stats stats = backend.hub(0).stats();
    printFigure("remote_resyncs_during_fill", double(stats.resyncs), "resyncs");

    // 2. The stall at a fixed rate: `rate` transitions per second (half registrations, half
    // acks), paced in 1 ms slices from another thread, for `seconds`.
    StallProbe probe;
    stop = false;
    const quint64 before = received;
    std::atomic<quint64> paced{0};
    std::thread load([&] { pacedLoad(registry, rate / 2000.0, seconds, stop, paced); });
    probe.start();
    QTimer::singleShot(int(seconds * 1000), &app, &QCoreApplication::quit);
    app.exec();
    stop = true;
    load.join();
    probe.print("remote_");
    printFigure("remote_transitions_per_s_arrived", double(received - before) / seconds,
                "transitions/s");
    printFigure("remote_rows", window.commandModel()->rowCount(), "rows");
    printFigure("remote_resyncs", double(backend.hub(0).stats().resyncs), "resyncs");
    printFigure("peak_rss_mb", peakRssMb(), "MiB");
    QMetaObject::invokeMethod(
        &inHubThread, [&] { side.reset(); }, Qt::BlockingQueuedConnection);
    hubThread.quit();
    hubThread.wait();
    return 0;
}

} // namespace

// The latency chart at fleet scale: 200,000 answers of 50,000 bots in batches of 5,000, then
// its computations (all bots, 20,000 selected) and repaints.
int runChart()
{
    LatencyChart chart;
    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    chart.setClock([now] { return now; });
    QRandomGenerator rng(7);
    const char *kinds[] = {"start", "stop", "restart", "ping"};
    QElapsedTimer timer;
    qint64 addNs = 0;
    quint64 serial = 0;
    for (int b = 0; b < 40; ++b) {
        QList<CommandOutcome> batch;
        for (int i = 0; i < 5000; ++i) {
            CommandOutcome o;
            o.commandId = QStringLiteral("c-%1").arg(++serial);
            o.botId = QStringLiteral("bot-%1").arg(rng.bounded(50'000));
            o.kind = QString::fromLatin1(kinds[i % 4]);
            o.state = CommandState::Acked;
            o.registeredAt = Clock::now() - 2h;
            o.sentAt = o.registeredAt;
            o.finishedAt = o.sentAt + milliseconds(1 + rng.bounded(2000));
            o.registeredWallMs = now - 1000 - rng.bounded(3'000'000);
            batch << o;
        }
        timer.start();
        chart.add(batch);
        addNs += timer.nsecsElapsed();
    }
    chart.setWindowMs(LatencyChart::OneHourMs);
    timer.start();
    const int all = chart.figures(QStringLiteral("ping")).samples;
    const double computeMs = double(timer.nsecsElapsed()) / 1e6;
    QStringList selected;
    for (int i = 0; i < 20'000; ++i)
        selected << QStringLiteral("bot-%1").arg(i);
    chart.setBots(selected);
    timer.start();
    const int some = chart.figures(QStringLiteral("ping")).samples;
    const double scopedMs = double(timer.nsecsElapsed()) / 1e6;
    chart.resize(1024, 180);
    chart.grab(); // the first paint lays out
    timer.start();
    for (int i = 0; i < 20; ++i)
        chart.grab();
    const double paintMs = double(timer.nsecsElapsed()) / 1e6 / 20;
    printFigure("chart_samples", chart.sampleCount(), "answers");
    printFigure("chart_add_ms_per_5000", double(addNs) / 1e6 / 40, "ms");
    printFigure("chart_compute_ms", computeMs, "ms");
    printFigure("chart_compute_20000_bots_ms", scopedMs, "ms");
    printFigure("chart_paint_ms", paintMs, "ms");
    return all > some && some > 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM"))
        qputenv("QT_QPA_PLATFORM", "offscreen");
    QApplication app(argc, argv);
    QCommandLineParser parser;
    parser.addHelpOption();
    parser.addOptions({
        {"rows", "Rows loaded before measuring.", "n", "100000"},
        {"rate", "Acks per second while measuring.", "n", "10000"},
        {"seconds", "Seconds measured.", "s", "10"},
        {"pending-every", "Every Nth preloaded command stays pending (0: none).", "n", "100"},
        {"remote",
         "Attach over the Operator API to a hub on another thread (rate: transitions/s)."},
        {"chart", "The latency chart alone at fleet scale (200,000 answers, 50,000 bots)."},
    });
    parser.process(app);
    if (parser.isSet("chart"))
        return runChart();
    const int preload = parser.value("rows").toInt();
    const int rate = parser.value("rate").toInt();
    const double seconds = parser.value("seconds").toDouble();
    const int pendingEvery = parser.value("pending-every").toInt();
    if (preload < 0 || rate < 1 || seconds <= 0 || seconds > 300)
        qFatal("bad arguments");
    if (parser.isSet("remote"))
        return runRemote(app, preload, rate, seconds, pendingEvery);

    CommandRegistry registry;
    HubOptions options;
    options.listenAddress = QStringLiteral("127.0.0.1:0");
    Hub hub(registry, options); // not started: the load goes straight into the registry
    CommandService service(registry, hub);
    ChangeFeed feed(registry);
    LocalBackend backend(registry, feed, hub, service);
    MainWindow window(backend);
    window.resize(1400, 900);
    window.show();

    CommandAckData ack;
    ack.success = true;
    ack.message = QStringLiteral("ok");
    // Preload in chunks so the batches reach the table as they would live.
    for (int i = 0; i < preload;) {
        for (int k = 0; k < 5000 && i < preload; ++k, ++i) {
            const QString id = QStringLiteral("pre-%1").arg(i);
            const QString bot = QStringLiteral("bot-%1").arg(i % 50);
            registry.trackCommand(id, bot, 60s, QStringLiteral("ping"));
            if (pendingEvery == 0 || i % pendingEvery != 0) // some stay pending: live countdowns
                registry.resolveCommand(id, bot, ack);
        }
        QCoreApplication::processEvents();
    }
    QCoreApplication::processEvents();

    // The probe: how late does a 5 ms timer on the GUI thread fire?
    std::vector<double> stalls;
    QElapsedTimer probeClock;
    QTimer probe;
    probe.setTimerType(Qt::PreciseTimer);
    probe.setInterval(5);
    qint64 last = 0;
    QObject::connect(&probe, &QTimer::timeout, [&] {
        const qint64 now = probeClock.nsecsElapsed();
        if (last > 0)
            stalls.push_back(std::max(0.0, double(now - last) / 1e6 - 5.0));
        last = now;
    });

    std::atomic<bool> stop{false};
    std::atomic<quint64> sent{0};
    // rate/1000 register+ack pairs per 1 ms slice.
    std::thread load([&] { pacedLoad(registry, rate / 1000.0, seconds, stop, sent); });
    probeClock.start();
    probe.start();
    QTimer::singleShot(int(seconds * 1000), &app, &QCoreApplication::quit);
    app.exec();
    stop = true;
    load.join();

    std::sort(stalls.begin(), stalls.end());
    const auto pct = [&](double q) {
        return stalls.empty() ? 0.0
                              : stalls[std::min(stalls.size() - 1, size_t(q * stalls.size()))];
    };
    printFigure("max_stall_ms", stalls.empty() ? 0 : stalls.back(), "ms");
    printFigure("p99_stall_ms", pct(0.99), "ms");
    printFigure("p50_stall_ms", pct(0.50), "ms");
    printFigure("acks_per_s", double(sent.load()) / seconds, "acks/s");
    printFigure("rows", window.commandModel()->rowCount(), "rows");
    printFigure("peak_rss_mb", peakRssMb(), "MiB");
    return 0;
}
