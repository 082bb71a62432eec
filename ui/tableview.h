#pragma once

#include "commandoutcome.h"

#include <QAbstractProxyModel>
#include <QList>
#include <QStyledItemDelegate>

class QAbstractItemModel;
class QTableView;

namespace opconsole {

// Seconds as "4.2 s" (countdowns, heartbeat ages); the models hand over plain numbers.
class SecondsDelegate final : public QStyledItemDelegate
{
public:
    using QStyledItemDelegate::QStyledItemDelegate;
    QString displayText(const QVariant &value, const QLocale &locale) const override;
};

// A sortable table of whole rows, as the fleet and the commands are shown.
QTableView *makeTable(QAbstractItemModel *model, QWidget *parent);

// Sizes a column to its header or a typical value, whichever is wider, in the view's font.
void fitColumn(QTableView *view, int column, const QString &typical);

// Widens `columns` of a view to what their cells hold (up to `maxWidth` px each), a second
// after rows come or change, so that "disconnected…" or "expired, late ack after 1…" are not
// cut while the last column takes the rest. Never narrows; leaves alone a column the operator
// sized (or a saved layout restored). The cost is bounded: Qt measures at most
// resizeContentsPrecision() rows around the visible ones.
void growColumnsToContents(QTableView *view, const QList<int> &columns, int maxWidth);

// The records a proxy shows, in its order (what File > Export writes), from a model with
// record(row) (CommandTableModel, HistoryModel).
template <typename Model>
QList<CommandOutcome> recordsInViewOrder(const QAbstractProxyModel &proxy, const Model &model)
{
    QList<CommandOutcome> out;
    const int rows = proxy.rowCount();
    out.reserve(rows);
    for (int r = 0; r < rows; ++r) {
        if (const CommandOutcome *o = model.record(proxy.mapToSource(proxy.index(r, 0)).row()))
            out.append(*o);
    }
    return out;
}

} // namespace opconsole
