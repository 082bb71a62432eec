#pragma once

#include "commandoutcome.h"
#include "commandspec.h"
#include "commandtext.h"
#include "consolebackend.h"

#include <QHash>
#include <QMainWindow>

#include <chrono>
#include <deque>

class QComboBox;
class QLabel;
class QLineEdit;
class QListView;
class QSplitter;
class QTableView;
class QTextBrowser;

namespace opconsole {

class CommandFilterProxy;
class CommandTableModel;
class CommandsPanel;
class DetailsView;
class FanOutModel;
class FleetModel;
class FleetPanel;
class LatencyChart;
class SendPanel;
class StatusLine;

// The operator's window: fleet, send panel, fan-outs, the live commands table, details,
// status. Talks to a ConsoleBackend only: the hub in this process or one it is attached to.
// The panels are widgets of their own; this assembles them, sends, and holds the actions.
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

public slots:
    void sendToSelection();
    void sendKindToSelection(opconsole::CommandKind kind);
    void cancelSelected();
    void resendSelected();
    void copySelectedIds();
    void copySelectedAsOpctl();
    // "Attach to hubs…": the connect dialog, then another console attached to the choice.
    void attachToHubs();

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
    StatusLine *m_status;

    QHash<QString, SentSpec> m_sent; // what this window sent (by command or fan-out id)
    std::deque<QString> m_sentOrder;
    const SentSpec *sentFor(const CommandOutcome &o) const;
    QString m_staleSince; // when the hub became unreachable
};

} // namespace opconsole
