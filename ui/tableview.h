#pragma once

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

} // namespace opconsole
