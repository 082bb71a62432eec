#pragma once

#include "botinfo.h"
#include "clusteroptions.h"

#include <QHash>
#include <QList>
#include <QSet>
#include <QString>

#include <nats/nats.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

namespace opconsole {
class Hub;
}

namespace opconsole::cluster {

class NatsLink;

struct DirectoryCounters
{
    quint64 written = 0;     // entries this hub put (claims, changes, refreshes)
    quint64 writeErrors = 0; // puts JetStream refused or did not answer
    quint64 received = 0;    // other hubs' entries read
    quint64 badEntries = 0;  // entries that broke a rule (ignored)
};

// The cluster's fleet directory: which hub holds which bot, and the bot as its hub last
// wrote it, in a JetStream key-value bucket (subjects::Bucket; a key per bot). Each hub writes
// its own bots (when one connects, changes, leaves, and again every third of the TTL) from a
// thread of its own, and follows the others' entries through a watcher thread. Entries that
// are not refreshed expire; a hub whose beacons stop is gone at once (isAlive).
class FleetDirectory
{
public:
    // onRemoteChange: another hub's bot changed (the watcher's thread, no lock held);
    // onClaimed: another hub wrote that it holds a bot, connected (the same thread).
    FleetDirectory(std::shared_ptr<NatsLink> link, Hub &hub, const ClusterOptions &options,
                   std::function<bool(const QString &hubId)> isAlive,
                   std::function<void(const BotInfo &bot)> onRemoteChange,
                   std::function<void(const BotInfo &bot)> onClaimed);
    ~FleetDirectory(); // stop()
    FleetDirectory(const FleetDirectory &) = delete;
    FleetDirectory &operator=(const FleetDirectory &) = delete;

    // Creates (or opens) the bucket and starts both threads; false with *error.
    bool start(QString *error);
    void stop();

    // A bot of this hub changed (connected, left, its state): written soon, once.
    void touch(const QString &botId);
    // Another hub's bot; a bot whose hub is gone shows as disconnected.
    std::optional<BotInfo> remoteBot(const QString &botId) const;
    QList<BotInfo> remoteBots() const;
    // The hub the directory says holds another hub's bot (empty: none known); no copy.
    QString holderOf(const QString &botId) const;
    // The bots the directory says `hub` holds (as remoteBots() shows them).
    QList<BotInfo> botsOf(const QString &hub) const;
    DirectoryCounters counters() const;

private:
    void writeLoop();
    void watchLoop();
    void write(const QString &botId);
    BotInfo seenAs(const BotInfo &entry, qint64 nowMs) const;
    static bool sameForViews(const BotInfo &a, const BotInfo &b);
    bool rewatch(); // the watcher thread: a new watcher (and the bucket, if it is gone)
    kvConfig bucketConfig() const;

    std::shared_ptr<NatsLink> m_link;
    Hub &m_hub;
    ClusterOptions m_options;
    std::function<bool(const QString &)> m_isAlive;
    std::function<void(const BotInfo &)> m_onRemoteChange;
    std::function<void(const BotInfo &)> m_onClaimed;
    jsCtx *m_js = nullptr;
    kvStore *m_kv = nullptr;
    kvWatcher *m_watcher = nullptr;

    mutable std::mutex m_mutex;
    std::condition_variable m_wake;
    bool m_stopping = false;
    QSet<QString> m_dirty;
    QList<QString> m_dirtyOrder;
    std::unordered_map<QString, uint64_t> m_revisions; // of this hub's own entries
    struct Entry
    {
        BotInfo bot; // bot.holder: its hub
        qint64 writtenMs = 0;
    };
    QHash<QString, Entry> m_remote;
    DirectoryCounters m_counters;
    std::thread m_writer;
    std::thread m_watch;
};

} // namespace opconsole::cluster
