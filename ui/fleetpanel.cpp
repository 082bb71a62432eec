#include "fleetpanel.h"

#include "fleetmodel.h"
#include "latencychart.h"
#include "tableview.h"
#include "theme.h"

#include <QAction>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QSettings>
#include <QSortFilterProxyModel>
#include <QSplitter>
#include <QStyle>
#include <QTableView>
#include <QToolButton>
#include <QVBoxLayout>

namespace opconsole {

FleetPanel::FleetPanel(std::function<int(const QString &)> pendingOf, QWidget *parent)
    : QWidget(parent)
{
    m_model = new FleetModel(std::move(pendingOf), this);
    connect(m_model, &FleetModel::clusterSeen, this, [this] { setHubColumnVisible(true); });
    m_proxy = new QSortFilterProxyModel(this);
    m_proxy->setSourceModel(m_model);
    m_proxy->setSortRole(FleetModel::SortRole);
    m_proxy->setFilterCaseSensitivity(Qt::CaseInsensitive);
    m_proxy->setFilterKeyColumn(-1);
    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    m_filter = new QLineEdit;
    m_filter->setPlaceholderText(tr("Filter bots (id, label, state)"));
    m_filter->setClearButtonEnabled(true);
    m_view = makeTable(m_proxy, this);
    m_view->setObjectName(QStringLiteral("fleet"));
    m_view->setItemDelegateForColumn(FleetModel::Heartbeat, new SecondsDelegate(m_view));
    m_view->sortByColumn(FleetModel::Bot, Qt::AscendingOrder);
    m_chart = new LatencyChart;
    m_chart->setObjectName(QStringLiteral("latencyChart"));

    // Bots awaiting approval: hard to miss, and one click from being shown.
    m_approvalBar = new QWidget;
    m_approvalBar->setObjectName(QStringLiteral("approvalBar"));
    m_approvalBar->setAttribute(Qt::WA_StyledBackground);
    setThemedStyleSheet(m_approvalBar, // amber, light or dark as the palette (theme.h)
                        QStringLiteral("#approvalBar { background: @bannerBackground; border: "
                                       "1px solid @bannerBorder; border-radius: 3px; } "
                                       "#approvalBar QLabel { color: @bannerText; }"));
    auto *bar = new QHBoxLayout(m_approvalBar);
    bar->setContentsMargins(6, 3, 6, 3);
    auto *icon = new QLabel;
    const int iconSize = style()->pixelMetric(QStyle::PM_SmallIconSize);
    icon->setPixmap(style()->standardIcon(QStyle::SP_MessageBoxQuestion).pixmap(iconSize));
    m_approvalLabel = new QLabel;
    m_approvalLabel->setObjectName(QStringLiteral("approvalText"));
    auto *show = new QToolButton;
    show->setObjectName(QStringLiteral("showAwaiting"));
    show->setText(tr("Show them"));
    show->setToolTip(tr("Show only the bots awaiting approval (clear the filter to see all)"));
    connect(show, &QToolButton::clicked, this, &FleetPanel::showAwaiting);
    m_approvalButtons = new QHBoxLayout;
    m_approvalButtons->setSpacing(2);
    bar->addWidget(icon);
    bar->addWidget(m_approvalLabel, 1);
    bar->addWidget(show);
    bar->addLayout(m_approvalButtons);
    m_approvalBar->hide();

    layout->addWidget(new QLabel(tr("<b>Fleet</b>")));
    layout->addWidget(m_approvalBar);
    layout->addWidget(m_filter);
    // The table over the latency chart (its own title line); the operator may give the chart
    // more room.
    m_chartSplit = new QSplitter(Qt::Vertical);
    m_chartSplit->setObjectName(QStringLiteral("fleetChartSplit"));
    m_chartSplit->setChildrenCollapsible(false);
    m_chartSplit->addWidget(m_view);
    m_chartSplit->addWidget(m_chart);
    m_chartSplit->setStretchFactor(0, 1);
    m_chartSplit->setStretchFactor(1, 0);
    layout->addWidget(m_chartSplit, 1);
    // Every column in view at the window's default size; Last latency takes what is left.
    fitColumn(m_view, FleetModel::Bot, QStringLiteral("bot-00"));
    fitColumn(m_view, FleetModel::Labels, QStringLiteral("group=a"));
    fitColumn(m_view, FleetModel::State, QStringLiteral("running"));
    // Its icon and "awaiting approval" in full: what an admin looks for.
    fitColumn(m_view, FleetModel::Connection, QStringLiteral("awaiting approval"));
    m_view->setColumnWidth(FleetModel::Connection,
                           m_view->columnWidth(FleetModel::Connection) +
                               style()->pixelMetric(QStyle::PM_SmallIconSize) + 4);
    fitColumn(m_view, FleetModel::Heartbeat, QStringLiteral("00.0 s"));
    fitColumn(m_view, FleetModel::InFlight, QStringLiteral("0000"));
    // Then as wide as what they hold (two labels, "disconnected 5 s ago: …"), within reason.
    growColumnsToContents(m_view,
                          {FleetModel::Bot, FleetModel::Labels, FleetModel::State,
                           FleetModel::Connection, FleetModel::LastLatency},
                          20 * fontMetrics().averageCharWidth() + 60);

    connect(m_filter, &QLineEdit::textChanged, m_proxy,
            &QSortFilterProxyModel::setFilterFixedString);
    connect(m_view->selectionModel(), &QItemSelectionModel::selectionChanged, this,
            &FleetPanel::selectionChanged);
    // The chart shows the selected bots' answers, all bots' when none is selected.
    connect(this, &FleetPanel::selectionChanged, m_chart,
            [this] { m_chart->setBots(selectedBots()); });
    m_view->setContextMenuPolicy(Qt::CustomContextMenu);
    connect(m_view, &QWidget::customContextMenuRequested, this, [this](const QPoint &pos) {
        // The menu acts on the row under the pointer: current, and selected (alone, unless it
        // already was, so that a right click keeps a multi-selection).
        const QModelIndex index = m_view->indexAt(pos);
        if (index.isValid()) {
            QItemSelectionModel *selection = m_view->selectionModel();
            if (!selection->isRowSelected(index.row(), {}))
                selection->select(index,
                                  QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
            selection->setCurrentIndex(index, QItemSelectionModel::NoUpdate);
        }
        emit contextMenuRequested(m_view->viewport()->mapToGlobal(pos));
    });
    connect(m_view, &QAbstractItemView::doubleClicked, this, [this](const QModelIndex &index) {
        const QString bot = index.data(FleetModel::BotIdRole).toString();
        if (!bot.isEmpty())
            emit botActivated(bot);
    });
}

QString FleetPanel::approvalText() const
{
    return m_approvalBar->isHidden() ? QString() : m_approvalLabel->text();
}

void FleetPanel::setApprovalActions(const QList<QAction *> &actions)
{
    for (QAction *action : actions) {
        auto *button = new QToolButton;
        button->setDefaultAction(action);
        button->setToolButtonStyle(Qt::ToolButtonTextOnly);
        m_approvalButtons->addWidget(button);
    }
}

void FleetPanel::showAwaiting()
{
    m_filter->setText(tr("awaiting approval"));
}

void FleetPanel::refreshApprovalBar()
{
    const int waiting = m_model->awaitingCount();
    m_approvalLabel->setText(waiting == 1 ? tr("<b>1 bot awaiting approval</b>")
                                          : tr("<b>%1 bots awaiting approval</b>").arg(waiting));
    m_approvalBar->setVisible(waiting > 0);
}

QList<BotInfo> FleetPanel::selectedBotInfos() const
{
    QList<BotInfo> bots;
    for (const QModelIndex &index : m_view->selectionModel()->selectedRows())
        if (const BotInfo *b = m_model->bot(index.data(FleetModel::BotIdRole).toString()))
            bots << *b;
    return bots;
}

QStringList FleetPanel::selectedBots() const
{
    QStringList bots;
    for (const QModelIndex &index : m_view->selectionModel()->selectedRows())
        bots << index.data(FleetModel::BotIdRole).toString();
    return bots;
}

QString FleetPanel::currentBot() const
{
    const QModelIndex current = m_view->currentIndex();
    if (current.isValid() && m_view->selectionModel()->isRowSelected(current.row(), {}))
        return current.data(FleetModel::BotIdRole).toString();
    const QStringList bots = selectedBots();
    return bots.isEmpty() ? QString() : bots.first();
}

void FleetPanel::selectBots(const QStringList &botIds)
{
    QItemSelection selection;
    for (int r = 0; r < m_proxy->rowCount(); ++r) {
        const QModelIndex index = m_proxy->index(r, 0);
        if (botIds.contains(index.data(FleetModel::BotIdRole).toString()))
            selection.select(index, m_proxy->index(r, FleetModel::ColumnCount - 1));
    }
    m_view->selectionModel()->select(selection, QItemSelectionModel::ClearAndSelect);
}

QStringList FleetPanel::upsert(const QList<BotInfo> &bots)
{
    const QStringList added = m_model->upsert(bots);
    refreshApprovalBar();
    return added;
}

void FleetPanel::apply(const QList<CommandOutcome> &records)
{
    m_model->noteOutcomes(records);
    m_chart->add(records);
}

void FleetPanel::refreshLive(const std::function<std::optional<BotInfo>(const QString &)> &lookup,
                             const std::function<QList<BotInfo>()> &all)
{
    if (m_proxy->sortColumn() == FleetModel::Heartbeat) {
        m_model->refreshLive(all());
        m_proxy->invalidate(); // ages move without a signal: the order is worked out again
    } else {
        QList<BotInfo> onScreen;
        const int first = std::max(0, m_view->rowAt(0));
        int last = m_view->rowAt(m_view->viewport()->height() - 1);
        if (last < 0)
            last = m_proxy->rowCount() - 1;
        for (int r = first; r <= last && r < m_proxy->rowCount(); ++r)
            if (auto b = lookup(m_proxy->index(r, 0).data(FleetModel::BotIdRole).toString()))
                onScreen << std::move(*b);
        m_model->refreshLive(onScreen);
        m_view->viewport()->update(); // the ages, worked out when read
    }
    refreshApprovalBar();
}

void FleetPanel::setHubColumnVisible(bool visible)
{
    m_view->setColumnHidden(FleetModel::Hub, !visible);
    // Where it is seen: next to the bot, unless the operator put it somewhere (saved layout).
    QHeaderView *header = m_view->horizontalHeader();
    if (visible && header->visualIndex(FleetModel::Hub) == FleetModel::Hub) {
        header->moveSection(header->visualIndex(FleetModel::Hub), FleetModel::Bot + 1);
        fitColumn(m_view, FleetModel::Hub, QStringLiteral("127.0.0.1:50051"));
    }
}

void FleetPanel::saveSettings() const
{
    QSettings settings;
    settings.setValue(QStringLiteral("fleet/header"), m_view->horizontalHeader()->saveState());
    settings.setValue(QStringLiteral("fleet/filter"), m_filter->text());
    settings.setValue(QStringLiteral("fleet/chartSplit"), m_chartSplit->saveState());
    settings.setValue(QStringLiteral("fleet/latencyWindowMs"), m_chart->windowMs());
}

void FleetPanel::loadSettings()
{
    QSettings settings;
    m_view->horizontalHeader()->restoreState(
        settings.value(QStringLiteral("fleet/header")).toByteArray());
    m_filter->setText(settings.value(QStringLiteral("fleet/filter")).toString());
    m_chartSplit->restoreState(settings.value(QStringLiteral("fleet/chartSplit")).toByteArray());
    m_chart->setWindowMs(
        settings.value(QStringLiteral("fleet/latencyWindowMs"), LatencyChart::FiveMinutesMs)
            .toLongLong());
}

} // namespace opconsole
