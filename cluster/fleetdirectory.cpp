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
                               std::function<void(const BotInfo &)> onRemoteChange)
    : m_link(std::move(link)), m_hub(hub), m_options(options), m_isAlive(std::move(isAlive)),
      m_onRemoteChange(std::move(onRemoteChange))
{}

FleetDirectory::~FleetDirectory()
{
    stop();
}

bool FleetDirectory::start(QString *error)
{
    jsOptions jsOpts;
    jsOptions_Init(&jsOpts);
    jsOpts.Wait = 2000; // ms for a put to be stored (5 s by default)
    natsStatus s = natsConnection_JetStream(&m_js, m_link->connection(), &jsOpts);
    if (s == NATS_OK) {
        kvConfig cfg;
        kvConfig_Init(&cfg);
        cfg.Bucket = subjects::Bucket;
        cfg.History = 1;
        cfg.TTL = duration_cast<nanoseconds>(m_options.directoryTtl).count(); // ns (not ms)
        cfg.StorageType = js_MemoryStorage; // rebuilt by the hubs' refreshes after a restart
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
    if (m_watcher)
        kvWatcher_Stop(m_watcher);
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
    for (;;) {
        {
            std::lock_guard lock(m_mutex);
            if (m_stopping)
                return;
        }
        kvEntry *e = nullptr;
        const natsStatus s = kvWatcher_Next(&e, m_watcher, 250);
        if (s == NATS_TIMEOUT)
            continue;
        if (s != NATS_OK)
            return; // stopped (or the connection closed for good)
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
        const qint64 writtenMs = kvEntry_Created(e) / 1'000'000; // ns since the epoch
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
                m_remote.insert(id, {*bot, writtenMs});
                changed = seenAs(*bot, QDateTime::currentMSecsSinceEpoch());
            }
        }
        if (changed && m_onRemoteChange)
            m_onRemoteChange(*changed);
    }
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
