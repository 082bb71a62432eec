#include "fleetmodel.h"

#include "rowruns.h"
#include "theme.h"

#include <QApplication>
#include <QBrush>
#include <QColor>
#include <QDateTime>
#include <QSet>
#include <QStyle>

namespace opconsole {

namespace {

QString clock(qint64 ms)
{
    return QDateTime::fromMSecsSinceEpoch(ms).toString(QStringLiteral("HH:mm:ss"));
}

} // namespace

FleetModel::FleetModel(std::function<int(const QString &)> pendingOf, QObject *parent)
    : QAbstractTableModel(parent), m_pendingOf(std::move(pendingOf))
{
    m_awaitingIcon = consoleIcon(StateIconKind::AwaitingApproval);
    m_rejectedIcon = consoleIcon(StateIconKind::Rejected);
    m_disconnectedIcon = consoleIcon(StateIconKind::Disconnected);
}

bool FleetModel::isWaiting(const BotInfo &bot)
{
    // Held again after a stream that ended: seen since it left.
    return bot.admission == BotAdmission::Awaiting && !bot.connected &&
           (bot.disconnectedAtMs == 0 || bot.lastSeenMs > bot.disconnectedAtMs);
}

QString FleetModel::connectionText(const BotInfo &bot)
{
    switch (bot.admission) {
    case BotAdmission::Awaiting:
        return isWaiting(bot)
                   ? tr("awaiting approval")
                   : tr("awaiting approval, gone since %1").arg(clock(bot.disconnectedAtMs));
    case BotAdmission::Rejected:
        return bot.disconnectedAtMs > 0
                   ? tr("rejected, gone since %1").arg(clock(bot.disconnectedAtMs))
                   : tr("rejected");
    case BotAdmission::Accepted:
        break;
    }
    return bot.connected ? tr("connected")
                         : tr("disconnected since %1").arg(clock(bot.disconnectedAtMs));
}

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
    row.connection = connectionText(row.info);
    row.inFlight = m_pendingOf ? m_pendingOf(row.info.botId) : 0;
    row.botSortKey = QStringLiteral("%1%2")
                         .arg(row.info.botId.size(), 4, 10, QLatin1Char('0'))
                         .arg(row.info.botId);
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
        case Hub: // in a cluster, the hub that holds it (reached through the attached one)
            return row.info.holder.isEmpty() ? row.info.hub : row.info.holder;
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
        if (index.column() != Connection)
            return {};
        // From the application's palette when asked (theme.h), readable on its Base.
        if (row.info.admission == BotAdmission::Awaiting)
            return QBrush(toneColour(Tone::Attention)); // needs a look, not an alarm
        if (row.info.admission == BotAdmission::Rejected || !row.info.connected)
            return QBrush(toneColour(Tone::Problem));
        return {};
    case Qt::DecorationRole:
        if (index.column() != Connection)
            return {};
        if (row.info.admission == BotAdmission::Awaiting)
            return m_awaitingIcon;
        if (row.info.admission == BotAdmission::Rejected)
            return m_rejectedIcon;
        if (!row.info.connected)
            return m_disconnectedIcon; // as its colour says: never the colour alone
        return {};
    case Qt::ToolTipRole:
        if (index.column() == Connection) {
            const QString credential =
                row.info.credential.isEmpty() || row.info.credential == QLatin1String("none")
                    ? tr("no credential")
                    : row.info.credential;
            switch (row.info.admission) {
            case BotAdmission::Awaiting:
                return isWaiting(row.info)
                           ? tr("Awaiting approval: connected with %1. No command reaches it "
                                "until an admin accepts it (Bots > Accept); Reject refuses it.")
                                 .arg(credential)
                           : tr("Awaiting approval (connected with %1), gone since: %2. "
                                "Accepting it admits its next connection with that credential.")
                                 .arg(credential, row.info.disconnectReason);
            case BotAdmission::Rejected:
                return tr("Rejected (%1): refused whenever it connects, until an admin "
                          "accepts it again.")
                    .arg(row.info.disconnectReason.isEmpty() ? credential
                                                             : row.info.disconnectReason);
            case BotAdmission::Accepted:
                break;
            }
            return row.info.connected ? tr("Connected with %1").arg(credential)
                                      : row.info.disconnectReason;
        }
        if (index.column() == Bot)
            return row.info.credential.isEmpty() || row.info.credential == QLatin1String("none")
                       ? tr("%1 (version %2, %3 connection(s) this run)")
                             .arg(row.info.botId, row.info.botVersion)
                             .arg(row.info.connects)
                       : tr("%1 (version %2, %3 connection(s) this run, credential %4)")
                             .arg(row.info.botId, row.info.botVersion)
                             .arg(row.info.connects)
                             .arg(row.info.credential);
        return {};
    case BotIdRole:
        return row.info.botId;
    case ConnectedRole:
        return row.info.connected;
    case AdmissionRole:
        return int(row.info.admission);
    case WaitingRole:
        return isWaiting(row.info);
    case HubRole:
        return row.info.holder.isEmpty() ? row.info.hub : row.info.holder;
    case CredentialRole:
        return row.info.credential;
    case SortRole:
        if (index.column() == Heartbeat)
            return row.info.lastSeenMs;
        if (index.column() == Bot)
            return row.botSortKey;
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

QStringList FleetModel::upsert(const QList<BotInfo> &bots)
{
    // One insertion for the new bots: a proxy that sorts places a batch at once, where a row
    // at a time would cost it a pass over its mapping per bot (quadratic in a connect storm).
    QList<Row> fresh;
    QHash<QString, int> freshIndex; // a bot twice in the batch: its latest info
    QList<int> changed;
    for (const BotInfo &info : bots) {
        if (const auto it = m_index.constFind(info.botId); it != m_index.cend()) {
            Row &row = m_rows[*it];
            setInfo(row, info);
            fill(row);
            changed << *it;
            continue;
        }
        if (const auto it = freshIndex.constFind(info.botId); it != freshIndex.cend()) {
            Row &row = fresh[*it];
            setInfo(row, info);
            fill(row);
            continue;
        }
        Row row;
        setInfo(row, info);
        fill(row);
        freshIndex.insert(info.botId, int(fresh.size()));
        fresh << std::move(row);
    }
    std::sort(changed.begin(), changed.end());
    changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
    // From Labels on: a known bot's id (the Bot column) never changes, and a proxy sorted by
    // it (the default) then has nothing to re-sort (50,000 disconnects at once).
    emitRowsChanged(changed, Labels, ColumnCount - 1);
    QStringList added;
    if (fresh.isEmpty())
        return added;
    const int at = int(m_rows.size());
    beginInsertRows({}, at, at + int(fresh.size()) - 1);
    added.reserve(fresh.size());
    for (Row &row : fresh) {
        m_index.insert(row.info.botId, int(m_rows.size()));
        added << row.info.botId;
        m_rows << std::move(row);
    }
    endInsertRows();
    return added;
}

void FleetModel::emitRowsChanged(const QList<int> &rows, int first, int last)
{
    forEachRun(rows, [&](int top, int bottom) {
        emit dataChanged(index(top, first), index(bottom, last));
    });
}

void FleetModel::noteOutcomes(const QList<CommandOutcome> &records)
{
    // In flight follows every change at once (not only the 1 Hz refresh), so the fleet never
    // says 0 next to pending rows; Last latency counts late answers too, marked as such.
    QSet<int> touched;
    for (const CommandOutcome &o : records) {
        const auto it = m_index.constFind(o.botId);
        if (it == m_index.cend())
            continue;
        touched.insert(*it);
        const auto answered = o.answeredIn();
        if (!o.finished() || !answered)
            continue;
        m_rows[*it].lastLatency =
            QStringLiteral("%1 ms").arg(double(answered->count()) / 1e6, 0, 'f', 1) +
            (o.hasLateAck() ? tr(" (late)") : QString());
    }
    for (const int r : std::as_const(touched)) {
        m_rows[r].inFlight = m_pendingOf ? m_pendingOf(m_rows[r].info.botId) : 0;
        emit dataChanged(index(r, InFlight), index(r, LastLatency));
    }
}

void FleetModel::refreshLive(const QList<BotInfo> &bots)
{
    // A signal only where a row shows something new: a signal over every row would have the
    // proxy re-sort and re-filter the whole fleet each second (50,000 rows).
    QList<BotInfo> unknown;
    QList<int> changedRows;
    for (const BotInfo &info : bots) {
        const auto it = m_index.constFind(info.botId);
        if (it == m_index.cend()) {
            unknown << info;
            continue;
        }
        Row &row = m_rows[*it];
        const bool changed = row.info.connected != info.connected || row.info.state != info.state ||
                             row.info.session != info.session ||
                             row.info.admission != info.admission ||
                             row.info.disconnectedAtMs != info.disconnectedAtMs ||
                             isWaiting(row.info) != isWaiting(info);
        const int inFlight = row.inFlight;
        setInfo(row, info);
        if (changed)
            fill(row);
        else
            row.inFlight = m_pendingOf ? m_pendingOf(info.botId) : 0;
        if (changed || row.inFlight != inFlight)
            changedRows << *it;
    }
    std::sort(changedRows.begin(), changedRows.end());
    emitRowsChanged(changedRows, Labels, ColumnCount - 1);
    if (!unknown.isEmpty())
        upsert(unknown);
}

void FleetModel::setInfo(Row &row, const BotInfo &info)
{
    m_waiting += int(isWaiting(info)) - int(isWaiting(row.info));
    row.info = info;
    if (!m_clusterSeen && !info.holder.isEmpty()) {
        m_clusterSeen = true;
        emit clusterSeen();
    }
}

const BotInfo *FleetModel::bot(const QString &botId) const
{
    const auto it = m_index.constFind(botId);
    return it == m_index.cend() ? nullptr : &m_rows[*it].info;
}

int FleetModel::connectedCount() const
{
    return int(std::count_if(m_rows.cbegin(), m_rows.cend(),
                             [](const Row &r) { return r.info.connected; }));
}

} // namespace opconsole
