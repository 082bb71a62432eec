#include "wirecheck.h"

#include <tuple>

#include <algorithm>

namespace opconsole::wire {

namespace {

std::string named(std::string_view field, std::string_view rule)
{
    std::string out(field);
    out += ' ';
    out += rule;
    return out;
}

// Decodes one UTF-8 sequence at s[i]; false when malformed (overlong, surrogate, > U+10FFFF).
bool nextCodePoint(std::string_view s, size_t &i, char32_t &cp)
{
    const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char b0 = byte(i);
    size_t len;
    char32_t min;
    if (b0 < 0x80) {
        cp = b0;
        ++i;
        return true;
    } else if ((b0 & 0xE0) == 0xC0) {
        len = 2, cp = b0 & 0x1F, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
        len = 3, cp = b0 & 0x0F, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
        len = 4, cp = b0 & 0x07, min = 0x10000;
    } else {
        return false;
    }
    if (i + len > s.size())
        return false;
    for (size_t k = 1; k < len; ++k) {
        if ((byte(i + k) & 0xC0) != 0x80)
            return false;
        cp = (cp << 6) | (byte(i + k) & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return false;
    i += len;
    return true;
}

bool isControl(char32_t c)
{
    return c < 0x20 || (c >= 0x7F && c <= 0x9F) || (c >= 0x200B && c <= 0x200F) || c == 0x2028 ||
           c == 0x2029 || (c >= 0x202A && c <= 0x202E) || (c >= 0x2060 && c <= 0x2064) ||
           (c >= 0x2066 && c <= 0x2069) || c == 0xFEFF;
}

// "" when s is valid UTF-8 (and, with noControl, free of control characters).
std::string scan(std::string_view s, std::string_view field, bool noControl)
{
    size_t i = 0;
    char32_t cp = 0;
    while (i < s.size()) {
        if (!nextCodePoint(s, i, cp))
            return named(field, "is not valid UTF-8");
        if (noControl && isControl(cp))
            return named(field, "contains control characters");
    }
    return {};
}

std::string tooLong(std::string_view field, size_t max)
{
    return named(field, "is longer than " + std::to_string(max) + " bytes");
}

} // namespace

std::string checkId(std::string_view s, std::string_view field)
{
    if (s.empty())
        return named(field, "is empty");
    if (s.size() > limits::IdBytes)
        return tooLong(field, limits::IdBytes);
    return scan(s, field, true);
}

std::string checkText(std::string_view s, std::string_view field, size_t maxBytes)
{
    if (s.size() > maxBytes)
        return tooLong(field, maxBytes);
    return scan(s, field, false);
}

std::string checkLabel(std::string_view s, std::string_view field, size_t maxBytes)
{
    if (s.size() > maxBytes)
        return tooLong(field, maxBytes);
    return scan(s, field, true);
}

std::string checkLabels(const google::protobuf::Map<std::string, std::string> &map,
                        std::string_view field, size_t maxValueBytes)
{
    if (map.size() > limits::MapEntries)
        return named(field, "has more than " + std::to_string(limits::MapEntries) + " entries");
    const std::string keyField = std::string(field) + " key";
    for (const auto &[key, value] : map) {
        if (key.empty())
            return named(keyField, "is empty");
        if (std::string p = checkLabel(key, keyField, limits::LabelKeyBytes); !p.empty())
            return p;
        if (std::string p = checkLabel(value, std::string(field) + " value", maxValueBytes);
            !p.empty())
            return p;
    }
    return {};
}

std::string checkTimestamp(const google::protobuf::Timestamp &t, std::string_view field,
                           int64_t *ms)
{
    if (t.seconds() < TimestampMinSeconds || t.seconds() > TimestampMaxSeconds || t.nanos() < 0 ||
        t.nanos() > 999'999'999)
        return named(field, "is out of range (years 1 to 9999)");
    *ms = t.seconds() * 1000 + t.nanos() / 1'000'000;
    return {};
}

std::string checkDuration(const google::protobuf::Duration &d, std::string_view field, int64_t *ms)
{
    const int64_t s = d.seconds();
    const int32_t n = d.nanos();
    if (s < -DurationMaxSeconds || s > DurationMaxSeconds || n < -999'999'999 || n > 999'999'999 ||
        (s > 0 && n < 0) || (s < 0 && n > 0))
        return named(field, "is not a valid duration");
    int64_t out = s * 1000 + n / 1'000'000;
    if (n > 0 && n % 1'000'000 != 0)
        ++out; // round a positive sub-millisecond part up
    else if (n < 0 && n % 1'000'000 != 0)
        --out;
    *ms = out;
    return {};
}

google::protobuf::Timestamp timestampFromMs(int64_t ms)
{
    constexpr int64_t minMs = TimestampMinSeconds * 1000;
    constexpr int64_t maxMs = TimestampMaxSeconds * 1000 + 999;
    ms = std::clamp(ms, minMs, maxMs);
    google::protobuf::Timestamp t;
    int64_t seconds = ms / 1000;
    int64_t rest = ms % 1000;
    if (rest < 0) {
        rest += 1000;
        --seconds;
    }
    t.set_seconds(seconds);
    t.set_nanos(int32_t(rest * 1'000'000));
    return t;
}

google::protobuf::Duration durationFromMs(int64_t ms)
{
    constexpr int64_t maxMs = DurationMaxSeconds * 1000;
    ms = std::clamp(ms, -maxMs, maxMs);
    google::protobuf::Duration d;
    d.set_seconds(ms / 1000);
    d.set_nanos(int32_t((ms % 1000) * 1'000'000));
    return d;
}

google::protobuf::Duration durationFromNs(int64_t ns)
{
    // Any int64 of nanoseconds (about 292 years) is within Duration's range.
    google::protobuf::Duration d;
    d.set_seconds(ns / 1'000'000'000);
    d.set_nanos(int32_t(ns % 1'000'000'000));
    return d;
}

std::string cutText(std::string_view s, size_t maxBytes)
{
    if (s.size() <= maxBytes)
        return std::string(s);
    static constexpr std::string_view ellipsis = "\xE2\x80\xA6"; // …
    size_t end = maxBytes > ellipsis.size() ? maxBytes - ellipsis.size() : 0;
    while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80)
        --end; // back to the start of a character
    std::string out(s.substr(0, end));
    out += ellipsis;
    return out;
}

std::string checkHello(const v1::Hello &hello)
{
    if (std::string p = checkId(hello.bot_id(), "bot_id"); !p.empty())
        return p;
    if (hello.protocol_version() != limits::ProtocolVersion)
        return "protocol_version " + std::to_string(hello.protocol_version()) +
               " is not supported (this hub speaks " + std::to_string(limits::ProtocolVersion) +
               ")";
    if (std::string p = checkLabel(hello.bot_version(), "bot_version", limits::ShortTextBytes);
        !p.empty())
        return p;
    if (hello.recent_acks_size() > limits::MaxResentAcks)
        return "recent_acks has " + std::to_string(hello.recent_acks_size()) +
               " entries, at most " + std::to_string(limits::MaxResentAcks);
    for (const v1::CommandAck &ack : hello.recent_acks())
        if (std::string p = checkId(ack.command_id(), "recent_acks command_id"); !p.empty())
            return p;
    return checkLabels(hello.labels(), "labels");
}

AckCheck checkAck(const v1::CommandAck &ack)
{
    AckCheck out;
    out.problem = checkId(ack.command_id(), "ack command_id");
    if (!out.problem.empty())
        return out;
    auto note = [&out](const std::string &p) {
        if (!p.empty() && out.fieldProblem.empty())
            out.fieldProblem = p + " (dropped; the ack was applied)";
    };
    if (ack.has_received_at())
        note(checkTimestamp(ack.received_at(), "ack received_at", &out.receivedAtMs));
    if (ack.has_completed_at())
        note(checkTimestamp(ack.completed_at(), "ack completed_at", &out.completedAtMs));
    if (std::string p = checkText(ack.message(), "ack message", limits::TextBytes); !p.empty()) {
        if (out.fieldProblem.empty())
            out.fieldProblem = p + " (cut; the ack was applied)";
        out.message = cutText(ack.message(), limits::TextBytes);
    } else {
        out.message = ack.message();
    }
    if (v1::AckErrorCode_IsValid(ack.error_code())) {
        out.errorCode = ack.error_code();
    } else {
        note("ack error_code " + std::to_string(ack.error_code()) + " is unknown");
        out.errorCode = v1::ACK_ERROR_UNSPECIFIED;
    }
    return out;
}

std::string checkProgress(const v1::CommandProgress &progress)
{
    if (std::string p = checkId(progress.command_id(), "progress command_id"); !p.empty())
        return p;
    if (progress.percent() > 100)
        return "progress percent " + std::to_string(progress.percent()) + " is over 100";
    return checkText(progress.message(), "progress message", limits::ProgressTextBytes);
}

std::string checkStatus(const v1::StatusReport &status)
{
    return checkLabels(status.fields(), "status fields");
}

std::optional<v1::BotState> knownState(int state)
{
    if (state == v1::BOT_STATE_UNSPECIFIED || !v1::BotState_IsValid(state))
        return std::nullopt;
    return v1::BotState(state);
}

std::string checkCommandAction(const v1::Command &command)
{
    switch (command.action_case()) {
    case v1::Command::kStop:
        return checkText(command.stop().reason(), "stop reason", limits::TextBytes);
    case v1::Command::kConfigUpdate: {
        const auto &values = command.config_update().values();
        if (values.empty())
            return "a config update needs at least one key=value";
        if (values.size() > limits::ConfigEntries)
            return "config values has more than " + std::to_string(limits::ConfigEntries) +
                   " entries";
        for (const auto &[key, value] : values) {
            if (std::string p = checkId(key, "config key"); !p.empty())
                return p;
            if (std::string p = checkText(value, "config value", limits::TextBytes); !p.empty())
                return p;
        }
        return {};
    }
    case v1::Command::kCustom:
        // The payload is bounded by the message size limit; its JSON is checked by the spec.
        return checkId(command.custom().name(), "custom name");
    case v1::Command::ACTION_NOT_SET:
        return "the command has no action (start, stop, ...)";
    default:
        return {};
    }
}

std::string checkRecord(const v1::CommandRecord &record)
{
    if (std::string p = checkId(record.command_id(), "command_id"); !p.empty())
        return p;
    if (std::string p = checkId(record.bot_id(), "bot_id"); !p.empty())
        return p;
    if (std::string p = checkLabel(record.kind(), "kind", limits::IdBytes); !p.empty())
        return p;
    if (!v1::Outcome_IsValid(record.outcome()) || record.outcome() == v1::OUTCOME_UNSPECIFIED)
        return "outcome " + std::to_string(int(record.outcome())) + " is not a known outcome";
    if (std::string p = checkText(record.reason(), "reason", limits::TextBytes); !p.empty())
        return p;
    if (!record.fan_out_id().empty())
        if (std::string p = checkId(record.fan_out_id(), "fan_out_id"); !p.empty())
            return p;
    if (std::string p = checkText(record.params(), "params", limits::ParamsBytes); !p.empty())
        return p;
    if (std::string p = checkLabel(record.issuer(), "issuer", limits::ShortTextBytes); !p.empty())
        return p;
    for (const auto &[has, ack, name] :
         {std::tuple{record.has_ack(), &record.ack(), "ack"},
          std::tuple{record.has_late_ack(), &record.late_ack(), "late_ack"}}) {
        if (!has)
            continue;
        if (const AckCheck c = checkAck(*ack); !c.problem.empty())
            return std::string(name) + ": " + c.problem;
        if (ack->command_id() != record.command_id())
            return std::string(name) + ".command_id is not the record's command_id";
        if (ack->result().size() > limits::ResultBytes)
            return std::string(name) + ".result is over " + std::to_string(limits::ResultBytes) +
                   " bytes";
    }
    int64_t ms = 0;
    for (const auto &[has, t, name] :
         {std::tuple{record.has_registered_at(), &record.registered_at(), "registered_at"},
          std::tuple{record.has_sent_at(), &record.sent_at(), "sent_at"},
          std::tuple{record.has_finished_at(), &record.finished_at(), "finished_at"},
          std::tuple{record.has_deadline(), &record.deadline(), "deadline"}}) {
        if (has)
            if (std::string p = checkTimestamp(*t, name, &ms); !p.empty())
                return p;
    }
    if (!record.has_registered_at() || !record.has_deadline())
        return "registered_at and deadline are required";
    for (const auto &[has, d, name] :
         {std::tuple{record.has_latency(), &record.latency(), "latency"},
          std::tuple{record.has_late_by(), &record.late_by(), "late_by"}}) {
        if (!has)
            continue;
        if (std::string p = checkDuration(*d, name, &ms); !p.empty())
            return p;
        if (ms < 0 || d->seconds() > 366LL * 24 * 3600)
            return std::string(name) + " is negative or over a year";
    }
    if (record.progress_percent() < -1 || record.progress_percent() > 100)
        return "progress_percent is not -1..100";
    if (std::string p =
            checkText(record.progress_message(), "progress_message", limits::ProgressTextBytes);
        !p.empty())
        return p;
    return {};
}

std::string checkBotRecord(const v1::BotRecord &bot)
{
    if (std::string p = checkId(bot.bot_id(), "bot_id"); !p.empty())
        return p;
    if (std::string p = checkLabel(bot.state(), "state", limits::ShortTextBytes); !p.empty())
        return p;
    if (std::string p = checkLabel(bot.bot_version(), "bot_version", limits::ShortTextBytes);
        !p.empty())
        return p;
    if (std::string p = checkLabels(bot.labels(), "labels"); !p.empty())
        return p;
    if (std::string p = checkLabels(bot.status(), "status"); !p.empty())
        return p;
    if (std::string p = checkText(bot.disconnect_reason(), "disconnect_reason", limits::TextBytes);
        !p.empty())
        return p;
    int64_t ms = 0;
    for (const auto &[has, t, name] :
         {std::tuple{bot.has_connected_at(), &bot.connected_at(), "connected_at"},
          std::tuple{bot.has_disconnected_at(), &bot.disconnected_at(), "disconnected_at"},
          std::tuple{bot.has_last_seen(), &bot.last_seen(), "last_seen"}}) {
        if (has)
            if (std::string p = checkTimestamp(*t, name, &ms); !p.empty())
                return p;
    }
    if (bot.connects() < 0 || bot.pending() < 0)
        return "connects and pending must not be negative";
    if (bot.admission() != v1::ADMISSION_UNSPECIFIED && !v1::Admission_IsValid(bot.admission()))
        return "admission is not a known value";
    if (std::string p = checkLabel(bot.credential(), "credential", limits::ShortTextBytes);
        !p.empty())
        return p;
    if (!bot.hub().empty())
        if (std::string p = checkId(bot.hub(), "hub"); !p.empty())
            return p;
    return {};
}

} // namespace opconsole::wire
