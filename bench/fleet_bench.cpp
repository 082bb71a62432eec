// fleet_bench: one headless hub (a real `opconsole --headless` process) and fleets of botsim
// bots (real botsim processes over loopback), at each size asked (default 1000, 10000, 50000):
//
//   hub_rss_kb_per_bot     the hub's resident memory per idle connected bot (RSS with the fleet
//                          minus RSS before it, over the fleet's size)
//   hub_idle_cpu_pct       the hub's CPU (user + system, % of one core) over 10 s of heartbeats
//   connect_storm_s        every bot started at once: until the hub counts them all connected
//   fanout_ping_all_s      opctl send --all ping: until its tally is complete (opctl exits)
//   botsim_cpu_pct, botsim_rss_mb, botsim_threads   what the simulator costs at idle (summed
//                          over its processes: 10,000 bots a process)
//   gui_max_stall_ms_{connect,fanout,disconnect}, gui_p99_stall_ms   the console's window (this
//                          process: MainWindow on a RemoteBackend attached to the hub's Operator
//                          API, offscreen) while the fleet connects, answers the fan-out and
//                          disconnects: how late a 5 ms timer on its GUI thread fires. --no-gui
//                          leaves the console out (the other figures then have the cores alone).
//
// The hub's counts come from its own /metrics (--metrics-listen): the bench reads what an
// operator's Prometheus would. Every wait is bounded; processes are stopped at the end. With
// --chart FILE, the figures are drawn as a PNG (docs/performance.md shows it).
#include "benchprint.h"
#include "fleetmodel.h"
#include "hubset.h"
#include "mainwindow.h"

#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QImage>
#include <QJsonDocument>
#include <QJsonObject>
#include <QPainter>
#include <QProcess>
#include <QRegularExpression>
#include <QTcpSocket>
#include <QTemporaryDir>
#include <QTest>
#include <QThread>
#include <QTimer>

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <thread>

using namespace opconsole;

namespace {

bool keepLogs = false; // --keep-logs

const QString binDir()
{
    return QCoreApplication::applicationDirPath();
}

// /proc/PID/stat utime + stime, in seconds.
double cpuSeconds(qint64 pid)
{
    QFile f(QStringLiteral("/proc/%1/stat").arg(pid));
    if (!f.open(QIODevice::ReadOnly))
        return 0;
    const QByteArray stat = f.readAll();
    // Fields after the command name (which may hold spaces) in parentheses.
    const QList<QByteArray> fields = stat.mid(stat.lastIndexOf(')') + 2).split(' ');
    if (fields.size() < 13)
        return 0;
    const double ticks = double(::sysconf(_SC_CLK_TCK));
    return (fields[11].toDouble() + fields[12].toDouble()) / ticks;
}

// VmRSS (kB) or Threads of /proc/PID/status.
qint64 statusField(qint64 pid, const char *name)
{
    QFile f(QStringLiteral("/proc/%1/status").arg(pid));
    if (!f.open(QIODevice::ReadOnly))
        return 0;
    for (const QByteArray &line : f.readAll().split('\n')) {
        if (line.startsWith(name))
            return line.mid(qstrlen(name)).trimmed().split(' ').first().toLongLong();
    }
    return 0;
}

// GET /metrics over a plain socket; the value of one unlabelled gauge or counter.
std::optional<double> metric(quint16 port, const QByteArray &name)
{
    QTcpSocket socket;
    socket.connectToHost(QStringLiteral("127.0.0.1"), port);
    if (!socket.waitForConnected(2000))
        return std::nullopt;
    socket.write("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    // Until the body's Content-Length is in (the server may keep the connection open).
    QByteArray body;
    QElapsedTimer t;
    t.start();
    qsizetype want = -1;
    while (t.elapsed() < 5000 && (want < 0 || body.size() < want)) {
        if (!socket.waitForReadyRead(500) && socket.state() != QAbstractSocket::ConnectedState)
            break;
        body += socket.readAll();
        const qsizetype headerEnd = body.indexOf("\r\n\r\n");
        if (want < 0 && headerEnd >= 0) {
            static const QRegularExpression length(QStringLiteral("(?i)content-length:\\s*(\\d+)"));
            const auto m = length.match(QString::fromLatin1(body.left(headerEnd)));
            if (m.hasMatch())
                want = headerEnd + 4 + m.captured(1).toLongLong();
        }
    }
    for (const QByteArray &line : body.split('\n')) {
        if (line.startsWith(name + ' '))
            return line.mid(name.size() + 1).trimmed().toDouble();
    }
    return std::nullopt;
}

struct Hub
{
    QTemporaryDir dir;
    QProcess process;
    QString botAddress, operatorAddress;
    quint16 metricsPort = 0;

    bool start(int heartbeatMs)
    {
        process.setProgram(binDir() + QStringLiteral("/opconsole"));
        process.setArguments({"--headless", "--listen", "127.0.0.1:0", "--operator-listen",
                              "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--no-history",
                              "--heartbeat", QString::number(heartbeatMs), "--max-handshaking",
                              "100000", "--data-dir", dir.path()});
        if (keepLogs) {
            dir.setAutoRemove(false);
            std::fprintf(stderr, "fleet_bench: the hub's log and opctl's output in %s\n",
                         qPrintable(dir.path()));
        }
        // Its log (a line per bot that connects) goes to a file: a pipe nobody drains would
        // block the hub.
        const QString logPath = dir.filePath(QStringLiteral("hub.log"));
        process.setStandardErrorFile(logPath);
        process.start();
        QElapsedTimer t;
        t.start();
        QFile log(logPath);
        while (t.elapsed() < 20'000 && (botAddress.isEmpty() || metricsPort == 0)) {
            QThread::msleep(100); // another process's file: nothing to wait on but time
            if (!log.isOpen() && !log.open(QIODevice::ReadOnly))
                continue;
            log.seek(0);
            for (const QByteArray &line : log.readAll().split('\n')) {
                const QJsonObject o = QJsonDocument::fromJson(line).object();
                if (o.value("event") == QLatin1String("hub_started")) {
                    botAddress = o.value("address").toString();
                    operatorAddress = o.value("operator_address").toString();
                } else if (o.value("event") == QLatin1String("metrics_started")) {
                    metricsPort = quint16(o.value("port").toInt());
                }
            }
        }
        return !botAddress.isEmpty() && metricsPort != 0;
    }
    ~Hub()
    {
        process.terminate();
        if (!process.waitForFinished(30'000))
            process.kill();
    }
};

// The hub's connected count from its /metrics, scraped every 100 ms on a thread of its own
// (blocking sockets: the GUI thread, whose stalls are measured, never waits on them).
class ConnectedPoller
{
public:
    explicit ConnectedPoller(quint16 port)
        : m_thread([this, port] {
              while (!m_stop) {
                  if (const auto v = metric(port, "opconsole_bots_connected"))
                      m_connected = *v;
                  // polling an external process: nothing to wait on but time
                  std::this_thread::sleep_for(std::chrono::milliseconds(100));
              }
          })
    {}
    ~ConnectedPoller()
    {
        m_stop = true;
        m_thread.join();
    }
    double connected() const { return m_connected; }

private:
    std::atomic<bool> m_stop{false};
    std::atomic<double> m_connected{-1};
    std::thread m_thread;
};

// Waits (bounded, the event loop running) until the hub counts `bots` connected; the seconds
// it took, or -1.
double waitConnected(const ConnectedPoller &poller, int bots, int timeoutMs)
{
    QElapsedTimer t;
    t.start();
    if (!QTest::qWaitFor([&] { return poller.connected() >= bots; }, timeoutMs))
        return -1;
    return double(t.elapsed()) / 1000;
}

// The calling thread's CPU time, in ms.
double threadCpuMs()
{
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) / 1e6;
}

// A 5 ms Qt::PreciseTimer on the GUI thread and how late each tick comes, kept per phase; and
// how much of the largest stall the GUI thread spent running (its CPU time over the gap): on
// two cores shared with the hub and the simulator, a stall is partly the thread waiting for a
// core, and "busy" is the part that is the window's own work.
class StallProbe
{
public:
    struct Phase
    {
        double maxStallMs = 0;
        double busyMs = 0;    // of that stall, the GUI thread's CPU time
        double maxBusyMs = 0; // the most CPU time between two ticks
    };
    StallProbe()
    {
        m_timer.setTimerType(Qt::PreciseTimer);
        m_timer.setInterval(5);
        QObject::connect(&m_timer, &QTimer::timeout, [this] {
            const qint64 now = m_clock.nsecsElapsed();
            const double cpu = threadCpuMs();
            if (m_last > 0) {
                const double late = std::max(0.0, double(now - m_last) / 1e6 - 5.0);
                const double busy = cpu - m_lastCpu;
                m_all.push_back(late);
                if (late > m_phase.maxStallMs) {
                    m_phase.maxStallMs = late;
                    m_phase.busyMs = busy;
                }
                m_phase.maxBusyMs = std::max(m_phase.maxBusyMs, busy);
            }
            m_last = now;
            m_lastCpu = cpu;
        });
        m_clock.start();
        m_timer.start();
    }
    // The phase since the last call.
    Phase takePhase() { return std::exchange(m_phase, Phase{}); }
    double p99()
    {
        if (m_all.empty())
            return 0;
        std::sort(m_all.begin(), m_all.end());
        return m_all[std::min(m_all.size() - 1, size_t(0.99 * double(m_all.size())))];
    }

private:
    QTimer m_timer;
    QElapsedTimer m_clock;
    qint64 m_last = 0;
    double m_lastCpu = 0;
    Phase m_phase;
    std::vector<double> m_all;
};

struct Figures
{
    int bots = 0;
    double rssKbPerBot = 0, idleCpuPct = 0, connectS = 0, fanoutS = 0, fanoutAcked = 0;
    double simCpuPct = 0, simRssMb = 0, simThreads = 0;
    // The console's window, per phase (maxStallMs -1: not measured).
    StallProbe::Phase guiConnect{-1}, guiFanout{-1}, guiDisconnect{-1};
    double guiP99StallMs = -1, guiResyncs = 0;
    bool guiSawFleet = false;
    double guiMaxStallMs() const
    {
        return std::max({guiConnect.maxStallMs, guiFanout.maxStallMs, guiDisconnect.maxStallMs});
    }
    double simRssMbPer10k() const { return simRssMb * 10'000 / bots; }
};

// With --slow-events MS: every event the GUI thread's loop delivers that takes longer, by
// receiver (class, its parent's class) and event type: where a stall's time goes.
class TimedApplication : public QApplication
{
public:
    using QApplication::QApplication;
    double slowMs = 0; // 0: not traced
    struct Slow
    {
        int count = 0;
        double maxMs = 0, totalMs = 0;
    };
    std::map<std::string, Slow> slow;

    bool notify(QObject *receiver, QEvent *event) override
    {
        if (slowMs <= 0 || m_depth > 0)
            return QApplication::notify(receiver, event);
        const int type = int(event->type());
        ++m_depth;
        QElapsedTimer t;
        t.start();
        const bool result = QApplication::notify(receiver, event);
        --m_depth;
        const double ms = double(t.nsecsElapsed()) / 1e6;
        if (ms >= slowMs) {
            const QObject *parent = receiver->parent();
            const std::string key = std::string(receiver->metaObject()->className()) + " (in " +
                                    (parent ? parent->metaObject()->className() : "-") +
                                    ") event " + std::to_string(type);
            Slow &s = slow[key];
            ++s.count;
            s.totalMs += ms;
            s.maxMs = std::max(s.maxMs, ms);
        }
        return result;
    }
    void printSlow()
    {
        for (const auto &[key, s] : slow)
            std::fprintf(stderr, "slow event: %s: %d times, max %.1f ms, total %.0f ms\n",
                         key.c_str(), s.count, s.maxMs, s.totalMs);
        slow.clear();
    }

private:
    int m_depth = 0;
};

// The operator's window, attached to the hub's Operator API as `opconsole --connect` would be.
struct Console
{
    explicit Console(const QString &operatorAddress) : backend({operatorAddress}), window(backend)
    {
        window.resize(1400, 900);
        window.show();
    }
    bool attached()
    {
        return QTest::qWaitFor([this] { return backend.link() == ConsoleBackend::Link::Live; },
                               20'000);
    }
    opconsole::HubSet backend;
    opconsole::MainWindow window;
};

std::optional<Figures> measure(int bots, int heartbeatMs, int idleSeconds, bool gui)
{
    Hub hub;
    if (!hub.start(heartbeatMs)) {
        std::fprintf(stderr, "fleet_bench: the hub did not start\n");
        return std::nullopt;
    }
    const qint64 hubPid = hub.process.processId();
    std::unique_ptr<Console> console;
    if (gui) {
        console = std::make_unique<Console>(hub.operatorAddress);
        if (!console->attached()) {
            std::fprintf(stderr, "fleet_bench: the console did not attach to the hub\n");
            return std::nullopt;
        }
    }
    QTest::qWait(500);
    // The hub's memory before the fleet (the console's Watch stream included).
    const qint64 rssBefore = statusField(hubPid, "VmRSS:");

    Figures f;
    f.bots = bots;
    // botsim holds at most 10,000 bots a process: larger fleets are several, started at once.
    constexpr int PerProcess = 10'000;
    std::vector<std::unique_ptr<QProcess>> sims;
    for (int first = 0; first < bots; first += PerProcess) {
        auto sim = std::make_unique<QProcess>();
        sim->setProgram(binDir() + QStringLiteral("/botsim"));
        sim->setArguments({"--hub", hub.botAddress, "--bots",
                           QString::number(std::min(PerProcess, bots - first)), "--prefix",
                           QStringLiteral("s%1-").arg(first / PerProcess), "--latency", "fixed:5",
                           "--seed", QString::number(1 + first / PerProcess)});
        sim->setStandardOutputFile(QProcess::nullDevice()); // nobody reads it: no pipe to fill
        sim->setProcessChannelMode(QProcess::ForwardedErrorChannel);
        sims.push_back(std::move(sim));
    }
    std::optional<StallProbe> probe;
    if (console)
        probe.emplace();
    for (auto &sim : sims)
        sim->start();
    auto stopSims = [&sims] {
        for (auto &sim : sims)
            sim->terminate();
        for (auto &sim : sims) {
            if (!QTest::qWaitFor([&] { return sim->state() == QProcess::NotRunning; }, 60'000))
                sim->kill();
        }
    };
    auto simSum = [&sims](auto field) {
        double sum = 0;
        for (auto &sim : sims)
            sum += field(sim->processId());
        return sum;
    };
    {
        // Scraped only while the fleet connects: a scrape walks every session's queue, and ten
        // a second would show in the idle figure (Prometheus scrapes every 15 s or so).
        const ConnectedPoller poller(hub.metricsPort);
        f.connectS = waitConnected(poller, bots, 600'000);
    }
    if (f.connectS < 0) {
        std::fprintf(stderr, "fleet_bench: %d bots did not all connect in 10 min\n", bots);
        stopSims();
        return std::nullopt;
    }
    if (console) {
        // Until the window counts them all too.
        f.guiSawFleet = QTest::qWaitFor(
            [&] { return console->window.fleetModel()->connectedCount() >= bots; }, 120'000);
        f.guiConnect = probe->takePhase();
    }

    // Idle: heartbeats only.
    QTest::qWait(2000);
    const double hubCpu0 = cpuSeconds(hubPid);
    const double simCpu0 = simSum(cpuSeconds);
    QElapsedTimer idle;
    idle.start();
    QTest::qWait(idleSeconds * 1000);
    const double seconds = double(idle.nsecsElapsed()) / 1e9;
    f.idleCpuPct = (cpuSeconds(hubPid) - hubCpu0) / seconds * 100;
    f.simCpuPct = (simSum(cpuSeconds) - simCpu0) / seconds * 100;
    f.rssKbPerBot = double(statusField(hubPid, "VmRSS:") - rssBefore) / bots;
    f.simRssMb = simSum([](qint64 pid) { return double(statusField(pid, "VmRSS:")); }) / 1024;
    f.simThreads = simSum([](qint64 pid) { return double(statusField(pid, "Threads:")); });

    // A fan-out ping to every bot, until opctl has the whole tally.
    QProcess opctl;
    opctl.setProgram(binDir() + QStringLiteral("/opctl"));
    opctl.setArguments(
        {"--hub", hub.operatorAddress, "--json", "send", "--all", "ping", "--timeout", "120s"});
    // A line a bot, then the tally: to a file (a pipe would have to be drained as it comes).
    const QString fanoutOut = hub.dir.filePath(QStringLiteral("fanout.jsonl"));
    opctl.setStandardOutputFile(fanoutOut);
    QElapsedTimer fan;
    fan.start();
    // The outcomes the window receives, to know when it has the whole fan-out.
    QSet<QString> finishedSeen;
    QMetaObject::Connection seen;
    if (console) {
        seen = QObject::connect(&console->backend, &ConsoleBackend::commandsChanged,
                                [&](const QList<CommandOutcome> &records) {
                                    for (const CommandOutcome &r : records)
                                        if (r.finished())
                                            finishedSeen.insert(r.commandId);
                                });
        probe->takePhase(); // the idle phase is not a change of state
    }
    opctl.start();
    if (!QTest::qWaitFor([&] { return opctl.state() == QProcess::NotRunning; }, 300'000)) {
        opctl.kill();
        std::fprintf(stderr, "fleet_bench: the fan-out did not finish in 5 min\n");
    }
    f.fanoutS = double(fan.nsecsElapsed()) / 1e9;
    {
        // The tally is the last line: how many answered, and what happened to the others.
        QFile out(fanoutOut);
        if (out.open(QIODevice::ReadOnly)) {
            const QList<QByteArray> lines = out.readAll().trimmed().split('\n');
            const QJsonObject tally = QJsonDocument::fromJson(lines.last()).object();
            f.fanoutAcked = tally.value("acked").toDouble();
            if (opctl.exitCode() != 0)
                std::fprintf(stderr, "fleet_bench: opctl exited %d: %s %s\n", opctl.exitCode(),
                             qPrintable(tally.value("text").toString()),
                             opctl.readAllStandardError().left(300).constData());
        }
    }

    if (console) {
        // Until the window has every outcome (the last of them may trail opctl's tally).
        (void)QTest::qWaitFor([&] { return finishedSeen.size() >= bots; }, 60'000);
        QObject::disconnect(seen);
        f.guiFanout = probe->takePhase();
    }

    stopSims();
    if (console) {
        (void)QTest::qWaitFor([&] { return console->window.fleetModel()->connectedCount() == 0; },
                              120'000);
        f.guiDisconnect = probe->takePhase();
        f.guiP99StallMs = probe->p99();
        for (int i = 0; i < console->backend.size(); ++i)
            f.guiResyncs += double(console->backend.hub(i).stats().resyncs);
    }
    return f;
}

// The figures as a picture: one panel per figure, size on a log axis.
bool drawChart(const std::vector<Figures> &all, const QString &path)
{
    struct Panel
    {
        const char *title;
        double Figures::*value;
        double target; // 0: none
    };
    const Panel panels[] = {
        {"hub memory per idle bot (KB)", &Figures::rssKbPerBot, 20},
        {"hub CPU at idle (% of a core)", &Figures::idleCpuPct, 0},
        {"connect storm (s)", &Figures::connectS, 0},
        {"fan-out ping to all (s)", &Figures::fanoutS, 0},
        {"console max stall (ms)", nullptr, 50},
        {"botsim memory per 10,000 bots (MiB)", nullptr, 200},
    };
    const auto valueOf = [&panels](const Figures &f, int panel) {
        if (panel == 4)
            return f.guiMaxStallMs();
        if (panel == 5)
            return f.simRssMbPer10k();
        return f.*(panels[panel].value);
    };
    const int w = 1500, h = 640;
    QImage image(w, h, QImage::Format_RGB32);
    image.fill(Qt::white);
    QPainter p(&image);
    p.setRenderHint(QPainter::Antialiasing);
    QFont font = p.font();
    font.setPixelSize(13);
    p.setFont(font);
    const int pw = w / 3, ph = h / 2;
    for (int i = 0; i < 6; ++i) {
        if (i == 4 && all.front().guiMaxStallMs() < 0)
            continue; // --no-gui
        const QRect cell((i % 3) * pw, (i / 3) * ph, pw, ph);
        const QRect plot = cell.adjusted(70, 36, -24, -44);
        p.setPen(Qt::black);
        p.drawText(cell.adjusted(0, 8, 0, 0), Qt::AlignHCenter | Qt::AlignTop,
                   QString::fromLatin1(panels[i].title));
        double top = panels[i].target;
        for (const Figures &f : all)
            top = std::max(top, valueOf(f, i));
        // Round ticks (1, 2 or 5 times a power of ten), four or five of them.
        top = top <= 0 ? 1 : top * 1.1;
        const double magnitude = std::pow(10, std::floor(std::log10(top / 4)));
        double step = magnitude;
        for (const double m : {1.0, 2.0, 5.0, 10.0}) {
            step = m * magnitude;
            if (top / step <= 5)
                break;
        }
        const int ticks = int(std::ceil(top / step));
        top = ticks * step;
        p.drawLine(plot.bottomLeft(), plot.bottomRight());
        p.drawLine(plot.bottomLeft(), plot.topLeft());
        for (int t = 0; t <= ticks; ++t) {
            const double v = step * t;
            const int y = plot.bottom() - int(plot.height() * t / ticks);
            p.setPen(QColor(220, 220, 220));
            p.drawLine(plot.left() + 1, y, plot.right(), y);
            p.setPen(Qt::black);
            p.drawText(QRect(cell.left(), y - 8, 64, 16), Qt::AlignRight | Qt::AlignVCenter,
                       QString::number(v, 'g', 3));
        }
        if (panels[i].target > 0) {
            const int y = plot.bottom() - int(plot.height() * panels[i].target / top);
            p.setPen(QPen(QColor(200, 40, 40), 1, Qt::DashLine));
            p.drawLine(plot.left(), y, plot.right(), y);
            p.drawText(plot.right() - 90, y - 4, QStringLiteral("target"));
        }
        // Sizes on a log axis.
        const double lo = std::log10(500.0), hi = std::log10(100'000.0);
        auto xOf = [&](double bots) {
            return plot.left() + int(plot.width() * (std::log10(bots) - lo) / (hi - lo));
        };
        p.setPen(Qt::black);
        for (const int bots : {1000, 10000, 50000}) {
            p.drawText(QRect(xOf(bots) - 40, plot.bottom() + 4, 80, 16), Qt::AlignHCenter,
                       QStringLiteral("%1 bots").arg(bots));
        }
        QPolygonF line;
        for (const Figures &f : all)
            line << QPointF(xOf(f.bots), plot.bottom() - plot.height() * valueOf(f, i) / top);
        p.setPen(QPen(QColor(30, 90, 200), 2));
        p.drawPolyline(line);
        p.setBrush(QColor(30, 90, 200));
        for (const QPointF &pt : std::as_const(line))
            p.drawEllipse(pt, 4, 4);
        p.setBrush(Qt::NoBrush);
    }
    p.end();
    return image.save(path);
}

} // namespace

int main(int argc, char **argv)
{
    if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM"))
        qputenv("QT_QPA_PLATFORM", "offscreen");
    TimedApplication app(argc, argv); // the console's window, and fonts for the chart
    QCommandLineParser parser;
    parser.addHelpOption();
    parser.addOptions({
        {"sizes", "Fleet sizes, comma-separated.", "n,n", "1000,10000,50000"},
        {"heartbeat", "Heartbeat interval told to bots (ms).", "ms", "5000"},
        {"idle", "Seconds of idle measured at each size.", "s", "10"},
        {"chart", "Draw the figures into this PNG.", "file"},
        {"no-gui", "Leave the console's window out (no stall figures)."},
        {"slow-events", "Trace the window's events that take longer than this.", "ms"},
        {"keep-logs", "Keep the hub's log and opctl's output (their directory is said)."},
    });
    parser.process(app);
    std::vector<int> sizes;
    for (const QString &s : parser.value("sizes").split(u',')) {
        bool ok = false;
        const int n = s.toInt(&ok);
        if (!ok || n < 1 || n > 200'000)
            qFatal("bad --sizes");
        sizes.push_back(n);
    }
    const int heartbeat = parser.value("heartbeat").toInt();
    const int idle = parser.value("idle").toInt();
    if (heartbeat < 50 || idle < 1 || idle > 600)
        qFatal("bad --heartbeat or --idle");

    app.slowMs = parser.value("slow-events").toDouble();
    keepLogs = parser.isSet("keep-logs");
    std::vector<Figures> all;
    for (const int bots : sizes) {
        const std::optional<Figures> f = measure(bots, heartbeat, idle, !parser.isSet("no-gui"));
        if (!f)
            return 1;
        const std::string at = "_" + std::to_string(bots);
        printFigure(("hub_rss_kb_per_bot" + at).c_str(), f->rssKbPerBot, "KB");
        printFigure(("hub_idle_cpu_pct" + at).c_str(), f->idleCpuPct, "%");
        printFigure(("connect_storm_s" + at).c_str(), f->connectS, "s");
        printFigure(("fanout_ping_all_s" + at).c_str(), f->fanoutS, "s");
        printFigure(("fanout_acked" + at).c_str(), f->fanoutAcked, "bots");
        printFigure(("botsim_cpu_pct" + at).c_str(), f->simCpuPct, "%");
        printFigure(("botsim_rss_mb" + at).c_str(), f->simRssMb, "MiB");
        printFigure(("botsim_threads" + at).c_str(), f->simThreads, "threads");
        if (f->guiP99StallMs >= 0) {
            const std::pair<const char *, const StallProbe::Phase &> phases[] = {
                {"connect", f->guiConnect},
                {"fanout", f->guiFanout},
                {"disconnect", f->guiDisconnect}};
            for (const auto &[name, phase] : phases) {
                const std::string suffix = std::string("_") + name + at;
                printFigure(("gui_max_stall_ms" + suffix).c_str(), phase.maxStallMs, "ms");
                printFigure(("gui_max_stall_busy_ms" + suffix).c_str(), phase.busyMs, "ms");
                printFigure(("gui_max_busy_ms" + suffix).c_str(), phase.maxBusyMs, "ms");
            }
            printFigure(("gui_p99_stall_ms" + at).c_str(), f->guiP99StallMs, "ms");
            printFigure(("gui_resyncs" + at).c_str(), f->guiResyncs, "resyncs");
            if (!f->guiSawFleet)
                std::fprintf(stderr, "fleet_bench: the window did not count all %d bots\n", bots);
        }
        app.printSlow();
        all.push_back(*f);
    }
    if (parser.isSet("chart") && !drawChart(all, parser.value("chart")))
        return 1;
    return 0;
}
