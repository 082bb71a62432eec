// opctl's command line, run as a process: unknown options and options a command does not
// take are usage errors (64) said with the option probably meant, "--" ends options, and the
// bash completion it prints offers what it takes.
#include "hubrig.h"
#include "opctlprocess.h"
#include "operatorservice.h"
#include "rawbot.h"

#include <QFile>
#include <QProcess>
#include <QRegularExpression>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>

using namespace opconsole;
using namespace std::chrono;

namespace {

// A hub with the Operator API on free loopback ports.
struct Rig : HubRig
{
    Rig()
    {
        api = std::make_unique<OperatorService>(*service, feed);
        api->attachTo(*hub);
        start();
    }
    ~Rig() { api.reset(); } // stops the hub first

    std::unique_ptr<OperatorService> api;
};

// Where nothing listens: a command that got as far as calling the hub exits 69, not 64.
const QString Nowhere = QStringLiteral("127.0.0.1:1");

// What `opctl ARGS` says on stderr, with its exit code.
std::pair<int, QString> run(const QStringList &args)
{
    Opctl opctl(args);
    const int code = opctl.wait();
    return {code, opctl.err.trimmed()};
}

} // namespace

class TestOpctl : public QObject
{
    Q_OBJECT

private slots:
    void initTestCase();
    void unknownOptionsSayWhatWasMeant();
    void optionsACommandDoesNotTakeAreRefused();
    void flagsTakeNoValueAndValuesAreNeeded();
    void validLinesStillRun();
    void dashDashEndsOptions();
    void completionOffersWhatOpctlTakes();
    void helpListsEveryOptionCompletionOffers();

private:
    // COMPREPLY of opctl's completion function for these words (the last one is completed).
    QStringList complete(const QStringList &words);

    QTemporaryDir m_dir;
    QString m_script; // opctl completion bash, in a file
};

void TestOpctl::initTestCase()
{
    QVERIFY(m_dir.isValid());
    Opctl completion({"completion", "bash"});
    QCOMPARE(completion.wait(), 0);
    QVERIFY(completion.out.contains("complete -F _opctl opctl"));
    m_script = m_dir.filePath("opctl.bash");
    QFile file(m_script);
    QVERIFY(file.open(QIODevice::WriteOnly));
    file.write(completion.out.toUtf8());
    QVERIFY(!QStandardPaths::findExecutable("bash").isEmpty());
}

QStringList TestOpctl::complete(const QStringList &words)
{
    // As bash calls it on TAB: COMP_WORDS, COMP_CWORD at the last word, COMP_LINE, COMP_POINT.
    const QString program = QStringLiteral(R"(source "$1" || exit 9
shift
COMP_WORDS=("$@")
COMP_CWORD=$(($# - 1))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
_opctl
printf '%s\n' "${COMPREPLY[@]}"
)");
    QProcess bash;
    bash.start("bash",
               QStringList{"--norc", "--noprofile", "-c", program, "bash", m_script} + words);
    if (!bash.waitForFinished(20'000)) {
        bash.kill();
        bash.waitForFinished(5'000);
        return {"(bash did not finish)"};
    }
    if (bash.exitCode() != 0)
        return {"(bash exit " + QString::number(bash.exitCode()) + ": " +
                QString::fromUtf8(bash.readAllStandardError()) + ")"};
    return QString::fromUtf8(bash.readAllStandardOutput()).split('\n', Qt::SkipEmptyParts);
}

void TestOpctl::unknownOptionsSayWhatWasMeant()
{
    // Refused before any call: --timout 30s must not run with the default 5 s.
    auto [code, err] = run({"--hub", Nowhere, "send", "bot-1", "ping", "--timout", "30s"});
    QCOMPARE(code, 64);
    QCOMPARE(err, QString("opctl: unknown option --timout (did you mean --timeout?)"));
    // Before the command, too; with = ; as a prefix of one; of another command's options.
    std::tie(code, err) = run({"--timout=30s", "--hub", Nowhere, "send", "bot-1", "ping"});
    QCOMPARE(code, 64);
    QVERIFY2(err.contains("unknown option --timout (did you mean --timeout?)"), qPrintable(err));
    std::tie(code, err) = run({"--hub", Nowhere, "history", "--sta", "done"});
    QCOMPARE(code, 64);
    QVERIFY2(err.contains("unknown option --sta (did you mean --state?)"), qPrintable(err));
    std::tie(code, err) = run({"--hub", Nowhere, "bots", "--con"});
    QCOMPARE(code, 64);
    QVERIFY2(err.endsWith("unknown option --con (did you mean --connected?)"), qPrintable(err));
    // Nothing close: no guess.
    std::tie(code, err) = run({"--hub", Nowhere, "whoami", "--frobnicate"});
    QCOMPARE(code, 64);
    QCOMPARE(err, QString("opctl: unknown option --frobnicate"));
    // Commands too.
    std::tie(code, err) = run({"--hub", Nowhere, "sned", "bot-1", "ping"});
    QCOMPARE(code, 64);
    QVERIFY2(err.contains("unknown command 'sned' (did you mean send?)"), qPrintable(err));
    // --help still answers, whatever else is on the line.
    Opctl help({"send", "--timout", "--help"});
    QCOMPARE(help.wait(), 0);
    QVERIFY(help.out.startsWith("usage: opctl send"));
}

void TestOpctl::optionsACommandDoesNotTakeAreRefused()
{
    const QStringList hub{"--hub", Nowhere};
    auto [code, err] = run(hub + QStringList{"bots", "--set", "a=b"});
    QCOMPARE(code, 64);
    QCOMPARE(err,
             QString("opctl: --set is for send's config updates; opctl bots does not take it"));
    // Of send, but not for this kind (it used to be ignored).
    std::tie(code, err) = run(hub + QStringList{"send", "bot-1", "ping", "--set", "a=b"});
    QCOMPARE(code, 64);
    QCOMPARE(err, QString("opctl: --set is for send's config updates, not a ping command"));
    std::tie(code, err) = run(hub + QStringList{"send", "bot-1", "ping", "--reason", "x"});
    QCOMPARE(code, 64);
    QVERIFY2(err.contains("--reason is for send's stop, not a ping command"), qPrintable(err));
    std::tie(code, err) = run(hub + QStringList{"send", "bot-1", "ping", "--fan-out", "f-1"});
    QCOMPARE(code, 64);
    QVERIFY2(err.contains("--fan-out is for send's fan-outs (--all or --label), not a send to "
                          "one bot"),
             qPrintable(err));
    std::tie(code, err) = run(hub + QStringList{"bots", "accept", "bot-1", "--connected"});
    QCOMPARE(code, 64);
    QVERIFY2(err.contains("--connected is for the bots list, not bots accept"), qPrintable(err));
    std::tie(code, err) = run(hub + QStringList{"bots", "--reason", "x"});
    QCOMPARE(code, 64);
    QVERIFY2(err.contains(
                 "--reason is for the bots actions (accept, reject, revoke), not the bots list"),
             qPrintable(err));
    // Another command's option, near one of this command's.
    std::tie(code, err) = run(hub + QStringList{"history", "--bots", "x"});
    QCOMPARE(code, 64);
    QCOMPARE(err, QString("opctl: --bots is for token new; opctl history does not take it (did "
                          "you mean --bot?)"));
    // Options for a hub where none is called.
    std::tie(code, err) = run({"token", "new", "--name", "a", "--role", "admin", "--hub", "h:1"});
    QCOMPARE(code, 64);
    QVERIFY2(err.contains("--hub is for the commands that call a hub; opctl token does not "
                          "take it"),
             qPrintable(err));
    // Twice, and words a command does not take.
    std::tie(code, err) =
        run(hub + QStringList{"send", "bot-1", "ping", "--timeout", "1s", "--timeout=2s"});
    QCOMPARE(code, 64);
    QVERIFY2(err.contains("--timeout given twice"), qPrintable(err));
    std::tie(code, err) = run(hub + QStringList{"commands", "pending"});
    QCOMPARE(code, 64);
    QVERIFY2(err.contains("commands takes no arguments, not 'pending'"), qPrintable(err));
}

void TestOpctl::flagsTakeNoValueAndValuesAreNeeded()
{
    const QStringList hub{"--hub", Nowhere};
    auto [code, err] = run(hub + QStringList{"bots", "--connected=yes"});
    QCOMPARE(code, 64);
    QCOMPARE(err, QString("opctl: --connected takes no value"));
    std::tie(code, err) = run(hub + QStringList{"send", "bot-1", "stop", "--no-graceful=false"});
    QCOMPARE(code, 64);
    QVERIFY2(err.contains("--no-graceful takes no value"), qPrintable(err));
    std::tie(code, err) = run(hub + QStringList{"send", "bot-1", "ping", "--timeout"});
    QCOMPARE(code, 64);
    QCOMPARE(err, QString("opctl: --timeout needs a value"));
    std::tie(code, err) = run(hub + QStringList{"watch", "--count="});
    QCOMPARE(code, 64); // an empty value is a value, and not a number
    std::tie(code, err) = run({"completion", "zsh"});
    QCOMPARE(code, 64);
    QVERIFY2(err.contains("opctl completion bash"), qPrintable(err));
}

void TestOpctl::validLinesStillRun()
{
    // The README's and the console's lines get as far as calling the hub (69 here, not 64).
    const QList<QStringList> lines = {
        {"bots"},
        {"bots", "--connected", "--label", "region=eu"},
        {"bots", "accept", "bot-9", "--reason", "ok", "--credential", "cert:ab"},
        {"send", "bot-7", "restart", "--timeout", "10s"},
        {"send", "bot-7", "config", "--set", "depth=3", "--set", "mode=fast", "--version", "4"},
        {"send", "bot-1", "custom", "--timeout", "2500ms", "--name", "dump", "--json-payload",
         "{}"},
        {"send", "bot-1", "stop", "--timeout", "5000ms", "--reason", "night", "--no-graceful"},
        {"send", "--label", "group=a", "pause", "--fan-out", "f-1", "--connect-timeout", "2s"},
        {"send", "--all", "ping", "--id", "c-1"},
        {"send", "--timeout", "5000ms", "--", "--all", "stop"},
        {"commands", "--state", "pending", "--state", "problems", "--bot", "b", "--limit", "3"},
        {"commands", "--fan-out", "f-1"},
        {"cancel", "c-1", "--reason", "changed my mind"},
        {"--json", "watch", "--snapshot", "--count", "3"},
        {"history", "--bot", "bot-7", "--since", "24h", "--until", "1h", "--kind", "ping", "--text",
         "disk", "--issuer", "alice", "--fan-out", "f-1", "--limit", "5"},
        {"history", "--state", "unknown", "--csv"},
        {"whoami", "--tls", "--tls-server-name", "hub.example.net"},
    };
    std::vector<std::unique_ptr<Opctl>> runs; // at once: each waits seconds for no hub
    for (const QStringList &line : lines)
        runs.push_back(std::make_unique<Opctl>(QStringList{"--hub=" + Nowhere} + line));
    for (size_t i = 0; i < runs.size(); ++i)
        QVERIFY2(runs[i]->wait() == 69,
                 qPrintable(lines[qsizetype(i)].join(' ') + ": " + runs[i]->err));
    // token new is offline: no hub options, a file of its own.
    QTemporaryDir dir;
    Opctl token({"--json", "token", "new", "--name", "alice", "--role", "admin", "--append",
                 dir.filePath("operators")});
    QCOMPARE(token.wait(), 0);
    QVERIFY2(token.out.contains("\"appended_to\""), qPrintable(token.err));
}

void TestOpctl::dashDashEndsOptions()
{
    Rig rig;
    QVERIFY(rig.started);
    const QString hub = rig.hub->operatorAddress();
    RawBot dashed(rig.address()), help(rig.address());
    QVERIFY(dashed.hello("-x"));
    QVERIFY(help.hello("--help"));

    // Options before "--" (and before the command, and as --name=value), the bot id after.
    Opctl one({"--hub=" + hub, "send", "--timeout", "10s", "--", "-x", "ping"});
    auto command = dashed.readCommand(10s);
    QVERIFY(command && command->has_ping());
    dashed.ack(command->command_id(), true, "pong");
    QCOMPARE(one.wait(), 0);
    QVERIFY(one.out.contains("pong"));

    // "--help" after "--" is a bot, not a request for help.
    Opctl two({"--json", "send", "--hub", hub, "--", "--help", "stop"});
    command = help.readCommand(10s);
    QVERIFY(command && command->has_stop());
    help.ack(command->command_id(), true, "stopped");
    QCOMPARE(two.wait(), 0);
    QVERIFY2(two.out.contains("\"bot_id\":\"--help\""), qPrintable(two.out));

    // After "--" an option is a word: here one word too many for send.
    Opctl three({"--hub", hub, "send", "--", "-x", "ping", "--timeout", "1s"});
    QCOMPARE(three.wait(), 64);
    QVERIFY2(three.err.contains("usage: opctl send BOT COMMAND"), qPrintable(three.err));
}

void TestOpctl::completionOffersWhatOpctlTakes()
{
    QCOMPARE(complete({"opctl", "se"}), QStringList{"send"});
    QCOMPARE(complete({"opctl", "send", "--ti"}), QStringList{"--timeout"});
    QCOMPARE(
        complete({"opctl", "send", "bot-1", ""}),
        QStringList({"start", "stop", "restart", "pause", "resume", "ping", "config", "custom"}));
    // A fan-out: the kind comes first.
    QCOMPARE(complete({"opctl", "send", "--all", "p"}), QStringList({"pause", "ping"}));
    QCOMPARE(complete({"opctl", "send", "--label", "a", "=", "b", "res"}),
             QStringList({"restart", "resume"}));
    // Options for the kind given, and none for others.
    QCOMPARE(complete({"opctl", "send", "bot-1", "config", "--s"}), QStringList{"--set"});
    QCOMPARE(complete({"opctl", "send", "bot-1", "ping", "--s"}), QStringList());
    QCOMPARE(complete({"opctl", "send", "bot-1", "ping", "--f"}), QStringList());
    QCOMPARE(complete({"opctl", "send", "--all", "ping", "--f"}), QStringList{"--fan-out"});
    QCOMPARE(complete({"opctl", "bots", ""}), QStringList({"accept", "reject", "revoke"}));
    QCOMPARE(complete({"opctl", "bots", "accept", "bot-1", "--c"}), QStringList{"--credential"});
    // Values: states, roles, files.
    QCOMPARE(complete({"opctl", "history", "--state", "un"}), QStringList{"unknown"});
    QCOMPARE(complete({"opctl", "token", "new", "--role", "o"}), QStringList{"operator"});
    QFile token(m_dir.filePath("token-1"));
    QVERIFY(token.open(QIODevice::WriteOnly));
    token.close();
    QCOMPARE(complete({"opctl", "--token-file", m_dir.filePath("tok")}),
             QStringList{token.fileName()});
    QCOMPARE(complete({"opctl", "--tls-ca", "=", m_dir.filePath("tok")}),
             QStringList{token.fileName()});
    // bash splits --hub=host:port at '=' and ':'; the command is still found.
    QCOMPARE(complete({"opctl", "--hub", "=", "127.0.0.1", ":", "50052", "send", "--conn"}),
             QStringList{"--connect-timeout"});
    QCOMPARE(complete({"opctl", "--hub", "127.0.0.1", ":", "50052", "cancel", "x", "--r"}),
             QStringList{"--reason"});
    // After "--", words: a bot id, then its kind.
    QCOMPARE(complete({"opctl", "send", "--", "-x", "pi"}), QStringList{"ping"});
    QCOMPARE(complete({"opctl", "send", "--", "--"}), QStringList());
    QCOMPARE(complete({"opctl", "completion", ""}), QStringList{"bash"});
    QCOMPARE(complete({"opctl", "help", "his"}), QStringList{"history"});
}

void TestOpctl::helpListsEveryOptionCompletionOffers()
{
    Opctl mainHelp({"--help"});
    QCOMPARE(mainHelp.wait(), 0);
    const QStringList commands = complete({"opctl", ""});
    QCOMPARE(commands.size(), 11);
    for (const QString &command : commands) {
        Opctl help({"help", command});
        QCOMPARE(help.wait(), 0);
        const QStringList options = complete({"opctl", command, "--"});
        QVERIFY2(options.contains("--help"), qPrintable(command));
        for (const QString &option : options) {
            const QRegularExpression said(QRegularExpression::escape(option) + "\\b(?!-)");
            QVERIFY2(said.match(help.out).hasMatch() || said.match(mainHelp.out).hasMatch(),
                     qPrintable(command + ": " + option + " is in no help"));
        }
    }
}

QTEST_GUILESS_MAIN(TestOpctl)
#include "tst_opctl.moc"
