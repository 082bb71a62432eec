#include "operatorservice.h"

#include "commandforwarder.h"
#include "operatoraccess.h"

#include "changefeed.h"
#include "commandregistry.h"
#include "commandservice.h"
#include "historystore.h"
#include "hub.h"
#include "opconsole/v1/operator.grpc.pb.h"
#include "operatorrequest.h"
#include "outqueue.h"
#include "protoconvert.h"
#include "wirecheck.h"

#include <grpcpp/grpcpp.h>

#include <QSet>

#include <algorithm>
#include <condition_variable>
#include <mutex>

namespace opconsole {

using namespace std::chrono;
using convert::fromStd;
using convert::toStd;

namespace {

grpc::Status invalid(const QString &why)
{
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, toStd(why));
}

QString problemOf(const std::string &problem)
{
    return fromStd(problem);
}

// Finishes a unary reactor exactly once, whatever happens while the response is built.
template <typename Fill> void finishWith(grpc::ServerUnaryReactor *reactor, Fill &&fill)
{
    try {
        fill();
        reactor->Finish(grpc::Status::OK);
    } catch (const std::exception &e) {
        reactor->Finish(grpc::Status(grpc::StatusCode::INTERNAL, e.what()));
    } catch (...) {
        reactor->Finish(grpc::Status(grpc::StatusCode::INTERNAL, "internal error"));
    }
}

QMap<QString, QString> selectorOf(const google::protobuf::Map<std::string, std::string> &labels)
{
    QMap<QString, QString> selector;
    for (const auto &[k, v] : labels)
        selector.insert(fromStd(k), fromStd(v));
    return selector;
}

// A server stream that takes messages from any thread: one write outstanding, the rest
// queued up to a bound (past it the stream ends with RESOURCE_EXHAUSTED), Finish once.
template <typename T> class Writer : public grpc::ServerWriteReactor<T>
{
public:
    void start(std::shared_ptr<Writer> self) { m_self = std::move(self); }

    // What a Watch gets at its start (the fleet, a snapshot or replay, markers) is bounded by
    // what the hub holds and sized when it is built; it does not count against the backlog that
    // live events may fill, so a large fleet or snapshot never ends a Watch before it starts.
    void pushStart(T message)
    {
        {
            std::lock_guard lock(m_mutex);
            m_allowanceMessages += 1;
            m_allowanceBytes += message.ByteSizeLong();
        }
        push(std::move(message));
    }

    void push(T message)
    {
        std::unique_lock lock(m_mutex);
        if (m_finishing)
            return;
        switch (m_writes.push(
            std::move(message),
            QueueLimits{size_t(OperatorService::MaxWatchBacklog) + m_allowanceMessages,
                        size_t(OperatorService::MaxWatchBacklogBytes) + m_allowanceBytes})) {
        case OutQueue<T>::Push::Full:
            m_writes.clear();
            finishLocked(lock, grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                            "the reader fell too far behind"));
            return;
        case OutQueue<T>::Push::Queued:
            return;
        case OutQueue<T>::Push::StartWrite:
            break;
        }
        lock.unlock();
        this->StartWrite(m_writes.out());
    }

    // Ends the stream once what is queued has gone out.
    void finish(const grpc::Status &status)
    {
        std::unique_lock lock(m_mutex);
        finishLocked(lock, status);
    }

    void OnWriteDone(bool ok) override
    {
        std::unique_lock lock(m_mutex);
        if (!ok)
            m_writes.clear();
        grpc::WriteOptions options;
        if (m_writes.next(options)) {
            lock.unlock();
            this->StartWrite(m_writes.out(), options);
            return;
        }
        if (m_finishing && !m_finished) {
            m_finished = true;
            lock.unlock();
            this->Finish(m_status);
        }
    }

    void OnCancel() override
    {
        cancelled();
        finish(grpc::Status::CANCELLED);
    }

    void OnDone() override
    {
        done();
        m_self.reset(); // may delete this
    }

protected:
    virtual void cancelled() {}
    virtual void done() {}

private:
    void finishLocked(std::unique_lock<std::mutex> &lock, const grpc::Status &status)
    {
        if (m_finishing)
            return;
        m_finishing = true;
        m_status = status;
        if (m_writes.writing())
            return; // OnWriteDone finishes after the queue drains
        m_finished = true;
        lock.unlock();
        this->Finish(status);
    }

    std::shared_ptr<Writer> m_self;
    std::mutex m_mutex;
    size_t m_allowanceMessages = 0; // the start's size, on top of the backlog's limits
    size_t m_allowanceBytes = 0;
    OutQueue<T> m_writes;
    bool m_finishing = false;
    bool m_finished = false;
    grpc::Status m_status;
};

class SendReactor final : public grpc::ServerUnaryReactor
{
public:
    SendReactor(CommandService &commands) : m_commands(commands) {}
    // The command this call registered (never one it was refused for: that id is someone
    // else's). A cancel that came first is applied now.
    void setCommand(const QString &id)
    {
        bool cancelNow;
        {
            std::lock_guard lock(m_mutex);
            m_commandId = id;
            cancelNow = m_callCancelled;
        }
        if (cancelNow)
            cancelCommand(id);
    }
    // The caller gave up (deadline or cancel): cancel the command rather than leak it.
    void OnCancel() override
    {
        QString id;
        {
            std::lock_guard lock(m_mutex);
            m_callCancelled = true;
            id = m_commandId;
        }
        if (!id.isEmpty())
            cancelCommand(id);
    }
    void OnDone() override { delete this; }

private:
    void cancelCommand(const QString &id)
    {
        m_commands.cancel(id, QStringLiteral("the API caller gave up (deadline or cancel)"));
    }

    CommandService &m_commands;
    std::mutex m_mutex;
    QString m_commandId;
    bool m_callCancelled = false;
};

class FanOutWriter final : public Writer<v1::SendToManyEvent>
{
public:
    explicit FanOutWriter(CommandService &commands) : m_commands(commands) {}
    void setCommands(const QStringList &ids)
    {
        std::lock_guard lock(m_mutex);
        m_ids = ids;
    }
    // A rollout's: the caller giving up aborts it (and cancels its commands in flight).
    void setOnCancel(std::function<void()> fn)
    {
        std::lock_guard lock(m_mutex);
        m_onCancel = std::move(fn);
    }

protected:
    void cancelled() override
    {
        QStringList ids;
        std::function<void()> onCancel;
        {
            std::lock_guard lock(m_mutex);
            ids = m_ids;
            onCancel = std::move(m_onCancel);
        }
        for (const QString &id : ids)
            m_commands.cancel(id, QStringLiteral("the API caller gave up"));
        if (onCancel)
            onCancel();
    }

private:
    CommandService &m_commands;
    std::mutex m_mutex;
    QStringList m_ids;
    std::function<void()> m_onCancel;
};

v1::RolloutState toProtoState(RolloutState state)
{
    switch (state) {
    case RolloutState::Running:
        return v1::ROLLOUT_STATE_RUNNING;
    case RolloutState::Paused:
        return v1::ROLLOUT_STATE_PAUSED;
    case RolloutState::Completed:
        return v1::ROLLOUT_STATE_COMPLETED;
    case RolloutState::Stopped:
        return v1::ROLLOUT_STATE_STOPPED;
    case RolloutState::Aborted:
        return v1::ROLLOUT_STATE_ABORTED;
    case RolloutState::ShutDown:
        return v1::ROLLOUT_STATE_SHUT_DOWN;
    }
    return v1::ROLLOUT_STATE_UNSPECIFIED;
}

void fillRollout(v1::RolloutProgress &out, const RolloutStatus &s)
{
    out.set_fan_out_id(toStd(s.fanOut));
    out.set_event(toStd(s.event));
    out.set_wave(s.wave);
    out.set_waves(s.waves);
    out.set_wave_bots(s.waveBots);
    convert::fillTally(*out.mutable_wave_tally(), s.waveTally);
    convert::fillTally(*out.mutable_overall(), s.overall);
    out.set_state(toProtoState(s.state));
    out.set_reason(toStd(s.reason));
    out.set_not_sent(s.notSent);
    out.set_issuer(toStd(s.issuer));
}

class WatchWriter;

// Runs fn once the outcome with this change is in history (at once without history).
void whenDurable(HistoryStore *history, quint64 change, std::function<void()> fn)
{
    if (history && change > 0)
        history->whenDurable(change, std::move(fn));
    else
        fn();
}

} // namespace

class OperatorServicePrivate final : public v1::Operator::CallbackService
{
public:
    OperatorServicePrivate(CommandService &commands, ChangeFeed &feed)
        : commands(commands), feed(feed)
    {}

    grpc::ServerUnaryReactor *SendCommand(grpc::CallbackServerContext *context,
                                          const v1::SendCommandRequest *request,
                                          v1::SendCommandResponse *response) override;
    grpc::ServerWriteReactor<v1::SendToManyEvent> *
    SendToMany(grpc::CallbackServerContext *context, const v1::SendToManyRequest *request) override;
    grpc::ServerUnaryReactor *ListBots(grpc::CallbackServerContext *context,
                                       const v1::ListBotsRequest *request,
                                       v1::ListBotsResponse *response) override;
    grpc::ServerUnaryReactor *ListCommands(grpc::CallbackServerContext *context,
                                           const v1::ListCommandsRequest *request,
                                           v1::ListCommandsResponse *response) override;
    grpc::ServerUnaryReactor *CancelCommand(grpc::CallbackServerContext *context,
                                            const v1::CancelCommandRequest *request,
                                            v1::CancelCommandResponse *response) override;
    grpc::ServerWriteReactor<v1::WatchEvent> *Watch(grpc::CallbackServerContext *context,
                                                    const v1::WatchRequest *request) override;
    grpc::ServerUnaryReactor *QueryHistory(grpc::CallbackServerContext *context,
                                           const v1::QueryHistoryRequest *request,
                                           v1::QueryHistoryResponse *response) override;
    grpc::ServerUnaryReactor *WhoAmI(grpc::CallbackServerContext *context,
                                     const v1::WhoAmIRequest *request,
                                     v1::WhoAmIResponse *response) override;
    grpc::ServerUnaryReactor *DecideBot(grpc::CallbackServerContext *context,
                                        const v1::DecideBotRequest *request,
                                        v1::DecideBotResponse *response) override;
    grpc::ServerUnaryReactor *ControlRollout(grpc::CallbackServerContext *context,
                                             const v1::ControlRolloutRequest *request,
                                             v1::ControlRolloutResponse *response) override;
    void startRollout(const std::shared_ptr<FanOutWriter> &writer,
                      const v1::SendToManyRequest &request, const QStringList &bots,
                      api::CommandRequest &checked, const Caller &caller);

    // A bot event to every watcher (none: nothing is built).
    void broadcastBot(const char *name, const BotInfo &bot);
    // The feed's changes to every watcher, each change once and in order.
    void broadcastChanges(const QList<CommandOutcome> &records);
    void removeWatcher(WatchWriter *watcher);
    void pushBots(WatchWriter &writer);

    CommandService &commands;
    ChangeFeed &feed;
    HistoryStore *history = nullptr;
    OperatorAccess access;
    // Staged rollouts (SendToMany with a rollout), in this service's thread.
    std::unique_ptr<RolloutRunner> rollouts;
    // Serialises a Watch's start (snapshot or replay, then joining) with the broadcast of the
    // feed's changes, so that each watcher gets every change after its start exactly once.
    // Only pushes happen under it (they never block, nor call back into this class).
    std::mutex feedMutex;
    Hub *hub = nullptr; // the server it is attached to
    mutable std::mutex watchersMutex;
    std::vector<std::shared_ptr<WatchWriter>> watchers;
    std::condition_variable watchersGone; // a Watch is done (removeWatcher)
    bool stopping = false;                // under watchersMutex: no new Watch once the hub stops
    void endWatches(const grpc::Status &status);
};

namespace {

class WatchWriter final : public Writer<v1::WatchEvent>
{
public:
    explicit WatchWriter(OperatorServicePrivate *owner) : m_owner(owner) {}
    quint64 lastSent = 0; // under feedMutex: the newest change this watcher has been given

protected:
    void done() override { m_owner->removeWatcher(this); }

private:
    OperatorServicePrivate *m_owner;
};

QString eventName(const CommandOutcome &o)
{
    // A batch holds a copy of the record per transition: which one this is follows from it.
    if (o.hasLateAck())
        return QStringLiteral("late_ack");
    if (o.state != CommandState::Pending)
        return stateName(o.state).replace(QLatin1Char(' '), QLatin1Char('_')); // not_connected
    if (o.progressPercent >= 0)
        return QStringLiteral("progress");
    return o.wasSent() ? QStringLiteral("sent") : QStringLiteral("registered");
}

} // namespace

grpc::ServerUnaryReactor *OperatorServicePrivate::SendCommand(grpc::CallbackServerContext *context,
                                                              const v1::SendCommandRequest *request,
                                                              v1::SendCommandResponse *response)
{
    auto *reactor = new SendReactor(commands);
    Caller caller;
    if (grpc::Status s =
            access.authorize(*context, security::Role::Operator, "SendCommand", &caller);
        !s.ok()) {
        reactor->Finish(s);
        return reactor;
    }
    api::CommandRequest checked;
    const QString problem =
        api::checkSendCommand(*request, commands.registry().maxTimeout(), &checked);
    if (!problem.isEmpty()) {
        reactor->Finish(invalid(problem));
        return reactor;
    }
    const QString botId = fromStd(request->bot_id());
    if (const QString why = OperatorAccess::outOfScope(caller, botId, commands.findBot(botId));
        !why.isEmpty()) {
        reactor->Finish(access.denied(caller, "SendCommand", why));
        return reactor;
    }
    if (grpc::Status s = access.chargeSend(caller, "SendCommand"); !s.ok()) {
        reactor->Finish(s);
        return reactor;
    }
    checked.options.issuer = caller.name;
    // Again when a command that waited for its bot is written (its labels may differ).
    checked.options.admit = access.scopeCheck(caller, "SendCommand", commands);
    checked.options.scope = caller.scope;
    const QString id = request->command().command_id().empty()
                           ? commands.newCommandId()
                           : fromStd(request->command().command_id());
    QFuture<CommandOutcome> future =
        commands.sendWithId(id, botId, checked.spec, checked.timeout, checked.options);
    if (request->no_wait()) {
        std::optional<CommandOutcome> record;
        if (future.isFinished())
            record = future.result();
        else
            record = commands.registry().find(id);
        // Answered once the command is in history: an id the caller holds is never lost to a
        // crash (it is at least "unknown" afterwards).
        whenDurable(history, record ? record->change : 0, [reactor, response, record] {
            finishWith(reactor, [&] {
                if (record)
                    convert::fillRecord(*response->mutable_record(), *record);
            });
        });
        return reactor;
    }
    if (!future.isFinished() || future.result().state != CommandState::Refused)
        reactor->setCommand(id);
    // Every path finishes the reactor: the outcome, an error while building the response,
    // or a future cancelled without a result.
    future
        .then([history = history, reactor, response](const CommandOutcome &o) {
            whenDurable(history, o.change, [reactor, response, o] {
                finishWith(reactor, [&] { convert::fillRecord(*response->mutable_record(), o); });
            });
        })
        .onCanceled([reactor] {
            reactor->Finish(grpc::Status(grpc::StatusCode::INTERNAL, "the command was lost"));
        });
    return reactor;
}

grpc::ServerWriteReactor<v1::SendToManyEvent> *
OperatorServicePrivate::SendToMany(grpc::CallbackServerContext *context,
                                   const v1::SendToManyRequest *request)
{
    auto writer = std::make_shared<FanOutWriter>(commands);
    writer->start(writer);
    Caller caller;
    if (grpc::Status s =
            access.authorize(*context, security::Role::Operator, "SendToMany", &caller);
        !s.ok()) {
        writer->finish(s);
        return writer.get();
    }
    api::CommandRequest checked;
    const QString problem =
        api::checkSendToMany(*request, commands.registry().maxTimeout(), &checked);
    if (!problem.isEmpty()) {
        writer->finish(invalid(problem));
        return writer.get();
    }
    if (grpc::Status s = access.chargeSend(caller, "SendToMany"); !s.ok()) {
        writer->finish(s);
        return writer.get();
    }
    checked.options.issuer = caller.name;
    // Bots outside the operator's scope get a refusal row each; the others go.
    checked.options.admit = access.scopeCheck(caller, "SendToMany", commands);
    checked.options.scope = caller.scope;
    QStringList bots;
    if (request->bot_ids_size() > 0) {
        for (const auto &id : request->bot_ids())
            bots.append(fromStd(id));
    } else {
        // Chosen by label or all. A rollout takes only the caller's bots: a scoped
        // operator's bots out of scope would be refusal rows that count as a wave's failures
        // and stop it at the first wave (a plain fan-out keeps its refusal row per bot).
        const QMap<QString, QString> selector = selectorOf(request->label_selector());
        for (const BotInfo &bot : commands.fleet()) {
            if (bot.connected && bot.matches(selector) &&
                (!checked.rollout || OperatorAccess::outOfScope(caller, bot.botId, bot).isEmpty()))
                bots.append(bot.botId);
        }
    }
    if (checked.rollout) {
        startRollout(writer, *request, bots, checked, caller);
        return writer.get();
    }
    const FanOut fan = commands.sendToMany(bots, checked.spec, checked.timeout, checked.options);
    if (!fan.refused.isEmpty()) {
        writer->finish(invalid(fan.refused));
        return writer.get();
    }
    if (request->no_wait()) {
        FanOutSummary now;
        now.id = fan.id;
        now.kind = checked.spec.name();
        for (const auto &future : fan.futures) {
            if (future.isFinished())
                now.add(future.result());
            else
                now.add(CommandState::Pending, false);
        }
        v1::SendToManyEvent event;
        convert::fillTally(*event.mutable_summary(), now);
        // Answered once every command of it is in history (see SendCommand).
        whenDurable(history, commands.registry().lastChange(),
                    [writer, event = std::move(event)]() mutable {
                        writer->push(std::move(event));
                        writer->finish(grpc::Status::OK);
                    });
        return writer.get();
    }
    writer->setCommands(fan.commandIds);
    // Results as each bot finishes; the summary after the last of them.
    auto pushSummary = [writer](const FanOutSummary &s) {
        v1::SendToManyEvent event;
        convert::fillTally(*event.mutable_summary(), s);
        writer->push(std::move(event));
        writer->finish(grpc::Status::OK);
    };
    if (fan.futures.isEmpty()) {
        FanOutSummary none;
        none.id = fan.id;
        pushSummary(none);
        return writer.get();
    }
    auto remaining = std::make_shared<std::atomic<int>>(int(fan.futures.size()));
    const QFuture<FanOutSummary> summary = fan.summary;
    for (const auto &future : fan.futures) {
        QFuture<CommandOutcome>(future)
            .then([history = history, writer, remaining, summary,
                   pushSummary](const CommandOutcome &o) {
                whenDurable(history, o.change, [writer, remaining, summary, pushSummary, o] {
                    try {
                        v1::SendToManyEvent event;
                        convert::fillRecord(*event.mutable_result(), o);
                        writer->push(std::move(event));
                    } catch (...) {
                        writer->finish(grpc::Status(grpc::StatusCode::INTERNAL, "internal error"));
                    }
                    if (remaining->fetch_sub(1) == 1)
                        pushSummary(summary.result()); // the tally finished before these
                });
            })
            .onCanceled([writer] {
                writer->finish(grpc::Status(grpc::StatusCode::INTERNAL, "a command was lost"));
            });
    }
    return writer.get();
}

// A rollout on the SendToMany stream: its progress events as they come, a result per command
// of every wave sent, then (once it has ended and every result is out) the overall summary.
void OperatorServicePrivate::startRollout(const std::shared_ptr<FanOutWriter> &writer,
                                          const v1::SendToManyRequest &request,
                                          const QStringList &bots, api::CommandRequest &checked,
                                          const Caller &caller)
{
    struct Stream
    {
        std::mutex mutex;
        int outstanding = 0;                        // results of the waves sent, not yet pushed
        std::optional<v1::SendToManyEvent> summary; // set when the rollout has ended
        bool ended = false;
    };
    auto stream = std::make_shared<Stream>();
    // Under stream->mutex: the summary goes last, once the end is known and every result out.
    auto endIfDone = [writer](Stream &st, std::unique_lock<std::mutex> &lock) {
        if (st.ended || !st.summary || st.outstanding > 0)
            return;
        st.ended = true;
        v1::SendToManyEvent last = std::move(*st.summary);
        lock.unlock();
        writer->push(std::move(last));
        writer->finish(grpc::Status::OK);
    };
    RolloutObserver observer;
    if (!request.no_wait()) {
        observer.waveSent = [writer, stream, endIfDone, history = history](const RolloutWave &w) {
            {
                std::lock_guard lock(stream->mutex);
                stream->outstanding += int(w.futures.size());
            }
            for (const auto &future : w.futures) {
                QFuture<CommandOutcome>(future)
                    .then([writer, stream, endIfDone, history](const CommandOutcome &o) {
                        whenDurable(history, o.change, [writer, stream, endIfDone, o] {
                            try {
                                v1::SendToManyEvent event;
                                convert::fillRecord(*event.mutable_result(), o);
                                writer->push(std::move(event));
                            } catch (...) {
                                writer->finish(
                                    grpc::Status(grpc::StatusCode::INTERNAL, "internal error"));
                            }
                            std::unique_lock lock(stream->mutex);
                            --stream->outstanding;
                            endIfDone(*stream, lock);
                        });
                    })
                    .onCanceled([writer] {
                        writer->finish(
                            grpc::Status(grpc::StatusCode::INTERNAL, "a command was lost"));
                    });
            }
        };
        observer.progress = [writer, stream, endIfDone](const RolloutStatus &status) {
            v1::SendToManyEvent event;
            fillRollout(*event.mutable_rollout(), status);
            writer->push(std::move(event));
            if (status.event != QLatin1String("finished"))
                return;
            v1::SendToManyEvent summary;
            convert::fillTally(*summary.mutable_summary(), status.overall);
            std::unique_lock lock(stream->mutex);
            stream->summary = std::move(summary);
            endIfDone(*stream, lock);
        };
    }
    checked.options.issuer = caller.name;
    QStringList ordered = bots;
    if (request.bot_ids_size() == 0) // chosen by label or all: waves in bot id order
        ordered.sort();
    const RolloutRunner::Started started =
        rollouts->start(ordered, checked.spec, checked.timeout, checked.options, *checked.rollout,
                        std::move(observer));
    if (!started.refused.isEmpty()) {
        using Refusal = RolloutRunner::Started::Refusal;
        writer->finish(
            started.why == Refusal::Busy
                ? grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, toStd(started.refused))
            : started.why == Refusal::ShuttingDown
                ? grpc::Status(grpc::StatusCode::UNAVAILABLE, toStd(started.refused))
                : invalid(started.refused));
        return;
    }
    if (request.no_wait()) {
        // Answered at once: the rollout goes on in the hub; its commands show on Watch under
        // the fan-out id as each wave is sent, and ControlRollout tells where it is.
        v1::SendToManyEvent progress;
        fillRollout(*progress.mutable_rollout(), started.status);
        writer->push(std::move(progress));
        v1::SendToManyEvent summary;
        FanOutSummary none;
        none.id = started.id;
        none.kind = checked.spec.name();
        convert::fillTally(*summary.mutable_summary(), none);
        writer->push(std::move(summary));
        writer->finish(grpc::Status::OK);
        return;
    }
    RolloutRunner *runner = rollouts.get();
    writer->setOnCancel([runner, id = started.id] {
        runner->control(id, RolloutAction::AbortAndCancel, QStringLiteral("the API caller"));
    });
}

grpc::ServerUnaryReactor *
OperatorServicePrivate::ControlRollout(grpc::CallbackServerContext *context,
                                       const v1::ControlRolloutRequest *request,
                                       v1::ControlRolloutResponse *response)
{
    auto *reactor = context->DefaultReactor();
    Caller caller;
    if (grpc::Status s =
            access.authorize(*context, security::Role::Operator, "ControlRollout", &caller);
        !s.ok()) {
        reactor->Finish(s);
        return reactor;
    }
    RolloutAction action = RolloutAction::Pause;
    if (const QString problem = api::checkControlRollout(*request, &action); !problem.isEmpty()) {
        reactor->Finish(invalid(problem));
        return reactor;
    }
    const QString id = fromStd(request->fan_out_id());
    const std::optional<RolloutStatus> now = rollouts->status(id);
    // Its issuer or an admin (a hub without operator tokens takes every caller for an admin).
    // One answer for "not yours" and "none such" to a non-admin: ids and issuers are not
    // probed through it.
    if (caller.role != security::Role::Admin && (!now || now->issuer != caller.name)) {
        reactor->Finish(access.denied(
            caller, "ControlRollout",
            QStringLiteral("no rollout %1 of yours on this hub (only its issuer or an admin "
                           "controls one)")
                .arg(id)));
        return reactor;
    }
    if (!now) {
        reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                     toStd(QStringLiteral("no rollout %1 on this hub").arg(id))));
        return reactor;
    }
    const RolloutRunner::Control result = rollouts->control(id, action, caller.name);
    switch (result.error) {
    case RolloutRunner::Control::Error::NotFound:
        reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND, toStd(result.message)));
        return reactor;
    case RolloutRunner::Control::Error::Finished:
        reactor->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, toStd(result.message)));
        return reactor;
    case RolloutRunner::Control::Error::None:
        break;
    }
    finishWith(reactor, [&] { fillRollout(*response->mutable_status(), result.status); });
    return reactor;
}

grpc::ServerUnaryReactor *OperatorServicePrivate::ListBots(grpc::CallbackServerContext *context,
                                                           const v1::ListBotsRequest *request,
                                                           v1::ListBotsResponse *response)
{
    auto *reactor = context->DefaultReactor();
    Caller caller;
    if (grpc::Status s = access.authorize(*context, security::Role::Viewer, "ListBots", &caller);
        !s.ok()) {
        reactor->Finish(s);
        return reactor;
    }
    if (const std::string p = wire::checkLabels(request->label_selector(), "label_selector");
        !p.empty()) {
        reactor->Finish(invalid(fromStd(p)));
        return reactor;
    }
    finishWith(reactor, [&] {
        const QMap<QString, QString> selector = selectorOf(request->label_selector());
        for (const BotInfo &bot : commands.fleet()) {
            if ((request->connected_only() && !bot.connected) || !bot.matches(selector))
                continue;
            convert::fillBot(*response->add_bots(), bot,
                             commands.registry().pendingCount(bot.botId));
        }
    });
    return reactor;
}

grpc::ServerUnaryReactor *
OperatorServicePrivate::ListCommands(grpc::CallbackServerContext *context,
                                     const v1::ListCommandsRequest *request,
                                     v1::ListCommandsResponse *response)
{
    auto *reactor = context->DefaultReactor();
    Caller caller;
    if (grpc::Status s =
            access.authorize(*context, security::Role::Viewer, "ListCommands", &caller);
        !s.ok()) {
        reactor->Finish(s);
        return reactor;
    }
    QSet<CommandState> states;
    for (int o : request->outcomes()) {
        const auto state = v1::Outcome_IsValid(o) ? convert::stateOf(v1::Outcome(o)) : std::nullopt;
        if (!state) {
            reactor->Finish(invalid(QStringLiteral("unknown outcome %1").arg(o)));
            return reactor;
        }
        states.insert(*state);
    }
    if (request->page_size() < 0 || request->page_size() > OperatorService::MaxPageSize) {
        reactor->Finish(
            invalid(QStringLiteral("page_size must be 0 to %1").arg(OperatorService::MaxPageSize)));
        return reactor;
    }
    const int pageSize = request->page_size() == 0 ? 100 : request->page_size();
    bool ok = true;
    const quint64 after =
        request->page_token().empty() ? 0 : fromStd(request->page_token()).toULongLong(&ok);
    if (!ok || request->page_token().size() > 20) {
        reactor->Finish(invalid(QStringLiteral("bad page_token")));
        return reactor;
    }
    int64_t sinceMs = 0;
    if (request->has_since()) {
        if (const std::string p = wire::checkTimestamp(request->since(), "since", &sinceMs);
            !p.empty()) {
            reactor->Finish(invalid(fromStd(p)));
            return reactor;
        }
    }
    if (!request->bot_id().empty()) {
        if (const std::string p = wire::checkId(request->bot_id(), "bot_id"); !p.empty()) {
            reactor->Finish(invalid(fromStd(p)));
            return reactor;
        }
    }
    if (!request->fan_out_id().empty()) {
        if (const std::string p = wire::checkId(request->fan_out_id(), "fan_out_id"); !p.empty()) {
            reactor->Finish(invalid(fromStd(p)));
            return reactor;
        }
    }
    const QString bot = fromStd(request->bot_id());
    const QString fanOut = fromStd(request->fan_out_id());
    finishWith(reactor, [&] {
        bool more = false;
        const QList<CommandOutcome> page = commands.registry().page(
            after, pageSize,
            [&](const CommandOutcome &o) {
                return (states.isEmpty() || states.contains(o.state)) &&
                       (bot.isEmpty() || o.botId == bot) &&
                       (fanOut.isEmpty() || o.fanOut == fanOut) && o.registeredWallMs >= sinceMs;
            },
            &more);
        // Records carry results of up to 64 KiB: a page ends early rather than pass the
        // caller's receive limit, and says where to go on.
        size_t bytes = 0;
        quint64 last = after;
        for (const CommandOutcome &o : page) {
            v1::CommandRecord record;
            convert::fillRecord(record, o);
            const size_t size = record.ByteSizeLong();
            if (response->commands_size() > 0 && bytes + size > OperatorService::MaxResponseBytes) {
                more = true;
                break;
            }
            bytes += size;
            *response->add_commands() = std::move(record);
            last = o.sequence;
        }
        if (more)
            response->set_next_page_token(std::to_string(last));
    });
    return reactor;
}

grpc::ServerUnaryReactor *
OperatorServicePrivate::QueryHistory(grpc::CallbackServerContext *context,
                                     const v1::QueryHistoryRequest *request,
                                     v1::QueryHistoryResponse *response)
{
    auto *reactor = context->DefaultReactor();
    Caller caller;
    if (grpc::Status s =
            access.authorize(*context, security::Role::Viewer, "QueryHistory", &caller);
        !s.ok()) {
        reactor->Finish(s);
        return reactor;
    }
    if (!history) {
        reactor->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                     "this hub keeps no history (started with --no-history)"));
        return reactor;
    }
    HistoryQuery query;
    if (const QString problem = api::checkQueryHistory(*request, &query); !problem.isEmpty()) {
        reactor->Finish(invalid(problem));
        return reactor;
    }
    // Read on the history's reader thread; the reply is built there.
    history->query(query)
        .then(QtFuture::Launch::Sync,
              [reactor, response](const HistoryPage &page) {
                  if (!page.error.isEmpty()) {
                      // The caller's token is the caller's problem; a busy or failing database
                      // is not (opctl exits 69 for UNAVAILABLE, 64 for INVALID_ARGUMENT).
                      reactor->Finish(
                          page.badToken
                              ? invalid(page.error)
                              : grpc::Status(page.busy ? grpc::StatusCode::RESOURCE_EXHAUSTED
                                                       : grpc::StatusCode::UNAVAILABLE,
                                             toStd(QStringLiteral("history: ") + page.error)));
                      return;
                  }
                  finishWith(reactor, [&] {
                      // Records carry results of up to 64 KiB: a page ends early rather than
                      // pass the caller's receive limit, and says where to go on.
                      size_t bytes = 0;
                      for (const CommandOutcome &o : page.records) {
                          v1::CommandRecord record;
                          convert::fillRecord(record, o);
                          record.set_change(0); // a position in another run's feed means nothing
                          const size_t size = record.ByteSizeLong();
                          if (response->commands_size() > 0 &&
                              bytes + size > OperatorService::MaxResponseBytes) {
                              response->set_next_page_token(toStd(HistoryStore::tokenAfter(
                                  page.records[response->commands_size() - 1])));
                              return;
                          }
                          bytes += size;
                          *response->add_commands() = std::move(record);
                      }
                      response->set_next_page_token(toStd(page.nextPageToken));
                  });
              })
        .onCanceled([reactor] {
            reactor->Finish(grpc::Status(grpc::StatusCode::INTERNAL, "history query lost"));
        });
    return reactor;
}

grpc::ServerUnaryReactor *
OperatorServicePrivate::CancelCommand(grpc::CallbackServerContext *context,
                                      const v1::CancelCommandRequest *request,
                                      v1::CancelCommandResponse *response)
{
    auto *reactor = context->DefaultReactor();
    Caller caller;
    if (grpc::Status s =
            access.authorize(*context, security::Role::Operator, "CancelCommand", &caller);
        !s.ok()) {
        reactor->Finish(s);
        return reactor;
    }
    QString problem = problemOf(wire::checkId(request->command_id(), "command_id"));
    if (problem.isEmpty())
        problem = problemOf(wire::checkText(request->reason(), "reason", wire::limits::TextBytes));
    if (!problem.isEmpty()) {
        reactor->Finish(invalid(problem));
        return reactor;
    }
    const QString id = fromStd(request->command_id());
    if (const auto before = commands.registry().find(id); before && !caller.scope.isEmpty()) {
        if (const QString why =
                OperatorAccess::outOfScope(caller, before->botId, commands.findBot(before->botId));
            !why.isEmpty()) {
            reactor->Finish(access.denied(caller, "CancelCommand", why));
            return reactor;
        }
    }
    const QString reason = request->reason().empty()
                               ? QStringLiteral("cancelled by %1").arg(caller.name)
                               : fromStd(request->reason());
    const bool cancelled = commands.cancel(id, reason);
    const std::optional<CommandOutcome> record = commands.registry().find(id);
    // Answered once the cancel is in history, as an outcome is (docs/protocol.md rule 14).
    whenDurable(history, cancelled && record ? record->change : 0,
                [reactor, response, cancelled, record] {
                    finishWith(reactor, [&] {
                        response->set_cancelled(cancelled);
                        if (record)
                            convert::fillRecord(*response->mutable_record(), *record);
                    });
                });
    return reactor;
}

grpc::ServerWriteReactor<v1::WatchEvent> *
OperatorServicePrivate::Watch(grpc::CallbackServerContext *context, const v1::WatchRequest *request)
{
    auto writer = std::make_shared<WatchWriter>(this);
    writer->start(writer);
    Caller caller;
    if (grpc::Status s = access.authorize(*context, security::Role::Viewer, "Watch", &caller);
        !s.ok()) {
        writer->finish(s);
        return writer.get();
    }
    {
        std::lock_guard lock(watchersMutex);
        if (stopping) {
            writer->finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "hub shutting down"));
            return writer.get();
        }
    }
    auto marker = [this](const char *name, quint64 change) {
        v1::WatchEvent event;
        event.set_event(name);
        event.set_change(change);
        event.set_feed_id(feed.feedId());
        return event;
    };
    // What a Watch may be sent before it joins, in bytes and events: half its backlog, so that
    // live changes still fit behind it. Past it a resume becomes a resync, a snapshot is cut.
    constexpr size_t StartBytes = size_t(OperatorService::MaxWatchBacklogBytes) / 2;
    constexpr size_t StartEvents = size_t(OperatorService::MaxWatchBacklog) / 2;
    auto commandEvent = [](const CommandOutcome &o, const char *name = nullptr) {
        v1::WatchEvent event;
        event.set_event(name ? std::string(name) : toStd(eventName(o)));
        convert::fillRecord(*event.mutable_command(), o);
        return event;
    };

    // The costly part, outside feedMutex (the registry's thread waits on it to broadcast): the
    // replay or the snapshot up to a feed position `from`. Under the lock, only what came after
    // it, the fleet, the markers, and joining.
    std::vector<v1::WatchEvent> prepared;
    size_t bytes = 0;
    quint64 from = 0;
    bool resumed = false;
    bool complete = true;
    const bool resuming = request->resume_after() > 0;
    if (resuming && request->feed_id() == feed.feedId()) {
        QList<CommandOutcome> replay;
        if (feed.since(request->resume_after(), &replay, qsizetype(StartEvents))) {
            resumed = true;
            from = request->resume_after();
            for (const CommandOutcome &o : replay) {
                prepared.push_back(commandEvent(o));
                bytes += prepared.back().ByteSizeLong();
                from = o.change;
                if (bytes > StartBytes) { // too far behind to replay: a fresh snapshot is smaller
                    resumed = false;
                    prepared.clear();
                    bytes = 0;
                    break;
                }
            }
        }
    }
    if (!resumed && (request->snapshot() || resuming)) {
        // The position first, then the records: a record may be newer than the position (its
        // change comes again after it, and the client keeps the newest).
        from = feed.lastChange();
        const QList<CommandOutcome> records = commands.registry().snapshot();
        // Every pending command first (up to the budget: `complete` says whether all fitted),
        // then the newest finished ones, up to MaxSnapshotCommands, with what budget is left.
        // Chosen newest first, sent in registration order.
        // Each record converted once: (registration order, its event), sorted at the end.
        std::vector<std::pair<qsizetype, v1::WatchEvent>> chosen;
        auto take = [&](qsizetype i) {
            chosen.emplace_back(i, commandEvent(records.at(i), "snapshot_command"));
            bytes += chosen.back().second.ByteSizeLong();
        };
        for (qsizetype i = records.size() - 1; i >= 0; --i) {
            if (records.at(i).state != CommandState::Pending)
                continue;
            if (chosen.size() >= StartEvents || bytes > StartBytes) {
                complete = false;
                break;
            }
            take(i);
        }
        size_t finished = 0;
        for (qsizetype i = records.size() - 1;
             i >= 0 && finished < size_t(OperatorService::MaxSnapshotCommands) &&
             chosen.size() < StartEvents && bytes <= StartBytes;
             --i) {
            if (records.at(i).state == CommandState::Pending)
                continue;
            take(i);
            ++finished;
        }
        std::sort(chosen.begin(), chosen.end(),
                  [](const auto &a, const auto &b) { return a.first < b.first; });
        prepared.reserve(chosen.size());
        for (auto &[i, event] : chosen)
            prepared.push_back(std::move(event));

    } else if (!resumed) {
        from = feed.lastChange(); // live changes only, from now on
    }

    std::lock_guard feedLock(feedMutex);
    // Changes the feed delivered while the above was built (usually none or a few batches).
    QList<CommandOutcome> tail;
    if (!feed.since(from, &tail, qsizetype(StartEvents))) {
        writer->finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                    "the hub moved on too fast while the Watch started; retry"));
        return writer.get();
    }
    // The fleet is read under feedMutex, which bot events are broadcast under too: a bot that
    // comes or goes now is either in this list or in an event after it, never lost.
    if (resumed) {
        pushBots(*writer);
        writer->pushStart(marker("resumed", request->resume_after()));
        for (v1::WatchEvent &event : prepared)
            writer->pushStart(std::move(event));
    } else if (request->snapshot() || resuming) {
        if (resuming)
            writer->pushStart(marker("resync", feed.lastChange()));
        pushBots(*writer);
        for (v1::WatchEvent &event : prepared)
            writer->pushStart(std::move(event));
        v1::WatchEvent end = marker("snapshot_end", from);
        end.set_complete(complete);
        writer->pushStart(std::move(end));
    }
    writer->lastSent = from;
    for (const CommandOutcome &o : tail) {
        writer->pushStart(commandEvent(o));
        writer->lastSent = o.change;
    }
    {
        std::lock_guard lock(watchersMutex);
        if (stopping) {
            writer->finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "hub shutting down"));
            return writer.get();
        }
        watchers.push_back(writer);
    }
    return writer.get();
}

grpc::ServerUnaryReactor *OperatorServicePrivate::WhoAmI(grpc::CallbackServerContext *context,
                                                         const v1::WhoAmIRequest *,
                                                         v1::WhoAmIResponse *response)
{
    auto *reactor = context->DefaultReactor();
    Caller caller;
    if (grpc::Status s = access.authorize(*context, security::Role::Viewer, "WhoAmI", &caller);
        !s.ok()) {
        reactor->Finish(s);
        return reactor;
    }
    finishWith(reactor, [&] {
        response->set_name(toStd(caller.name));
        response->set_role(convert::toProtoRole(caller.role));
        for (auto it = caller.scope.cbegin(); it != caller.scope.cend(); ++it)
            (*response->mutable_scope())[toStd(it.key())] = toStd(it.value());
        response->set_authenticated(caller.authenticated);
    });
    return reactor;
}

grpc::ServerUnaryReactor *OperatorServicePrivate::DecideBot(grpc::CallbackServerContext *context,
                                                            const v1::DecideBotRequest *request,
                                                            v1::DecideBotResponse *response)
{
    auto *reactor = context->DefaultReactor();
    Caller caller;
    if (grpc::Status s = access.authorize(*context, security::Role::Admin, "DecideBot", &caller);
        !s.ok()) {
        reactor->Finish(s);
        return reactor;
    }
    AdmissionAction action = AdmissionAction::Accept;
    if (const QString problem = api::checkDecideBot(*request, &action); !problem.isEmpty()) {
        reactor->Finish(invalid(problem));
        return reactor;
    }
    const QString botId = fromStd(request->bot_id());
    const DecisionResult result = commands.hub().decideBot(
        botId, action, caller.name, fromStd(request->reason()), fromStd(request->credential()));
    switch (result.error) {
    case DecisionResult::Error::NotFound:
        reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND, toStd(result.message)));
        return reactor;
    case DecisionResult::Error::StoreFailed:
        reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, toStd(result.message)));
        return reactor;
    case DecisionResult::Error::CredentialChanged:
        reactor->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, toStd(result.message)));
        return reactor;
    case DecisionResult::Error::None:
        break;
    }
    finishWith(reactor, [&] {
        if (result.bot)
            convert::fillBot(*response->mutable_bot(), *result.bot,
                             commands.registry().pendingCount(botId));
        else
            response->mutable_bot()->set_bot_id(toStd(botId));
    });
    return reactor;
}

void OperatorServicePrivate::pushBots(WatchWriter &writer)
{
    for (const BotInfo &bot : commands.fleet()) {
        v1::WatchEvent event;
        event.set_event("snapshot_bot");
        convert::fillBot(*event.mutable_bot(), bot, commands.registry().pendingCount(bot.botId));
        writer.pushStart(std::move(event));
    }
}

void OperatorServicePrivate::broadcastChanges(const QList<CommandOutcome> &records)
{
    std::lock_guard feedLock(feedMutex);
    std::vector<std::shared_ptr<WatchWriter>> targets;
    {
        std::lock_guard lock(watchersMutex);
        targets = watchers;
    }
    if (targets.empty() || records.isEmpty())
        return;
    for (const CommandOutcome &o : records) {
        v1::WatchEvent event;
        bool built = false;
        for (const auto &watcher : targets) {
            if (o.change <= watcher->lastSent)
                continue; // it had this change in its replay
            if (!built) {
                event.set_event(toStd(eventName(o)));
                convert::fillRecord(*event.mutable_command(), o);
                built = true;
            }
            watcher->push(event);
            watcher->lastSent = o.change;
        }
    }
}

void OperatorServicePrivate::broadcastBot(const char *name, const BotInfo &bot)
{
    // Under feedMutex, like a Watch's start: a bot event reaches every watcher that joined
    // before it, and a watcher that starts after it lists the bot as it is then. Whether
    // anyone watches is asked under it too: a Watch that read the fleet before this bot came
    // and joins after this event would otherwise have neither (a review found that race).
    std::lock_guard feedLock(feedMutex);
    std::vector<std::shared_ptr<WatchWriter>> targets;
    {
        std::lock_guard lock(watchersMutex);
        targets = watchers;
    }
    if (targets.empty())
        return;
    v1::WatchEvent event;
    event.set_event(name);
    convert::fillBot(*event.mutable_bot(), bot, commands.registry().pendingCount(bot.botId));
    if (bot.holder.isEmpty())
        if (const CommandForwarder *cluster = commands.forwarder())
            event.mutable_bot()->set_hub(toStd(cluster->hubId())); // one of this hub's own
    for (const auto &watcher : targets)
        watcher->push(event);
}

void OperatorService::noteRemoteBot(const BotInfo &bot)
{
    d->broadcastBot(bot.connected ? "bot_updated" : "bot_disconnected", bot);
}

void OperatorServicePrivate::endWatches(const grpc::Status &status)
{
    std::vector<std::shared_ptr<WatchWriter>> targets;
    {
        std::lock_guard lock(watchersMutex);
        stopping = true;
        targets = watchers;
    }
    for (const auto &w : targets)
        w->finish(status); // after what is queued: the last outcomes go out first
    targets.clear();
    // Until gRPC is done with every Watch (its last events and status handed to the
    // transport), bounded: the server's shutdown grace cancels a reader that stopped reading.
    std::unique_lock lock(watchersMutex);
    watchersGone.wait_for(lock, std::chrono::milliseconds(500),
                          [this] { return watchers.empty(); });
}

void OperatorServicePrivate::removeWatcher(WatchWriter *watcher)
{
    std::lock_guard lock(watchersMutex);
    std::erase_if(watchers, [watcher](const auto &w) { return w.get() == watcher; });
    watchersGone.notify_all();
}

OperatorService::OperatorService(CommandService &commands, ChangeFeed &feed, QObject *parent)
    : QObject(parent), d(std::make_unique<OperatorServicePrivate>(commands, feed))
{
    d->rollouts = std::make_unique<RolloutRunner>(commands);
    // Watchers see every transition through the change feed and the hub's bot events.
    connect(&feed, &ChangeFeed::changes, this,
            [this](const QList<CommandOutcome> &records) { d->broadcastChanges(records); });
    auto botEvent = [this](const char *name) {
        return [this, name](const BotInfo &bot) { d->broadcastBot(name, bot); };
    };
    d->access.onRefused = [this](const QString &caller, const QString &method, const QString &why) {
        emit accessRefused(caller, method, why);
    };
    Hub &hub = commands.hub();
    connect(&hub, &Hub::botConnected, this, botEvent("bot_connected"), Qt::DirectConnection);
    connect(&hub, &Hub::botDisconnected, this, botEvent("bot_disconnected"), Qt::DirectConnection);
    connect(&hub, &Hub::botUpdated, this, botEvent("bot_updated"), Qt::DirectConnection);
}

OperatorService::~OperatorService()
{
    // The server must not outlive the service it calls into.
    if (d->hub)
        d->hub->stop(QStringLiteral("operator service shutting down"));
    d->endWatches(grpc::Status(grpc::StatusCode::UNAVAILABLE, "operator service shutting down"));
}

void OperatorService::attachTo(Hub &hub)
{
    d->hub = &hub;
    hub.addServerExtension([this](grpc::ServerBuilder &builder) {
        {
            std::lock_guard lock(d->watchersMutex);
            d->stopping = false; // a hub started again takes Watch calls again
        }
        builder.RegisterService(d.get());
    });
    // On stop, every outcome reaches the watchers before their streams end with the reason.
    hub.addStopStep(Hub::StopPhase::EndCalls, this, [this](const QString &reason) {
        d->commands.registry().flushChanges();
        // The callers waiting for the last outcomes to be committed get them now. A call that
        // comes later (until the server is down) is answered at once: its change may never
        // reach the feed, whose thread is here stopping the server.
        if (d->history) {
            if (!d->history->flush(std::chrono::seconds(5)))
                qWarning("history: the last outcomes were not committed within 5 s");
            d->history->stopWaiting();
        }
        d->endWatches(grpc::Status(grpc::StatusCode::UNAVAILABLE, toStd(reason)));
    });
}

void OperatorService::setHistory(HistoryStore *history)
{
    d->history = history;
}

void OperatorService::setAccess(OperatorAccessOptions access)
{
    d->access.configure(std::move(access));
}

OperatorAccessCounters OperatorService::accessCounters() const
{
    return d->access.counters();
}

RolloutRunner &OperatorService::rollouts() const
{
    return *d->rollouts;
}

int OperatorService::watcherCount() const
{
    std::lock_guard lock(d->watchersMutex);
    return int(d->watchers.size());
}

} // namespace opconsole
