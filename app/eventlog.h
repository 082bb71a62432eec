#pragma once
// The hub's event log: one JSON object per line on stderr, every string escaped by Qt's JSON
// writer, so no value a bot or an operator sends can break a line or forge one. Event names
// are those of Watch and docs/operations.md.

#include <QJsonObject>

#include <cstdio>

namespace opconsole {

enum class LogLevel
{
    Debug,
    Info,
    Warning,
    Error
};

class EventLog
{
public:
    explicit EventLog(std::FILE *out = stderr, LogLevel minimum = LogLevel::Info)
        : m_out(out), m_minimum(minimum)
    {}
    // {"ts":"2026-11-29T12:00:00.000Z","level":"info","event":"...", ...fields}
    void write(LogLevel level, const char *event, QJsonObject fields = {}) const;
    void info(const char *event, QJsonObject fields = {}) const
    {
        write(LogLevel::Info, event, std::move(fields));
    }
    void warning(const char *event, QJsonObject fields = {}) const
    {
        write(LogLevel::Warning, event, std::move(fields));
    }
    void error(const char *event, QJsonObject fields = {}) const
    {
        write(LogLevel::Error, event, std::move(fields));
    }

private:
    std::FILE *m_out;
    LogLevel m_minimum;
};

} // namespace opconsole
