#include "operatorrequest.h"

#include "protoconvert.h"
#include "wirecheck.h"

#include <cmath>

namespace opconsole::api {

using namespace std::chrono;
using convert::fromStd;

QString checkTimeout(const google::protobuf::Duration &d, bool required, const char *name,
                     milliseconds max, milliseconds *out)
{
    int64_t ms = 0;
    if (const std::string p = wire::checkDuration(d, name, &ms); !p.empty())
        return fromStd(p);
    if (required && ms <= 0)
        return QStringLiteral("%1 must be positive").arg(QLatin1String(name));
    if (ms < 0)
        return QStringLiteral("%1 must not be negative").arg(QLatin1String(name));
    if (ms > max.count())
        return QStringLiteral("%1 of %2 ms is over the limit of %3 ms")
            .arg(QLatin1String(name))
            .arg(ms)
            .arg(max.count());
    *out = milliseconds(ms);
    return {};
}

namespace {

// The fields SendCommand and SendToMany share.
QString checkCommandRequest(bool hasCommand, const v1::Command &command,
                            const google::protobuf::Duration &timeout,
                            const google::protobuf::Duration &connectTimeout, milliseconds max,
                            CommandRequest *out)
{
    if (!hasCommand)
        return QStringLiteral("command is missing");
    if (!command.command_id().empty()) {
        if (const std::string p = wire::checkId(command.command_id(), "command_id"); !p.empty())
            return fromStd(p);
    }
    QString problem = checkTimeout(timeout, true, "timeout", max, &out->timeout);
    if (problem.isEmpty())
        problem = checkTimeout(connectTimeout, false, "connect_timeout", max,
                               &out->options.connectTimeout);
    if (problem.isEmpty())
        out->spec = convert::specFromCommand(command, &problem);
    return problem;
}

} // namespace

QString checkSendCommand(const v1::SendCommandRequest &request, milliseconds maxTimeout,
                         CommandRequest *out)
{
    if (const std::string p = wire::checkId(request.bot_id(), "bot_id"); !p.empty())
        return fromStd(p);
    return checkCommandRequest(request.has_command(), request.command(), request.timeout(),
                               request.connect_timeout(), maxTimeout, out);
}

QString checkSendToMany(const v1::SendToManyRequest &request, milliseconds maxTimeout,
                        CommandRequest *out)
{
    const int ways = int(request.bot_ids_size() > 0) + int(request.label_selector_size() > 0) +
                     int(request.all());
    if (ways != 1)
        return QStringLiteral("give exactly one of bot_ids, label_selector or all");
    if (size_t(request.bot_ids_size()) > wire::limits::BotIdsPerRequest)
        return QStringLiteral("bot_ids has more than %1 entries")
            .arg(wire::limits::BotIdsPerRequest);
    for (const std::string &id : request.bot_ids()) {
        if (const std::string p = wire::checkId(id, "bot_ids entry"); !p.empty())
            return fromStd(p);
    }
    if (const std::string p = wire::checkLabels(request.label_selector(), "label_selector");
        !p.empty())
        return fromStd(p);
    if (!request.command().command_id().empty())
        return QStringLiteral("command_id must be empty: a fan-out picks one id per bot");
    if (!request.fan_out_id().empty())
        if (const std::string p = wire::checkId(request.fan_out_id(), "fan_out_id"); !p.empty())
            return fromStd(p);
    const QString problem =
        checkCommandRequest(request.has_command(), request.command(), request.timeout(),
                            request.connect_timeout(), maxTimeout, out);
    if (problem.isEmpty() && out)
        out->options.fanOut = fromStd(request.fan_out_id());
    if (problem.isEmpty() && request.has_rollout()) {
        RolloutOptions rollout;
        if (QString p = checkRollout(request.rollout(), &rollout); !p.isEmpty())
            return p;
        out->rollout = rollout;
    }
    return problem;
}

QString checkRollout(const v1::Rollout &rollout, RolloutOptions *out)
{
    RolloutOptions checked;
    switch (rollout.batch_case()) {
    case v1::Rollout::kBatchCount:
        if (rollout.batch_count() < 1 || rollout.batch_count() > RolloutOptions::MaxBatchCount)
            return QStringLiteral("rollout.batch_count must be 1 to %1 bots, not %2")
                .arg(RolloutOptions::MaxBatchCount)
                .arg(rollout.batch_count());
        checked.batchCount = rollout.batch_count();
        break;
    case v1::Rollout::kBatchPercent:
        if (rollout.batch_percent() < 1 || rollout.batch_percent() > 100)
            return QStringLiteral("rollout.batch_percent must be 1 to 100, not %1")
                .arg(rollout.batch_percent());
        checked.batchPercent = rollout.batch_percent();
        break;
    default:
        return QStringLiteral("rollout needs batch_count or batch_percent");
    }
    if (rollout.has_abort_above_percent()) {
        const double above = rollout.abort_above_percent();
        if (!std::isfinite(above) || above < 0 || above > 100)
            return QStringLiteral("rollout.abort_above_percent must be 0 to 100");
        checked.abortAbovePercent = above;
    }
    if (QString p = checkTimeout(rollout.wave_delay(), false, "rollout.wave_delay",
                                 RolloutOptions::MaxWaveDelay, &checked.waveDelay);
        !p.isEmpty())
        return p;
    if (QString p = checked.validate(); !p.isEmpty())
        return p;
    *out = checked;
    return {};
}

QString checkControlRollout(const v1::ControlRolloutRequest &request, RolloutAction *out)
{
    if (const std::string p = wire::checkId(request.fan_out_id(), "fan_out_id"); !p.empty())
        return fromStd(p);
    switch (request.action()) {
    case v1::ROLLOUT_ACTION_PAUSE:
        *out = RolloutAction::Pause;
        break;
    case v1::ROLLOUT_ACTION_RESUME:
        *out = RolloutAction::Resume;
        break;
    case v1::ROLLOUT_ACTION_ABORT:
        *out = request.cancel_in_flight() ? RolloutAction::AbortAndCancel : RolloutAction::Abort;
        return {};
    default:
        return QStringLiteral("action must be pause, resume or abort");
    }
    if (request.cancel_in_flight())
        return QStringLiteral("cancel_in_flight goes with abort only");
    return {};
}

QString checkQueryHistory(const v1::QueryHistoryRequest &request, HistoryQuery *out)
{
    for (const auto &[value, name] :
         {std::pair{&request.bot_id(), "bot_id"}, std::pair{&request.fan_out_id(), "fan_out_id"}}) {
        if (!value->empty())
            if (const std::string p = wire::checkId(*value, name); !p.empty())
                return fromStd(p);
    }
    if (const std::string p = wire::checkLabel(request.kind(), "kind", wire::limits::IdBytes);
        !p.empty())
        return fromStd(p);
    if (const std::string p =
            wire::checkLabel(request.issuer(), "issuer", wire::limits::ShortTextBytes);
        !p.empty())
        return fromStd(p);
    if (const std::string p =
            wire::checkLabel(request.text(), "text", wire::limits::ShortTextBytes);
        !p.empty())
        return fromStd(p);
    if (request.outcomes_size() > 16)
        return QStringLiteral("outcomes has more than 16 entries");
    for (int o : request.outcomes()) {
        const auto state = v1::Outcome_IsValid(o) ? convert::stateOf(v1::Outcome(o)) : std::nullopt;
        if (!state)
            return QStringLiteral("unknown outcome %1").arg(o);
        out->states.append(*state);
    }
    int64_t ms = 0;
    if (request.has_since()) {
        if (const std::string p = wire::checkTimestamp(request.since(), "since", &ms); !p.empty())
            return fromStd(p);
        out->sinceMs = std::max<int64_t>(1, ms);
    }
    if (request.has_until()) {
        if (const std::string p = wire::checkTimestamp(request.until(), "until", &ms); !p.empty())
            return fromStd(p);
        out->untilMs = std::max<int64_t>(1, ms);
    }
    if (request.page_size() < 0 || request.page_size() > HistoryQuery::MaxPageSize)
        return QStringLiteral("page_size must be 0 to %1").arg(HistoryQuery::MaxPageSize);
    if (request.page_token().size() > 64)
        return QStringLiteral("bad page_token");
    out->botId = fromStd(request.bot_id());
    out->fanOut = fromStd(request.fan_out_id());
    out->kind = fromStd(request.kind());
    out->issuer = fromStd(request.issuer());
    out->text = fromStd(request.text());
    out->pageSize = request.page_size() == 0 ? 100 : request.page_size();
    out->pageToken = fromStd(request.page_token());
    return {};
}

QString issuerOf(const std::string &peer)
{
    return QStringLiteral("operator@") + fromStd(peer).left(200);
}

QString checkDecideBot(const v1::DecideBotRequest &request, AdmissionAction *out)
{
    if (const std::string p = wire::checkId(request.bot_id(), "bot_id"); !p.empty())
        return fromStd(p);
    if (const std::string p = wire::checkText(request.reason(), "reason", wire::limits::TextBytes);
        !p.empty())
        return fromStd(p);
    if (const std::string p =
            wire::checkLabel(request.credential(), "credential", wire::limits::ShortTextBytes);
        !p.empty())
        return fromStd(p);
    switch (request.decision()) {
    case v1::DECISION_ACCEPT:
        *out = AdmissionAction::Accept;
        return {};
    case v1::DECISION_REJECT:
        *out = AdmissionAction::Reject;
        return {};
    case v1::DECISION_REVOKE:
        *out = AdmissionAction::Revoke;
        return {};
    default:
        return QStringLiteral("decision must be accept, reject or revoke");
    }
}

} // namespace opconsole::api
