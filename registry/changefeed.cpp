#include "changefeed.h"

#include "commandregistry.h"

#include <QRandomGenerator>

namespace opconsole {

ChangeFeed::ChangeFeed(CommandRegistry &registry, int capacity, QObject *parent)
    : QObject(parent), m_feedId(QRandomGenerator::global()->generate64() | 1),
      m_capacity(std::max(1, capacity))
{
    qRegisterMetaType<FanOutSummary>();
    // Direct: changed() is emitted in the registry's thread, which is this feed's thread.
    connect(&registry, &CommandRegistry::changed, this, &ChangeFeed::onChanged,
            Qt::DirectConnection);
    // Changes made before the feed existed are not in it: a resume from before is a resync.
    m_lastChange = registry.lastChange();
    m_firstChange = m_lastChange + 1;
}

ChangeFeed::~ChangeFeed() = default;

quint64 ChangeFeed::lastChange() const
{
    std::lock_guard lock(m_mutex);
    return m_lastChange;
}

bool ChangeFeed::since(quint64 after, QList<CommandOutcome> *out, qsizetype limit) const
{
    std::lock_guard lock(m_mutex);
    if (after > m_lastChange)
        return false; // a position this feed never reached
    if (after + 1 < m_firstChange)
        return false; // the changes right after it are gone
    // The log is contiguous and ascending: change c sits at index c - m_firstChange.
    const size_t first = size_t(after + 1 - m_firstChange);
    const size_t count = m_log.size() - std::min(first, m_log.size());
    if (limit >= 0 && count > size_t(limit))
        return false;
    out->reserve(out->size() + qsizetype(count));
    for (size_t i = first; i < m_log.size(); ++i)
        out->append(m_log[i]);
    return true;
}

std::optional<FanOutSummary> ChangeFeed::fanOut(const QString &id) const
{
    std::lock_guard lock(m_mutex);
    if (const FanOutSummary *s = m_fanOuts.find(id))
        return *s;
    return std::nullopt;
}

QList<FanOutSummary> ChangeFeed::fanOuts() const
{
    std::lock_guard lock(m_mutex);
    QList<FanOutSummary> out;
    for (const QString &id : m_fanOuts.ids())
        if (const FanOutSummary *s = m_fanOuts.find(id))
            out << *s;
    return out;
}

void ChangeFeed::onChanged(const QList<CommandOutcome> &records)
{
    if (records.isEmpty())
        return;
    {
        std::lock_guard lock(m_mutex);
        for (const CommandOutcome &record : records) {
            // A gap means changes were made while nobody collected them (cannot happen while
            // the feed listens; kept safe): what came before is no longer contiguous.
            if (record.change != m_lastChange + 1) {
                m_log.clear();
                m_firstChange = record.change;
            }
            m_log.push_back(record);
            m_lastChange = record.change;
            m_fanOuts.apply(record);
        }
        while (m_log.size() > size_t(m_capacity)) {
            m_log.pop_front();
            ++m_firstChange;
        }
    }
    emit changes(records);
}

} // namespace opconsole
