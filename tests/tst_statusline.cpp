// Outcome counts from the change feed, and the status line made of them.
#include "statusline.h"

#include <QTest>

#include <array>

using namespace opconsole;
using namespace std::chrono;

namespace {

CommandOutcome record(const QString &id, CommandState state)
{
    CommandOutcome o;
    o.commandId = id;
    o.botId = QStringLiteral("bot-1");
    o.kind = QStringLiteral("ping");
    o.state = state;
    o.registeredAt = Clock::now();
    o.deadline = o.registeredAt + 1s;
    if (state != CommandState::Pending)
        o.finishedAt = o.registeredAt + 5ms;
    return o;
}

CommandOutcome withLateAck(CommandOutcome o)
{
    o.lateAck = CommandAckData{};
    o.lateAck->success = true;
    o.lateAckAt = o.deadline + 200ms;
    return o;
}

// pending, acked, rejected, expired, late acks, finished
using Counts = std::array<qint64, 6>;
Counts of(const OutcomeCounts &c)
{
    return {c.pending(), c.acked(), c.rejected(), c.expired(), c.lateAcks(), c.finished()};
}

} // namespace

class TestStatusLine : public QObject
{
    Q_OBJECT

private slots:
    void pendingThenAcked();
    void expiredThenLateAckCountedOnce();
    void recordSeenTwiceCountedOnce();
    void otherEndsCountAsFinishedOnly();
    void lineText();
    void awaitingAndIdentity();
    void rateOverTheLastFiveSeconds();
};

void TestStatusLine::pendingThenAcked()
{
    OutcomeCounts counts;
    const CommandOutcome pending = record("a", CommandState::Pending);
    counts.note(nullptr, pending);
    QCOMPARE(of(counts), (Counts{1, 0, 0, 0, 0, 0}));
    const CommandOutcome acked = record("a", CommandState::Acked);
    counts.note(&pending, acked);
    QCOMPARE(of(counts), (Counts{0, 1, 0, 0, 0, 1}));
    const CommandOutcome rejectedPending = record("b", CommandState::Pending);
    counts.note(nullptr, rejectedPending);
    counts.note(&rejectedPending, record("b", CommandState::Rejected));
    QCOMPARE(of(counts), (Counts{0, 1, 1, 0, 0, 2}));
}

void TestStatusLine::expiredThenLateAckCountedOnce()
{
    OutcomeCounts counts;
    const CommandOutcome pending = record("a", CommandState::Pending);
    const CommandOutcome expired = record("a", CommandState::Expired);
    const CommandOutcome late = withLateAck(expired);
    counts.note(nullptr, pending);
    counts.note(&pending, expired);
    QCOMPARE(of(counts), (Counts{0, 0, 0, 1, 0, 1}));
    counts.note(&expired, late);
    QCOMPARE(of(counts), (Counts{0, 0, 0, 1, 1, 1}));
    // The same late ack again (a resync, a later change of the record): nothing more.
    counts.note(&late, late);
    QCOMPARE(of(counts), (Counts{0, 0, 0, 1, 1, 1}));
}

void TestStatusLine::recordSeenTwiceCountedOnce()
{
    OutcomeCounts counts;
    const CommandOutcome pending = record("a", CommandState::Pending);
    counts.note(nullptr, pending);
    counts.note(&pending, pending); // a progress update, say
    QCOMPARE(of(counts), (Counts{1, 0, 0, 0, 0, 0}));
    const CommandOutcome acked = record("a", CommandState::Acked);
    counts.note(&pending, acked);
    counts.note(&acked, acked);
    QCOMPARE(of(counts), (Counts{0, 1, 0, 0, 0, 1}));

    // First seen finished (the window opened after it ended): finished, never pending.
    const CommandOutcome old = withLateAck(record("b", CommandState::Expired));
    counts.note(nullptr, old);
    counts.note(&old, old);
    QCOMPARE(of(counts), (Counts{0, 1, 0, 1, 1, 2}));
}

void TestStatusLine::otherEndsCountAsFinishedOnly()
{
    OutcomeCounts counts;
    for (const CommandState end : {CommandState::Cancelled, CommandState::NotConnected,
                                   CommandState::Disconnected, CommandState::Refused}) {
        const CommandOutcome pending = record("x", CommandState::Pending);
        counts.note(nullptr, pending);
        counts.note(&pending, record("x", end));
    }
    QCOMPARE(of(counts), (Counts{0, 0, 0, 0, 0, 4}));
    // Counted apart, so that the line adds up.
    QCOMPARE(counts.cancelled(), 1);
    QCOMPARE(counts.failed(), 3);
    StatusLine line;
    line.counts() = counts;
    line.setHub("h:1", false);
    line.refreshAt(0, 0, 0);
    QVERIFY2(line.text().contains(" · expired 0 · cancelled 1 · failed 3 · late acks 0"),
             qPrintable(line.text()));
}

void TestStatusLine::lineText()
{
    StatusLine line;
    const CommandOutcome pending = record("a", CommandState::Pending);
    line.counts().note(nullptr, pending);
    line.counts().note(nullptr, record("b", CommandState::Acked));
    line.setHub("127.0.0.1:50051", false);
    line.refreshAt(0, 2, 3);
    QCOMPARE(line.text(), QString("bots 2/3 connected · pending 1 · acked 1 · rejected 0 · "
                                  "expired 0 · late acks 0 · 0.0 cmd/s · hub 127.0.0.1:50051"));
    line.setHub("a:1, b:2", true);
    line.refreshAt(1000, 0, 3);
    QVERIFY2(line.text().startsWith("bots 0/3 connected"), qPrintable(line.text()));
    QVERIFY2(line.text().endsWith(" · attached to a:1, b:2"), qPrintable(line.text()));
}

void TestStatusLine::awaitingAndIdentity()
{
    StatusLine line;
    line.setHub("hub1:50052", true);
    line.setAwaiting(2);
    line.setIdentity("as alice (admin)");
    line.refreshAt(0, 3, 5);
    QVERIFY2(line.text().startsWith("bots 3/5 connected, 2 awaiting approval · pending 0"),
             qPrintable(line.text()));
    QVERIFY2(line.text().endsWith(" · attached to hub1:50052 as alice (admin)"),
             qPrintable(line.text()));
    line.setAwaiting(0);
    line.setIdentity({});
    line.refreshAt(1000, 3, 5);
    QVERIFY2(line.text().startsWith("bots 3/5 connected · pending 0"), qPrintable(line.text()));
    QVERIFY2(line.text().endsWith(" · attached to hub1:50052"), qPrintable(line.text()));
}

void TestStatusLine::rateOverTheLastFiveSeconds()
{
    StatusLine line;
    auto finish = [&](int n) {
        for (int i = 0; i < n; ++i)
            line.counts().note(nullptr, record("f", CommandState::Acked));
    };
    auto rate = [&] {
        const QString t = line.text();
        const auto parts = t.split(" · ");
        return parts.size() > 6 ? parts.at(6) : t;
    };
    finish(10);
    line.refreshAt(0, 1, 1);
    QCOMPARE(rate(), QString("0.0 cmd/s")); // one sample: no rate yet
    finish(5);
    line.refreshAt(2000, 1, 1);
    QCOMPARE(rate(), QString("2.5 cmd/s"));
    finish(95);
    line.refreshAt(4000, 1, 1);
    QCOMPARE(rate(), QString("25 cmd/s")); // 100 in 4 s; whole numbers from 10 up
    // Samples older than 5 s leave the window: from t=2000 (15) to t=7000 (115).
    line.refreshAt(6000, 1, 1);
    finish(5);
    line.refreshAt(7000, 1, 1);
    QCOMPARE(rate(), QString("20 cmd/s"));
    // Nothing finished for a while: the rate falls to zero.
    for (qint64 t = 8000; t <= 14000; t += 1000)
        line.refreshAt(t, 1, 1);
    QCOMPARE(rate(), QString("0.0 cmd/s"));
}

QTEST_MAIN(TestStatusLine)
#include "tst_statusline.moc"
