#pragma once

#include <QString>

class QSqlDatabase;

namespace opconsole::history {

// The database layout, versioned with PRAGMA user_version. Each version adds one migration;
// opening runs those the file has not had yet, in one transaction each, so a later opconsole
// opens an older database. A file newer than this build is refused, never changed.
//
// Layout (version 1):
//   runs(run, started_ms, last_ms, stopped_ms, host, pid)  one row per hub or console run
//   commands(id, ...)  one row per command, its latest state; id = run << 40 | sequence
//   progress(id, command, at_ms, percent, message)        progress steps (dropped first)
//   fleet(id, run, at_ms, bot, event, detail)             bots connecting and leaving
// Version 2: an index on progress(at_ms) for retention.
constexpr int LatestVersion = 2;
constexpr int SequenceBits = 40;

// The row id of a command: its run and its registry sequence.
inline qint64 commandKey(qint64 run, quint64 sequence)
{
    return (run << SequenceBits) | qint64(sequence & ((quint64(1) << SequenceBits) - 1));
}

// Brings the schema to LatestVersion. False and *error when the file is newer than this
// build or a migration fails (it is rolled back).
bool migrate(QSqlDatabase &db, QString *error);

} // namespace opconsole::history
