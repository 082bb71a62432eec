#pragma once
// nats-server (Debian's) as a child process of a test: JetStream on, loopback, a free port,
// its store in a temporary directory. Extra arguments (a config file for TLS or a token) are
// passed on.
#include <QDir>
#include <QProcess>
#include <QRegularExpression>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>

struct NatsServer
{
    // Where Debian puts it (/usr/sbin, often not on a user's PATH) or anywhere on PATH.
    static QString program()
    {
        QString found = QStandardPaths::findExecutable(QStringLiteral("nats-server"));
        if (found.isEmpty())
            found = QStandardPaths::findExecutable(
                QStringLiteral("nats-server"),
                {QStringLiteral("/usr/sbin"), QStringLiteral("/usr/local/sbin")});
        return found;
    }

    explicit NatsServer(const QStringList &extra = {})
    {
        process.setProgram(program());
        process.setArguments(
            QStringList{"-a", "127.0.0.1", "-p", "-1", "-js", "-sd", dir.filePath("js")} + extra);
        process.setProcessChannelMode(QProcess::MergedChannels);
        process.start();
    }
    ~NatsServer()
    {
        if (process.state() != QProcess::NotRunning) {
            process.kill();
            process.waitForFinished(5000);
        }
    }
    // The port it listens on once ready (0 when it did not start within 10 s).
    int port()
    {
        if (m_port)
            return m_port;
        static const QRegularExpression listening(
            QStringLiteral("Listening for client connections on [0-9.]+:(\\d+)"));
        (void)QTest::qWaitFor(
            [&] {
                log += process.readAll();
                const auto m = listening.match(QString::fromUtf8(log));
                if (m.hasMatch() && log.contains("Server is ready"))
                    m_port = m.captured(1).toInt();
                return m_port != 0 || process.state() == QProcess::NotRunning;
            },
            10'000);
        return m_port;
    }
    QString url(const char *scheme = "nats")
    {
        return QStringLiteral("%1://127.0.0.1:%2").arg(QLatin1String(scheme)).arg(port());
    }

    QTemporaryDir dir;
    QProcess process;
    QByteArray log;

private:
    int m_port = 0;
};
