#include "historymodel.h"

#include "commandtablemodel.h"

#include <QDateTime>

#include <algorithm>

namespace opconsole {

using namespace std::chrono;

namespace {

// Longest text shown in a cell (a cell shows a line; the tooltip and details have more).
constexpr int MaxCellText = 300;
constexpr int MaxTooltipText = 2000;

QString cut(const QString &s, int max)
{
    if (s.size() <= max)
        return s;
    // Not inside a surrogate pair.
    int n = max;
    if (n > 0 && s.at(n - 1).isHighSurrogate())
        --n;
    return s.left(n) + QStringLiteral("…");
}

} // namespace

HistoryModel::HistoryModel(QObject *parent) : QAbstractTableModel(parent)
{
    for (int k = 0; k < int(StateIconKind::Count); ++k)
        m_icons[k] = consoleIcon(StateIconKind(k));
}

int HistoryModel::rowCount(const QModelIndex &parent) const
{
    return parent.isValid() ? 0 : int(m_rows.size());
}

int HistoryModel::columnCount(const QModelIndex &parent) const
{
    return parent.isValid() ? 0 : ColumnCount;
}

void HistoryModel::fill(Row &row)
{
    const CommandOutcome &o = row.rec;
    row.state = CommandTableModel::stateText(o);
    const QDateTime registered = QDateTime::fromMSecsSinceEpoch(o.registeredWallMs);
    row.registered = registered.isValid()
                         ? registered.toString(QStringLiteral("yyyy-MM-dd HH:mm:ss.zzz"))
                         : QString();
    row.latency = CommandTableModel::latencyText(o);
    row.message = cut(CommandTableModel::messageText(o), MaxCellText);
    row.params = cut(o.params, MaxCellText);
}

QVariant HistoryModel::data(const QModelIndex &index, int role) const
{
    if (!index.isValid() || index.row() >= int(m_rows.size()))
        return {};
    const Row &row = m_rows[size_t(index.row())];
    const CommandOutcome &o = row.rec;
    switch (role) {
    case Qt::DisplayRole:
        switch (index.column()) {
        case State:
            return row.state;
        case Id:
            return o.commandId;
        case Bot:
            return o.botId;
        case Kind:
            return o.kind;
        case Issuer:
            return o.issuer;
        case Registered:
            return row.registered;
        case Latency:
            return row.latency;
        case Message:
            return row.message;
        case FanOut:
            return o.fanOut;
        case Params:
            return row.params;
        case Hub:
            return o.hub;
        }
        return {};
    case Qt::ToolTipRole:
        switch (index.column()) {
        case Message:
            return cut(CommandTableModel::messageText(o), MaxTooltipText);
        case Params:
            return cut(o.params, MaxTooltipText);
        case Id:
            return o.commandId;
        default:
            return {};
        }
    case Qt::DecorationRole:
        return index.column() == State ? m_icons[int(iconKindOf(o))] : QVariant();
    case Qt::ForegroundRole:
        if (index.column() != State && index.column() != Message)
            return {};
        return CommandTableModel::stateForeground(o);
    case RecordRole:
        return QVariant::fromValue(o);
    case StateRole:
        return int(o.state);
    case CommandIdRole:
        return o.commandId;
    case SortRole:
        switch (index.column()) {
        case Registered:
            return o.registeredWallMs;
        case Latency:
            return qint64(o.answeredIn().value_or(nanoseconds(-1)).count());
        default:
            return data(index, Qt::DisplayRole);
        }
    }
    return {};
}

QVariant HistoryModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation != Qt::Horizontal || role != Qt::DisplayRole)
        return {};
    static const char *names[] = {"State",     "Id",         "Bot",     "Command",
                                  "Issued by", "Registered", "Latency", "Message",
                                  "Fan-out",   "Params",     "Hub"};
    return section >= 0 && section < ColumnCount ? tr(names[section]) : QVariant();
}

void HistoryModel::clear()
{
    beginResetModel();
    m_rows.clear();
    m_full = false;
    endResetModel();
}

int HistoryModel::append(const QList<CommandOutcome> &records)
{
    const int room = std::max(0, m_maxRows - int(m_rows.size()));
    const int take = std::min(room, int(records.size()));
    if (take < records.size())
        m_full = true;
    if (take == 0)
        return 0;
    const int first = int(m_rows.size());
    beginInsertRows({}, first, first + take - 1);
    for (int i = 0; i < take; ++i) {
        Row row;
        row.rec = records[i];
        fill(row);
        m_rows.push_back(std::move(row));
    }
    endInsertRows();
    return take;
}

void HistoryModel::setMaxRows(int rows)
{
    m_maxRows = std::max(1, rows);
}

const CommandOutcome *HistoryModel::record(int row) const
{
    return row >= 0 && row < int(m_rows.size()) ? &m_rows[size_t(row)].rec : nullptr;
}

} // namespace opconsole
