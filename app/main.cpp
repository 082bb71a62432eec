// opconsole: the operator console. GUI by default, --headless for servers.
#include "admission.h"
#include "changefeed.h"
#include "clusternode.h"
#include "commandregistry.h"
#include "commandservice.h"
#include "config.h"
#include "eventlog.h"
#include "historystore.h"
#include "hub.h"
#include "hubmetrics.h"
#include "metricsserver.h"
#include "operatorservice.h"
#include "simfleet.h"
#include "tlscredentials.h"
#include "tokens.h"

#ifdef OPCONSOLE_GUI
#include "connectdialog.h"
#include "hubset.h"
#include "localbackend.h"
#include "mainwindow.h"
#include "theme.h"

#include <QApplication>
#include <QTableView>
#endif

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QDateTime>
#include <QDir>
#include <QElapsedTimer>
#include <QHash>
#include <QJsonObject>
#include <QSocketNotifier>
#include <QStandardPaths>
#include <QSysInfo>
#include <QTimer>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
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

QJsonObject botFields(const BotInfo &b)
{
    return {{QStringLiteral("bot"), b.botId}, {QStringLiteral("session"), qint64(b.session)}};
}

#ifdef OPCONSOLE_GUI
// The console attached to a hub that runs elsewhere: no registry, no hub in this process.
int runAttached(const QStringList &hubs, const RemoteSecurity &security, const QString &screenshot,
                QSocketNotifier &signalNotifier)
{
    RemoteBackend::Options options;
    options.security = security;
    HubSet backend(hubs, options);
    MainWindow window(backend);
    // Remembered for the "Attach to hubs" dialog once attached (addresses only).
    QObject::connect(&backend, &ConsoleBackend::linkChanged, &window, [&backend, hubs] {
        if (backend.link() == ConsoleBackend::Link::Live)
            ConnectDialog::remember(hubs);
    });
    window.show();
    QObject::connect(&signalNotifier, &QSocketNotifier::activated, &window, [] {
        char sig = 0;
        [[maybe_unused]] const auto n = ::read(signalPipe[0], &sig, 1);
        QCoreApplication::quit();
    });
    if (!screenshot.isEmpty()) {
        // Once attached: a fan-out to every bot and a few single commands, then the picture.
        auto shoot = [&window, screenshot] {
            window.commandsView()->selectRow(0);
            QCoreApplication::exit(window.grab().save(screenshot) ? 0 : 1);
        };
        QObject::connect(&backend, &ConsoleBackend::linkChanged, &window, [&] {
            if (backend.link() != ConsoleBackend::Link::Live)
                return;
            QTimer::singleShot(800, &window, [&window] {
                window.fleetView()->selectAll();
                window.sendKindToSelection(CommandKind::Ping);
                window.fleetView()->selectRow(0);
                window.sendKindToSelection(CommandKind::Restart);
            });
            QTimer::singleShot(5000, &window, shoot);
        });
        QTimer::singleShot(30'000, &window, [] { QCoreApplication::exit(1); });
    }
    return QCoreApplication::exec();
}
#endif

} // namespace

int main(int argc, char **argv)
{
    bool headless = true;
#ifdef OPCONSOLE_GUI
    // No window for a hub without one, nor to print the settings, the version or the help
    // (no display needed).
    headless = std::any_of(argv + 1, argv + argc, [](const char *a) {
        for (const char *option : {"--headless", "--print-config", "--version", "--help", "-h"}) {
            if (std::strcmp(a, option) == 0)
                return true;
        }
        return false;
    });
    std::unique_ptr<QCoreApplication> application =
        headless ? std::make_unique<QCoreApplication>(argc, argv)
                 : std::make_unique<QApplication>(argc, argv);
#else
    auto application = std::make_unique<QCoreApplication>(argc, argv);
#endif
    QCoreApplication &app = *application;
    QCoreApplication::setApplicationName(QStringLiteral("opconsole"));
    QCoreApplication::setOrganizationName(QStringLiteral("opconsole"));
    QCoreApplication::setApplicationVersion(QStringLiteral(OPCONSOLE_VERSION));
    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral("Operator console for fleets of bots."));
    parser.addHelpOption();
    parser.addVersionOption();
    // The hub's settings (listeners, limits, security, history, log): app/config.cpp, also
    // from an INI file (--config); the rest are about this process.
    Config::addOptions(parser);
    parser.addOptions({
        {QStringLiteral("config"),
         QStringLiteral("Read the hub's settings from this INI file (opconsole --print-config "
                        "writes one); flags win over it."),
         QStringLiteral("file")},
        {QStringLiteral("print-config"),
         QStringLiteral("Print the effective settings (defaults, --config, flags) as an INI "
                        "file, and exit.")},
        {QStringLiteral("headless"),
         QStringLiteral("Run the hub without a window; log to stderr.")},
        {QStringLiteral("demo"), QStringLiteral("Start N simulated bots (botsim) in-process."),
         QStringLiteral("n"), QStringLiteral("0")},
        {QStringLiteral("screenshot"),
         QStringLiteral("GUI: drive some demo traffic, save the window to FILE and quit."),
         QStringLiteral("file")},
        {QStringLiteral("connect"),
         QStringLiteral("GUI: attach to running hubs (their Operator API) instead of hosting "
                        "one; several: a,b."),
         QStringLiteral("host:port[,host:port]")},
        {QStringLiteral("tls"),
         QStringLiteral(
             "With --connect: TLS with the system's trusted CAs (implied by --tls-ca).")},
        {QStringLiteral("tls-ca"),
         QStringLiteral("With --connect: trust this CA for the hubs' certificates (TLS)."),
         QStringLiteral("file")},
        {QStringLiteral("tls-server-name"),
         QStringLiteral("With --connect: the name to expect in the hubs' certificates."),
         QStringLiteral("name")},
        {QStringLiteral("token-file"),
         QStringLiteral("With --connect: the operator token to present (a 0600 file); else "
                        "OPCONSOLE_TOKEN."),
         QStringLiteral("file")},
        {QStringLiteral("theme"),
         QStringLiteral("GUI: system (the desktop's style and colours), light or dark (the "
                        "Fusion style with a light or dark palette). Default system."),
         QStringLiteral("theme"), QStringLiteral("system")},
    });
    parser.process(app);
    Config config;
    if (QString why; !config.load(parser.value(QStringLiteral("config")), parser, &why)) {
        std::fprintf(stderr, "opconsole: %s\n", qPrintable(why));
        return 64;
    }
    if (parser.isSet(QStringLiteral("print-config"))) {
        std::fputs(qPrintable(config.print()), stdout);
        return 0;
    }

#ifdef OPCONSOLE_GUI
    // Checked headless too (a mistake is said, not ignored); applied with the window only.
    const std::optional<Theme> theme = parseTheme(parser.value(QStringLiteral("theme")));
    if (!theme) {
        std::fprintf(stderr, "opconsole: --theme is system, light or dark\n");
        return 64;
    }
    if (!headless) {
        applyTheme(*theme);
        QApplication::setWindowIcon(applicationIcon());
        QGuiApplication::setDesktopFileName(QStringLiteral("io.github.opconsole"));
    }
#endif

#ifndef OPCONSOLE_GUI
    if (!parser.isSet(QStringLiteral("headless")))
        std::fprintf(stderr, "opconsole: built without the GUI; running headless\n");
#endif

    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, signalPipe) != 0)
        return 1;
    std::signal(SIGINT, onSignal);
    std::signal(SIGTERM, onSignal);
    QSocketNotifier notifier(signalPipe[0], QSocketNotifier::Read);

#ifdef OPCONSOLE_GUI
    if (parser.isSet(QStringLiteral("connect"))) {
        QStringList hubs;
        for (const QString &part : parser.value(QStringLiteral("connect")).split(u','))
            hubs << part.trimmed();
        const bool valid =
            !hubs.isEmpty() && hubs.size() <= HubSet::MaxHubs &&
            std::all_of(hubs.cbegin(), hubs.cend(), [&](const QString &h) {
                return !h.isEmpty() && h.size() <= 255 && h.contains(u':') && hubs.count(h) == 1;
            });
        if (headless || !valid) {
            std::fprintf(stderr,
                         "opconsole: --connect takes host:port[,host:port...] (up to %d "
                         "different hubs), with the window (not --headless)\n",
                         HubSet::MaxHubs);
            return 64;
        }
        // TLS and the operator token for every hub (docs/security.md).
        RemoteSecurity security;
        security.tls = {
            parser.value(QStringLiteral("tls-ca")), parser.value(QStringLiteral("tls-cert")),
            parser.value(QStringLiteral("tls-key")),
            parser.value(QStringLiteral("tls-server-name")), parser.isSet(QStringLiteral("tls"))};
        QString why;
        if (parser.isSet(QStringLiteral("token-file"))) {
            security.token =
                security::readTokenFile(parser.value(QStringLiteral("token-file")), &why);
            if (security.token.isEmpty()) {
                std::fprintf(stderr, "opconsole: --token-file: %s\n", qPrintable(why));
                return 64;
            }
        } else if (const QByteArray env = qgetenv("OPCONSOLE_TOKEN").trimmed(); !env.isEmpty()) {
            security.token = env;
        }
        if (const QString problem = security.problem(); !problem.isEmpty()) {
            std::fprintf(stderr, "opconsole: %s\n", qPrintable(problem));
            return 64;
        }
        if (!security.token.isEmpty() && !parser.isSet(QStringLiteral("insecure"))) {
            for (const QString &hub : hubs) {
                if (const QString problem = security::plaintextTokenProblem(security.tls, hub);
                    !problem.isEmpty()) {
                    std::fprintf(stderr, "opconsole: %s\n", qPrintable(problem));
                    return 64;
                }
            }
        }
        return runAttached(hubs, security, parser.value(QStringLiteral("screenshot")), notifier);
    }
#endif

    // A Choice of the settings table (config.cpp): one of these, checked when it was read.
    const QStringList levels{QStringLiteral("debug"), QStringLiteral("info"),
                             QStringLiteral("warning"), QStringLiteral("error")};
    const EventLog log(
        stderr,
        LogLevel(std::max(0, int(levels.indexOf(config.text(QStringLiteral("log-level")))))));
    // Numbers were checked against their ranges when the settings were read (config.cpp).
    const auto integer = [&config](const char *name) {
        return config.integer(QString::fromLatin1(name));
    };
    const qint64 maxTimeoutS = integer("max-timeout");
    const qint64 historyDays = integer("history-days");
    const qint64 historyMb = integer("history-max-mb");

    // Security (docs/security.md), checked before anything listens: a mistake is one line here.
    const auto option = [&config](const char *name) {
        return config.text(QString::fromLatin1(name));
    };
    const bool insecure = config.isOn(QStringLiteral("insecure"));
    const QString listen = option("listen");
    const QString operatorListen = option("operator-listen");
    const security::ServerTls tls{option("tls-cert"), option("tls-key"), option("tls-client-ca")};
    QString why;
    const auto botCredentials = security::serverCredentials(tls, &why);
    const auto operatorCredentials =
        botCredentials ? security::serverCredentials(tls, &why) : nullptr;
    if (!botCredentials || !operatorCredentials) {
        std::fprintf(stderr, "opconsole: %s\n", qPrintable(why));
        return 64;
    }
    std::shared_ptr<const security::OperatorDirectory> operators;
    if (!option("operators").isEmpty()) {
        operators = security::OperatorDirectory::load(option("operators"), &why);
        if (!operators) {
            std::fprintf(stderr, "opconsole: --operators: %s\n", qPrintable(why));
            return 64;
        }
    }
    std::shared_ptr<const security::BotTokens> botTokens;
    if (!option("bot-tokens").isEmpty()) {
        botTokens = security::BotTokens::load(option("bot-tokens"), &why);
        if (!botTokens) {
            std::fprintf(stderr, "opconsole: --bot-tokens: %s\n", qPrintable(why));
            return 64;
        }
    }
    // A Choice (config.cpp): open or approve, checked when it was read.
    const QString admissionMode = option("admission");
    const bool approveNew = admissionMode == QLatin1String("approve");
    if (approveNew && tls.clientCa.isEmpty() && !botTokens) {
        std::fprintf(stderr, "opconsole: --admission approve needs bot identities to approve: "
                             "--tls-client-ca (certificates) or --bot-tokens\n");
        return 64;
    }
    const double operatorRate = config.number(QStringLiteral("operator-rate"));
    const int streamsPerCredential = int(integer("max-streams-per-credential"));
    if (!insecure) {
        // Safe by default: nothing another machine reaches goes in plaintext, and nobody there
        // commands the fleet without a token.
        for (const auto &[name, address] :
             {std::pair{"--listen", listen}, std::pair{"--operator-listen", operatorListen}}) {
            if (!tls.enabled() && !security::isLoopbackListen(address)) {
                std::fprintf(stderr,
                             "opconsole: %s %s reaches other machines: give --tls-cert and "
                             "--tls-key (docs/security.md), or --insecure to allow plaintext\n",
                             name, qPrintable(address));
                return 64;
            }
        }
        if (tls.clientCa.isEmpty() && !botTokens && !security::isLoopbackListen(listen)) {
            std::fprintf(stderr,
                         "opconsole: --listen %s reaches other machines: give bots an identity "
                         "(--tls-client-ca or --bot-tokens) so that nobody can claim another "
                         "bot's id, or --insecure\n",
                         qPrintable(listen));
            return 64;
        }
        if (!operators && !security::isLoopbackListen(operatorListen)) {
            std::fprintf(stderr,
                         "opconsole: --operator-listen %s reaches other machines: give "
                         "--operators FILE so that callers need a token, or --insecure\n",
                         qPrintable(operatorListen));
            return 64;
        }
    }
    if (parser.value(QStringLiteral("demo")).toInt() > 0 &&
        (tls.enabled() || botTokens || !tls.clientCa.isEmpty())) {
        std::fprintf(stderr, "opconsole: --demo runs bots without credentials: use it on a hub "
                             "without --tls-cert and --bot-tokens\n");
        return 64;
    }
    const QString metricsListen = option("metrics-listen");
    if (!metricsListen.isEmpty() &&
        !metrics::MetricsServer::parseAddress(metricsListen, nullptr, nullptr, &why)) {
        std::fprintf(stderr, "opconsole: --metrics-listen: %s\n", qPrintable(why));
        return 64;
    }
    const QString dataDir = !option("data-dir").isEmpty()
                                ? option("data-dir")
                                : QStandardPaths::writableLocation(QStandardPaths::AppDataLocation);
    // Admission decisions persist beside the history (also with --no-history).
    std::unique_ptr<security::AdmissionStore> admission;
    {
        const QString path = QDir(dataDir).filePath(QStringLiteral("admission.json"));
        if (!QDir().mkpath(dataDir) || !(admission = security::AdmissionStore::open(path, &why))) {
            log.error(
                "error",
                {{QStringLiteral("what"),
                  QStringLiteral("admission decisions: %1")
                      .arg(why.isEmpty()
                               ? QStringLiteral("cannot create the data directory %1").arg(dataDir)
                               : why)},
                 {QStringLiteral("hint"), QStringLiteral("use another --data-dir")}});
            return 69;
        }
    }

    CommandRegistry registry;
    registry.setMaxTimeout(std::chrono::seconds(maxTimeoutS));
    registry.setLateAckWindow(std::chrono::milliseconds(integer("late-ack-window")));
    registry.setMaxRemembered(int(integer("max-remembered")));
    ChangeFeed feed(registry); // the one ordered feed: Watch, the GUI, the log, history

    // History: opened before anything can send, so what it restores is in the registry (and
    // its ids taken) before the first command. Destroyed after the hub (declared before it):
    // the hub's last outcomes are written on the way out.
    std::unique_ptr<HistoryStore> history;
    // The context of every connection into the store: gone (and the connections with it)
    // before the store is.
    std::unique_ptr<QObject> historyLink;
    if (!config.isOn(QStringLiteral("no-history"))) {
        HistoryOptions ho;
        ho.directory = dataDir;
        ho.maxAge = std::chrono::hours(24 * historyDays);
        ho.maxBytes = historyMb * 1024 * 1024;
        ho.syncFull = config.isOn(QStringLiteral("history-fsync"));
        QString why;
        history = HistoryStore::open(ho, &why);
        if (!history) {
            log.error("error", {{QStringLiteral("what"), QStringLiteral("history: %1").arg(why)},
                                {QStringLiteral("hint"),
                                 QStringLiteral("use another --data-dir, or --no-history")}});
            return 69;
        }
        const QList<CommandOutcome> restored = history->recent();
        registry.restore(restored);
        log.info("history_opened", {{QStringLiteral("path"), history->path()},
                                    {QStringLiteral("run"), history->run()},
                                    {QStringLiteral("restored"), qint64(restored.size())},
                                    {QStringLiteral("unknown"), history->unknownAtOpen()}});
        // Every change, in order, on the feed's thread; append() only queues.
        historyLink = std::make_unique<QObject>();
        QObject::connect(
            &feed, &ChangeFeed::changes, historyLink.get(),
            [store = history.get()](const QList<CommandOutcome> &records) {
                store->append(records);
            },
            Qt::DirectConnection);
    }

    HubOptions options;
    options.listenAddress = listen;
    options.operatorListenAddress = operatorListen;
    options.heartbeatInterval = std::chrono::milliseconds(integer("heartbeat"));
    options.missedHeartbeats = int(integer("missed-heartbeats"));
    options.helloTimeout = std::chrono::milliseconds(integer("hello-timeout"));
    options.maxHandshaking = int(integer("max-handshaking"));
    options.maxLiveSessions = int(integer("max-live-sessions"));
    options.maxKnownBots = int(integer("max-known-bots"));
    options.maxQueuedPerBot = int(integer("max-queued-per-bot"));
    options.maxQueuedBytesPerBot = integer("max-queued-bytes-per-bot");
    options.maxMessageBytes = int(integer("max-message-bytes"));
    options.maxProgressPerSecond = config.number(QStringLiteral("max-progress-per-second"));
    options.maxStatusPerSecond = config.number(QStringLiteral("max-status-per-second"));
    options.maxViolationsPerSecond = config.number(QStringLiteral("max-violations-per-second"));
    options.botCredentials = botCredentials;
    options.operatorCredentials = operatorCredentials;
    options.security.tokens = botTokens;
    options.security.certificates = !tls.clientCa.isEmpty();
    options.security.admission = admission.get();
    options.security.approveNew = approveNew;
    options.security.maxStreamsPerCredential = streamsPerCredential;
    Hub hub(registry, options);
    CommandService service(registry, hub);
    service.setMaxInFlightPerBot(int(integer("max-in-flight-per-bot")));
    OperatorService operatorApi(service, feed);
    operatorApi.setAccess({operators, operatorRate});
    operatorApi.attachTo(hub); // the same commands for scripts (opctl) and operators
    if (history) {
        operatorApi.setHistory(history.get());
        // Ids carry the run: never one an earlier run stored.
        service.setIdPrefix(service.idPrefix() + QStringLiteral("r") +
                            QString::number(history->run(), 36));
        auto fleetEvent = [store = history.get()](const char *event) {
            return [store, event](const BotInfo &b) {
                store->noteFleet({QDateTime::currentMSecsSinceEpoch(), b.botId,
                                  QString::fromLatin1(event),
                                  QString::fromLatin1(event) == QLatin1String("disconnected")
                                      ? b.disconnectReason
                                      : b.botVersion});
            };
        };
        QObject::connect(&hub, &Hub::botConnected, historyLink.get(), fleetEvent("connected"),
                         Qt::DirectConnection);
        QObject::connect(&hub, &Hub::botDisconnected, historyLink.get(), fleetEvent("disconnected"),
                         Qt::DirectConnection);
        // State changes (running, paused, stopped), not every status report: the last state
        // written per connected bot, from the hub's threads.
        struct LastStates
        {
            std::mutex mutex;
            QHash<QString, QString> byBot;
        };
        auto states = std::make_shared<LastStates>();
        QObject::connect(
            &hub, &Hub::botUpdated, historyLink.get(),
            [store = history.get(), states](const BotInfo &b) {
                {
                    std::lock_guard lock(states->mutex);
                    if (!b.connected || b.state.isEmpty())
                        return;
                    QString &last = states->byBot[b.botId];
                    if (last == b.state)
                        return;
                    last = b.state;
                }
                store->noteFleet({QDateTime::currentMSecsSinceEpoch(), b.botId,
                                  QStringLiteral("state"), b.state});
            },
            Qt::DirectConnection);
        QObject::connect(
            &hub, &Hub::botDisconnected, historyLink.get(),
            [states](const BotInfo &b) {
                std::lock_guard lock(states->mutex);
                states->byBot.remove(b.botId);
            },
            Qt::DirectConnection);
    }

    // Log receivers run in this thread: events from gRPC threads arrive queued, and the last
    // of them are delivered after the event loop ends (sendPostedEvents below).
    QObject::connect(&hub, &Hub::botConnected, &app, [&log](const BotInfo &b) {
        QJsonObject f = botFields(b);
        f.insert(QStringLiteral("version"), b.botVersion);
        log.info("bot_connected", f);
    });
    QObject::connect(&hub, &Hub::botDisconnected, &app, [&log](const BotInfo &b) {
        QJsonObject f = botFields(b);
        f.insert(QStringLiteral("reason"), b.disconnectReason);
        log.info("bot_disconnected", f);
    });
    QObject::connect(&hub, &Hub::botRefused, &app,
                     [&log](const QString &bot, const QString &credential, const QString &why) {
                         log.warning("bot_refused", {{QStringLiteral("bot"), bot},
                                                     {QStringLiteral("credential"), credential},
                                                     {QStringLiteral("why"), why}});
                     });
    QObject::connect(&operatorApi, &OperatorService::accessRefused, &app,
                     [&log](const QString &caller, const QString &method, const QString &why) {
                         log.warning("access_refused", {{QStringLiteral("caller"), caller},
                                                        {QStringLiteral("method"), method},
                                                        {QStringLiteral("why"), why}});
                     });
    QObject::connect(
        &hub, &Hub::protocolViolation, &app, [&log](const QString &bot, const QString &what) {
            log.warning("protocol_violation",
                        {{QStringLiteral("bot"), bot}, {QStringLiteral("what"), what}});
        });
    // Commands: from the change feed, like Watch and the GUI (one transition per record, in
    // order): a final outcome once, and a late ack when it comes.
    QObject::connect(
        &feed, &ChangeFeed::changes, &app, [&log](const QList<CommandOutcome> &records) {
            const EventLog::Batch batch(log);
            for (const CommandOutcome &o : records) {
                if (o.event == ChangeEvent::Restored)
                    continue; // from history: logged when it happened
                if (o.hasLateAck()) {
                    log.warning("late_ack",
                                {{QStringLiteral("id"), o.commandId},
                                 {QStringLiteral("bot"), o.botId},
                                 {QStringLiteral("late_by_ms"), double(o.lateBy().count()) / 1e6},
                                 {QStringLiteral("change"), qint64(o.change)}});
                    continue;
                }
                if (!o.finished())
                    continue;
                // The Watch event name: acked, rejected, expired, not_connected, ...
                const QString state =
                    stateName(o.state).replace(QLatin1Char(' '), QLatin1Char('_'));
                QJsonObject fields{
                    {QStringLiteral("id"), o.commandId},
                    {QStringLiteral("bot"), o.botId},
                    {QStringLiteral("kind"), o.kind},
                    {QStringLiteral("state"), state},
                    {QStringLiteral("latency_ms"), double(o.latency().count()) / 1e6},
                    {QStringLiteral("reason"), o.reason},
                    {QStringLiteral("change"), qint64(o.change)}};
                if (!o.fanOut.isEmpty())
                    fields.insert(QStringLiteral("fan_out"), o.fanOut);
                if (!o.issuer.isEmpty())
                    fields.insert(QStringLiteral("issuer"), o.issuer);
                log.write(isProblem(o.state) ? LogLevel::Warning : LogLevel::Info,
                          "command_finished", fields);
            }
        });

    // Prometheus /metrics (docs/operations.md): its histograms follow the feed from the start.
    std::unique_ptr<metrics::HubMetrics> hubMetrics;
    std::atomic<const cluster::ClusterNode *> clusterForMetrics{nullptr}; // once it has joined
    const auto clusterSeries = [&clusterForMetrics] {
        std::vector<metrics::HubSources::Extra> out;
        const cluster::ClusterNode *node = clusterForMetrics.load();
        if (!node)
            return out;
        const cluster::ClusterCounters c = node->counters();
        out = {
            {"opconsole_cluster_forwarded_total",
             "Commands sent to the hub of the cluster that holds their bot.", double(c.forwarded),
             false},
            {"opconsole_cluster_no_holder_total",
             "Forwarded commands no hub held the bot for (not connected).", double(c.noHolder),
             false},
            {"opconsole_cluster_holder_lost_total",
             "Forwarded commands whose holder went away (disconnected).", double(c.holderLost),
             false},
            {"opconsole_cluster_served_total", "Commands other hubs forwarded to this hub's bots.",
             double(c.served), false},
            {"opconsole_cluster_bad_messages_total",
             "Cluster messages that broke a rule (ignored or refused).", double(c.badMessages),
             false},
            {"opconsole_cluster_acks_shared_total",
             "Bots' acks for commands this hub did not know, told to the other hubs.",
             double(c.acksShared), false},
            {"opconsole_cluster_acks_applied_total",
             "Other hubs' shared acks that told this hub an outcome.", double(c.acksApplied),
             false},
            {"opconsole_cluster_subscriptions", "Bot subjects this hub listens on.",
             double(c.subscriptions), true},
            {"opconsole_cluster_hubs_live",
             "Hubs of the cluster whose beacons arrive, this one included.",
             double(node->liveHubs().size()), true},
        };
        return out;
    };
    if (!metricsListen.isEmpty())
        hubMetrics = std::make_unique<metrics::HubMetrics>(
            metrics::HubSources{&hub, &registry, &service, &operatorApi, history.get(),
                                clusterSeries},
            feed);
    metrics::MetricsServer metricsServer([&hubMetrics] { return hubMetrics->render(); });
    QString error;
    if (!hub.start(&error)) {
        log.error("error", {{QStringLiteral("what"), error}});
        return 69;
    }
    log.info("hub_started", {{QStringLiteral("address"), hub.address()},
                             {QStringLiteral("operator_address"), hub.operatorAddress()},
                             {QStringLiteral("tls"), tls.enabled()},
                             {QStringLiteral("client_certificates"), !tls.clientCa.isEmpty()},
                             {QStringLiteral("bot_tokens"), botTokens ? botTokens->size() : 0},
                             {QStringLiteral("operators"), operators ? operators->size() : 0},
                             {QStringLiteral("admission"), admissionMode},
                             {QStringLiteral("admission_file"), admission->path()},
                             {QStringLiteral("heartbeat_ms"), integer("heartbeat")},
                             {QStringLiteral("config"), parser.value(QStringLiteral("config"))}});
    if (hubMetrics) {
        if (!metricsServer.start(metricsListen, &error)) {
            log.error("error",
                      {{QStringLiteral("what"), QStringLiteral("--metrics-listen: ") + error}});
            hub.stop(QStringLiteral("hub shutting down"));
            return 69;
        }
        log.info("metrics_started", {{QStringLiteral("address"), metricsServer.address()},
                                     {QStringLiteral("port"), int(metricsServer.port())}});
        if (!metricsServer.isLoopback())
            log.warning("metrics_exposed",
                        {{QStringLiteral("address"), metricsServer.address()},
                         {QStringLiteral("what"), QStringLiteral("/metrics has no authentication "
                                                                 "and no TLS: keep it on loopback "
                                                                 "or a private network")}});
    }
    // The cluster (docs/cluster.md): after the hub listens (its beacon names the address).
    std::unique_ptr<cluster::ClusterNode> clusterNode;
    if (!option("cluster").isEmpty()) {
        cluster::ClusterOptions c;
        c.servers = option("cluster").split(QLatin1Char(','), Qt::SkipEmptyParts);
        for (QString &s : c.servers)
            s = s.trimmed();
        c.hubId = option("hub-id");
        if (c.hubId.isEmpty()) {
            // host name and port, in the characters a hub id may have
            QString host = QSysInfo::machineHostName();
            for (QChar &ch : host)
                if (!ch.isLetterOrNumber() || ch.unicode() > 127)
                    ch = QLatin1Char('-');
            c.hubId = host.left(48) + QLatin1Char('-') + QString::number(hub.port());
        }
        c.token = option("cluster-token");
        c.tlsCa = option("cluster-ca");
        c.tlsCert = option("cluster-cert");
        c.tlsKey = option("cluster-key");
        if (tls.enabled() && !c.tls())
            log.warning("cluster_plaintext",
                        {{QStringLiteral("what"),
                          QStringLiteral("the hub's listeners use TLS but its NATS connection "
                                         "does not: give --cluster-ca (and a tls:// URL)")}});
        clusterNode = std::make_unique<cluster::ClusterNode>(service, c);
        QElapsedTimer joining;
        joining.start();
        if (!clusterNode->start(&error)) {
            log.error("error", {{QStringLiteral("what"), QStringLiteral("--cluster: ") + error}});
            hub.stop(QStringLiteral("hub shutting down"));
            return 69;
        }
        service.setForwarder(clusterNode.get());
        clusterForMetrics = clusterNode.get();
        QObject::connect(clusterNode.get(), &cluster::ClusterNode::problem, &app,
                         [&log](const QString &what) {
                             log.warning("cluster_problem", {{QStringLiteral("what"), what}});
                         });
        QObject::connect(
            clusterNode.get(), &cluster::ClusterNode::remoteBotChanged, &operatorApi,
            [&operatorApi](const BotInfo &bot) { operatorApi.noteRemoteBot(bot); },
            Qt::DirectConnection);
        log.info("cluster_joined", {{QStringLiteral("hub_id"), c.hubId},
                                    {QStringLiteral("servers"), c.servers.join(QLatin1Char(','))},
                                    {QStringLiteral("tls"), c.tls()},
                                    {QStringLiteral("join_ms"), qint64(joining.elapsed())}});
    }
    // --insecure is said at start and every hour, as long as it matters.
    QTimer insecureReminder;
    const bool exposed =
        !security::isLoopbackListen(listen) || !security::isLoopbackListen(operatorListen);
    const bool botsAnonymous = tls.clientCa.isEmpty() && !botTokens;
    const bool botsExposed = !security::isLoopbackListen(listen);
    const bool operatorsExposed = !security::isLoopbackListen(operatorListen);
    if (insecure && exposed &&
        (!tls.enabled() || (operatorsExposed && !operators) || (botsExposed && botsAnonymous))) {
        QStringList what;
        if (!tls.enabled())
            what << QStringLiteral("in plaintext");
        if (operatorsExposed && !operators)
            what << QStringLiteral("with an Operator API that asks no token");
        if (botsExposed && botsAnonymous)
            what << QStringLiteral("letting any client claim any bot id");
        auto warn = [&log, &tls, &operators, what, botsAnonymous] {
            log.warning("insecure",
                        {{QStringLiteral("what"), QStringLiteral("a listener reaches other "
                                                                 "machines %1")
                                                      .arg(what.join(QStringLiteral(", ")))},
                         {QStringLiteral("tls"), tls.enabled()},
                         {QStringLiteral("operators"), operators != nullptr},
                         {QStringLiteral("bot_identity"), !botsAnonymous}});
        };
        warn();
        QObject::connect(&insecureReminder, &QTimer::timeout, &app, warn);
        insecureReminder.start(std::chrono::hours(1));
    }

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
        log.info("demo_fleet", {{QStringLiteral("bots"), n}});
    }

#ifdef OPCONSOLE_GUI
    std::unique_ptr<LocalBackend> localBackend;
    std::unique_ptr<MainWindow> window;
    if (!headless) {
        localBackend = std::make_unique<LocalBackend>(registry, feed, hub, service, history.get());
        localBackend->setRollouts(&operatorApi.rollouts()); // "Roll out in waves"
        window = std::make_unique<MainWindow>(*localBackend);
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
            QTimer::singleShot(4500, window.get(), [&window, &log, shot] {
                window->commandsView()->selectRow(0);
                const bool saved = window->grab().save(shot);
                log.info("screenshot",
                         {{QStringLiteral("file"), shot}, {QStringLiteral("saved"), saved}});
                QCoreApplication::exit(saved ? 0 : 1);
            });
        }
    }
#endif

    // Shutdown in one place: Hub::stop() ends the bot streams, fails every pending and waiting
    // command with the reason, ends every Watch and API call with its outcome, then the server.
    QObject::connect(&notifier, &QSocketNotifier::activated, &app, [&] {
        char sig = 0;
        [[maybe_unused]] const auto n = ::read(signalPipe[0], &sig, 1);
        log.info("shutdown", {{QStringLiteral("signal"), int(sig)},
                              {QStringLiteral("pending"), registry.pendingCount()}});
        metricsServer.stop(); // before the hub
        hub.stop(QStringLiteral("hub shutting down"));
        if (demo)
            demo->stop();
        QCoreApplication::quit();
    });
    const int rc = app.exec();
    metricsServer.stop();
    hub.stop(QStringLiteral("hub shutting down")); // the window closed: same order
    if (clusterNode) {
        // After the hub: the outcomes of the commands other hubs sent here reach them first.
        clusterForMetrics = nullptr; // (the metrics server has stopped already)
        clusterNode->stop();
        service.setForwarder(nullptr);
    }
    // The last outcomes (finished on gRPC threads as the hub stopped) were queued to this
    // thread; deliver them to the log before the final line.
    QCoreApplication::sendPostedEvents();
    if (history) {
        // Everything the feed delivered is written before the process ends.
        registry.flushChanges();
        const bool flushed = history->flush(std::chrono::seconds(30));
        const HistoryStats s = history->stats();
        log.write(flushed && s.lastError.isEmpty() ? LogLevel::Info : LogLevel::Warning,
                  "history_closed",
                  {{QStringLiteral("written"), qint64(s.written)},
                   {QStringLiteral("dropped_progress"), qint64(s.droppedProgress)},
                   {QStringLiteral("flushed"), flushed},
                   {QStringLiteral("error"), s.lastError}});
    }
    const RegistryCounters c = registry.counters();
    log.info("stopped", {{QStringLiteral("acked"), qint64(c.acked)},
                         {QStringLiteral("rejected"), qint64(c.rejected)},
                         {QStringLiteral("expired"), qint64(c.expired)},
                         {QStringLiteral("late_acks"), qint64(c.lateAcks)},
                         {QStringLiteral("pending"), registry.pendingCount()}});
    return rc;
}
