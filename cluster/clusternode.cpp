#include "clusternode.h"

#include "clusterwire.h"
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

#include <QDateTime>
#include <QRandomGenerator>

#include <condition_variable>
#include <thread>

namespace opconsole::cluster {

using namespace std::chrono;
using convert::fromStd;
using convert::toStd;

namespace {
constexpr int MaxClusterMessageBytes = 1024 * 1024; // nats-server's default max_payload
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
        QString holder;        // empty until a hub said it took it
        quint64 holderRun = 0; // and which run of that hub
        QString expected;      // the holder the directory named when it was sent (may be empty)
        steady_clock::time_point sentAt;
        steady_clock::time_point forgetAt;
    };
    // A hub's runs (incarnations) whose beacons arrive, each with when it was last heard.
    struct HubSeen
    {
        std::unordered_map<quint64, steady_clock::time_point> runs;
        QString operatorAddress;
    };
    // Forwards given up on (their holder went away or never answered), until their forgetAt:
    // an answer that comes after all is the bot's late ack (the truth, late).
    std::unordered_map<quint64, Forward> gaveUp;
    QString lastConflict; // the last bot held by two hubs with different credentials
    // Bots another hub claimed while this hub holds them too (same credential): this hub's
    // stream, if it stays silent, is a stale one (ClusterNode::settleClaims).
    struct Claim
    {
        quint64 session = 0; // this hub's stream of the bot when the claim came
        QString by;          // the hub that claimed it
        steady_clock::time_point at;
    };
    std::unordered_map<QString, Claim> claims;
    mutable std::mutex mutex;
    quint64 nextSeq = 0;
    std::unordered_map<quint64, Forward> forwards;
    // Commands other hubs forwarded here that are still pending: a command still pending at
    // the next beacon tick is told "taken" then (most end before; their outcome says it).
    struct Held
    {
        QByteArray answers; // the issuing hub's answer subject
        quint64 seq = 0;    // its number for the command
        QString commandId;
        int ticks = 0; // beacon ticks seen pending: "taken" at the first
    };
    quint64 nextHeld = 0;
    std::unordered_map<quint64, Held> held;

    // Outgoing: queued by any thread, published by the sender thread in batches (whatever
    // queued while it published the last ones): forwarded commands per bot subject, answers
    // per issuing hub.
    std::mutex sendOrder; // a forward's markSent and queueing, against a cancel of it
    std::mutex outMutex;
    std::condition_variable outWake;
    bool outStop = false;
    std::unordered_map<std::string, v1::ForwardedBatch> outCommands;
    std::unordered_map<std::string, v1::ForwardReplies> outAnswers;
    std::vector<std::pair<QByteArray, std::string>> outCancels;
    std::thread sender;
    // Batches sent, for NATS's "no responders" (their commands' seqs), by batch number.
    quint64 nextBatch = 0;
    std::unordered_map<quint64, std::pair<steady_clock::time_point, std::vector<quint64>>> batches;
    static constexpr size_t MaxBatchBytes = 256 * 1024; // well under max_payload (1 MB)
    static constexpr int MaxBatchCommands = 10'000;     // what a holder takes in one message

    ~NodeCore() { stopSender(false); }

    void stopSender(bool dropCommands)
    {
        {
            std::lock_guard lock(outMutex);
            if (dropCommands)
                outCommands.clear();
            outStop = true;
        }
        outWake.notify_all();
        if (sender.joinable())
            sender.join();
    }

    void queueCommand(const QByteArray &subject, v1::ForwardedCommand &&fc)
    {
        {
            std::lock_guard lock(outMutex);
            *outCommands[subject.toStdString()].add_commands() = std::move(fc);
        }
        outWake.notify_one();
    }

    // A cancel goes out after the commands queued before it (a cancel that overtook its
    // command would find nothing to cancel at the holder).
    void queueCancel(const QByteArray &subject, std::string &&cancel)
    {
        {
            std::lock_guard lock(outMutex);
            outCancels.emplace_back(subject, std::move(cancel));
        }
        outWake.notify_one();
    }

    void queueAnswer(const QByteArray &answers, v1::ForwardReply &&r)
    {
        {
            std::lock_guard lock(outMutex);
            *outAnswers[answers.toStdString()].add_replies() = std::move(r);
        }
        outWake.notify_one();
    }

    // Splits a batch's items into messages of at most MaxBatchBytes (and MaxBatchCommands).
    template <typename Item, typename Message, typename Add>
    static std::vector<Message> split(const google::protobuf::RepeatedPtrField<Item> &items,
                                      Add add)
    {
        std::vector<Message> out(1);
        size_t bytes = 0;
        int count = 0;
        for (const Item &item : items) {
            const size_t size = item.ByteSizeLong() + 8;
            if (count > 0 && (bytes + size > MaxBatchBytes || count >= MaxBatchCommands)) {
                out.emplace_back();
                bytes = 0;
                count = 0;
            }
            *add(out.back()) = item;
            bytes += size;
            ++count;
        }
        return out;
    }

    void senderLoop()
    {
        std::unique_lock lock(outMutex);
        for (;;) {
            outWake.wait(lock, [&] {
                return outStop || !outCommands.empty() || !outAnswers.empty() ||
                       !outCancels.empty();
            });
            if (outCommands.empty() && outAnswers.empty() && outCancels.empty())
                return; // stopping, and everything queued is sent
            auto commands = std::move(outCommands);
            auto answers = std::move(outAnswers);
            auto cancels = std::move(outCancels);
            outCancels.clear();
            outCommands.clear();
            outAnswers.clear();
            lock.unlock();
            for (const auto &[subject, batch] : commands) {
                for (const v1::ForwardedBatch &part :
                     split<v1::ForwardedCommand, v1::ForwardedBatch>(
                         batch.commands(), [](v1::ForwardedBatch &b) { return b.add_commands(); }))
                    sendBatch(QByteArray::fromStdString(subject), part);
            }
            for (const auto &[subject, replies] : answers) {
                for (const v1::ForwardReplies &part : split<v1::ForwardReply, v1::ForwardReplies>(
                         replies.replies(), [](v1::ForwardReplies &r) { return r.add_replies(); }))
                    link->publish(QByteArray::fromStdString(subject), part.SerializeAsString());
            }
            for (const auto &[subject, cancel] : cancels)
                link->publish(subject, cancel);
            lock.lock();
        }
    }

    void sendBatch(const QByteArray &subject, const v1::ForwardedBatch &batch)
    {
        std::vector<quint64> seqs;
        seqs.reserve(size_t(batch.commands_size()));
        for (const v1::ForwardedCommand &fc : batch.commands())
            seqs.push_back(fc.seq());
        if (closing) {
            // The hub is leaving the cluster: nobody would hear the answers.
            endForwards(seqs, CommandState::NotConnected,
                        QStringLiteral("the hub left the cluster before the bot's command went"));
            return;
        }
        quint64 number;
        {
            std::lock_guard lock(mutex);
            number = ++nextBatch;
            batches.emplace(number, std::pair{steady_clock::now(), seqs});
        }
        if (link->publish(subject, batch.SerializeAsString(),
                          subjects::batchReplySubject(options.hubId, incarnation, number)))
            return;
        {
            std::lock_guard lock(mutex);
            batches.erase(number);
        }
        endForwards(seqs, CommandState::NotConnected,
                    QStringLiteral("the bot is not connected here, and the cluster cannot be "
                                   "reached"));
    }

    // Ends forwarded commands that are still waiting, each with `state`.
    void endForwards(const std::vector<quint64> &seqs, CommandState state, const QString &why)
    {
        std::vector<Forward> ended;
        {
            std::lock_guard lock(mutex);
            for (const quint64 seq : seqs) {
                const auto it = forwards.find(seq);
                if (it == forwards.end())
                    continue;
                ended.push_back(it->second);
                forwards.erase(it);
            }
        }
        for (const Forward &f : ended)
            commands->registry().failCommand(
                f.commandId, state,
                QString(why).replace(QLatin1String("the bot"), QStringLiteral("bot ") + f.botId));
    }
    QHash<QString, HubSeen> hubs;
    ClusterCounters counters;

    bool alive(const QString &hub) const
    {
        if (hub == options.hubId)
            return !closing;
        std::lock_guard lock(mutex);
        return aliveLocked(hub, 0);
    }
    // Some run of the hub (run 0), or that run, was heard within deadAfter.
    bool aliveLocked(const QString &hub, quint64 run) const
    {
        if (hub == options.hubId)
            return (run == 0 || run == incarnation) && !closing;
        const auto it = hubs.constFind(hub);
        if (it == hubs.cend())
            return false;
        const auto now = steady_clock::now();
        for (const auto &[r, lastSeen] : it->runs)
            if ((run == 0 || r == run) && now - lastSeen < options.deadAfter)
                return true;
        return false;
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

    // Every subscription's handler: the message to `handle` unless the node is stopping; the
    // message is freed either way.
    template <void (NodeCore::*handle)(natsMsg *)>
    static void deliver(natsConnection *, natsSubscription *, natsMsg *msg, void *closure)
    {
        auto *core = static_cast<NodeCore *>(closure);
        if (!core->closing)
            (core->*handle)(msg);
        natsMsg_Destroy(msg);
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
                          &NodeCore::deliver<&NodeCore::botMessage>))
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
        if (parts[3] == "cmd") {
            v1::ForwardedBatch batch;
            if (!batch.ParseFromArray(natsMsg_GetData(msg), len) ||
                batch.commands_size() > MaxBatchCommands)
                return bad();
            for (const v1::ForwardedCommand &fc : batch.commands())
                serve(botId, fc);
        } else if (parts[3] == "cancel")
            cancelHere(botId, natsMsg_GetData(msg), len);
        else
            bad();
    }

    void answer(const QByteArray &answers, quint64 seq, const QString &commandId,
                const CommandOutcome *record, bool taken)
    {
        v1::ForwardReply out;
        out.set_hub(toStd(options.hubId));
        out.set_incarnation(incarnation);
        out.set_seq(seq);
        out.set_command_id(toStd(commandId));
        out.set_taken(taken);
        if (record)
            convert::fillRecord(*out.mutable_record(), *record);
        queueAnswer(answers, std::move(out));
    }

    void refuse(const QByteArray &answers, quint64 seq, const QString &commandId,
                const QString &botId, CommandState state, const QString &why)
    {
        CommandOutcome o;
        o.state = state;
        o.commandId = commandId;
        o.botId = botId;
        o.reason = why;
        o.registeredAt = o.finishedAt = Clock::now();
        answer(answers, seq, commandId, &o, false);
    }

    void serve(const QString &botId, const v1::ForwardedCommand &fc)
    {
        // Answers go to the issuing hub: one that cannot be named is not answered (its own
        // take timeout ends the command there).
        if (!checks::answerable(fc))
            return bad();
        const QByteArray reply =
            subjects::answerSubject(fromStd(fc.issuing_hub()), fc.issuing_incarnation());
        const quint64 seq = fc.seq();
        const QString commandId = fromStd(fc.request().command().command_id());
        if (fromStd(fc.issuing_hub()) == options.hubId && fc.issuing_incarnation() == incarnation) {
            // Its own command, forwarded while the bot connected here: it is in this registry
            // already, so it goes down the bot's stream from here (never registered twice).
            {
                std::lock_guard lock(mutex);
                forwards.erase(seq);
            }
            checks::Forwarded own;
            if (checks::checkForwarded(fc, botId, commands->registry().maxTimeout(), &own)
                    .isEmpty() &&
                commands->hub().sendCommand(botId, commandId, own.request.spec,
                                            own.request.timeout) == SendResult::Queued)
                return;
            commands->registry().failCommand(
                commandId, CommandState::NotConnected,
                QStringLiteral("bot %1 is not connected to any hub of the cluster").arg(botId));
            return;
        }
        checks::Forwarded checked;
        if (const QString problem =
                checks::checkForwarded(fc, botId, commands->registry().maxTimeout(), &checked);
            !problem.isEmpty()) {
            bad();
            // A valid id gets its refusal; anything else is not answered (the issuer's
            // take timeout ends it).
            if (wire::checkId(fc.request().command().command_id(), "command_id").empty())
                refuse(reply, seq, commandId, botId, CommandState::Refused, problem);
            return;
        }
        if (!commands->hub().isConnected(botId)) {
            refuse(reply, seq, commandId, botId, CommandState::NotConnected,
                   QStringLiteral("bot %1 left hub %2").arg(botId, options.hubId));
            return;
        }
        SendOptions send = checked.request.options;
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
            held.emplace(key, Held{reply, seq, commandId, 0});
        }
        QFuture<CommandOutcome> future = commands->sendWithId(
            commandId, botId, checked.request.spec, checked.request.timeout, send);
        // The outcome, from whichever thread finishes it (a bot's reader, the timer thread).
        future.then([self = weak_from_this(), link = link, reply, key, seq, run = incarnation,
                     hub = options.hubId](const CommandOutcome &o) {
            v1::ForwardReply out;
            out.set_hub(toStd(hub));
            out.set_incarnation(run);
            out.set_seq(seq);
            out.set_command_id(toStd(o.commandId));
            convert::fillRecord(*out.mutable_record(), o);
            if (const auto core = self.lock()) {
                {
                    std::lock_guard lock(core->mutex);
                    core->held.erase(key);
                }
                core->queueAnswer(reply, std::move(out));
            } else {
                v1::ForwardReplies one; // the node is gone: straight out, if NATS still is
                *one.add_replies() = std::move(out);
                link->publish(reply, one.SerializeAsString());
            }
        });
    }

    // Each beacon tick: "taken" for the forwarded commands still pending (a command that ends
    // before the next tick costs its issuer one message, not two).
    void tellTaken()
    {
        std::vector<Held> taken;
        {
            std::lock_guard lock(mutex);
            for (auto &[key, h] : held)
                if (++h.ticks == 1)
                    taken.push_back(h);
        }
        for (const Held &h : taken)
            answer(h.answers, h.seq, h.commandId, nullptr, true);
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
    void reply(natsMsg *msg)
    {
        const QByteArray subject(natsMsg_GetSubject(msg));
        const QByteArray last = subject.mid(subject.lastIndexOf('.') + 1);
        const int len = natsMsg_GetDataLength(msg);
        if (last.startsWith('b')) {
            // NATS's answer to a batch when no hub listens on its bot's subject.
            bool ok = false;
            const quint64 number = last.mid(1).toULongLong(&ok);
            if (!ok || !natsMsg_IsNoResponders(msg))
                return bad();
            std::vector<quint64> seqs;
            {
                std::lock_guard lock(mutex);
                const auto it = batches.find(number);
                if (it == batches.end())
                    return;
                seqs = std::move(it->second.second);
                batches.erase(it);
                counters.noHolder += seqs.size();
            }
            endForwards(seqs, CommandState::NotConnected,
                        QStringLiteral("the bot is not connected to any hub of the cluster"));
            return;
        }
        v1::ForwardReplies replies;
        if (last != "r" || len < 0 || len > MaxClusterMessageBytes ||
            !replies.ParseFromArray(natsMsg_GetData(msg), len))
            return bad();
        for (const v1::ForwardReply &r : replies.replies())
            answered(r);
    }

    void answered(const v1::ForwardReply &r)
    {
        if (!checkHubId(fromStd(r.hub())).isEmpty() || r.incarnation() == 0)
            return bad();
        const quint64 seq = r.seq();
        const QString commandId = fromStd(r.command_id());
        // A final record is checked before it is matched: one that breaks a rule, or that is
        // not the forwarded command's (another command, another bot, not the hub that took
        // it), is ignored and the command keeps waiting (its holder's end, or its deadline).
        std::optional<CommandOutcome> o;
        if (r.has_record()) {
            QString problem;
            o = checks::checkAnswer(r, &problem);
            if (!o)
                return bad();
        }
        Forward f;
        bool late = false;
        {
            std::lock_guard lock(mutex);
            const QString from = fromStd(r.hub());
            auto it = forwards.find(seq);
            if (it == forwards.end()) {
                // Given up on (its holder seemed gone) and answered after all: the bot's answer
                // is its late ack. Anything else has ended already.
                it = gaveUp.find(seq);
                if (it == gaveUp.end() || !o || !o->answered() ||
                    o->commandId != it->second.commandId || o->botId != it->second.botId)
                    return;
                f = it->second;
                gaveUp.erase(it);
                late = true;
            } else if (commandId != it->second.commandId) {
                ++counters.badMessages; // an answer for another command with this number
                return;
            } else if (!o) {
                if (r.taken() && it->second.holder.isEmpty()) {
                    it->second.holder = from;
                    it->second.holderRun = r.incarnation();
                }
                return;
            } else if (o->commandId != it->second.commandId || o->botId != it->second.botId ||
                       (!it->second.holder.isEmpty() &&
                        (from != it->second.holder || r.incarnation() != it->second.holderRun))) {
                ++counters.badMessages;
                return;
            } else {
                f = it->second;
                forwards.erase(it);
            }
        }
        CommandRegistry &registry = commands->registry();
        if (late) {
            registry.applyResentAck(f.commandId, f.botId, *o->ack);
            return;
        }
        if (o->answered() && o->ack)
            registry.resolveCommand(f.commandId, f.botId, *o->ack);
        else
            registry.failCommand(f.commandId, o->state, o->reason);
    }

    // ---- acks a bot gave another hub ---------------------------------------------------------
    double ackTokens = 2 * 2000.0;
    steady_clock::time_point ackRefilled = steady_clock::now();

    // A bot's acks this hub knows no command for: to every hub (within a budget, so that a
    // bot making up ids cannot flood the cluster).
    void shareAcks(const QString &botId, const QStringList &ids, const QList<CommandAckData> &acks)
    {
        if (closing || ids.isEmpty() || ids.size() != acks.size())
            return;
        {
            std::lock_guard lock(mutex);
            const auto now = steady_clock::now();
            const double rate = ClusterNode::MaxSharedAcksPerSecond;
            ackTokens =
                std::min(2 * rate, ackTokens + rate * duration<double>(now - ackRefilled).count());
            ackRefilled = now;
            if (ackTokens < double(ids.size())) {
                counters.acksUnshared += quint64(ids.size());
                return;
            }
            ackTokens -= double(ids.size());
            counters.acksShared += quint64(ids.size());
        }
        v1::ResentAcks out;
        out.set_bot_id(toStd(botId));
        out.set_hub(toStd(options.hubId));
        for (qsizetype i = 0; i < ids.size() && i < wire::limits::MaxResentAcks; ++i)
            *out.add_acks() = convert::fromAckData(ids[i], acks[i]);
        link->publish(subjects::acksSubject(), out.SerializeAsString());
    }

    void sharedAcks(natsMsg *msg)
    {
        v1::ResentAcks in;
        const int len = natsMsg_GetDataLength(msg);
        if (len < 0 || len > MaxClusterMessageBytes ||
            !in.ParseFromArray(natsMsg_GetData(msg), len) || !checks::checkResentAcks(in).isEmpty())
            return bad();
        if (fromStd(in.hub()) == options.hubId)
            return; // its own
        const QString botId = fromStd(in.bot_id());
        quint64 applied = 0;
        for (const v1::CommandAck &ack : in.acks()) {
            const wire::AckCheck checked = wire::checkAck(ack);
            if (!checked.problem.empty())
                continue;
            // As the bot's own resent ack: only a command of that bot, and only to tell what
            // this hub does not know yet (a pending one resolves; an ended one without an
            // answer gets it as a late ack).
            const ResolveResult r = commands->registry().applyResentAck(
                fromStd(ack.command_id()), botId, convert::toAckData(ack, checked));
            applied += r == ResolveResult::Resolved || r == ResolveResult::Late;
        }
        std::lock_guard lock(mutex);
        counters.acksApplied += applied;
    }

    // ---- admission: a rejection or revocation on one hub holds on every hub -------------
    static thread_local bool applyingShared; // a decision from another hub: not shared again

    void shareDecision(const QString &botId, AdmissionAction action, const QString &by,
                       const QString &reason)
    {
        if (closing || applyingShared || action == AdmissionAction::Accept)
            return;
        v1::AdmissionShared out;
        out.set_bot_id(toStd(botId));
        out.set_revoke(action == AdmissionAction::Revoke);
        out.set_by(toStd(by.left(256)));
        out.set_reason(toStd(reason.left(4096)));
        out.set_hub(toStd(options.hubId));
        link->publish(subjects::admissionSubject(), out.SerializeAsString());
    }

    void sharedDecision(natsMsg *msg)
    {
        v1::AdmissionShared in;
        const int len = natsMsg_GetDataLength(msg);
        if (len < 0 || len > 64 * 1024 || !in.ParseFromArray(natsMsg_GetData(msg), len) ||
            !checks::checkAdmission(in).isEmpty())
            return bad();
        const QString from = fromStd(in.hub());
        if (from == options.hubId)
            return; // its own
        applyingShared = true;
        const DecisionResult r = commands->hub().decideBot(
            fromStd(in.bot_id()), in.revoke() ? AdmissionAction::Revoke : AdmissionAction::Reject,
            QStringLiteral("%1 (on %2)").arg(fromStd(in.by()), from), fromStd(in.reason()));
        applyingShared = false;
        std::lock_guard lock(mutex);
        if (r.error == DecisionResult::Error::None)
            ++counters.decisionsApplied;
    }

    // ---- beacons --------------------------------------------------------------------------
    void beacon(natsMsg *msg)
    {
        v1::HubBeacon b;
        const int len = natsMsg_GetDataLength(msg);
        if (len < 0 || len > 4096 || !b.ParseFromArray(natsMsg_GetData(msg), len))
            return bad();
        const QString hub = fromStd(b.hub());
        if (!checks::checkBeacon(b).isEmpty())
            return bad();
        if (hub == options.hubId) {
            if (b.incarnation() != incarnation) {
                // Another process says it is this hub: two hubs with one --hub-id.
                std::lock_guard lock(mutex);
                ++counters.duplicateHubId;
            }
            return;
        }
        if (b.incarnation() == 0)
            return bad();
        const auto now = steady_clock::now();
        std::lock_guard lock(mutex);
        HubSeen &seen = hubs[hub];
        // Each run on its own: a restarted hub's old run falls silent (what it took is lost
        // with it); two processes with one id are both alive.
        seen.runs[b.incarnation()] = now;
        if (seen.runs.size() > 4) {
            // A hub has one run, a restart briefly two: more are made up, the oldest go.
            auto oldest = seen.runs.begin();
            for (auto it = seen.runs.begin(); it != seen.runs.end(); ++it)
                if (it->second < oldest->second)
                    oldest = it;
            seen.runs.erase(oldest);
        }
        seen.operatorAddress = fromStd(b.operator_address());
    }
};

namespace {
// A core NATS may still call into (its subscriptions did not complete): kept for the rest of
// the process rather than freed under a callback.
void keepForever(const std::shared_ptr<NodeCore> &core)
{
    static std::mutex keptMutex;
    static std::vector<std::shared_ptr<NodeCore>> kept;
    std::lock_guard lock(keptMutex);
    kept.push_back(core);
}
} // namespace

thread_local bool NodeCore::applyingShared = false;

ClusterNode::ClusterNode(CommandService &commands, ClusterOptions options, QObject *parent)
    : QObject(parent), m_commands(commands), m_options(std::move(options))
{
    m_timer.setInterval(int(m_options.beaconInterval.count()));
    connect(&m_timer, &QTimer::timeout, this, [this] {
        beacon();
        if (m_core)
            m_core->tellTaken();
        sweep();
        if (m_core)
            settleClaims();
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
    core->sender = std::thread([raw = core.get()] { raw->senderLoop(); });
    if (natsConnection_HasHeaderSupport(core->link->connection()) != NATS_OK) {
        if (error)
            *error = QStringLiteral("the NATS server has no message headers (2.2 or newer needed)");
        return false;
    }
    auto directory = std::make_shared<FleetDirectory>(
        core->link, m_commands.hub(), m_options,
        [raw = core.get()](const QString &hub) { return raw->alive(hub); },
        [this](const BotInfo &bot) { emit remoteBotChanged(bot); },
        [this, raw = core.get()](const BotInfo &bot) { claimed(raw, bot); });
    if (!directory->start(error))
        return false;
    {
        std::lock_guard lock(core->subMutex);
        natsSubscription *replies = nullptr, *beacons = nullptr, *acks = nullptr,
                         *admission = nullptr;
        const bool subscribed =
            core->subscribe(&replies, subjects::replyWildcard(m_options.hubId, core->incarnation),
                            nullptr, &NodeCore::deliver<&NodeCore::reply>) &&
            core->subscribe(&beacons, subjects::beaconSubject(), nullptr,
                            &NodeCore::deliver<&NodeCore::beacon>) &&
            core->subscribe(&acks, subjects::acksSubject(), nullptr,
                            &NodeCore::deliver<&NodeCore::sharedAcks>) &&
            core->subscribe(&admission, subjects::admissionSubject(), nullptr,
                            &NodeCore::deliver<&NodeCore::sharedDecision>);
        core->ownSubs = {replies, beacons, acks, admission};
        if (!subscribed) {
            if (error)
                *error = QStringLiteral("cannot subscribe on NATS");
            // A subscription made may still call into the core: it is kept, never freed.
            core->closing = true;
            keepForever(core);
            return false;
        }
    }
    m_core = core;
    m_directory = std::move(directory);
    Hub &hub = m_commands.hub();
    // The hub's signals come on its gRPC threads (DirectConnection); each slot holds what it
    // uses, so a call still running while stop() resets them finds them alive (and stopping).
    const auto changed = [core, directory = m_directory](const BotInfo &info) {
        core->reconcile(info.botId);
        directory->touch(info.botId);
    };
    connect(&hub, &Hub::botConnected, this, changed, Qt::DirectConnection);
    connect(&hub, &Hub::botDisconnected, this, changed, Qt::DirectConnection);
    connect(
        &hub, &Hub::unknownAcks, this,
        [core](const QString &botId, const QStringList &ids, const QList<CommandAckData> &acks) {
            core->shareAcks(botId, ids, acks);
        },
        Qt::DirectConnection);
    connect(
        &hub, &Hub::botDecided, this,
        [core](const QString &botId, AdmissionAction action, const QString &by,
               const QString &reason) { core->shareDecision(botId, action, by, reason); },
        Qt::DirectConnection);
    connect(
        &hub, &Hub::botUpdated, this,
        [directory = m_directory](const BotInfo &info) { directory->touch(info.botId); },
        Qt::DirectConnection);
    // A command waiting for its bot to connect goes when the bot connects to another hub too.
    connect(
        this, &ClusterNode::remoteBotChanged, this,
        [commands = &m_commands](const BotInfo &bot) {
            if (bot.connected)
                commands->botConnectedElsewhere(bot.botId);
        },
        Qt::DirectConnection);
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
    // Nothing more goes out but the answers queued (the outcomes of the commands this hub
    // held for others, which its stop finished): commands not yet sent are not sent.
    core->stopSender(true);
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
    if (!completed)
        keepForever(core); // NATS may still hold callbacks into it
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
    const QString expected = m_directory->holderOf(c.botId);
    {
        std::lock_guard lock(core->mutex);
        seq = ++core->nextSeq;
        NodeCore::Forward f;
        f.commandId = c.commandId;
        f.botId = c.botId;
        f.expected = expected;
        f.sentAt = now;
        f.forgetAt = now + c.timeout + m_options.forwardGrace + 5s;
        core->forwards.emplace(seq, std::move(f));
        ++core->counters.forwarded;
    }
    // Its deadline here: the holder's, plus a grace for the holder's outcome to arrive. Marked
    // sent and queued in one step: a cancel (which needs it sent) is queued after it.
    std::lock_guard order(core->sendOrder);
    const auto deadline = std::min(c.timeout + m_options.forwardGrace, registry.maxTimeout());
    if (!registry.markSent(c.commandId, 0, duration_cast<milliseconds>(deadline))) {
        std::lock_guard lock(core->mutex);
        core->forwards.erase(seq); // finished meanwhile (cancelled): never sent
        return true;
    }
    fc.set_seq(seq);
    fc.set_issuing_incarnation(core->incarnation);
    core->queueCommand(subjects::botSubject(c.botId, "cmd"), std::move(fc));
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
    std::lock_guard order(core->sendOrder);
    core->queueCancel(subjects::botSubject(botId, "cancel"), c.SerializeAsString());
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
    std::lock_guard lock(m_core->mutex);
    for (auto it = m_core->hubs.cbegin(); it != m_core->hubs.cend(); ++it)
        if (m_core->aliveLocked(it.key(), 0))
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

void ClusterNode::claimed(NodeCore *core, const BotInfo &remote)
{
    // Another hub says it holds a bot this hub holds too. The same credential: the bot moved
    // there and its stream here may be stale (half open): it is watched, and ended once it has
    // been silent for 1.5 heartbeat intervals (a live stream heartbeats; no clocks of other
    // hosts are compared). Another credential: one of them is an impostor; neither is ended,
    // an operator is told.
    const std::optional<BotInfo> local = m_commands.hub().bot(remote.botId);
    if (!local || !local->connected || core->closing)
        return;
    if (local->credential != remote.credential) {
        std::lock_guard lock(core->mutex);
        ++core->counters.conflictingBots;
        core->lastConflict = QStringLiteral("bot %1 is connected to hub %2 (%3) and to hub %4 "
                                            "(%5) with different credentials")
                                 .arg(remote.botId, remote.holder, remote.credential,
                                      m_options.hubId, local->credential);
        return;
    }
    std::lock_guard lock(core->mutex);
    if (core->claims.size() < 100'000)
        core->claims[remote.botId] = {local->session, remote.holder, steady_clock::now()};
}

void ClusterNode::settleClaims()
{
    std::vector<std::pair<QString, NodeCore::Claim>> claims;
    {
        std::lock_guard lock(m_core->mutex);
        for (const auto &[id, claim] : m_core->claims)
            claims.emplace_back(id, claim);
    }
    Hub &hub = m_commands.hub();
    const auto beat = hub.options().heartbeatInterval;
    const qint64 nowMs = QDateTime::currentMSecsSinceEpoch();
    const auto now = steady_clock::now();
    for (const auto &[id, claim] : claims) {
        const std::optional<BotInfo> local = hub.bot(id);
        bool settled = !local || !local->connected || local->session != claim.session;
        if (!settled && nowMs - local->lastSeenMs >= beat.count() * 3 / 2) {
            hub.closeSession(id, claim.session,
                             QStringLiteral("bot %1 connected to hub %2 since").arg(id, claim.by));
            settled = true;
        }
        // Still talking after three intervals: this stream is the live one.
        if (settled || now - claim.at >= 3 * beat) {
            std::lock_guard lock(m_core->mutex);
            m_core->claims.erase(id);
        }
    }
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
    const ClusterCounters c = counters();
    if (c.conflictingBots > m_conflictsSaid && now - m_conflictSaidAt >= 60s) {
        m_conflictsSaid = c.conflictingBots;
        m_conflictSaidAt = now;
        QString what;
        {
            std::lock_guard lock(m_core->mutex);
            what = m_core->lastConflict;
        }
        emit problem(what + QStringLiteral(": an impostor on one of them? (each keeps its own; "
                                           "reject the wrong credential)"));
    }
    if (c.duplicateHubId > m_duplicatesSaid && now - m_saidAt >= 60s) {
        m_duplicatesSaid = c.duplicateHubId;
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
        // Batches NATS said nothing about: delivered (no responders comes at once).
        for (auto it = m_core->batches.begin(); it != m_core->batches.end();)
            it = now - it->second.first >= m_options.takeTimeout ? m_core->batches.erase(it)
                                                                 : std::next(it);
        for (auto it = m_core->gaveUp.begin(); it != m_core->gaveUp.end();)
            it = now >= it->second.forgetAt ? m_core->gaveUp.erase(it) : std::next(it);
        // Hubs and runs not heard for a minute are forgotten (beacons with made-up ids too).
        for (auto hub = m_core->hubs.begin(); hub != m_core->hubs.end();) {
            for (auto run = hub->runs.begin(); run != hub->runs.end();)
                run = now - run->second > 60s ? hub->runs.erase(run) : std::next(run);
            hub = hub->runs.empty() ? m_core->hubs.erase(hub) : std::next(hub);
        }
        for (auto it = m_core->forwards.begin(); it != m_core->forwards.end();) {
            const NodeCore::Forward &f = it->second;
            QString why;
            if (now >= f.forgetAt) {
                it = m_core->forwards.erase(it); // its deadline here has passed long ago
                continue;
            }
            if (f.holder.isEmpty()) {
                // Not said taken yet (a holder says so at its next beacon tick): the hub the
                // directory named went away with it, or no hub answers at all.
                const bool expectedGone =
                    !f.expected.isEmpty() && !m_core->aliveLocked(f.expected, 0);
                if (expectedGone && now - f.sentAt >= 2 * m_options.beaconInterval + 100ms)
                    why = QStringLiteral("hub %1, which held bot %2, went away")
                              .arg(f.expected, f.botId);
                else if (now - f.sentAt >= m_options.takeTimeout)
                    why = QStringLiteral("no hub of the cluster answered for it within %1 ms "
                                         "(its hub went away, or NATS is out of reach)")
                              .arg(m_options.takeTimeout.count());
            } else if (!m_core->aliveLocked(f.holder, f.holderRun)) {
                why = m_core->aliveLocked(f.holder, 0)
                          ? QStringLiteral("hub %1, which held bot %2, restarted")
                                .arg(f.holder, f.botId)
                          : QStringLiteral("hub %1, which held bot %2, went away")
                                .arg(f.holder, f.botId);
            }
            if (why.isEmpty()) {
                ++it;
                continue;
            }
            lost.push_back({f.commandId, why});
            ++m_core->counters.holderLost;
            m_core->gaveUp.emplace(it->first, it->second); // an answer after all: a late ack
            it = m_core->forwards.erase(it);
        }
    }
    for (const Lost &l : lost)
        m_commands.registry().failCommand(l.commandId, CommandState::Disconnected, l.why);
}

} // namespace opconsole::cluster
