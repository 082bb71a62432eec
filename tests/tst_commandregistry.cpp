#include "commandregistry.h"

#include <QSignalSpy>
#include <QTest>
#include <QThread>

#include <atomic>
#include <future>
#include <memory>
#include <thread>
#include <vector>

using namespace opconsole;
using namespace std::chrono;

namespace {

CommandAckData okAck(const QString &message = QStringLiteral("done"))
{
    CommandAckData ack;
    ack.success = true;
    ack.message = message;
    return ack;
}

CommandAckData failAck(const QString &message, int code)
{
    CommandAckData ack;
    ack.success = false;
    ack.message = message;
    ack.errorCode = code;
    return ack;
}

} // namespace

class TestCommandRegistry : public QObject
{
    Q_OBJECT

private slots:
    void ackResolvesWithAckAndTimestamps();
    void rejectionCarriesMessageAndCode();
    void duplicateRegistrationIsRefusedAndFirstEntryKept();
    void recentlyFinishedIdCannotBeReused();
    void invalidRegistrationsAreRefused();
    void inFlightCapPerBotRefuses();
    void ackFromAnotherBotIsRefused();
    void unknownAndDuplicateAcksAreDistinctAndCounted();
    void expiresWithoutOutsideCallNeverEarly();
    void expiriesFollowDeadlineOrder();
    void earlierDeadlineRearmsTheTimer();
    void lateAckIsRecordedOnExpiredCommand();
    void lateAckAfterCancelAndDisconnect();
    void lateAckWindowForgetsOldCommands();
    void rememberedCountIsBounded();
    void cancelIsDistinctFromExpiry();
    void failBotFailsOnlyThatBot();
    void failBotWithSessionSparesNewerSession();
    void failCommandNotConnected();
    void cleanupExpiredForSeedParity();
    void progressIsRecorded();
    void markSentStartsLatency();
    void snapshotHasPendingAndFinishedInOrder();
    void changedIsBatchedIntoOneQueuedEmission();
    void perTransitionSignals();
    void receiversComeAndGoWithoutDeadlock();
    void trackCommandHasNoFutureButSameSemantics();
    void futureAwaitedOnAnotherThread();
    void concurrentWritersFinishEveryFutureOnce();
    void destroyingRegistryCancelsPending();
    void memoryStaysBoundedOnEveryPath();
    void memoryFollowsABurstBackDown();
    void timeoutsOverTheCapAreRefused();
    void markSentWithResponseTimeoutRestartsTheDeadline();
    void pagesWalkRegistrationOrderWithoutGapsOrRepeats();
    void fanOutToManyBotsKeepsTheBotIndexBounded();
    void failAllFinishesEveryPendingOnce();
};

void TestCommandRegistry::ackResolvesWithAckAndTimestamps()
{
    CommandRegistry registry;
    auto future = registry.registerCommand("c1", "bot-a", 5s, "start");
    QCOMPARE(registry.pendingCount(), 1);
    QCOMPARE(registry.pendingCount("bot-a"), 1);
    QVERIFY(!future.isFinished());

    QCOMPARE(registry.resolveCommand("c1", "bot-a", okAck("started")), ResolveResult::Resolved);
    QVERIFY(future.isFinished());
    const CommandOutcome o = future.result();
    QCOMPARE(o.state, CommandState::Acked);
    QVERIFY(o.ok());
    QCOMPARE(o.commandId, QString("c1"));
    QCOMPARE(o.botId, QString("bot-a"));
    QCOMPARE(o.kind, QString("start"));
    QVERIFY(o.ack.has_value());
    QCOMPARE(o.ack->message, QString("started"));
    QVERIFY(o.finishedAt >= o.registeredAt);
    QVERIFY(o.latency() >= nanoseconds::zero());
    QVERIFY(o.deadline - o.registeredAt == milliseconds(5000));
    QCOMPARE(registry.pendingCount(), 0);
    QCOMPARE(registry.pendingCount("bot-a"), 0);
    QCOMPARE(registry.counters().acked, 1u);
}

void TestCommandRegistry::rejectionCarriesMessageAndCode()
{
    CommandRegistry registry;
    auto future = registry.registerCommand("c1", "bot-a", 5s);
    QCOMPARE(registry.resolveCommand("c1", "bot-a", failAck("config locked", 7)),
             ResolveResult::Resolved);
    const CommandOutcome o = future.result();
    QCOMPARE(o.state, CommandState::Rejected);
    QVERIFY(!o.ok());
    QCOMPARE(o.reason, QString("config locked"));
    QCOMPARE(o.ack->errorCode, 7);
    QCOMPARE(registry.counters().rejected, 1u);
}

void TestCommandRegistry::duplicateRegistrationIsRefusedAndFirstEntryKept()
{
    CommandRegistry registry;
    QSignalSpy refused(&registry, &CommandRegistry::registrationRefused);
    auto first = registry.registerCommand("dup", "bot-a", 5s);
    auto second = registry.registerCommand("dup", "bot-b", 5s);

    QVERIFY(second.isFinished());
    QCOMPARE(second.result().state, CommandState::Refused);
    QVERIFY(second.result().reason.contains("duplicate command id"));
    QVERIFY(second.result().reason.contains("pending"));
    QCOMPARE(refused.count(), 1);
    QCOMPARE(registry.counters().refusedRegistrations, 1u);

    // The first entry is untouched: still pending, still bound to bot-a.
    QVERIFY(!first.isFinished());
    QCOMPARE(registry.pendingCount(), 1);
    QCOMPARE(registry.resolveCommand("dup", "bot-b", okAck()), ResolveResult::WrongBot);
    QCOMPARE(registry.resolveCommand("dup", "bot-a", okAck()), ResolveResult::Resolved);
    QCOMPARE(first.result().state, CommandState::Acked);
}

void TestCommandRegistry::recentlyFinishedIdCannotBeReused()
{
    CommandRegistry registry;
    registry.registerCommand("c1", "bot-a", 5s);
    registry.resolveCommand("c1", "bot-a", okAck());
    auto again = registry.registerCommand("c1", "bot-a", 5s);
    QCOMPARE(again.result().state, CommandState::Refused);
    QVERIFY(again.result().reason.contains("used recently"));
}

void TestCommandRegistry::invalidRegistrationsAreRefused()
{
    CommandRegistry registry;
    QCOMPARE(registry.registerCommand("", "bot-a", 5s).result().state, CommandState::Refused);
    QCOMPARE(registry.registerCommand("c", "", 5s).result().state, CommandState::Refused);
    QCOMPARE(registry.registerCommand("c", "bot-a", 0ms).result().state, CommandState::Refused);
    QCOMPARE(registry.registerCommand("c", "bot-a", -5ms).result().state, CommandState::Refused);
    const QString longId(CommandRegistry::MaxIdLength + 1, 'x');
    const auto tooLong = registry.registerCommand(longId, "bot-a", 5s).result();
    QCOMPARE(tooLong.state, CommandState::Refused);
    QVERIFY(tooLong.reason.contains("longer than"));
    QCOMPARE(registry.pendingCount(), 0);
    QCOMPARE(registry.counters().refusedRegistrations, 5u);
}

void TestCommandRegistry::inFlightCapPerBotRefuses()
{
    CommandRegistry registry;
    registry.setMaxPendingPerBot(2);
    registry.registerCommand("a1", "bot-a", 5s);
    registry.registerCommand("a2", "bot-a", 5s);
    const auto third = registry.registerCommand("a3", "bot-a", 5s).result();
    QCOMPARE(third.state, CommandState::Refused);
    QVERIFY(third.reason.contains("in flight"));
    QCOMPARE(registry.registerCommand("b1", "bot-b", 5s).isFinished(), false); // per bot
    registry.resolveCommand("a1", "bot-a", okAck());
    QCOMPARE(registry.registerCommand("a3", "bot-a", 5s).isFinished(), false); // room again
}

void TestCommandRegistry::ackFromAnotherBotIsRefused()
{
    CommandRegistry registry;
    QSignalSpy refused(&registry, &CommandRegistry::ackRefused);
    auto future = registry.registerCommand("c1", "bot-a", 5s);
    QCOMPARE(registry.resolveCommand("c1", "bot-evil", okAck()), ResolveResult::WrongBot);
    QVERIFY(!future.isFinished());
    QCOMPARE(registry.pendingCount(), 1);
    QCOMPARE(registry.counters().wrongBotAcks, 1u);
    QCOMPARE(refused.count(), 1);
    QCOMPARE(refused.at(0).at(1).toString(), QString("bot-evil"));
    QCOMPARE(refused.at(0).at(2).value<ResolveResult>(), ResolveResult::WrongBot);
    // A finished command cannot be touched by another bot either.
    QCOMPARE(registry.resolveCommand("c1", "bot-a", okAck()), ResolveResult::Resolved);
    QCOMPARE(registry.resolveCommand("c1", "bot-evil", okAck()), ResolveResult::WrongBot);
    QCOMPARE(registry.counters().wrongBotAcks, 2u);
}

void TestCommandRegistry::unknownAndDuplicateAcksAreDistinctAndCounted()
{
    CommandRegistry registry;
    QCOMPARE(registry.resolveCommand("nope", "bot-a", okAck()), ResolveResult::Unknown);
    auto future = registry.registerCommand("c1", "bot-a", 5s);
    QCOMPARE(registry.resolveCommand("c1", "bot-a", okAck("first")), ResolveResult::Resolved);
    QCOMPARE(registry.resolveCommand("c1", "bot-a", failAck("second", 1)),
             ResolveResult::Duplicate);
    // The first ack wins.
    QCOMPARE(future.result().state, CommandState::Acked);
    QCOMPARE(registry.find("c1")->ack->message, QString("first"));
    const auto c = registry.counters();
    QCOMPARE(c.unknownAcks, 1u);
    QCOMPARE(c.duplicateAcks, 1u);
    QCOMPARE(c.acked, 1u);
}

void TestCommandRegistry::expiresWithoutOutsideCallNeverEarly()
{
    CommandRegistry registry;
    auto future = registry.registerCommand("c1", "bot-a", 50ms);
    // No cleanupExpired(), no event processing here: the registry's own timer thread acts.
    future.waitForFinished();
    const CommandOutcome o = future.result();
    QCOMPARE(o.state, CommandState::Expired);
    QVERIFY(o.finishedAt >= o.deadline);
    // Precision is measured by bench/registry_bench; here only a generous sanity bound.
    QVERIFY(o.finishedAt - o.deadline < 2s);
    QCOMPARE(registry.pendingCount(), 0);
    QCOMPARE(registry.counters().expired, 1u);
}

void TestCommandRegistry::expiriesFollowDeadlineOrder()
{
    CommandRegistry registry;
    QList<QString> order;
    std::mutex mutex;
    connect(
        &registry, &CommandRegistry::expired, &registry,
        [&](const CommandOutcome &o) {
            std::lock_guard lock(mutex);
            order.append(o.commandId);
        },
        Qt::DirectConnection);
    auto f3 = registry.registerCommand("c3", "bot-a", 120ms);
    auto f1 = registry.registerCommand("c1", "bot-a", 40ms);
    auto f2 = registry.registerCommand("c2", "bot-b", 80ms);
    f3.waitForFinished();
    // Signals follow the futures (waiters are released first): wait for the third one.
    QTRY_VERIFY_WITH_TIMEOUT(
        [&] {
            std::lock_guard lock(mutex);
            return order.size() == 3;
        }(),
        5000);
    std::lock_guard lock(mutex);
    QCOMPARE(order, (QList<QString>{"c1", "c2", "c3"}));
}

void TestCommandRegistry::earlierDeadlineRearmsTheTimer()
{
    CommandRegistry registry;
    auto slow = registry.registerCommand("slow", "bot-a", 60s);
    auto fast = registry.registerCommand("fast", "bot-a", 30ms);
    fast.waitForFinished();
    QCOMPARE(fast.result().state, CommandState::Expired);
    QVERIFY(!slow.isFinished());
}

void TestCommandRegistry::lateAckIsRecordedOnExpiredCommand()
{
    CommandRegistry registry;
    QSignalSpy late(&registry, &CommandRegistry::lateAck);
    auto future = registry.registerCommand("c1", "bot-a", 20ms);
    future.waitForFinished();
    QCOMPARE(future.result().state, CommandState::Expired);

    QCOMPARE(registry.resolveCommand("c1", "bot-a", okAck("did it anyway")), ResolveResult::Late);
    QCOMPARE(late.count(), 1);
    const auto rec = late.at(0).at(0).value<CommandOutcome>();
    QCOMPARE(rec.state, CommandState::Expired); // still expired, now with its late ack
    QVERIFY(rec.hasLateAck());
    QCOMPARE(rec.lateAck->message, QString("did it anyway"));
    QVERIFY(rec.lateBy() > nanoseconds::zero());
    QVERIFY(registry.find("c1")->hasLateAck());
    QCOMPARE(registry.counters().lateAcks, 1u);
    // A second late ack is a duplicate.
    QCOMPARE(registry.resolveCommand("c1", "bot-a", okAck()), ResolveResult::Duplicate);
}

void TestCommandRegistry::lateAckAfterCancelAndDisconnect()
{
    CommandRegistry registry;
    registry.registerCommand("c1", "bot-a", 5s);
    registry.registerCommand("c2", "bot-a", 5s);
    QVERIFY(registry.cancelCommand("c1", "operator changed mind"));
    QCOMPARE(registry.failBot("bot-a", "stream closed"), 1);
    QCOMPARE(registry.resolveCommand("c1", "bot-a", okAck()), ResolveResult::Late);
    QCOMPARE(registry.resolveCommand("c2", "bot-a", okAck()), ResolveResult::Late);
    QCOMPARE(registry.find("c1")->state, CommandState::Cancelled);
    QCOMPARE(registry.find("c2")->state, CommandState::Disconnected);
}

void TestCommandRegistry::lateAckWindowForgetsOldCommands()
{
    CommandRegistry registry;
    registry.setLateAckWindow(30ms);
    registry.registerCommand("c1", "bot-a", 5s);
    registry.cancelCommand("c1");
    QVERIFY(registry.find("c1").has_value());
    // Forgotten by the timer thread (window + its one-second slack) without outside calls.
    QTRY_VERIFY_WITH_TIMEOUT(!registry.find("c1").has_value(), 5000);
    QCOMPARE(registry.resolveCommand("c1", "bot-a", okAck()), ResolveResult::Unknown);
}

void TestCommandRegistry::rememberedCountIsBounded()
{
    CommandRegistry registry;
    registry.setMaxRemembered(10);
    for (int i = 0; i < 25; ++i) {
        registry.registerCommand(QString("c%1").arg(i), "bot-a", 5s);
        registry.resolveCommand(QString("c%1").arg(i), "bot-a", okAck());
    }
    QCOMPARE(registry.snapshot().size(), 10);
    QCOMPARE(registry.resolveCommand("c0", "bot-a", okAck()), ResolveResult::Unknown);
    QCOMPARE(registry.resolveCommand("c24", "bot-a", okAck()), ResolveResult::Duplicate);
}

void TestCommandRegistry::cancelIsDistinctFromExpiry()
{
    CommandRegistry registry;
    QSignalSpy cancelled(&registry, &CommandRegistry::cancelled);
    QSignalSpy expired(&registry, &CommandRegistry::expired);
    auto future = registry.registerCommand("c1", "bot-a", 5s);
    QVERIFY(registry.cancelCommand("c1", "operator"));
    QCOMPARE(future.result().state, CommandState::Cancelled);
    QCOMPARE(future.result().reason, QString("operator"));
    QVERIFY(!future.isCanceled()); // a normal result, not a QFuture cancellation
    QCOMPARE(cancelled.count(), 1);
    QCOMPARE(expired.count(), 0);
    QVERIFY(!registry.cancelCommand("c1"));      // already finished
    QVERIFY(!registry.cancelCommand("unknown")); // never registered
    QCOMPARE(registry.counters().cancelled, 1u);
}

void TestCommandRegistry::failBotFailsOnlyThatBot()
{
    CommandRegistry registry;
    auto a1 = registry.registerCommand("a1", "bot-a", 60s);
    auto a2 = registry.registerCommand("a2", "bot-a", 60s);
    auto b1 = registry.registerCommand("b1", "bot-b", 60s);
    QCOMPARE(registry.failBot("bot-a", "connection lost"), 2);
    // At once, not at the deadline.
    QVERIFY(a1.isFinished());
    QVERIFY(a2.isFinished());
    QCOMPARE(a1.result().state, CommandState::Disconnected);
    QCOMPARE(a2.result().reason, QString("connection lost"));
    QVERIFY(!b1.isFinished());
    QCOMPARE(registry.pendingCount("bot-a"), 0);
    QCOMPARE(registry.pendingCount("bot-b"), 1);
    QCOMPARE(registry.failBot("bot-a", "again"), 0);
    QCOMPARE(registry.failBot("never-seen", "x"), 0);
    QCOMPARE(registry.counters().disconnected, 2u);
}

void TestCommandRegistry::failBotWithSessionSparesNewerSession()
{
    CommandRegistry registry;
    auto old = registry.registerCommand("old", "bot-a", 60s);
    registry.markSent("old", 1);
    auto fresh = registry.registerCommand("new", "bot-a", 60s);
    registry.markSent("new", 2);
    // The old stream's teardown arrives after the bot reconnected as session 2.
    QCOMPARE(registry.failBot("bot-a", "old stream closed", quint64(1)), 1);
    QCOMPARE(old.result().state, CommandState::Disconnected);
    QVERIFY(!fresh.isFinished());
    QCOMPARE(registry.pendingCount("bot-a"), 1);
    QCOMPARE(registry.resolveCommand("new", "bot-a", okAck()), ResolveResult::Resolved);
    QCOMPARE(fresh.result().state, CommandState::Acked);
}

void TestCommandRegistry::failCommandNotConnected()
{
    CommandRegistry registry;
    auto future = registry.registerCommand("c1", "bot-a", 5s);
    QVERIFY(!registry.failCommand("c1", CommandState::Acked, "not allowed"));
    QVERIFY(registry.failCommand("c1", CommandState::NotConnected, "bot-a is not connected"));
    QCOMPARE(future.result().state, CommandState::NotConnected);
    QCOMPARE(registry.counters().notConnected, 1u);
}

void TestCommandRegistry::cleanupExpiredForSeedParity()
{
    CommandRegistry registry;
    registry.registerCommand("c1", "bot-a", 60s);
    QCOMPARE(registry.cleanupExpired(), 0);
    QCOMPARE(registry.pendingCount(), 1);
    auto due = registry.registerCommand("c2", "bot-a", 1ms);
    due.waitForFinished();
    // Whoever expired it (timer or cleanup), it expired exactly once.
    QCOMPARE(registry.cleanupExpired(), 0);
    QCOMPARE(registry.counters().expired, 1u);
}

void TestCommandRegistry::progressIsRecorded()
{
    CommandRegistry registry;
    QSignalSpy progress(&registry, &CommandRegistry::progress);
    registry.registerCommand("c1", "bot-a", 5s);
    QVERIFY(registry.reportProgress("c1", "bot-a", 40, "downloading"));
    QVERIFY(!registry.reportProgress("c1", "bot-b", 50, "wrong bot"));
    QVERIFY(!registry.reportProgress("zzz", "bot-a", 50, "unknown"));
    QCOMPARE(registry.find("c1")->progressPercent, 40);
    QCOMPARE(registry.find("c1")->progressMessage, QString("downloading"));
    QCOMPARE(progress.count(), 1);
    QCOMPARE(registry.counters().unknownProgress, 2u);

    // Every update is kept in order with its time, up to a bound.
    QVERIFY(registry.reportProgress("c1", "bot-a", 80, "installing"));
    auto record = registry.find("c1");
    QCOMPARE(record->progressSteps.size(), 2);
    QCOMPARE(record->progressSteps.at(0).message, QString("downloading"));
    QCOMPARE(record->progressSteps.at(1).percent, 80);
    QVERIFY(record->progressSteps.at(1).at >= record->progressSteps.at(0).at);
    QVERIFY(record->progressSteps.at(0).at >= record->registeredAt);
    for (int i = 0; i < 100; ++i)
        registry.reportProgress("c1", "bot-a", 90, QString("step %1").arg(i));
    record = registry.find("c1");
    QCOMPARE(record->progressSteps.size(), CommandOutcome::MaxProgressSteps);
    QCOMPARE(record->progressDropped, 102 - CommandOutcome::MaxProgressSteps);
    QCOMPARE(record->progressSteps.last().message, QString("step 99"));
}

void TestCommandRegistry::markSentStartsLatency()
{
    CommandRegistry registry;
    auto future = registry.registerCommand("c1", "bot-a", 5s);
    QVERIFY(!registry.find("c1")->wasSent());
    QVERIFY(registry.markSent("c1", 7));
    QVERIFY(registry.find("c1")->wasSent());
    QCOMPARE(registry.find("c1")->session, 7u);
    registry.resolveCommand("c1", "bot-a", okAck());
    const auto o = future.result();
    QCOMPARE(o.latency(), o.finishedAt - o.sentAt);
    QVERIFY(!registry.markSent("c1")); // finished
}

void TestCommandRegistry::snapshotHasPendingAndFinishedInOrder()
{
    CommandRegistry registry;
    for (int i = 0; i < 5; ++i)
        registry.registerCommand(QString("c%1").arg(i), "bot-a", 5s);
    registry.resolveCommand("c1", "bot-a", okAck());
    registry.cancelCommand("c3");
    const auto snap = registry.snapshot();
    QCOMPARE(snap.size(), 5);
    for (int i = 0; i < 5; ++i)
        QCOMPARE(snap.at(i).commandId, QString("c%1").arg(i));
    QCOMPARE(snap.at(1).state, CommandState::Acked);
    QCOMPARE(snap.at(3).state, CommandState::Cancelled);
    QCOMPARE(snap.at(4).state, CommandState::Pending);
    QCOMPARE(registry.pendingIds().size(), 3);
}

void TestCommandRegistry::changedIsBatchedIntoOneQueuedEmission()
{
    CommandRegistry registry;
    const int n = 2000;
    {
        QSignalSpy changed(&registry, &CommandRegistry::changed);
        for (int i = 0; i < n; ++i) {
            registry.trackCommand(QString("c%1").arg(i), "bot-a", 5s);
            registry.resolveCommand(QString("c%1").arg(i), "bot-a", okAck());
        }
        QCOMPARE(changed.count(), 0); // queued, not emitted inline
        QTRY_COMPARE_WITH_TIMEOUT(changed.count(), 1, 5000);
        const auto batch = changed.at(0).at(0).value<QList<CommandOutcome>>();
        QCOMPARE(batch.size(), 2 * n);
        QCOMPARE(batch.at(0).state, CommandState::Pending);
        QCOMPARE(batch.at(1).state, CommandState::Acked);
        QCOMPARE(batch.last().commandId, QString("c%1").arg(n - 1));
    }
    // With nobody connected any more, nothing is collected (after at most one stale batch).
    registry.trackCommand("after-1", "bot-a", 5s);
    QCoreApplication::processEvents();
    registry.trackCommand("after-2", "bot-a", 5s);
    QCOMPARE(registry.sizes().batched, 0);
}

void TestCommandRegistry::perTransitionSignals()
{
    CommandRegistry registry;
    QSignalSpy registered(&registry, &CommandRegistry::registered);
    QSignalSpy resolved(&registry, &CommandRegistry::resolved);
    QSignalSpy failed(&registry, &CommandRegistry::failed);
    QSignalSpy finished(&registry, &CommandRegistry::finished);
    registry.registerCommand("c1", "bot-a", 5s);
    registry.registerCommand("c2", "bot-a", 5s);
    registry.resolveCommand("c1", "bot-a", okAck());
    registry.failBot("bot-a", "gone");
    QCOMPARE(registered.count(), 2);
    QCOMPARE(registered.at(0).at(0).toString(), QString("c1"));
    QCOMPARE(resolved.count(), 1);
    QCOMPARE(failed.count(), 1);
    QCOMPARE(failed.at(0).at(0).value<CommandOutcome>().state, CommandState::Disconnected);
    QCOMPARE(finished.count(), 2);
}

void TestCommandRegistry::receiversComeAndGoWithoutDeadlock()
{
    // Qt calls disconnectNotify() from a receiver's destructor with a mutex of its pool held.
    // Thousands of receivers at different addresses make sure some share that mutex with the
    // registry; a registry that calls back into QObject there deadlocks.
    CommandRegistry registry;
    std::promise<void> done;
    auto churned = done.get_future();
    std::thread churn([&] {
        std::vector<std::unique_ptr<QObject>> receivers;
        for (int i = 0; i < 2000; ++i) {
            receivers.push_back(std::make_unique<QObject>());
            QObject::connect(&registry, &CommandRegistry::changed, receivers.back().get(), [] {});
            QObject::connect(&registry, &CommandRegistry::resolved, receivers.back().get(), [] {});
        }
        receivers.clear();
        done.set_value();
    });
    if (churned.wait_for(30s) != std::future_status::ready)
        qFatal("destroying receivers deadlocked with the registry");
    churn.join();

    // The listener counts are right again: a listener connected now hears every transition.
    QSignalSpy resolved(&registry, &CommandRegistry::resolved);
    QSignalSpy changed(&registry, &CommandRegistry::changed);
    registry.registerCommand("c1", "bot-a", 5s);
    QCOMPARE(registry.resolveCommand("c1", "bot-a", okAck()), ResolveResult::Resolved);
    QCOMPARE(resolved.count(), 1);
    QTRY_COMPARE(changed.count(), 1);
    QCOMPARE(changed.at(0).at(0).value<QList<CommandOutcome>>().size(), 2);
}

void TestCommandRegistry::trackCommandHasNoFutureButSameSemantics()
{
    CommandRegistry registry;
    QSignalSpy finished(&registry, &CommandRegistry::finished);
    QString error;
    QVERIFY(registry.trackCommand("t1", "bot-a", 5s, "ping", &error));
    QVERIFY(error.isEmpty());
    QVERIFY(!registry.trackCommand("t1", "bot-a", 5s, "ping", &error));
    QVERIFY(error.contains("duplicate"));
    QCOMPARE(registry.resolveCommand("t1", "bot-b", okAck()), ResolveResult::WrongBot);
    QCOMPARE(registry.resolveCommand("t1", "bot-a", okAck()), ResolveResult::Resolved);
    QCOMPARE(finished.count(), 1);
    QCOMPARE(finished.at(0).at(0).value<CommandOutcome>().state, CommandState::Acked);
}

void TestCommandRegistry::futureAwaitedOnAnotherThread()
{
    CommandRegistry registry;
    auto future = registry.registerCommand("c1", "bot-a", 10s);
    std::atomic<int> state{-1};
    std::thread waiter([&] {
        future.waitForFinished();
        state = int(future.result().state);
    });
    std::thread acker([&] { registry.resolveCommand("c1", "bot-a", okAck()); });
    acker.join();
    waiter.join();
    QCOMPARE(state.load(), int(CommandState::Acked));
}

void TestCommandRegistry::concurrentWritersFinishEveryFutureOnce()
{
    CommandRegistry registry;
    registry.setMaxRemembered(1'000'000);
    std::atomic<int> finishedSignals{0};
    connect(
        &registry, &CommandRegistry::finished, &registry,
        [&](const CommandOutcome &) { finishedSignals.fetch_add(1); }, Qt::DirectConnection);
    constexpr int threads = 4;
    constexpr int perThread = 5000;
    std::vector<std::vector<QFuture<CommandOutcome>>> futures(threads);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            const QString bot = QString("bot-%1").arg(t);
            for (int i = 0; i < perThread; ++i) {
                const QString id = QString("t%1-%2").arg(t).arg(i);
                // Short timeouts on some so that the timer thread races the writers.
                futures[size_t(t)].push_back(
                    registry.registerCommand(id, bot, i % 7 == 0 ? 1ms : 10s));
                switch (i % 4) {
                case 0:
                    registry.resolveCommand(id, bot, okAck());
                    break;
                case 1:
                    registry.cancelCommand(id, "test");
                    break;
                case 2:
                    registry.resolveCommand(id, bot, failAck("no", 1));
                    break;
                default:
                    break; // left pending for failBot below
                }
                registry.resolveCommand(id, "intruder", okAck());
            }
        });
    }
    // A reader hammering the read side meanwhile.
    std::atomic<bool> stop{false};
    std::thread reader([&] {
        while (!stop) {
            registry.pendingCount();
            registry.counters();
            registry.pendingIds();
        }
    });
    for (auto &w : workers)
        w.join();
    for (int t = 0; t < threads; ++t)
        registry.failBot(QString("bot-%1").arg(t), "test over");
    stop = true;
    reader.join();

    int finished = 0;
    for (auto &list : futures) {
        for (auto &f : list) {
            // An expiry decided just before failBot may still be completing on the
            // registry's completion thread: bounded wait, not an instant check.
            QVERIFY(QTest::qWaitFor([&] { return f.isFinished(); }, 10'000));
            QCOMPARE(f.resultCount(), 1);
            ++finished;
        }
    }
    QCOMPARE(finished, threads * perThread);
    // Expiries complete on the completion thread, which signals right after the future.
    QTRY_COMPARE_WITH_TIMEOUT(finishedSignals.load(), threads * perThread, 5000);
    QCOMPARE(registry.pendingCount(), 0);
    const auto c = registry.counters();
    QCOMPARE(c.acked + c.rejected + c.expired + c.cancelled + c.disconnected,
             quint64(threads * perThread));
    QCOMPARE(c.wrongBotAcks, quint64(threads * perThread));
}

void TestCommandRegistry::destroyingRegistryCancelsPending()
{
    QFuture<CommandOutcome> future;
    {
        CommandRegistry registry;
        future = registry.registerCommand("c1", "bot-a", 60s);
    }
    QVERIFY(future.isFinished());
    QCOMPARE(future.result().state, CommandState::Cancelled);
    QCOMPARE(future.result().reason, QString("registry destroyed"));
}

void TestCommandRegistry::memoryStaysBoundedOnEveryPath()
{
    // Under AddressSanitizer (build-asan) this also shows that no path leaks.
    CommandRegistry registry;
    registry.setMaxRemembered(500);
    for (int round = 0; round < 20; ++round) {
        for (int i = 0; i < 1000; ++i) {
            const QString id = QString("r%1-%2").arg(round).arg(i);
            const QString bot = QString("bot-%1").arg(i % 10);
            auto f = registry.registerCommand(id, bot, i % 5 == 4 ? 1ms : 60s);
            registry.registerCommand(id, bot, 60s); // duplicate, refused
            switch (i % 5) {
            case 0:
                registry.resolveCommand(id, bot, okAck());
                registry.resolveCommand(id, bot, okAck()); // duplicate ack
                break;
            case 1:
                registry.cancelCommand(id, "x");
                break;
            case 2:
                registry.failCommand(id, CommandState::NotConnected, "x");
                break;
            case 3:
                break; // disconnect below
            case 4:
                f.waitForFinished();                       // expired
                registry.resolveCommand(id, bot, okAck()); // late ack
                break;
            }
        }
        for (int b = 0; b < 10; ++b)
            registry.failBot(QString("bot-%1").arg(b), "gone");
        QCOMPARE(registry.pendingCount(), 0);
        const RegistrySizes s = registry.sizes();
        QVERIFY2(s.entries <= 500, qPrintable(QString::number(s.entries)));
        QVERIFY(s.remembered <= 500);
        QVERIFY(s.heapItems <= 2 * 0 + 1024 + 1000);
        QVERIFY(s.botIndexIds <= 10 * 32);
        QVERIFY2(s.entrySlots <= 2 * 1024, qPrintable(QString::number(s.entrySlots)));
    }
}

void TestCommandRegistry::memoryFollowsABurstBackDown()
{
    CommandRegistry registry;
    // Expiries are signalled on the registry's completion thread: counted here, queued.
    int expired = 0;
    QObject context; // dies with this test: no queued call outlives `expired`
    connect(
        &registry, &CommandRegistry::expired, &context, [&expired] { ++expired; },
        Qt::QueuedConnection);
    // A burst of 30,000 pending commands, then all of them answered and forgotten.
    for (int i = 0; i < 30'000; ++i)
        registry.trackCommand(QString("burst-%1").arg(i), QString("bot-%1").arg(i % 3), 60s);
    QVERIFY(registry.sizes().entrySlots >= 30'000);
    for (int i = 0; i < 30'000; i += 2)
        registry.resolveCommand(QString("burst-%1").arg(i), QString("bot-%1").arg(i % 3), okAck());
    registry.setMaxRemembered(0); // forget every finished command now
    QCOMPARE(registry.sizes().entries, 15'000);
    registry.failBot("bot-0", "gone");
    registry.failBot("bot-1", "gone");
    registry.failBot("bot-2", "gone");
    const RegistrySizes after = registry.sizes();
    QCOMPARE(after.entries, 0);
    QVERIFY2(after.entrySlots <= 1024, qPrintable(QString::number(after.entrySlots)));

    // The heap and bot indexes still name released slots; nothing may trip over them.
    QVERIFY(after.heapItems >= 30'000);
    auto future = registry.registerCommand("after", "bot-0", 50ms);
    future.waitForFinished(); // the registry enforces the 50 ms deadline
    QCOMPARE(future.result().state, CommandState::Expired);
    QVERIFY(registry.trackCommand("again", "bot-1", 60s));
    QCOMPARE(registry.failBot("bot-1", "gone"), 1);
    QCOMPARE(registry.cancelAll("done"), 0);
    QTRY_COMPARE(expired, 1);
}

void TestCommandRegistry::timeoutsOverTheCapAreRefused()
{
    CommandRegistry registry;
    QCOMPARE(registry.maxTimeout(), CommandRegistry::DefaultMaxTimeout);
    auto over = registry.registerCommand("c1", "bot-a", CommandRegistry::DefaultMaxTimeout + 1ms);
    QVERIFY(over.isFinished());
    QCOMPARE(over.result().state, CommandState::Refused);
    QVERIFY(over.result().reason.contains("over the limit"));
    // The largest representable timeout: refused, never an overflowed deadline.
    QString error;
    QVERIFY(!registry.trackCommand("c2", "bot-a", milliseconds::max(), QString(), &error));
    QVERIFY(error.contains("over the limit"));
    registry.setMaxTimeout(1h);
    QVERIFY(!registry.trackCommand("c3", "bot-a", 2h));
    QVERIFY(registry.trackCommand("c4", "bot-a", 1h));
    registry.setMaxTimeout(milliseconds::max()); // clamped to a year
    QCOMPARE(registry.maxTimeout(), CommandRegistry::MaxTimeoutLimit);
}

void TestCommandRegistry::markSentWithResponseTimeoutRestartsTheDeadline()
{
    CommandRegistry registry;
    // Earlier: registered with an hour, written with 50 ms to answer.
    auto waited = registry.registerCommand("c1", "bot-a", 1h);
    const auto registered = registry.find("c1")->deadline;
    QVERIFY(registry.markSent("c1", 3, 50ms));
    QVERIFY(registry.find("c1")->deadline < registered);
    QVERIFY(QTest::qWaitFor([&] { return waited.isFinished(); }, 10'000));
    QCOMPARE(waited.result().state, CommandState::Expired);
    QVERIFY(waited.result().finishedAt - waited.result().sentAt >= 50ms);
    // Later: registered with 100 ms, written with 2 s. Another command due 300 ms from now
    // expiring first shows the old deadline has passed; c2 must still be pending then, and
    // expire at its new deadline.
    auto later = registry.registerCommand("c2", "bot-a", 100ms);
    QVERIFY(registry.markSent("c2", 3, 2s));
    auto marker = registry.registerCommand("marker", "bot-a", 300ms);
    QVERIFY(QTest::qWaitFor([&] { return marker.isFinished(); }, 10'000));
    QCOMPARE(registry.find("c2")->state, CommandState::Pending);
    QVERIFY(QTest::qWaitFor([&] { return later.isFinished(); }, 10'000));
    QCOMPARE(later.result().state, CommandState::Expired);
    QVERIFY(later.result().finishedAt - later.result().sentAt >= 2s);
    QVERIFY(!registry.markSent("c2", 3, 1s)); // finished: not to be written
}

void TestCommandRegistry::pagesWalkRegistrationOrderWithoutGapsOrRepeats()
{
    CommandRegistry registry;
    auto idOf = [](int i) { return QStringLiteral("c%1").arg(i); };
    for (int i = 0; i < 2500; ++i)
        registry.trackCommand(idOf(i), i % 2 ? "bot-odd" : "bot-even", 1min);
    for (int i = 0; i < 2500; i += 3)
        registry.cancelCommand(idOf(i));
    registry.setMaxRemembered(100); // forget most finished ones: holes in the order
    // Freed slots are reused by later registrations: the walk must not see them twice or
    // out of order.
    for (int i = 2500; i < 3000; ++i)
        registry.trackCommand(idOf(i), "bot-late", 1min);
    QStringList expected; // what must be there: every pending one and the 100 remembered
    for (int i = 0; i < 3000; ++i) {
        if (const auto o = registry.find(idOf(i)))
            expected << o->commandId;
    }
    QCOMPARE(expected.size(), 1666 + 100 + 500);
    QStringList walked;
    quint64 after = 0;
    bool more = true;
    int pages = 0;
    while (more && pages < 1000) {
        const auto page = registry.page(after, 97, {}, &more);
        for (const CommandOutcome &o : page) {
            QVERIFY(o.sequence > after);
            walked << o.commandId;
            after = o.sequence;
        }
        ++pages;
    }
    QCOMPARE(walked, expected); // registration order, no gap, no repeat
    bool moreOdd = false;
    const auto odd = registry.page(
        0, 10, [](const CommandOutcome &o) { return o.botId == QLatin1String("bot-odd"); },
        &moreOdd);
    QCOMPARE(odd.size(), 10);
    QVERIFY(moreOdd);
    QVERIFY(
        std::all_of(odd.begin(), odd.end(), [](const auto &o) { return o.botId == "bot-odd"; }));
}

void TestCommandRegistry::fanOutToManyBotsKeepsTheBotIndexBounded()
{
    // 20,000 bots each with one command (past the old 4,096 sweep threshold), finished, then
    // another fan-out: every outcome right, and idle bots swept.
    CommandRegistry registry;
    for (int round = 0; round < 2; ++round) {
        for (int i = 0; i < 20'000; ++i)
            QVERIFY(registry.trackCommand(QStringLiteral("r%1-%2").arg(round).arg(i),
                                          QStringLiteral("bot-%1").arg(i), 1min));
        QCOMPARE(registry.pendingCount(), 20'000);
        QCOMPARE(registry.pendingCount("bot-19999"), 1);
        for (int i = 0; i < 20'000; ++i)
            registry.resolveCommand(QStringLiteral("r%1-%2").arg(round).arg(i),
                                    QStringLiteral("bot-%1").arg(i), okAck());
        QCOMPARE(registry.pendingCount(), 0);
    }
    QCOMPARE(registry.counters().acked, 40'000u);
    // The second fan-out's 20,000 new bots swept the first's idle ones on the way.
    QVERIFY2(registry.sizes().botIndexBots < 40'000,
             qPrintable(QString::number(registry.sizes().botIndexBots)));
}

void TestCommandRegistry::failAllFinishesEveryPendingOnce()
{
    CommandRegistry registry;
    QList<QFuture<CommandOutcome>> futures;
    for (int i = 0; i < 100; ++i)
        futures.append(registry.registerCommand(QStringLiteral("c%1").arg(i), "bot-a", 1min));
    registry.resolveCommand("c0", "bot-a", okAck());
    QCOMPARE(registry.failAll(CommandState::Acked, "no"), 0); // not a failure state
    QCOMPARE(registry.failAll(CommandState::Disconnected, "hub shutting down"), 99);
    QCOMPARE(futures.at(0).result().state, CommandState::Acked);
    QCOMPARE(futures.at(1).result().state, CommandState::Disconnected);
    QCOMPARE(futures.at(99).result().reason, QString("hub shutting down"));
    QCOMPARE(registry.failAll(CommandState::Disconnected, "again"), 0);
}

QTEST_GUILESS_MAIN(TestCommandRegistry)
#include "tst_commandregistry.moc"
