#pragma once
// Certificates for a TLS test, made by scripts/certs.sh into a temp dir at run time: no key is
// ever committed, and every run gets its own CA. Needs, in tests/CMakeLists.txt:
//   target_compile_definitions(tst_x PRIVATE OPCONSOLE_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
#include <QByteArray>
#include <QFile>
#include <QProcess>
#include <QString>
#include <QStringList>
#include <QTemporaryDir>

#ifndef OPCONSOLE_SOURCE_DIR
#error "testcerts.h needs OPCONSOLE_SOURCE_DIR, the source tree as a string literal"
#endif

struct TestCerts
{
    QTemporaryDir dir;

    // The CA, the hub's cert (localhost, 127.0.0.1, ::1) and one client cert per bot id and
    // operator name. False with the script's complaint in *error when it fails.
    bool make(const QStringList &bots, const QStringList &operators = {}, QString *error = nullptr)
    {
        const auto fail = [&](const QString &why) {
            if (error)
                *error = why;
            return false;
        };
        if (!dir.isValid())
            return fail(QStringLiteral("no temp dir: ") + dir.errorString());
        // Through bash, not the file's own mode: a tree unpacked without exec bits still works.
        QStringList args{QStringLiteral(OPCONSOLE_SOURCE_DIR "/scripts/certs.sh"), dir.path()};
        if (!bots.isEmpty())
            args << QStringLiteral("--bots") << bots.join(',');
        if (!operators.isEmpty())
            args << QStringLiteral("--operators") << operators.join(',');
        QProcess process;
        process.start(QStringLiteral("bash"), args);
        if (!process.waitForStarted(10'000))
            return fail(QStringLiteral("cannot run bash: ") + process.errorString());
        // A few openssl calls per cert; a minute is room for a loaded machine, not a hang.
        if (!process.waitForFinished(60'000)) {
            process.kill();
            process.waitForFinished(5000);
            return fail(QStringLiteral("scripts/certs.sh did not finish in 60 s"));
        }
        if (process.exitStatus() != QProcess::NormalExit || process.exitCode() != 0) {
            const QString why = QString::fromLocal8Bit(process.readAllStandardError()).trimmed();
            return fail(QStringLiteral("scripts/certs.sh exited with %1: %2")
                            .arg(QString::number(process.exitCode()),
                                 why.isEmpty() ? process.errorString() : why));
        }
        return true;
    }

    QString ca() const { return dir.filePath(QStringLiteral("ca.pem")); }
    QString hubCert() const { return dir.filePath(QStringLiteral("hub.pem")); }
    QString hubKey() const { return dir.filePath(QStringLiteral("hub.key")); }
    QString botCert(const QString &id) const { return dir.filePath("bots/" + id + ".pem"); }
    QString botKey(const QString &id) const { return dir.filePath("bots/" + id + ".key"); }
    QString operatorCert(const QString &n) const { return dir.filePath("operators/" + n + ".pem"); }
    QString operatorKey(const QString &n) const { return dir.filePath("operators/" + n + ".key"); }

    // A file's bytes (for grpc::Ssl*CredentialsOptions); empty when it cannot be read.
    static QByteArray read(const QString &path)
    {
        QFile file(path);
        return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
    }
};
