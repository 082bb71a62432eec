// Send-and-wait through the hub against a botsim process that acks at once, and the same
// load over a raw gRPC bidi stream with no registry, so the overhead is a ratio. With --tls,
// the hub's run again over TLS (certificates made at run time), so TLS's cost is a ratio too.
// Prints one line per figure: "name value unit". See docs/performance.md.
#include "benchprint.h"
#include "changefeed.h"
#include "clusternode.h"
#include "commandregistry.h"
#include "commandservice.h"
#include "historystore.h"
#include "hub.h"
#include "natsserver.h" // nats-server as a child process (--cluster)
#include "opconsole/v1/botlink.grpc.pb.h"
#include "opconsole/v1/operator.grpc.pb.h"
#include "operatorservice.h"
#include "testcerts.h" // scripts/certs.sh into a temporary directory
#include "tlscredentials.h"
#include "tokens.h"

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QElapsedTimer>
#include <QProcess>
#include <QTemporaryDir>
#include <QTest>

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <deque>
#include <functional>
#include <mutex>
#include <sys/resource.h>

using namespace opconsole;
using namespace std::chrono;

namespace {

void print(const QString &name, double value, const char *unit)
{
    printFigure(qPrintable(name), value, unit);
}

// Round-trip times in microseconds, appended from any thread.
class Samples
{
public:
    explicit Samples(size_t capacity) : m_us(capacity) {}
    void add(Clock::time_point start)
    {
        const size_t i = m_next.fetch_add(1, std::memory_order_relaxed);
        if (i < m_us.size())
            m_us[i] = float(duration_cast<nanoseconds>(Clock::now() - start).count()) / 1000.f;
    }
    size_t count() const { return std::min(m_next.load(), m_us.size()); }
    double percentile(double q)
    {
        const size_t n = count();
        if (n == 0)
            return 0;
        std::vector<float> v(m_us.begin(), m_us.begin() + long(n));
        const size_t k = std::min(n - 1, size_t(q * double(n)));
        std::nth_element(v.begin(), v.begin() + long(k), v.end());
        return v[k];
    }

private:
    std::vector<float> m_us;
    std::atomic<size_t> m_next{0};
};

// The baseline: BotLink with no registry and no service. A caller's send is matched to the
// stream's next ack in order (botsim acks at once, in order).
class RawEchoHub final : public v1::BotLink::CallbackService
{
public:
    class Stream final : public grpc::ServerBidiReactor<v1::BotMessage, v1::HubMessage>
    {
    public:
        explicit Stream(RawEchoHub *hub) : m_hub(hub) { StartRead(&m_in); }
        void send(const std::string &id, std::function<void()> done)
        {
            v1::HubMessage message;
            message.mutable_command()->set_command_id(id);
            message.mutable_command()->mutable_ping();
            std::unique_lock lock(m_mutex);
            m_waiting.push_back(std::move(done));
            if (m_writing) {
                m_queue.push_back(std::move(message));
                return;
            }
            m_writing = true;
            m_out = std::move(message);
            lock.unlock();
            StartWrite(&m_out);
        }
        void OnReadDone(bool ok) override
        {
            if (!ok) {
                Finish(grpc::Status::OK);
                return;
            }
            if (m_in.has_hello()) {
                v1::HubMessage welcome;
                welcome.mutable_welcome()->set_session_id("raw");
                welcome.mutable_welcome()->mutable_heartbeat_interval()->set_seconds(2);
                {
                    std::lock_guard lock(m_mutex);
                    m_writing = true;
                    m_out = std::move(welcome);
                }
                StartWrite(&m_out);
                m_hub->attach(this);
            } else if (m_in.has_ack()) {
                std::function<void()> done;
                {
                    std::lock_guard lock(m_mutex);
                    if (!m_waiting.empty()) {
                        done = std::move(m_waiting.front());
                        m_waiting.pop_front();
                    }
                }
                if (done)
                    done();
            }
            StartRead(&m_in);
        }
        void OnWriteDone(bool ok) override
        {
            std::unique_lock lock(m_mutex);
            if (!ok || m_queue.empty()) {
                m_writing = false;
                return;
            }
            m_out = std::move(m_queue.front());
            m_queue.pop_front();
            grpc::WriteOptions options;
            if (!m_queue.empty())
                options.set_buffer_hint();
            lock.unlock();
            StartWrite(&m_out, options);
        }
        void OnDone() override { m_hub->detach(this); }

    private:
        RawEchoHub *m_hub;
        v1::BotMessage m_in;
        v1::HubMessage m_out;
        std::mutex m_mutex;
        bool m_writing = false;
        std::deque<v1::HubMessage> m_queue;
        std::deque<std::function<void()>> m_waiting;
    };

    grpc::ServerBidiReactor<v1::BotMessage, v1::HubMessage> *
    Connect(grpc::CallbackServerContext *) override
    {
        return new Stream(this);
    }
    void attach(Stream *s)
    {
        std::lock_guard lock(m_mutex);
        m_streams.push_back(s);
    }
    void detach(Stream *s)
    {
        {
            std::lock_guard lock(m_mutex);
            std::erase(m_streams, s);
        }
        delete s;
    }
    int count()
    {
        std::lock_guard lock(m_mutex);
        return int(m_streams.size());
    }
    Stream *stream(int i)
    {
        std::lock_guard lock(m_mutex);
        return m_streams.empty() ? nullptr : m_streams[size_t(i) % m_streams.size()];
    }

private:
    std::mutex m_mutex;
    std::vector<Stream *> m_streams;
};

struct Figures
{
    double perSecond = 0;
    double p50 = 0;
    double p99 = 0;
    double cpuUsPerCommand = 0; // this process (hub or echo server, and the callers)
};

double median(std::vector<double> v);

// Each figure's median over several runs (rounds run side by side with a baseline).
Figures medianOf(const std::vector<Figures> &runs)
{
    const auto field = [&](double Figures::*f) {
        std::vector<double> v;
        for (const Figures &figures : runs)
            v.push_back(figures.*f);
        return median(v);
    };
    return {field(&Figures::perSecond), field(&Figures::p50), field(&Figures::p99),
            field(&Figures::cpuUsPerCommand)};
}

double processCpuUs()
{
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6 +
           double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

// Runs `issue(caller)` closed-loop for each caller until `seconds` pass; `issue` must call
// `done(caller, start)` when its command completes.
struct ClosedLoop
{
    std::atomic<bool> stopping{false};
    std::atomic<int> inFlight{0};
    std::atomic<quint64> completed{0};
    Samples samples{20'000'000};
};

// Starts `concurrency` closed-loop callers, lets them run for `seconds`, then waits (bounded)
// for what is in flight.
double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

Figures drive(ClosedLoop &loop, const std::function<void(int)> &issue, int concurrency,
              double seconds)
{
    QElapsedTimer timer;
    timer.start();
    const double cpuBefore = processCpuUs();
    for (int c = 0; c < concurrency; ++c)
        issue(c);
    QTest::qWait(int(seconds * 1000));
    loop.stopping = true;
    const double elapsed = double(timer.nsecsElapsed()) / 1e9;
    const double cpu = processCpuUs() - cpuBefore;
    const auto done = double(std::max<quint64>(1, loop.completed.load()));
    if (!QTest::qWaitFor([&] { return loop.inFlight.load() == 0; }, 15'000))
        std::fprintf(stderr, "stream_bench: still in flight after 15 s\n");
    return {double(loop.completed.load()) / elapsed, loop.samples.percentile(0.5),
            loop.samples.percentile(0.99), cpu / done};
}

// TLS for --tls: a CA, the hub's certificate and, for mTLS, one certificate per bot, made
// by scripts/certs.sh at run time; or a bot token (the hub holds its hash) instead of the
// bots' certificates.
struct BenchTls
{
    TestCerts certs;
    bool token = false;
    QString tokenFile;
    std::shared_ptr<const security::BotTokens> botTokens;

    // The ids of every bot of every TLS run (for their certificates).
    bool make(const QStringList &botIds, bool useToken, QString *error)
    {
        token = useToken;
        if (!certs.make(useToken ? QStringList() : botIds, {}, error))
            return false;
        if (!useToken)
            return true;
        const QString secret = security::newToken();
        tokenFile = certs.dir.filePath(QStringLiteral("bot.token"));
        QFile file(tokenFile);
        if (!file.open(QIODevice::WriteOnly | QIODevice::NewOnly,
                       QFileDevice::ReadOwner | QFileDevice::WriteOwner) ||
            file.write(secret.toLatin1() + '\n') < 0) {
            *error = tokenFile + QStringLiteral(": ") + file.errorString();
            return false;
        }
        // Every bot of the bench may use it.
        botTokens = security::BotTokens::parse(
            "bench * " + security::tokenHash(secret.toLatin1()).toLatin1(), "bench", error);
        return botTokens != nullptr;
    }

    // A listener's credentials: the hub's certificate; client certificates verified by the CA.
    std::shared_ptr<grpc::ServerCredentials> server() const
    {
        QString error;
        auto credentials =
            security::serverCredentials({certs.hubCert(), certs.hubKey(), certs.ca()}, &error);
        if (!credentials)
            qFatal("TLS: %s", qPrintable(error));
        return credentials;
    }

    // botsim's options: the CA, and each bot's certificate or the token.
    QStringList botsimArguments() const
    {
        QStringList args{"--tls-ca", certs.ca()};
        if (token)
            args << "--token-file" << tokenFile;
        else
            args << "--tls-cert" << certs.dir.filePath(QStringLiteral("bots/{id}.pem"))
                 << "--tls-key" << certs.dir.filePath(QStringLiteral("bots/{id}.key"));
        return args;
    }
};

QStringList botIds(const QString &prefix, int bots)
{
    QStringList ids;
    for (int i = 1; i <= bots; ++i)
        ids << prefix + QString::number(i);
    return ids;
}

bool startBotsim(QProcess &proc, const QString &address, int bots, const QString &prefix,
                 const QStringList &extra = {})
{
    proc.setProgram(QCoreApplication::applicationDirPath() + QStringLiteral("/botsim"));
    proc.setArguments(QStringList{"--hub", address, "--bots", QString::number(bots), "--prefix",
                                  prefix, "--latency", "fixed:0"} +
                      extra);
    proc.setProcessChannelMode(QProcess::ForwardedErrorChannel);
    proc.start();
    return proc.waitForStarted(10'000);
}

void stopBotsim(QProcess &proc)
{
    proc.terminate();
    if (!proc.waitForFinished(15'000))
        proc.kill();
}

// A hub (optionally with the Operator API, history, TLS) and a botsim process whose bots
// have connected.
struct HubRun
{
    HubRun(int bots, const QString &prefix, bool withApi, bool withHistory = false,
           const BenchTls *tls = nullptr)
    {
        if (withHistory) {
            // As app/main.cpp wires it: every change of the feed, appended on its thread.
            HistoryOptions ho;
            ho.directory = dataDir.path();
            QString error;
            history = HistoryStore::open(ho, &error);
            if (!history)
                qFatal("history: %s", qPrintable(error));
            QObject::connect(
                &feed, &ChangeFeed::changes, &feed,
                [store = history.get()](const QList<CommandOutcome> &r) { store->append(r); },
                Qt::DirectConnection);
        }
        HubOptions options;
        options.listenAddress = QStringLiteral("127.0.0.1:0");
        if (tls) {
            // As opconsole runs with --tls-cert, --tls-key, --tls-client-ca (and --bot-tokens).
            options.botCredentials = tls->server();
            options.operatorCredentials = tls->server();
            options.security.certificates = !tls->token;
            options.security.tokens = tls->botTokens;
        }
        hub = std::make_unique<Hub>(registry, options);
        service = std::make_unique<CommandService>(registry, *hub);
        if (withApi) {
            api = std::make_unique<OperatorService>(*service, feed);
            api->attachTo(*hub);
            api->setHistory(history.get());
        }
        if (!hub->start())
            qFatal("hub did not start");
        if (!startBotsim(botsim, hub->address(), bots, prefix,
                         tls ? tls->botsimArguments() : QStringList()))
            qFatal("botsim did not start");
        if (!QTest::qWaitFor([&] { return hub->connectedBotIds().size() == bots; }, 30'000))
            qFatal("bots did not connect");
        ids = hub->connectedBotIds();
    }
    ~HubRun()
    {
        stopBotsim(botsim);
        api.reset(); // stops the hub before the service goes
        hub->stop(QStringLiteral("bench over"));
        if (history) {
            registry.flushChanges();
            if (!history->flush(seconds(60)))
                std::fprintf(stderr, "stream_bench: history not flushed in 60 s\n");
            const HistoryStats s = history->stats();
            std::fprintf(stderr,
                         "stream_bench: history wrote %llu transitions, dropped %llu "
                         "progress, writer CPU %lld ms (%.2f us per transition), %s\n",
                         static_cast<unsigned long long>(s.written),
                         static_cast<unsigned long long>(s.droppedProgress),
                         static_cast<long long>(s.writerCpuMs),
                         1000.0 * double(s.writerCpuMs) / double(std::max<quint64>(1, s.written)),
                         qPrintable(summaryOf(s)));
            QObject::disconnect(&feed, &ChangeFeed::changes, &feed, nullptr);
            history.reset();
        }
    }

    QTemporaryDir dataDir;
    std::unique_ptr<HistoryStore> history;
    CommandRegistry registry;
    ChangeFeed feed{registry};
    std::unique_ptr<Hub> hub;
    std::unique_ptr<CommandService> service;
    std::unique_ptr<OperatorService> api;
    QProcess botsim;
    QStringList ids;
};

Figures sendLoop(CommandService &service, const QStringList &ids, int concurrency, double seconds);

Figures runHub(int bots, int concurrency, double seconds, bool withHistory = false,
               const BenchTls *tls = nullptr)
{
    HubRun run(bots,
               tls           ? QStringLiteral("ht-")
               : withHistory ? QStringLiteral("hh-")
                             : QStringLiteral("hb-"),
               false, withHistory, tls);
    return sendLoop(*run.service, run.ids, concurrency, seconds);
}

// --cluster: two hubs of one cluster in this process, over a nats-server child process
// (Debian's, JetStream on); botsim's bots on one of them. The same closed loop is sent through
// the hub that holds the bots (local) and through the other (forwarded over NATS).
struct ClusterBench
{
    explicit ClusterBench(int bots) : holder(bots, QStringLiteral("cl-"), false)
    {
        if (nats.port() == 0)
            qFatal("nats-server did not start (scripts/deps.sh installs it): %s",
                   nats.log.constData());
        HubOptions options;
        options.listenAddress = QStringLiteral("127.0.0.1:0");
        entryHub = std::make_unique<Hub>(entryRegistry, options);
        entryService = std::make_unique<CommandService>(entryRegistry, *entryHub);
        if (!entryHub->start())
            qFatal("hub did not start");
        const auto join = [&](CommandService &service, const char *id) {
            cluster::ClusterOptions c;
            c.servers = {nats.url()};
            c.hubId = QLatin1String(id);
            auto node = std::make_unique<cluster::ClusterNode>(service, c);
            QString error;
            if (!node->start(&error))
                qFatal("cluster: %s", qPrintable(error));
            service.setForwarder(node.get());
            return node;
        };
        holderNode = join(*holder.service, "bench-holder");
        entryNode = join(*entryService, "bench-entry");
        // The entry hub knows the holder (its beacons) and every bot (the directory).
        if (!QTest::qWaitFor(
                [&] {
                    return entryNode->liveHubs().size() == 2 &&
                           entryNode->remoteBots().size() == holder.ids.size();
                },
                30'000))
            qFatal("the cluster did not form");
    }
    ~ClusterBench()
    {
        for (auto *service : {holder.service.get(), entryService.get()})
            service->setForwarder(nullptr);
        entryNode->stop();
        holderNode->stop();
        entryHub->stop(QStringLiteral("bench over"));
    }

    NatsServer nats;
    HubRun holder;
    CommandRegistry entryRegistry;
    std::unique_ptr<Hub> entryHub;
    std::unique_ptr<CommandService> entryService;
    std::unique_ptr<cluster::ClusterNode> holderNode;
    std::unique_ptr<cluster::ClusterNode> entryNode;
};

// Callers in a closed loop: each sends a ping to its bot (caller % bots) and, once it is
// acked, the next.
Figures sendLoop(CommandService &service, const QStringList &ids, int concurrency, double seconds)
{
    const auto bots = int(ids.size());
    ClosedLoop loop;
    const CommandSpec ping = CommandSpec::of(CommandKind::Ping);
    std::function<void(int)> issue = [&](int caller) {
        const auto start = Clock::now();
        loop.inFlight.fetch_add(1);
        service.send(ids.at(caller % bots), ping, 10s)
            .then([&, caller, start](const CommandOutcome &o) {
                if (o.ok()) {
                    loop.samples.add(start);
                    loop.completed.fetch_add(1);
                }
                loop.inFlight.fetch_sub(1);
                if (!loop.stopping.load())
                    issue(caller);
            });
    };
    return drive(loop, issue, concurrency, seconds);
}

// The same load through the Operator API (its own listener): each caller is a gRPC client
// of SendCommand.
Figures runViaApi(int bots, int concurrency, double seconds, bool withHistory = false,
                  const BenchTls *tls = nullptr)
{
    HubRun run(bots,
               tls           ? QStringLiteral("apit-")
               : withHistory ? QStringLiteral("apih-")
                             : QStringLiteral("api-"),
               true, withHistory, tls);
    const QStringList &ids = run.ids;
    security::ClientTls clientTls;
    if (tls)
        clientTls.ca = tls->certs.ca();
    QString error;
    const auto credentials = security::channelCredentials(clientTls, &error);
    if (!credentials)
        qFatal("TLS: %s", qPrintable(error));
    auto stub = v1::Operator::NewStub(
        grpc::CreateChannel(run.hub->operatorAddress().toStdString(), credentials));

    struct Call
    {
        grpc::ClientContext context;
        v1::SendCommandRequest request;
        v1::SendCommandResponse response;
        Clock::time_point start;
    };
    ClosedLoop loop;
    std::function<void(int)> issue = [&](int caller) {
        auto *call = new Call;
        call->request.set_bot_id(ids.at(caller % bots).toStdString());
        call->request.mutable_command()->mutable_ping();
        call->request.mutable_timeout()->set_seconds(10);
        call->start = Clock::now();
        loop.inFlight.fetch_add(1);
        stub->async()->SendCommand(&call->context, &call->request, &call->response,
                                   [&, call, caller](grpc::Status status) {
                                       if (status.ok() &&
                                           call->response.record().outcome() == v1::OUTCOME_ACKED) {
                                           loop.samples.add(call->start);
                                           loop.completed.fetch_add(1);
                                       }
                                       delete call;
                                       loop.inFlight.fetch_sub(1);
                                       if (!loop.stopping.load())
                                           issue(caller);
                                   });
    };
    return drive(loop, issue, concurrency, seconds);
}

Figures runRaw(int bots, int concurrency, double seconds)
{
    RawEchoHub service;
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service);
    auto server = builder.BuildAndStart();
    QProcess botsim;
    if (!startBotsim(botsim, QStringLiteral("127.0.0.1:%1").arg(port), bots,
                     QStringLiteral("raw-")))
        qFatal("botsim did not start");
    if (!QTest::qWaitFor([&] { return service.count() == bots; }, 30'000))
        qFatal("bots did not connect");

    ClosedLoop loop;
    std::atomic<quint64> seq{0};
    std::function<void(int)> issue = [&](int caller) {
        const auto start = Clock::now();
        loop.inFlight.fetch_add(1);
        service.stream(caller)->send("r" + std::to_string(seq.fetch_add(1)), [&, caller, start] {
            loop.samples.add(start);
            loop.completed.fetch_add(1);
            loop.inFlight.fetch_sub(1);
            if (!loop.stopping.load())
                issue(caller);
        });
    };
    const Figures figures = drive(loop, issue, concurrency, seconds);
    stopBotsim(botsim);
    server->Shutdown(std::chrono::system_clock::now() + 2s);
    return figures;
}

} // namespace

int main(int argc, char **argv)
{
    QCoreApplication app(argc, argv);
    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral("Hub send-and-wait vs raw gRPC bidi echo."));
    parser.addHelpOption();
    parser.addOptions({
        {QStringLiteral("bots"), QStringLiteral("Connected bots."), QStringLiteral("n"), "10"},
        {QStringLiteral("concurrency"), QStringLiteral("Concurrent callers."), QStringLiteral("m"),
         "100"},
        {QStringLiteral("seconds"), QStringLiteral("Seconds per run."), QStringLiteral("s"), "5"},
        {QStringLiteral("via-api"),
         QStringLiteral("Also send the same load through the Operator API (SendCommand).")},
        {QStringLiteral("history"),
         QStringLiteral("Also run the hub (and the API, with --via-api) with history on: a "
                        "SQLite database in a temporary directory, as opconsole has it.")},
        {QStringLiteral("hub-only"),
         QStringLiteral("Run the hub alone, without the raw echo (for profiling).")},
        {QStringLiteral("tls"),
         QStringLiteral("Also run the hub (and the API, with --via-api) over TLS, certificates "
                        "made at run time by scripts/certs.sh; prints the ratios to plaintext.")},
        {QStringLiteral("tls-auth"),
         QStringLiteral("How bots prove who they are over TLS: mtls (a client certificate each, "
                        "default) or token (one bot token)."),
         QStringLiteral("mtls|token"), QStringLiteral("mtls")},
        {QStringLiteral("tls-rounds"),
         QStringLiteral("With --tls: rounds of one plaintext and one TLS run (default 3); the "
                        "ratios are the rounds' median."),
         QStringLiteral("n"), QStringLiteral("3")},
        {QStringLiteral("cluster"),
         QStringLiteral("Only the cluster's cost: two hubs of one cluster over a nats-server "
                        "child process, the load sent through the hub that holds the bots "
                        "(local) and through the other (forwarded over NATS), in rounds of one "
                        "each (--tls-rounds of them); prints both and the rounds' median "
                        "ratios.")},
    });
    parser.process(app);
    const int bots = parser.value(QStringLiteral("bots")).toInt();
    const int concurrency = parser.value(QStringLiteral("concurrency")).toInt();
    const double seconds = parser.value(QStringLiteral("seconds")).toDouble();
    if (bots < 1 || concurrency < 1 || seconds <= 0 || seconds > 600)
        qFatal("bad arguments: --bots >= 1, --concurrency >= 1, 0 < --seconds <= 600");
    const QString tlsAuth = parser.value(QStringLiteral("tls-auth"));
    if (tlsAuth != QLatin1String("mtls") && tlsAuth != QLatin1String("token"))
        qFatal("bad arguments: --tls-auth is mtls or token");
    if (const int rounds = parser.value(QStringLiteral("tls-rounds")).toInt();
        rounds < 1 || rounds > 20)
        qFatal("bad arguments: 1 <= --tls-rounds <= 20");
    const bool withTls = parser.isSet(QStringLiteral("tls"));
    const bool viaApi = parser.isSet(QStringLiteral("via-api"));
    // Made first: a missing openssl fails the run before it has spent minutes.
    BenchTls tls;
    if (withTls) {
        QString error;
        if (!tls.make(botIds(QStringLiteral("ht-"), bots) +
                          (viaApi ? botIds(QStringLiteral("apit-"), bots) : QStringList()),
                      tlsAuth == QLatin1String("token"), &error))
            qFatal("TLS: %s", qPrintable(error));
        std::fprintf(stderr, "stream_bench: TLS runs: bots with %s, certificates in %s\n",
                     tls.token ? "a bot token" : "client certificates (mTLS)",
                     qPrintable(tls.certs.dir.path()));
    }
    // TLS's runs, named "<run>_tls" (mTLS) or "<run>_tls_token".
    const QString tlsSuffix = tls.token ? QStringLiteral("_tls_token") : QStringLiteral("_tls");

    const QString tag = QStringLiteral("_b%1_c%2").arg(bots).arg(concurrency);
    // The four figures of one run, named "<run>_<figure><tag>".
    const auto printRun = [&tag](const QString &run, const Figures &f) {
        print(run + "_commands_per_s" + tag, f.perSecond, "commands/s");
        print(run + "_p50_us" + tag, f.p50, "us");
        print(run + "_p99_us" + tag, f.p99, "us");
        print(run + "_cpu_us_per_command" + tag, f.cpuUsPerCommand, "us");
    };
    if (parser.isSet(QStringLiteral("cluster"))) {
        const int rounds = parser.value(QStringLiteral("tls-rounds")).toInt();
        ClusterBench cluster(bots);
        std::vector<Figures> local, forwarded;
        std::vector<double> rateRatios, p50Ratios;
        for (int round = 1; round <= rounds; ++round) {
            local.push_back(
                sendLoop(*cluster.holder.service, cluster.holder.ids, concurrency, seconds));
            forwarded.push_back(
                sendLoop(*cluster.entryService, cluster.holder.ids, concurrency, seconds));
            rateRatios.push_back(forwarded.back().perSecond / local.back().perSecond);
            p50Ratios.push_back(forwarded.back().p50 / local.back().p50);
            std::fprintf(stderr,
                         "stream_bench: cluster round %d: local %.0f commands/s p50 %.0f us, "
                         "forwarded %.0f commands/s p50 %.0f us: %.3fx\n",
                         round, local.back().perSecond, local.back().p50,
                         forwarded.back().perSecond, forwarded.back().p50, rateRatios.back());
        }
        printRun(QStringLiteral("cluster_local"), medianOf(local));
        printRun(QStringLiteral("cluster_forwarded"), medianOf(forwarded));
        const double rateRatio = median(rateRatios);
        print("rate_ratio_forwarded_vs_local" + tag, rateRatio, "x");
        print("p50_ratio_forwarded_vs_local" + tag, median(p50Ratios), "x");
        if (rateRatio < 0.5)
            std::fprintf(stderr,
                         "stream_bench: a forwarded command keeps %.2fx of the local rate (the "
                         "target is 0.5x)\n",
                         rateRatio);
        return 0;
    }
    const Figures hub = runHub(bots, concurrency, seconds);
    printRun(QStringLiteral("hub"), hub);
    // Side by side: the same load over TLS, in rounds of one plaintext and one TLS run each
    // (the first round's plaintext run is the one printed above), so that what else the
    // machine does weighs on both alike. Printed: the TLS runs' median figures and the median
    // of the rounds' ratios; each round on stderr.
    const int tlsRounds = parser.value(QStringLiteral("tls-rounds")).toInt();
    const auto tlsRun = [&](const QString &run, const Figures &first,
                            const std::function<Figures(const BenchTls *)> &once) {
        std::vector<Figures> secured;
        std::vector<double> rateRatios, p50Ratios;
        for (int round = 1; round <= tlsRounds; ++round) {
            const Figures plain = round == 1 ? first : once(nullptr);
            secured.push_back(once(&tls));
            rateRatios.push_back(secured.back().perSecond / plain.perSecond);
            p50Ratios.push_back(secured.back().p50 / plain.p50);
            std::fprintf(stderr,
                         "stream_bench: %s round %d: plaintext %.0f commands/s p50 %.0f us, "
                         "TLS %.0f commands/s p50 %.0f us: %.3fx\n",
                         qPrintable(run), round, plain.perSecond, plain.p50,
                         secured.back().perSecond, secured.back().p50, rateRatios.back());
        }
        printRun(run + tlsSuffix, medianOf(secured));
        const double rateRatio = median(rateRatios);
        print("rate_ratio_" + run + tlsSuffix + "_vs_plaintext" + tag, rateRatio, "x");
        print("p50_ratio_" + run + tlsSuffix + "_vs_plaintext" + tag, median(p50Ratios), "x");
        if (rateRatio < 0.8)
            std::fprintf(stderr,
                         "stream_bench: %s over TLS keeps %.2fx of the plaintext rate "
                         "(the target is 0.8x)\n",
                         qPrintable(run), rateRatio);
    };
    if (withTls)
        tlsRun(QStringLiteral("hub"), hub,
               [&](const BenchTls *t) { return runHub(bots, concurrency, seconds, false, t); });
    if (parser.isSet(QStringLiteral("hub-only")))
        return 0;
    const Figures raw = runRaw(bots, concurrency, seconds);
    printRun(QStringLiteral("raw"), raw);
    print("rate_ratio_hub_vs_raw" + tag, hub.perSecond / raw.perSecond, "x");
    print("p50_ratio_hub_vs_raw" + tag, hub.p50 / raw.p50, "x");
    const bool withHistory = parser.isSet(QStringLiteral("history"));
    if (withHistory) {
        // Side by side in one run: the same load with history on.
        const Figures hubHistory = runHub(bots, concurrency, seconds, true);
        printRun(QStringLiteral("hub_history"), hubHistory);
        print("rate_ratio_history_vs_hub" + tag, hubHistory.perSecond / hub.perSecond, "x");
        print("cpu_ratio_history_vs_hub" + tag, hubHistory.cpuUsPerCommand / hub.cpuUsPerCommand,
              "x");
    }
    if (viaApi) {
        const Figures api = runViaApi(bots, concurrency, seconds);
        printRun(QStringLiteral("api"), api);
        print("rate_ratio_api_vs_hub" + tag, api.perSecond / hub.perSecond, "x");
        if (withTls) // both listeners over TLS, operators' calls too
            tlsRun(QStringLiteral("api"), api, [&](const BenchTls *t) {
                return runViaApi(bots, concurrency, seconds, false, t);
            });
        if (withHistory) {
            const Figures apiHistory = runViaApi(bots, concurrency, seconds, true);
            printRun(QStringLiteral("api_history"), apiHistory);
            print("rate_ratio_api_history_vs_api" + tag, apiHistory.perSecond / api.perSecond, "x");
        }
    }
    return 0;
}
