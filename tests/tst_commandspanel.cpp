// The commands panel alone, under the offscreen platform, fed change-feed records directly.
#include "commandfilterproxy.h"
#include "commandspanel.h"
#include "commandtablemodel.h"
#include "fanoutmodel.h"
#include "records.h"

#include <QComboBox>
#include <QHeaderView>
#include <QLineEdit>
#include <QListView>
#include <QPaintEvent>
#include <QSettings>
#include <QSignalSpy>
#include <QStandardItemModel>
#include <QStandardPaths>
#include <QTableView>
#include <QTest>

using namespace opconsole;
using namespace std::chrono;

namespace {

CommandOutcome record(quint64 seq, const QString &bot, CommandState state = CommandState::Pending,
                      const QString &fanOut = {})
{
    return testRecord(seq, bot, state, fanOut);
}

// cmd-1..cmd-4: two pending on bot-a (a fan-out with cmd-3 on bot-b), one acked, one expired.
QList<CommandOutcome> someCommands()
{
    return {record(1, "bot-a", CommandState::Pending, "fan-1"),
            record(2, "bot-a", CommandState::Acked),
            record(3, "bot-b", CommandState::Pending, "fan-1"),
            record(4, "bot-c", CommandState::Expired)};
}

QStringList idsShown(const CommandsPanel &panel)
{
    QStringList ids;
    const QAbstractItemModel *m = panel.view()->model();
    for (int r = 0; r < m->rowCount(); ++r)
        ids << m->index(r, 0).data(CommandTableModel::CommandIdRole).toString();
    ids.sort();
    return ids;
}

// Counts the paint events of a widget and the area they cover.
class PaintWatch : public QObject
{
public:
    explicit PaintWatch(QWidget *w) { w->installEventFilter(this); }
    int paints = 0;
    QRegion painted;
    // Lets pending repaints through, a bounded number of turns of the event loop.
    void settle()
    {
        for (int turn = 0; turn < 50; ++turn) {
            const int before = paints;
            QCoreApplication::processEvents();
            if (paints == before)
                return;
        }
    }

protected:
    bool eventFilter(QObject *, QEvent *event) override
    {
        if (event->type() == QEvent::Paint) {
            ++paints;
            painted += static_cast<QPaintEvent *>(event)->region();
        }
        return false;
    }
};

} // namespace

class TestCommandsPanel : public QObject
{
    Q_OBJECT

private slots:
    void initTestCase() { QStandardPaths::setTestModeEnabled(true); }
    void applyFeedsTableAndFanOuts();
    void filtersNarrowTheTable();
    void fanOutClickFiltersAndEscShowsAll();
    void selectionAndCurrent();
    void contextMenuAtTheClick();
    void countdownRepaintsTheRemainingColumnOnly();
    void settingsRoundTrip();
    void issuedByBeforeMessageAlsoInAnOlderLayout();
};

void TestCommandsPanel::applyFeedsTableAndFanOuts()
{
    CommandsPanel panel;
    panel.show();
    QVERIFY(panel.fanOutList()->isHidden()); // no fan-out yet
    {
        CommandsPanel lone;
        lone.show();
        lone.apply({record(9, "bot-z")});
        QCOMPARE(lone.model()->rowCount(), 1);
        QVERIFY(lone.fanOutList()->isHidden()); // sent alone: not a fan-out
    }
    panel.apply(someCommands());
    QCOMPARE(panel.model()->rowCount(), 4);
    QCOMPARE(panel.fanOutModel()->rowCount(), 1);
    QVERIFY(panel.fanOutList()->isVisible());
    QCOMPARE(panel.fanOutModel()->index(0).data().toString().section(": ", 1),
             QString("0/2 acked, 2 pending"));
    panel.apply({record(1, "bot-a", CommandState::Acked, "fan-1"),
                 record(3, "bot-b", CommandState::Rejected, "fan-1")});
    QCOMPARE(panel.model()->rowCount(), 4);
    QCOMPARE(panel.fanOutModel()->index(0).data().toString().section(": ", 1),
             QString("1/2 acked, 1 rejected"));
    QCOMPARE(panel.record("cmd-3")->state, CommandState::Rejected);
    QVERIFY(!panel.record("cmd-404"));
    QCOMPARE(panel.view()->model()->rowCount(), 4);
}

void TestCommandsPanel::filtersNarrowTheTable()
{
    CommandsPanel panel;
    panel.show();
    panel.apply(someCommands());
    panel.addBots({"bot-a", "bot-b"});
    panel.addBots({"bot-a"});                // offered once
    QCOMPARE(panel.botFilter()->count(), 3); // "any bot", bot-a, bot-b

    panel.stateFilter()->setCurrentIndex(1); // Pending
    QCOMPARE(idsShown(panel), QStringList({"cmd-1", "cmd-3"}));
    panel.stateFilter()->setCurrentIndex(2); // Done
    QCOMPARE(idsShown(panel), QStringList({"cmd-2", "cmd-4"}));
    panel.stateFilter()->setCurrentIndex(3); // Problems
    QCOMPARE(idsShown(panel), QStringList({"cmd-4"}));
    panel.stateFilter()->setCurrentIndex(0);
    QCOMPARE(idsShown(panel).size(), 4);

    panel.botFilter()->setCurrentIndex(panel.botFilter()->findText("bot-a"));
    QCOMPARE(idsShown(panel), QStringList({"cmd-1", "cmd-2"}));
    panel.stateFilter()->setCurrentIndex(1); // and Pending
    QCOMPARE(idsShown(panel), QStringList({"cmd-1"}));
    panel.stateFilter()->setCurrentIndex(0);
    panel.botFilter()->setCurrentIndex(0);
    QCOMPARE(idsShown(panel).size(), 4);

    QTest::keyClicks(panel.textFilter(), "bot-c");
    QCOMPARE(idsShown(panel), QStringList({"cmd-4"}));
    panel.textFilter()->setText("expired");
    QCOMPARE(idsShown(panel), QStringList({"cmd-4"}));
    panel.textFilter()->clear();
    QCOMPARE(idsShown(panel).size(), 4);
}

void TestCommandsPanel::fanOutClickFiltersAndEscShowsAll()
{
    CommandsPanel panel;
    panel.resize(900, 500);
    panel.show();
    QVERIFY(QTest::qWaitForWindowExposed(&panel));
    panel.apply(someCommands());
    panel.apply({record(5, "bot-a", CommandState::Pending, "fan-2"),
                 record(6, "bot-c", CommandState::Pending, "fan-2"),
                 record(7, "bot-d", CommandState::Pending, "fan-2")});
    QCOMPARE(panel.fanOutModel()->rowCount(), 2);
    QSignalSpy shown(&panel, &CommandsPanel::fanOutShown);

    // A click on the older fan-out's line (newest first: row 1).
    QListView *list = panel.fanOutList();
    const QModelIndex older = panel.fanOutModel()->index(1);
    QCOMPARE(older.data(FanOutModel::FanOutIdRole).toString(), QString("fan-1"));
    QTest::mouseClick(list->viewport(), Qt::LeftButton, {}, list->visualRect(older).center());
    QCOMPARE(panel.proxy()->fanOut(), QString("fan-1"));
    QCOMPARE(idsShown(panel), QStringList({"cmd-1", "cmd-3"}));
    QCOMPARE(shown.count(), 1);
    QCOMPARE(shown.last().at(0).toString(), QString("fan-1"));
    // New commands of other fan-outs stay out; the fan-out's own changes stay in.
    panel.apply({record(8, "bot-b", CommandState::Pending, "fan-2"),
                 record(3, "bot-b", CommandState::Acked, "fan-1")});
    QCOMPARE(idsShown(panel), QStringList({"cmd-1", "cmd-3"}));

    // By call, as the window does: the list follows.
    panel.showFanOut("fan-2");
    QCOMPARE(idsShown(panel), QStringList({"cmd-5", "cmd-6", "cmd-7", "cmd-8"}));
    QCOMPARE(list->currentIndex().data(FanOutModel::FanOutIdRole).toString(), QString("fan-2"));

    // Esc in the table shows every command again.
    panel.activateWindow();
    QVERIFY(QTest::qWaitForWindowActive(&panel));
    panel.view()->setFocus();
    QTest::keyClick(panel.view(), Qt::Key_Escape);
    QCOMPARE(panel.proxy()->fanOut(), QString());
    QCOMPARE(idsShown(panel).size(), 8);
    QVERIFY(list->selectionModel()->selectedIndexes().isEmpty());
    QCOMPARE(shown.last().at(0).toString(), QString());
}

void TestCommandsPanel::selectionAndCurrent()
{
    CommandsPanel panel;
    panel.show();
    panel.apply(someCommands());
    QSignalSpy current(&panel, &CommandsPanel::currentChanged);
    QVERIFY(panel.selectedCommandIds().isEmpty());
    QVERIFY(panel.currentCommandId().isEmpty());

    panel.selectCommand("cmd-404"); // not in the table: nothing happens
    QCOMPARE(current.count(), 0);
    panel.selectCommand("cmd-3");
    QCOMPARE(panel.currentCommandId(), QString("cmd-3"));
    QCOMPARE(panel.selectedCommandIds(), QStringList({"cmd-3"}));
    QCOMPARE(current.count(), 1);
    QCOMPARE(current.last().at(0).toString(), QString("cmd-3"));

    // A change of the current command is announced; a change of another one is not.
    panel.apply({record(2, "bot-a", CommandState::Acked)});
    QCOMPARE(current.count(), 1);
    panel.apply({record(3, "bot-b", CommandState::Acked)});
    QCOMPARE(current.count(), 2);
    QCOMPARE(current.last().at(0).toString(), QString("cmd-3"));

    // Several rows selected: all of them; none selected: the current one.
    QItemSelection rows;
    const QAbstractItemModel *shown = panel.view()->model();
    for (int r = 0; r < shown->rowCount(); ++r) {
        const QString id = shown->index(r, 0).data(CommandTableModel::CommandIdRole).toString();
        if (id == "cmd-1" || id == "cmd-4")
            rows.select(shown->index(r, 0), shown->index(r, CommandTableModel::ColumnCount - 1));
    }
    panel.view()->selectionModel()->select(rows, QItemSelectionModel::ClearAndSelect);
    QStringList ids = panel.selectedCommandIds();
    ids.sort();
    QCOMPARE(ids, QStringList({"cmd-1", "cmd-4"}));
    // The current row (cmd-3) is not selected: the details show a selected one, the first
    // in the view's order (newest first: cmd-4).
    QCOMPARE(panel.detailsCommandId(), QString("cmd-4"));
    QCOMPARE(current.count(), 3);
    QCOMPARE(current.last().at(0).toString(), QString("cmd-4"));
    panel.view()->selectionModel()->clearSelection();
    QCOMPARE(panel.selectedCommandIds(), QStringList({"cmd-3"}));
    QCOMPARE(current.count(), 4);
    QCOMPARE(current.last().at(0).toString(), QString("cmd-3"));

    // The current row moves with a key and selects: announced.
    panel.view()->setFocus();
    QTest::keyClick(panel.view(), Qt::Key_Down);
    QCOMPARE(current.count(), 5);
    QVERIFY(current.last().at(0).toString() != QString("cmd-3"));
    QCOMPARE(current.last().at(0).toString(), panel.currentCommandId());
    const QString selected = panel.currentCommandId();
    QCOMPARE(panel.selectedCommandIds(), QStringList({selected}));

    // Ctrl+Down moves the current row without selecting (issue 12, item 3): the details stay
    // on the selected command, the one Cancel, Resend and Copy act on.
    QTest::keyClick(panel.view(), Qt::Key_Down, Qt::ControlModifier);
    QVERIFY(panel.currentCommandId() != selected);
    QCOMPARE(panel.selectedCommandIds(), QStringList({selected}));
    QCOMPARE(panel.detailsCommandId(), selected);
    QCOMPARE(current.count(), 5);
}

void TestCommandsPanel::contextMenuAtTheClick()
{
    CommandsPanel panel;
    panel.show();
    QVERIFY(QTest::qWaitForWindowExposed(&panel));
    QSignalSpy menu(&panel, &CommandsPanel::contextMenuRequested);
    const QPoint at(20, 10);
    emit panel.view()->customContextMenuRequested(at);
    QCOMPARE(menu.count(), 1);
    QCOMPARE(menu.last().at(0).toPoint(), panel.view()->viewport()->mapToGlobal(at));
}

void TestCommandsPanel::countdownRepaintsTheRemainingColumnOnly()
{
    CommandsPanel panel;
    panel.resize(1200, 400);
    panel.show();
    QVERIFY(QTest::qWaitForWindowExposed(&panel));
    panel.apply(someCommands());
    QTableView *view = panel.view();
    PaintWatch watch(view->viewport());
    QTRY_VERIFY_WITH_TIMEOUT(watch.paints > 0, 5000); // the new rows
    watch.settle();
    watch.paints = 0;
    watch.painted = {};

    panel.refreshCountdown();
    QTRY_VERIFY_WITH_TIMEOUT(watch.paints > 0, 5000);
    const QRect column(view->columnViewportPosition(CommandTableModel::Remaining), 0,
                       view->columnWidth(CommandTableModel::Remaining), view->viewport()->height());
    const QRect painted = watch.painted.boundingRect();
    QVERIFY(!column.isEmpty());
    QVERIFY2(column.contains(painted), qPrintable(QString("painted x %1..%2, column x %3..%4")
                                                      .arg(painted.left())
                                                      .arg(painted.right())
                                                      .arg(column.left())
                                                      .arg(column.right())));
}

void TestCommandsPanel::settingsRoundTrip()
{
    QSettings().remove(QStringLiteral("commands"));
    {
        CommandsPanel panel;
        panel.stateFilter()->setCurrentIndex(3);
        panel.textFilter()->setText("bot-7");
        panel.botFilter()->setCurrentText("bot-9");
        panel.view()->setColumnHidden(CommandTableModel::Message, true);
        panel.view()->setColumnWidth(CommandTableModel::Command, 111);
        panel.saveSettings();
    }
    {
        QSettings settings;
        QCOMPARE(settings.value("commands/stateFilter").toInt(), 3);
        QCOMPARE(settings.value("commands/textFilter").toString(), QString("bot-7"));
        QCOMPARE(settings.value("commands/botFilter").toString(), QString("bot-9"));
        QVERIFY(!settings.value("commands/header").toByteArray().isEmpty());
    }
    CommandsPanel again;
    again.apply(someCommands());
    again.loadSettings();
    QCOMPARE(again.stateFilter()->currentIndex(), 3);
    QCOMPARE(again.textFilter()->text(), QString("bot-7"));
    QCOMPARE(again.botFilter()->currentText(), QString("bot-9"));
    // The filters take effect, not only their widgets.
    QCOMPARE(again.proxy()->stateGroup(), CommandFilterProxy::StateGroup::Problems);
    QCOMPARE(again.proxy()->bot(), QString("bot-9"));
    QCOMPARE(again.view()->model()->rowCount(), 0);
    QVERIFY(again.view()->isColumnHidden(CommandTableModel::Message));
    QCOMPARE(again.view()->columnWidth(CommandTableModel::Command), 111);
    QSettings().remove(QStringLiteral("commands"));
}

void TestCommandsPanel::issuedByBeforeMessageAlsoInAnOlderLayout()
{
    QSettings().remove(QStringLiteral("commands"));
    auto placedRight = [](const CommandsPanel &panel) {
        const QHeaderView *header = panel.view()->horizontalHeader();
        return !panel.view()->isColumnHidden(CommandTableModel::IssuedBy) &&
               header->visualIndex(CommandTableModel::IssuedBy) + 1 ==
                   header->visualIndex(CommandTableModel::Message);
    };
    {
        CommandsPanel panel;
        QVERIFY(placedRight(panel));
        // The Hub column still goes next to the bot when shown.
        panel.setHubColumnVisible(true);
        QCOMPARE(panel.view()->horizontalHeader()->visualIndex(CommandTableModel::Hub),
                 int(CommandTableModel::Bot) + 1);
        QVERIFY(placedRight(panel));
        panel.saveSettings();
    }
    {
        CommandsPanel again;
        again.loadSettings();
        QVERIFY(placedRight(again));
        QCOMPARE(again.view()->horizontalHeader()->visualIndex(CommandTableModel::Hub),
                 int(CommandTableModel::Bot) + 1);
    }
    // A layout saved by a console that had no Issued by column (one column fewer).
    {
        QTableView old;
        QStandardItemModel columns(0, CommandTableModel::IssuedBy);
        old.setModel(&columns);
        old.setColumnWidth(CommandTableModel::Bot, 150);
        QSettings settings;
        settings.setValue("commands/header", old.horizontalHeader()->saveState());
        settings.remove("commands/columns");
    }
    CommandsPanel upgraded;
    upgraded.loadSettings();
    QCOMPARE(upgraded.view()->columnWidth(CommandTableModel::Bot), 150); // the rest is kept
    QVERIFY(placedRight(upgraded));
    QSettings().remove(QStringLiteral("commands"));
}

QTEST_MAIN(TestCommandsPanel)
#include "tst_commandspanel.moc"
