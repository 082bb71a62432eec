#pragma once
// The hub's event log: one JSON object per line on stderr, every string escaped by Qt's JSON
// writer, so no value a bot or an operator sends can break a line or forge one. Event names
// are those of Watch and docs/operations.md.

#include <QByteArray>
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

    // While one lives, lines are gathered and written together at its end (or every 256 KB):
    // a batch of 10,000 outcomes is a few writes, not 10,000 (stderr is unbuffered). A line
    // is never split. The log's thread only.
    class Batch
    {
    public:
        explicit Batch(const EventLog &log) : m_log(log) { ++m_log.m_held; }
        ~Batch()
        {
            if (--m_log.m_held == 0)
                m_log.writeHeld();
        }
        Batch(const Batch &) = delete;
        Batch &operator=(const Batch &) = delete;

    private:
        const EventLog &m_log;
    };

private:
    void writeHeld() const;

    std::FILE *m_out;
    LogLevel m_minimum;
    mutable int m_held = 0; // Batches alive
    mutable QByteArray m_heldLines;
};

} // namespace opconsole
