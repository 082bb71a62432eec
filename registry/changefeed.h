#pragma once

#include "commandoutcome.h"
#include "fanouts.h"

#include <QList>
#include <QObject>

#include <deque>
#include <mutex>

namespace opconsole {

class CommandRegistry;

// The one ordered feed of command transitions that every consumer reads: the GUI models,
// Watch, the event log and (later) the history writer. Each record carries its change
// number (CommandOutcome::change); batches arrive in change order with no gap. The feed keeps
// the newest `capacity` changes so that a consumer that lost its place (a Watch client that
// reconnects) resumes from its last change number with no gap and no duplicate, or learns
// that it must resync from a snapshot. It also keeps the fan-out tallies.
//
// Lives in the registry's thread; changes() is emitted there. since(), lastChange() and
// fanOut() may be called from any thread.
class ChangeFeed final : public QObject
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(ChangeFeed)

public:
    static constexpr int DefaultCapacity = 65'536;

    explicit ChangeFeed(CommandRegistry &registry, int capacity = DefaultCapacity,
                        QObject *parent = nullptr);
    ~ChangeFeed() override;

    // Random per feed (per hub run): a position in another feed means nothing here.
    quint64 feedId() const { return m_feedId; }
    // The change number of the newest record delivered through changes().
    quint64 lastChange() const;
    // Appends every delivered change after `after` to *out, in order, and returns true; false
    // (and *out untouched) when the feed no longer holds all of them: the caller resyncs.
    bool since(quint64 after, QList<CommandOutcome> *out, qsizetype limit = -1) const;
    // The tally of a fan-out, if it is among the newest the feed keeps.
    std::optional<FanOutSummary> fanOut(const QString &id) const;
    QList<FanOutSummary> fanOuts() const; // newest first
    int capacity() const { return m_capacity; }

signals:
    // Every change, in order, batched. Fan-out tallies are already updated for them.
    void changes(const QList<opconsole::CommandOutcome> &records);

private:
    void onChanged(const QList<CommandOutcome> &records);

    const quint64 m_feedId;
    const int m_capacity;
    mutable std::mutex m_mutex;
    std::deque<CommandOutcome> m_log; // the newest changes, change ascending
    quint64 m_lastChange = 0;
    quint64 m_firstChange = 1; // the feed holds every change >= this one (while not empty)
    FanOutTracker m_fanOuts;
};

} // namespace opconsole
