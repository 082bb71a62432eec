// The fleet panel alone, under the offscreen platform, fed bots and records directly.
#include "fleetmodel.h"
#include "fleetpanel.h"
#include "latencychart.h"

#include <QAction>
#include <QHeaderView>
#include <QLineEdit>
#include <QSettings>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTableView>
#include <QTest>
#include <QToolButton>

using namespace opconsole;
using namespace std::chrono;

namespace {

BotInfo bot(const QString &id, const QString &group, bool connected = true)
{
    BotInfo b;
    b.botId = id;
    b.connected = connected;
    b.state = QStringLiteral("running");
    b.labels = {{"group", group}};
    b.lastSeenMs = QDateTime::currentMSecsSinceEpoch();
    return b;
}

QStringList sorted(QStringList list)
{
    list.sort();
    return list;
}

} // namespace

class TestFleetPanel : public QObject
{
    Q_OBJECT

private slots:
    void initTestCase() { QStandardPaths::setTestModeEnabled(true); }
    void upsertReportsNewBotsOnly();
    void filterNarrowsTheTable();
    void selectionFollowsTheFilterAndIsSignalled();
    void outcomesAndLiveColumns();
    void refreshLooksUpTheRowsOnScreen();
    void aChangeMovesItsRowInTheSortedOrder();
    void settingsRoundTrip();
    void approvalBarCountsShowsAndOffersTheDecisions();
};

void TestFleetPanel::upsertReportsNewBotsOnly()
{
    FleetPanel panel([](const QString &) { return 0; });
    QCOMPARE(panel.upsert({bot("bot-b", "b"), bot("bot-a", "a")}), QStringList({"bot-b", "bot-a"}));
    QCOMPARE(panel.upsert({bot("bot-a", "a", false), bot("bot-c", "a")}), QStringList({"bot-c"}));
    QCOMPARE(panel.model()->rowCount(), 3);
    QCOMPARE(panel.model()->connectedCount(), 2);
    // Sorted by bot id in the view, whatever the order they came in.
    const QAbstractItemModel *shown = panel.view()->model();
    QCOMPARE(shown->index(0, FleetModel::Bot).data().toString(), QString("bot-a"));
    QCOMPARE(shown->index(2, FleetModel::Bot).data().toString(), QString("bot-c"));
}

void TestFleetPanel::filterNarrowsTheTable()
{
    FleetPanel panel([](const QString &) { return 0; });
    panel.show();
    panel.upsert({bot("bot-1", "north"), bot("bot-2", "south"), bot("bot-3", "North")});
    const QAbstractItemModel *shown = panel.view()->model();
    QTest::keyClicks(panel.filter(), "NORTH"); // any column, any case
    QCOMPARE(shown->rowCount(), 2);
    panel.filter()->setText("bot-2");
    QCOMPARE(shown->rowCount(), 1);
    QCOMPARE(shown->index(0, FleetModel::Bot).data().toString(), QString("bot-2"));
    panel.filter()->setText("nobody");
    QCOMPARE(shown->rowCount(), 0);
    panel.filter()->clear();
    QCOMPARE(shown->rowCount(), 3);
}

void TestFleetPanel::selectionFollowsTheFilterAndIsSignalled()
{
    FleetPanel panel([](const QString &) { return 0; });
    panel.show();
    panel.upsert({bot("bot-1", "a"), bot("bot-2", "b"), bot("bot-3", "a")});
    QSignalSpy changed(&panel, &FleetPanel::selectionChanged);
    panel.selectBots({"bot-1", "bot-3", "bot-unknown"});
    QCOMPARE(sorted(panel.selectedBots()), QStringList({"bot-1", "bot-3"}));
    QVERIFY(changed.count() >= 1);
    // Whole rows are selected: every column of the selected bots.
    QCOMPARE(panel.view()->selectionModel()->selectedIndexes().size(),
             2 * int(FleetModel::ColumnCount));
    // A bot filtered out is no longer a target.
    changed.clear();
    panel.filter()->setText("bot-3");
    QCOMPARE(panel.selectedBots(), QStringList({"bot-3"}));
    QVERIFY(changed.count() >= 1);
    // Only shown bots can be selected.
    panel.selectBots({"bot-1", "bot-2"});
    QVERIFY(panel.selectedBots().isEmpty());
    panel.filter()->clear();
    panel.selectBots({"bot-2"});
    QCOMPARE(panel.selectedBots(), QStringList({"bot-2"}));
    panel.selectBots({});
    QVERIFY(panel.selectedBots().isEmpty());
}

void TestFleetPanel::outcomesAndLiveColumns()
{
    int inFlight = 2;
    FleetPanel panel([&](const QString &) { return inFlight; });
    const BotInfo a = bot("bot-a", "a");
    panel.upsert({a});
    QCOMPARE(panel.model()->index(0, FleetModel::InFlight).data().toInt(), 2);

    CommandOutcome o;
    o.commandId = QStringLiteral("cmd-1");
    o.botId = QStringLiteral("bot-a");
    o.kind = QStringLiteral("ping");
    o.state = CommandState::Acked;
    o.ack = CommandAckData{};
    o.registeredAt = Clock::now();
    o.finishedAt = o.registeredAt + 25ms;
    panel.apply({o});
    QCOMPARE(panel.model()->index(0, FleetModel::LastLatency).data().toString(),
             QString("25.0 ms"));
    QCOMPARE(panel.chart()->figures("ping").samples, 1);
    QCOMPARE(panel.chart()->figures("restart").samples, 0);

    inFlight = 0;
    panel.refreshLive([&](const QString &) { return std::optional<BotInfo>(a); },
                      [&] { return QList<BotInfo>{a}; });
    QCOMPARE(panel.model()->index(0, FleetModel::InFlight).data().toInt(), 0);

    QVERIFY(!panel.view()->isColumnHidden(FleetModel::Hub));
    panel.setHubColumnVisible(false);
    QVERIFY(panel.view()->isColumnHidden(FleetModel::Hub));
    panel.setHubColumnVisible(true);
    QVERIFY(!panel.view()->isColumnHidden(FleetModel::Hub));
}

// The 1 Hz refresh looks up the rows on screen only, unless the fleet is sorted by heartbeat
// (the order needs every bot's age); what it finds changed reaches the rows.
void TestFleetPanel::refreshLooksUpTheRowsOnScreen()
{
    FleetPanel panel([](const QString &) { return 0; });
    panel.resize(900, 400);
    panel.show();
    QVERIFY(QTest::qWaitForWindowExposed(&panel));
    QList<BotInfo> fleet;
    for (int i = 0; i < 2000; ++i)
        fleet << bot(QStringLiteral("bot-%1").arg(i), "a");
    panel.upsert(fleet);
    panel.view()->sortByColumn(FleetModel::Bot, Qt::AscendingOrder);
    QStringList asked;
    int wholeFleet = 0;
    auto lookup = [&](const QString &id) -> std::optional<BotInfo> {
        asked << id;
        BotInfo b = bot(id, "a");
        if (id == QLatin1String("bot-1"))
            b.state = QStringLiteral("restarting");
        return b;
    };
    auto all = [&] {
        ++wholeFleet;
        return fleet;
    };
    panel.refreshLive(lookup, all);
    QCOMPARE(wholeFleet, 0);
    QVERIFY2(!asked.isEmpty() && asked.size() < 100, qPrintable(QString::number(asked.size())));
    QCOMPARE(asked.first(), QString("bot-0"));
    const int row = panel.model()->rowOf("bot-1");
    QCOMPARE(panel.model()->index(row, FleetModel::State).data().toString(), QString("restarting"));
    // bot-1999 is off screen: not asked.
    QVERIFY(!asked.contains("bot-1999"));

    asked.clear();
    panel.view()->sortByColumn(FleetModel::Heartbeat, Qt::AscendingOrder);
    panel.refreshLive(lookup, all);
    QCOMPARE(wholeFleet, 1);
    QVERIFY(asked.isEmpty());
}

// Rows signal their changes from the Labels column on (the id never changes): a fleet sorted
// by another column still moves a row whose value changed.
void TestFleetPanel::aChangeMovesItsRowInTheSortedOrder()
{
    FleetPanel panel([](const QString &) { return 0; });
    BotInfo a = bot("bot-a", "g"), b = bot("bot-b", "g"), c = bot("bot-c", "g");
    a.state = "idle";
    b.state = "running";
    c.state = "stopped";
    panel.upsert({a, b, c});
    panel.view()->sortByColumn(FleetModel::State, Qt::AscendingOrder);
    auto order = [&] {
        QStringList ids;
        const QAbstractItemModel *m = panel.view()->model();
        for (int r = 0; r < m->rowCount(); ++r)
            ids << m->index(r, 0).data(FleetModel::BotIdRole).toString();
        return ids;
    };
    QCOMPARE(order(), QStringList({"bot-a", "bot-b", "bot-c"}));
    a.state = "updating";
    panel.upsert({a});
    QCOMPARE(order(), QStringList({"bot-b", "bot-c", "bot-a"}));
    c.connected = false;
    c.disconnectedAtMs = 1000;
    panel.view()->sortByColumn(FleetModel::Connection, Qt::AscendingOrder);
    panel.upsert({c});
    QCOMPARE(order().last(), QString("bot-c")); // "connected" < "disconnected since"
    c.connected = true;
    c.disconnectedAtMs = 0;
    panel.view()->sortByColumn(FleetModel::Connection, Qt::DescendingOrder);
    QCOMPARE(order().first(), QString("bot-c")); // still disconnected: first, descending
    b.connected = false;
    b.disconnectedAtMs = 3'600'000; // an hour later: "disconnected since 01:00:.."
    panel.upsert({b});              // disconnected later: before bot-c, descending
    QCOMPARE(order().first(), QString("bot-b"));
}

void TestFleetPanel::settingsRoundTrip()
{
    QSettings().remove(QStringLiteral("fleet"));
    {
        FleetPanel panel([](const QString &) { return 0; });
        panel.filter()->setText("group=a");
        panel.view()->setColumnHidden(FleetModel::Labels, true);
        panel.view()->setColumnWidth(FleetModel::State, 123);
        panel.view()->sortByColumn(FleetModel::Connection, Qt::DescendingOrder);
        panel.saveSettings();
    }
    {
        QSettings settings;
        QCOMPARE(settings.value("fleet/filter").toString(), QString("group=a"));
        QVERIFY(!settings.value("fleet/header").toByteArray().isEmpty());
    }
    FleetPanel again([](const QString &) { return 0; });
    QCOMPARE(again.filter()->text(), QString());
    again.loadSettings();
    QCOMPARE(again.filter()->text(), QString("group=a"));
    QVERIFY(again.view()->isColumnHidden(FleetModel::Labels));
    QCOMPARE(again.view()->columnWidth(FleetModel::State), 123);
    QCOMPARE(again.view()->horizontalHeader()->sortIndicatorSection(), int(FleetModel::Connection));
    QCOMPARE(again.view()->horizontalHeader()->sortIndicatorOrder(), Qt::DescendingOrder);
    QSettings().remove(QStringLiteral("fleet"));
}

void TestFleetPanel::approvalBarCountsShowsAndOffersTheDecisions()
{
    FleetPanel panel([](const QString &) { return 0; });
    QAction accept("Accept"), reject("Reject…");
    panel.setApprovalActions({&accept, &reject});
    panel.show();
    QVERIFY(panel.approvalBar()->isHidden());
    QCOMPARE(panel.approvalText(), QString());
    BotInfo held = bot("bot-h1", "a", false);
    held.admission = BotAdmission::Awaiting;
    held.credential = "token:rack";
    BotInfo held2 = held;
    held2.botId = "bot-h2";
    panel.upsert({bot("bot-1", "a"), held});
    QVERIFY(panel.approvalBar()->isVisible());
    QVERIFY2(panel.approvalText().contains("1 bot awaiting approval"),
             qPrintable(panel.approvalText()));
    panel.upsert({held2});
    QVERIFY2(panel.approvalText().contains("2 bots awaiting approval"),
             qPrintable(panel.approvalText()));
    // The decisions are the window's actions, as buttons on the bar.
    QList<QToolButton *> buttons = panel.approvalBar()->findChildren<QToolButton *>();
    QStringList texts;
    for (const QToolButton *b : buttons)
        texts << b->text();
    QVERIFY2(texts.contains("Accept") && texts.contains("Reject…") && texts.contains("Show them"),
             qPrintable(texts.join(", ")));
    // "Show them": only the bots awaiting approval.
    for (QToolButton *b : buttons)
        if (b->text() == "Show them")
            b->click();
    QCOMPARE(panel.view()->model()->rowCount(), 2);
    panel.selectBots({"bot-h1", "bot-h2"});
    QCOMPARE(panel.selectedBotInfos().size(), 2);
    QCOMPARE(panel.selectedBotInfos().first().credential, QString("token:rack"));
    panel.filter()->clear();
    QCOMPARE(panel.view()->model()->rowCount(), 3);
    // Decided (one accepted and connected, one rejected): the bar goes.
    held.admission = BotAdmission::Accepted;
    held.connected = true;
    held2.admission = BotAdmission::Rejected;
    panel.upsert({held, held2});
    QVERIFY(panel.approvalBar()->isHidden());
}

QTEST_MAIN(TestFleetPanel)
#include "tst_fleetpanel.moc"
