// The files and strings security rests on, given hostile input: token and operator files, the
// bearer header, admission decisions on disk, TLS files, and what counts as loopback.
#include "admission.h"
#include "testcerts.h"
#include "tlscredentials.h"
#include "tokens.h"

#include <QFile>
#include <QSet>
#include <QTemporaryDir>
#include <QTest>

using namespace opconsole::security;

namespace {
QString writeFile(const QTemporaryDir &dir, const char *name, const QByteArray &text,
                  QFile::Permissions mode = QFile::ReadOwner | QFile::WriteOwner)
{
    QFile f(dir.filePath(QString::fromLatin1(name)));
    if (!f.open(QIODevice::WriteOnly) || f.write(text) != text.size())
        return {};
    f.close();
    f.setPermissions(mode);
    return f.fileName();
}
} // namespace

class TestSecurityFiles : public QObject
{
    Q_OBJECT

private slots:
    void tokensAreRandomAndHashedAsDocumented();
    void bearerHeaderIsParsedStrictly();
    void operatorFileAcceptsWhatItDocuments();
    void operatorFileRefusesHostileLines_data();
    void operatorFileRefusesHostileLines();
    void botTokenPatterns();
    void tokenFilesMustBePrivate();
    void admissionDecisionsPersistAndBadFilesAreRefused();
    void tlsFilesAreCheckedUpFront();
    void loopbackListenAddresses();
};

void TestSecurityFiles::tokensAreRandomAndHashedAsDocumented()
{
    QSet<QString> seen;
    for (int i = 0; i < 1000; ++i) {
        const QString token = newToken();
        QVERIFY(token.startsWith(QLatin1String("opc_")));
        QCOMPARE(token.size(), 4 + 43); // 32 bytes, base64url without padding
        QVERIFY(!seen.contains(token));
        seen.insert(token);
    }
    // The documented hash: HMAC-SHA256 under "opconsole token v1" (docs/security.md), the same
    // as `printf tok | openssl dgst -sha256 -hmac "opconsole token v1"`.
    QCOMPARE(tokenHash("tok"),
             QStringLiteral(
                 "hmac-sha256:fcf20c7b74a6bc0ab11bfca9fcef13562016862c2496ce4e2245ee1cacce700c"));
}

void TestSecurityFiles::bearerHeaderIsParsedStrictly()
{
    QCOMPARE(bearerToken("Bearer abc"), QByteArray("abc"));
    QCOMPARE(bearerToken("bearer abc"), QByteArray("abc"));
    QVERIFY(bearerToken("").isEmpty());
    QVERIFY(bearerToken("Bearer ").isEmpty());
    QVERIFY(bearerToken("Basic abc").isEmpty());
    QVERIFY(bearerToken("Bearer a b").isEmpty());
    QVERIFY(bearerToken(std::string("Bearer a\0b", 10)).isEmpty());
    QVERIFY(bearerToken("Bearer \x7f").isEmpty());
    QVERIFY(bearerToken("Bearer " + std::string(size_t(MaxTokenBytes), 'x')).size() ==
            MaxTokenBytes);
    QVERIFY(bearerToken("Bearer " + std::string(size_t(MaxTokenBytes) + 1, 'x')).isEmpty());
}

void TestSecurityFiles::operatorFileAcceptsWhatItDocuments()
{
    const QString a = newToken(), b = newToken(), c = newToken();
    const QByteArray text = "# operators\n\n  alice  admin " + tokenHash(a.toUtf8()).toUtf8() +
                            "   # the lead\n" + "bob\toperator\t" + tokenHash(b.toUtf8()).toUtf8() +
                            " group=a,region=eu\n" + "carol viewer " +
                            tokenHash(c.toUtf8()).toUtf8() + "\r\n";
    QString error;
    const auto directory = OperatorDirectory::parse(text, "ops", &error);
    QVERIFY2(directory, qPrintable(error));
    QCOMPARE(directory->size(), 3);
    QCOMPARE(directory->find(a.toUtf8())->role, Role::Admin);
    const auto bob = directory->find(b.toUtf8());
    QCOMPARE(bob->name, QStringLiteral("bob"));
    QCOMPARE(bob->role, Role::Operator);
    QCOMPARE(bob->scope.value("group"), QStringLiteral("a"));
    QCOMPARE(bob->scope.value("region"), QStringLiteral("eu"));
    QCOMPARE(directory->find(c.toUtf8())->role, Role::Viewer);
    QVERIFY(!directory->find(newToken().toUtf8()));
    QVERIFY(!directory->find(QByteArray()));
    // A hash is not a token: presenting the file's line gets nothing.
    QVERIFY(!directory->find(tokenHash(a.toUtf8()).toUtf8()));
}

void TestSecurityFiles::operatorFileRefusesHostileLines_data()
{
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QString>("says");
    const QByteArray h = tokenHash("one").toUtf8();
    const QByteArray h2 = tokenHash("two").toUtf8();
    QTest::newRow("too few fields") << QByteArray("alice admin\n") << "expected NAME ROLE";
    QTest::newRow("too many") << "alice admin " + h + " a=b extra\n"
                              << "expected NAME ROLE";
    QTest::newRow("bad role") << "alice root " + h + "\n"
                              << "role 'root'";
    QTest::newRow("plain hash") << QByteArray("alice admin 0123\n") << "hmac-sha256";
    QTest::newRow("upper hex") << "alice admin " + h.toUpper() + "\n"
                               << "hmac-sha256";
    QTest::newRow("bad name") << "al/ice admin " + h + "\n"
                              << "bad name";
    QTest::newRow("long name") << QByteArray(65, 'a') + " admin " + h + "\n"
                               << "bad name";
    QTest::newRow("bad scope") << "alice admin " + h + " group\n"
                               << "scope:";
    QTest::newRow("twice scope") << "alice admin " + h + " g=a,g=b\n"
                                 << "given twice";
    QTest::newRow("same name") << "alice admin " + h + "\nalice viewer " + h2 + "\n"
                               << ":2: operator 'alice' listed twice";
    QTest::newRow("same hash") << "alice admin " + h + "\nbob viewer " + h + "\n"
                               << ":2: the same token hash";
    QTest::newRow("control char") << "alice\x01 admin " + h + "\n"
                                  << "bad name";
}

void TestSecurityFiles::operatorFileRefusesHostileLines()
{
    QFETCH(QByteArray, text);
    QFETCH(QString, says);
    QString error;
    QVERIFY(!OperatorDirectory::parse(text, "ops", &error));
    QVERIFY2(error.contains(says), qPrintable(error));
    QVERIFY(error.startsWith(QLatin1String("ops:")));
}

void TestSecurityFiles::botTokenPatterns()
{
    // '#' starts a comment in the files: a scope value with one would be cut short silently,
    // so a selector refuses it (opctl token new --scope goes through this).
    QMap<QString, QString> selector;
    QString why;
    QVERIFY(!parseSelector(QStringLiteral("g=a#b"), &selector, &why));
    QVERIFY(parseSelector(QStringLiteral("g=a,h="), &selector, &why));
    QCOMPARE(selector.value(QStringLiteral("h"), QStringLiteral("x")), QString());
    const QString t = newToken();
    QString error;
    const auto tokens = BotTokens::parse(
        "rack bot-1,sim-*,exact " + tokenHash(t.toUtf8()).toUtf8() + "\n", "bots", &error);
    QVERIFY2(tokens, qPrintable(error));
    const BotTokenEntry *entry = tokens->find(t.toUtf8());
    QVERIFY(entry);
    QVERIFY(entry->covers("bot-1"));
    QVERIFY(!entry->covers("bot-10"));
    QVERIFY(entry->covers("sim-"));
    QVERIFY(entry->covers("sim-99"));
    QVERIFY(!entry->covers("Sim-1"));
    QVERIFY(entry->covers("exact"));
    QVERIFY(!entry->covers("exac"));
    QVERIFY(!BotTokens::parse("rack bot-*x " + tokenHash("a").toUtf8() + "\n", "bots", &error));
    QVERIFY(!BotTokens::parse("rack bot-1,,bot-2 " + tokenHash("a").toUtf8() + "\n", "b", &error));
    QVERIFY(!BotTokens::parse("rack " + tokenHash("a").toUtf8() + "\n", "bots", &error));
    QVERIFY(!BotTokens::parse("rack a b " + tokenHash("a").toUtf8() + "\n", "bots", &error));
}

void TestSecurityFiles::tokenFilesMustBePrivate()
{
    QTemporaryDir dir;
    const QString token = newToken();
    QString error;
    const QString good = writeFile(dir, "good", "\n  " + token.toUtf8() + "  \n");
    QCOMPARE(readTokenFile(good, &error), token.toUtf8());
    const QString readable =
        writeFile(dir, "readable", token.toUtf8(), QFile::ReadOwner | QFile::ReadOther);
    QVERIFY(readTokenFile(readable, &error).isEmpty());
    QVERIFY2(error.contains("chmod 600"), qPrintable(error));
    QVERIFY(readTokenFile(writeFile(dir, "empty", "\n\n"), &error).isEmpty());
    QVERIFY(error.contains("no token"));
    QVERIFY(readTokenFile(writeFile(dir, "spaces", "a b\n"), &error).isEmpty());
    QVERIFY(readTokenFile(dir.path(), &error).isEmpty()); // a directory
    QVERIFY(readTokenFile(dir.filePath("absent"), &error).isEmpty());
    // An operators file only holds hashes: others may read it, not write it.
    const QByteArray line = "alice admin " + tokenHash(token.toUtf8()).toUtf8() + "\n";
    QVERIFY(OperatorDirectory::load(
        writeFile(dir, "ops", line, QFile::ReadOwner | QFile::WriteOwner | QFile::ReadOther),
        &error));
    QVERIFY(!OperatorDirectory::load(
        writeFile(dir, "ops2", line, QFile::ReadOwner | QFile::WriteOwner | QFile::WriteOther),
        &error));
    QVERIFY(!BotTokens::load(writeFile(dir, "bots", "rack * " + tokenHash("x").toUtf8() + "\n",
                                       QFile::ReadOwner | QFile::WriteOther),
                             &error));
    QVERIFY(!OperatorDirectory::load(
        writeFile(dir, "ops3", line, QFile::ReadOwner | QFile::WriteOwner | QFile::WriteGroup),
        &error));
    QVERIFY2(error.contains("go-w"), qPrintable(error));
}

void TestSecurityFiles::admissionDecisionsPersistAndBadFilesAreRefused()
{
    QTemporaryDir dir;
    const QString path = dir.filePath("admission.json");
    QString error;
    {
        auto store = AdmissionStore::open(path, &error);
        QVERIFY(store);
        QCOMPARE(store->find("bot-1").decision, AdmissionDecision::None);
        QVERIFY(store->decide("bot-1", {AdmissionDecision::Accepted, "cert:ab", "alice", "ok", 5},
                              &error));
        QVERIFY(
            store->decide("bot-2", {AdmissionDecision::Rejected, "token:x", "bob", "", 6}, &error));
        QVERIFY(
            store->decide("bot-3", {AdmissionDecision::Accepted, "none", "bob", "", 7}, &error));
        QVERIFY(store->decide("bot-3", {AdmissionDecision::None, {}, "bob", "", 8}, &error));
    }
    QCOMPARE(int(QFile::permissions(path) & (QFile::ReadOther | QFile::ReadGroup)), 0);
    auto store = AdmissionStore::open(path, &error);
    QVERIFY2(store, qPrintable(error));
    QCOMPARE(store->size(), 2);
    const AdmissionRecord one = store->find("bot-1");
    QCOMPARE(one.decision, AdmissionDecision::Accepted);
    QCOMPARE(one.credential, QStringLiteral("cert:ab"));
    QCOMPARE(one.by, QStringLiteral("alice"));
    QCOMPARE(one.atMs, qint64(5));
    QCOMPARE(store->find("bot-2").decision, AdmissionDecision::Rejected);
    QCOMPARE(store->find("bot-3").decision, AdmissionDecision::None);
    // A file that cannot be read as decisions is refused: never started with them lost.
    for (const QByteArray &bad :
         {QByteArray("not json"), QByteArray("[]"), QByteArray(R"({"version":2,"bots":{}})"),
          QByteArray(R"({"version":1,"bots":{"b":{"decision":"maybe"}}})"),
          QByteArray(R"({"version":1,"bots":[{"decision":"accepted"}]})"),
          QByteArray(R"({"version":1,"bots":{"b":"accepted"}})")}) {
        const QString file = writeFile(dir, "bad.json", bad);
        QVERIFY(!AdmissionStore::open(file, &error));
        QVERIFY(error.contains("bad.json"));
    }
    // A decision that cannot be written is not taken.
    auto lost = AdmissionStore::open(dir.filePath("gone/admission.json"), &error);
    QVERIFY(lost);
    QVERIFY(!lost->decide("bot-1", {AdmissionDecision::Rejected, {}, "a", "", 1}, &error));
    QCOMPARE(lost->find("bot-1").decision, AdmissionDecision::None);
}

void TestSecurityFiles::tlsFilesAreCheckedUpFront()
{
    TestCerts certs;
    QString error;
    QVERIFY2(certs.make({"bot-1"}, {}, &error), qPrintable(error));
    QVERIFY(serverCredentials({certs.hubCert(), certs.hubKey(), certs.ca()}, &error));
    QVERIFY(serverCredentials({}, &error)); // plaintext
    QVERIFY(!serverCredentials({certs.hubCert(), certs.botKey("bot-1"), {}}, &error));
    QVERIFY(error.contains("does not belong"));
    QVERIFY(!serverCredentials({certs.hubKey(), certs.hubKey(), {}}, &error));
    QVERIFY2(error.contains("no certificate"), qPrintable(error));
    QVERIFY(!serverCredentials({certs.hubCert(), certs.hubKey(), certs.hubKey()}, &error));
    QVERIFY(!serverCredentials({certs.hubCert(), {}, {}}, &error));
    QVERIFY(!serverCredentials({{}, {}, certs.ca()}, &error));
    QTemporaryDir dir;
    QVERIFY(!serverCredentials({writeFile(dir, "junk", "hello"), certs.hubKey(), {}}, &error));
    QVERIFY(error.contains("not a PEM file"));
    QVERIFY(channelCredentials({certs.ca(), certs.botCert("bot-1"), certs.botKey("bot-1"), {}},
                               &error));
    QVERIFY(!channelCredentials({certs.ca(), certs.botCert("bot-1"), {}, {}}, &error));
    QVERIFY(!channelCredentials({dir.filePath("absent"), {}, {}, {}}, &error));
}

void TestSecurityFiles::loopbackListenAddresses()
{
    // Where a token may go without TLS: this machine only, in any of gRPC's target forms.
    for (const char *local :
         {"127.0.0.1:50052", "localhost:1", "[::1]:1", "unix:/tmp/s", "unix-abstract:op",
          "dns:///localhost:1", "ipv4:127.0.0.1:1", "ipv6:[::1]:1"})
        QVERIFY2(plaintextTokenProblem({}, QString::fromLatin1(local)).isEmpty(), local);
    for (const char *remote : {"10.0.0.1:1", "dns:///hub.example:1", "ipv4:192.0.2.1:1", "h:1"})
        QVERIFY2(!plaintextTokenProblem({}, QString::fromLatin1(remote)).isEmpty(), remote);
    QVERIFY(plaintextTokenProblem({{}, {}, {}, {}, true}, QStringLiteral("10.0.0.1:1")).isEmpty());
    for (const char *local :
         {"127.0.0.1:50051", "127.1.2.3:1", "localhost:1", "[::1]:50051", "unix:/tmp/x.sock"})
        QVERIFY2(isLoopbackListen(QString::fromLatin1(local)), local);
    for (const char *remote : {"0.0.0.0:50051", "[::]:1", "10.0.0.1:1", "example.com:1", ":1",
                               "128.0.0.1:1", "[::ffff:127.0.0.1]:1", "127.0.0.1.evil:1"})
        QVERIFY2(!isLoopbackListen(QString::fromLatin1(remote)), remote);
}

QTEST_GUILESS_MAIN(TestSecurityFiles)
#include "tst_securityfiles.moc"
