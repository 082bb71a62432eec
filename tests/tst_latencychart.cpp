// The latency chart alone, under the offscreen platform, fed CommandOutcomes built by hand:
// percentiles, the time window, the scope, late answers, the memory bound, painting.
// LATENCYCHART_PNG_DIR=dir saves what paintsAtEverySize draws there, to look at.
#include "fleetmodel.h"
#include "fleetpanel.h"
#include "latencychart.h"

#include <QComboBox>
#include <QDateTime>
#include <QDir>
#include <QImage>
#include <QPainter>
#include <QRandomGenerator>
#include <QSettings>
#include <QStandardPaths>
#include <QTableView>
#include <QTest>

#include <algorithm>

using namespace opconsole;
using namespace std::chrono;

namespace {

// The chart's clock in every test: a fixed wall time, so windows are exact.
constexpr qint64 NowMs = 1'750'000'000'000;

int serial = 0;

// A command of `kind` to `bot` that took `latency` and was answered `ageMs` before NowMs.
// late: it expired first (timeout 10 ms) and the answer came as a late ack.
CommandOutcome answered(const QString &bot, const QString &kind,
                        duration<double, std::milli> latency, qint64 ageMs = 1000,
                        bool late = false)
{
    CommandOutcome o;
    o.commandId = QStringLiteral("c-%1").arg(++serial);
    o.botId = bot;
    o.kind = kind;
    const auto took = duration_cast<nanoseconds>(latency);
    o.registeredAt = Clock::now() - hours(3);
    o.sentAt = o.registeredAt + 1ms;
    o.registeredWallMs = NowMs - ageMs - 1 - duration_cast<milliseconds>(took).count();
    if (late) {
        o.state = CommandState::Expired;
        o.deadline = o.sentAt + 10ms;
        o.finishedAt = o.deadline;
        o.lateAck = CommandAckData{};
        o.lateAck->success = true;
        o.lateAckAt = o.sentAt + took;
        o.event = ChangeEvent::LateAck;
    } else {
        o.state = CommandState::Acked;
        o.ack = CommandAckData{};
        o.ack->success = true;
        o.deadline = o.sentAt + hours(1);
        o.finishedAt = o.sentAt + took;
        o.event = ChangeEvent::Finished;
    }
    return o;
}

void fixClock(LatencyChart &chart)
{
    chart.setClock([] { return NowMs; });
}

// The tooltips of every row, top to bottom (one per row of pixels that has one).
QStringList rowTips(const LatencyChart &chart)
{
    QStringList tips;
    for (int y = 0; y < chart.height(); ++y) {
        const QString tip = chart.toolTipAt(QPoint(chart.width() / 3, y));
        if (tip.startsWith("<b>") && (tips.isEmpty() || tips.last() != tip))
            tips << tip;
    }
    return tips;
}

// Something like a real fleet: fast pings, slow restarts with a long tail, a few late answers,
// spread over the last hour.
QList<CommandOutcome> fleetDay()
{
    struct Kind
    {
        const char *name;
        double medianMs;
        double spread;
        int count;
    };
    const Kind kinds[] = {{"start", 45, 0.6, 400},    {"stop", 30, 0.5, 380},
                          {"restart", 420, 1.0, 250}, {"pause", 12, 0.4, 90},
                          {"resume", 14, 0.4, 85},    {"ping", 1.8, 0.7, 2000},
                          {"config", 22, 0.8, 60},    {"custom", 160, 1.2, 40}};
    QRandomGenerator rng(42);
    QList<CommandOutcome> records;
    for (const Kind &k : kinds) {
        for (int i = 0; i < k.count; ++i) {
            const double z =
                rng.generateDouble() + rng.generateDouble() + rng.generateDouble() - 1.5;
            const double ms = k.medianMs * std::exp(k.spread * 2 * z);
            const qint64 age = qint64(rng.bounded(3'590'000));
            records << answered(QStringLiteral("bot-%1").arg(rng.bounded(50), 2, 10, QChar('0')),
                                k.name, duration<double, std::milli>(ms), age,
                                ms > 2 * k.medianMs * 4 && rng.bounded(3) == 0);
        }
    }
    return records;
}

} // namespace

class TestLatencyChart : public QObject
{
    Q_OBJECT

private slots:
    void initTestCase() { QStandardPaths::setTestModeEnabled(true); }
    void percentilesOfKnownInputs();
    void kindsInSendPanelOrder();
    void windowCountsOnlyItsAnswers();
    void windowComboAndSettings();
    void scopeIsTheSelection();
    void fleetPanelSelectionScopesTheChart();
    void lateAnswersCountedOnceEach();
    void memoryIsBounded();
    void cheapAtFleetScale();
    void tooltipsGiveTheFigures();
    void paintsAtEverySize();
};

void TestLatencyChart::percentilesOfKnownInputs()
{
    LatencyChart chart;
    fixClock(chart);
    QList<CommandOutcome> records;
    for (int ms = 1; ms <= 100; ++ms)
        records << answered("bot-a", "ping", milliseconds(ms));
    std::shuffle(records.begin(), records.end(), *QRandomGenerator::global());
    chart.add(records);
    const LatencyChart::Figures f = chart.figures("ping");
    QCOMPARE(f.samples, 100);
    QCOMPARE(f.late, 0);
    QCOMPARE(f.p50Ms, 50.0);
    QCOMPARE(f.p95Ms, 95.0);
    QCOMPARE(f.p99Ms, 99.0);
    QCOMPARE(chart.figures("restart").samples, 0);

    // One answer is every percentile; sub-millisecond answers keep their fraction.
    chart.add({answered("bot-a", "stop", microseconds(250))});
    const LatencyChart::Figures one = chart.figures("stop");
    QCOMPARE(one.samples, 1);
    QVERIFY(qAbs(one.p50Ms - 0.25) < 1e-6);
    QCOMPARE(one.p99Ms, one.p50Ms);

    // Commands that were never answered have no latency.
    CommandOutcome expired = answered("bot-a", "ping", 5ms);
    expired.state = CommandState::Expired;
    expired.ack.reset();
    CommandOutcome pending = answered("bot-a", "ping", 5ms);
    pending.state = CommandState::Pending;
    pending.ack.reset();
    pending.finishedAt = {};
    chart.add({expired, pending});
    QCOMPARE(chart.figures("ping").samples, 100);
}

void TestLatencyChart::kindsInSendPanelOrder()
{
    LatencyChart chart;
    fixClock(chart);
    chart.add({answered("b", "zeta", 1ms), answered("b", "custom", 1ms),
               answered("b", "restart", 1ms), answered("b", "start", 1ms),
               answered("b", "alpha", 1ms)});
    QCOMPARE(chart.kinds(), QStringList({"start", "restart", "custom", "alpha", "zeta"}));
}

void TestLatencyChart::windowCountsOnlyItsAnswers()
{
    LatencyChart chart;
    fixClock(chart);
    QCOMPARE(chart.windowMs(), LatencyChart::FiveMinutesMs);
    QList<CommandOutcome> records;
    for (int i = 0; i < 10; ++i) // a minute ago: in both windows
        records << answered("bot-a", "restart", milliseconds(10), 60'000);
    for (int i = 0; i < 20; ++i) // 5 minutes and a second ago: in the hour only
        records << answered("bot-a", "restart", milliseconds(1000), 301'000);
    for (int i = 0; i < 5; ++i) // two hours ago: in no window, not even kept
        records << answered("bot-a", "restart", milliseconds(5), 7'200'000);
    chart.add(records);
    QCOMPARE(chart.sampleCount(), 30);
    LatencyChart::Figures f = chart.figures("restart");
    QCOMPARE(f.samples, 10);
    QCOMPARE(f.p99Ms, 10.0);

    chart.setWindowMs(LatencyChart::OneHourMs);
    f = chart.figures("restart");
    QCOMPARE(f.samples, 30);
    QCOMPARE(f.p50Ms, 1000.0);
    QCOMPARE(f.p99Ms, 1000.0);

    // Time moves on: 56 minutes later the first ten are the hour's only answers; 2 hours
    // later there are none, and none are kept.
    qint64 later = NowMs + 56 * 60'000;
    chart.setClock([&] { return later; });
    QCOMPARE(chart.figures("restart").samples, 10);
    later = NowMs + 2 * 3'600'000;
    QCOMPARE(chart.figures("restart").samples, 0);
    QVERIFY(chart.kinds().isEmpty());
    chart.add({answered("bot-a", "ping", 1ms)}); // (an add drops the old ones at once)
    QCOMPARE(chart.sampleCount(), 0);            // that one is two hours old by now too
}

void TestLatencyChart::windowComboAndSettings()
{
    LatencyChart chart;
    auto *box = chart.findChild<QComboBox *>("latencyWindow");
    QVERIFY(box);
    QCOMPARE(box->count(), 2);
    QCOMPARE(box->currentIndex(), 0);
    box->setCurrentIndex(1);
    QCOMPARE(chart.windowMs(), LatencyChart::OneHourMs);
    chart.setWindowMs(LatencyChart::FiveMinutesMs);
    QCOMPARE(box->currentIndex(), 0);
    chart.setWindowMs(123); // anything else: the nearest
    QCOMPARE(chart.windowMs(), LatencyChart::FiveMinutesMs);

    QSettings().remove(QStringLiteral("fleet"));
    {
        FleetPanel panel([](const QString &) { return 0; });
        QCOMPARE(panel.chart()->windowMs(), LatencyChart::FiveMinutesMs);
        panel.chart()->findChild<QComboBox *>("latencyWindow")->setCurrentIndex(1);
        panel.saveSettings();
    }
    FleetPanel again([](const QString &) { return 0; });
    again.loadSettings();
    QCOMPARE(again.chart()->windowMs(), LatencyChart::OneHourMs);
    QSettings().remove(QStringLiteral("fleet"));
}

void TestLatencyChart::scopeIsTheSelection()
{
    LatencyChart chart;
    fixClock(chart);
    QList<CommandOutcome> records;
    for (int i = 0; i < 10; ++i) {
        records << answered("bot-a", "start", milliseconds(1));
        records << answered("bot-b", "start", milliseconds(100));
        records << answered("bot-c", "stop", milliseconds(7));
    }
    chart.add(records);
    QCOMPARE(chart.title(), QString("Ack latency, all bots"));
    QCOMPARE(chart.figures("start").samples, 20);

    chart.setBots({"bot-b"});
    QCOMPARE(chart.title(), QString("Ack latency, selected 1 bot"));
    QCOMPARE(chart.figures("start").samples, 10);
    QCOMPARE(chart.figures("start").p50Ms, 100.0);
    QCOMPARE(chart.kinds(), QStringList({"start"}));

    chart.setBots({"bot-a", "bot-c", "bot-unknown"});
    QCOMPARE(chart.title(), QString("Ack latency, selected 3 bots"));
    QCOMPARE(chart.figures("start").p99Ms, 1.0);
    QCOMPARE(chart.figures("stop").samples, 10);
    // A selected bot's later answers count too.
    chart.add({answered("bot-unknown", "stop", 9ms)});
    QCOMPARE(chart.figures("stop").samples, 11);

    chart.setBots({"bot-nobody"});
    QVERIFY(chart.kinds().isEmpty());
    chart.setBots({});
    QCOMPARE(chart.figures("start").samples, 20);
}

void TestLatencyChart::fleetPanelSelectionScopesTheChart()
{
    FleetPanel panel([](const QString &) { return 0; });
    QList<BotInfo> bots;
    for (const char *id : {"bot-a", "bot-b", "bot-c"}) {
        BotInfo b;
        b.botId = id;
        b.connected = true;
        bots << b;
    }
    panel.upsert(bots);
    panel.chart()->setClock([] { return NowMs; });
    panel.apply({answered("bot-a", "ping", 1ms), answered("bot-b", "ping", 2ms),
                 answered("bot-c", "ping", 3ms)});
    QCOMPARE(panel.chart()->figures("ping").samples, 3);
    panel.selectBots({"bot-b", "bot-c"});
    QCOMPARE(panel.chart()->title(), QString("Ack latency, selected 2 bots"));
    QCOMPARE(panel.chart()->figures("ping").samples, 2);
    QCOMPARE(panel.chart()->figures("ping").p50Ms, 2.0);
    panel.selectBots({});
    QCOMPARE(panel.chart()->title(), QString("Ack latency, all bots"));
    QCOMPARE(panel.chart()->figures("ping").samples, 3);

    // Under the table at the panel's usual size: its own height, at most 180 px.
    panel.resize(530, 860);
    panel.show();
    QVERIFY(QTest::qWaitForWindowExposed(&panel));
    const int height = panel.chart()->height();
    QVERIFY2(height >= panel.chart()->minimumSizeHint().height() && height <= 180,
             qPrintable(QString::number(height)));
    QVERIFY(panel.view()->height() > 500);
    const QString dir = qEnvironmentVariable("LATENCYCHART_PNG_DIR");
    if (!dir.isEmpty())
        QVERIFY(panel.grab().save(QDir(dir).filePath("fleetpanel.png")));
}

void TestLatencyChart::lateAnswersCountedOnceEach()
{
    LatencyChart chart;
    fixClock(chart);
    // An expired command: no answer yet, then its late ack (the same command's next record).
    CommandOutcome late = answered("bot-a", "restart", 900ms, 1000, true);
    CommandOutcome expired = late;
    expired.lateAck.reset();
    expired.lateAckAt = {};
    expired.event = ChangeEvent::Finished;
    chart.add({expired});
    QCOMPARE(chart.figures("restart").samples, 0);
    chart.add({late});
    LatencyChart::Figures f = chart.figures("restart");
    QCOMPARE(f.samples, 1);
    QCOMPARE(f.late, 1);
    QCOMPARE(f.p50Ms, 900.0);
    // A late rejection is an answer too.
    CommandOutcome rejectedLate = answered("bot-a", "restart", 300ms, 1000, true);
    rejectedLate.lateAck->success = false;
    chart.add({rejectedLate, answered("bot-a", "restart", 20ms)});
    f = chart.figures("restart");
    QCOMPARE(f.samples, 3);
    QCOMPARE(f.late, 2);
    // The same records again (a resync, a restore): nothing more.
    chart.add({late, rejectedLate});
    QCOMPARE(chart.figures("restart").samples, 3);
    QCOMPARE(chart.sampleCount(), 3);
    // The same id from another hub is another command.
    late.hub = QStringLiteral("hub2:50052");
    chart.add({late});
    QCOMPARE(chart.figures("restart").samples, 4);
}

void TestLatencyChart::memoryIsBounded()
{
    LatencyChart chart;
    fixClock(chart);
    constexpr int Batch = 10'000;
    const int total = LatencyChart::MaxSamples + 2 * Batch;
    for (int done = 0; done < total; done += Batch) {
        QList<CommandOutcome> batch;
        batch.reserve(Batch);
        // The first two batches are slow; the newest MaxSamples are fast.
        for (int i = 0; i < Batch; ++i)
            batch << answered(QStringLiteral("bot-%1").arg(i % 500), "ping",
                              milliseconds(done < 2 * Batch ? 5000 : 2), 10'000);
        chart.add(batch);
        QVERIFY(chart.sampleCount() <= LatencyChart::MaxSamples);
    }
    QCOMPARE(chart.sampleCount(), LatencyChart::MaxSamples);
    const LatencyChart::Figures f = chart.figures("ping");
    QCOMPARE(f.samples, LatencyChart::MaxSamples);
    QCOMPARE(f.p99Ms, 2.0); // the oldest went first
}

void TestLatencyChart::cheapAtFleetScale()
{
    // 50,000 bots answering in batches of 5,000: add() is O(batch), a computation one pass.
    LatencyChart chart;
    fixClock(chart);
    QRandomGenerator rng(7);
    const char *kinds[] = {"start", "stop", "restart", "ping"};
    for (int b = 0; b < 40; ++b) {
        QList<CommandOutcome> batch;
        for (int i = 0; i < 5000; ++i)
            batch << answered(QStringLiteral("bot-%1").arg(rng.bounded(50'000)), kinds[i % 4],
                              milliseconds(1 + rng.bounded(2000)), rng.bounded(3'000'000));
        chart.add(batch);
    }
    QCOMPARE(chart.sampleCount(), 200'000);
    QStringList selected;
    for (int i = 0; i < 20'000; ++i)
        selected << QStringLiteral("bot-%1").arg(i);
    chart.setWindowMs(LatencyChart::OneHourMs);
    const int all = chart.figures("ping").samples;
    chart.setBots(selected);
    const int some = chart.figures("ping").samples;
    QVERIFY(some > 0 && some < all);
    chart.resize(1024, 180);
    QVERIFY(!chart.grab().isNull());
    // How long each takes: bench/gui_bench --chart (docs/performance.md), not here.
}

void TestLatencyChart::tooltipsGiveTheFigures()
{
    LatencyChart chart;
    fixClock(chart);
    QList<CommandOutcome> records;
    for (int ms = 1; ms <= 100; ++ms)
        records << answered("bot-a", "ping", milliseconds(ms));
    records << answered("bot-a", "restart", 2500ms, 1000, true);
    chart.add(records);
    chart.resize(520, 170);
    const QStringList tips = rowTips(chart);
    QCOMPARE(tips.size(), 2);
    QVERIFY2(tips[0].contains("<b>restart</b>") && tips[0].contains("p50 2.50 s") &&
                 tips[0].contains("1 of them late"),
             qPrintable(tips[0]));
    QVERIFY2(tips[1].contains("<b>ping</b>, all bots, last 5 minutes") &&
                 tips[1].contains("p50 50 ms · p95 95 ms · p99 99 ms") &&
                 tips[1].contains("100 answers"),
             qPrintable(tips[1]));
    // Elsewhere: what the chart shows.
    QVERIFY(chart.toolTipAt(QPoint(5, 5)).contains("p50"));
}

void TestLatencyChart::paintsAtEverySize()
{
    const QString dir = qEnvironmentVariable("LATENCYCHART_PNG_DIR");
    const auto save = [&](const QImage &image, const QString &name) {
        QVERIFY(!image.isNull());
        if (!dir.isEmpty())
            QVERIFY(image.save(QDir(dir).filePath(name + ".png")));
    };
    // Draws the chart at a size and a device pixel ratio, as the screen would.
    const auto render = [](LatencyChart &chart, QSize size, qreal dpr) {
        chart.resize(size);
        QImage image(size * dpr, QImage::Format_ARGB32_Premultiplied);
        image.setDevicePixelRatio(dpr);
        image.fill(Qt::transparent);
        chart.render(&image);
        return image;
    };

    LatencyChart empty;
    fixClock(empty);
    save(render(empty, {520, 170}, 1), "empty");
    empty.setBots({"bot-01", "bot-02"});
    save(render(empty, {520, 170}, 1), "empty-selected");

    LatencyChart chart;
    fixClock(chart);
    chart.add(fleetDay());
    QCOMPARE(chart.kinds().size(), 8);
    save(render(chart, chart.sizeHint(), 1), "hint-5min");
    save(render(chart, {1024, 180}, 1), "wide-5min");
    chart.setWindowMs(LatencyChart::OneHourMs);
    save(chart.grab().toImage(), "grab");
    save(render(chart, {1024, 180}, 1), "wide-hour");
    save(render(chart, {1024, 180}, 2), "wide-hour-2x");
    save(render(chart, {520, 170}, 1), "panel-hour");
    save(render(chart, {520, 300}, 1), "panel-tall");
    save(render(chart, chart.minimumSizeHint(), 1), "minimum");
    save(render(chart, {200, 40}, 1), "tiny"); // below its minimum: nothing breaks
    chart.setBots({"bot-03", "bot-07", "bot-11"});
    save(render(chart, {520, 170}, 2), "selected-2x");

    // A dark palette: the text follows it.
    QPalette dark;
    dark.setColor(QPalette::Window, QColor(0x2b, 0x2b, 0x2b));
    dark.setColor(QPalette::WindowText, QColor(0xe0, 0xe0, 0xe0));
    dark.setColor(QPalette::Base, QColor(0x1e, 0x1e, 0x1e));
    dark.setColor(QPalette::Text, QColor(0xe0, 0xe0, 0xe0));
    dark.setColor(QPalette::Button, QColor(0x3a, 0x3a, 0x3a));
    dark.setColor(QPalette::ButtonText, QColor(0xe0, 0xe0, 0xe0));
    dark.setColor(QPalette::Mid, QColor(0x60, 0x60, 0x60));
    dark.setColor(QPalette::Highlight, QColor(0x3d, 0x8e, 0xe0));
    chart.setBots({});
    chart.setPalette(dark);
    save(render(chart, {1024, 180}, 1), "dark-wide");
    save(render(chart, {520, 170}, 1), "dark-panel");
}

QTEST_MAIN(TestLatencyChart)
#include "tst_latencychart.moc"
