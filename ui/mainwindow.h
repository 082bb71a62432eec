#pragma once

#include "commandoutcome.h"
#include "commandspec.h"
#include "consolebackend.h"

#include <QElapsedTimer>
#include <QHash>
#include <QMainWindow>

#include <chrono>
#include <deque>

class QComboBox;
class QLabel;
class QLineEdit;
class QListView;
class QSortFilterProxyModel;
class QSplitter;
class QTableView;
class QTextBrowser;

namespace opconsole {

class CommandFilterProxy;
class CommandTableModel;
class FanOutModel;
class FleetModel;
class LatencyChart;
class SendPanel;

// The operator's window: fleet, send panel, fan-outs, the live commands table, details,
// status. Talks to a ConsoleBackend only: the hub in this process or one it is attached to.
class MainWindow final : public QMainWindow
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(MainWindow)

public:
    explicit MainWindow(ConsoleBackend &backend, QWidget *parent = nullptr);
    ~MainWindow() override;

    // For tests and scripts driving the window.
    QTableView *fleetView() const { return m_fleetView; }
    QTableView *commandsView() const { return m_commandsView; }
    SendPanel *sendPanel() const { return m_send; }
    CommandTableModel *commandModel() const { return m_commands; }
    CommandFilterProxy *commandProxy() const { return m_commandProxy; }
    FleetModel *fleetModel() const { return m_fleet; }
    QListView *fanOutList() const { return m_fanOutView; }
    FanOutModel *fanOutModel() const { return m_fanOuts; }
    // The banner shown while the hub is unreachable (hidden otherwise).
    QLabel *banner() const { return m_banner; }
    // Shows only the commands of one fan-out (empty: all), as a click on its tally row does.
    void showFanOut(const QString &fanOutId);
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
    void onLinkChanged();
    void send(const QStringList &bots, const CommandSpec &spec, std::chrono::milliseconds timeout);
    void showDetails();
    void refreshStatus();
    void refreshCountdown();
    QString opctlLine(const CommandOutcome &o) const;
    void saveSettings() const;
    void loadSettings();

    ConsoleBackend &m_backend;

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
    FanOutModel *m_fanOuts;
    QListView *m_fanOutView;
    QLabel *m_banner;
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
    QHash<QString, Sent> m_sent; // what this window sent (by command or fan-out id)
    std::deque<QString> m_sentOrder;
    const Sent *sentFor(const CommandOutcome &o) const;
    // Outcome counts from the change feed (the status line), counted once per command.
    struct Counts
    {
        qint64 pending = 0, acked = 0, rejected = 0, expired = 0, lateAcks = 0, finished = 0;
    } m_counts;
    std::deque<std::pair<qint64, quint64>> m_rateWindow; // (ms, finished count) samples
    QString m_staleSince;                                // when the hub became unreachable
    QElapsedTimer m_clock;
};

} // namespace opconsole
