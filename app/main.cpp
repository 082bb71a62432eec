// opconsole: the operator console. GUI by default, --headless for servers.
#include "commandregistry.h"
#include "commandservice.h"
#include "hub.h"
#include "operatorservice.h"
#include "simfleet.h"

#ifdef OPCONSOLE_GUI
#include "mainwindow.h"

#include <QApplication>
#include <QTableView>
#endif

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QDateTime>
#include <QSocketNotifier>
#include <QTimer>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sys/socket.h>
#include <unistd.h>

using namespace opconsole;

namespace {

int signalPipe[2] = {-1, -1};

void onSignal(int sig)
{
    const char c = char(sig);
    [[maybe_unused]] const auto n = ::write(signalPipe[1], &c, 1);
}

// One line per event on stderr: time, event, then key=value pairs.
void logEvent(const char *event, const QString &fields)
{
    std::fprintf(stderr, "%s %s %s\n",
                 qPrintable(QDateTime::currentDateTimeUtc().toString(Qt::ISODateWithMs)), event,
                 qPrintable(fields));
    std::fflush(stderr);
}

QString quoted(const QString &s)
{
    QString out = s;
    out.replace(QLatin1Char('"'), QLatin1String("\\\""));
    return QLatin1Char('"') + out + QLatin1Char('"');
}

} // namespace

int main(int argc, char **argv)
{
    bool headless = true;
#ifdef OPCONSOLE_GUI
    headless = std::any_of(argv + 1, argv + argc,
                           [](const char *a) { return std::strcmp(a, "--headless") == 0; });
    std::unique_ptr<QCoreApplication> application =
        headless ? std::make_unique<QCoreApplication>(argc, argv)
                 : std::make_unique<QApplication>(argc, argv);
#else
    auto application = std::make_unique<QCoreApplication>(argc, argv);
#endif
    QCoreApplication &app = *application;
    QCoreApplication::setApplicationName(QStringLiteral("opconsole"));
    QCoreApplication::setOrganizationName(QStringLiteral("opconsole"));
    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral("Operator console for fleets of bots."));
    parser.addHelpOption();
    parser.addOptions({
        {QStringLiteral("listen"),
         QStringLiteral("Address bots connect to (default 127.0.0.1:50051)."),
         QStringLiteral("host:port"), QStringLiteral("127.0.0.1:50051")},
        {QStringLiteral("headless"),
         QStringLiteral("Run the hub without a window; log to stderr.")},
        {QStringLiteral("demo"), QStringLiteral("Start N simulated bots (botsim) in-process."),
         QStringLiteral("n"), QStringLiteral("0")},
        {QStringLiteral("heartbeat"), QStringLiteral("Heartbeat interval told to bots (ms)."),
         QStringLiteral("ms"), QStringLiteral("2000")},
        {QStringLiteral("screenshot"),
         QStringLiteral("GUI: drive some demo traffic, save the window to FILE and quit."),
         QStringLiteral("file")},
    });
    parser.process(app);

#ifndef OPCONSOLE_GUI
    if (!parser.isSet(QStringLiteral("headless")))
        std::fprintf(stderr, "opconsole: built without the GUI; running headless\n");
#endif

    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, signalPipe) != 0)
        return 1;
    std::signal(SIGINT, onSignal);
    std::signal(SIGTERM, onSignal);
    QSocketNotifier notifier(signalPipe[0], QSocketNotifier::Read);

    CommandRegistry registry;
    HubOptions options;
    options.listenAddress = parser.value(QStringLiteral("listen"));
    options.heartbeatInterval =
        std::chrono::milliseconds(qMax(50, parser.value(QStringLiteral("heartbeat")).toInt()));
    Hub hub(registry, options);
    CommandService service(registry, hub);
    OperatorService operatorApi(service);
    operatorApi.attachTo(hub); // the same commands for scripts (opctl) and operators

    QObject::connect(&hub, &Hub::botConnected, &app, [](const BotInfo &b) {
        logEvent("bot_connected", QStringLiteral("bot=%1 session=%2 version=%3")
                                      .arg(quoted(b.botId))
                                      .arg(b.session)
                                      .arg(quoted(b.botVersion)));
    });
    QObject::connect(&hub, &Hub::botDisconnected, &app, [](const BotInfo &b) {
        logEvent(
            "bot_disconnected",
            QStringLiteral("bot=%1 reason=%2").arg(quoted(b.botId), quoted(b.disconnectReason)));
    });
    QObject::connect(&hub, &Hub::protocolViolation, &app,
                     [](const QString &bot, const QString &what) {
                         logEvent("protocol_violation",
                                  QStringLiteral("bot=%1 what=%2").arg(quoted(bot), quoted(what)));
                     });
    QObject::connect(&registry, &CommandRegistry::finished, &app, [](const CommandOutcome &o) {
        logEvent("command_finished",
                 QStringLiteral("id=%1 bot=%2 kind=%3 state=%4 latency_ms=%5 reason=%6")
                     .arg(quoted(o.commandId), quoted(o.botId), o.kind, quoted(stateName(o.state)))
                     .arg(double(o.latency().count()) / 1e6, 0, 'f', 3)
                     .arg(quoted(o.reason)));
    });
    QObject::connect(&registry, &CommandRegistry::lateAck, &app, [](const CommandOutcome &o) {
        logEvent("late_ack", QStringLiteral("id=%1 bot=%2 late_by_ms=%3")
                                 .arg(quoted(o.commandId), quoted(o.botId))
                                 .arg(double(o.lateBy().count()) / 1e6, 0, 'f', 1));
    });

    QString error;
    if (!hub.start(&error)) {
        logEvent("error", QStringLiteral("what=%1").arg(quoted(error)));
        return 69;
    }
    logEvent("hub_started", QStringLiteral("address=%1").arg(hub.address()));

    std::unique_ptr<botsim::Fleet> demo;
    if (const int n = parser.value(QStringLiteral("demo")).toInt(); n > 0) {
        botsim::SimOptions sim;
        sim.hub = hub.address().toStdString();
        sim.bots = n;
        sim.failRatio = 0.05;
        sim.dropRatio = 0.02;
        sim.lateRatio = 0.02;
        botsim::LatencyModel::parse("lognormal:40:800", &sim.latency, nullptr);
        demo = std::make_unique<botsim::Fleet>(sim);
        demo->start();
        logEvent("demo_fleet", QStringLiteral("bots=%1").arg(n));
    }

#ifdef OPCONSOLE_GUI
    std::unique_ptr<MainWindow> window;
    if (!headless) {
        window = std::make_unique<MainWindow>(registry, hub, service);
        window->resize(1400, 860);
        window->show();
        if (const QString shot = parser.value(QStringLiteral("screenshot")); !shot.isEmpty()) {
            // A fan-out to every bot, a few single commands, some with a timeout too short for
            // the slower bots (expired rows that then get their late acks), then the picture.
            QTimer::singleShot(1500, window.get(), [&window] {
                window->fleetView()->selectAll();
                window->sendKindToSelection(CommandKind::Ping);
            });
            QTimer::singleShot(2000, window.get(), [&hub, &service] {
                const QStringList bots = hub.connectedBotIds();
                for (qsizetype i = 3; i < std::min<qsizetype>(bots.size(), 15); ++i)
                    service.send(bots.at(i), CommandSpec::of(CommandKind::Ping),
                                 std::chrono::milliseconds(100));
            });
            QTimer::singleShot(2200, window.get(), [&window] {
                window->fleetView()->selectRow(0);
                window->sendKindToSelection(CommandKind::Restart);
                window->fleetView()->selectRow(1);
                window->sendKindToSelection(CommandKind::Pause);
                window->fleetView()->selectRow(2);
                window->sendKindToSelection(CommandKind::Start);
            });
            QTimer::singleShot(4500, window.get(), [&window, shot] {
                window->commandsView()->selectRow(0);
                const bool saved = window->grab().save(shot);
                logEvent("screenshot",
                         QStringLiteral("file=%1 saved=%2").arg(quoted(shot)).arg(saved));
                QCoreApplication::exit(saved ? 0 : 1);
            });
        }
    }
#endif

    QObject::connect(&notifier, &QSocketNotifier::activated, &app, [&] {
        char sig = 0;
        [[maybe_unused]] const auto n = ::read(signalPipe[0], &sig, 1);
        logEvent("shutdown",
                 QStringLiteral("signal=%1 pending=%2").arg(int(sig)).arg(registry.pendingCount()));
        hub.stop(QStringLiteral("hub shutting down"));
        if (demo)
            demo->stop();
        QCoreApplication::quit();
    });
    const int rc = app.exec();
    logEvent("stopped", QStringLiteral("acked=%1 rejected=%2 expired=%3 late_acks=%4")
                            .arg(registry.counters().acked)
                            .arg(registry.counters().rejected)
                            .arg(registry.counters().expired)
                            .arg(registry.counters().lateAcks));
    return rc;
}
