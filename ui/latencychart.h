#pragma once

#include "commandoutcome.h"

#include <QHash>
#include <QWidget>

#include <deque>

namespace opconsole {

// Ack latency per command type: p50 as a bar and p95 as a tick, over the last 500 acks of
// each type, on a log scale. Painted with QPainter; repainted at most 4 times a second.
class LatencyChart final : public QWidget
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(LatencyChart)

public:
    explicit LatencyChart(QWidget *parent = nullptr);

    void add(const QList<CommandOutcome> &records);
    struct Figures
    {
        double p50Ms = 0;
        double p95Ms = 0;
        int samples = 0;
    };
    Figures figures(const QString &kind) const;
    QSize sizeHint() const override { return {260, 150}; }

protected:
    void paintEvent(QPaintEvent *event) override;

private:
    QHash<QString, std::deque<double>> m_samples; // ms, newest last
    bool m_dirty = false;
};

} // namespace opconsole
