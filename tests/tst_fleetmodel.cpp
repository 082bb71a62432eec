#include "fleetmodel.h"

#include <QAbstractItemModelTester>
#include <QIcon>
#include <QSignalSpy>
#include <QTest>

using namespace opconsole;

class TestFleetModel : public QObject
{
    Q_OBJECT

private slots:
    void upsertAndLiveColumns();
    void batchesInsertOnceAndRefreshSignalsChangesOnly();
    void admissionIsShown();
};

void TestFleetModel::upsertAndLiveColumns()
{
    int pending = 3;
    FleetModel model([&](const QString &) { return pending; });
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    BotInfo a;
    a.botId = "bot-a";
    a.connected = true;
    a.state = "running";
    a.labels = {{"region", "eu"}};
    a.lastSeenMs = QDateTime::currentMSecsSinceEpoch();
    model.upsert(a);
    BotInfo b = a;
    b.botId = "bot-b";
    model.upsert(b);
    QCOMPARE(model.rowCount(), 2);
    QCOMPARE(model.connectedCount(), 2);
    QCOMPARE(model.index(0, FleetModel::Labels).data().toString(), QString("region=eu"));
    QCOMPARE(model.index(0, FleetModel::InFlight).data().toInt(), 3);
    QVERIFY(model.index(0, FleetModel::Heartbeat).data().toDouble() >= 0);

    b.connected = false;
    b.disconnectedAtMs = QDateTime::currentMSecsSinceEpoch();
    b.disconnectReason = "no heartbeat";
    model.upsert(b);
    QCOMPARE(model.rowCount(), 2);
    QCOMPARE(model.connectedCount(), 1);
    QVERIFY(
        model.index(1, FleetModel::Connection).data().toString().startsWith("disconnected since"));
    QCOMPARE(model.index(1, FleetModel::Connection).data(Qt::ToolTipRole).toString(),
             QString("no heartbeat"));

    CommandOutcome o;
    o.botId = "bot-a";
    o.state = CommandState::Acked;
    o.ack = CommandAckData{};
    o.registeredAt = Clock::now();
    o.finishedAt = o.registeredAt + std::chrono::milliseconds(42);
    model.noteOutcomes({o});
    QCOMPARE(model.index(0, FleetModel::LastLatency).data().toString(), QString("42.0 ms"));
    pending = 0;
    model.refreshLive({a, b});
    QCOMPARE(model.index(0, FleetModel::InFlight).data().toInt(), 0);
}

// A connect storm comes as batches: the new bots are one insertion (a sorting proxy would pay a
// pass per row otherwise), a bot twice in a batch is one row with its latest info, and the 1 Hz
// refresh signals only the rows that show something new.
void TestFleetModel::batchesInsertOnceAndRefreshSignalsChangesOnly()
{
    QHash<QString, int> pending;
    FleetModel model([&](const QString &bot) { return pending.value(bot); });
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    QSignalSpy inserted(&model, &QAbstractItemModel::rowsInserted);
    QSignalSpy changed(&model, &QAbstractItemModel::dataChanged);
    QList<BotInfo> batch;
    for (int i = 0; i < 500; ++i) {
        BotInfo b;
        b.botId = QStringLiteral("bot-%1").arg(i);
        b.connected = true;
        b.state = "idle";
        batch << b;
    }
    batch << batch[7];
    batch.last().state = "running"; // bot-7 again, later in the batch
    QCOMPARE(model.upsert(batch).size(), 500);
    QCOMPARE(model.rowCount(), 500);
    QCOMPARE(inserted.size(), 1);
    QCOMPARE(inserted[0][1].toInt(), 0);
    QCOMPARE(inserted[0][2].toInt(), 499);
    QCOMPARE(model.index(7, FleetModel::State).data().toString(), QString("running"));
    QCOMPARE(model.rowOf("bot-499"), 499);
    QCOMPARE(changed.size(), 0);

    // A second batch: two known bots (adjacent rows: one signal) and one new.
    BotInfo extra;
    extra.botId = "bot-new";
    QList<BotInfo> second{batch[10], batch[11], extra};
    second[0].state = second[1].state = "stopped";
    QCOMPARE(model.upsert(second), QStringList{"bot-new"});
    QCOMPARE(inserted.size(), 2);
    QCOMPARE(changed.size(), 1);
    QCOMPARE(changed[0][0].toModelIndex().row(), 10);
    QCOMPARE(changed[0][0].toModelIndex().column(),
             int(FleetModel::Labels)); // the id never changes
    QCOMPARE(changed[0][1].toModelIndex().row(), 11);

    // The refresh: nothing new, no signal; heartbeats alone, no signal; two rows whose in-flight
    // count moved and one that disconnected, a signal per run of adjacent rows.
    QList<BotInfo> all = batch.mid(0, 500);
    all[7].state = "running";
    all[10].state = all[11].state = "stopped";
    all << extra;
    changed.clear();
    model.refreshLive(all);
    QCOMPARE(changed.size(), 0);
    for (BotInfo &b : all)
        b.lastSeenMs = QDateTime::currentMSecsSinceEpoch();
    model.refreshLive(all);
    QCOMPARE(changed.size(), 0);
    pending["bot-3"] = 2;
    pending["bot-4"] = 1;
    all[200].connected = false;
    all[200].disconnectedAtMs = QDateTime::currentMSecsSinceEpoch();
    model.refreshLive(all);
    QCOMPARE(changed.size(), 2);
    QCOMPARE(changed[0][0].toModelIndex().row(), 3);
    QCOMPARE(changed[0][1].toModelIndex().row(), 4);
    QCOMPARE(changed[1][0].toModelIndex().row(), 200);
    QCOMPARE(model.index(4, FleetModel::InFlight).data().toInt(), 1);
    QCOMPARE(model.connectedCount(), 499);
    QVERIFY(model.index(200, FleetModel::Connection).data().toString().startsWith("disconnected"));
}

void TestFleetModel::admissionIsShown()
{
    FleetModel model([](const QString &) { return 0; });
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    BotInfo held;
    held.botId = "bot-h";
    held.admission = BotAdmission::Awaiting;
    held.credential = "token:rack";
    held.lastSeenMs = now;
    model.upsert(held);
    const QModelIndex cell = model.index(0, FleetModel::Connection);
    QCOMPARE(cell.data().toString(), QString("awaiting approval"));
    QVERIFY(cell.data(Qt::ToolTipRole).toString().contains("token:rack"));
    QVERIFY(
        model.index(0, FleetModel::Bot).data(Qt::ToolTipRole).toString().contains("token:rack"));
    QVERIFY(!cell.data(Qt::DecorationRole).value<QIcon>().isNull());
    QVERIFY(cell.data(Qt::ForegroundRole).isValid());
    QVERIFY(model.index(0, 0).data(FleetModel::WaitingRole).toBool());
    QCOMPARE(model.index(0, 0).data(FleetModel::AdmissionRole).toInt(),
             int(BotAdmission::Awaiting));
    QCOMPARE(model.index(0, 0).data(FleetModel::CredentialRole).toString(), QString("token:rack"));
    QCOMPARE(model.awaitingCount(), 1);
    QCOMPARE(model.connectedCount(), 0);

    // Its held stream ended: still awaiting a decision, no longer waiting on the line.
    held.disconnectedAtMs = now + 5;
    held.disconnectReason = "cancelled by the bot";
    model.refreshLive({held});
    QVERIFY2(cell.data().toString().startsWith("awaiting approval, gone since"),
             qPrintable(cell.data().toString()));
    QVERIFY(!model.index(0, 0).data(FleetModel::WaitingRole).toBool());
    QCOMPARE(model.awaitingCount(), 0);
    // Held again later: waiting again.
    held.lastSeenMs = now + 10;
    model.refreshLive({held});
    QCOMPARE(cell.data().toString(), QString("awaiting approval"));
    QCOMPARE(model.awaitingCount(), 1);

    // Rejected (or revoked): said so, in red, with why.
    BotInfo rejected = held;
    rejected.admission = BotAdmission::Rejected;
    rejected.disconnectedAtMs = now + 20;
    rejected.disconnectReason = "revoked by alice: stolen";
    model.upsert(rejected);
    QVERIFY2(cell.data().toString().startsWith("rejected"), qPrintable(cell.data().toString()));
    QVERIFY(cell.data(Qt::ToolTipRole).toString().contains("revoked by alice: stolen"));
    QVERIFY(cell.data(Qt::ForegroundRole).isValid());
    QCOMPARE(model.awaitingCount(), 0);

    // Accepted and connected: as any bot.
    BotInfo live = rejected;
    live.admission = BotAdmission::Accepted;
    live.connected = true;
    live.disconnectedAtMs = 0;
    model.upsert(live);
    QCOMPARE(cell.data().toString(), QString("connected"));
    QVERIFY(cell.data(Qt::DecorationRole).value<QIcon>().isNull());
    QVERIFY(!cell.data(Qt::ForegroundRole).isValid());
    QVERIFY(cell.data(Qt::ToolTipRole).toString().contains("token:rack"));
}

QTEST_MAIN(TestFleetModel)
#include "tst_fleetmodel.moc"
