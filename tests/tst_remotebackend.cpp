// RemoteBackend without a window: against the real Operator service of an in-process hub
// (resume after the hub's server stops and starts again; operator tokens, roles and admission
// decisions, over plaintext and TLS), and against a scripted hostile hub (a real gRPC server
// whose Watch sends what each test tells it to: bad records, changes going backwards, a run
// that changes under the console, calls that never answer).
#include "admission.h"
#include "changefeed.h"
#include "fanouts.h"
#include "hubrig.h"
#include "hubset.h"
#include "opconsole/v1/operator.grpc.pb.h"
#include "opctlprocess.h"
#include "operatorservice.h"
#include "rawbot.h"
#include "remotebackend.h"
#include "tcpproxy.h"
#include "testcerts.h"
#include "tlscredentials.h"
#include "tokens.h"

#include <grpcpp/grpcpp.h>

#include <QSignalSpy>
#include <QTest>

#include <condition_variable>
#include <functional>
#include <mutex>

using namespace opconsole;
using namespace std::chrono;

namespace {

RemoteBackend::Options quick()
{
    RemoteBackend::Options o;
    o.firstRetry = 50ms;
    o.maxRetry = 200ms;
    return o;
}

v1::WatchEvent record(const std::string &id, v1::Outcome outcome, uint64_t change,
                      const std::string &fanOut = {})
{
    v1::WatchEvent e;
    e.set_event(outcome == v1::OUTCOME_PENDING ? "registered" : "acked");
    v1::CommandRecord &r = *e.mutable_command();
    r.set_command_id(id);
    r.set_bot_id("bot-1");
    r.set_kind("ping");
    r.set_outcome(outcome);
    const auto now = duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
    r.mutable_registered_at()->set_seconds(now);
    r.mutable_deadline()->set_seconds(now + 30);
    r.set_progress_percent(-1);
    r.set_fan_out_id(fanOut);
    r.set_change(change);
    return e;
}

v1::WatchEvent marker(const char *name, uint64_t change, uint64_t feed)
{
    v1::WatchEvent e;
    e.set_event(name);
    e.set_change(change);
    e.set_feed_id(feed);
    return e;
}

// What a scripted Watch call sends: these events, then this status (or it stays open until the
// client goes or the hub stops).
struct WatchScript
{
    std::vector<v1::WatchEvent> events;
    grpc::Status status = grpc::Status::OK;
    bool stayOpen = false;
};

// A hub that says what the test scripts: Watch call n gets script(n, request); SendCommand
// never answers until the client gives up. The callback API, as the real hub uses, and no
// thread of it ever blocks.
class FakeHub final : public v1::Operator::CallbackService
{
public:
    using Script = std::function<WatchScript(int call, const v1::WatchRequest &)>;
    explicit FakeHub(Script script) : m_script(std::move(script))
    {
        grpc::ServerBuilder builder;
        builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &m_port);
        builder.RegisterService(this);
        m_server = builder.BuildAndStart();
    }
    ~FakeHub() override { m_server->Shutdown(system_clock::now() + 2s); }
    QString address() const { return QStringLiteral("127.0.0.1:%1").arg(m_port); }
    std::vector<v1::WatchRequest> requests()
    {
        std::lock_guard lock(m_mutex);
        return m_requests;
    }
    int sendCalls()
    {
        std::lock_guard lock(m_mutex);
        return m_sendCalls;
    }
    // A hub of the version before staged rollouts: WhoAmI answers, ControlRollout does not
    // exist, SendToMany sends to all (here: counts the calls and finishes).
    bool answersWhoAmI = false;
    int sendToManyCalls()
    {
        std::lock_guard lock(m_mutex);
        return m_sendToManyCalls;
    }
    grpc::ServerUnaryReactor *WhoAmI(grpc::CallbackServerContext *context,
                                     const v1::WhoAmIRequest *, v1::WhoAmIResponse *) override
    {
        auto *reactor = context->DefaultReactor();
        reactor->Finish(answersWhoAmI ? grpc::Status::OK
                                      : grpc::Status(grpc::StatusCode::UNIMPLEMENTED, ""));
        return reactor;
    }
    grpc::ServerWriteReactor<v1::SendToManyEvent> *
    SendToMany(grpc::CallbackServerContext *, const v1::SendToManyRequest *) override
    {
        {
            std::lock_guard lock(m_mutex);
            ++m_sendToManyCalls;
        }
        class Done final : public grpc::ServerWriteReactor<v1::SendToManyEvent>
        {
        public:
            Done() { Finish(grpc::Status::OK); }
            void OnDone() override { delete this; }
        };
        return new Done;
    }

    grpc::ServerWriteReactor<v1::WatchEvent> *Watch(grpc::CallbackServerContext *,
                                                    const v1::WatchRequest *request) override
    {
        int call = 0;
        {
            std::lock_guard lock(m_mutex);
            m_requests.push_back(*request);
            call = int(m_requests.size());
        }
        return new Writer(m_script(call, *request));
    }
    grpc::ServerUnaryReactor *SendCommand(grpc::CallbackServerContext *context,
                                          const v1::SendCommandRequest *,
                                          v1::SendCommandResponse *) override
    {
        {
            std::lock_guard lock(m_mutex);
            ++m_sendCalls;
        }
        return new Silent(context); // never answers: finished when the client cancels
    }

private:
    class Writer final : public grpc::ServerWriteReactor<v1::WatchEvent>
    {
    public:
        explicit Writer(WatchScript script) : m_script(std::move(script)) { next(); }
        void OnWriteDone(bool ok) override
        {
            if (!ok) {
                finish(grpc::Status::CANCELLED);
                return;
            }
            next();
        }
        void OnCancel() override { finish(grpc::Status::CANCELLED); }
        void OnDone() override { delete this; }

    private:
        void next()
        {
            if (m_at < m_script.events.size()) {
                StartWrite(&m_script.events[m_at++]);
                return;
            }
            if (!m_script.stayOpen)
                finish(m_script.status);
        }
        void finish(const grpc::Status &status)
        {
            std::lock_guard lock(m_mutex);
            if (!m_finished) {
                m_finished = true;
                Finish(status);
            }
        }
        WatchScript m_script;
        size_t m_at = 0;
        std::mutex m_mutex;
        bool m_finished = false;
    };
    class Silent final : public grpc::ServerUnaryReactor
    {
    public:
        explicit Silent(grpc::CallbackServerContext *) {}
        void OnCancel() override { Finish(grpc::Status::CANCELLED); }
        void OnDone() override { delete this; }
    };

    Script m_script;
    int m_port = 0;
    std::unique_ptr<grpc::Server> m_server;
    std::mutex m_mutex;
    std::vector<v1::WatchRequest> m_requests;
    int m_sendCalls = 0;
    int m_sendToManyCalls = 0;
};

bool live(RemoteBackend &backend, int ms = 10'000)
{
    return QTest::qWaitFor([&] { return backend.link() == ConsoleBackend::Link::Live; }, ms);
}

std::optional<CommandOutcome> find(const RemoteBackend &backend, const QString &id)
{
    for (const CommandOutcome &o : backend.commands())
        if (o.commandId == id)
            return o;
    return std::nullopt;
}

int portOf(const std::string &address)
{
    return QString::fromStdString(address).section(QLatin1Char(':'), -1).toInt();
}

// A bounded wait for a future the console finishes from a gRPC thread.
template <typename T> std::optional<T> await(QFuture<T> future, int ms = 10'000)
{
    if (!QTest::qWaitFor([&] { return future.isFinished(); }, ms) || future.resultCount() < 1)
        return std::nullopt;
    return future.result();
}

// A hub whose operators need tokens (alice admin, olga operator, vic viewer) and whose bots
// need one too (rack: bot-*), holding bots nobody accepted yet; plaintext, or TLS with `certs`.
struct GuardedHub
{
    explicit GuardedHub(const TestCerts *certs = nullptr)
    {
        QString error;
        HubOptions options;
        options.operatorListenAddress = QStringLiteral("127.0.0.1:0");
        if (certs) {
            const security::ServerTls tls{certs->hubCert(), certs->hubKey(), certs->ca()};
            options.botCredentials = security::serverCredentials(tls, &error);
            options.operatorCredentials = security::serverCredentials(tls, &error);
        }
        options.security.tokens = security::BotTokens::parse(
            "rack bot-* " + security::tokenHash(rack.toUtf8()).toUtf8() + "\n", "test", &error);
        options.security.approveNew = true;
        admission = security::AdmissionStore::open({}, &error);
        options.security.admission = admission.get();
        rig = std::make_unique<HubRig>(options);
        api = std::make_unique<OperatorService>(*rig->service, rig->feed);
        const QByteArray operators =
            "alice admin " + security::tokenHash(admin.toUtf8()).toUtf8() + "\nolga operator " +
            security::tokenHash(operatorToken.toUtf8()).toUtf8() + "\nvic viewer " +
            security::tokenHash(viewer.toUtf8()).toUtf8() + "\n";
        api->setAccess({security::OperatorDirectory::parse(operators, "test", &error), 1000});
        api->attachTo(*rig->hub);
        started = rig->start();
    }
    ~GuardedHub() { api.reset(); }
    QString operatorAddress() const { return QString::fromStdString(rig->operatorAddress()); }

    QString admin = security::newToken();
    QString operatorToken = security::newToken();
    QString viewer = security::newToken();
    QString rack = security::newToken();
    std::unique_ptr<security::AdmissionStore> admission;
    std::unique_ptr<HubRig> rig;
    std::unique_ptr<OperatorService> api;
    bool started = false;
};

RemoteBackend::Options withToken(const QString &token, const security::ClientTls &tls = {})
{
    RemoteBackend::Options options = quick();
    options.security = RemoteSecurity{tls, token.toUtf8()};
    return options;
}

} // namespace

class TestRemoteBackend : public QObject
{
    Q_OBJECT

private slots:
    void resumesAfterTheServerRestartsWithNoGapOrDuplicate();
    void hostileRecordsAreDroppedAndCounted();
    void changesGoingBackwardsAreIgnored();
    void anotherRunMarksWhatWasPendingAsLost();
    void destroyedWithCallsInFlight();
    void aResyncCutShortIsNotARestart();
    void aCompleteSnapshotSettlesWhatFinishedMeanwhile();
    void aSilentNetworkTakesTheLinkDown();
    void aTokenIsSentOnEveryCallAndNamesTheIssuer();
    void noTokenOrAWrongOneIsRefusedClearly();
    void onlyAnAdminDecidesAndAHeldBotIsAcceptedThenRevoked();
    void tlsWithTokenAndPlaintextToATlsHub();
    void settingsThatCannotWorkLeaveItUnattached();
    void anOlderHubIsSentNoRollout();
};

// A hub older than staged rollouts ignores a SendToMany's rollout and sends to every bot at
// once: the console finds out at attach (no ControlRollout) and offers no waves; a rollout
// asked all the same is refused with nothing sent. A hub that has them is told apart.
void TestRemoteBackend::anOlderHubIsSentNoRollout()
{
    FakeHub fake([](int, const v1::WatchRequest &) {
        WatchScript out;
        out.events.push_back(marker("snapshot_end", 0, 7));
        out.stayOpen = true;
        return out;
    });
    fake.answersWhoAmI = true;
    RemoteBackend backend(fake.address(), quick());
    QVERIFY(live(backend));
    QVERIFY(!backend.canRollOut());
    RolloutPlan plan;
    plan.batchPercent = 10;
    const SendReceipt receipt =
        backend.sendRollout({"bot-1", "bot-2"}, CommandSpec::of(CommandKind::Restart), 5s, plan);
    QVERIFY(!receipt.ok());
    QVERIFY2(receipt.error.contains("does not run staged rollouts"), qPrintable(receipt.error));
    QCOMPARE(fake.sendToManyCalls(), 0);
    HubSet set({fake.address()}, quick());
    QVERIFY(QTest::qWaitFor([&] { return set.link() == ConsoleBackend::Link::Live; }, 10'000));
    QVERIFY(!set.canRollOut());
    // opctl asks before it sends: nothing reaches the older hub, exit 5 (refused), and why.
    Opctl opctl({"--hub", fake.address(), "send", "--all", "restart", "--batch", "10%"});
    QCOMPARE(opctl.wait(), 5);
    QVERIFY2(opctl.err.contains("does not run staged rollouts"), qPrintable(opctl.err));
    QCOMPARE(fake.sendToManyCalls(), 0);
    // Without --batch it is sent (to all at once, as asked).
    Opctl atOnce({"--hub", fake.address(), "send", "--all", "restart"});
    QCOMPARE(atOnce.wait(), 0);
    QCOMPARE(fake.sendToManyCalls(), 1);

    // The real hub: it has them.
    HubRig rig;
    OperatorService api(*rig.service, rig.feed);
    api.attachTo(*rig.hub);
    QVERIFY(rig.start());
    RemoteBackend current(QString::fromStdString(rig.operatorAddress()), quick());
    QVERIFY(live(current));
    QVERIFY(current.canRollOut());
}

void TestRemoteBackend::resumesAfterTheServerRestartsWithNoGapOrDuplicate()
{
    // A fixed port, so that the server comes back where the console looks for it.
    int port = 0;
    int operatorPort = 0;
    {
        HubRig probe;
        OperatorService api(*probe.service, probe.feed);
        api.attachTo(*probe.hub);
        QVERIFY(probe.start());
        port = probe.hub->port();
        operatorPort = portOf(probe.operatorAddress());
        probe.hub->stop();
    }
    QVERIFY(operatorPort > 0);
    HubOptions options;
    options.listenAddress = QStringLiteral("127.0.0.1:%1").arg(port);
    options.operatorListenAddress = QStringLiteral("127.0.0.1:%1").arg(operatorPort);
    CommandRegistry registry;
    ChangeFeed feed(registry);
    Hub hub(registry, options);
    CommandService service(registry, hub);
    OperatorService api(service, feed);
    api.attachTo(hub);
    QVERIFY(hub.start());

    RemoteBackend backend(hub.operatorAddress(), quick());
    QVERIFY(live(backend));
    // A hub that asks no token: everyone is an admin, known by their address.
    QVERIFY(backend.canDecide());
    QVERIFY(!backend.identity().authenticated);
    QVERIFY2(backend.identity().name.startsWith("operator@"), qPrintable(backend.identity().name));
    CommandAckData ack;
    ack.success = true;
    auto traffic = [&](const QString &prefix, int n) {
        for (int i = 0; i < n; ++i) {
            const QString id = prefix + QString::number(i);
            registry.trackCommand(id, QStringLiteral("bot-1"), 30s, QStringLiteral("ping"));
            if (i % 3 != 0)
                registry.resolveCommand(id, QStringLiteral("bot-1"), ack);
        }
    };
    traffic("a-", 30);
    QTRY_COMPARE_WITH_TIMEOUT(backend.position(), feed.lastChange(), 10'000);

    // The server stops (the hub's registry and feed live on, in this process); meanwhile the
    // fleet moves on. Hub::stop() fails what is pending: those changes happen while down too.
    hub.stop();
    QTRY_COMPARE_WITH_TIMEOUT(backend.link(), ConsoleBackend::Link::Down, 10'000);
    traffic("b-", 30);
    QVERIFY(hub.start());
    QVERIFY(live(backend, 15'000));
    QTRY_COMPARE_WITH_TIMEOUT(backend.position(), feed.lastChange(), 10'000);
    const RemoteBackend::Stats stats = backend.stats();
    QCOMPARE(stats.resumes, 1u);
    QCOMPARE(stats.resyncs, 0u);
    QCOMPARE(stats.duplicates, 0u);
    QCOMPARE(stats.badRecords, 0u);
    // Everything the hub holds, in the state it holds it (the position moves as events are
    // read; the window's thread applies them on its next turns).
    const QList<CommandOutcome> held = registry.snapshot();
    QTRY_COMPARE_WITH_TIMEOUT(backend.commands().size(), held.size(), 10'000);
    for (const CommandOutcome &o : held) {
        const auto seen = find(backend, o.commandId);
        QVERIFY2(seen && seen->state == o.state && seen->change == o.change,
                 qPrintable(o.commandId));
    }
    hub.stop();
}

void TestRemoteBackend::hostileRecordsAreDroppedAndCounted()
{
    FakeHub fake([](int, const v1::WatchRequest &) {
        WatchScript out;
        out.events.push_back(marker("snapshot_end", 0, 7));
        std::vector<v1::WatchEvent> bad;
        bad.push_back(record("c-\x1b[2J", v1::OUTCOME_ACKED, 1));   // a control character
        bad.push_back(record("c-bad-outcome", v1::Outcome(99), 2)); // unknown outcome
        auto negative = record("c-negative", v1::OUTCOME_ACKED, 3);
        negative.mutable_command()->mutable_latency()->set_seconds(-5);
        bad.push_back(negative);
        auto progress = record("c-progress", v1::OUTCOME_PENDING, 4);
        progress.mutable_command()->set_progress_percent(1000);
        bad.push_back(progress);
        auto noDeadline = record("c-nodeadline", v1::OUTCOME_PENDING, 5);
        noDeadline.mutable_command()->clear_deadline();
        bad.push_back(noDeadline);
        v1::WatchEvent badBot;
        badBot.set_event("bot_connected");
        badBot.mutable_bot()->set_bot_id(std::string(200, 'x')); // too long
        bad.push_back(badBot);
        for (const auto &e : bad)
            out.events.push_back(e);
        // Far-future times are accepted, clamped; the ordinary ones too.
        auto future = record("c-future", v1::OUTCOME_ACKED, 6);
        future.mutable_command()->mutable_deadline()->set_seconds(253402300799LL);
        future.mutable_command()->mutable_finished_at()->set_seconds(253402300799LL);
        out.events.push_back(future);
        out.events.push_back(record("c-good", v1::OUTCOME_PENDING, 7, "f-1"));
        auto bigResult = record("c-big", v1::OUTCOME_ACKED, 8);
        bigResult.mutable_command()->mutable_ack()->set_command_id("c-big");
        bigResult.mutable_command()->mutable_ack()->set_result(std::string(70'000, 'r'));
        out.events.push_back(bigResult);                     // over the 64 KiB a result may have
        for (const char *id : {"bot-a", "bot-b", "bot-c"}) { // one more than the console keeps
            v1::WatchEvent bot;
            bot.set_event("bot_connected");
            bot.mutable_bot()->set_bot_id(id);
            bot.mutable_bot()->set_connected(true);
            out.events.push_back(bot);
        }
        v1::WatchEvent unknown; // an event of a newer hub: ignored
        unknown.set_event("something_new");
        out.events.push_back(unknown);
        out.stayOpen = true;
        return out;
    });
    RemoteBackend::Options options = quick();
    options.maxBots = 2;
    RemoteBackend backend(fake.address(), options);
    QVERIFY(live(backend));
    QTRY_COMPARE_WITH_TIMEOUT(backend.commands().size(), 2, 5000);
    QTRY_COMPARE_WITH_TIMEOUT(backend.stats().badRecords, 8u, 5000);
    QCOMPARE(backend.bots().size(), 2);
    QVERIFY(find(backend, "c-good"));
    const auto future = find(backend, "c-future");
    QVERIFY(future);
    QVERIFY2(future->latency() >= nanoseconds::zero() && future->latency() <= hours(24 * 366),
             qPrintable(QStringLiteral("%1 h; registered %2 h, finished %3 h from now, sent %4")
                            .arg(double(future->latency().count()) / 3.6e12)
                            .arg(double((future->registeredAt - Clock::now()).count()) / 3.6e12)
                            .arg(double((future->finishedAt - Clock::now()).count()) / 3.6e12)
                            .arg(future->wasSent())));
    QVERIFY(future->deadline - Clock::now() < hours(24 * 366 * 101));
    QCOMPARE(backend.pendingCount("bot-1"), 1);
}

void TestRemoteBackend::changesGoingBackwardsAreIgnored()
{
    FakeHub fake([](int, const v1::WatchRequest &) {
        WatchScript out;
        out.events.push_back(marker("snapshot_end", 0, 7));
        out.events.push_back(record("c-1", v1::OUTCOME_PENDING, 4));
        out.events.push_back(record("c-1", v1::OUTCOME_ACKED, 10));
        out.events.push_back(record("c-1", v1::OUTCOME_PENDING, 5)); // older: ignored
        out.events.push_back(record("c-1", v1::OUTCOME_ACKED, 10));  // the same again: ignored
        out.events.push_back(record("c-2", v1::OUTCOME_PENDING, 11));
        out.stayOpen = true;
        return out;
    });
    RemoteBackend backend(fake.address(), quick());
    QVERIFY(live(backend));
    QTRY_VERIFY_WITH_TIMEOUT(find(backend, "c-2").has_value(), 5000);
    QCOMPARE(find(backend, "c-1")->state, CommandState::Acked);
    QCOMPARE(backend.stats().duplicates, 2u);
    QCOMPARE(backend.pendingCount("bot-1"), 1); // c-2 only
    QCOMPARE(backend.position(), 11u);
}

void TestRemoteBackend::anotherRunMarksWhatWasPendingAsLost()
{
    FakeHub fake([](int call, const v1::WatchRequest &request) {
        WatchScript out;
        if (call == 1) {
            out.events.push_back(record("c-old", v1::OUTCOME_PENDING, 3));
            out.events.push_back(record("c-done", v1::OUTCOME_ACKED, 4));
            out.events.push_back(marker("snapshot_end", 4, 111));
            out.events.push_back(record("c-late", v1::OUTCOME_PENDING, 5));
            out.status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "gone");
            return out;
        }
        // Asked to resume after 5 of feed 111: this is run 222.
        if (request.resume_after() != 5 || request.feed_id() != 111) {
            out.status = grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "wrong resume point");
            return out;
        }
        out.events.push_back(marker("resync", 1, 222));
        out.events.push_back(record("c-new", v1::OUTCOME_PENDING, 1));
        out.events.push_back(marker("snapshot_end", 1, 222));
        out.stayOpen = true;
        return out;
    });
    RemoteBackend backend(fake.address(), quick());
    QTRY_VERIFY_WITH_TIMEOUT(find(backend, "c-new").has_value(), 10'000);
    QVERIFY(live(backend));
    QCOMPARE(fake.requests().size(), size_t(2));
    QVERIFY(fake.requests()[0].snapshot());
    QCOMPARE(backend.stats().resyncs, 1u);
    for (const char *lost : {"c-old", "c-late"}) {
        const auto o = find(backend, lost);
        QVERIFY(o);
        QCOMPARE(o->state, CommandState::Disconnected);
        QVERIFY(o->reason.contains("restarted"));
    }
    QCOMPARE(find(backend, "c-done")->state, CommandState::Acked);
    QCOMPARE(backend.pendingCount("bot-1"), 1); // c-new
    QCOMPARE(backend.position(), 1u);
}

void TestRemoteBackend::destroyedWithCallsInFlight()
{
    // Sends that the hub never answers, then the console goes away: nothing waits for them,
    // nothing crashes when their callbacks come after it.
    auto fake = std::make_unique<FakeHub>([](int, const v1::WatchRequest &) {
        WatchScript out;
        out.events.push_back(marker("snapshot_end", 0, 9));
        out.stayOpen = true;
        return out;
    });
    {
        RemoteBackend backend(fake->address(), quick());
        QVERIFY(live(backend));
        for (int i = 0; i < 20; ++i)
            QVERIFY(backend.send({"bot-1"}, CommandSpec::of(CommandKind::Ping), 5s).ok());
        QTRY_COMPARE_WITH_TIMEOUT(fake->sendCalls(), 20, 10'000);
        // The destructor ends the Watch thread; it must not wait for the calls.
    }
    fake.reset(); // the calls end now (UNAVAILABLE), their callbacks find no console
    QCoreApplication::processEvents();
}

void TestRemoteBackend::aResyncCutShortIsNotARestart()
{
    // Review finding: a resync that broke before snapshot_end made the next plain snapshot
    // look like another run, and every pending command was marked lost.
    FakeHub fake([](int call, const v1::WatchRequest &) {
        WatchScript out;
        if (call == 1) {
            out.events.push_back(record("c-1", v1::OUTCOME_PENDING, 1));
            out.events.push_back(marker("snapshot_end", 1, 77));
            out.status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "blip");
        } else if (call == 2) {
            out.events.push_back(marker("resync", 9, 77)); // then the stream breaks
            out.status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "blip again");
        } else {
            out.events.push_back(record("c-2", v1::OUTCOME_PENDING, 9));
            out.events.push_back(marker("snapshot_end", 9, 77)); // same run, c-1 not listed
            out.stayOpen = true;
        }
        return out;
    });
    RemoteBackend backend(fake.address(), quick());
    QTRY_VERIFY_WITH_TIMEOUT(
        find(backend, "c-2").has_value() && backend.link() == ConsoleBackend::Link::Live, 10'000);
    QCOMPARE(fake.requests().size(), size_t(3));
    QVERIFY(fake.requests()[2].snapshot()); // no position after the broken resync
    QCOMPARE(find(backend, "c-1")->state, CommandState::Pending); // not "the hub restarted"
}

void TestRemoteBackend::aCompleteSnapshotSettlesWhatFinishedMeanwhile()
{
    // Review finding: after a same-run resync, a command that finished while the console was
    // away stayed pending forever. A snapshot that lists every pending command settles it.
    for (const bool complete : {true, false}) {
        FakeHub fake([complete](int call, const v1::WatchRequest &) {
            WatchScript out;
            if (call == 1) {
                out.events.push_back(record("x-1", v1::OUTCOME_PENDING, 1, "f-9"));
                out.events.push_back(marker("snapshot_end", 1, 5));
                out.status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "blip");
                return out;
            }
            out.events.push_back(marker("resync", 70'000, 5));
            out.events.push_back(record("x-2", v1::OUTCOME_PENDING, 69'999, "f-9"));
            v1::WatchEvent end = marker("snapshot_end", 70'000, 5);
            end.set_complete(complete);
            out.events.push_back(end);
            out.stayOpen = true;
            return out;
        });
        RemoteBackend backend(fake.address(), quick());
        FanOutTracker tally; // as the window's fan-out list applies what the console emits
        connect(&backend, &ConsoleBackend::commandsChanged, this,
                [&tally](const QList<CommandOutcome> &records) {
                    for (const CommandOutcome &o : records)
                        tally.apply(o);
                });
        QTRY_VERIFY_WITH_TIMEOUT(find(backend, "x-2").has_value() &&
                                     backend.link() == ConsoleBackend::Link::Live,
                                 10'000);
        const CommandOutcome x1 = *find(backend, "x-1");
        if (complete) {
            QCOMPARE(x1.state, CommandState::Disconnected);
            QVERIFY2(x1.reason.contains("not attached"), qPrintable(x1.reason));
            QCOMPARE(backend.pendingCount("bot-1"), 1);
            QCOMPARE(tally.find("f-9")->pending, 1); // the settled one left "pending" (review 2)
            QCOMPARE(tally.find("f-9")->disconnected, 1);
        } else {
            QCOMPARE(x1.state, CommandState::Pending); // the hub could not list them all
            QCOMPARE(backend.pendingCount("bot-1"), 2);
        }
    }
}

void TestRemoteBackend::aSilentNetworkTakesTheLinkDown()
{
    // Review finding: with no keepalive, a network that drops everything and closes nothing
    // left the console Live forever. Keepalive pings (here every second, 1 s to answer) find it.
    HubRig rig;
    OperatorService api(*rig.service, rig.feed);
    api.attachTo(*rig.hub);
    QVERIFY(rig.start());
    TcpProxy proxy(portOf(rig.operatorAddress()));
    RemoteBackend::Options options = quick();
    options.keepaliveTime = 1s;
    options.keepaliveTimeout = 1s;
    RemoteBackend backend(QStringLiteral("127.0.0.1:%1").arg(proxy.port()), options);
    QVERIFY(live(backend));
    // Quiet and healthy for several ping intervals: the hub accepts the pings, still Live.
    QTest::qWait(3500); // the interval under test: keepalive must not trip a healthy link
    QCOMPARE(backend.link(), ConsoleBackend::Link::Live);
    proxy.freeze(true);
    QTRY_COMPARE_WITH_TIMEOUT(backend.link(), ConsoleBackend::Link::Down, 15'000);
    QVERIFY(!backend.send({"bot-1"}, CommandSpec::of(CommandKind::Ping), 1s).ok());
    proxy.freeze(false);
    QVERIFY(live(backend, 20'000));
    rig.hub->stop();
}

void TestRemoteBackend::aTokenIsSentOnEveryCallAndNamesTheIssuer()
{
    GuardedHub hub;
    QVERIFY(hub.started);
    RawBot bot(hub.rig->address(), {nullptr, hub.rack.toStdString(), {}});
    QVERIFY(!bot.hello("bot-1")); // held: no Welcome yet
    QVERIFY(hub.rig->hub->decideBot("bot-1", AdmissionAction::Accept, "test", {}).error ==
            DecisionResult::Error::None);
    QVERIFY(bot.read().value_or(v1::HubMessage{}).has_welcome());

    RemoteBackend backend(hub.operatorAddress(), withToken(hub.operatorToken));
    QSignalSpy identity(&backend, &ConsoleBackend::identityChanged);
    QVERIFY(live(backend));
    QCOMPARE(identity.count(), 1);
    QCOMPARE(backend.identity().name, QString("olga"));
    QCOMPARE(backend.identity().role, security::Role::Operator);
    QVERIFY(backend.identity().authenticated);
    QVERIFY(!backend.canDecide()); // an operator, not an admin
    QTRY_VERIFY_WITH_TIMEOUT(backend.bot("bot-1") && backend.bot("bot-1")->connected, 5000);

    // Send (SendCommand), cancel (CancelCommand) and the history page all carry the token.
    const SendReceipt sent = backend.send({"bot-1"}, CommandSpec::of(CommandKind::Ping), 5s);
    QVERIFY2(sent.ok(), qPrintable(sent.error));
    const auto command = bot.readCommand();
    QVERIFY(command);
    QCOMPARE(QString::fromStdString(command->command_id()), sent.commandIds.value(0));
    bot.ack(command->command_id());
    QTRY_VERIFY_WITH_TIMEOUT(find(backend, sent.commandIds.value(0)) &&
                                 find(backend, sent.commandIds.value(0))->state ==
                                     CommandState::Acked,
                             5000);
    QCOMPARE(find(backend, sent.commandIds.value(0))->issuer, QString("olga"));
    const SendReceipt stop = backend.send({"bot-1"}, CommandSpec::of(CommandKind::Stop), 30s);
    QVERIFY(stop.ok());
    QVERIFY(bot.readCommand());
    QVERIFY(backend.cancel(stop.commandIds.value(0), "test"));
    QTRY_VERIFY_WITH_TIMEOUT(find(backend, stop.commandIds.value(0)) &&
                                 find(backend, stop.commandIds.value(0))->state ==
                                     CommandState::Cancelled,
                             5000);
    const auto page = await(backend.queryHistory(HistoryQuery{}));
    QVERIFY(page);
    // This hub keeps no history: the hub's own answer, not a refusal of the token.
    QVERIFY2(!page->error.contains("token"), qPrintable(page->error));
    QCOMPARE(hub.api->accessCounters().unauthenticated, 0u);
    hub.rig->hub->stop();
}

void TestRemoteBackend::noTokenOrAWrongOneIsRefusedClearly()
{
    GuardedHub hub;
    QVERIFY(hub.started);
    RemoteBackend::Options none = quick();
    RemoteBackend anonymous(hub.operatorAddress(), none);
    RemoteBackend wrong(hub.operatorAddress(), withToken(security::newToken()));
    for (RemoteBackend *backend : {&anonymous, &wrong})
        QTRY_COMPARE_WITH_TIMEOUT(backend->link(), ConsoleBackend::Link::Down, 10'000);
    QVERIFY2(anonymous.linkProblem().contains("asks for an operator token") &&
                 anonymous.linkProblem().contains("--token-file"),
             qPrintable(anonymous.linkProblem()));
    QVERIFY2(wrong.linkProblem().contains("refused this console's operator token"),
             qPrintable(wrong.linkProblem()));
    // Asked again only seldom (options.refusedRetry, 30 s), not with the quick back-off.
    const quint64 refusedOnce = hub.api->accessCounters().unauthenticated;
    QVERIFY(refusedOnce >= 2);
    QVERIFY2(anonymous.linkProblem().contains("retrying in 3"),
             qPrintable(anonymous.linkProblem()));
    for (RemoteBackend *backend : {&anonymous, &wrong}) {
        const SendReceipt r = backend->send({"bot-1"}, CommandSpec::of(CommandKind::Ping), 1s);
        QVERIFY(!r.ok());
        QVERIFY2(r.error.contains("operator token"), qPrintable(r.error));
        QCOMPARE(backend->identity().role, security::Role::None);
        QVERIFY(!backend->canDecide());
    }
    hub.rig->hub->stop();
}

void TestRemoteBackend::onlyAnAdminDecidesAndAHeldBotIsAcceptedThenRevoked()
{
    GuardedHub hub;
    QVERIFY(hub.started);
    RemoteBackend admin(hub.operatorAddress(), withToken(hub.admin));
    RemoteBackend viewer(hub.operatorAddress(), withToken(hub.viewer));
    QVERIFY(live(admin) && live(viewer));
    QCOMPARE(admin.identity().name, QString("alice"));
    QVERIFY(admin.canDecide());
    QVERIFY(admin.canDecide(hub.operatorAddress()));
    QVERIFY(!admin.canDecide("elsewhere:1"));
    QCOMPARE(viewer.identity().role, security::Role::Viewer);
    QVERIFY(!viewer.canDecide());
    // The rollout probe is not asked as a viewer (it would be a refused access at each attach);
    // the admin's is refused as a bad request, not a denial.
    QVERIFY(admin.canRollOut());
    QVERIFY(!viewer.canRollOut());
    QCOMPARE(hub.api->accessCounters().permissionDenied, 0u);

    // A bot with a valid token, never accepted: held, and listed as awaiting approval.
    RawBot bot(hub.rig->address(), {nullptr, hub.rack.toStdString(), {}});
    QVERIFY(!bot.hello("bot-7"));
    QTRY_VERIFY_WITH_TIMEOUT(admin.bot("bot-7") && viewer.bot("bot-7"), 5000);
    QCOMPARE(admin.bot("bot-7")->admission, BotAdmission::Awaiting);
    QCOMPARE(admin.bot("bot-7")->credential, QString("token:rack"));
    QVERIFY(!admin.bot("bot-7")->connected);
    QCOMPARE(admin.bot("bot-7")->hub, hub.operatorAddress());

    // A viewer is refused, with the hub's reason; the bot stays held.
    const auto refused = await(viewer.decideBot("bot-7", BotDecision::Accept, {}));
    QVERIFY(refused);
    QVERIFY2(refused->error.contains("not allowed") && refused->error.contains("admin"),
             qPrintable(refused->error));
    QVERIFY(!hub.rig->hub->isConnected("bot-7"));

    // The admin accepts: the bot gets its Welcome, and a command reaches it.
    const auto accepted = await(admin.decideBot("bot-7", BotDecision::Accept, "known rack"));
    QVERIFY(accepted);
    QVERIFY2(accepted->ok(), qPrintable(accepted->error));
    QCOMPARE(accepted->message, QString("bot-7 accepted"));
    QVERIFY(accepted->bot && accepted->bot->admission == BotAdmission::Accepted);
    QVERIFY(bot.read().value_or(v1::HubMessage{}).has_welcome());
    QTRY_VERIFY_WITH_TIMEOUT(admin.bot("bot-7")->connected &&
                                 admin.bot("bot-7")->admission == BotAdmission::Accepted,
                             5000);
    QCOMPARE(hub.admission->find("bot-7").by, QString("alice"));
    const SendReceipt sent = admin.send({"bot-7"}, CommandSpec::of(CommandKind::Ping), 5s);
    QVERIFY(sent.ok());
    QVERIFY(bot.readCommand());

    // Revoked: disconnected at once, refused from now on.
    const auto revoked = await(admin.decideBot("bot-7", BotDecision::Revoke, "stolen"));
    QVERIFY(revoked && revoked->ok());
    const auto closed = bot.waitClosed();
    QVERIFY(closed);
    QCOMPARE(closed->error_code(), grpc::StatusCode::PERMISSION_DENIED);
    QTRY_VERIFY_WITH_TIMEOUT(!admin.bot("bot-7")->connected &&
                                 admin.bot("bot-7")->admission == BotAdmission::Rejected,
                             5000);
    // Deciding on a bot nobody knows is refused with the hub's reason.
    const auto unknown = await(admin.decideBot("nobody", BotDecision::Accept, {}));
    QVERIFY(unknown && !unknown->ok());
    QVERIFY2(unknown->error.contains("nobody"), qPrintable(unknown->error));
    hub.rig->hub->stop();
}

void TestRemoteBackend::tlsWithTokenAndPlaintextToATlsHub()
{
    TestCerts certs;
    QString error;
    QVERIFY2(certs.make({}, {"alice"}, &error), qPrintable(error));
    GuardedHub hub(&certs);
    QVERIFY(hub.started);
    // TLS with the hub's CA (and a client certificate: mTLS) and a token: attached.
    RemoteBackend secure(hub.operatorAddress(),
                         withToken(hub.admin, security::ClientTls{certs.ca(),
                                                                  certs.operatorCert("alice"),
                                                                  certs.operatorKey("alice"),
                                                                  {}}));
    QVERIFY(live(secure));
    QCOMPARE(secure.identity().name, QString("alice"));
    // The token over plaintext to a TLS listener: never attached, and says so.
    RemoteBackend plain(hub.operatorAddress(), withToken(hub.admin));
    QTRY_COMPARE_WITH_TIMEOUT(plain.link(), ConsoleBackend::Link::Down, 10'000);
    QVERIFY2(plain.linkProblem().contains(hub.operatorAddress()), qPrintable(plain.linkProblem()));
    QCOMPARE(plain.stats().attaches, 0u);
    QCOMPARE(plain.identity().role, security::Role::None);
    hub.rig->hub->stop();
}

void TestRemoteBackend::settingsThatCannotWorkLeaveItUnattached()
{
    const RemoteSecurity missingCa{security::ClientTls{"/nonexistent/ca.pem", {}, {}, {}}, {}};
    QVERIFY(!missingCa.problem().isEmpty());
    const RemoteSecurity badToken{{}, QByteArray("opc_with space")};
    QVERIFY(badToken.problem().contains("token"));
    QVERIFY(RemoteSecurity{}.problem().isEmpty());

    RemoteBackend::Options options = quick();
    options.security = missingCa;
    RemoteBackend backend("127.0.0.1:1", options);
    QCOMPARE(backend.link(), ConsoleBackend::Link::Down);
    QVERIFY2(backend.linkProblem().startsWith("cannot attach to 127.0.0.1:1"),
             qPrintable(backend.linkProblem()));
    QVERIFY(!backend.send({"bot-1"}, CommandSpec::of(CommandKind::Ping), 1s).ok());
    QVERIFY(!backend.cancel("c-1", "test"));
    const auto page = await(backend.queryHistory(HistoryQuery{}));
    QVERIFY(page && !page->error.isEmpty());
    const auto decided = await(backend.decideBot("bot-1", BotDecision::Accept, {}));
    QVERIFY(decided && !decided->ok());
}

QTEST_GUILESS_MAIN(TestRemoteBackend)
#include "tst_remotebackend.moc"
