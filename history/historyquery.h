#pragma once
// The plain types of a history search, shared by the store, the Operator API and the console
// (ui/ sees these, never the store).

#include "commandoutcome.h"

#include <QList>
#include <QMetaType>
#include <QString>

namespace opconsole {

// One search of the history, newest first. Empty fields do not filter.
struct HistoryQuery
{
    QString botId;  // exact
    QString kind;   // exact
    QString issuer; // exact
    QString fanOut; // exact
    QString text;   // case-insensitive substring of id, bot, reason, messages or params
    QList<CommandState> states;
    qint64 sinceMs = 0; // registered at or after (wall clock, ms since the epoch); 0: no bound
    qint64 untilMs = 0; // registered before; 0: no bound
    int pageSize = 100; // 1..MaxPageSize
    QString pageToken;  // from the previous page
    static constexpr int MaxPageSize = 1000;
    // A page looks at this many commands at most (in time order, after the bot and time
    // bounds): a sparse filter returns a short page with a token to go on, so a page always
    // costs O(page), never O(history).
    static constexpr int MaxExamined = 20'000;
};

struct HistoryPage
{
    QList<CommandOutcome> records; // newest first; times mapped onto this process's clock
    QString nextPageToken;         // empty on the last page
    // The query failed (bad token, database error); with several hubs, the records are those
    // of the hubs that answered.
    QString error;
    bool badToken = false; // the error is the caller's page token
    bool busy = false;     // the error is that too many searches wait: try again later
};

// A fleet event for the audit trail.
struct FleetEvent
{
    qint64 atMs = 0;
    QString botId;
    QString event;  // "connected", "disconnected", "state"
    QString detail; // the reason, the new state, the peer
};

struct HistoryStats
{
    QString path;
    qint64 fileBytes = 0;        // the database and its WAL on disk
    qint64 commands = 0;         // rows kept
    qint64 oldestMs = 0;         // registration time of the oldest kept, 0 when empty
    qint64 run = 0;              // this process's run number
    int unknownAtOpen = 0;       // commands left pending by earlier runs, now unknown
    quint64 written = 0;         // transitions written
    quint64 droppedProgress = 0; // progress events dropped because the writer fell behind
    quint64 retentionDeleted = 0;
    qint64 queuedBytes = 0;
    quint64 durableChange = 0;
    qint64 maxAgeMs = 0;
    qint64 maxBytes = 0;
    QString lastError;      // of the writer; empty when all is well
    qint64 writerCpuMs = 0; // CPU time of the writer thread so far
    quint64 lost = 0;       // transitions or fleet events dropped past the queue's hard cap (a disk
                            // that stopped taking writes) or not written at close
};

// One line for the status bar: "12,034 commands since 1 Nov 2026 · 35.2 MB of 1.0 GiB · kept
// 30 days", plus what went wrong, if anything.
QString summaryOf(const HistoryStats &stats);

} // namespace opconsole

Q_DECLARE_METATYPE(opconsole::HistoryPage)
