// Several hubs share one fleet over NATS (docs/cluster.md), as users run them: a real
// nats-server with JetStream on loopback, three headless hubs with --cluster, botsim fleets
// spread across them, opctl against one hub or another.
#include "hubprocess.h"
#include "natslink.h"
#include "natsserver.h"
#include "opconsole/v1/cluster.pb.h"
#include "opctlprocess.h"
#include "subjects.h"
#include "testcerts.h"

#include <QDateTime>
#include <QDeadlineTimer>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QScopeGuard>
#include <QTest>

#include <algorithm>
#include <csignal>
#include <map>
#include <memory>

using namespace opconsole;

namespace {

// botsim as a child process, stopped (TERM, then KILL) when it goes out of scope.
struct Botsim
{
    explicit Botsim(const QStringList &args)
    {
        process.setProgram(QCoreApplication::applicationDirPath() + QStringLiteral("/botsim"));
        process.setArguments(args);
        process.setProcessChannelMode(QProcess::MergedChannels);
        process.start();
    }
    ~Botsim()
    {
        if (process.state() == QProcess::NotRunning)
            return;
        process.terminate();
        if (!process.waitForFinished(5'000)) {
            process.kill();
            process.waitForFinished(5'000);
        }
    }
    QProcess process;
};

// One JSON object per line (opctl --json).
QList<QJsonObject> jsonLines(const QString &text)
{
    QList<QJsonObject> out;
    for (const QString &line : text.split(QLatin1Char('\n'), Qt::SkipEmptyParts))
        out << QJsonDocument::fromJson(line.toUtf8()).object();
    return out;
}

qint64 wallMs(const QJsonValue &timestamp)
{
    return QDateTime::fromString(timestamp.toString(), Qt::ISODateWithMs).toMSecsSinceEpoch();
}

} // namespace

class TestCluster : public QObject
{
    Q_OBJECT

    std::unique_ptr<NatsServer> m_nats;
    std::vector<std::unique_ptr<HubProcess>> m_hubs; // hub-1, hub-2, hub-3
    QStringList m_operator;                          // their Operator API addresses
    QStringList m_botAddress;                        // where bots connect
    std::unique_ptr<Botsim> m_fleet;                 // 300 bots, group=main
    std::unique_ptr<Botsim> m_rejecting;             // 3 bots on hub-3 that reject everything

    // opctl against hub `i` (0-based); the exit code, output in *out.
    int opctl(int i, const QStringList &args, QString *out = nullptr, int ms = 30'000)
    {
        Opctl op(QStringList{"--hub", m_operator.at(i)} + args);
        const int rc = op.wait(ms);
        if (out)
            *out = op.out + op.err;
        return rc;
    }
    // The fleet as hub `i` lists it (opctl --json bots).
    QList<QJsonObject> bots(int i, const QStringList &extra = {})
    {
        QString out;
        if (opctl(i, QStringList{"--json", "bots"} + extra, &out) != 0)
            return {};
        return jsonLines(out);
    }
    // Waits until hub `i` has `count` pending commands for bots with `prefix`.
    bool waitForPending(int i, const QString &prefix, int count, int ms)
    {
        return QTest::qWaitFor(
            [&] {
                QString out;
                opctl(i, {"--json", "commands", "--state", "pending"}, &out);
                int n = 0;
                for (const QJsonObject &o : jsonLines(out))
                    n += o.value("bot_id").toString().startsWith(prefix);
                return n == count;
            },
            ms);
    }
    // Waits until a line of the hub's log has every one of `parts`.
    static bool waitForLogLine(HubProcess &hub, const QList<QByteArray> &parts, int ms)
    {
        return QTest::qWaitFor(
            [&] {
                hub.pump();
                for (const QByteArray &line : std::as_const(hub.lines))
                    if (std::all_of(parts.cbegin(), parts.cend(),
                                    [&](const QByteArray &p) { return line.contains(p); }))
                        return true;
                return false;
            },
            ms);
    }
    // Waits until hub `i` lists `count` connected bots with `prefix`, each on a live hub.
    bool waitForBots(int i, const QString &prefix, int count, int ms)
    {
        return QTest::qWaitFor(
            [&] {
                int n = 0;
                for (const QJsonObject &b : bots(i, {"--connected"}))
                    n += b.value("bot_id").toString().startsWith(prefix);
                return n == count;
            },
            ms);
    }

private slots:
    void initTestCase()
    {
        QVERIFY2(!NatsServer::program().isEmpty(),
                 "nats-server is not installed (scripts/deps.sh installs it)");
        m_nats = std::make_unique<NatsServer>();
        QVERIFY2(m_nats->port() > 0, m_nats->log.constData());
        for (int i = 1; i <= 3; ++i) {
            m_hubs.push_back(std::make_unique<HubProcess>(
                QStringLiteral("127.0.0.1:0"),
                QStringList{"--heartbeat", "1000", "--no-history", "--cluster", m_nats->url(),
                            "--hub-id", QStringLiteral("hub-%1").arg(i)}));
            HubProcess &hub = *m_hubs.back();
            QVERIFY2(hub.waitFor("cluster_joined", 30'000).has_value(),
                     hub.lines.join('\n').constData());
            m_operator << QString::fromStdString(hub.operatorAddress());
            m_botAddress << QString::fromStdString(hub.address());
        }
        m_fleet = std::make_unique<Botsim>(QStringList{"--hub", m_botAddress.join(','), "--bots",
                                                       "300", "--label", "fleet=main", "--latency",
                                                       "uniform:1:20"});
        m_rejecting = std::make_unique<Botsim>(QStringList{"--hub", m_botAddress.at(2), "--bots",
                                                           "3", "--prefix", "rej-", "--fail", "1",
                                                           "--label", "fleet=rejecting"});
        QVERIFY(m_fleet->process.waitForStarted(10'000));
        QVERIFY(m_rejecting->process.waitForStarted(10'000));
    }

    // ListBots through any hub lists the whole fleet, each bot with the hub that holds it.
    void everyHubListsTheWholeFleet()
    {
        for (int i = 0; i < 3; ++i)
            QVERIFY2(waitForBots(i, "bot-", 300, 30'000), qPrintable(m_operator.at(i)));
        std::map<QString, int> perHub;
        for (const QJsonObject &b : bots(1, {"--connected", "--label", "fleet=main"}))
            ++perHub[b.value("hub").toString()];
        // botsim spreads its bots over the three hubs given.
        QCOMPARE(perHub.size(), size_t(3));
        QCOMPARE(perHub["hub-1"], 100);
        QCOMPARE(perHub["hub-2"], 100);
        QCOMPARE(perHub["hub-3"], 100);
        QString table;
        QCOMPARE(opctl(0, {"bots", "--connected"}, &table), 0);
        QVERIFY2(table.contains("HUB") && table.contains("hub-3"), qPrintable(table));
    }

    // opctl against hub-1 sends to a bot on hub-3 and gets its true outcome: acked, rejected
    // with the bot's message, not connected for a bot no hub holds.
    void aCommandReachesTheHubThatHoldsItsBot()
    {
        QVERIFY(waitForBots(0, "rej-", 3, 30'000));
        QString onHub3;
        for (const QJsonObject &b : bots(0, {"--connected", "--label", "fleet=main"}))
            if (b.value("hub").toString() == "hub-3")
                onHub3 = b.value("bot_id").toString();
        QVERIFY(!onHub3.isEmpty());
        QString out;
        QCOMPARE(opctl(0, {"--json", "send", onHub3, "ping"}, &out), 0);
        QJsonObject record = jsonLines(out).value(0);
        QCOMPARE(record.value("outcome").toString(), QStringLiteral("OUTCOME_ACKED"));
        QCOMPARE(record.value("bot_id").toString(), onHub3);
        QCOMPARE(record.value("ack").toObject().value("message").toString(),
                 QStringLiteral("pong"));
        const QString id = record.value("command_id").toString();

        // The holder registered the same command: hub-3's records have it, with its issuer.
        QCOMPARE(opctl(2, {"--json", "commands", "--bot", onHub3}, &out), 0);
        bool seen = false;
        for (const QJsonObject &o : jsonLines(out))
            if (o.value("command_id").toString() == id) {
                seen = true;
                QCOMPARE(o.value("outcome").toString(), QStringLiteral("OUTCOME_ACKED"));
                QVERIFY(o.value("issuer").toString().startsWith("operator@"));
            }
        QVERIFY2(seen, qPrintable(out));

        QVERIFY(opctl(0, {"--json", "send", "rej-1", "restart"}, &out) != 0);
        record = jsonLines(out).value(0);
        QCOMPARE(record.value("outcome").toString(), QStringLiteral("OUTCOME_REJECTED"));
        QVERIFY2(!record.value("ack").toObject().value("message").toString().isEmpty(),
                 qPrintable(out));

        QVERIFY(opctl(1, {"--json", "send", "nobody-holds-me", "ping"}, &out) != 0);
        record = jsonLines(out).value(0);
        QCOMPARE(record.value("outcome").toString(), QStringLiteral("OUTCOME_NOT_CONNECTED"));
        QVERIFY2(record.value("reason").toString().contains("any hub"), qPrintable(out));
    }

    // A console attached to one hub sees, live, a command issued through another.
    void aWatchOnTheHolderSeesCommandsIssuedElsewhere()
    {
        QString onHub2;
        for (const QJsonObject &b : bots(2, {"--connected", "--label", "fleet=main"}))
            if (b.value("hub").toString() == "hub-2")
                onHub2 = b.value("bot_id").toString();
        QVERIFY(!onHub2.isEmpty());
        Opctl watch({"--hub", m_operator.at(1), "--json", "watch"});
        QVERIFY(watch.process.waitForStarted(10'000));
        const auto stopWatch = qScopeGuard([&] {
            watch.process.kill();
            watch.process.waitForFinished(5'000);
        });
        // A child says nothing when its Watch is live: commands go through hub-1 until the
        // watch on hub-2 shows one (the first may come before it subscribed), a few at most.
        QByteArray seen;
        bool shown = false;
        for (int attempt = 0; attempt < 10 && !shown; ++attempt) {
            QString out;
            QCOMPARE(opctl(0, {"--json", "send", onHub2, "ping"}, &out), 0);
            const QByteArray id = jsonLines(out).value(0).value("command_id").toString().toUtf8();
            QVERIFY(!id.isEmpty());
            shown = QTest::qWaitFor(
                [&] {
                    seen += watch.process.readAllStandardOutput();
                    return seen.contains(id);
                },
                3'000);
        }
        QVERIFY2(shown, seen.constData());
    }

    // A fan-out through hub-2 to every bot of the fleet: one tally over the three hubs.
    void aFanOutThroughOneHubTalliesEveryBot()
    {
        QString out;
        QCOMPARE(
            opctl(1, {"send", "--label", "fleet=main", "ping", "--timeout", "20s"}, &out, 60'000),
            0);
        QVERIFY2(out.contains("300/300 acked"), qPrintable(out.right(400)));
    }

    // What a hostile or broken cluster member can send: nothing crashes a hub, nothing it
    // sends is taken for a command or an outcome it is not.
    void hostileClusterMessagesAreRefused()
    {
        cluster::ClusterOptions options;
        options.servers = {m_nats->url()};
        options.hubId = QStringLiteral("test-intruder");
        QString why;
        const auto link = cluster::NatsLink::connect(options, &why);
        QVERIFY2(link, qPrintable(why));
        natsConnection *nc = link->connection();
        // Answers come to the issuing hub's answer subject (this test says it is one).
        natsSubscription *answers = nullptr;
        QCOMPARE(
            natsConnection_SubscribeSync(
                &answers, nc, cluster::subjects::answerSubject("test-intruder", 5).constData()),
            NATS_OK);
        const auto closeAnswers = qScopeGuard([&] { natsSubscription_Destroy(answers); });
        QCOMPARE(natsConnection_Flush(nc), NATS_OK);
        // Sends `data` on the subject; the answer for `seq`, if one comes within 2 s.
        const auto request = [&](const QByteArray &subject, const std::string &data, quint64 seq,
                                 v1::ForwardReply *reply) {
            if (natsConnection_PublishRequest(nc, subject.constData(),
                                              "opc.reply.test-intruder.5.b1", data.data(),
                                              int(data.size())) != NATS_OK)
                return false;
            QDeadlineTimer deadline(2'000);
            while (!deadline.hasExpired()) {
                natsMsg *msg = nullptr;
                if (natsSubscription_NextMsg(&msg, answers, deadline.remainingTime()) != NATS_OK)
                    return false;
                v1::ForwardReplies replies;
                const bool parsed =
                    replies.ParseFromArray(natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
                natsMsg_Destroy(msg);
                for (const v1::ForwardReply &r : replies.replies())
                    if (parsed && r.seq() == seq && r.has_record()) {
                        *reply = r;
                        return true;
                    }
            }
            return false;
        };
        const QByteArray subject = cluster::subjects::botSubject("bot-3", "cmd");

        // Garbage: not answered (the issuer's own timeout would end its command).
        v1::ForwardReply reply;
        QVERIFY(!request(subject, std::string("\xff\xfe garbage", 10), 0, &reply));

        // Well-formed, but breaking a rule: each refused, with why, never sent to the bot.
        const auto forwarded = [](const char *id, const char *bot, int timeoutMs) {
            v1::ForwardedCommand fc;
            fc.mutable_request()->set_bot_id(bot);
            fc.mutable_request()->mutable_command()->set_command_id(id);
            fc.mutable_request()->mutable_command()->mutable_ping();
            fc.mutable_request()->mutable_timeout()->set_seconds(timeoutMs / 1000);
            fc.mutable_request()->mutable_timeout()->set_nanos((timeoutMs % 1000) * 1'000'000);
            fc.set_issuing_hub("test-intruder");
            fc.set_issuing_incarnation(5);
            fc.set_issuer("intruder");
            return fc;
        };
        struct Case
        {
            const char *name;
            v1::ForwardedCommand fc;
            const char *why;
        };
        std::vector<Case> cases;
        cases.push_back(
            {"another bot than its subject", forwarded("c-x1", "bot-6", 5000), "another bot"});
        cases.push_back({"a timeout of ten years", forwarded("c-x2", "bot-3", 0), "timeout"});
        cases.back().fc.mutable_request()->mutable_timeout()->set_seconds(315'000'000);
        cases.push_back({"a bad issuing hub", forwarded("c-x3", "bot-3", 5000), nullptr});
        cases.back().fc.set_issuing_hub("no.dots allowed"); // cannot be answered
        cases.push_back(
            {"a control character in the issuer", forwarded("c-x4", "bot-3", 5000), "issuer"});
        cases.back().fc.set_issuer(std::string("evil\x01", 5));
        cases.push_back({"no command id", forwarded("", "bot-3", 5000), nullptr});
        // The operator's scope travels with the command and is checked again by the holder.
        cases.push_back(
            {"a bot outside the operator's scope", forwarded("c-x6", "bot-3", 5000), "scope"});
        (*cases.back().fc.mutable_scope())["group"] = "nobody-has-this";
        quint64 seq = 100;
        for (Case &c : cases) {
            c.fc.set_seq(++seq);
            v1::ForwardedBatch batch;
            *batch.add_commands() = c.fc;
            v1::ForwardReply r;
            const bool answered = request(subject, batch.SerializeAsString(), seq, &r);
            if (!c.why) {
                QVERIFY2(!answered, c.name); // a command or hub it cannot name: not answered
                continue;
            }
            QVERIFY2(answered, c.name);
            QCOMPARE(r.record().outcome(), v1::OUTCOME_REFUSED);
            QVERIFY2(QString::fromStdString(r.record().reason()).contains(c.why),
                     qPrintable(QString::fromStdString(r.record().reason())));
        }

        // Answers nobody asked for, a beacon that is not one, a directory entry that is not a
        // bot record: ignored.
        for (const QByteArray &s :
             {cluster::subjects::answerSubject("hub-1", 1),
              cluster::subjects::batchReplySubject("hub-1", 1, 1),
              QByteArray("opc.reply.hub-1.1.bnotanumber"), QByteArray("opc.reply.hub-1.1.x"),
              cluster::subjects::beaconSubject()})
            QCOMPARE(natsConnection_Publish(nc, s.constData(), "\x0a\xff\xff", 3), NATS_OK);
        v1::HubBeacon impostor; // a beacon in hub-3's name does not make it another hub
        impostor.set_hub("hub-1");
        impostor.set_incarnation(42);
        const std::string beacon = impostor.SerializeAsString();
        QCOMPARE(natsConnection_Publish(nc, cluster::subjects::beaconSubject().constData(),
                                        beacon.data(), int(beacon.size())),
                 NATS_OK);
        jsCtx *js = nullptr;
        kvStore *kv = nullptr;
        QCOMPARE(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
        QCOMPARE(js_KeyValue(&kv, js, cluster::subjects::Bucket), NATS_OK);
        uint64_t rev = 0;
        QCOMPARE(kvStore_PutString(&rev, kv, "bot.ghost", "not a record"), NATS_OK);
        v1::BotRecord wrongKey; // a record under another bot's key
        wrongKey.set_bot_id("bot-1");
        wrongKey.set_connected(true);
        wrongKey.set_hub("hub-2");
        const std::string wrong = wrongKey.SerializeAsString();
        QCOMPARE(kvStore_Put(&rev, kv, "bot.phantom", wrong.data(), int(wrong.size())), NATS_OK);
        kvStore_Destroy(kv);
        jsCtx_Destroy(js);
        QCOMPARE(natsConnection_Flush(nc), NATS_OK);

        // Every hub still serves, and lists neither the ghost nor the phantom.
        for (int i = 0; i < 3; ++i) {
            QString out;
            QCOMPARE(opctl(i, {"send", "bot-3", "ping"}, &out), 0);
            for (const QJsonObject &b : bots(i))
                QVERIFY(!b.value("bot_id").toString().contains("ghost") &&
                        !b.value("bot_id").toString().contains("phantom"));
            QVERIFY(m_hubs[size_t(i)]->process.state() == QProcess::Running);
        }
    }

    // A cluster whose nats-server asks for TLS and a token: hubs join with both, not without
    // either; an operator's scope travels with a forwarded command.
    void aSecuredClusterAsksForTlsAndItsToken()
    {
        TestCerts certs;
        QString why;
        QVERIFY2(certs.make({}, {}, &why), qPrintable(why));
        const QString token = QStringLiteral("cluster-secret-4f1c9a");
        const QString conf = certs.dir.filePath("nats.conf");
        {
            QFile f(conf);
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write(
                QStringLiteral("tls {\n  cert_file: \"%1\"\n  key_file: \"%2\"\n  timeout: 5\n}\n"
                               "authorization {\n  token: \"%3\"\n}\n")
                    .arg(certs.hubCert(), certs.hubKey(), token)
                    .toUtf8());
        }
        NatsServer secured({"-c", conf});
        QVERIFY2(secured.port() > 0, secured.log.constData());
        const QString url = QStringLiteral("tls://localhost:%1").arg(secured.port());

        // An operator who may command group=a only.
        const QString operators = certs.dir.filePath("operator-tokens");
        const QString aliceToken = certs.dir.filePath("alice.token");
        Opctl made({"token", "new", "--name", "alice", "--role", "operator", "--scope", "group=a",
                    "--append", operators, "--token-out", aliceToken});
        QVERIFY2(made.wait() == 0, qPrintable(made.err));

        const auto hub = [&](const char *id, QStringList extra) {
            return std::make_unique<HubProcess>(
                QStringLiteral("127.0.0.1:0"), QStringList{"--no-history", "--hub-id", id} + extra);
        };
        auto a = hub("sec-a", {"--cluster", url, "--cluster-ca", certs.ca(), "--cluster-token",
                               token, "--operators", operators});
        auto b =
            hub("sec-b", {"--cluster", url, "--cluster-ca", certs.ca(), "--cluster-token", token});
        QVERIFY2(a->waitFor("cluster_joined", 30'000).has_value(), a->lines.join('\n').constData());
        QVERIFY2(b->waitFor("cluster_joined", 30'000).has_value(), b->lines.join('\n').constData());
        QCOMPARE(a->waitFor("cluster_joined")->value("tls").toBool(), true);

        // Without the token, without the CA, or in plaintext: no hub joins; each says why.
        struct Refused
        {
            QStringList args;
            const char *says;
        };
        const std::vector<Refused> refused{
            {{"--cluster", url, "--cluster-ca", certs.ca()}, "Authorization"},
            {{"--cluster", url, "--cluster-ca", certs.ca(), "--cluster-token", "wrong-token"},
             "Authorization"},
            {{"--cluster", url, "--cluster-token", token}, "SSL"},
            {{"--cluster", QStringLiteral("nats://localhost:%1").arg(secured.port()),
              "--cluster-token", token},
             "SSL"}, // the server asks for TLS: no CA to trust its certificate
        };
        for (const Refused &r : refused) {
            auto h = hub("sec-x", r.args);
            const auto error = h->waitFor("error");
            QVERIFY2(error.has_value(), h->lines.join('\n').constData());
            QVERIFY2(error->value("what").toString().contains(r.says, Qt::CaseInsensitive),
                     qPrintable(error->value("what").toString()));
            QVERIFY(QTest::qWaitFor([&] { return h->process.state() == QProcess::NotRunning; }));
            QCOMPARE(h->process.exitCode(), 69);
        }

        // Bots on sec-b (group a and b alternate); alice through sec-a.
        Botsim bots(
            {"--hub", QString::fromStdString(b->address()), "--bots", "4", "--prefix", "sec-"});
        QVERIFY(bots.process.waitForStarted(10'000));
        const QString opA = QString::fromStdString(a->operatorAddress());
        const auto alice = [&](const QStringList &args, QString *out) {
            Opctl op(QStringList{"--hub", opA, "--token-file", aliceToken} + args);
            const int rc = op.wait();
            *out = op.out + op.err;
            return rc;
        };
        QString out;
        QVERIFY(QTest::qWaitFor(
            [&] {
                alice({"--json", "bots", "--connected"}, &out);
                return jsonLines(out).size() == 4;
            },
            20'000));
        QCOMPARE(alice({"--json", "send", "sec-1", "ping"}, &out), 0); // group=a, on sec-b
        QCOMPARE(jsonLines(out).value(0).value("outcome").toString(),
                 QStringLiteral("OUTCOME_ACKED"));
        QVERIFY(alice({"send", "sec-2", "ping"}, &out) != 0); // group=b
        QVERIFY2(out.contains("permission denied"), qPrintable(out));
    }

    // A command waiting for its bot to connect goes when the bot connects to another hub.
    void aWaitingCommandFollowsItsBotToAnotherHub()
    {
        Opctl waiting({"--hub", m_operator.at(0), "--json", "send", "late-1", "ping",
                       "--connect-timeout", "20s", "--timeout", "10s"});
        QVERIFY(waiting.process.waitForStarted(10'000));
        // Registered (and waiting) on hub-1 before the bot exists anywhere.
        QVERIFY(QTest::qWaitFor(
            [&] {
                QString out;
                opctl(0, {"--json", "commands", "--bot", "late-1"}, &out);
                return !jsonLines(out).isEmpty();
            },
            10'000));
        Botsim late({"--hub", m_botAddress.at(1), "--bots", "1", "--prefix", "late-"});
        QVERIFY(late.process.waitForStarted(10'000));
        QCOMPARE(waiting.wait(30'000), 0);
        QCOMPARE(jsonLines(waiting.out).value(0).value("outcome").toString(),
                 QStringLiteral("OUTCOME_ACKED"));
    }

    // A holder that stops answering for longer than a second (a stalled machine): what it
    // held ends Disconnected at the issuer, and when it comes back, the bots' answers reach
    // the issuer as late acks: the truth, late, never a silent contradiction.
    void aStalledHolderIsGivenUpOnAndItsAnswersComeLate()
    {
        Botsim paused({"--hub", m_botAddress.at(1), "--bots", "4", "--prefix", "pz-", "--label",
                       "fleet=pz", "--latency", "fixed:3000"});
        QVERIFY(paused.process.waitForStarted(10'000));
        QVERIFY(waitForBots(0, "pz-", 4, 30'000));
        Opctl fan(
            {"--hub", m_operator.at(0), "send", "--label", "fleet=pz", "ping", "--timeout", "20s"});
        QVERIFY(waitForPending(1, "pz-", 4, 10'000));
        const auto pid = pid_t(m_hubs[1]->process.processId());
        ::kill(pid, SIGSTOP);
        const auto resume = qScopeGuard([pid] { ::kill(pid, SIGCONT); });
        // Given up on at hub-1 (no beacon from hub-2 for a second).
        QString out;
        const auto outcomes = [&](const char *outcome, bool withLateAck) {
            opctl(0, {"--json", "commands", "--state", "disconnected"}, &out);
            int n = 0;
            for (const QJsonObject &o : jsonLines(out))
                n += o.value("bot_id").toString().startsWith("pz-") &&
                     o.value("outcome").toString() == outcome &&
                     (!withLateAck || o.value("late_ack").toObject().value("success").toBool());
            return n;
        };
        QVERIFY2(
            QTest::qWaitFor([&] { return outcomes("OUTCOME_DISCONNECTED", false) == 4; }, 10'000),
            qPrintable(out));
        ::kill(pid, SIGCONT);
        QCOMPARE(fan.wait(30'000), 3);
        // hub-2 went on: its bots answered, and hub-1 takes the answers as late acks.
        QVERIFY2(
            QTest::qWaitFor([&] { return outcomes("OUTCOME_DISCONNECTED", true) == 4; }, 15'000),
            qPrintable(out));
    }

    // An admin revokes a bot through one hub: every hub refuses it from then on, so it cannot
    // come back through another (botsim tries each hub in turn).
    void aRevokedBotCannotComeBackThroughAnotherHub()
    {
        QString out;
        const auto connectedAnywhere = [&] {
            for (int i = 0; i < 3; ++i)
                for (const QJsonObject &b : bots(i, {"--connected"}))
                    if (b.value("bot_id").toString() == "bot-5")
                        return true;
            return false;
        };
        QVERIFY(connectedAnywhere()); // on hub-2
        QCOMPARE(opctl(0, {"bots", "revoke", "bot-5", "--reason", "stolen device"}, &out), 0);
        QVERIFY(QTest::qWaitFor([&] { return !connectedAnywhere(); }, 10'000));
        // It keeps trying every hub; none lets it in (bounded look: 3 s of its retries).
        QVERIFY(!QTest::qWaitFor(connectedAnywhere, 3'000));
        // Each of the other hubs refused it itself (the decision was recorded there too).
        for (int i = 1; i < 3; ++i) {
            QVERIFY2(waitForLogLine(*m_hubs[size_t(i)], {"\"bot_refused\"", "bot-5"}, 10'000),
                     qPrintable(QStringLiteral("hub-%1 did not refuse bot-5").arg(i + 1)));
        }
        QVERIFY(opctl(2, {"--json", "send", "bot-5", "ping"}, &out) != 0);
        QCOMPARE(jsonLines(out).value(0).value("outcome").toString(),
                 QStringLiteral("OUTCOME_NOT_CONNECTED"));
    }

    // A bot that moved to another hub while its stream here hangs (half open): its old hub
    // ends that stream as soon as the new hub claims the bot, rather than at its heartbeat
    // timeout, and commands reach the bot where it is now.
    void aStaleStreamEndsWhenItsBotIsClaimedElsewhere()
    {
        Botsim old({"--hub", m_botAddress.at(0), "--bots", "1", "--prefix", "mv-"});
        QVERIFY(old.process.waitForStarted(10'000));
        QVERIFY(waitForBots(2, "mv-", 1, 20'000));
        const auto oldPid = pid_t(old.process.processId());
        ::kill(oldPid, SIGSTOP); // its stream to hub-1 stays open, and says nothing
        const auto resume = qScopeGuard([oldPid] { ::kill(oldPid, SIGCONT); });
        Botsim moved({"--hub", m_botAddress.at(1), "--bots", "1", "--prefix", "mv-"});
        QVERIFY(moved.process.waitForStarted(10'000));
        HubProcess &hub1 = *m_hubs[0];
        QVERIFY2(
            waitForLogLine(hub1, {"\"bot_disconnected\"", "mv-1", "connected to hub hub-2 since"},
                           10'000),
            hub1.lines.mid(std::max<qsizetype>(0, hub1.lines.size() - 5)).join('\n').constData());
        QString out;
        QCOMPARE(opctl(2, {"--json", "send", "mv-1", "ping"}, &out), 0);
        QCOMPARE(jsonLines(out).value(0).value("outcome").toString(),
                 QStringLiteral("OUTCOME_ACKED"));
    }

    // Bad cluster settings: each refused at start with what is wrong, nothing half joined.
    void badClusterSettingsAreRefused()
    {
        struct Bad
        {
            QStringList args;
            int exit;
            const char *says;
        };
        const std::vector<Bad> bad{
            {{"--cluster", m_nats->url(), "--hub-id", "dots.are.not.ids"}, 69, "--hub-id"},
            {{"--cluster", m_nats->url(), "--hub-id", QString(70, QLatin1Char('h'))},
             69,
             "1 to 64"},
            {{"--cluster", "nats://127.0.0.1:1", "--hub-id", "nowhere"}, 69, "cannot reach NATS"},
            {{"--cluster", m_nats->url(), "--hub-id", QStringLiteral("a\x01b")}, 64, "control"},
        };
        for (const Bad &b : bad) {
            HubProcess hub(QStringLiteral("127.0.0.1:0"), QStringList{"--no-history"} + b.args);
            QVERIFY(QTest::qWaitFor([&] { return hub.process.state() == QProcess::NotRunning; },
                                    20'000));
            hub.pump();
            const QByteArray all = hub.lines.join('\n') + hub.process.readAllStandardError();
            QCOMPARE(hub.process.exitCode(), b.exit);
            QVERIFY2(all.contains(b.says), all.constData());
            QVERIFY(!all.contains("cluster_joined"));
        }
    }

    // Two hubs given one id: both say so in their logs, and the cluster keeps serving.
    void twoHubsWithOneIdAreTold()
    {
        HubProcess twin(QStringLiteral("127.0.0.1:0"),
                        {"--no-history", "--cluster", m_nats->url(), "--hub-id", "hub-1"});
        QVERIFY2(twin.waitFor("cluster_joined", 30'000).has_value(),
                 twin.lines.join('\n').constData());
        const auto said = twin.waitFor("cluster_problem");
        QVERIFY2(said.has_value(), twin.lines.join('\n').constData());
        QVERIFY(said->value("what").toString().contains("hub-1"));
        QVERIFY(m_hubs[0]->waitFor("cluster_problem").has_value());
        QVERIFY(twin.terminate());
        QString out;
        QCOMPARE(opctl(1, {"send", "bot-1", "ping"}, &out), 0); // bot-1 is on hub-1
    }

    // SIGKILL a hub while commands are in flight on it: each of them ends Disconnected within
    // 2 s, its bots reappear on the other hubs within 5 s, and commands to them then succeed.
    void aHubThatDiesCostsOnlyItsCommandsInFlight()
    {
        Botsim slow({"--hub", m_botAddress.join(','), "--bots", "30", "--prefix", "slow-",
                     "--label", "fleet=slow", "--latency", "fixed:4000", "--seed", "7"});
        QVERIFY(slow.process.waitForStarted(10'000));
        QVERIFY(waitForBots(0, "slow-", 30, 30'000));
        QStringList onHub3;
        for (const QJsonObject &b : bots(0, {"--connected", "--label", "fleet=slow"}))
            if (b.value("hub").toString() == "hub-3")
                onHub3 << b.value("bot_id").toString();
        QCOMPARE(onHub3.size(), 10);

        Opctl fan({"--hub", m_operator.at(0), "send", "--label", "fleet=slow", "ping", "--timeout",
                   "30s"});
        // In flight on hub-3: its registry has them pending.
        QVERIFY(waitForPending(2, "slow-", 10, 10'000));
        const qint64 killedAt = QDateTime::currentMSecsSinceEpoch();
        QDeadlineTimer reappear(5'000);
        ::kill(pid_t(m_hubs[2]->process.processId()), SIGKILL);

        // The bots come back through the other hubs.
        QVERIFY(QTest::qWaitFor(
            [&] {
                int n = 0;
                for (const QJsonObject &b : bots(0, {"--connected", "--label", "fleet=slow"}))
                    n += b.value("hub").toString() != "hub-3";
                return n == 30 || reappear.hasExpired();
            },
            6'000));
        QVERIFY2(!reappear.hasExpired(), "the dead hub's bots were not back within 5 s");
        const qint64 backInMs = QDateTime::currentMSecsSinceEpoch() - killedAt;

        QCOMPARE(fan.wait(30'000), 3); // some disconnected (opctl: ExitNotConnected)
        const QStringList lines = fan.out.split('\n', Qt::SkipEmptyParts);
        QVERIFY2(fan.out.contains("20/30 acked, 10 disconnected"), qPrintable(fan.out));
        QString fanOut;
        for (const QString &line : lines)
            if (line.startsWith("summary (fan-out "))
                fanOut = line.section(' ', 2, 2).chopped(2);
        QVERIFY2(!fanOut.isEmpty(), qPrintable(fan.out));
        QString out;
        QCOMPARE(opctl(0, {"--json", "commands", "--fan-out", fanOut}, &out), 0);
        qint64 slowest = 0;
        int lost = 0;
        for (const QJsonObject &o : jsonLines(out)) {
            if (!onHub3.contains(o.value("bot_id").toString()))
                continue;
            ++lost;
            QCOMPARE(o.value("outcome").toString(), QStringLiteral("OUTCOME_DISCONNECTED"));
            QVERIFY2(o.value("reason").toString().contains("hub-3"),
                     qPrintable(o.value("reason").toString()));
            slowest = std::max(slowest, wallMs(o.value("finished_at")) - killedAt);
        }
        QCOMPARE(lost, 10);
        qInfo("commands in flight on the killed hub ended within %lld ms; its bots were back in "
              "%lld ms",
              static_cast<long long>(slowest), static_cast<long long>(backInMs));
        QVERIFY2(slowest <= 2'000, qPrintable(QString::number(slowest)));

        // The bots finished those commands anyway and acked them on their new hubs, which
        // knew nothing of them and told the cluster: hub-1's records end with the truth, a
        // late ack, as its own bots' resent acks would.
        QVERIFY2(QTest::qWaitFor(
                     [&] {
                         opctl(0, {"--json", "commands", "--fan-out", fanOut}, &out);
                         int told = 0;
                         for (const QJsonObject &o : jsonLines(out))
                             told += onHub3.contains(o.value("bot_id").toString()) &&
                                     o.value("outcome").toString() == "OUTCOME_DISCONNECTED" &&
                                     o.value("late_ack").toObject().value("success").toBool();
                         return told == 10;
                     },
                     15'000),
                 qPrintable(out));

        // Commands to them now succeed, through either hub left.
        Opctl again({"--hub", m_operator.at(1), "send", "--label", "fleet=slow", "ping",
                     "--timeout", "30s"});
        QCOMPARE(again.wait(30'000), 0);
        QVERIFY2(again.out.contains("30/30 acked"), qPrintable(again.out));
    }
};

QTEST_GUILESS_MAIN(TestCluster)
#include "tst_cluster.moc"
