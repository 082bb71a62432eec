#include "protoconvert.h"

#include "wirecheck.h"

#include <QDateTime>
#include <QStringDecoder>

namespace opconsole::convert {

using namespace std::chrono;

QString fromStd(const std::string &s)
{
    // QString::fromUtf8 drops a leading U+FEFF (a BOM): text from the wire must come through
    // whole, so such a string is decoded with the BOM kept (rare: the fast path stays).
    if (s.size() >= 3 && s.compare(0, 3, "\xEF\xBB\xBF") == 0) {
        QStringDecoder decoder(QStringDecoder::Utf8, QStringDecoder::Flag::Stateless |
                                                         QStringDecoder::Flag::ConvertInitialBom);
        return decoder.decode(QByteArrayView(s.data(), qsizetype(s.size())));
    }
    return QString::fromUtf8(s.data(), qsizetype(s.size()));
}

std::string toStd(const QString &s)
{
    return s.toStdString();
}

google::protobuf::Timestamp timestampMs(qint64 ms)
{
    return wire::timestampFromMs(ms); // clamped: never CHECK-fails
}

void fillCommand(v1::Command &cmd, const QString &commandId, const CommandSpec &spec,
                 milliseconds timeout)
{
    cmd.set_command_id(toStd(commandId));
    *cmd.mutable_issued_at() = timestampMs(QDateTime::currentMSecsSinceEpoch());
    *cmd.mutable_timeout() = wire::durationFromMs(timeout.count());
    switch (spec.kind) {
    case CommandKind::Start:
        cmd.mutable_start();
        break;
    case CommandKind::Stop:
        cmd.mutable_stop()->set_reason(toStd(spec.stopReason));
        cmd.mutable_stop()->set_graceful(spec.graceful);
        break;
    case CommandKind::Restart:
        cmd.mutable_restart();
        break;
    case CommandKind::Pause:
        cmd.mutable_pause();
        break;
    case CommandKind::Resume:
        cmd.mutable_resume();
        break;
    case CommandKind::Ping:
        cmd.mutable_ping();
        break;
    case CommandKind::ConfigUpdate: {
        auto *update = cmd.mutable_config_update();
        for (auto it = spec.config.cbegin(); it != spec.config.cend(); ++it)
            (*update->mutable_values())[toStd(it.key())] = toStd(it.value());
        update->set_version(spec.configVersion);
        break;
    }
    case CommandKind::Custom:
        cmd.mutable_custom()->set_name(toStd(spec.customName));
        cmd.mutable_custom()->set_json_payload(spec.jsonPayload.toStdString());
        break;
    }
}

CommandSpec specFromCommand(const v1::Command &cmd, QString *error)
{
    CommandSpec spec;
    if (const std::string problem = wire::checkCommandAction(cmd); !problem.empty()) {
        if (error)
            *error = fromStd(problem);
        return spec;
    }
    switch (cmd.action_case()) {
    case v1::Command::kStart:
        spec.kind = CommandKind::Start;
        break;
    case v1::Command::kStop:
        spec.kind = CommandKind::Stop;
        spec.stopReason = fromStd(cmd.stop().reason());
        spec.graceful = cmd.stop().graceful();
        break;
    case v1::Command::kRestart:
        spec.kind = CommandKind::Restart;
        break;
    case v1::Command::kPause:
        spec.kind = CommandKind::Pause;
        break;
    case v1::Command::kResume:
        spec.kind = CommandKind::Resume;
        break;
    case v1::Command::kPing:
        spec.kind = CommandKind::Ping;
        break;
    case v1::Command::kConfigUpdate:
        spec.kind = CommandKind::ConfigUpdate;
        for (const auto &[k, v] : cmd.config_update().values())
            spec.config.insert(fromStd(k), fromStd(v));
        spec.configVersion = cmd.config_update().version();
        break;
    case v1::Command::kCustom:
        spec.kind = CommandKind::Custom;
        spec.customName = fromStd(cmd.custom().name());
        spec.jsonPayload = QByteArray::fromStdString(cmd.custom().json_payload());
        break;
    case v1::Command::ACTION_NOT_SET:
        if (error)
            *error = QStringLiteral("the command has no action (start, stop, ...)");
        return spec;
    }
    if (error)
        *error = spec.validate();
    return spec;
}

CommandAckData toAckData(const v1::CommandAck &ack, const wire::AckCheck &checked)
{
    CommandAckData data;
    data.success = ack.success();
    data.message = fromStd(checked.message);
    data.errorCode = checked.errorCode;
    data.result = QByteArray(ack.result().data(), qsizetype(ack.result().size()));
    data.botReceivedAtMs = checked.receivedAtMs;
    data.botCompletedAtMs = checked.completedAtMs;
    return data;
}

v1::CommandAck fromAckData(const QString &commandId, const CommandAckData &ack)
{
    v1::CommandAck out;
    out.set_command_id(toStd(commandId));
    out.set_success(ack.success);
    out.set_message(toStd(ack.message));
    out.set_error_code(v1::AckErrorCode(ack.errorCode));
    out.set_result(ack.result.toStdString());
    if (ack.botReceivedAtMs)
        *out.mutable_received_at() = timestampMs(ack.botReceivedAtMs);
    if (ack.botCompletedAtMs)
        *out.mutable_completed_at() = timestampMs(ack.botCompletedAtMs);
    return out;
}

QString botStateName(int wireState)
{
    switch (wire::knownState(wireState).value_or(v1::BOT_STATE_UNSPECIFIED)) {
    case v1::BOT_STATE_RUNNING:
        return QStringLiteral("running");
    case v1::BOT_STATE_PAUSED:
        return QStringLiteral("paused");
    case v1::BOT_STATE_STOPPED:
        return QStringLiteral("stopped");
    default:
        return {};
    }
}

v1::Outcome outcome(CommandState state)
{
    switch (state) {
    case CommandState::Pending:
        return v1::OUTCOME_PENDING;
    case CommandState::Acked:
        return v1::OUTCOME_ACKED;
    case CommandState::Rejected:
        return v1::OUTCOME_REJECTED;
    case CommandState::Expired:
        return v1::OUTCOME_EXPIRED;
    case CommandState::NotConnected:
        return v1::OUTCOME_NOT_CONNECTED;
    case CommandState::Disconnected:
        return v1::OUTCOME_DISCONNECTED;
    case CommandState::Cancelled:
        return v1::OUTCOME_CANCELLED;
    case CommandState::Refused:
        return v1::OUTCOME_REFUSED;
    case CommandState::Unknown:
        return v1::OUTCOME_UNKNOWN;
    }
    return v1::OUTCOME_UNSPECIFIED;
}

std::optional<CommandState> stateOf(v1::Outcome o)
{
    for (auto s : {CommandState::Pending, CommandState::Acked, CommandState::Rejected,
                   CommandState::Expired, CommandState::NotConnected, CommandState::Disconnected,
                   CommandState::Cancelled, CommandState::Refused, CommandState::Unknown}) {
        if (outcome(s) == o)
            return s;
    }
    return std::nullopt;
}

void fillRecord(v1::CommandRecord &out, const CommandOutcome &o)
{
    out.set_command_id(toStd(o.commandId));
    out.set_bot_id(toStd(o.botId));
    out.set_kind(toStd(o.kind));
    out.set_outcome(outcome(o.state));
    out.set_reason(toStd(o.reason));
    if (o.ack)
        *out.mutable_ack() = fromAckData(o.commandId, *o.ack);
    if (o.lateAck) {
        *out.mutable_late_ack() = fromAckData(o.commandId, *o.lateAck);
        *out.mutable_late_by() = wire::durationFromNs(o.lateBy().count());
    }
    *out.mutable_registered_at() = timestampMs(o.registeredWallMs);
    *out.mutable_deadline() = timestampMs(o.wallMs(o.deadline));
    if (o.wasSent())
        *out.mutable_sent_at() = timestampMs(o.wallMs(o.sentAt));
    if (o.finished()) {
        *out.mutable_finished_at() = timestampMs(o.wallMs(o.finishedAt));
        *out.mutable_latency() = wire::durationFromNs(o.latency().count());
    }
    out.set_progress_percent(o.progressPercent);
    out.set_progress_message(toStd(o.progressMessage));
    out.set_fan_out_id(toStd(o.fanOut));
    out.set_change(o.change);
    out.set_params(toStd(o.params));
    out.set_issuer(toStd(o.issuer));
}

void fillBot(v1::BotRecord &out, const BotInfo &b, int pending)
{
    out.set_bot_id(toStd(b.botId));
    out.set_session(b.session);
    out.set_connected(b.connected);
    out.set_state(toStd(b.state));
    out.set_bot_version(toStd(b.botVersion));
    for (auto it = b.labels.cbegin(); it != b.labels.cend(); ++it)
        (*out.mutable_labels())[toStd(it.key())] = toStd(it.value());
    for (auto it = b.status.cbegin(); it != b.status.cend(); ++it)
        (*out.mutable_status())[toStd(it.key())] = toStd(it.value());
    if (b.connectedAtMs)
        *out.mutable_connected_at() = timestampMs(b.connectedAtMs);
    if (b.disconnectedAtMs)
        *out.mutable_disconnected_at() = timestampMs(b.disconnectedAtMs);
    if (b.lastSeenMs)
        *out.mutable_last_seen() = timestampMs(b.lastSeenMs);
    out.set_disconnect_reason(toStd(b.disconnectReason));
    out.set_connects(b.connects);
    out.set_pending(pending);
    switch (b.admission) {
    case BotAdmission::Accepted:
        out.set_admission(v1::ADMISSION_ACCEPTED);
        break;
    case BotAdmission::Awaiting:
        out.set_admission(v1::ADMISSION_AWAITING);
        break;
    case BotAdmission::Rejected:
        out.set_admission(v1::ADMISSION_REJECTED);
        break;
    }
    out.set_credential(toStd(b.credential));
    out.set_hub(toStd(b.holder));
}

v1::Role toProtoRole(security::Role role)
{
    switch (role) {
    case security::Role::Viewer:
        return v1::ROLE_VIEWER;
    case security::Role::Operator:
        return v1::ROLE_OPERATOR;
    case security::Role::Admin:
        return v1::ROLE_ADMIN;
    case security::Role::None:
        break;
    }
    return v1::ROLE_UNSPECIFIED;
}

void fillTally(v1::FanOutTally &out, const FanOutSummary &s)
{
    out.set_total(s.total);
    out.set_acked(s.acked);
    out.set_rejected(s.rejected);
    out.set_expired(s.expired);
    out.set_not_connected(s.notConnected);
    out.set_disconnected(s.disconnected);
    out.set_cancelled(s.cancelled);
    out.set_refused(s.refused);
    out.set_unknown(s.unknown);
    out.set_pending(s.pending);
    out.set_late_acks(s.lateAcks);
    out.set_fan_out_id(toStd(s.id));
    out.set_text(toStd(s.text()));
}

namespace {

std::chrono::nanoseconds durationOf(const google::protobuf::Duration &d)
{
    return std::chrono::seconds(d.seconds()) + std::chrono::nanoseconds(d.nanos());
}

CommandAckData ackOf(const v1::CommandAck &ack)
{
    return toAckData(ack, wire::checkAck(ack));
}

} // namespace

std::optional<CommandOutcome> toOutcome(const v1::CommandRecord &r, QString *problem)
{
    if (const std::string p = wire::checkRecord(r); !p.empty()) {
        if (problem)
            *problem = fromStd(p);
        return std::nullopt;
    }
    const std::optional<CommandState> state = stateOf(r.outcome());
    if (!state) {
        if (problem)
            *problem = QStringLiteral("unknown outcome");
        return std::nullopt;
    }
    CommandOutcome o;
    o.state = *state;
    o.commandId = fromStd(r.command_id());
    o.botId = fromStd(r.bot_id());
    o.kind = fromStd(r.kind());
    o.reason = fromStd(r.reason());
    o.fanOut = fromStd(r.fan_out_id());
    o.change = r.change();
    o.params = fromStd(r.params()).left(CommandOutcome::MaxParamsLength);
    o.issuer = fromStd(r.issuer());
    if (r.has_ack())
        o.ack = ackOf(r.ack());
    if (r.has_late_ack())
        o.lateAck = ackOf(r.late_ack());
    // One reading of both clocks maps every wall time of the record onto the steady clock.
    // Times far from now (years 1 or 9999: nanoseconds since 1970 would not even fit 64 bits)
    // are clamped to +-100 years of now in seconds first, which keeps every later sum far from
    // overflow. (A fuzzer found the first version, which multiplied before clamping.)
    const auto steadyNow = Clock::now();
    const qint64 wallNowMs = QDateTime::currentMSecsSinceEpoch();
    constexpr qint64 SpanSeconds = 100LL * 366 * 24 * 3600;
    auto local = [&](const google::protobuf::Timestamp &t) {
        const qint64 seconds =
            std::clamp<qint64>(t.seconds() - wallNowMs / 1000, -SpanSeconds, SpanSeconds);
        const qint64 offset = seconds * 1'000'000'000 + t.nanos() - (wallNowMs % 1000) * 1'000'000;
        return steadyNow + duration_cast<Clock::duration>(nanoseconds(offset));
    };
    o.registeredAt = local(r.registered_at());
    o.registeredWallMs = r.registered_at().seconds() * 1000 + r.registered_at().nanos() / 1'000'000;
    o.deadline = local(r.deadline());
    if (r.has_sent_at())
        o.sentAt = local(r.sent_at());
    if (o.finished()) {
        const Clock::time_point from = o.wasSent() ? o.sentAt : o.registeredAt;
        // A hub's finished_at before the send would make a negative latency, one years after
        // it a latency no record may carry: kept between the two.
        o.finishedAt = r.has_latency()
                           ? from + duration_cast<Clock::duration>(durationOf(r.latency()))
                           : std::clamp(r.has_finished_at() ? local(r.finished_at()) : from, from,
                                        from + hours(24 * 365));
    }
    if (o.lateAck)
        o.lateAckAt = o.lateFrom() + duration_cast<Clock::duration>(durationOf(r.late_by()));
    o.progressPercent = r.progress_percent();
    o.progressMessage = fromStd(r.progress_message());
    return o;
}

std::optional<BotInfo> toBotInfo(const v1::BotRecord &b, int *pending, QString *problem)
{
    if (const std::string p = wire::checkBotRecord(b); !p.empty()) {
        if (problem)
            *problem = fromStd(p);
        return std::nullopt;
    }
    BotInfo info;
    info.botId = fromStd(b.bot_id());
    info.session = b.session();
    info.connected = b.connected();
    info.state = fromStd(b.state());
    info.botVersion = fromStd(b.bot_version());
    for (const auto &[k, v] : b.labels())
        info.labels.insert(fromStd(k), fromStd(v));
    for (const auto &[k, v] : b.status())
        info.status.insert(fromStd(k), fromStd(v));
    auto ms = [](const google::protobuf::Timestamp &t) {
        return qint64(t.seconds()) * 1000 + t.nanos() / 1'000'000;
    };
    if (b.has_connected_at())
        info.connectedAtMs = ms(b.connected_at());
    if (b.has_disconnected_at())
        info.disconnectedAtMs = ms(b.disconnected_at());
    if (b.has_last_seen())
        info.lastSeenMs = ms(b.last_seen());
    info.disconnectReason = fromStd(b.disconnect_reason());
    info.connects = b.connects();
    info.admission = b.admission() == v1::ADMISSION_AWAITING   ? BotAdmission::Awaiting
                     : b.admission() == v1::ADMISSION_REJECTED ? BotAdmission::Rejected
                                                               : BotAdmission::Accepted;
    info.credential = fromStd(b.credential());
    info.holder = fromStd(b.hub());
    if (pending)
        *pending = b.pending();
    return info;
}

} // namespace opconsole::convert
