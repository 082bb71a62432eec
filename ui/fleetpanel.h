#pragma once

#include "botinfo.h"
#include "commandoutcome.h"

#include <QWidget>

#include <functional>

class QLineEdit;
class QSortFilterProxyModel;
class QTableView;

namespace opconsole {

class FleetModel;
class LatencyChart;

// The fleet: every bot of this run in a filterable, sortable table, and the ack latency chart
// under it. The selection is what the send panel and the quick actions send to.
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

    QStringList selectedBots() const;
    void selectBots(const QStringList &botIds); // those not shown (filtered out) stay unselected
    // The bot an action on "this bot" means: the current row when it is selected (the one
    // right-clicked or clicked last), else the first selected; empty when none is.
    QString currentBot() const;

    // Returns the bots that were not listed before, in the order given.
    QStringList upsert(const QList<BotInfo> &bots);
    // Last latency per bot and the latency chart.
    void apply(const QList<CommandOutcome> &records);
    void refreshLive(const QList<BotInfo> &bots);
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
    FleetModel *m_model;
    QSortFilterProxyModel *m_proxy;
    QLineEdit *m_filter;
    QTableView *m_view;
    LatencyChart *m_chart;
};

} // namespace opconsole
