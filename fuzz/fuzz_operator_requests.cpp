// libFuzzer target: Operator API requests as the hub checks them (docs/fuzzing.md).
//
// Input: the first byte picks the request type (byte % 6: SendCommandRequest, SendToManyRequest,
// ListCommandsRequest, CancelCommandRequest, ListBotsRequest, WatchRequest; 252..255:
// QueryHistoryRequest, checked by api::checkQueryHistory, its page token decoded as the
// history store does); the rest is parsed
// as that message. A request that parses is validated the way stream/operatorservice.cpp does it
// (its helpers are file-local there, so the same sequence of public checks is rebuilt here:
// wire::checkId, checkDuration, checkLabels, checkTimestamp, convert::specFromCommand). A command
// that passes is then built the way the hub sends it (convert::fillCommand) and must pass
// wire::checkCommandAction again, carry the same action, and convert back to the same spec; the
// time conversions must give back what they were given. Independent of the parse, the payload
// bytes also go through the string checks as raw bytes (the parser only lets valid UTF-8 reach
// them). A violated invariant aborts with a message.
#include "botinfo.h"
#include "commandregistry.h" // CommandRegistry::DefaultMaxTimeout
#include "fuzzsupport.h"
#include "historyrows.h"
#include "operatorrequest.h"
#include "operatorservice.h" // OperatorService::MaxPageSize
#include "protoconvert.h"
#include "wirecheck.h"

#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/util/message_differencer.h>

#include <QCoreApplication>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>

using namespace opconsole;
using namespace std::chrono;
using convert::fromStd;
using convert::toStd;

namespace {

// The registry's default cap, which the service checks timeouts against.
constexpr milliseconds MaxTimeout = CommandRegistry::DefaultMaxTimeout;
constexpr int64_t MaxDurationMs = wire::DurationMaxSeconds * 1000;

template <typename Message> void requireRoundTrip(const Message &m)
{
    std::string bytes;
    REQUIRE(m.SerializeToString(&bytes));
    Message back;
    REQUIRE(back.ParseFromString(bytes));
    REQUIRE(google::protobuf::util::MessageDifferencer::Equals(back, m));
}

// The output conversions promise a valid value for any input.
void checkTimeConversions(int64_t v)
{
    int64_t ms = 0;
    REQUIRE(wire::checkTimestamp(wire::timestampFromMs(v), "t", &ms).empty());
    REQUIRE(wire::checkDuration(wire::durationFromMs(v), "d", &ms).empty());
    REQUIRE(ms == std::clamp(v, -MaxDurationMs, MaxDurationMs));
    REQUIRE(wire::checkDuration(wire::durationFromNs(v), "d", &ms).empty());
}

using api::CommandRequest;

// Any valid duration converts both ways (clamped to the type's range on the way back).
void checkDurationRoundTrip(const google::protobuf::Duration &d)
{
    int64_t ms = 0;
    if (!wire::checkDuration(d, "d", &ms).empty())
        return;
    int64_t back = 0;
    REQUIRE(wire::checkDuration(wire::durationFromMs(ms), "d", &back).empty());
    REQUIRE(back == std::clamp(ms, -MaxDurationMs, MaxDurationMs));
}

bool sameSpec(const CommandSpec &a, const CommandSpec &b)
{
    return a.kind == b.kind && a.stopReason == b.stopReason && a.graceful == b.graceful &&
           a.config == b.config && a.configVersion == b.configVersion &&
           a.customName == b.customName && a.jsonPayload == b.jsonPayload;
}

// A command that passed: what the hub writes to the bot (Hub::send -> convert::fillCommand).
void checkAcceptedCommand(const v1::Command &in, const CommandRequest &checked)
{
    REQUIRE(checked.timeout > 0ms && checked.timeout <= MaxTimeout);
    REQUIRE(checked.options.connectTimeout >= 0ms && checked.options.connectTimeout <= MaxTimeout);
    const QString id =
        in.command_id().empty() ? QStringLiteral("0123456789abcdef") : fromStd(in.command_id());
    v1::HubMessage message;
    v1::Command &out = *message.mutable_command();
    convert::fillCommand(out, id, checked.spec, checked.timeout);

    REQUIRE(wire::checkCommandAction(out).empty());
    REQUIRE(wire::checkId(out.command_id(), "command_id").empty());
    REQUIRE(in.command_id().empty() || out.command_id() == in.command_id());
    int64_t ms = 0;
    REQUIRE(wire::checkTimestamp(out.issued_at(), "issued_at", &ms).empty());
    REQUIRE(wire::checkDuration(out.timeout(), "timeout", &ms).empty());
    REQUIRE(ms == checked.timeout.count());
    requireRoundTrip(message);

    // The action crosses CommandSpec unchanged (only the id, times and unknown fields differ).
    v1::Command sent = out;
    v1::Command asked = in;
    for (v1::Command *c : {&sent, &asked}) {
        c->clear_command_id();
        c->clear_issued_at();
        c->clear_timeout();
        c->DiscardUnknownFields();
    }
    REQUIRE(google::protobuf::util::MessageDifferencer::Equals(sent, asked));

    QString problem;
    const CommandSpec again = convert::specFromCommand(out, &problem);
    REQUIRE(problem.isEmpty());
    REQUIRE(sameSpec(again, checked.spec));
    REQUIRE(CommandSpec::kindFromName(checked.spec.name()) == checked.spec.kind);
}

void sendCommand(const v1::SendCommandRequest &r)
{
    // The Operator service's own checks (stream/operatorrequest), not a copy of them.
    checkDurationRoundTrip(r.timeout());
    checkDurationRoundTrip(r.connect_timeout());
    CommandRequest checked;
    if (api::checkSendCommand(r, MaxTimeout, &checked).isEmpty())
        checkAcceptedCommand(r.command(), checked);
}

void sendToMany(const v1::SendToManyRequest &r)
{
    checkDurationRoundTrip(r.timeout());
    checkDurationRoundTrip(r.connect_timeout());
    CommandRequest checked;
    if (!api::checkSendToMany(r, MaxTimeout, &checked).isEmpty())
        return;
    REQUIRE(r.command().command_id().empty());
    checkAcceptedCommand(r.command(), checked);
    // The selector as the hub matches it: a bot with exactly these labels is selected.
    QMap<QString, QString> selector;
    for (const auto &[k, v] : r.label_selector())
        selector.insert(fromStd(k), fromStd(v));
    REQUIRE(selector.size() == r.label_selector_size());
    BotInfo bot;
    bot.labels = selector;
    REQUIRE(bot.matches(selector));
}

void listCommands(const v1::ListCommandsRequest &r)
{
    for (int o : r.outcomes()) {
        const auto state = v1::Outcome_IsValid(o) ? convert::stateOf(v1::Outcome(o)) : std::nullopt;
        if (!state)
            return; // "unknown outcome"
        REQUIRE(convert::outcome(*state) == o);
    }
    if (r.page_size() < 0 || r.page_size() > OperatorService::MaxPageSize)
        return;
    bool ok = true;
    const quint64 after = r.page_token().empty() ? 0 : fromStd(r.page_token()).toULongLong(&ok);
    if (!ok || r.page_token().size() > 20)
        return; // "bad page_token"
    // The token the service hands out for a page that ends at `after` reads back the same.
    REQUIRE(fromStd(std::to_string(after)).toULongLong(&ok) == after && ok);
    int64_t sinceMs = 0;
    if (r.has_since()) {
        if (!wire::checkTimestamp(r.since(), "since", &sinceMs).empty())
            return;
        int64_t back = 0;
        REQUIRE(wire::checkTimestamp(wire::timestampFromMs(sinceMs), "since", &back).empty());
        REQUIRE(back == sinceMs);
    }
    if (!r.bot_id().empty() && !wire::checkId(r.bot_id(), "bot_id").empty())
        return;
}

void cancelCommand(const v1::CancelCommandRequest &r)
{
    if (!wire::checkId(r.command_id(), "command_id").empty())
        return;
    if (!wire::checkText(r.reason(), "reason", wire::limits::TextBytes).empty())
        return;
    // Hub::cancel sends the reason on to the bot, cut to TextBytes: a valid one is unchanged.
    const QString reason = fromStd(r.reason());
    v1::HubMessage cancel;
    cancel.mutable_cancel()->set_command_id(r.command_id());
    cancel.mutable_cancel()->set_reason(wire::cutText(toStd(reason), wire::limits::TextBytes));
    REQUIRE(cancel.cancel().reason() == r.reason());
    requireRoundTrip(cancel);
}

void listBots(const v1::ListBotsRequest &r)
{
    if (!wire::checkLabels(r.label_selector(), "label_selector").empty())
        return;
    QMap<QString, QString> selector;
    for (const auto &[k, v] : r.label_selector())
        selector.insert(fromStd(k), fromStd(v));
    REQUIRE(selector.size() == r.label_selector_size());
    BotInfo bot;
    bot.labels = selector;
    REQUIRE(bot.matches(selector));
}

// The string rules over raw bytes, which no parsed message can carry (the parser lets only valid
// UTF-8 through): they must agree with each other and with protobuf.
void checkRawString(std::string_view s)
{
    const bool valid = wire::checkText(s, "s", std::numeric_limits<size_t>::max()).empty();
    const bool id = wire::checkId(s, "s").empty();
    REQUIRE(!id || (valid && !s.empty() && s.size() <= wire::limits::IdBytes));
    REQUIRE(!id || wire::checkLabel(s, "s", wire::limits::IdBytes).empty());
    REQUIRE(valid || !wire::checkLabel(s, "s", std::numeric_limits<size_t>::max()).empty());
    if (!valid)
        return;
    // What the checks call valid, protobuf accepts and Qt carries unchanged.
    v1::CancelCommandRequest r;
    r.set_reason(std::string(s));
    requireRoundTrip(r);
    REQUIRE(toStd(fromStd(std::string(s))) == s);
    const size_t max = s.empty() ? 3 : 3 + static_cast<unsigned char>(s[0]) % 64;
    const std::string cut = wire::cutText(s, max);
    REQUIRE(cut.size() <= max);
    REQUIRE(wire::checkText(cut, "cut", max).empty());
    REQUIRE(s.size() > max || cut == s);
}

} // namespace

OPCONSOLE_FUZZER_INITIALIZE("fuzz_operator_requests")

void queryHistory(const v1::QueryHistoryRequest &r)
{
    // Whatever the token, decoding it never fails loudly, and a decoded one encodes back to
    // itself.
    qint64 ms = 0, id = 0;
    const QString token = fromStd(r.page_token());
    if (history::decodeToken(token, &ms, &id)) {
        qint64 ms2 = 0, id2 = 0;
        REQUIRE(history::decodeToken(history::encodeToken(ms, id), &ms2, &id2));
        REQUIRE(ms2 == ms && id2 == id);
    }
    HistoryQuery q;
    if (!api::checkQueryHistory(r, &q).isEmpty())
        return;
    REQUIRE(q.pageSize >= 1 && q.pageSize <= HistoryQuery::MaxPageSize);
    REQUIRE(q.states.size() == r.outcomes_size());
    for (int i = 0; i < r.outcomes_size(); ++i)
        REQUIRE(convert::outcome(q.states[i]) == r.outcomes(i));
    REQUIRE((q.sinceMs > 0) == r.has_since());
    REQUIRE((q.untilMs > 0) == r.has_until());
    REQUIRE(q.pageToken.size() <= 64);
    REQUIRE(q.botId.isEmpty() || wire::checkId(r.bot_id(), "bot_id").empty());
    REQUIRE(wire::checkLabel(toStd(q.text), "text", wire::limits::ShortTextBytes).empty());
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const auto *payload = reinterpret_cast<const char *>(data + 1);
    const int n = int(size - 1);
    checkRawString(std::string_view(payload, size_t(n)));
    if (data[0] >= 252) {
        v1::QueryHistoryRequest r;
        if (r.ParseFromArray(payload, n))
            queryHistory(r);
        return 0;
    }
    switch (data[0] % 6) {
    case 0: {
        v1::SendCommandRequest r;
        if (r.ParseFromArray(payload, n)) {
            checkTimeConversions(r.timeout().seconds());
            checkTimeConversions(r.connect_timeout().seconds());
            sendCommand(r);
        }
        break;
    }
    case 1: {
        v1::SendToManyRequest r;
        if (r.ParseFromArray(payload, n))
            sendToMany(r);
        break;
    }
    case 2: {
        v1::ListCommandsRequest r;
        if (r.ParseFromArray(payload, n)) {
            checkTimeConversions(r.since().seconds());
            listCommands(r);
        }
        break;
    }
    case 3: {
        v1::CancelCommandRequest r;
        if (r.ParseFromArray(payload, n))
            cancelCommand(r);
        break;
    }
    case 4: {
        v1::ListBotsRequest r;
        if (r.ParseFromArray(payload, n))
            listBots(r);
        break;
    }
    case 5: {
        v1::WatchRequest r;
        if (r.ParseFromArray(payload, n))
            requireRoundTrip(r);
        break;
    }
    }
    return 0;
}
