#include "tableview.h"

#include <QHeaderView>
#include <QTableView>

namespace opconsole {

QString SecondsDelegate::displayText(const QVariant &value, const QLocale &) const
{
    return value.isValid() ? QStringLiteral("%1 s").arg(value.toDouble(), 0, 'f', 1) : QString();
}

QTableView *makeTable(QAbstractItemModel *model, QWidget *parent)
{
    auto *view = new QTableView(parent);
    view->setModel(model);
    view->setSelectionBehavior(QAbstractItemView::SelectRows);
    view->setSelectionMode(QAbstractItemView::ExtendedSelection);
    view->setSortingEnabled(true);
    view->setAlternatingRowColors(true);
    view->setWordWrap(false);
    view->setTabKeyNavigation(false); // Tab leaves the table; arrows move in it
    view->verticalHeader()->setVisible(false);
    // Fixed row heights: ResizeToContents would make every update quadratic.
    view->verticalHeader()->setSectionResizeMode(QHeaderView::Fixed);
    view->verticalHeader()->setDefaultSectionSize(view->fontMetrics().height() + 6);
    view->horizontalHeader()->setStretchLastSection(true);
    view->horizontalHeader()->setSectionsMovable(true);
    return view;
}

void fitColumn(QTableView *view, int column, const QString &typical)
{
    const QFontMetrics fm(view->font());
    const QString header = view->model()->headerData(column, Qt::Horizontal).toString();
    const int padding = fm.averageCharWidth() + 10; // cell margins
    view->setColumnWidth(
        column, std::max(fm.horizontalAdvance(header), fm.horizontalAdvance(typical)) + padding);
}

} // namespace opconsole
