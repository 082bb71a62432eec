#include "fleetdirectory.h"

#include "hub.h"
#include "natslink.h"
#include "protoconvert.h"
#include "subjects.h"
#include "wirecheck.h"

#include <QDateTime>

namespace opconsole::cluster {

using namespace std::chrono;

FleetDirectory::FleetDirectory(std::shared_ptr<NatsLink> link, Hub &hub,
                               const ClusterOptions &options,
                               std::function<bool(const QString &)> isAlive,
                               std::function<void(const BotInfo &)> onRemoteChange,
                               std::function<void(const BotInfo &)> onClaimed)
    : m_link(std::move(link)), m_hub(hub), m_options(options), m_isAlive(std::move(isAlive)),
      m_onRemoteChange(std::move(onRemoteChange)), m_onClaimed(std::move(onClaimed))
{}

FleetDirectory::~FleetDirectory()
{
    stop();
}

kvConfig FleetDirectory::bucketConfig() const
{
    kvConfig cfg;
    kvConfig_Init(&cfg);
    cfg.Bucket = subjects::Bucket;
    cfg.History = 1;
    cfg.TTL = duration_cast<nanoseconds>(m_options.directoryTtl).count(); // ns (not ms)
    // On disk (nats-server's -sd): the bucket outlives a server restart; its entries expire
    // by the TTL and the hubs' refreshes rebuild them anyway.
    cfg.StorageType = js_FileStorage;
    return cfg;
}

bool FleetDirectory::start(QString *error)
{
    jsOptions jsOpts;
    jsOptions_Init(&jsOpts);
    jsOpts.Wait = 2000; // ms for a put to be stored (5 s by default)
    natsStatus s = natsConnection_JetStream(&m_js, m_link->connection(), &jsOpts);
    if (s == NATS_OK) {
        kvConfig cfg = bucketConfig();
        s = js_CreateKeyValue(&m_kv, m_js, &cfg);
        if (s != NATS_OK && error)
            *error = QStringLiteral("the fleet directory (JetStream bucket %1): %2 (is nats-server "
                                    "started with JetStream, -js?)")
                         .arg(QLatin1String(subjects::Bucket), natsProblem(s));
    } else if (error) {
        *error = QStringLiteral("JetStream: %1").arg(natsProblem(s));
    }
    if (s == NATS_OK) {
        s = kvStore_Watch(&m_watcher, m_kv, "bot.*", nullptr);
        if (s != NATS_OK && error)
            *error = QStringLiteral("watching the fleet directory: %1").arg(natsProblem(s));
    }
    if (s != NATS_OK)
        return false;
    m_writer = std::thread([this] { writeLoop(); });
    m_watch = std::thread([this] { watchLoop(); });
    return true;
}

void FleetDirectory::stop()
{
    {
        std::lock_guard lock(m_mutex);
        m_stopping = true;
    }
    m_wake.notify_all();
    // The watcher thread sees m_stopping within 250 ms (its wait), or at once when the
    // connection is closed (ClusterNode::stop closes it first); the watcher is its own.
    if (m_writer.joinable())
        m_writer.join();
    if (m_watch.joinable())
        m_watch.join();
    if (m_watcher) {
        kvWatcher_Destroy(m_watcher);
        m_watcher = nullptr;
    }
    if (m_kv) {
        kvStore_Destroy(m_kv);
        m_kv = nullptr;
    }
    if (m_js) {
        jsCtx_Destroy(m_js);
        m_js = nullptr;
    }
}

void FleetDirectory::touch(const QString &botId)
{
    {
        std::lock_guard lock(m_mutex);
        if (m_stopping || m_dirty.contains(botId))
            return;
        m_dirty.insert(botId);
        m_dirtyOrder.append(botId);
    }
    m_wake.notify_one();
}

void FleetDirectory::writeLoop()
{
    const auto refreshEvery = m_options.directoryTtl / 3;
    auto nextRefresh = steady_clock::now() + refreshEvery;
    std::unique_lock lock(m_mutex);
    while (!m_stopping) {
        if (m_dirtyOrder.isEmpty()) {
            m_wake.wait_until(lock, nextRefresh,
                              [this] { return m_stopping || !m_dirtyOrder.isEmpty(); });
        }
        if (m_stopping)
            break;
        if (steady_clock::now() >= nextRefresh) {
            nextRefresh = steady_clock::now() + refreshEvery;
            // Entries JetStream let expire (it says nothing when one does) go here too.
            const qint64 now = QDateTime::currentMSecsSinceEpoch();
            for (auto it = m_remote.begin(); it != m_remote.end();)
                it = now - it->writtenMs > m_options.directoryTtl.count() ? m_remote.erase(it)
                                                                          : std::next(it);
            lock.unlock();
            const QStringList live = m_hub.connectedBotIds();
            lock.lock();
            for (const QString &id : live)
                if (!m_dirty.contains(id)) {
                    m_dirty.insert(id);
                    m_dirtyOrder.append(id);
                }
        }
        if (m_dirtyOrder.isEmpty())
            continue;
        const QString id = m_dirtyOrder.takeFirst();
        m_dirty.remove(id);
        lock.unlock();
        write(id);
        lock.lock();
    }
}

void FleetDirectory::write(const QString &botId)
{
    const std::optional<BotInfo> bot = m_hub.bot(botId);
    uint64_t previous = 0;
    {
        std::lock_guard lock(m_mutex);
        if (const auto it = m_revisions.find(botId); it != m_revisions.end())
            previous = it->second;
    }
    const bool connected = bot && bot->connected && bot->admission == BotAdmission::Accepted;
    if (!connected && previous == 0)
        return; // never claimed here: another hub's entry (if any) is not ours to touch
    BotInfo info = bot.value_or(BotInfo{});
    info.botId = botId;
    info.holder = m_options.hubId;
    v1::BotRecord record;
    convert::fillBot(record, info, 0);
    const std::string data = record.SerializeAsString();
    const QByteArray key = subjects::directoryKey(botId);
    uint64_t revision = 0;
    natsStatus s;
    if (connected) {
        // This hub holds it now: claim the entry, whoever wrote it last.
        s = kvStore_Put(&revision, m_kv, key.constData(), data.data(), int(data.size()));
    } else {
        // It left: say so, unless another hub claimed it since (its entry is newer than ours).
        s = kvStore_Update(&revision, m_kv, key.constData(), data.data(), int(data.size()),
                           previous);
    }
    std::lock_guard lock(m_mutex);
    if (s == NATS_OK) {
        ++m_counters.written;
        if (connected)
            m_revisions[botId] = revision;
        else
            m_revisions.erase(botId);
    } else if (!connected) {
        m_revisions.erase(botId); // claimed by another hub: no longer ours
    } else {
        ++m_counters.writeErrors;
    }
}

void FleetDirectory::watchLoop()
{
    quint64 reconnects = m_link->reconnects();
    for (;;) {
        {
            std::lock_guard lock(m_mutex);
            if (m_stopping)
                return;
        }
        if (m_link->reconnects() != reconnects && rewatch())
            reconnects = m_link->reconnects();
        kvEntry *e = nullptr;
        const natsStatus s =
            m_watcher ? kvWatcher_Next(&e, m_watcher, 250) : NATS_CONNECTION_CLOSED;
        if (s == NATS_TIMEOUT)
            continue;
        if (s != NATS_OK) {
            // Stopped, or the watcher broke (a server restart takes its consumer): again in
            // a moment, until stop().
            std::unique_lock lock(m_mutex);
            if (m_wake.wait_for(lock, 500ms, [this] { return m_stopping; }))
                return;
            lock.unlock();
            rewatch();
            continue;
        }
        if (!e)
            continue; // "caught up" with the entries there were
        const QString id = subjects::idOf(QByteArray(kvEntry_Key(e)).mid(4)); // after "bot."
        const kvOperation op = kvEntry_Operation(e);
        v1::BotRecord record;
        std::optional<BotInfo> bot;
        bool bad = id.isEmpty();
        if (!bad && op == kvOp_Put) {
            const int len = kvEntry_ValueLen(e);
            bad = len < 0 || len > 256 * 1024 || !record.ParseFromArray(kvEntry_Value(e), len) ||
                  !wire::checkBotRecord(record).empty() || record.hub().empty();
            if (!bad) {
                int pending = 0;
                QString problem;
                bot = convert::toBotInfo(record, &pending, &problem);
                bad = !bot || bot->botId != id;
            }
        }
        // When it was read here, not the server's clock (hosts' clocks may differ): an entry
        // lives for a TTL from its last write that reached this hub.
        const qint64 writtenMs = QDateTime::currentMSecsSinceEpoch();
        kvEntry_Destroy(e);
        std::optional<BotInfo> changed;
        {
            std::lock_guard lock(m_mutex);
            if (bad) {
                ++m_counters.badEntries;
                continue;
            }
            ++m_counters.received;
            if (op != kvOp_Put || bot->holder == m_options.hubId) {
                m_remote.remove(id); // deleted, or this hub's own
            } else {
                // A refresh that changes nothing is not news (Watch streams would hear every
                // bot of the fleet every 10 s).
                const auto before = m_remote.constFind(id);
                const bool news = before == m_remote.cend() || !sameForViews(before->bot, *bot) ||
                                  writtenMs - before->writtenMs > m_options.directoryTtl.count();
                m_remote.insert(id, {*bot, writtenMs});
                if (news)
                    changed = seenAs(*bot, writtenMs);
            }
        }
        if (changed && m_onRemoteChange)
            m_onRemoteChange(*changed);
        if (changed && changed->connected && m_onClaimed)
            m_onClaimed(*changed);
    }
}

bool FleetDirectory::sameForViews(const BotInfo &a, const BotInfo &b)
{
    return a.connected == b.connected && a.holder == b.holder && a.state == b.state &&
           a.labels == b.labels && a.status == b.status && a.admission == b.admission &&
           a.session == b.session && a.botVersion == b.botVersion &&
           a.disconnectReason == b.disconnectReason;
}

bool FleetDirectory::rewatch()
{
    if (m_watcher) {
        kvWatcher_Destroy(m_watcher);
        m_watcher = nullptr;
    }
    // The bucket again too (a server that lost its store has none; idempotent otherwise).
    kvConfig cfg = bucketConfig();
    kvStore *fresh = nullptr;
    if (js_CreateKeyValue(&fresh, m_js, &cfg) == NATS_OK)
        kvStore_Destroy(fresh);
    return kvStore_Watch(&m_watcher, m_kv, "bot.*", nullptr) == NATS_OK;
}

BotInfo FleetDirectory::seenAs(const BotInfo &entry, qint64 nowMs) const
{
    BotInfo bot = entry;
    if (bot.connected && !m_isAlive(bot.holder)) {
        bot.connected = false;
        bot.disconnectedAtMs = nowMs;
        bot.disconnectReason = QStringLiteral("its hub %1 is gone").arg(bot.holder);
    }
    return bot;
}

std::optional<BotInfo> FleetDirectory::remoteBot(const QString &botId) const
{
    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    std::lock_guard lock(m_mutex);
    const auto it = m_remote.constFind(botId);
    if (it == m_remote.cend() || now - it->writtenMs > m_options.directoryTtl.count())
        return std::nullopt; // expired (JetStream says nothing when an entry expires)
    return seenAs(it->bot, now);
}

QList<BotInfo> FleetDirectory::remoteBots() const
{
    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    std::lock_guard lock(m_mutex);
    QList<BotInfo> out;
    out.reserve(m_remote.size());
    for (auto it = m_remote.cbegin(); it != m_remote.cend(); ++it)
        if (now - it->writtenMs <= m_options.directoryTtl.count())
            out.append(seenAs(it->bot, now));
    return out;
}

QString FleetDirectory::holderOf(const QString &botId) const
{
    std::lock_guard lock(m_mutex);
    const auto it = m_remote.constFind(botId);
    return it == m_remote.cend() ? QString() : it->bot.holder;
}

QList<BotInfo> FleetDirectory::botsOf(const QString &hub) const
{
    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    std::lock_guard lock(m_mutex);
    QList<BotInfo> out;
    for (auto it = m_remote.cbegin(); it != m_remote.cend(); ++it)
        if (it->bot.holder == hub && now - it->writtenMs <= m_options.directoryTtl.count())
            out.append(seenAs(it->bot, now));
    return out;
}

DirectoryCounters FleetDirectory::counters() const
{
    std::lock_guard lock(m_mutex);
    return m_counters;
}

} // namespace opconsole::cluster
