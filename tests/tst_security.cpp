// Security over real TLS on loopback (docs/security.md): certificates made at run time by
// scripts/certs.sh, a real hub with its two listeners, raw bots and Operator clients. Each
// refusal is checked for its status, and the legitimate case beside it for working.
#include "admission.h"
#include "hubrig.h"
#include "opconsole/v1/operator.grpc.pb.h"
#include "operatorservice.h"
#include "rawbot.h"
#include "testcerts.h"
#include "tlscredentials.h"
#include "tokens.h"

#include <QTest>

#include <grpcpp/generic/generic_stub.h>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/time_util.h>

#include <future>

using namespace opconsole;
using namespace std::chrono;
using google::protobuf::util::TimeUtil;

namespace {

// The operators of every rig: one per role, and an operator scoped to group=a.
struct Tokens
{
    QString admin = security::newToken();
    QString operatorAll = security::newToken();
    QString scoped = security::newToken();
    QString viewer = security::newToken();
    QString rack = security::newToken();  // a bot token for sim-* and bot-* ids
    QString other = security::newToken(); // a bot token for one id, other-1

    QByteArray operatorsFile() const
    {
        return ("alice admin " + security::tokenHash(admin.toUtf8()) + "\n" + "olga operator " +
                security::tokenHash(operatorAll.toUtf8()) + "\n" + "sam operator " +
                security::tokenHash(scoped.toUtf8()) + " group=a\n" + "vic viewer " +
                security::tokenHash(viewer.toUtf8()) + "\n")
            .toUtf8();
    }
    QByteArray botTokensFile() const
    {
        return ("rack sim-*,bot-* " + security::tokenHash(rack.toUtf8()) + "\n" + "lone other-1 " +
                security::tokenHash(other.toUtf8()) + "\n")
            .toUtf8();
    }
};

struct SecureRig
{
    explicit SecureRig(TestCerts &certs, const Tokens &tokens, HubOptions options = {},
                       double sendsPerSecond = 1000, const QString &admissionFile = {})
        : certs(certs)
    {
        QString error;
        options.listenAddress = QStringLiteral("127.0.0.1:0");
        options.operatorListenAddress = QStringLiteral("127.0.0.1:0");
        const security::ServerTls tls{certs.hubCert(), certs.hubKey(), certs.ca()};
        options.botCredentials = security::serverCredentials(tls, &error);
        options.operatorCredentials = security::serverCredentials(tls, &error);
        options.security.certificates = true;
        options.security.tokens =
            security::BotTokens::parse(tokens.botTokensFile(), "test", &error);
        admission = security::AdmissionStore::open(admissionFile, &error);
        options.security.admission = admission.get();
        rig = std::make_unique<HubRig>(options);
        api = std::make_unique<OperatorService>(*rig->service, rig->feed);
        api->setAccess({security::OperatorDirectory::parse(tokens.operatorsFile(), "test", &error),
                        sendsPerSecond});
        api->attachTo(*rig->hub);
        started = rig->start();
        operatorChannel = grpc::CreateChannel(rig->operatorAddress(), clientTls());
        stub = v1::Operator::NewStub(operatorChannel);
    }
    ~SecureRig() { api.reset(); } // stops the hub first

    std::shared_ptr<grpc::ChannelCredentials> clientTls(const QString &certName = {}) const
    {
        QString error;
        security::ClientTls tls{certs.ca(), {}, {}, {}};
        if (!certName.isEmpty()) {
            tls.cert = certs.botCert(certName);
            tls.key = certs.botKey(certName);
        }
        return security::channelCredentials(tls, &error);
    }
    // A bot with the certificate of `certName`, and/or a token.
    std::unique_ptr<RawBot> bot(const QString &certName, const QString &token = {}) const
    {
        return std::make_unique<RawBot>(
            rig->address(), RawBotCredentials{clientTls(certName), token.toStdString(), {}});
    }

    TestCerts &certs;
    std::unique_ptr<security::AdmissionStore> admission;
    std::unique_ptr<HubRig> rig;
    std::unique_ptr<OperatorService> api;
    std::shared_ptr<grpc::Channel> operatorChannel;
    std::unique_ptr<v1::Operator::Stub> stub;
    bool started = false;
};

void authorize(grpc::ClientContext &context, const QString &token)
{
    if (!token.isEmpty())
        context.AddMetadata("authorization", "Bearer " + token.toStdString());
    context.set_deadline(system_clock::now() + 10s);
}

v1::SendCommandRequest ping(const std::string &bot, int timeoutMs = 5000)
{
    v1::SendCommandRequest request;
    request.set_bot_id(bot);
    request.mutable_command()->mutable_ping();
    *request.mutable_timeout() = TimeUtil::MillisecondsToDuration(timeoutMs);
    return request;
}

// SendCommand on a thread (it waits for the outcome) while the test drives the bot.
std::future<std::pair<grpc::Status, v1::SendCommandResponse>>
sendAsync(v1::Operator::Stub &stub, const QString &token, v1::SendCommandRequest request)
{
    return std::async(std::launch::async, [&stub, token, request] {
        grpc::ClientContext context;
        authorize(context, token);
        v1::SendCommandResponse response;
        const grpc::Status status = stub.SendCommand(&context, request, &response);
        return std::pair{status, response};
    });
}

// The bot answers the commands it gets until `count` are acked (bounded by the reads' waits).
void answer(RawBot &bot, int count)
{
    for (int i = 0; i < count; ++i) {
        const auto command = bot.readCommand();
        if (!command)
            return;
        bot.ack(command->command_id());
    }
}

grpc::Status decide(v1::Operator::Stub &stub, const QString &token, const std::string &bot,
                    v1::Decision decision, v1::DecideBotResponse *response = nullptr)
{
    grpc::ClientContext context;
    authorize(context, token);
    v1::DecideBotRequest request;
    request.set_bot_id(bot);
    request.set_decision(decision);
    request.set_reason("test");
    v1::DecideBotResponse unused;
    return stub.DecideBot(&context, request, response ? response : &unused);
}

} // namespace

class TestSecurity : public QObject
{
    Q_OBJECT

private slots:
    void initTestCase();
    void plaintextClientToTlsHubIsRefused();
    void certificateFromAnotherCaIsRefused();
    void botCertificateCoversItsOwnIdOnly();
    void botTokenCoversItsIdsOnly();
    void botWithoutCredentialOrWithWrongTokenIsUnauthenticated();
    void impostorCannotReplaceLiveSession();
    void unknownBotIsHeldThenAcceptedThenRevoked();
    void decisionsSurviveRestart();
    void decisionsRacingStreamsLeaveAConsistentTable();
    void revokeRacingHellosLeavesNothingLive();
    void heldBotIsNotDisplacedByAnotherCredential();
    void aBotGoingLiveEndsAnotherCredentialsHeldStream();
    void acceptRacingRejectEndsAsTheLaterSays();
    void scopeIsCheckedAgainWhenAWaitingCommandIsWritten();
    void everyOperatorMethodAsksForAToken();
    void viewerCannotSendOrDecide();
    void scopedOperatorAloneAndInsideFanOut();
    void issuerIsTheTokensName();
    void operatorApiIsNotOnTheBotPort();
    void sendsPerOperatorAreRateLimited();
    void streamsPerCredentialAreLimited();

private:
    TestCerts m_certs;
    Tokens m_tokens;
};

void TestSecurity::initTestCase()
{
    QString error;
    QVERIFY2(m_certs.make({"bot-a", "bot-b", "bot-c", "grp-a1", "grp-b1"}, {"alice"}, &error),
             qPrintable(error));
}

void TestSecurity::plaintextClientToTlsHubIsRefused()
{
    SecureRig secure(m_certs, m_tokens);
    QVERIFY(secure.started);
    // A plaintext bot: the TLS listener never completes its handshake.
    RawBot plain(secure.rig->address());
    QVERIFY(!plain.hello("bot-a"));
    const auto status = plain.waitClosed();
    QVERIFY(status);
    QCOMPARE(status->error_code(), grpc::StatusCode::UNAVAILABLE);
    QCOMPARE(secure.rig->hub->connectedBotIds().size(), 0);
    // A plaintext operator, even with a valid admin token.
    auto plainOperator = v1::Operator::NewStub(
        grpc::CreateChannel(secure.rig->operatorAddress(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    authorize(context, m_tokens.admin);
    v1::ListBotsResponse bots;
    QCOMPARE(plainOperator->ListBots(&context, {}, &bots).error_code(),
             grpc::StatusCode::UNAVAILABLE);
    // The legitimate case: TLS with the CA.
    grpc::ClientContext ok;
    authorize(ok, m_tokens.admin);
    QVERIFY(secure.stub->ListBots(&ok, {}, &bots).ok());
}

void TestSecurity::certificateFromAnotherCaIsRefused()
{
    TestCerts strangers;
    QString error;
    QVERIFY2(strangers.make({"bot-a"}, {}, &error), qPrintable(error));
    SecureRig secure(m_certs, m_tokens);
    // Its own CA trusts the hub (it does not know the hub's CA): the hub's certificate fails.
    {
        security::ClientTls tls{
            strangers.ca(), strangers.botCert("bot-a"), strangers.botKey("bot-a"), {}};
        RawBot bot(secure.rig->address(),
                   RawBotCredentials{security::channelCredentials(tls, &error), {}, {}});
        QVERIFY(!bot.hello("bot-a"));
    }
    // Trusting the hub's CA, but presenting a certificate the hub's CA did not sign.
    {
        security::ClientTls tls{
            m_certs.ca(), strangers.botCert("bot-a"), strangers.botKey("bot-a"), {}};
        RawBot bot(secure.rig->address(),
                   RawBotCredentials{security::channelCredentials(tls, &error), {}, {}});
        QVERIFY(!bot.hello("bot-a"));
        const auto status = bot.waitClosed();
        QVERIFY(status && !status->ok());
    }
    QVERIFY(!secure.rig->hub->isConnected(QStringLiteral("bot-a")));
}

void TestSecurity::botCertificateCoversItsOwnIdOnly()
{
    SecureRig secure(m_certs, m_tokens);
    auto liar = secure.bot(QStringLiteral("bot-a"));
    const auto reply = liar->sayHello("bot-b");
    QVERIFY(reply && reply->has_reject());
    QVERIFY2(reply->reject().reason().find("does not cover bot id bot-b") != std::string::npos,
             reply->reject().reason().c_str());
    const auto status = liar->waitClosed();
    QVERIFY(status);
    QCOMPARE(status->error_code(), grpc::StatusCode::PERMISSION_DENIED);
    QVERIFY(!secure.rig->hub->bot(QStringLiteral("bot-b"))); // never published
    QVERIFY(secure.rig->hub->counters().permissionDenied >= 1);

    auto honest = secure.bot(QStringLiteral("bot-a"));
    QVERIFY(honest->hello("bot-a"));
    QCOMPARE(secure.rig->hub->bot(QStringLiteral("bot-a"))->credential.left(5),
             QStringLiteral("cert:"));
    auto call = sendAsync(*secure.stub, m_tokens.operatorAll, ping("bot-a"));
    answer(*honest, 1);
    const auto [status2, response] = call.get();
    QVERIFY2(status2.ok(), status2.error_message().c_str());
    QCOMPARE(response.record().outcome(), v1::OUTCOME_ACKED);
}

void TestSecurity::botTokenCoversItsIdsOnly()
{
    SecureRig secure(m_certs, m_tokens);
    auto outside = secure.bot({}, m_tokens.other); // "lone": other-1 only
    const auto reply = outside->sayHello("sim-1");
    QVERIFY(reply && reply->has_reject());
    QCOMPARE(outside->waitClosed()->error_code(), grpc::StatusCode::PERMISSION_DENIED);

    auto inside = secure.bot({}, m_tokens.rack); // sim-* and bot-*
    QVERIFY(inside->hello("sim-7"));
    QCOMPARE(secure.rig->hub->bot(QStringLiteral("sim-7"))->credential,
             QStringLiteral("token:rack"));
    auto lone = secure.bot({}, m_tokens.other);
    QVERIFY(lone->hello("other-1"));
}

void TestSecurity::botWithoutCredentialOrWithWrongTokenIsUnauthenticated()
{
    SecureRig secure(m_certs, m_tokens);
    for (const QString &token :
         {QString(), security::newToken(), QStringLiteral("not a token"), QString(600, u'x')}) {
        auto bot = secure.bot({}, token);
        QVERIFY(!bot->hello("sim-1"));
        const auto status = bot->waitClosed();
        QVERIFY(status);
        QCOMPARE(status->error_code(), grpc::StatusCode::UNAUTHENTICATED);
    }
    QVERIFY(secure.rig->hub->counters().unauthenticated >= 4);
    QVERIFY(!secure.rig->hub->bot(QStringLiteral("sim-1")));
}

void TestSecurity::impostorCannotReplaceLiveSession()
{
    SecureRig secure(m_certs, m_tokens);
    auto real = secure.bot(QStringLiteral("bot-a"));
    QVERIFY(real->hello("bot-a"));
    // The rack token covers bot-* too, but bot-a is live with its certificate.
    for (int round = 0; round < 20; ++round) {
        auto impostor = secure.bot({}, m_tokens.rack);
        const auto reply = impostor->sayHello("bot-a");
        QVERIFY(reply && reply->has_reject());
        QVERIFY2(reply->reject().reason().find("another credential") != std::string::npos,
                 reply->reject().reason().c_str());
        QCOMPARE(impostor->waitClosed()->error_code(), grpc::StatusCode::PERMISSION_DENIED);
    }
    QCOMPARE(secure.rig->hub->counters().sessionsReplaced, quint64(0));
    // The real bot still gets its commands.
    auto call = sendAsync(*secure.stub, m_tokens.operatorAll, ping("bot-a"));
    answer(*real, 1);
    QCOMPARE(call.get().second.record().outcome(), v1::OUTCOME_ACKED);
    // The same credential may reconnect (the old stream is replaced as before).
    auto again = secure.bot(QStringLiteral("bot-a"));
    QVERIFY(again->hello("bot-a"));
    QCOMPARE(real->waitClosed()->error_code(), grpc::StatusCode::ABORTED);
}

void TestSecurity::unknownBotIsHeldThenAcceptedThenRevoked()
{
    HubOptions options;
    options.security.approveNew = true;
    SecureRig secure(m_certs, m_tokens, options);
    auto bot = secure.bot(QStringLiteral("bot-b"));
    const auto reply = bot->sayHello("bot-b");
    QVERIFY(reply && reply->has_held());
    Hub &hub = *secure.rig->hub;
    QVERIFY(!hub.isConnected(QStringLiteral("bot-b")));
    QCOMPARE(hub.bot(QStringLiteral("bot-b"))->admission, BotAdmission::Awaiting);
    // No command reaches a held bot.
    auto held =
        secure.rig->service->send(QStringLiteral("bot-b"), CommandSpec::of(CommandKind::Ping), 2s);
    QVERIFY(QTest::qWaitFor([&] { return held.isFinished(); }, 5000));
    QCOMPARE(held.result().state, CommandState::NotConnected);
    QVERIFY2(held.result().reason.contains(QLatin1String("awaiting approval")),
             qPrintable(held.result().reason));
    QVERIFY(!bot->readCommand(200ms));
    // Listed as awaiting, with its credential.
    {
        grpc::ClientContext context;
        authorize(context, m_tokens.viewer);
        v1::ListBotsResponse bots;
        QVERIFY(secure.stub->ListBots(&context, {}, &bots).ok());
        QCOMPARE(bots.bots_size(), 1);
        QCOMPARE(bots.bots(0).admission(), v1::ADMISSION_AWAITING);
        QVERIFY(bots.bots(0).credential().starts_with("cert:"));
    }
    // An operator may not decide; an admin may.
    QCOMPARE(decide(*secure.stub, m_tokens.operatorAll, "bot-b", v1::DECISION_ACCEPT).error_code(),
             grpc::StatusCode::PERMISSION_DENIED);
    v1::DecideBotResponse decided;
    const grpc::Status accepted =
        decide(*secure.stub, m_tokens.admin, "bot-b", v1::DECISION_ACCEPT, &decided);
    QVERIFY2(accepted.ok(), accepted.error_message().c_str());
    QCOMPARE(decided.bot().admission(), v1::ADMISSION_ACCEPTED);
    QCOMPARE(decided.bot().connected(), true);
    const auto welcome = bot->read();
    QVERIFY(welcome && welcome->has_welcome());
    QCOMPARE(secure.admission->find(QStringLiteral("bot-b")).decision,
             security::AdmissionDecision::Accepted);
    QCOMPARE(secure.admission->find(QStringLiteral("bot-b")).by, QStringLiteral("alice"));
    auto call = sendAsync(*secure.stub, m_tokens.operatorAll, ping("bot-b"));
    answer(*bot, 1);
    QCOMPARE(call.get().second.record().outcome(), v1::OUTCOME_ACKED);
    // Accepted: it reconnects straight in.
    bot.reset();
    bot = secure.bot(QStringLiteral("bot-b"));
    QVERIFY(bot->hello("bot-b"));
    // Revoked: disconnected at once, its pending command fails, and it is refused afterwards.
    auto pending = sendAsync(*secure.stub, m_tokens.operatorAll, ping("bot-b", 30'000));
    QVERIFY(bot->readCommand());
    QVERIFY(decide(*secure.stub, m_tokens.admin, "bot-b", v1::DECISION_REVOKE, &decided).ok());
    QCOMPARE(decided.bot().admission(), v1::ADMISSION_REJECTED);
    const auto closed = bot->waitClosed();
    QVERIFY(closed);
    QCOMPARE(closed->error_code(), grpc::StatusCode::PERMISSION_DENIED);
    QCOMPARE(pending.get().second.record().outcome(), v1::OUTCOME_DISCONNECTED);
    auto back = secure.bot(QStringLiteral("bot-b"));
    const auto refused = back->sayHello("bot-b");
    QVERIFY(refused && refused->has_reject());
    QCOMPARE(back->waitClosed()->error_code(), grpc::StatusCode::PERMISSION_DENIED);
    // Nothing to accept for a bot never seen.
    QCOMPARE(decide(*secure.stub, m_tokens.admin, "nobody", v1::DECISION_ACCEPT).error_code(),
             grpc::StatusCode::NOT_FOUND);
    QCOMPARE(decide(*secure.stub, m_tokens.admin, "bot-b", v1::Decision(42)).error_code(),
             grpc::StatusCode::INVALID_ARGUMENT);
    // A credential to check against, out of kind or size: refused, nothing decided.
    for (const std::string &credential : {std::string("cert:\x01"), std::string(300, 'c')}) {
        grpc::ClientContext context;
        authorize(context, m_tokens.admin);
        v1::DecideBotRequest request;
        request.set_bot_id("bot-b");
        request.set_decision(v1::DECISION_ACCEPT);
        request.set_credential(credential);
        v1::DecideBotResponse response;
        QCOMPARE(secure.stub->DecideBot(&context, request, &response).error_code(),
                 grpc::StatusCode::INVALID_ARGUMENT);
    }
    QCOMPARE(secure.admission->find(QStringLiteral("bot-b")).decision,
             security::AdmissionDecision::Rejected);
}

void TestSecurity::decisionsSurviveRestart()
{
    QTemporaryDir data;
    const QString file = data.filePath(QStringLiteral("admission.json"));
    HubOptions options;
    options.security.approveNew = true;
    {
        SecureRig secure(m_certs, m_tokens, options, 1000, file);
        auto a = secure.bot(QStringLiteral("bot-a"));
        auto c = secure.bot(QStringLiteral("bot-c"));
        QVERIFY(a->sayHello("bot-a")->has_held());
        QVERIFY(c->sayHello("bot-c")->has_held());
        QVERIFY(decide(*secure.stub, m_tokens.admin, "bot-a", v1::DECISION_ACCEPT).ok());
        QVERIFY(decide(*secure.stub, m_tokens.admin, "bot-c", v1::DECISION_REJECT).ok());
        QCOMPARE(c->waitClosed()->error_code(), grpc::StatusCode::PERMISSION_DENIED);
    }
    QVERIFY((QFile::permissions(file) & (QFileDevice::ReadOther | QFileDevice::ReadGroup)) == 0);
    SecureRig again(m_certs, m_tokens, options, 1000, file);
    auto a = again.bot(QStringLiteral("bot-a"));
    QVERIFY(a->hello("bot-a")); // accepted before the restart
    auto c = again.bot(QStringLiteral("bot-c"));
    QVERIFY(c->sayHello("bot-c")->has_reject()); // rejected before it
    // Accepting a rejected bot lifts the rejection: it is held again next time.
    QVERIFY(decide(*again.stub, m_tokens.admin, "bot-c", v1::DECISION_ACCEPT).ok());
    auto c2 = again.bot(QStringLiteral("bot-c"));
    QVERIFY(c2->sayHello("bot-c")->has_held());
}

void TestSecurity::decisionsRacingStreamsLeaveAConsistentTable()
{
    // An admin's accept or revoke while the bot's stream ends, or while it reconnects, driven
    // many times: the hub never crashes or hangs, and afterwards the table agrees with the
    // decision (an accepted bot comes straight in, a revoked one is refused).
    HubOptions options;
    options.security.approveNew = true;
    SecureRig secure(m_certs, m_tokens, options);
    Hub &hub = *secure.rig->hub;
    for (int round = 0; round < 100; ++round) {
        const QString id = round % 2 ? QStringLiteral("bot-a") : QStringLiteral("bot-c");
        const std::string sid = id.toStdString();
        // Start from a held bot.
        QVERIFY(decide(*secure.stub, m_tokens.admin, sid, v1::DECISION_REJECT).ok());
        QVERIFY(decide(*secure.stub, m_tokens.admin, sid, v1::DECISION_ACCEPT).ok()); // lifted
        auto bot = secure.bot(id);
        const auto first = bot->sayHello(sid);
        QVERIFY2(first && first->has_held(), qPrintable(QString::number(round)));
        const bool revoke = round % 3 == 0;
        std::thread admin([&] {
            decide(*secure.stub, m_tokens.admin, sid, v1::DECISION_ACCEPT);
            if (revoke)
                decide(*secure.stub, m_tokens.admin, sid, v1::DECISION_REVOKE);
        });
        if (round % 4 == 0)
            bot->cancel(); // the stream ends while the admin decides
        admin.join();
        bot.reset();
        auto next = secure.bot(id);
        const auto reply = next->sayHello(sid);
        QVERIFY2(reply, qPrintable(QString::number(round)));
        if (revoke) {
            QVERIFY2(reply->has_reject(), qPrintable(QString::number(round)));
        } else {
            QVERIFY2(reply->has_welcome(), qPrintable(QString::number(round)));
            QVERIFY(hub.isConnected(id));
            QCOMPARE(hub.bot(id)->admission, BotAdmission::Accepted);
        }
    }
}

void TestSecurity::revokeRacingHellosLeavesNothingLive()
{
    // A compromised bot keeps saying Hello (several streams at once) while an admin revokes
    // it: once every Hello has been answered, nothing of it is live, held or admitted.
    SecureRig secure(m_certs, m_tokens);
    Hub &hub = *secure.rig->hub;
    for (int round = 0; round < 40; ++round) {
        const std::string id = "sim-r" + std::to_string(round);
        const QString qid = QString::fromStdString(id);
        std::vector<std::unique_ptr<RawBot>> bots[4];
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&, t] {
                for (int i = 0; i < 4; ++i) {
                    bots[t].push_back(secure.bot({}, m_tokens.rack));
                    bots[t].back()->sayHello(id);
                }
            });
        }
        QVERIFY(QTest::qWaitFor([&] { return hub.bot(qid).has_value(); }, 10'000));
        const DecisionResult result =
            hub.decideBot(qid, AdmissionAction::Revoke, QStringLiteral("test"), {});
        QCOMPARE(result.error, DecisionResult::Error::None);
        for (auto &thread : threads)
            thread.join();
        QVERIFY2(!hub.isConnected(qid), qPrintable(QStringLiteral("round %1").arg(round)));
        QCOMPARE(hub.bot(qid)->admission, BotAdmission::Rejected);
        auto after = secure.bot({}, m_tokens.rack);
        QVERIFY(after->sayHello(id)->has_reject());
    }
}

void TestSecurity::heldBotIsNotDisplacedByAnotherCredential()
{
    HubOptions options;
    options.security.approveNew = true;
    SecureRig secure(m_certs, m_tokens, options);
    auto legit = secure.bot(QStringLiteral("bot-a")); // its certificate
    QVERIFY(legit->sayHello("bot-a")->has_held());
    const QString shown = secure.rig->hub->bot(QStringLiteral("bot-a"))->credential;
    QVERIFY(shown.startsWith(QLatin1String("cert:")));
    // The rack token covers bot-* too; it may not take the held bot's place.
    for (int i = 0; i < 10; ++i) {
        auto impostor = secure.bot({}, m_tokens.rack);
        const auto reply = impostor->sayHello("bot-a", {{"group", "a"}});
        QVERIFY(reply && reply->has_reject());
        QCOMPARE(impostor->waitClosed()->error_code(), grpc::StatusCode::PERMISSION_DENIED);
    }
    QCOMPARE(secure.rig->hub->bot(QStringLiteral("bot-a"))->credential, shown);
    QVERIFY(!legit->read(100ms)); // still held, not closed
    // An admin deciding on another credential than the bot's is refused: nothing changes.
    grpc::ClientContext context;
    authorize(context, m_tokens.admin);
    v1::DecideBotRequest request;
    request.set_bot_id("bot-a");
    request.set_decision(v1::DECISION_ACCEPT);
    request.set_credential("token:rack");
    v1::DecideBotResponse response;
    QCOMPARE(secure.stub->DecideBot(&context, request, &response).error_code(),
             grpc::StatusCode::FAILED_PRECONDITION);
    QCOMPARE(secure.admission->find(QStringLiteral("bot-a")).decision,
             security::AdmissionDecision::None);
    // On the credential shown: accepted, and the legitimate bot goes live.
    grpc::ClientContext again;
    authorize(again, m_tokens.admin);
    request.set_credential(shown.toStdString());
    QVERIFY(secure.stub->DecideBot(&again, request, &response).ok());
    const auto welcome = legit->read();
    QVERIFY(welcome && welcome->has_welcome());
}

void TestSecurity::aBotGoingLiveEndsAnotherCredentialsHeldStream()
{
    HubOptions options;
    options.security.approveNew = true;
    SecureRig secure(m_certs, m_tokens, options);
    {
        auto first = secure.bot(QStringLiteral("bot-a"));
        QVERIFY(first->sayHello("bot-a")->has_held());
        QVERIFY(decide(*secure.stub, m_tokens.admin, "bot-a", v1::DECISION_ACCEPT).ok());
        QVERIFY(first->read()->has_welcome());
    }
    QVERIFY(QTest::qWaitFor([&] { return !secure.rig->hub->isConnected(QStringLiteral("bot-a")); },
                            5000));
    // While it is away, another credential covering its id is held ("not the accepted one")...
    auto squatter = secure.bot({}, m_tokens.rack);
    QVERIFY(squatter->sayHello("bot-a")->has_held());
    // ...and the real bot comes back: it goes live, and the squatter's stream ends.
    auto real = secure.bot(QStringLiteral("bot-a"));
    QVERIFY(real->hello("bot-a"));
    const auto ended = squatter->waitClosed();
    QVERIFY(ended);
    QCOMPARE(ended->error_code(), grpc::StatusCode::PERMISSION_DENIED);
    // Decisions on what the console shows (the live certificate) still work.
    const QString shown = secure.rig->hub->bot(QStringLiteral("bot-a"))->credential;
    QVERIFY(shown.startsWith(QLatin1String("cert:")));
    const DecisionResult revoked = secure.rig->hub->decideBot(
        QStringLiteral("bot-a"), AdmissionAction::Revoke, QStringLiteral("test"), {}, shown);
    QCOMPARE(revoked.error, DecisionResult::Error::None);
    QCOMPARE(real->waitClosed()->error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

void TestSecurity::acceptRacingRejectEndsAsTheLaterSays()
{
    // Two admins decide on one held bot at the same moment, many times: whatever order they
    // land in, the store, the table and the bot's stream agree afterwards.
    HubOptions options;
    options.security.approveNew = true;
    SecureRig secure(m_certs, m_tokens, options);
    Hub &hub = *secure.rig->hub;
    const QString id = QStringLiteral("bot-c");
    for (int round = 0; round < 60; ++round) {
        hub.decideBot(id, AdmissionAction::Reject, QStringLiteral("setup"), {});
        hub.decideBot(id, AdmissionAction::Accept, QStringLiteral("setup"), {}); // lifted
        auto bot = secure.bot(id);
        QVERIFY(bot->sayHello("bot-c")->has_held());
        std::thread other(
            [&] { hub.decideBot(id, AdmissionAction::Reject, QStringLiteral("b"), {}); });
        hub.decideBot(id, AdmissionAction::Accept, QStringLiteral("a"), {});
        other.join();
        const auto stored = secure.admission->find(id).decision;
        const std::optional<BotInfo> info = hub.bot(id);
        QVERIFY(info);
        if (stored == security::AdmissionDecision::Rejected) {
            QCOMPARE(info->admission, BotAdmission::Rejected);
            QVERIFY2(!hub.isConnected(id), qPrintable(QString::number(round)));
        } else if (stored == security::AdmissionDecision::None) {
            // The reject came first and closed the held stream; the accept then lifted it.
            QCOMPARE(info->admission, BotAdmission::Awaiting);
            QVERIFY2(!hub.isConnected(id), qPrintable(QString::number(round)));
        } else {
            QCOMPARE(info->admission, BotAdmission::Accepted);
            QVERIFY2(hub.isConnected(id), qPrintable(QString::number(round)));
        }
    }
}

void TestSecurity::scopeIsCheckedAgainWhenAWaitingCommandIsWritten()
{
    SecureRig secure(m_certs, m_tokens);
    {
        auto once = secure.bot(QStringLiteral("grp-a1"));
        QVERIFY(once->hello("grp-a1", {{"group", "a"}}));
    }
    QVERIFY(QTest::qWaitFor([&] { return !secure.rig->hub->isConnected(QStringLiteral("grp-a1")); },
                            5000));
    // sam (group=a) sends to the bot while it is away, known with group=a...
    auto request = ping("grp-a1", 5000);
    *request.mutable_connect_timeout() = TimeUtil::MillisecondsToDuration(10'000);
    auto call = sendAsync(*secure.stub, m_tokens.scoped, request);
    QVERIFY(QTest::qWaitFor([&] { return secure.rig->registry.pendingCount() == 1; }, 5000));
    // ...and it comes back with group=b: the command is refused, never written.
    auto back = secure.bot(QStringLiteral("grp-a1"));
    QVERIFY(back->hello("grp-a1", {{"group", "b"}}));
    const auto [status, response] = call.get();
    QVERIFY(status.ok());
    QCOMPARE(response.record().outcome(), v1::OUTCOME_REFUSED);
    QVERIFY2(response.record().reason().starts_with("permission denied"),
             response.record().reason().c_str());
    QVERIFY(!back->readCommand(200ms));
}

void TestSecurity::everyOperatorMethodAsksForAToken()
{
    SecureRig secure(m_certs, m_tokens);
    // Every method the service has, called with an empty request: without a token, with a
    // wrong one, and with a malformed header; each is UNAUTHENTICATED before anything runs.
    grpc::GenericStub generic(secure.operatorChannel);
    const auto *service = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
        "opconsole.v1.Operator");
    QVERIFY(service);
    QVERIFY(service->method_count() >= 9);
    for (int i = 0; i < service->method_count(); ++i) {
        const std::string method =
            "/" + std::string(service->full_name()) + "/" + service->method(i)->name();
        for (const std::string &header :
             {std::string(), "Bearer " + security::newToken().toStdString(), std::string("Basic x"),
              "Bearer " + m_tokens.admin.toStdString() + "x"}) {
            grpc::ClientContext context;
            context.set_deadline(system_clock::now() + 10s);
            if (!header.empty())
                context.AddMetadata("authorization", header);
            grpc::Slice empty(std::string{});
            grpc::ByteBuffer request(&empty, 1), response;
            std::promise<grpc::Status> done;
            generic.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                              [&done](grpc::Status s) { done.set_value(std::move(s)); });
            const grpc::Status status = done.get_future().get();
            QVERIFY2(
                status.error_code() == grpc::StatusCode::UNAUTHENTICATED,
                (method + ": " + std::to_string(status.error_code()) + " " + status.error_message())
                    .c_str());
        }
    }
    QVERIFY(secure.api->accessCounters().unauthenticated >= quint64(4 * service->method_count()));
    // With the token: WhoAmI says who.
    grpc::ClientContext context;
    authorize(context, m_tokens.scoped);
    v1::WhoAmIResponse me;
    QVERIFY(secure.stub->WhoAmI(&context, {}, &me).ok());
    QCOMPARE(me.name(), std::string("sam"));
    QCOMPARE(me.role(), v1::ROLE_OPERATOR);
    QCOMPARE(me.scope().at("group"), std::string("a"));
    QVERIFY(me.authenticated());
}

void TestSecurity::viewerCannotSendOrDecide()
{
    SecureRig secure(m_certs, m_tokens);
    auto bot = secure.bot(QStringLiteral("bot-a"));
    QVERIFY(bot->hello("bot-a"));
    grpc::ClientContext context;
    authorize(context, m_tokens.viewer);
    v1::SendCommandResponse response;
    const grpc::Status status = secure.stub->SendCommand(&context, ping("bot-a"), &response);
    QCOMPARE(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    QVERIFY2(status.error_message().find("operator role") != std::string::npos,
             status.error_message().c_str());
    QVERIFY(!bot->readCommand(200ms)); // nothing was sent
    grpc::ClientContext cancel;
    authorize(cancel, m_tokens.viewer);
    v1::CancelCommandRequest request;
    request.set_command_id("c-1");
    v1::CancelCommandResponse cancelled;
    QCOMPARE(secure.stub->CancelCommand(&cancel, request, &cancelled).error_code(),
             grpc::StatusCode::PERMISSION_DENIED);
    QCOMPARE(decide(*secure.stub, m_tokens.viewer, "bot-a", v1::DECISION_REVOKE).error_code(),
             grpc::StatusCode::PERMISSION_DENIED);
    QVERIFY(secure.rig->hub->isConnected(QStringLiteral("bot-a")));
    // What a viewer may do: look.
    grpc::ClientContext list;
    authorize(list, m_tokens.viewer);
    v1::ListCommandsResponse commands;
    QVERIFY(secure.stub->ListCommands(&list, {}, &commands).ok());
}

void TestSecurity::scopedOperatorAloneAndInsideFanOut()
{
    SecureRig secure(m_certs, m_tokens);
    auto inA = secure.bot(QStringLiteral("grp-a1"));
    auto inB = secure.bot(QStringLiteral("grp-b1"));
    QVERIFY(inA->hello("grp-a1", {{"group", "a"}}));
    QVERIFY(inB->hello("grp-b1", {{"group", "b"}}));
    // Alone: refused with the reason, nothing reaches the bot.
    {
        grpc::ClientContext context;
        authorize(context, m_tokens.scoped);
        v1::SendCommandResponse response;
        const grpc::Status status = secure.stub->SendCommand(&context, ping("grp-b1"), &response);
        QCOMPARE(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
        QVERIFY2(status.error_message().find("group=a") != std::string::npos,
                 status.error_message().c_str());
        QVERIFY(!inB->readCommand(200ms));
        // An unknown bot is outside too (its labels are not known).
        grpc::ClientContext unknown;
        authorize(unknown, m_tokens.scoped);
        QCOMPARE(secure.stub->SendCommand(&unknown, ping("nobody"), &response).error_code(),
                 grpc::StatusCode::PERMISSION_DENIED);
    }
    // In scope: it goes.
    auto call = sendAsync(*secure.stub, m_tokens.scoped, ping("grp-a1"));
    answer(*inA, 1);
    QCOMPARE(call.get().second.record().outcome(), v1::OUTCOME_ACKED);
    // A fan-out to both: grp-b1 gets a refusal row, grp-a1 its command.
    std::thread bots([&] { answer(*inA, 1); });
    grpc::ClientContext context;
    authorize(context, m_tokens.scoped);
    v1::SendToManyRequest request;
    request.add_bot_ids("grp-a1");
    request.add_bot_ids("grp-b1");
    request.mutable_command()->mutable_ping();
    *request.mutable_timeout() = TimeUtil::MillisecondsToDuration(5000);
    auto reader = secure.stub->SendToMany(&context, request);
    v1::SendToManyEvent event;
    std::map<std::string, v1::CommandRecord> results;
    v1::FanOutTally summary;
    while (reader->Read(&event)) {
        if (event.has_result())
            results[event.result().bot_id()] = event.result();
        else
            summary = event.summary();
    }
    bots.join();
    QVERIFY(reader->Finish().ok());
    QCOMPARE(results.size(), size_t(2));
    QCOMPARE(results["grp-a1"].outcome(), v1::OUTCOME_ACKED);
    QCOMPARE(results["grp-b1"].outcome(), v1::OUTCOME_REFUSED);
    QVERIFY(results["grp-b1"].reason().starts_with("permission denied"));
    QCOMPARE(summary.acked(), 1);
    QCOMPARE(summary.refused(), 1);
    QVERIFY(!inB->readCommand(200ms));
    // The unscoped operator reaches both.
    auto both = sendAsync(*secure.stub, m_tokens.operatorAll, ping("grp-b1"));
    answer(*inB, 1);
    QCOMPARE(both.get().second.record().outcome(), v1::OUTCOME_ACKED);
}

void TestSecurity::issuerIsTheTokensName()
{
    SecureRig secure(m_certs, m_tokens);
    auto bot = secure.bot(QStringLiteral("bot-a"));
    QVERIFY(bot->hello("bot-a"));
    auto call = sendAsync(*secure.stub, m_tokens.operatorAll, ping("bot-a"));
    answer(*bot, 1);
    const auto [status, response] = call.get();
    QVERIFY(status.ok());
    QCOMPARE(response.record().issuer(), std::string("olga"));
    const auto record =
        secure.rig->registry.find(QString::fromStdString(response.record().command_id()));
    QVERIFY(record);
    QCOMPARE(record->issuer, QStringLiteral("olga"));
}

void TestSecurity::operatorApiIsNotOnTheBotPort()
{
    SecureRig secure(m_certs, m_tokens);
    auto onBotPort =
        v1::Operator::NewStub(grpc::CreateChannel(secure.rig->address(), secure.clientTls()));
    grpc::ClientContext context;
    authorize(context, m_tokens.admin);
    v1::ListBotsResponse bots;
    QCOMPARE(onBotPort->ListBots(&context, {}, &bots).error_code(),
             grpc::StatusCode::UNIMPLEMENTED);
    // And bots cannot say Hello on the operator listener.
    RawBot lost(secure.rig->operatorAddress(),
                RawBotCredentials{secure.clientTls("bot-a"), {}, {}});
    QVERIFY(!lost.hello("bot-a"));
    QCOMPARE(lost.waitClosed()->error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

void TestSecurity::sendsPerOperatorAreRateLimited()
{
    SecureRig secure(m_certs, m_tokens, {}, /*sendsPerSecond=*/1);
    // A burst of two passes; the calls after it are refused until the bucket refills. Each
    // call is one refused NOT_CONNECTED round trip (no bot), well under a second.
    int limited = 0, passed = 0;
    for (int i = 0; i < 8 && limited == 0; ++i) {
        grpc::ClientContext context;
        authorize(context, m_tokens.operatorAll);
        v1::SendCommandResponse response;
        const grpc::Status status = secure.stub->SendCommand(&context, ping("absent"), &response);
        if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED)
            ++limited;
        else if (status.ok())
            ++passed;
    }
    QCOMPARE(limited, 1);
    QVERIFY(passed >= 2);
    QVERIFY(secure.api->accessCounters().rateLimited >= 1);
    // Another operator has its own budget.
    grpc::ClientContext context;
    authorize(context, m_tokens.admin);
    v1::SendCommandResponse response;
    QVERIFY(secure.stub->SendCommand(&context, ping("absent"), &response).ok());
}

void TestSecurity::streamsPerCredentialAreLimited()
{
    HubOptions options;
    options.security.maxStreamsPerCredential = 3;
    SecureRig secure(m_certs, m_tokens, options);
    std::vector<std::unique_ptr<RawBot>> bots;
    for (int i = 0; i < 3; ++i) {
        bots.push_back(secure.bot({}, m_tokens.rack));
        QVERIFY(bots.back()->hello("sim-" + std::to_string(i)));
    }
    auto fourth = secure.bot({}, m_tokens.rack);
    QVERIFY(!fourth->hello("sim-9"));
    QCOMPARE(fourth->waitClosed()->error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    QVERIFY(secure.rig->hub->counters().credentialLimited >= 1);
    // Another credential is not affected.
    auto other = secure.bot({}, m_tokens.other);
    QVERIFY(other->hello("other-1"));
    // A certificate with the same token counts against the token too (no more streams by
    // combining credentials).
    auto combined = secure.bot(QStringLiteral("bot-a"), m_tokens.rack);
    QVERIFY(!combined->hello("bot-a"));
    QCOMPARE(combined->waitClosed()->error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    // A stream that ends gives its place back (once gRPC is done with it).
    bots.front().reset();
    QVERIFY(QTest::qWaitFor(
        [&] {
            auto next = secure.bot({}, m_tokens.rack);
            if (!next->hello("sim-0"))
                return false;
            bots.front() = std::move(next);
            return true;
        },
        10'000));
}

QTEST_GUILESS_MAIN(TestSecurity)
#include "tst_security.moc"
