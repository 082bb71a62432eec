#include "latencychart.h"

#include "commandspec.h"

#include <QComboBox>
#include <QDateTime>
#include <QHelpEvent>
#include <QLocale>
#include <QPainter>
#include <QPainterPath>
#include <QTimer>
#include <QToolTip>

#include <algorithm>
#include <cmath>

namespace opconsole {

namespace {

constexpr int Margin = 3;
constexpr int TickLength = 3;
constexpr int ColumnGap = 10;
constexpr int MaxKinds = 64;        // more distinct kinds than this are counted as "other"
constexpr qint64 RecomputeMs = 250; // at most 4 computations a second while samples arrive
constexpr qint64 StaleMs = 2'000;   // and one every 2 s as time moves the window along
constexpr int TrendMinWidth = 760;  // narrower: no p95-over-time column
constexpr double FloorMs = 0.01;    // the axis never goes below 10 µs
constexpr double CeilingMs = 1e6;   // nor above 1000 s

// Nearest rank: the smallest value with at least q of the values at or below it, so 1..100
// gives p50 = 50, p95 = 95, p99 = 99.
size_t rank(size_t n, double q)
{
    const auto k = size_t(std::ceil(q * double(n)));
    return std::clamp<size_t>(k, 1, n) - 1;
}

// p50, p95 and p99 of [first, last) (reordered): nth_element on shrinking prefixes, O(n).
void percentiles(float *first, float *last, double *p50, double *p95, double *p99)
{
    const size_t n = size_t(last - first);
    const size_t k99 = rank(n, 0.99), k95 = rank(n, 0.95), k50 = rank(n, 0.50);
    std::nth_element(first, first + k99, last);
    *p99 = first[k99];
    // Everything before k99 is at most first[k99]: the lower ranks are in that prefix.
    if (k95 < k99)
        std::nth_element(first, first + k95, first + k99);
    *p95 = first[k95];
    if (k50 < k95)
        std::nth_element(first, first + k50, first + k95);
    *p50 = first[k50];
}

float p95Of(float *first, float *last)
{
    const size_t k = rank(size_t(last - first), 0.95);
    std::nth_element(first, first + k, last);
    return first[k];
}

// "0.42 ms", "12.3 ms", "480 ms", "1.25 s", "12.5 s".
QString formatMs(double ms)
{
    if (ms < 1)
        return QStringLiteral("%1 ms").arg(ms, 0, 'f', 2);
    if (ms < 10)
        return QStringLiteral("%1 ms").arg(ms, 0, 'f', 1);
    if (ms < 1000)
        return QStringLiteral("%1 ms").arg(ms, 0, 'f', 0);
    if (ms < 10'000)
        return QStringLiteral("%1 s").arg(ms / 1000, 0, 'f', 2);
    return QStringLiteral("%1 s").arg(ms / 1000, 0, 'f', 1);
}

// A decade tick's label: the axis is titled "ms", seconds say so.
QString tickLabel(double ms)
{
    if (ms < 1)
        return QString::number(ms, 'g', 2);
    if (ms < 1000)
        return QString::number(qint64(std::lround(ms)));
    return QStringLiteral("%1 s").arg(qint64(std::lround(ms / 1000)));
}

QString selectedBotsText(qsizetype bots)
{
    return bots == 1 ? LatencyChart::tr("1 selected bot")
                     : LatencyChart::tr("%1 selected bots").arg(QLocale().toString(bots));
}

QString windowName(qint64 ms)
{
    return ms == LatencyChart::OneHourMs ? LatencyChart::tr("last hour")
                                         : LatencyChart::tr("last 5 minutes");
}

} // namespace

LatencyChart::LatencyChart(QWidget *parent) : QWidget(parent)
{
    setSizePolicy(QSizePolicy::Preferred, QSizePolicy::Preferred);
    m_windowBox = new QComboBox(this);
    m_windowBox->setObjectName(QStringLiteral("latencyWindow"));
    m_windowBox->addItem(tr("Last 5 minutes"), FiveMinutesMs);
    m_windowBox->addItem(tr("Last hour"), OneHourMs);
    m_windowBox->setSizeAdjustPolicy(QComboBox::AdjustToContents);
    m_windowBox->setToolTip(tr("The answers the chart counts: those of the last 5 minutes or "
                               "of the last hour"));
    connect(m_windowBox, &QComboBox::currentIndexChanged, this,
            [this](int index) { setWindowMs(m_windowBox->itemData(index).toLongLong()); });

    auto *timer = new QTimer(this);
    timer->setInterval(int(RecomputeMs));
    connect(timer, &QTimer::timeout, this, [this, ticks = 0]() mutable {
        // Every 10 s, answers older than the longest window go (most already went in add(),
        // from the front; these are the ones that arrived out of order).
        if (++ticks % 40 == 0) {
            const qint64 oldest = now() - OneHourMs;
            if (std::any_of(m_samples.cbegin(), m_samples.cend(),
                            [&](const Sample &s) { return s.wallMs < oldest; }))
                dropOlderThan(oldest);
        }
        if (isVisible() && refresh(false))
            update();
    });
    timer->start();
}

void LatencyChart::setClock(std::function<qint64()> nowMs)
{
    m_nowMs = std::move(nowMs);
    m_changed = true;
}

qint64 LatencyChart::now() const
{
    return m_nowMs ? m_nowMs() : QDateTime::currentMSecsSinceEpoch();
}

quint32 LatencyChart::internBot(const QString &botId)
{
    const auto it = m_botIndex.constFind(botId);
    if (it != m_botIndex.cend())
        return *it;
    const auto index = quint32(m_botNames.size());
    m_botNames.append(botId);
    m_botIndex.insert(botId, index);
    return index;
}

quint16 LatencyChart::internKind(const QString &kind)
{
    const auto it = m_kindIndex.constFind(kind);
    if (it != m_kindIndex.cend())
        return *it;
    if (m_kindNames.size() >= MaxKinds - 1 && kind != QLatin1String("other"))
        return internKind(QStringLiteral("other"));
    const auto index = quint16(m_kindNames.size());
    m_kindNames.append(kind);
    m_kindIndex.insert(kind, index);
    return index;
}

void LatencyChart::add(const QList<CommandOutcome> &records)
{
    const qint64 t = now();
    const qint64 oldest = t - OneHourMs;
    for (const CommandOutcome &o : records) {
        const auto answeredIn = o.answeredIn();
        if (!answeredIn || !o.finished())
            continue;
        // Acked or rejected is in time; an answer to anything else came after its deadline.
        const bool late = !o.answered();
        // A record without a wall time (none should come) counts as answered now, and so does
        // one from the future (a hub whose clock is ahead): it would never age out.
        const qint64 at =
            o.registeredWallMs > 0 ? std::min(t, o.wallMs(late ? o.lateAckAt : o.finishedAt)) : t;
        if (at < oldest)
            continue;
        // Each command once: its records come again on a resync, and a late ack's record is
        // the only one with an answer.
        const size_t key = qHashMulti(0, o.hub, o.commandId);
        const qsizetype seen = m_seen.size();
        m_seen.insert(key);
        if (m_seen.size() == seen)
            continue;
        Sample s;
        s.wallMs = at;
        s.ms = float(std::max(0.0, double(answeredIn->count()) / 1e6));
        s.bot = internBot(o.botId);
        s.kind = internKind(o.kind);
        s.late = late;
        s.key = key;
        m_samples.push_back(s);
        m_dirty = true;
    }
    // The oldest go first: past the cap, or past the longest window (mostly at the front, as
    // answers arrive in time order; those behind it go in the timer).
    while (m_samples.size() > size_t(MaxSamples) ||
           (!m_samples.empty() && m_samples.front().wallMs < oldest)) {
        m_seen.remove(m_samples.front().key);
        m_samples.pop_front();
    }
}

void LatencyChart::dropOlderThan(qint64 oldest)
{
    const auto end = std::remove_if(m_samples.begin(), m_samples.end(), [&](const Sample &s) {
        if (s.wallMs >= oldest)
            return false;
        m_seen.remove(s.key);
        return true;
    });
    m_samples.erase(end, m_samples.end()); // (all out of every window: no figure changes)
    // Bots come and go: forget the names no sample refers to once there are many of them.
    if (m_botNames.size() > MaxSamples) {
        QStringList names;
        QHash<QString, quint32> index;
        for (Sample &s : m_samples) {
            const QString &name = m_botNames.at(s.bot);
            auto it = index.find(name);
            if (it == index.end()) {
                it = index.insert(name, quint32(names.size()));
                names.append(name);
            }
            s.bot = *it;
        }
        m_botNames = std::move(names);
        m_botIndex = std::move(index);
    }
}

void LatencyChart::setWindowMs(qint64 ms)
{
    ms = ms < (FiveMinutesMs + OneHourMs) / 2 ? FiveMinutesMs : OneHourMs;
    {
        const QSignalBlocker blocker(m_windowBox);
        m_windowBox->setCurrentIndex(m_windowBox->findData(ms));
    }
    if (ms == m_windowMs)
        return;
    m_windowMs = ms;
    m_changed = true;
    update();
    emit windowChanged(ms);
}

void LatencyChart::setBots(const QStringList &botIds)
{
    m_scopeList = botIds;
    m_scope = QSet<QString>(botIds.cbegin(), botIds.cend());
    m_changed = true;
    update();
}

bool LatencyChart::refresh(bool urgent) const
{
    // New samples wait for the next quarter second (unless urgent); a new window, scope or
    // clock is shown at once (an operator's doing); time moving on every StaleMs.
    const qint64 t = now();
    const bool timeMoved = t - m_computedAtMs >= StaleMs || t < m_computedAtMs;
    const bool due =
        !m_sinceCompute.isValid() || m_changed || timeMoved ||
        (m_dirty && (urgent || m_sinceCompute.elapsed() >= RecomputeMs - RecomputeMs / 5));
    if (due)
        compute(t);
    return due;
}

void LatencyChart::compute(qint64 t) const
{
    m_dirty = m_changed = false;
    m_computedAtMs = t;
    m_sinceCompute.start();
    const qint64 from = t - m_windowMs;
    // p95 over time: 30 buckets of 10 s over 5 minutes, 60 of a minute over an hour.
    const int buckets = m_windowMs == OneHourMs ? 60 : 30;
    const auto bucketOf = [&](qint64 wallMs) {
        return int(std::clamp<qint64>((wallMs - from) * buckets / m_windowMs, 0, buckets - 1));
    };
    // The scope as a flag per bot index: one look-up per sample, not a hash.
    const bool scoped = !m_scope.isEmpty();
    std::vector<char> inScope;
    if (scoped) {
        inScope.assign(size_t(m_botNames.size()), 0);
        for (const QString &bot : m_scope)
            if (const auto it = m_botIndex.constFind(bot); it != m_botIndex.cend())
                inScope[*it] = 1;
    }
    const auto counted = [&](const Sample &s) {
        return s.wallMs >= from && (!scoped || inScope[s.bot]);
    };

    // Counting sort by (kind, bucket): one pass to count, one to place, so every kind's values
    // are contiguous and within them every bucket's; no sort.
    const size_t kinds = size_t(m_kindNames.size());
    std::vector<int> offsets(kinds * size_t(buckets) + 1, 0);
    std::vector<int> late(kinds, 0);
    for (const Sample &s : m_samples) {
        if (!counted(s))
            continue;
        ++offsets[size_t(s.kind) * size_t(buckets) + size_t(bucketOf(s.wallMs)) + 1];
        late[s.kind] += s.late ? 1 : 0;
    }
    for (size_t i = 1; i < offsets.size(); ++i)
        offsets[i] += offsets[i - 1];
    std::vector<float> values(size_t(offsets.back()));
    std::vector<int> next(offsets.begin(), offsets.end() - 1);
    for (const Sample &s : m_samples)
        if (counted(s))
            values[size_t(next[size_t(s.kind) * size_t(buckets) + size_t(bucketOf(s.wallMs))]++)] =
                s.ms;

    m_rows.clear();
    m_total = int(values.size());
    m_totalLate = 0;
    for (size_t k = 0; k < kinds; ++k) {
        const int begin = offsets[k * size_t(buckets)], end = offsets[(k + 1) * size_t(buckets)];
        if (begin == end)
            continue;
        Row row;
        row.kind = m_kindNames.at(qsizetype(k));
        row.trend.assign(size_t(buckets), -1);
        // The buckets first: the kind's percentiles below reorder across them.
        for (int b = 0; b < buckets; ++b) {
            const int b0 = offsets[k * size_t(buckets) + size_t(b)];
            const int b1 = offsets[k * size_t(buckets) + size_t(b) + 1];
            if (b0 < b1)
                row.trend[size_t(b)] = p95Of(values.data() + b0, values.data() + b1);
        }
        percentiles(values.data() + begin, values.data() + end, &row.f.p50Ms, &row.f.p95Ms,
                    &row.f.p99Ms);
        row.f.samples = end - begin;
        row.f.late = late[k];
        m_totalLate += late[k];
        m_rows.append(std::move(row));
    }
    // The command kinds in the order the send panel lists them, then any other by name.
    const QStringList order = CommandSpec::kindNames();
    std::sort(m_rows.begin(), m_rows.end(), [&](const Row &a, const Row &b) {
        const auto ia = order.indexOf(a.kind), ib = order.indexOf(b.kind);
        const auto ra = ia < 0 ? order.size() : ia, rb = ib < 0 ? order.size() : ib;
        return ra != rb ? ra < rb : a.kind < b.kind;
    });

    // The axis: whole decades around every row's p50 to p99, at least two of them.
    double lo = CeilingMs, hi = FloorMs;
    for (const Row &row : std::as_const(m_rows)) {
        lo = std::min(lo, row.f.p50Ms);
        hi = std::max(hi, row.f.p99Ms);
    }
    if (m_rows.isEmpty())
        lo = 1, hi = 1000;
    // A p50 on a decade still gets a bar; a p99 on one stays inside the axis.
    double minDecade = std::floor(std::log10(std::clamp(lo * 0.8, FloorMs, CeilingMs)));
    double maxDecade = std::ceil(std::log10(std::clamp(hi * 1.05, FloorMs, CeilingMs)));
    while (maxDecade - minDecade < 2) {
        if (maxDecade < std::log10(CeilingMs))
            ++maxDecade;
        else
            --minDecade;
    }
    m_axisMinMs = std::pow(10.0, minDecade);
    m_axisMaxMs = std::pow(10.0, maxDecade);
}

LatencyChart::Figures LatencyChart::figures(const QString &kind) const
{
    refresh(true);
    for (const Row &row : std::as_const(m_rows))
        if (row.kind == kind)
            return row.f;
    return {};
}

QStringList LatencyChart::kinds() const
{
    refresh(true);
    QStringList kinds;
    for (const Row &row : std::as_const(m_rows))
        kinds.append(row.kind);
    return kinds;
}

QString LatencyChart::title() const
{
    if (m_scope.isEmpty())
        return tr("Ack latency, all bots");
    return m_scope.size() == 1
               ? tr("Ack latency, selected 1 bot")
               : tr("Ack latency, selected %1 bots").arg(QLocale().toString(m_scope.size()));
}

QSize LatencyChart::sizeHint() const
{
    // Room for a row per command kind (8) at the usual font, no more than 180 px: the chart
    // shares the fleet panel with the table. The panel's splitter gives it more if need be.
    const int line = fontMetrics().height();
    const int titleHeight = std::max(line, m_windowBox->sizeHint().height());
    return {520, std::min(180, 2 * Margin + titleHeight + 2 + 8 * line + line + TickLength)};
}

QSize LatencyChart::minimumSizeHint() const
{
    const int line = fontMetrics().height();
    const int titleHeight = std::max(line, m_windowBox->sizeHint().height());
    return {300, 2 * Margin + titleHeight + 2 + 2 * line + line + TickLength};
}

void LatencyChart::resizeEvent(QResizeEvent *)
{
    placeWindowBox();
}

void LatencyChart::placeWindowBox()
{
    // At the right end of the title line.
    const QSize box = m_windowBox->sizeHint();
    m_windowBox->setGeometry(width() - Margin - box.width(), Margin, box.width(), box.height());
}

LatencyChart::Geometry LatencyChart::geometry() const
{
    const QFontMetrics fm = fontMetrics();
    const int line = fm.height();
    Geometry g;
    const int titleHeight = std::max(line, m_windowBox->sizeHint().height());
    g.title = QRect(Margin, Margin, std::max(0, m_windowBox->x() - 2 * Margin), titleHeight);
    g.rowsTop = g.title.bottom() + 1 + 2;
    const int axisHeight = line + TickLength;
    const int room = std::max(0, height() - Margin - axisHeight - g.rowsTop);
    const int rows = int(m_rows.size());
    // Rows between one line and one line and a half high; those that do not fit are summed up
    // in the last line.
    g.rowHeight = std::clamp(rows > 0 ? room / rows : line, line, line + line / 2);
    const int fit = room / g.rowHeight;
    g.rowsShown = rows <= fit ? rows : std::max(0, fit - 1);
    const int lines = std::max(1, rows <= fit ? rows : fit);
    g.axis = QRect(0, g.rowsTop + lines * g.rowHeight, width(), axisHeight);

    // Columns, from the right: p95 over time (when wide), answers, p50 p95 p99; the kind on the
    // left; the plot takes what is left.
    int labelWidth = fm.horizontalAdvance(QStringLiteral("ms"));
    int valueWidth = fm.horizontalAdvance(QStringLiteral("p99"));
    int countWidth = fm.horizontalAdvance(tr("answers"));
    for (const Row &row : std::as_const(m_rows)) {
        labelWidth = std::max(labelWidth, fm.horizontalAdvance(row.kind));
        for (double ms : {row.f.p50Ms, row.f.p95Ms, row.f.p99Ms})
            valueWidth = std::max(valueWidth, fm.horizontalAdvance(formatMs(ms)));
        countWidth = std::max(countWidth, fm.horizontalAdvance(countText(row.f)));
    }
    valueWidth += ColumnGap;
    g.labelLeft = Margin;
    g.plotLeft = g.labelLeft + labelWidth + ColumnGap;
    int right = width() - Margin;
    g.trendLeft = g.trendRight = right;
    if (width() >= TrendMinWidth) {
        const int trendWidth = std::clamp(width() / 5, 120, 280);
        g.trendLeft = right - trendWidth;
        right = g.trendLeft - 2 * ColumnGap;
    }
    g.countWidth = countWidth;
    g.countLeft = right - countWidth;
    g.valueWidth = valueWidth;
    g.valuesLeft = g.countLeft - ColumnGap - 3 * valueWidth;
    // Half a tick label's room at the plot's right end.
    g.plotRight = g.valuesLeft - ColumnGap - fm.horizontalAdvance(QStringLiteral("10 s")) / 2;
    if (g.plotRight - g.plotLeft < 120) {
        // Too narrow for the figures: the tooltips give them.
        g.valueWidth = 0;
        g.valuesLeft = g.countLeft;
        g.plotRight = g.countLeft - ColumnGap - fm.horizontalAdvance(QStringLiteral("10 s")) / 2;
    }
    return g;
}

QString LatencyChart::countText(const Figures &f) const
{
    const QString count = QLocale().toString(f.samples);
    return f.late > 0 ? tr("%1 (%2 late)").arg(count, QLocale().toString(f.late)) : count;
}

std::pair<double, double> LatencyChart::trendRange(const Row &row)
{
    double low = 0, high = 0;
    for (const float ms : row.trend) {
        if (ms < 0)
            continue;
        low = high > 0 ? std::min(low, double(ms)) : ms;
        high = std::max(high, std::max(double(ms), FloorMs));
    }
    return {std::max(low, FloorMs), high};
}

double LatencyChart::xOf(double ms, const Geometry &g) const
{
    const double lo = std::log10(m_axisMinMs), hi = std::log10(m_axisMaxMs);
    const double t = (std::log10(std::clamp(ms, m_axisMinMs, m_axisMaxMs)) - lo) / (hi - lo);
    return g.plotLeft + t * (g.plotRight - g.plotLeft);
}

int LatencyChart::rowAt(const QPoint &pos) const
{
    const Geometry g = geometry();
    if (pos.y() < g.rowsTop || g.rowHeight <= 0)
        return -1;
    const int row = (pos.y() - g.rowsTop) / g.rowHeight;
    return row < g.rowsShown ? row : -1;
}

QString LatencyChart::tipFor(const Row &row) const
{
    const Figures &f = row.f;
    QString tip = tr("<b>%1</b>, %2, %3<br>p50 %4 · p95 %5 · p99 %6<br>%7 answers")
                      .arg(row.kind.toHtmlEscaped(),
                           m_scope.isEmpty() ? tr("all bots") : selectedBotsText(m_scope.size()),
                           windowName(m_windowMs), formatMs(f.p50Ms), formatMs(f.p95Ms),
                           formatMs(f.p99Ms), QLocale().toString(f.samples));
    if (f.late > 0)
        tip += tr(", %1 of them late (answered after the deadline)").arg(f.late);
    const auto [lowMs, highMs] = trendRange(row);
    if (highMs > 0)
        tip += tr("<br>p95 per %1 from %2 to %3")
                   .arg(m_windowMs == OneHourMs ? tr("minute") : tr("10 seconds"), formatMs(lowMs),
                        formatMs(highMs));
    return tip;
}

QString LatencyChart::toolTipAt(const QPoint &pos) const
{
    refresh(true);
    const int row = rowAt(pos);
    if (row >= 0)
        return tipFor(m_rows.at(row));
    QString tip = tr("How long bots took to answer (acked or rejected, late answers included), "
                     "per command kind, %1: the bar goes to p50, the lighter bar to p95, the "
                     "whisker to p99, on a log scale.<br>%2 answers")
                      .arg(windowName(m_windowMs), QLocale().toString(m_total));
    if (m_totalLate > 0)
        tip += tr(", %1 of them late").arg(QLocale().toString(m_totalLate));
    return tip;
}

bool LatencyChart::event(QEvent *event)
{
    if (event->type() == QEvent::ToolTip) {
        const auto *help = static_cast<QHelpEvent *>(event);
        QToolTip::showText(help->globalPos(), toolTipAt(help->pos()), this);
        return true;
    }
    if (event->type() == QEvent::FontChange || event->type() == QEvent::StyleChange)
        placeWindowBox();
    return QWidget::event(event);
}

void LatencyChart::paintEvent(QPaintEvent *)
{
    // Only what compute() found is drawn; refresh() recomputes at most 4 times a second.
    refresh(false);
    QPainter p(this);
    p.fillRect(rect(), palette().window());
    const QColor text = palette().windowText().color();
    const QColor accent = palette().highlight().color();
    QColor accentLight = accent;
    accentLight.setAlphaF(0.4f);
    const QColor grid = palette().mid().color();
    const QFontMetrics fm = fontMetrics();
    const Geometry g = geometry();

    // The title line: what the chart shows, then the legend.
    QFont bold = font();
    bold.setBold(true);
    p.setFont(bold);
    p.setPen(text);
    const QString heading = title();
    const int headingWidth = QFontMetrics(bold).horizontalAdvance(heading);
    p.drawText(g.title, Qt::AlignLeft | Qt::AlignVCenter,
               QFontMetrics(bold).elidedText(heading, Qt::ElideRight, g.title.width()));
    p.setFont(font());
    const int swatch = 14, glyph = std::max(6, fm.height() / 2);
    const int legendWidth =
        3 * (swatch + 4 + fm.horizontalAdvance(QStringLiteral("p99"))) + 2 * ColumnGap;
    int x = g.title.left() + headingWidth + 2 * ColumnGap;
    if (x + legendWidth <= g.title.right()) {
        const int cy = g.title.center().y();
        const QRect box(0, cy - glyph / 2, swatch, glyph);
        for (int i = 0; i < 3; ++i) {
            const QRect r = box.translated(x, 0);
            if (i == 0) {
                p.fillRect(r, accent);
            } else if (i == 1) {
                p.fillRect(r, accentLight);
                p.fillRect(QRect(r.right() - 1, r.top(), 2, r.height()), accent);
            } else {
                p.setPen(text);
                p.drawLine(r.left(), cy, r.right(), cy);
                p.drawLine(r.right(), r.top(), r.right(), r.bottom());
            }
            p.setPen(text);
            const QString name = i == 0   ? QStringLiteral("p50")
                                 : i == 1 ? QStringLiteral("p95")
                                          : QStringLiteral("p99");
            p.drawText(QPoint(x + swatch + 4, cy + (fm.ascent() - fm.descent()) / 2), name);
            x += swatch + 4 + fm.horizontalAdvance(name) + ColumnGap;
        }
    }

    if (m_rows.isEmpty()) {
        p.setPen(palette().placeholderText().color());
        const QString none =
            m_scope.isEmpty() ? tr("No answers in the %1").arg(windowName(m_windowMs))
                              : tr("No answers from the %1 in the %2")
                                    .arg(selectedBotsText(m_scope.size()), windowName(m_windowMs));
        p.drawText(QRect(0, g.rowsTop, width(), std::max(fm.height(), height() - g.rowsTop)),
                   Qt::AlignCenter, none);
        return;
    }

    // Grid: a dotted line per decade through the rows, minor ticks on the axis.
    const int rowsBottom = g.axis.top();
    const int decades = int(std::lround(std::log10(m_axisMaxMs / m_axisMinMs)));
    const double decadeWidth = double(g.plotRight - g.plotLeft) / decades;
    const int labelWidth = fm.horizontalAdvance(QStringLiteral("100"));
    const int labelEvery = decadeWidth >= labelWidth + 8 ? 1 : 2; // no overlapping labels
    QPen gridPen(grid, 1, Qt::DotLine);
    for (int d = 0; d <= decades; ++d) {
        const double ms = m_axisMinMs * std::pow(10.0, d);
        const int gx = int(std::lround(xOf(ms, g)));
        p.setPen(gridPen);
        p.drawLine(gx, g.rowsTop, gx, rowsBottom);
        p.setPen(text);
        p.drawLine(gx, rowsBottom, gx, rowsBottom + TickLength);
        if (d % labelEvery == 0) {
            const QString label = tickLabel(ms);
            const int w = fm.horizontalAdvance(label);
            p.drawText(QRect(gx - w / 2 - 1, rowsBottom + TickLength, w + 2, fm.height()),
                       Qt::AlignCenter, label);
        }
        for (int m = 2; d < decades && m <= 9; ++m) {
            const int mx = int(std::lround(xOf(ms * m, g)));
            p.setPen(grid);
            p.drawLine(mx, rowsBottom, mx, rowsBottom + TickLength - 1);
        }
    }
    p.setPen(text);
    p.drawLine(g.plotLeft, rowsBottom, g.plotRight, rowsBottom);
    // The axis title, and the columns' names, on the axis line.
    const QRect axisText(0, rowsBottom + TickLength, 0, fm.height());
    p.drawText(axisText.adjusted(g.labelLeft, 0, g.plotLeft - ColumnGap, 0),
               Qt::AlignRight | Qt::AlignVCenter, tr("ms"));
    if (g.valueWidth > 0) {
        const char *names[] = {"p50", "p95", "p99"};
        for (int i = 0; i < 3; ++i)
            p.drawText(axisText.adjusted(g.valuesLeft + i * g.valueWidth, 0,
                                         g.valuesLeft + (i + 1) * g.valueWidth, 0),
                       Qt::AlignRight | Qt::AlignVCenter, QLatin1String(names[i]));
    }
    p.drawText(axisText.adjusted(g.countLeft, 0, g.countLeft + g.countWidth, 0),
               Qt::AlignRight | Qt::AlignVCenter, tr("answers"));
    if (g.trendRight > g.trendLeft) {
        const QRect trendAxis = axisText.adjusted(g.trendLeft, 0, g.trendRight, 0);
        p.drawText(trendAxis, Qt::AlignLeft | Qt::AlignVCenter,
                   m_windowMs == OneHourMs ? tr("−1 h") : tr("−5 min"));
        p.drawText(trendAxis, Qt::AlignHCenter | Qt::AlignVCenter, tr("p95 over time"));
        p.drawText(trendAxis, Qt::AlignRight | Qt::AlignVCenter, tr("now"));
    }

    // The rows.
    const int barHeight = std::clamp(g.rowHeight - 6, 4, 12);
    p.setRenderHint(QPainter::Antialiasing, false);
    for (int i = 0; i < g.rowsShown; ++i) {
        const Row &row = m_rows.at(i);
        const int top = g.rowsTop + i * g.rowHeight;
        const QRect line(0, top, 0, g.rowHeight);
        const int cy = top + g.rowHeight / 2;
        const int barTop = cy - barHeight / 2;
        p.setPen(text);
        p.drawText(line.adjusted(g.labelLeft, 0, g.plotLeft - ColumnGap, 0),
                   Qt::AlignLeft | Qt::AlignVCenter, row.kind);
        const int x50 = int(std::lround(xOf(row.f.p50Ms, g)));
        const int x95 = int(std::lround(xOf(row.f.p95Ms, g)));
        const int x99 = int(std::lround(xOf(row.f.p99Ms, g)));
        p.fillRect(QRect(g.plotLeft, barTop, std::max(1, x50 - g.plotLeft), barHeight), accent);
        if (x95 > x50)
            p.fillRect(QRect(x50, barTop, x95 - x50, barHeight), accentLight);
        p.fillRect(QRect(x95 - 1, barTop, 2, barHeight), accent);
        p.setPen(text);
        if (x99 > x95)
            p.drawLine(x95 + 1, cy, x99, cy);
        p.drawLine(x99, barTop + 1, x99, barTop + barHeight - 2);
        if (g.valueWidth > 0) {
            const double values[] = {row.f.p50Ms, row.f.p95Ms, row.f.p99Ms};
            for (int v = 0; v < 3; ++v)
                p.drawText(line.adjusted(g.valuesLeft + v * g.valueWidth, 0,
                                         g.valuesLeft + (v + 1) * g.valueWidth, 0),
                           Qt::AlignRight | Qt::AlignVCenter, formatMs(values[v]));
        }
        p.drawText(line.adjusted(g.countLeft, 0, g.countLeft + g.countWidth, 0),
                   Qt::AlignRight | Qt::AlignVCenter, countText(row.f));
        if (g.trendRight > g.trendLeft) {
            // p95 per bucket on a log scale from the row's lowest to its highest (at least a
            // factor 3 apart, so that noise stays flat); the tooltip says what they are.
            const auto [lowMs, highMs] = trendRange(row);
            double lo = std::log10(lowMs), hi = std::log10(highMs);
            const double span = std::log10(3.0);
            if (hi - lo < span) {
                lo = (lo + hi - span) / 2;
                hi = lo + span;
            }
            const int yTop = top + 2, yBottom = top + g.rowHeight - 3;
            p.setPen(grid);
            p.drawLine(g.trendLeft, yBottom, g.trendRight, yBottom);
            const int n = int(row.trend.size());
            QPainterPath path;
            bool open = false;
            for (int b = 0; b < n; ++b) {
                if (row.trend[size_t(b)] < 0) {
                    open = false;
                    continue;
                }
                const double t = (std::log10(double(row.trend[size_t(b)])) - lo) / (hi - lo);
                const QPointF pt(g.trendLeft + (b + 0.5) * (g.trendRight - g.trendLeft) / n,
                                 yBottom - t * (yBottom - yTop));
                if (open) {
                    path.lineTo(pt);
                } else {
                    path.moveTo(pt);
                    path.addEllipse(pt, 1, 1); // a lone bucket shows as a dot
                    path.moveTo(pt);
                }
                open = true;
            }
            p.setRenderHint(QPainter::Antialiasing, true);
            p.setPen(QPen(accent, 1.5));
            p.setBrush(Qt::NoBrush);
            p.drawPath(path);
            p.setRenderHint(QPainter::Antialiasing, false);
        }
    }
    if (g.rowsShown < m_rows.size()) {
        const int top = g.rowsTop + g.rowsShown * g.rowHeight;
        p.setPen(palette().placeholderText().color());
        p.drawText(
            QRect(g.labelLeft, top, width() - 2 * Margin, g.rowHeight),
            Qt::AlignLeft | Qt::AlignVCenter,
            m_rows.size() - g.rowsShown == 1
                ? tr("1 more kind: make the chart taller")
                : tr("%1 more kinds: make the chart taller").arg(m_rows.size() - g.rowsShown));
    }
}

} // namespace opconsole
