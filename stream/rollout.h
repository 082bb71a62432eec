#pragma once
// Staged rollouts (as `salt -b` and AWS IoT Jobs rollouts): a fan-out sent in waves, stopped
// when a wave fails above a threshold; paused, resumed and aborted while it runs.

#include "commandservice.h"

#include <QFuture>
#include <QObject>
#include <QStringList>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>

namespace opconsole {

struct RolloutOptions
{
    static constexpr int MaxBatchCount = 1'000'000;
    static constexpr std::chrono::milliseconds MaxWaveDelay = std::chrono::hours(24);

    int batchCount = 0;   // bots per wave (1 .. MaxBatchCount); or
    int batchPercent = 0; // percent of the bots per wave, rounded up (1 .. 100)
    // A wave whose failed share is above this (0 .. 100) stops the rollout; none: never.
    std::optional<double> abortAbovePercent;
    std::chrono::milliseconds waveDelay{0}; // between a wave's end and the next wave's start

    // Why these options are refused; empty when fine.
    QString validate() const;
    // Bots per wave for a rollout to `bots` bots (at least 1).
    int waveSize(int bots) const;
};

enum class RolloutState : quint8
{
    Running,
    Paused,
    Completed, // every wave sent and finished
    Stopped,   // a wave failed above the threshold
    Aborted,   // an operator aborted it, or its caller gave up
    ShutDown,  // the hub stopped
};
QString rolloutStateName(RolloutState state);

// The failed share of a wave: rejected, expired, not connected, disconnected and refused
// commands (a command the hub could not deliver counts as failed). Cancelled ones are an
// operator's doing and count as neither failed nor acked.
int rolloutFailures(const FanOutSummary &tally);

struct RolloutStatus
{
    QString fanOut;
    QString issuer;
    QString event; // wave_started, wave_finished, paused, resumed, finished, status
    RolloutState state = RolloutState::Running;
    int wave = 0;  // 1-based: the newest wave sent (0: none yet)
    int waves = 0; // waves in all
    int waveBots = 0;
    FanOutSummary waveTally; // that wave's (final once it finished)
    FanOutSummary overall;   // every wave sent so far (a wave in flight counts as pending)
    int notSent = 0;         // bots of the waves not sent
    QString reason;          // why it ended
    bool finished() const { return state >= RolloutState::Completed; }
};

// One wave's commands, as sendToMany gives them (each future free for one continuation).
struct RolloutWave
{
    int wave = 0; // 1-based
    QStringList commandIds;
    QList<QFuture<CommandOutcome>> futures;
};

// What a rollout tells its starter. Called from the runner's thread (waves) or from the
// thread that controls or stops it, one call at a time per rollout and in the order its
// state changed; the callbacks must not call back into the runner.
struct RolloutObserver
{
    std::function<void(const RolloutWave &)> waveSent;
    std::function<void(const RolloutStatus &)> progress; // the last has event "finished"
};

enum class RolloutAction : quint8
{
    Pause,          // the next wave waits; the one in flight runs to its end
    Resume,         // the next wave goes (after what is left of its delay)
    Abort,          // no further wave; the commands in flight are left to finish
    AbortAndCancel, // the same, and the commands in flight are cancelled
};

// Runs every rollout of one hub. Lives in the thread of its CommandService (the hub's event
// loop): waves are sent and delays timed there (QTimer, steady clock), never on a gRPC thread.
// start() and control() may be called from any thread (gRPC callbacks): a rollout's state is
// under m_mutex, and what happens on its behalf (sending a wave) is posted to the runner's
// thread, which decides under the lock whether it still should, so a wave an abort or the hub's
// stop came before is never sent. Bounded: MaxRunning rollouts at once, the newest
// MaxRemembered finished ones kept for ControlRollout's answers.
class RolloutRunner final : public QObject
{
    Q_DISABLE_COPY_MOVE(RolloutRunner)

public:
    static constexpr int MaxRunning = 64;
    static constexpr int MaxRemembered = 256;

    explicit RolloutRunner(CommandService &commands, QObject *parent = nullptr);
    ~RolloutRunner() override;

    struct Started
    {
        QString id;      // the fan-out id, on every wave's commands
        QString refused; // why nothing was sent (id in use, bad options, too many rollouts)
        // What kind of refusal: the caller's mistake, or the hub's state (a client retries
        // those later; the Operator API answers RESOURCE_EXHAUSTED or UNAVAILABLE).
        enum class Refusal : quint8
        {
            None,
            Invalid,      // bad options or spec, an id in use
            Busy,         // too many rollouts running
            ShuttingDown, // the hub is stopping
        } why = Refusal::None;
        RolloutStatus status;
    };
    // Reserves the fan-out id (options.fanOut, or a new one) and sends the first wave from the
    // runner's thread. options.issuer is the rollout's owner (control()).
    Started start(const QStringList &botIds, const CommandSpec &spec,
                  std::chrono::milliseconds timeout, SendOptions options, RolloutOptions rollout,
                  RolloutObserver observer);

    struct Control
    {
        enum class Error : quint8
        {
            None,
            NotFound,
            Finished, // it had ended: status says how
        };
        Error error = Error::None;
        QString message;
        RolloutStatus status;
    };
    // `who` is said in an abort's reason ("aborted by alice").
    Control control(const QString &fanOut, RolloutAction action, const QString &who = {});
    std::optional<RolloutStatus> status(const QString &fanOut) const;
    // Ends every running rollout ("hub shutting down"): no later wave is sent. Hub::stop calls
    // it in its FailCommands phase.
    void shutDown(const QString &reason);

private:
    struct Rollout;
    void post(const QString &id);
    void step(const QString &id);
    void waveDone(const QString &id, int wave, const FanOutSummary &tally);
    void delayOver(const QString &id);
    void waveLost(const QString &id, int wave);
    RolloutStatus statusLocked(const Rollout &r, const char *event) const;
    void forgetLocked();
    std::shared_ptr<Rollout> find(const QString &id) const; // null when not kept

    CommandService &m_commands;
    mutable std::mutex m_mutex;
    std::unordered_map<QString, std::shared_ptr<Rollout>> m_rollouts;
    std::deque<QString> m_order; // oldest first
};

} // namespace opconsole
