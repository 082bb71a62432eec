#include "remotebackend.h"

#include "opconsole/v1/operator.grpc.pb.h"
#include "protoconvert.h"
#include "wirecheck.h"

#include <grpcpp/grpcpp.h>

#include <QDateTime>
#include <QElapsedTimer>
#include <QPromise>
#include <QRandomGenerator>

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

namespace opconsole {

using namespace std::chrono;
using convert::fromStd;
using convert::toStd;

struct RemoteBackend::Item
{
    enum Kind
    {
        StreamStart, // a Watch begins: every bot the hub knows comes before the marker
        Command,
        SnapshotCommand,
        Bot,
        SnapshotBegin, // a snapshot follows (first attach, or a resync)
        SnapshotEnd,
        Resumed,
        Down,
        Bad,      // a record that broke a rule: counted, dropped
        Identity, // who the hub takes the console for (WhoAmI, before each Watch)
    } kind;
    CommandOutcome command;
    BotInfo bot;
    int pending = 0;
    QString text;
    bool newRun = false;   // SnapshotEnd: the hub is another run than the one followed before
    bool complete = false; // SnapshotEnd: every pending command was in the snapshot
    ConsoleIdentity identity{};
    bool rollouts = false; // Identity: the hub runs staged rollouts (ControlRollout is there)
};

namespace {

bool isRefusal(grpc::StatusCode code)
{
    return code == grpc::StatusCode::UNAUTHENTICATED || code == grpc::StatusCode::PERMISSION_DENIED;
}

QString statusText(const grpc::Status &status)
{
    return fromStd(wire::cutText(status.error_message(), 300));
}

// Why a call failed, for an operator: a refusal of the console's credentials says what to do.
QString callProblem(const grpc::Status &status, bool hasToken)
{
    switch (status.error_code()) {
    case grpc::StatusCode::UNAUTHENTICATED:
        return hasToken ? RemoteBackend::tr("the hub refused this console's operator token (%1)")
                              .arg(statusText(status))
                        : RemoteBackend::tr("the hub asks for an operator token and this console "
                                            "has none (start it with --token-file FILE)");
    case grpc::StatusCode::PERMISSION_DENIED:
        return RemoteBackend::tr("not allowed: %1").arg(statusText(status));
    default:
        return statusText(status);
    }
}

// Why the hub would not let the console attach (UNAUTHENTICATED, PERMISSION_DENIED).
QString refusal(const QString &hub, const grpc::Status &status, bool hasToken)
{
    if (status.error_code() != grpc::StatusCode::UNAUTHENTICATED)
        return RemoteBackend::tr("hub %1 refused this console (%2)").arg(hub, statusText(status));
    return hasToken ? RemoteBackend::tr("hub %1 refused this console's operator token (%2)")
                          .arg(hub, statusText(status))
                    : RemoteBackend::tr("hub %1 asks for an operator token and this console has "
                                        "none (start it with --token-file FILE)")
                          .arg(hub);
}

std::optional<security::Role> roleOf(v1::Role role)
{
    switch (role) {
    case v1::ROLE_VIEWER:
        return security::Role::Viewer;
    case v1::ROLE_OPERATOR:
        return security::Role::Operator;
    case v1::ROLE_ADMIN:
        return security::Role::Admin;
    default:
        return std::nullopt;
    }
}

// A WhoAmI answer, checked as every record is: a text that breaks a rule is not shown.
ConsoleIdentity identityOf(const v1::WhoAmIResponse &me)
{
    ConsoleIdentity identity{};
    if (wire::checkLabel(me.name(), "name", wire::limits::ShortTextBytes).empty())
        identity.name = fromStd(me.name());
    identity.role = roleOf(me.role()).value_or(security::Role::None);
    if (wire::checkLabels(me.scope(), "scope").empty())
        for (const auto &[key, value] : me.scope())
            identity.scope.insert(fromStd(key), fromStd(value));
    identity.authenticated = me.authenticated();
    return identity;
}

} // namespace

// The network side: the channel, the Watch thread and the asynchronous calls. Shared with
// the calls' callbacks, which may run after the backend is gone: they reach the backend only
// through owner, under mutex, and only to post to its thread.
class RemoteLink
{
public:
    static constexpr size_t MaxInbox = 200'000; // events read but not yet taken by the GUI

    RemoteLink(const QString &address, const RemoteBackend::Options &options)
        : address(address), hasToken(!options.security.token.isEmpty())
    {
        // Settings that cannot work leave the console unattached, saying why: never a
        // plaintext channel in place of a TLS one that failed.
        setupProblem = options.security.problem();
        if (!setupProblem.isEmpty())
            return;
        QString why;
        const auto credentials = security::channelCredentials(options.security.tls, &why);
        if (!credentials) {
            setupProblem = why;
            return;
        }
        if (hasToken)
            bearer = "Bearer " + options.security.token.toStdString();
        channel = makeChannel(address, options, credentials);
        stub = v1::Operator::NewStub(channel);
    }
    // Keepalive pings find a hub that went silent without closing anything (a network that
    // drops packets): the stream then fails and the banner shows, instead of a console that
    // says Live while nothing arrives. The hub accepts pings this often (Hub::start).
    static std::shared_ptr<grpc::Channel>
    makeChannel(const QString &address, const RemoteBackend::Options &options,
                const std::shared_ptr<grpc::ChannelCredentials> &credentials)
    {
        grpc::ChannelArguments args;
        args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, int(options.keepaliveTime.count()));
        args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, int(options.keepaliveTimeout.count()));
        args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
        args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
        args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 8 * 1024 * 1024);
        security::applyChannelArguments(options.security.tls, args);
        return grpc::CreateCustomChannel(toStd(address), credentials, args);
    }
    // The operator token on a call (as metadata: gRPC drops call credentials on plaintext).
    void authorize(grpc::ClientContext &context) const
    {
        if (!bearer.empty())
            context.AddMetadata("authorization", bearer);
    }

    void post(RemoteBackend::Item item)
    {
        std::unique_lock lock(mutex);
        // Back-pressure: a GUI that stopped draining makes the reader wait (the hub then
        // ends the stream once its backlog is full, and the next attach resyncs).
        room.wait(lock, [this] { return stopping || inbox.size() < MaxInbox; });
        if (stopping)
            return;
        inbox.push_back(std::move(item));
        postLocked();
    }
    void postLocked()
    {
        if (drainPosted || !owner)
            return;
        drainPosted = true;
        QMetaObject::invokeMethod(owner, &RemoteBackend::drain, Qt::QueuedConnection);
    }

    void run(milliseconds firstRetry, milliseconds maxRetry, milliseconds refusedRetry);
    void stop()
    {
        std::shared_ptr<grpc::ClientContext> ctx;
        {
            std::lock_guard lock(mutex);
            stopping = true;
            owner = nullptr;
            ctx = current;
        }
        room.notify_all();
        wake.notify_all();
        if (ctx)
            ctx->TryCancel();
        if (thread.joinable())
            thread.join();
    }

    const QString address;
    const bool hasToken;
    std::string bearer;   // "Bearer <token>"; empty: no token
    QString setupProblem; // the settings cannot make a channel: none is made
    std::shared_ptr<grpc::Channel> channel;
    std::shared_ptr<v1::Operator::Stub> stub;
    std::thread thread;
    std::mutex mutex;
    std::condition_variable wake; // back-off waits
    std::condition_variable room; // inbox space
    bool stopping = false;
    RemoteBackend *owner = nullptr;
    std::shared_ptr<grpc::ClientContext> current;
    std::deque<RemoteBackend::Item> inbox;
    bool drainPosted = false;
    // Where the reader is in the hub's feed (only the reader thread writes; read under mutex).
    quint64 feedId = 0;
    quint64 position = 0;

private:
    // *refused: the hub refused the console's credentials (asked again only seldom).
    bool readStream(bool *wasLive, bool *refused, QString *problem);
    // Who the hub takes the console for, posted before the Watch; false when it could not say
    // (an older hub without WhoAmI is not a failure).
    bool askIdentity(bool *refused, QString *problem);
    // One unary call with the token and a 15 s deadline, cancellable by stop() while it waits
    // (it is `current` meanwhile); none when stopping.
    std::optional<grpc::Status>
    unary(const std::function<grpc::Status(grpc::ClientContext *)> &call);
};

// What an asynchronous call's callback may touch, possibly after the console is gone: no gRPC
// object. A callback that held the channel could drop its last reference on a gRPC thread,
// inside gRPC's own completion machinery (ASan saw a double free there). The console cancels
// what is in flight and waits for the callbacks (bounded) before its channel goes.
class CallBox
{
public:
    explicit CallBox(RemoteBackend *owner) : m_owner(owner) {}
    // The box owns every call object (its ClientContext holds the channel): callbacks only
    // get raw pointers, and a finished call is destroyed on the console's thread, never on one
    // of gRPC's.
    template <typename Call> Call *begin(std::shared_ptr<Call> call)
    {
        std::lock_guard lock(m_mutex);
        Call *raw = call.get();
        m_inFlight.emplace(&raw->ctx, std::move(call));
        return raw;
    }
    // Last thing a callback does with its call; `notice` (if any) goes to the console.
    void end(grpc::ClientContext *context, const QString &notice = {})
    {
        std::lock_guard lock(m_mutex);
        const auto it = m_inFlight.find(context);
        if (it != m_inFlight.end()) {
            m_done.push_back(std::move(it->second));
            m_inFlight.erase(it);
        }
        if (RemoteBackend *b = m_owner) {
            QMetaObject::invokeMethod(
                b,
                [b, notice] {
                    b->m_calls->collect();
                    if (!notice.isEmpty())
                        emit b->notice(notice);
                },
                Qt::QueuedConnection);
        }
        m_idle.notify_all();
    }
    // On the console's thread: frees the calls that finished.
    void collect()
    {
        std::vector<std::shared_ptr<void>> done;
        {
            std::lock_guard lock(m_mutex);
            done.swap(m_done);
        }
    }
    // The console is going: no more notices; cancel what is in flight, wait for it (bounded),
    // free what finished. A call still in flight after the wait stays owned by the box, which
    // its callback keeps alive.
    void close(milliseconds wait)
    {
        std::unique_lock lock(m_mutex);
        m_owner = nullptr;
        for (auto &[context, call] : m_inFlight)
            context->TryCancel();
        m_idle.wait_for(lock, wait, [this] { return m_inFlight.empty(); });
        std::vector<std::shared_ptr<void>> done;
        done.swap(m_done);
        lock.unlock();
    }

private:
    std::mutex m_mutex;
    std::condition_variable m_idle;
    RemoteBackend *m_owner;
    std::map<grpc::ClientContext *, std::shared_ptr<void>> m_inFlight;
    std::vector<std::shared_ptr<void>> m_done;
};

void RemoteLink::run(milliseconds firstRetry, milliseconds maxRetry, milliseconds refusedRetry)
{
    std::minstd_rand jitter(std::random_device{}());
    milliseconds retry = firstRetry;
    for (;;) {
        {
            std::lock_guard lock(mutex);
            if (stopping)
                return;
        }
        bool wasLive = false;
        bool refused = false;
        QString problem;
        readStream(&wasLive, &refused, &problem);
        if (wasLive)
            retry = firstRetry; // it worked for a while: start the back-off again
        const milliseconds base = refused ? std::max(refusedRetry, retry) : retry;
        const milliseconds wait =
            base + milliseconds(jitter() % std::max<qint64>(1, base.count() / 4));
        RemoteBackend::Item down{RemoteBackend::Item::Down, {}, {}, 0, {}, false};
        down.text = QStringLiteral("%1; retrying in %2 s")
                        .arg(problem)
                        .arg(double(wait.count()) / 1000.0, 0, 'f', 1);
        post(std::move(down));
        std::unique_lock lock(mutex);
        wake.wait_for(lock, wait, [this] { return stopping; });
        if (stopping)
            return;
        retry = std::min(retry * 2, maxRetry);
    }
}

std::optional<grpc::Status>
RemoteLink::unary(const std::function<grpc::Status(grpc::ClientContext *)> &call)
{
    auto ctx = std::make_shared<grpc::ClientContext>();
    authorize(*ctx);
    ctx->set_deadline(system_clock::now() + seconds(15));
    {
        std::lock_guard lock(mutex);
        if (stopping)
            return std::nullopt;
        current = ctx;
    }
    const grpc::Status status = call(ctx.get());
    std::lock_guard lock(mutex);
    current.reset();
    return status;
}

bool RemoteLink::askIdentity(bool *refused, QString *problem)
{
    v1::WhoAmIResponse me;
    const std::optional<grpc::Status> asked = unary(
        [&](grpc::ClientContext *ctx) { return stub->WhoAmI(ctx, v1::WhoAmIRequest{}, &me); });
    if (!asked)
        return false;
    const grpc::Status &status = *asked;
    if (!status.ok() && status.error_code() != grpc::StatusCode::UNIMPLEMENTED) {
        *refused = isRefusal(status.error_code());
        *problem =
            status.error_code() == grpc::StatusCode::UNAVAILABLE
                ? QStringLiteral("hub %1 is unreachable (%2)").arg(address, statusText(status))
            : *refused ? refusal(address, status, hasToken)
                       : QStringLiteral("hub %1 did not say who it takes this console for (%2: %3)")
                             .arg(address)
                             .arg(int(status.error_code()))
                             .arg(statusText(status));
        return false;
    }
    RemoteBackend::Item item{RemoteBackend::Item::Identity, {}, {}, 0, {}, false};
    // A viewer sends nothing (so no rollout either), and its probe would be logged as a
    // refused access at every attach.
    if (status.ok() && identityOf(me).role == security::Role::Viewer) {
        item.identity = identityOf(me);
    } else if (status.ok()) {
        item.identity = identityOf(me);
        // A hub older than staged rollouts would take one for a send to every bot at once
        // (it ignores the field): ControlRollout says whether it has them. An empty fan-out
        // id is refused by a hub that does; one that does not says UNIMPLEMENTED. (A hub
        // without WhoAmI is older still.)
        v1::ControlRolloutRequest request;
        request.set_action(v1::ROLLOUT_ACTION_PAUSE);
        v1::ControlRolloutResponse response;
        const std::optional<grpc::Status> probe = unary([&](grpc::ClientContext *ctx) {
            return stub->ControlRollout(ctx, request, &response);
        });
        if (!probe)
            return false;
        item.rollouts = probe->error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
                        probe->error_code() == grpc::StatusCode::PERMISSION_DENIED ||
                        probe->error_code() == grpc::StatusCode::NOT_FOUND;
    }
    post(std::move(item));
    return true;
}

bool RemoteLink::readStream(bool *wasLive, bool *refused, QString *problem)
{
    if (!askIdentity(refused, problem))
        return false;
    auto ctx = std::make_shared<grpc::ClientContext>();
    authorize(*ctx);
    v1::WatchRequest request;
    quint64 knownFeed = 0;
    {
        std::lock_guard lock(mutex);
        if (stopping)
            return false;
        current = ctx;
        knownFeed = feedId;
        if (feedId != 0 && position != 0) {
            request.set_resume_after(position);
            request.set_feed_id(feedId);
        } else {
            request.set_snapshot(true);
        }
    }
    using Item = RemoteBackend::Item;
    post(Item{Item::StreamStart, {}, {}, 0, {}, false});
    if (request.snapshot())
        post(Item{Item::SnapshotBegin, {}, {}, 0, {}, false});
    std::unique_ptr<grpc::ClientReader<v1::WatchEvent>> reader = stub->Watch(ctx.get(), request);
    v1::WatchEvent event;
    bool inSnapshot = request.snapshot();
    while (reader->Read(&event)) {
        const std::string &name = event.event();
        if (name == "resync") {
            // A snapshot follows. Whether the hub is another run is decided at its end (a
            // resync cut short must not pass for a restart); until then no position holds.
            std::lock_guard lock(mutex);
            position = 0;
            inSnapshot = true;
            inbox.push_back(Item{Item::SnapshotBegin, {}, {}, 0, {}, false});
            postLocked();
            continue;
        }
        if (name == "snapshot_end" || name == "resumed") {
            Item item{name == "resumed" ? Item::Resumed : Item::SnapshotEnd, {}, {}, 0, {}, false};
            item.newRun = knownFeed != 0 && event.feed_id() != knownFeed;
            item.complete = event.complete();
            {
                std::lock_guard lock(mutex);
                feedId = knownFeed = event.feed_id();
                position = event.change();
            }
            inSnapshot = false;
            *wasLive = true;
            post(std::move(item));
            continue;
        }
        if (event.has_bot()) {
            Item item{Item::Bot, {}, {}, 0, {}, false};
            QString why;
            if (auto bot = convert::toBotInfo(event.bot(), &item.pending, &why)) {
                item.bot = std::move(*bot);
            } else {
                item.kind = Item::Bad;
                item.text = why;
            }
            post(std::move(item));
            continue;
        }
        if (event.has_command()) {
            const bool snapshotRecord = name == "snapshot_command";
            Item item{snapshotRecord ? Item::SnapshotCommand : Item::Command, {}, {}, 0, {}, false};
            QString why;
            if (auto record = convert::toOutcome(event.command(), &why)) {
                item.command = std::move(*record);
                if (!snapshotRecord && !inSnapshot) {
                    std::lock_guard lock(mutex);
                    position = std::max(position, item.command.change);
                }
            } else {
                item.kind = Item::Bad;
                item.text = why;
            }
            post(std::move(item));
            continue;
        }
        // An event of a newer hub that this console does not know: ignored.
    }
    const grpc::Status status = reader->Finish();
    {
        std::lock_guard lock(mutex);
        current.reset();
        // The hub could not hold what this console had to catch up on: start afresh.
        if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED)
            position = 0;
    }
    *refused = isRefusal(status.error_code());
    *problem = status.error_code() == grpc::StatusCode::UNAVAILABLE
                   ? QStringLiteral("hub %1 is unreachable (%2)").arg(address, statusText(status))
               : *refused ? refusal(address, status, hasToken)
                          : QStringLiteral("hub %1 ended the Watch (%2: %3)")
                                .arg(address)
                                .arg(int(status.error_code()))
                                .arg(statusText(status));
    return *wasLive;
}

RemoteBackend::RemoteBackend(const QString &address, QObject *parent)
    : RemoteBackend(address, Options{}, parent)
{}

RemoteBackend::RemoteBackend(const QString &address, Options options, QObject *parent)
    : ConsoleBackend(parent), m_address(address), m_options(options),
      m_net(std::make_shared<RemoteLink>(address, options)),
      m_calls(std::make_shared<CallBox>(this)),
      m_sequence(options.sequence ? options.sequence : std::make_shared<quint64>(1)),
      m_idPrefix(QString::number(QRandomGenerator::global()->bounded(36 * 36 * 36 * 36), 36))
{
    m_problem = tr("attaching to %1").arg(address);
    if (!m_net->setupProblem.isEmpty()) {
        // Nothing to retry: the console's own settings are wrong.
        m_link = Link::Down;
        m_problem = tr("cannot attach to %1: %2").arg(address, m_net->setupProblem);
        return;
    }
    m_net->owner = this;
    RemoteLink *net = m_net.get();
    m_net->thread = std::thread(
        [net, options] { net->run(options.firstRetry, options.maxRetry, options.refusedRetry); });
}

RemoteBackend::~RemoteBackend()
{
    // Calls in flight are cancelled on this side only (a send with no_wait is already on the
    // hub: the command goes on), and their callbacks are waited for before the channel goes.
    m_calls->close(2s);
    m_net->stop();
}

quint64 RemoteBackend::position() const
{
    std::lock_guard lock(m_net->mutex);
    return m_net->position;
}

QList<BotInfo> RemoteBackend::bots() const
{
    return m_bots.values();
}

QList<CommandOutcome> RemoteBackend::commands() const
{
    QList<CommandOutcome> out;
    out.reserve(qsizetype(m_commandOrder.size()));
    for (const QString &id : m_commandOrder)
        if (const auto it = m_commands.find(id); it != m_commands.end())
            out << it->second.record;
    return out;
}

int RemoteBackend::pendingCount(const QString &botId) const
{
    return m_pending.value(botId);
}

void RemoteBackend::setLink(Link link, const QString &problem)
{
    if (link == m_link && problem == m_problem)
        return;
    m_link = link;
    m_problem = problem;
    emit linkChanged();
}

void RemoteBackend::drain()
{
    // At most m_perDrain events per turn of the event loop: a burst (a resync, a fan-out to
    // 50,000 bots) is taken in slices, so the window keeps answering while it comes in; the
    // slice shrinks when a turn (with the views' work on it) takes longer than DrainTargetMs.
    QElapsedTimer took;
    took.start();
    std::deque<Item> items;
    bool fullSlice = false;
    {
        std::lock_guard lock(m_net->mutex);
        std::deque<Item> &inbox = m_net->inbox;
        if (inbox.size() <= m_perDrain) {
            items.swap(inbox);
            m_net->drainPosted = false;
        } else {
            fullSlice = true;
            const auto end = inbox.begin() + qsizetype(m_perDrain);
            items.assign(std::make_move_iterator(inbox.begin()), std::make_move_iterator(end));
            inbox.erase(inbox.begin(), end);
            // The rest on the next turn: an event posted while posted events are delivered
            // waits for the next pass, so the window's timers and paint come in between.
            QMetaObject::invokeMethod(this, &RemoteBackend::drain, Qt::QueuedConnection);
        }
    }
    m_net->room.notify_all();
    QList<CommandOutcome> changed;
    QList<BotInfo> bots;
    auto flush = [&] {
        if (!bots.isEmpty())
            emit botsChanged(std::exchange(bots, {}));
        if (!changed.isEmpty())
            emit commandsChanged(std::exchange(changed, {}));
    };
    for (Item &item : items) {
        switch (item.kind) {
        case Item::Command:
        case Item::SnapshotCommand: {
            const QString id = item.command.commandId;
            applyCommand(std::move(item.command), changed);
            // Whatever comes between a snapshot's start and its end is in the hub's memory.
            if (item.kind == Item::SnapshotCommand || m_inSnapshot)
                if (auto it = m_commands.find(id); it != m_commands.end())
                    it->second.seenInSnapshot = true;
            break;
        }
        case Item::StreamStart:
            m_botsSeen.clear();
            break;
        case Item::Bot:
            if (m_bots.size() >= m_options.maxBots && !m_bots.contains(item.bot.botId)) {
                ++m_stats.badRecords;
                break;
            }
            m_botsSeen.insert(item.bot.botId);
            item.bot.hub = m_address;
            m_bots.insert(item.bot.botId, item.bot);
            bots << item.bot;
            break;
        case Item::SnapshotBegin:
            m_inSnapshot = true;
            for (auto &[id, k] : m_commands)
                k.seenInSnapshot = false;
            if (m_stats.attaches > 0)
                ++m_stats.resyncs;
            break;
        case Item::SnapshotEnd:
            m_inSnapshot = false;
            resyncFinished(item.newRun, item.complete, changed);
            forgetUnseenBots(bots);
            ++m_stats.attaches;
            flush(); // views first, then the banner goes
            setLink(Link::Live, {});
            break;
        case Item::Resumed:
            forgetUnseenBots(bots);
            ++m_stats.resumes;
            ++m_stats.attaches;
            flush();
            setLink(Link::Live, {});
            break;
        case Item::Down:
            flush();
            setLink(Link::Down, item.text);
            break;
        case Item::Bad:
            ++m_stats.badRecords;
            break;
        case Item::Identity: {
            m_rollouts = item.rollouts;
            const ConsoleIdentity &was = m_identity;
            const ConsoleIdentity &is = item.identity;
            if (was.name != is.name || was.role != is.role || was.scope != is.scope ||
                was.authenticated != is.authenticated) {
                m_identity = is;
                emit identityChanged();
            }
            break;
        }
        }
    }
    flush();
    forgetOld();
    // The next slice is what fits DrainTargetMs at this turn's cost per event (the views'
    // cost grows with their rows): smaller at once when over, at most twice as large when a
    // full slice was well under.
    const qint64 us = std::max<qint64>(1, took.nsecsElapsed() / 1000);
    const size_t fits = size_t(qint64(items.size()) * DrainTargetMs * 1000 / us);
    if (us > DrainTargetMs * 1000)
        m_perDrain = std::clamp(fits, MinPerDrain, MaxPerDrain);
    else if (fullSlice)
        m_perDrain = std::clamp(std::min(fits, m_perDrain * 2), MinPerDrain, MaxPerDrain);
}

void RemoteBackend::applyCommand(CommandOutcome record, QList<CommandOutcome> &out)
{
    auto it = m_commands.find(record.commandId);
    record.hub = m_address;
    if (it == m_commands.end()) {
        record.sequence = (*m_sequence)++;
        if (record.state == CommandState::Pending)
            ++m_pending[record.botId];
        m_commandOrder.push_back(record.commandId);
        m_commands.emplace(record.commandId, Known{record, false});
        out << record;
        ++m_stats.changes;
        return;
    }
    Known &known = it->second;
    // A snapshot's record is what the hub holds now: it replaces what is here unless it is the
    // very same change (after a restart, change numbers start again and compare to nothing).
    // Otherwise only a newer change applies.
    const bool stale = m_inSnapshot ? record.change == known.record.change
                                    : record.change != 0 && record.change <= known.record.change;
    if (stale) {
        ++m_stats.duplicates;
        return;
    }
    record.sequence = known.record.sequence;
    const bool was = known.record.state == CommandState::Pending;
    const bool is = record.state == CommandState::Pending;
    if (was && !is && --m_pending[record.botId] <= 0)
        m_pending.remove(record.botId);
    else if (!was && is)
        ++m_pending[record.botId];
    known.record = record;
    out << record;
    ++m_stats.changes;
}

void RemoteBackend::resyncFinished(bool newRun, bool complete, QList<CommandOutcome> &out)
{
    // The hub restarted (what it held in memory is gone), or it listed every command still
    // pending on it: a command pending here and not listed will get no further change through
    // this console. Say so rather than count down forever.
    if (!newRun && !complete)
        return;
    const QString reason = newRun ? tr("the hub restarted; its outcome is unknown")
                                  : tr("it finished while this console was not attached; its "
                                       "outcome was not in the hub's snapshot (opctl commands "
                                       "shows it while the hub remembers it)");
    const auto now = Clock::now();
    for (auto &[id, k] : m_commands) {
        if (k.seenInSnapshot || k.record.state != CommandState::Pending)
            continue;
        k.record.state = CommandState::Disconnected;
        k.record.reason = reason;
        k.record.change = 0; // a change of this console's, newer than any it had: tallies apply it
        k.record.finishedAt = now;
        if (--m_pending[k.record.botId] <= 0)
            m_pending.remove(k.record.botId);
        out << k.record;
    }
}

void RemoteBackend::forgetUnseenBots(QList<BotInfo> &out)
{
    // The hub listed every bot it knows: one it did not list (it restarted) is not connected
    // to it, whatever the last word of the old run was.
    // A disconnected bot the hub no longer lists is forgotten here too (memory follows the
    // hub's); the window keeps its row.
    for (auto it = m_bots.begin(); it != m_bots.end();) {
        if (!m_botsSeen.contains(it.key()) && !it->connected)
            it = m_bots.erase(it);
        else
            ++it;
    }
    for (BotInfo &bot : m_bots) {
        if (m_botsSeen.contains(bot.botId) || !bot.connected)
            continue;
        bot.connected = false;
        bot.disconnectReason = tr("not known to the hub since it restarted");
        bot.disconnectedAtMs = QDateTime::currentMSecsSinceEpoch();
        out << bot;
    }
}

void RemoteBackend::forgetOld()
{
    if (m_commands.size() <= size_t(m_options.maxCommands))
        return;
    const qsizetype keep = m_options.maxCommands - m_options.maxCommands / 10;
    size_t looked = m_commandOrder.size();
    while (m_commands.size() > size_t(keep) && looked-- > 0 && !m_commandOrder.empty()) {
        const QString id = m_commandOrder.front();
        m_commandOrder.pop_front();
        const auto it = m_commands.find(id);
        if (it == m_commands.end())
            continue;
        if (it->second.record.state == CommandState::Pending) {
            m_commandOrder.push_back(id); // pending ones stay
            continue;
        }
        m_commands.erase(it);
    }
}

QString RemoteBackend::newId(const char *prefix)
{
    return QStringLiteral("%1-%2-%3-%4")
        .arg(QLatin1String(prefix), QString::number(QDateTime::currentMSecsSinceEpoch(), 36),
             m_idPrefix)
        .arg(++m_idCounter);
}

SendReceipt RemoteBackend::send(const QStringList &botIds, const CommandSpec &spec,
                                milliseconds timeout, const QString &commandId)
{
    SendReceipt receipt;
    if (botIds.isEmpty()) {
        receipt.error = tr("no bot selected");
        return receipt;
    }
    if (m_link != Link::Live) {
        receipt.error = tr("hub %1 is not attached (%2)").arg(m_address, m_problem);
        return receipt;
    }
    if (const QString problem = spec.validate(); !problem.isEmpty()) {
        receipt.error = problem;
        return receipt;
    }
    const QString what = spec.name();
    if (botIds.size() == 1) {
        const QString id = commandId.isEmpty() ? newId("c") : commandId;
        struct Call
        {
            grpc::ClientContext ctx;
            v1::SendCommandRequest request;
            v1::SendCommandResponse response;
        };
        auto call = std::make_shared<Call>();
        call->request.set_bot_id(toStd(botIds.first()));
        convert::fillCommand(*call->request.mutable_command(), id, spec, timeout);
        *call->request.mutable_timeout() = wire::durationFromMs(timeout.count());
        call->request.set_no_wait(true);
        call->ctx.set_deadline(system_clock::now() + seconds(30));
        m_net->authorize(call->ctx);
        const QString bot = botIds.first();
        const std::shared_ptr<CallBox> box = m_calls;
        Call *raw = box->begin(call);
        m_net->stub->async()->SendCommand(
            &raw->ctx, &raw->request, &raw->response,
            [box, call = raw, bot, what, hasToken = m_net->hasToken](const grpc::Status &status) {
                QString problem;
                if (!status.ok())
                    problem = callProblem(status, hasToken);
                else if (call->response.record().outcome() == v1::OUTCOME_REFUSED)
                    problem = fromStd(wire::cutText(call->response.record().reason(), 512));
                box->end(&call->ctx,
                         problem.isEmpty()
                             ? QString()
                             : RemoteBackend::tr("%1 not sent to %2: %3").arg(what, bot, problem));
            });
        receipt.commandIds << id;
        return receipt;
    }
    return sendFanOut(botIds, spec, timeout, newId("f"));
}

SendReceipt RemoteBackend::sendRollout(const QStringList &botIds, const CommandSpec &spec,
                                       milliseconds timeout, const RolloutPlan &plan)
{
    SendReceipt receipt;
    if (receipt.error = rolloutProblem(botIds, spec); !receipt.ok())
        return receipt;
    if (!m_rollouts) {
        receipt.error = tr("hub %1 does not run staged rollouts (an older version); nothing "
                           "was sent")
                            .arg(m_address);
        return receipt;
    }
    return sendFanOut(botIds, spec, timeout, newId("f"), &plan);
}

SendReceipt RemoteBackend::sendFanOut(const QStringList &botIds, const CommandSpec &spec,
                                      milliseconds timeout, const QString &fanOut,
                                      const RolloutPlan *rollout)
{
    SendReceipt receipt;
    if (m_link != Link::Live) {
        receipt.error = tr("hub %1 is not attached (%2)").arg(m_address, m_problem);
        return receipt;
    }
    const QString what = spec.name();
    class ManyCall final : public grpc::ClientReadReactor<v1::SendToManyEvent>
    {
    public:
        std::shared_ptr<CallBox> box;
        grpc::ClientContext ctx;
        v1::SendToManyRequest request;
        v1::SendToManyEvent event;
        QString what;
        bool hasToken = false;
        void OnReadDone(bool ok) override
        {
            if (ok)
                StartRead(&event);
        }
        // The box owns this reactor and frees it on the console's thread once ended: nothing
        // here touches a member after end().
        void OnDone(const grpc::Status &status) override
        {
            const std::shared_ptr<CallBox> keep = box;
            keep->end(&ctx, status.ok() ? QString()
                                        : RemoteBackend::tr("%1 not sent: %2")
                                              .arg(what, callProblem(status, hasToken)));
        }
    };
    ManyCall *call = m_calls->begin(std::make_shared<ManyCall>());
    call->box = m_calls;
    call->what = what;
    call->hasToken = m_net->hasToken;
    for (const QString &bot : botIds)
        call->request.add_bot_ids(toStd(bot));
    convert::fillCommand(*call->request.mutable_command(), QString(), spec, timeout);
    call->request.mutable_command()->clear_command_id();
    *call->request.mutable_timeout() = wire::durationFromMs(timeout.count());
    call->request.set_fan_out_id(toStd(fanOut));
    if (rollout) {
        v1::Rollout &r = *call->request.mutable_rollout();
        if (rollout->batchCount > 0)
            r.set_batch_count(rollout->batchCount);
        else
            r.set_batch_percent(rollout->batchPercent);
        if (rollout->abortAbovePercent)
            r.set_abort_above_percent(*rollout->abortAbovePercent);
        *r.mutable_wave_delay() = wire::durationFromMs(rollout->waveDelay.count());
    }
    call->request.set_no_wait(true);
    call->ctx.set_deadline(system_clock::now() + seconds(60));
    m_net->authorize(call->ctx);
    m_net->stub->async()->SendToMany(&call->ctx, &call->request, call);
    call->StartRead(&call->event);
    call->StartCall();
    receipt.fanOut = fanOut;
    return receipt;
}

bool RemoteBackend::cancel(const QString &commandId, const QString &reason, const QString &)
{
    if (m_link != Link::Live)
        return false;
    struct Call
    {
        grpc::ClientContext ctx;
        v1::CancelCommandRequest request;
        v1::CancelCommandResponse response;
    };
    auto call = std::make_shared<Call>();
    call->request.set_command_id(toStd(commandId));
    call->request.set_reason(toStd(reason.left(1000)));
    call->ctx.set_deadline(system_clock::now() + seconds(30));
    m_net->authorize(call->ctx);
    const std::shared_ptr<CallBox> box = m_calls;
    Call *raw = box->begin(call);
    m_net->stub->async()->CancelCommand(
        &raw->ctx, &raw->request, &raw->response,
        [box, call = raw, commandId, hasToken = m_net->hasToken](const grpc::Status &s) {
            box->end(&call->ctx, s.ok() ? QString()
                                        : RemoteBackend::tr("cancel of %1 failed: %2")
                                              .arg(commandId, callProblem(s, hasToken)));
        });
    return true;
}

QFuture<HistoryPage> RemoteBackend::queryHistory(const HistoryQuery &query)
{
    if (!m_net->stub) {
        HistoryPage page;
        page.error = m_problem;
        return QtFuture::makeReadyFuture(page);
    }
    struct Call
    {
        grpc::ClientContext ctx;
        v1::QueryHistoryRequest request;
        v1::QueryHistoryResponse response;
        QPromise<HistoryPage> promise;
    };
    auto call = std::make_shared<Call>();
    QFuture<HistoryPage> future = call->promise.future();
    call->promise.start();
    v1::QueryHistoryRequest &r = call->request;
    r.set_bot_id(toStd(query.botId));
    r.set_kind(toStd(query.kind));
    r.set_issuer(toStd(query.issuer));
    r.set_fan_out_id(toStd(query.fanOut));
    r.set_text(toStd(query.text));
    for (const CommandState s : query.states)
        r.add_outcomes(convert::outcome(s));
    if (query.sinceMs > 0)
        *r.mutable_since() = convert::timestampMs(query.sinceMs);
    if (query.untilMs > 0)
        *r.mutable_until() = convert::timestampMs(query.untilMs);
    r.set_page_size(query.pageSize);
    r.set_page_token(toStd(query.pageToken));
    call->ctx.set_deadline(system_clock::now() + seconds(30));
    m_net->authorize(call->ctx);
    const std::shared_ptr<CallBox> box = m_calls;
    Call *raw = box->begin(call);
    m_net->stub->async()->QueryHistory(
        &raw->ctx, &raw->request, &raw->response,
        [box, call = raw, hub = m_address, hasToken = m_net->hasToken](const grpc::Status &s) {
            HistoryPage page;
            if (!s.ok()) {
                page.error = tr("%1: %2").arg(hub, callProblem(s, hasToken));
            } else {
                const v1::QueryHistoryResponse &r = call->response;
                if (r.commands_size() > HistoryQuery::MaxPageSize ||
                    r.next_page_token().size() > 64) {
                    page.error = tr("%1 answered with a page out of bounds").arg(hub);
                } else {
                    // A record that breaks a rule is dropped and counted, as on Watch; the
                    // good ones and the way on are kept (one bad record must not end every
                    // search that reaches it).
                    int bad = 0;
                    QString firstProblem;
                    for (const v1::CommandRecord &record : r.commands()) {
                        QString problem;
                        std::optional<CommandOutcome> o = convert::toOutcome(record, &problem);
                        if (!o) {
                            if (bad++ == 0)
                                firstProblem = problem;
                            continue;
                        }
                        o->hub = hub;
                        o->event = ChangeEvent::Restored;
                        page.records.append(std::move(*o));
                    }
                    if (bad > 0)
                        page.error = tr("%1 sent %2 bad records, not shown (first: %3)")
                                         .arg(hub)
                                         .arg(bad)
                                         .arg(firstProblem);
                    page.nextPageToken = fromStd(r.next_page_token());
                }
            }
            call->promise.addResult(std::move(page));
            call->promise.finish();
            box->end(&call->ctx);
        });
    return future;
}

QString RemoteSecurity::problem() const
{
    // A header value is printable ASCII: a token with anything else could not be sent.
    if (token.size() > security::MaxTokenBytes)
        return RemoteBackend::tr("the operator token is longer than %1 bytes")
            .arg(security::MaxTokenBytes);
    for (const char c : token)
        if (c < 0x21 || c > 0x7e)
            return RemoteBackend::tr("the operator token has a character other than printable "
                                     "ASCII");
    QString why;
    if (!security::channelCredentials(tls, &why))
        return why;
    return {};
}

bool RemoteBackend::canDecide(const QString &hub) const
{
    return (hub.isEmpty() || hub == m_address) && m_identity.role == security::Role::Admin;
}

QFuture<DecisionReply> RemoteBackend::decideBot(const QString &botId, BotDecision decision,
                                                const QString &reason, const QString &,
                                                const QString &credential)
{
    if (m_link != Link::Live) {
        DecisionReply reply;
        reply.error = tr("hub %1 is not attached (%2)").arg(m_address, m_problem);
        return QtFuture::makeReadyFuture(reply);
    }
    struct Call
    {
        grpc::ClientContext ctx;
        v1::DecideBotRequest request;
        v1::DecideBotResponse response;
        QPromise<DecisionReply> promise;
    };
    auto call = std::make_shared<Call>();
    QFuture<DecisionReply> future = call->promise.future();
    call->promise.start();
    call->request.set_bot_id(toStd(botId));
    call->request.set_decision(decision == BotDecision::Accept   ? v1::DECISION_ACCEPT
                               : decision == BotDecision::Reject ? v1::DECISION_REJECT
                                                                 : v1::DECISION_REVOKE);
    call->request.set_reason(wire::cutText(toStd(reason), wire::limits::TextBytes));
    call->request.set_credential(toStd(credential));
    call->ctx.set_deadline(system_clock::now() + seconds(30));
    m_net->authorize(call->ctx);
    const std::shared_ptr<CallBox> box = m_calls;
    Call *raw = box->begin(call);
    m_net->stub->async()->DecideBot(
        &raw->ctx, &raw->request, &raw->response,
        [box, call = raw, botId, decision, hub = m_address,
         hasToken = m_net->hasToken](const grpc::Status &s) {
            DecisionReply reply;
            if (!s.ok()) {
                reply.error = callProblem(s, hasToken);
            } else {
                reply.message = decision == BotDecision::Accept   ? tr("%1 accepted").arg(botId)
                                : decision == BotDecision::Reject ? tr("%1 rejected").arg(botId)
                                                                  : tr("%1 revoked").arg(botId);
                if (call->response.has_bot()) {
                    if (auto bot = convert::toBotInfo(call->response.bot(), nullptr, nullptr)) {
                        bot->hub = hub;
                        reply.bot = std::move(*bot);
                    }
                }
            }
            call->promise.addResult(std::move(reply));
            call->promise.finish();
            box->end(&call->ctx);
        });
    return future;
}

} // namespace opconsole
