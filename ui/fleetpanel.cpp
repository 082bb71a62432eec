#include "fleetpanel.h"

#include "fleetmodel.h"
#include "latencychart.h"
#include "tableview.h"

#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QSettings>
#include <QSortFilterProxyModel>
#include <QTableView>
#include <QVBoxLayout>

namespace opconsole {

FleetPanel::FleetPanel(std::function<int(const QString &)> pendingOf, QWidget *parent)
    : QWidget(parent)
{
    m_model = new FleetModel(std::move(pendingOf), this);
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
    layout->addWidget(new QLabel(tr("<b>Fleet</b>")));
    layout->addWidget(m_filter);
    layout->addWidget(m_view, 1);
    layout->addWidget(new QLabel(tr("<b>Ack latency</b> p50 bar, p95 tick")));
    layout->addWidget(m_chart);
    // Every column in view at the window's default size; Last latency takes what is left.
    fitColumn(m_view, FleetModel::Bot, QStringLiteral("bot-00"));
    fitColumn(m_view, FleetModel::Labels, QStringLiteral("group=a"));
    fitColumn(m_view, FleetModel::State, QStringLiteral("running"));
    fitColumn(m_view, FleetModel::Connection, QStringLiteral("connected"));
    fitColumn(m_view, FleetModel::Heartbeat, QStringLiteral("00.0 s"));
    fitColumn(m_view, FleetModel::InFlight, QStringLiteral("0000"));

    connect(m_filter, &QLineEdit::textChanged, m_proxy,
            &QSortFilterProxyModel::setFilterFixedString);
    connect(m_view->selectionModel(), &QItemSelectionModel::selectionChanged, this,
            &FleetPanel::selectionChanged);
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
    QStringList added;
    for (const BotInfo &b : bots) {
        const bool known = m_model->rowOf(b.botId) >= 0;
        m_model->upsert(b);
        if (!known)
            added << b.botId;
    }
    return added;
}

void FleetPanel::apply(const QList<CommandOutcome> &records)
{
    m_model->noteOutcomes(records);
    m_chart->add(records);
}

void FleetPanel::refreshLive(const QList<BotInfo> &bots)
{
    m_model->refreshLive(bots);
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
}

void FleetPanel::loadSettings()
{
    QSettings settings;
    m_view->horizontalHeader()->restoreState(
        settings.value(QStringLiteral("fleet/header")).toByteArray());
    m_filter->setText(settings.value(QStringLiteral("fleet/filter")).toString());
}

} // namespace opconsole
