#include "commandtext.h"

#include "commandtablemodel.h"

#include <QCoreApplication>
#include <QDateTime>
#include <QJsonDocument>
#include <QRegularExpression>
#include <QStringList>

namespace opconsole {

using namespace std::chrono;

namespace {

// tr() for free functions: these texts share one translation context.
QString tr(const char *text, const char *disambiguation = nullptr, int n = -1)
{
    return QCoreApplication::translate("opconsole::CommandText", text, disambiguation, n);
}

QString escape(const QString &s)
{
    return s.toHtmlEscaped();
}

QString clockTime(qint64 wallMs)
{
    return QDateTime::fromMSecsSinceEpoch(wallMs).toString(QStringLiteral("HH:mm:ss.zzz"));
}

QString wall(const CommandOutcome &o, Clock::time_point t)
{
    return clockTime(o.wallMs(t));
}

// A payload as JSON when it parses, pretty-printed; as it came otherwise.
QString payloadText(const QByteArray &payload)
{
    const QJsonDocument doc = QJsonDocument::fromJson(payload);
    return QString::fromUtf8(doc.isNull() ? payload : doc.toJson(QJsonDocument::Indented));
}

} // namespace

QString shellQuote(const QString &s)
{
    if (!s.isEmpty() && s.indexOf(QRegularExpression(QStringLiteral("[^A-Za-z0-9_./=:,-]"))) < 0)
        return s;
    QString out = s;
    out.replace(QLatin1Char('\''), QLatin1String("'\\''"));
    return QLatin1Char('\'') + out + QLatin1Char('\'');
}

QString detailsHtml(const CommandOutcome &o, const SentSpec *sent)
{
    QString html;
    html += QStringLiteral("<h3>%1 → %2 <small>%3</small></h3>")
                .arg(escape(o.kind), escape(o.botId), escape(o.commandId));
    html += QStringLiteral("<p><b>%1</b>%2</p>")
                .arg(escape(CommandTableModel::stateText(o)),
                     o.reason.isEmpty() ? QString() : QStringLiteral(": ") + escape(o.reason));
    const std::optional<SentSpec> command = commandOf(o, sent);
    bool timeoutShown = false;
    if (command) {
        const CommandSpec &spec = command->spec;
        QStringList params;
        if (spec.kind == CommandKind::Stop)
            params << tr("reason: %1").arg(escape(spec.stopReason))
                   << tr("graceful: %1").arg(spec.graceful ? tr("yes") : tr("no"));
        for (auto kv = spec.config.cbegin(); kv != spec.config.cend(); ++kv)
            params << escape(kv.key()) + QStringLiteral(" = ") + escape(kv.value());
        if (spec.kind == CommandKind::ConfigUpdate)
            params << tr("version %1").arg(spec.configVersion);
        if (spec.kind == CommandKind::Custom) {
            params << tr("name: %1").arg(escape(spec.customName));
            const QJsonDocument doc = QJsonDocument::fromJson(spec.jsonPayload);
            if (!doc.isNull())
                params << QStringLiteral("<pre>%1</pre>")
                              .arg(escape(QString::fromUtf8(doc.toJson(QJsonDocument::Indented))));
        }
        // A kind without parameters has no section: its timeout goes with the origin below.
        if (!params.isEmpty()) {
            if (command->timeout.count() > 0)
                params << tr("timeout: %1 ms").arg(command->timeout.count());
            html += QStringLiteral("<p><b>Command</b><br>%1</p>")
                        .arg(params.join(QStringLiteral("<br>")));
            timeoutShown = command->timeout.count() > 0;
        }
    } else if (!o.params.isEmpty()) {
        // Parameters that do not read as this kind's (cut at the record's limit, another
        // version's fields): as the record keeps them.
        html += QStringLiteral("<p><b>Parameters</b><pre>%1</pre></p>")
                    .arg(escape(payloadText(o.params.toUtf8())));
    }
    QStringList from;
    if (!o.issuer.isEmpty())
        from << tr("issued by %1").arg(escape(o.issuer));
    if (!o.fanOut.isEmpty())
        from << tr("fan-out %1").arg(escape(o.fanOut));
    if (o.timeout.count() > 0 && !timeoutShown)
        from << tr("timeout %1 ms").arg(o.timeout.count());
    if (!from.isEmpty())
        html += QStringLiteral("<p>%1</p>").arg(from.join(QStringLiteral(", ")));
    auto since = [&o](Clock::time_point t) {
        return QStringLiteral("+%1 ms").arg(
            double(duration_cast<microseconds>(t - o.registeredAt).count()) / 1000, 0, 'f', 1);
    };
    html += QStringLiteral("<p><b>Timeline</b><br>");
    html += tr("registered %1<br>").arg(wall(o, o.registeredAt));
    if (o.wasSent())
        html += tr("sent %1 (%2)<br>").arg(wall(o, o.sentAt), since(o.sentAt));
    if (o.progressDropped > 0)
        html += tr("(%n earlier progress update(s) not kept)<br>", nullptr, o.progressDropped);
    for (const ProgressStep &step : o.progressSteps)
        html += tr("progress %1% %2 (%3)<br>")
                    .arg(step.percent)
                    .arg(escape(step.message), since(step.at));
    if (o.answered())
        html += tr("%1 %2 (%3), latency %4 ms<br>")
                    .arg(stateName(o.state), wall(o, o.finishedAt), since(o.finishedAt))
                    .arg(double(o.latency().count()) / 1e6, 0, 'f', 2);
    else if (o.finished()) // never answered in time: no latency to speak of
        html += tr("%1 %2 (%3)<br>")
                    .arg(stateName(o.state), wall(o, o.finishedAt), since(o.finishedAt));
    else
        html += tr("deadline %1 (%2)<br>").arg(wall(o, o.deadline), since(o.deadline));
    if (o.hasLateAck()) {
        // Late from when the command stopped waiting: its deadline, or its cancel/disconnect.
        const QString after = o.state == CommandState::Expired     ? tr("after the deadline")
                              : o.state == CommandState::Cancelled ? tr("after the cancel")
                                                                   : tr("after it ended");
        html += tr("%1 %2 (%3, %4 s %5)<br>")
                    .arg(o.lateAck->success ? tr("late ack") : tr("late rejection"),
                         wall(o, o.lateAckAt), since(o.lateAckAt))
                    .arg(double(o.lateBy().count()) / 1e9, 0, 'f', 1)
                    .arg(after);
    }
    html += QStringLiteral("</p>");
    for (const auto &[title, ack] :
         {std::pair{tr("Ack"), o.ack}, std::pair{tr("Late ack"), o.lateAck}}) {
        if (!ack)
            continue;
        html += QStringLiteral("<p><b>%1</b><br>success: %2<br>message: %3<br>error code: %4")
                    .arg(title, ack->success ? tr("yes") : tr("no"), escape(ack->message))
                    .arg(ack->errorCode);
        if (ack->botReceivedAtMs)
            html += tr("<br>bot received %1, completed %2")
                        .arg(clockTime(ack->botReceivedAtMs), clockTime(ack->botCompletedAtMs));
        if (!ack->result.isEmpty())
            html += QStringLiteral("<pre>%1</pre>").arg(escape(payloadText(ack->result)));
        html += QStringLiteral("</p>");
    }
    return html;
}

QString opctlLine(const CommandOutcome &o, const QString &hubAddress, const SentSpec *sent)
{
    // Every word from the record is quoted, and the kind is written as opctl names it: a
    // hostile hub's record must not add a shell command to what the operator pastes.
    const std::optional<CommandKind> known = CommandSpec::kindFromName(o.kind);
    const QStringList target{shellQuote(o.botId),
                             known ? CommandSpec::kindName(*known) : shellQuote(o.kind)};
    QStringList args{QStringLiteral("opctl"), QStringLiteral("--hub"),
                     shellQuote(o.hub.isEmpty() ? hubAddress : o.hub), QStringLiteral("send")};
    // A bot id such as "--all" would be read as an option: after "--", at the end.
    const bool dashed = o.botId.startsWith(QLatin1Char('-'));
    if (!dashed)
        args << target;
    const std::optional<SentSpec> command = commandOf(o, sent);
    const milliseconds timeout = command && command->timeout.count() > 0
                                     ? command->timeout
                                     : duration_cast<milliseconds>(o.deadline - o.registeredAt);
    args << QStringLiteral("--timeout") << QStringLiteral("%1ms").arg(timeout.count());
    if (command) {
        const CommandSpec &spec = command->spec;
        for (auto kv = spec.config.cbegin(); kv != spec.config.cend(); ++kv)
            args << QStringLiteral("--set") << shellQuote(kv.key() + QLatin1Char('=') + kv.value());
        if (spec.kind == CommandKind::ConfigUpdate && spec.configVersion)
            args << QStringLiteral("--version") << QString::number(spec.configVersion);
        if (spec.kind == CommandKind::Custom) {
            args << QStringLiteral("--name") << shellQuote(spec.customName);
            if (!spec.jsonPayload.isEmpty())
                args << QStringLiteral("--json-payload")
                     << shellQuote(QString::fromUtf8(spec.jsonPayload));
        }
        if (spec.kind == CommandKind::Stop && !spec.stopReason.isEmpty())
            args << QStringLiteral("--reason") << shellQuote(spec.stopReason);
        if (spec.kind == CommandKind::Stop && !spec.graceful)
            args << QStringLiteral("--no-graceful");
    }
    if (dashed)
        args << QStringLiteral("--") << target;
    return args.join(QLatin1Char(' '));
}

std::optional<SentSpec> commandOf(const CommandOutcome &o, const SentSpec *sent)
{
    // The record first: it is what went down the wire, whoever sent it.
    if (std::optional<CommandSpec> spec = CommandSpec::fromRecord(o.kind, o.params))
        return SentSpec{
            *spec, o.timeout.count() > 0 ? o.timeout
                   : sent                ? sent->timeout
                                         : std::max(milliseconds(0),
                                                    duration_cast<milliseconds>(o.deadline - o.registeredAt))};
    if (sent)
        return *sent;
    return std::nullopt;
}

} // namespace opconsole
