#pragma once
// The Prometheus text exposition format, version 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/): what /metrics answers.
// Qt Core only; nothing here knows the hub.

#include <QByteArray>
#include <QByteArrayView>
#include <QList>
#include <QString>

#include <array>
#include <cstddef>

namespace opconsole::metrics {

// The Content-Type of the format.
inline constexpr char ContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool isValidMetricName(QByteArrayView name);
// [a-zA-Z_][a-zA-Z0-9_]*, and not reserved (a leading "__")
bool isValidLabelName(QByteArrayView name);
// A label value between its quotes: backslash, double quote and line feed escaped.
QByteArray escapeLabelValue(QStringView value);
// A sample value: an integer as is; otherwise the shortest text that reads back as the same
// double; +Inf, -Inf, NaN.
QByteArray formatValue(double value);

struct Label
{
    QByteArray name; // a valid label name (checked in debug builds)
    QString value;   // any text; escaped when written
};
using Labels = QList<Label>;

// A histogram's state: non-cumulative counts per bucket (the last one is +Inf), sum, count.
// Not locked: its owner serialises observe() and copies it to render.
template <size_t N> struct Histogram
{
    std::array<quint64, N + 1> counts{};
    double sum = 0;
    quint64 count = 0;

    void observe(const std::array<double, N> &bounds, double value)
    {
        size_t i = 0;
        while (i < N && value > bounds[i])
            ++i;
        ++counts[i];
        sum += value;
        ++count;
    }
};

// Builds one exposition: each family's HELP and TYPE once, then its samples. Names are the
// caller's constants (asserted valid); label values come from anywhere and are escaped.
class Exposition
{
public:
    enum class Type : quint8
    {
        Counter,
        Gauge,
        Histogram,
    };

    // "# HELP name help" and "# TYPE name type"; before the family's samples.
    void family(QByteArrayView name, Type type, QByteArrayView help);
    void sample(QByteArrayView name, const Labels &labels, double value);
    void sample(QByteArrayView name, const Labels &labels, quint64 value);

    // A family with one unlabelled sample.
    void counter(QByteArrayView name, QByteArrayView help, quint64 value);
    void gauge(QByteArrayView name, QByteArrayView help, double value);

    // One labelled series of a histogram family (after family(name, Histogram, ...)):
    // name_bucket{labels, le="..."} (cumulative, ending with le="+Inf"), name_sum, name_count.
    template <size_t N>
    void histogram(QByteArrayView name, const Labels &labels, const std::array<double, N> &bounds,
                   const Histogram<N> &h)
    {
        histogramSeries(name, labels, bounds.data(), h.counts.data(), N, h.sum, h.count);
    }

    const QByteArray &text() const { return m_out; }

private:
    void histogramSeries(QByteArrayView name, const Labels &labels, const double *bounds,
                         const quint64 *counts, size_t n, double sum, quint64 count);
    void writeSample(QByteArrayView name, QByteArrayView suffix, const Labels &labels,
                     const QByteArray &value, const Label *extra = nullptr);

    QByteArray m_out;
};

} // namespace opconsole::metrics
