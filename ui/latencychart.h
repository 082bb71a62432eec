#pragma once

#include "commandoutcome.h"

#include <QElapsedTimer>
#include <QHash>
#include <QSet>
#include <QStringList>
#include <QWidget>

#include <deque>
#include <functional>
#include <vector>

class QComboBox;

namespace opconsole {

// How long bots take to answer, per command kind: p50, p95 and p99 on a log latency axis with
// labelled ticks, over a time window (the last 5 minutes or the last hour, chosen in the
// chart's "latencyWindow" combo box) and a scope (all bots, or the bots selected in the fleet).
// Every answered command counts once, late answers included (and counted as late). Where it is
// wide enough, each row also shows p95 over the window as a line.
//
// Cost: add() is O(batch) (it only appends); the percentiles are computed from scratch (one
// pass over the samples, nth_element per kind; no sort) when samples came, at most 4 times a
// second while the chart is visible; at once for a new window or scope, or when figures()
// asks; and every 2 s as time moves the window along. Painting only draws what was computed. At
// most MaxSamples samples are kept, the oldest dropped first, and none older than the longest
// window.
class LatencyChart final : public QWidget
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(LatencyChart)

public:
    static constexpr int MaxSamples = 200'000;
    static constexpr qint64 FiveMinutesMs = 5 * 60'000;
    static constexpr qint64 OneHourMs = 60 * 60'000;

    explicit LatencyChart(QWidget *parent = nullptr);

    // Takes the answered commands among the records (in time or late), each command once
    // however often it is given (a resync hands the same records again).
    void add(const QList<CommandOutcome> &records);

    // The window: FiveMinutesMs or OneHourMs (anything else is taken as the nearest).
    qint64 windowMs() const { return m_windowMs; }
    void setWindowMs(qint64 ms);
    // The bots whose answers are shown; empty: all bots.
    void setBots(const QStringList &botIds);
    QStringList bots() const { return m_scopeList; }

    struct Figures
    {
        double p50Ms = 0;
        double p95Ms = 0;
        double p99Ms = 0;
        int samples = 0; // answers of this kind in the window and scope
        int late = 0;    // of which answered after their deadline
    };
    // The figures of one kind over the current window and scope; all zero when it has none.
    Figures figures(const QString &kind) const;
    // The kinds with answers in the current window and scope, in the order shown.
    QStringList kinds() const;
    // The title line, e.g. "Ack latency, all bots" or "Ack latency, selected 3 bots".
    QString title() const;
    // Samples held (every window and scope), at most MaxSamples.
    int sampleCount() const { return int(m_samples.size()); }
    // What a tooltip at pos says (the figures of the row under it), for tests.
    QString toolTipAt(const QPoint &pos) const;

    // The clock that places the window (wall ms since the epoch); for tests.
    void setClock(std::function<qint64()> nowMs);

    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

signals:
    void windowChanged(qint64 ms);

protected:
    bool event(QEvent *event) override;
    void paintEvent(QPaintEvent *event) override;
    void resizeEvent(QResizeEvent *event) override;

private:
    struct Sample
    {
        qint64 wallMs = 0; // when the answer came
        float ms = 0;      // how long it took
        quint32 bot = 0;   // index into m_botNames
        quint16 kind = 0;  // index into m_kindNames
        bool late = false;
        size_t key = 0; // identifies the command (m_seen)
    };
    // What one computation found for a kind.
    struct Row
    {
        QString kind;
        Figures f;
        std::vector<float> trend; // p95 per time bucket, oldest first; < 0: no answer in it
    };
    // Where things are drawn, shared by paintEvent and the tooltips.
    struct Geometry
    {
        QRect title;
        int rowsTop = 0;
        int rowHeight = 0;
        int rowsShown = 0; // rows that fit; the rest are summed up in one line
        QRect axis;        // the line of tick labels under the rows
        int labelLeft = 0, plotLeft = 0, plotRight = 0;
        int valuesLeft = 0, valueWidth = 0; // three columns: p50, p95, p99
        int countLeft = 0, countWidth = 0;
        int trendLeft = 0, trendRight = 0; // trendRight == trendLeft: no trend column
    };

    quint32 internBot(const QString &botId);
    quint16 internKind(const QString &kind);
    void dropOlderThan(qint64 wallMs);
    void placeWindowBox();
    qint64 now() const;
    // Recomputes the rows when samples, window or scope changed (at most 4 times a second,
    // unless urgent: a caller that wants the figures now), or time moved the window along.
    // Returns whether it did.
    bool refresh(bool urgent) const;
    void compute(qint64 nowMs) const;
    Geometry geometry() const;
    int rowAt(const QPoint &pos) const;
    double xOf(double ms, const Geometry &g) const;
    QString tipFor(const Row &row) const;
    QString countText(const Figures &f) const;
    // The lowest and highest p95 of a row's buckets; high is 0 when none has answers.
    static std::pair<double, double> trendRange(const Row &row);

    std::deque<Sample> m_samples; // in arrival order
    QSet<size_t> m_seen;          // keys of the commands in m_samples
    QHash<QString, quint32> m_botIndex;
    QStringList m_botNames;
    QHash<QString, quint16> m_kindIndex;
    QStringList m_kindNames;

    qint64 m_windowMs = FiveMinutesMs;
    QStringList m_scopeList;
    QSet<QString> m_scope;
    std::function<qint64()> m_nowMs;
    QComboBox *m_windowBox;

    // What compute() found, drawn by paintEvent.
    mutable bool m_dirty = false;         // samples came
    mutable bool m_changed = false;       // the window, scope or clock changed
    mutable QElapsedTimer m_sinceCompute; // invalid until the first computation
    mutable qint64 m_computedAtMs = 0;    // the chart's clock then
    mutable QList<Row> m_rows;
    mutable int m_total = 0, m_totalLate = 0;
    mutable double m_axisMinMs = 1, m_axisMaxMs = 1000; // decades that hold every row
};

} // namespace opconsole
