// opctl: the command-line client of the hub's Operator API.
#include "opconsole/v1/operator.grpc.pb.h"
#include "tlscredentials.h"
#include "tokens.h"
#include "wirecheck.h"

#include <QJsonDocument>
#include <QJsonObject>

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <grpc/support/log.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace v1 = opconsole::v1;
namespace security = opconsole::security;
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
    ExitRefused = 5,        // the hub did not send it (duplicate id, full queue, ...)
    ExitRolloutStopped = 6, // a staged rollout stopped: a wave failed above --abort-above
    ExitUsage = 64,
    ExitUnreachable = 69,
    ExitInternal = 70,
    ExitCantCreate = 73,   // token new: --append or --token-out could not be written
    ExitTryLater = 75,     // the hub is busy or limits this operator's rate (RESOURCE_EXHAUSTED)
    ExitNoPermission = 77, // no token, an unknown one, or its role or scope does not allow it
};

const char *const MainHelp = R"(usage: opctl [--hub ADDR] [--json] [security options] COMMAND [ARGS]

Commands a fleet through an opconsole hub's Operator API.

commands:
  bots       list bots                      opctl bots [--connected] [--label k=v]
             decide on a bot (admin)         opctl bots accept|reject|revoke BOT [--reason TEXT] [--credential C]
  send       send a command and wait         opctl send BOT COMMAND [options]
             fan out with a live tally       opctl send --all|--label k=v COMMAND [options]
             ... in waves (a rollout)        opctl send --all COMMAND --batch 10% --abort-above 5%
  rollout    pause, resume or abort one      opctl rollout pause|resume|abort FAN_OUT_ID
  commands   list commands                  opctl commands [--state S] [--bot B] [--fan-out F]
  history    search the hub's history       opctl history [--bot B] [--state S] [--since 24h]
  cancel     cancel a pending command       opctl cancel ID [--reason TEXT]
  watch      follow commands and bots live  opctl watch [--snapshot] [--count N]
  whoami     who the hub takes you for      opctl whoami
  token      make a token (offline)         opctl token new --name N --role R | --bots IDS
  completion bash completion for opctl      source <(opctl completion bash)
  help       help on a command              opctl help send

Options go before or after the command's words; "--" ends them (opctl send -- -x ping: a bot
id that starts with '-'). --name=VALUE works as --name VALUE. An option the command does not
take, an unknown one, a value given to a flag (--json=no), a value missing or one given twice
is a usage error (64), said with the option probably meant: each command takes what its help
lists.

global options:
  --hub ADDR   the hub's operator listener: host:port or unix:/path (default 127.0.0.1:50052,
               or $OPCONSOLE_HUB); every command but token, help and completion
  --json       one JSON object per line instead of tables
  --help, -h   help on the command

security options (docs/security.md):
  --tls                   TLS with the system's trusted CAs (implied by the options below)
  --tls-ca FILE           TLS: trust this CA for the hub's certificate
  --tls-cert FILE         TLS: a client certificate (mTLS), with --tls-key FILE
  --tls-key FILE
  --tls-server-name NAME  TLS: the name the hub's certificate must carry (default: the host
                          in --hub)
  --token-file FILE       the operator token, sent as "authorization: Bearer" on every call; a
                          file only you may read (chmod 600). Else $OPCONSOLE_TOKEN. Never
                          sent in plaintext beyond this machine, unless --insecure.
  --insecure              send the token in plaintext anyway (a hub on another machine
                          without TLS)

exit codes: 0 acked, 1 rejected by the bot, 2 expired, 3 not connected or disconnected (or a
            bot the hub does not know), 4 cancelled, 5 refused by the hub, 6 a rollout
            stopped because a wave failed above --abort-above, 64 usage error,
            69 hub unreachable (or the TLS handshake failed), 70 internal error, 73 token new
            could not write a file, 75 the hub is busy or limits your rate (try again later),
            77 not authenticated (no token, or an unknown one) or not permitted (the token's
            role or scope does not allow it)
)";

const char *const SendHelp = R"(usage: opctl send BOT COMMAND [options]
       opctl send --all COMMAND [options]
       opctl send --label k=v [--label k=v ...] COMMAND [options]
       opctl send [options] -- BOT COMMAND    (a bot id that starts with '-')

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
  --all                  fan out to every bot
  --label k=v            fan out to the bots with this label (repeatable: all of them)
  --fan-out ID           fan-out: use this fan-out id (must be unused); the hub picks one
                         otherwise. Consoles show the fan-out's tally under this id.
  --batch N|P%           fan-out: a staged rollout, in waves of N bots (1..1000000) or P
                         percent of them (1%..100%, rounded up); a wave starts once the one
                         before it has finished
  --abort-above P%       rollout: stop when a wave's failed share (rejected, expired, not
                         connected, disconnected, refused) is above P% (0..100); the later
                         waves are never sent
  --wave-delay DUR       rollout: wait this long between a wave's end and the next (0..24h)

An option for another kind is refused (--set with ping: "--set is for send's config
updates, not a ping command"), as is --fan-out without --all or --label.

The exit code tells the outcome (see opctl --help). A fan-out prints one line per bot as
each finishes, a live tally on the terminal, then a summary with the fan-out's id (for
opctl commands --fan-out ID); it exits 0 only if every bot acked, else with the code of
the most severe outcome.

A rollout (--batch) prints a line as each wave starts and finishes (its tally), then why it
ended and the summary; --json prints every event, bot results included. It exits 6 when a
wave failed above --abort-above (the later waves were not sent), else as a fan-out. opctl
rollout pauses, resumes or aborts it from elsewhere; Ctrl+C here aborts it and cancels the
commands of the wave in flight.
)";

const char *const RolloutHelp =
    R"(usage: opctl rollout pause|resume|abort FAN_OUT_ID [--cancel-in-flight]

Controls a staged rollout (opctl send --batch ...) by its fan-out id. pause: no further wave
starts (the one in flight runs to its end); resume: the next wave goes, after what is left of
its --wave-delay; abort: no further wave is ever sent, and the commands in flight are left to
finish, or cancelled with --cancel-in-flight. Its issuer or an admin only. Prints where the
rollout is; exits 0, 3 when the hub has no such rollout, 5 when it has already ended.
)";

const char *const BotsHelp = R"(usage: opctl bots [--connected] [--label k=v ...]
       opctl bots accept|reject|revoke BOT [--reason TEXT] [--credential C]

Every bot that connected to the hub this run: id, connection, admission, state, pending
commands, the credential it connected with (cert:<fingerprint>, token:<name>, none), labels.

Admission (an admin token; docs/security.md): a bot the hub holds "awaiting approval" waits
for accept (it goes live) or reject (its stream ends with PERMISSION_DENIED). revoke rejects
an accepted bot and disconnects it at once. Decisions persist across hub restarts; accepting
a rejected bot lets it in again. --reason is kept with the decision and told to the bot.
--credential C (as opctl bots lists it) decides only if the bot still connects with C: the
decision is refused (exit 3) if another session took its place since you looked.
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
  --issuer WHO     who sent it (an operator token's name, console:<user>,
                   operator@<address>)
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

const char *const WhoamiHelp = R"(usage: opctl whoami

Who the hub takes this caller for: the operator token's name, its role (viewer, operator,
admin) and scope (the label selector of the bots it may command). A hub without --operators
asks for no token: every local caller is an admin, named by its address.
)";

const char *const TokenHelp =
    R"(usage: opctl token new --name NAME --role viewer|operator|admin [--scope k=v,...] [files]
       opctl token new --name NAME --bots ID,PREFIX*,... [files]

Makes a new token offline (no hub): 256 random bits, "opc_" and 43 characters. The token is
shown once; the hub keeps only its hash, in a line of its --operators file (an operator token:
NAME ROLE HASH [SCOPE]) or its --bot-tokens file (a bot token: NAME BOT-IDS HASH, ids exact
or prefixes ending in *). Restart the hub to read the file again.

  --scope k=v,...   an operator token commands only bots with these labels
  --append FILE     append the line to FILE (made 0600 when new); refused if the file would
                    no longer load (a name or hash listed twice, a malformed line)
  --token-out FILE  write the token to FILE (a new file, 0600) instead of printing it; give
                    it to opctl --token-file or botsim --token-file

Exit 0 when done, 64 on bad arguments, 73 when a file could not be written.
)";

const char *const CompletionHelp = R"(usage: opctl completion bash

Prints a bash completion script: commands, each command's options (narrowed to the kind after
send BOT, or the action after bots, once it is there), the kinds after send BOT, state, kind
and role values, file names after --token-file, --tls-ca, --tls-cert, --tls-key, --append and
--token-out. Made from the same tables as opctl's own checks, so it never offers what opctl
refuses. To use it now, or from ~/.bashrc:

  source <(opctl completion bash)
)";

// What each command takes. parse() and check() refuse every other option (exit 64), and
// `opctl completion bash` is made from these tables: the two never disagree.
enum class Takes
{
    Flag,   // --name
    Value,  // --name VALUE or --name=VALUE, once
    Values, // the same, repeatable
};

struct Option
{
    std::string_view name; // without "--"
    Takes takes;
    std::string_view purpose; // what it is for: said where it is given but not taken
    // The forms of its command it is for (space-separated; empty: every form): words the
    // command takes at its wordAt (send's kinds, bots' actions, its noWord without one), or
    // "fan-out" / "one-bot" for a command that fans out.
    std::string_view only = {};
    std::string_view values = {}; // what completion offers for its value: words, or FILE
};

struct Command
{
    std::string_view name;
    const char *help;
    bool callsHub = true;   // takes --hub and the security options
    int arguments = 0;      // at most this many words after its name; -1: the command checks them
    std::string words = {}; // the words it takes at argument wordAt (send's kinds, ...)
    size_t wordAt = 0;      // 0: none
    std::string_view noWord = {}; // its form without that argument (bots: "list")
    std::string_view fanOut = {}; // options that make it a fan-out (its wordAt is one less)
    std::vector<Option> options = {};
};

constexpr std::string_view Kinds = "start stop restart pause resume ping config custom";
constexpr std::string_view States = "pending acked rejected expired not-connected disconnected "
                                    "cancelled refused done problems";
constexpr std::string_view HistoryStates = "pending acked rejected expired not-connected "
                                           "disconnected cancelled refused unknown done problems";
constexpr std::string_view ForHub = "the commands that call a hub";
constexpr std::string_view BotsActions = "the bots actions (accept, reject, revoke)";

// Every command takes these.
const std::vector<Option> GlobalOptions = {
    {"help", Takes::Flag, "every command"}, // also -h
    {"json", Takes::Flag, "every command"},
};

// Every command that calls a hub takes these.
const std::vector<Option> HubOptions = {
    {"hub", Takes::Value, ForHub},
    {"tls", Takes::Flag, ForHub},
    {"tls-ca", Takes::Value, ForHub, {}, "FILE"},
    {"tls-cert", Takes::Value, ForHub, {}, "FILE"},
    {"tls-key", Takes::Value, ForHub, {}, "FILE"},
    {"tls-server-name", Takes::Value, ForHub},
    {"token-file", Takes::Value, ForHub, {}, "FILE"},
    {"insecure", Takes::Flag, ForHub},
};

const std::vector<Command> &commandTable()
{
    static const std::vector<Command> table = [] {
        std::vector<Command> t = {
            {.name = "send",
             .help = SendHelp,
             .arguments = -1,
             .words = std::string(Kinds),
             .wordAt = 2,
             .fanOut = "all label",
             .options = {{"timeout", Takes::Value, "send"},
                         {"connect-timeout", Takes::Value, "send"},
                         {"set", Takes::Values, "send's config updates", "config"},
                         {"version", Takes::Value, "send's config updates", "config"},
                         {"name", Takes::Value, "send's custom commands", "custom"},
                         {"json-payload", Takes::Value, "send's custom commands", "custom"},
                         {"reason", Takes::Value, "send's stop", "stop"},
                         {"no-graceful", Takes::Flag, "send's stop", "stop"},
                         {"id", Takes::Value, "send"},
                         {"fan-out", Takes::Value, "send's fan-outs (--all or --label)", "fan-out"},
                         {"all", Takes::Flag, "send's fan-outs"},
                         {"label", Takes::Values, "send's fan-outs"},
                         {"batch", Takes::Value, "send's fan-outs (--all or --label)", "fan-out"},
                         {"abort-above", Takes::Value, "send's rollouts (--batch)", "fan-out"},
                         {"wave-delay", Takes::Value, "send's rollouts (--batch)", "fan-out"}}},
            {.name = "rollout",
             .help = RolloutHelp,
             .arguments = 2,
             .words = "pause resume abort",
             .wordAt = 1,
             .options = {{"cancel-in-flight", Takes::Flag, "rollout abort", "abort"}}},
            {.name = "bots",
             .help = BotsHelp,
             .arguments = -1,
             .words = "accept reject revoke",
             .wordAt = 1,
             .noWord = "list",
             .options = {{"connected", Takes::Flag, "the bots list", "list"},
                         {"label", Takes::Values, "the bots list", "list"},
                         {"reason", Takes::Value, BotsActions, "accept reject revoke"},
                         {"credential", Takes::Value, BotsActions, "accept reject revoke"}}},
            {.name = "commands",
             .help = CommandsHelp,
             .options = {{"state", Takes::Values, "commands", {}, States},
                         {"bot", Takes::Value, "commands"},
                         {"fan-out", Takes::Value, "commands"},
                         {"limit", Takes::Value, "commands"}}},
            {.name = "history",
             .help = HistoryHelp,
             .options = {{"bot", Takes::Value, "history"},
                         {"kind", Takes::Value, "history", {}, Kinds},
                         {"state", Takes::Values, "history", {}, HistoryStates},
                         {"text", Takes::Value, "history"},
                         {"issuer", Takes::Value, "history"},
                         {"fan-out", Takes::Value, "history"},
                         {"since", Takes::Value, "history"},
                         {"until", Takes::Value, "history"},
                         {"limit", Takes::Value, "history"},
                         {"csv", Takes::Flag, "history"}}},
            {.name = "cancel",
             .help = CancelHelp,
             .arguments = -1,
             .options = {{"reason", Takes::Value, "cancel"}}},
            {.name = "watch",
             .help = WatchHelp,
             .options = {{"snapshot", Takes::Flag, "watch"}, {"count", Takes::Value, "watch"}}},
            {.name = "whoami", .help = WhoamiHelp},
            {.name = "token",
             .help = TokenHelp,
             .callsHub = false,
             .arguments = -1,
             .words = "new",
             .wordAt = 1,
             .options = {{"name", Takes::Value, "token new"},
                         {"role", Takes::Value, "token new", {}, "viewer operator admin"},
                         {"bots", Takes::Value, "token new"},
                         {"scope", Takes::Value, "token new"},
                         {"append", Takes::Value, "token new", {}, "FILE"},
                         {"token-out", Takes::Value, "token new", {}, "FILE"}}},
            {.name = "help", .help = MainHelp, .callsHub = false, .arguments = 1, .wordAt = 1},
            {.name = "completion",
             .help = CompletionHelp,
             .callsHub = false,
             .arguments = 1,
             .words = "bash",
             .wordAt = 1},
        };
        std::string topics; // help's: every command
        for (const Command &c : t)
            topics += (topics.empty() ? "" : " ") + std::string(c.name);
        for (Command &c : t)
            if (c.name == "help")
                c.words = topics;
        return t;
    }();
    return table;
}

const Command *findCommand(const std::string &name)
{
    for (const Command &c : commandTable())
        if (c.name == name)
            return &c;
    return nullptr;
}

std::vector<std::string_view> split(std::string_view list)
{
    std::vector<std::string_view> out;
    while (!list.empty()) {
        const size_t space = list.find(' ');
        if (space != 0)
            out.push_back(list.substr(0, space));
        if (space == std::string_view::npos)
            break;
        list.remove_prefix(space + 1);
    }
    return out;
}

bool listed(std::string_view list, std::string_view word)
{
    const auto words = split(list);
    return std::find(words.begin(), words.end(), word) != words.end();
}

// The options `command` takes: every command's, the hub's when it calls one, its own.
std::vector<const Option *> optionsOf(const Command &command)
{
    std::vector<const Option *> out;
    for (const Option &o : GlobalOptions)
        out.push_back(&o);
    if (command.callsHub)
        for (const Option &o : HubOptions)
            out.push_back(&o);
    for (const Option &o : command.options)
        out.push_back(&o);
    return out;
}

// Every option of every command (one name takes a value everywhere or nowhere).
std::vector<const Option *> everyOption()
{
    std::vector<const Option *> out;
    for (const Option &o : HubOptions)
        out.push_back(&o);
    for (const Command &c : commandTable())
        for (const Option *o : optionsOf(c))
            if (std::find_if(out.begin(), out.end(),
                             [o](const Option *p) { return p->name == o->name; }) == out.end())
                out.push_back(o);
    return out;
}

const Option *findOption(const std::vector<const Option *> &options, std::string_view name)
{
    for (const Option *o : options)
        if (o->name == name)
            return o;
    return nullptr;
}

// Edits (insert, delete, change, swap two neighbours) from a to b.
size_t editDistance(std::string_view a, std::string_view b)
{
    std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
    for (size_t i = 0; i <= a.size(); ++i)
        d[i][0] = i;
    for (size_t j = 0; j <= b.size(); ++j)
        d[0][j] = j;
    for (size_t i = 1; i <= a.size(); ++i)
        for (size_t j = 1; j <= b.size(); ++j) {
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1,
                                d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    return d[a.size()][b.size()];
}

// What `name` was probably meant to be: the closest candidate, else those it begins (three at
// most); none when nothing is close.
std::vector<std::string> closest(std::string_view name, const std::vector<std::string_view> &of)
{
    std::optional<std::string_view> best;
    size_t bestDistance = name.size() <= 4 ? 1 : 2;
    for (const std::string_view c : of)
        if (const size_t d = editDistance(name, c);
            d < c.size() && (best ? d < bestDistance : d <= bestDistance)) {
            best = c; // the first of equals
            bestDistance = d;
        }
    if (best)
        return {std::string(*best)};
    std::vector<std::string> begun;
    if (name.size() >= 2)
        for (const std::string_view c : of)
            if (c.substr(0, name.size()) == name)
                begun.emplace_back(c);
    return begun.size() <= 3 ? begun : std::vector<std::string>();
}

// " (did you mean a or b?)", or nothing; prefix goes before each.
std::string didYouMean(std::string_view name, const std::vector<std::string_view> &of,
                       const std::string &prefix)
{
    const std::vector<std::string> near = closest(name, of);
    std::string out;
    for (size_t i = 0; i < near.size(); ++i)
        out += (i == 0 ? "" : " or ") + prefix + near[i];
    return out.empty() ? out : " (did you mean " + out + "?)";
}

std::vector<std::string_view> namesOf(const std::vector<const Option *> &options)
{
    std::vector<std::string_view> out;
    for (const Option *o : options)
        out.push_back(o->name);
    return out;
}

std::string meant(std::string_view name, const std::vector<const Option *> &options)
{
    return didYouMean(name, namesOf(options), "--");
}

struct Args
{
    std::vector<std::string> words;
    std::multimap<std::string, std::string> options; // --name value
    std::map<std::string, bool> flags;
    std::vector<std::string> given; // every option's name, in order
    std::string unknown;            // the first option no command takes
    std::string error;              // else the first value missing, or given to a flag

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

// The hub cannot be reached (exit 69).
class Unreachable : public std::runtime_error
{
public:
    using std::runtime_error::runtime_error;
};

// Words and options, anywhere on the line, until "--" (after it every argument is a word: a
// bot id "--all" or "-x"). Whether an option takes a value is the same for every command, so
// this needs no command yet; the first problem is kept for after --help (check() says which
// options this command takes).
Args parse(int argc, char **argv)
{
    const std::vector<const Option *> known = everyOption();
    Args args;
    bool optionsEnd = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (!optionsEnd && a == "--") {
            optionsEnd = true;
            continue;
        }
        if (optionsEnd || (a.rfind("--", 0) != 0 && a != "-h")) {
            args.words.push_back(a); // also "-x": only -h is a short option
            continue;
        }
        std::string name = a == "-h" ? "help" : a.substr(2);
        std::string value;
        const auto eq = name.find('=');
        const bool inlineValue = eq != std::string::npos;
        if (inlineValue) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
        }
        const Option *option = findOption(known, name);
        if (!option) {
            if (args.unknown.empty() && args.error.empty())
                args.unknown = name;
            continue;
        }
        args.given.push_back(name);
        if (option->takes == Takes::Flag) {
            if (inlineValue && args.unknown.empty() && args.error.empty())
                args.error = "--" + name + " takes no value"; // --insecure=false is no --insecure
            args.flags[name] = true;
            continue;
        }
        if (!inlineValue) {
            if (i + 1 >= argc) {
                if (args.unknown.empty() && args.error.empty())
                    args.error = "--" + name + " needs a value";
                break;
            }
            value = argv[++i]; // as getopt: the next argument, whatever it starts with
        }
        args.options.emplace(name, value);
    }
    return args;
}

// This invocation's form, by kind of limit: the word at the command's wordAt (send's kind,
// bots' action; its noWord without one) and, for a command that fans out, fan-out or
// one-bot. Empty: not known (the command says what is wrong with its words).
struct Forms
{
    std::string word;
    std::string mode;
};

Forms formsOf(const Command &command, const Args &args)
{
    Forms forms;
    bool fan = false;
    for (const std::string_view o : split(command.fanOut))
        fan = fan || args.flag(std::string(o)) || args.value(std::string(o));
    if (!command.fanOut.empty())
        forms.mode = fan ? "fan-out" : "one-bot";
    if (command.wordAt == 0)
        return forms;
    const size_t at = command.wordAt - (fan ? 1 : 0);
    if (args.words.size() > at) {
        if (listed(command.words, args.words[at]))
            forms.word = args.words[at];
    } else {
        forms.word = command.noWord;
    }
    return forms;
}

std::string formText(const Command &command, const std::string &form)
{
    if (form == "fan-out")
        return "a fan-out";
    if (form == "one-bot")
        return "a send to one bot";
    if (form == command.noWord)
        return "the " + std::string(command.name) + " " + form;
    if (command.wordAt > 1) // after a target: send's kind
        return "a " + form + " command";
    return std::string(command.name) + " " + form;
}

// What "a, b and c" says.
std::string inWords(const std::vector<std::string_view> &items)
{
    std::string out;
    for (size_t i = 0; i < items.size(); ++i)
        out += (i == 0 ? "" : i + 1 == items.size() ? " and " : ", ") + std::string(items[i]);
    return out;
}

// The options on the line against what `command` takes, then the number of its words.
void check(const Args &args, const Command &command)
{
    const std::vector<const Option *> taken = optionsOf(command);
    const Forms forms = formsOf(command, args);
    for (const std::string &name : args.given) {
        const Option *option = findOption(taken, name);
        if (!option) {
            std::vector<std::string_view> purposes; // of every command that takes it
            const auto add = [&](const Option &o) {
                if (o.name == name &&
                    std::find(purposes.begin(), purposes.end(), o.purpose) == purposes.end())
                    purposes.push_back(o.purpose);
            };
            for (const Option &o : HubOptions)
                add(o);
            for (const Command &c : commandTable())
                for (const Option &o : c.options)
                    add(o);
            throw UsageError("--" + name + " is for " + inWords(purposes) + "; opctl " +
                             std::string(command.name) + " does not take it" + meant(name, taken));
        }
        if (option->takes == Takes::Value && args.values(name).size() > 1)
            throw UsageError("--" + name + " given twice");
        if (option->only.empty())
            continue;
        const bool byMode = listed("fan-out one-bot", split(option->only).front());
        const std::string &form = byMode ? forms.mode : forms.word;
        if (!form.empty() && !listed(option->only, form))
            throw UsageError("--" + name + " is for " + std::string(option->purpose) + ", not " +
                             formText(command, form));
    }
    if (command.arguments >= 0 && args.words.size() > size_t(command.arguments) + 1)
        throw UsageError(std::string(command.name) +
                         (command.arguments == 0
                              ? " takes no arguments"
                              : " takes " + std::to_string(command.arguments) +
                                    (command.arguments == 1 ? " argument" : " arguments")) +
                         ", not '" + args.words[size_t(command.arguments) + 1] +
                         "' (see opctl help " + std::string(command.name) + ")");
}

// The first problem parse() met: an unknown option (with the one probably meant, of those
// `command` takes when it is known), a missing value or a value for a flag.
void checkParsed(const Args &args, const Command *command)
{
    if (!args.unknown.empty())
        throw UsageError("unknown option --" + args.unknown +
                         meant(args.unknown, command ? optionsOf(*command) : everyOption()));
    if (!args.error.empty())
        throw UsageError(args.error);
}

// `opctl completion bash`: the script, from the tables above.
std::string bashCompletion()
{
    const auto quoted = [](const std::string &words) { return "'" + words + "'"; };
    const auto optionList = [](const std::vector<const Option *> &options) {
        std::string out;
        for (const Option *o : options)
            if (o->only.empty())
                out += (out.empty() ? "--" : " --") + std::string(o->name);
        return out;
    };
    std::string commandNames, valued, fanOut;
    for (const Command &c : commandTable()) {
        commandNames += (commandNames.empty() ? "" : " ") + std::string(c.name);
        for (const std::string_view o : split(c.fanOut))
            if (!listed(fanOut, "--" + std::string(o)))
                fanOut += (fanOut.empty() ? "--" : "|--") + std::string(o);
    }
    for (const Option *o : everyOption())
        if (o->takes != Takes::Flag)
            valued += (valued.empty() ? "--" : " --") + std::string(o->name);
    std::vector<const Option *> beforeCommand;
    for (const Option &o : GlobalOptions)
        beforeCommand.push_back(&o);
    for (const Option &o : HubOptions)
        beforeCommand.push_back(&o);

    std::string s =
        "# bash completion for opctl, made by `opctl completion bash` from the tables opctl\n"
        "# checks its arguments with. Use: source <(opctl completion bash)\n\n"
        "_opctl_valued=" +
        quoted(valued) +
        "\n\n"
        "# COMMAND FORM MODE: the options COMMAND takes; FORM (its kind or action) and MODE\n"
        "# (fan-out or one-bot) leave out those for other forms when known.\n"
        "_opctl_options()\n{\n"
        "    local o=''\n"
        "    case $1 in\n"
        "    '') o=" +
        quoted(optionList(beforeCommand)) + " ;;\n";
    for (const Command &c : commandTable()) {
        const auto taken = optionsOf(c);
        s += "    " + std::string(c.name) + ")\n        o=" + quoted(optionList(taken)) + "\n";
        for (const Option *o : taken) {
            if (o->only.empty())
                continue;
            const bool byMode = listed("fan-out one-bot", split(o->only).front());
            s += std::string("        [[ -z $") + (byMode ? "3" : "2") + " || ' " +
                 std::string(o->only) + " ' == *\" $" + (byMode ? "3" : "2") +
                 " \"* ]] && o+=' --" + std::string(o->name) + "'\n";
        }
        s += "        ;;\n";
    }
    s += "    esac\n"
         "    printf '%s\\n' $o\n"
         "}\n\n"
         "# COMMAND OPTION CURRENT: the values of OPTION.\n"
         "_opctl_value()\n{\n"
         "    local w=''\n"
         "    case $1:$2 in\n";
    std::string files;
    for (const Option &o : HubOptions)
        if (o.values == "FILE")
            files += (files.empty() ? "*:--" : "|*:--") + std::string(o.name);
    std::string choices;
    for (const Command &c : commandTable())
        for (const Option &o : c.options) {
            if (o.values == "FILE")
                files += "|" + std::string(c.name) + ":--" + std::string(o.name);
            else if (!o.values.empty())
                choices += "    " + std::string(c.name) + ":--" + std::string(o.name) +
                           ") w=" + quoted(std::string(o.values)) + " ;;\n";
        }
    s += "    " + files +
         ")\n"
         "        compopt -o filenames 2>/dev/null\n"
         "        mapfile -t COMPREPLY < <(compgen -f -- \"$3\")\n"
         "        return 0\n"
         "        ;;\n" +
         choices +
         "    esac\n"
         "    [[ -n $w ]] && mapfile -t COMPREPLY < <(compgen -W \"$w\" -- \"$3\")\n"
         "    return 0\n"
         "}\n\n"
         "# COMMAND: the words it takes at its position (send's kinds, bots' actions).\n"
         "_opctl_words()\n{\n"
         "    case $1 in\n";
    for (const Command &c : commandTable())
        if (c.wordAt > 0)
            s += "    " + std::string(c.name) + ") echo " + quoted(c.words) + " ;;\n";
    s += "    esac\n"
         "}\n\n"
         "_opctl()\n{\n"
         "    local cur=${COMP_WORDS[COMP_CWORD]} last=$COMP_CWORD i=1 w pending='' ended='' "
         "fan=''\n"
         "    local -a args=()\n"
         "    COMPREPLY=()\n"
         "    # bash splits --name=value and host:port at '=' and ':': glued back below.\n"
         "    if [[ $cur == = ]]; then\n"
         "        cur=''\n"
         "    elif ((COMP_CWORD > 1)) && [[ ${COMP_WORDS[COMP_CWORD - 1]} == = ]]; then\n"
         "        last=$((COMP_CWORD - 1))\n"
         "    fi\n"
         "    while ((i < last)); do\n"
         "        w=${COMP_WORDS[i]}\n"
         "        ((i++))\n"
         "        while ((i + 1 < last)) && [[ ${COMP_WORDS[i]} == [=:] ]]; do\n"
         "            w+=${COMP_WORDS[i]}${COMP_WORDS[i + 1]}\n"
         "            ((i += 2))\n"
         "        done\n"
         "        if [[ -n $pending ]]; then\n"
         "            pending='' # its value\n"
         "        elif [[ -z $ended && $w == -- ]]; then\n"
         "            ended=1\n"
         "        elif [[ -z $ended && ($w == --* || $w == -h) ]]; then\n"
         "            case ${w%%=*} in " +
         (fanOut.empty() ? std::string("--") : fanOut) +
         ") fan=1 ;; esac\n"
         "            [[ $w != *=* && \" $_opctl_valued \" == *\" $w \"* ]] && pending=$w\n"
         "        else\n"
         "            args+=(\"$w\")\n"
         "        fi\n"
         "    done\n"
         "    local cmd=${args[0]-} at='' form='' mode=''\n"
         "    case $cmd in\n";
    for (const Command &c : commandTable()) {
        if (c.wordAt == 0)
            continue;
        s += "    " + std::string(c.name) + ") at=" + std::to_string(c.wordAt);
        if (!c.fanOut.empty())
            s +=
                "\n        if [[ -n $fan ]]; then\n            at=" + std::to_string(c.wordAt - 1) +
                " mode=fan-out\n        elif ((${#args[@]} > 1)); then\n"
                "            mode=one-bot\n        fi\n        ;;\n";
        else
            s += " ;;\n";
    }
    s += "    esac\n"
         "    [[ -n $at ]] && ((${#args[@]} > at)) && form=${args[at]}\n"
         "    if [[ -n $pending ]]; then\n"
         "        _opctl_value \"$cmd\" \"$pending\" \"$cur\"\n"
         "    elif [[ -z $ended && $cur == -* ]]; then\n"
         "        mapfile -t COMPREPLY < <(compgen -W \"$(_opctl_options \"$cmd\" \"$form\" "
         "\"$mode\")\" -- \"$cur\")\n"
         "    elif ((${#args[@]} == 0)); then\n"
         "        mapfile -t COMPREPLY < <(compgen -W " +
         quoted(commandNames) +
         " -- \"$cur\")\n"
         "    elif [[ -n $at ]] && ((${#args[@]} == at)); then\n"
         "        mapfile -t COMPREPLY < <(compgen -W \"$(_opctl_words \"$cmd\")\" -- \"$cur\")\n"
         "    fi\n"
         "    return 0\n"
         "}\n\n"
         "complete -F _opctl opctl\n";
    return s;
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

// How to reach the hub: the address, TLS, and the operator token for every call.
struct Connection
{
    std::string address;
    security::ClientTls tls;
    std::string token; // empty: none
};

class Client
{
public:
    Client(const Connection &connection, bool json)
        : m_json(json), m_address(connection.address), m_tls(connection.tls.enabled()),
          m_token(connection.token)
    {
        QString error;
        const auto credentials = security::channelCredentials(connection.tls, &error);
        if (!credentials)
            throw UsageError(error.toStdString());
        grpc::ChannelArguments args;
        security::applyChannelArguments(connection.tls, args);
        m_channel = grpc::CreateCustomChannel(m_address, credentials, args);
        m_stub = v1::Operator::NewStub(m_channel);
    }

    // Every call carries the token in its metadata (not as call credentials: gRPC would drop
    // those on a plaintext channel, and a loopback hub may well be plaintext).
    void prepare(grpc::ClientContext &context) const
    {
        if (!m_token.empty())
            context.AddMetadata("authorization", "Bearer " + m_token);
    }

    // Whether the hub knows staged rollouts: a hub older than them would take a SendToMany
    // with a rollout for one to every bot at once (a field it does not know is ignored), so
    // ControlRollout is asked first. An empty fan-out id is refused by a hub that has it
    // (INVALID_ARGUMENT, or PERMISSION_DENIED to a viewer); one without says UNIMPLEMENTED.
    // The probe's answer: OK when the hub has rollouts; UNIMPLEMENTED when it is older; any
    // other failure (unreachable, too slow) is said as such, and nothing is sent: a rollout is
    // never sent on a guess.
    grpc::Status probeRollouts() const
    {
        grpc::ClientContext context;
        prepare(context);
        context.set_deadline(system_clock::now() + 10s);
        v1::ControlRolloutRequest probe;
        probe.set_action(v1::ROLLOUT_ACTION_PAUSE);
        v1::ControlRolloutResponse response;
        const grpc::Status status = m_stub->ControlRollout(&context, probe, &response);
        switch (status.error_code()) {
        case grpc::StatusCode::OK:
        case grpc::StatusCode::INVALID_ARGUMENT:  // the empty id, refused: it has them
        case grpc::StatusCode::PERMISSION_DENIED: // a viewer: the send says so
        case grpc::StatusCode::NOT_FOUND:
            return grpc::Status::OK;
        default:
            return status;
        }
    }

    void requireHub()
    {
        if (m_channel->WaitForConnected(system_clock::now() + 3s))
            return;
        // Not connected: a call that does not wait says what the last attempt met (refused,
        // a TLS handshake that failed, a plaintext client closed by a TLS hub).
        grpc::ClientContext context;
        prepare(context);
        context.set_deadline(system_clock::now() + 2s);
        v1::WhoAmIResponse response;
        const auto status = m_stub->WhoAmI(&context, v1::WhoAmIRequest(), &response);
        if (status.error_code() != grpc::StatusCode::UNAVAILABLE &&
            status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED)
            return; // connected meanwhile: the real call tells the rest
        const std::string why = security::connectionError(status.error_message());
        std::string message = "cannot reach the hub at " + m_address;
        if (!why.empty())
            message += ": " + why;
        // What to check, when it looks like TLS's doing: a handshake that failed, or (in
        // plaintext) a connection closed before HTTP/2 began, as a TLS hub does.
        const auto has = [&why](const char *text) { return why.find(text) != std::string::npos; };
        if (m_tls &&
            (has("SSL") || has("Ssl") || has("andshake") || has("certificate") || has("Peer name")))
            message += " (TLS: check --tls-ca, --tls-server-name and the client certificate)";
        else if (!m_tls && (has("Socket closed") || has("Connection reset") || has("SETTINGS")))
            message += " (a hub with TLS needs --tls-ca)";
        throw Unreachable(message);
    }

    // A short unary call (listing, cancelling), bounded at 10 s.
    template <typename Request, typename Response>
    grpc::Status quickCall(grpc::Status (v1::Operator::Stub::*method)(grpc::ClientContext *,
                                                                      const Request &, Response *),
                           const Request &request, Response *response)
    {
        grpc::ClientContext context;
        prepare(context);
        context.set_deadline(system_clock::now() + 10s);
        return (m_stub.get()->*method)(&context, request, response);
    }

    // Maps a failed call to an exit code and a one-line message on stderr.
    int failed(const grpc::Status &status)
    {
        const std::string &text = status.error_message();
        switch (status.error_code()) {
        case grpc::StatusCode::UNAUTHENTICATED:
            std::cerr << "opctl: not authenticated: " << text
                      << (m_token.empty() && text.find("--token-file") == std::string::npos
                              ? " (give an operator token: --token-file FILE or OPCONSOLE_TOKEN)"
                              : "")
                      << "\n";
            return ExitNoPermission;
        case grpc::StatusCode::PERMISSION_DENIED:
            std::cerr << "opctl: "
                      << (text.rfind("permission denied", 0) == 0 ? "" : "permission denied: ")
                      << text << "\n";
            return ExitNoPermission;
        default:
            break;
        }
        std::cerr << "opctl: " << text << "\n";
        switch (status.error_code()) {
        case grpc::StatusCode::INVALID_ARGUMENT:
            return ExitUsage;
        case grpc::StatusCode::UNAVAILABLE:
            return ExitUnreachable;
        case grpc::StatusCode::DEADLINE_EXCEEDED:
            return ExitExpired;
        case grpc::StatusCode::CANCELLED:
            return ExitCancelled;
        case grpc::StatusCode::NOT_FOUND:
            return ExitNotConnected;
        case grpc::StatusCode::RESOURCE_EXHAUSTED:
            return ExitTryLater;
        default:
            return ExitInternal;
        }
    }

    static const char *admissionName(v1::Admission admission)
    {
        switch (admission) {
        case v1::ADMISSION_ACCEPTED:
            return "accepted";
        case v1::ADMISSION_AWAITING:
            return "awaiting";
        case v1::ADMISSION_REJECTED:
            return "rejected";
        default:
            return "-";
        }
    }

    // connected; held (its stream open, awaiting an admin's decision); or disconnected.
    static const char *connectionName(const v1::BotRecord &bot)
    {
        using google::protobuf::util::TimeUtil;
        if (bot.connected())
            return "connected";
        if (bot.admission() == v1::ADMISSION_AWAITING &&
            (!bot.has_disconnected_at() ||
             TimeUtil::TimestampToMilliseconds(bot.disconnected_at()) <
                 TimeUtil::TimestampToMilliseconds(bot.last_seen())))
            return "held";
        return "disconnected";
    }

    int bots(const Args &args)
    {
        if (args.words.size() > 1)
            return decideBot(args);
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
        // A cluster's hubs name the hub that holds each bot: a HUB column then.
        const bool cluster = std::any_of(response.bots().begin(), response.bots().end(),
                                         [](const auto &b) { return !b.hub().empty(); });
        if (!m_json)
            std::printf("%-20s %s%-13s %-9s %-9s %7s  %-22s %s\n", "BOT",
                        cluster ? "HUB          " : "", "CONNECTION", "ADMISSION", "STATE",
                        "PENDING", "CREDENTIAL", "LABELS");
        for (const auto &bot : response.bots()) {
            if (m_json) {
                std::puts(toJson(bot).c_str());
                continue;
            }
            std::string labels;
            for (const auto &[k, v] : std::map(bot.labels().begin(), bot.labels().end()))
                labels += (labels.empty() ? "" : ",") + k + "=" + v;
            const std::string hub = cluster ? (bot.hub().empty() ? "-" : bot.hub()) : "";
            std::printf(
                "%-20s %s%s%-13s %-9s %-9s %7d  %-22s %s\n", bot.bot_id().c_str(), hub.c_str(),
                cluster ? std::string(std::max<size_t>(1, 13 - hub.size()), ' ').c_str() : "",
                connectionName(bot), admissionName(bot.admission()),
                bot.state().empty() ? "-" : bot.state().c_str(), bot.pending(),
                bot.credential().empty() ? "-" : bot.credential().c_str(), labels.c_str());
        }
        return ExitAcked;
    }

    // opctl bots accept|reject|revoke BOT [--reason TEXT]
    int decideBot(const Args &args)
    {
        const std::string &verb = args.words[1];
        v1::DecideBotRequest request;
        if (verb == "accept")
            request.set_decision(v1::DECISION_ACCEPT);
        else if (verb == "reject")
            request.set_decision(v1::DECISION_REJECT);
        else if (verb == "revoke")
            request.set_decision(v1::DECISION_REVOKE);
        else
            throw UsageError("unknown bots action '" + verb + "' (accept, reject, revoke)");
        if (args.words.size() != 3)
            throw UsageError("usage: opctl bots " + verb + " BOT [--reason TEXT]");
        request.set_bot_id(args.words[2]);
        if (const std::string p = opconsole::wire::checkId(request.bot_id(), "BOT"); !p.empty())
            throw UsageError(p);
        request.set_reason(args.value("reason").value_or(""));
        request.set_credential(args.value("credential").value_or(""));
        v1::DecideBotResponse response;
        requireHub();
        const auto status = quickCall(&v1::Operator::Stub::DecideBot, request, &response);
        if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
            std::cerr << "opctl: " << status.error_message() << "\n"; // another credential now
            return ExitNotConnected;
        }
        if (!status.ok())
            return failed(status);
        if (m_json) {
            std::puts(toJson(response.bot()).c_str());
            return ExitAcked;
        }
        const v1::BotRecord &bot = response.bot();
        if (verb == "accept" && bot.admission() == v1::ADMISSION_AWAITING &&
            std::string(connectionName(bot)) != "held") {
            // A rejected bot with no connection held: the rejection is lifted, no more.
            std::printf("rejection of %s lifted: its next connection awaits approval\n",
                        request.bot_id().c_str());
            return ExitAcked;
        }
        const char *done = verb == "accept"   ? "accepted"
                           : verb == "reject" ? "rejected"
                                              : "revoked";
        std::printf("%s %s: %s, %s%s%s\n", done, request.bot_id().c_str(),
                    admissionName(bot.admission()), connectionName(bot),
                    bot.credential().empty() ? "" : ", credential ", bot.credential().c_str());
        return ExitAcked;
    }

    int whoami()
    {
        requireHub();
        v1::WhoAmIResponse response;
        const auto status = quickCall(&v1::Operator::Stub::WhoAmI, v1::WhoAmIRequest(), &response);
        if (!status.ok())
            return failed(status);
        if (m_json) {
            std::puts(toJson(response).c_str());
            return ExitAcked;
        }
        std::string role = v1::Role_Name(response.role());
        role = role.rfind("ROLE_", 0) == 0 ? role.substr(5) : role;
        for (char &c : role)
            c = char(std::tolower(c));
        std::string scope;
        for (const auto &[k, v] : std::map(response.scope().begin(), response.scope().end()))
            scope += (scope.empty() ? "" : ",") + k + "=" + v;
        std::printf("%s %s %s\n", response.name().c_str(), role.c_str(),
                    !response.authenticated() ? "(this hub asks for no operator token)"
                    : scope.empty()           ? "(every bot)"
                                              : ("(bots with " + scope + ")").c_str());
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
        prepare(context);
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
        const bool staged = setRollout(args, request);
        requireHub();
        if (staged) {
            const grpc::Status probe = probeRollouts();
            if (probe.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
                std::fprintf(stderr,
                             "opctl: the hub at %s does not run staged rollouts (an older "
                             "version): nothing was sent. It would have sent to every bot at "
                             "once; without --batch, that is what you ask for.\n",
                             m_address.c_str());
                return ExitRefused;
            }
            if (!probe.ok())
                return failed(probe);
        }
        grpc::ClientContext context;
        prepare(context);
        // A rollout lasts as long as its waves (unknown here): no deadline; Ctrl+C ends the
        // call, which aborts it.
        if (!staged)
            context.set_deadline(system_clock::now() + milliseconds(timeout + connectTimeout) +
                                 10s);
        auto reader = m_stub->SendToMany(&context, request);
        const bool tty = isatty(STDERR_FILENO);
        std::map<v1::Outcome, int> tally;
        int done = 0;
        int worst = ExitAcked;
        v1::SendToManyEvent event;
        v1::RolloutState rolloutEnd = v1::ROLLOUT_STATE_UNSPECIFIED;
        while (reader->Read(&event)) {
            if (event.has_rollout()) {
                if (event.rollout().event() == "finished")
                    rolloutEnd = event.rollout().state();
                const std::string line = rolloutLine(event.rollout());
                if (m_json || !line.empty())
                    std::puts(m_json ? toJson(event.rollout()).c_str() : line.c_str());
                std::fflush(stdout);
            } else if (event.has_result()) {
                const auto &r = event.result();
                ++done;
                ++tally[r.outcome()];
                worst = std::max(worst, exitFor(r.outcome()));
                if (m_json || !staged) // a rollout says it per wave
                    std::puts(m_json ? toJson(r).c_str() : describe(r).c_str());
                std::fflush(stdout);
                if (tty && !staged) {
                    std::string line = "\r" + std::to_string(done) + " done:";
                    for (const auto &[o, n] : tally)
                        line += " " + std::to_string(n) + " " + outcomeName(o);
                    std::fprintf(stderr, "%s   ", line.c_str());
                }
            } else if (event.has_summary()) {
                if (tty && !staged)
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
        if (rolloutEnd == v1::ROLLOUT_STATE_STOPPED)
            return ExitRolloutStopped;
        if (rolloutEnd == v1::ROLLOUT_STATE_ABORTED)
            return std::max(worst, int(ExitCancelled));
        return worst;
    }

    // --batch, --abort-above, --wave-delay: the request's rollout; false without --batch.
    static bool setRollout(const Args &args, v1::SendToManyRequest &request)
    {
        const auto batch = args.value("batch");
        if (!batch) {
            for (const char *o : {"abort-above", "wave-delay"})
                if (args.value(o))
                    throw UsageError(std::string("--") + o + " goes with --batch (a rollout)");
            return false;
        }
        v1::Rollout &rollout = *request.mutable_rollout();
        const auto number = [](std::string text, const char *what, bool percent) {
            if (percent && !text.empty() && text.back() == '%')
                text.pop_back();
            size_t used = 0;
            double v = 0;
            try {
                v = std::stod(text, &used);
            } catch (const std::exception &) {
                used = 0;
            }
            if (used == 0 || used != text.size() || !std::isfinite(v))
                throw UsageError(std::string(what) + ": not a number: '" + text + "'");
            return v;
        };
        if (!batch->empty() && batch->back() == '%') {
            const double p = number(*batch, "--batch", true);
            if (p < 1 || p > 100 || p != std::floor(p))
                throw UsageError("--batch: a percentage from 1% to 100%, not " + *batch);
            rollout.set_batch_percent(int(p));
        } else {
            const double n = number(*batch, "--batch", false);
            if (n < 1 || n > 1'000'000 || n != std::floor(n))
                throw UsageError("--batch: 1 to 1000000 bots (or a percentage: 10%), not " +
                                 *batch);
            rollout.set_batch_count(int(n));
        }
        if (const auto above = args.value("abort-above")) {
            const double p = number(*above, "--abort-above", true);
            if (p < 0 || p > 100)
                throw UsageError("--abort-above: a percentage from 0% to 100%, not " + *above);
            rollout.set_abort_above_percent(p);
        }
        if (const auto delay = args.value("wave-delay")) {
            const int64_t ms = durationMs(*delay, "--wave-delay");
            if (ms < 0 || ms > 24 * 3'600'000)
                throw UsageError("--wave-delay: 0 to 24h, not " + *delay);
            *rollout.mutable_wave_delay() = opconsole::wire::durationFromMs(ms);
        }
        return true;
    }

    // A line per wave and one for the end: "wave 2/10 finished: 100/100 acked".
    static std::string rolloutLine(const v1::RolloutProgress &p)
    {
        const std::string wave =
            "wave " + std::to_string(p.wave()) + "/" + std::to_string(p.waves());
        const std::string &e = p.event();
        if (e == "wave_started")
            return wave + " started: " + std::to_string(p.wave_bots()) + " bots";
        if (e == "wave_finished")
            return wave + " finished: " + p.wave_tally().text();
        if (e == "paused" || e == "resumed")
            return "rollout " + e + " after " + wave;
        if (e == "finished")
            return "rollout " + p.fan_out_id() + " " + rolloutStateName(p.state()) + ": " +
                   p.reason();
        return {};
    }

    static const char *rolloutStateName(v1::RolloutState state)
    {
        switch (state) {
        case v1::ROLLOUT_STATE_RUNNING:
            return "running";
        case v1::ROLLOUT_STATE_PAUSED:
            return "paused";
        case v1::ROLLOUT_STATE_COMPLETED:
            return "completed";
        case v1::ROLLOUT_STATE_STOPPED:
            return "stopped";
        case v1::ROLLOUT_STATE_ABORTED:
            return "aborted";
        case v1::ROLLOUT_STATE_SHUT_DOWN:
            return "shut down";
        default:
            return "in an unknown state";
        }
    }

    int rollout(const Args &args)
    {
        if (args.words.size() != 3)
            throw UsageError("usage: opctl rollout pause|resume|abort FAN_OUT_ID");
        const std::string &verb = args.words[1];
        v1::ControlRolloutRequest request;
        if (verb == "pause")
            request.set_action(v1::ROLLOUT_ACTION_PAUSE);
        else if (verb == "resume")
            request.set_action(v1::ROLLOUT_ACTION_RESUME);
        else if (verb == "abort")
            request.set_action(v1::ROLLOUT_ACTION_ABORT);
        else
            throw UsageError("unknown rollout action '" + verb + "' (pause, resume, abort)");
        request.set_fan_out_id(args.words[2]);
        if (const std::string p = opconsole::wire::checkId(request.fan_out_id(), "FAN_OUT_ID");
            !p.empty())
            throw UsageError(p);
        request.set_cancel_in_flight(args.flag("cancel-in-flight"));
        v1::ControlRolloutResponse response;
        requireHub();
        const auto status = quickCall(&v1::Operator::Stub::ControlRollout, request, &response);
        if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
            std::cerr << "opctl: " << status.error_message() << "\n";
            return ExitRefused;
        }
        if (!status.ok())
            return failed(status);
        const v1::RolloutProgress &p = response.status();
        if (m_json) {
            std::puts(toJson(p).c_str());
            return ExitAcked;
        }
        std::printf("rollout %s %s at wave %d/%d: %s%s\n", p.fan_out_id().c_str(),
                    rolloutStateName(p.state()), p.wave(), p.waves(), p.overall().text().c_str(),
                    p.reason().empty() ? "" : ("; " + p.reason()).c_str());
        return ExitAcked;
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
        prepare(context);
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
                const std::string how = bot.connected() ? "connected"
                                        : std::string(connectionName(bot)) == "held"
                                            ? "held, awaiting approval"
                                        : bot.admission() == v1::ADMISSION_REJECTED
                                            ? "rejected" + (bot.disconnect_reason().empty()
                                                                ? std::string()
                                                                : ": " + bot.disconnect_reason())
                                            : bot.disconnect_reason();
                std::printf("%-17s %s %s%s%s\n", event.event().c_str(), bot.bot_id().c_str(),
                            how.c_str(), bot.state().empty() ? "" : " ", bot.state().c_str());
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
    bool m_tls;
    std::string m_token;
    std::shared_ptr<grpc::Channel> m_channel;
    std::unique_ptr<v1::Operator::Stub> m_stub;
};

// A file error of token new (exit 73).
class FileError : public std::runtime_error
{
public:
    using std::runtime_error::runtime_error;
};

std::string errnoText(const std::string &path)
{
    return path + ": " + std::strerror(errno);
}

bool writeAll(int fd, const QByteArray &bytes)
{
    qsizetype done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.constData() + done, size_t(bytes.size() - done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        done += n;
    }
    return true;
}

class Fd
{
public:
    explicit Fd(int fd) : m_fd(fd) {}
    ~Fd()
    {
        if (m_fd >= 0)
            ::close(m_fd);
    }
    Fd(const Fd &) = delete;
    Fd &operator=(const Fd &) = delete;
    int get() const { return m_fd; }

private:
    int m_fd;
};

// The line `token new` appends: checked against what the file holds already (under an
// exclusive lock, so two opctl runs do not interleave), then written.
class Appender
{
public:
    Appender(const std::string &path, const QString &line, bool operators)
        : m_path(path),
          m_fd(::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, S_IRUSR | S_IWUSR))
    {
        if (m_fd.get() < 0)
            throw FileError(errnoText(path));
        if (::flock(m_fd.get(), LOCK_EX) != 0)
            throw FileError(errnoText(path));
        struct stat st = {};
        if (::fstat(m_fd.get(), &st) != 0)
            throw FileError(errnoText(path));
        if (!S_ISREG(st.st_mode))
            throw FileError(path + ": not a regular file");
        if (st.st_mode & S_IWOTH)
            throw FileError(path + ": writable by every user (the hub refuses it); chmod o-w it");
        constexpr qint64 maxBytes = 4 * 1024 * 1024;
        if (st.st_size > maxBytes)
            throw FileError(path + ": larger than 4 MB");
        QByteArray text(qsizetype(st.st_size), '\0');
        qsizetype got = 0;
        while (got < text.size()) {
            const ssize_t n =
                ::pread(m_fd.get(), text.data() + got, size_t(text.size() - got), off_t(got));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += n;
        }
        text.truncate(got);
        m_tail = (text.isEmpty() || text.endsWith('\n') ? QByteArray() : QByteArrayLiteral("\n")) +
                 line.toUtf8() + '\n';
        // The file must still load with the line in it (no name or hash twice, nothing broken).
        QString error;
        const QByteArray after = text + m_tail;
        const QString source = QString::fromStdString(path);
        const bool loads = operators
                               ? bool(security::OperatorDirectory::parse(after, source, &error))
                               : bool(security::BotTokens::parse(after, source, &error));
        if (!loads)
            throw UsageError("not appended to " + path + ": " + error.toStdString());
    }

    void write()
    {
        if (!writeAll(m_fd.get(), m_tail) || ::fsync(m_fd.get()) != 0)
            throw FileError(errnoText(m_path));
    }

private:
    std::string m_path;
    Fd m_fd;
    QByteArray m_tail;
};

// opctl token new: a token, printed once (or written to a new 0600 file), and the line of the
// operators or bot-tokens file that holds its hash. Offline: no hub.
int tokenCommand(const Args &args, bool json)
{
    const char *const usage = "usage: opctl token new --name NAME (--role ROLE [--scope k=v,...] "
                              "| --bots ID,PREFIX*,...) [--append FILE] [--token-out FILE]";
    if (args.words.size() != 2 || args.words[1] != "new")
        throw UsageError(usage);
    const auto name = args.value("name");
    const auto roleText = args.value("role");
    const auto botIds = args.value("bots");
    if (!name)
        throw UsageError(std::string("token new needs --name NAME; ") + usage);
    const QString qname = QString::fromStdString(*name);
    if (!security::validName(qname))
        throw UsageError("bad --name '" + *name + "' (1..64 of A-Z a-z 0-9 . _ @ -)");
    if (bool(roleText) == bool(botIds))
        throw UsageError("token new needs --role (an operator token) or --bots (a bot token), "
                         "one of the two");
    if (args.value("scope") && !roleText)
        throw UsageError("--scope is for operator tokens (with --role)");
    for (const char *option : {"name", "role", "bots", "scope", "append", "token-out"})
        if (args.values(option).size() > 1)
            throw UsageError(std::string("--") + option + " given twice");

    const bool operators = bool(roleText);
    const QString token = security::newToken();
    const QString hash = security::tokenHash(token.toLatin1());
    QString line;
    QString error;
    if (operators) {
        const auto role = security::roleFromName(QString::fromStdString(*roleText));
        if (!role)
            throw UsageError("bad --role '" + *roleText + "' (viewer, operator or admin)");
        QMap<QString, QString> scope;
        if (args.value("scope").value_or("").find('#') != std::string::npos)
            throw UsageError("bad --scope: '#' would start a comment in the file");
        if (!security::parseSelector(QString::fromStdString(args.value("scope").value_or("")),
                                     &scope, &error))
            throw UsageError("bad --scope: " + error.toStdString());
        line = qname + u' ' + security::roleName(*role) + u' ' + hash;
        if (!scope.isEmpty())
            line += u' ' + security::selectorText(scope);
        // What the hub will read back: the same identity (a '#' would start a comment).
        const auto directory =
            security::OperatorDirectory::parse(line.toUtf8(), "the line", &error);
        const auto identity = directory ? directory->find(token.toLatin1()) : std::nullopt;
        if (!identity || identity->name != qname || identity->role != *role ||
            identity->scope != scope)
            throw UsageError("the hub would not read this token's line back: " +
                             (error.isEmpty() ? line.toStdString() : error.toStdString()));
    } else {
        if (botIds->find_first_of(" \t\r\n#") != std::string::npos)
            throw UsageError("bad --bots '" + *botIds + "': no spaces or '#' (a,b,prefix*)");
        line = qname + u' ' + QString::fromStdString(*botIds) + u' ' + hash;
        const auto tokens = security::BotTokens::parse(line.toUtf8(), "--bots", &error);
        const auto *entry = tokens ? tokens->find(token.toLatin1()) : nullptr;
        if (!entry || entry->name != qname ||
            entry->ids.join(u',') != QString::fromStdString(*botIds))
            throw UsageError("bad --bots '" + *botIds +
                             "' (ids or prefixes ending in *, comma-separated; " +
                             (error.isEmpty() ? std::string("not read back the same")
                                              : error.section(u':', 2).trimmed().toStdString()) +
                             ")");
    }

    // Checked before anything is written: a token is never left without its line or the
    // other way round (the line is appended last; the token file goes if that fails).
    const auto appendPath = args.value("append");
    std::optional<Appender> appender;
    if (appendPath)
        appender.emplace(*appendPath, line, operators);
    const auto tokenOut = args.value("token-out");
    if (tokenOut) {
        if (appendPath && *appendPath == *tokenOut)
            throw UsageError("--append and --token-out name the same file");
        const Fd fd(
            ::open(tokenOut->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, S_IRUSR | S_IWUSR));
        if (fd.get() < 0)
            throw FileError(errno == EEXIST
                                ? *tokenOut + ": exists; opctl does not overwrite a token"
                                : errnoText(*tokenOut));
        if (!writeAll(fd.get(), token.toLatin1() + '\n') || ::fsync(fd.get()) != 0) {
            const std::string why = errnoText(*tokenOut);
            ::unlink(tokenOut->c_str());
            throw FileError(why);
        }
    }
    if (appender) {
        try {
            appender->write();
        } catch (...) {
            if (tokenOut)
                ::unlink(tokenOut->c_str());
            throw;
        }
    }

    if (json) {
        QJsonObject o{{"name", qname},
                      {"kind", operators ? "operator" : "bot"},
                      {"hash", hash},
                      {"line", line}};
        if (tokenOut)
            o.insert("token_file", QString::fromStdString(*tokenOut));
        else
            o.insert("token", token);
        if (appendPath)
            o.insert("appended_to", QString::fromStdString(*appendPath));
        std::puts(QJsonDocument(o).toJson(QJsonDocument::Compact).constData());
        return ExitAcked;
    }
    const char *const file = operators ? "--operators" : "--bot-tokens";
    if (tokenOut)
        std::printf("token written to %s (0600); the hub keeps only its hash\n", tokenOut->c_str());
    else
        std::printf("token (shown once; the hub keeps only its hash):\n%s\n", qPrintable(token));
    if (appendPath)
        std::printf("appended to %s (the hub's %s file; restart the hub to read it):\n%s\n",
                    appendPath->c_str(), file, qPrintable(line));
    else
        std::printf("line for the hub's %s file:\n%s\n", file, qPrintable(line));
    return ExitAcked;
}

// --token-file, else $OPCONSOLE_TOKEN; empty when neither.
std::string operatorToken(const Args &args)
{
    if (const auto path = args.value("token-file")) {
        QString error;
        const QByteArray token = security::readTokenFile(QString::fromStdString(*path), &error);
        if (token.isEmpty())
            throw UsageError("--token-file " + error.toStdString());
        return token.toStdString();
    }
    const char *env = std::getenv("OPCONSOLE_TOKEN");
    const QByteArray token = QByteArray(env ? env : "").trimmed();
    if (token.isEmpty())
        return {};
    if (security::bearerToken(("Bearer " + token).toStdString()).isEmpty())
        throw UsageError("OPCONSOLE_TOKEN has spaces or control characters, or is too long");
    return token.toStdString();
}

} // namespace

int main(int argc, char **argv)
{
    // gRPC's own log lines (a failed handshake, each retry) would repeat what opctl says in
    // one line; GRPC_VERBOSITY brings them back.
    if (!std::getenv("GRPC_VERBOSITY"))
        gpr_set_log_function([](gpr_log_func_args *) {});
    try {
        const Args args = parse(argc, argv);
        const std::string name = args.words.empty() ? "" : args.words[0];
        const Command *command = findCommand(name);
        const auto helpOn = [](const std::string &topic) {
            const Command *c = findCommand(topic);
            return c ? c->help : MainHelp;
        };
        if (args.flag("help")) { // before any other problem (opctl send --timout --help)
            std::fputs(helpOn(name == "help" && args.words.size() > 1 ? args.words[1] : name),
                       stdout);
            return 0;
        }
        checkParsed(args, command);
        if (name.empty()) {
            std::fputs(MainHelp, stderr);
            return ExitUsage;
        }
        if (!command) {
            std::vector<std::string_view> names;
            for (const Command &c : commandTable())
                names.push_back(c.name);
            const std::string near = didYouMean(name, names, "");
            throw UsageError("unknown command '" + name + "'" +
                             (near.empty() ? " (see opctl --help)" : near));
        }
        if (name == "help") { // with any option some command takes (opctl --hub h help send)
            std::fputs(helpOn(args.words.size() > 1 ? args.words[1] : ""), stdout);
            return 0;
        }
        check(args, *command);
        if (name == "completion") {
            if (args.words.size() != 2 || args.words[1] != "bash")
                throw UsageError("usage: opctl completion bash (the only shell it knows so far)");
            std::fputs(bashCompletion().c_str(), stdout);
            return 0;
        }
        if (name == "token")
            return tokenCommand(args, args.flag("json"));

        Connection connection;
        const char *env = std::getenv("OPCONSOLE_HUB");
        connection.address = args.value("hub").value_or(env && *env ? env : "127.0.0.1:50052");
        connection.tls.ca = QString::fromStdString(args.value("tls-ca").value_or(""));
        connection.tls.cert = QString::fromStdString(args.value("tls-cert").value_or(""));
        connection.tls.key = QString::fromStdString(args.value("tls-key").value_or(""));
        connection.tls.serverName =
            QString::fromStdString(args.value("tls-server-name").value_or(""));
        if (connection.tls.cert.isEmpty() != connection.tls.key.isEmpty())
            throw UsageError("a client certificate needs both --tls-cert and --tls-key");
        connection.tls.on = args.flag("tls");
        connection.token = operatorToken(args);
        if (!connection.token.empty() && !args.flag("insecure")) {
            if (const QString problem = security::plaintextTokenProblem(
                    connection.tls, QString::fromStdString(connection.address));
                !problem.isEmpty())
                throw UsageError(problem.toStdString());
        }
        Client client(connection, args.flag("json"));
        if (name == "bots")
            return client.bots(args);
        if (name == "send")
            return client.send(args);
        if (name == "commands")
            return client.commands(args);
        if (name == "cancel")
            return client.cancel(args);
        if (name == "rollout")
            return client.rollout(args);
        if (name == "history")
            return client.history(args);
        if (name == "whoami")
            return client.whoami();
        return client.watch(args);
    } catch (const UsageError &e) {
        std::cerr << "opctl: " << e.what() << "\n";
        return ExitUsage;
    } catch (const Unreachable &e) {
        std::cerr << "opctl: " << e.what() << "\n";
        return ExitUnreachable;
    } catch (const FileError &e) {
        std::cerr << "opctl: " << e.what() << "\n";
        return ExitCantCreate;
    } catch (const std::exception &e) {
        std::cerr << "opctl: " << e.what() << "\n";
        return ExitUsage;
    }
}
