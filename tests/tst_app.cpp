// opconsole --headless as a real process: its JSON-lines log and its shutdown on SIGTERM.
#include "eventlog.h"
#include "hubprocess.h"
#include "opconsole/v1/operator.grpc.pb.h"
#include "rawbot.h"
#include "testcerts.h"
#include "tokens.h"

#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QTemporaryDir>
#include <QTest>

#include <google/protobuf/util/time_util.h>

#include <csignal>
#include <mutex>
#include <set>
#include <sys/stat.h>

using namespace opconsole;
using namespace std::chrono;
using google::protobuf::util::TimeUtil;

namespace {

v1::SendCommandRequest request(const std::string &bot, const std::string &id, int timeoutMs,
                               int connectMs = 0)
{
    v1::SendCommandRequest r;
    r.set_bot_id(bot);
    r.mutable_command()->set_command_id(id);
    r.mutable_command()->mutable_ping();
    *r.mutable_timeout() = TimeUtil::MillisecondsToDuration(timeoutMs);
    *r.mutable_connect_timeout() = TimeUtil::MillisecondsToDuration(connectMs);
    return r;
}

} // namespace

class TestApp : public QObject
{
    Q_OBJECT

private slots:
    void logLinesAreJsonAndCannotBeForged();
    void logBatchesWriteWholeLinesInOrder();
    void sigtermEndsEveryCallWithItsOutcomeAndLogsIt();
    void connectRefusesWhatIsNotAListOfHubs();
    void historyOptionsRefuseBadValues();
    void unsafeOrBrokenSecurityOptionsAreRefused();
    void insecureIsAllowedAndSaidOutLoud();
    void operatorSocketIsPrivate();
    void configFileThenFlags();
};

// A batch (the outcomes of one change-feed batch) is written at its end, or in 256 KB parts,
// never a line split, in order; nothing is held once it ends.
void TestApp::logBatchesWriteWholeLinesInOrder()
{
    std::FILE *f = std::tmpfile();
    QVERIFY(f);
    auto written = [f] {
        std::fflush(f);
        const long size = std::ftell(f);
        QByteArray all(size, '\0');
        std::rewind(f);
        const size_t got = std::fread(all.data(), 1, size_t(size), f);
        std::fseek(f, 0, SEEK_END);
        all.truncate(qsizetype(got));
        return all;
    };
    const EventLog log(f, LogLevel::Info);
    log.info("alone");
    QCOMPARE(written().count('\n'), 1);
    {
        const EventLog::Batch batch(log);
        log.info("first", {{QStringLiteral("n"), 1}});
        log.write(LogLevel::Debug, "below_the_level");
        {
            const EventLog::Batch inner(log);
            log.warning("second", {{QStringLiteral("n"), 2}});
        }
        QCOMPARE(written().count('\n'), 1); // held until the outer batch ends
    }
    QList<QByteArray> lines = written().trimmed().split('\n');
    QCOMPARE(lines.size(), 3);
    QCOMPARE(QJsonDocument::fromJson(lines[1]).object().value("event").toString(),
             QString("first"));
    QCOMPARE(QJsonDocument::fromJson(lines[2]).object().value("event").toString(),
             QString("second"));
    // A batch larger than 256 KB goes out in parts of whole lines.
    const QString big(1000, QLatin1Char('x'));
    {
        const EventLog::Batch batch(log);
        for (int i = 0; i < 1000; ++i)
            log.info("big", {{QStringLiteral("i"), i}, {QStringLiteral("text"), big}});
        const qsizetype before = written().count('\n');
        QVERIFY2(before > 3 && before < 1003, qPrintable(QString::number(before)));
    }
    lines = written().trimmed().split('\n');
    QCOMPARE(lines.size(), 1003);
    for (int i = 0; i < 1000; ++i) {
        const QJsonObject o = QJsonDocument::fromJson(lines[3 + i]).object();
        QCOMPARE(o.value("i").toInt(-1), i);
    }
    std::fclose(f);
}

void TestApp::logLinesAreJsonAndCannotBeForged()
{
    HubProcess hub;
    const std::string address = hub.address();
    QVERIFY(!address.empty());
    RawBot bot(address);
    QVERIFY(bot.hello("bot-1"));
    auto stub = v1::Operator::NewStub(
        grpc::CreateChannel(hub.operatorAddress(), grpc::InsecureChannelCredentials()));
    v1::SendCommandResponse response;
    grpc::Status status;
    std::thread caller([&] {
        grpc::ClientContext context;
        status = stub->SendCommand(&context, request("bot-1", "c-forge", 10'000), &response);
    });
    const auto command = bot.readCommand(10s);
    QVERIFY(command.has_value());
    // A rejection whose text tries to start a log line of its own.
    const std::string forged =
        "no\n{\"event\":\"bot_connected\",\"bot\":\"forged\",\"level\":\"info\"}\r\n\"x";
    bot.ack(command->command_id(), false, forged);
    caller.join();
    QVERIFY(status.ok());
    QVERIFY(hub.waitFor("command_finished").has_value());
    QVERIFY(hub.terminate());
    QCOMPARE(hub.process.exitCode(), 0);
    bool sawReason = false;
    for (const QByteArray &line : std::as_const(hub.lines)) {
        QJsonParseError error;
        const QJsonDocument doc = QJsonDocument::fromJson(line, &error);
        QVERIFY2(error.error == QJsonParseError::NoError && doc.isObject(), line.constData());
        const QJsonObject o = doc.object();
        QVERIFY(o.contains("ts") && o.contains("level") && o.contains("event"));
        QVERIFY2(o.value("bot").toString() != "forged", line.constData());
        if (o.value("event") == "command_finished" && o.value("id") == "c-forge") {
            QCOMPARE(o.value("reason").toString().toStdString(), forged); // kept whole, escaped
            QCOMPARE(o.value("state").toString(), QString("rejected"));
            sawReason = true;
        }
    }
    QVERIFY(sawReason);
}

void TestApp::sigtermEndsEveryCallWithItsOutcomeAndLogsIt()
{
    HubProcess hub;
    const std::string address = hub.address();
    QVERIFY(!address.empty());
    RawBot bot(address); // takes commands and never answers
    QVERIFY(bot.hello("busy"));
    auto stub = v1::Operator::NewStub(
        grpc::CreateChannel(hub.operatorAddress(), grpc::InsecureChannelCredentials()));

    constexpr int pending = 1000, waiters = 10, watchers = 5;
    struct Call
    {
        grpc::ClientContext context;
        v1::SendCommandRequest request;
        v1::SendCommandResponse response;
        grpc::Status status;
        bool done = false;
    };
    std::vector<std::unique_ptr<Call>> calls;
    std::mutex mutex;
    // What the watcher threads write: declared before the Joiner, so they outlive the threads.
    std::vector<grpc::Status> watchStatus(watchers);
    std::vector<std::set<std::string>> watchOutcomes(watchers);
    std::vector<std::unique_ptr<std::atomic<int>>> watchEvents;
    for (int i = 0; i < watchers; ++i)
        watchEvents.push_back(std::make_unique<std::atomic<int>>(0));
    // Watchers first: each keeps the ids whose outcome it saw.
    std::vector<std::thread> watchThreads;
    // On any early return, end the hub first (that ends the watchers), then join them.
    struct Joiner
    {
        HubProcess &hub;
        std::vector<std::thread> &threads;
        std::vector<std::unique_ptr<Call>> &calls;
        std::mutex &mutex;
        ~Joiner()
        {
            if (hub.process.state() != QProcess::NotRunning) {
                hub.process.kill();
                hub.process.waitForFinished(5000);
            }
            for (auto &t : threads) {
                if (t.joinable())
                    t.join();
            }
            // Calls still in flight end with the hub gone; their callbacks touch `calls`.
            (void)QTest::qWaitFor(
                [&] {
                    std::lock_guard lock(mutex);
                    return std::all_of(calls.begin(), calls.end(),
                                       [](const auto &c) { return c->done; });
                },
                30'000);
        }
    } joiner{hub, watchThreads, calls, mutex};
    for (int i = 0; i < watchers; ++i) {
        watchThreads.emplace_back([&, i] {
            grpc::ClientContext context;
            auto reader = stub->Watch(&context, v1::WatchRequest());
            v1::WatchEvent event;
            while (reader->Read(&event)) {
                ++*watchEvents[i];
                if (event.has_command() && event.command().outcome() != v1::OUTCOME_PENDING)
                    watchOutcomes[i].insert(event.command().command_id());
            }
            watchStatus[i] = reader->Finish();
        });
    }
    // Pings until every watcher has seen one: then all are registered with the hub.
    int warmUps = 0;
    QVERIFY(QTest::qWaitFor(
        [&] {
            grpc::ClientContext context;
            v1::SendCommandResponse r;
            stub->SendCommand(&context,
                              request("nobody", "warm-up-" + std::to_string(++warmUps), 1000), &r);
            return std::all_of(watchEvents.begin(), watchEvents.end(),
                               [](const auto &n) { return n->load() > 0; });
        },
        10'000));

    std::set<std::string> ids;
    for (int i = 0; i < pending + waiters; ++i) {
        auto call = std::make_unique<Call>();
        const bool waiter = i >= pending;
        const std::string id = (waiter ? "w-" : "p-") + std::to_string(i);
        ids.insert(id);
        call->request = waiter ? request("gone-" + std::to_string(i), id, 60'000, 60'000)
                               : request("busy", id, 60'000);
        Call *c = call.get();
        stub->async()->SendCommand(&c->context, &c->request, &c->response,
                                   [c, &mutex](grpc::Status s) {
                                       std::lock_guard lock(mutex);
                                       c->status = std::move(s);
                                       c->done = true;
                                   });
        calls.push_back(std::move(call));
    }
    // Every command registered (and the busy ones written) before the signal.
    int written = 0;
    QVERIFY(QTest::qWaitFor(
        [&] {
            while (bot.readCommand(1ms))
                ++written;
            return written == pending;
        },
        30'000));
    auto pendingOnHub = [&] {
        v1::ListCommandsRequest list;
        list.add_outcomes(v1::OUTCOME_PENDING);
        list.set_page_size(1000);
        int n = 0;
        std::string token;
        do {
            grpc::ClientContext pageContext;
            list.set_page_token(token);
            v1::ListCommandsResponse response;
            if (!stub->ListCommands(&pageContext, list, &response).ok())
                return -1;
            n += response.commands_size();
            token = response.next_page_token();
        } while (!token.empty());
        return n;
    };
    QVERIFY(QTest::qWaitFor([&] { return pendingOnHub() == pending + waiters; }, 30'000));
    const auto before = steady_clock::now();
    QVERIFY2(hub.terminate(), "the hub did not exit");
    const double tookMs =
        double(duration_cast<microseconds>(steady_clock::now() - before).count()) / 1000;
    qInfo("SIGTERM with %d pending, %d waiting, %d watching: exit after %.0f ms", pending, waiters,
          watchers, tookMs);
    QCOMPARE(hub.process.exitStatus(), QProcess::NormalExit);
    QCOMPARE(hub.process.exitCode(), 0);
    QVERIFY(QTest::qWaitFor(
        [&] {
            std::lock_guard lock(mutex);
            return std::all_of(calls.begin(), calls.end(), [](const auto &c) { return c->done; });
        },
        10'000));
    for (const auto &c : calls) {
        QVERIFY2(c->status.ok(), c->status.error_message().c_str()); // an outcome, not a cancel
        const bool waiter = c->request.command().command_id()[0] == 'w';
        QCOMPARE(c->response.record().outcome(),
                 waiter ? v1::OUTCOME_NOT_CONNECTED : v1::OUTCOME_DISCONNECTED);
        QCOMPARE(c->response.record().reason(), std::string("hub shutting down"));
    }
    for (auto &t : watchThreads)
        t.join();
    for (int i = 0; i < watchers; ++i) {
        QCOMPARE(watchStatus[i].error_code(), grpc::StatusCode::UNAVAILABLE);
        // The hub's own status, not a dropped connection (which is UNAVAILABLE too).
        QCOMPARE(watchStatus[i].error_message(), std::string("hub shutting down"));
        int missing = 0;
        std::string firstMissing;
        for (const std::string &id : ids) { // every outcome reached every watcher before the end
            if (!watchOutcomes[i].count(id) && missing++ == 0)
                firstMissing = id;
        }
        QVERIFY2(missing == 0, qPrintable(QStringLiteral("watcher %1 missed %2 outcomes (first %3)")
                                              .arg(i)
                                              .arg(missing)
                                              .arg(QString::fromStdString(firstMissing))));
    }
    // Every outcome is in the log, before the final line.
    std::set<std::string> logged;
    bool stopped = false;
    for (const QByteArray &line : std::as_const(hub.lines)) {
        const QJsonObject o = QJsonDocument::fromJson(line).object();
        QVERIFY2(!stopped, "a line after 'stopped'");
        if (o.value("event") == "command_finished")
            logged.insert(o.value("id").toString().toStdString());
        stopped = o.value("event") == "stopped";
    }
    QVERIFY(stopped);
    for (int i = 1; i <= warmUps; ++i)
        logged.erase("warm-up-" + std::to_string(i));
    QCOMPARE(logged.size(), ids.size());
    QVERIFY(logged == ids);
}

void TestApp::connectRefusesWhatIsNotAListOfHubs()
{
    // --connect's value crosses into the program from a shell: each bad one exits 64 with a
    // message, before anything is attached to.
    const QStringList bad[] = {{"--connect", "nocolon"},
                               {"--connect", "a:1,a:1"},
                               {"--connect", "a:1,,b:2"},
                               {"--connect", QString(300, 'h') + ":1"},
                               {"--connect", "a:1", "--headless"}};
    for (const QStringList &args : bad) {
        QProcess app;
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        env.insert("QT_QPA_PLATFORM", "offscreen");
        app.setProcessEnvironment(env);
        app.start(QCoreApplication::applicationDirPath() + QStringLiteral("/opconsole"), args);
        QVERIFY(app.waitForFinished(20'000));
        QCOMPARE(app.exitCode(), 64);
        QVERIFY2(app.readAllStandardError().contains("--connect takes"),
                 qPrintable(args.join(' ')));
    }
}

void TestApp::historyOptionsRefuseBadValues()
{
    QTemporaryDir dir;
    QFile file(dir.filePath("a-file"));
    QVERIFY(file.open(QIODevice::WriteOnly));
    file.close();
    struct Case
    {
        QStringList args;
        int exit;
        const char *says;
    };
    const Case cases[] = {
        {{"--history-days", "0"}, 64, "--history-days takes"},
        {{"--history-days", "3651"}, 64, "--history-days takes"},
        {{"--history-days", "ten"}, 64, "--history-days takes"},
        {{"--history-max-mb", "-1"}, 64, "--history-max-mb takes"},
        {{"--history-max-mb", "1e9"}, 64, "--history-max-mb takes"},
        // A data directory that cannot be one: a clear error, nothing started.
        {{"--data-dir", file.fileName()}, 69, "cannot create the data directory"},
    };
    for (const Case &c : cases) {
        QProcess app;
        app.start(QCoreApplication::applicationDirPath() + QStringLiteral("/opconsole"),
                  QStringList{"--headless", "--listen", "127.0.0.1:0"} + c.args);
        QVERIFY(app.waitForFinished(20'000));
        QCOMPARE(app.exitCode(), c.exit);
        QVERIFY2(app.readAllStandardError().contains(c.says), qPrintable(c.args.join(' ')));
    }
}

void TestApp::unsafeOrBrokenSecurityOptionsAreRefused()
{
    TestCerts certs;
    QString error;
    QVERIFY2(certs.make({"bot-1"}, {}, &error), qPrintable(error));
    QTemporaryDir dir;
    auto write = [&](const char *name, const QByteArray &text, QFile::Permissions mode) {
        QFile f(dir.filePath(QString::fromLatin1(name)));
        if (!f.open(QIODevice::WriteOnly) || f.write(text) != text.size())
            return QString();
        f.close();
        f.setPermissions(mode);
        return f.fileName();
    };
    const auto owner = QFile::ReadOwner | QFile::WriteOwner;
    const QString hash = security::tokenHash("x");
    const QString shared =
        write("shared", ("alice admin " + hash + "\n").toUtf8(), owner | QFile::WriteOther);
    const QString malformed = write("bad", "alice admin not-a-hash\n", owner);
    const QString unknownRole = write("role", ("alice boss " + hash + "\n").toUtf8(), owner);
    const QString botTokens = write("bots", ("rack bot-* " + hash + "\n").toUtf8(), owner);
    const QStringList tls{"--tls-cert", certs.hubCert(), "--tls-key", certs.hubKey()};
    struct Case
    {
        QStringList args;
        const char *says;
    };
    const Case cases[] = {
        {{"--listen", "0.0.0.0:0"}, "--listen 0.0.0.0:0 reaches other machines"},
        {{"--listen", "[::]:0"}, "reaches other machines"},
        {{"--operator-listen", "0.0.0.0:0"}, "--operator-listen 0.0.0.0:0 reaches other machines"},
        {QStringList{"--operator-listen", "0.0.0.0:0"} + tls, "give --operators FILE"},
        {QStringList{"--listen", "0.0.0.0:0"} + tls, "give bots an identity"},
        {QStringList{"--listen", "[::ffff:127.0.0.1]:0"} + tls, "give bots an identity"},
        {{"--tls-cert", dir.filePath("missing.pem"), "--tls-key", certs.hubKey()}, "missing.pem"},
        {{"--tls-cert", certs.hubCert()}, "needs both --tls-cert and --tls-key"},
        {{"--tls-cert", certs.hubCert(), "--tls-key", certs.botKey("bot-1")}, "does not belong"},
        {{"--tls-client-ca", certs.ca()}, "--tls-client-ca needs --tls-cert"},
        {{"--admission", "approve"}, "needs bot identities"},
        {{"--admission", "maybe"}, "--admission takes open, approve"},
        {{"--operators", shared}, "writable by others than its owner"},
        {{"--operators", malformed}, ":1: the hash must be"},
        {{"--operators", unknownRole}, "role 'boss'"},
        {{"--operators", dir.filePath("absent")}, "not a readable file"},
        {{"--demo", "3", "--bot-tokens", botTokens}, "--demo runs bots without credentials"},
        {{"--operator-rate", "-1"}, "--operator-rate takes"},
        {{"--max-streams-per-credential", "0"}, "--max-streams-per-credential takes"},
    };
    for (const Case &c : cases) {
        QProcess app;
        app.start(QCoreApplication::applicationDirPath() + QStringLiteral("/opconsole"),
                  QStringList{"--headless", "--listen", "127.0.0.1:0", "--operator-listen",
                              "127.0.0.1:0", "--data-dir", dir.path()} +
                      c.args);
        QVERIFY(app.waitForFinished(20'000));
        const QByteArray err = app.readAllStandardError();
        QVERIFY2(app.exitCode() == 64, qPrintable(c.args.join(' ') + ": " + err));
        QVERIFY2(err.contains(c.says), qPrintable(c.args.join(' ') + ": " + err));
    }
}

void TestApp::insecureIsAllowedAndSaidOutLoud()
{
    HubProcess hub(QStringLiteral("0.0.0.0:0"), {"--insecure", "--heartbeat", "60000"});
    QVERIFY(!hub.address().empty());
    const auto warning = hub.waitFor("insecure");
    QVERIFY(warning);
    QCOMPARE(warning->value("level").toString(), QStringLiteral("warning"));
    QCOMPARE(warning->value("tls").toBool(), false);
    QVERIFY(hub.terminate());
}

void TestApp::operatorSocketIsPrivate()
{
    QTemporaryDir dir;
    const QString socket = dir.filePath(QStringLiteral("operators.sock"));
    HubProcess hub(QStringLiteral("127.0.0.1:0"),
                   {"--operator-listen", "unix:" + socket, "--heartbeat", "60000"});
    QCOMPARE(QString::fromStdString(hub.operatorAddress()), "unix:" + socket);
    struct stat st = {};
    QCOMPARE(::stat(QFile::encodeName(socket).constData(), &st), 0);
    QVERIFY(S_ISSOCK(st.st_mode));
    QCOMPARE(int(st.st_mode & 0777), 0600);
    // It serves the Operator API.
    auto stub = v1::Operator::NewStub(
        grpc::CreateChannel(hub.operatorAddress(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::WhoAmIResponse me;
    QVERIFY(stub->WhoAmI(&context, {}, &me).ok());
    QCOMPARE(me.authenticated(), false);
    QCOMPARE(me.role(), v1::ROLE_ADMIN);
    QVERIFY(hub.terminate());
}

QTEST_GUILESS_MAIN(TestApp)
void TestApp::configFileThenFlags()
{
    const QString app = QCoreApplication::applicationDirPath() + QStringLiteral("/opconsole");
    auto run = [&](const QStringList &args, QByteArray *out = nullptr, QByteArray *err = nullptr) {
        QProcess p;
        p.start(app, args);
        if (!p.waitForFinished(20'000))
            return -1;
        if (out)
            *out = p.readAllStandardOutput();
        if (err)
            *err = p.readAllStandardError();
        return p.exitCode();
    };
    QTemporaryDir dir;
    // --print-config writes every setting as an INI file, each with its default here.
    QByteArray printed;
    QCOMPARE(run({"--print-config"}, &printed), 0);
    const QString file = dir.filePath("hub.conf");
    {
        QFile f(file);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(printed);
    }
    {
        QVERIFY(printed.contains("\n[hub]\n"));
        QVERIFY(printed.contains("\nheartbeat = 2000\n"));
        QVERIFY(printed.contains("\nmissed-heartbeats = 3\n"));
        QVERIFY(printed.contains("\nlate-ack-window = 300000\n"));
        QVERIFY(printed.contains("\nadmission = open\n"));
        // The file it printed is one --config takes: change what matters, as an editor would.
        QByteArray edited = printed;
        edited.replace("\nheartbeat = 2000\n", "\nheartbeat = 1234\n");
        edited.replace("\nlisten = 127.0.0.1:50051\n", "\nlisten = 127.0.0.1:0\n");
        edited.replace("\noperator-listen = 127.0.0.1:50052\n",
                       "\noperator-listen = 127.0.0.1:0\n");
        edited.replace("\ndata-dir = \n", "\ndata-dir = " + dir.filePath("data").toUtf8() + "\n");
        QFile f(file);
        QVERIFY(f.open(QIODevice::WriteOnly | QIODevice::Truncate));
        f.write(edited);
    }
    QCOMPARE(run({"--config", file, "--print-config"}, &printed), 0);
    QVERIFY2(printed.contains("; from: hub.conf\nheartbeat = 1234\n"), printed.constData());
    // A flag wins over the file.
    QCOMPARE(run({"--config", file, "--heartbeat", "777", "--print-config"}, &printed), 0);
    QVERIFY2(printed.contains("; from: command line\nheartbeat = 777\n"), printed.constData());
    // The hub runs with it.
    HubProcess hub(QStringLiteral("127.0.0.1:0"), {"--config", file});
    const auto started = hub.waitFor("hub_started");
    QVERIFY(started.has_value());
    QCOMPARE(started->value("heartbeat_ms").toInt(), 1234);
    QCOMPARE(started->value("config").toString(), file);
    QVERIFY(hub.terminate());

    // Every mistake is one line and exit 64, nothing started.
    const struct
    {
        const char *text;
        const char *says;
    } bad[] = {
        {"[hub]\nheartbeet = 1000\n", "line 2: unknown setting heartbeet"},
        {"heartbeat = 1000\n", "line 1: heartbeat belongs in [hub]"},
        {"[security]\nheartbeat = 1000\n", "heartbeat belongs in [hub]"},
        {"[hub]\nheartbeat = 10\n", "takes a whole number, 50 to 3600000 ms"},
        {"[hub]\nheartbeat = 1e400\n", "takes a whole number"},
        {"[hub]\nmissed-heartbeats = 2.5\n", "takes a whole number"},
        {"[history]\nno-history = maybe\n", "takes true or false"},
        {"[hub]\nmax-progress-per-second = nan\n", "max-progress-per-second = nan takes"},
        // What QSettings would have dropped or changed without a word (a review's list).
        {"[security]\nadmission approve\n", "line 2: not a section, a comment or key = value"},
        {"[hub]\nheartbeat: 100\n", "not a section, a comment or key = value"},
        {"[hub]\nheartbeat = 1000\nheartbeat = 2000\n", "heartbeat is set twice (also on line 2)"},
        {"[General]\nlisten = 127.0.0.1:1\n", "unknown section [General]"},
        {"[security]\nadmission = Approve\n", "takes open, approve"},
        {"[log]\nlog-level = verbose\n", "takes debug, info, warning, error"},
        {"[hub]\nlisten = 127.0.0.1:99999\n", "takes host:port (port 0 to 65535"},
        {"[metrics]\nmetrics-listen = 0.0.0.0\n", "takes host:port"},
        {"[hub]\noperator-listen = unix:relative\n", "absolute path"},
        {"\x01\x02junk\n", "line 1: not a section"},
    };
    for (const auto &b : bad) {
        const QString path = dir.filePath("bad.conf");
        QFile f(path);
        QVERIFY(f.open(QIODevice::WriteOnly | QIODevice::Truncate));
        f.write(b.text);
        f.close();
        QByteArray err;
        QCOMPARE(run({"--headless", "--config", path}, nullptr, &err), 64);
        QVERIFY2(err.contains(b.says), err.constData());
    }
    QByteArray err;
    QCOMPARE(run({"--headless", "--config", dir.filePath("none.conf")}, nullptr, &err), 64);
    QVERIFY2(err.contains("no such readable file"), err.constData());
    // Values are verbatim: ';', ',', '\\', quotes and '=' stay as written, and what
    // --print-config writes reads back to the same values.
    const QString odd = dir.filePath("a;b,c\\d \"e\"=f");
    QCOMPARE(run({"--data-dir", odd, "--bot-tokens", "/etc/x#y", "--print-config"}, &printed), 0);
    QVERIFY2(printed.contains("\ndata-dir = " + odd.toUtf8() + "\n"), printed.constData());
    const QString roundTrip = dir.filePath("round.conf");
    {
        QFile f(roundTrip);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write(printed);
    }
    QByteArray again;
    QCOMPARE(run({"--config", roundTrip, "--print-config"}, &again), 0);
    // The same values; only where they came from differs.
    auto values = [](const QByteArray &text) {
        QByteArrayList out;
        for (const QByteArray &line : text.split('\n'))
            if (!line.startsWith(';'))
                out << line;
        return out;
    };
    QCOMPARE(values(again), values(printed));
    // A value cannot carry a line break into the file.
    QCOMPARE(run({"--headless", "--data-dir", "a\nheartbeat = 1"}, nullptr, &err), 64);
    QVERIFY2(err.contains("control character"), err.constData());

    // docs/operations.md documents every setting.
    QFile doc(QStringLiteral(OPCONSOLE_SOURCE_DIR "/docs/operations.md"));
    QVERIFY(doc.open(QIODevice::ReadOnly));
    const QByteArray operations = doc.readAll();
    QCOMPARE(run({"--print-config"}, &printed), 0);
    for (const QByteArray &line : printed.split('\n')) {
        if (line.isEmpty() || line.startsWith(';') || line.startsWith('['))
            continue;
        const QByteArray key = line.left(line.indexOf(" = "));
        QVERIFY2(operations.contains("`" + key + "`"), key.constData());
    }
}

#include "tst_app.moc"
