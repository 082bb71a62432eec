// The console attached to hubs in other processes: opconsole --headless and botsim fleets as
// real processes, the real window under the offscreen platform, RemoteBackend over loopback
// (to each hub's operator listener; the fleets reach its bot listener).
#include "commandtablemodel.h"
#include "fanoutmodel.h"
#include "fleetmodel.h"
#include "hubprocess.h"
#include "hubset.h"
#include "mainwindow.h"
#include "sendpanel.h"
#include "tokens.h"

#include <QAction>
#include <QFile>
#include <QLabel>
#include <QListView>
#include <QPushButton>
#include <QSet>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTableView>

using namespace opconsole;
using namespace std::chrono;

namespace {

// A botsim process: `bots` bots named prefix1..N that answer after latencyMs.
struct Fleet
{
    Fleet(const QString &hub, int bots, const QString &prefix, int latencyMs,
          const QStringList &extra = {})
    {
        process.setProgram(QCoreApplication::applicationDirPath() + QStringLiteral("/botsim"));
        process.setArguments(QStringList{"--hub", hub, "--bots", QString::number(bots), "--prefix",
                                         prefix, "--latency",
                                         QStringLiteral("fixed:%1").arg(latencyMs), "--seed", "7"} +
                             extra);
        process.setProcessChannelMode(QProcess::ForwardedErrorChannel);
        process.start();
    }
    ~Fleet()
    {
        process.terminate();
        if (!process.waitForFinished(15'000))
            process.kill();
    }
    QProcess process;
};

RemoteBackend::Options quick(const QByteArray &token = {})
{
    RemoteBackend::Options o;
    o.firstRetry = 50ms;
    o.maxRetry = 400ms;
    o.security.token = token;
    return o;
}

// One console: the hubs it is attached to and the window on them.
struct Console
{
    explicit Console(const QString &hub, const QByteArray &token = {})
        : Console(QStringList{hub}, token)
    {}
    explicit Console(const QStringList &hubs, const QByteArray &token = {})
        : backend(hubs, quick(token)), window(backend)
    {
        window.show();
    }
    bool live(int ms = 15'000)
    {
        return QTest::qWaitFor([&] { return backend.link() == ConsoleBackend::Link::Live; }, ms);
    }
    bool bots(int n, int ms = 20'000)
    {
        return QTest::qWaitFor([&] { return window.fleetModel()->connectedCount() == n; }, ms);
    }
    CommandTableModel *model() const { return window.commandModel(); }
    QString stateOf(const QString &id) const
    {
        const int row = model()->rowOf(id);
        return row < 0 ? QString()
                       : model()->index(row, CommandTableModel::State).data().toString();
    }
    // Every command id in the table, checking that none is there twice.
    QStringList ids(bool *unique) const
    {
        QStringList out;
        QSet<QString> seen;
        for (int r = 0; r < model()->rowCount(); ++r) {
            const QString id =
                model()->index(r, 0).data(CommandTableModel::CommandIdRole).toString();
            out << id;
            seen.insert(id);
        }
        *unique = seen.size() == out.size();
        return out;
    }
    QString fanOutText(const QString &fanOut) const
    {
        const int row = window.fanOutModel()->rowOf(fanOut);
        return row < 0 ? QString() : window.fanOutModel()->index(row).data().toString();
    }

    HubSet backend;
    MainWindow window;
};

// Where bots connect.
QString address(HubProcess &hub)
{
    return QString::fromStdString(hub.address());
}

// Where consoles and opctl connect.
QString operatorAddress(HubProcess &hub)
{
    return QString::fromStdString(hub.operatorAddress());
}

// A file only its owner may read (token files and --operators must be).
QString privateFile(const QTemporaryDir &dir, const QString &name, const QByteArray &content)
{
    const QString path = dir.filePath(name);
    QFile file(path);
    if (!file.open(QIODevice::WriteOnly) || file.write(content) != content.size())
        return {};
    file.setPermissions(QFile::ReadOwner | QFile::WriteOwner);
    return path;
}

} // namespace

class TestRemoteConsole : public QObject
{
    Q_OBJECT

private slots:
    void initTestCase() { QStandardPaths::setTestModeEnabled(true); }
    void attachSendFanOutCancelAndLateAcks();
    void hubKilledThenRestartedResyncsWithNoDuplicateOrMissingRow();
    void twoConsolesSeeEachOthersCommandsAndOpctlFanOuts();
    void badAddressShowsTheBannerAndRefusesSends();
    void severalHubsOneFleetOneTally();
    void historyAcrossHubsPagesInTimeOrder();
    void operatorTokenAdmissionAndIssuer();
};

void TestRemoteConsole::attachSendFanOutCancelAndLateAcks()
{
    HubProcess hub(QStringLiteral("127.0.0.1:0"), {});
    const QString addr = address(hub);
    QVERIFY(!addr.isEmpty());
    Fleet fast(addr, 4, "fast-", 20);
    Fleet slow(addr, 1, "slow-", 1500);
    Console console(operatorAddress(hub));
    QVERIFY(console.live());
    QVERIFY(console.bots(5));
    QVERIFY(console.window.banner()->isHidden());

    // One command from the window, as an operator clicks it.
    console.window.selectBots({"fast-1"});
    console.window.sendKindToSelection(CommandKind::Ping);
    QTRY_COMPARE_WITH_TIMEOUT(console.model()->rowCount(), 1, 10'000);
    const QString first =
        console.model()->index(0, 0).data(CommandTableModel::CommandIdRole).toString();
    QTRY_COMPARE_WITH_TIMEOUT(console.stateOf(first), QStringLiteral("acked"), 10'000);

    // A fan-out whose slow bot answers after the deadline: the tally counts its late ack.
    const SendReceipt fan = console.backend.send({"fast-1", "fast-2", "fast-3", "fast-4", "slow-1"},
                                                 CommandSpec::of(CommandKind::Ping), 400ms);
    QVERIFY2(fan.ok(), qPrintable(fan.error));
    QVERIFY(!fan.fanOut.isEmpty());
    QTRY_VERIFY_WITH_TIMEOUT(
        console.fanOutText(fan.fanOut).endsWith("4/5 acked, 1 expired (late ack)"), 15'000);
    QVERIFY(console.fanOutText(fan.fanOut).startsWith("ping → 5 bots"));
    // Clicking the tally row filters the table to its five commands.
    console.window.showFanOut(fan.fanOut);
    QTRY_COMPARE_WITH_TIMEOUT(console.window.commandsView()->model()->rowCount(), 5, 5000);
    console.window.showFanOut({});
    QCOMPARE(console.window.commandsView()->model()->rowCount(), 6);

    // Cancel from the window: the slow bot's long command.
    const SendReceipt slowOne =
        console.backend.send({"slow-1"}, CommandSpec::of(CommandKind::Restart), 30s);
    QVERIFY(slowOne.ok());
    const QString id = slowOne.commandIds.value(0);
    QTRY_COMPARE_WITH_TIMEOUT(console.stateOf(id), QStringLiteral("pending"), 10'000);
    console.window.selectCommand(id);
    console.window.cancelSelected();
    QTRY_VERIFY_WITH_TIMEOUT(console.stateOf(id).startsWith("cancelled"), 10'000);
    QCOMPARE(console.backend.hub(0).stats().badRecords, 0u);
}

void TestRemoteConsole::hubKilledThenRestartedResyncsWithNoDuplicateOrMissingRow()
{
    auto hub = std::make_unique<HubProcess>(QStringLiteral("127.0.0.1:0"), QStringList{});
    const QString bots = address(*hub);
    const QString addr = operatorAddress(*hub);
    QVERIFY(!bots.isEmpty() && !addr.isEmpty());
    Fleet fleet(bots, 3, "r-", 10);
    Console console(addr);
    QVERIFY(console.live());
    QVERIFY(console.bots(3));
    // Some finished commands, and one still pending when the hub dies.
    const SendReceipt done =
        console.backend.send({"r-1", "r-2", "r-3"}, CommandSpec::of(CommandKind::Ping), 5s);
    QVERIFY(done.ok());
    QTRY_VERIFY_WITH_TIMEOUT(console.fanOutText(done.fanOut).endsWith("3/3 acked"), 10'000);
    const SendReceipt waiting =
        console.backend.send({"ghost"}, CommandSpec::of(CommandKind::Ping), 60s);
    QVERIFY(waiting.ok());
    // "ghost" is not connected: refused by the hub as not connected (a row, finished).
    QTRY_VERIFY_WITH_TIMEOUT(!console.stateOf(waiting.commandIds.value(0)).isEmpty(), 10'000);
    bool unique = false;
    const QStringList before = console.ids(&unique);
    QVERIFY(unique);
    QCOMPARE(before.size(), 4);

    hub->process.kill(); // SIGKILL: no goodbye
    QVERIFY(hub->process.waitForFinished(10'000));
    QTRY_VERIFY_WITH_TIMEOUT(console.window.banner()->isVisible(), 10'000);
    QCOMPARE(console.backend.link(), ConsoleBackend::Link::Down);
    QVERIFY(console.window.banner()->text().contains(addr));
    // Sending while unreachable is refused at once, with the reason; nothing is queued.
    console.window.selectBots({"r-1"});
    console.window.sendKindToSelection(CommandKind::Ping);
    QVERIFY2(console.window.statusBar()->currentMessage().contains("not sent"),
             qPrintable(console.window.statusBar()->currentMessage()));
    QCOMPARE(console.ids(&unique), before); // the last state stays on screen

    // The hub comes back on the same ports (a new run: its memory is empty).
    hub = std::make_unique<HubProcess>(bots, QStringList{"--operator-listen", addr});
    QCOMPARE(operatorAddress(*hub), addr);
    QVERIFY(console.live(20'000));
    QVERIFY(console.window.banner()->isHidden());
    QVERIFY(console.bots(3));
    QCOMPARE(console.backend.hub(0).stats().resyncs, 1u);
    const QStringList after = console.ids(&unique);
    QVERIFY(unique);
    QCOMPARE(after, before); // nothing lost, nothing twice
    // New commands flow again.
    const SendReceipt again = console.backend.send({"r-2"}, CommandSpec::of(CommandKind::Ping), 5s);
    QVERIFY2(again.ok(), qPrintable(again.error));
    QTRY_COMPARE_WITH_TIMEOUT(console.stateOf(again.commandIds.value(0)), QStringLiteral("acked"),
                              10'000);
    QCOMPARE(console.ids(&unique).size(), 5);
    QVERIFY(unique);
}

void TestRemoteConsole::twoConsolesSeeEachOthersCommandsAndOpctlFanOuts()
{
    HubProcess hub(QStringLiteral("127.0.0.1:0"), {});
    const QString addr = operatorAddress(hub);
    QVERIFY(!addr.isEmpty());
    Fleet fleet(address(hub), 3, "t-", 10);
    Console a(addr), b(addr);
    QVERIFY(a.live() && b.live());
    QVERIFY(a.bots(3) && b.bots(3));

    const SendReceipt fromA =
        a.backend.send({"t-1", "t-2"}, CommandSpec::of(CommandKind::Start), 5s);
    QVERIFY(fromA.ok());
    QTRY_VERIFY_WITH_TIMEOUT(b.fanOutText(fromA.fanOut).endsWith("2/2 acked"), 10'000);
    QTRY_VERIFY_WITH_TIMEOUT(a.fanOutText(fromA.fanOut).endsWith("2/2 acked"), 10'000);
    const SendReceipt fromB = b.backend.send({"t-3"}, CommandSpec::of(CommandKind::Ping), 5s);
    QVERIFY(fromB.ok());
    QTRY_COMPARE_WITH_TIMEOUT(a.stateOf(fromB.commandIds.value(0)), QStringLiteral("acked"),
                              10'000);

    // opctl fans out to every bot: a tally row in both consoles.
    QProcess opctl;
    opctl.setProgram(QCoreApplication::applicationDirPath() + QStringLiteral("/opctl"));
    opctl.setArguments({"--hub", addr, "send", "--all", "ping", "--timeout", "5s"});
    opctl.start();
    QVERIFY(opctl.waitForFinished(20'000));
    QCOMPARE(opctl.exitCode(), 0);
    for (Console *c : {&a, &b}) {
        QTRY_VERIFY_WITH_TIMEOUT(
            [&] {
                for (int r = 0; r < c->window.fanOutModel()->rowCount(); ++r) {
                    const QString t = c->window.fanOutModel()->index(r).data().toString();
                    if (t.startsWith("ping → 3 bots") && t.endsWith("3/3 acked"))
                        return true;
                }
                return false;
            }(),
            10'000);
        QCOMPARE(c->window.fanOutModel()->rowCount(), 2);
        bool unique = false;
        QCOMPARE(c->ids(&unique).size(), 6);
        QVERIFY(unique);
    }
}

void TestRemoteConsole::badAddressShowsTheBannerAndRefusesSends()
{
    // A port nothing listens on (taken then released by a hub that has exited).
    QString addr;
    {
        HubProcess hub(QStringLiteral("127.0.0.1:0"), {});
        addr = operatorAddress(hub);
        QVERIFY(hub.terminate());
    }
    Console console(addr);
    QTRY_COMPARE_WITH_TIMEOUT(console.backend.link(), ConsoleBackend::Link::Down, 10'000);
    QVERIFY(console.window.banner()->isVisible());
    QVERIFY(console.backend.linkProblem().contains("retrying"));
    const SendReceipt r = console.backend.send({"x"}, CommandSpec::of(CommandKind::Ping), 1s);
    QVERIFY(!r.ok());
    QVERIFY(r.error.contains(addr));
    QCOMPARE(console.model()->rowCount(), 0);
}

void TestRemoteConsole::severalHubsOneFleetOneTally()
{
    HubProcess hubA(QStringLiteral("127.0.0.1:0"), {});
    auto hubB = std::make_unique<HubProcess>(QStringLiteral("127.0.0.1:0"), QStringList{});
    const QString a = operatorAddress(hubA), b = operatorAddress(*hubB);
    QVERIFY(!a.isEmpty() && !b.isEmpty());
    Fleet fleetA(address(hubA), 2, "a-", 10), fleetB(address(*hubB), 2, "b-", 10);
    Console console({a, b});
    QVERIFY(console.live());
    QVERIFY(console.bots(4));
    QVERIFY(!console.window.fleetView()->isColumnHidden(FleetModel::Hub));
    QVERIFY(!console.window.commandsView()->isColumnHidden(CommandTableModel::Hub));
    const FleetModel *fleet = console.window.fleetModel();
    QCOMPARE(fleet->index(fleet->rowOf("a-1"), FleetModel::Hub).data().toString(), a);
    QCOMPARE(fleet->index(fleet->rowOf("b-2"), FleetModel::Hub).data().toString(), b);

    // One fan-out over both hubs: one id, one tally row.
    const SendReceipt fan =
        console.backend.send({"a-1", "b-1", "a-2", "b-2"}, CommandSpec::of(CommandKind::Ping), 5s);
    QVERIFY2(fan.ok(), qPrintable(fan.error));
    QTRY_VERIFY_WITH_TIMEOUT(console.fanOutText(fan.fanOut).endsWith("4/4 acked"), 10'000);
    QVERIFY(console.fanOutText(fan.fanOut).startsWith("ping → 4 bots"));
    QCOMPARE(console.window.fanOutModel()->rowCount(), 1);
    // Each command on the hub that holds its bot.
    for (int r = 0; r < console.model()->rowCount(); ++r) {
        const QString bot = console.model()->index(r, CommandTableModel::Bot).data().toString();
        QCOMPARE(console.model()->index(r, CommandTableModel::Hub).data().toString(),
                 bot.startsWith("a-") ? a : b);
    }
    // One hub goes: sends to its bots are refused, the other hub's still go.
    hubB->process.kill();
    QVERIFY(hubB->process.waitForFinished(10'000));
    QTRY_VERIFY_WITH_TIMEOUT(console.window.banner()->isVisible(), 10'000);
    QVERIFY(console.window.banner()->text().contains(b));
    QVERIFY(console.backend.canSend()); // hub A still takes sends (second review)
    QVERIFY(console.window.sendPanel()->sendButton()->isEnabled());
    const SendReceipt refused =
        console.backend.send({"a-1", "b-1"}, CommandSpec::of(CommandKind::Ping), 5s);
    QVERIFY(!refused.ok());
    QVERIFY2(refused.error.contains(b), qPrintable(refused.error));
    const SendReceipt stillA =
        console.backend.send({"a-2"}, CommandSpec::of(CommandKind::Ping), 5s);
    QVERIFY2(stillA.ok(), qPrintable(stillA.error));
    QTRY_COMPARE_WITH_TIMEOUT(console.stateOf(stillA.commandIds.value(0)), QStringLiteral("acked"),
                              10'000);
    bool unique = false;
    QCOMPARE(console.ids(&unique).size(), 5);
    QVERIFY(unique);
}

// A console attached to two hubs searches both histories as one: pages newest first across
// page boundaries, every command once (a busy hub's records are not shown below a quiet hub's
// older ones; second review).
void TestRemoteConsole::historyAcrossHubsPagesInTimeOrder()
{
    HubProcess hubA(QStringLiteral("127.0.0.1:0"), {});
    HubProcess hubB(QStringLiteral("127.0.0.1:0"), {});
    const QString a = operatorAddress(hubA), b = operatorAddress(hubB);
    QVERIFY(!a.isEmpty() && !b.isEmpty());
    Fleet fleetA(address(hubA), 2, "a-", 10), fleetB(address(hubB), 1, "b-", 10);
    Console console({a, b});
    QVERIFY(console.live());
    QVERIFY(console.bots(3));
    // The quiet hub's commands first (older), then the busy hub's.
    QStringList ids;
    auto sendAndWait = [&](const QString &bot) {
        const SendReceipt r = console.backend.send({bot}, CommandSpec::of(CommandKind::Ping), 5s);
        if (!r.ok())
            return false;
        ids << r.commandIds.value(0);
        return QTest::qWaitFor([&] { return console.stateOf(ids.last()) == "acked"; }, 10'000);
    };
    for (int i = 0; i < 3; ++i)
        QVERIFY(sendAndWait("b-1"));
    for (int i = 0; i < 12; ++i)
        QVERIFY(sendAndWait(i % 2 ? "a-1" : "a-2"));

    auto everything = [&](int pageSize, int *pages) {
        QList<CommandOutcome> all;
        HistoryQuery q;
        q.pageSize = pageSize;
        for (*pages = 0; *pages < 50; ++*pages) {
            QFuture<HistoryPage> f = console.backend.queryHistory(q);
            if (!QTest::qWaitFor([&] { return f.isFinished(); }, 10'000) || f.resultCount() < 1)
                return QList<CommandOutcome>{};
            const HistoryPage page = f.result();
            if (!page.error.isEmpty())
                qWarning("%s", qPrintable(page.error));
            all += page.records;
            if (page.nextPageToken.isEmpty())
                break;
            q.pageToken = page.nextPageToken;
        }
        return all;
    };
    int pages = 0;
    QList<CommandOutcome> all;
    // Outcomes reach each hub's history within milliseconds of the console: asked until all 15.
    QVERIFY(QTest::qWaitFor([&] { return (all = everything(4, &pages)).size() >= 15; }, 10'000));
    QCOMPARE(all.size(), 15);
    QVERIFY2(pages >= 2, qPrintable(QString::number(pages))); // three pages at least
    QSet<QString> seen;
    for (qsizetype i = 0; i < all.size(); ++i) {
        QVERIFY(!all[i].hub.isEmpty());
        QVERIFY(!seen.contains(all[i].hub + all[i].commandId));
        seen.insert(all[i].hub + all[i].commandId);
        if (i > 0) // newest first, across page boundaries
            QVERIFY2(all[i].registeredWallMs <= all[i - 1].registeredWallMs,
                     qPrintable(QString::number(i)));
    }
    QCOMPARE(all.first().commandId, ids.last());
    QCOMPARE(all.last().commandId, ids.first());

    // A token that was not given: refused as such, never taken for "done".
    for (const QString &token : {QStringLiteral("{}x"), QStringLiteral("{\"7\":{\"t\":\"x\"}}"),
                                 QStringLiteral("{\"0\":5}"), QStringLiteral("[]")}) {
        HistoryQuery q;
        q.pageToken = token;
        QFuture<HistoryPage> f = console.backend.queryHistory(q);
        QVERIFY(QTest::qWaitFor([&] { return f.isFinished(); }, 10'000));
        QVERIFY2(f.result().badToken, qPrintable(token));
    }
}

// A hub that asks operators for a token and holds bots until an admin accepts them: the
// console with alice's token sees the held bots, accepts them from the window, and its
// commands are recorded as alice's; a console without a token is told why it is refused.
void TestRemoteConsole::operatorTokenAdmissionAndIssuer()
{
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString alice = security::newToken();
    const QString rack = security::newToken();
    const QString operators = privateFile(
        dir, "operators", "alice admin " + security::tokenHash(alice.toUtf8()).toUtf8() + "\n");
    const QString botTokens = privateFile(
        dir, "bot-tokens", "rack s-* " + security::tokenHash(rack.toUtf8()).toUtf8() + "\n");
    const QString rackFile = privateFile(dir, "rack.token", rack.toUtf8() + "\n");
    QVERIFY(!operators.isEmpty() && !botTokens.isEmpty() && !rackFile.isEmpty());
    HubProcess hub(QStringLiteral("127.0.0.1:0"),
                   {"--operators", operators, "--bot-tokens", botTokens, "--admission", "approve"});
    const QString addr = operatorAddress(hub);
    QVERIFY(!addr.isEmpty());
    Fleet fleet(address(hub), 2, "s-", 10, {"--token-file", rackFile});

    Console console(addr, alice.toUtf8());
    QVERIFY(console.live());
    QTRY_VERIFY_WITH_TIMEOUT(console.window.approvalText().contains("2 bots awaiting approval"),
                             20'000);
    QTRY_VERIFY_WITH_TIMEOUT(console.window.statusText().contains("as alice (admin)"), 5000);
    QCOMPARE(console.window.fleetModel()->connectedCount(), 0);
    console.window.selectBots({"s-1", "s-2"});
    QVERIFY(console.window.acceptAction()->isEnabled());
    console.window.acceptAction()->trigger();
    QVERIFY(console.bots(2));
    QTRY_VERIFY_WITH_TIMEOUT(console.window.approvalBar()->isHidden(), 5000);
    QTRY_VERIFY2_WITH_TIMEOUT(
        console.window.statusBar()->currentMessage().contains("2 bots accepted"),
        qPrintable(console.window.statusBar()->currentMessage()), 10'000);

    const SendReceipt sent = console.backend.send({"s-1"}, CommandSpec::of(CommandKind::Ping), 5s);
    QVERIFY2(sent.ok(), qPrintable(sent.error));
    const QString id = sent.commandIds.value(0);
    QTRY_COMPARE_WITH_TIMEOUT(console.stateOf(id), QStringLiteral("acked"), 10'000);
    QCOMPARE(console.model()
                 ->index(console.model()->rowOf(id), CommandTableModel::IssuedBy)
                 .data()
                 .toString(),
             QString("alice"));

    // Without a token: refused, and the banner says what to do.
    Console stranger(addr);
    QTRY_VERIFY_WITH_TIMEOUT(stranger.window.banner()->isVisible() &&
                                 stranger.window.banner()->text().contains("operator token"),
                             10'000);
    QVERIFY2(stranger.window.banner()->text().contains("--token-file"),
             qPrintable(stranger.window.banner()->text()));
    QCOMPARE(stranger.window.fleetModel()->rowCount(), 0);
    QVERIFY(!stranger.window.acceptAction()->isEnabled());
}

QTEST_MAIN(TestRemoteConsole)
#include "tst_remoteconsole.moc"
