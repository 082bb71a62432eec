// End to end over loopback: hub + CommandService against botsim fleets, in-process and as a
// separate process.
#include "hubrig.h"
#include "simfleet.h"

#include <QDir>
#include <QProcess>
#include <QTest>

using namespace opconsole;
using namespace std::chrono;

namespace {

struct Rig : HubRig
{
    Rig() { start(); }
    botsim::SimOptions fleetOptions(int bots) const
    {
        botsim::SimOptions o;
        o.hub = hub->address().toStdString();
        o.bots = bots;
        return o;
    }
    bool allFinished(const QList<QFuture<CommandOutcome>> &futures, int ms = 20'000)
    {
        return QTest::qWaitFor(
            [&] {
                return std::all_of(futures.begin(), futures.end(),
                                   [](const auto &f) { return f.isFinished(); });
            },
            ms);
    }
    QMap<CommandState, int> tally(const QList<QFuture<CommandOutcome>> &futures)
    {
        QMap<CommandState, int> counts;
        for (const auto &f : futures)
            ++counts[f.result().state];
        return counts;
    }
};

} // namespace

class TestIntegration : public QObject
{
    Q_OBJECT

private slots:
    void thousandCommandsAcrossFiftyBotsNoneLost();
    void mixedOutcomesFromAMisbehavingFleet();
    void disconnectingBotsReconnectWithBackoff();
    void botsimAsSeparateProcess();
    void stateChangesAreReportedWithTheAck();
    void twoThousandBotsOnAFewThreads();
};

void TestIntegration::thousandCommandsAcrossFiftyBotsNoneLost()
{
    Rig rig;
    QVERIFY(rig.started);
    auto options = rig.fleetOptions(50);
    QVERIFY(botsim::LatencyModel::parse("uniform:0:20", &options.latency, nullptr));
    botsim::Fleet fleet(options);
    fleet.start();
    QVERIFY(fleet.waitConnected(50, 20s));
    QTRY_COMPARE_WITH_TIMEOUT(rig.hub->connectedBotIds().size(), 50, 10'000);

    std::atomic<int> finishedSignals{0};
    connect(
        &rig.registry, &CommandRegistry::finished, this,
        [&](const CommandOutcome &) { finishedSignals.fetch_add(1); }, Qt::DirectConnection);
    QList<QFuture<CommandOutcome>> futures;
    const QStringList bots = rig.hub->connectedBotIds();
    for (int i = 0; i < 1000; ++i)
        futures.append(rig.service->send(bots.at(i % 50), CommandSpec::of(CommandKind::Ping), 20s));
    QVERIFY(rig.allFinished(futures));
    for (const auto &f : futures) {
        QCOMPARE(f.resultCount(), 1);
        QCOMPARE(f.result().state, CommandState::Acked);
    }
    QTRY_COMPARE_WITH_TIMEOUT(finishedSignals.load(), 1000, 5000); // signals follow futures
    QCOMPARE(rig.registry.counters().acked, 1000u);
    QCOMPARE(rig.registry.pendingCount(), 0);
    QCOMPARE(fleet.stats().executed.load(), 1000u);
}

void TestIntegration::mixedOutcomesFromAMisbehavingFleet()
{
    Rig rig;
    auto options = rig.fleetOptions(20);
    QVERIFY(botsim::LatencyModel::parse("uniform:1:40", &options.latency, nullptr));
    options.failRatio = 0.25;
    options.dropRatio = 0.15;
    options.duplicateRatio = 0.2;
    options.lateRatio = 0.1;
    options.seed = 7;
    botsim::Fleet fleet(options);
    fleet.start();
    QVERIFY(fleet.waitConnected(20, 20s));
    QTRY_COMPARE_WITH_TIMEOUT(rig.hub->connectedBotIds().size(), 20, 10'000);
    const QStringList bots = rig.hub->connectedBotIds();
    QList<QFuture<CommandOutcome>> futures;
    for (int i = 0; i < 400; ++i)
        futures.append(
            rig.service->send(bots.at(i % 20), CommandSpec::of(CommandKind::Ping), 400ms));
    QVERIFY(rig.allFinished(futures));
    const auto counts = rig.tally(futures);
    QCOMPARE(counts.value(CommandState::Acked) + counts.value(CommandState::Rejected) +
                 counts.value(CommandState::Expired),
             400);
    QVERIFY(counts.value(CommandState::Acked) > 0);
    QVERIFY(counts.value(CommandState::Rejected) > 0);
    QVERIFY(counts.value(CommandState::Expired) > 0);
    for (const auto &f : futures) {
        if (f.result().state == CommandState::Rejected)
            QCOMPARE(f.result().reason, QString("simulated failure"));
    }
    // Late acks land on their expired commands; duplicates are counted, never double-resolve.
    QTRY_VERIFY_WITH_TIMEOUT(rig.registry.counters().lateAcks > 0, 10'000);
    QTRY_VERIFY_WITH_TIMEOUT(rig.registry.counters().duplicateAcks > 0, 10'000);
    QCOMPARE(rig.registry.counters().acked + rig.registry.counters().rejected,
             quint64(counts.value(CommandState::Acked) + counts.value(CommandState::Rejected)));
}

void TestIntegration::disconnectingBotsReconnectWithBackoff()
{
    Rig rig;
    auto options = rig.fleetOptions(10);
    options.disconnectRatio = 0.3;
    options.backoffBase = 20ms;
    options.backoffMax = 200ms;
    options.seed = 11;
    botsim::Fleet fleet(options);
    fleet.start();
    QVERIFY(fleet.waitConnected(10, 20s));
    QList<QFuture<CommandOutcome>> futures;
    for (int i = 0; i < 200; ++i) {
        const QString bot = QStringLiteral("bot-%1").arg(i % 10 + 1);
        futures.append(
            rig.service->send(bot, CommandSpec::of(CommandKind::Ping), 3s, waitingUpTo(5s)));
    }
    QVERIFY(rig.allFinished(futures, 60'000));
    const auto counts = rig.tally(futures);
    QVERIFY(counts.value(CommandState::Acked) > 0);
    QCOMPARE(counts.value(CommandState::Acked) + counts.value(CommandState::Disconnected) +
                 counts.value(CommandState::NotConnected) + counts.value(CommandState::Expired),
             200);
    QVERIFY(fleet.stats().disconnects.load() > 0);
    QTRY_VERIFY_WITH_TIMEOUT(fleet.stats().connects.load() > 10, 20'000);
    QVERIFY(fleet.waitConnected(10, 20s)); // every bot comes back
    QTRY_COMPARE_WITH_TIMEOUT(rig.hub->connectedBotIds().size(), 10, 10'000);
}

void TestIntegration::botsimAsSeparateProcess()
{
    Rig rig;
    QProcess botsim;
    botsim.setProgram(QCoreApplication::applicationDirPath() + QStringLiteral("/botsim"));
    botsim.setArguments({"--hub", rig.hub->address(), "--bots", "5", "--fail", "0.5", "--seed", "3",
                         "--prefix", "proc-"});
    botsim.start();
    QVERIFY2(botsim.waitForStarted(10'000), qPrintable(botsim.errorString()));
    QTRY_COMPARE_WITH_TIMEOUT(rig.hub->connectedBotIds().size(), 5, 20'000);
    QList<QFuture<CommandOutcome>> futures;
    for (int i = 0; i < 100; ++i)
        futures.append(rig.service->send(QStringLiteral("proc-%1").arg(i % 5 + 1),
                                         CommandSpec::of(CommandKind::Ping), 10s));
    QVERIFY(rig.allFinished(futures));
    const auto counts = rig.tally(futures);
    QCOMPARE(counts.value(CommandState::Acked) + counts.value(CommandState::Rejected), 100);
    QVERIFY(counts.value(CommandState::Acked) > 20);
    QVERIFY(counts.value(CommandState::Rejected) > 20);
    QCOMPARE(rig.hub->bot("proc-1")->labels.value("group"), QString("a"));

    botsim.terminate(); // SIGTERM: prints its summary and exits 0
    QVERIFY(botsim.waitForFinished(20'000));
    QCOMPARE(botsim.exitStatus(), QProcess::NormalExit);
    QCOMPARE(botsim.exitCode(), 0);
    const QString out = QString::fromUtf8(botsim.readAllStandardOutput());
    QVERIFY2(out.contains("botsim summary:"), qPrintable(out));
    QVERIFY2(out.contains("commands=100 "), qPrintable(out));
    QVERIFY(out.contains("(SIGTERM)"));
    QTRY_VERIFY_WITH_TIMEOUT(rig.hub->connectedBotIds().isEmpty(), 10'000);
}

void TestIntegration::stateChangesAreReportedWithTheAck()
{
    // Heartbeats off: the state the hub shows can only come from the status reports botsim
    // sends when it connects and after an ack that changed its state.
    Rig rig;
    auto options = rig.fleetOptions(1);
    options.heartbeats = false;
    botsim::Fleet fleet(options);
    fleet.start();
    QVERIFY(fleet.waitConnected(1, 20s));
    QTRY_COMPARE_WITH_TIMEOUT(rig.hub->connectedBotIds().size(), 1, 10'000);
    const QString bot = rig.hub->connectedBotIds().first();
    QTRY_COMPARE_WITH_TIMEOUT(rig.hub->bot(bot)->state, QString("stopped"), 10'000);

    auto started = rig.service->send(bot, CommandSpec::of(CommandKind::Start), 5s);
    QVERIFY(rig.allFinished({started}));
    QCOMPARE(started.result().state, CommandState::Acked);
    QTRY_COMPARE_WITH_TIMEOUT(rig.hub->bot(bot)->state, QString("running"), 10'000);

    auto paused = rig.service->send(bot, CommandSpec::of(CommandKind::Pause), 5s);
    QVERIFY(rig.allFinished({paused}));
    QTRY_COMPARE_WITH_TIMEOUT(rig.hub->bot(bot)->state, QString("paused"), 10'000);

    auto stopped = rig.service->send(bot, CommandSpec::of(CommandKind::Stop), 5s);
    QVERIFY(rig.allFinished({stopped}));
    QTRY_COMPARE_WITH_TIMEOUT(rig.hub->bot(bot)->state, QString("stopped"), 10'000);
}

// The threads of this process now (the hub's, the fleet's and gRPC's).
static int threadCount()
{
    return int(QDir(QStringLiteral("/proc/self/task"))
                   .entryList(QDir::Dirs | QDir::NoDotAndDotDot)
                   .size());
}

void TestIntegration::twoThousandBotsOnAFewThreads()
{
    // botsim runs its bots on gRPC's callback client: 2,000 bots are 2,000 streams on a few
    // connections, served by gRPC's threads and the fleet's one timer thread, not a thread each.
    constexpr int Bots = 2000;
    Rig rig;
    QVERIFY(rig.started);
    const int before = threadCount();
    auto options = rig.fleetOptions(Bots);
    QVERIFY(botsim::LatencyModel::parse("uniform:0:50", &options.latency, nullptr));
    botsim::Fleet fleet(options);
    QVERIFY(fleet.start());
    QVERIFY(fleet.waitConnected(Bots, 60s));
    QTRY_COMPARE_WITH_TIMEOUT(rig.hub->connectedBotIds().size(), Bots, 30'000);
    const int during = threadCount();
    qInfo("threads: %d with the hub alone, %d with %d bots", before, during, Bots);
    QVERIFY2(during - before <= 16,
             qPrintable(QStringLiteral("%1 threads more").arg(during - before)));

    const FanOut ping = rig.service->sendToMany(rig.hub->connectedBotIds(),
                                                CommandSpec::of(CommandKind::Ping), 30s);
    QVERIFY(ping.refused.isEmpty());
    QCOMPARE(ping.futures.size(), Bots);
    QVERIFY(rig.allFinished(ping.futures, 60'000));
    QCOMPARE(rig.tally(ping.futures).value(CommandState::Acked), Bots);
    QCOMPARE(fleet.stats().executed.load(), uint64_t(Bots));
    QCOMPARE(fleet.connectedCount(), Bots);
    QVERIFY(threadCount() - before <= 16);

    // Stopping ends every stream (each reactor's OnDone) before stop() returns.
    fleet.stop();
    QCOMPARE(fleet.connectedCount(), 0);
    QTRY_VERIFY_WITH_TIMEOUT(rig.hub->connectedBotIds().isEmpty(), 30'000);
}

QTEST_GUILESS_MAIN(TestIntegration)
#include "tst_integration.moc"
