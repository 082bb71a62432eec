#include "fanoutmodel.h"

#include <QDateTime>
#include <QSet>

namespace opconsole {

FanOutModel::FanOutModel(QObject *parent) : QAbstractListModel(parent), m_tracker(DefaultMaxRows) {}

int FanOutModel::rowCount(const QModelIndex &parent) const
{
    return parent.isValid() ? 0 : int(m_rows.size());
}

QString FanOutModel::title(const FanOutSummary &s)
{
    const QString at =
        s.startedWallMs > 0
            ? QDateTime::fromMSecsSinceEpoch(s.startedWallMs).toString(QStringLiteral("HH:mm:ss"))
            : QString();
    if (s.total == 1)
        return tr("%1 → 1 bot at %2").arg(s.kind, at);
    return tr("%1 → %2 bots at %3").arg(s.kind, QString::number(s.total), at);
}

QVariant FanOutModel::data(const QModelIndex &index, int role) const
{
    if (!index.isValid() || index.row() >= m_rows.size())
        return {};
    const QString &id = m_rows.at(index.row());
    const FanOutSummary *s = m_tracker.find(id);
    if (!s)
        return {};
    switch (role) {
    case Qt::DisplayRole:
        if (const auto r = m_rollouts.constFind(id); r != m_rollouts.cend() && s->total < r->bots)
            // One multi-argument arg(): the kind comes from a hub's records, and a "%2" in it
            // must not be filled by the next argument.
            return tr("%1 → %2 of %3 bots at %4, rollout in %5 waves: %6")
                .arg(s->kind, QString::number(s->total), QString::number(r->bots),
                     s->startedWallMs > 0 ? QDateTime::fromMSecsSinceEpoch(s->startedWallMs)
                                                .toString(QStringLiteral("HH:mm:ss"))
                                          : QString(),
                     QString::number(r->waves), s->text());
        return title(*s) + QStringLiteral(": ") + s->text();
    case Qt::ToolTipRole:
        return tr("Fan-out %1. Click to show its commands only.").arg(id);
    case FanOutIdRole:
        return id;
    case DoneRole:
        return s->done();
    default:
        return {};
    }
}

void FanOutModel::applyChanges(const QList<CommandOutcome> &records)
{
    QSet<QString> touched;
    for (const CommandOutcome &o : records) {
        const QString id = m_tracker.apply(o);
        if (!id.isEmpty())
            touched.insert(id);
    }
    if (touched.isEmpty())
        return;
    const QStringList ids = m_tracker.ids();
    if (ids != m_rows) {
        rebuildRows(); // a fan-out came or went: few rows, a reset is cheap
        return;
    }
    for (const QString &id : touched) {
        const int row = rowOf(id);
        if (row >= 0)
            emit dataChanged(index(row), index(row));
    }
}

void FanOutModel::rebuildRows()
{
    beginResetModel();
    m_rows = m_tracker.ids();
    endResetModel();
}

void FanOutModel::setMaxRows(int rows)
{
    m_maxRows = std::max(1, rows);
    m_tracker = FanOutTracker(m_maxRows);
    rebuildRows();
}

void FanOutModel::setRollout(const QString &fanOutId, int bots, int waves)
{
    if (fanOutId.isEmpty() || m_rollouts.contains(fanOutId))
        return;
    m_rollouts.insert(fanOutId, {bots, waves});
    m_rolloutOrder.push_back(fanOutId);
    while (m_rolloutOrder.size() > size_t(2 * DefaultMaxRows)) {
        m_rollouts.remove(m_rolloutOrder.front());
        m_rolloutOrder.pop_front();
    }
    if (const int row = rowOf(fanOutId); row >= 0)
        emit dataChanged(index(row), index(row));
}

int FanOutModel::rowOf(const QString &fanOutId) const
{
    return int(m_rows.indexOf(fanOutId));
}

const FanOutSummary *FanOutModel::tally(const QString &fanOutId) const
{
    return m_tracker.find(fanOutId);
}

} // namespace opconsole
