// opctl: the command-line client of the hub's Operator API.
#include "opconsole/v1/operator.grpc.pb.h"
#include "wirecheck.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

namespace v1 = opconsole::v1;
using namespace std::chrono;

namespace {

// Exit codes: scripts tell outcomes apart by these.
enum Exit
{
    ExitAcked = 0,
    ExitRejected = 1,
    ExitExpired = 2,
    ExitNotConnected = 3, // also disconnected while pending
    ExitCancelled = 4,
    ExitRefused = 5, // the hub did not send it (duplicate id, full queue, ...)
    ExitUsage = 64,
    ExitUnreachable = 69,
    ExitInternal = 70,
};

const char *const MainHelp = R"(usage: opctl [--hub ADDR] [--json] COMMAND [ARGS]

Commands a fleet through an opconsole hub's Operator API.

commands:
  bots       list bots                      opctl bots [--connected] [--label k=v]
  send       send a command and wait         opctl send BOT COMMAND [options]
             fan out with a live tally       opctl send --all|--label k=v COMMAND [options]
  commands   list commands                  opctl commands [--state S] [--bot B] [--fan-out F]
  history    search the hub's history       opctl history [--bot B] [--state S] [--since 24h]
  cancel     cancel a pending command       opctl cancel ID [--reason TEXT]
  watch      follow commands and bots live  opctl watch [--snapshot] [--count N]
  help       help on a command              opctl help send

global options:
  --hub ADDR   hub address (default 127.0.0.1:50051, or $OPCONSOLE_HUB)
  --json       one JSON object per line instead of tables

exit codes: 0 acked, 1 rejected by the bot, 2 expired, 3 not connected or disconnected,
            4 cancelled, 5 refused by the hub, 64 usage error, 69 hub unreachable
)";

const char *const SendHelp = R"(usage: opctl send BOT COMMAND [options]
       opctl send --all COMMAND [options]
       opctl send --label k=v [--label k=v ...] COMMAND [options]

COMMAND is start, stop, restart, pause, resume, ping, config or custom.

options:
  --timeout DUR          how long to wait for the ack (default 5s; 500ms, 2s, 1m)
  --connect-timeout DUR  wait this long for the bot to connect (default 0: must be online)
  --set k=v              config: a key to set (repeatable)
  --version N            config: the config version
  --name NAME            custom: the command name
  --json-payload JSON    custom: the payload (must be valid JSON)
  --reason TEXT          stop: why
  --no-graceful          stop: do not stop gracefully
  --id ID                use this command id (must be unused)
  --fan-out ID           fan-out: use this fan-out id (must be unused); the hub picks one
                         otherwise. Consoles show the fan-out's tally under this id.

The exit code tells the outcome (see opctl --help). A fan-out prints one line per bot as
each finishes, a live tally on the terminal, then a summary with the fan-out's id (for
opctl commands --fan-out ID); it exits 0 only if every bot acked, else with the code of
the most severe outcome.
)";

const char *const BotsHelp = R"(usage: opctl bots [--connected] [--label k=v ...]

Every bot that connected to the hub this run: id, connection, state, labels, pending
commands, last heartbeat.
)";

const char *const CommandsHelp =
    R"(usage: opctl commands [--state S ...] [--bot BOT] [--fan-out ID] [--limit N]

Pending and recently finished commands, oldest first. S is one of pending, acked,
rejected, expired, not-connected, disconnected, cancelled, refused; or done (every
finished one) or problems (every finished one but acked), as in the console's filter.
--fan-out lists the commands of one fan-out (its id is in opctl send's summary).
)";

const char *const HistoryHelp =
    R"(usage: opctl history [filters] [--limit N] [--json | --csv]

Commands kept in the hub's history database, across restarts, newest first.

filters (all optional, combined with AND):
  --bot BOT        one bot
  --kind KIND      start, stop, restart, pause, resume, ping, config or custom
  --state S        as in opctl commands, plus unknown (the hub stopped while it was
                   pending); repeatable; done and problems as there
  --text TEXT      in the id, bot, reason, ack messages or parameters (any case)
  --issuer WHO     who sent it (console:<user>, operator@<address>)
  --fan-out ID     the commands of one fan-out
  --since WHEN     registered at or after WHEN: 2026-11-28T10:00:00Z, or 30m, 24h, 7d ago
  --until WHEN     registered before WHEN
  --limit N        print at most N (default 1000)

--csv prints a header and one row per command (fields that a spreadsheet would run as a
formula are prefixed with '); --json one CommandRecord per line. The hub pages the
search: a page looks at 20,000 commands at most, however large the history.
)";

const char *const CancelHelp = R"(usage: opctl cancel ID [--reason TEXT]

Releases whoever waits for the command (it finishes as cancelled) and tells the bot.
Exits 0 when cancelled, 4 when the command was unknown or had already finished.
)";

const char *const WatchHelp = R"(usage: opctl watch [--snapshot] [--count N]

Prints every command transition and bot event as it happens, until Ctrl+C or N events.
--snapshot starts with every known bot and command.
)";

struct Args
{
    std::vector<std::string> words;
    std::multimap<std::string, std::string> options; // --name value
    std::map<std::string, bool> flags;

    std::optional<std::string> value(const std::string &name) const
    {
        const auto it = options.find(name);
        return it == options.end() ? std::nullopt : std::optional(it->second);
    }
    std::vector<std::string> values(const std::string &name) const
    {
        std::vector<std::string> out;
        for (auto [it, end] = options.equal_range(name); it != end; ++it)
            out.push_back(it->second);
        return out;
    }
    bool flag(const std::string &name) const { return flags.count(name) > 0; }
};

class UsageError : public std::runtime_error
{
public:
    using std::runtime_error::runtime_error;
};

Args parse(int argc, char **argv)
{
    static const std::vector<std::string> flagNames = {
        "json", "csv", "connected", "all", "no-graceful", "snapshot", "help", "h"};
    Args args;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a.rfind("--", 0) == 0 || a == "-h") {
            std::string name = a == "-h" ? "h" : a.substr(2);
            std::string value;
            const auto eq = name.find('=');
            const bool inlineValue = eq != std::string::npos;
            if (inlineValue) {
                value = name.substr(eq + 1);
                name = name.substr(0, eq);
            }
            if (std::find(flagNames.begin(), flagNames.end(), name) != flagNames.end()) {
                args.flags[name] = true;
                continue;
            }
            if (!inlineValue) {
                if (i + 1 >= argc)
                    throw UsageError("--" + name + " needs a value");
                value = argv[++i];
            }
            args.options.emplace(name, value);
        } else {
            args.words.push_back(a);
        }
    }
    return args;
}

int64_t durationMs(const std::string &text, const char *what)
{
    size_t used = 0;
    double v = 0;
    try {
        v = std::stod(text, &used);
    } catch (...) {
        throw UsageError(std::string("bad ") + what + ": '" + text + "' (use 500ms, 5s, 2m)");
    }
    const std::string unit = text.substr(used);
    double ms;
    if (unit == "ms")
        ms = v;
    else if (unit == "s" || unit.empty())
        ms = v * 1000;
    else if (unit == "m")
        ms = v * 60'000;
    else
        throw UsageError(std::string("bad ") + what + ": '" + text + "' (use 500ms, 5s, 2m)");
    if (!(ms >= 0)) // also NaN
        throw UsageError(std::string(what) + " must not be negative");
    // The hub refuses more than its --max-timeout (24 h unless set); this bound only keeps
    // the value far from overflow (a year), so the hub's clear refusal is what users see.
    constexpr double maxMs = 365.0 * 24 * 3600 * 1000;
    if (ms > maxMs)
        throw UsageError(std::string(what) + " of '" + text + "' is over a year");
    return int64_t(ms);
}

// --since/--until: an RFC 3339 time, or a duration ago (30m, 24h, 7d).
google::protobuf::Timestamp timeArgument(const std::string &text, const char *what)
{
    google::protobuf::Timestamp t;
    if (text.size() < 64 && google::protobuf::util::TimeUtil::FromString(text, &t))
        return t;
    size_t used = 0;
    double v = -1;
    try {
        v = std::stod(text, &used);
    } catch (...) {
    }
    const std::string unit = used > 0 ? text.substr(used) : "";
    const double perUnit = unit == "m" ? 60 : unit == "h" ? 3600 : unit == "d" ? 86400 : 0;
    if (!(v >= 0) || perUnit == 0 || v * perUnit > 100.0 * 365 * 86400)
        throw UsageError(std::string("bad ") + what + ": '" + text +
                         "' (use 2026-11-28T10:00:00Z, or 30m, 24h, 7d ago)");
    const auto at = system_clock::now() - milliseconds(int64_t(v * perUnit * 1000));
    return opconsole::wire::timestampFromMs(
        duration_cast<milliseconds>(at.time_since_epoch()).count());
}

// One CSV field (RFC 4180); a leading = + - @ tab or CR gets a ' so a spreadsheet shows, not
// runs, it (as the console's File > Export does).
std::string csvField(std::string s)
{
    if (!s.empty() &&
        (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' || s[0] == '\r'))
        s.insert(s.begin(), '\'');
    if (s.find_first_of(",\"\r\n") == std::string::npos)
        return s;
    std::string out = "\"";
    for (const char c : s) {
        if (c == '"')
            out += '"';
        out += c;
    }
    return out + "\"";
}

std::pair<std::string, std::string> keyValue(const std::string &text, const char *what)
{
    const auto eq = text.find('=');
    if (eq == 0 || eq == std::string::npos)
        throw UsageError(std::string(what) + " wants k=v, got '" + text + "'");
    return {text.substr(0, eq), text.substr(eq + 1)};
}

int exitFor(v1::Outcome outcome)
{
    switch (outcome) {
    case v1::OUTCOME_ACKED:
        return ExitAcked;
    case v1::OUTCOME_REJECTED:
        return ExitRejected;
    case v1::OUTCOME_EXPIRED:
        return ExitExpired;
    case v1::OUTCOME_NOT_CONNECTED:
    case v1::OUTCOME_DISCONNECTED:
    case v1::OUTCOME_UNKNOWN:
        return ExitNotConnected;
    case v1::OUTCOME_CANCELLED:
        return ExitCancelled;
    case v1::OUTCOME_REFUSED:
        return ExitRefused;
    default:
        return ExitInternal;
    }
}

std::string outcomeName(v1::Outcome outcome)
{
    std::string name = v1::Outcome_Name(outcome);
    name = name.substr(std::strlen("OUTCOME_"));
    for (char &c : name)
        c = c == '_' ? '-' : char(std::tolower(c));
    return name;
}

std::optional<v1::Outcome> outcomeFromName(std::string name)
{
    for (char &c : name)
        c = c == '-' ? '_' : char(std::toupper(c));
    v1::Outcome o;
    if (v1::Outcome_Parse("OUTCOME_" + name, &o) && o != v1::OUTCOME_UNSPECIFIED)
        return o;
    return std::nullopt;
}

std::string toJson(const google::protobuf::Message &m)
{
    std::string out;
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(m, &out, options);
    return out;
}

std::string ms(const google::protobuf::Duration &d)
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f ms", double(d.seconds()) * 1000 + double(d.nanos()) / 1e6);
    return buf;
}

std::string describe(const v1::CommandRecord &r)
{
    std::string line = outcomeName(r.outcome());
    line.resize(std::max<size_t>(line.size(), 13), ' ');
    line += r.bot_id() + "  " + r.command_id() + "  " + r.kind();
    if (r.has_latency())
        line += "  " + ms(r.latency());
    const std::string text = r.has_ack() ? r.ack().message() : r.reason();
    if (!text.empty())
        line += "  " + text;
    if (r.outcome() == v1::OUTCOME_REJECTED && r.ack().error_code() != 0)
        line += " (" + v1::AckErrorCode_Name(r.ack().error_code()) + ")";
    if (r.has_late_ack())
        line += "  [late ack after " + ms(r.late_by()) + ": " + r.late_ack().message() + "]";
    if (!r.fan_out_id().empty())
        line += "  (fan-out " + r.fan_out_id() + ")";
    return line;
}

class Client
{
public:
    Client(const std::string &address, bool json) : m_json(json)
    {
        m_channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
        m_stub = v1::Operator::NewStub(m_channel);
        m_address = address;
    }

    void requireHub()
    {
        if (!m_channel->WaitForConnected(system_clock::now() + 3s))
            throw std::system_error(std::make_error_code(std::errc::host_unreachable),
                                    "cannot reach the hub at " + m_address);
    }

    // A short unary call (listing, cancelling), bounded at 10 s.
    template <typename Request, typename Response>
    grpc::Status quickCall(grpc::Status (v1::Operator::Stub::*method)(grpc::ClientContext *,
                                                                      const Request &, Response *),
                           const Request &request, Response *response)
    {
        grpc::ClientContext context;
        context.set_deadline(system_clock::now() + 10s);
        return (m_stub.get()->*method)(&context, request, response);
    }

    // Maps a failed call to an exit code and a message on stderr.
    int failed(const grpc::Status &status)
    {
        std::cerr << "opctl: " << status.error_message() << "\n";
        switch (status.error_code()) {
        case grpc::StatusCode::INVALID_ARGUMENT:
            return ExitUsage;
        case grpc::StatusCode::UNAVAILABLE:
            return ExitUnreachable;
        case grpc::StatusCode::DEADLINE_EXCEEDED:
            return ExitExpired;
        case grpc::StatusCode::CANCELLED:
            return ExitCancelled;
        default:
            return ExitInternal;
        }
    }

    int bots(const Args &args)
    {
        v1::ListBotsRequest request;
        request.set_connected_only(args.flag("connected"));
        for (const auto &label : args.values("label")) {
            const auto [k, v] = keyValue(label, "--label");
            (*request.mutable_label_selector())[k] = v;
        }
        v1::ListBotsResponse response;
        requireHub();
        const auto status = quickCall(&v1::Operator::Stub::ListBots, request, &response);
        if (!status.ok())
            return failed(status);
        if (!m_json)
            std::printf("%-20s %-13s %-9s %7s  %s\n", "BOT", "CONNECTION", "STATE", "PENDING",
                        "LABELS");
        for (const auto &bot : response.bots()) {
            if (m_json) {
                std::puts(toJson(bot).c_str());
                continue;
            }
            std::string labels;
            for (const auto &[k, v] : std::map(bot.labels().begin(), bot.labels().end()))
                labels += (labels.empty() ? "" : ",") + k + "=" + v;
            std::printf("%-20s %-13s %-9s %7d  %s\n", bot.bot_id().c_str(),
                        bot.connected() ? "connected" : "disconnected",
                        bot.state().empty() ? "-" : bot.state().c_str(), bot.pending(),
                        labels.c_str());
        }
        return ExitAcked;
    }

    v1::Command buildCommand(const std::string &kind, const Args &args)
    {
        v1::Command cmd;
        if (const auto id = args.value("id"))
            cmd.set_command_id(*id);
        if (kind == "start")
            cmd.mutable_start();
        else if (kind == "stop") {
            cmd.mutable_stop()->set_reason(args.value("reason").value_or(""));
            cmd.mutable_stop()->set_graceful(!args.flag("no-graceful"));
        } else if (kind == "restart")
            cmd.mutable_restart();
        else if (kind == "pause")
            cmd.mutable_pause();
        else if (kind == "resume")
            cmd.mutable_resume();
        else if (kind == "ping")
            cmd.mutable_ping();
        else if (kind == "config") {
            const auto sets = args.values("set");
            if (sets.empty())
                throw UsageError("config needs at least one --set k=v");
            for (const auto &s : sets) {
                const auto [k, v] = keyValue(s, "--set");
                (*cmd.mutable_config_update()->mutable_values())[k] = v;
            }
            if (const auto version = args.value("version"))
                cmd.mutable_config_update()->set_version(std::stoull(*version));
        } else if (kind == "custom") {
            const auto name = args.value("name");
            if (!name)
                throw UsageError("custom needs --name NAME");
            cmd.mutable_custom()->set_name(*name);
            cmd.mutable_custom()->set_json_payload(args.value("json-payload").value_or(""));
        } else {
            throw UsageError("unknown command '" + kind +
                             "' (start, stop, restart, pause, resume, ping, config, custom)");
        }
        return cmd;
    }

    int send(const Args &args)
    {
        const bool all = args.flag("all");
        const auto labels = args.values("label");
        const bool fan = all || !labels.empty();
        const size_t need = fan ? 2 : 3;
        if (args.words.size() != need)
            throw UsageError(fan ? "usage: opctl send --all|--label k=v COMMAND [options]"
                                 : "usage: opctl send BOT COMMAND [options]");
        const v1::Command cmd = buildCommand(args.words.back(), args);
        const int64_t timeout = durationMs(args.value("timeout").value_or("5s"), "--timeout");
        const int64_t connectTimeout =
            durationMs(args.value("connect-timeout").value_or("0s"), "--connect-timeout");
        if (timeout <= 0)
            throw UsageError("--timeout must be positive");
        if (fan)
            return fanOut(args, cmd, timeout, connectTimeout, all, labels);

        v1::SendCommandRequest request;
        request.set_bot_id(args.words[1]);
        *request.mutable_command() = cmd;
        *request.mutable_timeout() = opconsole::wire::durationFromMs(timeout);
        *request.mutable_connect_timeout() = opconsole::wire::durationFromMs(connectTimeout);
        v1::SendCommandResponse response;
        requireHub();
        grpc::ClientContext context;
        // The hub answers by the command's own deadline; this only guards against a lost hub.
        context.set_deadline(system_clock::now() + milliseconds(timeout + connectTimeout) + 10s);
        const auto status = m_stub->SendCommand(&context, request, &response);
        if (!status.ok())
            return failed(status);
        std::puts(m_json ? toJson(response.record()).c_str() : describe(response.record()).c_str());
        return exitFor(response.record().outcome());
    }

    int fanOut(const Args &args, const v1::Command &cmd, int64_t timeout, int64_t connectTimeout,
               bool all, const std::vector<std::string> &labels)
    {
        v1::SendToManyRequest request;
        request.set_all(all);
        for (const auto &label : labels) {
            const auto [k, v] = keyValue(label, "--label");
            (*request.mutable_label_selector())[k] = v;
        }
        *request.mutable_command() = cmd;
        *request.mutable_timeout() = opconsole::wire::durationFromMs(timeout);
        *request.mutable_connect_timeout() = opconsole::wire::durationFromMs(connectTimeout);
        if (const auto id = args.value("fan-out")) {
            if (const std::string p = opconsole::wire::checkId(*id, "--fan-out"); !p.empty())
                throw UsageError(p);
            request.set_fan_out_id(*id);
        }
        requireHub();
        grpc::ClientContext context;
        context.set_deadline(system_clock::now() + milliseconds(timeout + connectTimeout) + 10s);
        auto reader = m_stub->SendToMany(&context, request);
        const bool tty = isatty(STDERR_FILENO);
        std::map<v1::Outcome, int> tally;
        int done = 0;
        int worst = ExitAcked;
        v1::SendToManyEvent event;
        while (reader->Read(&event)) {
            if (event.has_result()) {
                const auto &r = event.result();
                ++done;
                ++tally[r.outcome()];
                worst = std::max(worst, exitFor(r.outcome()));
                std::puts(m_json ? toJson(r).c_str() : describe(r).c_str());
                std::fflush(stdout);
                if (tty) {
                    std::string line = "\r" + std::to_string(done) + " done:";
                    for (const auto &[o, n] : tally)
                        line += " " + std::to_string(n) + " " + outcomeName(o);
                    std::fprintf(stderr, "%s   ", line.c_str());
                }
            } else if (event.has_summary()) {
                if (tty)
                    std::fputs("\n", stderr);
                std::puts(m_json ? toJson(event.summary()).c_str()
                                 : ("summary (fan-out " + event.summary().fan_out_id() +
                                    "): " + event.summary().text())
                                       .c_str());
            }
        }
        const auto status = reader->Finish();
        if (!status.ok())
            return failed(status);
        return worst;
    }

    // --state S ...: an outcome name, or done (every final one) or problems (all but acked).
    template <typename Request>
    static void addStates(Request &request, const Args &args, const std::string &command)
    {
        for (const auto &s : args.values("state")) {
            if (s == "done" || s == "problems") {
                for (int o = v1::OUTCOME_ACKED; o <= v1::OUTCOME_UNKNOWN; ++o)
                    if (s == "done" || o != v1::OUTCOME_ACKED)
                        request.add_outcomes(v1::Outcome(o));
                continue;
            }
            const auto o = outcomeFromName(s);
            if (!o)
                throw UsageError("unknown state '" + s + "' (see opctl " + command + " --help)");
            request.add_outcomes(*o);
        }
    }

    int commands(const Args &args)
    {
        v1::ListCommandsRequest request;
        addStates(request, args, "commands");
        if (const auto bot = args.value("bot"))
            request.set_bot_id(*bot);
        if (const auto fan = args.value("fan-out"))
            request.set_fan_out_id(*fan);
        const int limit = std::stoi(args.value("limit").value_or("1000"));
        if (limit <= 0)
            throw UsageError("--limit must be positive");
        requireHub();
        int printed = 0;
        do {
            request.set_page_size(std::min(1000, limit - printed));
            v1::ListCommandsResponse response;
            const auto status = quickCall(&v1::Operator::Stub::ListCommands, request, &response);
            if (!status.ok())
                return failed(status);
            for (const auto &r : response.commands()) {
                std::puts(m_json ? toJson(r).c_str() : describe(r).c_str());
                ++printed;
            }
            request.set_page_token(response.next_page_token());
        } while (!request.page_token().empty() && printed < limit);
        return ExitAcked;
    }

    int history(const Args &args)
    {
        v1::QueryHistoryRequest request;
        addStates(request, args, "history");
        request.set_bot_id(args.value("bot").value_or(""));
        request.set_kind(args.value("kind").value_or(""));
        request.set_text(args.value("text").value_or(""));
        request.set_issuer(args.value("issuer").value_or(""));
        request.set_fan_out_id(args.value("fan-out").value_or(""));
        if (const auto since = args.value("since"))
            *request.mutable_since() = timeArgument(*since, "--since");
        if (const auto until = args.value("until"))
            *request.mutable_until() = timeArgument(*until, "--until");
        const int limit = std::stoi(args.value("limit").value_or("1000"));
        if (limit <= 0)
            throw UsageError("--limit must be positive");
        const bool csv = args.flag("csv");
        if (csv && m_json)
            throw UsageError("--csv and --json: choose one");
        requireHub();
        if (csv)
            std::fputs("id,bot,kind,state,reason,issuer,fan_out,registered_at,latency_ms,"
                       "ack_success,ack_message,late_ack_message,params\r\n",
                       stdout);
        int printed = 0;
        // Pages of a sparse search may be short or empty: bounded by pages, not only rows.
        for (int pages = 0; pages < 100'000 && printed < limit; ++pages) {
            request.set_page_size(std::min(1000, limit - printed));
            v1::QueryHistoryResponse response;
            const auto status = quickCall(&v1::Operator::Stub::QueryHistory, request, &response);
            if (!status.ok())
                return failed(status);
            for (const auto &r : response.commands()) {
                if (printed >= limit)
                    break;
                if (csv) {
                    using google::protobuf::util::TimeUtil;
                    const std::vector<std::string> fields = {
                        r.command_id(),
                        r.bot_id(),
                        r.kind(),
                        outcomeName(r.outcome()),
                        r.reason(),
                        r.issuer(),
                        r.fan_out_id(),
                        r.has_registered_at() ? TimeUtil::ToString(r.registered_at()) : "",
                        r.has_latency()
                            ? std::to_string(double(TimeUtil::DurationToMicroseconds(r.latency())) /
                                             1000)
                            : "",
                        r.has_ack() ? (r.ack().success() ? "true" : "false") : "",
                        r.has_ack() ? r.ack().message() : "",
                        r.has_late_ack() ? r.late_ack().message() : "",
                        r.params()};
                    std::string line;
                    for (size_t i = 0; i < fields.size(); ++i)
                        line += (i ? "," : "") + csvField(fields[i]);
                    line += "\r\n"; // RFC 4180 line ends
                    std::fputs(line.c_str(), stdout);
                } else {
                    std::puts(m_json ? toJson(r).c_str() : describe(r).c_str());
                }
                ++printed;
            }
            if (response.next_page_token().empty())
                break;
            request.set_page_token(response.next_page_token());
        }
        return ExitAcked;
    }

    int cancel(const Args &args)
    {
        if (args.words.size() != 2)
            throw UsageError("usage: opctl cancel ID [--reason TEXT]");
        v1::CancelCommandRequest request;
        request.set_command_id(args.words[1]);
        request.set_reason(args.value("reason").value_or("cancelled with opctl"));
        v1::CancelCommandResponse response;
        requireHub();
        const auto status = quickCall(&v1::Operator::Stub::CancelCommand, request, &response);
        if (!status.ok())
            return failed(status);
        if (m_json)
            std::puts(toJson(response).c_str());
        else if (response.cancelled())
            std::printf("cancelled %s\n", args.words[1].c_str());
        else
            std::printf("not cancelled: %s is %s\n", args.words[1].c_str(),
                        response.has_record() ? outcomeName(response.record().outcome()).c_str()
                                              : "unknown");
        return response.cancelled() ? ExitAcked : ExitCancelled;
    }

    int watch(const Args &args)
    {
        v1::WatchRequest request;
        request.set_snapshot(args.flag("snapshot"));
        const long count = std::stol(args.value("count").value_or("0"));
        requireHub();
        grpc::ClientContext context;
        auto reader = m_stub->Watch(&context, request);
        v1::WatchEvent event;
        long seen = 0;
        while (reader->Read(&event)) {
            if (m_json) {
                std::puts(toJson(event).c_str());
            } else if (event.has_command()) {
                std::printf("%-17s %s\n", event.event().c_str(), describe(event.command()).c_str());
            } else {
                const v1::BotRecord &bot = event.bot();
                std::printf("%-17s %s %s%s%s\n", event.event().c_str(), bot.bot_id().c_str(),
                            bot.connected() ? "connected" : bot.disconnect_reason().c_str(),
                            bot.state().empty() ? "" : " ", bot.state().c_str());
            }
            std::fflush(stdout);
            if (count > 0 && ++seen >= count) {
                context.TryCancel();
                break;
            }
        }
        const auto status = reader->Finish();
        if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED)
            return failed(status);
        return ExitAcked;
    }

private:
    bool m_json;
    std::string m_address;
    std::shared_ptr<grpc::Channel> m_channel;
    std::unique_ptr<v1::Operator::Stub> m_stub;
};

} // namespace

int main(int argc, char **argv)
{
    try {
        const Args args = parse(argc, argv);
        const std::string command = args.words.empty() ? "" : args.words[0];
        const std::map<std::string, const char *> helps = {
            {"send", SendHelp},     {"bots", BotsHelp},   {"commands", CommandsHelp},
            {"cancel", CancelHelp}, {"watch", WatchHelp}, {"history", HistoryHelp},
        };
        if (command.empty() || command == "help") {
            const bool usage = command.empty() && !args.flag("help") && !args.flag("h");
            const std::string topic = args.words.size() > 1 ? args.words[1] : "";
            const auto it = helps.find(topic);
            std::fputs(it != helps.end() ? it->second : MainHelp, usage ? stderr : stdout);
            return usage ? ExitUsage : 0;
        }
        if (args.flag("help") || args.flag("h")) {
            const auto it = helps.find(command);
            std::fputs(it != helps.end() ? it->second : MainHelp, stdout);
            return 0;
        }
        const char *env = std::getenv("OPCONSOLE_HUB");
        const std::string hub = args.value("hub").value_or(env ? env : "127.0.0.1:50051");
        Client client(hub, args.flag("json"));
        if (!helps.count(command))
            throw UsageError("unknown command '" + command + "' (see opctl --help)");
        if (command == "bots")
            return client.bots(args);
        if (command == "send")
            return client.send(args);
        if (command == "commands")
            return client.commands(args);
        if (command == "cancel")
            return client.cancel(args);
        if (command == "history")
            return client.history(args);
        return client.watch(args);
    } catch (const UsageError &e) {
        std::cerr << "opctl: " << e.what() << "\n";
        return ExitUsage;
    } catch (const std::system_error &e) {
        std::cerr << "opctl: " << e.what() << "\n";
        return ExitUnreachable;
    } catch (const std::exception &e) {
        std::cerr << "opctl: " << e.what() << "\n";
        return ExitUsage;
    }
}
