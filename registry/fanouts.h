#pragma once

#include "commandoutcome.h"

#include <QHash>
#include <QSet>
#include <QString>

#include <array>
#include <deque>

namespace opconsole {

// The tally of one fan-out (one send to many bots): "48/50 acked, 1 rejected, 1 expired
// (late ack)". Counts follow every transition of its commands, late acks included.
struct FanOutSummary
{
    QString id;
    QString kind;             // the command sent, e.g. "restart"
    qint64 startedWallMs = 0; // wall clock of its first command's registration
    int total = 0;
    int pending = 0;
    int acked = 0;
    int rejected = 0;
    int expired = 0;
    int notConnected = 0;
    int disconnected = 0;
    int cancelled = 0;
    int refused = 0;
    int unknown = 0;
    int lateAcks = 0;
    // Late acks by the state they came after (Expired, Cancelled, Disconnected...).
    std::array<int, CommandStateCount> lateByState{};

    // Counts one more command in `outcome`'s state.
    void add(const CommandOutcome &outcome);
    void add(CommandState state, bool lateAck, int delta = 1);
    bool done() const { return total > 0 && pending == 0; }
    QString text() const;
};

// Keeps the tallies of the newest fan-outs from the change feed: apply() every record in
// feed order (or any order: a record older than what was seen of its command is ignored).
// Lives in one thread. Members are remembered per fan-out, so a transition moves a command
// from one count to another and a late ack is counted once. Past the cap, the oldest finished
// fan-out goes first (the oldest of all when every one is pending); a fan-out that went is not
// brought back by a later change of one of its commands (its tally would be partial).
class FanOutTracker
{
public:
    static constexpr int DefaultMaxFanOuts = 256;
    // Members over every fan-out kept (about 130 bytes each); past it the oldest fan-outs go
    // as past the count cap. One fan-out larger than this is tallied up to it.
    static constexpr qsizetype DefaultMaxMembers = 500'000;
    explicit FanOutTracker(int maxFanOuts = DefaultMaxFanOuts,
                           qsizetype maxMembers = DefaultMaxMembers)
        : m_max(maxFanOuts), m_maxMembers(maxMembers)
    {}
    qsizetype members() const { return m_members; }

    // The fan-out id whose tally changed, or empty (not part of a fan-out, or stale).
    QString apply(const CommandOutcome &record);
    const FanOutSummary *find(const QString &id) const;
    // Newest first.
    QStringList ids() const;
    int size() const { return int(m_fanOuts.size()); }
    void clear();

private:
    struct Member
    {
        CommandState state;
        bool lateAck;
        quint64 change;
    };
    struct Entry
    {
        FanOutSummary tally;
        QHash<QString, Member> members;
    };
    void evictOne(const QString &keep);
    QHash<QString, Entry> m_fanOuts;
    std::deque<QString> m_order; // oldest first
    QSet<QString> m_gone;        // fan-outs evicted lately (bounded by m_goneOrder)
    std::deque<QString> m_goneOrder;
    int m_max;
    qsizetype m_maxMembers;
    qsizetype m_members = 0;
};

} // namespace opconsole

Q_DECLARE_METATYPE(opconsole::FanOutSummary)
