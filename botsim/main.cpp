// botsim: a fleet of simulated bots, each a real gRPC client of an opconsole hub.
#include "simfleet.h"
#include "tokens.h"

#include <QCommandLineParser>
#include <QCoreApplication>

#include <grpc/support/log.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>

using namespace opconsole::botsim;

namespace {

bool ratio(QCommandLineParser &parser, const QString &name, double *out)
{
    if (!parser.isSet(name))
        return true;
    bool ok = false;
    const double v = parser.value(name).toDouble(&ok);
    if (!ok || v < 0 || v > 1) {
        std::fprintf(stderr, "botsim: --%s must be a number from 0 to 1\n", qPrintable(name));
        return false;
    }
    *out = v;
    return true;
}

} // namespace

int main(int argc, char **argv)
{
    // SIGINT/SIGTERM are taken synchronously below; block them before any thread starts.
    sigset_t stopSignals;
    sigemptyset(&stopSignals);
    sigaddset(&stopSignals, SIGINT);
    sigaddset(&stopSignals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr);

    // gRPC's own log lines (a failed handshake, at every retry of every bot) would bury the
    // one line botsim says about it; GRPC_VERBOSITY brings them back.
    if (!std::getenv("GRPC_VERBOSITY"))
        gpr_set_log_function([](gpr_log_func_args *) {});

    QCoreApplication app(argc, argv);
    QCoreApplication::setApplicationName(QStringLiteral("botsim"));
    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral(
        "A fleet of simulated bots that dial in to an opconsole hub.\n"
        "Prints a summary at exit, on SIGINT and on SIGTERM. A bot the hub holds awaiting "
        "approval waits, stream open, for an admin's decision; one the hub refuses "
        "(unauthenticated, permission denied) is logged and retried with back-off."));
    parser.addHelpOption();
    parser.addOptions({
        {QStringLiteral("hub"),
         QStringLiteral("Hub address (default 127.0.0.1:50051), or several separated by commas "
                        "(a cluster): the bots are spread over them and move on to the next when "
                        "a stream ends."),
         QStringLiteral("host:port[,...]"), QStringLiteral("127.0.0.1:50051")},
        {QStringLiteral("bots"), QStringLiteral("Number of bots (default 10)."),
         QStringLiteral("n"), QStringLiteral("10")},
        {QStringLiteral("prefix"), QStringLiteral("Bot id prefix (default bot-)."),
         QStringLiteral("text"), QStringLiteral("bot-")},
        {QStringLiteral("first"), QStringLiteral("Number of the first bot (default 1)."),
         QStringLiteral("n"), QStringLiteral("1")},
        {QStringLiteral("label"), QStringLiteral("A label for every bot; repeatable."),
         QStringLiteral("k=v")},
        {QStringLiteral("latency"),
         QStringLiteral("Ack latency: fixed:MS, uniform:MIN:MAX, lognormal:MEDIAN:P99."),
         QStringLiteral("model"), QStringLiteral("fixed:0")},
        {QStringLiteral("fail"), QStringLiteral("Ratio of commands acked with success=false."),
         QStringLiteral("0..1")},
        {QStringLiteral("drop"), QStringLiteral("Ratio of commands never acked."),
         QStringLiteral("0..1")},
        {QStringLiteral("duplicate"), QStringLiteral("Ratio of acks sent twice."),
         QStringLiteral("0..1")},
        {QStringLiteral("late"), QStringLiteral("Ratio of acks sent after the command's timeout."),
         QStringLiteral("0..1")},
        {QStringLiteral("disconnect"),
         QStringLiteral("Ratio of commands after which the bot drops its connection and "
                        "reconnects with exponential backoff."),
         QStringLiteral("0..1")},
        {QStringLiteral("progress-above"),
         QStringLiteral("Send progress updates for commands slower than this (default 1000)."),
         QStringLiteral("ms"), QStringLiteral("1000")},
        {QStringLiteral("no-heartbeat"), QStringLiteral("Never send heartbeats (bots go silent).")},
        {QStringLiteral("no-resend-acks"),
         QStringLiteral("Do not repeat recent acks in Hello on reconnect (an old bot).")},
        {QStringLiteral("seed"), QStringLiteral("Random seed; the same seed repeats a run."),
         QStringLiteral("n"), QStringLiteral("1")},
        {QStringLiteral("journal"),
         QStringLiteral("Write one line per decision about a command to FILE (for soak checks)."),
         QStringLiteral("file")},
        {QStringLiteral("tls-ca"),
         QStringLiteral("TLS: trust this CA for the hub's certificate (PEM)."),
         QStringLiteral("file")},
        {QStringLiteral("tls-cert"),
         QStringLiteral("TLS: each bot's client certificate (mTLS). {id} stands for the bot's "
                        "id, as scripts/certs.sh names them: DIR/bots/{id}.pem."),
         QStringLiteral("file")},
        {QStringLiteral("tls-key"),
         QStringLiteral("The private key of --tls-cert; {id} as there: DIR/bots/{id}.key."),
         QStringLiteral("file")},
        {QStringLiteral("tls-server-name"),
         QStringLiteral("TLS: the name the hub's certificate must carry (default: the host "
                        "in --hub)."),
         QStringLiteral("name")},
        {QStringLiteral("token-file"),
         QStringLiteral("A bot token, sent by every bot as \"authorization: Bearer\"; a file "
                        "only you may read (chmod 600)."),
         QStringLiteral("file")},
        {QStringLiteral("duration"),
         QStringLiteral("Exit after this many seconds (default: run "
                        "until SIGINT/SIGTERM)."),
         QStringLiteral("s")},
    });
    parser.process(app);

    SimOptions options;
    options.hub = parser.value(QStringLiteral("hub")).toStdString();
    bool ok = false;
    options.bots = parser.value(QStringLiteral("bots")).toInt(&ok);
    if (!ok || options.bots < 1 || options.bots > 10'000) {
        std::fprintf(stderr, "botsim: --bots must be 1..10000\n");
        return 64;
    }
    options.idPrefix = parser.value(QStringLiteral("prefix")).toStdString();
    options.firstIndex = parser.value(QStringLiteral("first")).toInt();
    for (const QString &label : parser.values(QStringLiteral("label"))) {
        const qsizetype eq = label.indexOf(QLatin1Char('='));
        if (eq <= 0) {
            std::fprintf(stderr, "botsim: --label wants k=v, got '%s'\n", qPrintable(label));
            return 64;
        }
        options.labels[label.left(eq).toStdString()] = label.mid(eq + 1).toStdString();
    }
    std::string error;
    if (!LatencyModel::parse(parser.value(QStringLiteral("latency")).toStdString(),
                             &options.latency, &error)) {
        std::fprintf(stderr, "botsim: %s\n", error.c_str());
        return 64;
    }
    if (!ratio(parser, QStringLiteral("fail"), &options.failRatio) ||
        !ratio(parser, QStringLiteral("drop"), &options.dropRatio) ||
        !ratio(parser, QStringLiteral("duplicate"), &options.duplicateRatio) ||
        !ratio(parser, QStringLiteral("late"), &options.lateRatio) ||
        !ratio(parser, QStringLiteral("disconnect"), &options.disconnectRatio))
        return 64;
    options.progressAboveMs = parser.value(QStringLiteral("progress-above")).toInt();
    options.heartbeats = !parser.isSet(QStringLiteral("no-heartbeat"));
    options.resendAcks = !parser.isSet(QStringLiteral("no-resend-acks"));
    options.seed = parser.value(QStringLiteral("seed")).toULongLong();
    options.journalPath = parser.value(QStringLiteral("journal")).toStdString();
    options.tlsCa = parser.value(QStringLiteral("tls-ca")).toStdString();
    options.tlsCert = parser.value(QStringLiteral("tls-cert")).toStdString();
    options.tlsKey = parser.value(QStringLiteral("tls-key")).toStdString();
    options.tlsServerName = parser.value(QStringLiteral("tls-server-name")).toStdString();
    if (parser.isSet(QStringLiteral("token-file"))) {
        QString why;
        const QByteArray token =
            opconsole::security::readTokenFile(parser.value(QStringLiteral("token-file")), &why);
        if (token.isEmpty()) {
            std::fprintf(stderr, "botsim: --token-file %s\n", qPrintable(why));
            return 64;
        }
        options.token = token.toStdString();
    }
    const double duration = parser.isSet(QStringLiteral("duration"))
                                ? parser.value(QStringLiteral("duration")).toDouble()
                                : 0;

    const bool tls =
        !options.tlsCa.empty() || !options.tlsCert.empty() || !options.tlsServerName.empty();
    std::fprintf(stderr, "botsim: %d bots -> %s%s%s%s, latency %s, seed %llu\n", options.bots,
                 options.hub.c_str(), tls ? " over TLS" : "",
                 options.tlsCert.empty() ? "" : " with client certificates",
                 options.token.empty() ? "" : " with a bot token",
                 options.latency.describe().c_str(), static_cast<unsigned long long>(options.seed));
    Fleet fleet(options);
    if (!fleet.start(&error)) {
        std::fprintf(stderr, "botsim: %s\n", error.c_str());
        return 64;
    }

    // Wait for a signal or the end of --duration, whichever comes first.
    int caught = 0;
    timespec slice{0, 200'000'000};
    double waited = 0;
    while (duration <= 0 || waited < duration) {
        siginfo_t info;
        const int sig = sigtimedwait(&stopSignals, &info, &slice);
        if (sig == SIGINT || sig == SIGTERM) {
            caught = sig;
            break;
        }
        waited += 0.2;
    }
    fleet.stop();
    std::printf("%s%s\n", fleet.stats().summary().c_str(),
                caught ? (caught == SIGINT ? " (SIGINT)" : " (SIGTERM)") : "");
    std::fflush(stdout);
    return 0;
}
