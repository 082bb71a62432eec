#include "commandregistry.h"

#include <QDateTime>
#include <QMetaMethod>
#include <QRandomGenerator>
#include <QThread>
#include <QTimer>

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <limits>

namespace opconsole {

using namespace std::chrono;

namespace {

// std heap functions build a max-heap; "later deadline is less" makes it a min-heap.
template <typename Item> bool laterDeadline(const Item &a, const Item &b)
{
    return a.deadline > b.deadline;
}

// Forgetting finished commands is not time-critical: waking once per second of them is enough.
constexpr auto ForgetSlack = 1s;

} // namespace

namespace {
const quint64 hashSeed = QRandomGenerator::system()->generate64() | 1;
} // namespace

size_t IdHash::operator()(const QString &id) const
{
    // Multiply-xor over four UTF-16 units at a time, one final avalanche; seeded per process
    // so ids chosen by a bot cannot be crafted to collide.
    const auto *p = reinterpret_cast<const char *>(id.constData());
    size_t bytes = size_t(id.size()) * sizeof(char16_t);
    quint64 h = hashSeed ^ bytes;
    for (; bytes >= 8; bytes -= 8, p += 8) {
        quint64 v;
        std::memcpy(&v, p, 8);
        h = (h ^ v) * 0x9E3779B97F4A7C15ull;
    }
    quint64 tail = 0;
    std::memcpy(&tail, p, bytes);
    h = (h ^ tail) * 0xBF58476D1CE4E5B9ull;
    return size_t(h ^ (h >> 31));
}

QString resolveResultName(ResolveResult result)
{
    switch (result) {
    case ResolveResult::Resolved:
        return QStringLiteral("resolved");
    case ResolveResult::Unknown:
        return QStringLiteral("unknown command");
    case ResolveResult::Duplicate:
        return QStringLiteral("duplicate ack");
    case ResolveResult::Late:
        return QStringLiteral("late ack");
    case ResolveResult::WrongBot:
        return QStringLiteral("ack from the wrong bot");
    }
    return QStringLiteral("unknown");
}

namespace {
const QMetaMethod &changedSignal()
{
    static const QMetaMethod method = QMetaMethod::fromSignal(&CommandRegistry::changed);
    return method;
}

const QMetaMethod &registeredSignal()
{
    static const QMetaMethod method = QMetaMethod::fromSignal(&CommandRegistry::registered);
    return method;
}

const std::array<QMetaMethod, 5> &outcomeSignals()
{
    static const std::array<QMetaMethod, 5> methods = {
        QMetaMethod::fromSignal(&CommandRegistry::resolved),
        QMetaMethod::fromSignal(&CommandRegistry::expired),
        QMetaMethod::fromSignal(&CommandRegistry::cancelled),
        QMetaMethod::fromSignal(&CommandRegistry::failed),
        QMetaMethod::fromSignal(&CommandRegistry::finished),
    };
    return methods;
}
} // namespace

// Owns the one precise timer; lives on the registry's timer thread.
class ExpiryWorker final : public QObject
{
public:
    explicit ExpiryWorker(CommandRegistry *registry) : m_registry(registry)
    {
        m_timer.setTimerType(Qt::PreciseTimer);
        m_timer.setSingleShot(true);
        connect(&m_timer, &QTimer::timeout, this, &ExpiryWorker::tick);
    }

    void tick()
    {
        const Clock::time_point next = m_registry->onTimer();
        if (next == Clock::time_point::max()) {
            m_timer.stop();
            return;
        }
        const auto now = Clock::now();
        const qint64 ms = next <= now ? 0 : ceil<milliseconds>(next - now).count();
        m_timer.start(int(std::min<qint64>(ms, 3'600'000)));
    }

private:
    CommandRegistry *m_registry;
    QTimer m_timer{this};
};

CommandRegistry::CommandRegistry(QObject *parent)
    : QObject(parent),
      // Wall-clock times are derived from the monotonic clock, fixed at construction: they are
      // for display only and cost nothing per command.
      m_wallOffsetMs(QDateTime::currentMSecsSinceEpoch() -
                     duration_cast<milliseconds>(Clock::now().time_since_epoch()).count()),
      m_timerThread(std::make_unique<QThread>())
{
    qRegisterMetaType<CommandOutcome>();
    qRegisterMetaType<CommandAckData>();
    qRegisterMetaType<ResolveResult>();
    m_timerThread->setObjectName(QStringLiteral("registry-timer"));
    m_worker = new ExpiryWorker(this);
    m_worker->moveToThread(m_timerThread.get());
    connect(m_timerThread.get(), &QThread::finished, m_worker, &QObject::deleteLater);
    m_timerThread->start(QThread::HighPriority);
}

CommandRegistry::~CommandRegistry()
{
    {
        std::lock_guard lock(m_mutex);
        m_shuttingDown = true;
    }
    cancelAll(QStringLiteral("registry destroyed"));
    m_timerThread->quit();
    m_timerThread->wait();
    {
        std::lock_guard lock(m_completions.mutex);
        m_completions.stopping = true; // the thread drains what is queued, then ends
        m_completions.wake.notify_one();
    }
    if (m_completions.thread.joinable())
        m_completions.thread.join();
}

void CommandRegistry::runCompletions()
{
    std::unique_lock lock(m_completions.mutex);
    for (;;) {
        m_completions.wake.wait(
            lock, [this] { return m_completions.stopping || !m_completions.tasks.empty(); });
        if (m_completions.tasks.empty())
            return; // stopping, and drained
        std::function<void()> task = std::move(m_completions.tasks.front());
        m_completions.tasks.pop_front();
        lock.unlock();
        task();
        lock.lock();
    }
}

namespace {
// Cuts at most `max` UTF-16 units without splitting a surrogate pair.
QString cut(const QString &text, qsizetype max)
{
    if (text.size() <= max)
        return text;
    qsizetype n = max;
    if (n > 0 && text.at(n - 1).isHighSurrogate())
        --n;
    return text.left(n);
}
} // namespace

QFuture<CommandOutcome> CommandRegistry::registerCommand(const QString &commandId,
                                                         const QString &botId, milliseconds timeout,
                                                         const QString &kind, const QString &fanOut)
{
    return registerCommand(commandId, botId, timeout, CommandLabels{kind, fanOut, {}, {}});
}

QFuture<CommandOutcome> CommandRegistry::registerCommand(const QString &commandId,
                                                         const QString &botId, milliseconds timeout,
                                                         const CommandLabels &labels)
{
    QPromise<CommandOutcome> promise;
    QFuture<CommandOutcome> future = promise.future();
    const QString refusal = insert(commandId, botId, timeout, labels, &promise);
    if (refusal.isEmpty())
        return future;
    // Refused: insert() took the promise only had it registered, so it is still ours.
    CommandOutcome outcome;
    outcome.state = CommandState::Refused;
    outcome.commandId = commandId;
    outcome.botId = botId;
    outcome.kind = labels.kind;
    outcome.fanOut = labels.fanOut;
    outcome.params = cut(labels.params, CommandOutcome::MaxParamsLength);
    outcome.issuer = cut(labels.issuer, CommandOutcome::MaxIssuerLength);
    outcome.timeout = timeout;
    outcome.event = ChangeEvent::Finished;
    outcome.reason = refusal;
    outcome.registeredAt = outcome.finishedAt = Clock::now();
    outcome.registeredWallMs = QDateTime::currentMSecsSinceEpoch();
    promise.addResult(std::move(outcome));
    promise.finish();
    return future;
}

bool CommandRegistry::trackCommand(const QString &commandId, const QString &botId,
                                   milliseconds timeout, const QString &kind, QString *error,
                                   const QString &fanOut)
{
    return trackCommand(commandId, botId, timeout, CommandLabels{kind, fanOut, {}, {}}, error);
}

bool CommandRegistry::trackCommand(const QString &commandId, const QString &botId,
                                   milliseconds timeout, const CommandLabels &labels,
                                   QString *error)
{
    const QString refusal = insert(commandId, botId, timeout, labels, nullptr);
    if (error)
        *error = refusal;
    return refusal.isEmpty();
}

QString CommandRegistry::insert(const QString &commandId, const QString &botId,
                                milliseconds timeout, const CommandLabels &labels,
                                QPromise<CommandOutcome> *promise)
{
    auto refuse = [&](const QString &reason) {
        {
            std::lock_guard lock(m_mutex);
            ++m_counters.refusedRegistrations;
        }
        emit registrationRefused(commandId, botId, reason);
        return reason;
    };
    if (commandId.isEmpty())
        return refuse(QStringLiteral("empty command id"));
    if (commandId.size() > MaxIdLength)
        return refuse(QStringLiteral("command id longer than %1 characters").arg(MaxIdLength));
    if (botId.isEmpty())
        return refuse(QStringLiteral("empty bot id"));
    if (timeout <= milliseconds::zero())
        return refuse(QStringLiteral("timeout must be positive, got %1 ms").arg(timeout.count()));

    const quint32 tag = tagOf(commandId);
    const auto now = Clock::now();
    const auto wallMs =
        m_wallOffsetMs + duration_cast<milliseconds>(now.time_since_epoch()).count();
    bool wake = false;
    bool flush = false;
    {
        std::unique_lock lock(m_mutex);
        if (m_shuttingDown) {
            lock.unlock();
            return refuse(QStringLiteral("registry is shutting down"));
        }
        if (timeout > m_maxTimeout) {
            const milliseconds max = m_maxTimeout;
            lock.unlock();
            return refuse(QStringLiteral("timeout of %1 ms is over the limit of %2 ms")
                              .arg(timeout.count())
                              .arg(max.count()));
        }
        const auto [cell, found] = m_index.probe(
            commandId, tag, [this](quint32 slot) -> const QString & { return idAt(slot); });
        if (found) {
            const CommandState state = slotLocked(m_index.slotAt(cell)).rec.state;
            lock.unlock();
            return refuse(
                state == CommandState::Pending
                    ? QStringLiteral("duplicate command id: '%1' is pending").arg(commandId)
                    : QStringLiteral("duplicate command id: '%1' was used recently (%2)")
                          .arg(commandId, stateName(state)));
        }
        BotIndex &bot = m_bots[botId];
        if (m_maxPendingPerBot > 0 && bot.pending >= m_maxPendingPerBot) {
            lock.unlock();
            return refuse(QStringLiteral("%1 is at its cap of commands in flight (%2)")
                              .arg(botId)
                              .arg(m_maxPendingPerBot));
        }
        const quint32 slot = allocateSlotLocked();
        m_index.place(cell, tag, slot);
        Entry &entry = slotLocked(slot);
        entry.slot = slot;
        entry.tag = tag;
        CommandOutcome &rec = entry.rec;
        rec.commandId = commandId;
        rec.botId = botId;
        rec.kind = labels.kind;
        rec.fanOut = labels.fanOut;
        rec.params = cut(labels.params, CommandOutcome::MaxParamsLength);
        rec.issuer = cut(labels.issuer, CommandOutcome::MaxIssuerLength);
        rec.timeout = timeout;
        rec.registeredAt = now;
        rec.deadline = now + timeout;
        rec.registeredWallMs = wallMs;
        rec.sequence = m_nextSequence++;
        if (promise)
            entry.promise.emplace(std::move(*promise));

        m_heap.push_back({rec.deadline, {rec.sequence, entry.slot}});
        std::push_heap(m_heap.begin(), m_heap.end(), laterDeadline<HeapItem>);
        if (rec.deadline < m_armedFor) {
            m_armedFor = rec.deadline;
            wake = true;
        }
        flush = noteChangeLocked(rec, ChangeEvent::Registered);

        entry.bot = &bot;
        bot.refs.push_back({rec.sequence, entry.slot});
        ++bot.pending;
        if (bot.refs.size() > 2 * size_t(bot.pending) + 32)
            compactBotLocked(bot);
        ++m_pending;
        ++m_counters.registered;
        if (m_heap.size() > 2 * size_t(m_pending) + 1024)
            compactHeapLocked();
        m_order.push_back({rec.sequence, entry.slot});
        if (m_order.size() > 2 * m_index.size() + 1024)
            compactOrderLocked();
        // Bots with nothing pending are swept once the map has doubled since the last sweep:
        // amortised O(1) per registration, however many bots one fan-out names.
        if (m_bots.size() > m_botsCompactAt) {
            std::erase_if(m_bots, [](const auto &bot) { return bot.second.pending == 0; });
            m_botsCompactAt = std::max(BotIndexCompactMin, 2 * m_bots.size());
        }
    }
    if (wake)
        wakeTimer();
    if (flush)
        scheduleFlush();
    refreshListeners();
    if (listening(m_registeredReceivers))
        emit registered(commandId, botId);
    return {};
}

ResolveResult CommandRegistry::resolveCommand(const QString &commandId, const QString &fromBotId,
                                              const CommandAckData &ack)
{
    return resolve(commandId, fromBotId, ack, false);
}

ResolveResult CommandRegistry::applyResentAck(const QString &commandId, const QString &fromBotId,
                                              const CommandAckData &ack)
{
    return resolve(commandId, fromBotId, ack, true);
}

ResolveResult CommandRegistry::resolve(const QString &commandId, const QString &fromBotId,
                                       const CommandAckData &ack, bool resent)
{
    const quint32 tag = tagOf(commandId); // hashed before the lock
    const auto now = Clock::now();
    std::optional<Completion> completion;
    std::optional<CommandOutcome> late;
    ResolveResult result;
    bool flush = false;
    {
        std::lock_guard lock(m_mutex);
        Entry *entry = findLocked(commandId, tag);
        if (!entry) {
            ++(resent ? m_counters.resentAcksIgnored : m_counters.unknownAcks);
            result = ResolveResult::Unknown;
        } else if (entry->rec.botId != fromBotId) {
            ++(resent ? m_counters.resentAcksIgnored : m_counters.wrongBotAcks);
            result = ResolveResult::WrongBot;
        } else if (entry->rec.state == CommandState::Pending) {
            if (resent)
                ++m_counters.resentAcksApplied;
            entry->rec.ack = ack;
            const auto state = ack.success ? CommandState::Acked : CommandState::Rejected;
            completion.emplace(
                finishLocked(*entry, state, ack.success ? QString() : ack.message, now, flush));
            forgetOldLocked(now);
            result = ResolveResult::Resolved;
        } else if (entry->rec.ack || entry->rec.lateAck ||
                   (resent && (entry->rec.state == CommandState::Refused ||
                               entry->rec.state == CommandState::NotConnected))) {
            // (Refused and not connected commands were never sent: a resent ack cannot be
            // theirs.)
            ++(resent ? m_counters.resentAcksIgnored : m_counters.duplicateAcks);
            result = ResolveResult::Duplicate;
        } else {
            entry->rec.lateAck = ack;
            entry->rec.lateAckAt = now;
            ++m_counters.lateAcks;
            if (resent)
                ++m_counters.resentAcksApplied;
            flush = noteChangeLocked(entry->rec, ChangeEvent::LateAck);
            late = entry->rec;
            result = ResolveResult::Late;
        }
    }
    if (flush)
        scheduleFlush();
    if (completion)
        complete(*completion);
    else if (late)
        emit lateAck(*late);
    else if (!resent)
        emit ackRefused(commandId, fromBotId, result);
    return result;
}

int CommandRegistry::restore(const QList<CommandOutcome> &records)
{
    int restored = 0;
    bool flush = false;
    {
        std::lock_guard lock(m_mutex);
        const auto now = Clock::now();
        for (const CommandOutcome &from : records) {
            if (!from.finished() || from.commandId.isEmpty() ||
                from.commandId.size() > MaxIdLength || from.botId.isEmpty())
                continue;
            const quint32 tag = tagOf(from.commandId);
            const auto [cell, found] =
                m_index.probe(from.commandId, tag,
                              [this](quint32 slot) -> const QString & { return idAt(slot); });
            if (found)
                continue;
            const quint32 slot = allocateSlotLocked();
            m_index.place(cell, tag, slot);
            Entry &entry = slotLocked(slot);
            entry.slot = slot;
            entry.tag = tag;
            entry.rec = from;
            entry.rec.sequence = m_nextSequence++;
            entry.rec.hub.clear();
            if (noteChangeLocked(entry.rec, ChangeEvent::Restored))
                flush = true;
            m_remembered.push_back({now, {entry.rec.sequence, slot}});
            m_order.push_back({entry.rec.sequence, slot});
            ++m_counters.restored;
            ++restored;
        }
        forgetOldLocked(now);
    }
    if (flush)
        scheduleFlush();
    return restored;
}

bool CommandRegistry::markSent(const QString &commandId, quint64 session,
                               std::optional<milliseconds> responseTimeout)
{
    const quint32 tag = tagOf(commandId); // hashed before the lock
    bool flush = false;
    bool wake = false;
    {
        std::lock_guard lock(m_mutex);
        Entry *entry = findLocked(commandId, tag);
        if (!entry || entry->rec.state != CommandState::Pending)
            return false;
        const auto now = Clock::now();
        entry->rec.sentAt = now;
        entry->rec.session = session;
        if (responseTimeout) {
            // The old heap item goes stale: expireDue skips items whose deadline moved.
            entry->rec.deadline = now + std::clamp(*responseTimeout, 1ms, m_maxTimeout);
            m_heap.push_back({entry->rec.deadline, {entry->rec.sequence, entry->slot}});
            std::push_heap(m_heap.begin(), m_heap.end(), laterDeadline<HeapItem>);
            if (entry->rec.deadline < m_armedFor) {
                m_armedFor = entry->rec.deadline;
                wake = true;
            }
        }
        flush = noteChangeLocked(entry->rec, ChangeEvent::Sent);
    }
    if (wake)
        wakeTimer();
    if (flush)
        scheduleFlush();
    return true;
}

bool CommandRegistry::reportProgress(const QString &commandId, const QString &fromBotId,
                                     int percent, const QString &message)
{
    const quint32 tag = tagOf(commandId); // hashed before the lock
    bool flush = false;
    {
        std::lock_guard lock(m_mutex);
        Entry *entry = findLocked(commandId, tag);
        if (!entry || entry->rec.botId != fromBotId || entry->rec.state != CommandState::Pending) {
            ++m_counters.unknownProgress;
            return false;
        }
        CommandOutcome &rec = entry->rec;
        rec.progressPercent = std::clamp(percent, 0, 100);
        rec.progressMessage = message;
        if (rec.progressSteps.size() >= CommandOutcome::MaxProgressSteps) {
            rec.progressSteps.removeFirst();
            ++rec.progressDropped;
        }
        rec.progressSteps.append({Clock::now(), rec.progressPercent, message});
        flush = noteChangeLocked(entry->rec, ChangeEvent::Progress);
    }
    if (flush)
        scheduleFlush();
    emit progress(commandId, std::clamp(percent, 0, 100), message);
    return true;
}

bool CommandRegistry::cancelCommand(const QString &commandId, const QString &reason)
{
    return failCommand(commandId, CommandState::Cancelled, reason);
}

bool CommandRegistry::failCommand(const QString &commandId, CommandState state,
                                  const QString &reason)
{
    const quint32 tag = tagOf(commandId); // hashed before the lock
    if (state == CommandState::Pending || state == CommandState::Acked ||
        state == CommandState::Rejected)
        return false;
    const auto now = Clock::now();
    std::optional<Completion> completion;
    bool flush = false;
    {
        std::lock_guard lock(m_mutex);
        Entry *entry = findLocked(commandId, tag);
        if (!entry || entry->rec.state != CommandState::Pending)
            return false;
        completion.emplace(finishLocked(*entry, state, reason, now, flush));
        forgetOldLocked(now);
    }
    if (flush)
        scheduleFlush();
    complete(*completion);
    return true;
}

int CommandRegistry::failBot(const QString &botId, const QString &reason,
                             std::optional<quint64> session)
{
    const auto now = Clock::now();
    std::vector<Completion> completions;
    bool flush = false;
    {
        std::lock_guard lock(m_mutex);
        const auto botIt = m_bots.find(botId);
        if (botIt == m_bots.end())
            return 0;
        std::vector<SlotRef> refs = std::move(botIt->second.refs);
        botIt->second.refs.clear();
        std::vector<SlotRef> keep;
        for (const SlotRef ref : refs) {
            Entry *entry = pendingLocked(ref);
            if (!entry)
                continue;
            if (session && entry->rec.session != *session) {
                keep.push_back(ref);
                continue;
            }
            completions.push_back(
                finishLocked(*entry, CommandState::Disconnected, reason, now, flush));
        }
        botIt->second.refs = std::move(keep);
        forgetOldLocked(now);
    }
    if (flush)
        scheduleFlush();
    for (Completion &c : completions)
        complete(c);
    return int(completions.size());
}

int CommandRegistry::cancelAll(const QString &reason)
{
    return failAll(CommandState::Cancelled, reason);
}

void CommandRegistry::flushChanges()
{
    if (QThread::currentThread() == thread())
        flushBatch();
}

int CommandRegistry::failAll(CommandState state, const QString &reason)
{
    if (state == CommandState::Pending || state == CommandState::Acked ||
        state == CommandState::Rejected)
        return 0;
    const auto now = Clock::now();
    std::vector<Completion> completions;
    bool flush = false;
    {
        std::lock_guard lock(m_mutex);
        for (quint32 slot = 0; slot < m_slotCount; ++slot) {
            Entry &entry = slotLocked(slot);
            if (entry.rec.sequence != 0 && entry.rec.state == CommandState::Pending)
                completions.push_back(finishLocked(entry, state, reason, now, flush));
        }
        forgetOldLocked(now);
    }
    if (flush)
        scheduleFlush();
    for (Completion &c : completions)
        complete(c);
    return int(completions.size());
}

int CommandRegistry::cleanupExpired()
{
    return expireDue(Clock::now());
}

int CommandRegistry::expireDue(Clock::time_point now, bool offload)
{
    std::vector<Completion> completions;
    bool flush = false;
    {
        std::lock_guard lock(m_mutex);
        while (!m_heap.empty() && m_heap.front().deadline <= now) {
            std::pop_heap(m_heap.begin(), m_heap.end(), laterDeadline<HeapItem>);
            const SlotRef ref = m_heap.back().ref;
            const Clock::time_point itemDeadline = m_heap.back().deadline;
            m_heap.pop_back();
            Entry *entry = pendingLocked(ref);
            if (!entry || entry->rec.deadline != itemDeadline)
                continue; // finished earlier, or its deadline moved: the item was left behind
            completions.push_back(finishLocked(*entry, CommandState::Expired,
                                               QStringLiteral("no ack within the timeout"), now,
                                               flush));
        }
        forgetOldLocked(now);
    }
    if (flush)
        scheduleFlush();
    const int count = int(completions.size());
    if (offload && count > 0) {
        auto batch = std::make_shared<std::vector<Completion>>(std::move(completions));
        std::lock_guard lock(m_completions.mutex);
        if (!m_completions.thread.joinable())
            m_completions.thread = std::thread([this] { runCompletions(); });
        m_completions.tasks.push_back([this, batch] {
            for (Completion &c : *batch)
                complete(c);
        });
        m_completions.wake.notify_one();
        return count;
    }
    for (Completion &c : completions)
        complete(c);
    return count;
}

Clock::time_point CommandRegistry::onTimer()
{
    expireDue(Clock::now(), true);
    std::lock_guard lock(m_mutex);
    m_armedFor = nextWakeLocked();
    return m_armedFor;
}

Clock::time_point CommandRegistry::nextWakeLocked()
{
    // Armed at the top of the heap even when that item is stale (its command finished): a
    // spurious wake-up costs one pass, while popping stale items here would move the armed
    // time later and make every following registration wake this thread again.
    Clock::time_point next = m_heap.empty() ? Clock::time_point::max() : m_heap.front().deadline;
    if (!m_remembered.empty())
        next = std::min(next, m_remembered.front().finishedAt + m_lateAckWindow + ForgetSlack);
    return next;
}

CommandRegistry::Completion CommandRegistry::finishLocked(Entry &entry, CommandState state,
                                                          const QString &reason,
                                                          Clock::time_point now, bool &flush)
{
    CommandOutcome &rec = entry.rec;
    rec.state = state;
    rec.reason = reason;
    rec.finishedAt = now;
    --m_pending;
    if (--entry.bot->pending == 0)
        entry.bot->refs.clear();
    entry.bot = nullptr;
    switch (state) {
    case CommandState::Acked:
        ++m_counters.acked;
        break;
    case CommandState::Rejected:
        ++m_counters.rejected;
        break;
    case CommandState::Expired:
        ++m_counters.expired;
        break;
    case CommandState::Cancelled:
        ++m_counters.cancelled;
        break;
    case CommandState::Disconnected:
        ++m_counters.disconnected;
        break;
    case CommandState::NotConnected:
        ++m_counters.notConnected;
        break;
    case CommandState::Refused:
    case CommandState::Unknown:
    case CommandState::Pending:
        ++m_counters.failedOther;
        break;
    }
    if (noteChangeLocked(rec, ChangeEvent::Finished))
        flush = true;
    m_remembered.push_back({now, {rec.sequence, entry.slot}});
    Completion completion;
    if (entry.promise) {
        completion.promise.emplace(std::move(*entry.promise));
        entry.promise.reset();
    }
    if (completion.promise || listening(m_outcomeReceivers))
        completion.outcome = rec;
    return completion;
}

void CommandRegistry::forgetOldLocked(Clock::time_point now)
{
    while (!m_remembered.empty()) {
        const Remembered &oldest = m_remembered.front();
        if (m_remembered.size() <= size_t(m_maxRemembered) &&
            oldest.finishedAt + m_lateAckWindow > now)
            break;
        if (pendingOrRememberedLocked(oldest.ref))
            forgetLocked(oldest.ref.slot);
        m_remembered.pop_front();
    }
}

void CommandRegistry::compactHeapLocked()
{
    std::erase_if(m_heap, [this](const HeapItem &item) {
        const Entry *entry = pendingLocked(item.ref);
        return !entry || entry->rec.deadline != item.deadline;
    });
    std::make_heap(m_heap.begin(), m_heap.end(), laterDeadline<HeapItem>);
}

void CommandRegistry::compactOrderLocked()
{
    std::erase_if(m_order, [this](const SlotRef ref) { return !pendingOrRememberedLocked(ref); });
}

void CommandRegistry::compactBotLocked(BotIndex &bot)
{
    std::erase_if(bot.refs, [this](const SlotRef ref) { return !pendingLocked(ref); });
}

CommandRegistry::Entry *CommandRegistry::pendingLocked(SlotRef ref)
{
    if (ref.slot >= m_slotCount)
        return nullptr; // its chunk was released
    Entry &entry = slotLocked(ref.slot);
    return entry.rec.sequence == ref.sequence && entry.rec.state == CommandState::Pending ? &entry
                                                                                          : nullptr;
}

quint32 CommandRegistry::tagOf(const QString &commandId)
{
    return detail::SlotIndex::tagOf(IdHash{}(commandId));
}

quint32 CommandRegistry::indexedSlotLocked(const QString &commandId, quint32 tag) const
{
    return m_index.find(commandId, tag,
                        [this](quint32 slot) -> const QString & { return idAt(slot); });
}

bool CommandRegistry::pendingOrRememberedLocked(SlotRef ref)
{
    return ref.slot < m_slotCount && slotLocked(ref.slot).rec.sequence == ref.sequence;
}

CommandRegistry::Entry *CommandRegistry::findLocked(const QString &commandId, quint32 tag)
{
    const quint32 slot = indexedSlotLocked(commandId, tag);
    return slot == detail::SlotIndex::None ? nullptr : &slotLocked(slot);
}

quint32 CommandRegistry::allocateSlotLocked()
{
    quint32 slot;
    if (!m_freeSlots.empty()) {
        std::pop_heap(m_freeSlots.begin(), m_freeSlots.end(), std::greater<>{});
        slot = m_freeSlots.back();
        m_freeSlots.pop_back();
    } else {
        if (m_slotCount % ChunkSize == 0) {
            m_chunks.push_back(std::make_unique<Entry[]>(ChunkSize));
            m_chunkUsed.push_back(0);
        }
        slot = m_slotCount++;
    }
    ++m_chunkUsed[slot / ChunkSize];
    return slot;
}

void CommandRegistry::forgetLocked(quint32 slot)
{
    Entry &entry = slotLocked(slot);
    m_index.erase(entry.tag, slot);
    entry.rec = CommandOutcome{}; // sequence 0: every SlotRef to it is now stale
    entry.promise.reset();
    entry.bot = nullptr;
    m_freeSlots.push_back(slot);
    std::push_heap(m_freeSlots.begin(), m_freeSlots.end(), std::greater<>{});
    if (--m_chunkUsed[slot / ChunkSize] == 0)
        releaseEmptyChunksLocked();
}

void CommandRegistry::releaseEmptyChunksLocked()
{
    // Only when at least a quarter of the slots can go at once: each release costs one pass
    // over the free slots, which this pays for.
    size_t empty = 0;
    while (empty < m_chunkUsed.size() && m_chunkUsed[m_chunkUsed.size() - 1 - empty] == 0)
        ++empty;
    if (empty == 0 || empty * 4 < m_chunks.size())
        return;
    // Heap items and bot refs may still name these slots: pendingLocked() checks the bound.
    for (size_t i = 0; i < empty; ++i) {
        m_chunks.pop_back();
        m_chunkUsed.pop_back();
    }
    m_slotCount = quint32(m_chunks.size()) * ChunkSize;
    std::erase_if(m_freeSlots, [this](quint32 slot) { return slot >= m_slotCount; });
    std::make_heap(m_freeSlots.begin(), m_freeSlots.end(), std::greater<>{});
}

bool CommandRegistry::noteChangeLocked(CommandOutcome &rec, ChangeEvent event)
{
    rec.change = ++m_lastChange;
    rec.event = event;
    if (!listening(m_changedReceivers))
        return false; // nobody follows batches: collect nothing
    m_batch.append(rec);
    if (m_flushPosted)
        return false;
    m_flushPosted = true;
    return true;
}

void CommandRegistry::complete(Completion &completion)
{
    refreshListeners();
    const bool listened = listening(m_outcomeReceivers);
    if (completion.promise) {
        // Nobody would see a copy: move the outcome into the future.
        if (listened)
            completion.promise->addResult(completion.outcome);
        else
            completion.promise->addResult(std::move(completion.outcome));
        completion.promise->finish();
    }
    if (!listened)
        return;
    const CommandOutcome &outcome = completion.outcome;
    switch (outcome.state) {
    case CommandState::Acked:
    case CommandState::Rejected:
        emit resolved(outcome);
        break;
    case CommandState::Expired:
        emit expired(outcome);
        break;
    case CommandState::Cancelled:
        emit cancelled(outcome);
        break;
    case CommandState::NotConnected:
    case CommandState::Disconnected:
    case CommandState::Refused:
    case CommandState::Unknown:
    case CommandState::Pending:
        emit failed(outcome);
        break;
    }
    emit finished(outcome);
}

void CommandRegistry::scheduleFlush()
{
    QMetaObject::invokeMethod(this, &CommandRegistry::flushBatch, Qt::QueuedConnection);
}

void CommandRegistry::flushBatch()
{
    QList<CommandOutcome> batch;
    {
        std::lock_guard lock(m_mutex);
        batch.swap(m_batch);
        m_flushPosted = false;
    }
    refreshListeners();
    if (!batch.isEmpty() && listening(m_changedReceivers))
        emit changed(batch);
}

void CommandRegistry::wakeTimer()
{
    QMetaObject::invokeMethod(m_worker, &ExpiryWorker::tick, Qt::QueuedConnection);
}

// Counting receivers lets the hot path skip copies and batches that nobody would see.
// Qt calls connectNotify() and disconnectNotify() with its own signal-slot mutex held, also from
// a receiver's destructor, so they must not call back into QObject (isSignalConnected() there
// deadlocks when two objects share a mutex of Qt's pool). They only count and mark the counts
// stale; refreshListeners() recounts later, with no lock held.
void CommandRegistry::connectNotify(const QMetaMethod &signal)
{
    if (signal == changedSignal())
        m_changedReceivers.fetch_add(1);
    else if (signal == registeredSignal())
        m_registeredReceivers.fetch_add(1);
    else if (std::ranges::find(outcomeSignals(), signal) != outcomeSignals().end())
        m_outcomeReceivers.fetch_add(1);
    else
        return;
    m_listenersStale.store(true); // after the count: a recount racing with us runs again
}

void CommandRegistry::disconnectNotify(const QMetaMethod &signal)
{
    // An invalid signal means "all of them"; one disconnect may remove several connections.
    if (signal.isValid() && signal != changedSignal() && signal != registeredSignal() &&
        std::ranges::find(outcomeSignals(), signal) == outcomeSignals().end())
        return;
    m_listenersStale.store(true);
}

bool CommandRegistry::listening(const std::atomic<int> &receivers) const
{
    // While the counts are stale, assume a listener: a spare copy is cheap, a lost signal is not.
    return m_listenersStale.load(std::memory_order_relaxed) ||
           receivers.load(std::memory_order_relaxed) > 0;
}

void CommandRegistry::refreshListeners()
{
    if (!m_listenersStale.load(std::memory_order_relaxed) || !m_listenersStale.exchange(false))
        return;
    m_changedReceivers.store(isSignalConnected(changedSignal()) ? 1 : 0);
    m_registeredReceivers.store(isSignalConnected(registeredSignal()) ? 1 : 0);
    m_outcomeReceivers.store(int(std::ranges::count_if(
        outcomeSignals(), [this](const QMetaMethod &m) { return isSignalConnected(m); })));
}

int CommandRegistry::pendingCount() const
{
    std::lock_guard lock(m_mutex);
    return m_pending;
}

int CommandRegistry::pendingCount(const QString &botId) const
{
    std::lock_guard lock(m_mutex);
    const auto it = m_bots.find(botId);
    return it == m_bots.end() ? 0 : it->second.pending;
}

QStringList CommandRegistry::pendingIds() const
{
    std::lock_guard lock(m_mutex);
    QStringList ids;
    ids.reserve(m_pending);
    for (quint32 slot = 0; slot < m_slotCount; ++slot) {
        const Entry &entry = m_chunks[slot / ChunkSize][slot % ChunkSize];
        if (entry.rec.sequence != 0 && entry.rec.state == CommandState::Pending)
            ids.append(entry.rec.commandId);
    }
    return ids;
}

std::optional<CommandOutcome> CommandRegistry::find(const QString &commandId) const
{
    const quint32 tag = tagOf(commandId);
    std::lock_guard lock(m_mutex);
    const quint32 slot = indexedSlotLocked(commandId, tag);
    if (slot == detail::SlotIndex::None)
        return std::nullopt;
    return m_chunks[slot / ChunkSize][slot % ChunkSize].rec;
}

QList<CommandOutcome> CommandRegistry::snapshot() const
{
    return page(0, std::numeric_limits<int>::max());
}

QList<CommandOutcome>
CommandRegistry::page(quint64 after, int limit,
                      const std::function<bool(const CommandOutcome &)> &filter, bool *more) const
{
    QList<CommandOutcome> records;
    if (more)
        *more = false;
    std::lock_guard lock(m_mutex);
    auto it = std::upper_bound(m_order.begin(), m_order.end(), after,
                               [](quint64 seq, const SlotRef &ref) { return seq < ref.sequence; });
    if (limit < std::numeric_limits<int>::max())
        records.reserve(limit);
    for (; it != m_order.end(); ++it) {
        if (it->slot >= m_slotCount)
            continue; // its chunk was released
        const CommandOutcome &rec = m_chunks[it->slot / ChunkSize][it->slot % ChunkSize].rec;
        if (rec.sequence != it->sequence || (filter && !filter(rec)))
            continue; // forgotten (slot reused or free), or filtered out
        if (records.size() >= limit) {
            if (more)
                *more = true;
            break;
        }
        records.append(rec);
    }
    return records;
}

RegistryCounters CommandRegistry::counters() const
{
    std::lock_guard lock(m_mutex);
    return m_counters;
}

quint64 CommandRegistry::lastChange() const
{
    std::lock_guard lock(m_mutex);
    return m_lastChange;
}

RegistrySizes CommandRegistry::sizes() const
{
    std::lock_guard lock(m_mutex);
    RegistrySizes sizes;
    sizes.entries = qsizetype(m_index.size());
    sizes.heapItems = qsizetype(m_heap.size());
    sizes.remembered = qsizetype(m_remembered.size());
    for (const auto &[botId, bot] : m_bots)
        sizes.botIndexIds += qsizetype(bot.refs.size());
    sizes.batched = m_batch.size();
    sizes.botIndexBots = qsizetype(m_bots.size());
    sizes.entrySlots = qsizetype(m_slotCount);
    return sizes;
}

void CommandRegistry::setLateAckWindow(milliseconds window)
{
    {
        std::lock_guard lock(m_mutex);
        m_lateAckWindow = std::max(window, milliseconds::zero());
        forgetOldLocked(Clock::now());
    }
    wakeTimer(); // the next forgetting may now be due earlier
}

milliseconds CommandRegistry::lateAckWindow() const
{
    std::lock_guard lock(m_mutex);
    return m_lateAckWindow;
}

void CommandRegistry::setMaxRemembered(int count)
{
    std::lock_guard lock(m_mutex);
    m_maxRemembered = std::max(0, count);
    forgetOldLocked(Clock::now());
}

void CommandRegistry::setMaxTimeout(milliseconds timeout)
{
    std::lock_guard lock(m_mutex);
    m_maxTimeout = std::clamp(timeout, milliseconds(1), MaxTimeoutLimit);
}

milliseconds CommandRegistry::maxTimeout() const
{
    std::lock_guard lock(m_mutex);
    return m_maxTimeout;
}

void CommandRegistry::setMaxPendingPerBot(int count)
{
    std::lock_guard lock(m_mutex);
    m_maxPendingPerBot = std::max(0, count);
}

int CommandRegistry::maxRemembered() const
{
    std::lock_guard lock(m_mutex);
    return m_maxRemembered;
}

} // namespace opconsole
