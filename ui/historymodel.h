#pragma once

#include "commandoutcome.h"
#include "theme.h"

#include <QAbstractTableModel>
#include <QIcon>

#include <deque>

namespace opconsole {

// The results of a history search: records as the search returns them (newest first), one
// page appended after another. Display strings are made once per record, so data() is O(1).
// Bounded: past maxRows() the rest of a page is dropped and full() says so (the search should
// be narrowed); nothing is ever dropped from the rows already shown.
class HistoryModel final : public QAbstractTableModel
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(HistoryModel)

public:
    enum Column
    {
        State,
        Id,
        Bot,
        Kind,
        Issuer,
        Registered,
        Latency,
        Message,
        FanOut,
        Params,
        Hub, // shown when the console is attached to several hubs
        ColumnCount
    };
    enum Role
    {
        RecordRole = Qt::UserRole + 1, // the CommandOutcome
        StateRole,                     // CommandState as int
        CommandIdRole,                 // the full id
        SortRole,                      // a value that sorts right
    };
    static constexpr int DefaultMaxRows = 100'000;

    explicit HistoryModel(QObject *parent = nullptr);

    int rowCount(const QModelIndex &parent = {}) const override;
    int columnCount(const QModelIndex &parent = {}) const override;
    QVariant data(const QModelIndex &index, int role = Qt::DisplayRole) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role) const override;

    void clear();
    // Appends records after the rows shown; returns how many were taken (fewer when the cap is
    // reached: full() then).
    int append(const QList<CommandOutcome> &records);
    bool full() const { return m_full; }
    void setMaxRows(int rows); // for tests; at least 1
    int maxRows() const { return m_maxRows; }
    const CommandOutcome *record(int row) const;

private:
    struct Row
    {
        CommandOutcome rec;
        QString state;
        QString registered;
        QString latency;
        QString message;
        QString params; // cut for the cell; the tooltip has more
    };
    void fill(Row &row);

    std::deque<Row> m_rows;
    int m_maxRows = DefaultMaxRows;
    bool m_full = false;
    QIcon m_icons[int(StateIconKind::Count)]; // by iconKindOf(record)
};

} // namespace opconsole
