#pragma once

#include "commandoutcome.h"
#include "fanouts.h"

#include <QAbstractListModel>
#include <QHash>

#include <deque>

namespace opconsole {

// One row per fan-out (one send to many bots), newest first, tallied from the change feed:
// "restart → 50 bots at 14:02:11: 48/50 acked, 1 rejected, 1 expired (late ack)". Rows are
// found by fan-out id on every change, never by a pointer kept across events, so a row that
// was dropped (past the cap) simply stops being updated. Fan-outs sent from opctl or another
// console appear too: the feed carries every command's fan-out id.
class FanOutModel final : public QAbstractListModel
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(FanOutModel)

public:
    enum Role
    {
        FanOutIdRole = Qt::UserRole + 1,
        DoneRole, // bool: nothing pending any more
    };
    static constexpr int DefaultMaxRows = 50;

    explicit FanOutModel(QObject *parent = nullptr);

    int rowCount(const QModelIndex &parent = {}) const override;
    QVariant data(const QModelIndex &index, int role = Qt::DisplayRole) const override;

    void applyChanges(const QList<CommandOutcome> &records);
    void setMaxRows(int rows);
    int rowOf(const QString &fanOutId) const;
    const FanOutSummary *tally(const QString &fanOutId) const;
    static QString title(const FanOutSummary &s);
    // A staged rollout this window started: its row says how many of `bots` its waves have
    // reached ("restart → 20 of 100 bots, rollout in 5 waves"), so a row between waves does
    // not read as a finished fan-out. Kept for the newest rollouts only.
    void setRollout(const QString &fanOutId, int bots, int waves);

private:
    void rebuildRows();
    FanOutTracker m_tracker;
    QStringList m_rows; // ids shown, newest first
    int m_maxRows = DefaultMaxRows;
    struct Rollout
    {
        int bots = 0;
        int waves = 0;
    };
    QHash<QString, Rollout> m_rollouts;
    std::deque<QString> m_rolloutOrder; // oldest first
};

} // namespace opconsole
