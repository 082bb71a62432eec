// The hub and CommandService over real loopback gRPC, driven by hand-written bots (RawBot)
// that can misbehave on purpose.
#include "startedrig.h"

#include <QSignalSpy>

#include <QElapsedTimer>
#include <QRegularExpression>
#include <QTest>
#include <grpcpp/generic/generic_stub.h>

using namespace opconsole;
using namespace std::chrono;

using Rig = StartedRig;

class TestHub : public QObject
{
    Q_OBJECT

private slots:
    void customPayloadErrorsSayWhatAndWhere();
    void helloWelcomeSendAndAck();
    void notConnectedAtOnce();
    void connectTimeoutWaitsForTheBot();
    void rejectionCarriesTheBotsReason();
    void expiryThenLateAck();
    void firstMessageMustBeHello();
    void badBotIdsAreRejected_data();
    void badBotIdsAreRejected();
    void ackFromAnotherBotNeverResolves();
    void unknownDuplicateAndProgressAcks();
    void oversizeMessageClosesOnlyThatStream();
    void undecodableBytesCloseOnlyThatStream();
    void silentBotIsDisconnectedAtOnce();
    void aMassSilenceIsNotBlamedOnTheBots();
    void reconnectWithSameIdKeepsNewSession();
    void streamEndFailsPendingAtOnce();
    void cancelReleasesWaiterAndTellsBot();
    void fullQueueRefusesWithoutBlocking();
    void fanOutTalliesEveryOutcome();
    void invalidCustomJsonIsRefused();
    void shutdownFailsPendingWithReason();
};

void TestHub::helloWelcomeSendAndAck()
{
    Rig rig;
    QVERIFY(rig.started);
    QSignalSpy connected(rig.hub.get(), &Hub::botConnected);
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1", {{"region", "eu"}}));
    QVERIFY(!bot.welcome.session_id().empty());
    QCOMPARE(bot.welcome.heartbeat_interval().seconds(), 2);
    QTRY_COMPARE_WITH_TIMEOUT(connected.count(), 1, 5000);
    QCOMPARE(connected.at(0).at(0).value<BotInfo>().labels.value("region"), QString("eu"));
    QVERIFY(rig.hub->isConnected("bot-1"));

    auto future = rig.service->send("bot-1", CommandSpec::of(CommandKind::Start), 5s);
    const auto command = bot.readCommand();
    QVERIFY(command.has_value());
    QVERIFY(command->has_start());
    QCOMPARE(command->timeout().seconds(), 5);
    QVERIFY(bot.ack(command->command_id(), true, "started"));
    QVERIFY(finishes(future));
    const CommandOutcome o = future.result();
    QCOMPARE(o.state, CommandState::Acked);
    QCOMPARE(o.ack->message, QString("started"));
    QVERIFY(o.wasSent());
    QCOMPARE(o.kind, QString("start"));
}

void TestHub::notConnectedAtOnce()
{
    Rig rig;
    auto future = rig.service->send("nobody", CommandSpec::of(CommandKind::Ping), 30s);
    QVERIFY(future.isFinished()); // at once, not after 30 s
    QCOMPARE(future.result().state, CommandState::NotConnected);
    QVERIFY(future.result().reason.contains("not connected"));
}

void TestHub::connectTimeoutWaitsForTheBot()
{
    Rig rig;
    auto waiting =
        rig.service->send("late-bot", CommandSpec::of(CommandKind::Ping), 10s, waitingUpTo(10s));
    auto giveUp =
        rig.service->send("never-bot", CommandSpec::of(CommandKind::Ping), 10s, waitingUpTo(100ms));
    QVERIFY(!waiting.isFinished());
    RawBot bot(rig.address());
    QVERIFY(bot.hello("late-bot"));
    const auto command = bot.readCommand();
    QVERIFY(command.has_value());
    bot.ack(command->command_id());
    QVERIFY(finishes(waiting));
    QCOMPARE(waiting.result().state, CommandState::Acked);
    QVERIFY(finishes(giveUp));
    QCOMPARE(giveUp.result().state, CommandState::NotConnected);
    QVERIFY(giveUp.result().reason.contains("did not connect within 0.1 s"));
}

void TestHub::rejectionCarriesTheBotsReason()
{
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    auto future = rig.service->send("bot-1", CommandSpec::of(CommandKind::Pause), 5s);
    const auto command = bot.readCommand();
    QVERIFY(command && command->has_pause());
    bot.ack(command->command_id(), false, "cannot pause: not running", v1::ACK_ERROR_INVALID_STATE);
    QVERIFY(finishes(future));
    QCOMPARE(future.result().state, CommandState::Rejected);
    QCOMPARE(future.result().reason, QString("cannot pause: not running"));
    QCOMPARE(future.result().ack->errorCode, int(v1::ACK_ERROR_INVALID_STATE));
}

void TestHub::expiryThenLateAck()
{
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    QSignalSpy late(&rig.registry, &CommandRegistry::lateAck);
    auto future = rig.service->send("bot-1", CommandSpec::of(CommandKind::Restart), 100ms);
    const auto command = bot.readCommand();
    QVERIFY(command.has_value());
    QVERIFY(finishes(future));
    QCOMPARE(future.result().state, CommandState::Expired);
    bot.ack(command->command_id(), true, "restarted after all");
    QTRY_COMPARE_WITH_TIMEOUT(late.count(), 1, 5000);
    const auto rec = rig.registry.find(QString::fromStdString(command->command_id()));
    QVERIFY(rec && rec->hasLateAck());
    QCOMPARE(rec->lateAck->message, QString("restarted after all"));
    QVERIFY(rig.hub->isConnected("bot-1")); // a late ack is no reason to drop a bot
}

void TestHub::firstMessageMustBeHello()
{
    Rig rig;
    RawBot rude(rig.address());
    rude.heartbeat();
    const auto reply = rude.read();
    QVERIFY(reply && reply->has_reject());
    QVERIFY(reply->reject().reason().find("Hello") != std::string::npos);
    const auto status = rude.waitClosed();
    QVERIFY(status.has_value());
    QCOMPARE(status->error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    QCOMPARE(rig.hub->counters().streamsRejected, 1u);
    // The hub is unharmed.
    RawBot polite(rig.address());
    QVERIFY(polite.hello("bot-ok"));
}

void TestHub::badBotIdsAreRejected_data()
{
    QTest::addColumn<QByteArray>("botId");
    QTest::newRow("empty") << QByteArray();
    QTest::newRow("too long") << QByteArray(129, 'x');
    QTest::newRow("control characters") << QByteArray("bot\n1");
}

void TestHub::badBotIdsAreRejected()
{
    QFETCH(QByteArray, botId);
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(!bot.hello(botId.toStdString()));
    const auto status = bot.waitClosed();
    QVERIFY(status.has_value());
    QCOMPARE(status->error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    QVERIFY(rig.hub->connectedBotIds().isEmpty());
}

void TestHub::ackFromAnotherBotNeverResolves()
{
    Rig rig;
    RawBot a(rig.address());
    RawBot b(rig.address());
    QVERIFY(a.hello("bot-a"));
    QVERIFY(b.hello("bot-b"));
    auto forB = rig.service->send("bot-b", CommandSpec::of(CommandKind::Stop), 5s);
    const auto command = b.readCommand();
    QVERIFY(command.has_value());
    a.ack(command->command_id(), true, "not mine"); // bot-a tries to resolve bot-b's command
    QTRY_COMPARE_WITH_TIMEOUT(rig.registry.counters().wrongBotAcks, 1u, 5000);
    QVERIFY(!forB.isFinished());
    b.ack(command->command_id(), true, "stopped");
    QVERIFY(finishes(forB));
    QCOMPARE(forB.result().state, CommandState::Acked);
    QCOMPARE(forB.result().ack->message, QString("stopped"));
}

void TestHub::unknownDuplicateAndProgressAcks()
{
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    bot.ack("never-sent");
    bot.ack(""); // empty id: a protocol violation, not even an unknown command
    auto future = rig.service->send("bot-1", CommandSpec::of(CommandKind::Ping), 5s);
    const auto command = bot.readCommand();
    QVERIFY(command.has_value());
    v1::BotMessage progress;
    progress.mutable_progress()->set_command_id(command->command_id());
    progress.mutable_progress()->set_percent(250); // out of range: a violation, ignored
    progress.mutable_progress()->set_message("too far");
    bot.send(progress);
    progress.mutable_progress()->set_percent(60);
    progress.mutable_progress()->set_message("half");
    bot.send(progress);
    progress.mutable_progress()->set_command_id("unknown-progress");
    bot.send(progress);
    bot.ack(command->command_id(), true, "first");
    bot.ack(command->command_id(), false, "second");
    QVERIFY(finishes(future));
    QCOMPARE(future.result().ack->message, QString("first"));
    QTRY_COMPARE_WITH_TIMEOUT(rig.registry.counters().duplicateAcks, 1u, 5000);
    const auto c = rig.registry.counters();
    QCOMPARE(c.unknownAcks, 1u);
    QCOMPARE(c.unknownProgress, 1u);
    // The empty id and the 250 percent. An unknown id is counted by the registry, not as a
    // violation (a late ack for a forgotten command is a healthy bot's); the duplicate neither.
    QCOMPARE(rig.hub->counters().protocolViolations, 2u);
    QCOMPARE(future.result().progressPercent, 60);
    QCOMPARE(future.result().progressSteps.size(), 1);
    QVERIFY(rig.hub->isConnected("bot-1")); // ignored and counted, not fatal
}

void TestHub::oversizeMessageClosesOnlyThatStream()
{
    HubOptions options;
    options.maxMessageBytes = 1024;
    Rig rig(options);
    RawBot big(rig.address());
    RawBot fine(rig.address());
    QVERIFY(big.hello("bot-big"));
    QVERIFY(fine.hello("bot-fine"));
    auto pending = rig.service->send("bot-big", CommandSpec::of(CommandKind::Ping), 60s);
    QVERIFY(big.readCommand().has_value());
    big.ack("x", true, std::string(8192, 'y'));
    const auto status = big.waitClosed();
    QVERIFY(status.has_value());
    QCOMPARE(status->error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    QVERIFY(finishes(pending));
    QCOMPARE(pending.result().state, CommandState::Disconnected);
    QVERIFY(pingRoundTrips(rig, fine, "bot-fine"));
}

// Raw bytes on the BotLink method through gRPC's generic stub, driven on a completion queue.
class ByteBot
{
public:
    explicit ByteBot(const std::string &address)
        : m_stub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials())),
          m_call(m_stub.PrepareCall(&m_context, "/opconsole.v1.BotLink/Connect", &m_queue))
    {
        m_call->StartCall(this);
        m_started = step();
    }
    ~ByteBot()
    {
        m_context.TryCancel();
        m_queue.Shutdown();
        void *tag;
        bool ok;
        while (m_queue.Next(&tag, &ok)) {
        }
    }
    bool started() const { return m_started; }
    bool write(const std::string &bytes)
    {
        grpc::Slice slice(bytes);
        grpc::ByteBuffer buffer(&slice, 1);
        m_call->Write(buffer, this);
        return step();
    }
    // Reads until the hub ends the stream; its status, or nothing within the bound.
    std::optional<grpc::Status> waitClosed()
    {
        grpc::ByteBuffer in;
        do {
            m_call->Read(&in, this);
        } while (step());
        grpc::Status status;
        m_call->Finish(&status, this);
        if (!step())
            return std::nullopt;
        return status;
    }

private:
    bool step()
    {
        void *tag = nullptr;
        bool ok = false;
        const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(10);
        return m_queue.AsyncNext(&tag, &ok, deadline) == grpc::CompletionQueue::GOT_EVENT && ok;
    }

    grpc::GenericStub m_stub;
    grpc::ClientContext m_context;
    grpc::CompletionQueue m_queue;
    std::unique_ptr<grpc::GenericClientAsyncReaderWriter> m_call;
    bool m_started = false;
};

void TestHub::undecodableBytesCloseOnlyThatStream()
{
    Rig rig;
    RawBot fine(rig.address());
    QVERIFY(fine.hello("bot-fine"));
    v1::BotMessage hello;
    hello.mutable_hello()->set_bot_id("bot-bytes");
    hello.mutable_hello()->set_protocol_version(1);
    ByteBot bytes(rig.address());
    QVERIFY(bytes.started());
    QVERIFY(bytes.write(hello.SerializeAsString()));
    QTRY_VERIFY_WITH_TIMEOUT(rig.hub->isConnected("bot-bytes"), 5000);
    auto pending = rig.service->send("bot-bytes", CommandSpec::of(CommandKind::Ping), 60s);
    // Not a protobuf message: a field tag with wire type 7, which does not exist.
    QVERIFY(bytes.write(std::string("\x0f\xff\xff\xff\xff", 5)));
    // gRPC reports an undecodable message to the hub as a failed read, the same as the bot
    // closing its side: the hub ends the stream and fails its commands at once.
    QVERIFY(bytes.waitClosed().has_value());
    QVERIFY(finishes(pending));
    QCOMPARE(pending.result().state, CommandState::Disconnected);
    QVERIFY(!rig.hub->isConnected("bot-bytes"));
    // Nothing else noticed.
    QVERIFY(pingRoundTrips(rig, fine, "bot-fine"));
}

// A hub short of CPU reads its bots' heartbeats late, and every bot looks silent at once:
// they are not all disconnected (that made a 50,000-bot fan-out lose 11,000 answers). In a
// mass silence only bots silent for twice the limit go, a few at a time; bots that speak again
// within that stay. A fleet that is really gone is still closed, every bot of it.
void TestHub::aMassSilenceIsNotBlamedOnTheBots()
{
    HubOptions options;
    options.heartbeatInterval = 1000ms; // silent for 3 s: disconnected (missedHeartbeats 3)
    Rig rig(options);
    QSignalSpy disconnected(rig.hub.get(), &Hub::botDisconnected);
    constexpr int Bots = 100;
    std::vector<std::unique_ptr<RawBot>> bots;
    for (int i = 0; i < Bots; ++i) {
        bots.push_back(std::make_unique<RawBot>(rig.address()));
        QVERIFY(bots.back()->hello("bot-" + std::to_string(i)));
    }
    // All silent past the 3 s limit: held, not closed (nor before twice the limit).
    QVERIFY(QTest::qWaitFor([&] { return rig.hub->counters().silenceHeld > 0; }, 20'000));
    QCOMPARE(disconnected.count(), 0);
    // They speak again (the hub caught up): every one stays.
    const quint64 messagesBefore = rig.hub->counters().messagesIn;
    for (auto &bot : bots)
        QVERIFY(bot->heartbeat());
    QVERIFY(QTest::qWaitFor([&] { return rig.hub->counters().messagesIn >= messagesBefore + Bots; },
                            10'000));
    QCOMPARE(disconnected.count(), 0);
    QCOMPARE(rig.hub->counters().heartbeatTimeouts, 0u);
    QCOMPARE(int(rig.hub->bots().size()), Bots);

    // Now they are gone for good: every one is closed, none before twice the limit, and not
    // all in one pass.
    QElapsedTimer silentFor;
    silentFor.start();
    QVERIFY(QTest::qWaitFor([&] { return disconnected.count() == Bots; }, 60'000));
    QCOMPARE(rig.hub->counters().heartbeatTimeouts, quint64(Bots));
    for (const QList<QVariant> &args : std::as_const(disconnected)) {
        const BotInfo bot = args.at(0).value<BotInfo>();
        QVERIFY2(bot.disconnectReason.contains("no heartbeat"), qPrintable(bot.disconnectReason));
    }
    QVERIFY2(silentFor.elapsed() >= 6000, qPrintable(QString::number(silentFor.elapsed())));
    qint64 first = std::numeric_limits<qint64>::max(), last = 0;
    for (const QList<QVariant> &args : std::as_const(disconnected)) {
        const qint64 at = args.at(0).value<BotInfo>().disconnectedAtMs;
        first = std::min(first, at);
        last = std::max(last, at);
    }
    QVERIFY2(last > first, "every silent bot was closed in one pass");
}

void TestHub::silentBotIsDisconnectedAtOnce()
{
    HubOptions options;
    options.heartbeatInterval = 100ms;
    Rig rig(options);
    QSignalSpy disconnected(rig.hub.get(), &Hub::botDisconnected);
    RawBot silent(rig.address());
    QVERIFY(silent.hello("bot-quiet"));
    QCOMPARE(silent.welcome.heartbeat_interval().nanos(), 100'000'000);
    auto future = rig.service->send("bot-quiet", CommandSpec::of(CommandKind::Ping), 60s);
    QVERIFY(finishes(future, 10'000));
    // Disconnected, long before its 60 s deadline.
    QCOMPARE(future.result().state, CommandState::Disconnected);
    QVERIFY(future.result().reason.contains("no heartbeat"));
    QVERIFY(future.result().finishedAt - future.result().registeredAt < 30s);
    QTRY_VERIFY_WITH_TIMEOUT(disconnected.count() > 0, 5000);
    QVERIFY(!rig.hub->isConnected("bot-quiet"));
    QCOMPARE(rig.hub->counters().heartbeatTimeouts, 1u);
    const auto status = silent.waitClosed();
    QVERIFY(status.has_value());
    QCOMPARE(status->error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
}

void TestHub::reconnectWithSameIdKeepsNewSession()
{
    Rig rig;
    auto first = std::make_unique<RawBot>(rig.address());
    QVERIFY(first->hello("bot-1"));
    auto onOld = rig.service->send("bot-1", CommandSpec::of(CommandKind::Ping), 60s);
    QVERIFY(first->readCommand().has_value());

    RawBot second(rig.address());
    QVERIFY(second.hello("bot-1"));
    QVERIFY(second.welcome.session_id() != first->welcome.session_id());
    // The old stream is closed; what was sent on it fails; the new session is live.
    const auto status = first->waitClosed();
    QVERIFY(status.has_value());
    QCOMPARE(status->error_code(), grpc::StatusCode::ABORTED);
    QVERIFY(finishes(onOld));
    QCOMPARE(onOld.result().state, CommandState::Disconnected);

    auto onNew = rig.service->send("bot-1", CommandSpec::of(CommandKind::Ping), 60s);
    const auto command = second.readCommand();
    QVERIFY(command.has_value());
    first.reset(); // the old stream's teardown finishes now
    QVERIFY(rig.hub->isConnected("bot-1"));
    QVERIFY(!onNew.isFinished());
    second.ack(command->command_id());
    QVERIFY(finishes(onNew));
    QCOMPARE(onNew.result().state, CommandState::Acked);
    QCOMPARE(rig.hub->counters().sessionsReplaced, 1u);
    QCOMPARE(rig.hub->bot("bot-1")->connects, 2);
}

void TestHub::streamEndFailsPendingAtOnce()
{
    Rig rig;
    auto bot = std::make_unique<RawBot>(rig.address());
    QVERIFY(bot->hello("bot-1"));
    auto future = rig.service->send("bot-1", CommandSpec::of(CommandKind::Ping), 60s);
    QVERIFY(bot->readCommand().has_value());
    bot.reset(); // cancels the stream
    QVERIFY(finishes(future));
    QCOMPARE(future.result().state, CommandState::Disconnected);
    QTRY_VERIFY_WITH_TIMEOUT(!rig.hub->isConnected("bot-1"), 5000);
    QVERIFY(!rig.hub->bot("bot-1")->connected);
    QVERIFY(rig.hub->bot("bot-1")->disconnectedAtMs > 0);
    // Sending now is NotConnected at once, not a timeout (seed lesson 9).
    auto after = rig.service->send("bot-1", CommandSpec::of(CommandKind::Ping), 60s);
    QVERIFY(after.isFinished());
    QCOMPARE(after.result().state, CommandState::NotConnected);
}

void TestHub::cancelReleasesWaiterAndTellsBot()
{
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    auto future = rig.service->send("bot-1", CommandSpec::of(CommandKind::Restart), 60s);
    const auto command = bot.readCommand();
    QVERIFY(command.has_value());
    const QString id = QString::fromStdString(command->command_id());
    QVERIFY(rig.service->cancel(id, "operator"));
    QVERIFY(future.isFinished());
    QCOMPARE(future.result().state, CommandState::Cancelled);
    std::optional<v1::HubMessage> message;
    do {
        message = bot.read();
    } while (message && !message->has_cancel());
    QVERIFY(message.has_value());
    QCOMPARE(message->cancel().command_id(), command->command_id());
    QCOMPARE(message->cancel().reason(), std::string("operator"));
    QVERIFY(!rig.service->cancel(id)); // once
}

void TestHub::fullQueueRefusesWithoutBlocking()
{
    HubOptions options;
    options.maxQueuedPerBot = 8;
    Rig rig(options);
    RawBot reader(rig.address()); // it reads into its inbox, but we flood faster than that
    QVERIFY(reader.hello("bot-1"));
    CommandSpec spec = CommandSpec::of(CommandKind::Custom);
    spec.customName = QStringLiteral("flood");
    spec.jsonPayload = QByteArray("{\"data\": \"") + QByteArray(16 * 1024, 'z') + "\"}";
    int refused = 0;
    for (int i = 0; i < 5000 && refused == 0; ++i) {
        auto f = rig.service->send("bot-1", spec, 60s);
        if (f.isFinished() && f.result().state == CommandState::Refused) {
            QVERIFY2(f.result().reason.contains("queue"), qPrintable(f.result().reason));
            ++refused;
        }
    }
    QVERIFY(refused > 0);
    QVERIFY(rig.hub->counters().queueFull > 0);
}

void TestHub::fanOutTalliesEveryOutcome()
{
    Rig rig;
    RawBot a(rig.address()), b(rig.address()), c(rig.address());
    QVERIFY(a.hello("bot-a"));
    QVERIFY(b.hello("bot-b"));
    QVERIFY(c.hello("bot-c"));
    const FanOut fan = rig.service->sendToMany({"bot-a", "bot-b", "bot-c", "bot-gone"},
                                               CommandSpec::of(CommandKind::Resume), 300ms);
    QCOMPARE(fan.futures.size(), 4);
    const auto ca = a.readCommand(), cb = b.readCommand();
    QVERIFY(ca && cb && c.readCommand());
    a.ack(ca->command_id());
    b.ack(cb->command_id(), false, "not paused");
    // bot-c stays silent: expires
    QVERIFY(QTest::qWaitFor([&] { return fan.summary.isFinished(); }, 5000));
    const FanOutSummary s = fan.summary.result();
    QCOMPARE(s.total, 4);
    QCOMPARE(s.acked, 1);
    QCOMPARE(s.rejected, 1);
    QCOMPARE(s.expired, 1);
    QCOMPARE(s.notConnected, 1);
    QCOMPARE(s.text(), QString("1/4 acked, 1 rejected, 1 expired, 1 not connected"));
}

void TestHub::invalidCustomJsonIsRefused()
{
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    CommandSpec spec = CommandSpec::of(CommandKind::Custom);
    spec.customName = QStringLiteral("calibrate");
    spec.jsonPayload = "{\"broken\": ";
    auto future = rig.service->send("bot-1", spec, 5s);
    QVERIFY(future.isFinished());
    QCOMPARE(future.result().state, CommandState::Refused);
    QVERIFY(future.result().reason.contains("JSON"));
    QVERIFY(!bot.readCommand(200ms).has_value()); // nothing went out
}

void TestHub::shutdownFailsPendingWithReason()
{
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    auto f1 = rig.service->send("bot-1", CommandSpec::of(CommandKind::Ping), 60s);
    auto f2 = rig.service->send("bot-1", CommandSpec::of(CommandKind::Ping), 60s);
    QVERIFY(bot.readCommand().has_value());
    rig.hub->stop(QStringLiteral("maintenance window"));
    QVERIFY(f1.isFinished() && f2.isFinished());
    QCOMPARE(f1.result().state, CommandState::Disconnected);
    QCOMPARE(f2.result().reason, QString("maintenance window"));
    const auto status = bot.waitClosed();
    QVERIFY(status.has_value());
    QCOMPARE(status->error_code(), grpc::StatusCode::UNAVAILABLE);
    QVERIFY(!rig.hub->isRunning());
    auto after = rig.service->send("bot-1", CommandSpec::of(CommandKind::Ping), 5s);
    QCOMPARE(after.result().state, CommandState::NotConnected);
}

void TestHub::customPayloadErrorsSayWhatAndWhere()
{
    CommandSpec spec = CommandSpec::of(CommandKind::Custom);
    spec.customName = QStringLiteral("rebalance");
    for (const char *fine : {"", "{}", " [1, 2]", "{\"a\": {\"b\": [true]}}"}) {
        spec.jsonPayload = fine;
        QVERIFY2(spec.validate().isEmpty(), fine);
    }
    for (const char *scalar : {"3", "\"text\"", "true", "null"}) {
        spec.jsonPayload = scalar;
        QVERIFY2(spec.validate().contains(QLatin1String("must be an object")), scalar);
    }
    spec.jsonPayload = "{\n  \"depth\": 3,\n  \"mode\": fast\n}";
    const QString problem = spec.validate();
    // Line 3 is `  "mode": fast`: Qt stops at or just past the bad word (columns 11..15).
    const auto where =
        QRegularExpression(QStringLiteral("at line (\\d+), column (\\d+)$")).match(problem);
    QVERIFY2(where.hasMatch(), qPrintable(problem));
    QCOMPARE(where.captured(1).toInt(), 3);
    QVERIFY2(where.captured(2).toInt() >= 11 && where.captured(2).toInt() <= 15,
             qPrintable(problem));
}

QTEST_GUILESS_MAIN(TestHub)
#include "tst_hub.moc"
