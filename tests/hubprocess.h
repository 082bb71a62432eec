#pragma once
// opconsole --headless as a child process of a test: its address and its JSON-lines log.
#include <QCoreApplication>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QTemporaryDir>
#include <QTest>

#include <csignal>
#include <optional>
#include <string>

// The headless hub on a free loopback port; its stderr kept line by line.
struct HubProcess
{
    // Long heartbeats by default: a test's raw bots are silent, and a loaded machine must not
    // make the hub drop them while the test is still setting up.
    explicit HubProcess(const QString &listen = QStringLiteral("127.0.0.1:0"),
                        const QStringList &extra = {"--heartbeat", "60000"})
    {
        process.setProgram(QCoreApplication::applicationDirPath() + QStringLiteral("/opconsole"));
        QStringList args = QStringList{"--headless", "--listen", listen} + extra;
        // Its own data (history, admission decisions), never the user's, unless the test gives
        // a directory: a hub without history still keeps its admission list there.
        if (!extra.contains("--data-dir"))
            args << "--data-dir" << dataDir.path();
        // Its operator listener on a free port too (the default is a fixed one).
        if (!extra.contains("--operator-listen"))
            args << "--operator-listen"
                 << "127.0.0.1:0";
        process.setArguments(args);
        process.start();
    }
    ~HubProcess()
    {
        if (process.state() != QProcess::NotRunning) {
            process.kill();
            process.waitForFinished(5000);
        }
    }
    // Reads what the hub wrote so far into lines.
    void pump()
    {
        buffer += process.readAllStandardError();
        qsizetype nl;
        while ((nl = buffer.indexOf('\n')) >= 0) {
            lines.append(buffer.left(nl));
            buffer.remove(0, nl + 1);
        }
    }
    std::optional<QJsonObject> waitFor(const QString &event, int ms = 10'000)
    {
        std::optional<QJsonObject> found;
        (void)QTest::qWaitFor(
            [&] {
                pump();
                for (const QByteArray &line : std::as_const(lines)) {
                    const QJsonObject o = QJsonDocument::fromJson(line).object();
                    if (o.value("event").toString() == event)
                        found = o;
                }
                return found.has_value();
            },
            ms);
        return found;
    }
    // Where bots connect.
    std::string address()
    {
        const auto started = waitFor("hub_started");
        return started ? started->value("address").toString().toStdString() : std::string();
    }
    // Where the Operator API is (opctl --hub, consoles).
    std::string operatorAddress()
    {
        const auto started = waitFor("hub_started");
        return started ? started->value("operator_address").toString().toStdString()
                       : std::string();
    }
    bool terminate(int ms = 10'000)
    {
        ::kill(pid_t(process.processId()), SIGTERM);
        const bool done =
            QTest::qWaitFor([&] { return process.state() == QProcess::NotRunning; }, ms);
        pump();
        buffer += process.readAllStandardError();
        if (!buffer.isEmpty())
            lines.append(buffer);
        return done;
    }

    QTemporaryDir dataDir;
    QProcess process;
    QByteArray buffer;
    QList<QByteArray> lines;
};
