#include "mainwindow.h"

#include "botdetails.h"
#include "commandfilterproxy.h"
#include "commandspanel.h"
#include "commandtablemodel.h"
#include "confirm.h"
#include "connectdialog.h"
#include "detailsview.h"
#include "fanoutmodel.h"
#include "fleetmodel.h"
#include "fleetpanel.h"
#include "historypanel.h"
#include "sendpanel.h"
#include "statusline.h"
#include "theme.h"

#include <QAction>
#include <QApplication>
#include <QClipboard>
#include <QCloseEvent>
#include <QComboBox>
#include <QDate>
#include <QDialog>
#include <QDialogButtonBox>
#include <QDir>
#include <QDockWidget>
#include <QFileDialog>
#include <QFileInfo>
#include <QFutureWatcher>
#include <QInputDialog>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QMenuBar>
#include <QMessageBox>
#include <QProcess>
#include <QPushButton>
#include <QSettings>
#include <QShortcut>
#include <QSplitter>
#include <QStandardPaths>
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
    // A resize is shared one to two, so a window made narrower (or a platform that resizes
    // it after it is shown) does not leave the commands the whole loss.
    m_mainSplit->setStretchFactor(0, 1);
    m_mainSplit->setStretchFactor(1, 2);
    m_rightSplit->setSizes({110, 560, 190});
    m_send->setSizePolicy(QSizePolicy::Preferred, QSizePolicy::Maximum);
    m_banner = new QLabel;
    m_banner->setObjectName(QStringLiteral("banner"));
    m_banner->setWordWrap(true);
    // Amber on light palettes, dark amber on dark ones (theme.h), following palette changes.
    setThemedStyleSheet(m_banner, QStringLiteral("QLabel { background: @bannerBackground; color: "
                                                 "@bannerText; padding: 6px; border-bottom: 1px "
                                                 "solid @bannerBorder; }"));
    m_banner->hide();
    auto *central = new QWidget;
    auto *centralLayout = new QVBoxLayout(central);
    centralLayout->setContentsMargins(0, 0, 0, 0);
    centralLayout->setSpacing(0);
    centralLayout->addWidget(m_banner);
    centralLayout->addWidget(m_mainSplit, 1);
    setCentralWidget(central);
    m_status = new StatusLine;
    // The counters keep their own width on the right; the rest is for messages ("restart sent
    // to 22 bots", "Select one or more bots"), which a stretching label would hide.
    statusBar()->addPermanentWidget(m_status);
    // What the history keeps; clipped when the window is narrow (the tooltip has it all).
    m_historyLine = new QLabel;
    m_historyLine->setObjectName(QStringLiteral("historyLine"));
    m_historyLine->setMinimumWidth(60);
    m_historyLine->hide();
    statusBar()->addPermanentWidget(m_historyLine);

    m_history = new HistoryPanel(backend);
    m_historyDock = new QDockWidget(tr("History"), this);
    m_historyDock->setObjectName(QStringLiteral("historyDock"));
    m_historyDock->setWidget(m_history);
    addDockWidget(Qt::BottomDockWidgetArea, m_historyDock);
    m_historyDock->hide();
    connect(m_history, &HistoryPanel::exportRequested, this,
            [this] { exportTableAs(Table::History); });

    buildActions();
    m_fleet->setApprovalActions({m_acceptAction, m_rejectAction});

    // Data in: what the backend knows now, then its changes.
    auto upsertBots = [this](const QList<BotInfo> &bots) {
        const QStringList added = m_fleet->upsert(bots);
        m_commands->addBots(added);
        m_history->addBots(added);
        refreshDecisionActions();
    };
    upsertBots(backend.bots());
    onChanged(backend.commands());
    connect(&backend, &ConsoleBackend::commandsChanged, this, &MainWindow::onChanged);
    connect(&backend, &ConsoleBackend::botsChanged, this, upsertBots);
    connect(&backend, &ConsoleBackend::linkChanged, this, &MainWindow::onLinkChanged);
    connect(&backend, &ConsoleBackend::identityChanged, this, [this] {
        refreshDecisionActions();
        refreshStatus();
    });
    connect(&backend, &ConsoleBackend::notice, this,
            [this](const QString &message) { statusBar()->showMessage(message, 15000); });
    connect(m_commands, &CommandsPanel::fanOutShown, this, [this](const QString &fanOutId) {
        if (fanOutId.isEmpty())
            statusBar()->clearMessage();
        else
            statusBar()->showMessage(
                tr("Showing fan-out %1 only; Esc in the table shows all").arg(fanOutId));
    });

    connect(m_fleet, &FleetPanel::selectionChanged, this, [this] {
        m_send->setTargetCount(int(selectedBots().size()));
        refreshDecisionActions();
    });
    connect(m_send, &SendPanel::sendRequested, this, &MainWindow::sendToSelection);
    connect(m_send, &SendPanel::heightWanted, this, &MainWindow::fitSendPanel);
    connect(m_commands, &CommandsPanel::currentChanged, this, &MainWindow::showDetails);
    connect(m_commands, &CommandsPanel::contextMenuRequested, this,
            [this](const QPoint &globalPos) {
                // Cancel only where there is something to cancel.
                refreshCancelAction();
                m_commandMenu->popup(globalPos);
            });
    connect(m_fleet, &FleetPanel::contextMenuRequested, this,
            [this](const QPoint &globalPos) { m_fleetMenu->popup(globalPos); });
    connect(m_fleet, &FleetPanel::botActivated, this, &MainWindow::showBotDetails);
    // File > Export writes the table used last: the one that had the focus last.
    m_focusWatch =
        connect(qApp, &QApplication::focusChanged, this, [this](QWidget *, QWidget *now) {
            if (!now)
                return;
            if (m_history->isAncestorOf(now))
                m_activeTable = Table::History;
            else if (m_commands->isAncestorOf(now))
                m_activeTable = Table::Commands;
        });

    // Live parts: countdowns at 10 Hz (visible cells only), fleet ages and status at 1 Hz.
    auto *countdown = new QTimer(this);
    countdown->setInterval(100);
    connect(countdown, &QTimer::timeout, this, &MainWindow::refreshCountdown);
    countdown->start();
    auto *slow = new QTimer(this);
    slow->setInterval(1000);
    connect(slow, &QTimer::timeout, this, [this] {
        m_fleet->refreshLive([this](const QString &id) { return m_backend.botInfo(id); },
                             [this] { return m_backend.bots(); });
        refreshStatus();
        if (m_botDetails && m_botDetails->isVisible()) {
            // Its bot may be off screen (the refresh above looked up the rows on screen).
            if (const auto bot = m_backend.botInfo(m_botDetails->botId()))
                m_fleet->model()->refreshLive({*bot});
            showBotDetails(m_botDetails->botId());
        }
        if (++m_slowTicks % 5 == 0) // the history's stats: every 5 s is plenty
            refreshHistoryLine();
    });
    slow->start();

    loadSettings();
    // The Hub columns only when attached to several hubs.
    const bool severalHubs = backend.hubs().size() > 1;
    m_fleet->setHubColumnVisible(severalHubs);
    m_commands->setHubColumnVisible(severalHubs);
    m_history->setHubColumnVisible(severalHubs);
    if (!backend.hasHistory())
        m_historyDock->hide(); // a layout saved by a console with history
    fitSendPanel();
    onLinkChanged();
    refreshStatus();
    refreshHistoryLine();
}

MainWindow::~MainWindow()
{
    // Children go before QObject's destructor disconnects anything, and their going moves
    // the focus: the receiver must not run on a half-destroyed window.
    disconnect(m_focusWatch);
}

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
    refreshDecisionActions();
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
    // Another console, so that this one (and its hub, if it hosts one) stays as it is; with
    // this one's TLS files and operator token file, if it was given any.
    QStringList args{QStringLiteral("--connect"), hubs.join(QLatin1Char(','))};
    const QStringList own = QCoreApplication::arguments();
    for (qsizetype i = 1; i < own.size(); ++i) {
        for (const char *name :
             {"--tls-ca", "--tls-cert", "--tls-key", "--tls-server-name", "--token-file"}) {
            const QString option = QString::fromLatin1(name);
            if (own[i] == option && i + 1 < own.size())
                args << option << own[i + 1];
            else if (own[i].startsWith(option + QLatin1Char('=')))
                args << own[i];
        }
        for (const char *flag : {"--tls", "--insecure"}) {
            if (own[i] == QLatin1String(flag))
                args << own[i];
        }
    }
    const bool started = QProcess::startDetached(QCoreApplication::applicationFilePath(), args);
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
    cancel->setObjectName(QStringLiteral("cancelCommands"));
    cancel->setToolTip(tr("Cancel the selected pending commands (Del)"));
    cancel->setShortcut(QKeySequence::Delete);
    // Greyed in the menu over finished commands only; elsewhere (toolbar, Del) it says why not.
    connect(m_commandMenu, &QMenu::aboutToHide, cancel, [cancel] { cancel->setEnabled(true); });
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
    m_commandMenu->addSeparator();
    auto *clearFinished =
        m_commandMenu->addAction(tr("Clear finished commands"), this, &MainWindow::clearFinished);
    clearFinished->setObjectName(QStringLiteral("clearFinished"));
    clearFinished->setShortcut(QKeySequence(QStringLiteral("Ctrl+L")));
    clearFinished->setToolTip(tr("Take every finished command out of the table; pending ones "
                                 "stay, the history keeps them all (Ctrl+L)"));
    for (QAction *a : {cancel, copy, details})
        m_commands->view()->addAction(a);
    addAction(clearFinished);
    for (QAction *a : {resend, copyOpctl})
        addAction(a);
    toolbar->addAction(cancel);
    toolbar->addSeparator();
    auto *attach = toolbar->addAction(tr("Attach to hubs…"), this, &MainWindow::attachToHubs);
    attach->setShortcut(QKeySequence(QStringLiteral("Ctrl+Shift+O")));
    attach->setToolTip(tr("Open another console on hubs that run elsewhere (Ctrl+Shift+O)"));

    // History and export: a menu bar, the history also on the toolbar.
    auto *fileMenu = menuBar()->addMenu(tr("&File"));
    m_exportAction = fileMenu->addAction(tr("&Export…"), this, &MainWindow::exportActiveTable);
    m_exportAction->setShortcut(QKeySequence(QStringLiteral("Ctrl+E")));
    m_exportAction->setToolTip(tr("Write what the commands table (or the history, if you used "
                                  "it last) shows to a CSV or JSON file (Ctrl+E)"));
    fileMenu->addSeparator();
    fileMenu->addAction(attach);
    fileMenu->addSeparator();
    QAction *quit = fileMenu->addAction(tr("&Quit"), this, &QWidget::close);
    quit->setObjectName(QStringLiteral("quit"));
    quit->setShortcut(QKeySequence(QStringLiteral("Ctrl+Q"))); // also where the platform has none
    quit->setToolTip(tr("Close the console (its hub, if it hosts one, stops with it)"));
    auto *viewMenu = menuBar()->addMenu(tr("&View"));
    m_historyAction = viewMenu->addAction(tr("&History…"), this, &MainWindow::showHistory);
    m_historyAction->setShortcut(QKeySequence(QStringLiteral("Ctrl+H")));
    m_botHistoryAction =
        viewMenu->addAction(tr("History of this bot"), this, &MainWindow::showSelectedBotHistory);
    m_botHistoryAction->setShortcut(QKeySequence(QStringLiteral("Ctrl+Shift+H")));
    const bool history = m_backend.hasHistory();
    const QString noHistory = tr("No history: this console was started with --no-history");
    m_historyAction->setToolTip(
        history ? tr("Search the commands of this run and earlier ones (Ctrl+H)") : noHistory);
    m_botHistoryAction->setToolTip(
        history ? tr("Every command of the selected bot, across restarts (Ctrl+Shift+H)")
                : noHistory);
    for (QAction *a : {m_historyAction, m_botHistoryAction})
        a->setEnabled(history);
    viewMenu->addSeparator();
    viewMenu->addAction(clearFinished);
    viewMenu->setToolTipsVisible(true);
    auto *settingsMenu = menuBar()->addMenu(tr("&Settings"));
    QAction *confirmAction = settingsMenu->addAction(tr("&Confirm fan-outs…"), this, [this] {
        bool ok = false;
        const int n = QInputDialog::getInt(
            this, tr("Confirm fan-outs"),
            tr("Ask before a stop, restart or config update goes to more than this many bots "
               "(0: always ask):"),
            confirmAbove(), 0, 1'000'000, 1, &ok);
        if (ok)
            setConfirmAbove(n);
    });
    confirmAction->setObjectName(QStringLiteral("confirmFanOuts"));
    toolbar->addAction(m_historyAction);
    m_fleetMenu = new QMenu(this);
    m_fleetMenu->setToolTipsVisible(true);
    QAction *botDetails = m_fleetMenu->addAction(tr("&Details…"), this,
                                                 [this] { showBotDetails(m_fleet->currentBot()); });
    botDetails->setObjectName(QStringLiteral("botDetailsAction"));
    botDetails->setToolTip(tr("Everything known of the bot (Enter in the fleet, or double-click "
                              "it)"));
    botDetails->setShortcut(QKeySequence(Qt::Key_Return));
    botDetails->setShortcutContext(Qt::WidgetShortcut); // the fleet's table only
    m_fleet->view()->addAction(botDetails);
    QAction *botCommands = m_fleetMenu->addAction(
        tr("Its &commands"), this, [this] { showBotCommands(m_fleet->currentBot()); });
    botCommands->setToolTip(tr("Show only this bot's commands in the commands table"));
    QAction *botPing = m_fleetMenu->addAction(tr("&Ping"), this, [this] {
        if (const QString bot = m_fleet->currentBot(); !bot.isEmpty())
            send({bot}, CommandSpec::of(CommandKind::Ping), m_send->timeoutFor(CommandKind::Ping));
    });
    botPing->setToolTip(tr("Ping this bot only"));
    QAction *botCopy = m_fleetMenu->addAction(tr("Copy &id"), this, [this] {
        QApplication::clipboard()->setText(m_fleet->selectedBots().join(QLatin1Char('\n')));
    });
    botCopy->setToolTip(tr("Copy the selected bots' ids, one a line"));
    m_fleetMenu->addSeparator();
    m_fleetMenu->addAction(m_botHistoryAction);

    // Help: the shortcuts in one place, and what this is.
    auto *helpMenu = new QMenu(tr("&Help"), this);
    QAction *shortcuts =
        helpMenu->addAction(tr("&Keyboard shortcuts"), this, &MainWindow::showShortcuts);
    shortcuts->setObjectName(QStringLiteral("keyboardShortcuts"));
    shortcuts->setShortcut(QKeySequence(QStringLiteral("F1")));
    helpMenu->addAction(tr("&About opconsole"), this, [this] {
        QMessageBox::about(
            this, tr("About opconsole"),
            tr("<b>opconsole</b> %1<br>An operator console for fleets of bots: commands with "
               "request/response semantics over gRPC streams.<br><br>Qt %2")
                .arg(QCoreApplication::applicationVersion(), QString::fromLatin1(qVersion())));
    });

    // Admission (docs/security.md): a Bots menu, the fleet's context menu, and the approval bar.
    auto *botsMenu = menuBar()->addMenu(tr("&Bots"));
    botsMenu->setToolTipsVisible(true);
    m_acceptAction =
        botsMenu->addAction(tr("&Accept"), this, [this] { decideSelected(BotDecision::Accept); });
    m_acceptAction->setShortcut(QKeySequence(QStringLiteral("Ctrl+Shift+A")));
    m_rejectAction =
        botsMenu->addAction(tr("&Reject…"), this, [this] { decideSelected(BotDecision::Reject); });
    m_revokeAction =
        botsMenu->addAction(tr("Re&voke…"), this, [this] { decideSelected(BotDecision::Revoke); });
    m_acceptAction->setObjectName(QStringLiteral("acceptBots"));
    m_rejectAction->setObjectName(QStringLiteral("rejectBots"));
    m_revokeAction->setObjectName(QStringLiteral("revokeBots"));
    m_fleetMenu->addSeparator();
    for (QAction *a : {m_acceptAction, m_rejectAction, m_revokeAction})
        m_fleetMenu->addAction(a);
    connect(m_fleetMenu, &QMenu::aboutToShow, this, &MainWindow::refreshDecisionActions);
    connect(botsMenu, &QMenu::aboutToShow, this, &MainWindow::refreshDecisionActions);

    menuBar()->addMenu(helpMenu); // last, after Bots
    auto *sendShortcut = new QShortcut(QKeySequence(QStringLiteral("Ctrl+Return")), this);
    sendShortcut->setWhatsThis(tr("Send the command to the selected bots"));
    connect(sendShortcut, &QShortcut::activated, m_send->sendButton(), &QPushButton::click);
    auto *focusFilter = new QShortcut(QKeySequence(QStringLiteral("/")), this);
    focusFilter->setWhatsThis(tr("Filter the commands"));
    connect(focusFilter, &QShortcut::activated, this, [this] {
        m_commands->textFilter()->setFocus();
        m_commands->textFilter()->selectAll();
    });
    auto *focusFleet = new QShortcut(QKeySequence(QStringLiteral("Ctrl+F")), this);
    focusFleet->setWhatsThis(tr("Filter the fleet"));
    connect(focusFleet, &QShortcut::activated, m_fleet->filter(), qOverload<>(&QWidget::setFocus));
    // Every pane one key away, and Tab through them in reading order: the fleet's filter, its
    // table, the send panel, the commands' filters, their table, the details (tables give Tab
    // back rather than walking their cells).
    const struct
    {
        const char *key;
        QWidget *target;
        const char *what;
    } panes[] = {
        {"Alt+1", m_fleet->view(), "Go to the fleet"},
        {"Alt+2", m_send->kindBox(), "Go to the send panel"},
        {"Alt+3", m_commands->view(), "Go to the commands"},
        {"Alt+4", m_details, "Go to the details"},
    };
    for (const auto &pane : panes) {
        auto *go = new QShortcut(QKeySequence(QString::fromLatin1(pane.key)), this);
        go->setWhatsThis(tr(pane.what));
        QWidget *target = pane.target;
        connect(go, &QShortcut::activated, target,
                [target] { target->setFocus(Qt::ShortcutFocusReason); });
    }
    setTabOrder(m_fleet->filter(), m_fleet->view());
    setTabOrder(m_fleet->view(), m_send->kindBox());
    setTabOrder(m_commands->view(), m_details);
}

void MainWindow::showShortcuts()
{
    // Built from the window itself, so it never disagrees with what the keys do.
    QList<QPair<QString, QString>> rows;
    for (const QAction *action : findChildren<QAction *>()) {
        if (action->shortcut().isEmpty() || action->text().isEmpty())
            continue;
        const QString name = action->text().remove(QLatin1Char('&')).remove(QStringLiteral("…"));
        const QPair<QString, QString> row{action->shortcut().toString(QKeySequence::NativeText),
                                          name};
        if (!rows.contains(row))
            rows << row;
    }
    for (const QShortcut *shortcut : findChildren<QShortcut *>()) {
        if (!shortcut->whatsThis().isEmpty())
            rows << QPair{shortcut->key().toString(QKeySequence::NativeText),
                          shortcut->whatsThis()};
    }
    std::sort(rows.begin(), rows.end(),
              [](const auto &a, const auto &b) { return a.second < b.second; });
    QString html = QStringLiteral("<table cellspacing=4>");
    for (const auto &[keys, what] : std::as_const(rows))
        html += QStringLiteral("<tr><td><b>%1</b></td><td>%2</td></tr>")
                    .arg(keys.toHtmlEscaped(), what.toHtmlEscaped());
    html += QStringLiteral("</table>");
    auto *dialog = new QDialog(this);
    dialog->setObjectName(QStringLiteral("shortcutsDialog"));
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    dialog->setWindowTitle(tr("Keyboard shortcuts"));
    auto *layout = new QVBoxLayout(dialog);
    auto *list = new QLabel(html);
    list->setObjectName(QStringLiteral("shortcutsList"));
    list->setTextFormat(Qt::RichText);
    layout->addWidget(list);
    auto *buttons = new QDialogButtonBox(QDialogButtonBox::Close);
    connect(buttons, &QDialogButtonBox::rejected, dialog, &QDialog::close);
    layout->addWidget(buttons);
    dialog->show();
}

void MainWindow::showHistory()
{
    if (!m_backend.hasHistory())
        return;
    revealHistory();
    m_history->botField()->setFocus();
}

void MainWindow::revealHistory()
{
    const bool wasHidden = m_historyDock->isHidden();
    m_historyDock->show();
    m_historyDock->raise();
    m_activeTable = Table::History;
    // Docked under the tables the first time, it takes a third of the window, not what its
    // contents would like (that leaves the fleet a row or two).
    if (wasHidden && !m_historySized && !m_historyDock->isFloating() &&
        dockWidgetArea(m_historyDock) == Qt::BottomDockWidgetArea)
        resizeDocks({m_historyDock}, {height() / 3}, Qt::Vertical);
    m_historySized = true;
}

void MainWindow::showBotHistory(const QString &botId)
{
    if (!m_backend.hasHistory())
        return;
    if (botId.isEmpty()) {
        statusBar()->showMessage(tr("Select a bot in the fleet."), 5000);
        return;
    }
    m_history->showBot(botId); // searches now: showing the dock does not search again
    revealHistory();
}

void MainWindow::showSelectedBotHistory()
{
    showBotHistory(m_fleet->currentBot());
}

void MainWindow::showBotCommands(const QString &botId)
{
    if (botId.isEmpty())
        return;
    m_commands->botFilter()->setCurrentText(botId);
    m_commands->view()->setFocus(Qt::OtherFocusReason);
}

BotDetailsDialog *MainWindow::botDetailsDialog() const
{
    return m_botDetails;
}

void MainWindow::showBotDetails(const QString &botId)
{
    const FleetModel *fleet = m_fleet->model();
    const int row = fleet->rowOf(botId);
    const BotInfo *bot = fleet->bot(botId);
    if (!bot || row < 0)
        return;
    if (!m_botDetails) {
        m_botDetails = new BotDetailsDialog(this);
        m_botDetails->setHistoryAvailable(m_backend.hasHistory());
        connect(m_botDetails, &BotDetailsDialog::pingRequested, this, [this](const QString &id) {
            send({id}, CommandSpec::of(CommandKind::Ping), m_send->timeoutFor(CommandKind::Ping));
        });
        connect(m_botDetails, &BotDetailsDialog::commandsRequested, this,
                &MainWindow::showBotCommands);
        connect(m_botDetails, &BotDetailsDialog::historyRequested, this,
                &MainWindow::showBotHistory);
    }
    m_botDetails->showBot(*bot, fleet->index(row, FleetModel::InFlight).data().toInt(),
                          fleet->index(row, FleetModel::LastLatency).data().toString());
}

MainWindow::Table MainWindow::activeTable() const
{
    return m_activeTable == Table::History && m_historyDock->isVisible() ? Table::History
                                                                         : Table::Commands;
}

QList<CommandOutcome> MainWindow::rowsOf(Table table) const
{
    return table == Table::History ? m_history->shownRecords() : m_commands->shownRecords();
}

bool MainWindow::exportTable(Table table, const QString &path, ExportFormat format, QString *error,
                             int *rows)
{
    const QList<CommandOutcome> records = rowsOf(table);
    if (rows)
        *rows = int(records.size());
    return writeExport(path, records, format, error);
}

void MainWindow::exportActiveTable()
{
    exportTableAs(activeTable());
}

void MainWindow::exportTableAs(Table table)
{
    const bool history = table == Table::History;
    const QString csvFilter = tr("CSV (*.csv)");
    const QString jsonFilter = tr("JSON (*.json)");
    QSettings settings;
    const bool json =
        settings.value(QStringLiteral("export/format")).toString() == QLatin1String("json");
    QString filter = json ? jsonFilter : csvFilter;
    QString dir = settings.value(QStringLiteral("export/dir")).toString();
    if (dir.isEmpty() || !QFileInfo(dir).isDir())
        dir = QStandardPaths::writableLocation(QStandardPaths::DocumentsLocation);
    const QString suggested = QDir(dir).filePath(
        QStringLiteral("%1-%2.%3")
            .arg(history ? QStringLiteral("history") : QStringLiteral("commands"),
                 QDate::currentDate().toString(Qt::ISODate),
                 json ? QStringLiteral("json") : QStringLiteral("csv")));
    const int shown =
        history ? m_history->view()->model()->rowCount() : m_commands->proxy()->rowCount();
    QString path = QFileDialog::getSaveFileName(
        this,
        history ? tr("Export the history search (%1 rows)").arg(shown)
                : tr("Export the commands table as filtered (%1 rows)").arg(shown),
        suggested, csvFilter + QStringLiteral(";;") + jsonFilter, &filter);
    if (path.isEmpty())
        return;
    std::optional<ExportFormat> format = exportFormatOf(path);
    if (!format) {
        format = filter == jsonFilter ? ExportFormat::Json : ExportFormat::Csv;
        path += *format == ExportFormat::Json ? QStringLiteral(".json") : QStringLiteral(".csv");
        // The dialog asked about the name as typed, not with the extension added.
        if (QFileInfo::exists(path) &&
            QMessageBox::question(this, tr("Replace the file?"),
                                  tr("%1 exists. Replace it?").arg(path)) != QMessageBox::Yes)
            return;
    }
    QString error;
    int rows = 0;
    if (!exportTable(table, path, *format, &error, &rows)) {
        QMessageBox::warning(this, tr("Export failed"), error);
        return;
    }
    settings.setValue(QStringLiteral("export/dir"), QFileInfo(path).absolutePath());
    settings.setValue(QStringLiteral("export/format"), *format == ExportFormat::Json
                                                           ? QStringLiteral("json")
                                                           : QStringLiteral("csv"));
    statusBar()->showMessage(tr("%1 commands exported to %2").arg(rows).arg(path), 8000);
}

void MainWindow::onChanged(const QList<CommandOutcome> &records)
{
    // The status line follows changes within a tenth of a second (not only at 1 Hz), so it
    // never disagrees with the table for long.
    if (!m_statusDue) {
        m_statusDue = true;
        QTimer::singleShot(100, this, [this] {
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
        if (!before && o.event == ChangeEvent::LateAck) {
            // Its row was cleared or dropped by the cap: it was counted when it finished,
            // only the late ack is news.
            CommandOutcome finished = o;
            finished.lateAck.reset();
            m_status->counts().note(&finished, o);
        } else {
            m_status->counts().note(before, o);
        }
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

void MainWindow::send(const QStringList &bots, const CommandSpec &spec, milliseconds timeout,
                      Ask ask)
{
    // A stop, restart or config to many bots is asked about first (confirm.h), and may go in
    // waves (a staged rollout) where the backend can.
    FanOutDecision decision;
    decision.go = FanOutDecision::Go::AtOnce;
    if (ask == Ask::IfMany)
        decision = confirmFanOut(this, spec, bots, m_fleet->filter()->text().trimmed(),
                                 bots.size() > 1 && m_backend.canRollOut());
    if (decision.go == FanOutDecision::Go::Cancel) {
        statusBar()->showMessage(tr("%1 not sent: cancelled").arg(spec.name()), 5000);
        return;
    }
    const bool inWaves = decision.go == FanOutDecision::Go::InWaves;
    const SendReceipt receipt = inWaves
                                    ? m_backend.sendRollout(bots, spec, timeout, decision.rollout)
                                    : m_backend.send(bots, spec, timeout);
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
    if (inWaves) {
        // The command ids come wave by wave on the feed; the fan-out row is the progress.
        m_commands->fanOutModel()->setRollout(receipt.fanOut, int(bots.size()),
                                              decision.rollout.waves(int(bots.size())));
        statusBar()->showMessage(tr("%1 rollout %2 started: %3 waves of %4 bots")
                                     .arg(spec.name(), receipt.fanOut)
                                     .arg(decision.rollout.waves(int(bots.size())))
                                     .arg(decision.rollout.waveSize(int(bots.size()))),
                                 10000);
    } else if (bots.size() == 1) {
        statusBar()->showMessage(tr("%1 sent to %2").arg(spec.name(), bots.first()), 3000);
    } else {
        statusBar()->showMessage(tr("%1 sent to %2 bots").arg(spec.name()).arg(bots.size()), 3000);
    }
}

const SentSpec *MainWindow::sentFor(const CommandOutcome &o) const
{
    auto it = m_sent.constFind(o.commandId);
    if (it == m_sent.cend() && !o.fanOut.isEmpty())
        it = m_sent.constFind(o.fanOut);
    return it == m_sent.cend() ? nullptr : &*it;
}

bool MainWindow::refreshCancelAction()
{
    bool anyPending = false;
    for (const QString &id : selectedCommandIds()) {
        const CommandOutcome *o = m_commands->record(id);
        anyPending = anyPending || (o && o->state == CommandState::Pending);
    }
    if (auto *cancel = findChild<QAction *>(QStringLiteral("cancelCommands")))
        cancel->setEnabled(anyPending);
    return anyPending;
}

void MainWindow::cancelSelected()
{
    int asked = 0, finished = 0;
    for (const QString &id : selectedCommandIds()) {
        const CommandOutcome *o = m_commands->record(id);
        if (o && o->state == CommandState::Pending)
            asked += m_backend.cancel(id, tr("cancelled by the operator"), o->hub) ? 1 : 0;
        else if (o)
            ++finished;
    }
    // Say what happened, also when nothing could be: the toolbar's Cancel acts on commands.
    statusBar()->showMessage(
        asked > 0      ? tr("%n command(s) cancelled", nullptr, asked)
        : finished > 0 ? tr("Nothing to cancel: the selected commands have finished.")
                       : tr("Select pending commands in the commands table to cancel them."),
        5000);
}

void MainWindow::resendSelected()
{
    struct Again
    {
        QString bot;
        SentSpec command;
    };
    std::vector<Again> again;
    QStringList unknown, bots;
    QSet<CommandKind> kinds;
    for (const QString &id : selectedCommandIds()) {
        const CommandOutcome *row = m_commands->record(id);
        if (!row || row->botId.isEmpty())
            continue;
        // The same parameters and timeout, whoever sent it first.
        if (std::optional<SentSpec> command = commandOf(*row, sentFor(*row))) {
            if (command->timeout.count() <= 0)
                command->timeout = m_send->timeoutFor(command->spec.kind);
            kinds.insert(command->spec.kind);
            bots << row->botId;
            again.push_back({row->botId, *command});
        } else {
            unknown << CommandTableModel::shortId(row->commandId);
        }
    }
    // Resending many stops or restarts is a destructive fan-out too: asked about once.
    if (!confirmFanOut(this, kinds, bots, {})) {
        statusBar()->showMessage(tr("Nothing resent: cancelled"), 5000);
        return;
    }
    for (const Again &one : again) // send() may change the table and m_sent: copies
        send({one.bot}, one.command.spec, one.command.timeout, Ask::No);
    if (!unknown.isEmpty())
        statusBar()->showMessage(
            tr("Not resent: the parameters of %1 were not kept whole").arg(unknown.join(", ")),
            10000);
}

void MainWindow::clearFinished()
{
    // Without history the table is all there is of them: asked first.
    if (!m_backend.hasHistory() &&
        QMessageBox::question(this, tr("Clear finished commands?"),
                              tr("This console keeps no history (--no-history): the finished "
                                 "commands cleared from the table are gone from this console "
                                 "for good. Their counts in the status bar stay."),
                              QMessageBox::Yes | QMessageBox::Cancel,
                              QMessageBox::Cancel) != QMessageBox::Yes)
        return;
    const int cleared = m_commands->clearFinished();
    statusBar()->showMessage(
        cleared > 0
            ? (cleared == 1 ? tr("1 finished command cleared from the table")
                            : tr("%1 finished commands cleared from the table").arg(cleared)) +
                  (m_backend.hasHistory() ? tr("; the history keeps them") : QString())
            : tr("No finished commands to clear."),
        5000);
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
            lines << opctlLine(*o, m_backend.operatorAddress(), sentFor(*o));
    }
    QApplication::clipboard()->setText(lines.join(QLatin1Char('\n')));
}

void MainWindow::showDetails()
{
    const CommandOutcome *o = m_commands->record(m_commands->detailsCommandId());
    m_details->showRecord(o, o ? sentFor(*o) : nullptr);
}

void MainWindow::refreshStatus()
{
    m_status->setHub(m_backend.address(), m_backend.isRemote());
    // Who the hub takes the console for, when it checked a token (a hub that asks none calls
    // everyone by their address: nothing worth a place in the line).
    const ConsoleIdentity me = m_backend.identity();
    QString as;
    if (m_backend.isRemote() && me.authenticated && !me.name.isEmpty())
        as = me.scope.isEmpty()
                 ? tr("as %1 (%2)").arg(me.name, security::roleName(me.role))
                 : tr("as %1 (%2, %3)")
                       .arg(me.name, security::roleName(me.role), security::selectorText(me.scope));
    m_status->setIdentity(as);
    m_status->setAwaiting(m_fleet->model()->awaitingCount());
    m_status->refresh(m_fleet->model()->connectedCount(), m_fleet->model()->rowCount());
}

void MainWindow::refreshHistoryLine()
{
    const QString summary = m_backend.historySummary();
    m_historyLine->setVisible(!summary.isEmpty());
    m_historyLine->setText(tr("history: %1").arg(summary));
    m_historyLine->setToolTip(tr("What the command history keeps: %1").arg(summary));
}

QString MainWindow::historyStatusText() const
{
    return m_historyLine->isHidden() ? QString() : m_historyLine->text();
}

void MainWindow::refreshCountdown()
{
    if (m_status->counts().pending() > 0)
        m_commands->refreshCountdown();
}

QString MainWindow::approvalText() const
{
    return m_fleet->approvalText();
}

QWidget *MainWindow::approvalBar() const
{
    return m_fleet->approvalBar();
}

QList<BotInfo> MainWindow::decisionTargets(BotDecision decision) const
{
    QList<BotInfo> targets;
    for (const BotInfo &bot : m_fleet->selectedBotInfos()) {
        if (!m_backend.canDecide(bot.hub))
            continue;
        const bool applies =
            decision == BotDecision::Accept   ? bot.admission != BotAdmission::Accepted
            : decision == BotDecision::Reject ? bot.admission == BotAdmission::Awaiting
                                              : bot.admission == BotAdmission::Accepted;
        if (applies)
            targets << bot;
    }
    return targets;
}

void MainWindow::refreshDecisionActions()
{
    if (!m_acceptAction)
        return;
    const bool admin = m_backend.canDecide();
    QString notAllowed;
    if (!admin) {
        const ConsoleIdentity me = m_backend.identity();
        notAllowed = me.role == security::Role::None
                         ? tr("Only an admin may accept, reject or revoke bots, and the hub has "
                              "not said who it takes this console for")
                         : tr("Only an admin may accept, reject or revoke bots; the hub takes "
                              "this console for %1 (%2)")
                               .arg(me.name, security::roleName(me.role));
    }
    const struct
    {
        QAction *action;
        BotDecision decision;
        QString tip;
    } all[] = {
        {m_acceptAction, BotDecision::Accept,
         tr("Let the selected bots awaiting approval in (or lift a rejection): commands reach "
            "them once connected (Ctrl+Shift+A)")},
        {m_rejectAction, BotDecision::Reject,
         tr("Refuse the selected bots awaiting approval whenever they connect, until accepted "
            "(asks first)")},
        {m_revokeAction, BotDecision::Revoke,
         tr("Disconnect the selected accepted bots at once and refuse them from now on, until "
            "accepted again (asks first)")},
    };
    for (const auto &one : all) {
        one.action->setEnabled(admin && !decisionTargets(one.decision).isEmpty());
        one.action->setToolTip(admin ? one.tip : notAllowed);
    }
}

void MainWindow::decideSelected(BotDecision decision)
{
    const QList<BotInfo> bots = decisionTargets(decision);
    if (bots.isEmpty()) {
        statusBar()->showMessage(
            decision == BotDecision::Accept   ? tr("Select bots awaiting approval, or rejected.")
            : decision == BotDecision::Reject ? tr("Select bots awaiting approval.")
                                              : tr("Select accepted bots."),
            5000);
        return;
    }
    QString reason;
    if (decision != BotDecision::Accept) {
        const std::optional<QString> confirmed = confirmDecision(this, decision, bots);
        if (!confirmed)
            return;
        reason = *confirmed;
    }
    if (decision == BotDecision::Accept) {
        // Lifting a rejection lets a bot back in that an admin once shut out: asked first.
        QStringList rejected;
        for (const BotInfo &bot : bots) {
            if (bot.admission == BotAdmission::Rejected)
                rejected << (bot.credential.isEmpty()
                                 ? bot.botId
                                 : tr("%1 (last seen with %2)").arg(bot.botId, bot.credential));
        }
        if (!rejected.isEmpty() &&
            QMessageBox::question(
                this, tr("Let rejected bots in again?"),
                tr("%1 rejected: %2.\n\nAccepting lifts the rejection; each is held for approval "
                   "(or admitted, on a hub with open admission) when it next connects.")
                    .arg(rejected.size() == 1 ? tr("One bot was")
                                              : tr("%1 bots were").arg(rejected.size()),
                         rejected.mid(0, 10).join(QStringLiteral(", "))),
                QMessageBox::Yes | QMessageBox::Cancel, QMessageBox::Cancel) != QMessageBox::Yes)
            return;
    }
    decide(bots, decision, reason);
}

void MainWindow::decide(const QList<BotInfo> &bots, BotDecision decision, const QString &reason)
{
    if (bots.isEmpty())
        return;
    // One line in the status bar once every answer is in (a remote hub answers later).
    struct Tally
    {
        qsizetype asked = 0;
        qsizetype answered = 0;
        QString lastMessage;
        QStringList failed;
    };
    auto tally = std::make_shared<Tally>();
    tally->asked = bots.size();
    const QString verb = decision == BotDecision::Accept   ? tr("accepted")
                         : decision == BotDecision::Reject ? tr("rejected")
                                                           : tr("revoked");
    const QString action = decision == BotDecision::Accept   ? tr("Accept")
                           : decision == BotDecision::Reject ? tr("Reject")
                                                             : tr("Revoke");
    for (const BotInfo &bot : bots) {
        auto *watcher = new QFutureWatcher<DecisionReply>(this);
        connect(watcher, &QFutureWatcherBase::finished, this,
                [this, watcher, tally, verb, action, botId = bot.botId] {
                    watcher->deleteLater();
                    const QFuture<DecisionReply> future = watcher->future();
                    DecisionReply reply;
                    if (future.resultCount() > 0)
                        reply = future.result();
                    else
                        reply.error = tr("not answered");
                    if (reply.ok())
                        tally->lastMessage = reply.message;
                    else
                        tally->failed << tr("%1: %2").arg(botId, reply.error);
                    if (++tally->answered < tally->asked)
                        return;
                    if (tally->failed.isEmpty()) {
                        statusBar()->showMessage(tally->asked == 1
                                                     ? tally->lastMessage
                                                     : tr("%1 bots %2").arg(tally->asked).arg(verb),
                                                 8000);
                    } else {
                        statusBar()->showMessage(
                            tally->asked == 1
                                ? tr("%1 failed for %2").arg(action, tally->failed.first())
                                : tr("%1 failed for %2 of %3 bots: %4")
                                      .arg(action)
                                      .arg(tally->failed.size())
                                      .arg(tally->asked)
                                      .arg(tally->failed.join(QStringLiteral("; "))),
                            15000);
                    }
                    refreshDecisionActions();
                });
        // Only on the credential shown: a session that took its place meanwhile is not decided.
        watcher->setFuture(
            m_backend.decideBot(bot.botId, decision, reason, bot.hub, bot.credential));
    }
}

void MainWindow::showEvent(QShowEvent *event)
{
    QMainWindow::showEvent(event);
    if (m_splitRestored)
        return;
    // First start: the fleet gets a share of the width the window has when shown (the
    // platform or -geometry may have changed it), not a fixed 530 px: at 1024 px the
    // commands table needs most of it (issue 12, item 4).
    // Once laid out at the size it is shown at (the next turn of the event loop).
    m_splitRestored = true;
    QTimer::singleShot(0, this, [this] {
        const int total = m_mainSplit->width();
        const int fleet = std::clamp(total * 36 / 100, 320, 560);
        m_mainSplit->setSizes({fleet, std::max(1, total - fleet)});
    });
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
    m_history->saveSettings();
}

void MainWindow::loadSettings()
{
    QSettings settings;
    // The size the operator left it at; a first start gets one that shows every panel.
    if (!restoreGeometry(settings.value(QStringLiteral("window/geometry")).toByteArray()))
        resize(1400, 860);
    restoreState(settings.value(QStringLiteral("window/state")).toByteArray());
    m_splitRestored =
        m_mainSplit->restoreState(settings.value(QStringLiteral("window/mainSplit")).toByteArray());
    m_rightSplit->restoreState(settings.value(QStringLiteral("window/rightSplit")).toByteArray());
    m_fleet->loadSettings();
    m_commands->loadSettings();
    m_send->loadSettings();
    m_history->loadSettings();
}

} // namespace opconsole
