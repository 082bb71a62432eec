#pragma once
// Internal to stream/ (and the fuzzers): the Operator API's requests checked and converted,
// in one place, before the service acts on them. Every rule is in docs/protocol.md ("Limits").

#include "commandservice.h"
#include "commandspec.h"
#include "historystore.h"
#include "hub.h"
#include "opconsole/v1/operator.pb.h"
#include "rollout.h"

#include <QString>

#include <chrono>

namespace opconsole::api {

// What SendCommand and SendToMany share, checked and converted.
struct CommandRequest
{
    CommandSpec spec;
    std::chrono::milliseconds timeout{};
    SendOptions options;
    std::optional<RolloutOptions> rollout; // SendToMany in waves (SendToManyRequest.rollout)
};

// A timeout field within 0 (or 1 ms when required) .. max; empty when fine, *out set then.
QString checkTimeout(const google::protobuf::Duration &d, bool required, const char *name,
                     std::chrono::milliseconds max, std::chrono::milliseconds *out);

// Each returns why the request is refused (INVALID_ARGUMENT), empty when fine; *out is
// filled then. `maxTimeout` is the registry's cap.
QString checkSendCommand(const v1::SendCommandRequest &request,
                         std::chrono::milliseconds maxTimeout, CommandRequest *out);
QString checkSendToMany(const v1::SendToManyRequest &request, std::chrono::milliseconds maxTimeout,
                        CommandRequest *out);
QString checkQueryHistory(const v1::QueryHistoryRequest &request, HistoryQuery *out);
// DecideBot: a valid bot id, a known decision, a reason within the text limit.
QString checkDecideBot(const v1::DecideBotRequest &request, AdmissionAction *out);
// ControlRollout: a valid fan-out id and a known action.
QString checkControlRollout(const v1::ControlRolloutRequest &request, RolloutAction *out);
// A SendToManyRequest's rollout: batch 1..100% or 1..1,000,000 bots, abort 0..100%, delay
// 0..24 h.
QString checkRollout(const v1::Rollout &rollout, RolloutOptions *out);
// Who made an API call, for the records it sends: "operator@<peer>".
QString issuerOf(const std::string &peer);

} // namespace opconsole::api
