#include "fleetmodel.h"

#include <QAbstractItemModelTester>
#include <QTest>

using namespace opconsole;

class TestFleetModel : public QObject
{
    Q_OBJECT

private slots:
    void upsertAndLiveColumns();
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

QTEST_MAIN(TestFleetModel)
#include "tst_fleetmodel.moc"
