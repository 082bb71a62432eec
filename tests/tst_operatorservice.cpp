// The Operator API over real loopback gRPC, directly and through opctl run as a process.
#include "hubrig.h"
#include "opconsole/v1/operator.grpc.pb.h"
#include "opctlprocess.h"
#include "operatorservice.h"
#include "rawbot.h"

#include <QFile>
#include <QProcess>
#include <QTemporaryDir>
#include <QTest>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include <google/protobuf/util/time_util.h>

using namespace opconsole;
using namespace std::chrono;
using google::protobuf::util::TimeUtil;

namespace {

struct Rig : HubRig
{
    Rig()
    {
        api = std::make_unique<OperatorService>(*service, feed);
        api->attachTo(*hub);
        start();
        channel = grpc::CreateChannel(operatorAddress(), grpc::InsecureChannelCredentials());
        stub = v1::Operator::NewStub(channel);
    }
    ~Rig() { api.reset(); } // stops the hub first

    std::unique_ptr<OperatorService> api;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<v1::Operator::Stub> stub;
};

v1::SendCommandRequest ping(const std::string &bot, int timeoutMs)
{
    v1::SendCommandRequest request;
    request.set_bot_id(bot);
    request.mutable_command()->mutable_ping();
    *request.mutable_timeout() = TimeUtil::MillisecondsToDuration(timeoutMs);
    return request;
}

} // namespace

class TestOperatorService : public QObject
{
    Q_OBJECT

private slots:
    void opctlExitCodesTellOutcomesApart();
    void opctlCancelledAndRefused();
    void opctlUsageAndUnreachable();
    void opctlBotsAndFanOut();
    void sendCommandOverTheApi();
    void callerDeadlineCancelsTheCommand();
    void malformedRequestsAreInvalidArgument();
    void fanOutStreamsEachResultThenSummary();
    void watchSeesEveryTransition();
    void listCommandsFiltersAndPages();
    void outOfRangeValuesAreRefusedNotChanged();
    void hostileAckWithWatchOpenKeepsTheHubUp();
    void listCommandsPagesEndBeforeTheReceiveLimit();
    void stopEndsWaitersAndWatchersWithOutcomes();
    void opctlRefusesTimeoutsThatWouldOverflow();
    void watchWorksAfterTheHubStartsAgain();
    void refusedDuplicateCallNeverCancelsTheOriginal();
    void watchResumesWithNoGapOrDuplicate();
    void noWaitSendsAndFanOutIds();
    void aReplayTooBigForTheBacklogBecomesAResync();
    void botsThatComeWhileAWatchStartsAreNeverLost();
};

void TestOperatorService::opctlExitCodesTellOutcomesApart()
{
    Rig rig;
    QVERIFY(rig.started);
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    const QString hub = rig.hub->operatorAddress();

    Opctl acked({"--hub", hub, "send", "bot-1", "start", "--timeout", "10s"});
    auto command = bot.readCommand(10s);
    QVERIFY(command && command->has_start());
    bot.ack(command->command_id(), true, "started");
    QCOMPARE(acked.wait(), 0);
    QVERIFY(acked.out.contains("acked"));
    QVERIFY(acked.out.contains("started"));

    Opctl rejected({"--hub", hub, "send", "bot-1", "pause", "--timeout", "10s"});
    command = bot.readCommand(10s);
    QVERIFY(command.has_value());
    bot.ack(command->command_id(), false, "cannot pause", v1::ACK_ERROR_INVALID_STATE);
    QCOMPARE(rejected.wait(), 1);
    QVERIFY(rejected.out.contains("cannot pause"));

    Opctl expired({"--hub", hub, "send", "bot-1", "restart", "--timeout", "300ms"});
    QVERIFY(bot.readCommand(10s).has_value()); // and never answered
    QCOMPARE(expired.wait(), 2);
    QVERIFY(expired.out.contains("expired"));

    Opctl notConnected({"--hub", hub, "send", "nobody", "ping"});
    QCOMPARE(notConnected.wait(), 3);
    QVERIFY(notConnected.out.contains("not-connected"));

    // A bot id that looks like an option ("--all" would be a fan-out to every bot): after
    // "--", it is a bot id (what the console's Copy as opctl writes for such ids).
    RawBot dashed(rig.address());
    QVERIFY(dashed.hello("--all"));
    Opctl one({"--hub", hub, "send", "--timeout", "10s", "--", "--all", "ping"});
    command = dashed.readCommand(10s);
    QVERIFY(command && command->has_ping());
    dashed.ack(command->command_id(), true, "pong");
    QCOMPARE(one.wait(), 0);
    QVERIFY(!bot.readCommand(300ms).has_value()); // bot-1 got nothing

    Opctl json({"--hub", hub, "--json", "send", "bot-1", "config", "--set", "depth=3", "--set",
                "mode=fast", "--version", "7"});
    command = bot.readCommand(10s);
    QVERIFY(command && command->has_config_update());
    QCOMPARE(command->config_update().values().at("depth"), std::string("3"));
    QCOMPARE(command->config_update().version(), 7u);
    bot.ack(command->command_id(), true, "config v7 applied");
    QCOMPARE(json.wait(), 0);
    QVERIFY(json.out.trimmed().startsWith("{"));
    QVERIFY(json.out.contains("\"outcome\":\"OUTCOME_ACKED\""));
}

void TestOperatorService::opctlCancelledAndRefused()
{
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    const QString hub = rig.hub->operatorAddress();
    Opctl waiting({"--hub", hub, "send", "bot-1", "ping", "--timeout", "30s", "--id", "fixed-1"});
    QVERIFY(bot.readCommand(10s).has_value());
    Opctl cancel({"--hub", hub, "cancel", "fixed-1", "--reason", "changed my mind"});
    QCOMPARE(cancel.wait(), 0);
    QCOMPARE(waiting.wait(), 4);
    QVERIFY(waiting.out.contains("changed my mind"));
    Opctl again({"--hub", hub, "cancel", "fixed-1"});
    QCOMPARE(again.wait(), 4); // already finished

    Opctl duplicate({"--hub", hub, "send", "bot-1", "ping", "--id", "fixed-1"});
    QCOMPARE(duplicate.wait(), 5);
    QVERIFY(duplicate.out.contains("duplicate command id"));
}

void TestOperatorService::opctlUsageAndUnreachable()
{
    // A token never goes in plaintext beyond this machine; a flag takes no value.
    {
        QTemporaryDir dir;
        QFile token(dir.filePath("token"));
        QVERIFY(token.open(QIODevice::WriteOnly));
        token.write("opc_secret");
        token.close();
        token.setPermissions(QFile::ReadOwner | QFile::WriteOwner);
        Opctl remote({"--hub", "192.0.2.1:50052", "--token-file", token.fileName(), "whoami"});
        QCOMPARE(remote.wait(), 64);
        QVERIFY2(remote.err.contains("in plaintext"), qPrintable(remote.err));
        Opctl falseFlag({"--hub", "192.0.2.1:50052", "--token-file", token.fileName(),
                         "--insecure=false", "whoami"});
        QCOMPARE(falseFlag.wait(), 64);
        QVERIFY2(falseFlag.err.contains("takes no value"), qPrintable(falseFlag.err));
    }
    Opctl noArgs({});
    QCOMPARE(noArgs.wait(), 64);
    Opctl badCommand({"send", "bot-1", "explode"});
    QCOMPARE(badCommand.wait(), 64);
    QVERIFY(badCommand.err.contains("unknown command"));
    Opctl badTimeout({"send", "bot-1", "ping", "--timeout", "soon"});
    QCOMPARE(badTimeout.wait(), 64);
    Opctl help({"send", "--help"});
    QCOMPARE(help.wait(), 0);
    QVERIFY(help.out.contains("--connect-timeout"));
    Opctl mainHelp({"--help"});
    QCOMPARE(mainHelp.wait(), 0);
    QVERIFY(mainHelp.out.contains("exit codes"));
    Opctl unreachable({"--hub", "127.0.0.1:1", "bots"});
    QCOMPARE(unreachable.wait(), 69);
    QVERIFY(unreachable.err.contains("cannot reach"));

    Rig rig;
    Opctl invalid({"--hub", rig.hub->operatorAddress(), "send", "bot-1", "custom", "--name", "x",
                   "--json-payload", "{broken"});
    QCOMPARE(invalid.wait(), 64); // INVALID_ARGUMENT from the hub
    QVERIFY(invalid.err.contains("JSON"));
}

void TestOperatorService::opctlBotsAndFanOut()
{
    Rig rig;
    RawBot a(rig.address()), b(rig.address());
    QVERIFY(a.hello("bot-a", {{"region", "eu"}}));
    QVERIFY(b.hello("bot-b", {{"region", "us"}}));
    const QString hub = rig.hub->operatorAddress();
    Opctl bots({"--hub", hub, "bots", "--label", "region=eu"});
    QCOMPARE(bots.wait(), 0);
    QVERIFY(bots.out.contains("bot-a"));
    QVERIFY(!bots.out.contains("bot-b"));

    Opctl fan({"--hub", hub, "send", "--all", "stop", "--timeout", "10s", "--reason", "night",
               "--fan-out", "night-stop-1"});
    const auto ca = a.readCommand(10s), cb = b.readCommand(10s);
    QVERIFY(ca && cb);
    QCOMPARE(ca->stop().reason(), std::string("night"));
    a.ack(ca->command_id(), true, "stopped");
    b.ack(cb->command_id(), false, "busy", v1::ACK_ERROR_BUSY);
    QCOMPARE(fan.wait(), 1); // the most severe outcome: rejected
    QVERIFY2(fan.out.contains("summary (fan-out night-stop-1): 1/2 acked, 1 rejected"),
             qPrintable(fan.out));
    // The fan-out's commands by its id; the id is in each line.
    Opctl ofFan({"--hub", hub, "commands", "--fan-out", "night-stop-1"});
    QCOMPARE(ofFan.wait(), 0);
    QCOMPARE(ofFan.out.count("(fan-out night-stop-1)"), 2);
    Opctl badFan({"--hub", hub, "send", "--all", "ping", "--fan-out", "bad\tid"});
    QCOMPARE(badFan.wait(), 64);

    // The console's filters by name: problems are the finished commands but the acked ones.
    Opctl problems({"--hub", hub, "commands", "--state", "problems"});
    QCOMPARE(problems.wait(), 0);
    QVERIFY2(problems.out.contains("bot-b") && !problems.out.contains("bot-a"),
             qPrintable(problems.out));
    Opctl done({"--hub", hub, "commands", "--state", "done"});
    QCOMPARE(done.wait(), 0);
    QVERIFY(done.out.contains("bot-a") && done.out.contains("bot-b"));
    Opctl unknown({"--hub", hub, "commands", "--state", "sideways"});
    QCOMPARE(unknown.wait(), 64);
    QVERIFY(unknown.err.contains("unknown state 'sideways'"));
}

void TestOperatorService::sendCommandOverTheApi()
{
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    v1::SendCommandResponse response;
    grpc::Status status;
    std::thread caller([&] {
        grpc::ClientContext context;
        status = rig.stub->SendCommand(&context, ping("bot-1", 5000), &response);
    });
    const auto command = bot.readCommand(10s);
    QVERIFY(command.has_value());
    bot.ack(command->command_id(), true, "pong");
    caller.join();
    QVERIFY(status.ok());
    QCOMPARE(response.record().outcome(), v1::OUTCOME_ACKED);
    QCOMPARE(response.record().ack().message(), std::string("pong"));
    QVERIFY(response.record().has_latency());

    // An outcome is a normal response, not an error status.
    grpc::ClientContext context;
    status = rig.stub->SendCommand(&context, ping("nobody", 5000), &response);
    QVERIFY(status.ok());
    QCOMPARE(response.record().outcome(), v1::OUTCOME_NOT_CONNECTED);
}

void TestOperatorService::callerDeadlineCancelsTheCommand()
{
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    grpc::ClientContext context;
    context.set_deadline(system_clock::now() + 300ms);
    v1::SendCommandResponse response;
    auto request = ping("bot-1", 60'000);
    request.mutable_command()->set_command_id("short-caller");
    const auto status = rig.stub->SendCommand(&context, request, &response);
    QCOMPARE(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
    // Not leaked: cancelled in the registry, and the bot was told.
    QTRY_COMPARE_WITH_TIMEOUT(int(rig.registry.find("short-caller")->state),
                              int(CommandState::Cancelled), 5000);
    QCOMPARE(rig.registry.pendingCount(), 0);
    bool told = false;
    for (int i = 0; i < 5 && !told; ++i) {
        const auto message = bot.read(2s);
        told = message && message->has_cancel() && message->cancel().command_id() == "short-caller";
    }
    QVERIFY(told);
}

void TestOperatorService::malformedRequestsAreInvalidArgument()
{
    Rig rig;
    auto expectInvalid = [&](v1::SendCommandRequest request, const char *what) {
        grpc::ClientContext context;
        v1::SendCommandResponse response;
        const auto status = rig.stub->SendCommand(&context, request, &response);
        QVERIFY2(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT, what);
        QVERIFY2(!status.error_message().empty(), what);
    };
    expectInvalid(ping("", 1000), "empty bot id");
    auto noCommand = ping("bot-1", 1000);
    noCommand.clear_command();
    expectInvalid(noCommand, "no command");
    expectInvalid(ping("bot-1", 0), "zero timeout");
    expectInvalid(ping("bot-1", CommandRegistry::DefaultMaxTimeout.count() + 1),
                  "over-limit timeout");
    auto noAction = ping("bot-1", 1000);
    noAction.mutable_command()->clear_ping();
    expectInvalid(noAction, "no action");
    auto badJson = ping("bot-1", 1000);
    badJson.mutable_command()->mutable_custom()->set_name("x");
    badJson.mutable_command()->mutable_custom()->set_json_payload("{nope");
    expectInvalid(badJson, "bad JSON");

    v1::SendToManyRequest fan;
    fan.set_all(true);
    fan.add_bot_ids("bot-1");
    fan.mutable_command()->mutable_ping();
    *fan.mutable_timeout() = TimeUtil::MillisecondsToDuration(1000);
    grpc::ClientContext context;
    auto reader = rig.stub->SendToMany(&context, fan);
    v1::SendToManyEvent event;
    QVERIFY(!reader->Read(&event));
    QCOMPARE(reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    QCOMPARE(rig.registry.counters().registered, 0u); // nothing was registered

    // ListCommands' fan-out filter is an id like any other: too long, a control character.
    for (const std::string &bad : {std::string(200, 'f'), std::string("f-\x07")}) {
        v1::ListCommandsRequest list;
        list.set_fan_out_id(bad);
        v1::ListCommandsResponse page;
        grpc::ClientContext listContext;
        QCOMPARE(rig.stub->ListCommands(&listContext, list, &page).error_code(),
                 grpc::StatusCode::INVALID_ARGUMENT);
    }
}

void TestOperatorService::fanOutStreamsEachResultThenSummary()
{
    Rig rig;
    RawBot a(rig.address()), b(rig.address()), c(rig.address());
    QVERIFY(a.hello("bot-a"));
    QVERIFY(b.hello("bot-b"));
    QVERIFY(c.hello("bot-c"));
    v1::SendToManyRequest request;
    for (const char *id : {"bot-a", "bot-b", "bot-c", "bot-gone"})
        request.add_bot_ids(id);
    request.mutable_command()->mutable_resume();
    *request.mutable_timeout() = TimeUtil::MillisecondsToDuration(500);
    std::vector<v1::SendToManyEvent> events;
    std::thread caller([&] {
        grpc::ClientContext context;
        auto reader = rig.stub->SendToMany(&context, request);
        v1::SendToManyEvent event;
        while (reader->Read(&event))
            events.push_back(event);
        reader->Finish();
    });
    const auto ca = a.readCommand(10s), cb = b.readCommand(10s);
    QVERIFY(ca && cb && c.readCommand(10s));
    a.ack(ca->command_id());
    b.ack(cb->command_id(), false, "not paused");
    caller.join();
    QCOMPARE(events.size(), size_t(5));
    for (size_t i = 0; i < 4; ++i)
        QVERIFY(events[i].has_result());
    QVERIFY(events[4].has_summary());
    QCOMPARE(events[4].summary().text(),
             std::string("1/4 acked, 1 rejected, 1 expired, 1 not connected"));
}

void TestOperatorService::watchSeesEveryTransition()
{
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    grpc::ClientContext context;
    auto reader = rig.stub->Watch(&context, v1::WatchRequest());
    QTRY_COMPARE_WITH_TIMEOUT(rig.api->watcherCount(), 1, 5000);
    constexpr int n = 20;
    QList<QFuture<CommandOutcome>> futures;
    for (int i = 0; i < n; ++i)
        futures.append(rig.service->send("bot-1", CommandSpec::of(CommandKind::Ping), 10s));
    for (int i = 0; i < n; ++i) {
        const auto command = bot.readCommand(10s);
        QVERIFY(command.has_value());
        bot.ack(command->command_id(), i % 2 == 0, "done");
    }
    QVERIFY(QTest::qWaitFor(
        [&] {
            return std::all_of(futures.begin(), futures.end(),
                               [](auto &f) { return f.isFinished(); });
        },
        10'000));
    // Collect on a thread while the event loop here delivers the registry's batches.
    std::map<std::string, std::set<std::string>> seen;
    std::atomic<bool> complete{false};
    std::thread watcher([&] {
        v1::WatchEvent event;
        while (!complete && reader->Read(&event)) {
            if (event.has_command())
                seen[event.command().command_id()].insert(event.event());
            size_t full = 0;
            for (const auto &[id, events] : seen)
                full += events.count("registered") && events.count("sent") &&
                        (events.count("acked") || events.count("rejected"));
            complete = full == size_t(n);
        }
    });
    QVERIFY(QTest::qWaitFor([&] { return complete.load(); }, 10'000));
    context.TryCancel();
    watcher.join();
    reader->Finish();
    QCOMPARE(seen.size(), size_t(n));
    int acked = 0;
    for (const auto &[id, events] : seen)
        acked += events.count("acked");
    QCOMPARE(acked, n / 2);
}

void TestOperatorService::listCommandsFiltersAndPages()
{
    Rig rig;
    for (int i = 0; i < 25; ++i)
        rig.service->send("nobody", CommandSpec::of(CommandKind::Ping), 5s); // not connected
    rig.registry.registerCommand("pending-1", "bot-x", 60s, "ping");
    v1::ListCommandsRequest request;
    request.add_outcomes(v1::OUTCOME_NOT_CONNECTED);
    request.set_page_size(10);
    int total = 0, pages = 0;
    do {
        grpc::ClientContext context;
        v1::ListCommandsResponse response;
        QVERIFY(rig.stub->ListCommands(&context, request, &response).ok());
        total += response.commands_size();
        ++pages;
        for (const auto &r : response.commands())
            QCOMPARE(r.outcome(), v1::OUTCOME_NOT_CONNECTED);
        request.set_page_token(response.next_page_token());
    } while (!request.page_token().empty() && pages < 10);
    QCOMPARE(total, 25);
    QCOMPARE(pages, 3);

    v1::ListCommandsRequest pending;
    pending.add_outcomes(v1::OUTCOME_PENDING);
    grpc::ClientContext context;
    v1::ListCommandsResponse response;
    QVERIFY(rig.stub->ListCommands(&context, pending, &response).ok());
    QCOMPARE(response.commands_size(), 1);
    QCOMPARE(response.commands(0).command_id(), std::string("pending-1"));
}

void TestOperatorService::outOfRangeValuesAreRefusedNotChanged()
{
    Rig rig;
    auto expectInvalid = [&](v1::SendCommandRequest request, const char *what) {
        grpc::ClientContext context;
        v1::SendCommandResponse response;
        const auto status = rig.stub->SendCommand(&context, request, &response);
        QVERIFY2(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT, what);
        QVERIFY2(!status.error_message().empty(), what);
    };
    auto huge = ping("bot-1", 1000);
    huge.mutable_timeout()->set_seconds((int64_t(1) << 61) + 1); // used to wrap to 1 s
    expectInvalid(huge, "timeout of 2^61+1 s");
    auto mixedSigns = ping("bot-1", 1000);
    mixedSigns.mutable_connect_timeout()->set_seconds(5);
    mixedSigns.mutable_connect_timeout()->set_nanos(-1);
    expectInvalid(mixedSigns, "connect_timeout with mixed signs");
    auto longConnect = ping("bot-1", 1000);
    *longConnect.mutable_connect_timeout() = TimeUtil::SecondsToDuration(2 * 24 * 3600);
    expectInvalid(longConnect, "connect_timeout over the cap");
    expectInvalid(ping("x\"\n2026-11-29T12:00:00.000Z bot_connected bot=\"forged\"", 1000),
                  "newline in bot_id (log forging)");
    expectInvalid(ping("bot\u0085x", 1000), "NEL in bot_id");
    auto badId = ping("bot-1", 1000);
    badId.mutable_command()->set_command_id("c\u009b1");
    expectInvalid(badId, "CSI in command_id");

    grpc::ClientContext listContext;
    v1::ListCommandsRequest list;
    list.mutable_since()->set_seconds(300000000000);
    v1::ListCommandsResponse listed;
    QCOMPARE(rig.stub->ListCommands(&listContext, list, &listed).error_code(),
             grpc::StatusCode::INVALID_ARGUMENT);
    grpc::ClientContext cancelContext;
    v1::CancelCommandRequest cancel;
    cancel.set_command_id("c-1");
    cancel.set_reason(std::string(10000, 'r'));
    v1::CancelCommandResponse cancelled;
    QCOMPARE(rig.stub->CancelCommand(&cancelContext, cancel, &cancelled).error_code(),
             grpc::StatusCode::INVALID_ARGUMENT);
    QCOMPARE(rig.registry.counters().registered, 0u); // nothing got through
}

void TestOperatorService::hostileAckWithWatchOpenKeepsTheHubUp()
{
    // A bot acks with a year-9500+ timestamp while a Watch is open: the ack counts, the
    // Watch sees it, ListCommands works, and the hub stops cleanly.
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    grpc::ClientContext watchContext;
    auto watch = rig.stub->Watch(&watchContext, v1::WatchRequest());
    QTRY_COMPARE_WITH_TIMEOUT(rig.api->watcherCount(), 1, 5000);
    std::atomic<bool> sawAck{false};
    std::thread watcher([&] {
        v1::WatchEvent event;
        while (watch->Read(&event)) {
            if (event.event() == "acked")
                sawAck = true;
        }
    });
    v1::SendCommandResponse response;
    grpc::Status status;
    std::thread caller([&] {
        grpc::ClientContext context;
        status = rig.stub->SendCommand(&context, ping("bot-1", 10'000), &response);
    });
    const auto command = bot.readCommand(10s);
    QVERIFY(command.has_value());
    v1::BotMessage ack;
    ack.mutable_ack()->set_command_id(command->command_id());
    ack.mutable_ack()->set_success(true);
    ack.mutable_ack()->mutable_received_at()->set_seconds(300000000000);
    bot.send(ack);
    caller.join();
    QVERIFY2(status.ok(), status.error_message().c_str());
    QCOMPARE(response.record().outcome(), v1::OUTCOME_ACKED);
    QVERIFY(QTest::qWaitFor([&] { return sawAck.load(); }, 10'000));
    grpc::ClientContext listContext;
    v1::ListCommandsResponse listed;
    QVERIFY(rig.stub->ListCommands(&listContext, v1::ListCommandsRequest(), &listed).ok());
    QCOMPARE(listed.commands_size(), 1);
    rig.api.reset(); // stops the hub: the Watch ends, nothing hangs
    watcher.join();
}

void TestOperatorService::listCommandsPagesEndBeforeTheReceiveLimit()
{
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    constexpr int n = 80; // 80 x 60 KiB results: more than a 4 MiB response
    QList<QFuture<CommandOutcome>> futures;
    for (int i = 0; i < n; ++i) {
        futures.append(rig.service->send("bot-1", CommandSpec::of(CommandKind::Ping), 30s));
        const auto command = bot.readCommand(10s);
        QVERIFY(command.has_value());
        v1::BotMessage ack;
        ack.mutable_ack()->set_command_id(command->command_id());
        ack.mutable_ack()->set_success(true);
        ack.mutable_ack()->set_result(std::string(60 * 1024, 'r'));
        bot.send(ack);
    }
    QVERIFY(QTest::qWaitFor([&] { return futures.constLast().isFinished(); }, 10'000));
    std::set<std::string> ids;
    std::string token;
    int pages = 0;
    do {
        grpc::ClientContext context;
        v1::ListCommandsRequest request;
        request.set_page_size(1000);
        request.set_page_token(token);
        v1::ListCommandsResponse response;
        const auto status = rig.stub->ListCommands(&context, request, &response);
        QVERIFY2(status.ok(), status.error_message().c_str());
        QVERIFY(response.ByteSizeLong() < 4u * 1024 * 1024);
        for (const auto &record : response.commands())
            QVERIFY(ids.insert(record.command_id()).second); // no duplicate across pages
        token = response.next_page_token();
        ++pages;
    } while (!token.empty() && pages < 100);
    QCOMPARE(int(ids.size()), n);
    QVERIFY(pages >= 2);
}

void TestOperatorService::stopEndsWaitersAndWatchersWithOutcomes()
{
    Rig rig;
    // Callers waiting for a bot that never comes, and watchers.
    constexpr int waiters = 5;
    std::vector<std::thread> threads;
    std::vector<v1::SendCommandResponse> responses(waiters);
    std::vector<grpc::Status> statuses(waiters);
    for (int i = 0; i < waiters; ++i) {
        threads.emplace_back([&, i] {
            grpc::ClientContext context;
            auto request = ping("never-" + std::to_string(i), 10'000);
            *request.mutable_connect_timeout() = TimeUtil::SecondsToDuration(60);
            statuses[i] = rig.stub->SendCommand(&context, request, &responses[i]);
        });
    }
    constexpr int watchers = 3;
    std::vector<grpc::Status> watchStatus(watchers);
    std::vector<int> watchEvents(watchers, 0);
    for (int i = 0; i < watchers; ++i) {
        threads.emplace_back([&, i] {
            grpc::ClientContext context;
            auto reader = rig.stub->Watch(&context, v1::WatchRequest());
            v1::WatchEvent event;
            while (reader->Read(&event)) {
                if (event.event() == "not_connected")
                    ++watchEvents[i];
            }
            watchStatus[i] = reader->Finish();
        });
    }
    QTRY_COMPARE_WITH_TIMEOUT(rig.registry.pendingCount(), waiters, 10'000);
    QTRY_COMPARE_WITH_TIMEOUT(rig.api->watcherCount(), watchers, 10'000);
    const auto started = steady_clock::now();
    rig.hub->stop(QStringLiteral("hub shutting down"));
    const auto took = steady_clock::now() - started;
    for (auto &t : threads)
        t.join();
    qInfo("stop with %d waiters and %d watchers took %.1f ms", waiters, watchers,
          double(duration_cast<microseconds>(took).count()) / 1000);
    for (int i = 0; i < waiters; ++i) {
        QVERIFY2(statuses[i].ok(),
                 statuses[i].error_message().c_str()); // an outcome, not 'cancelled'
        QCOMPARE(responses[i].record().outcome(), v1::OUTCOME_NOT_CONNECTED);
        QCOMPARE(responses[i].record().reason(), std::string("hub shutting down"));
    }
    for (int i = 0; i < watchers; ++i) {
        QCOMPARE(watchStatus[i].error_code(), grpc::StatusCode::UNAVAILABLE);
        QCOMPARE(watchEvents[i], waiters); // every outcome reached every watcher first
    }
}

void TestOperatorService::opctlRefusesTimeoutsThatWouldOverflow()
{
    Rig rig;
    Opctl huge({"--hub", rig.hub->operatorAddress(), "send", "b", "ping", "--timeout", "1e13"});
    QCOMPARE(huge.wait(), 64);
    QVERIFY2(huge.err.contains("over a year"), qPrintable(huge.err));
    Opctl overCap({"--hub", rig.hub->operatorAddress(), "send", "b", "ping", "--timeout", "2000m"});
    QCOMPARE(overCap.wait(), 64); // the hub's INVALID_ARGUMENT: over its 24 h cap
    QVERIFY2(overCap.err.contains("limit"), qPrintable(overCap.err));
}

void TestOperatorService::watchWorksAfterTheHubStartsAgain()
{
    Rig rig;
    rig.hub->stop();
    QVERIFY(rig.hub->start());
    auto stub = v1::Operator::NewStub(
        grpc::CreateChannel(rig.operatorAddress(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    auto reader = stub->Watch(&context, v1::WatchRequest());
    QTRY_COMPARE_WITH_TIMEOUT(rig.api->watcherCount(), 1, 5000);
    rig.service->send("nobody", CommandSpec::of(CommandKind::Ping), 1s); // not connected
    v1::WatchEvent event;
    std::atomic<bool> read{false}, gotEvent{false};
    std::thread reading([&] {
        gotEvent = reader->Read(&event);
        read = true;
    });
    // This thread delivers the registry's batches to the Watch: wait here, not in join().
    const bool done = QTest::qWaitFor([&] { return read.load(); }, 10'000);
    context.TryCancel();
    reading.join();
    QVERIFY(done);
    QVERIFY2(gotEvent, "the Watch ended at once: still refused after restart");
}

void TestOperatorService::refusedDuplicateCallNeverCancelsTheOriginal()
{
    // A careless retry reuses a pending command_id with a short deadline: it is refused, and
    // its giving up must not cancel the original caller's command.
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    auto original =
        rig.service->sendWithId("dup-1", "bot-1", CommandSpec::of(CommandKind::Ping), 30s);
    QVERIFY(bot.readCommand().has_value());
    auto retry = ping("bot-1", 30'000);
    retry.mutable_command()->set_command_id("dup-1");
    for (int i = 0; i < 20; ++i) {
        grpc::ClientContext context;
        context.set_deadline(system_clock::now() + milliseconds(1 + i % 5));
        v1::SendCommandResponse response;
        rig.stub->SendCommand(&context, retry, &response);
    }
    QTest::qWait(200); // let any cancel the calls might have caused land
    QCOMPARE(rig.registry.find("dup-1")->state, CommandState::Pending);
    bot.ack("dup-1");
    QVERIFY(QTest::qWaitFor([&] { return original.isFinished(); }, 5000));
    QCOMPARE(original.result().state, CommandState::Acked);
}

namespace {

// Reads a Watch on its own thread (this thread must keep delivering the registry's batches).
struct WatchReader
{
    WatchReader(v1::Operator::Stub &stub, const v1::WatchRequest &request)
    {
        reader = stub.Watch(&context, request);
        thread = std::thread([this] {
            v1::WatchEvent event;
            while (reader->Read(&event)) {
                std::lock_guard lock(mutex);
                events.push_back(event);
            }
        });
    }
    ~WatchReader() { end(); }
    void end()
    {
        if (!thread.joinable())
            return;
        context.TryCancel();
        thread.join();
        reader->Finish();
    }
    std::vector<v1::WatchEvent> copy()
    {
        std::lock_guard lock(mutex);
        return events;
    }
    // Waits until an event named `name` arrived; its index, or -1.
    int waitFor(const std::string &name, int ms = 10'000)
    {
        int found = -1;
        (void)QTest::qWaitFor(
            [&] {
                std::lock_guard lock(mutex);
                for (size_t i = 0; i < events.size(); ++i)
                    if (events[i].event() == name) {
                        found = int(i);
                        return true;
                    }
                return false;
            },
            ms);
        return found;
    }
    // The change numbers of the command events after index `from`.
    std::vector<quint64> changesAfter(int from)
    {
        std::lock_guard lock(mutex);
        std::vector<quint64> out;
        for (size_t i = size_t(from) + 1; i < events.size(); ++i)
            if (events[i].has_command())
                out.push_back(events[i].command().change());
        return out;
    }

    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReader<v1::WatchEvent>> reader;
    std::thread thread;
    std::mutex mutex;
    std::vector<v1::WatchEvent> events;
};

} // namespace

void TestOperatorService::watchResumesWithNoGapOrDuplicate()
{
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    auto traffic = [&](int n) {
        QList<QFuture<CommandOutcome>> futures;
        for (int i = 0; i < n; ++i)
            futures.append(rig.service->send("bot-1", CommandSpec::of(CommandKind::Ping), 10s));
        for (int i = 0; i < n; ++i) {
            const auto command = bot.readCommand(10s);
            if (!command)
                return false;
            bot.ack(command->command_id(), true, "ok");
        }
        return QTest::qWaitFor(
            [&] {
                return std::all_of(futures.begin(), futures.end(),
                                   [](auto &f) { return f.isFinished(); });
            },
            10'000);
    };
    QVERIFY(traffic(5)); // before anyone watches: in the snapshot only
    QTRY_COMPARE_WITH_TIMEOUT(rig.feed.lastChange(), quint64(15), 10'000);

    v1::WatchRequest first;
    first.set_snapshot(true);
    auto one = std::make_unique<WatchReader>(*rig.stub, first);
    const int end = one->waitFor("snapshot_end");
    QVERIFY(end >= 0);
    const v1::WatchEvent endEvent = one->copy()[size_t(end)];
    const quint64 feedId = endEvent.feed_id();
    QVERIFY(feedId != 0);
    QCOMPARE(endEvent.change(), rig.feed.lastChange());
    QVERIFY(traffic(10)); // 30 changes: registered, sent, acked each
    QTRY_COMPARE_WITH_TIMEOUT(one->changesAfter(end).size(), size_t(30), 10'000);
    one->end();
    // The console got part of it, then lost its connection: it resumes from what it saw.
    const std::vector<quint64> seenByOne = one->changesAfter(end);
    const quint64 resumeAfter = seenByOne[17];
    QVERIFY(traffic(10));
    QTRY_COMPARE_WITH_TIMEOUT(rig.feed.lastChange(), endEvent.change() + 60, 10'000);

    v1::WatchRequest again;
    again.set_resume_after(resumeAfter);
    again.set_feed_id(feedId);
    WatchReader two(*rig.stub, again);
    const int resumed = two.waitFor("resumed");
    QVERIFY(resumed >= 0);
    QCOMPARE(two.copy()[size_t(resumed)].change(), resumeAfter);
    QVERIFY(two.copy()[0].event() == "snapshot_bot"); // the fleet, then the feed
    const quint64 last = rig.feed.lastChange();
    QTRY_COMPARE_WITH_TIMEOUT(two.changesAfter(resumed).size(), size_t(last - resumeAfter), 10'000);
    const std::vector<quint64> replay = two.changesAfter(resumed);
    for (size_t i = 0; i < replay.size(); ++i)
        QCOMPARE(replay[i], resumeAfter + 1 + i); // no gap, no duplicate, in order
    // And it keeps following live changes after the replay.
    QVERIFY(traffic(1));
    QTRY_COMPARE_WITH_TIMEOUT(two.changesAfter(resumed).size(), size_t(last - resumeAfter + 3),
                              10'000);
    QCOMPARE(two.changesAfter(resumed).back(), last + 3);
    two.end();

    // Another run's position, or one the hub never reached: resync, then a full snapshot.
    for (const auto &[feed, after] :
         {std::pair{feedId ^ 2, resumeAfter}, std::pair{feedId, last + 1000}}) {
        v1::WatchRequest stale;
        stale.set_resume_after(after);
        stale.set_feed_id(feed);
        WatchReader three(*rig.stub, stale);
        const int snapshotEnd = three.waitFor("snapshot_end");
        QVERIFY(snapshotEnd >= 0);
        const std::vector<v1::WatchEvent> events = three.copy();
        QCOMPARE(events[0].event(), std::string("resync"));
        QCOMPARE(events[0].feed_id(), feedId);
        const auto commands =
            std::count_if(events.begin(), events.begin() + snapshotEnd,
                          [](const auto &e) { return e.event() == "snapshot_command"; });
        QCOMPARE(commands, 26);
    }
}

void TestOperatorService::noWaitSendsAndFanOutIds()
{
    Rig rig;
    RawBot a(rig.address()), b(rig.address());
    QVERIFY(a.hello("bot-a"));
    QVERIFY(b.hello("bot-b"));
    // no_wait: the answer comes at once with the pending record; the call's end never
    // cancels the command.
    v1::SendCommandRequest one = ping("bot-a", 30'000);
    one.set_no_wait(true);
    v1::SendCommandResponse oneResponse;
    {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + 5s);
        QVERIFY(rig.stub->SendCommand(&context, one, &oneResponse).ok());
    }
    QCOMPARE(oneResponse.record().outcome(), v1::OUTCOME_PENDING);
    const QString id = QString::fromStdString(oneResponse.record().command_id());
    QVERIFY(a.readCommand(5s).has_value());
    QCOMPARE(rig.registry.find(id)->state, CommandState::Pending);

    v1::SendToManyRequest many;
    many.add_bot_ids("bot-a");
    many.add_bot_ids("bot-b");
    many.mutable_command()->mutable_restart();
    *many.mutable_timeout() = TimeUtil::MillisecondsToDuration(30'000);
    many.set_fan_out_id("f-console-1");
    many.set_no_wait(true);
    std::vector<v1::SendToManyEvent> events;
    {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + 5s);
        auto reader = rig.stub->SendToMany(&context, many);
        v1::SendToManyEvent event;
        while (reader->Read(&event))
            events.push_back(event);
        QVERIFY(reader->Finish().ok());
    }
    QCOMPARE(events.size(), size_t(1));
    QCOMPARE(events[0].summary().fan_out_id(), std::string("f-console-1"));
    QCOMPARE(events[0].summary().total(), 2);
    QCOMPARE(events[0].summary().pending(), 2);

    // ListCommands by fan-out, and the feed's tally.
    v1::ListCommandsRequest list;
    list.set_fan_out_id("f-console-1");
    v1::ListCommandsResponse page;
    {
        grpc::ClientContext context;
        QVERIFY(rig.stub->ListCommands(&context, list, &page).ok());
    }
    QCOMPARE(page.commands_size(), 2);
    for (const auto &record : page.commands())
        QCOMPARE(record.fan_out_id(), std::string("f-console-1"));
    QTRY_VERIFY_WITH_TIMEOUT(rig.feed.fanOut("f-console-1").has_value(), 5000);
    QCOMPARE(rig.feed.fanOut("f-console-1")->total, 2);

    // An id is reserved before anything registers: two sends with one new id, back to back
    // (before the feed has seen either), cannot both pass.
    for (int i = 0; i < 2; ++i) {
        many.set_fan_out_id("f-back-to-back");
        grpc::ClientContext context;
        auto reader = rig.stub->SendToMany(&context, many);
        v1::SendToManyEvent event;
        while (reader->Read(&event)) {
        }
        QCOMPARE(reader->Finish().error_code(),
                 i == 0 ? grpc::StatusCode::OK : grpc::StatusCode::INVALID_ARGUMENT);
    }
    // The same fan-out id again, and a malformed one: refused.
    for (const std::string &bad : {std::string("f-console-1"), std::string("f\x1b[2J")}) {
        many.set_fan_out_id(bad);
        grpc::ClientContext context;
        auto reader = rig.stub->SendToMany(&context, many);
        v1::SendToManyEvent event;
        while (reader->Read(&event)) {
        }
        QCOMPARE(reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    }
    QCOMPARE(rig.registry.pendingCount(), 5);
}

void TestOperatorService::aReplayTooBigForTheBacklogBecomesAResync()
{
    // Review finding: 1,500 acks with 60 KB results after the client's position overflowed
    // the Watch's 64 MB backlog on every resume: the console never re-attached.
    Rig rig;
    // One old command still pending (second review: pending ones must come first, whatever
    // the newer finished ones weigh).
    rig.registry.trackCommand(QStringLiteral("old-pending"), QStringLiteral("bot-1"), 600s);
    QTRY_COMPARE_WITH_TIMEOUT(rig.feed.lastChange(), rig.registry.lastChange(), 5000);
    const quint64 position = rig.feed.lastChange();
    CommandAckData big;
    big.success = true;
    big.result = QByteArray(60'000, 'r');
    for (int i = 0; i < 1500; ++i) {
        const QString id = QStringLiteral("big-%1").arg(i);
        rig.registry.trackCommand(id, QStringLiteral("bot-1"), 30s);
        rig.registry.resolveCommand(id, QStringLiteral("bot-1"), big);
    }
    QTRY_COMPARE_WITH_TIMEOUT(rig.feed.lastChange(), position + 3000, 10'000);
    // (1,500 registrations and 1,500 acks after the position)
    v1::WatchRequest resume;
    resume.set_resume_after(position == 0 ? 1 : position);
    resume.set_feed_id(rig.feed.feedId());
    WatchReader watch(*rig.stub, resume);
    const int end = watch.waitFor("snapshot_end", 20'000);
    QVERIFY(end >= 0);
    const std::vector<v1::WatchEvent> events = watch.copy();
    QCOMPARE(events[0].event(), std::string("resync"));
    // Cut to the budget: fewer than all 1,500 records, and said so.
    const auto records = std::count_if(events.begin(), events.begin() + end,
                                       [](const auto &e) { return e.has_command(); });
    QVERIFY(records > 100 && records < 1500);
    QVERIFY(std::any_of(events.begin(), events.begin() + end, [](const auto &e) {
        return e.has_command() && e.command().command_id() == "old-pending";
    }));
    QVERIFY(events[size_t(end)].complete()); // every pending command is in it
    watch.end();
}

void TestOperatorService::botsThatComeWhileAWatchStartsAreNeverLost()
{
    // Review finding: a bot that said Hello while a Watch built its snapshot was in neither the
    // snapshot nor an event. Driven 20 times with a snapshot slow enough to overlap.
    Rig rig;
    for (int i = 0; i < 30'000; ++i)
        rig.registry.trackCommand(QStringLiteral("slow-%1").arg(i), QStringLiteral("b"), 60s);
    for (int round = 0; round < 20; ++round) {
        v1::WatchRequest request;
        request.set_snapshot(true);
        WatchReader watch(*rig.stub, request);
        const std::string bot = "race-" + std::to_string(round);
        RawBot raw(rig.address());
        QVERIFY(raw.hello(bot));
        QVERIFY2(QTest::qWaitFor(
                     [&] {
                         for (const auto &e : watch.copy())
                             if (e.has_bot() && e.bot().bot_id() == bot && e.bot().connected())
                                 return true;
                         return false;
                     },
                     10'000),
                 bot.c_str());
        watch.end();
    }
}

QTEST_GUILESS_MAIN(TestOperatorService)
#include "tst_operatorservice.moc"
