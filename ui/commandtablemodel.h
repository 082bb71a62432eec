#pragma once

#include "commandoutcome.h"
#include "theme.h"

#include <QAbstractTableModel>
#include <QHash>
#include <QIcon>

#include <deque>
#include <vector>

namespace opconsole {

// One row per command, fed by CommandRegistry::changed batches: new commands are appended
// with one beginInsertRows per batch, changes are announced for the changed rows and the
// columns that can change only. Display strings are made when a record changes, so data()
// is O(1) and does not allocate. Rows stay in registration order and are found by binary
// search on the sequence. Finished rows beyond the cap are dropped, oldest first.
class CommandTableModel final : public QAbstractTableModel
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(CommandTableModel)

public:
    enum Column
    {
        Id,
        Bot,
        Command,
        State,
        SentAt,
        Remaining,
        Latency,
        Message,
        Hub,      // shown when the console is attached to several hubs
        IssuedBy, // who issued it (CommandOutcome::issuer); shown before Message
        ColumnCount
    };
    enum Role
    {
        RecordRole = Qt::UserRole + 1, // the CommandOutcome
        StateRole,                     // CommandState as int
        CommandIdRole,                 // the full id
        SortRole,                      // a value that sorts right
        FanOutRole,                    // the fan-out id, empty when sent alone
    };
    static constexpr int DefaultMaxRows = 100'000;

    explicit CommandTableModel(QObject *parent = nullptr);

    int rowCount(const QModelIndex &parent = {}) const override;
    int columnCount(const QModelIndex &parent = {}) const override;
    QVariant data(const QModelIndex &index, int role = Qt::DisplayRole) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role) const override;

    void applyChanges(const QList<CommandOutcome> &records);
    void setMaxRows(int rows);
    // Drops every finished row from the view (the history keeps them); how many. Their later
    // changes (a late ack) stay dropped, as for rows dropped by the cap.
    int removeFinished();
    int maxRows() const { return m_maxRows; }
    int rowOf(const QString &commandId) const; // -1 when not shown
    const CommandOutcome *record(int row) const;

    static QString stateText(const CommandOutcome &o);
    static QString shortId(const QString &id);
    // How long the bot took to answer ("12.3 ms", "(late)" for a late ack); empty when it
    // never answered. The Latency column, here and in the history.
    static QString latencyText(const CommandOutcome &o);
    // The Message column: the late ack's message, else the ack's, else the progress message
    // while pending, else the reason.
    static QString messageText(const CommandOutcome &o);
    // The colour of the State and Message cells: only for what needs a look; none otherwise.
    // From the application's palette when asked (theme.h: readable on its Base), so a
    // palette change shows at the next paint.
    static QVariant stateForeground(const CommandOutcome &o);

private:
    struct Row
    {
        CommandOutcome rec;
        QString shortId;
        QString state;
        QString sentAt;
        QString latency;
        QString message;
        QString tooltip;
    };
    void fill(Row &row);
    void prune();
    void removeRuns(const std::vector<int> &rows); // ascending row numbers
    int rowOfSequence(quint64 sequence) const;

    std::deque<Row> m_rows;
    QHash<QString, quint64> m_index; // id -> sequence of the rows shown
    int m_maxRows = DefaultMaxRows;
    quint64 m_newest = 0; // the newest sequence ever shown: older ones never come back
    // The State column's icons (resources/icons, theme.h), by iconKindOf(record): the
    // state's, or the late ack's when one came. The same on light and dark palettes.
    QIcon m_icons[int(StateIconKind::Count)];
};

} // namespace opconsole
