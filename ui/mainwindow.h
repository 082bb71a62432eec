#pragma once

#include "commandexport.h"
#include "commandoutcome.h"
#include "commandspec.h"
#include "commandtext.h"
#include "consolebackend.h"

#include <QHash>
#include <QMainWindow>
#include <QPointer>

#include <chrono>
#include <deque>

class QComboBox;
class QDockWidget;
class QLabel;
class QLineEdit;
class QListView;
class QSplitter;
class QTableView;
class QTextBrowser;

namespace opconsole {

class BotDetailsDialog;
class CommandFilterProxy;
class CommandTableModel;
class CommandsPanel;
class DetailsView;
class FanOutModel;
class FleetModel;
class FleetPanel;
class HistoryPanel;
class LatencyChart;
class SendPanel;
class StatusLine;

// The operator's window: fleet, send panel, fan-outs, the live commands table, details,
// status, and the history (a dock: searches across restarts, per bot). Talks to a
// ConsoleBackend only: the hub in this process or one it is attached to. The panels are
// widgets of their own; this assembles them, sends, exports, and holds the actions.
class MainWindow final : public QMainWindow
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(MainWindow)

public:
    explicit MainWindow(ConsoleBackend &backend, QWidget *parent = nullptr);
    ~MainWindow() override;

    // For tests and scripts driving the window.
    QTableView *fleetView() const;
    QTableView *commandsView() const;
    SendPanel *sendPanel() const { return m_send; }
    CommandTableModel *commandModel() const;
    CommandFilterProxy *commandProxy() const;
    FleetModel *fleetModel() const;
    QListView *fanOutList() const;
    FanOutModel *fanOutModel() const;
    // The banner shown while the hub is unreachable (hidden otherwise).
    QLabel *banner() const { return m_banner; }
    // Shows only the commands of one fan-out (empty: all), as a click on its tally row does.
    void showFanOut(const QString &fanOutId);
    QTextBrowser *details() const;
    QComboBox *stateFilter() const;
    QLineEdit *commandFilter() const;
    QLineEdit *fleetFilter() const;
    LatencyChart *latencyChart() const;
    QString statusText() const;
    QStringList selectedBots() const;
    QStringList selectedCommandIds() const;
    void selectBots(const QStringList &botIds);
    void selectCommand(const QString &commandId);
    QMenu *commandMenu() const { return m_commandMenu; }
    // The fleet table's context menu ("History of this bot", the admission decisions).
    QMenu *fleetMenu() const { return m_fleetMenu; }
    // Bots > Accept (Ctrl+Shift+A), Reject…, Revoke…: on the selected bots they apply to,
    // enabled for an admin only (ConsoleBackend::canDecide). Reject and Revoke ask first.
    QAction *acceptAction() const { return m_acceptAction; }
    QAction *rejectAction() const { return m_rejectAction; }
    QAction *revokeAction() const { return m_revokeAction; }
    // "N bots awaiting approval" above the fleet; empty while none is.
    QString approvalText() const;
    QWidget *approvalBar() const;
    HistoryPanel *historyPanel() const { return m_history; }
    QDockWidget *historyDock() const { return m_historyDock; }
    QAction *historyAction() const { return m_historyAction; }       // View > History… Ctrl+H
    QAction *botHistoryAction() const { return m_botHistoryAction; } // Ctrl+Shift+H
    QAction *exportAction() const { return m_exportAction; }         // File > Export… Ctrl+E
    // The status bar's line on what the history keeps; empty without history.
    QString historyStatusText() const;

    // The tables File > Export writes: the live commands or the history search's results.
    enum class Table
    {
        Commands,
        History
    };
    // The one the operator used last (focus): the history while its dock is shown and was
    // used after the commands table; the commands table otherwise.
    Table activeTable() const;
    // What a table shows now: through its filters, in the view's order.
    QList<CommandOutcome> rowsOf(Table table) const;
    // Writes rowsOf(table) to path (what File > Export does once a file is chosen). False,
    // with *error, when the file cannot be written; *rows: how many were written.
    bool exportTable(Table table, const QString &path, ExportFormat format, QString *error,
                     int *rows = nullptr);
    // The file dialog for one table, then exportTable (File > Export…, the history's Export…).
    void exportTableAs(Table table);

public slots:
    void sendToSelection();
    void sendKindToSelection(opconsole::CommandKind kind);
    void cancelSelected();
    void resendSelected();
    void copySelectedIds();
    // Takes the finished commands out of the table (View > Clear finished, Ctrl+L).
    void clearFinished();
    void copySelectedAsOpctl();
    // "Attach to hubs…": the connect dialog, then another console attached to the choice.
    void attachToHubs();
    // View > History…: the history dock (searching the newest commands the first time).
    void showHistory();
    // Enables Cancel when a selected command is pending; whether one is.
    bool refreshCancelAction();
    // Help > Keyboard shortcuts (F1): every action and shortcut of the window, in one list.
    void showShortcuts();
    // The history of one bot, searched at once (fleet: double click, context menu).
    void showBotHistory(const QString &botId);
    // The same for the fleet's current bot (FleetPanel::currentBot).
    void showSelectedBotHistory();
    // One bot's details (the fleet's double-click, Details… in its context menu), kept up to
    // date while open.
    void showBotDetails(const QString &botId);
    // Only this bot's commands in the commands table (its bot filter).
    void showBotCommands(const QString &botId);
    BotDetailsDialog *botDetailsDialog() const;
    // File > Export…: asks where (CSV or JSON by the file's extension or the chosen filter),
    // then exportTable(activeTable(), ...); a failure is shown in a message box.
    void exportActiveTable();
    // Bots > Accept, Reject…, Revoke…: on the selected bots the decision applies to (a
    // confirmation with an optional reason first, for Reject and Revoke).
    void decideSelected(opconsole::BotDecision decision);
    // The same without asking (what the confirmation leads to); the outcome goes to the
    // status bar once every hub answered.
    void decide(const QList<opconsole::BotInfo> &bots, opconsole::BotDecision decision,
                const QString &reason);

protected:
    void closeEvent(QCloseEvent *event) override;
    void showEvent(QShowEvent *event) override;

private:
    void buildActions();
    void fitSendPanel();
    void onChanged(const QList<CommandOutcome> &records);
    void onLinkChanged();
    enum class Ask : bool
    {
        No,     // already asked (or nothing to ask)
        IfMany, // confirmFanOut first
    };
    void send(const QStringList &bots, const CommandSpec &spec, std::chrono::milliseconds timeout,
              Ask ask = Ask::IfMany);
    void showDetails();
    void refreshStatus();
    void refreshHistoryLine();
    // Enables and explains Accept, Reject and Revoke for the selection and the user's role.
    void refreshDecisionActions();
    // The selected bots a decision applies to, where this console may take it.
    QList<BotInfo> decisionTargets(BotDecision decision) const;
    void revealHistory();     // shows the history dock at a sensible height
    bool m_statusDue = false; // a status refresh is scheduled
    void refreshCountdown();
    void saveSettings() const;
    void loadSettings();

    ConsoleBackend &m_backend;

    FleetPanel *m_fleet;
    SendPanel *m_send;
    CommandsPanel *m_commands;
    DetailsView *m_details;
    QLabel *m_banner;
    QSplitter *m_mainSplit;
    QSplitter *m_rightSplit;
    QMenu *m_commandMenu;
    QMenu *m_fleetMenu = nullptr;
    StatusLine *m_status;
    QLabel *m_historyLine;
    HistoryPanel *m_history;
    QDockWidget *m_historyDock;
    QPointer<BotDetailsDialog> m_botDetails;
    QAction *m_historyAction = nullptr;
    QAction *m_botHistoryAction = nullptr;
    QAction *m_exportAction = nullptr;
    QAction *m_acceptAction = nullptr;
    QAction *m_rejectAction = nullptr;
    QAction *m_revokeAction = nullptr;
    Table m_activeTable = Table::Commands;
    QMetaObject::Connection m_focusWatch; // undone first in the destructor
    int m_slowTicks = 0;
    bool m_historySized = false;  // the dock was given its first height
    bool m_splitRestored = false; // the fleet/commands split is the saved one, or was set

    QHash<QString, SentSpec> m_sent; // what this window sent (by command or fan-out id)
    std::deque<QString> m_sentOrder;
    const SentSpec *sentFor(const CommandOutcome &o) const;
    QString m_staleSince; // when the hub became unreachable
};

} // namespace opconsole
