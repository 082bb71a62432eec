#include "latencychart.h"

#include <QPainter>
#include <QTimer>

#include <algorithm>
#include <cmath>

namespace opconsole {

namespace {
constexpr size_t Window = 500;

double percentile(std::vector<double> v, double q)
{
    if (v.empty())
        return 0;
    const size_t k = std::min(v.size() - 1, size_t(q * double(v.size())));
    std::nth_element(v.begin(), v.begin() + long(k), v.end());
    return v[k];
}
} // namespace

LatencyChart::LatencyChart(QWidget *parent) : QWidget(parent)
{
    setMinimumHeight(90);
    setToolTip(tr("Ack latency per command type: bar p50, tick p95 (last %1 acks)").arg(Window));
    auto *timer = new QTimer(this);
    timer->setInterval(250);
    connect(timer, &QTimer::timeout, this, [this] {
        if (m_dirty) {
            m_dirty = false;
            update();
        }
    });
    timer->start();
}

void LatencyChart::add(const QList<CommandOutcome> &records)
{
    for (const CommandOutcome &o : records) {
        if (!o.finished() || !o.ack)
            continue;
        auto &samples = m_samples[o.kind];
        samples.push_back(double(o.latency().count()) / 1e6);
        if (samples.size() > Window)
            samples.pop_front();
        m_dirty = true;
    }
}

LatencyChart::Figures LatencyChart::figures(const QString &kind) const
{
    const auto it = m_samples.constFind(kind);
    if (it == m_samples.cend())
        return {};
    const std::vector<double> v(it->begin(), it->end());
    return {percentile(v, 0.5), percentile(v, 0.95), int(v.size())};
}

void LatencyChart::paintEvent(QPaintEvent *)
{
    QPainter p(this);
    p.fillRect(rect(), palette().base());
    QStringList kinds = m_samples.keys();
    kinds.sort();
    const QFontMetrics fm = fontMetrics();
    if (kinds.isEmpty()) {
        p.setPen(palette().placeholderText().color());
        p.drawText(rect(), Qt::AlignCenter, tr("latency: no acks yet"));
        return;
    }
    const int labelWidth = fm.horizontalAdvance(QStringLiteral("restart  ")) + 4;
    const int valueWidth = fm.horizontalAdvance(QStringLiteral("9999 / 9999 ms")) + 8;
    const int rowHeight = std::max(fm.height() + 4, (height() - 4) / int(kinds.size()));
    const double minMs = 0.1, maxMs = 60'000;
    const int barLeft = labelWidth;
    const int barWidth = std::max(20, width() - labelWidth - valueWidth);
    auto x = [&](double ms) {
        const double t = (std::log10(std::clamp(ms, minMs, maxMs)) - std::log10(minMs)) /
                         (std::log10(maxMs) - std::log10(minMs));
        return barLeft + int(t * barWidth);
    };
    const QColor bar = palette().highlight().color();
    int y = 2;
    for (const QString &kind : kinds) {
        const Figures f = figures(kind);
        p.setPen(palette().text().color());
        p.drawText(QRect(2, y, labelWidth, rowHeight), Qt::AlignVCenter, kind);
        const int h = std::max(4, rowHeight / 2);
        const int top = y + (rowHeight - h) / 2;
        p.fillRect(QRect(barLeft, top, x(f.p50Ms) - barLeft, h), bar);
        p.setPen(QPen(palette().text().color(), 2));
        p.drawLine(x(f.p95Ms), top - 2, x(f.p95Ms), top + h + 2);
        p.drawText(QRect(barLeft + barWidth + 6, y, valueWidth, rowHeight), Qt::AlignVCenter,
                   QStringLiteral("%1 / %2 ms")
                       .arg(f.p50Ms, 0, 'f', f.p50Ms < 10 ? 1 : 0)
                       .arg(f.p95Ms, 0, 'f', f.p95Ms < 10 ? 1 : 0));
        y += rowHeight;
    }
}

} // namespace opconsole
