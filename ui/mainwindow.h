#pragma once

#include "commandoutcome.h"
#include "commandspec.h"

#include <QElapsedTimer>
#include <QHash>
#include <QMainWindow>

#include <chrono>
#include <deque>

class QComboBox;
class QLabel;
class QLineEdit;
class QListWidget;
class QListWidgetItem;
class QSortFilterProxyModel;
class QSplitter;
class QTableView;
class QTextBrowser;

namespace opconsole {

class CommandFilterProxy;
class CommandRegistry;
class CommandService;
class CommandTableModel;
class FleetModel;
class Hub;
class LatencyChart;
class SendPanel;

// The operator's window: fleet, send panel, the live commands table, details, status.
// Talks to the registry, the hub and the command service through their Qt APIs only.
class MainWindow final : public QMainWindow
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(MainWindow)

public:
    MainWindow(CommandRegistry &registry, Hub &hub, CommandService &service,
               QWidget *parent = nullptr);
    ~MainWindow() override;

    // For tests and scripts driving the window.
    QTableView *fleetView() const { return m_fleetView; }
    QTableView *commandsView() const { return m_commandsView; }
    SendPanel *sendPanel() const { return m_send; }
    CommandTableModel *commandModel() const { return m_commands; }
    CommandFilterProxy *commandProxy() const { return m_commandProxy; }
    FleetModel *fleetModel() const { return m_fleet; }
    QListWidget *fanOutList() const { return m_fanOuts; }
    QTextBrowser *details() const { return m_details; }
    QComboBox *stateFilter() const { return m_stateFilter; }
    QLineEdit *commandFilter() const { return m_textFilter; }
    QLineEdit *fleetFilter() const { return m_fleetFilter; }
    LatencyChart *latencyChart() const { return m_chart; }
    QString statusText() const;
    QStringList selectedBots() const;
    QStringList selectedCommandIds() const;
    void selectBots(const QStringList &botIds);
    void selectCommand(const QString &commandId);
    QMenu *commandMenu() const { return m_commandMenu; }

public slots:
    void sendToSelection();
    void sendKindToSelection(opconsole::CommandKind kind);
    void cancelSelected();
    void resendSelected();
    void copySelectedIds();
    void copySelectedAsOpctl();

protected:
    void closeEvent(QCloseEvent *event) override;

private:
    void buildActions();
    void fitSendPanel();
    void onChanged(const QList<CommandOutcome> &records);
    void send(const QStringList &bots, const CommandSpec &spec, std::chrono::milliseconds timeout);
    void showDetails();
    void refreshStatus();
    void refreshCountdown();
    QString opctlLine(const CommandOutcome &o) const;
    void saveSettings() const;
    void loadSettings();

    CommandRegistry &m_registry;
    Hub &m_hub;
    CommandService &m_service;

    FleetModel *m_fleet;
    QSortFilterProxyModel *m_fleetProxy;
    CommandTableModel *m_commands;
    CommandFilterProxy *m_commandProxy;
    QTableView *m_fleetView;
    QTableView *m_commandsView;
    QLineEdit *m_fleetFilter;
    QComboBox *m_stateFilter;
    QComboBox *m_botFilter;
    QLineEdit *m_textFilter;
    SendPanel *m_send;
    QListWidget *m_fanOuts;
    QTextBrowser *m_details;
    LatencyChart *m_chart;
    QSplitter *m_mainSplit;
    QSplitter *m_rightSplit;
    QMenu *m_commandMenu;
    QLabel *m_status;

    struct Sent
    {
        CommandSpec spec;
        std::chrono::milliseconds timeout;
    };
    QHash<QString, Sent> m_sent; // what this window sent, for details and resend
    std::deque<QString> m_sentOrder;
    std::deque<std::pair<qint64, quint64>> m_rateWindow; // (ms, finished count) samples
    quint64 m_finishedSeen = 0;
    QElapsedTimer m_clock;
};

} // namespace opconsole
