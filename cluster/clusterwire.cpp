#include "clusterwire.h"

#include "clusteroptions.h"
#include "protoconvert.h"
#include "wirecheck.h"

namespace opconsole::cluster::checks {

using convert::fromStd;
using namespace std::chrono;
namespace check = opconsole::wire;

namespace {
QString problemOf(const std::string &p)
{
    return QString::fromStdString(p);
}
} // namespace

bool answerable(const v1::ForwardedCommand &fc)
{
    // A run number too: answers go to the run that asked (0 is nobody's: hubs pick odd ones).
    return checkHubId(fromStd(fc.issuing_hub())).isEmpty() && fc.issuing_incarnation() != 0;
}

QString checkForwarded(const v1::ForwardedCommand &fc, const QString &botId,
                       milliseconds maxTimeout, Forwarded *out)
{
    Forwarded f;
    QString problem = api::checkSendCommand(fc.request(), maxTimeout, &f.request);
    f.commandId = fromStd(fc.request().command().command_id());
    if (problem.isEmpty() && f.commandId.isEmpty())
        problem = QStringLiteral("a forwarded command has its id");
    if (problem.isEmpty() && fromStd(fc.request().bot_id()) != botId)
        problem = QStringLiteral("a forwarded command names another bot than its subject");
    if (problem.isEmpty())
        problem =
            problemOf(check::checkLabel(fc.issuer(), "issuer", check::limits::ShortTextBytes));
    if (problem.isEmpty())
        problem = problemOf(check::checkLabels(fc.scope(), "scope"));
    if (problem.isEmpty() && !fc.fan_out_id().empty())
        problem = problemOf(check::checkId(fc.fan_out_id(), "fan_out_id"));
    if (problem.isEmpty())
        problem = problemOf(check::checkText(fc.params(), "params", check::limits::ParamsBytes));
    if (problem.isEmpty())
        problem = checkHubId(fromStd(fc.issuing_hub()));
    if (problem.isEmpty() && fc.issuing_incarnation() == 0)
        problem = QStringLiteral("a forwarded command names its issuing hub's run");
    if (!problem.isEmpty())
        return problem;
    f.issuingHub = fromStd(fc.issuing_hub());
    SendOptions &send = f.request.options;
    send.connectTimeout = 0ms; // the holder does not wait: the issuer's directory said it is here
    send.forwarded = true;
    send.issuer = fromStd(fc.issuer());
    send.fanOut = fromStd(fc.fan_out_id());
    send.params = fromStd(fc.params());
    for (const auto &[k, v] : fc.scope())
        send.scope.insert(fromStd(k), fromStd(v));
    *out = std::move(f);
    return {};
}

std::optional<CommandOutcome> checkAnswer(const v1::ForwardReply &reply, QString *problem)
{
    if (const QString why = checkHubId(fromStd(reply.hub())); !why.isEmpty()) {
        *problem = why;
        return std::nullopt;
    }
    if (!reply.has_record()) {
        *problem = QStringLiteral("no record");
        return std::nullopt;
    }
    std::optional<CommandOutcome> o = convert::toOutcome(reply.record(), problem);
    if (o && !o->finished()) {
        *problem = QStringLiteral("the record is not final");
        return std::nullopt;
    }
    if (o && o->answered() != o->ack.has_value()) {
        // Acked and rejected carry the bot's ack; nothing else does.
        *problem = QStringLiteral("an answered record without its ack, or an ack without one");
        return std::nullopt;
    }
    if (o && convert::fromStd(reply.command_id()) != o->commandId) {
        *problem = QStringLiteral("the answer names another command than its record");
        return std::nullopt;
    }
    return o;
}

QString checkBeacon(const v1::HubBeacon &beacon)
{
    if (const QString why = checkHubId(fromStd(beacon.hub())); !why.isEmpty())
        return why;
    return problemOf(check::checkLabel(beacon.operator_address(), "operator_address",
                                       check::limits::ShortTextBytes));
}

QString checkResentAcks(const v1::ResentAcks &acks)
{
    if (const std::string p = check::checkId(acks.bot_id(), "bot_id"); !p.empty())
        return problemOf(p);
    if (const QString why = checkHubId(fromStd(acks.hub())); !why.isEmpty())
        return why;
    if (acks.acks_size() > check::limits::MaxResentAcks)
        return QStringLiteral("more than %1 acks").arg(check::limits::MaxResentAcks);
    return {}; // each ack is checked as it is applied (wire::checkAck)
}

QString checkAdmission(const v1::AdmissionShared &decision)
{
    if (const std::string p = check::checkId(decision.bot_id(), "bot_id"); !p.empty())
        return problemOf(p);
    if (const QString why = checkHubId(fromStd(decision.hub())); !why.isEmpty())
        return why;
    if (const std::string p = check::checkLabel(decision.by(), "by", check::limits::ShortTextBytes);
        !p.empty())
        return problemOf(p);
    return problemOf(check::checkText(decision.reason(), "reason", check::limits::TextBytes));
}

} // namespace opconsole::cluster::checks
