#include "clusternode.h"

#include "commandregistry.h"
#include "commandservice.h"
#include "fleetdirectory.h"
#include "hub.h"
#include "natslink.h"
#include "opconsole/v1/cluster.pb.h"
#include "operatorrequest.h"
#include "protoconvert.h"
#include "subjects.h"
#include "wirecheck.h"

#include <QRandomGenerator>

#include <condition_variable>
#include <thread>

namespace opconsole::cluster {

using namespace std::chrono;
using convert::fromStd;
using convert::toStd;

namespace {
constexpr int MaxClusterMessageBytes = 1024 * 1024; // nats-server's default max_payload

QString problemOf(const std::string &p)
{
    return QString::fromStdString(p);
}
} // namespace

// What NATS's threads reach (through the closure of every subscription): alive until every
// subscription has completed, and for as long as a holder's continuation answers with it.
struct NodeCore : std::enable_shared_from_this<NodeCore>
{
    CommandService *commands = nullptr;
    ClusterOptions options;
    std::shared_ptr<NatsLink> link;
    quint64 incarnation = 0;
    std::atomic<bool> closing{false};

    // Subscriptions: each completes once (natsSubscription_SetOnCompleteCB).
    std::mutex subMutex;
    std::condition_variable subsDone;
    int liveSubs = 0;
    std::unordered_map<QString, natsSubscription *> botSubs;
    std::vector<natsSubscription *> ownSubs; // replies, beacons

    struct Forward
    {
        QString commandId;
        QString botId;
        QString holder;   // empty until a hub said it took it
        QString expected; // the holder the directory named when it was sent (may be empty)
        steady_clock::time_point sentAt;
        steady_clock::time_point takenAt;
        steady_clock::time_point forgetAt;
    };
    struct HubSeen
    {
        steady_clock::time_point lastSeen;
        steady_clock::time_point restartedAt;
        quint64 incarnation = 0;
        QString operatorAddress;
    };
    mutable std::mutex mutex;
    quint64 nextSeq = 0;
    std::unordered_map<quint64, Forward> forwards;
    // Commands other hubs forwarded here that are still pending: a command still pending at
    // the next beacon tick is told "taken" then (most end before; their outcome says it).
    struct Held
    {
        QByteArray reply;
        int ticks = 0; // beacon ticks seen pending: "taken" at the second
    };
    quint64 nextHeld = 0;
    std::unordered_map<quint64, Held> held;
    QHash<QString, HubSeen> hubs;
    ClusterCounters counters;

    bool alive(const QString &hub) const
    {
        if (hub == options.hubId)
            return !closing;
        std::lock_guard lock(mutex);
        const auto it = hubs.constFind(hub);
        return it != hubs.cend() && steady_clock::now() - it->lastSeen < options.deadAfter;
    }

    bool subscribe(natsSubscription **sub, const QByteArray &subject, const char *queue,
                   natsMsgHandler handler)
    {
        const natsStatus s =
            queue ? natsConnection_QueueSubscribe(sub, link->connection(), subject.constData(),
                                                  queue, handler, this)
                  : natsConnection_Subscribe(sub, link->connection(), subject.constData(), handler,
                                             this);
        if (s != NATS_OK)
            return false;
        natsSubscription_SetOnCompleteCB(*sub, &NodeCore::onComplete, this);
        ++liveSubs;
        return true;
    }

    static void onComplete(void *closure)
    {
        auto *core = static_cast<NodeCore *>(closure);
        {
            std::lock_guard lock(core->subMutex);
            --core->liveSubs;
        }
        core->subsDone.notify_all();
    }

    // The bot's subject is listened on exactly while the hub holds it (any thread).
    void reconcile(const QString &botId)
    {
        std::lock_guard lock(subMutex);
        const bool want = !closing && commands->hub().isConnected(botId);
        const auto it = botSubs.find(botId);
        if (want && it == botSubs.end()) {
            natsSubscription *sub = nullptr;
            if (subscribe(&sub, subjects::botWildcard(botId), subjects::HolderQueue,
                          &NodeCore::onBotMessage))
                botSubs.emplace(botId, sub);
        } else if (!want && it != botSubs.end()) {
            natsSubscription_Unsubscribe(it->second);
            natsSubscription_Destroy(it->second);
            botSubs.erase(it);
        }
    }

    void bad()
    {
        std::lock_guard lock(mutex);
        ++counters.badMessages;
    }

    // ---- holder: a command or cancel for one of this hub's bots --------------------------
    static void onBotMessage(natsConnection *, natsSubscription *, natsMsg *msg, void *closure)
    {
        auto *core = static_cast<NodeCore *>(closure);
        if (!core->closing)
            core->botMessage(msg);
        natsMsg_Destroy(msg);
    }

    void botMessage(natsMsg *msg)
    {
        const QByteArray subject(natsMsg_GetSubject(msg));
        const QList<QByteArray> parts = subject.split('.');
        const int len = natsMsg_GetDataLength(msg);
        if (parts.size() != 4 || len < 0 || len > MaxClusterMessageBytes)
            return bad();
        const QString botId = subjects::idOf(parts[2]);
        if (botId.isEmpty())
            return bad();
        if (parts[3] == "cmd")
            serve(botId, natsMsg_GetReply(msg), natsMsg_GetData(msg), len);
        else if (parts[3] == "cancel")
            cancelHere(botId, natsMsg_GetData(msg), len);
        else
            bad();
    }

    void answer(const QByteArray &reply, const CommandOutcome *record, bool taken)
    {
        v1::ForwardReply out;
        out.set_hub(toStd(options.hubId));
        out.set_taken(taken);
        if (record)
            convert::fillRecord(*out.mutable_record(), *record);
        link->publish(reply, out.SerializeAsString());
    }

    void refuse(const QByteArray &reply, const QString &commandId, const QString &botId,
                CommandState state, const QString &why)
    {
        CommandOutcome o;
        o.state = state;
        o.commandId = commandId;
        o.botId = botId;
        o.reason = why;
        o.registeredAt = o.finishedAt = Clock::now();
        answer(reply, &o, false);
    }

    void serve(const QString &botId, const char *replyTo, const char *data, int len)
    {
        const QByteArray reply(replyTo ? replyTo : "");
        v1::ForwardedCommand fc;
        if (reply.isEmpty() || !fc.ParseFromArray(data, len))
            return bad();
        api::CommandRequest checked;
        QString problem =
            api::checkSendCommand(fc.request(), commands->registry().maxTimeout(), &checked);
        const QString commandId = fromStd(fc.request().command().command_id());
        if (problem.isEmpty() && commandId.isEmpty())
            problem = QStringLiteral("a forwarded command has its id");
        if (problem.isEmpty() && fromStd(fc.request().bot_id()) != botId)
            problem = QStringLiteral("a forwarded command names another bot than its subject");
        if (problem.isEmpty())
            problem =
                problemOf(wire::checkLabel(fc.issuer(), "issuer", wire::limits::ShortTextBytes));
        if (problem.isEmpty())
            problem = problemOf(wire::checkLabels(fc.scope(), "scope"));
        if (problem.isEmpty() && !fc.fan_out_id().empty())
            problem = problemOf(wire::checkId(fc.fan_out_id(), "fan_out_id"));
        if (problem.isEmpty())
            problem = problemOf(wire::checkText(fc.params(), "params", wire::limits::ParamsBytes));
        if (problem.isEmpty())
            problem = checkHubId(fromStd(fc.issuing_hub()));
        if (!problem.isEmpty()) {
            bad();
            // A valid id gets its refusal; anything else is not answered (the issuer's
            // take timeout ends it).
            if (wire::checkId(fc.request().command().command_id(), "command_id").empty())
                refuse(reply, commandId, botId, CommandState::Refused, problem);
            return;
        }
        if (!commands->hub().isConnected(botId)) {
            refuse(reply, commandId, botId, CommandState::NotConnected,
                   QStringLiteral("bot %1 left hub %2").arg(botId, options.hubId));
            return;
        }
        SendOptions send = checked.options;
        send.connectTimeout = 0ms;
        send.forwarded = true;
        send.issuer = fromStd(fc.issuer());
        send.fanOut = fromStd(fc.fan_out_id());
        send.params = fromStd(fc.params());
        for (const auto &[k, v] : fc.scope())
            send.scope.insert(fromStd(k), fromStd(v));
        if (!send.scope.isEmpty()) {
            // The operator's scope, checked here against the bot as this hub knows it.
            send.admit = [scope = send.scope, issuer = send.issuer,
                          hub = &commands->hub()](const QString &id) {
                const std::optional<BotInfo> bot = hub->bot(id);
                if (bot && bot->matches(scope))
                    return QString();
                return QStringLiteral("permission denied: %1 may not command %2 (outside its "
                                      "scope)")
                    .arg(issuer, id);
            };
        }
        {
            std::lock_guard lock(mutex);
            ++counters.served;
        }
        quint64 key;
        {
            std::lock_guard lock(mutex);
            key = ++nextHeld;
            held.emplace(key, Held{reply, 0});
        }
        QFuture<CommandOutcome> future =
            commands->sendWithId(commandId, botId, checked.spec, checked.timeout, send);
        // The outcome, from whichever thread finishes it (a bot's reader, the timer thread).
        future.then([self = weak_from_this(), link = link, reply, key,
                     hub = options.hubId](const CommandOutcome &o) {
            if (const auto core = self.lock()) {
                std::lock_guard lock(core->mutex);
                core->held.erase(key);
            }
            v1::ForwardReply out;
            out.set_hub(toStd(hub));
            convert::fillRecord(*out.mutable_record(), o);
            link->publish(reply, out.SerializeAsString());
        });
    }

    // Each beacon tick: "taken" for the forwarded commands that were pending at the last one
    // (a command that ends within a tick costs its issuer one message, not two).
    void tellTaken()
    {
        std::vector<QByteArray> replies;
        {
            std::lock_guard lock(mutex);
            for (auto &[key, h] : held)
                if (++h.ticks == 2)
                    replies.push_back(h.reply);
        }
        for (const QByteArray &reply : replies)
            answer(reply, nullptr, true);
    }

    void cancelHere(const QString &botId, const char *data, int len)
    {
        v1::ForwardedCancel c;
        if (!c.ParseFromArray(data, len) || !wire::checkId(c.command_id(), "command_id").empty() ||
            !wire::checkText(c.reason(), "reason", wire::limits::TextBytes).empty())
            return bad();
        const QString id = fromStd(c.command_id());
        const auto record = commands->registry().find(id);
        if (!record || record->botId != botId)
            return bad(); // only a command of that bot, as its subject says
        commands->cancel(id, fromStd(c.reason()));
    }

    // ---- issuer: the holder's answers -----------------------------------------------------
    static void onReply(natsConnection *, natsSubscription *, natsMsg *msg, void *closure)
    {
        auto *core = static_cast<NodeCore *>(closure);
        if (!core->closing)
            core->reply(msg);
        natsMsg_Destroy(msg);
    }

    void reply(natsMsg *msg)
    {
        const QByteArray subject(natsMsg_GetSubject(msg));
        bool ok = false;
        const quint64 seq = subject.mid(subject.lastIndexOf('.') + 1).toULongLong(&ok);
        if (!ok)
            return bad();
        const bool noResponders = natsMsg_IsNoResponders(msg);
        v1::ForwardReply r;
        const int len = natsMsg_GetDataLength(msg);
        if (!noResponders && (len < 0 || len > MaxClusterMessageBytes ||
                              !r.ParseFromArray(natsMsg_GetData(msg), len) ||
                              !checkHubId(fromStd(r.hub())).isEmpty()))
            return bad();
        // A final record is checked before it is matched: one that breaks a rule, or that is
        // not the forwarded command's (another command, another bot, not the hub that took
        // it), is ignored and the command keeps waiting (its holder's end, or its deadline).
        std::optional<CommandOutcome> o;
        if (!noResponders && r.has_record()) {
            QString problem;
            o = convert::toOutcome(r.record(), &problem);
            if (!o || !o->finished())
                return bad();
        }
        Forward f;
        {
            std::lock_guard lock(mutex);
            const auto it = forwards.find(seq);
            if (it == forwards.end())
                return; // ended already (its holder was given up on, or its deadline passed)
            const QString from = fromStd(r.hub());
            if (!noResponders && !o) {
                if (r.taken() && it->second.holder.isEmpty()) {
                    it->second.holder = from;
                    it->second.takenAt = steady_clock::now();
                }
                return;
            }
            if (o && (o->commandId != it->second.commandId || o->botId != it->second.botId ||
                      (!it->second.holder.isEmpty() && from != it->second.holder))) {
                ++counters.badMessages;
                return;
            }
            f = it->second;
            forwards.erase(it);
            if (noResponders)
                ++counters.noHolder;
        }
        CommandRegistry &registry = commands->registry();
        if (noResponders) {
            registry.failCommand(
                f.commandId, CommandState::NotConnected,
                QStringLiteral("bot %1 is not connected to any hub of the cluster").arg(f.botId));
            return;
        }
        if (o->answered() && o->ack)
            registry.resolveCommand(f.commandId, f.botId, *o->ack);
        else
            registry.failCommand(f.commandId, o->state, o->reason);
    }

    // ---- beacons --------------------------------------------------------------------------
    static void onBeacon(natsConnection *, natsSubscription *, natsMsg *msg, void *closure)
    {
        auto *core = static_cast<NodeCore *>(closure);
        if (!core->closing)
            core->beacon(msg);
        natsMsg_Destroy(msg);
    }

    void beacon(natsMsg *msg)
    {
        v1::HubBeacon b;
        const int len = natsMsg_GetDataLength(msg);
        if (len < 0 || len > 4096 || !b.ParseFromArray(natsMsg_GetData(msg), len))
            return bad();
        const QString hub = fromStd(b.hub());
        if (!checkHubId(hub).isEmpty() ||
            !wire::checkLabel(b.operator_address(), "operator_address", 256).empty())
            return bad();
        if (hub == options.hubId) {
            if (b.incarnation() != incarnation) {
                // Another process says it is this hub: two hubs with one --hub-id.
                std::lock_guard lock(mutex);
                ++counters.duplicateHubId;
            }
            return;
        }
        const auto now = steady_clock::now();
        std::lock_guard lock(mutex);
        HubSeen &seen = hubs[hub];
        if (seen.incarnation != 0 && seen.incarnation != b.incarnation())
            seen.restartedAt = now; // what it took before is lost with its old run
        seen.incarnation = b.incarnation();
        seen.lastSeen = now;
        seen.operatorAddress = fromStd(b.operator_address());
    }
};

ClusterNode::ClusterNode(CommandService &commands, ClusterOptions options, QObject *parent)
    : QObject(parent), m_commands(commands), m_options(std::move(options))
{
    m_timer.setInterval(int(m_options.beaconInterval.count()));
    connect(&m_timer, &QTimer::timeout, this, [this] {
        beacon();
        if (m_core)
            m_core->tellTaken();
        sweep();
    });
}

ClusterNode::~ClusterNode()
{
    stop();
}

bool ClusterNode::start(QString *error)
{
    if (m_core)
        return true;
    if (const QString why = checkHubId(m_options.hubId); !why.isEmpty()) {
        if (error)
            *error = QStringLiteral("--hub-id: ") + why;
        return false;
    }
    auto core = std::make_shared<NodeCore>();
    core->commands = &m_commands;
    core->options = m_options;
    core->incarnation = QRandomGenerator::global()->generate64() | 1;
    core->link = NatsLink::connect(m_options, error);
    if (!core->link)
        return false;
    if (natsConnection_HasHeaderSupport(core->link->connection()) != NATS_OK) {
        if (error)
            *error = QStringLiteral("the NATS server has no message headers (2.2 or newer needed)");
        return false;
    }
    auto directory = std::make_unique<FleetDirectory>(
        core->link, m_commands.hub(), m_options,
        [raw = core.get()](const QString &hub) { return raw->alive(hub); },
        [this](const BotInfo &bot) { emit remoteBotChanged(bot); });
    if (!directory->start(error))
        return false;
    {
        std::lock_guard lock(core->subMutex);
        natsSubscription *replies = nullptr, *beacons = nullptr;
        if (!core->subscribe(&replies, subjects::replyWildcard(m_options.hubId), nullptr,
                             &NodeCore::onReply) ||
            !core->subscribe(&beacons, subjects::beaconSubject(), nullptr, &NodeCore::onBeacon)) {
            if (error)
                *error = QStringLiteral("cannot subscribe on NATS");
            return false;
        }
        core->ownSubs = {replies, beacons};
    }
    m_core = core;
    m_directory = std::move(directory);
    Hub &hub = m_commands.hub();
    const auto changed = [this](const BotInfo &info) {
        m_core->reconcile(info.botId);
        m_directory->touch(info.botId);
    };
    connect(&hub, &Hub::botConnected, this, changed, Qt::DirectConnection);
    connect(&hub, &Hub::botDisconnected, this, changed, Qt::DirectConnection);
    connect(
        &hub, &Hub::botUpdated, this,
        [this](const BotInfo &info) { m_directory->touch(info.botId); }, Qt::DirectConnection);
    for (const QString &id : hub.connectedBotIds()) {
        m_core->reconcile(id);
        m_directory->touch(id);
    }
    beacon();
    m_timer.start();
    return true;
}

void ClusterNode::stop()
{
    if (!m_core)
        return;
    m_timer.stop();
    disconnect(&m_commands.hub(), nullptr, this, nullptr);
    const std::shared_ptr<NodeCore> core = m_core;
    std::vector<natsSubscription *> subs;
    {
        std::lock_guard lock(core->subMutex);
        core->closing = true;
        for (auto &[id, sub] : core->botSubs)
            subs.push_back(sub);
        core->botSubs.clear();
        for (natsSubscription *sub : core->ownSubs)
            subs.push_back(sub);
        core->ownSubs.clear();
    }
    for (natsSubscription *sub : subs) {
        natsSubscription_Unsubscribe(sub);
        natsSubscription_Destroy(sub);
    }
    std::unordered_map<quint64, NodeCore::Forward> left;
    {
        std::lock_guard lock(core->mutex);
        left.swap(core->forwards);
    }
    for (const auto &[seq, f] : left)
        m_commands.registry().failCommand(
            f.commandId, CommandState::Disconnected,
            QStringLiteral("hub %1 left the cluster while hub %2 had it")
                .arg(m_options.hubId,
                     f.holder.isEmpty() ? QStringLiteral("(none yet)") : f.holder));
    const bool connected =
        natsConnection_Status(core->link->connection()) == NATS_CONN_STATUS_CONNECTED;
    // Closed first: the directory's threads then return at once, whatever they waited for
    // (a put, the watcher; stopping a watcher is a request that would wait 2 s for a server
    // that is gone). Its consumer on the server is ephemeral and goes by itself.
    core->link->close();
    m_directory->stop();
    bool completed;
    {
        // Every subscription completes once its last callback has returned; a connection
        // that lost its server completes none (cnats 3.4), so not waited for long.
        std::unique_lock lock(core->subMutex);
        completed = core->subsDone.wait_for(lock, connected ? 2s : 100ms,
                                            [&] { return core->liveSubs == 0; });
    }
    if (!completed) {
        // NATS may still hold callbacks into it: kept for the rest of the process.
        static std::mutex keptMutex;
        static std::vector<std::shared_ptr<NodeCore>> kept;
        std::lock_guard lock(keptMutex);
        kept.push_back(core);
    }
    m_directory.reset();
    m_core.reset();
}

bool ClusterNode::forward(const Command &c)
{
    const std::shared_ptr<NodeCore> core = m_core;
    if (!core || core->closing)
        return false;
    CommandRegistry &registry = m_commands.registry();
    v1::ForwardedCommand fc;
    v1::SendCommandRequest &request = *fc.mutable_request();
    request.set_bot_id(toStd(c.botId));
    convert::fillCommand(*request.mutable_command(), c.commandId, c.spec, c.timeout);
    *request.mutable_timeout() = wire::durationFromMs(c.timeout.count());
    fc.set_issuer(toStd(c.issuer.left(CommandOutcome::MaxIssuerLength)));
    for (auto it = c.scope.cbegin(); it != c.scope.cend(); ++it)
        (*fc.mutable_scope())[toStd(it.key())] = toStd(it.value());
    fc.set_fan_out_id(toStd(c.fanOut));
    fc.set_issuing_hub(toStd(m_options.hubId));
    fc.set_params(toStd(c.params.left(CommandOutcome::MaxParamsLength)));
    const auto now = steady_clock::now();
    quint64 seq;
    const std::optional<BotInfo> known = m_directory->remoteBot(c.botId);
    {
        std::lock_guard lock(core->mutex);
        seq = ++core->nextSeq;
        core->forwards.emplace(seq,
                               NodeCore::Forward{c.commandId,
                                                 c.botId,
                                                 {},
                                                 known ? known->holder : QString(),
                                                 now,
                                                 {},
                                                 now + c.timeout + m_options.forwardGrace + 5s});
        ++core->counters.forwarded;
    }
    // Its deadline here: the holder's, plus a grace for the holder's outcome to arrive.
    const auto deadline = std::min(c.timeout + m_options.forwardGrace, registry.maxTimeout());
    if (!registry.markSent(c.commandId, 0, duration_cast<milliseconds>(deadline))) {
        std::lock_guard lock(core->mutex);
        core->forwards.erase(seq); // finished meanwhile (cancelled): never sent
        return true;
    }
    if (!core->link->publish(subjects::botSubject(c.botId, "cmd"), fc.SerializeAsString(),
                             subjects::replySubject(m_options.hubId, seq))) {
        {
            std::lock_guard lock(core->mutex);
            core->forwards.erase(seq);
        }
        registry.failCommand(c.commandId, CommandState::NotConnected,
                             QStringLiteral("bot %1 is not connected here, and the cluster "
                                            "cannot be reached")
                                 .arg(c.botId));
    }
    return true;
}

void ClusterNode::cancel(const QString &botId, const QString &commandId, const QString &reason)
{
    const std::shared_ptr<NodeCore> core = m_core;
    if (!core || core->closing)
        return;
    v1::ForwardedCancel c;
    c.set_command_id(toStd(commandId));
    c.set_reason(toStd(reason));
    c.set_issuing_hub(toStd(m_options.hubId));
    core->link->publish(subjects::botSubject(botId, "cancel"), c.SerializeAsString());
}

std::optional<BotInfo> ClusterNode::remoteBot(const QString &botId) const
{
    return m_directory ? m_directory->remoteBot(botId) : std::nullopt;
}

QList<BotInfo> ClusterNode::remoteBots() const
{
    return m_directory ? m_directory->remoteBots() : QList<BotInfo>{};
}

QStringList ClusterNode::liveHubs() const
{
    QStringList out{m_options.hubId};
    if (!m_core)
        return out;
    const auto now = steady_clock::now();
    std::lock_guard lock(m_core->mutex);
    for (auto it = m_core->hubs.cbegin(); it != m_core->hubs.cend(); ++it)
        if (now - it->lastSeen < m_options.deadAfter)
            out << it.key();
    out.sort();
    return out;
}

ClusterCounters ClusterNode::counters() const
{
    if (!m_core)
        return {};
    ClusterCounters c;
    {
        std::lock_guard lock(m_core->mutex);
        c = m_core->counters;
    }
    std::lock_guard lock(m_core->subMutex);
    c.subscriptions = m_core->botSubs.size();
    return c;
}

void ClusterNode::beacon()
{
    if (!m_core)
        return;
    v1::HubBeacon b;
    b.set_hub(toStd(m_options.hubId));
    b.set_incarnation(m_core->incarnation);
    b.set_operator_address(toStd(m_commands.hub().operatorAddress()));
    {
        std::lock_guard lock(m_core->subMutex);
        b.set_bots(int(m_core->botSubs.size()));
    }
    m_core->link->publish(subjects::beaconSubject(), b.SerializeAsString());
}

void ClusterNode::sweep()
{
    if (!m_core)
        return;
    // A hub that went away: its bots show disconnected until they come back elsewhere.
    const QStringList alive = liveHubs();
    for (const QString &hub : std::as_const(m_aliveHubs))
        if (!alive.contains(hub))
            for (const BotInfo &bot : m_directory->botsOf(hub))
                emit remoteBotChanged(bot);
    m_aliveHubs = alive;
    const auto now = steady_clock::now();
    if (const quint64 duplicates = counters().duplicateHubId;
        duplicates > m_duplicatesSaid && now - m_saidAt >= 60s) {
        m_duplicatesSaid = duplicates;
        m_saidAt = now;
        emit problem(QStringLiteral("another process uses hub id %1 in this cluster: every hub "
                                    "needs its own --hub-id (commands and the directory go "
                                    "astray otherwise)")
                         .arg(m_options.hubId));
    }
    struct Lost
    {
        QString commandId, why;
    };
    std::vector<Lost> lost;
    {
        std::lock_guard lock(m_core->mutex);
        for (auto it = m_core->forwards.begin(); it != m_core->forwards.end();) {
            const NodeCore::Forward &f = it->second;
            QString why;
            if (now >= f.forgetAt) {
                it = m_core->forwards.erase(it); // its deadline here has passed long ago
                continue;
            }
            if (f.holder.isEmpty()) {
                // Not said taken yet (a holder says so within two beacon ticks): the hub the
                // directory named went away with it, or no hub answers at all.
                const auto seen = m_core->hubs.constFind(f.expected);
                const bool expectedGone =
                    !f.expected.isEmpty() &&
                    (seen == m_core->hubs.cend() || now - seen->lastSeen >= m_options.deadAfter);
                if (expectedGone && now - f.sentAt >= 2 * m_options.beaconInterval + 100ms)
                    why = QStringLiteral("hub %1, which held bot %2, went away")
                              .arg(f.expected, f.botId);
                else if (now - f.sentAt >= m_options.takeTimeout)
                    why = QStringLiteral("no hub of the cluster answered for it within %1 ms "
                                         "(its hub went away, or NATS is out of reach)")
                              .arg(m_options.takeTimeout.count());
            } else {
                const auto seen = m_core->hubs.constFind(f.holder);
                if (seen == m_core->hubs.cend() || now - seen->lastSeen >= m_options.deadAfter)
                    why = QStringLiteral("hub %1, which held bot %2, went away")
                              .arg(f.holder, f.botId);
                else if (seen->restartedAt > f.takenAt)
                    why = QStringLiteral("hub %1, which held bot %2, restarted")
                              .arg(f.holder, f.botId);
            }
            if (why.isEmpty()) {
                ++it;
                continue;
            }
            lost.push_back({f.commandId, why});
            ++m_core->counters.holderLost;
            it = m_core->forwards.erase(it);
        }
    }
    for (const Lost &l : lost)
        m_commands.registry().failCommand(l.commandId, CommandState::Disconnected, l.why);
}

} // namespace opconsole::cluster
