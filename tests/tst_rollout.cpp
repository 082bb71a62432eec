// Staged rollouts (stream/rollout.h) over real loopback gRPC: a fleet of bots on the callback
// client (1,000 streams on 4 channels, a handful of threads), SendToMany with a rollout, and
// ControlRollout. The runner lives in this thread, so every wait spins its event loop, bounded.
#include "commandregistry.h"
#include "hubrig.h"
#include "opconsole/v1/botlink.grpc.pb.h"
#include "opconsole/v1/operator.grpc.pb.h"
#include "opctlprocess.h"
#include "operatorrequest.h"
#include "operatorservice.h"
#include "rollout.h"
#include "tokens.h"

#include <QProcess>
#include <QTest>

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <set>
#include <thread>

#include <google/protobuf/util/time_util.h>

using namespace opconsole;
using namespace std::chrono;
using google::protobuf::util::TimeUtil;

namespace {

constexpr int WaitMs = 60'000; // every wait's bound (the 2-core machine may be busy)

std::string botName(int i)
{
    char name[16];
    std::snprintf(name, sizeof name, "bot-%04d", i);
    return name;
}

class Fleet;

// One bot: a BotLink stream on the callback client. It says Hello, records every command it
// gets (with a fleet-wide sequence number) and acks it at once, or later when it holds acks;
// a bot the fleet marks as a rejecter rejects.
class Bot final : public grpc::ClientBidiReactor<v1::BotMessage, v1::HubMessage>
{
public:
    Bot(Fleet &fleet, int index, v1::BotLink::Stub &stub);
    void ack(const std::string &commandId, bool success);
    void cancel() { m_context.TryCancel(); }

    void OnReadDone(bool ok) override;
    void OnWriteDone(bool ok) override;
    void OnDone(const grpc::Status &) override;

    const int index;

private:
    void write(v1::BotMessage message);

    Fleet &m_fleet;
    grpc::ClientContext m_context;
    v1::HubMessage m_in;
    std::mutex m_mutex;
    std::deque<v1::BotMessage> m_out; // front: the write in flight
    bool m_writing = false;
};

class Fleet
{
public:
    Fleet(const std::string &address, int count) : m_received(size_t(count), 0)
    {
        for (int c = 0; c < 4; ++c) {
            grpc::ChannelArguments args;
            args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
            m_stubs.push_back(v1::BotLink::NewStub(
                grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args)));
        }
        for (int i = 0; i < count; ++i)
            m_bots.push_back(std::make_unique<Bot>(*this, i, *m_stubs[size_t(i % 4)]));
    }
    ~Fleet()
    {
        for (auto &bot : m_bots)
            bot->cancel();
        std::unique_lock lock(m_mutex);
        m_changed.wait_for(lock, 30s, [&] { return m_done == int(m_bots.size()); });
    }
    QStringList ids() const
    {
        QStringList ids;
        for (const auto &bot : m_bots)
            ids.append(QString::fromStdString(botName(bot->index)));
        return ids;
    }
    bool allWelcomed() const { return m_welcomed.load() == int(m_bots.size()); }

    // Policy, set before the rollout.
    std::set<int> rejecters;
    std::atomic<bool> hold{false};

    // What the bots saw: per bot, the sequence number of its first command (0: none).
    quint64 receivedAt(int i)
    {
        std::lock_guard lock(m_mutex);
        return m_received[size_t(i)];
    }
    int receivedCount()
    {
        std::lock_guard lock(m_mutex);
        return int(
            std::count_if(m_received.begin(), m_received.end(), [](quint64 s) { return s != 0; }));
    }
    quint64 ackedAt(int i)
    {
        std::lock_guard lock(m_mutex);
        const auto it = m_acked.find(i);
        return it == m_acked.end() ? 0 : it->second;
    }
    // Acks what the bots held.
    void release()
    {
        std::vector<std::pair<int, std::string>> held;
        {
            std::lock_guard lock(m_mutex);
            held.swap(m_held);
        }
        for (const auto &[i, id] : held)
            m_bots[size_t(i)]->ack(id, !rejecters.count(i));
    }
    int heldCount()
    {
        std::lock_guard lock(m_mutex);
        return int(m_held.size());
    }

    // From the bots' gRPC threads.
    void welcomed() { ++m_welcomed; }
    void command(Bot &bot, const std::string &commandId)
    {
        bool ackNow;
        {
            std::lock_guard lock(m_mutex);
            if (m_received[size_t(bot.index)] == 0)
                m_received[size_t(bot.index)] = ++m_sequence;
            ackNow = !hold.load();
            if (!ackNow)
                m_held.emplace_back(bot.index, commandId);
        }
        if (ackNow)
            bot.ack(commandId, !rejecters.count(bot.index));
    }
    void acked(int index)
    {
        std::lock_guard lock(m_mutex);
        m_acked[index] = ++m_sequence;
    }
    void done()
    {
        std::lock_guard lock(m_mutex);
        ++m_done;
        m_changed.notify_all();
    }

private:
    std::vector<std::unique_ptr<v1::BotLink::Stub>> m_stubs;
    std::vector<std::unique_ptr<Bot>> m_bots;
    std::atomic<int> m_welcomed{0};
    std::mutex m_mutex;
    std::condition_variable m_changed;
    int m_done = 0;
    quint64 m_sequence = 0;
    std::vector<quint64> m_received;
    std::map<int, quint64> m_acked;
    std::vector<std::pair<int, std::string>> m_held;
};

Bot::Bot(Fleet &fleet, int i, v1::BotLink::Stub &stub) : index(i), m_fleet(fleet)
{
    stub.async()->Connect(&m_context, this);
    v1::BotMessage hello;
    hello.mutable_hello()->set_bot_id(botName(i));
    hello.mutable_hello()->set_protocol_version(1);
    write(std::move(hello));
    StartRead(&m_in);
    StartCall();
}

void Bot::write(v1::BotMessage message)
{
    const v1::BotMessage *next = nullptr;
    {
        std::lock_guard lock(m_mutex);
        m_out.push_back(std::move(message)); // a deque: the write in flight stays in place
        if (m_writing)
            return;
        m_writing = true;
        next = &m_out.front();
    }
    StartWrite(next);
}

void Bot::OnWriteDone(bool ok)
{
    const v1::BotMessage *next = nullptr;
    {
        std::lock_guard lock(m_mutex);
        m_out.pop_front();
        if (!ok)
            m_out.clear();
        if (m_out.empty()) {
            m_writing = false;
            return;
        }
        next = &m_out.front();
    }
    StartWrite(next);
}

void Bot::ack(const std::string &commandId, bool success)
{
    v1::BotMessage message;
    message.mutable_ack()->set_command_id(commandId);
    message.mutable_ack()->set_success(success);
    message.mutable_ack()->set_message(success ? "done" : "refused by the test");
    m_fleet.acked(index);
    write(std::move(message));
}

void Bot::OnReadDone(bool ok)
{
    if (!ok)
        return;
    if (m_in.has_welcome())
        m_fleet.welcomed();
    else if (m_in.has_command())
        m_fleet.command(*this, m_in.command().command_id());
    StartRead(&m_in);
}

void Bot::OnDone(const grpc::Status &)
{
    m_fleet.done();
}

struct Rig : HubRig
{
    static HubOptions quiet()
    {
        HubOptions options;
        options.heartbeatInterval = 60s; // the bots send no heartbeats: none is due in a test
        return options;
    }
    explicit Rig(std::shared_ptr<const security::OperatorDirectory> operators = {})
        : HubRig(quiet())
    {
        api = std::make_unique<OperatorService>(*service, feed);
        if (operators)
            api->setAccess({std::move(operators), 1000});
        api->attachTo(*hub);
        start();
        stub = v1::Operator::NewStub(
            grpc::CreateChannel(operatorAddress(), grpc::InsecureChannelCredentials()));
    }
    ~Rig() { api.reset(); } // stops the hub first

    std::unique_ptr<OperatorService> api;
    std::unique_ptr<v1::Operator::Stub> stub;
};

// A SendToMany call read on its own thread; the test looks at what came, spinning its loop.
class Call
{
public:
    Call(v1::Operator::Stub &stub, const v1::SendToManyRequest &request, const QString &token = {})
    {
        m_context.set_deadline(system_clock::now() + 120s);
        if (!token.isEmpty())
            m_context.AddMetadata("authorization", "Bearer " + token.toStdString());
        m_reader = stub.SendToMany(&m_context, request);
        m_thread = std::thread([this] {
            v1::SendToManyEvent event;
            while (m_reader->Read(&event)) {
                std::lock_guard lock(m_mutex);
                m_events.push_back(event);
            }
            const grpc::Status status = m_reader->Finish();
            std::lock_guard lock(m_mutex);
            m_status = status;
            m_ended = true;
        });
    }
    ~Call()
    {
        m_context.TryCancel();
        m_thread.join();
    }
    bool waitEnd()
    {
        return QTest::qWaitFor([&] { return ended(); }, WaitMs);
    }
    bool ended()
    {
        std::lock_guard lock(m_mutex);
        return m_ended;
    }
    grpc::Status status()
    {
        std::lock_guard lock(m_mutex);
        return m_status;
    }
    std::vector<v1::SendToManyEvent> events()
    {
        std::lock_guard lock(m_mutex);
        return m_events;
    }
    // The first rollout event named `event` (for `wave`, when not 0).
    std::optional<v1::RolloutProgress> rollout(const std::string &event, int wave = 0)
    {
        std::lock_guard lock(m_mutex);
        for (const auto &e : m_events)
            if (e.has_rollout() && e.rollout().event() == event &&
                (wave == 0 || e.rollout().wave() == wave))
                return e.rollout();
        return std::nullopt;
    }
    bool waitRollout(const std::string &event, int wave = 0)
    {
        return QTest::qWaitFor([&] { return rollout(event, wave).has_value(); }, WaitMs);
    }
    std::optional<v1::FanOutTally> summary()
    {
        std::lock_guard lock(m_mutex);
        if (!m_events.empty() && m_events.back().has_summary())
            return m_events.back().summary();
        return std::nullopt;
    }
    int results(v1::Outcome outcome)
    {
        std::lock_guard lock(m_mutex);
        return int(std::count_if(m_events.begin(), m_events.end(), [&](const auto &e) {
            return e.has_result() && e.result().outcome() == outcome;
        }));
    }
    std::string fanOutId()
    {
        std::lock_guard lock(m_mutex);
        for (const auto &e : m_events)
            if (e.has_rollout())
                return e.rollout().fan_out_id();
        return {};
    }
    bool waitFanOutId()
    {
        return QTest::qWaitFor([&] { return !fanOutId().empty(); }, WaitMs);
    }

private:
    grpc::ClientContext m_context;
    std::unique_ptr<grpc::ClientReader<v1::SendToManyEvent>> m_reader;
    std::thread m_thread;
    std::mutex m_mutex;
    std::vector<v1::SendToManyEvent> m_events;
    grpc::Status m_status;
    bool m_ended = false;
};

v1::SendToManyRequest rolloutRequest(const QStringList &bots, int timeoutMs)
{
    v1::SendToManyRequest request;
    for (const QString &b : bots)
        request.add_bot_ids(b.toStdString());
    request.mutable_command()->mutable_restart();
    *request.mutable_timeout() = TimeUtil::MillisecondsToDuration(timeoutMs);
    return request;
}

grpc::Status control(Rig &rig, const std::string &id, v1::RolloutAction action,
                     v1::ControlRolloutResponse *response, bool cancelInFlight = false,
                     const QString &token = {})
{
    v1::ControlRolloutRequest request;
    request.set_fan_out_id(id);
    request.set_action(action);
    request.set_cancel_in_flight(cancelInFlight);
    grpc::ClientContext context;
    context.set_deadline(system_clock::now() + 30s);
    if (!token.isEmpty())
        context.AddMetadata("authorization", "Bearer " + token.toStdString());
    return rig.stub->ControlRollout(&context, request, response);
}

// Commands the registry holds for a fan-out: every one registered by a wave that was sent.
int commandsOf(Rig &rig, const std::string &fanOut)
{
    const auto page = rig.registry.page(0, 1'000'000, [&](const CommandOutcome &o) {
        return o.fanOut == QString::fromStdString(fanOut);
    });
    return int(page.size());
}

} // namespace

class TestRollout : public QObject
{
    Q_OBJECT

private slots:
    void thousandBotsStopAtTheWaveAboveTheThreshold();
    void pauseHoldsTheNextWaveUntilResume();
    void abortSendsNoMoreWavesAndLeavesTheWaveInFlight();
    void abortCanCancelTheWaveInFlight();
    void waveDelayHoldsTheNextWave();
    void hubStopEndsTheRollout();
    void invalidOptionsAreRefused();
    void noWaitAnswersAtOnceAndTheRolloutGoesOn();
    void opctlRollsOutInWavesAndSaysWhyItStopped();
    void onlyItsIssuerOrAnAdminControlsIt();
};

// The test: 1,000 bots in waves of 10%, abort above 5%. Wave 2 has 3 rejects (3%: goes
// on), wave 4 has 7 (7%: stops). Waves 5-10 are never sent: no bot of theirs got a command.
void TestRollout::thousandBotsStopAtTheWaveAboveTheThreshold()
{
    Rig rig;
    QVERIFY(rig.started);
    Fleet fleet(rig.address(), 1000);
    for (int i = 100; i < 103; ++i)
        fleet.rejecters.insert(i);
    for (int i = 300; i < 307; ++i)
        fleet.rejecters.insert(i);
    QVERIFY(QTest::qWaitFor([&] { return fleet.allWelcomed(); }, WaitMs));

    v1::SendToManyRequest request = rolloutRequest(fleet.ids(), 30'000);
    request.mutable_rollout()->set_batch_percent(10);
    request.mutable_rollout()->set_abort_above_percent(5);
    Call call(*rig.stub, request);
    QVERIFY(call.waitEnd());
    QVERIFY2(call.status().ok(), call.status().error_message().c_str());

    const auto finished = call.rollout("finished");
    QVERIFY(finished.has_value());
    QCOMPARE(finished->state(), v1::ROLLOUT_STATE_STOPPED);
    QCOMPARE(finished->wave(), 4);
    QCOMPARE(finished->waves(), 10);
    QCOMPARE(finished->not_sent(), 600);
    QCOMPARE(QString::fromStdString(finished->reason()),
             QStringLiteral("wave 4 of 10: 7% failed (7 of 100), above 5%: stopped; waves 5-10 "
                            "not sent"));
    QCOMPARE(finished->wave_tally().rejected(), 7);
    QCOMPARE(finished->overall().total(), 400);
    QCOMPARE(finished->overall().acked(), 390);
    QCOMPARE(finished->overall().rejected(), 10);
    // Wave by wave: each started and finished, with its own tally.
    for (int w = 1; w <= 4; ++w) {
        const auto started = call.rollout("wave_started", w);
        const auto ended = call.rollout("wave_finished", w);
        QVERIFY(started && ended);
        QCOMPARE(started->wave_bots(), 100);
        QCOMPARE(ended->wave_tally().total(), 100);
        QCOMPARE(ended->wave_tally().rejected(), w == 2 ? 3 : w == 4 ? 7 : 0);
    }
    QVERIFY(!call.rollout("wave_started", 5));

    // The summary comes last, after a result per command sent.
    const auto summary = call.summary();
    QVERIFY(summary.has_value());
    QCOMPARE(summary->total(), 400);
    QCOMPARE(summary->rejected(), 10);
    QCOMPARE(call.results(v1::OUTCOME_ACKED), 390);
    QCOMPARE(call.results(v1::OUTCOME_REJECTED), 10);

    // The bots: the first 400 got their command, wave by wave (each wave's first command
    // after every ack of the wave before it); the other 600 never got one.
    QCOMPARE(fleet.receivedCount(), 400);
    for (int i = 400; i < 1000; ++i)
        QVERIFY2(fleet.receivedAt(i) == 0, botName(i).c_str());
    for (int w = 1; w < 4; ++w) {
        quint64 lastAck = 0;
        quint64 firstNext = std::numeric_limits<quint64>::max();
        for (int i = (w - 1) * 100; i < w * 100; ++i)
            lastAck = std::max(lastAck, fleet.ackedAt(i));
        for (int i = w * 100; i < (w + 1) * 100; ++i)
            firstNext = std::min(firstNext, fleet.receivedAt(i));
        QVERIFY2(lastAck < firstNext, qPrintable(QStringLiteral("wave %1").arg(w + 1)));
    }
    // One fan-out id over every wave: the consoles' tally row is the rollout's.
    QCOMPARE(commandsOf(rig, finished->fan_out_id()), 400);
}

void TestRollout::pauseHoldsTheNextWaveUntilResume()
{
    Rig rig;
    QVERIFY(rig.started);
    Fleet fleet(rig.address(), 20);
    QVERIFY(QTest::qWaitFor([&] { return fleet.allWelcomed(); }, WaitMs));
    fleet.hold = true;

    v1::SendToManyRequest request = rolloutRequest(fleet.ids(), 30'000);
    request.mutable_rollout()->set_batch_count(5);
    Call call(*rig.stub, request);
    QVERIFY(QTest::qWaitFor([&] { return fleet.heldCount() == 5; }, WaitMs));
    QVERIFY(call.waitFanOutId());
    const std::string id = call.fanOutId();

    v1::ControlRolloutResponse response;
    grpc::Status s = control(rig, id, v1::ROLLOUT_ACTION_PAUSE, &response);
    QVERIFY2(s.ok(), s.error_message().c_str());
    QCOMPARE(response.status().state(), v1::ROLLOUT_STATE_PAUSED);
    QCOMPARE(response.status().wave(), 1);

    fleet.hold = false;
    fleet.release();
    QVERIFY(call.waitRollout("wave_finished", 1));
    // The wave's end ran on this thread and posted the next step; let it run: it must wait.
    QCoreApplication::processEvents();
    QCoreApplication::processEvents();
    QCOMPARE(rig.api->rollouts().status(QString::fromStdString(id))->state, RolloutState::Paused);
    QCOMPARE(rig.api->rollouts().status(QString::fromStdString(id))->wave, 1);
    QCOMPARE(commandsOf(rig, id), 5); // the next wave was never registered, let alone sent
    QCOMPARE(fleet.receivedCount(), 5);
    QVERIFY(call.waitRollout("paused"));

    s = control(rig, id, v1::ROLLOUT_ACTION_RESUME, &response);
    QVERIFY2(s.ok(), s.error_message().c_str());
    QCOMPARE(response.status().state(), v1::ROLLOUT_STATE_RUNNING);
    QVERIFY(call.waitEnd());
    QCOMPARE(call.rollout("finished")->state(), v1::ROLLOUT_STATE_COMPLETED);
    QCOMPARE(call.summary()->acked(), 20);
    QCOMPARE(fleet.receivedCount(), 20);

    // An ended rollout is not controlled any more.
    s = control(rig, id, v1::ROLLOUT_ACTION_PAUSE, &response);
    QCOMPARE(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

void TestRollout::abortSendsNoMoreWavesAndLeavesTheWaveInFlight()
{
    Rig rig;
    QVERIFY(rig.started);
    Fleet fleet(rig.address(), 20);
    QVERIFY(QTest::qWaitFor([&] { return fleet.allWelcomed(); }, WaitMs));
    fleet.hold = true;

    v1::SendToManyRequest request = rolloutRequest(fleet.ids(), 30'000);
    request.mutable_rollout()->set_batch_percent(25);
    Call call(*rig.stub, request);
    QVERIFY(QTest::qWaitFor([&] { return fleet.heldCount() == 5; }, WaitMs));
    QVERIFY(call.waitFanOutId());
    const std::string id = call.fanOutId();

    v1::ControlRolloutResponse response;
    const grpc::Status s = control(rig, id, v1::ROLLOUT_ACTION_ABORT, &response);
    QVERIFY2(s.ok(), s.error_message().c_str());
    QCOMPARE(response.status().state(), v1::ROLLOUT_STATE_ABORTED);
    fleet.release(); // the wave in flight finishes: acked, not cancelled
    QVERIFY(call.waitEnd());
    const auto finished = call.rollout("finished");
    QVERIFY(finished.has_value());
    QCOMPARE(finished->state(), v1::ROLLOUT_STATE_ABORTED);
    QVERIFY2(QString::fromStdString(finished->reason())
                 .endsWith(QLatin1String("at wave 1 of 4 (its commands in flight left to "
                                         "finish); waves 2-4 not sent")),
             finished->reason().c_str());
    QCOMPARE(call.summary()->acked(), 5);
    QCOMPARE(call.results(v1::OUTCOME_ACKED), 5);
    QCOMPARE(commandsOf(rig, id), 5);
    QCOMPARE(fleet.receivedCount(), 5);
}

void TestRollout::abortCanCancelTheWaveInFlight()
{
    Rig rig;
    QVERIFY(rig.started);
    Fleet fleet(rig.address(), 20);
    QVERIFY(QTest::qWaitFor([&] { return fleet.allWelcomed(); }, WaitMs));
    fleet.hold = true;

    v1::SendToManyRequest request = rolloutRequest(fleet.ids(), 30'000);
    request.mutable_rollout()->set_batch_count(10);
    Call call(*rig.stub, request);
    QVERIFY(QTest::qWaitFor([&] { return fleet.heldCount() == 10; }, WaitMs));
    QVERIFY(call.waitFanOutId());
    const std::string id = call.fanOutId();

    v1::ControlRolloutResponse response;
    grpc::Status s = control(rig, id, v1::ROLLOUT_ACTION_PAUSE, &response, true);
    QCOMPARE(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT); // cancel goes with abort
    s = control(rig, id, v1::ROLLOUT_ACTION_ABORT, &response, true);
    QVERIFY2(s.ok(), s.error_message().c_str());
    QVERIFY(call.waitEnd());
    QCOMPARE(call.results(v1::OUTCOME_CANCELLED), 10);
    QCOMPARE(call.rollout("finished")->state(), v1::ROLLOUT_STATE_ABORTED);
    QVERIFY(QString::fromStdString(call.rollout("finished")->reason())
                .contains(QLatin1String("cancelled); wave 2 not sent")));
    QCOMPARE(commandsOf(rig, id), 10);
    fleet.release(); // late acks now: the commands stay cancelled
}

void TestRollout::waveDelayHoldsTheNextWave()
{
    Rig rig;
    QVERIFY(rig.started);
    Fleet fleet(rig.address(), 10);
    QVERIFY(QTest::qWaitFor([&] { return fleet.allWelcomed(); }, WaitMs));

    // A delay of an hour: after wave 1 the rollout waits; nothing of wave 2 is sent meanwhile.
    v1::SendToManyRequest request = rolloutRequest(fleet.ids(), 30'000);
    request.mutable_rollout()->set_batch_count(5);
    *request.mutable_rollout()->mutable_wave_delay() = TimeUtil::SecondsToDuration(3600);
    Call call(*rig.stub, request);
    QVERIFY(call.waitRollout("wave_finished", 1));
    QVERIFY(call.waitFanOutId());
    const std::string id = call.fanOutId();
    QCoreApplication::processEvents();
    QCoreApplication::processEvents();
    QCOMPARE(rig.api->rollouts().status(QString::fromStdString(id))->wave, 1);
    QCOMPARE(rig.api->rollouts().status(QString::fromStdString(id))->state, RolloutState::Running);
    QCOMPARE(commandsOf(rig, id), 5);
    QCOMPARE(fleet.receivedCount(), 5);
    v1::ControlRolloutResponse response;
    QVERIFY(control(rig, id, v1::ROLLOUT_ACTION_ABORT, &response).ok());
    QVERIFY(call.waitEnd());
    QCOMPARE(QString::fromStdString(call.rollout("finished")->reason()),
             QStringLiteral("aborted by %1 at wave 1 of 2; wave 2 not sent")
                 .arg(QString::fromStdString(response.status().issuer())));
    QCOMPARE(fleet.receivedCount(), 5);

    // A short delay: the waves follow in order, each after the one before has finished.
    Fleet more(rig.address(), 9);
    QVERIFY(QTest::qWaitFor([&] { return more.allWelcomed(); }, WaitMs));
    request = rolloutRequest(more.ids(), 30'000);
    request.mutable_rollout()->set_batch_count(3);
    *request.mutable_rollout()->mutable_wave_delay() = TimeUtil::MillisecondsToDuration(50);
    Call ordered(*rig.stub, request);
    QVERIFY(ordered.waitEnd());
    QCOMPARE(ordered.rollout("finished")->state(), v1::ROLLOUT_STATE_COMPLETED);
    for (int w = 1; w < 3; ++w) {
        quint64 lastAck = 0;
        quint64 firstNext = std::numeric_limits<quint64>::max();
        for (int i = (w - 1) * 3; i < w * 3; ++i)
            lastAck = std::max(lastAck, more.ackedAt(i));
        for (int i = w * 3; i < (w + 1) * 3; ++i)
            firstNext = std::min(firstNext, more.receivedAt(i));
        QVERIFY(lastAck < firstNext);
    }
}

void TestRollout::hubStopEndsTheRollout()
{
    Rig rig;
    QVERIFY(rig.started);
    Fleet fleet(rig.address(), 20);
    QVERIFY(QTest::qWaitFor([&] { return fleet.allWelcomed(); }, WaitMs));
    fleet.hold = true;

    v1::SendToManyRequest request = rolloutRequest(fleet.ids(), 30'000);
    request.mutable_rollout()->set_batch_count(5);
    Call call(*rig.stub, request);
    QVERIFY(QTest::qWaitFor([&] { return fleet.heldCount() == 5; }, WaitMs));
    QVERIFY(call.waitFanOutId());
    const QString id = QString::fromStdString(call.fanOutId());

    rig.hub->stop(QStringLiteral("hub shutting down"));
    const auto status = rig.api->rollouts().status(id);
    QCOMPARE(status->state, RolloutState::ShutDown);
    QCOMPARE(status->reason,
             QStringLiteral("hub shutting down at wave 1 of 4; waves 2-4 not sent"));
    QVERIFY(call.waitEnd());
    const auto finished = call.rollout("finished");
    QVERIFY(finished.has_value());
    QCOMPARE(finished->state(), v1::ROLLOUT_STATE_SHUT_DOWN);
    // What was queued for the wave's end runs now, and sends nothing.
    QCoreApplication::processEvents();
    QCoreApplication::processEvents();
    QCOMPARE(commandsOf(rig, id.toStdString()), 5);
    QCOMPARE(fleet.receivedCount(), 5);
    QCOMPARE(rig.api->rollouts().status(id)->wave, 1);
}

void TestRollout::invalidOptionsAreRefused()
{
    Rig rig;
    QVERIFY(rig.started);
    const QStringList bots{QStringLiteral("bot-0000")};
    auto refused = [&](const std::function<void(v1::Rollout &)> &set, const char *words) {
        v1::SendToManyRequest request = rolloutRequest(bots, 1000);
        set(*request.mutable_rollout());
        Call call(*rig.stub, request);
        if (!call.waitEnd())
            return QStringLiteral("no end");
        if (call.status().error_code() != grpc::StatusCode::INVALID_ARGUMENT)
            return QStringLiteral("status %1").arg(call.status().error_code());
        const QString message = QString::fromStdString(call.status().error_message());
        return message.contains(QLatin1String(words)) ? QString() : message;
    };
    const std::vector<std::pair<std::function<void(v1::Rollout &)>, const char *>> cases = {
        {[](v1::Rollout &) {}, "batch_count or batch_percent"},
        {[](v1::Rollout &r) { r.set_batch_percent(0); }, "batch_percent must be 1 to 100"},
        {[](v1::Rollout &r) { r.set_batch_percent(101); }, "batch_percent must be 1 to 100"},
        {[](v1::Rollout &r) { r.set_batch_count(0); }, "batch_count must be 1 to 1000000"},
        {[](v1::Rollout &r) { r.set_batch_count(1'000'001); }, "batch_count must be 1 to"},
        {[](v1::Rollout &r) { r.set_batch_count(-3); }, "batch_count must be 1 to"},
        {[](v1::Rollout &r) {
             r.set_batch_count(5);
             r.set_abort_above_percent(-1);
         },
         "abort_above_percent must be 0 to 100"},
        {[](v1::Rollout &r) {
             r.set_batch_count(5);
             r.set_abort_above_percent(100.5);
         },
         "abort_above_percent must be 0 to 100"},
        {[](v1::Rollout &r) {
             r.set_batch_count(5);
             r.set_abort_above_percent(std::numeric_limits<double>::quiet_NaN());
         },
         "abort_above_percent must be 0 to 100"},
        {[](v1::Rollout &r) {
             r.set_batch_count(5);
             *r.mutable_wave_delay() = TimeUtil::SecondsToDuration(-1);
         },
         "rollout.wave_delay must not be negative"},
        {[](v1::Rollout &r) {
             r.set_batch_count(5);
             *r.mutable_wave_delay() = TimeUtil::SecondsToDuration(24 * 3600 + 1);
         },
         "rollout.wave_delay of 86401000 ms is over the limit"},
    };
    for (const auto &[set, words] : cases) {
        const QString problem = refused(set, words);
        QVERIFY2(problem.isEmpty(), qPrintable(QString::fromLatin1(words) + ": " + problem));
    }
    // ControlRollout: a bad id, an unknown action, a rollout that is not there.
    v1::ControlRolloutResponse response;
    QCOMPARE(control(rig, "", v1::ROLLOUT_ACTION_PAUSE, &response).error_code(),
             grpc::StatusCode::INVALID_ARGUMENT);
    QCOMPARE(control(rig, "f-1", v1::RolloutAction(17), &response).error_code(),
             grpc::StatusCode::INVALID_ARGUMENT);
    QCOMPARE(control(rig, "f-1", v1::ROLLOUT_ACTION_UNSPECIFIED, &response).error_code(),
             grpc::StatusCode::INVALID_ARGUMENT);
    QCOMPARE(control(rig, "f-none", v1::ROLLOUT_ACTION_ABORT, &response).error_code(),
             grpc::StatusCode::NOT_FOUND);
    // The boundaries pass: 100%, 1,000,000 bots, 0% and 100%, 24 h.
    RolloutOptions ok;
    ok.batchCount = RolloutOptions::MaxBatchCount;
    ok.abortAbovePercent = 0;
    ok.waveDelay = hours(24);
    QVERIFY(ok.validate().isEmpty());
    v1::Rollout wire;
    wire.set_batch_percent(100);
    wire.set_abort_above_percent(100);
    *wire.mutable_wave_delay() = TimeUtil::SecondsToDuration(24 * 3600);
    RolloutOptions checked;
    QVERIFY(api::checkRollout(wire, &checked).isEmpty());
    QCOMPARE(checked.waveSize(1005), 1005);
    checked.batchPercent = 10;
    QCOMPARE(checked.waveSize(1005), 101); // rounded up
    QCOMPARE(checked.waveSize(3), 1);
}

void TestRollout::noWaitAnswersAtOnceAndTheRolloutGoesOn()
{
    Rig rig;
    QVERIFY(rig.started);
    Fleet fleet(rig.address(), 6);
    QVERIFY(QTest::qWaitFor([&] { return fleet.allWelcomed(); }, WaitMs));
    v1::SendToManyRequest request = rolloutRequest(fleet.ids(), 30'000);
    request.mutable_rollout()->set_batch_count(2);
    request.set_no_wait(true);
    request.set_fan_out_id("f-staged");
    Call call(*rig.stub, request);
    QVERIFY(call.waitEnd());
    QVERIFY(call.status().ok());
    QCOMPARE(call.fanOutId(), std::string("f-staged"));
    QCOMPARE(call.summary()->fan_out_id(), std::string("f-staged"));
    QVERIFY(QTest::qWaitFor(
        [&] {
            const auto s = rig.api->rollouts().status(QStringLiteral("f-staged"));
            return s && s->state == RolloutState::Completed;
        },
        WaitMs));
    QCOMPARE(fleet.receivedCount(), 6);
    QCOMPARE(commandsOf(rig, "f-staged"), 6);
    // The id is taken now, for rollouts and fan-outs alike.
    Call again(*rig.stub, request);
    QVERIFY(again.waitEnd());
    QCOMPARE(again.status().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// opctl send --all --batch: a line per wave, why it stopped, exit 6; its usage errors; and
// opctl rollout for a rollout the hub does not have.
void TestRollout::opctlRollsOutInWavesAndSaysWhyItStopped()
{
    Rig rig;
    QVERIFY(rig.started);
    Fleet fleet(rig.address(), 20);
    for (int i = 0; i < 20; ++i)
        fleet.rejecters.insert(i); // whichever wave goes first fails whole
    QVERIFY(QTest::qWaitFor([&] { return fleet.allWelcomed(); }, WaitMs));
    const QString hub = rig.hub->operatorAddress();
    auto opctl = [&](const QStringList &args, QString *out, QString *err) {
        Opctl run(QStringList{QStringLiteral("--hub"), hub} + args);
        const int code = run.wait(WaitMs);
        *out = run.out;
        *err = run.err;
        return code;
    };
    QString out, err;
    QCOMPARE(opctl({"send", "--all", "restart", "--batch", "25%", "--abort-above", "50%",
                    "--wave-delay", "10ms", "--timeout", "10s"},
                   &out, &err),
             6);
    QVERIFY2(out.contains(QLatin1String("wave 1/4 started: 5 bots")), qPrintable(out));
    QVERIFY2(out.contains(QLatin1String("wave 1/4 finished: 0/5 acked, 5 rejected")),
             qPrintable(out));
    QVERIFY2(out.contains(QLatin1String("stopped: wave 1 of 4: 100% failed (5 of 5), above "
                                        "50%: stopped; waves 2-4 not sent")),
             qPrintable(out));
    QVERIFY(!out.contains(QLatin1String("wave 2/4")));
    QCOMPARE(fleet.receivedCount(), 5);

    const QList<QStringList> usage = {
        {"send", "--all", "ping", "--abort-above", "5%"}, // without --batch
        {"send", "--all", "ping", "--batch", "0"},        // out of range
        {"send", "--all", "ping", "--batch", "101%"},     // out of range
        {"send", "--all", "ping", "--batch", "5", "--wave-delay", "25h"},
        {"send", "bot-0000", "ping", "--batch", "5"},      // one bot: no rollout
        {"rollout", "stop", "f-1"},                        // no such action
        {"rollout", "pause", "f-1", "--cancel-in-flight"}, // abort's
    };
    for (const QStringList &args : usage)
        QVERIFY2(opctl(args, &out, &err) == 64, qPrintable(args.join(' ') + ": " + err));
    QCOMPARE(opctl({"rollout", "abort", "f-none"}, &out, &err), 3);
    QVERIFY2(err.contains(QLatin1String("no rollout f-none")), qPrintable(err));
}

// ControlRollout takes the operator role, and the rollout's issuer or an admin.
void TestRollout::onlyItsIssuerOrAnAdminControlsIt()
{
    const QString olga = security::newToken(), oscar = security::newToken(),
                  alice = security::newToken(), vic = security::newToken();
    QString error;
    const QByteArray operators = "olga operator " + security::tokenHash(olga.toUtf8()).toUtf8() +
                                 "\noscar operator " +
                                 security::tokenHash(oscar.toUtf8()).toUtf8() + "\nalice admin " +
                                 security::tokenHash(alice.toUtf8()).toUtf8() + "\nvic viewer " +
                                 security::tokenHash(vic.toUtf8()).toUtf8() + "\n";
    Rig rig(security::OperatorDirectory::parse(operators, "test", &error));
    QVERIFY2(rig.started, qPrintable(error));
    Fleet fleet(rig.address(), 10);
    QVERIFY(QTest::qWaitFor([&] { return fleet.allWelcomed(); }, WaitMs));
    fleet.hold = true;

    v1::SendToManyRequest request = rolloutRequest(fleet.ids(), 30'000);
    request.mutable_rollout()->set_batch_count(5);
    Call refused(*rig.stub, request, vic); // a viewer sends nothing
    QVERIFY(refused.waitEnd());
    QCOMPARE(refused.status().error_code(), grpc::StatusCode::PERMISSION_DENIED);
    Call call(*rig.stub, request, olga);
    QVERIFY(call.waitFanOutId());
    const std::string id = call.fanOutId();
    QCOMPARE(call.rollout("wave_started", 1)->issuer(), std::string("olga"));

    v1::ControlRolloutResponse response;
    QCOMPARE(control(rig, id, v1::ROLLOUT_ACTION_PAUSE, &response, false, vic).error_code(),
             grpc::StatusCode::PERMISSION_DENIED);
    QCOMPARE(control(rig, id, v1::ROLLOUT_ACTION_PAUSE, &response, false, oscar).error_code(),
             grpc::StatusCode::PERMISSION_DENIED);
    QCOMPARE(control(rig, id, v1::ROLLOUT_ACTION_PAUSE, &response).error_code(),
             grpc::StatusCode::UNAUTHENTICATED);
    // Another operator cannot tell a rollout that is not theirs from one that does not exist;
    // an admin is told.
    QCOMPARE(
        control(rig, "f-nosuch", v1::ROLLOUT_ACTION_PAUSE, &response, false, oscar).error_code(),
        grpc::StatusCode::PERMISSION_DENIED);
    QCOMPARE(
        control(rig, "f-nosuch", v1::ROLLOUT_ACTION_PAUSE, &response, false, alice).error_code(),
        grpc::StatusCode::NOT_FOUND);
    QVERIFY(control(rig, id, v1::ROLLOUT_ACTION_PAUSE, &response, false, alice).ok());
    QCOMPARE(response.status().state(), v1::ROLLOUT_STATE_PAUSED);
    QVERIFY(control(rig, id, v1::ROLLOUT_ACTION_ABORT, &response, false, olga).ok());
    fleet.release();
    QVERIFY(call.waitEnd());
    QVERIFY(QString::fromStdString(call.rollout("finished")->reason())
                .startsWith(QLatin1String("aborted by olga at wave 1 of 2")));
}

QTEST_GUILESS_MAIN(TestRollout)
#include "tst_rollout.moc"
