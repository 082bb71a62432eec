#pragma once

#include <QByteArray>
#include <QList>
#include <QMetaType>
#include <QString>

#include <chrono>
#include <optional>

namespace opconsole {

// Deadlines and latencies use the monotonic clock: a wall-clock change must not expire
// or extend anything (seed lesson 6).
using Clock = std::chrono::steady_clock;

// The values are stored in history databases: append new states, never renumber.
enum class CommandState : quint8
{
    Pending,      // registered, waiting for the bot's ack
    Acked,        // the bot acked with success
    Rejected,     // the bot acked with success = false (message and error code in the ack)
    Expired,      // no ack before the deadline
    NotConnected, // the bot was not connected when the command was to be sent
    Disconnected, // the bot's connection dropped while the command was pending
    Cancelled,    // cancelled by an operator or caller (reason given)
    Refused,      // never sent: duplicate or empty id, bad timeout, full queue, shutting down
    // The process holding it stopped (crash, kill -9, power loss) while it was pending: nobody
    // knows whether the bot got it. Set only when history is reopened; a late ack (the bot
    // resends its recent acks when it reconnects) tells what happened after all.
    Unknown,
};
constexpr int CommandStateCount = int(CommandState::Unknown) + 1;

// What the latest change of a record was (CommandOutcome::event). The history writer drops
// Progress first when the disk falls behind; outcomes are never dropped.
enum class ChangeEvent : quint8
{
    Registered,
    Sent,
    Progress,
    Finished, // reached its final state
    LateAck,  // a finished command got a late ack
    Restored, // reloaded from history at start (not a new transition)
};
QString changeEventName(ChangeEvent event);

QString stateName(CommandState state);
bool isFinal(CommandState state);
// The outcomes an operator should look at: everything that is neither pending nor acked.
bool isProblem(CommandState state);

// A plain copy of the bot's CommandAck. The registry is Qt Core only; stream/ converts the
// protobuf message into this, so ui/ and tests never see wire types.
struct CommandAckData
{
    bool success = false;
    QString message;
    int errorCode = 0;
    QByteArray result;          // optional result payload, as the bot sent it
    qint64 botReceivedAtMs = 0; // bot-side wall clock, ms since the epoch; 0 when not given
    qint64 botCompletedAtMs = 0;
};

// One CommandProgress as it arrived.
struct ProgressStep
{
    Clock::time_point at{};
    int percent = 0;
    QString message;
};

// Everything known about one command: what a future delivers when it finishes and what
// snapshot() and the batched changed signal give views.
struct CommandOutcome
{
    CommandState state = CommandState::Pending;
    QString commandId;
    QString botId;
    QString kind;   // what the command is (start, stop, ...), for views; may be empty
    QString reason; // cancel/disconnect/refusal reason, or the bot's message on rejection
    std::optional<CommandAckData> ack;     // the ack that finished it (Acked, Rejected)
    std::optional<CommandAckData> lateAck; // an ack that came after it expired/was cancelled
    Clock::time_point registeredAt{};
    Clock::time_point deadline{};
    Clock::time_point sentAt{};     // epoch when not (yet) written to the stream
    Clock::time_point finishedAt{}; // epoch while pending
    Clock::time_point lateAckAt{};  // epoch when no late ack
    qint64 registeredWallMs = 0;    // wall clock at registration, for display only
    quint64 sequence = 0;           // registration order, unique per registry
    quint64 session = 0;            // the bot session it was sent on; 0 when not sent
    // The change-feed number of this record's latest change: every transition of every command
    // gets the next number of its registry, so a consumer that has seen change n has nothing
    // to apply from a record with change <= n (see ChangeFeed).
    quint64 change = 0;
    ChangeEvent event = ChangeEvent::Registered; // what the latest change was
    QString fanOut; // the fan-out it belongs to (one send to many bots); empty when none
    QString params; // the command's parameters as compact JSON (history, details); may be empty
    QString issuer; // who sent it ("console", "opctl@127.0.0.1:5123", ...); may be empty
    std::chrono::milliseconds timeout{0}; // the timeout it was registered with
    QString hub; // the hub that holds it, for a console attached to several; else empty
    // Where history keeps it, for a record restored from an earlier run (so a late ack updates
    // that row); 0 for a command of this run.
    quint64 historyId = 0;
    int progressPercent = -1; // last CommandProgress, -1 when none
    QString progressMessage;
    // Every CommandProgress in order, the newest MaxProgressSteps of them; older ones are
    // counted in progressDropped.
    QList<ProgressStep> progressSteps;
    int progressDropped = 0;
    static constexpr int MaxProgressSteps = 32;
    // Longest params and issuer kept (longer ones are cut at a character boundary).
    static constexpr int MaxParamsLength = 8192;
    static constexpr int MaxIssuerLength = 256;

    bool ok() const { return state == CommandState::Acked; }
    bool finished() const { return isFinal(state); }
    bool wasSent() const { return sentAt != Clock::time_point{}; }
    bool hasLateAck() const { return lateAck.has_value(); }
    // The bot answered in time: acked or rejected.
    bool answered() const
    {
        return state == CommandState::Acked || state == CommandState::Rejected;
    }
    // How long the bot took to answer, in time or late; none when it never answered (the time
    // to a deadline, a cancel or a disconnect is not a latency).
    std::optional<std::chrono::nanoseconds> answeredIn() const;
    // Round trip from send (or registration, if never marked sent) to finish; zero while pending.
    std::chrono::nanoseconds latency() const;
    // From the deadline to the late ack; zero when there is none.
    std::chrono::nanoseconds lateBy() const;
    // When the command stopped waiting for its ack: its deadline, or the moment it ended
    // before it (cancelled, disconnected, unknown). lateBy() counts from here, so it is never
    // negative.
    Clock::time_point lateFrom() const;
    // Wall-clock time (ms since epoch) of a monotonic time point of this command, for display.
    qint64 wallMs(Clock::time_point t) const;
};

} // namespace opconsole

Q_DECLARE_METATYPE(opconsole::CommandAckData)
Q_DECLARE_METATYPE(opconsole::ChangeEvent)
Q_DECLARE_METATYPE(opconsole::CommandOutcome)
