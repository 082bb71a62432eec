#pragma once

#include "botinfo.h"
#include "commandoutcome.h"

#include <QWidget>

#include <functional>
#include <optional>

class QAction;
class QHBoxLayout;
class QLabel;
class QLineEdit;
class QSortFilterProxyModel;
class QSplitter;
class QTableView;

namespace opconsole {

class FleetModel;
class LatencyChart;

// The fleet: every bot of this run in a filterable, sortable table, and the ack latency chart
// under it. The selection is what the send panel and the quick actions send to. While bots
// await approval, a bar above the table says how many, shows them, and offers the decisions.
class FleetPanel final : public QWidget
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(FleetPanel)

public:
    // pendingOf(botId) gives the bot's commands in flight (see FleetModel).
    explicit FleetPanel(std::function<int(const QString &)> pendingOf, QWidget *parent = nullptr);

    QTableView *view() const { return m_view; }
    FleetModel *model() const { return m_model; }
    QLineEdit *filter() const { return m_filter; }
    LatencyChart *chart() const { return m_chart; }
    // Shown while bots await approval: "N bots awaiting approval", Show them, the decisions.
    QWidget *approvalBar() const { return m_approvalBar; }
    QString approvalText() const;
    // The buttons of the approval bar (Accept, Reject…), acting on the selection.
    void setApprovalActions(const QList<QAction *> &actions);
    // Shows only the bots awaiting approval (the filter; clearing it shows all again).
    void showAwaiting();

    QStringList selectedBots() const;
    // The selected bots as the fleet knows them, in view order.
    QList<BotInfo> selectedBotInfos() const;
    void selectBots(const QStringList &botIds); // those not shown (filtered out) stay unselected
    // The bot an action on "this bot" means: the current row when it is selected (the one
    // right-clicked or clicked last), else the first selected; empty when none is.
    QString currentBot() const;

    // Returns the bots that were not listed before, in the order given.
    QStringList upsert(const QList<BotInfo> &bots);
    // Last latency per bot and the latency chart.
    void apply(const QList<CommandOutcome> &records);
    // The 1 Hz refresh: the rows on screen from lookup (their heartbeat ages and anything a
    // signal missed), and the whole fleet from all() only while sorted by heartbeat (the order
    // needs every bot's). A fleet of 50,000 is not copied each second to show 40 rows.
    void refreshLive(const std::function<std::optional<BotInfo>(const QString &)> &lookup,
                     const std::function<QList<BotInfo>()> &all);
    void setHubColumnVisible(bool visible);

    void saveSettings() const;
    void loadSettings();

signals:
    void selectionChanged();
    // A right click on the table; the row under it is current and selected by then.
    void contextMenuRequested(const QPoint &globalPos);
    // A double click on a bot's row.
    void botActivated(const QString &botId);

private:
    void refreshApprovalBar();

    FleetModel *m_model;
    QWidget *m_approvalBar;
    QLabel *m_approvalLabel;
    QHBoxLayout *m_approvalButtons;
    QSortFilterProxyModel *m_proxy;
    QLineEdit *m_filter;
    QTableView *m_view;
    QSplitter *m_chartSplit; // the table over the chart
    LatencyChart *m_chart;
};

} // namespace opconsole
