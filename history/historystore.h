#pragma once

#include "commandoutcome.h"
#include "historyquery.h"

#include <QFuture>
#include <QList>
#include <QString>

#include <chrono>
#include <functional>
#include <memory>

namespace opconsole {

struct HistoryOptions
{
    QString directory; // the database is <directory>/history.sqlite; created if missing
    std::chrono::milliseconds maxAge{30LL * 24 * 60 * 60 * 1000}; // older commands are deleted
    qint64 maxBytes = 1LL << 30;           // past this, the oldest commands are deleted
    qint64 maxQueueBytes = 64LL * 1 << 20; // past this, progress is dropped (outcomes never)
    bool syncFull = false; // synchronous=FULL: every commit survives a power loss, not only a crash
    int restoreLimit = 10'000; // newest commands recent() gives back at start
};

class HistoryStorePrivate;

// The command history and audit trail: an SQLite database (Qt SQL, WAL) written by one writer
// thread in batched transactions, fed by the change feed. append() only queues (never
// blocks); the queue is bounded in bytes, and when the disk falls behind, progress events are
// dropped first (counted); outcomes and every other transition are always kept. Reads
// (recent(), query(), stats) run on a reader thread with its own connection, so a search never
// waits for the writer nor the writer for a search.
//
// Opening marks the commands that an earlier run left pending as Unknown: that run stopped
// (crash, kill -9, power loss) with their outcome untold. Retention (age and size) runs in the
// writer a slice at a time, never as one long lock.
class HistoryStore
{
public:
    static constexpr int SchemaVersion = 2;

    // Opens (creating, or migrating an older schema) and starts a new run. Null, with *error,
    // when the database cannot be used (unwritable directory, corrupt file, newer schema).
    static std::unique_ptr<HistoryStore> open(const HistoryOptions &options, QString *error);
    // Writes everything queued, records a clean stop and closes.
    ~HistoryStore();
    HistoryStore(const HistoryStore &) = delete;
    HistoryStore &operator=(const HistoryStore &) = delete;

    QString path() const;
    qint64 run() const;
    int unknownAtOpen() const;

    // The newest commands of earlier runs (options.restoreLimit), plus every one still unknown
    // or disconnected without a late ack from the last day, oldest first, for
    // CommandRegistry::restore(). Blocks until read.
    QList<CommandOutcome> recent() const;

    // Queues a batch of the change feed (in change order). Any thread; never blocks.
    // Restored records are not written again; a late ack on one updates its original row.
    void append(const QList<CommandOutcome> &records);
    void noteFleet(const FleetEvent &event);

    // The change number up to which every queued record is committed.
    quint64 durableChange() const;
    // Runs fn (on the writer thread, or now) once `change` is committed, or once the writer
    // has given up on it (a failing disk must not hang callers; stats().lastError tells).
    void whenDurable(quint64 change, std::function<void()> fn);
    // From now on whenDurable() runs its callback at once, and those waiting run now: for a
    // hub that is stopping, whose last changes may never reach the feed (its thread is busy
    // stopping the server). What was flushed before stays durable.
    void stopWaiting();
    // Waits until everything queued so far is committed; false after `timeout`.
    bool flush(std::chrono::milliseconds timeout = std::chrono::seconds(10));

    QFuture<HistoryPage> query(const HistoryQuery &query) const;
    // The token of a page that ends after this record (a caller that cuts a page short).
    static QString tokenAfter(const CommandOutcome &record);
    HistoryStats stats() const;
    qint64 queuedBytes() const; // cheap (stats() looks at the files)

    // Retention now, for tests and the GUI's button: slices until nothing is left to delete
    // (bounded). Returns the commands deleted.
    qint64 enforceRetention(qint64 nowMs);

private:
    explicit HistoryStore(std::unique_ptr<HistoryStorePrivate> d);
    std::unique_ptr<HistoryStorePrivate> d;
};

} // namespace opconsole
