#include "fleetmodel.h"

#include <QBrush>
#include <QColor>
#include <QDateTime>

namespace opconsole {

FleetModel::FleetModel(std::function<int(const QString &)> pendingOf, QObject *parent)
    : QAbstractTableModel(parent), m_pendingOf(std::move(pendingOf))
{}

int FleetModel::rowCount(const QModelIndex &parent) const
{
    return parent.isValid() ? 0 : int(m_rows.size());
}

int FleetModel::columnCount(const QModelIndex &parent) const
{
    return parent.isValid() ? 0 : ColumnCount;
}

void FleetModel::fill(Row &row)
{
    QStringList labels;
    for (auto it = row.info.labels.cbegin(); it != row.info.labels.cend(); ++it)
        labels << it.key() + QLatin1Char('=') + it.value();
    row.labels = labels.join(QStringLiteral(", "));
    row.connection = row.info.connected
                         ? tr("connected")
                         : tr("disconnected since %1")
                               .arg(QDateTime::fromMSecsSinceEpoch(row.info.disconnectedAtMs)
                                        .toString(QStringLiteral("HH:mm:ss")));
    row.inFlight = m_pendingOf ? m_pendingOf(row.info.botId) : 0;
}

QVariant FleetModel::data(const QModelIndex &index, int role) const
{
    if (!index.isValid() || index.row() >= int(m_rows.size()))
        return {};
    const Row &row = m_rows[index.row()];
    switch (role) {
    case Qt::DisplayRole:
        switch (index.column()) {
        case Bot:
            return row.info.botId;
        case Labels:
            return row.labels;
        case Hub:
            return row.info.hub;
        case State:
            return row.info.state.isEmpty() ? QStringLiteral("–") : row.info.state;
        case Connection:
            return row.connection;
        case Heartbeat:
            if (!row.info.connected || row.info.lastSeenMs == 0)
                return {};
            return double(QDateTime::currentMSecsSinceEpoch() - row.info.lastSeenMs) / 1000.0;
        case InFlight:
            return row.inFlight;
        case LastLatency:
            return row.lastLatency;
        }
        return {};
    case Qt::ForegroundRole:
        if (index.column() == Connection && !row.info.connected)
            return QBrush(QColor(0xc0, 0x1c, 0x28));
        return {};
    case Qt::ToolTipRole:
        if (index.column() == Connection && !row.info.connected)
            return row.info.disconnectReason;
        if (index.column() == Bot)
            return tr("%1 (version %2, %3 connection(s) this run)")
                .arg(row.info.botId, row.info.botVersion)
                .arg(row.info.connects);
        return {};
    case BotIdRole:
        return row.info.botId;
    case ConnectedRole:
        return row.info.connected;
    case SortRole:
        if (index.column() == Heartbeat)
            return row.info.lastSeenMs;
        if (index.column() == Bot) // bot-2 before bot-10
            return QStringLiteral("%1%2")
                .arg(row.info.botId.size(), 4, 10, QLatin1Char('0'))
                .arg(row.info.botId);
        return data(index, Qt::DisplayRole);
    }
    return {};
}

QVariant FleetModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation != Qt::Horizontal || role != Qt::DisplayRole)
        return {};
    static const char *names[] = {"Bot",       "Labels",    "State",        "Connection",
                                  "Heartbeat", "In flight", "Last latency", "Hub"};
    return section >= 0 && section < ColumnCount ? tr(names[section]) : QVariant();
}

void FleetModel::upsert(const BotInfo &info)
{
    const auto it = m_index.constFind(info.botId);
    if (it != m_index.cend()) {
        Row &row = m_rows[*it];
        row.info = info;
        fill(row);
        emit dataChanged(index(*it, 0), index(*it, ColumnCount - 1));
        return;
    }
    const int at = int(m_rows.size());
    beginInsertRows({}, at, at);
    Row row;
    row.info = info;
    fill(row);
    m_rows.append(row);
    m_index.insert(info.botId, at);
    endInsertRows();
}

void FleetModel::noteOutcomes(const QList<CommandOutcome> &records)
{
    for (const CommandOutcome &o : records) {
        if (!o.finished() || !o.ack)
            continue;
        const auto it = m_index.constFind(o.botId);
        if (it == m_index.cend())
            continue;
        m_rows[*it].lastLatency =
            QStringLiteral("%1 ms").arg(double(o.latency().count()) / 1e6, 0, 'f', 1);
        emit dataChanged(index(*it, LastLatency), index(*it, LastLatency));
    }
}

void FleetModel::refreshLive(const QList<BotInfo> &bots)
{
    for (const BotInfo &info : bots) {
        const auto it = m_index.constFind(info.botId);
        if (it == m_index.cend()) {
            upsert(info);
            continue;
        }
        Row &row = m_rows[*it];
        const bool changed = row.info.connected != info.connected || row.info.state != info.state ||
                             row.info.session != info.session;
        row.info = info;
        if (changed)
            fill(row);
        else
            row.inFlight = m_pendingOf ? m_pendingOf(info.botId) : 0;
    }
    if (!m_rows.isEmpty())
        emit dataChanged(index(0, State), index(int(m_rows.size()) - 1, InFlight));
}

int FleetModel::connectedCount() const
{
    return int(std::count_if(m_rows.cbegin(), m_rows.cend(),
                             [](const Row &r) { return r.info.connected; }));
}

} // namespace opconsole
