// The details pane's HTML and the opctl line, as pure functions of a record and what was sent.
#include "commandtext.h"

#include <QTest>
#include <QTextDocument>

using namespace opconsole;
using namespace std::chrono;

namespace {

CommandOutcome record(CommandState state = CommandState::Pending)
{
    CommandOutcome o;
    o.commandId = QStringLiteral("cmd-1");
    o.botId = QStringLiteral("bot-1");
    o.kind = QStringLiteral("ping");
    o.state = state;
    o.registeredAt = Clock::now();
    o.registeredWallMs = 1'700'000'000'000;
    o.deadline = o.registeredAt + 5s;
    o.sentAt = o.registeredAt + 1ms;
    if (state != CommandState::Pending)
        o.finishedAt = o.registeredAt + 12ms;
    return o;
}

CommandAckData ack(bool success, const QString &message, const QByteArray &result = {})
{
    CommandAckData a;
    a.success = success;
    a.message = message;
    a.result = result;
    return a;
}

// What an operator reads: the HTML as rendered text.
QString rendered(const QString &html)
{
    QTextDocument doc;
    doc.setHtml(html);
    return doc.toPlainText();
}

} // namespace

class TestCommandText : public QObject
{
    Q_OBJECT

private slots:
    void hostileTextIsEscaped();
    void jsonIsPrettyPrinted();
    void parametersOfWhatWasSent();
    void timelineWithProgressAndLatency();
    void expiredThenLateAck();
    void shellQuoting();
    void opctlLineWithoutWhatWasSent();
    void opctlLineForConfig();
    void opctlLineForCustomAndStop();
    void parametersFromTheRecord();
    void recordParamsOfAnotherShape();
    void lateRejectionAfterACancel();
    void opctlLineIsSafeToPaste();
};

void TestCommandText::hostileTextIsEscaped()
{
    CommandOutcome o = record(CommandState::Rejected);
    o.botId = QStringLiteral("<script>alert(1)</script>");
    o.commandId = QStringLiteral("id&<u>");
    o.kind = QStringLiteral("ping<i>");
    o.reason = QStringLiteral("fuel & <img src=x>");
    o.ack = ack(false, QStringLiteral("<script>steal()</script> & more"),
                QByteArray("not json <tr> & </table>"));
    ProgressStep step;
    step.at = o.registeredAt + 2ms;
    step.percent = 50;
    step.message = QStringLiteral("<h1>half</h1>");
    o.progressSteps << step;
    const QString html = detailsHtml(o, nullptr);
    for (const char *raw : {"<script>", "<img", "<u>", "<i>", "<tr>", "</table>", "<h1>"})
        QVERIFY2(!html.contains(QLatin1String(raw)), raw);
    QVERIFY(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    QVERIFY(html.contains("id&amp;&lt;u&gt;"));
    QVERIFY(html.contains("fuel &amp; &lt;img src=x&gt;"));
    // Shown as the bot sent it, not interpreted.
    const QString text = rendered(html);
    QVERIFY2(text.contains("ping<i> → <script>alert(1)</script> id&<u>"), qPrintable(text));
    QVERIFY(text.contains("rejected: fuel & <img src=x>"));
    QVERIFY(text.contains("message: <script>steal()</script> & more"));
    QVERIFY(text.contains("not json <tr> & </table>"));
    QVERIFY(text.contains("progress 50% <h1>half</h1>"));
}

void TestCommandText::jsonIsPrettyPrinted()
{
    CommandOutcome o = record(CommandState::Acked);
    o.kind = QStringLiteral("custom");
    o.ack = ack(true, QStringLiteral("done"), QByteArray(R"({"rows":[1,2],"tag":"<x>"})"));
    SentSpec sent{CommandSpec::of(CommandKind::Custom), 30s};
    sent.spec.customName = QStringLiteral("dump & go");
    sent.spec.jsonPayload = QByteArray(R"({"depth":3})");
    const QString html = detailsHtml(o, &sent);
    QVERIFY2(html.contains("<pre>{\n    &quot;depth&quot;: 3\n}\n</pre>"), qPrintable(html));
    QVERIFY2(html.contains("    &quot;tag&quot;: &quot;&lt;x&gt;&quot;"), qPrintable(html));
    QVERIFY(html.contains("name: dump &amp; go"));
    const QString text = rendered(html);
    QVERIFY2(text.contains("\"rows\": [\n        1,\n        2\n    ]"), qPrintable(text));

    // A payload that is not JSON is not shown as a parameter.
    sent.spec.jsonPayload = QByteArray("{broken");
    QVERIFY(!detailsHtml(o, &sent).contains("broken"));
}

void TestCommandText::parametersOfWhatWasSent()
{
    CommandOutcome o = record(CommandState::Acked);
    QVERIFY(!detailsHtml(o, nullptr).contains("<b>Command</b>"));
    // What this window sent is used where the record's params (here: none) do not tell.
    o.kind = QStringLiteral("stop");

    SentSpec stop{CommandSpec::of(CommandKind::Stop), 1500ms};
    stop.spec.stopReason = QStringLiteral("end of <shift>");
    stop.spec.graceful = false;
    QString text = rendered(detailsHtml(o, &stop));
    QVERIFY2(text.contains("Command\nreason: end of <shift>\ngraceful: no\ntimeout: 1500 ms"),
             qPrintable(text));

    o.kind = QStringLiteral("config");
    SentSpec config{CommandSpec::of(CommandKind::ConfigUpdate), 10s};
    config.spec.config = {{"depth", "3"}, {"mode", "a&b"}};
    config.spec.configVersion = 7;
    text = rendered(detailsHtml(o, &config));
    QVERIFY2(text.contains("Command\ndepth = 3\nmode = a&b\nversion 7\ntimeout: 10000 ms"),
             qPrintable(text));
}

void TestCommandText::timelineWithProgressAndLatency()
{
    CommandOutcome pending = record();
    pending.progressDropped = 3;
    for (int i = 0; i < 2; ++i) {
        ProgressStep step;
        step.at = pending.registeredAt + milliseconds(30 * (i + 1));
        step.percent = 30 * (i + 1);
        step.message = i == 0 ? QStringLiteral("validating") : QStringLiteral("writing");
        pending.progressSteps << step;
    }
    QString text = rendered(detailsHtml(pending, nullptr));
    const qsizetype dropped = text.indexOf("(3 earlier progress update(s) not kept)");
    const qsizetype first = text.indexOf("progress 30% validating (+30.0 ms)");
    const qsizetype second = text.indexOf("progress 60% writing (+60.0 ms)");
    QVERIFY2(dropped >= 0 && first > dropped && second > first, qPrintable(text));
    QVERIFY(text.contains("pending"));
    QVERIFY(text.contains("sent "));
    QVERIFY(text.contains("(+5000.0 ms)")); // the deadline, while pending
    QVERIFY(!text.contains("latency"));
    QVERIFY(!text.contains("Ack"));

    CommandOutcome acked = record(CommandState::Acked);
    acked.ack = ack(true, QStringLiteral("pong"));
    acked.ack->errorCode = 4;
    text = rendered(detailsHtml(acked, nullptr));
    QVERIFY2(text.contains(QRegularExpression(R"(acked \d\d:\d\d:\d\d\.\d{3} \(\+12\.0 ms\), )"
                                              R"(latency 11\.00 ms)")),
             qPrintable(text));
    QVERIFY(text.contains("Ack\nsuccess: yes\nmessage: pong\nerror code: 4"));
    QVERIFY(!text.contains("deadline"));
    QVERIFY(!text.contains("not kept"));
}

void TestCommandText::expiredThenLateAck()
{
    CommandOutcome o = record(CommandState::Expired);
    o.finishedAt = o.deadline;
    QString text = rendered(detailsHtml(o, nullptr));
    QVERIFY2(text.contains(QRegularExpression(R"(expired \S+ \(\+5000\.0 ms\)\n)")),
             qPrintable(text));
    QVERIFY(!text.contains("latency"));
    QVERIFY(!text.contains("late ack"));

    o.lateAck = ack(true, QStringLiteral("done, late"));
    o.lateAck->botReceivedAtMs = 1'700'000'000'000;
    o.lateAck->botCompletedAtMs = 1'700'000'000'250;
    o.lateAckAt = o.deadline + 1500ms;
    text = rendered(detailsHtml(o, nullptr));
    QVERIFY2(text.contains(
                 QRegularExpression(R"(late ack \S+ \(\+6500\.0 ms, 1\.5 s after the deadline\))")),
             qPrintable(text));
    QVERIFY(text.contains("Late ack\nsuccess: yes\nmessage: done, late"));
    QVERIFY(text.contains(QRegularExpression(R"(bot received \S+, completed \S+)")));
    QVERIFY(!text.contains("\nAck\n")); // no ack in time
}

void TestCommandText::parametersFromTheRecord()
{
    // Sent by opctl (or another console): the record's params are all there is.
    CommandOutcome o = record(CommandState::Acked);
    CommandSpec custom = CommandSpec::of(CommandKind::Custom);
    custom.customName = QStringLiteral("dump");
    custom.jsonPayload = QByteArray(R"({"depth":3})");
    o.kind = custom.name();
    o.params = custom.paramsJson();
    o.timeout = 2500ms;
    QString text = rendered(detailsHtml(o, nullptr));
    QVERIFY2(text.contains("Command\nname: dump\n\n{\n    \"depth\": 3\n}"), qPrintable(text));
    QVERIFY2(text.contains("timeout: 2500 ms"), qPrintable(text));
    QVERIFY(!text.contains(" = ")); // no config lines for a custom command (item 2)
    QCOMPARE(opctlLine(o, "hub:1", nullptr),
             QString(R"(opctl --hub hub:1 send bot-1 custom --timeout 2500ms --name dump )"
                     R"(--json-payload '{"depth":3}')"));

    // What this window's send panel held for other kinds never reaches a record of this one:
    // the record wins over a stale or wrong SentSpec.
    SentSpec stale{CommandSpec::of(CommandKind::ConfigUpdate), 10s};
    stale.spec.config = {{"depth", "3"}};
    QVERIFY(!opctlLine(o, "hub:1", &stale).contains("--set"));
    QVERIFY(!rendered(detailsHtml(o, &stale)).contains("depth = 3"));

    CommandSpec config = CommandSpec::of(CommandKind::ConfigUpdate);
    config.config = {{"mode", "fast lane"}};
    config.configVersion = 4;
    o.kind = config.name();
    o.params = config.paramsJson();
    text = rendered(detailsHtml(o, nullptr));
    QVERIFY2(text.contains("Command\nmode = fast lane\nversion 4\ntimeout: 2500 ms"),
             qPrintable(text));
    QCOMPARE(opctlLine(o, "hub:1", nullptr),
             QString("opctl --hub hub:1 send bot-1 config --timeout 2500ms --set 'mode=fast lane' "
                     "--version 4"));

    CommandSpec stop = CommandSpec::of(CommandKind::Stop);
    stop.stopReason = QStringLiteral("maintenance");
    stop.graceful = false;
    o.kind = stop.name();
    o.params = stop.paramsJson();
    QCOMPARE(opctlLine(o, "hub:1", nullptr),
             QString("opctl --hub hub:1 send bot-1 stop --timeout 2500ms --reason maintenance "
                     "--no-graceful"));
}

void TestCommandText::recordParamsOfAnotherShape()
{
    // Cut, from another version or hostile: not read as parameters, shown as kept, escaped.
    const struct
    {
        const char *kind;
        const char *params;
    } cases[] = {
        {"config", R"({"version":"7","config":{"a":"b"}})"},
        {"config", R"({"version":-1,"config":{"a":"b"}})"},
        {"config", R"({"version":1e300,"config":{"a":"b"}})"},
        {"config", R"({"version":1.5,"config":{"a":"b"}})"},
        {"config", R"({"version":1,"config":{"a":3}})"},
        {"config", R"({"version":1,"config":["a"]})"},
        {"config", R"({"version":1,"config":{"a":"b"})"}, // cut
        {"custom", R"({"payload":{}})"},
        {"custom", R"({"name":"x","payload":3})"},
        {"stop", R"({"graceful":"no"})"},
        {"stop", R"(["<b>"])"},
        {"ping", R"({"x":1})"},
        {"warp", R"({"name":"x"})"},
        // What paramsJson() never writes: a missing field (read as a default), an unknown or
        // repeated one, a payload as a string, nothing to set, a key opctl cannot say.
        {"stop", R"({"reason":"x"})"},
        {"stop", R"({"force":true,"graceful":false})"},
        {"stop", R"({"graceful":false,"graceful":true})"},
        {"custom", R"({"name":"x","payload":"{\"a\":1}"})"},
        {"custom", R"({"name":"x","payload":"abc"})"},
        {"custom", R"({"name":"","payload":{}})"},
        {"config", R"({"config":{},"version":0})"},
        {"config", R"({"config":{"a=b":"c"},"version":1})"},
        {"config", R"({"config": {"a":"b"},"version":1})"},
    };
    for (const auto &c : cases) {
        QVERIFY2(!CommandSpec::fromRecord(c.kind, c.params), c.params);
        CommandOutcome o = record(CommandState::Acked);
        o.kind = QString::fromLatin1(c.kind);
        o.params = QString::fromLatin1(c.params) + QStringLiteral("<script>");
        const QString html = detailsHtml(o, nullptr);
        QVERIFY2(!html.contains("<b>Command</b>"), c.params);
        QVERIFY2(html.contains("<b>Parameters</b>"), c.params);
        QVERIFY(!html.contains("<script>"));
        QVERIFY(!opctlLine(o, "hub:1", nullptr).contains("--set"));
    }
    // And the shapes paramsJson() writes read back whole.
    QList<CommandSpec> specs;
    for (const CommandKind kind : {CommandKind::Start, CommandKind::Stop, CommandKind::Restart,
                                   CommandKind::Pause, CommandKind::Resume, CommandKind::Ping})
        specs << CommandSpec::of(kind);
    CommandSpec stop = CommandSpec::of(CommandKind::Stop);
    stop.graceful = false;
    stop.stopReason = QStringLiteral("end of \"shift\" <now>");
    CommandSpec config = CommandSpec::of(CommandKind::ConfigUpdate);
    config.config = {{"depth", "3"}, {"mode", "fast lane"}, {"ünïcode", "✓"}};
    config.configVersion = 9007199254740992ULL; // 2^53, the largest a double holds exactly
    CommandSpec custom = CommandSpec::of(CommandKind::Custom);
    custom.customName = QStringLiteral("dump");
    custom.jsonPayload = QByteArray(R"([1,{"a":null}])");
    specs << stop << config << custom;
    for (const CommandSpec &spec : std::as_const(specs)) {
        const auto back = CommandSpec::fromRecord(spec.name(), spec.paramsJson());
        QVERIFY2(back, qPrintable(spec.paramsJson()));
        QCOMPARE(back->paramsJson(), spec.paramsJson());
        QCOMPARE(back->graceful, spec.graceful);
        QCOMPARE(back->config, spec.config);
    }
}

void TestCommandText::opctlLineIsSafeToPaste()
{
    // A hostile hub's record: every word quoted, the kind as opctl names it, a bot id that
    // looks like an option after "--".
    CommandOutcome o = record(CommandState::Acked);
    o.kind = QStringLiteral("stop;touch /tmp/pwned");
    o.hub = QStringLiteral("[::1]:50052");
    o.timeout = 5s;
    QString line = opctlLine(o, "hub:1", nullptr);
    QCOMPARE(line, QString("opctl --hub '[::1]:50052' send bot-1 'stop;touch /tmp/pwned' "
                           "--timeout 5000ms"));
    o.kind = QStringLiteral(" STOP ");
    o.params = CommandSpec::of(CommandKind::Stop).paramsJson();
    o.botId = QStringLiteral("--all");
    line = opctlLine(o, "hub:1", nullptr);
    QCOMPARE(line, QString("opctl --hub '[::1]:50052' send --timeout 5000ms -- --all stop"));
    o.botId = QStringLiteral("-x $(id)");
    QVERIFY(opctlLine(o, "hub:1", nullptr).endsWith("-- '-x $(id)' stop"));
}

void TestCommandText::lateRejectionAfterACancel()
{
    // Late from the cancel, not from the deadline; a rejection says so.
    CommandOutcome o = record(CommandState::Cancelled);
    o.finishedAt = o.registeredAt + 1s;
    o.lateAck = ack(false, QStringLiteral("could not"));
    o.lateAckAt = o.finishedAt + 500ms;
    const QString text = rendered(detailsHtml(o, nullptr));
    QVERIFY2(text.contains(QRegularExpression(R"(late rejection \S+ \(\+1500\.0 ms, 0\.5 s )"
                                              R"(after the cancel\))")),
             qPrintable(text));
}

void TestCommandText::shellQuoting()
{
    QCOMPARE(shellQuote("bot-1"), QString("bot-1"));
    QCOMPARE(shellQuote("a=b,c:d/e.f_g"), QString("a=b,c:d/e.f_g"));
    QCOMPARE(shellQuote(""), QString("''"));
    QCOMPARE(shellQuote("two words"), QString("'two words'"));
    QCOMPARE(shellQuote("it's"), QString("'it'\\''s'"));
    QCOMPARE(shellQuote("$(rm -rf ~)"), QString("'$(rm -rf ~)'"));
}

void TestCommandText::opctlLineWithoutWhatWasSent()
{
    CommandOutcome o = record();
    o.botId = QStringLiteral("bot one's");
    o.kind = QStringLiteral("config");
    QCOMPARE(opctlLine(o, "127.0.0.1:50051", nullptr),
             QString("opctl --hub 127.0.0.1:50051 send 'bot one'\\''s' config --timeout 5000ms"));
    // A record from one of several hubs names its own.
    o.hub = QStringLiteral("10.0.0.2:50051");
    QVERIFY(opctlLine(o, "127.0.0.1:50051", nullptr).startsWith("opctl --hub 10.0.0.2:50051 send"));
}

void TestCommandText::opctlLineForConfig()
{
    CommandOutcome o = record();
    o.kind = QStringLiteral("config");
    SentSpec sent{CommandSpec::of(CommandKind::ConfigUpdate), 2500ms};
    sent.spec.config = {{"depth", "3"}, {"motto", "it's fine"}};
    sent.spec.configVersion = 9;
    QCOMPARE(opctlLine(o, "hub:1", &sent),
             QString("opctl --hub hub:1 send bot-1 config --timeout 2500ms --set depth=3 "
                     "--set 'motto=it'\\''s fine' --version 9"));
    sent.spec.configVersion = 0;
    QVERIFY(!opctlLine(o, "hub:1", &sent).contains("--version"));
}

void TestCommandText::opctlLineForCustomAndStop()
{
    CommandOutcome o = record();
    o.kind = QStringLiteral("custom");
    SentSpec custom{CommandSpec::of(CommandKind::Custom), 30s};
    custom.spec.customName = QStringLiteral("dump logs");
    custom.spec.jsonPayload = QByteArray(R"({"who": "o'brien"})");
    QCOMPARE(opctlLine(o, "hub:1", &custom),
             QString("opctl --hub hub:1 send bot-1 custom --timeout 30000ms --name 'dump logs' "
                     "--json-payload '{\"who\": \"o'\\''brien\"}'"));
    custom.spec.jsonPayload.clear();
    QVERIFY(!opctlLine(o, "hub:1", &custom).contains("--json-payload"));

    o.kind = QStringLiteral("stop");
    SentSpec stop{CommandSpec::of(CommandKind::Stop), 5s};
    QCOMPARE(opctlLine(o, "hub:1", &stop),
             QString("opctl --hub hub:1 send bot-1 stop --timeout 5000ms"));
    stop.spec.stopReason = QStringLiteral("night shift");
    stop.spec.graceful = false;
    QCOMPARE(opctlLine(o, "hub:1", &stop),
             QString("opctl --hub hub:1 send bot-1 stop --timeout 5000ms --reason 'night shift' "
                     "--no-graceful"));
}

QTEST_MAIN(TestCommandText)
#include "tst_commandtext.moc"
