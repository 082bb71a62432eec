// The history writer on its own: how many transitions a second it commits, what a search
// page costs on a large database (near the top and deep in it), a retention slice and a
// restart. Real SQLite files in a temporary directory. Prints "name value unit" lines; see
// docs/performance.md.
#include "benchprint.h"
#include "historystore.h"

#include <QCoreApplication>
#include <QDateTime>
#include <QElapsedTimer>
#include <QTemporaryDir>

#include <cstdio>
#include <cstring>
#include <functional>
#include <thread>

using namespace opconsole;
using namespace std::chrono;

namespace {

struct Load
{
    int commands = 0;
    bool progress = false;  // two progress steps per command
    bool sameBatch = false; // all of a command's transitions in one batch (a fast ack)
    int batch = 512;        // commands per change-feed batch
};

// A command's record at one of its transitions, as the change feed would carry it.
CommandOutcome record(quint64 n, ChangeEvent event, quint64 change, Clock::time_point t0,
                      qint64 wall0)
{
    CommandOutcome r;
    r.commandId = QStringLiteral("c-bench-%1").arg(n);
    r.botId = QStringLiteral("bot-%1").arg(n % 1000);
    r.kind = n % 10 == 0 ? QStringLiteral("config") : QStringLiteral("ping");
    if (n % 10 == 0)
        r.params = QStringLiteral("{\"config\":{\"mode\":\"fast\"},\"version\":3}");
    r.issuer = QStringLiteral("operator@ipv4:127.0.0.1:5000");
    r.sequence = n + 1;
    r.change = change;
    r.event = event;
    r.timeout = 5000ms;
    r.registeredAt = t0 + microseconds(n * 10);
    r.registeredWallMs = wall0 + qint64(n / 100);
    r.deadline = r.registeredAt + 5s;
    if (event != ChangeEvent::Registered)
        r.sentAt = r.registeredAt + 20us;
    if (event == ChangeEvent::Progress) {
        r.progressPercent = 50;
        r.progressMessage = QStringLiteral("halfway");
        r.progressSteps.append({r.registeredAt + 100us, 50, r.progressMessage});
    }
    if (event == ChangeEvent::Finished) {
        r.finishedAt = r.registeredAt + 300us;
        const bool fail = n % 50 == 0;
        r.state = fail ? CommandState::Rejected : CommandState::Acked;
        CommandAckData ack;
        ack.success = !fail;
        ack.message = fail ? QStringLiteral("busy") : QStringLiteral("pong");
        r.ack = ack;
        r.reason = fail ? ack.message : QString();
    }
    return r;
}

// Appends the load as fast as the queue allows (it never blocks: the producer waits while the
// queue holds more than 32 MiB, as a slow disk would make the feed wait in practice) and
// returns the transitions per second committed.
double writeLoad(HistoryStore &store, const Load &load, quint64 *changeCounter)
{
    const auto t0 = Clock::now();
    const qint64 wall0 = QDateTime::currentMSecsSinceEpoch() - 3600'000;
    QElapsedTimer timer;
    timer.start();
    quint64 transitions = 0;
    const quint64 base = *changeCounter * 10; // fresh command numbers for each load
    std::vector<ChangeEvent> steps{ChangeEvent::Registered, ChangeEvent::Sent};
    if (load.progress) {
        steps.push_back(ChangeEvent::Progress);
        steps.push_back(ChangeEvent::Progress);
    }
    steps.push_back(ChangeEvent::Finished);
    const int batches = (load.commands + load.batch - 1) / load.batch;
    const int lag = load.sameBatch ? 0 : 1; // batch k carries step s of the commands of k - s
    for (int k = 0; k < batches + int(steps.size()) * lag; ++k) {
        QList<CommandOutcome> batch;
        for (size_t s = 0; s < steps.size(); ++s) {
            const int of = k - int(s) * lag;
            if (of < 0 || of >= batches)
                continue;
            for (int i = of * load.batch; i < std::min(load.commands, (of + 1) * load.batch); ++i)
                batch.append(record(base + quint64(i), steps[s], ++*changeCounter, t0, wall0));
        }
        transitions += quint64(batch.size());
        store.append(batch);
        while (store.queuedBytes() > (32 << 20))
            std::this_thread::yield();
    }
    if (!store.flush(minutes(10)))
        std::fprintf(stderr, "history_bench: not flushed\n");
    return double(transitions) / (double(timer.nsecsElapsed()) / 1e9);
}

double msOf(const std::function<void()> &fn, int repeat = 5)
{
    QElapsedTimer t;
    t.start();
    for (int i = 0; i < repeat; ++i)
        fn();
    return double(t.nsecsElapsed()) / 1e6 / repeat;
}

HistoryPage page(HistoryStore &store, const HistoryQuery &q)
{
    auto f = store.query(q);
    f.waitForFinished();
    return f.result();
}

} // namespace

int main(int argc, char **argv)
{
    QCoreApplication app(argc, argv);
    const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
    const int commands = quick ? 20'000 : 300'000;
    QTemporaryDir dir;
    HistoryOptions options;
    options.directory = dir.path();
    QString error;
    auto store = HistoryStore::open(options, &error);
    if (!store)
        qFatal("%s", qPrintable(error));
    quint64 changes = 0;

    // 1. The writer alone.
    printFigure("writer_transitions_per_s_no_coalescing",
                writeLoad(*store, {commands, false, false, 512}, &changes), "transitions/s");
    printFigure("writer_transitions_per_s_same_batch",
                writeLoad(*store, {commands, false, true, 512}, &changes), "transitions/s");
    printFigure("writer_transitions_per_s_with_progress",
                writeLoad(*store, {commands / 2, true, false, 512}, &changes), "transitions/s");
    const HistoryStats s = store->stats();
    printFigure("rows_kept", double(s.commands), "commands");
    printFigure("file_bytes_per_command",
                double(s.fileBytes) / double(std::max<qint64>(1, s.commands)), "bytes");

    // 2. Search pages on the database just written (O(page), wherever the page is).
    HistoryQuery newest;
    newest.pageSize = 100;
    const HistoryPage first = page(*store, newest);
    printFigure("page_newest_100_ms", msOf([&] { page(*store, newest); }), "ms");
    HistoryQuery deep = newest;
    {
        // A token far down: walk 1000-row pages most of the way.
        HistoryQuery walk;
        walk.pageSize = 1000;
        for (int i = 0; i < (quick ? 20 : 500); ++i) {
            const HistoryPage p = page(*store, walk);
            if (p.nextPageToken.isEmpty())
                break;
            walk.pageToken = p.nextPageToken;
        }
        deep.pageToken = walk.pageToken;
    }
    printFigure("page_deep_100_ms", msOf([&] { page(*store, deep); }), "ms");
    HistoryQuery bot = newest;
    bot.botId = QStringLiteral("bot-7");
    printFigure("page_one_bot_100_ms", msOf([&] { page(*store, bot); }), "ms");
    HistoryQuery rare = newest;
    rare.states = {CommandState::Rejected};
    rare.kind = QStringLiteral("config");
    printFigure("page_sparse_filter_ms", msOf([&] { page(*store, rare); }), "ms");
    HistoryQuery text = newest;
    text.text = QStringLiteral("busy");
    printFigure("page_text_search_ms", msOf([&] { page(*store, text); }), "ms");
    if (first.records.size() != 100)
        std::fprintf(stderr, "history_bench: the newest page has %lld rows\n",
                     static_cast<long long>(first.records.size()));

    // 3. Restart: open and read what the console restores.
    store.reset();
    QElapsedTimer restart;
    restart.start();
    store = HistoryStore::open(options, &error);
    if (!store)
        qFatal("%s", qPrintable(error));
    const QList<CommandOutcome> restored = store->recent();
    printFigure("restart_open_and_restore_ms", double(restart.nsecsElapsed()) / 1e6, "ms");
    printFigure("restored_commands", double(restored.size()), "commands");

    // 4. Retention: everything is "old" an hour on with a one-minute age limit; each slice of
    // 2,000 rows is one short transaction.
    store.reset();
    options.maxAge = minutes(1);
    store = HistoryStore::open(options, &error);
    QElapsedTimer retention;
    retention.start();
    store->enforceRetention(QDateTime::currentMSecsSinceEpoch() + 3600'000);
    const double ms = double(retention.nsecsElapsed()) / 1e6;
    // The writer's own retention runs meanwhile: both count.
    const auto deleted = qint64(store->stats().retentionDeleted);
    printFigure("retention_deleted", double(deleted), "commands");
    printFigure("retention_ms_per_2000_slice", ms / std::max(1.0, double(deleted) / 2000), "ms");
    return 0;
}
