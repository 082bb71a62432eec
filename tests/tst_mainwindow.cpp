// The real window under the offscreen platform, against a real in-process hub and bots that
// the test drives by hand (RawBot), so every outcome is deterministic.
#include "admission.h"
#include "botdetails.h"
#include "commandfilterproxy.h"
#include "commandtablemodel.h"
#include "confirm.h"
#include "fanoutmodel.h"
#include "fleetmodel.h"
#include "hubrig.h"
#include "hubset.h"
#include "localbackend.h"
#include "mainwindow.h"
#include "operatorservice.h"
#include "rawbot.h"
#include "rollout.h"
#include "sendpanel.h"
#include "statusline.h"
#include "tokens.h"

#include <QAction>
#include <QApplication>
#include <QClipboard>
#include <QComboBox>
#include <QDialog>
#include <QDoubleSpinBox>
#include <QHeaderView>
#include <QLineEdit>
#include <QListView>
#include <QMenu>
#include <QMessageBox>
#include <QPushButton>
#include <QSettings>
#include <QSpinBox>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTableView>
#include <QTableWidget>
#include <QTest>
#include <QTextBrowser>
#include <QTimer>
#include <QToolBar>
#include <QToolButton>

using namespace opconsole;
using namespace std::chrono;

namespace {

struct Rig : HubRig
{
    explicit Rig(HubOptions options = {}) : HubRig(std::move(options))
    {
        api = std::make_unique<OperatorService>(*service, feed); // opctl's address
        api->attachTo(*hub);
        start();
        backend = std::make_unique<LocalBackend>(registry, feed, *hub, *service);
        window = std::make_unique<MainWindow>(*backend);
        window->show();
    }
    ~Rig()
    {
        window.reset();
        hub->stop();
    }
    // The state text of a command's row, "" while it is not in the table.
    QString stateOf(const QString &id) const
    {
        const int row = window->commandModel()->rowOf(id);
        return row < 0
                   ? QString()
                   : window->commandModel()->index(row, CommandTableModel::State).data().toString();
    }
    bool botListed(const QString &bot) const
    {
        return QTest::qWaitFor([&] { return window->fleetModel()->rowOf(bot) >= 0; }, 5000);
    }
    // Raw bots that said Hello (with these labels) and are listed in the fleet, one per id;
    // fewer when one was not (the caller checks the count).
    std::vector<std::unique_ptr<RawBot>>
    helloBots(const QStringList &ids, const std::map<std::string, std::string> &labels = {}) const
    {
        std::vector<std::unique_ptr<RawBot>> bots;
        for (const QString &id : ids) {
            auto bot = std::make_unique<RawBot>(address());
            if (!bot->hello(id.toStdString(), labels) || !botListed(id))
                break;
            bots.push_back(std::move(bot));
        }
        return bots;
    }

    // The text of fan-out row `row` (newest first).
    QString fanOutText(int row) const
    {
        const QAbstractItemModel *m = window->fanOutModel();
        return row < m->rowCount() ? m->index(row, 0).data().toString() : QString();
    }

    std::unique_ptr<OperatorService> api;
    std::unique_ptr<LocalBackend> backend;
    std::unique_ptr<MainWindow> window;
};

// A hub that holds every bot until an admin accepts it; bots prove who they are with the token
// `rack` (ids bot-*).
struct ApprovalRig
{
    ApprovalRig() : rig(options(rack, admission)) {}
    static HubOptions options(const QString &rack,
                              std::unique_ptr<security::AdmissionStore> &admission)
    {
        QString error;
        HubOptions o;
        o.security.tokens = security::BotTokens::parse(
            "rack bot-* " + security::tokenHash(rack.toUtf8()).toUtf8() + "\n", "test", &error);
        o.security.approveNew = true;
        admission = security::AdmissionStore::open({}, &error);
        o.security.admission = admission.get();
        return o;
    }
    std::unique_ptr<RawBot> bot() const
    {
        return std::make_unique<RawBot>(rig.address(),
                                        RawBotCredentials{{}, rack.toStdString(), {}});
    }
    QString connection(const QString &bot) const
    {
        const FleetModel *m = rig.window->fleetModel();
        return m->index(m->rowOf(bot), FleetModel::Connection).data().toString();
    }
    bool waiting(const QString &bot) const
    {
        const FleetModel *m = rig.window->fleetModel();
        return m->rowOf(bot) >= 0 &&
               m->index(m->rowOf(bot), 0).data(FleetModel::WaitingRole).toBool();
    }

    QString rack = security::newToken();
    std::unique_ptr<security::AdmissionStore> admission; // before rig: the hub uses it
    Rig rig;
};

// Answers the decision dialog when it shows (a reason, then its confirm or Cancel button).
void answerDecisionDialog(const QString &reason, bool confirm, bool *answered)
{
    auto *poll = new QTimer;
    poll->setInterval(10);
    QObject::connect(poll, &QTimer::timeout, poll, [=] {
        auto *dialog = qobject_cast<QDialog *>(QApplication::activeModalWidget());
        if (!dialog || dialog->objectName() != QLatin1String("decisionDialog"))
            return;
        dialog->findChild<QLineEdit *>(QStringLiteral("decisionReason"))->setText(reason);
        if (confirm)
            dialog->findChild<QPushButton *>(QStringLiteral("decisionConfirm"))->click();
        else
            dialog->reject();
        *answered = true;
        poll->deleteLater();
    });
    poll->start();
}

// Calls answer(dialog) whenever the fan-out confirmation shows (modal: looked for every 10 ms).
struct FanOutDialogWatch
{
    explicit FanOutDialogWatch(std::function<void(QWidget *)> answer)
    {
        QObject::connect(&poll, &QTimer::timeout, &poll, [answer = std::move(answer)] {
            QWidget *modal = QApplication::activeModalWidget();
            if (modal && modal->objectName() == QLatin1String("fanOutConfirm"))
                answer(modal);
        });
        poll.start(10);
    }
    QTimer poll;
};

// Answers the fan-out confirmation when it shows; counts how often it did.
struct FanOutAnswer
{
    explicit FanOutAnswer(bool go)
        : watch([this, go](QWidget *modal) {
              text = modal->findChild<QLabel *>(QStringLiteral("qt_msgbox_label"))->text();
              ++asked;
              if (go)
                  modal->findChild<QPushButton *>(QStringLiteral("fanOutGo"))->click();
              else
                  qobject_cast<QDialog *>(modal)->reject();
          })
    {}
    int asked = 0;
    QString text;
    FanOutDialogWatch watch; // last: its answers use the members above
};

// Answers the fan-out dialog with "Roll out in waves" of `batch` bots (abort above 50%, no
// delay) when it offers them, else with Cancel; says whether it was offered.
struct RolloutAnswer
{
    explicit RolloutAnswer(int batch)
        : watch([this, batch](QWidget *modal) {
              ++asked;
              auto *waves = modal->findChild<QPushButton *>(QStringLiteral("fanOutRollout"));
              offered = waves != nullptr;
              if (!waves) {
                  qobject_cast<QDialog *>(modal)->reject();
                  return;
              }
              modal->findChild<QComboBox *>(QStringLiteral("rolloutBatchUnit"))->setCurrentIndex(1);
              modal->findChild<QSpinBox *>(QStringLiteral("rolloutBatch"))->setValue(batch);
              modal->findChild<QDoubleSpinBox *>(QStringLiteral("rolloutAbortAbove"))->setValue(50);
              modal->findChild<QSpinBox *>(QStringLiteral("rolloutWaveDelay"))->setValue(0);
              button = waves->text();
              waves->click();
          })
    {}
    int asked = 0;
    bool offered = false;
    QString button;
    FanOutDialogWatch watch; // last: its answers use the members above
};

// The next command `bot` is sent, the window's event loop running meanwhile (the hub's
// rollout runner sends its waves from this thread); none after 5 s.
std::optional<v1::Command> nextCommand(RawBot &bot)
{
    std::optional<v1::Command> command;
    const bool got = QTest::qWaitFor(
        [&] {
            command = bot.readCommand(10ms);
            return command.has_value();
        },
        5000);
    return got ? command : std::nullopt;
}

// Sends as opctl would (the Operator API's service, not the window); the command's id.
QString sendAs(Rig &rig, const QString &bot, const CommandSpec &spec, milliseconds timeout = 30s)
{
    static int next = 0;
    const QString id = QStringLiteral("opctl-%1").arg(++next);
    rig.service->sendWithId(id, bot, spec, timeout);
    return id;
}

} // namespace

class TestMainWindow : public QObject
{
    Q_OBJECT

private slots:
    void cancelSaysWhatItDidAndIsGreyedOverFinishedCommands();
    void helpListsEveryShortcutAndQuitCloses();
    void initTestCase() { QStandardPaths::setTestModeEnabled(true); }
    // Each test starts from no saved settings (a filter or threshold one test leaves must
    // not change the next).
    void init() { QSettings().clear(); }
    void selectBotClickSendSeePendingThenAcked();
    void silentBotExpiresThenShowsItsLateAck();
    void cancelFromTheContextMenu();
    void fanOutShowsAnAggregateRow();
    void moreFanOutsThanRowsWithOldOnesPending();
    void fanOutTallyCountsLateAcks();
    void filtersNarrowTheTable();
    void copyAsOpctlAndDetails();
    void refusalBeforeRegistrationIsShown();
    void sendPanelFitsItsParameters();
    void settingsPersist();
    void hostileSettingsTimeoutsAreIgnored();
    void awaitingBotIsAcceptedFromTheFleetThenRevoked();
    void rejectingAHeldBotAsksFirst();
    void issuedByColumnAndDetails();
    void decisionsNeedAnAdmin();
    void detailsShowTheRecordNotTheSendPanel();
    void keyboardReachesEveryPane();
    void destructiveFanOutAsksFirst();
    void clearFinishedKeepsPending();
    void botDetailsFromTheFleet();
    void inFlightFollowsTheTable();
    void toolbarTooltipsNameTheirShortcuts();
    void fanOutDialogOffersWaves();
    void rolloutFromTheWindowSendsInWaves();
    void rolloutThroughTheOperatorApi();
};

void TestMainWindow::selectBotClickSendSeePendingThenAcked()
{
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    QVERIFY(rig.botListed("bot-1"));
    rig.window->selectBots({"bot-1"});
    rig.window->sendPanel()->setKind(CommandKind::Ping);
    QVERIFY(rig.window->sendPanel()->sendButton()->isEnabled());
    QTest::mouseClick(rig.window->sendPanel()->sendButton(), Qt::LeftButton);
    const auto command = bot.readCommand(5s);
    QVERIFY(command.has_value());
    const QString id = QString::fromStdString(command->command_id());
    QTRY_COMPARE_WITH_TIMEOUT(rig.stateOf(id), QString("pending"), 5000);
    bot.ack(command->command_id(), true, "pong");
    QTRY_COMPARE_WITH_TIMEOUT(rig.stateOf(id), QString("acked"), 5000);
    const int row = rig.window->commandModel()->rowOf(id);
    QCOMPARE(rig.window->commandModel()->index(row, CommandTableModel::Message).data().toString(),
             QString("pong"));
    QTRY_VERIFY_WITH_TIMEOUT(rig.window->statusText().contains("acked 1"), 5000);
    // Registered and sent often arrive in one batch: still one command, and none pending now.
    QVERIFY2(rig.window->statusText().contains("pending 0"), qPrintable(rig.window->statusText()));
}

void TestMainWindow::silentBotExpiresThenShowsItsLateAck()
{
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-slow"));
    QVERIFY(rig.botListed("bot-slow"));
    rig.window->selectBots({"bot-slow"});
    rig.window->sendPanel()->setKind(CommandKind::Restart);
    rig.service->send("bot-slow", CommandSpec::of(CommandKind::Restart), 200ms);
    const auto command = bot.readCommand(5s);
    QVERIFY(command.has_value());
    const QString id = QString::fromStdString(command->command_id());
    QTRY_COMPARE_WITH_TIMEOUT(rig.stateOf(id), QString("expired"), 5000);
    bot.ack(command->command_id(), true, "restarted late");
    QTRY_VERIFY_WITH_TIMEOUT(rig.stateOf(id).startsWith("expired, late ack after"), 5000);
    rig.window->stateFilter()->setCurrentIndex(3); // Problems: a late ack is one
    QCOMPARE(rig.window->commandProxy()->rowCount(), 1);
}

void TestMainWindow::cancelFromTheContextMenu()
{
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    const QString id = rig.service->newCommandId();
    rig.service->sendWithId(id, "bot-1", CommandSpec::of(CommandKind::Stop), 60s);
    QVERIFY(bot.readCommand(5s).has_value());
    QTRY_COMPARE_WITH_TIMEOUT(rig.stateOf(id), QString("pending"), 5000);
    rig.window->selectCommand(id);
    QAction *cancel = nullptr;
    for (QAction *a : rig.window->commandMenu()->actions()) {
        if (a->text() == QLatin1String("Cancel"))
            cancel = a;
    }
    QVERIFY(cancel);
    QCOMPARE(cancel->shortcut(), QKeySequence(QKeySequence::Delete));
    cancel->trigger();
    QTRY_COMPARE_WITH_TIMEOUT(rig.stateOf(id), QString("cancelled"), 5000);
    bool told = false;
    for (int i = 0; i < 5 && !told; ++i) {
        const auto message = bot.read(2s);
        told =
            message && message->has_cancel() && message->cancel().command_id() == id.toStdString();
    }
    QVERIFY(told);
}

void TestMainWindow::fanOutShowsAnAggregateRow()
{
    Rig rig;
    RawBot a(rig.address()), b(rig.address());
    QVERIFY(a.hello("bot-a"));
    QVERIFY(b.hello("bot-b"));
    QVERIFY(rig.botListed("bot-a") && rig.botListed("bot-b"));
    rig.window->selectBots({"bot-a", "bot-b"});
    QCOMPARE(rig.window->selectedBots().size(), 2);
    rig.window->sendKindToSelection(CommandKind::Start);
    const auto ca = a.readCommand(5s), cb = b.readCommand(5s);
    QVERIFY(ca && cb);
    QTRY_COMPARE_WITH_TIMEOUT(rig.window->fanOutModel()->rowCount(), 1, 5000);
    QVERIFY2(rig.fanOutText(0).contains("0/2 acked, 2 pending"), qPrintable(rig.fanOutText(0)));
    a.ack(ca->command_id(), true, "started");
    b.ack(cb->command_id(), false, "no fuel");
    QTRY_VERIFY_WITH_TIMEOUT(rig.fanOutText(0).endsWith("1/2 acked, 1 rejected"), 5000);
    QVERIFY(rig.fanOutText(0).startsWith("start → 2 bots"));
}

void TestMainWindow::moreFanOutsThanRowsWithOldOnesPending()
{
    // Regression: rows were QListWidgetItem pointers kept by continuations; past the 20-row
    // cap an old fan-out's tally went into another row or freed memory. Now rows are found by
    // fan-out id: the oldest fan-outs, still pending when they leave the list, finish without
    // touching any row, and every row shows its own tally.
    Rig rig;
    RawBot a(rig.address()), b(rig.address());
    QVERIFY(a.hello("bot-a"));
    QVERIFY(b.hello("bot-b"));
    QVERIFY(rig.botListed("bot-a") && rig.botListed("bot-b"));
    const int cap = FanOutModel::DefaultMaxRows;
    const int sent = cap + 15;
    rig.window->selectBots({"bot-a", "bot-b"});
    for (int i = 0; i < sent; ++i)
        rig.window->sendKindToSelection(i < 15 ? CommandKind::Stop : CommandKind::Start);
    std::vector<std::string> idsA, idsB;
    for (int i = 0; i < sent; ++i) {
        const auto ca = a.readCommand(5s), cb = b.readCommand(5s);
        QVERIFY(ca && cb);
        idsA.push_back(ca->command_id());
        idsB.push_back(cb->command_id());
    }
    QTRY_COMPARE_WITH_TIMEOUT(rig.window->fanOutModel()->rowCount(), cap, 5000);
    // The newest first; the 15 oldest (the stops) are no longer listed, and still pending.
    for (int r = 0; r < cap; ++r)
        QVERIFY2(rig.fanOutText(r).startsWith("start → 2 bots") &&
                     rig.fanOutText(r).endsWith("0/2 acked, 2 pending"),
                 qPrintable(rig.fanOutText(r)));
    // The kept ones finish: one ack and one rejection each; then the dropped ones: acks.
    for (int i = 15; i < sent; ++i) {
        a.ack(idsA[size_t(i)], true, "ok");
        b.ack(idsB[size_t(i)], false, "no");
    }
    for (int i = 0; i < 15; ++i) {
        a.ack(idsA[size_t(i)], true, "ok");
        b.ack(idsB[size_t(i)], true, "ok");
    }
    QTRY_COMPARE_WITH_TIMEOUT(rig.window->commandProxy()->rowCount(), 2 * sent, 5000);
    QTRY_VERIFY_WITH_TIMEOUT(rig.stateOf(QString::fromStdString(idsB[0])) == "acked", 5000);
    QCOMPARE(rig.window->fanOutModel()->rowCount(), cap);
    for (int r = 0; r < cap; ++r)
        QVERIFY2(rig.fanOutText(r).startsWith("start → 2 bots") &&
                     rig.fanOutText(r).endsWith("1/2 acked, 1 rejected"),
                 qPrintable(rig.fanOutText(r)));
}

void TestMainWindow::fanOutTallyCountsLateAcks()
{
    Rig rig;
    RawBot quick(rig.address()), slow(rig.address());
    QVERIFY(quick.hello("bot-quick"));
    QVERIFY(slow.hello("bot-slow"));
    const FanOut fan = rig.service->sendToMany({"bot-quick", "bot-slow"},
                                               CommandSpec::of(CommandKind::Ping), 300ms);
    const auto cq = quick.readCommand(5s), cs = slow.readCommand(5s);
    QVERIFY(cq && cs);
    quick.ack(cq->command_id(), true, "pong");
    QTRY_VERIFY_WITH_TIMEOUT(rig.window->fanOutModel()->rowOf(fan.id) == 0 &&
                                 rig.fanOutText(0).endsWith("1/2 acked, 1 expired"),
                             5000);
    slow.ack(cs->command_id(), true, "pong, late");
    // The row follows the late ack as the table does, not only the first outcome.
    QTRY_VERIFY_WITH_TIMEOUT(rig.fanOutText(0).endsWith("1/2 acked, 1 expired (late ack)"), 5000);
    QVERIFY(rig.stateOf(QString::fromStdString(cs->command_id())).startsWith("expired, late ack"));
    // A click on the row shows its commands only.
    rig.window->fanOutList()->clicked(rig.window->fanOutModel()->index(0));
    QCOMPARE(rig.window->commandProxy()->fanOut(), fan.id);
    QCOMPARE(rig.window->commandProxy()->rowCount(), 2);
}

void TestMainWindow::filtersNarrowTheTable()
{
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    for (int i = 0; i < 3; ++i)
        rig.service->send("bot-1", CommandSpec::of(CommandKind::Ping), 30s);
    rig.service->send("bot-gone", CommandSpec::of(CommandKind::Ping), 30s); // not connected
    for (int i = 0; i < 3; ++i) {
        const auto c = bot.readCommand(5s);
        QVERIFY(c.has_value());
        if (i == 0)
            bot.ack(c->command_id(), true, "pong");
    }
    QTRY_COMPARE_WITH_TIMEOUT(rig.window->commandModel()->rowCount(), 4, 5000);
    QTRY_COMPARE_WITH_TIMEOUT(rig.registry.counters().acked, 1u, 5000);
    QCoreApplication::processEvents();
    auto *proxy = rig.window->commandProxy();
    rig.window->stateFilter()->setCurrentIndex(1); // Pending
    QCOMPARE(proxy->rowCount(), 2);
    rig.window->stateFilter()->setCurrentIndex(3); // Problems
    QCOMPARE(proxy->rowCount(), 1);
    rig.window->stateFilter()->setCurrentIndex(0);
    QTest::keyClicks(rig.window->commandFilter(), "bot-gone");
    QCOMPARE(proxy->rowCount(), 1);
    rig.window->commandFilter()->clear();
    QCOMPARE(proxy->rowCount(), 4);
    // '/' focuses the filter.
    rig.window->activateWindow();
    rig.window->commandsView()->setFocus();
    QTest::keyClick(rig.window->commandsView(), Qt::Key_Slash);
    QTRY_VERIFY(rig.window->commandFilter()->hasFocus());
}

void TestMainWindow::copyAsOpctlAndDetails()
{
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    QVERIFY(rig.botListed("bot-1"));
    rig.window->selectBots({"bot-1"});
    rig.window->sendPanel()->setKind(CommandKind::ConfigUpdate);
    QVERIFY(!rig.window->sendPanel()->sendButton()->isEnabled()); // no keys yet
    rig.window->sendPanel()->setConfigValues({{"depth", "3"}});
    QVERIFY(rig.window->sendPanel()->sendButton()->isEnabled());
    rig.window->sendToSelection();
    const auto command = bot.readCommand(5s);
    QVERIFY(command && command->has_config_update());
    const QString id = QString::fromStdString(command->command_id());
    QVERIFY(bot.progress(command->command_id(), 30, "validating"));
    QVERIFY(bot.progress(command->command_id(), 70, "writing"));
    QTRY_COMPARE_WITH_TIMEOUT(rig.registry.find(id)->progressSteps.size(), 2, 5000);
    bot.ack(command->command_id(), true, "applied");
    QTRY_COMPARE_WITH_TIMEOUT(rig.stateOf(id), QString("acked"), 5000);
    rig.window->selectCommand(id);
    rig.window->copySelectedAsOpctl();
    const QString line = QGuiApplication::clipboard()->text();
    QVERIFY2(line.startsWith("opctl --hub " + rig.hub->operatorAddress() +
                             " send bot-1 config --timeout"),
             qPrintable(line));
    QVERIFY(line.contains("--set depth=3"));
    QTRY_VERIFY_WITH_TIMEOUT(rig.window->details()->toPlainText().contains("depth = 3"), 5000);
    QVERIFY(rig.window->details()->toPlainText().contains("Timeline"));
    QVERIFY(rig.window->details()->toPlainText().contains("applied"));
    const QString details = rig.window->details()->toPlainText();
    QVERIFY2(details.indexOf("progress 30% validating") >= 0 &&
                 details.indexOf("progress 30% validating") <
                     details.indexOf("progress 70% writing"),
             qPrintable(details));
}

void TestMainWindow::refusalBeforeRegistrationIsShown()
{
    Rig rig;
    rig.service->setMaxInFlightPerBot(1);
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    QVERIFY(rig.botListed("bot-1"));
    rig.window->selectBots({"bot-1"});
    rig.window->sendPanel()->setKind(CommandKind::Ping);
    rig.window->sendToSelection();
    QVERIFY(bot.readCommand(5s).has_value()); // in flight, never answered
    rig.window->sendToSelection();            // over the cap of one
    const QString message = rig.window->statusBar()->currentMessage();
    QVERIFY2(message.contains("not sent to bot-1") && message.contains("in flight"),
             qPrintable(message));
    QCOMPARE(rig.registry.pendingCount("bot-1"), 1);
}

void TestMainWindow::sendPanelFitsItsParameters()
{
    Rig rig;
    SendPanel *panel = rig.window->sendPanel();
    panel->setKind(CommandKind::Ping);
    const int small = panel->height();
    QVERIFY(small >= panel->sizeHint().height());
    // The config editor gets its room, taken from the commands table, and gives it back.
    panel->setKind(CommandKind::ConfigUpdate);
    QVERIFY2(panel->height() >= panel->sizeHint().height(),
             qPrintable(QString("%1 < %2").arg(panel->height()).arg(panel->sizeHint().height())));
    QVERIFY(panel->height() > small);
    panel->setKind(CommandKind::Ping);
    QCOMPARE(panel->height(), small);
    // The hint that says why Send is off has its line reserved: it does not move the
    // tables when it comes and goes (issue 12, item 13).
    auto *hint = panel->findChild<QLabel *>(QStringLiteral("sendProblem"));
    QVERIFY(hint && hint->text().contains("Select"));
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    QVERIFY(rig.botListed("bot-1"));
    rig.window->selectBots({"bot-1"});
    QVERIFY(hint->text().isEmpty());
    QCOMPARE(panel->height(), small);
    // At 1024x700 the config editor leaves the commands table at least eight rows.
    rig.window->resize(1024, 700);
    panel->setKind(CommandKind::ConfigUpdate);
    QCoreApplication::processEvents();
    const int rows = rig.window->commandsView()->viewport()->height() /
                     rig.window->commandsView()->verticalHeader()->defaultSectionSize();
    QVERIFY2(rows >= 8, qPrintable(QString::number(rows)));
    // "+" opens the new key for typing: what is typed lands there, not in the timeout.
    panel->setKind(CommandKind::ConfigUpdate);
    auto *add = panel->findChild<QToolButton *>(QStringLiteral("addConfigRow"));
    auto *table = panel->findChild<QTableWidget *>();
    QVERIFY(add && table);
    rig.window->activateWindow();
    add->click();
    QCOMPARE(table->rowCount(), 1);
    // The cell's editor has the keyboard.
    QVERIFY(QTest::qWaitFor(
        [&] {
            QWidget *focus = QApplication::focusWidget();
            return focus && table->isAncestorOf(focus) && qobject_cast<QLineEdit *>(focus);
        },
        2000));
    QWidget *editor = QApplication::focusWidget();
    QTest::keyClicks(editor, QStringLiteral("depth"));
    QCOMPARE(qobject_cast<QLineEdit *>(editor)->text(), QStringLiteral("depth"));
}

void TestMainWindow::cancelSaysWhatItDidAndIsGreyedOverFinishedCommands()
{
    Rig rig;
    auto *cancel = rig.window->findChild<QAction *>(QStringLiteral("cancelCommands"));
    QVERIFY(cancel);
    // Nothing selected: the status bar says what to do.
    rig.window->commandsView()->clearSelection();
    cancel->trigger();
    QVERIFY2(rig.window->statusBar()->currentMessage().contains(QLatin1String("Select pending")),
             qPrintable(rig.window->statusBar()->currentMessage()));
    // A finished command selected: greyed for the menu, and said so from the toolbar.
    auto done = rig.service->send(QStringLiteral("nobody"), CommandSpec::of(CommandKind::Ping),
                                  std::chrono::seconds(5));
    QVERIFY(QTest::qWaitFor(
        [&] { return rig.window->commandModel()->rowCount() == 1 && done.isFinished(); }, 5000));
    rig.window->commandsView()->selectRow(0);
    QVERIFY(!rig.window->refreshCancelAction());
    QVERIFY(!cancel->isEnabled());
    cancel->setEnabled(true); // as the menu leaves it
    cancel->trigger();
    QVERIFY2(rig.window->statusBar()->currentMessage().contains(QLatin1String("have finished")),
             qPrintable(rig.window->statusBar()->currentMessage()));
}

void TestMainWindow::helpListsEveryShortcutAndQuitCloses()
{
    Rig rig;
    auto *shortcuts = rig.window->findChild<QAction *>(QStringLiteral("keyboardShortcuts"));
    QVERIFY(shortcuts);
    QCOMPARE(shortcuts->shortcut(), QKeySequence(QStringLiteral("F1")));
    shortcuts->trigger();
    auto *list = rig.window->findChild<QLabel *>(QStringLiteral("shortcutsList"));
    QVERIFY(list);
    for (const char *expected : {"Ctrl+H", "History", "Ctrl+E", "Export", "Ctrl+Q", "Quit",
                                 "Ctrl+Shift+A", "Accept", "Filter the commands"})
        QVERIFY2(list->text().contains(QLatin1String(expected)), expected);
    auto *quit = rig.window->findChild<QAction *>(QStringLiteral("quit"));
    QVERIFY(quit);
    QCOMPARE(quit->shortcut(), QKeySequence(QStringLiteral("Ctrl+Q")));
    QVERIFY(rig.window->isVisible());
    quit->trigger();
    QVERIFY(!rig.window->isVisible());
}

void TestMainWindow::settingsPersist()
{
    QSettings().remove(QStringLiteral("window/geometry"));
    {
        Rig first;
        QCOMPARE(first.window->size(), QSize(1400, 860)); // nothing saved: the default
        first.window->close();
    }
    {
        Rig rig;
        rig.window->commandFilter()->setText("remember me");
        rig.window->stateFilter()->setCurrentIndex(2);
        rig.window->resize(1100, 720);
        QVERIFY(QTest::qWaitFor([&] { return rig.window->size() == QSize(1100, 720); }, 5000));
        rig.window->close();
    }
    Rig again;
    QCOMPARE(again.window->commandFilter()->text(), QString("remember me"));
    QCOMPARE(again.window->stateFilter()->currentIndex(), 2);
    QCOMPARE(again.window->size(), QSize(1100, 720)); // the size it was left at
    // Messages have room beside the counters (they were hidden behind a stretching label).
    auto *counters = again.window->findChild<StatusLine *>();
    QVERIFY(counters);
    again.window->statusBar()->showMessage(QStringLiteral("restart sent to 22 bots"));
    QVERIFY2(again.window->statusBar()->width() - counters->width() >=
                 again.window->statusBar()->fontMetrics().horizontalAdvance(
                     QStringLiteral("restart sent to 22 bots")),
             qPrintable(QStringLiteral("bar %1, counters %2")
                            .arg(again.window->statusBar()->width())
                            .arg(counters->width())));
    again.window->commandFilter()->clear();
    again.window->stateFilter()->setCurrentIndex(0);
    again.window->close();
}

void TestMainWindow::hostileSettingsTimeoutsAreIgnored()
{
    const auto defaultPing = SendPanel().timeoutFor(CommandKind::Ping);
    {
        QSettings settings;
        settings.beginGroup(QStringLiteral("send"));
        settings.setValue(QStringLiteral("timeout/ping"), 1e300); // would overflow qint64 ms
        settings.setValue(QStringLiteral("timeout/restart"), QStringLiteral("soon"));
        settings.setValue(QStringLiteral("timeout/stop"), -5);
        settings.setValue(QStringLiteral("timeout/start"), 12.5); // in range: kept
    }
    SendPanel panel;
    panel.loadSettings();
    QCOMPARE(panel.timeoutFor(CommandKind::Ping), defaultPing);
    QVERIFY(panel.timeoutFor(CommandKind::Restart).count() > 0);
    QVERIFY(panel.timeoutFor(CommandKind::Stop).count() > 0);
    QCOMPARE(panel.timeoutFor(CommandKind::Start), std::chrono::milliseconds(12'500));
    QSettings().remove(QStringLiteral("send"));
}

void TestMainWindow::awaitingBotIsAcceptedFromTheFleetThenRevoked()
{
    ApprovalRig a;
    MainWindow &window = *a.rig.window;
    QVERIFY(window.approvalBar()->isHidden());
    const auto bot = a.bot();
    QVERIFY(!bot->hello("bot-7")); // held: no Welcome
    QVERIFY(QTest::qWaitFor([&] { return a.waiting("bot-7"); }, 5000));
    // Visible and obvious: its own text, the bar above the fleet, the status line.
    QCOMPARE(a.connection("bot-7"), QString("awaiting approval"));
    const FleetModel *fleet = window.fleetModel();
    const QModelIndex cell = fleet->index(fleet->rowOf("bot-7"), FleetModel::Connection);
    QVERIFY2(cell.data(Qt::ToolTipRole).toString().contains("token:rack"),
             qPrintable(cell.data(Qt::ToolTipRole).toString()));
    QVERIFY(!cell.data(Qt::DecorationRole).value<QIcon>().isNull());
    QVERIFY(window.approvalBar()->isVisible());
    QVERIFY2(window.approvalText().contains("1 bot awaiting approval"),
             qPrintable(window.approvalText()));
    QTRY_VERIFY_WITH_TIMEOUT(window.statusText().contains("1 awaiting approval"), 5000);

    // The local user is an admin: Accept (and Reject) for the held bot, not Revoke.
    QVERIFY(!window.acceptAction()->isEnabled()); // nothing selected yet
    window.selectBots({"bot-7"});
    QVERIFY(window.acceptAction()->isEnabled());
    QVERIFY(window.rejectAction()->isEnabled());
    QVERIFY(!window.revokeAction()->isEnabled());
    QVERIFY(window.fleetMenu()->actions().contains(window.acceptAction()));
    QCOMPARE(window.acceptAction()->shortcut(), QKeySequence("Ctrl+Shift+A"));
    window.acceptAction()->trigger();
    const auto welcome = bot->read();
    QVERIFY(welcome && welcome->has_welcome());
    QTRY_VERIFY_WITH_TIMEOUT(
        fleet->index(fleet->rowOf("bot-7"), 0).data(FleetModel::ConnectedRole).toBool(), 5000);
    QCOMPARE(a.connection("bot-7"), QString("connected"));
    QTRY_VERIFY_WITH_TIMEOUT(window.approvalBar()->isHidden(), 5000);
    QTRY_VERIFY2_WITH_TIMEOUT(window.statusBar()->currentMessage().contains("bot-7 accepted"),
                              qPrintable(window.statusBar()->currentMessage()), 5000);
    QVERIFY(a.admission->find("bot-7").by.startsWith("console:"));

    // Live: a command from the window reaches it.
    window.selectBots({"bot-7"});
    window.sendPanel()->setKind(CommandKind::Ping);
    window.sendToSelection();
    const auto command = bot->readCommand();
    QVERIFY(command);
    bot->ack(command->command_id());
    QTRY_COMPARE_WITH_TIMEOUT(a.rig.stateOf(QString::fromStdString(command->command_id())),
                              QString("acked"), 5000);

    // Revoked after confirming: disconnected at once, shown as rejected.
    QVERIFY(window.revokeAction()->isEnabled());
    QVERIFY(!window.acceptAction()->isEnabled());
    bool answered = false;
    answerDecisionDialog("lost in transit", true, &answered);
    window.revokeAction()->trigger();
    QVERIFY(answered);
    const auto closed = bot->waitClosed();
    QVERIFY(closed);
    QCOMPARE(closed->error_code(), grpc::StatusCode::PERMISSION_DENIED);
    QVERIFY2(closed->error_message().find("lost in transit") != std::string::npos,
             closed->error_message().c_str());
    QTRY_VERIFY_WITH_TIMEOUT(a.connection("bot-7").startsWith("rejected"), 5000);
    QCOMPARE(fleet->index(fleet->rowOf("bot-7"), 0).data(FleetModel::AdmissionRole).toInt(),
             int(BotAdmission::Rejected));
    QVERIFY(window.acceptAction()->isEnabled()); // lifting the rejection is an accept
    QVERIFY(!window.revokeAction()->isEnabled());
}

void TestMainWindow::rejectingAHeldBotAsksFirst()
{
    ApprovalRig a;
    MainWindow &window = *a.rig.window;
    const auto bot = a.bot();
    QVERIFY(!bot->hello("bot-8"));
    QVERIFY(QTest::qWaitFor([&] { return a.waiting("bot-8"); }, 5000));
    window.selectBots({"bot-8"});
    // Cancelled: nothing happens.
    bool answered = false;
    answerDecisionDialog({}, false, &answered);
    window.rejectAction()->trigger();
    QVERIFY(answered);
    QVERIFY(!bot->waitClosed(200ms)); // still held (a bounded look, not a sleep)
    QVERIFY(a.waiting("bot-8"));
    // Confirmed: refused with PERMISSION_DENIED, and shown as rejected.
    answered = false;
    answerDecisionDialog("unknown hardware", true, &answered);
    window.rejectAction()->trigger();
    QVERIFY(answered);
    const auto closed = bot->waitClosed();
    QVERIFY(closed);
    QCOMPARE(closed->error_code(), grpc::StatusCode::PERMISSION_DENIED);
    QTRY_VERIFY_WITH_TIMEOUT(a.connection("bot-8").startsWith("rejected"), 5000);
    QTRY_VERIFY2_WITH_TIMEOUT(window.statusBar()->currentMessage().contains("bot-8 rejected"),
                              qPrintable(window.statusBar()->currentMessage()), 5000);
    QCOMPARE(a.admission->find("bot-8").reason, QString("unknown hardware"));
    QTRY_VERIFY_WITH_TIMEOUT(window.approvalBar()->isHidden(), 5000);
    // Its next connection is refused.
    const auto again = a.bot();
    QVERIFY(!again->hello("bot-8"));
    const auto refused = again->waitClosed();
    QVERIFY(refused && refused->error_code() == grpc::StatusCode::PERMISSION_DENIED);
}

void TestMainWindow::issuedByColumnAndDetails()
{
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    QVERIFY(rig.botListed("bot-1"));
    // One from the window, one from an operator of the Operator API.
    rig.window->selectBots({"bot-1"});
    rig.window->sendKindToSelection(CommandKind::Ping);
    const auto fromWindow = bot.readCommand();
    QVERIFY(fromWindow);
    SendOptions asAlice;
    asAlice.issuer = QStringLiteral("alice");
    const QString id = rig.service->newCommandId();
    rig.service->sendWithId(id, "bot-1", CommandSpec::of(CommandKind::Ping), 30s, asAlice);
    QVERIFY(bot.readCommand());
    const CommandTableModel *model = rig.window->commandModel();
    QTRY_VERIFY_WITH_TIMEOUT(model->rowOf(id) >= 0, 5000);
    QCOMPARE(
        model->headerData(CommandTableModel::IssuedBy, Qt::Horizontal, Qt::DisplayRole).toString(),
        QString("Issued by"));
    QCOMPARE(model->index(model->rowOf(id), CommandTableModel::IssuedBy).data().toString(),
             QString("alice"));
    const QString windowId = QString::fromStdString(fromWindow->command_id());
    QTRY_VERIFY_WITH_TIMEOUT(model->rowOf(windowId) >= 0, 5000);
    QVERIFY(model->index(model->rowOf(windowId), CommandTableModel::IssuedBy)
                .data()
                .toString()
                .startsWith("console:"));
    // Shown (before Message), found by the filter, and said the same way in the details.
    QVERIFY(!rig.window->commandsView()->isColumnHidden(CommandTableModel::IssuedBy));
    rig.window->commandFilter()->setText("alice");
    QCOMPARE(rig.window->commandProxy()->rowCount(), 1);
    rig.window->commandFilter()->clear();
    rig.window->selectCommand(id);
    QTRY_VERIFY_WITH_TIMEOUT(rig.window->details()->toPlainText().contains("issued by alice"),
                             5000);
}

void TestMainWindow::decisionsNeedAnAdmin()
{
    // A window attached through the Operator API with an operator's token: it sees the held
    // bot, and the decisions are off, saying why.
    QString error;
    const QString rack = security::newToken();
    const QString olga = security::newToken();
    HubOptions options;
    options.security.tokens = security::BotTokens::parse(
        "rack bot-* " + security::tokenHash(rack.toUtf8()).toUtf8() + "\n", "test", &error);
    options.security.approveNew = true;
    HubRig rig(options);
    OperatorService api(*rig.service, rig.feed);
    api.setAccess(
        {security::OperatorDirectory::parse(
             "olga operator " + security::tokenHash(olga.toUtf8()).toUtf8() + "\n", "test", &error),
         1000});
    api.attachTo(*rig.hub);
    QVERIFY(rig.start());
    RawBot bot(rig.address(), {{}, rack.toStdString(), {}});
    QVERIFY(!bot.hello("bot-9"));
    RemoteBackend::Options remote;
    remote.firstRetry = 50ms;
    remote.security.token = olga.toUtf8();
    {
        HubSet backend({QString::fromStdString(rig.operatorAddress())}, remote);
        MainWindow window(backend);
        window.show();
        QVERIFY(QTest::qWaitFor(
            [&] {
                const FleetModel *m = window.fleetModel();
                return m->rowOf("bot-9") >= 0 &&
                       m->index(m->rowOf("bot-9"), 0).data(FleetModel::WaitingRole).toBool();
            },
            10'000));
        QTRY_VERIFY_WITH_TIMEOUT(window.statusText().contains("as olga (operator)"), 5000);
        QVERIFY(window.approvalBar()->isVisible());
        window.selectBots({"bot-9"});
        for (QAction *action :
             {window.acceptAction(), window.rejectAction(), window.revokeAction()}) {
            QVERIFY(!action->isEnabled());
            QVERIFY2(action->toolTip().contains("Only an admin") &&
                         action->toolTip().contains("olga (operator)"),
                     qPrintable(action->toolTip()));
        }
        // Asked anyway (a script): the hub refuses, and the status bar says so.
        window.decide(window.fleetModel()->bot("bot-9")
                          ? QList<BotInfo>{*window.fleetModel()->bot("bot-9")}
                          : QList<BotInfo>{},
                      BotDecision::Accept, {});
        QTRY_VERIFY_WITH_TIMEOUT(window.statusBar()->currentMessage().contains("not allowed"),
                                 10'000);
        QVERIFY(!rig.hub->isConnected("bot-9"));
    }
    rig.hub->stop();
}

QTEST_MAIN(TestMainWindow)
void TestMainWindow::detailsShowTheRecordNotTheSendPanel()
{
    // Issue 12, items 2 and 17: what the config editor still holds stays out of a custom
    // command; a command sent by opctl shows its parameters.
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    QVERIFY(rig.botListed("bot-1"));
    rig.window->selectBots({"bot-1"});
    SendPanel *panel = rig.window->sendPanel();
    panel->setKind(CommandKind::ConfigUpdate);
    panel->setConfigValues({{"depth", "3"}});
    panel->setCustom("dump", R"({"rows": 2})");
    panel->setKind(CommandKind::Custom);
    rig.window->sendToSelection();
    auto command = bot.readCommand(5s);
    QVERIFY(command && command->has_custom());
    QString id = QString::fromStdString(command->command_id());
    QTRY_COMPARE_WITH_TIMEOUT(rig.stateOf(id), QString("pending"), 5000);
    QCOMPARE(rig.registry.find(id)->params, QString(R"({"name":"dump","payload":{"rows":2}})"));
    rig.window->selectCommand(id);
    QTRY_VERIFY_WITH_TIMEOUT(rig.window->details()->toPlainText().contains("name: dump"), 5000);
    QVERIFY(!rig.window->details()->toPlainText().contains("depth"));
    rig.window->copySelectedAsOpctl();
    QString line = QGuiApplication::clipboard()->text();
    QVERIFY2(!line.contains("--set") && line.contains("--name dump"), qPrintable(line));

    // As opctl sends it: through the Operator API's service, not this window.
    CommandSpec config = CommandSpec::of(CommandKind::ConfigUpdate);
    config.config = {{"mode", "fast"}};
    config.configVersion = 9;
    id = sendAs(rig, "bot-1", config);
    QTRY_COMPARE_WITH_TIMEOUT(rig.stateOf(id), QString("pending"), 5000);
    rig.window->selectCommand(id);
    QTRY_VERIFY_WITH_TIMEOUT(rig.window->details()->toPlainText().contains("mode = fast"), 5000);
    QVERIFY(rig.window->details()->toPlainText().contains("version 9"));
    rig.window->copySelectedAsOpctl();
    line = QGuiApplication::clipboard()->text();
    QVERIFY2(line.contains("--set mode=fast --version 9"), qPrintable(line));
}

void TestMainWindow::keyboardReachesEveryPane()
{
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    QVERIFY(rig.botListed("bot-1"));
    rig.window->activateWindow();
    QVERIFY(QTest::qWaitForWindowActive(rig.window.get()));
    auto focusAfter = [&](QWidget *at, int key, Qt::KeyboardModifiers modifiers) {
        at->setFocus();
        QTest::keyClick(at, Qt::Key(key), modifiers);
        return QApplication::focusWidget();
    };
    QLineEdit *fleetFilter = rig.window->fleetFilter();
    // Tab: from the fleet's filter to its table, from there to the send panel (not through
    // the table's cells).
    QCOMPARE(focusAfter(fleetFilter, Qt::Key_Tab, {}), rig.window->fleetView());
    QCOMPARE(focusAfter(rig.window->fleetView(), Qt::Key_Tab, {}),
             rig.window->sendPanel()->kindBox());
    // One key for each pane, from anywhere.
    QCOMPARE(focusAfter(fleetFilter, Qt::Key_3, Qt::AltModifier), rig.window->commandsView());
    QCOMPARE(focusAfter(fleetFilter, Qt::Key_1, Qt::AltModifier), rig.window->fleetView());
    QCOMPARE(focusAfter(fleetFilter, Qt::Key_2, Qt::AltModifier),
             rig.window->sendPanel()->kindBox());
    QCOMPARE(focusAfter(fleetFilter, Qt::Key_4, Qt::AltModifier), rig.window->details());
    // '/' in a text field is a slash; elsewhere it goes to the commands' filter.
    fleetFilter->clear();
    QCOMPARE(focusAfter(fleetFilter, Qt::Key_Slash, {}), fleetFilter);
    QCOMPARE(fleetFilter->text(), QString("/"));
    fleetFilter->clear();
    QCOMPARE(focusAfter(rig.window->fleetView(), Qt::Key_Slash, {}),
             static_cast<QWidget *>(rig.window->commandFilter()));
    QCOMPARE(rig.window->commandFilter()->text(), QString());
    // The shortcuts list names them.
    rig.window->showShortcuts();
    auto *list = rig.window->findChild<QLabel *>(QStringLiteral("shortcutsList"));
    QVERIFY(list && list->text().contains("Go to the fleet"));
}

void TestMainWindow::destructiveFanOutAsksFirst()
{
    QSettings().setValue("send/confirmAbove", 2);
    Rig rig;
    const QStringList ids = {"bot-0", "bot-1", "bot-2"};
    const auto bots = rig.helloBots(ids, {{"group", "canary"}});
    QVERIFY(bots.size() == 3);
    rig.window->fleetFilter()->setText("group=canary");
    rig.window->selectBots(ids);
    QCOMPARE(rig.window->selectedBots().size(), 3);
    {
        FanOutAnswer no(false);
        rig.window->sendKindToSelection(CommandKind::Restart);
        QCOMPARE(no.asked, 1);
        QVERIFY2(no.text.contains("Restart 3 bots") && no.text.contains("group=canary"),
                 qPrintable(no.text));
    }
    QCOMPARE(rig.registry.counters().registered, 0u);
    QVERIFY(rig.window->statusBar()->currentMessage().contains("not sent"));
    {
        FanOutAnswer none(true);
        rig.window->sendKindToSelection(CommandKind::Ping); // not destructive: not asked
        QCOMPARE(none.asked, 0);
    }
    QTRY_COMPARE_WITH_TIMEOUT(rig.registry.counters().registered, 3u, 5000);
    {
        FanOutAnswer yes(true);
        rig.window->sendKindToSelection(CommandKind::Restart);
        QCOMPARE(yes.asked, 1);
    }
    QTRY_COMPARE_WITH_TIMEOUT(rig.registry.counters().registered, 6u, 5000);
    // Two bots: within the threshold, not asked.
    rig.window->selectBots(ids.mid(0, 2));
    {
        FanOutAnswer none(false);
        rig.window->sendKindToSelection(CommandKind::Stop);
        QCOMPARE(none.asked, 0);
    }
    QTRY_COMPARE_WITH_TIMEOUT(rig.registry.counters().registered, 8u, 5000);
}

void TestMainWindow::clearFinishedKeepsPending()
{
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    QVERIFY(rig.botListed("bot-1"));
    const QString done = sendAs(rig, "bot-1", CommandSpec::of(CommandKind::Ping));
    const QString waiting = sendAs(rig, "bot-1", CommandSpec::of(CommandKind::Ping));
    const auto first = bot.readCommand(5s);
    QVERIFY(first.has_value());
    bot.ack(done.toStdString(), true, "pong");
    QTRY_COMPARE_WITH_TIMEOUT(rig.stateOf(done), QString("acked"), 5000);
    QCOMPARE(rig.stateOf(waiting), QString("pending"));
    auto *clear = rig.window->findChild<QAction *>(QStringLiteral("clearFinished"));
    QVERIFY(clear);
    rig.window->selectCommand(done); // selected and in the details: both go with the row
    QTRY_VERIFY_WITH_TIMEOUT(rig.window->details()->toPlainText().contains(done), 5000);
    // No history here: it asks first; Cancel clears nothing.
    QTimer answer;
    QMessageBox::StandardButton button = QMessageBox::Cancel;
    int asked = 0;
    connect(&answer, &QTimer::timeout, &answer, [&] {
        if (auto *box = qobject_cast<QMessageBox *>(QApplication::activeModalWidget())) {
            ++asked;
            box->button(button)->click();
        }
    });
    answer.start(10);
    clear->trigger();
    QCOMPARE(asked, 1);
    QCOMPARE(rig.window->commandModel()->rowCount(), 2);
    button = QMessageBox::Yes;
    clear->trigger();
    QCOMPARE(asked, 2);
    answer.stop();
    QVERIFY(rig.window->selectedCommandIds().isEmpty()); // nothing inherits the selection
    QVERIFY(rig.window->details()->toPlainText().isEmpty());
    QCOMPARE(rig.window->commandModel()->rowCount(), 1);
    QCOMPARE(rig.stateOf(waiting), QString("pending"));
    QCOMPARE(rig.stateOf(done), QString());
    QVERIFY(rig.window->statusBar()->currentMessage().contains("1 finished command cleared"));
    QTRY_VERIFY_WITH_TIMEOUT(rig.window->statusText().contains("acked 1"), 5000); // the run's
    // The pending one still finishes in the table.
    bot.ack(waiting.toStdString(), true, "pong");
    QTRY_COMPARE_WITH_TIMEOUT(rig.stateOf(waiting), QString("acked"), 5000);
    QTRY_VERIFY_WITH_TIMEOUT(rig.window->statusText().contains("acked 2"), 5000);

    // A late ack for a cleared command: its row stays cleared, and it is counted once, as a
    // late ack (not as a second expiry).
    const QString silent = sendAs(rig, "bot-1", CommandSpec::of(CommandKind::Ping), 300ms);
    const auto late = bot.readCommand(5s);
    QVERIFY(late.has_value());
    QTRY_COMPARE_WITH_TIMEOUT(rig.stateOf(silent), QString("expired"), 5000);
    QTRY_VERIFY_WITH_TIMEOUT(rig.window->statusText().contains("expired 1"), 5000);
    button = QMessageBox::Yes;
    answer.start(10);
    clear->trigger();
    answer.stop();
    QCOMPARE(rig.window->commandModel()->rowCount(), 0);
    bot.ack(silent.toStdString(), true, "late pong");
    QTRY_COMPARE_WITH_TIMEOUT(rig.registry.counters().lateAcks, 1u, 5000);
    QTRY_VERIFY_WITH_TIMEOUT(rig.window->statusText().contains("late acks 1"), 5000);
    QVERIFY2(rig.window->statusText().contains("expired 1"), qPrintable(rig.window->statusText()));
    QCOMPARE(rig.window->commandModel()->rowCount(), 0);
}

void TestMainWindow::botDetailsFromTheFleet()
{
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-7", {{"region", "<eu>"}}));
    QVERIFY(rig.botListed("bot-7"));
    rig.window->selectBots({"bot-7"});
    QTableView *fleet = rig.window->fleetView();
    const int row = rig.window->fleetModel()->rowOf("bot-7");
    const QModelIndex at = fleet->model()->index(fleet->model()->rowCount() > 0 ? 0 : -1, 0);
    QVERIFY(at.isValid() && row >= 0);
    // As a mouse does it: press, double-click, release.
    const QPoint centre = fleet->visualRect(at).center();
    QTest::mousePress(fleet->viewport(), Qt::LeftButton, {}, centre);
    QTest::mouseDClick(fleet->viewport(), Qt::LeftButton, {}, centre);
    QTest::mouseRelease(fleet->viewport(), Qt::LeftButton, {}, centre);
    BotDetailsDialog *details = rig.window->botDetailsDialog();
    QVERIFY(details && details->isVisible());
    QCOMPARE(details->botId(), QString("bot-7"));
    const QString text = details->text();
    QVERIFY2(text.contains("connected since") && text.contains("&lt;eu&gt;") &&
                 !text.contains("<eu>") && text.contains("In flight"),
             qPrintable(text));
    details->findChild<QPushButton *>(QStringLiteral("botPing"))->click();
    const auto ping = bot.readCommand(5s);
    QVERIFY(ping && ping->has_ping());
    details->findChild<QPushButton *>(QStringLiteral("botCommands"))->click();
    QCOMPARE(rig.window->commandProxy()->bot(), QString("bot-7"));
    details->close();
    // From the keyboard: Enter on the bot.
    rig.window->activateWindow();
    QVERIFY(QTest::qWaitForWindowActive(rig.window.get()));
    fleet->setFocus();
    fleet->setCurrentIndex(at);
    QTest::keyClick(fleet, Qt::Key_Return);
    QTRY_VERIFY_WITH_TIMEOUT(details->isVisible(), 2000);
}

void TestMainWindow::inFlightFollowsTheTable()
{
    // Issue 12, item 9: the fleet's In flight agrees with the table as soon as the table
    // shows a change, not a second later.
    Rig rig;
    RawBot bot(rig.address());
    QVERIFY(bot.hello("bot-1"));
    QVERIFY(rig.botListed("bot-1"));
    const FleetModel *fleet = rig.window->fleetModel();
    auto inFlight = [&] {
        return fleet->index(fleet->rowOf("bot-1"), FleetModel::InFlight).data().toInt();
    };
    for (int round = 0; round < 20; ++round) {
        const QString a = sendAs(rig, "bot-1", CommandSpec::of(CommandKind::Ping));
        const QString b = sendAs(rig, "bot-1", CommandSpec::of(CommandKind::Ping));
        QTRY_VERIFY_WITH_TIMEOUT(rig.stateOf(a) == "pending" && rig.stateOf(b) == "pending", 5000);
        QCOMPARE(inFlight(), 2);
        QVERIFY(bot.readCommand(5s) && bot.readCommand(5s));
        bot.ack(a.toStdString(), true, "pong");
        QTRY_COMPARE_WITH_TIMEOUT(rig.stateOf(a), QString("acked"), 5000);
        QCOMPARE(inFlight(), 1);
        bot.ack(b.toStdString(), true, "pong");
        QTRY_COMPARE_WITH_TIMEOUT(rig.stateOf(b), QString("acked"), 5000);
        QCOMPARE(inFlight(), 0);
    }
}

void TestMainWindow::toolbarTooltipsNameTheirShortcuts()
{
    Rig rig;
    auto *toolbar = rig.window->findChild<QToolBar *>(QStringLiteral("commandsToolbar"));
    QVERIFY(toolbar);
    int checked = 0;
    for (QAction *action : toolbar->actions()) {
        if (action->isSeparator() || !action->isEnabled()) // disabled: its tip says why
            continue;
        QVERIFY2(!action->toolTip().isEmpty() && action->toolTip() != action->text(),
                 qPrintable(action->text()));
        if (!action->shortcut().isEmpty()) {
            QVERIFY2(
                action->toolTip().contains(action->shortcut().toString(QKeySequence::NativeText)),
                qPrintable(action->toolTip()));
            ++checked;
        }
    }
    QVERIFY(checked >= 8);
}

void TestMainWindow::fanOutDialogOffersWaves()
{
    QSettings().setValue("send/confirmAbove", 2);
    Rig rig;
    const QStringList ids = {"bot-0", "bot-1", "bot-2"};
    const auto bots = rig.helloBots(ids);
    QVERIFY(bots.size() == 3);
    rig.window->selectBots(ids);
    QVERIFY(!rig.backend->canRollOut());
    {
        RolloutAnswer answer(1); // no runner: the dialog has no waves, and is cancelled
        rig.window->sendKindToSelection(CommandKind::Restart);
        QCOMPARE(answer.asked, 1);
        QVERIFY(!answer.offered);
    }
    QCOMPARE(rig.registry.counters().registered, 0u);
    rig.backend->setRollouts(&rig.api->rollouts());
    {
        // Within the threshold: not asked, sent at once.
        RolloutAnswer answer(1);
        rig.window->selectBots(ids.mid(0, 2));
        rig.window->sendKindToSelection(CommandKind::Restart);
        QCOMPARE(answer.asked, 0);
    }
    QTRY_COMPARE_WITH_TIMEOUT(rig.registry.counters().registered, 2u, 5000);
    {
        RolloutAnswer answer(2);
        rig.window->selectBots(ids);
        rig.window->sendKindToSelection(CommandKind::Stop);
        QCOMPARE(answer.asked, 1);
        QVERIFY(answer.offered);
        QCOMPARE(answer.button, QStringLiteral("Roll out in 2 waves"));
    }
    // Remembered for the next time.
    QCOMPARE(QSettings().value("send/rolloutBatch").toInt(), 2);
    QCOMPARE(QSettings().value("send/rolloutBatchUnit").toString(), QStringLiteral("count"));
    QCOMPARE(rolloutDefaults().batchCount, 2);
    QCOMPARE(rolloutDefaults().waveDelay, 0ms);
    const QString message = rig.window->statusBar()->currentMessage();
    QVERIFY2(message.contains("rollout f-") && message.contains("2 waves of 2 bots"),
             qPrintable(message));
    QSettings().remove("send/rolloutBatch");
    QSettings().remove("send/rolloutBatchUnit");
    QSettings().remove("send/rolloutAbortAbove");
    QSettings().remove("send/rolloutWaveDelay");
    QCOMPARE(rolloutDefaults().batchPercent, 10);
    QCOMPARE(rolloutDefaults().abortAbovePercent.value_or(-1), 5.0);
    QCOMPARE(rolloutDefaults().waveDelay, 10s);
}

void TestMainWindow::rolloutFromTheWindowSendsInWaves()
{
    QSettings().setValue("send/confirmAbove", 2);
    Rig rig;
    rig.backend->setRollouts(&rig.api->rollouts());
    std::map<QString, std::unique_ptr<RawBot>> bots;
    QStringList ids;
    for (int i = 0; i < 5; ++i) {
        ids << QStringLiteral("bot-%1").arg(i);
        auto bot = std::make_unique<RawBot>(rig.address());
        QVERIFY(bot->hello(ids.last().toStdString()));
        QVERIFY(rig.botListed(ids.last()));
        bots.emplace(ids.last(), std::move(bot));
    }
    rig.window->selectBots(ids);
    const QStringList order = rig.window->selectedBots(); // the waves' order
    QCOMPARE(order.size(), 5);
    {
        RolloutAnswer answer(2); // waves of 2: 2, 2, 1
        rig.window->sendKindToSelection(CommandKind::Restart);
        QCOMPARE(answer.asked, 1);
        QCOMPARE(answer.button, QStringLiteral("Roll out in 3 waves"));
    }
    const QString message = rig.window->statusBar()->currentMessage();
    QVERIFY2(message.contains("3 waves"), qPrintable(message));
    QTRY_COMPARE_WITH_TIMEOUT(rig.window->fanOutModel()->rowCount(), 1, 5000);
    const QString fanOut =
        rig.window->fanOutModel()->index(0, 0).data(FanOutModel::FanOutIdRole).toString();
    QVERIFY2(message.contains(fanOut), qPrintable(message));

    int acked = 0;
    for (int wave = 0; wave < 3; ++wave) {
        const QStringList now = order.mid(wave * 2, 2);
        std::vector<std::string> commands;
        for (const QString &id : now) {
            const auto command = nextCommand(*bots.at(id));
            QVERIFY2(command.has_value(), qPrintable(id));
            QVERIFY(command->has_restart());
            commands.push_back(command->command_id());
        }
        // The wave in flight has no answer yet: the bots of later waves got nothing (the
        // runner says it is at this wave; a short look at their streams to be sure).
        const std::optional<RolloutStatus> status = rig.api->rollouts().status(fanOut);
        QVERIFY(status.has_value());
        QCOMPARE(status->wave, wave + 1);
        QCOMPARE(status->waves, 3);
        for (const QString &later : order.mid((wave + 1) * 2))
            QVERIFY2(!bots.at(later)->readCommand(20ms).has_value(), qPrintable(later));
        // The tally row counts the waves sent.
        QTRY_VERIFY_WITH_TIMEOUT(rig.window->fanOutModel()->tally(fanOut) &&
                                     rig.window->fanOutModel()->tally(fanOut)->total ==
                                         acked + int(now.size()),
                                 5000);
        if (wave < 2) { // between waves, the row does not read as a finished fan-out
            QVERIFY2(rig.fanOutText(0).contains(QStringLiteral("of 5 bots at")) &&
                         rig.fanOutText(0).contains("rollout in 3 waves"),
                     qPrintable(rig.fanOutText(0)));
        }
        for (size_t i = 0; i < commands.size(); ++i) {
            QVERIFY(rig.registry.find(QString::fromStdString(commands[i])).has_value());
            QVERIFY(bots.at(now.at(qsizetype(i)))->ack(commands[i]));
        }
        acked += int(now.size());
    }
    QTRY_VERIFY_WITH_TIMEOUT(rig.api->rollouts().status(fanOut)->state == RolloutState::Completed,
                             5000);
    QTRY_VERIFY_WITH_TIMEOUT(rig.window->fanOutModel()->tally(fanOut)->acked == 5, 5000);
    QVERIFY2(rig.fanOutText(0).contains("5/5 acked"), qPrintable(rig.fanOutText(0)));
}

// A console attached over the Operator API (HubSet over one RemoteBackend): SendToMany with a
// Rollout and no_wait; the hub runs the waves.
void TestMainWindow::rolloutThroughTheOperatorApi()
{
    Rig rig;
    const QStringList ids = {"bot-0", "bot-1", "bot-2"};
    const auto bots = rig.helloBots(ids);
    QVERIFY(bots.size() == 3);
    RemoteBackend::Options remote;
    remote.firstRetry = 50ms;
    HubSet backend({QString::fromStdString(rig.operatorAddress())}, remote);
    QVERIFY(!backend.canRollOut()); // not before the hub said so (at attach)
    QVERIFY(
        QTest::qWaitFor([&] { return backend.bots().size() == 3 && backend.canSend(); }, 10'000));
    QVERIFY(backend.canRollOut());
    RolloutPlan plan;
    plan.batchCount = 2;
    const SendReceipt receipt =
        backend.sendRollout(ids, CommandSpec::of(CommandKind::Restart), 30s, plan);
    QVERIFY2(receipt.ok(), qPrintable(receipt.error));
    QVERIFY(!receipt.fanOut.isEmpty());
    std::vector<std::string> first;
    for (int i = 0; i < 2; ++i) {
        const auto command = nextCommand(*bots[size_t(i)]);
        QVERIFY(command.has_value());
        first.push_back(command->command_id());
    }
    QTRY_VERIFY_WITH_TIMEOUT(rig.api->rollouts().status(receipt.fanOut).has_value(), 5000);
    QCOMPARE(rig.api->rollouts().status(receipt.fanOut)->waves, 2);
    QVERIFY(!bots[2]->readCommand(20ms).has_value());
    for (int i = 0; i < 2; ++i)
        QVERIFY(bots[size_t(i)]->ack(first[size_t(i)]));
    const auto last = nextCommand(*bots[2]);
    QVERIFY(last.has_value());
    QVERIFY(bots[2]->ack(last->command_id()));
    QTRY_VERIFY_WITH_TIMEOUT(
        rig.api->rollouts().status(receipt.fanOut)->state == RolloutState::Completed, 5000);
}

#include "tst_mainwindow.moc"
