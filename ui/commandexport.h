#pragma once
// File > Export: command records as CSV or JSON. Pure functions of the records (in the order
// given: the view's), and a writer that replaces the file whole or not at all.

#include "commandoutcome.h"

#include <QByteArray>
#include <QList>
#include <QString>
#include <QStringList>

#include <optional>

namespace opconsole {

enum class ExportFormat
{
    Csv,
    Json
};

// The columns of the CSV, in order; each is also a key of the JSON objects (flattened there
// into "ack", "late_ack" and "progress" objects).
QStringList csvColumns();

// RFC 4180 CSV in UTF-8 (no byte order mark): a header row (csvColumns()), then one row per
// record; CRLF line ends. A field is quoted when it holds a comma, a double quote, CR or LF,
// and its double quotes are doubled.
// Formula injection: a text field (anything that came from a bot, an operator or a script: ids,
// kind, reason, issuer, params, messages...) that starts with '=', '+', '-', '@', a tab or CR
// gets a leading apostrophe ("=1+1" is written '=1+1), so that a spreadsheet shows it as text
// instead of evaluating it. The numbers and times the console writes itself are left as they
// are. The columns opctl history --csv also writes have the same names here, and states are
// named as opctl names them: "acked", "not-connected", "unknown".
QByteArray toCsv(const QList<CommandOutcome> &records);

// A JSON array (UTF-8, indented) of one object per record. Every object has the same keys;
// a value that is absent is null:
//   id, bot, hub, kind, state, reason, issuer, fan_out (strings, "" when empty),
//   params (the parsed JSON when it parses, else the string; null when empty),
//   timeout_ms, latency_ms (how long the bot took to answer, in time or late; null if it never
//   answered), registered_at, sent_at, finished_at (ISO 8601 UTC with milliseconds),
//   ack {success, message, code}, late_ack {at, late_by_ms, success, message, code},
//   progress {percent, message} (the last one; null when none).
// No formula guard here: JSON is read by programs, which get the values as they are.
QByteArray toJson(const QList<CommandOutcome> &records);

// ".csv" → Csv, ".json" → Json (any case); anything else: none (the caller asks the dialog's
// filter).
std::optional<ExportFormat> exportFormatOf(const QString &path);

// Writes the records through a QSaveFile: the file is replaced whole or not at all. False, with
// *error saying why (in words for a message box), when it cannot be written.
bool writeExport(const QString &path, const QList<CommandOutcome> &records, ExportFormat format,
                 QString *error);

} // namespace opconsole
