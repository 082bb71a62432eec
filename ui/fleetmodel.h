#pragma once

#include "botinfo.h"
#include "commandoutcome.h"

#include <QAbstractTableModel>
#include <QHash>
#include <QIcon>

#include <functional>

namespace opconsole {

// Every bot that connected during this run, with its connection, state, heartbeat age,
// commands in flight and last command latency. A bot awaiting approval or rejected says so in
// the Connection column (text, icon, colour; its credential in the tooltip).
class FleetModel final : public QAbstractTableModel
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(FleetModel)

public:
    enum Column
    {
        Bot,
        Labels,
        State,
        Connection,
        Heartbeat,
        InFlight,
        LastLatency,
        Hub, // shown when the console is attached to several hubs
        ColumnCount
    };
    enum Role
    {
        BotIdRole = Qt::UserRole + 1,
        ConnectedRole,
        SortRole,
        AdmissionRole, // BotAdmission as int
        WaitingRole,   // awaiting approval with its stream open (isWaiting)
        HubRole,       // BotInfo::hub
        CredentialRole,
    };

    // pendingOf(botId) gives the bot's commands in flight (the registry's count).
    explicit FleetModel(std::function<int(const QString &)> pendingOf, QObject *parent = nullptr);

    int rowCount(const QModelIndex &parent = {}) const override;
    int columnCount(const QModelIndex &parent = {}) const override;
    QVariant data(const QModelIndex &index, int role = Qt::DisplayRole) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role) const override;

    void upsert(const BotInfo &info) { upsert(QList<BotInfo>{info}); }
    // A batch (a burst of connects, a resync): the new bots are added as one insertion at the
    // end, in the batch's order, and their ids returned; a known bot's row changes in place.
    QStringList upsert(const QList<BotInfo> &bots);
    void noteOutcomes(const QList<CommandOutcome> &records); // last latency per bot
    // The 1 Hz refresh: rows whose state, connection or in-flight count changed are signalled
    // (one dataChanged per run of adjacent rows); a heartbeat alone changes no row (the age is
    // worked out when read: the view repaints what it shows, FleetPanel::refreshLive).
    void refreshLive(const QList<BotInfo> &bots);
    int connectedCount() const;
    // Bots awaiting approval with their stream open.
    int awaitingCount() const { return m_waiting; }
    int rowOf(const QString &botId) const { return m_index.value(botId, -1); }
    const BotInfo *bot(const QString &botId) const;

    // Held by the hub for an admin's decision, and still connected: a held bot's stream that
    // ended leaves it awaiting, gone (an accept then admits its next connection).
    static bool isWaiting(const BotInfo &bot);
    // The Connection column: "connected", "awaiting approval", "rejected", "disconnected since".
    static QString connectionText(const BotInfo &bot);

signals:
    // The first bot held by a hub of a cluster (BotInfo::holder): the Hub column matters.
    void clusterSeen();

private:
    struct Row
    {
        BotInfo info;
        QString labels;
        QString connection;
        int inFlight = 0;
        QString lastLatency;
        QString botSortKey; // bot-2 before bot-10
    };
    // Signals dataChanged over these rows' columns [first, last], a run of adjacent rows at a
    // time; rows sorted and unique.
    void emitRowsChanged(const QList<int> &rows, int first, int last);
    void fill(Row &row);
    void setInfo(Row &row, const BotInfo &info); // keeps the count of waiting bots

    std::function<int(const QString &)> m_pendingOf;
    QList<Row> m_rows;
    QHash<QString, int> m_index;
    int m_waiting = 0;
    bool m_clusterSeen = false;
    QIcon m_awaitingIcon;
    QIcon m_rejectedIcon;
    QIcon m_disconnectedIcon;
};

} // namespace opconsole
