// The history panel, per-bot history and File > Export, under the offscreen platform, against
// real parts: a registry and its feed writing into a HistoryStore in a temporary directory
// (an "earlier run" written into it first), a hub, the CommandService and a LocalBackend.
#include "botdetails.h"
#include "changefeed.h"
#include "commandexport.h"
#include "commandregistry.h"
#include "commandservice.h"
#include "commandtablemodel.h"
#include "detailsview.h"
#include "fleetmodel.h"
#include "historymodel.h"
#include "historypanel.h"
#include "historystore.h"
#include "hub.h"
#include "localbackend.h"
#include "mainwindow.h"
#include "rawbot.h"

#include <QAction>
#include <QCheckBox>
#include <QComboBox>
#include <QCompleter>
#include <QDateTimeEdit>
#include <QDockWidget>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QPushButton>
#include <QSettings>
#include <QSignalSpy>
#include <QSqlDatabase>
#include <QSqlQuery>
#include <QStandardPaths>
#include <QTableView>
#include <QTemporaryDir>
#include <QTest>
#include <QTextBrowser>

#include <functional>
#include <memory>

using namespace opconsole;
using namespace std::chrono;

namespace {

constexpr qint64 HourMs = 3600 * 1000;
constexpr qint64 DayMs = 24 * HourMs;

CommandAckData ack(bool success, const QString &message, int code = 0)
{
    CommandAckData a;
    a.success = success;
    a.message = message;
    a.errorCode = code;
    return a;
}

// A finished command of an earlier run, registered `ageMs` ago, as the store writes it.
CommandOutcome earlier(quint64 n, const QString &id, const QString &bot, const QString &kind,
                       CommandState state, qint64 ageMs)
{
    CommandOutcome o;
    o.sequence = n;
    o.change = n;
    o.event = ChangeEvent::Finished;
    o.commandId = id;
    o.botId = bot;
    o.kind = kind;
    o.state = state;
    o.issuer = QStringLiteral("console:test");
    o.timeout = 5s;
    o.registeredWallMs = QDateTime::currentMSecsSinceEpoch() - ageMs;
    o.registeredAt = Clock::now();
    o.sentAt = o.registeredAt + 1ms;
    o.deadline = o.registeredAt + 5s;
    o.finishedAt = o.registeredAt + 40ms;
    if (state == CommandState::Acked)
        o.ack = ack(true, QStringLiteral("done"));
    if (state == CommandState::Rejected) {
        o.ack = ack(false, QStringLiteral("no fuel"), 3);
        o.reason = QStringLiteral("no fuel");
    }
    if (state == CommandState::Expired) {
        o.finishedAt = o.deadline;
        o.reason = QStringLiteral("no ack before the deadline");
    }
    return o;
}

// What the earlier run left: bot-old's three commands on three days, bot-page's 25 pings
// of the last hours, and one command sent by opctl.
QList<CommandOutcome> earlierRun()
{
    QList<CommandOutcome> records;
    quint64 n = 0;
    records << earlier(++n, "old-ping", "bot-old", "ping", CommandState::Acked, 3 * DayMs);
    CommandOutcome restart =
        earlier(++n, "old-restart", "bot-old", "restart", CommandState::Rejected, 2 * DayMs);
    restart.params = QStringLiteral(R"({"why":"maintenance"})");
    records << restart;
    CommandOutcome stop =
        earlier(++n, "old-stop", "bot-old", "stop", CommandState::Expired, 1 * DayMs);
    stop.lateAck = ack(true, QStringLiteral("stopped after all"));
    stop.lateAckAt = stop.deadline + 1500ms;
    records << stop;
    for (int i = 0; i < 25; ++i)
        records << earlier(++n, QStringLiteral("page-%1").arg(i, 2, 10, QLatin1Char('0')),
                           "bot-page", "ping", CommandState::Acked, 6 * HourMs - i * 1000);
    CommandOutcome scripted =
        earlier(++n, "scripted", "bot-x", "pause", CommandState::Cancelled, 5 * HourMs);
    scripted.issuer = QStringLiteral("opctl@10.0.0.1:5123");
    scripted.reason = QStringLiteral("cancelled by operator");
    records << scripted;
    return records;
}

// The parts app/main.cpp wires, with the history in a temporary directory. `earlierRecords`
// are written by an earlier run of the store first (so they are restored, as at a restart).
struct Rig
{
    explicit Rig(const QList<CommandOutcome> &earlierRecords = {}, bool withHistory = true)
    {
        HistoryOptions options;
        options.directory = dir.path();
        QString error;
        if (!earlierRecords.isEmpty()) {
            auto run = HistoryStore::open(options, &error);
            if (!run)
                qFatal("history: %s", qPrintable(error));
            run->append(earlierRecords);
            run->flush();
        }
        if (withHistory) {
            history = HistoryStore::open(options, &error);
            if (!history)
                qFatal("history: %s", qPrintable(error));
            registry.restore(history->recent());
            link = std::make_unique<QObject>();
            QObject::connect(
                &feed, &ChangeFeed::changes, link.get(),
                [store = history.get()](const QList<CommandOutcome> &r) { store->append(r); },
                Qt::DirectConnection);
        }
        HubOptions hubOptions;
        hubOptions.listenAddress = QStringLiteral("127.0.0.1:0");
        hub = std::make_unique<Hub>(registry, hubOptions);
        service = std::make_unique<CommandService>(registry, *hub);
        backend = std::make_unique<LocalBackend>(registry, feed, *hub, *service, history.get());
    }

    // A command of this run, by hand: registered (and, with an ack, answered).
    void track(const QString &id, const QString &bot, const QString &kind,
               const QString &params = {})
    {
        QString error;
        if (!registry.trackCommand(
                id, bot, 60s, CommandLabels{kind, {}, params, QStringLiteral("console:t")}, &error))
            qWarning("track %s: %s", qPrintable(id), qPrintable(error));
    }
    // Everything so far delivered to the feed and committed.
    bool settle()
    {
        registry.flushChanges();
        QCoreApplication::processEvents();
        return !history || history->flush(10s);
    }

    QTemporaryDir dir;
    CommandRegistry registry;
    ChangeFeed feed{registry};
    std::unique_ptr<HistoryStore> history;
    std::unique_ptr<QObject> link; // the store's connections; gone before the store
    std::unique_ptr<Hub> hub;
    std::unique_ptr<CommandService> service;
    std::unique_ptr<LocalBackend> backend;
};

// Starts something that ends in HistoryPanel::pageLoaded and waits for it (bounded).
bool loaded(HistoryPanel &panel, const std::function<void()> &start)
{
    QSignalSpy spy(&panel, &HistoryPanel::pageLoaded);
    start();
    return spy.count() > 0 || spy.wait(5000);
}

QString cell(const HistoryPanel &panel, int row, int column)
{
    const QAbstractItemModel *shown = panel.view()->model();
    return shown->index(row, column).data().toString();
}

QStringList column(const HistoryPanel &panel, int c)
{
    QStringList out;
    for (int r = 0; r < panel.view()->model()->rowCount(); ++r)
        out << cell(panel, r, c);
    return out;
}

// RFC 4180, as a spreadsheet reads it.
QList<QStringList> parseCsv(const QByteArray &data)
{
    const QString s = QString::fromUtf8(data);
    QList<QStringList> rows;
    QStringList row;
    QString field;
    bool quoted = false;
    for (qsizetype i = 0; i < s.size(); ++i) {
        const QChar c = s[i];
        if (quoted) {
            if (c == u'"' && i + 1 < s.size() && s[i + 1] == u'"') {
                field += u'"';
                ++i;
            } else if (c == u'"') {
                quoted = false;
            } else {
                field += c;
            }
        } else if (c == u'"') {
            quoted = true;
        } else if (c == u',') {
            row << field;
            field.clear();
        } else if (c == u'\r' && i + 1 < s.size() && s[i + 1] == u'\n') {
            row << field;
            field.clear();
            rows << row;
            row.clear();
            ++i;
        } else {
            field += c;
        }
    }
    if (!field.isEmpty() || !row.isEmpty())
        rows << (row << field);
    return rows;
}

// A double click as a window system delivers it to a widget: press, double click, release.
void doubleClick(QAbstractItemView *view, QPoint pos)
{
    QTest::mousePress(view->viewport(), Qt::LeftButton, {}, pos);
    QTest::mouseDClick(view->viewport(), Qt::LeftButton, {}, pos);
    QTest::mouseRelease(view->viewport(), Qt::LeftButton, {}, pos);
}

QByteArray readAll(const QString &path)
{
    QFile file(path);
    return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
}

} // namespace

class TestHistoryDialog : public QObject
{
    Q_OBJECT

private slots:
    void initTestCase()
    {
        QStandardPaths::setTestModeEnabled(true);
        QSettings().clear();
    }
    void csvQuotesFieldsAndGuardsFormulas();
    void jsonHasStableKeysAndValues();
    void emptyListsExportAHeaderAndAnEmptyArray();
    void writeExportReportsErrorsAndWritesWhole();
    void historyModelIsBounded();
    void panelSearchesByBotStateTextAndTime();
    void panelPagesWithMoreAndStopsAtTheCap();
    void panelShowsAFailingQuery();
    void botCompletionMergesBatches();
    void panelDetailsOnDoubleClick();
    void withoutHistoryTheActionsSayWhy();
    void fleetContextMenuOpensTheBotsHistory();
    void exportWritesTheLiveTablesFilter();
    void exportWritesTheHistoryRows();
};

// The bot field completes the bots seen: every batch merged in, sorted, each once.
void TestHistoryDialog::botCompletionMergesBatches()
{
    Rig rig;
    HistoryPanel panel(*rig.backend);
    QCompleter *completer = panel.botField()->completer();
    QVERIFY(completer);
    auto listed = [&] {
        QStringList out;
        for (int r = 0; r < completer->model()->rowCount(); ++r)
            out << completer->model()->index(r, 0).data().toString();
        return out;
    };
    const int before = int(listed().size());
    panel.addBots({"zz-bot-3", "zz-bot-1", "zz-bot-3"});
    panel.addBots({"zz-bot-2", "zz-bot-1"});
    panel.addBots({});
    const QStringList all = listed();
    QCOMPARE(all.size(), before + 3);
    QVERIFY(std::is_sorted(all.cbegin(), all.cend()));
    QCOMPARE(all.mid(all.indexOf("zz-bot-1"), 3),
             QStringList({"zz-bot-1", "zz-bot-2", "zz-bot-3"}));
}

void TestHistoryDialog::csvQuotesFieldsAndGuardsFormulas()
{
    CommandOutcome a = earlier(1, "c-1", "bot,1", "ping", CommandState::Rejected, 0);
    a.ack = ack(false, QStringLiteral("said \"no\"\r\nthen left"), 4);
    a.reason = QStringLiteral("=HYPERLINK(\"http://x\")");
    a.params = QStringLiteral(R"({"k":"v, w"})");
    a.issuer = QStringLiteral("@admin");
    a.fanOut = QStringLiteral("+f-1");
    CommandOutcome b = earlier(2, "-c-2", "bot-é", "stop", CommandState::NotConnected, 0);
    b.reason = QStringLiteral("\tnot here");
    b.progressPercent = 40;
    b.progressMessage = QStringLiteral("halfway");
    b.ack.reset();

    const QByteArray csv = toCsv({a, b});
    QVERIFY(csv.endsWith("\r\n"));
    // Quoted as RFC 4180 says, quotes doubled, the CR LF inside the field kept.
    QVERIFY2(csv.contains("\"said \"\"no\"\"\r\nthen left\""), csv.constData());
    QVERIFY(csv.contains("\"bot,1\""));
    const QList<QStringList> rows = parseCsv(csv);
    QCOMPARE(rows.size(), 3);
    QCOMPARE(rows[0], csvColumns());
    for (const QStringList &row : rows)
        QCOMPARE(row.size(), csvColumns().size());
    auto field = [&](int row, const char *name) {
        return rows[row][csvColumns().indexOf(QLatin1String(name))];
    };
    QCOMPARE(field(1, "id"), QString("c-1"));
    QCOMPARE(field(1, "bot"), QString("bot,1"));
    QCOMPARE(field(1, "state"), QString("rejected"));
    QCOMPARE(field(1, "ack_message"), QString("said \"no\"\r\nthen left"));
    QCOMPARE(field(1, "ack_success"), QString("false"));
    QCOMPARE(field(1, "ack_code"), QString("4"));
    QCOMPARE(field(1, "params"), QString(R"({"k":"v, w"})"));
    // Formula injection: =, +, -, @ and tab at the start get an apostrophe.
    QCOMPARE(field(1, "reason"), QString("'=HYPERLINK(\"http://x\")"));
    QCOMPARE(field(1, "issuer"), QString("'@admin"));
    QCOMPARE(field(1, "fan_out"), QString("'+f-1"));
    QCOMPARE(field(2, "id"), QString("'-c-2"));
    QCOMPARE(field(2, "reason"), QString("'\tnot here"));
    // Numbers and times are the console's own: unchanged.
    QCOMPARE(field(1, "timeout_ms"), QString("5000"));
    QCOMPARE(field(1, "latency_ms"), QString("39.000"));
    QCOMPARE(field(2, "state"), QString("not-connected"));
    QCOMPARE(field(2, "bot"), QString("bot-é")); // UTF-8
    QCOMPARE(field(2, "progress_percent"), QString("40"));
    QCOMPARE(field(2, "ack_success"), QString());
    QCOMPARE(field(2, "latency_ms"), QString()); // never answered
    const QDateTime registered =
        QDateTime::fromString(field(1, "registered_at"), Qt::ISODateWithMs);
    QVERIFY(registered.isValid());
    QVERIFY(field(1, "registered_at").endsWith(u'Z'));
    QCOMPARE(registered.toMSecsSinceEpoch(), a.registeredWallMs);
    QCOMPARE(QDateTime::fromString(field(1, "finished_at"), Qt::ISODateWithMs).toMSecsSinceEpoch(),
             a.registeredWallMs + 40);
}

void TestHistoryDialog::jsonHasStableKeysAndValues()
{
    CommandOutcome acked = earlier(1, "c-1", "bot-1", "config", CommandState::Acked, 0);
    acked.params = QStringLiteral(R"({"version":4,"config":{"depth":"3"}})");
    acked.fanOut = QStringLiteral("f-1");
    CommandOutcome late = earlier(2, "c-2", "bot-2", "stop", CommandState::Expired, 0);
    late.params = QStringLiteral("{not json");
    late.lateAck = ack(true, QStringLiteral("stopped late"), 0);
    late.lateAckAt = late.deadline + 1500ms;
    CommandOutcome pending = earlier(3, "c-3", "bot-3", "ping", CommandState::Pending, 0);
    pending.finishedAt = {};
    pending.progressPercent = 20;
    pending.progressMessage = QStringLiteral("warming up");

    QJsonParseError error;
    const QJsonDocument doc = QJsonDocument::fromJson(toJson({acked, late, pending}), &error);
    QCOMPARE(error.error, QJsonParseError::NoError);
    QVERIFY(doc.isArray());
    const QJsonArray array = doc.array();
    QCOMPARE(array.size(), 3);
    const QStringList keys = {
        "id",          "bot",        "hub",    "kind",       "state",         "reason",
        "issuer",      "fan_out",    "params", "timeout_ms", "registered_at", "sent_at",
        "finished_at", "latency_ms", "ack",    "late_ack",   "progress"};
    QStringList sortedKeys = keys;
    sortedKeys.sort();
    for (const QJsonValue &v : array)
        QCOMPARE(v.toObject().keys(), sortedKeys); // the same keys in every object

    const QJsonObject a = array[0].toObject();
    QCOMPARE(a["id"].toString(), QString("c-1"));
    QCOMPARE(a["state"].toString(), QString("acked"));
    QCOMPARE(a["fan_out"].toString(), QString("f-1"));
    QCOMPARE(a["hub"].toString(), QString(""));
    QCOMPARE(a["params"].toObject()["version"].toInt(), 4); // parsed, not a string
    QCOMPARE(a["params"].toObject()["config"].toObject()["depth"].toString(), QString("3"));
    QCOMPARE(a["timeout_ms"].toInteger(), 5000);
    QCOMPARE(a["latency_ms"].toDouble(), 39.0);
    QCOMPARE(a["ack"].toObject()["success"].toBool(), true);
    QCOMPARE(a["ack"].toObject()["message"].toString(), QString("done"));
    QCOMPARE(a["ack"].toObject()["code"].toInt(), 0);
    QVERIFY(a["late_ack"].isNull());
    QVERIFY(a["progress"].isNull());
    QCOMPARE(
        QDateTime::fromString(a["registered_at"].toString(), Qt::ISODateWithMs).toMSecsSinceEpoch(),
        acked.registeredWallMs);
    QVERIFY(a["registered_at"].toString().endsWith(u'Z'));
    QCOMPARE(QDateTime::fromString(a["sent_at"].toString(), Qt::ISODateWithMs).toMSecsSinceEpoch(),
             acked.registeredWallMs + 1);

    const QJsonObject b = array[1].toObject();
    QCOMPARE(b["state"].toString(), QString("expired"));
    QCOMPARE(b["params"].toString(), QString("{not json")); // kept as it was
    QVERIFY(b["ack"].isNull());
    const QJsonObject lateAck = b["late_ack"].toObject();
    QCOMPARE(lateAck["message"].toString(), QString("stopped late"));
    QCOMPARE(lateAck["success"].toBool(), true);
    QCOMPARE(lateAck["late_by_ms"].toDouble(), 1500.0);
    QCOMPARE(QDateTime::fromString(lateAck["at"].toString(), Qt::ISODateWithMs).toMSecsSinceEpoch(),
             late.registeredWallMs + 6500);
    QCOMPARE(b["latency_ms"].toDouble(), 6499.0); // answered late: from sent to the late ack

    const QJsonObject c = array[2].toObject();
    QCOMPARE(c["state"].toString(), QString("pending"));
    QVERIFY(c["finished_at"].isNull());
    QVERIFY(c["latency_ms"].isNull());
    QVERIFY(c["params"].isNull());
    QCOMPARE(c["progress"].toObject()["percent"].toInt(), 20);
    QCOMPARE(c["progress"].toObject()["message"].toString(), QString("warming up"));
}

void TestHistoryDialog::emptyListsExportAHeaderAndAnEmptyArray()
{
    QCOMPARE(toCsv({}), csvColumns().join(u',').toUtf8() + "\r\n");
    const QJsonDocument doc = QJsonDocument::fromJson(toJson({}));
    QVERIFY(doc.isArray());
    QCOMPARE(doc.array().size(), 0);
    QVERIFY(exportFormatOf("a/b.CSV") == ExportFormat::Csv);
    QVERIFY(exportFormatOf("b.json") == ExportFormat::Json);
    QVERIFY(!exportFormatOf("b.txt"));
    QVERIFY(!exportFormatOf("noext"));
}

void TestHistoryDialog::writeExportReportsErrorsAndWritesWhole()
{
    QTemporaryDir dir;
    const QList<CommandOutcome> records = {
        earlier(1, "c-1", "bot-1", "ping", CommandState::Acked, 0)};
    QString error;
    QVERIFY(!writeExport(dir.filePath("missing/sub/x.csv"), records, ExportFormat::Csv, &error));
    QVERIFY2(error.contains("missing/sub/x.csv"), qPrintable(error));
    QVERIFY(!writeExport(QString(), records, ExportFormat::Csv, &error));
    QVERIFY(!error.isEmpty());
    QVERIFY(!writeExport(dir.path(), records, ExportFormat::Json, &error)); // a directory
    const QString path = dir.filePath("x.json");
    QVERIFY2(writeExport(path, records, ExportFormat::Json, &error), qPrintable(error));
    QCOMPARE(readAll(path), toJson(records));
    // Replaced whole.
    QVERIFY(writeExport(path, {}, ExportFormat::Json, &error));
    QCOMPARE(QJsonDocument::fromJson(readAll(path)).array().size(), 0);
}

void TestHistoryDialog::historyModelIsBounded()
{
    HistoryModel model;
    model.setMaxRows(3);
    QList<CommandOutcome> page;
    for (quint64 i = 1; i <= 2; ++i)
        page << earlier(i, QStringLiteral("c-%1").arg(i), "bot", "ping", CommandState::Acked, 0);
    QCOMPARE(model.append(page), 2);
    QVERIFY(!model.full());
    QCOMPARE(model.append(page), 1); // one more fits
    QVERIFY(model.full());
    QCOMPARE(model.rowCount(), 3);
    QCOMPARE(model.append(page), 0);
    QCOMPARE(model.index(0, HistoryModel::State).data().toString(), QString("acked"));
    QCOMPARE(model.index(0, HistoryModel::Latency).data().toString(), QString("39.0 ms"));
    QCOMPARE(model.index(0, HistoryModel::Message).data().toString(), QString("done"));
    model.clear();
    QCOMPARE(model.rowCount(), 0);
    QVERIFY(!model.full());
}

void TestHistoryDialog::panelSearchesByBotStateTextAndTime()
{
    Rig rig(earlierRun());
    // And this run's commands, through the feed into the store.
    rig.track("now-1", "bot-old", "ping");
    QCOMPARE(rig.registry.resolveCommand("now-1", "bot-old", ack(true, "pong")),
             ResolveResult::Resolved);
    QVERIFY(rig.settle());

    HistoryPanel panel(*rig.backend);
    // Shown for the first time: the newest commands, without asking.
    QVERIFY(loaded(panel, [&] { panel.show(); }));
    QCOMPARE(panel.model()->rowCount(), 30);
    QCOMPARE(cell(panel, 0, HistoryModel::Id), QString("now-1"));
    QVERIFY2(panel.statusLabel()->text().contains("30 commands found"),
             qPrintable(panel.statusLabel()->text()));
    // What the history keeps, from the backend's summary.
    QVERIFY2(panel.statusLabel()->text().contains(rig.backend->historySummary().left(20)),
             qPrintable(panel.statusLabel()->text()));
    QVERIFY(panel.statusLabel()->text().contains("kept 30 days"));

    // By bot: across the restart, newest first.
    panel.botField()->setText("bot-old");
    QVERIFY(loaded(panel, [&] { panel.searchButton()->click(); }));
    QCOMPARE(column(panel, HistoryModel::Id),
             QStringList({"now-1", "old-stop", "old-restart", "old-ping"}));
    QVERIFY2(cell(panel, 1, HistoryModel::State).startsWith("expired, late ack after 1.5 s"),
             qPrintable(cell(panel, 1, HistoryModel::State)));
    QCOMPARE(cell(panel, 1, HistoryModel::Message), QString("stopped after all"));
    QCOMPARE(cell(panel, 2, HistoryModel::Params), QString(R"({"why":"maintenance"})"));
    QCOMPARE(cell(panel, 2, HistoryModel::Issuer), QString("console:test"));
    QVERIFY(!panel.moreButton()->isEnabled());

    // By state.
    panel.stateField()->setCurrentIndex(panel.stateField()->findData(int(CommandState::Rejected)));
    QVERIFY(loaded(panel, [&] { panel.search(); }));
    QCOMPARE(column(panel, HistoryModel::Id), QStringList({"old-restart"}));
    panel.stateField()->setCurrentIndex(panel.stateField()->findText("problems"));
    QVERIFY(loaded(panel, [&] { panel.search(); }));
    QCOMPARE(column(panel, HistoryModel::Id), QStringList({"old-stop", "old-restart"}));

    // By text (the bot's message), any bot; Enter in a field searches.
    panel.clearFields();
    panel.textField()->setText("FUEL");
    panel.textField()->setFocus();
    QVERIFY(loaded(panel, [&] { QTest::keyClick(panel.textField(), Qt::Key_Return); }));
    QCOMPARE(column(panel, HistoryModel::Id), QStringList({"old-restart"}));

    // By command and issuer.
    panel.clearFields();
    panel.kindField()->setCurrentIndex(panel.kindField()->findData("pause"));
    panel.issuerField()->setText("opctl@10.0.0.1:5123");
    QVERIFY(loaded(panel, [&] { panel.search(); }));
    QCOMPARE(column(panel, HistoryModel::Id), QStringList({"scripted"}));
    panel.issuerField()->setText("opctl");
    QVERIFY(loaded(panel, [&] { panel.search(); })); // exact, not a substring
    QCOMPARE(panel.model()->rowCount(), 0);
    QVERIFY(panel.statusLabel()->text().startsWith("0 commands found"));

    // By time: the day before yesterday only.
    panel.clearFields();
    panel.fromEnabled()->setChecked(true);
    panel.toEnabled()->setChecked(true);
    const QDateTime now = QDateTime::currentDateTime();
    panel.fromField()->setDateTime(now.addMSecs(-5 * DayMs / 2));
    panel.toField()->setDateTime(now.addMSecs(-3 * DayMs / 2));
    QVERIFY(loaded(panel, [&] { panel.search(); }));
    QCOMPARE(column(panel, HistoryModel::Id), QStringList({"old-restart"}));
    // Since a time: the last 12 hours (this run, the pages, opctl's).
    panel.toEnabled()->setChecked(false);
    panel.fromField()->setDateTime(now.addMSecs(-12 * HourMs));
    QVERIFY(loaded(panel, [&] { panel.search(); }));
    QCOMPARE(panel.model()->rowCount(), 27);
    // A range that ends before it starts is not searched; it says so.
    panel.toEnabled()->setChecked(true);
    panel.toField()->setDateTime(now.addMSecs(-13 * HourMs));
    QVERIFY(loaded(panel, [&] { panel.search(); }));
    QCOMPARE(panel.model()->rowCount(), 0);
    QVERIFY2(panel.statusLabel()->text().contains("ends before it starts"),
             qPrintable(panel.statusLabel()->text()));
}

void TestHistoryDialog::panelPagesWithMoreAndStopsAtTheCap()
{
    Rig rig(earlierRun());
    HistoryPanel panel(*rig.backend);
    panel.setPageSize(10);
    panel.botField()->setText("bot-page");
    QVERIFY(loaded(panel, [&] { panel.search(); }));
    QCOMPARE(panel.model()->rowCount(), 10);
    QCOMPARE(cell(panel, 0, HistoryModel::Id), QString("page-24")); // newest first
    QVERIFY(panel.moreButton()->isEnabled());
    QVERIFY2(panel.statusLabel()->text().contains("10 commands found so far"),
             qPrintable(panel.statusLabel()->text()));
    QVERIFY(loaded(panel, [&] { panel.moreButton()->click(); }));
    QCOMPARE(panel.model()->rowCount(), 20);
    QVERIFY(panel.moreButton()->isEnabled());
    QVERIFY(loaded(panel, [&] { panel.moreButton()->click(); }));
    QCOMPARE(panel.model()->rowCount(), 25);
    QVERIFY(!panel.moreButton()->isEnabled()); // the last page
    QStringList expected;
    for (int i = 24; i >= 0; --i)
        expected << QStringLiteral("page-%1").arg(i, 2, 10, QLatin1Char('0'));
    QCOMPARE(column(panel, HistoryModel::Id), expected); // no gap, no duplicate
    QVERIFY(panel.statusLabel()->text().startsWith("25 commands found"));
    // The same rows through File > Export's path: in the view's order.
    QCOMPARE(panel.shownRecords().size(), 25);
    QCOMPARE(panel.shownRecords().first().commandId, QString("page-24"));

    // Past the model's cap: what fits is shown, More is off, the status says to narrow.
    panel.model()->setMaxRows(15);
    QVERIFY(loaded(panel, [&] { panel.search(); }));
    QVERIFY(loaded(panel, [&] { panel.more(); }));
    QCOMPARE(panel.model()->rowCount(), 15);
    QVERIFY(!panel.moreButton()->isEnabled());
    QVERIFY2(panel.statusLabel()->text().contains("only the first 15"),
             qPrintable(panel.statusLabel()->text()));
}

void TestHistoryDialog::panelShowsAFailingQuery()
{
    Rig rig(earlierRun());
    HistoryPanel panel(*rig.backend);
    {
        // The database changes under the console: its table is gone for a while.
        QSqlDatabase db = QSqlDatabase::addDatabase("QSQLITE", "tamper");
        db.setDatabaseName(rig.history->path());
        QVERIFY(db.open());
        QSqlQuery q(db);
        QVERIFY(q.exec("ALTER TABLE commands RENAME TO commands_away"));
        panel.botField()->setText("bot-old");
        QVERIFY(loaded(panel, [&] { panel.search(); }));
        QCOMPARE(panel.model()->rowCount(), 0);
        const QString status = panel.statusLabel()->text();
        QVERIFY2(status.startsWith("Search failed: ") && status.contains("commands"),
                 qPrintable(status));
        QVERIFY(!panel.moreButton()->isEnabled());
        QVERIFY(q.exec("ALTER TABLE commands_away RENAME TO commands"));
        q.finish();
        db.close();
    }
    QSqlDatabase::removeDatabase("tamper");
    // Back: the next search works, and the status says so.
    QVERIFY(loaded(panel, [&] { panel.search(); }));
    QCOMPARE(panel.model()->rowCount(), 3);
    QVERIFY(panel.statusLabel()->text().startsWith("3 commands found"));
}

void TestHistoryDialog::panelDetailsOnDoubleClick()
{
    Rig rig(earlierRun());
    HistoryPanel panel(*rig.backend);
    panel.resize(1200, 600);
    QVERIFY(loaded(panel, [&] { panel.show(); }));
    panel.botField()->setText("bot-old");
    QVERIFY(loaded(panel, [&] { panel.search(); }));
    QCOMPARE(panel.model()->rowCount(), 3);
    // A double click on a row: its details, with the parameters the record keeps.
    QTableView *view = panel.view();
    const QRect rect = view->visualRect(view->model()->index(1, HistoryModel::Id));
    QVERIFY(rect.isValid());
    doubleClick(view, rect.center());
    QTRY_VERIFY_WITH_TIMEOUT(panel.details()->toPlainText().contains("old-restart"), 5000);
    const QString details = panel.details()->toPlainText();
    QVERIFY2(details.contains("maintenance"), qPrintable(details));
    QVERIFY(details.contains("issued by console:test"));
    QVERIFY(details.contains("no fuel"));
}

void TestHistoryDialog::withoutHistoryTheActionsSayWhy()
{
    Rig rig({}, false);
    QVERIFY(!rig.backend->hasHistory());
    MainWindow window(*rig.backend);
    window.show();
    QVERIFY(!window.historyAction()->isEnabled());
    QVERIFY(window.historyAction()->toolTip().contains("--no-history"));
    QVERIFY(!window.botHistoryAction()->isEnabled());
    QVERIFY(window.botHistoryAction()->toolTip().contains("--no-history"));
    QCOMPARE(window.historyStatusText(), QString());
    window.showHistory();
    QVERIFY(!window.historyDock()->isVisible());
    // The panel itself, shown anyway, says why and asks nothing.
    HistoryPanel panel(*rig.backend);
    panel.show();
    QVERIFY(!panel.searchButton()->isEnabled());
    QVERIFY(panel.statusLabel()->text().contains("no history"));
    panel.search();
    QVERIFY(!panel.busy());
}

void TestHistoryDialog::fleetContextMenuOpensTheBotsHistory()
{
    Rig rig(earlierRun());
    QVERIFY(rig.hub->start());
    MainWindow window(*rig.backend);
    window.resize(1400, 860);
    window.show();
    QVERIFY(window.historyAction()->isEnabled());
    QCOMPARE(window.historyAction()->shortcut(), QKeySequence("Ctrl+H"));
    QCOMPARE(window.botHistoryAction()->shortcut(), QKeySequence("Ctrl+Shift+H"));
    QTRY_VERIFY_WITH_TIMEOUT(window.historyStatusText().contains("kept 30 days"), 5000);
    RawBot old(rig.hub->address().toStdString()), page(rig.hub->address().toStdString());
    QVERIFY(old.hello("bot-old"));
    QVERIFY(page.hello("bot-page"));
    QTRY_COMPARE_WITH_TIMEOUT(window.fleetModel()->rowCount(), 2, 5000);
    QVERIFY(!window.historyDock()->isVisible());

    // Right click on bot-old's row: the menu; "History of this bot".
    QTableView *fleet = window.fleetView();
    auto rowOf = [&](const QString &bot) {
        for (int r = 0; r < fleet->model()->rowCount(); ++r) {
            if (fleet->model()->index(r, 0).data(FleetModel::BotIdRole).toString() == bot)
                return r;
        }
        return -1;
    };
    window.selectBots({"bot-page"}); // another one selected: the click's row wins
    const QRect rect = fleet->visualRect(fleet->model()->index(rowOf("bot-old"), 0));
    emit fleet->customContextMenuRequested(rect.center());
    QTRY_VERIFY_WITH_TIMEOUT(window.fleetMenu()->isVisible(), 5000);
    QCOMPARE(window.selectedBots(), QStringList({"bot-old"}));
    QAction *history = nullptr;
    for (QAction *a : window.fleetMenu()->actions()) {
        if (a->text() == QLatin1String("History of this bot"))
            history = a;
    }
    QVERIFY(history);
    HistoryPanel *panel = window.historyPanel();
    QVERIFY(loaded(*panel, [&] { history->trigger(); }));
    window.fleetMenu()->hide();
    QVERIFY(window.historyDock()->isVisible());
    QCOMPARE(panel->botField()->text(), QString("bot-old"));
    QCOMPARE(column(*panel, HistoryModel::Id),
             QStringList({"old-stop", "old-restart", "old-ping"}));
    QCOMPARE(window.activeTable(), MainWindow::Table::History);

    // A double click on another bot: its details, and there its history, the other fields
    // cleared.
    panel->textField()->setText("nothing like this");
    const QRect other = fleet->visualRect(fleet->model()->index(rowOf("bot-page"), 0));
    doubleClick(fleet, other.center());
    QVERIFY(window.botDetailsDialog() && window.botDetailsDialog()->isVisible());
    QCOMPARE(window.botDetailsDialog()->botId(), QString("bot-page"));
    auto *botHistory = window.botDetailsDialog()->findChild<QPushButton *>("botHistory");
    QVERIFY(botHistory && botHistory->isEnabled());
    QVERIFY(loaded(*panel, [&] { botHistory->click(); }));
    window.botDetailsDialog()->close();
    QCOMPARE(panel->botField()->text(), QString("bot-page"));
    QCOMPARE(panel->textField()->text(), QString());
    QCOMPARE(panel->model()->rowCount(), 25);
    // Docked, it leaves the tables most of the window.
    QVERIFY2(window.historyDock()->height() <= window.height() / 2,
             qPrintable(QString::number(window.historyDock()->height())));

    // The shortcut's action, on the selected bot.
    window.selectBots({"bot-old"});
    QVERIFY(loaded(*panel, [&] { window.botHistoryAction()->trigger(); }));
    QCOMPARE(panel->model()->rowCount(), 3);
    // Closing the dock makes the commands table the one File > Export writes.
    window.historyDock()->close();
    QCOMPARE(window.activeTable(), MainWindow::Table::Commands);
}

void TestHistoryDialog::exportWritesTheLiveTablesFilter()
{
    Rig rig;
    rig.track("c-a", "bot-1", "ping");
    rig.track("c-b", "bot-1", "restart", R"({"why":"=cmd|' /C calc'!A0"})");
    rig.track("c-c", "bot-2", "ping");
    rig.track("c-d", "bot-2", "stop");
    rig.track("c-e", "bot-3", "ping"); // stays pending
    QCOMPARE(rig.registry.resolveCommand("c-a", "bot-1", ack(true, "pong")),
             ResolveResult::Resolved);
    QCOMPARE(rig.registry.resolveCommand("c-b", "bot-1", ack(false, "no fuel, sorry", 2)),
             ResolveResult::Resolved);
    QVERIFY(rig.registry.failCommand("c-c", CommandState::NotConnected, "bot-2 is not here"));
    QVERIFY(rig.registry.cancelCommand("c-d", "cancelled by the operator"));
    QVERIFY(rig.settle());
    MainWindow window(*rig.backend);
    window.show();
    QTRY_COMPARE_WITH_TIMEOUT(window.commandModel()->rowCount(), 5, 5000);
    QCOMPARE(window.activeTable(), MainWindow::Table::Commands);

    QTemporaryDir dir;
    auto exported = [&](const QString &name) {
        const QString path = dir.filePath(name);
        QString error;
        int rows = -1;
        if (!window.exportTable(window.activeTable(), path, *exportFormatOf(path), &error, &rows))
            qWarning("export: %s", qPrintable(error));
        return readAll(path);
    };
    auto ids = [](const QList<QStringList> &rows) {
        QStringList out;
        for (qsizetype i = 1; i < rows.size(); ++i)
            out << rows[i][0];
        return out;
    };
    // Everything, in the view's order (newest first).
    QList<QStringList> rows = parseCsv(exported("all.csv"));
    QCOMPARE(rows.first(), csvColumns());
    QCOMPARE(ids(rows), QStringList({"c-e", "c-d", "c-c", "c-b", "c-a"}));
    // The current filter: problems only, then also a text.
    window.stateFilter()->setCurrentIndex(3); // Problems
    rows = parseCsv(exported("problems.csv"));
    QCOMPARE(ids(rows), QStringList({"c-d", "c-c", "c-b"}));
    const int state = int(csvColumns().indexOf("state"));
    const int message = int(csvColumns().indexOf("ack_message"));
    const int params = int(csvColumns().indexOf("params"));
    QCOMPARE(rows[1][state], QString("cancelled"));
    QCOMPARE(rows[2][state], QString("not-connected"));
    QCOMPARE(rows[3][state], QString("rejected"));
    QCOMPARE(rows[3][message], QString("no fuel, sorry"));
    QCOMPARE(rows[3][params], QString(R"({"why":"=cmd|' /C calc'!A0"})"));
    window.commandFilter()->setText("fuel");
    rows = parseCsv(exported("fuel.csv"));
    QCOMPARE(ids(rows), QStringList({"c-b"}));
    // The view's sort order too: by id ascending.
    window.commandFilter()->clear();
    window.stateFilter()->setCurrentIndex(0);
    window.commandsView()->sortByColumn(CommandTableModel::Id, Qt::AscendingOrder);
    const QJsonArray json = QJsonDocument::fromJson(exported("all.json")).array();
    QStringList jsonIds;
    for (const QJsonValue &v : json)
        jsonIds << v.toObject()["id"].toString();
    QCOMPARE(jsonIds, QStringList({"c-a", "c-b", "c-c", "c-d", "c-e"}));
    QCOMPARE(json[1].toObject()["params"].toObject()["why"].toString(),
             QString("=cmd|' /C calc'!A0")); // JSON: as it is
    QCOMPARE(json[4].toObject()["state"].toString(), QString("pending"));
    // A file that cannot be written: an error, nothing else.
    QString error;
    QVERIFY(!window.exportTable(MainWindow::Table::Commands, dir.filePath("no/such/dir.csv"),
                                ExportFormat::Csv, &error));
    QVERIFY(!error.isEmpty());
}

void TestHistoryDialog::exportWritesTheHistoryRows()
{
    Rig rig(earlierRun());
    MainWindow window(*rig.backend);
    window.show();
    HistoryPanel *panel = window.historyPanel();
    QVERIFY(loaded(*panel, [&] { window.showHistory(); }));
    QCOMPARE(window.activeTable(), MainWindow::Table::History);
    panel->stateField()->setCurrentIndex(panel->stateField()->findText("problems"));
    QVERIFY(loaded(*panel, [&] { panel->search(); }));
    QTemporaryDir dir;
    const QString path = dir.filePath("history.json");
    QString error;
    int rows = 0;
    QVERIFY2(window.exportTable(window.activeTable(), path, ExportFormat::Json, &error, &rows),
             qPrintable(error));
    QCOMPARE(rows, 3);
    const QJsonArray json = QJsonDocument::fromJson(readAll(path)).array();
    QCOMPARE(json.size(), 3);
    QCOMPARE(json[0].toObject()["id"].toString(), QString("scripted"));
    QCOMPARE(json[0].toObject()["issuer"].toString(), QString("opctl@10.0.0.1:5123"));
    QCOMPARE(json[1].toObject()["id"].toString(), QString("old-stop"));
    QCOMPARE(json[1].toObject()["late_ack"].toObject()["message"].toString(),
             QString("stopped after all"));
    QCOMPARE(json[2].toObject()["state"].toString(), QString("rejected"));
}

QTEST_MAIN(TestHistoryDialog)
#include "tst_historydialog.moc"
