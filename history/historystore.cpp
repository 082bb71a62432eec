#include "historystore.h"

#include "historyrows.h"
#include "historyschema.h"

#include <QCoreApplication>
#include <QDateTime>
#include <QDir>
#include <QFileInfo>
#include <QHash>
#include <QLocale>
#include <QObject>
#include <QPromise>
#include <QSqlDatabase>
#include <QSqlDriver>
#include <QSqlError>
#include <QSqlQuery>
#include <QSysInfo>
#include <QVariant>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <thread>

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

#include <sqlite3.h>

namespace opconsole {

using namespace history;
using std::chrono::milliseconds;

namespace {

constexpr int RetentionSlice = 2000;         // rows deleted per step: a short lock
constexpr milliseconds RetentionEvery{1000}; // between steps while there is work
constexpr milliseconds RetryAfter{1000};     // after a failed commit
// A commit gathers what comes within this long of the previous one (or this many bytes):
// bigger transactions, and the transitions of a fast command (registered, sent, acked) become
// one row write. It is the most a caller waiting for durability waits on top of the commit.
constexpr milliseconds GatherFor{4};
constexpr qint64 GatherBytes = 4 << 20;

qint64 nowMs()
{
    return QDateTime::currentMSecsSinceEpoch();
}

// A rough size of a record in the queue, to bound it in bytes.
qint64 weigh(const CommandOutcome &r)
{
    qint64 bytes = qint64(sizeof(CommandOutcome)) + 64;
    bytes += 2 * (r.commandId.size() + r.botId.size() + r.kind.size() + r.reason.size() +
                  r.params.size() + r.issuer.size() + r.fanOut.size() + r.progressMessage.size());
    for (const auto *ack : {&r.ack, &r.lateAck})
        if (*ack)
            bytes += 2 * (*ack)->message.size() + (*ack)->result.size() + 64;
    bytes += r.progressSteps.size() * qint64(sizeof(ProgressStep) + 32);
    return bytes;
}

// A database connection owned by the thread that made it; closed and removed there.
class Connection
{
public:
    explicit Connection(const QString &name) : m_name(name)
    {
        m_db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), name);
    }
    ~Connection()
    {
        m_db.close();
        m_db = QSqlDatabase();
        QSqlDatabase::removeDatabase(m_name);
    }
    QSqlDatabase &db() { return m_db; }

private:
    QString m_name;
    QSqlDatabase m_db;
};

bool exec(QSqlDatabase &db, const QString &sql, QString *error)
{
    QSqlQuery q(db);
    if (q.exec(sql))
        return true;
    if (error)
        *error = QStringLiteral("%1 (in: %2)").arg(q.lastError().text(), sql.left(60));
    return false;
}

qint64 scalar(QSqlDatabase &db, const QString &sql, qint64 fallback = 0)
{
    QSqlQuery q(db);
    q.setForwardOnly(true);
    if (!q.exec(sql) || !q.next() || q.value(0).isNull())
        return fallback;
    return q.value(0).toLongLong();
}

bool openConnection(QSqlDatabase &db, const QString &path, bool syncFull, QString *error)
{
    db.setDatabaseName(path);
    db.setConnectOptions(QStringLiteral("QSQLITE_BUSY_TIMEOUT=5000"));
    if (!db.open()) {
        *error = QStringLiteral("cannot open %1: %2").arg(path, db.lastError().text());
        return false;
    }
    return exec(db, QStringLiteral("PRAGMA synchronous = %1").arg(syncFull ? "FULL" : "NORMAL"),
                error);
}

} // namespace

class HistoryStorePrivate
{
public:
    struct Item
    {
        QList<CommandOutcome> records;
        std::optional<FleetEvent> fleet;
        qint64 bytes = 0;
        quint64 lastChange = 0;
    };

    HistoryOptions options;
    QString path;
    // One process per data directory: a second hub opening it would take the first one's
    // pending commands for a crashed run's.
    // flock() on <file>.lock, held by the kernel for as long as this process lives (a killed
    // process's lock goes with it, whatever pid the next one gets); -1 when not held.
    int lockFd = -1;
    ~HistoryStorePrivate()
    {
        if (lockFd >= 0)
            ::close(lockFd); // releases the lock
    }
    qint64 run = 0;
    int unknownAtOpen = 0;

    // The queue, between append() and the writer.
    mutable std::mutex mutex;
    std::condition_variable wake;    // the writer waits for work
    bool writerIdle = false;         // under mutex: waiting for work (append wakes it)
    std::condition_variable drained; // flush() waits for commits
    std::deque<Item> queue;
    qint64 queuedBytes = 0;
    quint64 queuedChange = 0; // the newest change queued
    quint64 durable = 0;      // the newest change committed (or given up on)
    quint64 droppedProgress = 0;
    quint64 written = 0;
    quint64 retentionDeleted = 0;
    qint64 rows = 0;
    qint64 oldestMs = 0;
    QString lastError;
    bool stopping = false;
    std::multimap<quint64, std::function<void()>> waiters;
    bool releasing = false;             // stopWaiting(): callbacks run at once from now on
    quint64 lostTransitions = 0;        // dropped past the hard cap, or not written at close
    int failuresWhileStopping = 0;      // writer thread only
    std::atomic<qint64> writerCpuUs{0}; // the writer thread's CPU time, updated per commit
    qint64 lastRetentionWork = 0;       // rows the last retention step deleted, every table
    // Past this many bytes queued (a disk that stopped taking writes), the oldest are dropped
    // and counted: memory stays bounded.
    qint64 hardCap() const { return std::max<qint64>(4 * options.maxQueueBytes, 256LL << 20); }
    quint64 shedChange = 0; // the newest change dropped by shedLocked: released by the writer
    void shedLocked()
    {
        while (queuedBytes > hardCap() && !queue.empty()) {
            const Item &oldest = queue.front();
            lostTransitions += quint64(oldest.records.size()) + (oldest.fleet ? 1 : 0);
            shedChange = std::max(shedChange, oldest.lastChange);
            queuedBytes -= oldest.bytes;
            queue.pop_front();
            lastError = QStringLiteral("the history queue passed %1 MiB: the oldest changes were "
                                       "dropped (%2 so far)")
                            .arg(hardCap() >> 20)
                            .arg(lostTransitions);
        }
    }
    int readsQueued = 0; // under readMutex
    static constexpr int MaxReadsQueued = 32;

    std::thread writer;
    std::atomic<bool> retentionWanted{true};

    // The reader: its own connection and thread; tasks run in order.
    std::mutex readMutex;
    std::condition_variable readWake;
    std::deque<std::function<void(QSqlDatabase &)>> reads;
    bool readStopping = false;
    std::thread reader;

    // Writer thread.
    bool openWriter(Connection &c, QString *error);
    void writerLoop(std::promise<QString> opened);
    bool commit(QSqlDatabase &db, std::deque<Item> &items, QString *error);
    qint64 retentionStep(QSqlDatabase &db, qint64 now, QString *error);
    void release(quint64 upTo);

    void readerLoop(std::promise<QString> opened);
    // Queues a read; false when `bounded` and MaxReadsQueued are already waiting (a caller
    // looping on searches must not starve the others without end).
    bool read(std::function<void(QSqlDatabase &)> task, bool bounded = true) const;
    HistoryPage runQuery(QSqlDatabase &db, const HistoryQuery &query) const;
    QList<CommandOutcome> runRecent(QSqlDatabase &db) const;

    // Prepared once on the writer's connection. The two per-transition statements go straight
    // to SQLite (see bindCommand); they are finalized before the connection closes.
    sqlite3 *handle = nullptr;
    sqlite3_stmt *upsert = nullptr;
    sqlite3_stmt *progress = nullptr;
    std::optional<QSqlQuery> fleet, touchRun;
    void finalize()
    {
        sqlite3_finalize(upsert);
        sqlite3_finalize(progress);
        upsert = progress = nullptr;
        fleet.reset();
        touchRun.reset();
    }
    // Runs a bound statement once and resets it; false with *error on failure.
    bool step(sqlite3_stmt *stmt, QString *error)
    {
        const int rc = sqlite3_step(stmt);
        sqlite3_reset(stmt);
        if (rc == SQLITE_DONE)
            return true;
        *error = QString::fromUtf8(sqlite3_errmsg(handle));
        return false;
    }
};

bool HistoryStorePrivate::openWriter(Connection &c, QString *error)
{
    QSqlDatabase &db = c.db();
    if (!openConnection(db, path, options.syncFull, error))
        return false;
    // Read-only checks first: a file that is refused is never changed.
    {
        QSqlQuery q(db);
        if (!q.exec(QStringLiteral("PRAGMA quick_check(1)")) || !q.next() ||
            q.value(0).toString() != QLatin1String("ok")) {
            *error = QStringLiteral("%1 is damaged (quick_check: %2); move it away to start a "
                                    "new history")
                         .arg(path, q.lastError().isValid() ? q.lastError().text()
                                                            : q.value(0).toString());
            return false;
        }
    }
    if (const qint64 version = scalar(db, QStringLiteral("PRAGMA user_version"));
        version > LatestVersion) {
        *error = QStringLiteral("the history database %1 has schema version %2, newer than this "
                                "opconsole understands (%3): use a newer opconsole or another "
                                "--data-dir")
                     .arg(path)
                     .arg(version)
                     .arg(LatestVersion);
        return false;
    }
    // Before the first table: lets retention give pages back to the file system a slice at a
    // time (incremental_vacuum). No effect on an existing file.
    if (!exec(db, QStringLiteral("PRAGMA auto_vacuum = INCREMENTAL"), error))
        return false;
    QSqlQuery mode(db);
    if (!mode.exec(QStringLiteral("PRAGMA journal_mode = WAL")) || !mode.next() ||
        mode.value(0).toString().compare(QLatin1String("wal"), Qt::CaseInsensitive) != 0) {
        *error = QStringLiteral("cannot switch %1 to WAL: %2").arg(path, mode.lastError().text());
        return false;
    }
    mode.finish();
    // Checkpoints (the WAL copied back into the file, with an fsync) every ~40 MiB of WAL
    // instead of SQLite's 4 MiB: a page written by many commits is copied back once.
    exec(db, QStringLiteral("PRAGMA wal_autocheckpoint = 10000"), nullptr);
    if (!migrate(db, error))
        return false;

    const qint64 now = nowMs();
    if (!exec(db, QStringLiteral("BEGIN IMMEDIATE"), error))
        return false;
    // Earlier runs' pending commands: that run stopped without telling their outcome.
    QSqlQuery unknown(db);
    unknown.prepare(QStringLiteral(
        "UPDATE commands SET state = ?, reason = ?, change = 0,"
        " finished_us = max(0, ((SELECT last_ms FROM runs WHERE runs.run = commands.run)"
        " - registered_ms) * 1000) WHERE state = ?"));
    unknown.addBindValue(int(CommandState::Unknown));
    unknown.addBindValue(QStringLiteral("the hub stopped while this command was pending"));
    unknown.addBindValue(int(CommandState::Pending));
    QSqlQuery newRun(db);
    newRun.prepare(
        QStringLiteral("INSERT INTO runs(started_ms, last_ms, host, pid) VALUES(?, ?, ?, ?)"));
    newRun.addBindValue(now);
    newRun.addBindValue(now);
    newRun.addBindValue(QSysInfo::machineHostName());
    newRun.addBindValue(QCoreApplication::applicationPid());
    // numRowsAffected() reads the connection's latest statement: right after each.
    const bool marked = unknown.exec();
    unknownAtOpen = marked ? unknown.numRowsAffected() : 0;
    if (!marked || !newRun.exec()) {
        *error = (marked ? newRun : unknown).lastError().text();
        exec(db, QStringLiteral("ROLLBACK"), nullptr);
        return false;
    }
    run = newRun.lastInsertId().toLongLong();
    if (!exec(db, QStringLiteral("COMMIT"), error))
        return false;
    if (run <= 0 || run >= (qint64(1) << (63 - SequenceBits))) {
        *error = QStringLiteral("run number %1 out of range").arg(run);
        return false;
    }
    rows = scalar(db, QStringLiteral("SELECT count(*) FROM commands"));
    oldestMs = scalar(db, QStringLiteral("SELECT min(registered_ms) FROM commands"));

    const QVariant h = db.driver()->handle();
    if (!h.isValid() || qstrcmp(h.typeName(), "sqlite3*") != 0 ||
        !(handle = *static_cast<sqlite3 *const *>(h.constData()))) {
        *error = QStringLiteral("the QSQLITE driver gave no SQLite handle");
        return false;
    }
    const QByteArray upsertSql = upsertCommandSql().toUtf8();
    const char *progressSql =
        "INSERT INTO progress(command, at_ms, percent, message) VALUES(?, ?, ?, ?)";
    if (sqlite3_prepare_v3(handle, upsertSql.constData(), int(upsertSql.size()),
                           SQLITE_PREPARE_PERSISTENT, &upsert, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v3(handle, progressSql, -1, SQLITE_PREPARE_PERSISTENT, &progress,
                           nullptr) != SQLITE_OK) {
        *error = QStringLiteral("cannot prepare statements: %1")
                     .arg(QString::fromUtf8(sqlite3_errmsg(handle)));
        return false;
    }
    fleet.emplace(db);
    touchRun.emplace(db);
    if (!fleet->prepare(QStringLiteral(
            "INSERT INTO fleet(run, at_ms, bot, event, detail) VALUES(?, ?, ?, ?, ?)")) ||
        !touchRun->prepare(QStringLiteral("UPDATE runs SET last_ms = ? WHERE run = ?"))) {
        *error = QStringLiteral("cannot prepare statements: %1").arg(fleet->lastError().text());
        return false;
    }
    return true;
}

void HistoryStorePrivate::release(quint64 upTo)
{
    std::vector<std::function<void()>> ready;
    {
        std::lock_guard lock(mutex);
        durable = std::max(durable, upTo);
        auto end = waiters.upper_bound(durable);
        for (auto it = waiters.begin(); it != end; ++it)
            ready.push_back(std::move(it->second));
        waiters.erase(waiters.begin(), end);
    }
    drained.notify_all();
    for (auto &fn : ready)
        fn();
}

bool HistoryStorePrivate::commit(QSqlDatabase &db, std::deque<Item> &items, QString *error)
{
    // Several transitions of one command in a batch write its row once, in its latest state.
    QHash<qint64, const CommandOutcome *> latest;
    std::vector<qint64> order;
    const qint64 base = commandKey(run, 0);
    quint64 transitions = 0;
    qint64 registered = 0;
    if (!exec(db, QStringLiteral("BEGIN IMMEDIATE"), error))
        return false;
    auto fail = [&](const QSqlQuery &q) {
        *error = q.lastError().text();
        exec(db, QStringLiteral("ROLLBACK"), nullptr);
        return false;
    };
    auto failed = [&] {
        exec(db, QStringLiteral("ROLLBACK"), nullptr);
        return false;
    };
    for (const Item &item : items) {
        if (item.fleet) {
            fleet->bindValue(0, run);
            fleet->bindValue(1, item.fleet->atMs);
            fleet->bindValue(2, item.fleet->botId);
            fleet->bindValue(3, item.fleet->event);
            fleet->bindValue(4, item.fleet->detail);
            if (!fleet->exec())
                return fail(*fleet);
        }
        for (const CommandOutcome &rec : item.records) {
            const qint64 key = rec.historyId ? qint64(rec.historyId) : base + qint64(rec.sequence);
            ++transitions;
            registered += rec.event == ChangeEvent::Registered;
            if (rec.event == ChangeEvent::Progress && !rec.progressSteps.isEmpty()) {
                const ProgressStep &step = rec.progressSteps.last();
                sqlite3_bind_int64(progress, 1, key);
                sqlite3_bind_int64(progress, 2, rec.wallMs(step.at));
                sqlite3_bind_int(progress, 3, step.percent);
                sqlite3_bind_text16(progress, 4, step.message.utf16(), int(step.message.size() * 2),
                                    SQLITE_STATIC);
                if (!this->step(progress, error))
                    return failed();
            }
            auto it = latest.find(key);
            if (it == latest.end()) {
                latest.insert(key, &rec);
                order.push_back(key);
            } else {
                it.value() = &rec;
            }
        }
    }
    for (const qint64 key : order) {
        bindCommand(upsert, key, *latest.value(key));
        if (!step(upsert, error))
            return failed();
    }
    touchRun->bindValue(0, nowMs());
    touchRun->bindValue(1, run);
    if (!touchRun->exec())
        return fail(*touchRun);
    if (!exec(db, QStringLiteral("COMMIT"), error)) {
        exec(db, QStringLiteral("ROLLBACK"), nullptr);
        return false;
    }
    std::lock_guard lock(mutex);
    written += transitions;
    rows += registered;
    return true;
}

qint64 HistoryStorePrivate::retentionStep(QSqlDatabase &db, qint64 now, QString *error)
{
    qint64 deleted = 0;
    auto slice = [&](const QString &sql, const QVariant &bound) -> qint64 {
        QSqlQuery q(db);
        q.prepare(sql);
        if (bound.isValid())
            q.addBindValue(bound);
        if (!q.exec()) {
            *error = q.lastError().text();
            return -1;
        }
        return q.numRowsAffected();
    };
    const qint64 cutoff = now - qint64(options.maxAge.count());
    const QString limit = QString::number(RetentionSlice);
    // By age: the oldest slice of each table.
    const qint64 old = slice(QStringLiteral("DELETE FROM commands WHERE id IN (SELECT id FROM "
                                            "commands WHERE registered_ms < ? ORDER BY "
                                            "registered_ms LIMIT %1)")
                                 .arg(limit),
                             cutoff);
    if (old < 0)
        return -1;
    deleted += old;
    // progress and fleet by their own time (indexed since schema version 2).
    const QString progressOlder =
        QStringLiteral("DELETE FROM progress WHERE id IN (SELECT id FROM "
                       "progress WHERE at_ms < ? ORDER BY at_ms LIMIT %1)")
            .arg(limit);
    const QString fleetOlder = QStringLiteral("DELETE FROM fleet WHERE id IN (SELECT id FROM fleet "
                                              "WHERE at_ms < ? ORDER BY at_ms LIMIT %1)")
                                   .arg(limit);
    const qint64 oldProgress = slice(progressOlder, cutoff);
    const qint64 oldFleet = oldProgress < 0 ? -1 : slice(fleetOlder, cutoff);
    if (oldFleet < 0)
        return -1;
    qint64 work = old + oldProgress + oldFleet; // rows deleted by this step, every table
    // By size: the pages in use, not the free ones incremental_vacuum is giving back.
    const qint64 pageSize = scalar(db, QStringLiteral("PRAGMA page_size"), 4096);
    const qint64 used = (scalar(db, QStringLiteral("PRAGMA page_count")) -
                         scalar(db, QStringLiteral("PRAGMA freelist_count"))) *
                        pageSize;
    if (used > options.maxBytes) {
        // The share of the rows that is over, oldest first, at most a slice.
        qint64 count = 0;
        {
            std::lock_guard lock(mutex);
            count = rows;
        }
        const double share = double(used - options.maxBytes) / double(std::max<qint64>(1, used));
        const qint64 n = std::clamp<qint64>(qint64(double(count) * share) + 1, 1, RetentionSlice);
        // The same share of the oldest commands, then progress and fleet rows older than the
        // oldest command kept; when commands do not hold the space (a flapping fleet), the
        // oldest slice of progress and fleet rows goes too, so the cap is always met.
        const qint64 over = slice(QStringLiteral("DELETE FROM commands WHERE id IN (SELECT id FROM "
                                                 "commands ORDER BY registered_ms LIMIT %1)")
                                      .arg(n),
                                  {});
        if (over < 0)
            return -1;
        deleted += over;
        const qint64 oldestKept =
            scalar(db, QStringLiteral("SELECT min(registered_ms) FROM commands"),
                   std::numeric_limits<qint64>::max());
        const qint64 p = slice(progressOlder, oldestKept);
        const qint64 f = p < 0 ? -1 : slice(fleetOlder, oldestKept);
        if (f < 0)
            return -1;
        work += over + p + f;
        if (p + f == 0) {
            const qint64 p2 =
                slice(QStringLiteral("DELETE FROM progress WHERE id IN (SELECT id FROM "
                                     "progress ORDER BY at_ms LIMIT %1)")
                          .arg(n),
                      {});
            const qint64 f2 = p2 < 0
                                  ? -1
                                  : slice(QStringLiteral("DELETE FROM fleet WHERE id IN (SELECT "
                                                         "id FROM fleet ORDER BY at_ms LIMIT %1)")
                                              .arg(n),
                                          {});
            if (f2 < 0)
                return -1;
            work += p2 + f2;
        }
    }
    if (scalar(db, QStringLiteral("PRAGMA freelist_count")) > 0)
        exec(db, QStringLiteral("PRAGMA incremental_vacuum(%1)").arg(4 * RetentionSlice), nullptr);
    const qint64 oldest = scalar(db, QStringLiteral("SELECT min(registered_ms) FROM commands"));
    std::lock_guard lock(mutex);
    rows = std::max<qint64>(0, rows - deleted);
    oldestMs = oldest;
    retentionDeleted += quint64(deleted);
    lastRetentionWork = work;
    return deleted;
}

void HistoryStorePrivate::writerLoop(std::promise<QString> opened)
{
    pthread_setname_np(pthread_self(), "history-writer"); // for top, perf and gdb
    auto connection = std::make_unique<Connection>(
        QStringLiteral("history-writer-%1").arg(quintptr(this), 0, 16));
    QString error;
    if (!openWriter(*connection, &error)) {
        finalize();
        connection.reset();
        opened.set_value(error.isEmpty() ? QStringLiteral("cannot open the history") : error);
        return;
    }
    opened.set_value({});
    QSqlDatabase &db = connection->db();
    auto nextRetention = std::chrono::steady_clock::now();
    auto lastCommit = std::chrono::steady_clock::now();
    for (;;) {
        std::deque<Item> items;
        bool stop = false;
        quint64 shed = 0;
        {
            std::unique_lock lock(mutex);
            writerIdle = true;
            wake.wait_until(lock, nextRetention, [&] { return stopping || !queue.empty(); });
            writerIdle = false;
            if (!stopping && !queue.empty())
                wake.wait_until(lock, lastCommit + GatherFor,
                                [&] { return stopping || queuedBytes >= GatherBytes; });
            items.swap(queue);
            stop = stopping;
            shed = std::exchange(shedChange, 0);
        }
        if (shed > 0)
            release(shed); // their waiters must not hang
        if (!items.empty()) {
            quint64 upTo = 0;
            qint64 bytes = 0;
            for (const Item &item : items) {
                upTo = std::max(upTo, item.lastChange);
                bytes += item.bytes;
            }
            QString commitError;
            const bool ok = commit(db, items, &commitError);
            lastCommit = std::chrono::steady_clock::now();
            rusage usage{};
            if (::getrusage(RUSAGE_THREAD, &usage) == 0)
                writerCpuUs = qint64(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1'000'000 +
                              usage.ru_utime.tv_usec + usage.ru_stime.tv_usec;
            if (ok) {
                {
                    std::lock_guard lock(mutex);
                    queuedBytes -= bytes;
                    if (lastError.startsWith(QLatin1String("history write failed")))
                        lastError.clear();
                }
                release(upTo);
            } else {
                // Kept and tried again (a full disk, a lock held by another program): nothing
                // is lost while the queue has room. Waiters are released (a failing disk must
                // not hang callers) and the status says why.
                quint64 transitions = 0;
                for (const Item &item : items)
                    transitions += quint64(item.records.size()) + (item.fleet ? 1 : 0);
                qWarning("history: write failed, %llu transitions kept to retry: %s",
                         static_cast<unsigned long long>(transitions), qPrintable(commitError));
                release(upTo);
                std::unique_lock lock(mutex);
                lastError = QStringLiteral("history write failed (%1 transitions waiting): %2")
                                .arg(transitions)
                                .arg(commitError);
                // Back at the front, in order (their bytes are still counted).
                for (auto it = items.rbegin(); it != items.rend(); ++it)
                    queue.push_front(std::move(*it));
                shedLocked();
                if (stopping && ++failuresWhileStopping >= 3) {
                    // Closing: three tries, then what is left is lost, counted and said.
                    for (const Item &item : queue)
                        lostTransitions += quint64(item.records.size()) + (item.fleet ? 1 : 0);
                    queue.clear();
                    queuedBytes = 0;
                    lastError += QStringLiteral("; closed with %1 transitions not written")
                                     .arg(lostTransitions);
                    break;
                }
                wake.wait_for(lock, stopping ? milliseconds(100) : RetryAfter,
                              [&] { return stopping && failuresWhileStopping == 0; });
            }
        }
        if (stop) {
            std::lock_guard lock(mutex);
            if (queue.empty())
                break;
            continue;
        }
        if (std::chrono::steady_clock::now() >= nextRetention) {
            QString retentionError;
            const qint64 deleted = retentionStep(db, nowMs(), &retentionError);
            if (deleted < 0) {
                std::lock_guard lock(mutex);
                lastError = QStringLiteral("retention failed: %1").arg(retentionError);
            }
            qint64 work = 0;
            {
                std::lock_guard lock(mutex);
                work = lastRetentionWork;
            }
            // More to delete: the next slice soon, after the writes waiting.
            nextRetention =
                std::chrono::steady_clock::now() +
                (deleted < 0 || work < RetentionSlice ? RetentionEvery : milliseconds(50));
        }
    }
    touchRun->bindValue(0, nowMs());
    touchRun->bindValue(1, run);
    touchRun->exec();
    QSqlQuery stopped(db);
    stopped.prepare(QStringLiteral("UPDATE runs SET stopped_ms = ? WHERE run = ?"));
    stopped.addBindValue(nowMs());
    stopped.addBindValue(run);
    stopped.exec();
    stopped.finish();
    exec(db, QStringLiteral("PRAGMA wal_checkpoint(TRUNCATE)"), nullptr);
    finalize();
}

void HistoryStorePrivate::readerLoop(std::promise<QString> opened)
{
    pthread_setname_np(pthread_self(), "history-reader");
    auto connection = std::make_unique<Connection>(
        QStringLiteral("history-reader-%1").arg(quintptr(this), 0, 16));
    QString error;
    if (!openConnection(connection->db(), path, false, &error) ||
        !exec(connection->db(), QStringLiteral("PRAGMA query_only = 1"), &error)) {
        connection.reset();
        opened.set_value(error);
        return;
    }
    opened.set_value({});
    for (;;) {
        std::function<void(QSqlDatabase &)> task;
        {
            std::unique_lock lock(readMutex);
            readWake.wait(lock, [&] { return readStopping || !reads.empty(); });
            if (reads.empty())
                break;
            task = std::move(reads.front());
            reads.pop_front();
            --readsQueued;
        }
        task(connection->db());
    }
}

bool HistoryStorePrivate::read(std::function<void(QSqlDatabase &)> task, bool bounded) const
{
    auto *self = const_cast<HistoryStorePrivate *>(this);
    {
        std::lock_guard lock(self->readMutex);
        if (bounded && self->readsQueued >= MaxReadsQueued)
            return false;
        ++self->readsQueued;
        self->reads.push_back(std::move(task));
    }
    self->readWake.notify_one();
    return true;
}

HistoryPage HistoryStorePrivate::runQuery(QSqlDatabase &db, const HistoryQuery &query) const
{
    HistoryPage page;
    qint64 fromMs = std::numeric_limits<qint64>::max();
    qint64 fromId = std::numeric_limits<qint64>::max();
    if (!query.pageToken.isEmpty() && !decodeToken(query.pageToken, &fromMs, &fromId)) {
        page.error = QStringLiteral("malformed page token");
        page.badToken = true;
        return page;
    }
    if (query.untilMs > 0 && query.untilMs <= fromMs) {
        fromMs = query.untilMs;
        fromId = std::numeric_limits<qint64>::min();
    }
    // The window: commands in time order from the token back, bounded by bot and time (both
    // served by an index), at most MaxExamined of them. The other filters apply within it.
    QString window = QStringLiteral("(registered_ms, id) < (?, ?)");
    QVariantList windowValues{fromMs, fromId};
    if (!query.botId.isEmpty()) {
        window += QStringLiteral(" AND bot = ?");
        windowValues << query.botId;
    }
    if (query.sinceMs > 0) {
        window += QStringLiteral(" AND registered_ms >= ?");
        windowValues << query.sinceMs;
    }
    QStringList filters;
    QVariantList filterValues;
    if (!query.states.isEmpty()) {
        QStringList states;
        for (const CommandState s : query.states)
            states << QString::number(int(s));
        filters << QStringLiteral("state IN (%1)").arg(states.join(QLatin1Char(',')));
    }
    for (const auto &[column, value] : {std::pair{QStringLiteral("kind"), query.kind},
                                        std::pair{QStringLiteral("issuer"), query.issuer},
                                        std::pair{QStringLiteral("fan_out"), query.fanOut}}) {
        if (!value.isEmpty()) {
            filters << QStringLiteral("%1 = ?").arg(column);
            filterValues << value;
        }
    }
    if (!query.text.isEmpty()) {
        QString pattern = query.text;
        pattern.replace(QLatin1Char('\\'), QLatin1String("\\\\"))
            .replace(QLatin1Char('%'), QLatin1String("\\%"))
            .replace(QLatin1Char('_'), QLatin1String("\\_"));
        pattern = QLatin1Char('%') + pattern + QLatin1Char('%');
        QStringList ors;
        for (const char *c : {"command_id", "bot", "reason", "ack_message", "late_message",
                              "params", "kind", "issuer", "fan_out"}) {
            ors << QStringLiteral("%1 LIKE ? ESCAPE '\\'").arg(QLatin1String(c));
            filterValues << pattern;
        }
        filters << QLatin1Char('(') + ors.join(QStringLiteral(" OR ")) + QLatin1Char(')');
    }
    const int pageSize = std::clamp(query.pageSize, 1, HistoryQuery::MaxPageSize);
    const QString inner =
        QStringLiteral("SELECT * FROM commands WHERE %1 ORDER BY registered_ms DESC, id DESC "
                       "LIMIT %2")
            .arg(window)
            .arg(HistoryQuery::MaxExamined);
    QSqlQuery q(db);
    q.setForwardOnly(true);
    if (filters.isEmpty()) // the index walk is the page: no window needed
        q.prepare(QStringLiteral("SELECT %1 FROM commands WHERE %2 ORDER BY registered_ms DESC, "
                                 "id DESC LIMIT %3")
                      .arg(commandColumns(), window)
                      .arg(pageSize + 1));
    else
        q.prepare(QStringLiteral("SELECT %1 FROM (%2) WHERE %3 ORDER BY registered_ms DESC, id "
                                 "DESC LIMIT %4")
                      .arg(commandColumns(), inner, filters.join(QStringLiteral(" AND ")))
                      .arg(pageSize + 1));
    int i = 0;
    for (const QVariant &v : windowValues)
        q.bindValue(i++, v);
    for (const QVariant &v : filterValues)
        q.bindValue(i++, v);
    if (!q.exec()) {
        page.error = q.lastError().text();
        return page;
    }
    const auto steady = Clock::now();
    const qint64 wall = nowMs();
    qint64 lastMs = 0, lastId = 0;
    while (q.next()) {
        if (page.records.size() == pageSize) {
            page.nextPageToken = encodeToken(lastMs, lastId);
            break;
        }
        page.records.append(readCommand(q, steady, wall));
        lastMs = q.value(11).toLongLong();
        lastId = q.value(0).toLongLong();
    }
    q.finish();
    if (page.nextPageToken.isEmpty()) {
        // The page is short: go on after the window if it was full.
        QSqlQuery end(db);
        end.setForwardOnly(true);
        end.prepare(QStringLiteral("SELECT registered_ms, id FROM commands WHERE %1 ORDER BY "
                                   "registered_ms DESC, id DESC LIMIT 1 OFFSET %2")
                        .arg(window)
                        .arg(HistoryQuery::MaxExamined - 1));
        int j = 0;
        for (const QVariant &v : windowValues)
            end.bindValue(j++, v);
        if (end.exec() && end.next())
            page.nextPageToken = encodeToken(end.value(0).toLongLong(), end.value(1).toLongLong());
        end.finish();
    }
    return page;
}

QList<CommandOutcome> HistoryStorePrivate::runRecent(QSqlDatabase &db) const
{
    const auto steady = Clock::now();
    const qint64 wall = nowMs();
    QHash<quint64, CommandOutcome> byId;
    auto collect = [&](QSqlQuery &q) {
        q.setForwardOnly(true);
        if (!q.exec()) {
            qWarning("history: %s", qPrintable(q.lastError().text()));
            return;
        }
        while (q.next()) {
            CommandOutcome rec = readCommand(q, steady, wall);
            byId.insert(rec.historyId, std::move(rec));
        }
        q.finish();
    };
    QSqlQuery newest(db);
    newest.prepare(QStringLiteral("SELECT %1 FROM commands WHERE id < ? ORDER BY registered_ms "
                                  "DESC, id DESC LIMIT %2")
                       .arg(commandColumns())
                       .arg(std::max(0, options.restoreLimit)));
    newest.addBindValue(commandKey(run, 0));
    collect(newest);
    // The previous run's commands whose outcome a bot may still tell (rowid range: no scan of
    // older runs).
    QSqlQuery open(db);
    open.prepare(QStringLiteral("SELECT %1 FROM commands WHERE id >= ? AND id < ? AND state IN "
                                "(%2, %3) AND late_us IS NULL AND ack_success IS NULL LIMIT 50000")
                     .arg(commandColumns())
                     .arg(int(CommandState::Unknown))
                     .arg(int(CommandState::Disconnected)));
    open.addBindValue(commandKey(run - 1, 0));
    open.addBindValue(commandKey(run, 0));
    collect(open);
    QList<CommandOutcome> out = byId.values();
    std::sort(out.begin(), out.end(), [](const CommandOutcome &a, const CommandOutcome &b) {
        return a.registeredWallMs != b.registeredWallMs ? a.registeredWallMs < b.registeredWallMs
                                                        : a.historyId < b.historyId;
    });
    return out;
}

// ---- HistoryStore ------------------------------------------------------------------------

HistoryStore::HistoryStore(std::unique_ptr<HistoryStorePrivate> p) : d(std::move(p)) {}

std::unique_ptr<HistoryStore> HistoryStore::open(const HistoryOptions &options, QString *error)
{
    QString ignored;
    QString &why = error ? *error : ignored;
    if (options.directory.isEmpty()) {
        why = QStringLiteral("no data directory given");
        return nullptr;
    }
    if (!QDir().mkpath(options.directory)) {
        why = QStringLiteral("cannot create the data directory %1").arg(options.directory);
        return nullptr;
    }
    auto d = std::make_unique<HistoryStorePrivate>();
    d->options = options;
    d->path = QDir(options.directory).absoluteFilePath(QStringLiteral("history.sqlite"));
    const QByteArray lockPath = QFile::encodeName(d->path + QStringLiteral(".lock"));
    d->lockFd = ::open(lockPath.constData(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (d->lockFd < 0) {
        why = QStringLiteral("cannot open %1: %2")
                  .arg(QString::fromLocal8Bit(lockPath), QString::fromLocal8Bit(strerror(errno)));
        return nullptr;
    }
    if (::flock(d->lockFd, LOCK_EX | LOCK_NB) != 0) {
        char holder[128] = {};
        const ssize_t n = ::pread(d->lockFd, holder, sizeof holder - 1, 0);
        why = QStringLiteral("%1 is in use by another hub or console (%2); give each its own "
                             "--data-dir")
                  .arg(d->path, n > 0 ? QString::fromUtf8(holder, int(n)).trimmed()
                                      : QStringLiteral("holder unknown"));
        return nullptr;
    }
    {
        // Who holds it, for the message another process shows.
        const QByteArray who = QStringLiteral("pid %1 on %2")
                                   .arg(QCoreApplication::applicationPid())
                                   .arg(QSysInfo::machineHostName())
                                   .toUtf8();
        if (::ftruncate(d->lockFd, 0) == 0)
            (void)!::pwrite(d->lockFd, who.constData(), size_t(who.size()), 0);
    }
    std::promise<QString> writerOpened;
    auto writerResult = writerOpened.get_future();
    d->writer = std::thread(&HistoryStorePrivate::writerLoop, d.get(), std::move(writerOpened));
    why = writerResult.get();
    if (!why.isEmpty()) {
        d->writer.join();
        return nullptr;
    }
    std::promise<QString> readerOpened;
    auto readerResult = readerOpened.get_future();
    d->reader = std::thread(&HistoryStorePrivate::readerLoop, d.get(), std::move(readerOpened));
    why = readerResult.get();
    std::unique_ptr<HistoryStore> store(new HistoryStore(std::move(d)));
    if (!why.isEmpty())
        return nullptr; // the destructor stops the writer
    return store;
}

HistoryStore::~HistoryStore()
{
    {
        std::lock_guard lock(d->readMutex);
        d->readStopping = true;
    }
    d->readWake.notify_all();
    if (d->reader.joinable())
        d->reader.join();
    {
        std::lock_guard lock(d->mutex);
        d->stopping = true;
    }
    d->wake.notify_all();
    if (d->writer.joinable())
        d->writer.join();
    d->release(std::numeric_limits<quint64>::max());
}

QString HistoryStore::path() const
{
    return d->path;
}

qint64 HistoryStore::run() const
{
    return d->run;
}

int HistoryStore::unknownAtOpen() const
{
    return d->unknownAtOpen;
}

QList<CommandOutcome> HistoryStore::recent() const
{
    auto done = std::make_shared<std::promise<QList<CommandOutcome>>>();
    auto result = done->get_future();
    d->read([this, done](QSqlDatabase &db) { done->set_value(d->runRecent(db)); }, false);
    return result.get();
}

void HistoryStore::append(const QList<CommandOutcome> &records)
{
    HistoryStorePrivate::Item item;
    bool restored = false;
    for (const CommandOutcome &r : records) {
        // Counted even when not written, so that whenDurable() of any change comes true.
        item.lastChange = std::max(item.lastChange, r.change);
        restored = restored || r.event == ChangeEvent::Restored;
        item.bytes += weigh(r);
    }
    if (!restored) {
        item.records = records; // shared, not copied
    } else {
        item.bytes = 0;
        for (const CommandOutcome &r : records) {
            if (r.event == ChangeEvent::Restored)
                continue; // already in the database
            item.bytes += weigh(r);
            item.records.append(r);
        }
    }
    if (item.lastChange == 0)
        return;
    {
        std::lock_guard lock(d->mutex);
        if (d->stopping)
            return;
        if (d->queuedBytes + item.bytes > d->options.maxQueueBytes) {
            // The disk is behind: progress goes first; outcomes and the rest are kept.
            const auto before = item.records.size();
            item.records.removeIf(
                [](const CommandOutcome &r) { return r.event == ChangeEvent::Progress; });
            d->droppedProgress += quint64(before - item.records.size());
            item.bytes = 0;
            for (const CommandOutcome &r : std::as_const(item.records))
                item.bytes += weigh(r);
        }
        d->queuedBytes += item.bytes;
        d->queuedChange = std::max(d->queuedChange, item.lastChange);
        d->queue.push_back(std::move(item));
        d->shedLocked();
        // A gathering writer wakes by itself; only an idle one (or a full gather) is woken.
        if (!d->writerIdle && d->queuedBytes < GatherBytes)
            return;
    }
    d->wake.notify_one();
}

void HistoryStore::noteFleet(const FleetEvent &event)
{
    HistoryStorePrivate::Item item;
    item.fleet = event;
    item.bytes = 2 * (event.botId.size() + event.event.size() + event.detail.size()) + 64;
    {
        std::lock_guard lock(d->mutex);
        if (d->stopping)
            return;
        if (d->queuedBytes + item.bytes > d->options.maxQueueBytes) {
            ++d->lostTransitions; // fleet events go before outcomes
            return;
        }
        d->queuedBytes += item.bytes;
        d->queue.push_back(std::move(item));
    }
    d->wake.notify_one();
}

quint64 HistoryStore::durableChange() const
{
    std::lock_guard lock(d->mutex);
    return d->durable;
}

void HistoryStore::stopWaiting()
{
    {
        std::lock_guard lock(d->mutex);
        d->releasing = true;
    }
    d->release(0);
    std::vector<std::function<void()>> rest;
    {
        std::lock_guard lock(d->mutex);
        for (auto &[change, fn] : d->waiters)
            rest.push_back(std::move(fn));
        d->waiters.clear();
    }
    for (auto &fn : rest)
        fn();
}

void HistoryStore::whenDurable(quint64 change, std::function<void()> fn)
{
    {
        std::lock_guard lock(d->mutex);
        if (change > d->durable && !d->stopping && !d->releasing) {
            d->waiters.emplace(change, std::move(fn));
            return;
        }
    }
    fn();
}

bool HistoryStore::flush(milliseconds timeout)
{
    std::unique_lock lock(d->mutex);
    const quint64 target = d->queuedChange;
    return d->drained.wait_for(lock, timeout, [&] {
        return d->queue.empty() && d->queuedBytes <= 0 && d->durable >= target;
    });
}

QFuture<HistoryPage> HistoryStore::query(const HistoryQuery &query) const
{
    auto promise = std::make_shared<QPromise<HistoryPage>>();
    QFuture<HistoryPage> future = promise->future();
    promise->start();
    const bool queued = d->read([this, promise, query](QSqlDatabase &db) {
        if (!promise->isCanceled()) // replaced by a newer search before its turn: skipped
            promise->addResult(d->runQuery(db, query));
        promise->finish();
    });
    if (!queued) {
        HistoryPage busy;
        busy.error = QStringLiteral("the history is busy (%1 searches waiting); try again")
                         .arg(HistoryStorePrivate::MaxReadsQueued);
        busy.busy = true;
        promise->addResult(busy);
        promise->finish();
    }
    return future;
}

QString summaryOf(const HistoryStats &s)
{
    const QLocale c = QLocale::c();
    auto bytes = [&](qint64 n) { return c.formattedDataSize(n, 1, QLocale::DataSizeIecFormat); };
    QString text = QObject::tr("%1 commands").arg(c.toString(s.commands));
    if (s.oldestMs > 0)
        text += QObject::tr(" since %1")
                    .arg(QDateTime::fromMSecsSinceEpoch(s.oldestMs)
                             .toString(QStringLiteral("d MMM yyyy")));
    text += QObject::tr(" · %1 of %2 · kept %3 days")
                .arg(bytes(s.fileBytes), bytes(s.maxBytes))
                .arg(s.maxAgeMs / (24 * 3600 * 1000));
    if (s.unknownAtOpen > 0)
        text += QObject::tr(" · %1 unknown at start").arg(c.toString(s.unknownAtOpen));
    if (s.droppedProgress > 0)
        text += QObject::tr(" · %1 progress events not kept").arg(c.toString(s.droppedProgress));
    if (!s.lastError.isEmpty())
        text += QObject::tr(" · ERROR: %1").arg(s.lastError);
    return text;
}

QString HistoryStore::tokenAfter(const CommandOutcome &record)
{
    return encodeToken(record.registeredWallMs, qint64(record.historyId));
}

qint64 HistoryStore::queuedBytes() const
{
    std::lock_guard lock(d->mutex);
    return d->queuedBytes;
}

HistoryStats HistoryStore::stats() const
{
    HistoryStats s;
    s.path = d->path;
    s.fileBytes = QFileInfo(d->path).size() + QFileInfo(d->path + QStringLiteral("-wal")).size();
    s.run = d->run;
    s.unknownAtOpen = d->unknownAtOpen;
    s.maxAgeMs = d->options.maxAge.count();
    s.maxBytes = d->options.maxBytes;
    std::lock_guard lock(d->mutex);
    s.commands = d->rows;
    s.oldestMs = d->oldestMs;
    s.written = d->written;
    s.droppedProgress = d->droppedProgress;
    s.retentionDeleted = d->retentionDeleted;
    s.queuedBytes = d->queuedBytes;
    s.durableChange = d->durable;
    s.lastError = d->lastError;
    s.lost = d->lostTransitions;
    s.writerCpuMs = d->writerCpuUs.load() / 1000;
    return s;
}

qint64 HistoryStore::enforceRetention(qint64 nowMsValue)
{
    // On a connection of its own in this thread: the writer keeps writing meanwhile.
    Connection c(QStringLiteral("history-retention-%1").arg(quintptr(this), 0, 16));
    QString error;
    qint64 total = 0;
    if (openConnection(c.db(), d->path, d->options.syncFull, &error)) {
        for (int step = 0; step < 10'000; ++step) {
            const qint64 n = d->retentionStep(c.db(), nowMsValue, &error);
            if (n < 0)
                break;
            total += n;
            std::lock_guard lock(d->mutex);
            if (d->lastRetentionWork == 0)
                break;
        }
    }
    return total;
}

} // namespace opconsole
