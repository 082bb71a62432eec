// The hub against bots (and clients) that misbehave on purpose, over real loopback gRPC:
// out-of-range values, floods, silence before Hello, and races between sending and a
// stream's teardown, each driven many times.
#include "startedrig.h"

#include <QSignalSpy>
#include <QTest>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

using namespace opconsole;
using namespace std::chrono;

namespace {

using Rig = StartedRig;

v1::BotMessage helloMessage(const std::string &botId, uint32_t version = 1)
{
    v1::BotMessage hello;
    hello.mutable_hello()->set_bot_id(botId);
    hello.mutable_hello()->set_protocol_version(version);
    return hello;
}

} // namespace

class TestHostileBot : public QObject
{
    Q_OBJECT

private slots:
    void outOfRangeAckTimesAreDroppedNotFatal();
    void unknownErrorCodeAndLongMessageAreKeptInBounds();
    void textsComeThroughWhole();
    void expiredCommandIsNeverWritten();
    void cancelledWhileWaitingIsNeverSent();
    void waitingCommandGetsItsFullResponseTime();
    void sendRacingReplacementIsNeverStranded();
    void sendRacingStreamEndIsNeverStranded();
    void helloRacingCancelNeverLeavesAGhost();
    void streamsThatNeverSayHelloAreClosed();
    void queueBoundedInBytes();
    void progressAndStatusFloodsAreRateLimited();
    void unicodeControlCharactersInIdsAreRejected_data();
    void unicodeControlCharactersInIdsAreRejected();
    void unsupportedProtocolVersionIsRejected();
    void oversizedLabelsAreRejected();
    void hubStartsAgainAfterStop();
    void violationFloodEndsTheStream();
    void connectedBotsAreCapped();
    void goneBotsAreForgottenPastTheCap();
};

void TestHostileBot::outOfRangeAckTimesAreDroppedNotFatal()
{
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    auto future = rig.service->send("bot-1", CommandSpec::of(CommandKind::Ping), 5s);
    const auto command = bot.readCommand();
    QVERIFY(command.has_value());
    v1::BotMessage ack;
    ack.mutable_ack()->set_command_id(command->command_id());
    ack.mutable_ack()->set_success(true);
    ack.mutable_ack()->mutable_received_at()->set_seconds(300000000000); // year ~9500+: invalid
    ack.mutable_ack()->mutable_completed_at()->set_nanos(-5);
    bot.send(ack);
    QVERIFY(finishes(future));
    // The bot did answer: the ack is applied, its impossible times dropped and counted.
    QCOMPARE(future.result().state, CommandState::Acked);
    QCOMPARE(future.result().ack->botReceivedAtMs, 0);
    QCOMPARE(future.result().ack->botCompletedAtMs, 0);
    QTRY_VERIFY_WITH_TIMEOUT(rig.hub->counters().protocolViolations >= 1, 5000);
    QVERIFY(pingRoundTrips(rig, bot, "bot-1"));
    rig.hub->stop(); // returns: nothing is left unfinished
    QVERIFY(!rig.hub->isRunning());
}

void TestHostileBot::unknownErrorCodeAndLongMessageAreKeptInBounds()
{
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    auto future = rig.service->send("bot-1", CommandSpec::of(CommandKind::Ping), 5s);
    const auto command = bot.readCommand();
    QVERIFY(command.has_value());
    bot.ack(command->command_id(), false, std::string(20000, 'x'), v1::AckErrorCode(977));
    QVERIFY(finishes(future));
    QCOMPARE(future.result().state, CommandState::Rejected);
    QCOMPARE(future.result().ack->errorCode, 0);
    QVERIFY(future.result().ack->message.toUtf8().size() <= 4096);
    QVERIFY(future.result().ack->message.endsWith(QChar(0x2026)));
}

void TestHostileBot::textsComeThroughWhole()
{
    // A leading U+FEFF is a character like any other in free text: Qt's fromUtf8 would drop
    // it, so the record would no longer say what the bot said.
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    auto future = rig.service->send("bot-1", CommandSpec::of(CommandKind::Ping), 5s);
    const auto command = bot.readCommand();
    QVERIFY(command.has_value());
    bot.progress(command->command_id(), 10, "\xEF\xBB\xBFworking");
    bot.ack(command->command_id(), false, "\xEF\xBB\xBFno");
    QVERIFY(finishes(future));
    QCOMPARE(future.result().ack->message, QString(QChar(0xFEFF)) + "no");
    QCOMPARE(future.result().progressMessage, QString(QChar(0xFEFF)) + "working");
}

void TestHostileBot::expiredCommandIsNeverWritten()
{
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    auto future = rig.registry.registerCommand("c-expired", "bot-1", 20ms, "restart");
    QVERIFY(finishes(future));
    QCOMPARE(future.result().state, CommandState::Expired);
    QCOMPARE(rig.hub->sendCommand("bot-1", "c-expired", CommandSpec::of(CommandKind::Restart), 1s),
             SendResult::NotPending);
    QVERIFY(!bot.readCommand(300ms).has_value()); // the bot never sees it
    QCOMPARE(rig.hub->counters().notPendingSkipped, 1u);
}

void TestHostileBot::cancelledWhileWaitingIsNeverSent()
{
    Rig rig;
    auto future =
        rig.service->send("late-bot", CommandSpec::of(CommandKind::Restart), 10s, waitingUpTo(30s));
    const QString id = rig.registry.snapshot().constLast().commandId;
    QVERIFY(rig.service->cancel(id, "operator changed their mind"));
    QVERIFY(finishes(future));
    QCOMPARE(future.result().state, CommandState::Cancelled);
    RawBot bot(rig.address());
    QVERIFY(bot.hello("late-bot"));
    QVERIFY(!bot.readCommand(300ms).has_value());
    QVERIFY(!rig.registry.find(id)->wasSent());
}

void TestHostileBot::waitingCommandGetsItsFullResponseTime()
{
    // Connect timeout and response timeout, as Azure IoT's direct methods: the bot connects
    // after longer than the response timeout, and still has all of it to answer.
    Rig rig;
    auto future =
        rig.service->send("late-2", CommandSpec::of(CommandKind::Restart), 3s, waitingUpTo(30s));
    QTest::qWait(3500); // the scenario itself: the bot comes online later than its 3 s
    QVERIFY(!future.isFinished());
    RawBot bot(rig.address());
    QVERIFY(bot.hello("late-2"));
    const auto command = bot.readCommand();
    QVERIFY(command.has_value());
    QCOMPARE(command->timeout().seconds(), 3); // the bot is told its full response time
    bot.ack(command->command_id());
    QVERIFY(finishes(future));
    QCOMPARE(future.result().state, CommandState::Acked);
    const auto sentAfter = future.result().sentAt - future.result().registeredAt;
    QVERIFY(sentAfter >= 3500ms);
}

void TestHostileBot::sendRacingReplacementIsNeverStranded()
{
    // A send takes session S while a reconnect of the same bot replaces S. The command must
    // end on S's teardown or live on the new session, never pending on a dead one.
    HubOptions options;
    options.heartbeatInterval = 60s;
    Rig rig(options);
    auto first = std::make_unique<RawBot>(rig.address());
    QVERIFY(first->hello("flappy"));
    for (int round = 0; round < 150; ++round) {
        std::atomic<bool> go{false};
        QFuture<CommandOutcome> future;
        std::thread sender([&] {
            while (!go.load()) {
            }
            future = rig.service->send("flappy", CommandSpec::of(CommandKind::Ping), 60s);
        });
        auto next = std::make_unique<RawBot>(rig.address());
        go = true;
        QVERIFY(next->hello("flappy"));
        sender.join();
        // Stranded would mean pending until its 60 s deadline on a dead session. Here it
        // either fails with the old session at once or reaches the new bot, which acks it.
        QVERIFY2(QTest::qWaitFor(
                     [&] {
                         if (const auto command = next->readCommand(1ms))
                             next->ack(command->command_id());
                         return future.isFinished();
                     },
                     5000),
                 qPrintable(QStringLiteral("round %1: stranded").arg(round)));
        QVERIFY2(future.result().state == CommandState::Acked ||
                     future.result().state == CommandState::Disconnected,
                 qPrintable(stateName(future.result().state) + ": " + future.result().reason));
        first = std::move(next);
    }
    QCOMPARE(rig.registry.pendingCount(), 0);
}

void TestHostileBot::sendRacingStreamEndIsNeverStranded()
{
    HubOptions options;
    options.heartbeatInterval = 60s;
    Rig rig(options);
    for (int round = 0; round < 150; ++round) {
        const QString id = QStringLiteral("ender-%1").arg(round);
        RawBot bot(rig.address());
        QVERIFY(bot.hello(id.toStdString()));
        std::atomic<bool> go{false};
        QFuture<CommandOutcome> future;
        std::thread sender([&] {
            while (!go.load()) {
            }
            future = rig.service->send(id, CommandSpec::of(CommandKind::Ping), 60s);
        });
        go = true;
        bot.cancel();
        sender.join();
        // The stream is gone: the command fails at once (Disconnected or NotConnected), not
        // at its 60 s deadline.
        QVERIFY2(finishes(future), qPrintable(QStringLiteral("round %1").arg(round)));
        QVERIFY(future.result().state == CommandState::Disconnected ||
                future.result().state == CommandState::NotConnected);
    }
    QCOMPARE(rig.registry.pendingCount(), 0);
}

void TestHostileBot::helloRacingCancelNeverLeavesAGhost()
{
    // Hello and the stream's cancel race: the bot must never stay "connected" afterwards.
    // What every receiver sees, in the order the hub emits it: a bot's last event must say
    // it is gone. Declared before the rig: the hub's stop emits into them as it is destroyed.
    std::mutex mutex;
    std::map<QString, bool> lastSaysConnected;
    HubOptions options;
    options.heartbeatInterval = 60s; // liveness must not be what cleans up
    Rig rig(options);
    connect(
        rig.hub.get(), &Hub::botConnected, this,
        [&](const BotInfo &b) {
            std::lock_guard lock(mutex);
            lastSaysConnected[b.botId] = true;
        },
        Qt::DirectConnection);
    connect(
        rig.hub.get(), &Hub::botDisconnected, this,
        [&](const BotInfo &b) {
            std::lock_guard lock(mutex);
            lastSaysConnected[b.botId] = false;
        },
        Qt::DirectConnection);
    for (int round = 0; round < 200; ++round) {
        const std::string id = "ghost-" + std::to_string(round);
        RawBot bot(rig.address());
        bot.send(helloMessage(id));
        bot.cancel();
        bot.waitClosed();
    }
    QTRY_COMPARE_WITH_TIMEOUT(rig.hub->connectedBotIds().size(), 0, 5000);
    // The last signal about every bot says it is gone (waited for: it follows the table).
    auto stillAnnounced = [&] {
        std::lock_guard lock(mutex);
        return std::count_if(lastSaysConnected.begin(), lastSaysConnected.end(),
                             [](const auto &entry) { return entry.second; });
    };
    QTRY_COMPARE_WITH_TIMEOUT(stillAnnounced(), 0, 5000);
}

void TestHostileBot::streamsThatNeverSayHelloAreClosed()
{
    HubOptions options;
    options.helloTimeout = 200ms;
    Rig rig(options);
    RawBot mute(rig.address()); // connects, says nothing
    const auto status = mute.waitClosed(5s);
    QVERIFY(status.has_value());
    QCOMPARE(status->error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
    QVERIFY(status->error_message().find("no Hello") != std::string::npos);
    QCOMPARE(rig.hub->counters().helloTimeouts, 1u);
    RawBot good(rig.address());
    QVERIFY(good.hello("bot-1"));
    QVERIFY(pingRoundTrips(rig, good, "bot-1"));
}

void TestHostileBot::queueBoundedInBytes()
{
    HubOptions options;
    options.maxQueuedBytesPerBot = 64 * 1024; // the count (4096) is far away
    Rig rig(options);
    RawBot reader(rig.address());
    QVERIFY(reader.hello("bot-1"));
    CommandSpec spec = CommandSpec::of(CommandKind::Custom);
    spec.customName = QStringLiteral("big");
    spec.jsonPayload = QByteArray("{\"data\": \"") + QByteArray(16 * 1024, 'z') + "\"}";
    int refused = 0;
    int sent = 0;
    for (int i = 0; i < 2000 && refused == 0; ++i) {
        auto f = rig.service->send("bot-1", spec, 60s);
        if (f.isFinished() && f.result().state == CommandState::Refused)
            ++refused;
        else
            ++sent;
    }
    QVERIFY(refused > 0);
    QVERIFY2(sent < 2000, "the byte budget never refused");
}

void TestHostileBot::progressAndStatusFloodsAreRateLimited()
{
    HubOptions options;
    options.maxProgressPerSecond = 20;
    options.maxStatusPerSecond = 5;
    Rig rig(options);
    RawBot bot(rig.address());
    QVERIFY(bot.hello("flooder"));
    auto future = rig.service->send("flooder", CommandSpec::of(CommandKind::Ping), 30s);
    const auto command = bot.readCommand();
    QVERIFY(command.has_value());
    for (int i = 0; i < 500; ++i) {
        bot.progress(command->command_id(), unsigned(i % 100), "p");
        v1::BotMessage status;
        status.mutable_status()->set_state(v1::BOT_STATE_RUNNING);
        (*status.mutable_status()->mutable_fields())["n"] = std::to_string(i);
        bot.send(status);
    }
    bot.ack(command->command_id());
    QVERIFY(finishes(future));
    QTRY_VERIFY_WITH_TIMEOUT(rig.hub->counters().rateLimited >= 800, 5000);
    QVERIFY(future.result().progressSteps.size() <= CommandOutcome::MaxProgressSteps);
    QVERIFY(rig.hub->isConnected("flooder")); // dropped and counted, not disconnected
}

void TestHostileBot::unicodeControlCharactersInIdsAreRejected_data()
{
    QTest::addColumn<QString>("botId");
    QTest::newRow("NEL U+0085") << QStringLiteral("bot\u0085x");
    QTest::newRow("CSI U+009B") << QStringLiteral("bot\u009B31m");
    QTest::newRow("RLO U+202E") << QStringLiteral("bot\u202Eevil");
    QTest::newRow("line separator") << QStringLiteral("bot\u2028x");
    QTest::newRow("BOM") << QStringLiteral("\uFEFFbot");
    QTest::newRow("129 bytes") << QString(129, QLatin1Char('b'));
    QTest::newRow("65 two-byte characters") << QString(65, QChar(0x00E9));
}

void TestHostileBot::unicodeControlCharactersInIdsAreRejected()
{
    QFETCH(QString, botId);
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(!bot.hello(botId.toStdString()));
    const auto status = bot.waitClosed();
    QVERIFY(status.has_value());
    QCOMPARE(status->error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    QVERIFY(rig.hub->connectedBotIds().isEmpty());
}

void TestHostileBot::unsupportedProtocolVersionIsRejected()
{
    Rig rig;
    RawBot bot(rig.address());
    bot.send(helloMessage("bot-2", 2));
    const auto reply = bot.read();
    QVERIFY(reply.has_value() && reply->has_reject());
    QVERIFY(reply->reject().reason().find("protocol_version 2") != std::string::npos);
    QCOMPARE(bot.waitClosed()->error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

void TestHostileBot::oversizedLabelsAreRejected()
{
    Rig rig;
    RawBot bot(rig.address());
    std::map<std::string, std::string> labels;
    for (int i = 0; i < 65; ++i)
        labels["k" + std::to_string(i)] = "v";
    QVERIFY(!bot.hello("bot-1", labels));
    RawBot other(rig.address());
    QVERIFY(!other.hello("bot-2", {{"group", std::string(300, 'g')}}));
    QVERIFY(rig.hub->connectedBotIds().isEmpty());
}

void TestHostileBot::hubStartsAgainAfterStop()
{
    Rig rig;
    rig.hub->stop();
    QVERIFY(!rig.hub->isRunning());
    QVERIFY(rig.hub->start());
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    QVERIFY(pingRoundTrips(rig, bot, "bot-1"));
}

void TestHostileBot::violationFloodEndsTheStream()
{
    // Counted in the gRPC thread that reports it; declared before the rig, which it outlives.
    std::atomic<int> reported{0};
    HubOptions options;
    options.maxViolationsPerSecond = 5;
    Rig rig(options);
    RawBot bot(rig.address());
    QVERIFY(bot.hello("noisy"));
    connect(
        rig.hub.get(), &Hub::protocolViolation, this, [&reported] { ++reported; },
        Qt::DirectConnection);
    for (int i = 0; i < 1000; ++i) {
        if (!bot.send(v1::BotMessage())) // empty messages: a violation each
            break;
    }
    const auto status = bot.waitClosed(10s);
    QVERIFY(status.has_value());
    QCOMPARE(status->error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    QVERIFY(status->error_message().find("too many protocol violations") != std::string::npos);
    // A burst is reported, then the stream ends: not a thousand log lines.
    QTRY_VERIFY_WITH_TIMEOUT(reported.load() > 0, 5000);
    QVERIFY2(reported.load() <= 20, qPrintable(QString::number(reported.load())));
    RawBot good(rig.address());
    QVERIFY(good.hello("quiet"));
    QVERIFY(pingRoundTrips(rig, good, "quiet"));
}

void TestHostileBot::connectedBotsAreCapped()
{
    HubOptions options;
    options.maxLiveSessions = 3;
    Rig rig(options);
    std::vector<std::unique_ptr<RawBot>> bots;
    for (int i = 0; i < 3; ++i) {
        bots.push_back(std::make_unique<RawBot>(rig.address()));
        QVERIFY(bots.back()->hello("bot-" + std::to_string(i)));
    }
    RawBot extra(rig.address());
    QVERIFY(!extra.hello("bot-3"));
    QCOMPARE(extra.waitClosed()->error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    // A known bot reconnecting still gets in (it replaces its own session).
    RawBot again(rig.address());
    QVERIFY(again.hello("bot-1"));
    QVERIFY(pingRoundTrips(rig, again, "bot-1"));
}

void TestHostileBot::goneBotsAreForgottenPastTheCap()
{
    HubOptions options;
    options.maxKnownBots = 20;
    Rig rig(options);
    RawBot stays(rig.address());
    QVERIFY(stays.hello("stays"));
    for (int i = 0; i < 40; ++i) {
        RawBot bot(rig.address());
        QVERIFY(bot.hello("passing-" + std::to_string(i)));
        bot.cancel();
        bot.waitClosed();
        QTRY_VERIFY_WITH_TIMEOUT(!rig.hub->isConnected(QStringLiteral("passing-%1").arg(i)), 5000);
    }
    RawBot last(rig.address());
    QVERIFY(last.hello("last"));
    QVERIFY(rig.hub->bots().size() <= 20);
    QVERIFY(rig.hub->bot("stays").has_value());      // connected bots are never forgotten
    QVERIFY(!rig.hub->bot("passing-0").has_value()); // the oldest gone ones are
    QVERIFY(pingRoundTrips(rig, stays, "stays"));
}

QTEST_GUILESS_MAIN(TestHostileBot)
#include "tst_hostilebot.moc"
