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

private:
    FleetModel *m_model;
    QSortFilterProxyModel *m_proxy;
    QLineEdit *m_filter;
    QTableView *m_view;
    LatencyChart *m_chart;
};

} // namespace opconsole
