#include "commandfilterproxy.h"
#include "commandtablemodel.h"
#include "records.h"

#include <QAbstractItemModelTester>
#include <QApplication>
#include <QSignalSpy>
#include <QTest>

using namespace opconsole;
using namespace std::chrono;

namespace {

CommandOutcome record(quint64 seq, const QString &bot, CommandState state = CommandState::Pending)
{
    return testRecord(seq, bot, state);
}

} // namespace

class TestCommandTableModel : public QObject
{
    Q_OBJECT

private slots:
    void appendsInOneBatchAndUpdatesInPlace();
    void changesAreNarrowedToChangedRowsAndColumns();
    void lateAckShowsOnTheExpiredRow();
    void finishedRowsBeyondTheCapAreDropped();
    void displayRolesAndColours();
    void proxyFiltersByStateBotAndText();
    void issuedByColumn();
};

void TestCommandTableModel::appendsInOneBatchAndUpdatesInPlace()
{
    CommandTableModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    QSignalSpy inserted(&model, &QAbstractItemModel::rowsInserted);
    QList<CommandOutcome> batch;
    for (int i = 1; i <= 50; ++i)
        batch << record(quint64(i), QStringLiteral("bot-%1").arg(i % 5));
    batch << record(3, QStringLiteral("bot-3"), CommandState::Acked); // same batch, later state
    model.applyChanges(batch);
    QCOMPARE(inserted.count(), 1);
    QCOMPARE(model.rowCount(), 50);
    QCOMPARE(model.record(2)->state, CommandState::Acked);
    model.applyChanges({record(10, QStringLiteral("bot-0"), CommandState::Rejected)});
    QCOMPARE(model.rowCount(), 50);
    QCOMPARE(model.rowOf(QStringLiteral("cmd-10")), 9);
    QCOMPARE(model.index(9, CommandTableModel::State).data().toString(), QString("rejected"));
}

void TestCommandTableModel::changesAreNarrowedToChangedRowsAndColumns()
{
    CommandTableModel model;
    QList<CommandOutcome> batch;
    for (int i = 1; i <= 20; ++i)
        batch << record(quint64(i), QStringLiteral("bot"));
    model.applyChanges(batch);
    QSignalSpy changed(&model, &QAbstractItemModel::dataChanged);
    model.applyChanges({record(5, "bot", CommandState::Acked),
                        record(6, "bot", CommandState::Acked),
                        record(15, "bot", CommandState::Expired)});
    QCOMPARE(changed.count(), 2); // rows 4..5 and row 14, not 4..14
    const auto first = changed.at(0);
    QCOMPARE(first.at(0).toModelIndex().row(), 4);
    QCOMPARE(first.at(1).toModelIndex().row(), 5);
    QCOMPARE(first.at(0).toModelIndex().column(), int(CommandTableModel::State));
    QCOMPARE(first.at(1).toModelIndex().column(), int(CommandTableModel::Message));
    QCOMPARE(changed.at(1).at(0).toModelIndex().row(), 14);
}

void TestCommandTableModel::lateAckShowsOnTheExpiredRow()
{
    CommandTableModel model;
    CommandOutcome o = record(1, "bot", CommandState::Expired);
    model.applyChanges({o});
    CommandAckData ack;
    ack.success = true;
    ack.message = QStringLiteral("done after all");
    o.lateAck = ack;
    o.lateAckAt = o.lateFrom() + 7300ms; // from when it stopped waiting
    model.applyChanges({o});
    QCOMPARE(model.rowCount(), 1);
    QCOMPARE(model.index(0, CommandTableModel::State).data().toString(),
             QString("expired, late ack after 7.3 s"));
    QCOMPARE(model.index(0, CommandTableModel::Message).data().toString(),
             QString("done after all"));
    // A late rejection reads as one.
    o.lateAck->success = false;
    o.lateAck->message = QStringLiteral("could not");
    ++o.change;
    model.applyChanges({o});
    QCOMPARE(model.index(0, CommandTableModel::State).data().toString(),
             QString("expired, late rejection after 7.3 s"));
}

void TestCommandTableModel::finishedRowsBeyondTheCapAreDropped()
{
    CommandTableModel model;
    QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
    model.setMaxRows(100);
    model.applyChanges({record(1, "bot")}); // pending: kept
    QList<CommandOutcome> batch;
    for (int i = 2; i <= 300; ++i)
        batch << record(quint64(i), "bot", CommandState::Acked);
    model.applyChanges(batch);
    // Oldest finished rows go; the pending one stays, first.
    QVERIFY(model.rowCount() <= 110);
    QCOMPARE(model.rowOf("cmd-1"), 0);
    QCOMPARE(model.rowOf("cmd-2"), -1);
    model.applyChanges({record(1, "bot", CommandState::Acked)});
    QCOMPARE(model.rowOf("cmd-300"), model.rowCount() - 1);
    QCOMPARE(model.record(model.rowOf("cmd-250"))->commandId, QString("cmd-250"));
}

void TestCommandTableModel::displayRolesAndColours()
{
    CommandTableModel model;
    model.applyChanges({record(1, "bot"), record(2, "bot", CommandState::Rejected),
                        record(3, "bot", CommandState::Acked)});
    QVERIFY(model.index(0, CommandTableModel::Remaining).data().toDouble() > 4.0);
    QVERIFY(!model.index(2, CommandTableModel::Remaining).data().isValid());
    QVERIFY(model.index(1, CommandTableModel::State).data(Qt::ForegroundRole).isValid());
    QVERIFY(!model.index(2, CommandTableModel::State).data(Qt::ForegroundRole).isValid());
    QVERIFY(
        !model.index(2, CommandTableModel::State).data(Qt::DecorationRole).value<QIcon>().isNull());
    QCOMPARE(model.index(0, CommandTableModel::Id).data(Qt::ToolTipRole).toString(),
             QString("cmd-1"));
    QCOMPARE(model.index(2, CommandTableModel::Latency).data().toString(), QString("12.0 ms"));

    // Unanswered commands have no latency; a late ack shows its own, marked.
    CommandOutcome expired = record(4, "bot", CommandState::Expired);
    model.applyChanges({expired});
    QCOMPARE(model.index(3, CommandTableModel::Latency).data().toString(), QString());
    expired.lateAck = CommandAckData{};
    expired.lateAckAt = expired.registeredAt + std::chrono::milliseconds(7300);
    model.applyChanges({expired});
    QCOMPARE(model.index(3, CommandTableModel::Latency).data().toString(),
             QString("7.30 s (late)"));
}

void TestCommandTableModel::proxyFiltersByStateBotAndText()
{
    CommandTableModel model;
    CommandFilterProxy proxy;
    proxy.setSourceModel(&model);
    QAbstractItemModelTester tester(&proxy, QAbstractItemModelTester::FailureReportingMode::QtTest);
    model.applyChanges({record(1, "bot-a"), record(2, "bot-a", CommandState::Acked),
                        record(3, "bot-b", CommandState::Expired),
                        record(4, "bot-b", CommandState::Rejected)});
    QCOMPARE(proxy.rowCount(), 4);
    proxy.setStateGroup(CommandFilterProxy::StateGroup::Pending);
    QCOMPARE(proxy.rowCount(), 1);
    proxy.setStateGroup(CommandFilterProxy::StateGroup::Done);
    QCOMPARE(proxy.rowCount(), 3);
    proxy.setStateGroup(CommandFilterProxy::StateGroup::Problems);
    QCOMPARE(proxy.rowCount(), 2);
    proxy.setStateGroup(CommandFilterProxy::StateGroup::All);
    proxy.setBot("bot-a");
    QCOMPARE(proxy.rowCount(), 2);
    proxy.setBot({});
    proxy.setText("cmd-4");
    QCOMPARE(proxy.rowCount(), 1);
    proxy.setText("EXPIRED");
    QCOMPARE(proxy.rowCount(), 1);
}

void TestCommandTableModel::issuedByColumn()
{
    CommandTableModel model;
    CommandFilterProxy proxy;
    proxy.setSourceModel(&model);
    CommandOutcome byAlice = record(1, "bot-a");
    byAlice.issuer = QStringLiteral("alice");
    CommandOutcome byConsole = record(2, "bot-a");
    byConsole.issuer = QStringLiteral("console:bob");
    model.applyChanges({byAlice, byConsole, record(3, "bot-b")});
    QCOMPARE(
        model.headerData(CommandTableModel::IssuedBy, Qt::Horizontal, Qt::DisplayRole).toString(),
        QString("Issued by"));
    QCOMPARE(model.index(0, CommandTableModel::IssuedBy).data().toString(), QString("alice"));
    QCOMPARE(model.index(1, CommandTableModel::IssuedBy).data().toString(), QString("console:bob"));
    QCOMPARE(model.index(2, CommandTableModel::IssuedBy).data().toString(), QString());
    // Sorted and searched as shown.
    QCOMPARE(model.index(0, CommandTableModel::IssuedBy).data(CommandTableModel::SortRole),
             QVariant(QString("alice")));
    proxy.setText("ALICE");
    QCOMPARE(proxy.rowCount(), 1);
    proxy.setText("console:");
    QCOMPARE(proxy.rowCount(), 1);
}

QTEST_MAIN(TestCommandTableModel)
#include "tst_commandtablemodel.moc"
