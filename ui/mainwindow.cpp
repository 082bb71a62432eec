#include "mainwindow.h"

#include "commandspanel.h"
#include "commandtablemodel.h"
#include "connectdialog.h"
#include "detailsview.h"
#include "fleetmodel.h"
#include "fleetpanel.h"
#include "sendpanel.h"
#include "statusline.h"

#include <QAction>
#include <QApplication>
#include <QClipboard>
#include <QCloseEvent>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QProcess>
#include <QPushButton>
#include <QSettings>
#include <QShortcut>
#include <QSplitter>
#include <QStatusBar>
#include <QTableView>
#include <QTime>
#include <QTimer>
#include <QToolBar>
#include <QVBoxLayout>

namespace opconsole {

using namespace std::chrono;

MainWindow::MainWindow(ConsoleBackend &backend, QWidget *parent)
    : QMainWindow(parent), m_backend(backend)
{
    setWindowTitle(backend.isRemote() ? tr("opconsole — attached to %1").arg(backend.address())
                                      : tr("opconsole — %1").arg(backend.address()));

    m_fleet = new FleetPanel([&backend](const QString &bot) { return backend.pendingCount(bot); });
    m_send = new SendPanel;
    m_commands = new CommandsPanel;
    m_details = new DetailsView;

    m_rightSplit = new QSplitter(Qt::Vertical);
    m_rightSplit->addWidget(m_send);
    m_rightSplit->addWidget(m_commands);
    m_rightSplit->addWidget(m_details);
    m_rightSplit->setStretchFactor(1, 3);
    m_rightSplit->setStretchFactor(2, 1);
    m_mainSplit = new QSplitter(Qt::Horizontal);
    m_mainSplit->addWidget(m_fleet);
    m_mainSplit->addWidget(m_rightSplit);
    m_mainSplit->setStretchFactor(1, 3);
    m_mainSplit->setSizes({510, 890});
    m_rightSplit->setSizes({110, 560, 190});
    m_send->setSizePolicy(QSizePolicy::Preferred, QSizePolicy::Maximum);
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
    m_status = new StatusLine;
    statusBar()->addPermanentWidget(m_status, 1);

    buildActions();

    // Data in: what the backend knows now, then its changes.
    auto upsertBots = [this](const QList<BotInfo> &bots) {
        for (const QString &added : m_fleet->upsert(bots))
            m_commands->addBot(added);
    };
    upsertBots(backend.bots());
    onChanged(backend.commands());
    connect(&backend, &ConsoleBackend::commandsChanged, this, &MainWindow::onChanged);
    connect(&backend, &ConsoleBackend::botsChanged, this, upsertBots);
    connect(&backend, &ConsoleBackend::linkChanged, this, &MainWindow::onLinkChanged);
    connect(&backend, &ConsoleBackend::notice, this,
            [this](const QString &message) { statusBar()->showMessage(message, 15000); });
    connect(m_commands, &CommandsPanel::fanOutShown, this, [this](const QString &fanOutId) {
        if (fanOutId.isEmpty())
            statusBar()->clearMessage();
        else
            statusBar()->showMessage(
                tr("Showing fan-out %1 only; Esc in the table shows all").arg(fanOutId));
    });

    connect(m_fleet, &FleetPanel::selectionChanged, this,
            [this] { m_send->setTargetCount(int(selectedBots().size())); });
    connect(m_send, &SendPanel::sendRequested, this, &MainWindow::sendToSelection);
    connect(m_send, &SendPanel::heightWanted, this, &MainWindow::fitSendPanel);
    connect(m_commands, &CommandsPanel::currentChanged, this, &MainWindow::showDetails);
    connect(m_commands, &CommandsPanel::contextMenuRequested, this,
            [this](const QPoint &globalPos) { m_commandMenu->popup(globalPos); });

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
    m_fleet->setHubColumnVisible(severalHubs);
    m_commands->setHubColumnVisible(severalHubs);
    fitSendPanel();
    onLinkChanged();
    refreshStatus();
}

MainWindow::~MainWindow() = default;

QTableView *MainWindow::fleetView() const
{
    return m_fleet->view();
}

QTableView *MainWindow::commandsView() const
{
    return m_commands->view();
}

CommandTableModel *MainWindow::commandModel() const
{
    return m_commands->model();
}

CommandFilterProxy *MainWindow::commandProxy() const
{
    return m_commands->proxy();
}

FleetModel *MainWindow::fleetModel() const
{
    return m_fleet->model();
}

QListView *MainWindow::fanOutList() const
{
    return m_commands->fanOutList();
}

FanOutModel *MainWindow::fanOutModel() const
{
    return m_commands->fanOutModel();
}

QTextBrowser *MainWindow::details() const
{
    return m_details;
}

QComboBox *MainWindow::stateFilter() const
{
    return m_commands->stateFilter();
}

QLineEdit *MainWindow::commandFilter() const
{
    return m_commands->textFilter();
}

QLineEdit *MainWindow::fleetFilter() const
{
    return m_fleet->filter();
}

LatencyChart *MainWindow::latencyChart() const
{
    return m_fleet->chart();
}

QString MainWindow::statusText() const
{
    return m_status->text();
}

QStringList MainWindow::selectedBots() const
{
    return m_fleet->selectedBots();
}

QStringList MainWindow::selectedCommandIds() const
{
    return m_commands->selectedCommandIds();
}

void MainWindow::selectBots(const QStringList &botIds)
{
    m_fleet->selectBots(botIds);
}

void MainWindow::selectCommand(const QString &commandId)
{
    m_commands->selectCommand(commandId);
}

void MainWindow::showFanOut(const QString &fanOutId)
{
    m_commands->showFanOut(fanOutId);
}

void MainWindow::onLinkChanged()
{
    // Unreachable: the views keep their last state, greyed, under a banner that says why and
    // since when; sends are refused by the backend meanwhile.
    const bool down = m_backend.link() != ConsoleBackend::Link::Live;
    if (down && m_banner->isHidden())
        m_staleSince = QTime::currentTime().toString(QStringLiteral("HH:mm:ss"));
    const bool canSend = m_backend.canSend();
    m_banner->setText(
        m_backend.link() == ConsoleBackend::Link::Connecting
            ? tr("Attaching to %1…").arg(m_backend.address().toHtmlEscaped())
        : canSend // several hubs, some attached
            ? tr("<b>Not all hubs attached since %1</b>: %2. Their bots and commands are as of "
                 "then; sends to them are refused, the other hubs work as usual.")
                  .arg(m_staleSince, m_backend.linkProblem().toHtmlEscaped())
            : tr("<b>Not attached since %1</b>: %2. What you see is as of then; sending is off "
                 "until the console is attached again.")
                  .arg(m_staleSince, m_backend.linkProblem().toHtmlEscaped()));
    m_banner->setVisible(down);
    for (QTableView *view : {m_fleet->view(), m_commands->view()})
        view->setStyleSheet(down && !canSend ? QStringLiteral("QTableView { color: gray; }")
                                             : QString());
    m_send->sendButton()->setEnabled(canSend);
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

void MainWindow::attachToHubs()
{
    ConnectDialog dialog(this);
    if (dialog.exec() != QDialog::Accepted || dialog.chosen().isEmpty())
        return;
    const QStringList hubs = dialog.chosen();
    ConnectDialog::remember(hubs);
    // Another console, so that this one (and its hub, if it hosts one) stays as it is.
    const bool started =
        QProcess::startDetached(QCoreApplication::applicationFilePath(),
                                {QStringLiteral("--connect"), hubs.join(QLatin1Char(','))});
    statusBar()->showMessage(started ? tr("Opening a console attached to %1").arg(hubs.join(", "))
                                     : tr("Could not start another console"),
                             5000);
}

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
        m_commands->view()->addAction(a);
    for (QAction *a : {resend, copyOpctl})
        addAction(a);
    toolbar->addAction(cancel);
    toolbar->addSeparator();
    auto *attach = toolbar->addAction(tr("Attach to hubs…"), this, &MainWindow::attachToHubs);
    attach->setShortcut(QKeySequence(QStringLiteral("Ctrl+Shift+O")));
    attach->setToolTip(tr("Open another console on hubs that run elsewhere (Ctrl+Shift+O)"));

    auto *sendShortcut = new QShortcut(QKeySequence(QStringLiteral("Ctrl+Return")), this);
    connect(sendShortcut, &QShortcut::activated, m_send->sendButton(), &QPushButton::click);
    auto *focusFilter = new QShortcut(QKeySequence(QStringLiteral("/")), this);
    connect(focusFilter, &QShortcut::activated, this, [this] {
        m_commands->textFilter()->setFocus();
        m_commands->textFilter()->selectAll();
    });
    auto *focusFleet = new QShortcut(QKeySequence(QStringLiteral("Ctrl+F")), this);
    connect(focusFleet, &QShortcut::activated, m_fleet->filter(), qOverload<>(&QWidget::setFocus));
}

void MainWindow::onChanged(const QList<CommandOutcome> &records)
{
    // The status line follows changes within a quarter of a second (not only at 1 Hz), so it
    // never disagrees with the table for long.
    if (!m_statusDue) {
        m_statusDue = true;
        QTimer::singleShot(250, this, [this] {
            m_statusDue = false;
            refreshStatus();
        });
    }
    // Counted before the table takes the records: the row still holds the previous state. A
    // command can change several times in one batch (registered and sent, often): each of its
    // records is compared with the one before it in the batch.
    QHash<QString, const CommandOutcome *> previous;
    for (const CommandOutcome &o : records) {
        const CommandOutcome *&before = previous[o.commandId];
        if (!before)
            before = m_commands->record(o.commandId);
        m_status->counts().note(before, o);
        before = &o;
    }
    m_commands->apply(records);
    m_fleet->apply(records);
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
        if (m_sentOrder.size() > size_t(m_commands->model()->maxRows())) {
            m_sent.remove(m_sentOrder.front());
            m_sentOrder.pop_front();
        }
    }
    if (bots.size() == 1)
        statusBar()->showMessage(tr("%1 sent to %2").arg(spec.name(), bots.first()), 3000);
    else
        statusBar()->showMessage(tr("%1 sent to %2 bots").arg(spec.name()).arg(bots.size()), 3000);
}

const SentSpec *MainWindow::sentFor(const CommandOutcome &o) const
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
        const CommandOutcome *o = m_commands->record(id);
        if (o && o->state == CommandState::Pending)
            asked += m_backend.cancel(id, tr("cancelled by the operator"), o->hub) ? 1 : 0;
    }
    statusBar()->showMessage(tr("%1 command(s) cancelled").arg(asked), 3000);
}

void MainWindow::resendSelected()
{
    for (const QString &id : selectedCommandIds()) {
        const CommandOutcome *row = m_commands->record(id);
        if (!row || row->botId.isEmpty())
            continue;
        const CommandOutcome shown = *row; // send() may change the table and m_sent
        if (const SentSpec *sent = sentFor(shown)) {
            const SentSpec again = *sent;
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

void MainWindow::copySelectedAsOpctl()
{
    QStringList lines;
    for (const QString &id : selectedCommandIds()) {
        if (const CommandOutcome *o = m_commands->record(id))
            lines << opctlLine(*o, m_backend.address(), sentFor(*o));
    }
    QApplication::clipboard()->setText(lines.join(QLatin1Char('\n')));
}

void MainWindow::showDetails()
{
    const CommandOutcome *o = m_commands->record(m_commands->currentCommandId());
    m_details->showRecord(o, o ? sentFor(*o) : nullptr);
}

void MainWindow::refreshStatus()
{
    m_status->setHub(m_backend.address(), m_backend.isRemote());
    m_status->refresh(m_fleet->model()->connectedCount(), m_fleet->model()->rowCount());
}

void MainWindow::refreshCountdown()
{
    if (m_status->counts().pending() > 0)
        m_commands->refreshCountdown();
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
    m_fleet->saveSettings();
    m_commands->saveSettings();
    m_send->saveSettings();
}

void MainWindow::loadSettings()
{
    QSettings settings;
    restoreGeometry(settings.value(QStringLiteral("window/geometry")).toByteArray());
    restoreState(settings.value(QStringLiteral("window/state")).toByteArray());
    m_mainSplit->restoreState(settings.value(QStringLiteral("window/mainSplit")).toByteArray());
    m_rightSplit->restoreState(settings.value(QStringLiteral("window/rightSplit")).toByteArray());
    m_fleet->loadSettings();
    m_commands->loadSettings();
    m_send->loadSettings();
}

} // namespace opconsole
