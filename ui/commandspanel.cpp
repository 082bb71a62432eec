#include "commandspanel.h"

#include "commandfilterproxy.h"
#include "commandtablemodel.h"
#include "fanoutmodel.h"
#include "tableview.h"

#include <QComboBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QListView>
#include <QSettings>
#include <QShortcut>
#include <QTableView>
#include <QVBoxLayout>

#include <algorithm>

namespace opconsole {

CommandsPanel::CommandsPanel(QWidget *parent) : QWidget(parent)
{
    m_model = new CommandTableModel(this);
    m_proxy = new CommandFilterProxy(this);
    m_proxy->setSourceModel(m_model);
    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    auto *filters = new QHBoxLayout;
    m_stateFilter = new QComboBox;
    m_stateFilter->addItem(tr("All"), int(CommandFilterProxy::StateGroup::All));
    m_stateFilter->addItem(tr("Pending"), int(CommandFilterProxy::StateGroup::Pending));
    m_stateFilter->addItem(tr("Done"), int(CommandFilterProxy::StateGroup::Done));
    m_stateFilter->addItem(tr("Problems"), int(CommandFilterProxy::StateGroup::Problems));
    m_botFilter = new QComboBox;
    m_botFilter->setEditable(true);
    m_botFilter->setInsertPolicy(QComboBox::NoInsert);
    m_botFilter->addItem(QString());
    m_botFilter->lineEdit()->setPlaceholderText(tr("any bot"));
    m_botFilter->setMinimumWidth(120);
    m_textFilter = new QLineEdit;
    m_textFilter->setPlaceholderText(tr("Filter commands ( / )"));
    m_textFilter->setClearButtonEnabled(true);
    filters->addWidget(new QLabel(tr("<b>Commands</b>")));
    filters->addWidget(m_stateFilter);
    filters->addWidget(m_botFilter);
    filters->addWidget(m_textFilter, 1);
    m_fanOuts = new FanOutModel(this);
    m_fanOutView = new QListView;
    m_fanOutView->setObjectName(QStringLiteral("fanOuts"));
    m_fanOutView->setModel(m_fanOuts);
    m_fanOutView->setUniformItemSizes(true);
    m_fanOutView->setToolTip(tr("Fan-outs: one line per send to several bots, tallied live. "
                                "Click one to show its commands; Esc shows all again."));
    m_fanOutView->hide();
    m_view = makeTable(m_proxy, this);
    m_view->setObjectName(QStringLiteral("commands"));
    m_view->setItemDelegateForColumn(CommandTableModel::Remaining, new SecondsDelegate(m_view));
    m_view->setContextMenuPolicy(Qt::CustomContextMenu);
    m_view->sortByColumn(CommandTableModel::Id, Qt::DescendingOrder);
    fitColumn(m_view, CommandTableModel::Id, QStringLiteral("…0000000-000-0"));
    m_view->setColumnWidth(CommandTableModel::State, 170);
    fitColumn(m_view, CommandTableModel::Bot, QStringLiteral("bot-0000"));
    fitColumn(m_view, CommandTableModel::Command, QStringLiteral("restart"));
    fitColumn(m_view, CommandTableModel::SentAt, QStringLiteral("00:00:00.000"));
    fitColumn(m_view, CommandTableModel::Remaining, QStringLiteral("00.0 s"));
    fitColumn(m_view, CommandTableModel::Latency, QStringLiteral("000.0 ms"));
    placeIssuedBy();
    // Then as wide as what they hold ("expired, late rejection after 10.0 s"), within reason;
    // Message, the last, takes the rest.
    growColumnsToContents(m_view,
                          {CommandTableModel::Bot, CommandTableModel::Command,
                           CommandTableModel::State, CommandTableModel::Latency,
                           CommandTableModel::IssuedBy},
                          32 * fontMetrics().averageCharWidth() + 40);
    layout->addLayout(filters);
    layout->addWidget(m_fanOutView);
    layout->addWidget(m_view, 1);

    // As tall as its lines, up to three (then it scrolls): one fan-out takes one line.
    connect(m_fanOuts, &QAbstractItemModel::modelReset, this, [this] {
        const int lines = std::min(3, m_fanOuts->rowCount());
        m_fanOutView->setVisible(lines > 0);
        if (lines > 0)
            m_fanOutView->setFixedHeight(lines * m_fanOutView->sizeHintForRow(0) +
                                         2 * m_fanOutView->frameWidth());
    });
    connect(m_fanOutView, &QAbstractItemView::clicked, this, [this](const QModelIndex &index) {
        showFanOut(index.data(FanOutModel::FanOutIdRole).toString());
    });
    auto *allCommands = new QShortcut(QKeySequence(Qt::Key_Escape), m_view);
    allCommands->setContext(Qt::WidgetWithChildrenShortcut);
    connect(allCommands, &QShortcut::activated, this, [this] { showFanOut({}); });

    connect(m_stateFilter, &QComboBox::currentIndexChanged, this, [this] {
        m_proxy->setStateGroup(
            CommandFilterProxy::StateGroup(m_stateFilter->currentData().toInt()));
    });
    connect(m_botFilter, &QComboBox::currentTextChanged, m_proxy, &CommandFilterProxy::setBot);
    connect(m_textFilter, &QLineEdit::textChanged, m_proxy, &CommandFilterProxy::setText);

    // The details follow what the actions act on: the selection, not a current index that
    // Ctrl+arrows move without selecting.
    connect(m_view->selectionModel(), &QItemSelectionModel::currentRowChanged, this,
            &CommandsPanel::announceDetails);
    connect(m_view->selectionModel(), &QItemSelectionModel::selectionChanged, this,
            &CommandsPanel::announceDetails);
    // Rows going (Clear finished, the cap) can take the selection or move the current row
    // without a selection signal.
    connect(m_proxy, &QAbstractItemModel::rowsRemoved, this, &CommandsPanel::announceDetails);
    connect(m_proxy, &QAbstractItemModel::modelReset, this, &CommandsPanel::announceDetails);
    connect(m_view, &QWidget::customContextMenuRequested, this, [this](const QPoint &pos) {
        emit contextMenuRequested(m_view->viewport()->mapToGlobal(pos));
    });
}

void CommandsPanel::apply(const QList<CommandOutcome> &records)
{
    m_model->applyChanges(records);
    m_fanOuts->applyChanges(records);
    // The one announced last (kept by the selection signals): a large selection is not
    // searched again for every batch.
    const QString &current = m_detailsId;
    if (!current.isEmpty() && std::any_of(records.begin(), records.end(),
                                          [&](const auto &o) { return o.commandId == current; }))
        emit currentChanged(current);
}

void CommandsPanel::addBots(const QStringList &botIds)
{
    // A set, not findText: 50,000 bots connecting must not cost 50,000 scans of the combo.
    QStringList added;
    for (const QString &bot : botIds) {
        if (!m_offeredBots.contains(bot)) {
            m_offeredBots.insert(bot);
            added << bot;
        }
    }
    if (!added.isEmpty())
        m_botFilter->addItems(added);
}

const CommandOutcome *CommandsPanel::record(const QString &commandId) const
{
    return m_model->record(m_model->rowOf(commandId));
}

QList<CommandOutcome> CommandsPanel::shownRecords() const
{
    return recordsInViewOrder(*m_proxy, *m_model);
}

QStringList CommandsPanel::selectedCommandIds() const
{
    QStringList ids;
    for (const QModelIndex &index : m_view->selectionModel()->selectedRows())
        ids << index.data(CommandTableModel::CommandIdRole).toString();
    if (ids.isEmpty() && m_view->currentIndex().isValid())
        ids << currentCommandId();
    return ids;
}

void CommandsPanel::selectCommand(const QString &commandId)
{
    const int row = m_model->rowOf(commandId);
    if (row < 0)
        return;
    const QModelIndex index = m_proxy->mapFromSource(m_model->index(row, 0));
    m_view->selectionModel()->setCurrentIndex(index, QItemSelectionModel::ClearAndSelect |
                                                         QItemSelectionModel::Rows);
}

QString CommandsPanel::currentCommandId() const
{
    return m_view->currentIndex().data(CommandTableModel::CommandIdRole).toString();
}

int CommandsPanel::clearFinished()
{
    // Nothing stays selected or current: what is left must not inherit a selection the
    // operator never made (Del would cancel it).
    m_view->selectionModel()->clear();
    const int cleared = m_model->removeFinished();
    announceDetails();
    return cleared;
}

void CommandsPanel::announceDetails()
{
    const QString id = detailsCommandId();
    if (id == m_detailsId)
        return;
    m_detailsId = id;
    emit currentChanged(id);
}

QString CommandsPanel::detailsCommandId() const
{
    const QItemSelectionModel *selection = m_view->selectionModel();
    const QModelIndex current = m_view->currentIndex();
    if (!selection->hasSelection() ||
        (current.isValid() && selection->isRowSelected(current.row(), current.parent())))
        return currentCommandId();
    // The current row is elsewhere (Ctrl+arrows): the first selected row, in view order.
    QModelIndexList rows = selection->selectedRows();
    if (rows.isEmpty())
        return currentCommandId();
    std::sort(rows.begin(), rows.end(),
              [](const QModelIndex &a, const QModelIndex &b) { return a.row() < b.row(); });
    return rows.first().data(CommandTableModel::CommandIdRole).toString();
}

void CommandsPanel::showFanOut(const QString &fanOutId)
{
    m_proxy->setFanOut(fanOutId);
    if (fanOutId.isEmpty()) {
        m_fanOutView->clearSelection();
    } else if (const int row = m_fanOuts->rowOf(fanOutId); row >= 0) {
        m_fanOutView->setCurrentIndex(m_fanOuts->index(row));
    }
    emit fanOutShown(fanOutId);
}

void CommandsPanel::refreshCountdown()
{
    // Only the visible cells of the Remaining column; data() computes the value.
    if (m_view->isColumnHidden(CommandTableModel::Remaining))
        return;
    const int x = m_view->columnViewportPosition(CommandTableModel::Remaining);
    const int w = m_view->columnWidth(CommandTableModel::Remaining);
    m_view->viewport()->update(QRect(x, 0, w, m_view->viewport()->height()));
}

void CommandsPanel::placeIssuedBy()
{
    // Before Message, which takes what is left of the width as the last column.
    QHeaderView *header = m_view->horizontalHeader();
    header->moveSection(header->visualIndex(CommandTableModel::IssuedBy),
                        header->visualIndex(CommandTableModel::Message));
    fitColumn(m_view, CommandTableModel::IssuedBy, QStringLiteral("console:alice"));
}

void CommandsPanel::setHubColumnVisible(bool visible)
{
    m_view->setColumnHidden(CommandTableModel::Hub, !visible);
    QHeaderView *header = m_view->horizontalHeader();
    // Where a new table has it (last): next to the bot, unless the operator moved it.
    if (visible && header->visualIndex(CommandTableModel::Hub) == header->count() - 1) {
        header->moveSection(header->visualIndex(CommandTableModel::Hub),
                            CommandTableModel::Bot + 1);
        fitColumn(m_view, CommandTableModel::Hub, QStringLiteral("127.0.0.1:50051"));
    }
}

void CommandsPanel::saveSettings() const
{
    QSettings settings;
    settings.setValue(QStringLiteral("commands/header"), m_view->horizontalHeader()->saveState());
    settings.setValue(QStringLiteral("commands/columns"), int(CommandTableModel::ColumnCount));
    settings.setValue(QStringLiteral("commands/stateFilter"), m_stateFilter->currentIndex());
    settings.setValue(QStringLiteral("commands/textFilter"), m_textFilter->text());
    settings.setValue(QStringLiteral("commands/botFilter"), m_botFilter->currentText());
}

void CommandsPanel::loadSettings()
{
    QSettings settings;
    // A layout saved before Issued by existed gets it appended last: put where it belongs.
    if (m_view->horizontalHeader()->restoreState(
            settings.value(QStringLiteral("commands/header")).toByteArray()) &&
        settings.value(QStringLiteral("commands/columns"), 0).toInt() <=
            CommandTableModel::IssuedBy)
        placeIssuedBy();
    m_stateFilter->setCurrentIndex(
        settings.value(QStringLiteral("commands/stateFilter"), 0).toInt());
    m_textFilter->setText(settings.value(QStringLiteral("commands/textFilter")).toString());
    // Restored like the others (the bot need not be known yet: it is a filter, not a choice).
    const QString bot = settings.value(QStringLiteral("commands/botFilter")).toString();
    if (!bot.isEmpty())
        addBots({bot});
    m_botFilter->setCurrentText(bot);
}

} // namespace opconsole
