#pragma once

#include "commandoutcome.h"

#include <QString>

class QSqlQuery;
struct sqlite3_stmt;

namespace opconsole::history {

// The columns of a command row, in the order readCommand() expects.
QString commandColumns();
// INSERT ... ON CONFLICT DO UPDATE of one command row; bindCommand() fills its parameters.
QString upsertCommandSql();
// Binds straight into SQLite's statement (the writer's hot path: QSqlQuery's QVariant binding
// cost more than the insert itself). Texts are bound without a copy: `rec` must outlive the
// step.
void bindCommand(sqlite3_stmt *stmt, qint64 key, const CommandOutcome &rec);

// A row selected with commandColumns(), as a record on this process's clocks: wall-clock times
// are kept, monotonic times are placed so that durations are exact. A state value this build
// does not know (a damaged file) reads as Unknown.
CommandOutcome readCommand(const QSqlQuery &q, Clock::time_point nowSteady, qint64 nowWallMs);

// Page tokens: the (registered_ms, id) of the last command a page looked at.
QString encodeToken(qint64 registeredMs, qint64 id);
bool decodeToken(const QString &token, qint64 *registeredMs, qint64 *id);

} // namespace opconsole::history
