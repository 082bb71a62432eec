#include "commandoutcome.h"

namespace opconsole {

QString stateName(CommandState state)
{
    switch (state) {
    case CommandState::Pending:
        return QStringLiteral("pending");
    case CommandState::Acked:
        return QStringLiteral("acked");
    case CommandState::Rejected:
        return QStringLiteral("rejected");
    case CommandState::Expired:
        return QStringLiteral("expired");
    case CommandState::NotConnected:
        return QStringLiteral("not connected");
    case CommandState::Disconnected:
        return QStringLiteral("disconnected");
    case CommandState::Cancelled:
        return QStringLiteral("cancelled");
    case CommandState::Refused:
        return QStringLiteral("refused");
    case CommandState::Unknown:
        return QStringLiteral("unknown");
    }
    return QStringLiteral("invalid");
}

QString changeEventName(ChangeEvent event)
{
    switch (event) {
    case ChangeEvent::Registered:
        return QStringLiteral("registered");
    case ChangeEvent::Sent:
        return QStringLiteral("sent");
    case ChangeEvent::Progress:
        return QStringLiteral("progress");
    case ChangeEvent::Finished:
        return QStringLiteral("finished");
    case ChangeEvent::LateAck:
        return QStringLiteral("late ack");
    case ChangeEvent::Restored:
        return QStringLiteral("restored");
    }
    return QStringLiteral("invalid");
}

bool isFinal(CommandState state)
{
    return state != CommandState::Pending;
}

bool isProblem(CommandState state)
{
    return state != CommandState::Pending && state != CommandState::Acked;
}

std::chrono::nanoseconds CommandOutcome::latency() const
{
    if (finishedAt == Clock::time_point{})
        return {};
    return finishedAt - (wasSent() ? sentAt : registeredAt);
}

std::optional<std::chrono::nanoseconds> CommandOutcome::answeredIn() const
{
    if (answered())
        return latency();
    if (hasLateAck())
        return lateAckAt - (wasSent() ? sentAt : registeredAt);
    return std::nullopt;
}

std::chrono::nanoseconds CommandOutcome::lateBy() const
{
    if (!lateAck)
        return {};
    return lateAckAt - lateFrom();
}

Clock::time_point CommandOutcome::lateFrom() const
{
    // Ended without an answer at its deadline, or before it: cancelled, disconnected, or the
    // hub stopped (unknown). Late is counted from whichever came first.
    return finishedAt != Clock::time_point{} ? std::min(deadline, finishedAt) : deadline;
}

qint64 CommandOutcome::wallMs(Clock::time_point t) const
{
    using std::chrono::duration_cast;
    using std::chrono::milliseconds;
    return registeredWallMs + duration_cast<milliseconds>(t - registeredAt).count();
}

} // namespace opconsole
