// The validation layer (wire/wirecheck): every rule, at its edges, and conversions that never
// CHECK-fail whatever they are given.
#include "wirecheck.h"

#include <QTest>

#include <limits>

using namespace opconsole;

class TestWireCheck : public QObject
{
    Q_OBJECT

private slots:
    void ids();
    void helloRecentAcks();
    void texts();
    void timestamps();
    void durations();
    void outputConversionsClamp();
    void cutKeepsCharacters();
    void acks();
    void commandActions();
    void botRecordAdmissionAndCredential();
};

void TestWireCheck::ids()
{
    QVERIFY(wire::checkId("bot-7", "bot_id").empty());
    QVERIFY(wire::checkId(std::string(128, 'b'), "bot_id").empty());
    QVERIFY(wire::checkId("b\xC3\xA9t \xE2\x9C\x93", "bot_id").empty()); // é, ✓ and a space
    QVERIFY(!wire::checkId("", "bot_id").empty());
    QVERIFY(!wire::checkId(std::string(129, 'b'), "bot_id").empty());
    for (const char *bad :
         {"a\nb", "a\x7f", "a\xC2\x85", "a\xC2\x9B", "a\xE2\x80\xAE", "a\xE2\x80\xA8",
          "\xEF\xBB\xBF"
          "a",
          "a\xE2\x81\xA6"})
        QVERIFY2(wire::checkId(bad, "bot_id").find("control") != std::string::npos, bad);
    // Malformed UTF-8: overlong, surrogate, truncated, past U+10FFFF.
    for (const char *bad : {"\xC0\xAF", "\xED\xA0\x80", "a\xE2\x80", "\xF4\x90\x80\x80"})
        QVERIFY2(wire::checkId(bad, "bot_id").find("UTF-8") != std::string::npos, bad);
    QCOMPARE(QString::fromStdString(wire::checkId("", "bot_id")), QString("bot_id is empty"));
}

void TestWireCheck::texts()
{
    QVERIFY(wire::checkText("line one\nline two", "message", 100).empty());
    QVERIFY(!wire::checkText(std::string(101, 'x'), "message", 100).empty());
    QVERIFY(!wire::checkText("\xFF", "message", 100).empty());
}

void TestWireCheck::timestamps()
{
    google::protobuf::Timestamp t;
    int64_t ms = -1;
    t.set_seconds(300000000000);
    QVERIFY(!wire::checkTimestamp(t, "received_at", &ms).empty());
    QCOMPARE(ms, -1); // untouched on error
    t.set_seconds(1);
    t.set_nanos(-1);
    QVERIFY(!wire::checkTimestamp(t, "received_at", &ms).empty());
    t.set_nanos(1'000'000'000);
    QVERIFY(!wire::checkTimestamp(t, "received_at", &ms).empty());
    t.set_seconds(wire::TimestampMaxSeconds);
    t.set_nanos(999'999'999);
    QVERIFY(wire::checkTimestamp(t, "received_at", &ms).empty());
    QCOMPARE(ms, wire::TimestampMaxSeconds * 1000 + 999);
}

void TestWireCheck::durations()
{
    google::protobuf::Duration d;
    int64_t ms = -1;
    d.set_seconds((int64_t(1) << 61) + 1); // the 2^61+1 s that used to wrap to 1 s
    QVERIFY(!wire::checkDuration(d, "timeout", &ms).empty());
    QCOMPARE(ms, -1);
    d.set_seconds(1);
    d.set_nanos(-5); // signs differ
    QVERIFY(!wire::checkDuration(d, "timeout", &ms).empty());
    d.set_seconds(0);
    d.set_nanos(1); // 1 ns rounds up to 1 ms, never to 0
    QVERIFY(wire::checkDuration(d, "timeout", &ms).empty());
    QCOMPARE(ms, 1);
    d.set_seconds(wire::DurationMaxSeconds);
    d.set_nanos(0);
    QVERIFY(wire::checkDuration(d, "timeout", &ms).empty());
    QCOMPARE(ms, wire::DurationMaxSeconds * 1000);
}

void TestWireCheck::outputConversionsClamp()
{
    const auto big = wire::timestampFromMs(std::numeric_limits<int64_t>::max());
    QCOMPARE(big.seconds(), wire::TimestampMaxSeconds);
    const auto small = wire::timestampFromMs(std::numeric_limits<int64_t>::min());
    QCOMPARE(small.seconds(), wire::TimestampMinSeconds);
    const auto negative = wire::timestampFromMs(-1);
    QCOMPARE(negative.seconds(), -1);
    QCOMPARE(negative.nanos(), 999'000'000);
    const auto d = wire::durationFromMs(std::numeric_limits<int64_t>::max());
    QCOMPARE(d.seconds(), wire::DurationMaxSeconds);
    const auto n = wire::durationFromNs(std::numeric_limits<int64_t>::min());
    QVERIFY(n.seconds() < 0 && n.nanos() <= 0);
    int64_t ms = 0;
    QVERIFY(wire::checkTimestamp(big, "t", &ms).empty());
    QVERIFY(wire::checkDuration(d, "d", &ms).empty());
}

void TestWireCheck::cutKeepsCharacters()
{
    const std::string s = std::string(10, 'a') + "\xE2\x9C\x93\xE2\x9C\x93"; // 10 + two ✓
    const std::string cut = wire::cutText(s, 13);
    QVERIFY(cut.size() <= 13);
    QVERIFY(wire::checkText(cut, "cut", 13).empty()); // still valid UTF-8
    QCOMPARE(wire::cutText("short", 13), std::string("short"));
}

void TestWireCheck::acks()
{
    v1::CommandAck ack;
    QVERIFY(!wire::checkAck(ack).problem.empty()); // no id: ignored
    ack.set_command_id("c-1");
    ack.mutable_received_at()->set_seconds(-70000000000); // before year 1
    ack.set_error_code(v1::AckErrorCode(42));
    ack.set_message(std::string(5000, 'm'));
    const wire::AckCheck checked = wire::checkAck(ack);
    QVERIFY(checked.problem.empty());       // applied...
    QVERIFY(!checked.fieldProblem.empty()); // ...with its broken fields named
    QCOMPARE(checked.receivedAtMs, 0);
    QCOMPARE(checked.errorCode, 0);
    QVERIFY(checked.message.size() <= wire::limits::TextBytes);
}

void TestWireCheck::commandActions()
{
    v1::Command c;
    QVERIFY(!wire::checkCommandAction(c).empty()); // no action
    auto &values = *c.mutable_config_update()->mutable_values();
    QVERIFY(!wire::checkCommandAction(c).empty()); // no values
    values["depth"] = "3";
    QVERIFY(wire::checkCommandAction(c).empty());
    values["bad\nkey"] = "1";
    QVERIFY(!wire::checkCommandAction(c).empty());
    values.erase("bad\nkey");
    for (int i = 0; i < 300; ++i)
        values["k" + std::to_string(i)] = "v";
    QVERIFY(!wire::checkCommandAction(c).empty());
    c.mutable_custom()->set_name("");
    QVERIFY(!wire::checkCommandAction(c).empty());
}

// Hello.recent_acks (docs/protocol.md rule 13): at most 256, each with a valid id; the rest of
// each ack is checked as any ack is when it is applied.
void TestWireCheck::helloRecentAcks()
{
    v1::Hello hello;
    hello.set_bot_id("bot-1");
    hello.set_protocol_version(1);
    for (int i = 0; i < wire::limits::MaxResentAcks; ++i)
        hello.add_recent_acks()->set_command_id("c-" + std::to_string(i));
    QVERIFY(wire::checkHello(hello).empty());
    hello.add_recent_acks()->set_command_id("one-too-many");
    QVERIFY(wire::checkHello(hello).find("at most 256") != std::string::npos);
    for (const std::string &badId : {std::string(), std::string(200, 'x'), std::string("c\x01"),
                                     std::string("c\xE2\x80\xAE")}) {
        v1::Hello h;
        h.set_bot_id("bot-1");
        h.set_protocol_version(1);
        h.add_recent_acks()->set_command_id("fine");
        h.add_recent_acks()->set_command_id(badId);
        QVERIFY2(wire::checkHello(h).find("recent_acks command_id") != std::string::npos,
                 badId.c_str());
    }
}

void TestWireCheck::botRecordAdmissionAndCredential()
{
    // What a console accepts from a hub about a bot's admission (tst_remotebackend drives it).
    opconsole::v1::BotRecord bot;
    bot.set_bot_id("bot-1");
    bot.set_admission(opconsole::v1::ADMISSION_AWAITING);
    bot.set_credential("cert:0123456789abcdef+token:rack");
    QCOMPARE(wire::checkBotRecord(bot), std::string());
    bot.set_admission(opconsole::v1::Admission(99));
    QVERIFY(wire::checkBotRecord(bot).find("admission") != std::string::npos);
    bot.set_admission(opconsole::v1::ADMISSION_REJECTED);
    bot.set_credential("cert:\x01");
    QVERIFY(wire::checkBotRecord(bot).find("credential") != std::string::npos);
    bot.set_credential(std::string(257, 'c'));
    QVERIFY(wire::checkBotRecord(bot).find("credential") != std::string::npos);
    // The hub that holds it (a cluster): an id, or nothing.
    bot.set_credential("none");
    bot.set_hub("hub-3");
    QCOMPARE(wire::checkBotRecord(bot), std::string());
    for (const std::string &hub :
         {std::string("hub\n3"), std::string(129, 'h'), std::string("\xff\xfe")}) {
        bot.set_hub(hub);
        QVERIFY(wire::checkBotRecord(bot).find("hub") != std::string::npos);
    }
}

QTEST_APPLESS_MAIN(TestWireCheck)
#include "tst_wirecheck.moc"
