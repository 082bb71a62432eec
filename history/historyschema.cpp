#include "historyschema.h"

#include <QSqlDatabase>
#include <QSqlError>
#include <QSqlQuery>
#include <QStringList>
#include <QVariant>

namespace opconsole::history {

namespace {

// Version 1. Times are wall-clock ms since the epoch (for display and search); the times of a
// command after its registration are µs offsets on the monotonic clock (exact durations).
const QStringList &version1()
{
    static const QStringList statements = {
        QStringLiteral("CREATE TABLE runs(run INTEGER PRIMARY KEY, started_ms INTEGER NOT NULL,"
                       " last_ms INTEGER NOT NULL, stopped_ms INTEGER, host TEXT, pid INTEGER)"),
        QStringLiteral(
            "CREATE TABLE commands(id INTEGER PRIMARY KEY, run INTEGER NOT NULL,"
            " change INTEGER NOT NULL, command_id TEXT NOT NULL, bot TEXT NOT NULL, kind TEXT,"
            " params TEXT, issuer TEXT, fan_out TEXT, state INTEGER NOT NULL, reason TEXT,"
            " registered_ms INTEGER NOT NULL, timeout_ms INTEGER, sent_us INTEGER,"
            " finished_us INTEGER, deadline_us INTEGER, session INTEGER,"
            " ack_success INTEGER, ack_message TEXT, ack_code INTEGER, ack_result BLOB,"
            " ack_received_ms INTEGER, ack_completed_ms INTEGER,"
            " late_us INTEGER, late_success INTEGER, late_message TEXT, late_code INTEGER,"
            " late_result BLOB, late_received_ms INTEGER, late_completed_ms INTEGER,"
            " progress_percent INTEGER, progress_message TEXT)"),
        QStringLiteral("CREATE INDEX commands_time ON commands(registered_ms, id)"),
        QStringLiteral("CREATE INDEX commands_bot ON commands(bot, registered_ms, id)"),
        QStringLiteral("CREATE TABLE progress(id INTEGER PRIMARY KEY, command INTEGER NOT NULL,"
                       " at_ms INTEGER NOT NULL, percent INTEGER, message TEXT)"),
        QStringLiteral("CREATE INDEX progress_command ON progress(command)"),
        QStringLiteral("CREATE TABLE fleet(id INTEGER PRIMARY KEY, run INTEGER NOT NULL,"
                       " at_ms INTEGER NOT NULL, bot TEXT NOT NULL, event TEXT NOT NULL,"
                       " detail TEXT)"),
        QStringLiteral("CREATE INDEX fleet_bot ON fleet(bot, at_ms)"),
        QStringLiteral("CREATE INDEX fleet_time ON fleet(at_ms)"),
    };
    return statements;
}

// Version 2: retention deletes progress by its time, oldest first, through an index (without
// it, each step scanned the whole table).
const QStringList &version2()
{
    static const QStringList statements = {
        QStringLiteral("CREATE INDEX progress_time ON progress(at_ms)"),
    };
    return statements;
}

bool run(QSqlDatabase &db, const QString &sql, QString *error)
{
    QSqlQuery q(db);
    if (q.exec(sql))
        return true;
    *error = QStringLiteral("%1 (in: %2)").arg(q.lastError().text(), sql.left(80));
    return false;
}

} // namespace

bool migrate(QSqlDatabase &db, QString *error)
{
    QSqlQuery q(db);
    if (!q.exec(QStringLiteral("PRAGMA user_version")) || !q.next()) {
        *error = QStringLiteral("cannot read the schema version: %1").arg(q.lastError().text());
        return false;
    }
    const int version = q.value(0).toInt();
    q.finish();
    if (version > LatestVersion) {
        *error = QStringLiteral("the history database has schema version %1, newer than this "
                                "opconsole understands (%2): use a newer opconsole or another "
                                "--data-dir")
                     .arg(version)
                     .arg(LatestVersion);
        return false;
    }
    const QList<const QStringList *> migrations = {&version1(), &version2()};
    for (int v = version; v < LatestVersion; ++v) {
        if (!run(db, QStringLiteral("BEGIN IMMEDIATE"), error))
            return false;
        bool ok = true;
        for (const QString &sql : *migrations[v])
            ok = ok && run(db, sql, error);
        ok = ok && run(db, QStringLiteral("PRAGMA user_version = %1").arg(v + 1), error);
        if (!ok) {
            QString ignored;
            run(db, QStringLiteral("ROLLBACK"), &ignored);
            *error =
                QStringLiteral("migration to schema version %1 failed: %2").arg(v + 1).arg(*error);
            return false;
        }
        if (!run(db, QStringLiteral("COMMIT"), error))
            return false;
    }
    return true;
}

} // namespace opconsole::history
