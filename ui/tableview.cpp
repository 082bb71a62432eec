#include "tableview.h"

#include <QHeaderView>
#include <QSet>
#include <QTableView>
#include <QTimer>

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

void growColumnsToContents(QTableView *view, const QList<int> &columns, int maxWidth)
{
    struct State
    {
        QSet<int> ours;      // columns still sized by us
        bool sizing = false; // our own setColumnWidth, not the operator's drag
    };
    auto state = std::make_shared<State>();
    for (const int c : columns)
        state->ours.insert(c);
    QHeaderView *header = view->horizontalHeader();
    // sizeHintForColumn measures the rows on screen and then up to the horizontal header's
    // precision more (1000 by default: 70 ms a pass in a fleet of 10,000). What is on screen
    // is what the width is for: the columns grow further as the operator scrolls to wider text.
    header->setResizeContentsPrecision(0);
    QObject::connect(header, &QHeaderView::sectionResized, view, [state](int column) {
        if (!state->sizing)
            state->ours.remove(column); // dragged, or restored from a saved layout
    });
    auto *due = new QTimer(view);
    due->setSingleShot(true);
    due->setInterval(1000);
    QObject::connect(due, &QTimer::timeout, view, [view, state, maxWidth] {
        if (!view->isVisible())
            return;
        state->sizing = true;
        for (const int c : std::as_const(state->ours)) {
            if (view->isColumnHidden(c))
                continue;
            // Public in QAbstractItemView (QTableView overrides it as protected).
            const int want =
                std::min(maxWidth, static_cast<QAbstractItemView *>(view)->sizeHintForColumn(c));
            if (want > view->columnWidth(c))
                view->setColumnWidth(c, want);
        }
        state->sizing = false;
    });
    QAbstractItemModel *model = view->model();
    auto schedule = [due] {
        if (!due->isActive())
            due->start();
    };
    QObject::connect(model, &QAbstractItemModel::rowsInserted, due, schedule);
    QObject::connect(model, &QAbstractItemModel::dataChanged, due, schedule);
    QObject::connect(model, &QAbstractItemModel::modelReset, due, schedule);
    QObject::connect(model, &QAbstractItemModel::layoutChanged, due, schedule);
}

} // namespace opconsole
