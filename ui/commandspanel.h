#pragma once

#include "commandoutcome.h"

#include <QSet>
#include <QWidget>

class QComboBox;
class QLineEdit;
class QListView;
class QTableView;

namespace opconsole {

class CommandFilterProxy;
class CommandTableModel;
class FanOutModel;

// The live commands: filters (state, bot, text), one tally line per fan-out (a click shows
// that fan-out's commands only, Esc in the table shows all again) and the commands table.
class CommandsPanel final : public QWidget
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(CommandsPanel)

public:
    explicit CommandsPanel(QWidget *parent = nullptr);

    QTableView *view() const { return m_view; }
    CommandTableModel *model() const { return m_model; }
    CommandFilterProxy *proxy() const { return m_proxy; }
    QListView *fanOutList() const { return m_fanOutView; }
    FanOutModel *fanOutModel() const { return m_fanOuts; }
    QComboBox *stateFilter() const { return m_stateFilter; }
    QComboBox *botFilter() const { return m_botFilter; }
    QLineEdit *textFilter() const { return m_textFilter; }

    // A batch from the change feed, into the table and the fan-out tallies.
    void apply(const QList<CommandOutcome> &records);
    // Takes every finished command out of the table and clears the selection (the details
    // then show nothing); how many went.
    int clearFinished();
    // Offers bots in the bot filter (each once).
    void addBots(const QStringList &botIds);
    // The command's record as shown, null when it is not in the table.
    const CommandOutcome *record(const QString &commandId) const;
    // The records the table shows now: through its filters, in the view's order (export).
    QList<CommandOutcome> shownRecords() const;

    // The selected rows, or the current row when none is selected.
    QStringList selectedCommandIds() const;
    void selectCommand(const QString &commandId);
    QString currentCommandId() const;
    // The command the details pane shows: the current row when it is selected (or nothing
    // is), else the first selected row; never one the actions would not act on.
    QString detailsCommandId() const;
    // Shows only the commands of one fan-out (empty: all), as a click on its tally line does.
    void showFanOut(const QString &fanOutId);
    // Repaints the visible cells of the Remaining column: their countdown moved.
    void refreshCountdown();
    void setHubColumnVisible(bool visible);

    void saveSettings() const;
    void loadSettings();

signals:
    // The command to show in the details is another one (detailsCommandId), or its record
    // changed: show it again.
    void currentChanged(const QString &commandId);
    void contextMenuRequested(const QPoint &globalPos);
    // After showFanOut, by a call, a click or Esc; empty when all commands are shown again.
    void fanOutShown(const QString &fanOutId);

private:
    void placeIssuedBy();
    void announceDetails(); // currentChanged, when detailsCommandId() is another one

    CommandTableModel *m_model;
    CommandFilterProxy *m_proxy;
    FanOutModel *m_fanOuts;
    QComboBox *m_stateFilter;
    QComboBox *m_botFilter;
    QLineEdit *m_textFilter;
    QListView *m_fanOutView;
    QTableView *m_view;
    QString m_detailsId;         // the last one announced
    QSet<QString> m_offeredBots; // in the bot filter
};

} // namespace opconsole
