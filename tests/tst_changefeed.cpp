#include "changefeed.h"
#include "commandregistry.h"
#include "fanouts.h"

#include <QCoreApplication>
#include <QHash>
#include <QTest>

#include <atomic>
#include <thread>

using namespace opconsole;
using namespace std::chrono;

namespace {

CommandAckData ack(bool success, const QString &message = QStringLiteral("done"))
{
    CommandAckData a;
    a.success = success;
    a.message = message;
    return a;
}

CommandOutcome rec(const QString &id, const QString &fanOut, CommandState state, quint64 change,
                   bool lateAck = false)
{
    CommandOutcome r;
    r.commandId = id;
    r.kind = QStringLiteral("restart");
    r.fanOut = fanOut;
    r.state = state;
    r.change = change;
    if (lateAck)
        r.lateAck = ack(true, QStringLiteral("late"));
    return r;
}

FanOutSummary tallyOf(const ChangeFeed &feed, const QString &id)
{
    return feed.fanOut(id).value_or(FanOutSummary{});
}

struct Collector // every record the feed emits; contiguousFrom(): no gap after `start`
{
    QList<CommandOutcome> records;
    explicit Collector(ChangeFeed &feed)
    {
        QObject::connect(&feed, &ChangeFeed::changes, &feed,
                         [this](const QList<CommandOutcome> &batch) { records += batch; });
    }
    bool contiguousFrom(quint64 start, QHash<QString, CommandOutcome> *latest) const
    {
        for (qsizetype i = 0; i < records.size(); ++i) {
            if (records[i].change != start + 1 + quint64(i))
                return false;
            (*latest)[records[i].commandId] = records[i];
        }
        return true;
    }
};

} // namespace

class TestChangeFeed : public QObject
{
    Q_OBJECT

private slots:
    void trackerMovesCommandsBetweenCountsAndIgnoresStale();
    void fanOutTextShowsLateAcks();
    void trackerKeepsItsMembersBounded();
    void trackerKeepsOnlyTheNewestFanOuts();
    void everyTransitionIsNumberedInOrder();
    void sinceResumesWithoutGapOrDuplicate();
    void fanOutTallyFollowsRegistryIncludingLateAck();
    void resolveAndCancelRaceKeepsFeedConsistent();
};

void TestChangeFeed::trackerMovesCommandsBetweenCountsAndIgnoresStale()
{
    FanOutTracker tracker;
    const QString fo = QStringLiteral("fo-1");
    for (quint64 c = 1; c <= 3; ++c)
        QCOMPARE(tracker.apply(rec(QString("c%1").arg(c), fo, CommandState::Pending, c)), fo);
    const FanOutSummary *s = tracker.find(fo);
    QVERIFY(s);
    QCOMPARE(s->id, fo);
    QCOMPARE(s->kind, QStringLiteral("restart"));
    QCOMPARE(s->text(), QStringLiteral("0/3 acked, 3 pending"));
    QVERIFY(!s->done());

    QCOMPARE(tracker.apply(rec("c1", fo, CommandState::Acked, 4)), fo);
    QCOMPARE(tracker.apply(rec("c2", fo, CommandState::Rejected, 5)), fo);
    QCOMPARE(s->text(), QStringLiteral("1/3 acked, 1 pending, 1 rejected"));

    QCOMPARE(tracker.apply(rec("c3", fo, CommandState::Expired, 6)), fo);
    QCOMPARE(s->text(), QStringLiteral("1/3 acked, 1 rejected, 1 expired"));
    QVERIFY(s->done());
    QCOMPARE(tracker.apply(rec("c3", fo, CommandState::Expired, 7, true)), fo);
    QCOMPARE(s->lateAcks, 1); // still one expired command, now with a late ack
    QCOMPARE(s->text(), QStringLiteral("1/3 acked, 1 rejected, 1 expired (late ack)"));

    // Older than, or the same as, what was seen of c3: ignored.
    QVERIFY(tracker.apply(rec("c3", fo, CommandState::Pending, 5)).isEmpty());
    QVERIFY(tracker.apply(rec("c3", fo, CommandState::Cancelled, 7)).isEmpty());
    QVERIFY(tracker.apply(rec("c3", fo, CommandState::Expired, 7, true)).isEmpty());
    QCOMPARE(s->lateAcks, 1); // counted once
    QCOMPARE(s->text(), QStringLiteral("1/3 acked, 1 rejected, 1 expired (late ack)"));
    // Records without a fan-out are not tallied.
    QVERIFY(tracker.apply(rec("solo", QString(), CommandState::Pending, 8)).isEmpty());
    QVERIFY(tracker.apply(rec("solo", QString(), CommandState::Acked, 9)).isEmpty());
    QCOMPARE(tracker.size(), 1);
    QCOMPARE(tracker.ids(), QStringList{fo});
}

void TestChangeFeed::fanOutTextShowsLateAcks()
{
    FanOutTracker tracker;
    const QString fo = QStringLiteral("restart-50");
    quint64 change = 0;
    for (int i = 0; i < 50; ++i)
        tracker.apply(rec(QString("c%1").arg(i), fo, CommandState::Pending, ++change));
    QCOMPARE(tracker.find(fo)->text(), QStringLiteral("0/50 acked, 50 pending"));
    for (int i = 0; i < 48; ++i)
        tracker.apply(rec(QString("c%1").arg(i), fo, CommandState::Acked, ++change));
    tracker.apply(rec("c48", fo, CommandState::Rejected, ++change));
    tracker.apply(rec("c49", fo, CommandState::Expired, ++change));
    QCOMPARE(tracker.find(fo)->text(), QStringLiteral("48/50 acked, 1 rejected, 1 expired"));
    tracker.apply(rec("c49", fo, CommandState::Expired, ++change, true));
    // Parts come in text()'s fixed order: pending, rejected, expired, ...
    QCOMPARE(tracker.find(fo)->text(),
             QStringLiteral("48/50 acked, 1 rejected, 1 expired (late ack)"));

    const QString small = QStringLiteral("fo-4");
    for (const char *id : {"a", "b", "c", "d"})
        tracker.apply(rec(id, small, CommandState::Pending, ++change));
    tracker.apply(rec("a", small, CommandState::Acked, ++change));
    for (const bool late : {false, true}) // finished first, then a late ack each
        for (const char *id : {"b", "c", "d"})
            tracker.apply(rec(id, small,
                              *id == 'd' ? CommandState::Cancelled : CommandState::Expired,
                              ++change, late));
    const FanOutSummary *s = tracker.find(small);
    QCOMPARE(s->lateAcks, 3);
    QCOMPARE(s->lateByState[size_t(CommandState::Expired)], 2);
    QCOMPARE(s->text(),
             QStringLiteral("1/4 acked, 2 expired (2 late acks), 1 cancelled (late ack)"));

    // One late ack among several expired: singular.
    const QString pair = QStringLiteral("fo-5");
    for (const char *id : {"e", "f"})
        tracker.apply(rec(id, pair, CommandState::Expired, ++change));
    tracker.apply(rec("e", pair, CommandState::Expired, ++change, true));
    QCOMPARE(tracker.find(pair)->text(), QStringLiteral("0/2 acked, 2 expired (1 late ack)"));
}

void TestChangeFeed::trackerKeepsItsMembersBounded()
{
    // Review finding: the hub's tracker kept every member of 256 fan-outs of up to 100,000
    // bots each. Past the member cap the oldest fan-outs go; one alone over it stops growing.
    FanOutTracker tracker(10, 4);
    quint64 change = 0;
    for (const char *id : {"a1", "a2", "a3"})
        QCOMPARE(tracker.apply(rec(id, "fo-a", CommandState::Pending, ++change)), QString("fo-a"));
    QCOMPARE(tracker.members(), 3);
    tracker.apply(rec("b1", "fo-b", CommandState::Pending, ++change));
    QCOMPARE(tracker.members(), 4);
    tracker.apply(rec("b2", "fo-b", CommandState::Pending, ++change));
    QVERIFY(!tracker.find("fo-a")); // went to make room
    QCOMPARE(tracker.find("fo-b")->total, 2);
    QCOMPARE(tracker.members(), 2);
    for (const char *id : {"b3", "b4", "b5"})
        tracker.apply(rec(id, "fo-b", CommandState::Pending, ++change));
    QCOMPARE(tracker.find("fo-b")->total, 4); // alone at the cap: b5 is not counted
    QCOMPARE(tracker.members(), 4);
    QVERIFY(tracker.apply(rec("a1", "fo-a", CommandState::Acked, ++change)).isEmpty());
}

void TestChangeFeed::trackerKeepsOnlyTheNewestFanOuts()
{
    FanOutTracker tracker(3);
    quint64 change = 0;
    for (const QString fo : {"fo-1", "fo-2", "fo-3", "fo-4"})
        QCOMPARE(tracker.apply(rec(fo + "-c", fo, CommandState::Pending, ++change)), fo);
    QCOMPARE(tracker.size(), 3);
    QVERIFY(!tracker.find("fo-1"));
    QVERIFY(tracker.find("fo-2") && tracker.find("fo-3") && tracker.find("fo-4"));
    QCOMPARE(tracker.ids(), QStringList({"fo-4", "fo-3", "fo-2"}));
    // A change in a kept fan-out evicts nothing.
    QCOMPARE(tracker.apply(rec("fo-2-c", "fo-2", CommandState::Acked, ++change)), "fo-2");
    QCOMPARE(tracker.size(), 3);
    QCOMPARE(tracker.find("fo-2")->acked, 1);
}

void TestChangeFeed::everyTransitionIsNumberedInOrder()
{
    CommandRegistry registry;
    QVERIFY(registry.trackCommand("before", "bot-x", 60s)); // made before the feed
    ChangeFeed feed(registry);
    const quint64 start = registry.lastChange();
    QCOMPARE(start, quint64(1));
    QCOMPARE(feed.lastChange(), start);
    Collector seen(feed);

    QStringList ids;
    for (int i = 0; i < 10; ++i) {
        ids << QString("c%1").arg(i);
        QVERIFY(registry.trackCommand(ids.last(), "bot-a", 60s));
        QVERIFY(registry.markSent(ids.last(), 1));
    }
    QVERIFY(registry.reportProgress("c0", "bot-a", 50, "half"));
    std::thread acker([&] {
        for (int i = 0; i < 5; ++i)
            registry.resolveCommand(ids[i], "bot-a", ack(true));
    });
    acker.join();
    QVERIFY(registry.cancelCommand("c5", "operator"));
    QVERIFY(registry.failCommand("c6", CommandState::NotConnected, "gone"));
    QCOMPARE(registry.resolveCommand("c7", "bot-a", ack(false)), ResolveResult::Resolved);
    QVERIFY(registry.cancelCommand("c9"));
    QCOMPARE(registry.resolveCommand("c9", "bot-a", ack(true)), ResolveResult::Late);
    QCOMPARE(registry.resolveCommand("c9", "bot-a", ack(true)), ResolveResult::Duplicate);
    QCOMPARE(registry.resolveCommand("before", "bot-x", ack(true)), ResolveResult::Resolved);
    QCOMPARE(registry.resolveCommand("nope", "bot-x", ack(true)), ResolveResult::Unknown);

    // 10 registrations, 10 sends, 1 progress, 5 + 1 acks, 1 cancel, 1 failure, 1 rejection,
    // c9's cancel and late ack, "before"'s ack; the duplicate and unknown acks change nothing.
    const quint64 expected = 10 + 10 + 1 + 5 + 1 + 1 + 1 + 2 + 1;
    QCOMPARE(registry.lastChange(), start + expected);
    QTRY_COMPARE_WITH_TIMEOUT(feed.lastChange(), start + expected, 5000);
    QCOMPARE(seen.records.size(), qsizetype(expected));
    QHash<QString, CommandOutcome> latest;
    QVERIFY(seen.contiguousFrom(start, &latest));
    for (const QString &id : ids + QStringList{"before"}) {
        const auto now = registry.find(id);
        QVERIFY(now && latest.contains(id));
        QCOMPARE(latest[id].change, now->change);
        QCOMPARE(latest[id].state, now->state);
    }
    QVERIFY(latest["c9"].hasLateAck() && latest["before"].state == CommandState::Acked);
}

void TestChangeFeed::sinceResumesWithoutGapOrDuplicate()
{
    CommandRegistry registry;
    QVERIFY(registry.trackCommand("early", "bot-a", 60s));
    ChangeFeed small(registry, 10);
    ChangeFeed full(registry);
    QCOMPARE(small.capacity(), 10);
    const quint64 start = registry.lastChange();
    Collector seen(full);
    for (int i = 0; i < 25; ++i) {
        const QString id = QString("c%1").arg(i);
        QVERIFY(registry.trackCommand(id, "bot-a", 60s));
        QCOMPARE(registry.resolveCommand(id, "bot-a", ack(true)), ResolveResult::Resolved);
    }
    const quint64 last = start + 50;
    QCOMPARE(registry.lastChange(), last);
    QTRY_COMPARE_WITH_TIMEOUT(small.lastChange(), last, 5000);
    QTRY_COMPARE_WITH_TIMEOUT(full.lastChange(), last, 5000);
    QCOMPARE(seen.records.size(), qsizetype(50));

    const CommandOutcome sentinel = rec("sentinel", QString(), CommandState::Pending, 0);
    QList<CommandOutcome> out{sentinel};
    QVERIFY(full.since(start, &out)); // appends after what out held
    QCOMPARE(out.size(), qsizetype(51));
    QCOMPARE(out.first().commandId, QStringLiteral("sentinel"));
    for (int i = 0; i < 50; ++i)
        QVERIFY(out[i + 1].change == start + 1 + quint64(i) &&
                out[i + 1].commandId == seen.records[i].commandId);
    for (const quint64 after : {last - 10, last - 7, last - 1, last}) {
        QList<CommandOutcome> tail;
        QVERIFY(small.since(after, &tail));
        QCOMPARE(tail.size(), qsizetype(last - after));
        for (qsizetype i = 0; i < tail.size(); ++i)
            QVERIFY(tail[i].change == after + 1 + quint64(i) &&
                    tail[i].commandId == seen.records[qsizetype(after - start) + i].commandId);
    }

    // Older than what the feed holds, from before the feed existed, or beyond its end: false,
    // and out untouched.
    const std::pair<const ChangeFeed *, quint64> refused[] = {
        {&small, last - 11}, {&small, start},   {&small, 0},         {&small, last + 1},
        {&full, start - 1},  {&full, last + 1}, {&full, last + 1000}};
    for (const auto &[feed, after] : refused) {
        QList<CommandOutcome> untouched{sentinel};
        QVERIFY2(!feed->since(after, &untouched), qPrintable(QString::number(after)));
        QCOMPARE(untouched.size(), qsizetype(1));
    }
}

void TestChangeFeed::fanOutTallyFollowsRegistryIncludingLateAck()
{
    CommandRegistry registry;
    ChangeFeed feed(registry);
    const QString fo = QStringLiteral("fo-restart");
    QString error;
    QVERIFY(registry.trackCommand("solo", "bot-s", 60s, "ping", &error)); // no fan-out
    for (int i = 0; i < 4; ++i)
        QVERIFY(registry.trackCommand(QString("r%1").arg(i), QString("bot-%1").arg(i), 60s,
                                      "restart", &error, fo));
    QTRY_COMPARE_WITH_TIMEOUT(tallyOf(feed, fo).total, 4, 5000);
    QCOMPARE(tallyOf(feed, fo).text(), QStringLiteral("0/4 acked, 4 pending"));
    QCOMPARE(tallyOf(feed, fo).kind, QStringLiteral("restart"));
    QCOMPARE(feed.fanOuts().size(), qsizetype(1));
    QVERIFY(!feed.fanOut("solo").has_value());

    for (int i = 0; i < 3; ++i)
        QCOMPARE(
            registry.resolveCommand(QString("r%1").arg(i), QString("bot-%1").arg(i), ack(true)),
            ResolveResult::Resolved);
    QCOMPARE(registry.resolveCommand("r3", "bot-3", ack(false)), ResolveResult::Resolved);
    QTRY_COMPARE_WITH_TIMEOUT(tallyOf(feed, fo).text(), QStringLiteral("3/4 acked, 1 rejected"),
                              5000);

    QVERIFY2(registry.trackCommand("r4", "bot-4", 50ms, "restart", &error, fo), qPrintable(error));
    QTRY_COMPARE_WITH_TIMEOUT(tallyOf(feed, fo).expired, 1, 5000);
    QCOMPARE(tallyOf(feed, fo).text(), QStringLiteral("3/5 acked, 1 rejected, 1 expired"));

    QCOMPARE(registry.resolveCommand("r4", "bot-4", ack(true)), ResolveResult::Late);
    QTRY_COMPARE_WITH_TIMEOUT(tallyOf(feed, fo).lateAcks, 1, 5000);
    QVERIFY(tallyOf(feed, fo).done());
    QCOMPARE(tallyOf(feed, fo).text(),
             QStringLiteral("3/5 acked, 1 rejected, 1 expired (late ack)"));
    QCOMPARE(registry.resolveCommand("r4", "bot-4", ack(true)), ResolveResult::Duplicate);
    QCOMPARE(feed.lastChange(), registry.lastChange()); // the duplicate changed nothing
    QCOMPARE(feed.fanOuts().first().lateAcks, 1);
}

void TestChangeFeed::resolveAndCancelRaceKeepsFeedConsistent()
{
    CommandRegistry registry;
    ChangeFeed feed(registry);
    const quint64 start = registry.lastChange();
    Collector seen(feed);
    int batches = 0;
    connect(&feed, &ChangeFeed::changes, &feed, [&] { ++batches; });
    const QString fo = QStringLiteral("race");
    constexpr int rounds = 300;
    int resolved = 0, late = 0;
    QHash<QString, bool> cancelWon;
    for (int i = 0; i < rounds; ++i) {
        const QString id = QString("race-%1").arg(i);
        const QString bot = QString("bot-%1").arg(i % 7);
        QVERIFY(registry.trackCommand(id, bot, 60s, "restart", nullptr, fo));
        std::atomic<int> ready{0};
        ResolveResult result = ResolveResult::Unknown;
        bool cancelOk = false;
        auto wait = [&] { // both sides start together: neither wins by being spawned first
            ready.fetch_add(1);
            for (int spins = 0; ready.load() < 2; ++spins)
                if (spins > 10'000) // the other side is not running yet: let it
                    std::this_thread::yield();
        };
        auto acker = [&] {
            wait();
            result = registry.resolveCommand(id, bot, ack(true));
        };
        auto canceller = [&] {
            wait();
            cancelOk = registry.cancelCommand(id, "operator");
        };
        std::thread one = i % 2 ? std::thread(acker) : std::thread(canceller);
        std::thread two = i % 2 ? std::thread(canceller) : std::thread(acker);
        QCoreApplication::processEvents(); // the feed collects earlier batches meanwhile
        one.join();
        two.join();
        // Exactly one wins; a losing ack is a late ack on the cancelled command.
        QVERIFY(result == ResolveResult::Resolved || result == ResolveResult::Late);
        QCOMPARE(cancelOk, result == ResolveResult::Late);
        resolved += result == ResolveResult::Resolved;
        late += result == ResolveResult::Late;
        cancelWon[id] = cancelOk;
    }
    const quint64 last = start + 2 * rounds + late; // register, finish, and each late ack
    QCOMPARE(registry.lastChange(), last);
    QTRY_COMPARE_WITH_TIMEOUT(feed.lastChange(), last, 5000);

    QCOMPARE(seen.records.size(), qsizetype(last - start));
    QHash<QString, CommandOutcome> latest;
    QVERIFY(seen.contiguousFrom(start, &latest)); // so each command's changes ascend too
    QCOMPARE(latest.size(), qsizetype(rounds));
    for (auto it = latest.cbegin(); it != latest.cend(); ++it) {
        QCOMPARE(it->fanOut, fo);
        QVERIFY2(it->finished(), qPrintable(it.key()));
        QCOMPARE(it->state, cancelWon[it.key()] ? CommandState::Cancelled : CommandState::Acked);
        QCOMPARE(it->hasLateAck(), cancelWon[it.key()]);
        QCOMPARE(it->change, registry.find(it.key())->change);
    }
    const FanOutSummary s = tallyOf(feed, fo);
    QCOMPARE(s.total, rounds);
    QCOMPARE(s.pending, 0);
    QCOMPARE(s.acked, resolved);
    QCOMPARE(s.cancelled, late);
    QCOMPARE(s.lateAcks, late);
    QVERIFY(batches > 1); // the feed collected while the race ran
    qInfo("race: %d acked first, %d cancelled first, %d batches", resolved, late, batches);
}

QTEST_GUILESS_MAIN(TestChangeFeed)
#include "tst_changefeed.moc"
