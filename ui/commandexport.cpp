#include "commandexport.h"

#include <QCoreApplication>
#include <QDateTime>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSaveFile>

namespace opconsole {

using namespace std::chrono;

namespace {

QString tr(const char *text)
{
    return QCoreApplication::translate("opconsole::CommandExport", text);
}

// ISO 8601 in UTC with milliseconds ("2026-11-01T14:02:11.123Z"); empty when out of range.
QString isoUtc(qint64 wallMs)
{
    const QDateTime t = QDateTime::fromMSecsSinceEpoch(wallMs, Qt::UTC);
    return t.isValid() ? t.toString(Qt::ISODateWithMs) : QString();
}

// A time point of the record on the wall clock; empty when it is not set.
QString isoAt(const CommandOutcome &o, Clock::time_point t)
{
    return t == Clock::time_point{} ? QString() : isoUtc(o.wallMs(t));
}

// As opctl names states (its --state values and its history --csv): "not-connected".
QString stateToken(CommandState state)
{
    return stateName(state).replace(QLatin1Char(' '), QLatin1Char('-'));
}

std::optional<double> latencyMs(const CommandOutcome &o)
{
    const auto answered = o.answeredIn();
    if (!answered)
        return std::nullopt;
    return double(duration_cast<microseconds>(*answered).count()) / 1000.0;
}

QString number(double value)
{
    return QString::number(value, 'f', 3);
}

QString boolText(bool b)
{
    return b ? QStringLiteral("true") : QStringLiteral("false");
}

// A text that came from outside: a spreadsheet must not run it (see toCsv).
QString guarded(const QString &s)
{
    static const QString triggers = QStringLiteral("=+-@\t\r");
    return !s.isEmpty() && triggers.contains(s.front()) ? QLatin1Char('\'') + s : s;
}

QByteArray csvField(const QString &s)
{
    QByteArray out = s.toUtf8();
    if (!out.contains(',') && !out.contains('"') && !out.contains('\r') && !out.contains('\n'))
        return out;
    out.replace("\"", "\"\"");
    return '"' + out + '"';
}

QJsonValue jsonText(const QString &s)
{
    return s.isNull() ? QJsonValue(QString()) : QJsonValue(s);
}

QJsonValue jsonTime(const QString &iso)
{
    return iso.isEmpty() ? QJsonValue(QJsonValue::Null) : QJsonValue(iso);
}

// The params as JSON when they parse (they normally do: compact JSON), else as the string.
QJsonValue jsonParams(const QString &params)
{
    if (params.isEmpty())
        return QJsonValue::Null;
    QJsonParseError error;
    const QJsonDocument doc = QJsonDocument::fromJson(params.toUtf8(), &error);
    if (error.error != QJsonParseError::NoError || doc.isNull())
        return params;
    if (doc.isObject())
        return doc.object();
    return doc.array();
}

QJsonObject jsonAck(const CommandAckData &ack)
{
    return {{QStringLiteral("success"), ack.success},
            {QStringLiteral("message"), jsonText(ack.message)},
            {QStringLiteral("code"), ack.errorCode}};
}

} // namespace

QStringList csvColumns()
{
    return {QStringLiteral("id"),
            QStringLiteral("bot"),
            QStringLiteral("hub"),
            QStringLiteral("kind"),
            QStringLiteral("state"),
            QStringLiteral("reason"),
            QStringLiteral("issuer"),
            QStringLiteral("fan_out"),
            QStringLiteral("params"),
            QStringLiteral("timeout_ms"),
            QStringLiteral("registered_at"),
            QStringLiteral("sent_at"),
            QStringLiteral("finished_at"),
            QStringLiteral("latency_ms"),
            QStringLiteral("ack_success"),
            QStringLiteral("ack_message"),
            QStringLiteral("ack_code"),
            QStringLiteral("late_ack_at"),
            QStringLiteral("late_ack_success"),
            QStringLiteral("late_ack_message"),
            QStringLiteral("late_ack_code"),
            QStringLiteral("progress_percent"),
            QStringLiteral("progress_message")};
}

QByteArray toCsv(const QList<CommandOutcome> &records)
{
    QByteArray out;
    auto row = [&out](const QStringList &fields) {
        for (qsizetype i = 0; i < fields.size(); ++i) {
            if (i > 0)
                out += ',';
            out += csvField(fields[i]);
        }
        out += "\r\n";
    };
    row(csvColumns());
    for (const CommandOutcome &o : records) {
        const auto latency = latencyMs(o);
        QStringList f;
        f.reserve(23);
        f << guarded(o.commandId) << guarded(o.botId) << guarded(o.hub) << guarded(o.kind)
          << stateToken(o.state) << guarded(o.reason) << guarded(o.issuer) << guarded(o.fanOut)
          << guarded(o.params) << QString::number(o.timeout.count()) << isoUtc(o.registeredWallMs)
          << isoAt(o, o.sentAt) << isoAt(o, o.finishedAt)
          << (latency ? number(*latency) : QString());
        if (o.ack)
            f << boolText(o.ack->success) << guarded(o.ack->message)
              << QString::number(o.ack->errorCode);
        else
            f << QString() << QString() << QString();
        if (o.lateAck)
            f << isoAt(o, o.lateAckAt) << boolText(o.lateAck->success)
              << guarded(o.lateAck->message) << QString::number(o.lateAck->errorCode);
        else
            f << QString() << QString() << QString() << QString();
        f << (o.progressPercent >= 0 ? QString::number(o.progressPercent) : QString())
          << guarded(o.progressMessage);
        row(f);
    }
    return out;
}

QByteArray toJson(const QList<CommandOutcome> &records)
{
    QJsonArray array;
    for (const CommandOutcome &o : records) {
        const auto latency = latencyMs(o);
        QJsonObject late;
        if (o.lateAck) {
            late = jsonAck(*o.lateAck);
            late.insert(QStringLiteral("at"), jsonTime(isoAt(o, o.lateAckAt)));
            late.insert(QStringLiteral("late_by_ms"),
                        double(duration_cast<microseconds>(o.lateBy()).count()) / 1000.0);
        }
        const bool hasProgress = o.progressPercent >= 0 || !o.progressMessage.isEmpty();
        array.append(QJsonObject{
            {QStringLiteral("id"), jsonText(o.commandId)},
            {QStringLiteral("bot"), jsonText(o.botId)},
            {QStringLiteral("hub"), jsonText(o.hub)},
            {QStringLiteral("kind"), jsonText(o.kind)},
            {QStringLiteral("state"), stateToken(o.state)},
            {QStringLiteral("reason"), jsonText(o.reason)},
            {QStringLiteral("issuer"), jsonText(o.issuer)},
            {QStringLiteral("fan_out"), jsonText(o.fanOut)},
            {QStringLiteral("params"), jsonParams(o.params)},
            {QStringLiteral("timeout_ms"), qint64(o.timeout.count())},
            {QStringLiteral("registered_at"), jsonTime(isoUtc(o.registeredWallMs))},
            {QStringLiteral("sent_at"), jsonTime(isoAt(o, o.sentAt))},
            {QStringLiteral("finished_at"), jsonTime(isoAt(o, o.finishedAt))},
            {QStringLiteral("latency_ms"), latency ? QJsonValue(*latency) : QJsonValue()},
            {QStringLiteral("ack"), o.ack ? QJsonValue(jsonAck(*o.ack)) : QJsonValue()},
            {QStringLiteral("late_ack"), o.lateAck ? QJsonValue(late) : QJsonValue()},
            {QStringLiteral("progress"),
             hasProgress
                 ? QJsonValue(QJsonObject{
                       {QStringLiteral("percent"),
                        o.progressPercent >= 0 ? QJsonValue(o.progressPercent) : QJsonValue()},
                       {QStringLiteral("message"), jsonText(o.progressMessage)}})
                 : QJsonValue()},
        });
    }
    return QJsonDocument(array).toJson(QJsonDocument::Indented);
}

std::optional<ExportFormat> exportFormatOf(const QString &path)
{
    const QString suffix = QFileInfo(path).suffix().toLower();
    if (suffix == QLatin1String("csv"))
        return ExportFormat::Csv;
    if (suffix == QLatin1String("json"))
        return ExportFormat::Json;
    return std::nullopt;
}

bool writeExport(const QString &path, const QList<CommandOutcome> &records, ExportFormat format,
                 QString *error)
{
    QString ignored;
    QString &why = error ? *error : ignored;
    if (path.isEmpty()) {
        why = tr("No file name given.");
        return false;
    }
    const QByteArray data = format == ExportFormat::Csv ? toCsv(records) : toJson(records);
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly)) {
        why = tr("Cannot write %1: %2").arg(path, file.errorString());
        return false;
    }
    if (file.write(data) != data.size()) {
        why = tr("Cannot write %1: %2").arg(path, file.errorString());
        file.cancelWriting();
        return false;
    }
    if (!file.commit()) {
        why = tr("Cannot write %1: %2").arg(path, file.errorString());
        return false;
    }
    return true;
}

} // namespace opconsole
