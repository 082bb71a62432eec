#include "changefeed.h"
#include "commandregistry.h"
#include "historystore.h"

#include <QCoreApplication>
#include <QDateTime>
#include <QFile>
#include <QSet>
#include <QSqlDatabase>
#include <QSqlQuery>
#include <QTemporaryDir>
#include <QTest>

#include <atomic>

using namespace opconsole;
using namespace std::chrono;

namespace {

CommandAckData ack(bool success, const QString &message = QStringLiteral("done"))
{
    CommandAckData a;
    a.success = success;
    a.message = message;
    a.errorCode = success ? 0 : 2;
    return a;
}

// A registry and its feed writing into a store, as the hub wires them.
struct Rig
{
    CommandRegistry registry;
    ChangeFeed feed{registry};
    std::unique_ptr<HistoryStore> store;

    explicit Rig(const HistoryOptions &options)
    {
        QString error;
        store = HistoryStore::open(options, &error);
        if (!store)
            qWarning("open: %s", qPrintable(error));
        else
            QObject::connect(&feed, &ChangeFeed::changes, &feed,
                             [this](const QList<CommandOutcome> &r) { store->append(r); });
    }
    // Delivers the registry's batch now and waits until the store committed it.
    bool settle()
    {
        registry.flushChanges();
        return store && store->flush(10s);
    }
    HistoryPage query(HistoryQuery q) const
    {
        auto f = store->query(q);
        f.waitForFinished();
        return f.result();
    }
};

HistoryOptions optionsIn(const QTemporaryDir &dir)
{
    HistoryOptions o;
    o.directory = dir.path();
    return o;
}

QString columnText(const QString &path, const QString &sql)
{
    QString value;
    {
        auto db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), QStringLiteral("peek"));
        db.setDatabaseName(path);
        if (db.open()) {
            QSqlQuery q(db);
            if (q.exec(sql) && q.next())
                value = q.value(0).toString();
        }
        db.close();
    }
    QSqlDatabase::removeDatabase(QStringLiteral("peek"));
    return value;
}

} // namespace

class TestHistoryStore : public QObject
{
    Q_OBJECT

private slots:
    void outcomesSurviveAReopenWithTheirDetails();
    void pendingAtCrashIsUnknownAndALateAckResolvesIt();
    void searchFiltersAndPagesWithoutGapsOrRepeats();
    void sparseFilterPagesStayBounded();
    void malformedTokenIsAnError();
    void progressIsDroppedFirstWhenTheQueueIsFull();
    void retentionByAgeAndBySize();
    void newerSchemaIsRefusedUntouched();
    void whenDurableRunsAfterTheCommit();
    void fleetEventsAreKept();
    void oneProcessPerDataDirectory();
    void olderSchemaIsMigrated();
    void sizeCapIsMetWhenFleetEventsHoldTheSpace();
    void stopWaitingReleasesEveryWaiter();
};

void TestHistoryStore::outcomesSurviveAReopenWithTheirDetails()
{
    QTemporaryDir dir;
    qint64 firstRun = 0;
    {
        Rig rig(optionsIn(dir));
        QVERIFY(rig.store);
        firstRun = rig.store->run();
        CommandLabels labels{QStringLiteral("config"), QStringLiteral("f-1"),
                             QStringLiteral("{\"mode\":\"fast\"}"), QStringLiteral("alice")};
        QVERIFY(rig.registry.trackCommand("a-1", "bot-1", 60s, labels));
        QVERIFY(rig.registry.markSent("a-1", 7));
        QVERIFY(rig.registry.reportProgress("a-1", "bot-1", 40, "halfway"));
        QCOMPARE(rig.registry.resolveCommand("a-1", "bot-1", ack(true, "applied")),
                 ResolveResult::Resolved);
        QVERIFY(rig.registry.trackCommand("a-2", "bot-2", 60s, QStringLiteral("stop")));
        QCOMPARE(rig.registry.resolveCommand("a-2", "bot-2", ack(false, "busy")),
                 ResolveResult::Resolved);
        QVERIFY(rig.registry.trackCommand("a-3", "bot-3", 60s, QStringLiteral("start")));
        QVERIFY(rig.registry.cancelCommand("a-3", "changed my mind"));
        QVERIFY(rig.settle());
        QCOMPARE(rig.store->stats().commands, 3);
        QVERIFY(rig.store->stats().written >= 8);
    }
    Rig again(optionsIn(dir));
    QVERIFY(again.store);
    QCOMPARE(again.store->run(), firstRun + 1);
    QCOMPARE(again.store->unknownAtOpen(), 0);
    const QList<CommandOutcome> recent = again.store->recent();
    QCOMPARE(recent.size(), 3);
    QCOMPARE(recent[0].commandId, QStringLiteral("a-1"));
    QCOMPARE(recent[0].state, CommandState::Acked);
    QCOMPARE(recent[0].kind, QStringLiteral("config"));
    QCOMPARE(recent[0].params, QStringLiteral("{\"mode\":\"fast\"}"));
    QCOMPARE(recent[0].issuer, QStringLiteral("alice"));
    QCOMPARE(recent[0].fanOut, QStringLiteral("f-1"));
    QCOMPARE(recent[0].session, 7u);
    QVERIFY(recent[0].ack);
    QCOMPARE(recent[0].ack->message, QStringLiteral("applied"));
    QCOMPARE(recent[0].progressPercent, 40);
    QCOMPARE(recent[0].timeout, milliseconds(60s));
    QVERIFY(recent[0].wasSent());
    QVERIFY(recent[0].latency() >= nanoseconds::zero());
    QVERIFY(recent[0].latency() < 10s);
    QCOMPARE(recent[1].state, CommandState::Rejected);
    QCOMPARE(recent[1].ack->errorCode, 2);
    QCOMPARE(recent[2].state, CommandState::Cancelled);
    QCOMPARE(recent[2].reason, QStringLiteral("changed my mind"));
    QCOMPARE(
        columnText(again.store->path(), "SELECT count(*) FROM progress WHERE message = 'halfway'"),
        QStringLiteral("1"));

    // Restored into a new registry: listed, and their ids stay taken.
    QCOMPARE(again.registry.restore(recent), 3);
    QCOMPARE(again.registry.find("a-2")->state, CommandState::Rejected);
    QString error;
    QVERIFY(!again.registry.trackCommand("a-2", "bot-2", 60s, QString(), &error));
    QVERIFY2(error.contains("used recently"), qPrintable(error));
    // Restoring writes nothing again.
    QVERIFY(again.settle());
    QCOMPARE(again.store->stats().commands, 3);
    QCOMPARE(columnText(again.store->path(), "SELECT count(*) FROM commands"), QStringLiteral("3"));
}

void TestHistoryStore::pendingAtCrashIsUnknownAndALateAckResolvesIt()
{
    QTemporaryDir dir;
    {
        Rig rig(optionsIn(dir));
        QVERIFY(rig.registry.trackCommand("p-1", "bot-1", 60s, QStringLiteral("restart")));
        QVERIFY(rig.registry.markSent("p-1", 1));
        QVERIFY(rig.registry.trackCommand("p-2", "bot-2", 60s, QStringLiteral("restart")));
        QVERIFY(rig.registry.trackCommand("done", "bot-1", 60s, QStringLiteral("ping")));
        QCOMPARE(rig.registry.resolveCommand("done", "bot-1", ack(true)), ResolveResult::Resolved);
        QVERIFY(rig.settle());
        // The store closes with p-1 and p-2 still pending, as after kill -9 (the real crash is
        // in tst_history_crash): nothing told their outcome.
        rig.store.reset();
    }
    Rig rig(optionsIn(dir));
    QCOMPARE(rig.store->unknownAtOpen(), 2);
    const QList<CommandOutcome> recent = rig.store->recent();
    QCOMPARE(recent.size(), 3);
    for (const CommandOutcome &r : recent) {
        if (r.commandId == QLatin1String("done"))
            continue;
        QCOMPARE(r.state, CommandState::Unknown);
        QVERIFY(r.reason.contains("stopped while this command was pending"));
        QVERIFY(r.finished());
    }
    QCOMPARE(rig.registry.restore(recent), 3);

    // The bot resends its recent acks when it reconnects.
    QCOMPARE(rig.registry.applyResentAck("p-1", "bot-1", ack(true, "restarted")),
             ResolveResult::Late);
    QCOMPARE(rig.registry.applyResentAck("done", "bot-1", ack(true)), ResolveResult::Duplicate);
    QCOMPARE(rig.registry.applyResentAck("p-2", "bot-9", ack(true)), ResolveResult::WrongBot);
    QCOMPARE(rig.registry.applyResentAck("never", "bot-1", ack(true)), ResolveResult::Unknown);
    const RegistryCounters c = rig.registry.counters();
    QCOMPARE(c.resentAcksApplied, 1u);
    QCOMPARE(c.resentAcksIgnored, 3u);
    QCOMPARE(c.duplicateAcks + c.unknownAcks + c.wrongBotAcks, 0u);
    QVERIFY(rig.settle());

    HistoryQuery q;
    q.text = QStringLiteral("p-1");
    const HistoryPage page = rig.query(q);
    QVERIFY2(page.error.isEmpty(), qPrintable(page.error));
    QCOMPARE(page.records.size(), 1);
    QCOMPARE(page.records[0].state, CommandState::Unknown);
    QVERIFY(page.records[0].lateAck);
    QCOMPARE(page.records[0].lateAck->message, QStringLiteral("restarted"));
    // The same row, not a new one.
    QCOMPARE(columnText(rig.store->path(), "SELECT count(*) FROM commands"), QStringLiteral("3"));
}

void TestHistoryStore::searchFiltersAndPagesWithoutGapsOrRepeats()
{
    QTemporaryDir dir;
    Rig rig(optionsIn(dir));
    const int n = 2500;
    int acked = 0;
    for (int i = 0; i < n; ++i) {
        const QString id = QStringLiteral("s-%1").arg(i);
        const QString bot = QStringLiteral("bot-%1").arg(i % 5);
        QVERIFY(rig.registry.trackCommand(
            id, bot, 60s,
            CommandLabels{i % 2 ? QStringLiteral("stop") : QStringLiteral("start"),
                          {},
                          QStringLiteral("{\"n\":%1}").arg(i),
                          i % 3 ? QStringLiteral("ops") : QStringLiteral("alice")}));
        if (i % 4 == 0) {
            QCOMPARE(rig.registry.resolveCommand(id, bot, ack(true)), ResolveResult::Resolved);
            ++acked;
        } else if (i % 4 == 1) {
            QCOMPARE(rig.registry.resolveCommand(id, bot, ack(false, "Disk FULL")),
                     ResolveResult::Resolved);
        }
    }
    QVERIFY(rig.settle());

    auto all = [&](HistoryQuery q) {
        QList<CommandOutcome> out;
        QSet<QString> seen;
        for (int pages = 0; pages < 1000; ++pages) {
            const HistoryPage page = rig.query(q);
            if (!page.error.isEmpty())
                qWarning("%s", qPrintable(page.error));
            for (const CommandOutcome &r : page.records) {
                if (seen.contains(r.commandId))
                    qWarning("repeated %s", qPrintable(r.commandId));
                seen.insert(r.commandId);
            }
            out += page.records;
            if (page.nextPageToken.isEmpty())
                break;
            q.pageToken = page.nextPageToken;
        }
        return out;
    };
    HistoryQuery q;
    q.pageSize = 97;
    const QList<CommandOutcome> everything = all(q);
    QCOMPARE(everything.size(), n);
    QCOMPARE(everything.first().commandId, QStringLiteral("s-%1").arg(n - 1)); // newest first
    QCOMPARE(everything.last().commandId, QStringLiteral("s-0"));

    q.states = {CommandState::Acked};
    QCOMPARE(all(q).size(), acked);
    q.states.clear();
    q.botId = QStringLiteral("bot-3");
    q.kind = QStringLiteral("stop");
    int expect = 0;
    for (int i = 0; i < n; ++i)
        expect += i % 5 == 3 && i % 2 == 1;
    const QList<CommandOutcome> some = all(q);
    QCOMPARE(some.size(), expect);
    for (const CommandOutcome &r : some)
        QVERIFY(r.botId == "bot-3" && r.kind == "stop");

    HistoryQuery text;
    text.text = QStringLiteral("disk full"); // case-insensitive, in the ack's message
    QCOMPARE(all(text).size(), n / 4);
    text.text = QStringLiteral("%"); // a LIKE wildcard is matched literally
    QCOMPARE(all(text).size(), 0);
    HistoryQuery issuer;
    issuer.issuer = QStringLiteral("alice");
    QCOMPARE(all(issuer).size(), (n + 2) / 3);
    HistoryQuery future;
    future.sinceMs = QDateTime::currentMSecsSinceEpoch() + 60'000;
    QCOMPARE(all(future).size(), 0);
    HistoryQuery past;
    past.untilMs = QDateTime::currentMSecsSinceEpoch() - 60'000;
    QCOMPARE(all(past).size(), 0);
}

void TestHistoryStore::sparseFilterPagesStayBounded()
{
    QTemporaryDir dir;
    Rig rig(optionsIn(dir));
    const int n = HistoryQuery::MaxExamined * 2 + 500;
    for (int i = 0; i < n; ++i) {
        const QString id = QStringLiteral("x-%1").arg(i);
        QVERIFY(rig.registry.trackCommand(id, "bot", 60s, QStringLiteral("ping")));
        QCOMPARE(rig.registry.resolveCommand(id, "bot", ack(i % 10'000 != 7)),
                 ResolveResult::Resolved);
        if (i % 5000 == 0)
            rig.registry.flushChanges();
    }
    rig.registry.setMaxRemembered(10);
    QVERIFY(rig.settle());
    HistoryQuery q;
    q.states = {CommandState::Rejected};
    QList<CommandOutcome> found;
    int pages = 0;
    for (; pages < 20; ++pages) {
        const HistoryPage page = rig.query(q);
        QVERIFY(page.error.isEmpty());
        found += page.records;
        if (page.nextPageToken.isEmpty())
            break;
        q.pageToken = page.nextPageToken;
    }
    QCOMPARE(found.size(), 5); // i = 7, 10007, 20007, 30007, 40007
    QVERIFY2(pages >= 2, "a sparse filter over more than MaxExamined rows takes several pages");
}

void TestHistoryStore::malformedTokenIsAnError()
{
    QTemporaryDir dir;
    Rig rig(optionsIn(dir));
    for (const QString &token : {QStringLiteral("nope"), QStringLiteral("h1.x.1"),
                                 QStringLiteral("h1.1.2.3"), QString(100, QLatin1Char('9'))}) {
        HistoryQuery q;
        q.pageToken = token;
        const HistoryPage page = rig.query(q);
        QVERIFY(!page.error.isEmpty());
        QVERIFY(page.records.isEmpty());
    }
}

void TestHistoryStore::progressIsDroppedFirstWhenTheQueueIsFull()
{
    QTemporaryDir dir;
    HistoryOptions o = optionsIn(dir);
    o.maxQueueBytes = 1; // every batch is over: progress goes, the rest stays
    Rig rig(o);
    for (int i = 0; i < 50; ++i) {
        const QString id = QStringLiteral("q-%1").arg(i);
        QVERIFY(rig.registry.trackCommand(id, "bot", 60s));
        QVERIFY(rig.registry.reportProgress(id, "bot", 50, "half"));
        QCOMPARE(rig.registry.resolveCommand(id, "bot", ack(true)), ResolveResult::Resolved);
    }
    QVERIFY(rig.settle());
    const HistoryStats s = rig.store->stats();
    QCOMPARE(s.droppedProgress, 50u);
    QCOMPARE(s.commands, 50);
    HistoryQuery q;
    q.states = {CommandState::Acked};
    q.pageSize = 1000;
    QCOMPARE(rig.query(q).records.size(), 50);
}

void TestHistoryStore::retentionByAgeAndBySize()
{
    QTemporaryDir dir;
    HistoryOptions o = optionsIn(dir);
    o.maxAge = 1h;
    Rig rig(o);
    const QString pad(2000, QLatin1Char('p'));
    for (int i = 0; i < 3000; ++i) {
        const QString id = QStringLiteral("r-%1").arg(i);
        QVERIFY(rig.registry.trackCommand(id, "bot", 60s, CommandLabels{"config", {}, pad, {}}));
        QCOMPARE(rig.registry.resolveCommand(id, "bot", ack(true)), ResolveResult::Resolved);
    }
    QVERIFY(rig.settle());
    QCOMPARE(rig.store->stats().commands, 3000);
    // Nothing is old yet.
    QCOMPARE(rig.store->enforceRetention(QDateTime::currentMSecsSinceEpoch()), 0);
    // Two hours on, all of it is.
    QCOMPARE(rig.store->enforceRetention(QDateTime::currentMSecsSinceEpoch() + 2 * 3600'000), 3000);
    QCOMPARE(columnText(rig.store->path(), "SELECT count(*) FROM commands"), QStringLiteral("0"));

    // By size: a cap under what 3000 padded commands take deletes the oldest first.
    QTemporaryDir dir2;
    HistoryOptions small = optionsIn(dir2);
    small.maxBytes = 2 << 20;
    Rig rig2(small);
    for (int i = 0; i < 3000; ++i) {
        const QString id = QStringLiteral("z-%1").arg(i);
        QVERIFY(rig2.registry.trackCommand(id, "bot", 60s, CommandLabels{"config", {}, pad, {}}));
        QCOMPARE(rig2.registry.resolveCommand(id, "bot", ack(true)), ResolveResult::Resolved);
    }
    QVERIFY(rig2.settle());
    QVERIFY(rig2.store->enforceRetention(QDateTime::currentMSecsSinceEpoch()) > 0);
    const qint64 kept =
        columnText(rig2.store->path(), "SELECT count(*) FROM commands").toLongLong();
    QVERIFY2(kept > 0 && kept < 3000, qPrintable(QString::number(kept)));
    // The newest are kept.
    QCOMPARE(
        columnText(rig2.store->path(), "SELECT count(*) FROM commands WHERE command_id='z-2999'"),
        QStringLiteral("1"));
    QCOMPARE(columnText(rig2.store->path(), "SELECT count(*) FROM commands WHERE command_id='z-0'"),
             QStringLiteral("0"));
}

void TestHistoryStore::newerSchemaIsRefusedUntouched()
{
    QTemporaryDir dir;
    {
        Rig rig(optionsIn(dir));
        QVERIFY(rig.store);
    }
    const QString path = dir.filePath("history.sqlite");
    QFile(path + "-wal").remove(); // closed cleanly: checkpointed
    {
        auto db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), QStringLiteral("bump"));
        db.setDatabaseName(path);
        QVERIFY(db.open());
        QSqlQuery q(db);
        QVERIFY(q.exec("PRAGMA user_version = 99"));
        q.finish();
        db.close();
    }
    QSqlDatabase::removeDatabase(QStringLiteral("bump"));
    auto bytesOf = [](const QString &file) {
        QFile f(file);
        return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
    };
    const QByteArray before = bytesOf(path);
    QString error;
    QVERIFY(!HistoryStore::open(optionsIn(dir), &error));
    QVERIFY2(error.contains("newer"), qPrintable(error));
    QCOMPARE(bytesOf(path), before); // refused, and not changed (not even switched to WAL)
    QCOMPARE(columnText(path, "PRAGMA user_version"), QStringLiteral("99"));
    QCOMPARE(columnText(path, "SELECT count(*) FROM runs"), QStringLiteral("1"));

    QTemporaryDir garbage;
    QFile f(garbage.filePath("history.sqlite"));
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write(QByteArray(8192, 'x'));
    f.close();
    HistoryOptions o;
    o.directory = garbage.path();
    QVERIFY(!HistoryStore::open(o, &error));
    QVERIFY(!error.isEmpty());
}

void TestHistoryStore::whenDurableRunsAfterTheCommit()
{
    QTemporaryDir dir;
    Rig rig(optionsIn(dir));
    QVERIFY(rig.registry.trackCommand("w-1", "bot", 60s));
    QCOMPARE(rig.registry.resolveCommand("w-1", "bot", ack(true)), ResolveResult::Resolved);
    const quint64 change = rig.registry.find("w-1")->change;
    std::atomic<bool> ran{false};
    std::atomic<quint64> durableThen{0};
    rig.store->whenDurable(change, [&] {
        durableThen = rig.store->durableChange();
        ran = true;
    });
    QVERIFY(rig.settle());
    QTRY_VERIFY_WITH_TIMEOUT(ran.load(), 10000);
    QVERIFY(durableThen.load() >= change);
    // Already durable: at once.
    bool now = false;
    rig.store->whenDurable(change, [&] { now = true; });
    QVERIFY(now);
}

void TestHistoryStore::fleetEventsAreKept()
{
    QTemporaryDir dir;
    Rig rig(optionsIn(dir));
    rig.store->noteFleet({QDateTime::currentMSecsSinceEpoch(), "bot-1", "connected", "127.0.0.1"});
    rig.store->noteFleet(
        {QDateTime::currentMSecsSinceEpoch(), "bot-1", "disconnected", "stream ended"});
    QVERIFY(rig.store->flush());
    QCOMPARE(
        columnText(rig.store->path(), "SELECT group_concat(event) FROM fleet WHERE bot='bot-1'"),
        QStringLiteral("connected,disconnected"));
}

void TestHistoryStore::oneProcessPerDataDirectory()
{
    QTemporaryDir dir;
    QString error;
    auto first = HistoryStore::open(optionsIn(dir), &error);
    QVERIFY(first);
    QVERIFY(!HistoryStore::open(optionsIn(dir), &error));
    QVERIFY2(error.contains("in use"), qPrintable(error));
    first.reset();
    QVERIFY2(HistoryStore::open(optionsIn(dir), &error), qPrintable(error));
}

void TestHistoryStore::olderSchemaIsMigrated()
{
    QTemporaryDir dir;
    {
        Rig rig(optionsIn(dir));
        QVERIFY(rig.registry.trackCommand("old-1", "bot", 60s, QStringLiteral("ping")));
        QCOMPARE(rig.registry.resolveCommand("old-1", "bot", ack(true)), ResolveResult::Resolved);
        QVERIFY(rig.settle());
    }
    const QString path = dir.filePath("history.sqlite");
    {
        // Made a version 1 file again: no progress_time index, user_version 1.
        auto db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), QStringLiteral("v1"));
        db.setDatabaseName(path);
        QVERIFY(db.open());
        QSqlQuery q(db);
        QVERIFY(q.exec("DROP INDEX progress_time"));
        QVERIFY(q.exec("PRAGMA user_version = 1"));
        q.finish();
        db.close();
    }
    QSqlDatabase::removeDatabase(QStringLiteral("v1"));
    Rig rig(optionsIn(dir));
    QVERIFY(rig.store);
    QCOMPARE(columnText(path, "PRAGMA user_version"), QString::number(HistoryStore::SchemaVersion));
    QCOMPARE(columnText(path, "SELECT count(*) FROM sqlite_master WHERE name = 'progress_time'"),
             QStringLiteral("1"));
    QCOMPARE(rig.store->recent().size(), 1); // the data came through
}

void TestHistoryStore::sizeCapIsMetWhenFleetEventsHoldTheSpace()
{
    QTemporaryDir dir;
    HistoryOptions o = optionsIn(dir);
    o.maxBytes = 1 << 20;
    Rig rig(o);
    for (int i = 0; i < 20; ++i) {
        const QString id = QStringLiteral("few-%1").arg(i);
        QVERIFY(rig.registry.trackCommand(id, "bot", 60s));
        QCOMPARE(rig.registry.resolveCommand(id, "bot", ack(true)), ResolveResult::Resolved);
    }
    QVERIFY(rig.settle());
    // A flapping fleet: far more bytes of fleet events than of commands.
    const qint64 t0 = QDateTime::currentMSecsSinceEpoch() - 60'000;
    const QString detail(200, QLatin1Char('d'));
    for (int i = 0; i < 20'000; ++i)
        rig.store->noteFleet(
            {t0 + i, QStringLiteral("bot-%1").arg(i % 50), "disconnected", detail});
    QVERIFY(rig.store->flush());
    rig.store->enforceRetention(QDateTime::currentMSecsSinceEpoch());
    const qint64 pages = columnText(rig.store->path(), "PRAGMA page_count").toLongLong() -
                         columnText(rig.store->path(), "PRAGMA freelist_count").toLongLong();
    const qint64 pageSize = columnText(rig.store->path(), "PRAGMA page_size").toLongLong();
    QVERIFY2(pages * pageSize <= o.maxBytes, qPrintable(QString::number(pages * pageSize)));
    // The oldest fleet events went; the newest stay.
    const qint64 fleet = columnText(rig.store->path(), "SELECT count(*) FROM fleet").toLongLong();
    QVERIFY2(fleet > 0 && fleet < 20'000, qPrintable(QString::number(fleet)));
    QCOMPARE(columnText(rig.store->path(), "SELECT max(at_ms) FROM fleet"),
             QString::number(t0 + 19'999));
}

void TestHistoryStore::stopWaitingReleasesEveryWaiter()
{
    QTemporaryDir dir;
    Rig rig(optionsIn(dir));
    std::atomic<int> ran{0};
    // Changes that never reach the store (a hub stopping whose feed thread is busy).
    rig.store->whenDurable(1'000'000, [&] { ++ran; });
    rig.store->whenDurable(2'000'000, [&] { ++ran; });
    QCOMPARE(ran.load(), 0);
    rig.store->stopWaiting();
    QCOMPARE(ran.load(), 2);
    rig.store->whenDurable(3'000'000, [&] { ++ran; }); // at once from now on
    QCOMPARE(ran.load(), 3);
}

QTEST_GUILESS_MAIN(TestHistoryStore)
#include "tst_historystore.moc"
