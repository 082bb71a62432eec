#include "rollout.h"

#include "commandregistry.h"
#include "hub.h"

#include <QTimer>

#include <cmath>

namespace opconsole {

using namespace std::chrono;

QString RolloutOptions::validate() const
{
    if ((batchCount > 0) == (batchPercent > 0))
        return QStringLiteral("a rollout needs one of batch_count or batch_percent");
    if (batchCount < 0 || batchCount > MaxBatchCount)
        return QStringLiteral("batch_count must be 1 to %1").arg(MaxBatchCount);
    if (batchPercent < 0 || batchPercent > 100)
        return QStringLiteral("batch_percent must be 1 to 100");
    if (abortAbovePercent &&
        (!std::isfinite(*abortAbovePercent) || *abortAbovePercent < 0 || *abortAbovePercent > 100))
        return QStringLiteral("abort_above_percent must be 0 to 100");
    if (waveDelay < 0ms || waveDelay > MaxWaveDelay)
        return QStringLiteral("wave_delay must be 0 to 24 h");
    return {};
}

int RolloutOptions::waveSize(int bots) const
{
    if (batchCount > 0)
        return batchCount;
    // Rounded up: 10% of 1,005 bots is waves of 101.
    const qint64 size = (qint64(bots) * batchPercent + 99) / 100;
    return int(std::max<qint64>(1, size));
}

QString rolloutStateName(RolloutState state)
{
    switch (state) {
    case RolloutState::Running:
        return QStringLiteral("running");
    case RolloutState::Paused:
        return QStringLiteral("paused");
    case RolloutState::Completed:
        return QStringLiteral("completed");
    case RolloutState::Stopped:
        return QStringLiteral("stopped");
    case RolloutState::Aborted:
        return QStringLiteral("aborted");
    case RolloutState::ShutDown:
        return QStringLiteral("shut down");
    }
    return {};
}

int rolloutFailures(const FanOutSummary &t)
{
    return t.rejected + t.expired + t.notConnected + t.disconnected + t.refused;
}

namespace {

void addTally(FanOutSummary &into, const FanOutSummary &from)
{
    into.total += from.total;
    into.pending += from.pending;
    into.acked += from.acked;
    into.rejected += from.rejected;
    into.expired += from.expired;
    into.notConnected += from.notConnected;
    into.disconnected += from.disconnected;
    into.cancelled += from.cancelled;
    into.refused += from.refused;
    into.unknown += from.unknown;
    into.lateAcks += from.lateAcks;
    for (size_t i = 0; i < into.lateByState.size(); ++i)
        into.lateByState[i] += from.lateByState[i];
}

QString percentText(double percent)
{
    return QString::number(std::round(percent * 10) / 10, 'g', 6) + QLatin1Char('%');
}

} // namespace

// One rollout. Its fields are under the runner's m_mutex; emitMutex is taken before it (never
// after) by whoever changes the state and tells the observer, so the observer hears of the
// changes one at a time and in order.
struct RolloutRunner::Rollout
{
    enum class Phase : quint8
    {
        Ready,  // the next wave may go (unless paused)
        InWave, // a wave is in flight
        Delay,  // waiting out the wave delay
    };
    QString id;
    QString issuer;
    QStringList bots; // freed when it ends (a fleet of 50,000 ids; 256 ended ones are kept)
    int botCount = 0;
    CommandSpec spec;
    milliseconds timeout{};
    SendOptions options;
    RolloutOptions rollout;
    RolloutObserver observer;
    int waveSize = 1;
    int waves = 0;
    int sent = 0; // waves sent so far
    int lastWaveBots = 0;
    Phase phase = Phase::Ready;
    bool paused = false;
    bool finishTold = false;
    bool cancelInFlight = false; // aborted with AbortAndCancel
    RolloutState state = RolloutState::Running;
    QString reason;
    FanOutSummary done;     // the waves that finished
    FanOutSummary lastWave; // the newest wave's tally once it finished
    QStringList inFlight;   // the commands of the wave in flight
    std::mutex emitMutex;

    bool finished() const { return state >= RolloutState::Completed; }
    int botsNotSent() const { return botCount - std::min(botCount, sent * waveSize); }
    // Its end is told (the "finished" event): what only a running one needs goes.
    void ended()
    {
        finishTold = true;
        observer = {};
        bots = {};
        inFlight = {};
    }
    QString notSentText() const
    {
        if (sent >= waves)
            return {};
        if (sent + 1 == waves)
            return QStringLiteral("; wave %1 not sent").arg(waves);
        return QStringLiteral("; waves %1-%2 not sent").arg(sent + 1).arg(waves);
    }
};

RolloutRunner::RolloutRunner(CommandService &commands, QObject *parent)
    : QObject(parent), m_commands(commands)
{
    commands.hub().addStopStep(Hub::StopPhase::FailCommands, this,
                               [this](const QString &reason) { shutDown(reason); });
}

RolloutRunner::~RolloutRunner() = default;

RolloutStatus RolloutRunner::statusLocked(const Rollout &r, const char *event) const
{
    RolloutStatus s;
    s.fanOut = r.id;
    s.issuer = r.issuer;
    s.event = QLatin1String(event);
    s.state = r.finished() ? r.state : r.paused ? RolloutState::Paused : RolloutState::Running;
    s.wave = r.sent;
    s.waves = r.waves;
    s.waveBots = r.lastWaveBots;
    s.overall = r.done;
    s.overall.id = r.id;
    s.overall.kind = r.spec.name();
    if (r.phase == Rollout::Phase::InWave) {
        s.waveTally.total = s.waveTally.pending = r.lastWaveBots;
        s.overall.total += r.lastWaveBots;
        s.overall.pending += r.lastWaveBots;
    } else {
        s.waveTally = r.lastWave;
    }
    s.waveTally.id = r.id;
    s.waveTally.kind = r.spec.name();
    s.notSent = r.botsNotSent();
    s.reason = r.reason;
    return s;
}

void RolloutRunner::forgetLocked()
{
    // Finished rollouts past MaxRemembered go, oldest first; running ones are bounded by
    // start() and stay.
    int finished = 0;
    for (const auto &[id, r] : m_rollouts)
        finished += r->finished() ? 1 : 0;
    for (auto it = m_order.begin(); finished > MaxRemembered && it != m_order.end();) {
        const auto found = m_rollouts.find(*it);
        if (found == m_rollouts.end() || found->second->finished()) {
            if (found != m_rollouts.end()) {
                m_rollouts.erase(found);
                --finished;
            }
            it = m_order.erase(it);
        } else {
            ++it;
        }
    }
}

RolloutRunner::Started RolloutRunner::start(const QStringList &botIds, const CommandSpec &spec,
                                            milliseconds timeout, SendOptions options,
                                            RolloutOptions rollout, RolloutObserver observer)
{
    Started started;
    if (QString problem = rollout.validate(); !problem.isEmpty()) {
        started.refused = std::move(problem);
        started.why = Started::Refusal::Invalid;
        return started;
    }
    if (m_commands.hub().isStopping()) {
        started.refused = QStringLiteral("hub shutting down");
        started.why = Started::Refusal::ShuttingDown;
        return started;
    }
    auto r = std::make_shared<Rollout>();
    {
        std::lock_guard lock(m_mutex);
        int running = 0;
        for (const auto &[id, other] : m_rollouts)
            running += other->finished() ? 0 : 1;
        if (running >= MaxRunning) {
            started.refused = QStringLiteral("too many rollouts running (%1)").arg(MaxRunning);
            started.why = Started::Refusal::Busy;
            return started;
        }
        // An id this runner still keeps (the service forgets fan-out ids after 100,000 of
        // them; the runner keeps 256 ended rollouts): refused, or its stream would wait
        // for a rollout that is the old one and never runs.
        if (!options.fanOut.isEmpty() && m_rollouts.contains(options.fanOut)) {
            started.id = options.fanOut;
            started.refused = QStringLiteral("fan-out id %1 is in use").arg(options.fanOut);
            started.why = Started::Refusal::Invalid;
            return started;
        }
        if (QString refused = m_commands.reserveFanOut(&options.fanOut); !refused.isEmpty()) {
            started.id = options.fanOut;
            started.refused = std::move(refused);
            started.why = Started::Refusal::Invalid;
            return started;
        }
        if (options.params.isEmpty())
            options.params = spec.paramsJson(); // once for every wave
        r->id = options.fanOut;
        r->issuer = options.issuer;
        r->bots = botIds;
        r->botCount = int(botIds.size());
        r->spec = spec;
        r->timeout = timeout;
        r->options = std::move(options);
        r->rollout = rollout;
        r->observer = std::move(observer);
        r->waveSize = rollout.waveSize(int(botIds.size()));
        r->waves = int((botIds.size() + r->waveSize - 1) / r->waveSize);
        m_rollouts.emplace(r->id, r);
        m_order.push_back(r->id);
        forgetLocked();
        started.id = r->id;
        started.status = statusLocked(*r, "status");
    }
    post(r->id);
    return started;
}

void RolloutRunner::post(const QString &id)
{
    QMetaObject::invokeMethod(
        this, [this, id] { step(id); }, Qt::QueuedConnection);
}

std::shared_ptr<RolloutRunner::Rollout> RolloutRunner::find(const QString &id) const
{
    std::lock_guard lock(m_mutex);
    const auto it = m_rollouts.find(id);
    return it == m_rollouts.end() ? nullptr : it->second;
}

// On the runner's thread: sends the next wave if the rollout is ready for it.
void RolloutRunner::step(const QString &id)
{
    const std::shared_ptr<Rollout> r = find(id);
    if (!r)
        return;
    std::unique_lock emitLock(r->emitMutex);
    RolloutObserver observer;
    RolloutStatus event;
    QStringList bots;
    int wave = 0;
    bool finish = false;
    {
        std::lock_guard lock(m_mutex);
        if (r->finished() || r->phase != Rollout::Phase::Ready || r->paused)
            return;
        observer = r->observer;
        if (m_commands.hub().isStopping()) {
            r->state = RolloutState::ShutDown;
            r->reason = QStringLiteral("hub shutting down after wave %1 of %2%3")
                            .arg(r->sent)
                            .arg(r->waves)
                            .arg(r->notSentText());
            finish = true;
        } else if (r->sent >= r->waves) { // no bots at all
            r->state = RolloutState::Completed;
            r->reason = QStringLiteral("no bots to roll out to");
            finish = true;
        } else {
            bots = r->bots.mid(qsizetype(r->sent) * r->waveSize, r->waveSize);
            wave = ++r->sent;
            r->lastWaveBots = int(bots.size());
            r->phase = Rollout::Phase::InWave;
            event = statusLocked(*r, "wave_started");
        }
        if (finish) {
            r->ended();
            event = statusLocked(*r, "finished");
        }
    }
    if (observer.progress)
        observer.progress(event);
    if (finish)
        return;
    // Sent outside m_mutex (registering takes the registry's lock); an abort that comes
    // meanwhile finds the wave in flight and applies to its commands once they are known.
    const FanOut fan = m_commands.sendToReserved(bots, r->spec, r->timeout, r->options);
    QStringList cancel;
    {
        std::lock_guard lock(m_mutex);
        r->inFlight = fan.commandIds;
        if (r->state == RolloutState::Aborted && r->cancelInFlight)
            cancel = fan.commandIds;
    }
    if (observer.waveSent)
        observer.waveSent(RolloutWave{wave, fan.commandIds, fan.futures});
    emitLock.unlock();
    for (const QString &commandId : cancel)
        m_commands.cancel(commandId, QStringLiteral("rollout %1 aborted").arg(id));
    // The wave's tally finishes once every command of it has; its continuation slot is free.
    QFuture<FanOutSummary>(fan.summary)
        .then(this, [this, id, wave](const FanOutSummary &tally) { waveDone(id, wave, tally); })
        .onCanceled(this, [this, id, wave] {
            // Never seen: every command of a wave finishes exactly once. Should its tally be
            // lost all the same, the rollout ends rather than wait forever.
            waveLost(id, wave);
        });
}

void RolloutRunner::waveLost(const QString &id, int wave)
{
    {
        std::lock_guard lock(m_mutex);
        const auto it = m_rollouts.find(id);
        if (it == m_rollouts.end() || it->second->finished())
            return;
        it->second->state = RolloutState::Aborted;
        it->second->reason = QStringLiteral("the tally of wave %1 was lost%2")
                                 .arg(wave)
                                 .arg(it->second->notSentText());
    }
    waveDone(id, wave, FanOutSummary{});
}

void RolloutRunner::waveDone(const QString &id, int wave, const FanOutSummary &tally)
{
    const std::shared_ptr<Rollout> r = find(id);
    if (!r)
        return;
    std::unique_lock emitLock(r->emitMutex);
    RolloutObserver observer;
    RolloutStatus waveEvent;
    std::optional<RolloutStatus> finishEvent;
    bool wait = false;
    milliseconds delay{};
    {
        std::lock_guard lock(m_mutex);
        if (r->phase != Rollout::Phase::InWave || r->sent != wave)
            return;
        observer = r->observer;
        r->phase = Rollout::Phase::Ready;
        r->inFlight.clear();
        r->lastWave = tally;
        addTally(r->done, tally);
        if (!r->finished()) {
            const int failed = rolloutFailures(tally);
            const double share = tally.total > 0 ? 100.0 * failed / tally.total : 0;
            const auto &above = r->rollout.abortAbovePercent;
            if (above && tally.total > 0 && share > *above) {
                r->state = RolloutState::Stopped;
                r->reason = QStringLiteral("wave %1 of %2: %3 failed (%4 of %5), above %6: "
                                           "stopped%7")
                                .arg(wave)
                                .arg(r->waves)
                                .arg(percentText(share))
                                .arg(failed)
                                .arg(tally.total)
                                .arg(percentText(*above), r->notSentText());
            } else if (r->sent >= r->waves) {
                r->state = RolloutState::Completed;
                r->reason =
                    QStringLiteral("all %1 waves sent: %2").arg(r->waves).arg(r->done.text());
            } else {
                r->phase = Rollout::Phase::Delay;
                wait = true;
                delay = r->rollout.waveDelay;
            }
        }
        waveEvent = statusLocked(*r, "wave_finished");
        if (r->finished() && !r->finishTold) {
            r->ended();
            finishEvent = statusLocked(*r, "finished");
        }
    }
    if (observer.progress) {
        observer.progress(waveEvent);
        if (finishEvent)
            observer.progress(*finishEvent);
    }
    emitLock.unlock();
    if (wait) // on the runner's thread (a queued continuation): the timer is its own
        QTimer::singleShot(delay, this, [this, id] { delayOver(id); });
}

void RolloutRunner::delayOver(const QString &id)
{
    {
        std::lock_guard lock(m_mutex);
        const auto it = m_rollouts.find(id);
        if (it == m_rollouts.end() || it->second->phase != Rollout::Phase::Delay)
            return;
        it->second->phase = Rollout::Phase::Ready;
    }
    step(id); // waits on if paused: resume posts the step then
}

RolloutRunner::Control RolloutRunner::control(const QString &fanOut, RolloutAction action,
                                              const QString &who)
{
    Control result;
    std::shared_ptr<Rollout> r;
    {
        std::lock_guard lock(m_mutex);
        const auto it = m_rollouts.find(fanOut);
        if (it == m_rollouts.end()) {
            result.error = Control::Error::NotFound;
            result.message = QStringLiteral("no rollout %1 on this hub").arg(fanOut);
            return result;
        }
        r = it->second;
    }
    std::unique_lock emitLock(r->emitMutex);
    RolloutObserver observer;
    std::optional<RolloutStatus> finishEvent;
    QStringList cancel;
    bool stepNow = false;
    {
        std::lock_guard lock(m_mutex);
        if (r->finished()) {
            result.error = Control::Error::Finished;
            result.status = statusLocked(*r, "status");
            result.message = QStringLiteral("rollout %1 has ended (%2): %3")
                                 .arg(fanOut, rolloutStateName(r->state), r->reason);
            return result;
        }
        observer = r->observer;
        const char *event = "status";
        switch (action) {
        case RolloutAction::Pause:
            r->paused = true;
            event = "paused";
            break;
        case RolloutAction::Resume:
            r->paused = false;
            stepNow = r->phase == Rollout::Phase::Ready;
            event = "resumed";
            break;
        case RolloutAction::Abort:
        case RolloutAction::AbortAndCancel: {
            const bool inWave = r->phase == Rollout::Phase::InWave;
            const bool cancelling = action == RolloutAction::AbortAndCancel && inWave;
            r->state = RolloutState::Aborted;
            r->cancelInFlight = action == RolloutAction::AbortAndCancel;
            r->reason =
                QStringLiteral("aborted%1 at wave %2 of %3%4%5")
                    .arg(who.isEmpty() ? QString() : QStringLiteral(" by ") + who)
                    .arg(r->sent)
                    .arg(r->waves)
                    .arg(!inWave      ? QString()
                         : cancelling ? QStringLiteral(" (its commands in flight cancelled)")
                                      : QStringLiteral(" (its commands in flight left to "
                                                       "finish)"),
                         r->notSentText());
            if (cancelling)
                cancel = r->inFlight;
            event = "aborted";
            if (!inWave) { // else the end is told when the wave in flight has finished
                r->ended();
                finishEvent = statusLocked(*r, "finished");
            }
            break;
        }
        }
        result.status = statusLocked(*r, event);
    }
    if (observer.progress) {
        if (result.status.event != QLatin1String("aborted"))
            observer.progress(result.status);
        if (finishEvent)
            observer.progress(*finishEvent);
    }
    emitLock.unlock();
    for (const QString &commandId : cancel)
        m_commands.cancel(commandId, QStringLiteral("rollout %1 aborted").arg(fanOut));
    if (stepNow)
        post(fanOut);
    return result;
}

std::optional<RolloutStatus> RolloutRunner::status(const QString &fanOut) const
{
    std::lock_guard lock(m_mutex);
    const auto it = m_rollouts.find(fanOut);
    if (it == m_rollouts.end())
        return std::nullopt;
    return statusLocked(*it->second, "status");
}

void RolloutRunner::shutDown(const QString &reason)
{
    std::vector<std::shared_ptr<Rollout>> running;
    {
        std::lock_guard lock(m_mutex);
        for (const auto &[id, r] : m_rollouts)
            if (!r->finished())
                running.push_back(r);
    }
    for (const auto &r : running) {
        std::lock_guard emitLock(r->emitMutex);
        RolloutObserver observer;
        RolloutStatus event;
        {
            std::lock_guard lock(m_mutex);
            if (r->finished())
                continue;
            r->state = RolloutState::ShutDown;
            r->reason = QStringLiteral("%1 at wave %2 of %3%4")
                            .arg(reason)
                            .arg(r->sent)
                            .arg(r->waves)
                            .arg(r->notSentText());
            observer = std::move(r->observer);
            r->ended();
            event = statusLocked(*r, "finished");
        }
        if (observer.progress)
            observer.progress(event);
    }
}

} // namespace opconsole
