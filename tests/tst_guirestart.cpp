// Issue 10's "done means", in one process under the offscreen platform: send commands from
// the window to a real bot, close the window and stop as app/main.cpp does, start again on
// the same data directory: the commands are in the live table with their states, the history
// search finds them, and File > Export writes them. And a crash (the history ends while a
// command is pending): after the restart that command is "unknown".
#include "changefeed.h"
#include "commandexport.h"
#include "commandregistry.h"
#include "commandservice.h"
#include "commandtablemodel.h"
#include "fleetmodel.h"
#include "historymodel.h"
#include "historypanel.h"
#include "historystore.h"
#include "hub.h"
#include "localbackend.h"
#include "mainwindow.h"
#include "rawbot.h"
#include "sendpanel.h"

#include <QComboBox>
#include <QDockWidget>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QLineEdit>
#include <QSettings>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>
#include <QTextBrowser>

#include <functional>
#include <memory>

using namespace opconsole;
using namespace std::chrono;

namespace {

// One run of the console with its hub, wired as app/main.cpp wires it: the history opened
// first and its recent commands restored into the registry, every change of the feed
// appended to it, ids carrying the run.
struct Run
{
    explicit Run(const QString &dataDir)
    {
        HistoryOptions options;
        options.directory = dataDir;
        QString error;
        history = HistoryStore::open(options, &error);
        if (!history)
            qFatal("history: %s", qPrintable(error));
        restored = registry.restore(history->recent());
        link = std::make_unique<QObject>();
        QObject::connect(
            &feed, &ChangeFeed::changes, link.get(),
            [store = history.get()](const QList<CommandOutcome> &r) { store->append(r); },
            Qt::DirectConnection);
        HubOptions hubOptions;
        hubOptions.listenAddress = QStringLiteral("127.0.0.1:0");
        hub = std::make_unique<Hub>(registry, hubOptions);
        service = std::make_unique<CommandService>(registry, *hub);
        service->setIdPrefix(QStringLiteral("r") + QString::number(history->run(), 36));
        started = hub->start();
        backend = std::make_unique<LocalBackend>(registry, feed, *hub, *service, history.get());
        window = std::make_unique<MainWindow>(*backend);
        window->resize(1400, 860);
        window->show();
    }
    ~Run()
    {
        // The window and the backend before the store they read.
        window.reset();
        backend.reset();
    }

    // The way out of app/main.cpp: the window closes, the hub stops (its pending commands
    // fail with the reason), the feed's last batch is delivered and written.
    bool stop()
    {
        window->close();
        hub->stop(QStringLiteral("hub shutting down"));
        QCoreApplication::sendPostedEvents();
        registry.flushChanges();
        const bool flushed = history->flush(10s);
        window.reset();
        backend.reset();
        return flushed;
    }

    // A crash: the history ends with what it holds, and nothing after reaches it (the hub
    // and its commands go down later, unseen by the database).
    bool crash()
    {
        window.reset();
        backend.reset();
        registry.flushChanges();
        const bool flushed = history->flush(10s);
        link.reset();
        history.reset();
        return flushed;
    }

    std::string address() const { return hub->address().toStdString(); }
    QString stateOf(const QString &id) const
    {
        const CommandTableModel *m = window->commandModel();
        const int row = m->rowOf(id);
        return row < 0 ? QString() : m->index(row, CommandTableModel::State).data().toString();
    }
    QString messageOf(const QString &id) const
    {
        const CommandTableModel *m = window->commandModel();
        const int row = m->rowOf(id);
        return row < 0 ? QString() : m->index(row, CommandTableModel::Message).data().toString();
    }

    CommandRegistry registry;
    ChangeFeed feed{registry};
    std::unique_ptr<HistoryStore> history;
    std::unique_ptr<QObject> link; // the store's connections; gone before the store
    std::unique_ptr<Hub> hub;
    std::unique_ptr<CommandService> service;
    std::unique_ptr<LocalBackend> backend;
    std::unique_ptr<MainWindow> window;
    int restored = 0;
    bool started = false;
};

// Starts something that ends in HistoryPanel::pageLoaded and waits for it (bounded).
bool loaded(HistoryPanel &panel, const std::function<void()> &start)
{
    QSignalSpy spy(&panel, &HistoryPanel::pageLoaded);
    start();
    return spy.count() > 0 || spy.wait(5000);
}

QStringList historyIds(const HistoryPanel &panel)
{
    QStringList ids;
    for (const CommandOutcome &o : panel.shownRecords())
        ids << o.commandId;
    return ids;
}

QByteArray readAll(const QString &path)
{
    QFile file(path);
    return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
}

// The id and state columns of an exported CSV, one "id state" per row (header excluded).
QStringList csvIdsAndStates(const QByteArray &csv)
{
    const int id = int(csvColumns().indexOf("id"));
    const int state = int(csvColumns().indexOf("state"));
    QStringList out;
    const QList<QByteArray> lines = csv.split('\n');
    for (qsizetype i = 1; i < lines.size(); ++i) {
        const QByteArray line = lines[i].trimmed();
        if (line.isEmpty())
            continue;
        const QList<QByteArray> fields = line.split(','); // no quoted fields among these
        out << QString::fromUtf8(fields.value(id) + ' ' + fields.value(state));
    }
    return out;
}

} // namespace

class TestGuiRestart : public QObject
{
    Q_OBJECT

private slots:
    void initTestCase()
    {
        QStandardPaths::setTestModeEnabled(true);
        QSettings().clear();
    }
    void commandsSurviveARestart();
    void aCrashLeavesThePendingCommandUnknown();
};

void TestGuiRestart::commandsSurviveARestart()
{
    QTemporaryDir dir;
    QString ping, config, rejected, pending;
    {
        Run run(dir.path());
        QVERIFY(run.started);
        RawBot bot(run.address());
        QVERIFY(bot.hello("bot-1"));
        QTRY_VERIFY_WITH_TIMEOUT(run.window->fleetModel()->rowOf("bot-1") >= 0, 5000);
        run.window->selectBots({"bot-1"});
        // From the window: the toolbar's quick actions, and a config from the send panel.
        run.window->sendKindToSelection(CommandKind::Ping);
        const auto c1 = bot.readCommand(5s);
        QVERIFY(c1);
        run.window->sendPanel()->setKind(CommandKind::ConfigUpdate);
        run.window->sendPanel()->setConfigValues({{"depth", "3"}});
        run.window->sendToSelection();
        const auto c2 = bot.readCommand(5s);
        QVERIFY(c2 && c2->has_config_update());
        run.window->sendKindToSelection(CommandKind::Restart);
        const auto c3 = bot.readCommand(5s);
        QVERIFY(c3);
        run.window->sendKindToSelection(CommandKind::Stop);
        const auto c4 = bot.readCommand(5s);
        QVERIFY(c4);
        ping = QString::fromStdString(c1->command_id());
        config = QString::fromStdString(c2->command_id());
        rejected = QString::fromStdString(c3->command_id());
        pending = QString::fromStdString(c4->command_id());
        bot.ack(c1->command_id(), true, "pong");
        bot.ack(c2->command_id(), true, "applied");
        bot.ack(c3->command_id(), false, "no fuel");
        // The stop is never answered: still pending when the console closes.
        QTRY_COMPARE_WITH_TIMEOUT(run.stateOf(ping), QString("acked"), 5000);
        QTRY_COMPARE_WITH_TIMEOUT(run.stateOf(config), QString("acked"), 5000);
        QTRY_COMPARE_WITH_TIMEOUT(run.stateOf(rejected), QString("rejected"), 5000);
        QCOMPARE(run.stateOf(pending), QString("pending"));
        QVERIFY(run.stop());
    }

    Run run(dir.path());
    QCOMPARE(run.restored, 4);
    // The live table: every command with its state; the stop failed as the hub stopped.
    QCOMPARE(run.stateOf(ping), QString("acked"));
    QCOMPARE(run.stateOf(config), QString("acked"));
    QCOMPARE(run.stateOf(rejected), QString("rejected"));
    QCOMPARE(run.messageOf(rejected), QString("no fuel"));
    QCOMPARE(run.stateOf(pending), QString("disconnected"));
    QCOMPARE(run.messageOf(pending), QString("hub shutting down"));
    // Its details keep what was sent, though this window did not send it.
    run.window->selectCommand(config);
    QTRY_VERIFY_WITH_TIMEOUT(run.window->details()->toPlainText().contains("depth"), 5000);

    // The history search finds them, newest first, and by state.
    HistoryPanel *panel = run.window->historyPanel();
    QVERIFY(loaded(*panel, [&] { run.window->showHistory(); }));
    QCOMPARE(historyIds(*panel), QStringList({pending, rejected, config, ping}));
    panel->botField()->setText("bot-1");
    panel->stateField()->setCurrentIndex(panel->stateField()->findData(int(CommandState::Acked)));
    QVERIFY(loaded(*panel, [&] { panel->search(); }));
    QCOMPARE(historyIds(*panel), QStringList({config, ping}));
    QVERIFY(panel->model()
                ->index(0, HistoryModel::Params)
                .data()
                .toString()
                .contains(R"("config":{"depth":"3"})"));
    QVERIFY2(panel->statusLabel()->text().contains("4 commands since"),
             qPrintable(panel->statusLabel()->text()));

    // Export: the live table as filtered, and the history's rows.
    QTemporaryDir out;
    QString error;
    QVERIFY2(run.window->exportTable(MainWindow::Table::Commands, out.filePath("live.csv"),
                                     ExportFormat::Csv, &error),
             qPrintable(error));
    QCOMPARE(csvIdsAndStates(readAll(out.filePath("live.csv"))),
             QStringList({pending + " disconnected", rejected + " rejected", config + " acked",
                          ping + " acked"}));
    run.window->stateFilter()->setCurrentIndex(3); // Problems
    QVERIFY(run.window->exportTable(MainWindow::Table::Commands, out.filePath("problems.csv"),
                                    ExportFormat::Csv, &error));
    QCOMPARE(csvIdsAndStates(readAll(out.filePath("problems.csv"))),
             QStringList({pending + " disconnected", rejected + " rejected"}));
    run.window->stateFilter()->setCurrentIndex(0);
    // File > Export writes the history's rows: it was used last.
    QCOMPARE(run.window->activeTable(), MainWindow::Table::History);
    QVERIFY(run.window->exportTable(run.window->activeTable(), out.filePath("history.json"),
                                    ExportFormat::Json, &error));
    const QJsonArray json = QJsonDocument::fromJson(readAll(out.filePath("history.json"))).array();
    QCOMPARE(json.size(), 2);
    QCOMPARE(json[0].toObject()["id"].toString(), config);
    QCOMPARE(json[0].toObject()["params"].toObject()["config"].toObject()["depth"].toString(),
             QString("3"));
    QCOMPARE(json[1].toObject()["ack"].toObject()["message"].toString(), QString("pong"));

    // And the console goes on: a new command next to the restored ones, its id a new one.
    RawBot bot(run.address());
    QVERIFY(bot.hello("bot-1"));
    QTRY_VERIFY_WITH_TIMEOUT(run.window->fleetModel()->rowOf("bot-1") >= 0, 5000);
    run.window->selectBots({"bot-1"});
    run.window->sendKindToSelection(CommandKind::Ping);
    const auto again = bot.readCommand(5s);
    QVERIFY(again);
    const QString next = QString::fromStdString(again->command_id());
    QVERIFY(!QStringList({ping, config, rejected, pending}).contains(next));
    bot.ack(again->command_id(), true, "pong again");
    QTRY_COMPARE_WITH_TIMEOUT(run.stateOf(next), QString("acked"), 5000);
    QCOMPARE(run.window->commandModel()->rowCount(), 5);
}

void TestGuiRestart::aCrashLeavesThePendingCommandUnknown()
{
    QTemporaryDir dir;
    QString acked, pending;
    {
        Run run(dir.path());
        QVERIFY(run.started);
        RawBot bot(run.address());
        QVERIFY(bot.hello("bot-9"));
        QTRY_VERIFY_WITH_TIMEOUT(run.window->fleetModel()->rowOf("bot-9") >= 0, 5000);
        run.window->selectBots({"bot-9"});
        run.window->sendKindToSelection(CommandKind::Ping);
        const auto c1 = bot.readCommand(5s);
        run.window->sendKindToSelection(CommandKind::Restart);
        const auto c2 = bot.readCommand(5s);
        QVERIFY(c1 && c2);
        acked = QString::fromStdString(c1->command_id());
        pending = QString::fromStdString(c2->command_id());
        bot.ack(c1->command_id(), true, "pong");
        QTRY_COMPARE_WITH_TIMEOUT(run.stateOf(acked), QString("acked"), 5000);
        QCOMPARE(run.stateOf(pending), QString("pending"));
        QVERIFY(run.crash());
    }

    Run run(dir.path());
    QCOMPARE(run.history->unknownAtOpen(), 1);
    QCOMPARE(run.stateOf(acked), QString("acked"));
    QCOMPARE(run.stateOf(pending), QString("unknown"));
    QCOMPARE(run.messageOf(pending), QString("the hub stopped while this command was pending"));
    // The status bar says what the history keeps, and that one was left unknown.
    QVERIFY2(run.window->historyStatusText().contains("1 unknown at start"),
             qPrintable(run.window->historyStatusText()));

    HistoryPanel *panel = run.window->historyPanel();
    panel->stateField()->setCurrentIndex(panel->stateField()->findData(int(CommandState::Unknown)));
    QVERIFY(loaded(*panel, [&] { run.window->showHistory(); }));
    QVERIFY(loaded(*panel, [&] { panel->search(); }));
    QCOMPARE(historyIds(*panel), QStringList({pending}));
    QCOMPARE(panel->model()->index(0, HistoryModel::State).data().toString(), QString("unknown"));

    QTemporaryDir out;
    QString error;
    run.window->stateFilter()->setCurrentIndex(3); // Problems
    QVERIFY2(run.window->exportTable(MainWindow::Table::Commands, out.filePath("problems.csv"),
                                     ExportFormat::Csv, &error),
             qPrintable(error));
    QCOMPARE(csvIdsAndStates(readAll(out.filePath("problems.csv"))),
             QStringList({pending + " unknown"}));
}

QTEST_MAIN(TestGuiRestart)
#include "tst_guirestart.moc"
