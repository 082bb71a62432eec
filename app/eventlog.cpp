#include "eventlog.h"

#include <QDateTime>
#include <QJsonDocument>

namespace opconsole {

namespace {
const char *levelName(LogLevel level)
{
    switch (level) {
    case LogLevel::Debug:
        return "debug";
    case LogLevel::Info:
        return "info";
    case LogLevel::Warning:
        return "warning";
    case LogLevel::Error:
        return "error";
    }
    return "info";
}
} // namespace

void EventLog::write(LogLevel level, const char *event, QJsonObject fields) const
{
    if (level < m_minimum)
        return;
    fields.insert(QStringLiteral("ts"),
                  QDateTime::currentDateTimeUtc().toString(Qt::ISODateWithMs));
    fields.insert(QStringLiteral("level"), QLatin1String(levelName(level)));
    fields.insert(QStringLiteral("event"), QLatin1String(event));
    QByteArray line = QJsonDocument(fields).toJson(QJsonDocument::Compact);
    line.append('\n');
    if (m_held > 0) {
        m_heldLines += line;
        if (m_heldLines.size() >= 256 * 1024)
            writeHeld();
        return;
    }
    std::fwrite(line.constData(), 1, size_t(line.size()), m_out);
    std::fflush(m_out);
}

void EventLog::writeHeld() const
{
    if (m_heldLines.isEmpty())
        return;
    std::fwrite(m_heldLines.constData(), 1, size_t(m_heldLines.size()), m_out);
    std::fflush(m_out);
    m_heldLines.clear();
}

} // namespace opconsole
