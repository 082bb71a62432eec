#include "mainwindow.h"

#include "commandfilterproxy.h"
#include "commandtablemodel.h"
#include "fanoutmodel.h"
#include "fleetmodel.h"
#include "latencychart.h"
#include "sendpanel.h"

#include <QAction>
#include <QApplication>
#include <QClipboard>
#include <QCloseEvent>
#include <QComboBox>
#include <QDateTime>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QJsonDocument>
#include <QLabel>
#include <QLineEdit>
#include <QListView>
#include <QMenu>
#include <QPointer>
#include <QPushButton>
#include <QRegularExpression>
#include <QSettings>
#include <QShortcut>
#include <QSortFilterProxyModel>
#include <QSplitter>
#include <QStatusBar>
#include <QStyledItemDelegate>
#include <QTableView>
#include <QTextBrowser>
#include <QTime>
#include <QTimer>
#include <QToolBar>
#include <QVBoxLayout>

namespace opconsole {

using namespace std::chrono;

namespace {

// Seconds as "4.2 s" (countdowns, heartbeat ages); the models hand over plain numbers.
class SecondsDelegate final : public QStyledItemDelegate
{
public:
    using QStyledItemDelegate::QStyledItemDelegate;
    QString displayText(const QVariant &value, const QLocale &) const override
    {
        return value.isValid() ? QStringLiteral("%1 s").arg(value.toDouble(), 0, 'f', 1)
                               : QString();
    }
};

QTableView *makeTable(QAbstractItemModel *model, QWidget *parent)
{
    auto *view = new QTableView(parent);
    view->setModel(model);
    view->setSelectionBehavior(QAbstractItemView::SelectRows);
    view->setSelectionMode(QAbstractItemView::ExtendedSelection);
    view->setSortingEnabled(true);
    view->setAlternatingRowColors(true);
    view->setWordWrap(false);
    view->verticalHeader()->setVisible(false);
    // Fixed row heights: ResizeToContents would make every update quadratic.
    view->verticalHeader()->setSectionResizeMode(QHeaderView::Fixed);
    view->verticalHeader()->setDefaultSectionSize(view->fontMetrics().height() + 6);
    view->horizontalHeader()->setStretchLastSection(true);
    view->horizontalHeader()->setSectionsMovable(true);
    return view;
}

// Sizes a column to its header or a typical value, whichever is wider, in the view's font.
void fitColumn(QTableView *view, int column, const QString &typical)
{
    const QFontMetrics fm(view->font());
    const QString header = view->model()->headerData(column, Qt::Horizontal).toString();
    const int padding = fm.averageCharWidth() + 10; // cell margins
    view->setColumnWidth(
        column, std::max(fm.horizontalAdvance(header), fm.horizontalAdvance(typical)) + padding);
}

QString escape(const QString &s)
{
    return s.toHtmlEscaped();
}

QString wall(const CommandOutcome &o, Clock::time_point t)
{
    return QDateTime::fromMSecsSinceEpoch(o.wallMs(t)).toString(QStringLiteral("HH:mm:ss.zzz"));
}

QString shellQuote(const QString &s)
{
    if (!s.isEmpty() && s.indexOf(QRegularExpression(QStringLiteral("[^A-Za-z0-9_./=:,-]"))) < 0)
        return s;
    QString out = s;
    out.replace(QLatin1Char('\''), QLatin1String("'\\''"));
    return QLatin1Char('\'') + out + QLatin1Char('\'');
}

} // namespace

MainWindow::MainWindow(ConsoleBackend &backend, QWidget *parent)
    : QMainWindow(parent), m_backend(backend)
{
    setWindowTitle(backend.isRemote() ? tr("opconsole — attached to %1").arg(backend.address())
                                      : tr("opconsole — %1").arg(backend.address()));
    m_clock.start();

    // Fleet panel.
    m_fleet =
        new FleetModel([&backend](const QString &bot) { return backend.pendingCount(bot); }, this);
    m_fleetProxy = new QSortFilterProxyModel(this);
    m_fleetProxy->setSourceModel(m_fleet);
    m_fleetProxy->setSortRole(FleetModel::SortRole);
    m_fleetProxy->setFilterCaseSensitivity(Qt::CaseInsensitive);
    m_fleetProxy->setFilterKeyColumn(-1);
    auto *fleetPanel = new QWidget;
    auto *fleetLayout = new QVBoxLayout(fleetPanel);
    fleetLayout->setContentsMargins(4, 4, 4, 4);
    m_fleetFilter = new QLineEdit;
    m_fleetFilter->setPlaceholderText(tr("Filter bots (id, label, state)"));
    m_fleetFilter->setClearButtonEnabled(true);
    m_fleetView = makeTable(m_fleetProxy, fleetPanel);
    m_fleetView->setObjectName(QStringLiteral("fleet"));
    m_fleetView->setItemDelegateForColumn(FleetModel::Heartbeat, new SecondsDelegate(m_fleetView));
    m_fleetView->sortByColumn(FleetModel::Bot, Qt::AscendingOrder);
    m_chart = new LatencyChart;
    fleetLayout->addWidget(new QLabel(tr("<b>Fleet</b>")));
    fleetLayout->addWidget(m_fleetFilter);
    fleetLayout->addWidget(m_fleetView, 1);
    fleetLayout->addWidget(new QLabel(tr("<b>Ack latency</b> p50 bar, p95 tick")));
    fleetLayout->addWidget(m_chart);

    // Send panel.
    m_send = new SendPanel;

    // Commands panel.
    m_commands = new CommandTableModel(this);
    m_commandProxy = new CommandFilterProxy(this);
    m_commandProxy->setSourceModel(m_commands);
    auto *commandsPanel = new QWidget;
    auto *commandsLayout = new QVBoxLayout(commandsPanel);
    commandsLayout->setContentsMargins(4, 4, 4, 4);
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
    m_fanOutView->setMaximumHeight(64);
    m_fanOutView->setUniformItemSizes(true);
    m_fanOutView->setToolTip(tr("Fan-outs: one line per send to several bots, tallied live. "
                                "Click one to show its commands; Esc shows all again."));
    m_fanOutView->hide();
    m_commandsView = makeTable(m_commandProxy, commandsPanel);
    m_commandsView->setObjectName(QStringLiteral("commands"));
    m_commandsView->setItemDelegateForColumn(CommandTableModel::Remaining,
                                             new SecondsDelegate(m_commandsView));
    m_commandsView->setContextMenuPolicy(Qt::CustomContextMenu);
    m_commandsView->sortByColumn(CommandTableModel::Id, Qt::DescendingOrder);
    m_commandsView->setColumnWidth(CommandTableModel::Id, 130);
    m_commandsView->setColumnWidth(CommandTableModel::State, 200);
    fitColumn(m_commandsView, CommandTableModel::Bot, QStringLiteral("bot-0000"));
    fitColumn(m_commandsView, CommandTableModel::Command, QStringLiteral("restart"));
    fitColumn(m_commandsView, CommandTableModel::SentAt, QStringLiteral("00:00:00.000"));
    fitColumn(m_commandsView, CommandTableModel::Remaining, QStringLiteral("00.0 s"));
    fitColumn(m_commandsView, CommandTableModel::Latency, QStringLiteral("000.0 ms (late)"));
    commandsLayout->addLayout(filters);
    commandsLayout->addWidget(m_fanOutView);
    commandsLayout->addWidget(m_commandsView, 1);

    m_details = new QTextBrowser;
    m_details->setPlaceholderText(tr("Select a command to see it, its ack and its timeline."));

    m_rightSplit = new QSplitter(Qt::Vertical);
    m_rightSplit->addWidget(m_send);
    m_rightSplit->addWidget(commandsPanel);
    m_rightSplit->addWidget(m_details);
    m_rightSplit->setStretchFactor(1, 3);
    m_rightSplit->setStretchFactor(2, 1);
    m_mainSplit = new QSplitter(Qt::Horizontal);
    m_mainSplit->addWidget(fleetPanel);
    m_mainSplit->addWidget(m_rightSplit);
    m_mainSplit->setStretchFactor(1, 3);
    m_mainSplit->setSizes({510, 890});
    m_rightSplit->setSizes({110, 560, 190});
    m_send->setSizePolicy(QSizePolicy::Preferred, QSizePolicy::Maximum);
    m_botFilter->setMinimumWidth(120);
    // Every fleet column in view at the default size; Last latency takes what is left.
    fitColumn(m_fleetView, FleetModel::Bot, QStringLiteral("bot-00"));
    fitColumn(m_fleetView, FleetModel::Labels, QStringLiteral("group=a"));
    fitColumn(m_fleetView, FleetModel::State, QStringLiteral("running"));
    fitColumn(m_fleetView, FleetModel::Connection, QStringLiteral("connected"));
    fitColumn(m_fleetView, FleetModel::Heartbeat, QStringLiteral("00.0 s"));
    fitColumn(m_fleetView, FleetModel::InFlight, QStringLiteral("0000"));
    m_banner = new QLabel;
    m_banner->setObjectName(QStringLiteral("banner"));
    m_banner->setWordWrap(true);
    m_banner->setStyleSheet(QStringLiteral(
        "QLabel { background: #fde2b8; color: #5a3200; padding: 6px; border-bottom: 1px solid "
        "#e0a040; }"));
    m_banner->hide();
    auto *central = new QWidget;
    auto *centralLayout = new QVBoxLayout(central);
    centralLayout->setContentsMargins(0, 0, 0, 0);
    centralLayout->setSpacing(0);
    centralLayout->addWidget(m_banner);
    centralLayout->addWidget(m_mainSplit, 1);
    setCentralWidget(central);
    m_status = new QLabel;
    statusBar()->addPermanentWidget(m_status, 1);

    buildActions();

    // Data in: what the backend knows now, then its changes.
    auto upsertBots = [this](const QList<BotInfo> &bots) {
        for (const BotInfo &b : bots) {
            const bool known = m_fleet->rowOf(b.botId) >= 0;
            m_fleet->upsert(b);
            if (!known && m_botFilter->findText(b.botId) < 0)
                m_botFilter->addItem(b.botId);
        }
    };
    upsertBots(backend.bots());
    onChanged(backend.commands());
    connect(&backend, &ConsoleBackend::commandsChanged, this, &MainWindow::onChanged);
    connect(&backend, &ConsoleBackend::botsChanged, this, upsertBots);
    connect(&backend, &ConsoleBackend::linkChanged, this, &MainWindow::onLinkChanged);
    connect(&backend, &ConsoleBackend::notice, this,
            [this](const QString &message) { statusBar()->showMessage(message, 15000); });
    connect(m_fanOuts, &QAbstractItemModel::modelReset, this,
            [this] { m_fanOutView->setVisible(m_fanOuts->rowCount() > 0); });
    connect(m_fanOutView, &QAbstractItemView::clicked, this, [this](const QModelIndex &index) {
        showFanOut(index.data(FanOutModel::FanOutIdRole).toString());
    });
    auto *allCommands = new QShortcut(QKeySequence(Qt::Key_Escape), m_commandsView);
    allCommands->setContext(Qt::WidgetWithChildrenShortcut);
    connect(allCommands, &QShortcut::activated, this, [this] { showFanOut({}); });

    // Filters.
    connect(m_fleetFilter, &QLineEdit::textChanged, m_fleetProxy,
            &QSortFilterProxyModel::setFilterFixedString);
    connect(m_stateFilter, &QComboBox::currentIndexChanged, this, [this] {
        m_commandProxy->setStateGroup(
            CommandFilterProxy::StateGroup(m_stateFilter->currentData().toInt()));
    });
    connect(m_botFilter, &QComboBox::currentTextChanged, m_commandProxy,
            &CommandFilterProxy::setBot);
    connect(m_textFilter, &QLineEdit::textChanged, m_commandProxy, &CommandFilterProxy::setText);

    connect(m_fleetView->selectionModel(), &QItemSelectionModel::selectionChanged, this,
            [this] { m_send->setTargetCount(int(selectedBots().size())); });
    connect(m_send, &SendPanel::sendRequested, this, &MainWindow::sendToSelection);
    connect(m_send, &SendPanel::heightWanted, this, &MainWindow::fitSendPanel);
    connect(m_commandsView->selectionModel(), &QItemSelectionModel::currentRowChanged, this,
            &MainWindow::showDetails);
    connect(m_commandsView, &QWidget::customContextMenuRequested, this, [this](const QPoint &pos) {
        m_commandMenu->popup(m_commandsView->viewport()->mapToGlobal(pos));
    });

    // Live parts: countdowns at 10 Hz (visible cells only), fleet ages and status at 1 Hz.
    auto *countdown = new QTimer(this);
    countdown->setInterval(100);
    connect(countdown, &QTimer::timeout, this, &MainWindow::refreshCountdown);
    countdown->start();
    auto *slow = new QTimer(this);
    slow->setInterval(1000);
    connect(slow, &QTimer::timeout, this, [this] {
        m_fleet->refreshLive(m_backend.bots());
        refreshStatus();
    });
    slow->start();

    loadSettings();
    // The Hub columns only when attached to several hubs.
    const bool severalHubs = backend.hubs().size() > 1;
    m_fleetView->setColumnHidden(FleetModel::Hub, !severalHubs);
    m_commandsView->setColumnHidden(CommandTableModel::Hub, !severalHubs);
    fitSendPanel();
    onLinkChanged();
    refreshStatus();
}

void MainWindow::showFanOut(const QString &fanOutId)
{
    m_commandProxy->setFanOut(fanOutId);
    if (fanOutId.isEmpty()) {
        m_fanOutView->clearSelection();
        statusBar()->clearMessage();
        return;
    }
    const int row = m_fanOuts->rowOf(fanOutId);
    if (row >= 0)
        m_fanOutView->setCurrentIndex(m_fanOuts->index(row));
    statusBar()->showMessage(
        tr("Showing fan-out %1 only; Esc in the table shows all").arg(fanOutId));
}

void MainWindow::onLinkChanged()
{
    // Unreachable: the views keep their last state, greyed, under a banner that says why and
    // since when; sends are refused by the backend meanwhile.
    const bool down = m_backend.link() != ConsoleBackend::Link::Live;
    if (down && m_banner->isHidden())
        m_staleSince = QTime::currentTime().toString(QStringLiteral("HH:mm:ss"));
    m_banner->setText(
        m_backend.link() == ConsoleBackend::Link::Connecting
            ? tr("Attaching to %1…").arg(m_backend.address().toHtmlEscaped())
            : tr("<b>Not attached since %1</b>: %2. What you see is as of then; sending is off "
                 "until the console is attached again.")
                  .arg(m_staleSince, m_backend.linkProblem().toHtmlEscaped()));
    m_banner->setVisible(down);
    for (QTableView *view : {m_fleetView, m_commandsView})
        view->setStyleSheet(down ? QStringLiteral("QTableView { color: gray; }") : QString());
    m_send->sendButton()->setEnabled(!down);
}

void MainWindow::fitSendPanel()
{
    // The send panel gets what its parameters need; the commands table takes the difference.
    QList<int> sizes = m_rightSplit->sizes();
    const int want = m_send->sizeHint().height();
    if (sizes.size() != 3 || sizes[0] == want)
        return;
    sizes[1] = std::max(0, sizes[1] + sizes[0] - want);
    sizes[0] = want;
    m_rightSplit->setSizes(sizes);
}

MainWindow::~MainWindow() = default;

void MainWindow::buildActions()
{
    auto *toolbar = addToolBar(tr("Commands"));
    toolbar->setObjectName(QStringLiteral("commandsToolbar"));
    const struct
    {
        CommandKind kind;
        const char *text;
        const char *key;
    } quick[] = {
        {CommandKind::Start, "Start", "Ctrl+1"},     {CommandKind::Stop, "Stop", "Ctrl+2"},
        {CommandKind::Restart, "Restart", "Ctrl+3"}, {CommandKind::Pause, "Pause", "Ctrl+4"},
        {CommandKind::Resume, "Resume", "Ctrl+5"},   {CommandKind::Ping, "Ping", "Ctrl+6"}};
    for (const auto &q : quick) {
        auto *action = toolbar->addAction(tr(q.text));
        action->setShortcut(QKeySequence(QString::fromLatin1(q.key)));
        action->setToolTip(
            tr("%1 the selected bots now (%2)").arg(tr(q.text), QString::fromLatin1(q.key)));
        const CommandKind kind = q.kind;
        connect(action, &QAction::triggered, this, [this, kind] { sendKindToSelection(kind); });
    }
    toolbar->addSeparator();

    m_commandMenu = new QMenu(this);
    auto *cancel = m_commandMenu->addAction(tr("Cancel"), this, &MainWindow::cancelSelected);
    cancel->setShortcut(QKeySequence::Delete);
    cancel->setShortcutContext(Qt::WidgetWithChildrenShortcut);
    auto *resend =
        m_commandMenu->addAction(tr("Resend with a new id"), this, &MainWindow::resendSelected);
    resend->setShortcut(QKeySequence(QStringLiteral("Ctrl+R")));
    auto *copy = m_commandMenu->addAction(tr("Copy id"), this, &MainWindow::copySelectedIds);
    copy->setShortcut(QKeySequence::Copy);
    copy->setShortcutContext(Qt::WidgetWithChildrenShortcut);
    auto *copyOpctl = m_commandMenu->addAction(tr("Copy as opctl command"), this,
                                               &MainWindow::copySelectedAsOpctl);
    copyOpctl->setShortcut(QKeySequence(QStringLiteral("Ctrl+Shift+C")));
    auto *details = m_commandMenu->addAction(tr("Show details"), this, [this] {
        m_details->show();
        showDetails();
    });
    details->setShortcut(QKeySequence(Qt::Key_Return));
    details->setShortcutContext(Qt::WidgetWithChildrenShortcut);
    for (QAction *a : {cancel, copy, details})
        m_commandsView->addAction(a);
    for (QAction *a : {resend, copyOpctl})
        addAction(a);
    toolbar->addAction(cancel);

    auto *sendShortcut = new QShortcut(QKeySequence(QStringLiteral("Ctrl+Return")), this);
    connect(sendShortcut, &QShortcut::activated, m_send->sendButton(), &QPushButton::click);
    auto *focusFilter = new QShortcut(QKeySequence(QStringLiteral("/")), this);
    connect(focusFilter, &QShortcut::activated, this, [this] {
        m_textFilter->setFocus();
        m_textFilter->selectAll();
    });
    auto *focusFleet = new QShortcut(QKeySequence(QStringLiteral("Ctrl+F")), this);
    connect(focusFleet, &QShortcut::activated, m_fleetFilter, qOverload<>(&QWidget::setFocus));
}

void MainWindow::onChanged(const QList<CommandOutcome> &records)
{
    // Counted before the table takes the records: the row still holds the previous state.
    for (const CommandOutcome &o : records) {
        const CommandOutcome *before = m_commands->record(m_commands->rowOf(o.commandId));
        const bool wasPending = before && before->state == CommandState::Pending;
        const bool wasFinished = before && before->finished();
        if (!before && o.state == CommandState::Pending)
            ++m_counts.pending;
        if (o.finished() && !wasFinished) {
            if (wasPending)
                --m_counts.pending;
            ++m_counts.finished;
            m_counts.acked += o.state == CommandState::Acked;
            m_counts.rejected += o.state == CommandState::Rejected;
            m_counts.expired += o.state == CommandState::Expired;
        }
        if (o.hasLateAck() && !(before && before->hasLateAck()))
            ++m_counts.lateAcks;
    }
    m_commands->applyChanges(records);
    m_fanOuts->applyChanges(records);
    m_fleet->noteOutcomes(records);
    m_chart->add(records);
    const QString current =
        m_commandsView->currentIndex().data(CommandTableModel::CommandIdRole).toString();
    if (!current.isEmpty() && std::any_of(records.begin(), records.end(),
                                          [&](const auto &o) { return o.commandId == current; }))
        showDetails();
}

QStringList MainWindow::selectedBots() const
{
    QStringList bots;
    for (const QModelIndex &index : m_fleetView->selectionModel()->selectedRows())
        bots << index.data(FleetModel::BotIdRole).toString();
    return bots;
}

QStringList MainWindow::selectedCommandIds() const
{
    QStringList ids;
    for (const QModelIndex &index : m_commandsView->selectionModel()->selectedRows())
        ids << index.data(CommandTableModel::CommandIdRole).toString();
    if (ids.isEmpty() && m_commandsView->currentIndex().isValid())
        ids << m_commandsView->currentIndex().data(CommandTableModel::CommandIdRole).toString();
    return ids;
}

void MainWindow::selectBots(const QStringList &botIds)
{
    QItemSelection selection;
    for (int r = 0; r < m_fleetProxy->rowCount(); ++r) {
        const QModelIndex index = m_fleetProxy->index(r, 0);
        if (botIds.contains(index.data(FleetModel::BotIdRole).toString()))
            selection.select(index, m_fleetProxy->index(r, FleetModel::ColumnCount - 1));
    }
    m_fleetView->selectionModel()->select(selection, QItemSelectionModel::ClearAndSelect);
}

void MainWindow::selectCommand(const QString &commandId)
{
    const int row = m_commands->rowOf(commandId);
    if (row < 0)
        return;
    const QModelIndex index = m_commandProxy->mapFromSource(m_commands->index(row, 0));
    m_commandsView->selectionModel()->setCurrentIndex(index, QItemSelectionModel::ClearAndSelect |
                                                                 QItemSelectionModel::Rows);
}

void MainWindow::sendToSelection()
{
    const QString problem = m_send->problem();
    if (!problem.isEmpty()) {
        statusBar()->showMessage(problem, 5000);
        return;
    }
    send(selectedBots(), m_send->spec(), m_send->timeout());
}

void MainWindow::sendKindToSelection(CommandKind kind)
{
    const QStringList bots = selectedBots();
    if (bots.isEmpty()) {
        statusBar()->showMessage(tr("Select one or more bots in the fleet."), 5000);
        return;
    }
    CommandSpec spec = CommandSpec::of(kind);
    if (!spec.validate().isEmpty()) { // config and custom need the send panel
        m_send->setKind(kind);
        statusBar()->showMessage(
            tr("Fill in the %1 parameters in the send panel.").arg(spec.name()), 5000);
        return;
    }
    send(bots, spec, m_send->timeoutFor(kind));
}

void MainWindow::send(const QStringList &bots, const CommandSpec &spec, milliseconds timeout)
{
    const SendReceipt receipt = m_backend.send(bots, spec, timeout);
    if (!receipt.ok()) {
        // Refused before anything was registered (unreachable hub, in-flight cap, shutting
        // down): no row will show it, so say it here, and long enough to be read.
        statusBar()->showMessage(
            bots.size() == 1
                ? tr("%1 not sent to %2: %3").arg(spec.name(), bots.first(), receipt.error)
                : tr("%1 not sent to %2 bots: %3")
                      .arg(spec.name())
                      .arg(bots.size())
                      .arg(receipt.error),
            15000);
        return;
    }
    // What was sent, for details, resend and copy-as-opctl: by command id, and by fan-out id
    // (a remote hub names a fan-out's commands itself).
    QStringList keys = receipt.commandIds;
    if (!receipt.fanOut.isEmpty())
        keys << receipt.fanOut;
    for (const QString &key : keys) {
        m_sent.insert(key, {spec, timeout});
        m_sentOrder.push_back(key);
        if (m_sentOrder.size() > size_t(m_commands->maxRows())) {
            m_sent.remove(m_sentOrder.front());
            m_sentOrder.pop_front();
        }
    }
    if (bots.size() == 1)
        statusBar()->showMessage(tr("%1 sent to %2").arg(spec.name(), bots.first()), 3000);
    else
        statusBar()->showMessage(tr("%1 sent to %2 bots").arg(spec.name()).arg(bots.size()), 3000);
}

const MainWindow::Sent *MainWindow::sentFor(const CommandOutcome &o) const
{
    auto it = m_sent.constFind(o.commandId);
    if (it == m_sent.cend() && !o.fanOut.isEmpty())
        it = m_sent.constFind(o.fanOut);
    return it == m_sent.cend() ? nullptr : &*it;
}

void MainWindow::cancelSelected()
{
    int asked = 0;
    for (const QString &id : selectedCommandIds()) {
        const CommandOutcome *o = m_commands->record(m_commands->rowOf(id));
        if (o && o->state == CommandState::Pending)
            asked += m_backend.cancel(id, tr("cancelled by the operator")) ? 1 : 0;
    }
    statusBar()->showMessage(tr("%1 command(s) cancelled").arg(asked), 3000);
}

void MainWindow::resendSelected()
{
    for (const QString &id : selectedCommandIds()) {
        const CommandOutcome *row = m_commands->record(m_commands->rowOf(id));
        if (!row || row->botId.isEmpty())
            continue;
        const CommandOutcome shown = *row; // send() may change the table and m_sent
        if (const Sent *sent = sentFor(shown)) {
            const Sent again = *sent;
            send({shown.botId}, again.spec, again.timeout);
        } else if (const auto kind = CommandSpec::kindFromName(shown.kind)) {
            send({shown.botId}, CommandSpec::of(*kind), m_send->timeoutFor(*kind));
        }
    }
}

void MainWindow::copySelectedIds()
{
    QApplication::clipboard()->setText(selectedCommandIds().join(QLatin1Char('\n')));
}

QString MainWindow::opctlLine(const CommandOutcome &o) const
{
    QStringList args{QStringLiteral("opctl"),
                     QStringLiteral("--hub"),
                     o.hub.isEmpty() ? m_backend.address() : o.hub,
                     QStringLiteral("send"),
                     shellQuote(o.botId),
                     o.kind};
    const Sent *sent = sentFor(o);
    const milliseconds timeout =
        sent ? sent->timeout : duration_cast<milliseconds>(o.deadline - o.registeredAt);
    args << QStringLiteral("--timeout") << QStringLiteral("%1ms").arg(timeout.count());
    if (sent) {
        const CommandSpec &spec = sent->spec;
        for (auto kv = spec.config.cbegin(); kv != spec.config.cend(); ++kv)
            args << QStringLiteral("--set") << shellQuote(kv.key() + QLatin1Char('=') + kv.value());
        if (spec.kind == CommandKind::ConfigUpdate && spec.configVersion)
            args << QStringLiteral("--version") << QString::number(spec.configVersion);
        if (spec.kind == CommandKind::Custom) {
            args << QStringLiteral("--name") << shellQuote(spec.customName);
            if (!spec.jsonPayload.isEmpty())
                args << QStringLiteral("--json-payload")
                     << shellQuote(QString::fromUtf8(spec.jsonPayload));
        }
        if (spec.kind == CommandKind::Stop && !spec.stopReason.isEmpty())
            args << QStringLiteral("--reason") << shellQuote(spec.stopReason);
        if (spec.kind == CommandKind::Stop && !spec.graceful)
            args << QStringLiteral("--no-graceful");
    }
    return args.join(QLatin1Char(' '));
}

void MainWindow::copySelectedAsOpctl()
{
    QStringList lines;
    for (const QString &id : selectedCommandIds()) {
        const int row = m_commands->rowOf(id);
        if (const CommandOutcome *o = m_commands->record(row))
            lines << opctlLine(*o);
    }
    QApplication::clipboard()->setText(lines.join(QLatin1Char('\n')));
}

void MainWindow::showDetails()
{
    const QString id =
        m_commandsView->currentIndex().data(CommandTableModel::CommandIdRole).toString();
    const int row = m_commands->rowOf(id);
    const CommandOutcome *o = m_commands->record(row);
    if (!o) {
        m_details->clear();
        return;
    }
    QString html;
    html += QStringLiteral("<h3>%1 → %2 <small>%3</small></h3>")
                .arg(escape(o->kind), escape(o->botId), escape(o->commandId));
    html += QStringLiteral("<p><b>%1</b>%2</p>")
                .arg(escape(CommandTableModel::stateText(*o)),
                     o->reason.isEmpty() ? QString() : QStringLiteral(": ") + escape(o->reason));
    if (const Sent *sent = sentFor(*o)) {
        const CommandSpec &spec = sent->spec;
        QStringList params;
        if (spec.kind == CommandKind::Stop)
            params << tr("reason: %1").arg(escape(spec.stopReason))
                   << tr("graceful: %1").arg(spec.graceful ? tr("yes") : tr("no"));
        for (auto kv = spec.config.cbegin(); kv != spec.config.cend(); ++kv)
            params << escape(kv.key()) + QStringLiteral(" = ") + escape(kv.value());
        if (spec.kind == CommandKind::ConfigUpdate)
            params << tr("version %1").arg(spec.configVersion);
        if (spec.kind == CommandKind::Custom) {
            params << tr("name: %1").arg(escape(spec.customName));
            const QJsonDocument doc = QJsonDocument::fromJson(spec.jsonPayload);
            if (!doc.isNull())
                params << QStringLiteral("<pre>%1</pre>")
                              .arg(escape(QString::fromUtf8(doc.toJson(QJsonDocument::Indented))));
        }
        params << tr("timeout: %1 ms").arg(sent->timeout.count());
        html +=
            QStringLiteral("<p><b>Command</b><br>%1</p>").arg(params.join(QStringLiteral("<br>")));
    }
    auto since = [o](Clock::time_point t) {
        return QStringLiteral("+%1 ms").arg(
            double(duration_cast<microseconds>(t - o->registeredAt).count()) / 1000, 0, 'f', 1);
    };
    html += QStringLiteral("<p><b>Timeline</b><br>");
    html += tr("registered %1<br>").arg(wall(*o, o->registeredAt));
    if (o->wasSent())
        html += tr("sent %1 (%2)<br>").arg(wall(*o, o->sentAt), since(o->sentAt));
    if (o->progressDropped > 0)
        html += tr("(%n earlier progress update(s) not kept)<br>", nullptr, o->progressDropped);
    for (const ProgressStep &step : o->progressSteps)
        html += tr("progress %1% %2 (%3)<br>")
                    .arg(step.percent)
                    .arg(escape(step.message), since(step.at));
    if (o->answered())
        html += tr("%1 %2 (%3), latency %4 ms<br>")
                    .arg(stateName(o->state), wall(*o, o->finishedAt), since(o->finishedAt))
                    .arg(double(o->latency().count()) / 1e6, 0, 'f', 2);
    else if (o->finished()) // never answered in time: no latency to speak of
        html += tr("%1 %2 (%3)<br>")
                    .arg(stateName(o->state), wall(*o, o->finishedAt), since(o->finishedAt));
    else
        html += tr("deadline %1 (%2)<br>").arg(wall(*o, o->deadline), since(o->deadline));
    if (o->hasLateAck())
        html += tr("late ack %1 (%2, %3 s after the deadline)<br>")
                    .arg(wall(*o, o->lateAckAt), since(o->lateAckAt))
                    .arg(double(o->lateBy().count()) / 1e9, 0, 'f', 1);
    html += QStringLiteral("</p>");
    for (const auto &[title, ack] :
         {std::pair{tr("Ack"), o->ack}, std::pair{tr("Late ack"), o->lateAck}}) {
        if (!ack)
            continue;
        html += QStringLiteral("<p><b>%1</b><br>success: %2<br>message: %3<br>error code: %4")
                    .arg(title, ack->success ? tr("yes") : tr("no"), escape(ack->message))
                    .arg(ack->errorCode);
        if (ack->botReceivedAtMs)
            html += tr("<br>bot received %1, completed %2")
                        .arg(QDateTime::fromMSecsSinceEpoch(ack->botReceivedAtMs)
                                 .toString(QStringLiteral("HH:mm:ss.zzz")),
                             QDateTime::fromMSecsSinceEpoch(ack->botCompletedAtMs)
                                 .toString(QStringLiteral("HH:mm:ss.zzz")));
        if (!ack->result.isEmpty()) {
            const QJsonDocument doc = QJsonDocument::fromJson(ack->result);
            html += QStringLiteral("<pre>%1</pre>")
                        .arg(escape(doc.isNull()
                                        ? QString::fromUtf8(ack->result)
                                        : QString::fromUtf8(doc.toJson(QJsonDocument::Indented))));
        }
        html += QStringLiteral("</p>");
    }
    m_details->setHtml(html);
}

QString MainWindow::statusText() const
{
    return m_status->text();
}

void MainWindow::refreshStatus()
{
    const qint64 now = m_clock.elapsed();
    const quint64 finished = quint64(m_counts.finished);
    m_rateWindow.emplace_back(now, finished);
    while (m_rateWindow.size() > 2 && now - m_rateWindow.front().first > 5000)
        m_rateWindow.pop_front();
    double rate = 0;
    if (m_rateWindow.size() >= 2 && now > m_rateWindow.front().first)
        rate = double(finished - m_rateWindow.front().second) * 1000.0 /
               double(now - m_rateWindow.front().first);
    const QString where = m_backend.isRemote() ? tr("attached to %1").arg(m_backend.address())
                                               : tr("hub %1").arg(m_backend.address());
    m_status->setText(tr("bots %1/%2 connected · pending %3 · acked %4 · rejected %5 · expired %6 "
                         "· late acks %7 · %8 cmd/s · %9")
                          .arg(m_fleet->connectedCount())
                          .arg(m_fleet->rowCount())
                          .arg(m_counts.pending)
                          .arg(m_counts.acked)
                          .arg(m_counts.rejected)
                          .arg(m_counts.expired)
                          .arg(m_counts.lateAcks)
                          .arg(rate, 0, 'f', rate < 10 ? 1 : 0)
                          .arg(where));
}

void MainWindow::refreshCountdown()
{
    // Repaint only the visible cells of the Remaining column; data() computes the value.
    if (m_counts.pending <= 0 || m_commandsView->isColumnHidden(CommandTableModel::Remaining))
        return;
    const int x = m_commandsView->columnViewportPosition(CommandTableModel::Remaining);
    const int w = m_commandsView->columnWidth(CommandTableModel::Remaining);
    m_commandsView->viewport()->update(QRect(x, 0, w, m_commandsView->viewport()->height()));
}

void MainWindow::closeEvent(QCloseEvent *event)
{
    saveSettings();
    QMainWindow::closeEvent(event);
}

void MainWindow::saveSettings() const
{
    QSettings settings;
    settings.setValue(QStringLiteral("window/geometry"), saveGeometry());
    settings.setValue(QStringLiteral("window/state"), saveState());
    settings.setValue(QStringLiteral("window/mainSplit"), m_mainSplit->saveState());
    settings.setValue(QStringLiteral("window/rightSplit"), m_rightSplit->saveState());
    settings.setValue(QStringLiteral("fleet/header"), m_fleetView->horizontalHeader()->saveState());
    settings.setValue(QStringLiteral("commands/header"),
                      m_commandsView->horizontalHeader()->saveState());
    settings.setValue(QStringLiteral("commands/stateFilter"), m_stateFilter->currentIndex());
    settings.setValue(QStringLiteral("commands/textFilter"), m_textFilter->text());
    settings.setValue(QStringLiteral("fleet/filter"), m_fleetFilter->text());
    m_send->saveSettings();
}

void MainWindow::loadSettings()
{
    QSettings settings;
    restoreGeometry(settings.value(QStringLiteral("window/geometry")).toByteArray());
    restoreState(settings.value(QStringLiteral("window/state")).toByteArray());
    m_mainSplit->restoreState(settings.value(QStringLiteral("window/mainSplit")).toByteArray());
    m_rightSplit->restoreState(settings.value(QStringLiteral("window/rightSplit")).toByteArray());
    m_fleetView->horizontalHeader()->restoreState(
        settings.value(QStringLiteral("fleet/header")).toByteArray());
    m_commandsView->horizontalHeader()->restoreState(
        settings.value(QStringLiteral("commands/header")).toByteArray());
    m_stateFilter->setCurrentIndex(
        settings.value(QStringLiteral("commands/stateFilter"), 0).toInt());
    m_textFilter->setText(settings.value(QStringLiteral("commands/textFilter")).toString());
    m_fleetFilter->setText(settings.value(QStringLiteral("fleet/filter")).toString());
    m_send->loadSettings();
}

} // namespace opconsole
