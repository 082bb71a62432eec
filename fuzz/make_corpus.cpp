// Writes the seed corpus of the fuzzers (docs/fuzzing.md) into DIR/botmessages/ and
// DIR/operator_requests/. Deterministic: the same bytes on every run, so the committed files only
// change when this does.
//   cmake --build build-fuzz --target make_corpus && build-fuzz/bin/make_corpus fuzz/corpus
#include "opconsole/v1/botlink.pb.h"
#include "opconsole/v1/cluster.pb.h"
#include "opconsole/v1/operator.pb.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>

using namespace opconsole;
namespace fs = std::filesystem;

namespace {

const std::string Nel = "\xC2\x85"; // U+0085 NEL: a C1 control, refused in ids

std::string serialize(const google::protobuf::MessageLite &m)
{
    std::string out;
    {
        google::protobuf::io::StringOutputStream stream(&out);
        google::protobuf::io::CodedOutputStream coded(&stream);
        coded.SetSerializationDeterministic(true); // map entries in key order
        m.SerializeToCodedStream(&coded);
    }
    return out;
}

// ---- botmessages: frames of a 2-byte little-endian header --------------------------------

// A message behind its 2-byte little-endian length (what fuzz_botmessages and fuzz_hub_events
// read).
std::string lengthFramed(const google::protobuf::MessageLite &m)
{
    const std::string bytes = serialize(m);
    std::string out;
    out += char(bytes.size() & 0xFF);
    out += char(bytes.size() >> 8);
    return out + bytes;
}

// A hub-side event (fuzz_botmessages.cpp, Session::hubEvent).
std::string hub(unsigned action, unsigned arg)
{
    const unsigned h = 0xF000 | (action << 8) | arg;
    return std::string{char(h & 0xFF), char(h >> 8)};
}

enum HubEvent : unsigned
{
    Cancel = 0,
    Fail = 1,
    MarkSent = 2,
    Register = 3,
    RegisterFuzzedId = 4,
    Replace = 5,
    FailBot = 6,
    FailAll = 7,
    Cleanup = 8,
    Flush = 9,
    MaxRemembered = 10,
    LateAckWindow = 11,
    MaxPendingPerBot = 12,
    Page = 13,
    MaxTimeout = 14,
    Bulk = 15,
};

std::string hello(const std::string &botId = "bot-1", uint32_t version = 1,
                  std::initializer_list<std::pair<const char *, const char *>> labels = {})
{
    v1::BotMessage m;
    m.mutable_hello()->set_bot_id(botId);
    m.mutable_hello()->set_protocol_version(version);
    m.mutable_hello()->set_bot_version("botsim 0.1.0");
    for (const auto &[k, v] : labels)
        (*m.mutable_hello()->mutable_labels())[k] = v;
    return lengthFramed(m);
}

v1::BotMessage ackMessage(const std::string &id, bool success, const std::string &message = {},
                          v1::AckErrorCode code = v1::ACK_ERROR_UNSPECIFIED)
{
    v1::BotMessage m;
    m.mutable_ack()->set_command_id(id);
    m.mutable_ack()->set_success(success);
    m.mutable_ack()->set_message(message);
    m.mutable_ack()->set_error_code(code);
    return m;
}

std::string ack(const std::string &id, bool success = true, const std::string &message = {},
                v1::AckErrorCode code = v1::ACK_ERROR_UNSPECIFIED)
{
    return lengthFramed(ackMessage(id, success, message, code));
}

std::string progress(const std::string &id, uint32_t percent, const std::string &message = {})
{
    v1::BotMessage m;
    m.mutable_progress()->set_command_id(id);
    m.mutable_progress()->set_percent(percent);
    m.mutable_progress()->set_message(message);
    return lengthFramed(m);
}

std::string heartbeat(uint64_t sequence, v1::BotState state)
{
    v1::BotMessage m;
    m.mutable_heartbeat()->set_sequence(sequence);
    m.mutable_heartbeat()->set_state(state);
    return lengthFramed(m);
}

std::string status(v1::BotState state,
                   std::initializer_list<std::pair<const char *, const char *>> fields)
{
    v1::BotMessage m;
    m.mutable_status()->set_state(state);
    for (const auto &[k, v] : fields)
        (*m.mutable_status()->mutable_fields())[k] = v;
    return lengthFramed(m);
}

// ---- operator_requests: a type byte, then the message ------------------------------------

enum RequestType : char
{
    SendCommand = 0,
    SendToMany = 1,
    ListCommands = 2,
    CancelCommandRequest = 3,
    ListBots = 4,
    Watch = 5,
    QueryHistory = char(252),
};

std::string request(RequestType type, const google::protobuf::MessageLite &m)
{
    return std::string(1, char(type)) + serialize(m);
}

void setDuration(google::protobuf::Duration *d, int64_t seconds, int32_t nanos = 0)
{
    d->set_seconds(seconds);
    d->set_nanos(nanos);
}

v1::SendCommandRequest sendPing(const std::string &botId = "bot-1", int64_t timeoutSeconds = 5)
{
    v1::SendCommandRequest r;
    r.set_bot_id(botId);
    r.mutable_command()->mutable_ping();
    setDuration(r.mutable_timeout(), timeoutSeconds);
    return r;
}

class Writer
{
public:
    explicit Writer(fs::path dir) : m_dir(std::move(dir)) { fs::create_directories(m_dir); }
    void operator()(const std::string &name, const std::string &bytes)
    {
        std::ofstream(m_dir / name, std::ios::binary | std::ios::trunc) << bytes;
        ++m_count;
        m_bytes += bytes.size();
    }
    ~Writer()
    {
        std::printf("%s: %d files, %zu bytes\n", m_dir.string().c_str(), m_count, m_bytes);
    }

private:
    fs::path m_dir;
    int m_count = 0;
    size_t m_bytes = 0;
};

void botMessages(const fs::path &dir)
{
    Writer put(dir);
    put("hello_only", hello());
    put("hello_ack", hello() + ack("c-0"));
    put("hello_ack_rejected",
        hello() + ack("c-1", false, "cannot pause while stopped", v1::ACK_ERROR_INVALID_STATE));
    {
        v1::BotMessage m = ackMessage("c-0", true, "done");
        m.mutable_ack()->mutable_received_at()->set_seconds(1'700'000'000);
        m.mutable_ack()->mutable_completed_at()->set_seconds(1'700'000'001);
        m.mutable_ack()->mutable_completed_at()->set_nanos(250'000'000);
        m.mutable_ack()->set_result("{\"ok\":true}");
        put("hello_ack_times_result", hello() + lengthFramed(m));
    }
    {
        v1::BotMessage m = ackMessage("c-2", true);
        m.mutable_ack()->mutable_received_at()->set_seconds(300'000'000'000); // past 9999-12-31
        put("ack_received_at_year_9999_plus", hello() + lengthFramed(m));
    }
    {
        v1::BotMessage m = ackMessage("c-4", true);
        m.mutable_ack()->mutable_completed_at()->set_seconds(-62'135'596'800); // 0001-01-01
        m.mutable_ack()->mutable_received_at()->set_nanos(-1);
        put("ack_timestamp_edges", hello() + lengthFramed(m));
    }
    put("ack_id_nel", hello() + ack("c-" + Nel));
    put("ack_unknown_error_code", hello() + ack("c-5", false, "?", v1::AckErrorCode(99)));
    put("ack_message_cut",
        hello() + ack("c-6", false, std::string(4094, 'a') + "\xC3\xA9\xE2\x82\xAC")); // é€
    put("hello_bot_id_nel", hello("bot" + Nel));
    put("hello_wrong_protocol", hello("bot-1", 2));
    put("hello_labels_status", hello("bot-2", 1, {{"env", "prod"}, {"region", "eu-west"}}) +
                                   heartbeat(1, v1::BOT_STATE_RUNNING) +
                                   status(v1::BOT_STATE_PAUSED, {{"cpu", "12%"}, {"jobs", "3"}}) +
                                   heartbeat(2, v1::BotState(7)));
    put("first_not_hello", ack("c-0") + hello());
    put("progress_then_ack", hello() + progress("c-2", 10, "starting") + progress("c-2", 50) +
                                 ack("c-2") + progress("c-2", 100) + progress("c-3", 101));
    put("late_and_duplicate_ack",
        hello() + hub(Cancel, 3) + ack("c-3") + ack("c-3", false) + ack("c-0") + ack("c-0"));
    put("wrong_bot_and_unknown", hello() + ack("o-0") + ack("c-99") + progress("o-0", 5));
    {
        // A reconnect whose Hello repeats the bot's recent acks (docs/protocol.md rule 13).
        v1::BotMessage m;
        m.mutable_hello()->set_bot_id("bot-1");
        m.mutable_hello()->set_protocol_version(1);
        for (const auto &[id, ok] :
             {std::pair{"c-0", true}, std::pair{"c-1", false}, std::pair{"c-99", true}}) {
            v1::CommandAck *a = m.mutable_hello()->add_recent_acks();
            a->set_command_id(id);
            a->set_success(ok);
            a->set_message(ok ? "done" : "busy");
        }
        put("hello_recent_acks_replaced",
            lengthFramed(m) + hub(MarkSent, 0) + hub(Cancel, 1) + hub(Replace, 0) + ack("c-0"));
    }
    put("session_replaced",
        hello() + hub(Replace, 0) + ack("c-0") + hub(MarkSent, 6) + hub(FailBot, 0) + ack("c-6"));
    put("register_fuzzed_id", hello() + ack("job-\xE2\x9C\x93") + hub(RegisterFuzzedId, 0x20) +
                                  progress("job-\xE2\x9C\x93", 30) + ack("job-\xE2\x9C\x93"));
    put("register_and_fail", hello() + hub(Register, 0x28) + hub(Register, 0x49) + hub(Fail, 0x38) +
                                 hub(Fail, 0x55) + hub(FailAll, 5) + ack("c-8") + ack("c-1"));
    put("forget_and_page", hello() + hub(MaxRemembered, 0) + ack("c-0") + ack("c-0") +
                               hub(LateAckWindow, 0) + hub(Register, 0x20) + hub(Page, 0x31) +
                               hub(Flush, 0) + hub(Cleanup, 0));
    put("limits", hello() + hub(MaxPendingPerBot, 1) + hub(Register, 0x2A) + hub(MaxTimeout, 0) +
                      hub(Register, 0x2B) + hub(MaxTimeout, 1) + hub(Register, 0x2C));
    // 1,152 commands, all failed and forgotten, then one more: heap and order compaction,
    // chunks released.
    put("bulk_compact", hello() + hub(Bulk, 0x1F) + hub(FailAll, 6) + hub(Register, 0x29) +
                            hub(LateAckWindow, 0) + hub(Register, 0x2A) + ack("b-7"));
    // Seven in eight cancelled at once: a bot's refs compacted; acks late and in time.
    put("bulk_cancelled", hello() + hub(Bulk, 0xC7) + ack("b-8") + ack("b-9") + ack("c-0") +
                              hub(Bulk, 0x21) + ack("b-3"));
    {
        v1::BotMessage empty;
        put("second_hello_and_empty", hello() + hello("bot-9") + lengthFramed(empty) + ack("c-7"));
    }
    put("broken_frame",
        hello() + ack("c-0") + std::string("\x05\x00\x0a\xff\xff\xff\xff", 7) + ack("c-1"));
}

void operatorRequests(const fs::path &dir)
{
    Writer put(dir);
    put("send_ping", request(SendCommand, sendPing()));
    {
        v1::QueryHistoryRequest q;
        q.set_bot_id("bot-7");
        q.add_outcomes(v1::OUTCOME_UNKNOWN);
        q.add_outcomes(v1::OUTCOME_ACKED);
        q.set_text("disk 100%_");
        q.mutable_since()->set_seconds(1'780'000'000);
        q.set_page_size(50);
        q.set_page_token("h1.1780000000000.1099511627777");
        put("query_history", request(QueryHistory, q));
        v1::QueryHistoryRequest bad;
        bad.set_page_token("h1.-9223372036854775808.9223372036854775807");
        bad.set_page_size(1001);
        put("query_history_bad", request(QueryHistory, bad));
    }
    {
        v1::SendCommandRequest r = sendPing();
        r.mutable_command()->set_command_id("op-42");
        r.mutable_command()->mutable_stop()->set_reason("maintenance window");
        r.mutable_command()->mutable_stop()->set_graceful(true);
        setDuration(r.mutable_connect_timeout(), 2, 500'000'000);
        put("send_stop", request(SendCommand, r));
    }
    {
        v1::SendCommandRequest r = sendPing();
        auto *update = r.mutable_command()->mutable_config_update();
        (*update->mutable_values())["interval"] = "30s";
        (*update->mutable_values())["mode"] = "fast";
        update->set_version(7);
        put("send_config", request(SendCommand, r));
    }
    {
        v1::SendCommandRequest r = sendPing();
        (*r.mutable_command()->mutable_config_update()->mutable_values())["k" + Nel] = "v";
        put("send_config_key_nel", request(SendCommand, r));
    }
    {
        v1::SendCommandRequest r = sendPing();
        r.mutable_command()->mutable_custom()->set_name("rotate-logs");
        r.mutable_command()->mutable_custom()->set_json_payload("{\"keep\": [1, 2.5, \"x\"]}");
        put("send_custom", request(SendCommand, r));
    }
    {
        v1::SendCommandRequest r = sendPing();
        r.mutable_command()->mutable_custom()->set_name("rotate-logs");
        r.mutable_command()->mutable_custom()->set_json_payload("{\"keep\": ");
        put("send_custom_bad_json", request(SendCommand, r));
    }
    put("send_timeout_2e61_seconds", request(SendCommand, sendPing("bot-1", int64_t(1) << 61)));
    {
        v1::SendCommandRequest r = sendPing();
        setDuration(r.mutable_timeout(), 0, 1); // 1 ns: rounds up to 1 ms
        setDuration(r.mutable_connect_timeout(), -1, -5);
        put("send_sub_ms_and_negative", request(SendCommand, r));
    }
    put("send_bot_id_nel", request(SendCommand, sendPing("bot" + Nel)));
    {
        v1::SendToManyRequest r;
        r.add_bot_ids("bot-1");
        r.add_bot_ids("bot-2");
        r.mutable_command()->mutable_start();
        setDuration(r.mutable_timeout(), 10);
        put("fanout_ids", request(SendToMany, r));
    }
    {
        v1::SendToManyRequest r;
        (*r.mutable_label_selector())["env"] = "prod";
        r.mutable_command()->mutable_restart();
        setDuration(r.mutable_timeout(), 86'400);
        put("fanout_selector", request(SendToMany, r));
    }
    {
        v1::SendToManyRequest r;
        r.set_all(true);
        r.mutable_command()->set_command_id("fixed");
        r.mutable_command()->mutable_pause();
        setDuration(r.mutable_timeout(), 1);
        put("fanout_all_with_id", request(SendToMany, r));
    }
    {
        v1::ListCommandsRequest r;
        r.add_outcomes(v1::OUTCOME_ACKED);
        r.add_outcomes(v1::OUTCOME_EXPIRED);
        r.set_bot_id("bot-1");
        r.mutable_since()->set_seconds(1'700'000'000);
        r.set_page_size(50);
        r.set_page_token("12");
        put("list_commands", request(ListCommands, r));
    }
    {
        v1::ListCommandsRequest r;
        r.mutable_since()->set_seconds(300'000'000'000);
        put("list_since_past_9999", request(ListCommands, r));
    }
    {
        v1::ListCommandsRequest r;
        r.add_outcomes(v1::Outcome(42));
        r.set_page_token("abc");
        put("list_bad_outcome_token", request(ListCommands, r));
    }
    {
        v1::CancelCommandRequest r;
        r.set_command_id("op-42");
        r.set_reason("operator changed their mind");
        put("cancel", request(CancelCommandRequest, r));
    }
    {
        v1::CancelCommandRequest r;
        r.set_command_id("op" + Nel);
        put("cancel_id_nel", request(CancelCommandRequest, r));
    }
    {
        v1::ListBotsRequest r;
        r.set_connected_only(true);
        (*r.mutable_label_selector())["env"] = "prod";
        (*r.mutable_label_selector())["tier"] = "";
        put("list_bots", request(ListBots, r));
    }
    {
        v1::WatchRequest r;
        r.set_snapshot(true);
        put("watch", request(Watch, r));
    }
}

// ---- hub_events: frames of a 2-byte little-endian length and a WatchEvent -----------------

v1::WatchEvent commandEvent(const std::string &name, const std::string &id, v1::Outcome outcome,
                            uint64_t change, const std::string &fanOut = {})
{
    v1::WatchEvent e;
    e.set_event(name);
    v1::CommandRecord &r = *e.mutable_command();
    r.set_command_id(id);
    r.set_bot_id("bot-1");
    r.set_kind("ping");
    r.set_outcome(outcome);
    r.mutable_registered_at()->set_seconds(1'780'000'000);
    r.mutable_deadline()->set_seconds(1'780'000'005);
    r.set_progress_percent(-1);
    r.set_fan_out_id(fanOut);
    r.set_change(change);
    if (outcome != v1::OUTCOME_PENDING) {
        r.mutable_finished_at()->set_seconds(1'780'000'001);
        r.mutable_latency()->set_nanos(12'000'000);
    }
    return e;
}

void hubEvents(const fs::path &dir)
{
    Writer put(dir);
    {
        v1::WatchEvent bot;
        bot.set_event("snapshot_bot");
        bot.mutable_bot()->set_bot_id("bot-1");
        bot.mutable_bot()->set_connected(true);
        (*bot.mutable_bot()->mutable_labels())["group"] = "a";
        v1::WatchEvent end;
        end.set_event("snapshot_end");
        end.set_change(3);
        end.set_feed_id(77);
        put("snapshot",
            lengthFramed(bot) +
                lengthFramed(commandEvent("snapshot_command", "c-1", v1::OUTCOME_ACKED, 3)) +
                lengthFramed(end));
    }
    {
        std::string fan;
        uint64_t change = 10;
        for (const char *id : {"c-a", "c-b", "c-c"})
            fan +=
                lengthFramed(commandEvent("registered", id, v1::OUTCOME_PENDING, ++change, "f-1"));
        fan += lengthFramed(commandEvent("acked", "c-a", v1::OUTCOME_ACKED, ++change, "f-1"));
        fan += lengthFramed(commandEvent("expired", "c-b", v1::OUTCOME_EXPIRED, ++change, "f-1"));
        v1::WatchEvent late = commandEvent("late_ack", "c-b", v1::OUTCOME_EXPIRED, ++change, "f-1");
        late.mutable_command()->mutable_late_ack()->set_command_id("c-b");
        late.mutable_command()->mutable_late_ack()->set_success(true);
        late.mutable_command()->mutable_late_by()->set_seconds(2);
        fan += lengthFramed(late);
        fan += lengthFramed(commandEvent("acked", "c-a", v1::OUTCOME_ACKED, 5, "f-1")); // stale
        put("fan_out_late_ack", fan);
    }
    {
        v1::WatchEvent bad = commandEvent("acked", "c-x", v1::OUTCOME_ACKED, 1);
        bad.mutable_command()->mutable_deadline()->set_seconds(253402300799LL);
        bad.mutable_command()->mutable_latency()->set_seconds(-5);
        put("out_of_range", lengthFramed(bad));
        v1::WatchEvent nel = commandEvent("registered", "c" + Nel, v1::OUTCOME_PENDING, 2);
        put("control_id", lengthFramed(nel));
    }
}

} // namespace

// ---- credentials: a selector byte (% 5) and the text or message ----------------------------

void credentials(const fs::path &dir)
{
    Writer put(dir);
    const std::string hash =
        "hmac-sha256:fcf20c7b74a6bc0ab11bfca9fcef13562016862c2496ce4e2245ee1cacce700c";
    put("header", std::string(1, '\0') + "Bearer opc_3q2-7wEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    put("header_bad", std::string(1, '\0') + "bearer a\tb");
    put("operators", std::string(1, '\1') + "# ops\nalice admin " + hash + "\nsam operator " +
                         hash.substr(0, hash.size() - 1) + "d group=a,region=eu\n");
    put("operators_twice", std::string(1, '\1') + "a admin " + hash + "\nb viewer " + hash + "\n");
    put("bot_tokens", std::string(1, '\2') + "rack bot-1,sim-*,* " + hash + "\n");
    put("selector", std::string(1, '\3') + "group=a,region=eu,empty=");
    v1::DecideBotRequest decide;
    decide.set_bot_id("bot-7");
    decide.set_decision(v1::DECISION_REVOKE);
    decide.set_reason("key leaked");
    put("decide", std::string(1, '\4') + serialize(decide));
    decide.set_decision(v1::Decision(7));
    put("decide_bad", std::string(1, '\4') + serialize(decide));
}

// fuzz_cluster: the first byte picks the message (0 batch, 1 answers, 2 beacon, 3 acks,
// 4 directory entry).
void cluster(const fs::path &dir)
{
    Writer put(dir);
    const auto tagged = [](char tag, const google::protobuf::Message &m) {
        return std::string(1, tag) + m.SerializeAsString();
    };
    v1::ForwardedCommand fc;
    *fc.mutable_request() = sendPing("bot-1", 5);
    fc.mutable_request()->mutable_command()->set_command_id("c-1");
    fc.set_issuer("alice");
    (*fc.mutable_scope())["group"] = "a";
    fc.set_fan_out_id("f-1");
    fc.set_issuing_hub("hub-1");
    fc.set_seq(7);
    fc.set_issuing_incarnation(5);
    v1::ForwardedBatch batch;
    *batch.add_commands() = fc;
    fc.set_seq(8);
    fc.mutable_request()->set_bot_id("bot-2"); // another bot than its subject
    *batch.add_commands() = fc;
    put("batch", tagged(0, batch));
    v1::ForwardReplies replies;
    v1::ForwardReply *acked = replies.add_replies();
    acked->set_hub("hub-3");
    acked->set_seq(7);
    acked->set_incarnation(99);
    acked->set_command_id("c-1");
    acked->mutable_record()->set_command_id("c-1");
    acked->mutable_record()->set_bot_id("bot-1");
    acked->mutable_record()->set_outcome(v1::OUTCOME_ACKED);
    acked->mutable_record()->mutable_ack()->set_command_id("c-1");
    acked->mutable_record()->mutable_ack()->set_success(true);
    v1::ForwardReply *taken = replies.add_replies();
    taken->set_hub("hub-3");
    taken->set_seq(8);
    taken->set_taken(true);
    put("answers", tagged(1, replies));
    v1::HubBeacon beacon;
    beacon.set_hub("hub-2");
    beacon.set_incarnation(42);
    beacon.set_operator_address("127.0.0.1:50062");
    beacon.set_bots(100);
    put("beacon", tagged(2, beacon));
    v1::ResentAcks acks;
    acks.set_bot_id("bot-1");
    acks.set_hub("hub-2");
    acks.add_acks()->set_command_id("c-1");
    put("acks", tagged(3, acks));
    v1::BotRecord entry;
    entry.set_bot_id("bot-1");
    entry.set_connected(true);
    entry.set_hub("hub-3");
    (*entry.mutable_labels())["group"] = "a";
    put("directory", tagged(4, entry));
    v1::AdmissionShared decision;
    decision.set_bot_id("bot-9");
    decision.set_revoke(true);
    decision.set_by("admin");
    decision.set_reason("stolen device");
    decision.set_hub("hub-1");
    put("admission", tagged(5, decision));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        std::fprintf(stderr,
                     "usage: %s CORPUS_DIR (writes CORPUS_DIR/botmessages, "
                     "CORPUS_DIR/operator_requests, CORPUS_DIR/hub_events, "
                     "CORPUS_DIR/credentials and CORPUS_DIR/cluster)\n",
                     argv[0]);
        return 2;
    }
    const fs::path root = argv[1];
    botMessages(root / "botmessages");
    operatorRequests(root / "operator_requests");
    hubEvents(root / "hub_events");
    credentials(root / "credentials");
    cluster(root / "cluster");
    return 0;
}
