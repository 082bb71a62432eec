#pragma once
// opctl as a user runs it, for the tests that drive it against a hub: started at once;
// wait() keeps this thread's events going (an in-process hub serves meanwhile), bounded, and
// kills it when the bound passes.
#include <QCoreApplication>
#include <QProcess>
#include <QTest>

struct Opctl
{
    explicit Opctl(const QStringList &args)
    {
        process.setProgram(QCoreApplication::applicationDirPath() + QStringLiteral("/opctl"));
        process.setArguments(args);
        process.start();
    }
    // The exit code; -1 when it did not end within `ms` (then killed), -2 when it crashed.
    int wait(int ms = 20'000)
    {
        if (!QTest::qWaitFor([&] { return process.state() == QProcess::NotRunning; }, ms)) {
            process.kill();
            process.waitForFinished(5'000);
            return -1;
        }
        out = QString::fromUtf8(process.readAllStandardOutput());
        err = QString::fromUtf8(process.readAllStandardError());
        return process.exitStatus() == QProcess::NormalExit ? process.exitCode() : -2;
    }
    QProcess process;
    QString out, err;
};
