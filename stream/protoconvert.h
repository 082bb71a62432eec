#pragma once
// Between wire types (opconsole.v1) and the Qt types the rest of the app uses. Internal to
// stream/: nothing outside it includes generated headers.

#include "botinfo.h"
#include "commandoutcome.h"
#include "commandspec.h"
#include "fanouts.h"
#include "opconsole/v1/botlink.pb.h"
#include "opconsole/v1/operator.pb.h"
#include "tokens.h"

#include <chrono>
#include <string>

namespace opconsole::wire {
struct AckCheck;
}

namespace opconsole::convert {

QString fromStd(const std::string &s);
std::string toStd(const QString &s);
// Clamped to the Timestamp range: any value is safe to write.
google::protobuf::Timestamp timestampMs(qint64 ms);

void fillCommand(v1::Command &cmd, const QString &commandId, const CommandSpec &spec,
                 std::chrono::milliseconds timeout);
// The spec a wire Command asks for; empty error when valid.
CommandSpec specFromCommand(const v1::Command &cmd, QString *error);

// The ack as checked by wire::checkAck (dropped and cut fields already applied).
CommandAckData toAckData(const v1::CommandAck &ack, const wire::AckCheck &checked);
v1::CommandAck fromAckData(const QString &commandId, const CommandAckData &ack);

// "running", "paused", "stopped" for a known BotState; empty for any other value.
QString botStateName(int wireState);

v1::Outcome outcome(CommandState state);
std::optional<CommandState> stateOf(v1::Outcome outcome);
void fillRecord(v1::CommandRecord &out, const CommandOutcome &o);
void fillBot(v1::BotRecord &out, const BotInfo &b, int pending);
v1::Role toProtoRole(security::Role role);
void fillTally(v1::FanOutTally &out, const FanOutSummary &s);

// A record as a console receives it, checked by wire::checkRecord (std::nullopt and *problem
// set when it breaks a rule). Wall-clock times become points of this process's steady clock
// (registeredWallMs keeps the hub's registration time), so durations and countdowns work as
// for local records; latency and lateness keep the hub's nanosecond figures.
std::optional<CommandOutcome> toOutcome(const v1::CommandRecord &record, QString *problem);
std::optional<BotInfo> toBotInfo(const v1::BotRecord &bot, int *pending, QString *problem);

} // namespace opconsole::convert
