#include "historyrows.h"
#include "historyschema.h"

#include <QSqlQuery>
#include <QStringList>
#include <QVariant>

#include <algorithm>

namespace opconsole::history {

using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::milliseconds;

namespace {

const QStringList &columns()
{
    static const QStringList names = {
        QStringLiteral("id"),
        QStringLiteral("run"),
        QStringLiteral("change"),
        QStringLiteral("command_id"),
        QStringLiteral("bot"),
        QStringLiteral("kind"),
        QStringLiteral("params"),
        QStringLiteral("issuer"),
        QStringLiteral("fan_out"),
        QStringLiteral("state"),
        QStringLiteral("reason"),
        QStringLiteral("registered_ms"),
        QStringLiteral("timeout_ms"),
        QStringLiteral("sent_us"),
        QStringLiteral("finished_us"),
        QStringLiteral("deadline_us"),
        QStringLiteral("session"),
        QStringLiteral("ack_success"),
        QStringLiteral("ack_message"),
        QStringLiteral("ack_code"),
        QStringLiteral("ack_result"),
        QStringLiteral("ack_received_ms"),
        QStringLiteral("ack_completed_ms"),
        QStringLiteral("late_us"),
        QStringLiteral("late_success"),
        QStringLiteral("late_message"),
        QStringLiteral("late_code"),
        QStringLiteral("late_result"),
        QStringLiteral("late_received_ms"),
        QStringLiteral("late_completed_ms"),
        QStringLiteral("progress_percent"),
        QStringLiteral("progress_message"),
    };
    return names;
}

// Offset of t from registration in µs; NULL for an unset time point.
QVariant offset(const CommandOutcome &rec, Clock::time_point t)
{
    if (t == Clock::time_point{})
        return QVariant(QMetaType::fromType<qint64>());
    return qint64(duration_cast<microseconds>(t - rec.registeredAt).count());
}

QVariant text(const QString &s)
{
    return s.isNull() ? QVariant(QMetaType::fromType<QString>()) : QVariant(s);
}

void bindAck(QSqlQuery &q, int &i, const std::optional<CommandAckData> &ack)
{
    const QVariant none(QMetaType::fromType<qint64>());
    if (!ack) {
        for (int n = 0; n < 6; ++n)
            q.bindValue(i++, none);
        return;
    }
    q.bindValue(i++, int(ack->success));
    q.bindValue(i++, ack->message);
    q.bindValue(i++, ack->errorCode);
    q.bindValue(i++, ack->result.isEmpty() ? QVariant(QMetaType::fromType<QByteArray>())
                                           : QVariant(ack->result));
    q.bindValue(i++, ack->botReceivedAtMs ? QVariant(ack->botReceivedAtMs) : none);
    q.bindValue(i++, ack->botCompletedAtMs ? QVariant(ack->botCompletedAtMs) : none);
}

std::optional<CommandAckData> readAck(const QSqlQuery &q, int i)
{
    if (q.value(i).isNull())
        return std::nullopt;
    CommandAckData ack;
    ack.success = q.value(i).toInt() != 0;
    ack.message = q.value(i + 1).toString();
    ack.errorCode = q.value(i + 2).toInt();
    ack.result = q.value(i + 3).toByteArray();
    ack.botReceivedAtMs = q.value(i + 4).toLongLong();
    ack.botCompletedAtMs = q.value(i + 5).toLongLong();
    return ack;
}

Clock::time_point at(const CommandOutcome &rec, const QVariant &us)
{
    if (us.isNull())
        return {};
    // A damaged row must not overflow the clock: offsets are kept within ±400 days.
    constexpr qint64 Bound = 400LL * 24 * 3600 * 1'000'000;
    return rec.registeredAt + microseconds(std::clamp(us.toLongLong(), -Bound, Bound));
}

} // namespace

QString commandColumns()
{
    return columns().join(QStringLiteral(", "));
}

QString upsertCommandSql()
{
    QStringList marks, updates;
    for (const QString &c : columns()) {
        marks << QStringLiteral("?");
        if (c != QLatin1String("id") && c != QLatin1String("run") &&
            c != QLatin1String("registered_ms"))
            updates << QStringLiteral("%1 = excluded.%1").arg(c);
    }
    return QStringLiteral("INSERT INTO commands(%1) VALUES(%2) ON CONFLICT(id) DO UPDATE SET %3")
        .arg(commandColumns(), marks.join(QLatin1Char(',')), updates.join(QStringLiteral(", ")));
}

void bindCommand(QSqlQuery &q, qint64 key, const CommandOutcome &rec)
{
    int i = 0;
    q.bindValue(i++, key);
    q.bindValue(i++, key >> SequenceBits);
    q.bindValue(i++, qint64(rec.change));
    q.bindValue(i++, rec.commandId);
    q.bindValue(i++, rec.botId);
    q.bindValue(i++, text(rec.kind));
    q.bindValue(i++, text(rec.params));
    q.bindValue(i++, text(rec.issuer));
    q.bindValue(i++, text(rec.fanOut));
    q.bindValue(i++, int(rec.state));
    q.bindValue(i++, text(rec.reason));
    q.bindValue(i++, rec.registeredWallMs);
    q.bindValue(i++, qint64(rec.timeout.count()));
    q.bindValue(i++, offset(rec, rec.sentAt));
    q.bindValue(i++, offset(rec, rec.finishedAt));
    q.bindValue(i++, offset(rec, rec.deadline));
    q.bindValue(i++, qint64(rec.session));
    bindAck(q, i, rec.ack);
    q.bindValue(i++, offset(rec, rec.lateAckAt));
    bindAck(q, i, rec.lateAck);
    q.bindValue(i++, rec.progressPercent);
    q.bindValue(i++, text(rec.progressMessage));
}

CommandOutcome readCommand(const QSqlQuery &q, Clock::time_point nowSteady, qint64 nowWallMs)
{
    CommandOutcome rec;
    rec.historyId = quint64(q.value(0).toLongLong());
    rec.change = quint64(q.value(2).toLongLong());
    rec.commandId = q.value(3).toString();
    rec.botId = q.value(4).toString();
    rec.kind = q.value(5).toString();
    rec.params = q.value(6).toString();
    rec.issuer = q.value(7).toString();
    rec.fanOut = q.value(8).toString();
    const int state = q.value(9).toInt();
    rec.state =
        state >= 0 && state < CommandStateCount ? CommandState(state) : CommandState::Unknown;
    rec.reason = q.value(10).toString();
    rec.registeredWallMs = q.value(11).toLongLong();
    rec.timeout = milliseconds(std::max<qint64>(0, q.value(12).toLongLong()));
    // Registration placed on this process's monotonic clock by its age on the wall clock.
    constexpr qint64 MaxAgeMs = 100LL * 365 * 24 * 3600 * 1000;
    const qint64 ageMs = std::clamp(nowWallMs - rec.registeredWallMs, -MaxAgeMs, MaxAgeMs);
    rec.registeredAt = nowSteady - milliseconds(ageMs);
    rec.sentAt = at(rec, q.value(13));
    rec.finishedAt = at(rec, q.value(14));
    rec.deadline = at(rec, q.value(15));
    rec.session = quint64(q.value(16).toLongLong());
    rec.ack = readAck(q, 17);
    rec.lateAckAt = at(rec, q.value(23));
    rec.lateAck = readAck(q, 24);
    if (!rec.lateAck)
        rec.lateAckAt = {};
    rec.progressPercent = q.value(30).isNull() ? -1 : std::clamp(q.value(30).toInt(), -1, 100);
    rec.progressMessage = q.value(31).toString();
    rec.event = ChangeEvent::Restored;
    return rec;
}

QString encodeToken(qint64 registeredMs, qint64 id)
{
    return QStringLiteral("h1.%1.%2").arg(registeredMs).arg(id);
}

bool decodeToken(const QString &token, qint64 *registeredMs, qint64 *id)
{
    const QStringList parts = token.split(QLatin1Char('.'));
    if (token.size() > 64 || parts.size() != 3 || parts[0] != QLatin1String("h1"))
        return false;
    bool ok1 = false, ok2 = false;
    *registeredMs = parts[1].toLongLong(&ok1);
    *id = parts[2].toLongLong(&ok2);
    return ok1 && ok2;
}

} // namespace opconsole::history
