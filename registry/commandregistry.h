#pragma once

#include "commandoutcome.h"
#include "slotindex.h"

#include <QFuture>
#include <QHash>
#include <QList>
#include <QObject>
#include <QPromise>
#include <QStringList>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

class QThread;

namespace opconsole {

class ExpiryWorker;

// A fast seeded hash for ids. qHash(QString) costs about ten times as much here, and the
// registry hashes an id several times per command.
// Not noexcept on purpose: libstdc++ then caches each hash in its node, so rehashing and
// erasing never hash an id again.
struct IdHash
{
    size_t operator()(const QString &id) const;
};

// What resolveCommand() did with an ack. Nothing here is ever thrown; every case but
// Resolved is counted.
enum class ResolveResult : quint8
{
    Resolved,  // the pending command is now Acked or Rejected
    Unknown,   // no such command (never registered, or forgotten after the late-ack window)
    Duplicate, // the command was already acked or rejected: the first ack wins
    Late,      // the command had expired, been cancelled or lost its bot: recorded as a late ack
    WrongBot,  // the ack came from a bot the command was not sent to: refused
};
QString resolveResultName(ResolveResult result);

// Sizes of the internal structures, to show that memory stays bounded.
struct RegistrySizes
{
    qsizetype entries = 0;    // pending plus remembered finished commands
    qsizetype heapItems = 0;  // deadline heap, stale items included
    qsizetype remembered = 0; // finished commands kept for late and duplicate acks
    qsizetype botIndexIds = 0;
    qsizetype botIndexBots = 0; // bots in the per-bot index (idle ones are swept)
    qsizetype batched = 0;      // records waiting for the next changed() batch
    qsizetype entrySlots = 0;   // entry slots allocated (in chunks of 1024); follows entries down
};

struct RegistryCounters
{
    quint64 registered = 0;
    quint64 acked = 0;
    quint64 rejected = 0;
    quint64 expired = 0;
    quint64 cancelled = 0;
    quint64 disconnected = 0;
    quint64 notConnected = 0;
    quint64 failedOther = 0; // failCommand() with Refused after registration
    quint64 refusedRegistrations = 0;
    quint64 unknownAcks = 0;
    quint64 duplicateAcks = 0;
    quint64 lateAcks = 0;
    quint64 wrongBotAcks = 0;
    quint64 unknownProgress = 0;
    quint64 restored = 0;          // finished records reloaded from history (restore())
    quint64 resentAcksApplied = 0; // acks a bot resent on reconnect that told an outcome
    quint64 resentAcksIgnored = 0; // resent acks with nothing to tell (already known, forgotten)
};

// What a command is, besides its id, bot and timeout: kept on its record (CommandOutcome) for
// views and history. Over-long params and issuer are cut (CommandOutcome::MaxParamsLength).
struct CommandLabels
{
    QString kind;   // start, stop, ...
    QString fanOut; // the fan-out it belongs to
    QString params; // compact JSON
    QString issuer; // who sent it
};

// Turns fire-and-forget command streams into request/response: register a command id with
// its bot and a timeout BEFORE sending, and the returned future finishes exactly once, with
// the bot's ack, at the deadline, on cancel, or when the bot's connection is lost.
//
// Every method may be called from any thread. Deadlines are enforced by the registry itself
// on an internal timer thread (one precise timer armed at the earliest deadline over a heap),
// so a busy owner thread does not make commands late. Per-transition signals are emitted in
// the thread that caused the transition; changed() batches them and is emitted in the
// registry's own thread, one queued event per batch.
class CommandRegistry final : public QObject
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(CommandRegistry)

public:
    static constexpr std::chrono::milliseconds DefaultLateAckWindow{5 * 60 * 1000};
    static constexpr int DefaultMaxRemembered = 100'000;
    static constexpr int MaxIdLength = 128;
    // Longer timeouts are refused (a deadline must stay far from the clock's range, and a
    // command nobody will wait for a day is a mistake); setMaxTimeout() changes it.
    static constexpr std::chrono::milliseconds DefaultMaxTimeout{24 * 60 * 60 * 1000};
    static constexpr std::chrono::milliseconds MaxTimeoutLimit{365LL * 24 * 60 * 60 * 1000};

    explicit CommandRegistry(QObject *parent = nullptr);
    // Cancels whatever is still pending ("registry destroyed") and stops the timer thread.
    ~CommandRegistry() override;

    // Registers a command before it is sent. Refused (a finished future with state Refused
    // and the reason; the existing entry is left untouched) when the id is empty, too long,
    // pending or still remembered, or the timeout is not positive.
    QFuture<CommandOutcome> registerCommand(const QString &commandId, const QString &botId,
                                            std::chrono::milliseconds timeout,
                                            const QString &kind = {}, const QString &fanOut = {});

    // The same registration without a future, for callers that follow outcomes through the
    // signals and snapshot() (the GUI, fan-out tallies): a QPromise/QFuture pair costs about
    // 460 ns of the registry's ~1 us per command. Returns false and sets *error when refused.
    bool trackCommand(const QString &commandId, const QString &botId,
                      std::chrono::milliseconds timeout, const QString &kind = {},
                      QString *error = nullptr, const QString &fanOut = {});
    // The same two with every label (params, issuer) for the record and history.
    QFuture<CommandOutcome> registerCommand(const QString &commandId, const QString &botId,
                                            std::chrono::milliseconds timeout,
                                            const CommandLabels &labels);
    bool trackCommand(const QString &commandId, const QString &botId,
                      std::chrono::milliseconds timeout, const CommandLabels &labels,
                      QString *error = nullptr);

    // Reloads finished commands from history at start, oldest first: each is remembered as
    // a finished command is (views, snapshots, late acks) for the late-ack window from now,
    // gets a new sequence and change (ChangeEvent::Restored). Records that are not final or
    // whose id is already known are skipped. Returns how many were restored.
    int restore(const QList<CommandOutcome> &records);
    // An ack a bot resent when it reconnected (its Hello lists its recent acks). It tells
    // what happened to a command whose outcome the hub lost: a pending command resolves; a
    // finished one with no ack (unknown, disconnected, expired, cancelled) gets it as a late
    // ack. Anything else (already acked, forgotten, another bot's) is ignored without being
    // counted as a violation. Returns the result, Late or Resolved when it told something.
    ResolveResult applyResentAck(const QString &commandId, const QString &fromBotId,
                                 const CommandAckData &ack);

    // The bot fromBotId acked commandId. Only the bot the command was registered for can
    // resolve it.
    ResolveResult resolveCommand(const QString &commandId, const QString &fromBotId,
                                 const CommandAckData &ack);

    // The command goes down the stream of session `session` now; latency counts from here.
    // False (and nothing changes) unless it is pending: the caller must not write it then.
    // With a response timeout, the deadline becomes now + responseTimeout (a command that
    // waited for its bot to connect gets its full time to answer from the moment it is sent).
    bool markSent(const QString &commandId, quint64 session = 0,
                  std::optional<std::chrono::milliseconds> responseTimeout = std::nullopt);
    bool reportProgress(const QString &commandId, const QString &fromBotId, int percent,
                        const QString &message);

    bool cancelCommand(const QString &commandId,
                       const QString &reason = QStringLiteral("cancelled"));
    // Finishes a pending command with a final state other than Acked/Rejected/Expired, for
    // the sender: NotConnected, Disconnected, Refused (queue full) or Cancelled.
    bool failCommand(const QString &commandId, CommandState state, const QString &reason);
    // The bot's connection is gone: every pending command of it finishes as Disconnected at
    // once. With a session, only commands sent on that session are failed (not those sent on
    // another session, nor those not sent yet: they belong to no stream), so an old stream's
    // teardown never fails a newer session's commands.
    int failBot(const QString &botId, const QString &reason,
                std::optional<quint64> session = std::nullopt);
    // Cancels every pending command.
    int cancelAll(const QString &reason);
    // Finishes every pending command with `state` (not Acked/Rejected/Pending), e.g. on shutdown.
    int failAll(CommandState state, const QString &reason);
    // Emits the pending changed() batch now, when called in the registry's thread (a queued
    // batch would only arrive after the caller returns to the event loop, e.g. too late for
    // the last words of a shutdown). Elsewhere it does nothing: the batch is on its way.
    void flushChanges();
    // Expires everything past its deadline now (the timer does this anyway; seed parity).
    int cleanupExpired();

    int pendingCount() const;
    int pendingCount(const QString &botId) const;
    QStringList pendingIds() const;
    std::optional<CommandOutcome> find(const QString &commandId) const;
    // Every pending and remembered finished command, in registration order.
    QList<CommandOutcome> snapshot() const;
    // Up to `limit` records registered after sequence `after` that pass `filter` (all when
    // null), in registration order; *more tells whether another matching record follows.
    // Costs O(log n + records looked at), never a copy or sort of the whole registry.
    QList<CommandOutcome> page(quint64 after, int limit,
                               const std::function<bool(const CommandOutcome &)> &filter = {},
                               bool *more = nullptr) const;
    RegistryCounters counters() const;
    RegistrySizes sizes() const;
    // The change number of the latest transition (see CommandOutcome::change).
    quint64 lastChange() const;

    // How long finished commands are remembered (for late and duplicate acks) and how many.
    void setLateAckWindow(std::chrono::milliseconds window);
    std::chrono::milliseconds lateAckWindow() const;
    void setMaxRemembered(int count);
    int maxRemembered() const;
    // Registrations past this many pending commands for one bot are refused (0: no cap).
    void setMaxPendingPerBot(int count);
    // Registrations with a longer timeout are refused; clamped to 1 ms .. MaxTimeoutLimit.
    void setMaxTimeout(std::chrono::milliseconds timeout);
    std::chrono::milliseconds maxTimeout() const;

protected:
    void connectNotify(const QMetaMethod &signal) override;
    void disconnectNotify(const QMetaMethod &signal) override;

signals:
    void registered(const QString &commandId, const QString &botId);
    void resolved(const opconsole::CommandOutcome &outcome); // Acked or Rejected
    void expired(const opconsole::CommandOutcome &outcome);
    void cancelled(const opconsole::CommandOutcome &outcome);
    void failed(const opconsole::CommandOutcome &outcome);   // NotConnected, Disconnected, Refused
    void finished(const opconsole::CommandOutcome &outcome); // any final transition
    void lateAck(const opconsole::CommandOutcome &outcome);
    void progress(const QString &commandId, int percent, const QString &message);
    void registrationRefused(const QString &commandId, const QString &botId, const QString &reason);
    void ackRefused(const QString &commandId, const QString &fromBotId,
                    opconsole::ResolveResult why);
    // Batched: every record that changed since the last batch, latest state last, in change
    // order (CommandOutcome::change ascending, no gaps among those collected). Emitted in the
    // registry's thread; collected only while something is connected to it. ChangeFeed turns
    // it into the one ordered feed that every consumer reads.
    void changed(const QList<opconsole::CommandOutcome> &records);

private:
    bool listening(const std::atomic<int> &receivers) const;
    void refreshListeners(); // only with no lock held
    friend class ExpiryWorker;

    struct BotIndex;
    // One command, pending or remembered, in a slot of m_chunks. A free slot has sequence 0.
    struct Entry
    {
        CommandOutcome rec;
        std::optional<QPromise<CommandOutcome>> promise; // engaged while pending
        BotIndex *bot = nullptr; // set while pending (map nodes do not move)
        quint32 slot = 0;        // where it lives in m_chunks
        quint32 tag = 0;         // of its id's hash, for m_index
    };
    // Refers to a slot as it was at registration: it is stale once the slot's sequence differs
    // (forgotten and reused) or its command is no longer pending. Checking costs no hashing.
    struct SlotRef
    {
        quint64 sequence;
        quint32 slot;
    };
    struct HeapItem
    {
        Clock::time_point deadline;
        SlotRef ref;
    };
    struct Remembered
    {
        Clock::time_point finishedAt;
        SlotRef ref;
    };
    struct BotIndex
    {
        std::vector<SlotRef> refs; // may hold finished commands; compacted lazily
        int pending = 0;
    };
    // A transition decided under the lock and carried out (promise, signals) after it.
    struct Completion
    {
        std::optional<QPromise<CommandOutcome>> promise;
        CommandOutcome outcome; // filled only when a future or a signal receiver needs it
    };

    // Returns the refusal reason, empty when registered.
    QString insert(const QString &commandId, const QString &botId,
                   std::chrono::milliseconds timeout, const CommandLabels &labels,
                   QPromise<CommandOutcome> *promise);
    ResolveResult resolve(const QString &commandId, const QString &fromBotId,
                          const CommandAckData &ack, bool resent);

    // Under m_mutex.
    Completion finishLocked(Entry &entry, CommandState state, const QString &reason,
                            Clock::time_point now, bool &flush);
    void forgetOldLocked(Clock::time_point now);
    void compactHeapLocked();
    void compactBotLocked(BotIndex &bot);
    void compactOrderLocked();
    Entry &slotLocked(quint32 slot) { return m_chunks[slot / ChunkSize][slot % ChunkSize]; }
    const QString &idAt(quint32 slot) const
    {
        return m_chunks[slot / ChunkSize][slot % ChunkSize].rec.commandId;
    }
    // The index tag of an id: computed before taking m_mutex, passed to the look-ups under it.
    static quint32 tagOf(const QString &commandId);
    quint32 indexedSlotLocked(const QString &commandId, quint32 tag) const;
    // The entry still registered under ref and pending, or null.
    Entry *pendingLocked(SlotRef ref);
    bool pendingOrRememberedLocked(SlotRef ref);
    Entry *findLocked(const QString &commandId, quint32 tag);
    quint32 allocateSlotLocked();
    void forgetLocked(quint32 slot);
    void releaseEmptyChunksLocked();
    bool noteChangeLocked(CommandOutcome &rec, ChangeEvent event); // stamps change and event
    Clock::time_point nextWakeLocked();

    // Outside m_mutex.
    void complete(Completion &completion);

    void scheduleFlush();
    void flushBatch();
    void wakeTimer();
    // Runs on the timer thread: expires what is due and returns when to wake next.
    Clock::time_point onTimer();
    int expireDue(Clock::time_point now, bool offload = false);

    mutable std::mutex m_mutex;
    // Pending and remembered finished commands live in slots of fixed chunks (addresses never
    // move); the index maps ids to slots, and heap, bot index and memory of finished commands
    // refer to slots, not ids. Freed slots are reused lowest first, so after a burst the top
    // chunks drain and are released (memory follows the load back down).
    static constexpr quint32 ChunkSize = 1024;
    std::vector<std::unique_ptr<Entry[]>> m_chunks;
    std::vector<quint32> m_chunkUsed; // slots in use per chunk
    quint32 m_slotCount = 0;          // m_chunks.size() * ChunkSize once a chunk is full
    std::vector<quint32> m_freeSlots; // min-heap
    detail::SlotIndex m_index;
    std::vector<HeapItem> m_heap; // min-heap on deadline; stale items skipped lazily
    std::deque<Remembered> m_remembered;
    std::unordered_map<QString, BotIndex, IdHash> m_bots;
    size_t m_botsCompactAt = BotIndexCompactMin; // m_bots size that triggers the next sweep
    static constexpr size_t BotIndexCompactMin = 4096;
    std::vector<SlotRef> m_order; // registration order (sequence ascending); stale refs lazily
    int m_pending = 0;
    quint64 m_nextSequence = 1;
    quint64 m_lastChange = 0; // the change feed's number of the latest transition
    RegistryCounters m_counters;
    std::chrono::milliseconds m_lateAckWindow = DefaultLateAckWindow;
    int m_maxRemembered = DefaultMaxRemembered;
    int m_maxPendingPerBot = 0;
    std::chrono::milliseconds m_maxTimeout = DefaultMaxTimeout;
    Clock::time_point m_armedFor = Clock::time_point::max();
    bool m_shuttingDown = false;

    QList<CommandOutcome> m_batch;
    bool m_flushPosted = false;
    std::atomic<int> m_changedReceivers{0};
    std::atomic<int> m_outcomeReceivers{0};
    std::atomic<int> m_registeredReceivers{0};
    std::atomic<bool> m_listenersStale{false};
    const qint64 m_wallOffsetMs;

    std::unique_ptr<QThread> m_timerThread;
    // Expiries decided on the timer thread are completed (promises, continuations, signals)
    // on this thread, one task per batch, so a continuation's work never makes the next
    // deadline late. Started with the first batch; drained and joined by the destructor.
    // std primitives, not QThreadPool: ThreadSanitizer sees their happens-before edges.
    struct Completions
    {
        std::mutex mutex;
        std::condition_variable wake;
        std::deque<std::function<void()>> tasks;
        bool stopping = false;
        std::thread thread;
    } m_completions;
    void runCompletions();
    ExpiryWorker *m_worker = nullptr; // lives on m_timerThread, deleted when it finishes
};

} // namespace opconsole

Q_DECLARE_METATYPE(opconsole::ResolveResult)
