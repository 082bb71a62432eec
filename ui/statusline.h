#pragma once

#include "commandoutcome.h"

#include <QElapsedTimer>
#include <QLabel>

#include <deque>
#include <utility>

namespace opconsole {

// Outcome counts from the change feed, each command counted once: a change is counted
// against the record as it was before it, so a record seen again counts nothing.
class OutcomeCounts
{
public:
    // `before` is the command's previous record, null when it was not seen before.
    void note(const CommandOutcome *before, const CommandOutcome &after);

    qint64 pending() const { return m_pending; }
    qint64 acked() const { return m_acked; }
    qint64 rejected() const { return m_rejected; }
    qint64 expired() const { return m_expired; }
    qint64 lateAcks() const { return m_lateAcks; }
    qint64 cancelled() const { return m_cancelled; }
    // Never reached their bot or lost it: not connected, disconnected, refused, unknown.
    qint64 failed() const { return m_finished - m_acked - m_rejected - m_expired - m_cancelled; }
    qint64 finished() const { return m_finished; } // every final state, for the rate

private:
    qint64 m_pending = 0, m_acked = 0, m_rejected = 0, m_expired = 0, m_lateAcks = 0,
           m_cancelled = 0, m_finished = 0;
};

// The status bar's line: bots connected, outcome counts, commands finished per second over
// the last 5 s, and the hub shown.
class StatusLine final : public QLabel
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(StatusLine)

public:
    explicit StatusLine(QWidget *parent = nullptr);

    OutcomeCounts &counts() { return m_counts; }
    const OutcomeCounts &counts() const { return m_counts; }
    // The hub in this process ("hub X") or the hubs attached to ("attached to X").
    void setHub(const QString &address, bool remote);
    // Who the hubs take the console for, after the hub ("as alice (admin)"); empty: not shown.
    void setIdentity(const QString &text) { m_identity = text; }
    // Bots awaiting an admin's approval: said after the connected count when there are any.
    void setAwaiting(int bots) { m_awaiting = bots; }
    // Takes a rate sample and rewrites the line; meant to be called about once a second.
    void refresh(int connectedBots, int bots) { refreshAt(m_clock.elapsed(), connectedBots, bots); }
    // The same at `nowMs` on the line's own clock (ms since it was made), for tests.
    void refreshAt(qint64 nowMs, int connectedBots, int bots);

private:
    OutcomeCounts m_counts;
    QString m_where;
    QString m_identity;
    int m_awaiting = 0;
    std::deque<std::pair<qint64, quint64>> m_rateWindow; // (ms, finished count) samples
    QElapsedTimer m_clock;
};

} // namespace opconsole
