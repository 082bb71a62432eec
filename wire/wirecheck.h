#pragma once
// The validation layer at every wire boundary. Each check returns an empty string when the
// value is fine, else a sentence that says which field broke which rule; nothing here throws,
// aborts or CHECK-fails, whatever the input. docs/protocol.md ("Limits") lists every rule.

#include "opconsole/v1/botlink.pb.h"
#include "opconsole/v1/operator.pb.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace opconsole::wire {

namespace limits {
constexpr size_t IdBytes = 128;        // bot ids, command ids, custom command names
constexpr size_t TextBytes = 4096;     // ack messages, reasons, config values
constexpr size_t ShortTextBytes = 256; // bot_version, label and status values
constexpr size_t LabelKeyBytes = 64;   // label and status keys
constexpr size_t MapEntries = 64;      // labels, status fields, label selectors
constexpr size_t ConfigEntries = 256;  // values of one config update
constexpr size_t ProgressTextBytes = 1024;
constexpr size_t ParamsBytes = 32 * 1024;    // a record's params (JSON of up to 8192 characters)
constexpr size_t ResultBytes = 64 * 1024;    // an ack's result, as a console accepts it
constexpr size_t BotIdsPerRequest = 100'000; // SendToMany bot_ids
constexpr uint32_t ProtocolVersion = 1;
constexpr int MaxResentAcks = 256; // Hello.recent_acks
} // namespace limits

// Range of google.protobuf.Timestamp and Duration (what TimeUtil CHECK-fails outside of).
constexpr int64_t TimestampMinSeconds = -62135596800LL; // 0001-01-01
constexpr int64_t TimestampMaxSeconds = 253402300799LL; // 9999-12-31
constexpr int64_t DurationMaxSeconds = 315576000000LL;  // 10,000 years

// An identifier: 1..128 bytes of UTF-8 with no control, bidi-format or line-separator
// characters (C0, DEL, C1 such as U+0085 NEL and U+009B CSI, U+200B..U+200F, U+2028/9,
// U+202A..U+202E, U+2060..U+2064, U+2066..U+2069, U+FEFF).
std::string checkId(std::string_view s, std::string_view field);
// Free text: valid UTF-8 of at most maxBytes bytes (control characters allowed: logs escape them).
std::string checkText(std::string_view s, std::string_view field, size_t maxBytes);
// A short label-like text: at most maxBytes, no control characters (empty allowed).
std::string checkLabel(std::string_view s, std::string_view field, size_t maxBytes);
// A map<string,string> of labels, status fields or a selector.
std::string checkLabels(const google::protobuf::Map<std::string, std::string> &map,
                        std::string_view field, size_t maxValueBytes = limits::ShortTextBytes);

// In range for its type, and converted; *ms untouched on error. Sub-millisecond parts of a
// duration round up, so a positive duration is never 0 ms.
std::string checkTimestamp(const google::protobuf::Timestamp &t, std::string_view field,
                           int64_t *ms);
std::string checkDuration(const google::protobuf::Duration &d, std::string_view field, int64_t *ms);

// Always valid output, whatever the input (values out of range are clamped to the type's
// range): for writing times the hub computed itself.
google::protobuf::Timestamp timestampFromMs(int64_t ms);
google::protobuf::Duration durationFromMs(int64_t ms);
google::protobuf::Duration durationFromNs(int64_t ns);

// UTF-8 cut to at most maxBytes at a character boundary, "…" appended when cut.
std::string cutText(std::string_view s, size_t maxBytes);

// ---- BotLink, bot -> hub -------------------------------------------------------------
std::string checkHello(const v1::Hello &hello);

// An ack whose command_id is valid is always applied (the bot did answer); a field that
// breaks a rule is dropped (timestamps) or cut (message, at a character boundary) and named
// in `fieldProblem` for the protocol-violation count. `problem` set: ignore the ack.
struct AckCheck
{
    std::string problem;
    std::string fieldProblem;
    int64_t receivedAtMs = 0; // 0 when absent or dropped
    int64_t completedAtMs = 0;
    std::string message; // the message, cut to limits::TextBytes
    int errorCode = 0;   // unknown codes become ACK_ERROR_UNSPECIFIED (named in fieldProblem)
};
AckCheck checkAck(const v1::CommandAck &ack);

std::string checkProgress(const v1::CommandProgress &progress);
std::string checkStatus(const v1::StatusReport &status);
// A known BotState or std::nullopt (unknown values are not an error: the state stays unknown).
std::optional<v1::BotState> knownState(int state);

// ---- Operator API and the hub -> bot Command ----------------------------------------
// The action and its parameters (not the id or times).
std::string checkCommandAction(const v1::Command &command);

// ---- Operator API, hub -> console ---------------------------------------------------
// A command record as a console receives it (Watch, ListCommands, SendCommand). Ids and
// outcome must be valid, texts within their limits, times and durations in range and not
// negative, progress -1..100. Acks inside are checked as checkAck does (problems dropped).
std::string checkRecord(const v1::CommandRecord &record);
// A bot record: a valid id, labels and status within limits, times in range.
std::string checkBotRecord(const v1::BotRecord &bot);

} // namespace opconsole::wire
