#include "historyrows.h"
#include "historyschema.h"

#include <QSqlQuery>
#include <QStringList>
#include <QVariant>

#include <sqlite3.h>

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

// Offset of t from registration in µs; none for an unset time point.
std::optional<qint64> offset(const CommandOutcome &rec, Clock::time_point t)
{
    if (t == Clock::time_point{})
        return std::nullopt;
    return qint64(duration_cast<microseconds>(t - rec.registeredAt).count());
}

// Positional binding into one statement, 1-based as SQLite counts.
class Binder
{
public:
    explicit Binder(sqlite3_stmt *stmt) : m_stmt(stmt) {}
    void integer(qint64 v) { sqlite3_bind_int64(m_stmt, m_i++, v); }
    void integer(const std::optional<qint64> &v)
    {
        if (v)
            integer(*v);
        else
            null();
    }
    void null() { sqlite3_bind_null(m_stmt, m_i++); }
    // Null strings stay NULL; others as UTF-16, no copy.
    void text(const QString &s)
    {
        if (s.isNull())
            null();
        else
            sqlite3_bind_text16(m_stmt, m_i++, s.utf16(), int(s.size() * 2), SQLITE_STATIC);
    }
    void blob(const QByteArray &b)
    {
        if (b.isEmpty())
            null();
        else
            sqlite3_bind_blob(m_stmt, m_i++, b.constData(), int(b.size()), SQLITE_STATIC);
    }
    void ack(const std::optional<CommandAckData> &ack)
    {
        if (!ack) {
            for (int n = 0; n < 6; ++n)
                null();
            return;
        }
        integer(ack->success ? 1 : 0);
        text(ack->message.isNull() ? QStringLiteral("") : ack->message);
        integer(ack->errorCode);
        blob(ack->result);
        integer(ack->botReceivedAtMs ? std::optional<qint64>(ack->botReceivedAtMs) : std::nullopt);
        integer(ack->botCompletedAtMs ? std::optional<qint64>(ack->botCompletedAtMs)
                                      : std::nullopt);
    }

private:
    sqlite3_stmt *m_stmt;
    int m_i = 1;
};

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
        // What a command's later transitions change; its identity, labels and indexed columns
        // never do, so an update touches no index.
        static const QStringList fixed = {QStringLiteral("id"),
                                          QStringLiteral("run"),
                                          QStringLiteral("registered_ms"),
                                          QStringLiteral("bot"),
                                          QStringLiteral("command_id"),
                                          QStringLiteral("kind"),
                                          QStringLiteral("params"),
                                          QStringLiteral("issuer"),
                                          QStringLiteral("fan_out"),
                                          QStringLiteral("timeout_ms")};
        if (!fixed.contains(c))
            updates << QStringLiteral("%1 = excluded.%1").arg(c);
    }
    return QStringLiteral("INSERT INTO commands(%1) VALUES(%2) ON CONFLICT(id) DO UPDATE SET %3")
        .arg(commandColumns(), marks.join(QLatin1Char(',')), updates.join(QStringLiteral(", ")));
}

void bindCommand(sqlite3_stmt *stmt, qint64 key, const CommandOutcome &rec)
{
    Binder b(stmt);
    b.integer(key);
    b.integer(key >> SequenceBits);
    b.integer(qint64(rec.change));
    b.text(rec.commandId);
    b.text(rec.botId);
    b.text(rec.kind);
    b.text(rec.params);
    b.text(rec.issuer);
    b.text(rec.fanOut);
    b.integer(int(rec.state));
    b.text(rec.reason);
    b.integer(rec.registeredWallMs);
    b.integer(qint64(rec.timeout.count()));
    b.integer(offset(rec, rec.sentAt));
    b.integer(offset(rec, rec.finishedAt));
    b.integer(offset(rec, rec.deadline));
    b.integer(qint64(rec.session));
    b.ack(rec.ack);
    b.integer(rec.lateAck ? offset(rec, rec.lateAckAt) : std::nullopt);
    b.ack(rec.lateAck);
    b.integer(rec.progressPercent);
    b.text(rec.progressMessage);
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
