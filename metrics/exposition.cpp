#include "exposition.h"

#include <QLocale>

#include <cmath>

namespace opconsole::metrics {

namespace {

bool isLetter(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool isDigit(char c)
{
    return c >= '0' && c <= '9';
}

const char *typeName(Exposition::Type type)
{
    switch (type) {
    case Exposition::Type::Counter:
        return "counter";
    case Exposition::Type::Gauge:
        return "gauge";
    case Exposition::Type::Histogram:
        return "histogram";
    }
    return "untyped";
}

} // namespace

bool isValidMetricName(QByteArrayView name)
{
    if (name.isEmpty() || !(isLetter(name.front()) || name.front() == ':'))
        return false;
    for (const char c : name) {
        if (!isLetter(c) && !isDigit(c) && c != ':')
            return false;
    }
    return true;
}

bool isValidLabelName(QByteArrayView name)
{
    if (name.isEmpty() || !isLetter(name.front()) || name.startsWith("__"))
        return false;
    for (const char c : name) {
        if (!isLetter(c) && !isDigit(c))
            return false;
    }
    return true;
}

QByteArray escapeLabelValue(QStringView value)
{
    const QByteArray utf8 = value.toUtf8();
    QByteArray out;
    out.reserve(utf8.size());
    for (const char c : utf8) {
        if (c == '\\')
            out.append("\\\\");
        else if (c == '"')
            out.append("\\\"");
        else if (c == '\n')
            out.append("\\n");
        else
            out.append(c);
    }
    return out;
}

QByteArray formatValue(double value)
{
    if (std::isnan(value))
        return QByteArrayLiteral("NaN");
    if (std::isinf(value))
        return value > 0 ? QByteArrayLiteral("+Inf") : QByteArrayLiteral("-Inf");
    if (value == std::trunc(value) && std::fabs(value) < 9.007199254740992e15)
        return QByteArray::number(qint64(value));
    return QByteArray::number(value, 'g', QLocale::FloatingPointShortest);
}

void Exposition::family(QByteArrayView name, Type type, QByteArrayView help)
{
    Q_ASSERT(isValidMetricName(name));
    // HELP text: backslash and line feed escaped (ours are constants without either).
    Q_ASSERT(!help.contains('\n') && !help.contains('\\'));
    m_out.append("# HELP ").append(name).append(' ').append(help).append('\n');
    m_out.append("# TYPE ").append(name).append(' ').append(typeName(type)).append('\n');
}

void Exposition::sample(QByteArrayView name, const Labels &labels, double value)
{
    writeSample(name, {}, labels, formatValue(value));
}

void Exposition::sample(QByteArrayView name, const Labels &labels, quint64 value)
{
    writeSample(name, {}, labels, QByteArray::number(value));
}

void Exposition::counter(QByteArrayView name, QByteArrayView help, quint64 value)
{
    family(name, Type::Counter, help);
    sample(name, {}, value);
}

void Exposition::gauge(QByteArrayView name, QByteArrayView help, double value)
{
    family(name, Type::Gauge, help);
    sample(name, {}, value);
}

void Exposition::histogramSeries(QByteArrayView name, const Labels &labels, const double *bounds,
                                 const quint64 *counts, size_t n, double sum, quint64 count)
{
    Label le{QByteArrayLiteral("le"), {}};
    quint64 cumulative = 0;
    for (size_t i = 0; i <= n; ++i) {
        cumulative += counts[i];
        le.value = QString::fromLatin1(i < n ? formatValue(bounds[i]) : QByteArray("+Inf"));
        writeSample(name, "_bucket", labels, QByteArray::number(cumulative), &le);
    }
    writeSample(name, "_sum", labels, formatValue(sum));
    writeSample(name, "_count", labels, QByteArray::number(count));
}

void Exposition::writeSample(QByteArrayView name, QByteArrayView suffix, const Labels &labels,
                             const QByteArray &value, const Label *extra)
{
    m_out.append(name).append(suffix);
    if (!labels.isEmpty() || extra) {
        m_out.append('{');
        bool first = true;
        auto write = [&](const Label &label) {
            Q_ASSERT(isValidLabelName(label.name));
            if (!first)
                m_out.append(',');
            first = false;
            m_out.append(label.name).append("=\"").append(escapeLabelValue(label.value));
            m_out.append('"');
        };
        for (const Label &label : labels)
            write(label);
        if (extra)
            write(*extra);
        m_out.append('}');
    }
    m_out.append(' ').append(value).append('\n');
}

} // namespace opconsole::metrics
