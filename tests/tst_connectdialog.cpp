// The "Attach to hubs" dialog: addresses checked as --connect checks them, hubs remembered
// newest first without duplicates, hand-edited settings cleaned on the way in.
#include "connectdialog.h"

#include <QDialogButtonBox>
#include <QLineEdit>
#include <QListWidget>
#include <QPushButton>
#include <QSettings>
#include <QStandardPaths>
#include <QTest>

using namespace opconsole;

class TestConnectDialog : public QObject
{
    Q_OBJECT

private slots:
    void initTestCase()
    {
        QStandardPaths::setTestModeEnabled(true);
        QCoreApplication::setOrganizationName(QStringLiteral("opconsole-test"));
    }
    void init() { QSettings().remove(QStringLiteral("attach/recent")); }
    void addressesAreCheckedLikeConnect();
    void rememberedNewestFirstWithoutDuplicates();
    void pickTypedAndListed();
};

void TestConnectDialog::addressesAreCheckedLikeConnect()
{
    for (const char *good : {"127.0.0.1:50051", "hub1.example:1", "[::1]:65535"})
        QVERIFY2(ConnectDialog::checkAddress(good).isEmpty(), good);
    for (const char *bad : {"", "hub", "hub:", "hub:0", "hub:70000", "a b:1", "a,b:1", "hub:12x"})
        QVERIFY2(!ConnectDialog::checkAddress(bad).isEmpty(), bad);
    QVERIFY(!ConnectDialog::checkAddress(QString(300, 'h') + ":1").isEmpty());
}

void TestConnectDialog::rememberedNewestFirstWithoutDuplicates()
{
    ConnectDialog::remember({"a:1", "b:2"});
    ConnectDialog::remember({"c:3", "a:1"});
    QCOMPARE(ConnectDialog::remembered(), QStringList({"c:3", "a:1", "b:2"}));
    for (int i = 0; i < 30; ++i)
        ConnectDialog::remember({QStringLiteral("h%1:1").arg(i)});
    QCOMPARE(ConnectDialog::remembered().size(), ConnectDialog::MaxRemembered);
    QCOMPARE(ConnectDialog::remembered().first(), QStringLiteral("h29:1"));
    // A hand-edited settings file: junk and duplicates do not come back.
    QSettings().setValue("attach/recent", QStringList{"x:1", "not an address", "x:1", "y:2"});
    QCOMPARE(ConnectDialog::remembered(), QStringList({"x:1", "y:2"}));
}

void TestConnectDialog::pickTypedAndListed()
{
    ConnectDialog::remember({"a:1", "b:2"});
    ConnectDialog dialog;
    QPushButton *attach = dialog.buttons()->button(QDialogButtonBox::Ok);
    QCOMPARE(dialog.hubList()->count(), 2);
    QCOMPARE(dialog.chosen(), QStringList({"a:1"})); // the newest, preselected
    QVERIFY(attach->isEnabled());
    dialog.addressEdit()->setText("nonsense");
    QVERIFY(!attach->isEnabled());
    dialog.addressEdit()->setText("c:3");
    QVERIFY(attach->isEnabled());
    dialog.hubList()->item(1)->setSelected(true);
    QCOMPARE(dialog.chosen(), QStringList({"c:3", "a:1", "b:2"}));
    dialog.hubList()->clearSelection();
    dialog.addressEdit()->clear();
    QVERIFY(!attach->isEnabled()); // nothing to attach to
}

QTEST_MAIN(TestConnectDialog)
#include "tst_connectdialog.moc"
