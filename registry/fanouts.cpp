#include "fanouts.h"

#include <QStringList>

#include <algorithm>

namespace opconsole {

void FanOutSummary::add(const CommandOutcome &outcome)
{
    if (total == 0 || (outcome.registeredWallMs > 0 && outcome.registeredWallMs < startedWallMs))
        startedWallMs = outcome.registeredWallMs;
    if (kind.isEmpty())
        kind = outcome.kind;
    add(outcome.state, outcome.hasLateAck());
}

void FanOutSummary::add(CommandState state, bool lateAck, int delta)
{
    total += delta;
    switch (state) {
    case CommandState::Pending:
        pending += delta;
        break;
    case CommandState::Acked:
        acked += delta;
        break;
    case CommandState::Rejected:
        rejected += delta;
        break;
    case CommandState::Expired:
        expired += delta;
        break;
    case CommandState::NotConnected:
        notConnected += delta;
        break;
    case CommandState::Disconnected:
        disconnected += delta;
        break;
    case CommandState::Cancelled:
        cancelled += delta;
        break;
    case CommandState::Refused:
        refused += delta;
        break;
    case CommandState::Unknown:
        unknown += delta;
        break;
    }
    if (lateAck) {
        lateAcks += delta;
        lateByState[size_t(state) % lateByState.size()] += delta;
    }
}

QString FanOutSummary::text() const
{
    QStringList parts;
    parts << QStringLiteral("%1/%2 acked").arg(acked).arg(total);
    auto add = [&](int n, CommandState state, const char *what) {
        if (n <= 0)
            return;
        QString part = QStringLiteral("%1 %2").arg(n).arg(QLatin1String(what));
        const int late = lateByState[size_t(state) % lateByState.size()];
        if (late == 1 && n == 1)
            part += QStringLiteral(" (late ack)");
        else if (late == 1)
            part += QStringLiteral(" (1 late ack)");
        else if (late > 0)
            part += QStringLiteral(" (%1 late acks)").arg(late);
        parts << part;
    };
    add(pending, CommandState::Pending, "pending");
    add(rejected, CommandState::Rejected, "rejected");
    add(expired, CommandState::Expired, "expired");
    add(notConnected, CommandState::NotConnected, "not connected");
    add(disconnected, CommandState::Disconnected, "disconnected");
    add(cancelled, CommandState::Cancelled, "cancelled");
    add(refused, CommandState::Refused, "refused");
    add(unknown, CommandState::Unknown, "unknown");
    return parts.join(QStringLiteral(", "));
}

QString FanOutTracker::apply(const CommandOutcome &record)
{
    if (record.fanOut.isEmpty())
        return {};
    auto it = m_fanOuts.find(record.fanOut);
    if (it == m_fanOuts.end()) {
        if (m_gone.contains(record.fanOut))
            return {};
        it = m_fanOuts.insert(record.fanOut, Entry{});
        it->tally.id = record.fanOut;
        m_order.push_back(record.fanOut);
        while (m_order.size() > size_t(std::max(1, m_max)))
            evictOne(record.fanOut);
        it = m_fanOuts.find(record.fanOut);
    }
    Entry &entry = *it;
    const auto member = entry.members.find(record.commandId);
    if (member == entry.members.end()) {
        if (m_members >= m_maxMembers) {
            // Room first from the oldest other fan-outs; a fan-out that is alone over the cap
            // stops growing (its tally counts what it had).
            while (m_members >= m_maxMembers && m_order.size() > 1)
                evictOne(record.fanOut);
            if (m_members >= m_maxMembers)
                return {};
        }
        Entry &kept = m_fanOuts[record.fanOut]; // evicting may have moved the entry
        kept.members.insert(record.commandId, {record.state, record.hasLateAck(), record.change});
        ++m_members;
        kept.tally.add(record);
        return record.fanOut;
    }
    if (record.change != 0 && record.change <= member->change)
        return {}; // already seen this change or a newer one
    entry.tally.add(member->state, member->lateAck, -1);
    entry.tally.add(record.state, record.hasLateAck(), 1);
    *member = {record.state, record.hasLateAck(), record.change};
    return record.fanOut;
}

void FanOutTracker::evictOne(const QString &keep)
{
    auto victim = std::find_if(m_order.begin(), m_order.end(), [&](const QString &id) {
        const auto it = m_fanOuts.constFind(id);
        return id != keep && it != m_fanOuts.cend() && it->tally.done();
    });
    if (victim == m_order.end())
        victim = m_order.front() != keep ? m_order.begin() : std::next(m_order.begin());
    const QString id = *victim;
    m_order.erase(victim);
    if (const auto it = m_fanOuts.constFind(id); it != m_fanOuts.cend())
        m_members -= it->members.size();
    m_fanOuts.remove(id);
    m_gone.insert(id);
    m_goneOrder.push_back(id);
    constexpr size_t MaxGone = 4096;
    while (m_goneOrder.size() > MaxGone) {
        m_gone.remove(m_goneOrder.front());
        m_goneOrder.pop_front();
    }
}

const FanOutSummary *FanOutTracker::find(const QString &id) const
{
    const auto it = m_fanOuts.constFind(id);
    return it == m_fanOuts.cend() ? nullptr : &it->tally;
}

QStringList FanOutTracker::ids() const
{
    QStringList out;
    out.reserve(qsizetype(m_order.size()));
    for (auto it = m_order.rbegin(); it != m_order.rend(); ++it)
        out << *it;
    return out;
}

void FanOutTracker::clear()
{
    m_fanOuts.clear();
    m_order.clear();
    m_members = 0;
    m_gone.clear();
    m_goneOrder.clear();
}

} // namespace opconsole
