#include "commandtablemodel.h"

#include "rowruns.h"

#include <QBrush>
#include <QDateTime>

namespace opconsole {

using namespace std::chrono;

namespace {

QString formatMs(double ms)
{
    if (ms < 1)
        return QStringLiteral("%1 µs").arg(ms * 1000, 0, 'f', 0);
    if (ms < 1000)
        return QStringLiteral("%1 ms").arg(ms, 0, 'f', ms < 10 ? 2 : 1);
    return QStringLiteral("%1 s").arg(ms / 1000, 0, 'f', 2);
}

double toMs(nanoseconds d)
{
    return double(d.count()) / 1e6;
}

} // namespace

CommandTableModel::CommandTableModel(QObject *parent) : QAbstractTableModel(parent)
{
    for (int k = 0; k < int(StateIconKind::Count); ++k)
        m_icons[k] = consoleIcon(StateIconKind(k));
}

int CommandTableModel::rowCount(const QModelIndex &parent) const
{
    return parent.isValid() ? 0 : int(m_rows.size());
}

int CommandTableModel::columnCount(const QModelIndex &parent) const
{
    return parent.isValid() ? 0 : ColumnCount;
}

QString CommandTableModel::shortId(const QString &id)
{
    return id.size() <= 14 ? id : QStringLiteral("…") + id.right(12);
}

QString CommandTableModel::stateText(const CommandOutcome &o)
{
    QString text = stateName(o.state);
    if (o.state == CommandState::Pending && o.progressPercent >= 0)
        text += QStringLiteral(" %1%").arg(o.progressPercent);
    // A late ack says which way it went: a late rejection is no late success.
    if (o.hasLateAck())
        text += (o.lateAck->success ? QStringLiteral(", late ack after %1 s")
                                    : QStringLiteral(", late rejection after %1 s"))
                    .arg(double(o.lateBy().count()) / 1e9, 0, 'f', 1);
    return text;
}

QString CommandTableModel::latencyText(const CommandOutcome &o)
{
    const auto answered = o.answeredIn();
    return !answered        ? QString()
           : o.hasLateAck() ? formatMs(toMs(*answered)) + QStringLiteral(" (late)")
                            : formatMs(toMs(*answered));
}

QString CommandTableModel::messageText(const CommandOutcome &o)
{
    if (o.hasLateAck())
        return o.lateAck->message;
    if (o.ack)
        return o.ack->message;
    if (o.state == CommandState::Pending)
        return o.progressMessage;
    return o.reason;
}

QVariant CommandTableModel::stateForeground(const CommandOutcome &o)
{
    // Colour marks only what needs a look; text and icon say it too.
    if (o.hasLateAck())
        return QBrush(toneColour(Tone::Attention));
    switch (o.state) {
    case CommandState::Rejected:
    case CommandState::Expired:
    case CommandState::Disconnected:
    case CommandState::NotConnected:
    case CommandState::Refused:
    case CommandState::Unknown:
        return QBrush(toneColour(Tone::Problem));
    default:
        return {};
    }
}

void CommandTableModel::fill(Row &row)
{
    const CommandOutcome &o = row.rec;
    row.shortId = shortId(o.commandId);
    row.state = stateText(o);
    row.sentAt = o.wasSent() ? QDateTime::fromMSecsSinceEpoch(o.wallMs(o.sentAt))
                                   .toString(QStringLiteral("HH:mm:ss.zzz"))
                             : QString();
    row.latency = latencyText(o);
    row.message = messageText(o);
    row.tooltip = o.commandId;
}

QVariant CommandTableModel::data(const QModelIndex &index, int role) const
{
    if (!index.isValid() || index.row() >= int(m_rows.size()))
        return {};
    const Row &row = m_rows[size_t(index.row())];
    const CommandOutcome &o = row.rec;
    switch (role) {
    case Qt::DisplayRole:
        switch (index.column()) {
        case Id:
            return row.shortId;
        case Bot:
            return o.botId;
        case Command:
            return o.kind;
        case State:
            return row.state;
        case SentAt:
            return row.sentAt;
        case Remaining:
            // Seconds as a number; the view formats it (a live countdown while pending).
            if (o.state != CommandState::Pending)
                return {};
            return std::max(0.0,
                            double(duration_cast<milliseconds>(o.deadline - Clock::now()).count()) /
                                1000.0);
        case Latency:
            return row.latency;
        case Message:
            return row.message;
        case Hub:
            return o.hub;
        case IssuedBy:
            return o.issuer;
        }
        return {};
    case Qt::ToolTipRole:
        return index.column() == Id ? row.tooltip : QVariant();
    case Qt::DecorationRole:
        return index.column() == State ? m_icons[int(iconKindOf(o))] : QVariant();
    case Qt::ForegroundRole:
        if (index.column() != State && index.column() != Message)
            return {};
        return stateForeground(o);
    case RecordRole:
        return QVariant::fromValue(o);
    case StateRole:
        return int(o.state);
    case CommandIdRole:
        return o.commandId;
    case FanOutRole:
        return o.fanOut;
    case SortRole:
        switch (index.column()) {
        case Id:
            return o.sequence;
        case SentAt:
            return qint64(o.sentAt.time_since_epoch().count());
        case Remaining:
            return qint64(o.deadline.time_since_epoch().count());
        case Latency:
            return qint64(o.answeredIn().value_or(nanoseconds(-1)).count());
        default:
            return data(index, Qt::DisplayRole);
        }
    }
    return {};
}

QVariant CommandTableModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation != Qt::Horizontal || role != Qt::DisplayRole)
        return {};
    static const char *names[] = {"Id",        "Bot",     "Command", "State", "Sent at",
                                  "Remaining", "Latency", "Message", "Hub",   "Issued by"};
    return section >= 0 && section < ColumnCount ? tr(names[section]) : QVariant();
}

void CommandTableModel::applyChanges(const QList<CommandOutcome> &records)
{
    std::vector<const CommandOutcome *> added;
    std::vector<int> changed;
    QHash<QString, int> newInBatch; // a record may appear several times in one batch
    for (const CommandOutcome &o : records) {
        const int row = rowOfSequence(o.sequence);
        if (row >= 0) {
            Row &r = m_rows[size_t(row)];
            r.rec = o;
            fill(r);
            changed.push_back(row);
        } else if (const auto pending = newInBatch.constFind(o.commandId);
                   pending != newInBatch.cend()) {
            added[size_t(*pending)] = &o;   // latest state wins
        } else if (o.sequence > m_newest) { // not one cleared or dropped by the cap
            newInBatch.insert(o.commandId, int(added.size()));
            added.push_back(&o);
        } // else: an update of a row dropped by the cap; it stays dropped
    }
    // Narrow: one dataChanged per run of adjacent rows, columns State..Message only (a wide
    // range would make a sorting proxy re-sort rows that did not change).
    std::sort(changed.begin(), changed.end());
    changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
    if (changed.size() > 512) {
        emit dataChanged(index(changed.front(), State), index(changed.back(), Message));
    } else {
        forEachRun(changed, [&](int top, int bottom) {
            emit dataChanged(index(top, State), index(bottom, Message));
        });
    }
    if (!added.empty()) {
        const int first = int(m_rows.size());
        beginInsertRows({}, first, first + int(added.size()) - 1);
        for (const CommandOutcome *o : added) {
            Row row;
            row.rec = *o;
            fill(row);
            m_index.insert(o->commandId, o->sequence);
            m_newest = std::max(m_newest, o->sequence);
            m_rows.push_back(std::move(row));
        }
        endInsertRows();
    }
    prune();
}

void CommandTableModel::prune()
{
    // Past the cap by 1%, drop the oldest finished rows (pending ones stay), in runs of
    // adjacent rows from the back so that row numbers stay valid while removing. Small,
    // frequent prunes keep each one short; rows are found by sequence, so nothing is
    // re-indexed.
    const int slack = std::max(100, m_maxRows / 100);
    if (int(m_rows.size()) <= m_maxRows + slack)
        return;
    const size_t excess = m_rows.size() - size_t(m_maxRows);
    // At most a few runs per call (each is one rowsRemoved for the proxy and the view to
    // digest); the next batch continues where this one stopped.
    constexpr int MaxRuns = 4;
    std::vector<int> drop;
    drop.reserve(excess);
    int runs = 0;
    for (size_t i = 0; i < m_rows.size() && drop.size() < excess; ++i) {
        if (!m_rows[i].rec.finished())
            continue;
        if (drop.empty() || drop.back() != int(i) - 1) {
            if (++runs > MaxRuns)
                break;
        }
        drop.push_back(int(i));
    }
    removeRuns(drop);
}

int CommandTableModel::removeFinished()
{
    std::vector<int> drop;
    for (size_t i = 0; i < m_rows.size(); ++i) {
        if (m_rows[i].rec.finished())
            drop.push_back(int(i));
    }
    // Many runs (finished rows between pending ones) are cheaper as one reset.
    int runs = 0;
    for (size_t i = 0; i < drop.size(); ++i)
        runs += i == 0 || drop[i - 1] != drop[i] - 1 ? 1 : 0;
    if (runs > 16) {
        beginResetModel();
        std::deque<Row> kept;
        for (Row &row : m_rows) {
            if (row.rec.finished())
                m_index.remove(row.rec.commandId);
            else
                kept.push_back(std::move(row));
        }
        m_rows = std::move(kept);
        endResetModel();
        return int(drop.size());
    }
    removeRuns(drop);
    return int(drop.size());
}

void CommandTableModel::removeRuns(const std::vector<int> &drop)
{
    // From the back, one rowsRemoved per run of adjacent rows, so that row numbers stay valid.
    for (size_t end = drop.size(); end > 0;) {
        size_t begin = end - 1;
        while (begin > 0 && drop[begin - 1] == drop[begin] - 1)
            --begin;
        const int first = drop[begin];
        const int last = drop[end - 1];
        beginRemoveRows({}, first, last);
        for (int r = first; r <= last; ++r)
            m_index.remove(m_rows[size_t(r)].rec.commandId);
        m_rows.erase(m_rows.begin() + first, m_rows.begin() + last + 1);
        endRemoveRows();
        end = begin;
    }
}

int CommandTableModel::rowOfSequence(quint64 sequence) const
{
    // Rows are in registration order: a binary search finds one in O(log n).
    const auto it = std::lower_bound(m_rows.begin(), m_rows.end(), sequence,
                                     [](const Row &r, quint64 s) { return r.rec.sequence < s; });
    return it != m_rows.end() && it->rec.sequence == sequence ? int(it - m_rows.begin()) : -1;
}

void CommandTableModel::setMaxRows(int rows)
{
    m_maxRows = std::max(100, rows);
    prune();
}

int CommandTableModel::rowOf(const QString &commandId) const
{
    const auto it = m_index.constFind(commandId);
    return it == m_index.cend() ? -1 : rowOfSequence(*it);
}

const CommandOutcome *CommandTableModel::record(int row) const
{
    return row >= 0 && row < int(m_rows.size()) ? &m_rows[size_t(row)].rec : nullptr;
}

} // namespace opconsole
