// libFuzzer target: one bot's stream as the hub sees it (docs/fuzzing.md).
//
// Input: a sequence of frames, each a 2-byte little-endian header H, then
//   H <  0xF000: a serialized opconsole.v1.BotMessage of H bytes (cut short at the end of input);
//   H >= 0xF000: a hub-side event with no payload: (H >> 8) & 0xF picks it, H & 0xFF is its
//                argument (cancel, fail, markSent, register, session replaced, ... see hubEvent).
// The first frame must be a BotMessage with a Hello that passes wire::checkHello, else the stream
// is refused (as BotSession::handleHello does). Then every message goes through the checks and
// conversions of HubPrivate::sessionMessage into a real CommandRegistry that has commands c-0..c-7
// registered for the bot (c-0..c-5 sent on the session) and o-0 for another bot. A frame that does
// not parse ends the stream (gRPC cannot deserialize it); so does the end of the input.
// Afterwards every record of the registry goes through convert::fillRecord (of a bulk of
// commands, one in 64) and the invariants below; a violation aborts with a message.
#include "botinfo.h"
#include "commandregistry.h"
#include "fuzzsupport.h"
#include "protoconvert.h"
#include "wirecheck.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/stubs/logging.h>

#include <QCoreApplication>
#include <QFuture>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

using namespace opconsole;
using namespace std::chrono;
using convert::fromStd;
using convert::toStd;

namespace {

// Far beyond any run: nothing expires by the clock while an input runs, so runs repeat.
constexpr milliseconds LongTimeout = 1h;
constexpr int PresetCommands = 8; // c-0..c-7
constexpr int SentPresetCommands = 6;
const QString OtherBot = QStringLiteral("other-bot");

QString commandId(int n)
{
    return QStringLiteral("c-%1").arg(n);
}

CommandState stateFrom(unsigned n)
{
    static constexpr CommandState states[] = {
        CommandState::Pending,   CommandState::Acked,        CommandState::Rejected,
        CommandState::Expired,   CommandState::NotConnected, CommandState::Disconnected,
        CommandState::Cancelled, CommandState::Refused,
    };
    return states[n % 8];
}

// Map entries in key order, so equal messages give equal bytes.
std::string deterministic(const google::protobuf::MessageLite &m)
{
    std::string out;
    {
        google::protobuf::io::StringOutputStream stream(&out);
        google::protobuf::io::CodedOutputStream coded(&stream);
        coded.SetSerializationDeterministic(true);
        REQUIRE(m.SerializeToCodedStream(&coded));
    }
    return out;
}

// What the hub writes, the other side can read, and reads as the same message.
template <typename Message> void requireRoundTrip(const Message &m)
{
    const std::string bytes = deterministic(m);
    Message back;
    REQUIRE(back.ParseFromString(bytes));
    REQUIRE(deterministic(back) == bytes);
}

bool sameAck(const CommandAckData &a, const CommandAckData &b)
{
    return a.success == b.success && a.message == b.message && a.errorCode == b.errorCode &&
           a.result == b.result && a.botReceivedAtMs == b.botReceivedAtMs &&
           a.botCompletedAtMs == b.botCompletedAtMs;
}

// A CommandAck the hub writes back (CommandRecord.ack/late_ack) passes its own checks and gives
// back exactly what the registry holds.
void requireAckRoundTrip(const v1::CommandAck &written, const CommandAckData &held)
{
    const wire::AckCheck checked = wire::checkAck(written);
    REQUIRE(checked.problem.empty());
    REQUIRE(checked.fieldProblem.empty());
    REQUIRE(sameAck(convert::toAckData(written, checked), held));
}

void requireTimestamp(const google::protobuf::Timestamp &t)
{
    int64_t ms = 0;
    REQUIRE(wire::checkTimestamp(t, "t", &ms).empty());
}

void requireDuration(const google::protobuf::Duration &d)
{
    int64_t ms = 0;
    REQUIRE(wire::checkDuration(d, "d", &ms).empty());
}

// What any record must look like.
void checkOutcome(const CommandOutcome &o)
{
    switch (o.state) {
    case CommandState::Pending:
        REQUIRE(!o.ack && !o.lateAck);
        REQUIRE(o.finishedAt == Clock::time_point{});
        break;
    case CommandState::Acked:
        REQUIRE(o.ack && o.ack->success && !o.lateAck);
        break;
    case CommandState::Rejected:
        REQUIRE(o.ack && !o.ack->success && !o.lateAck);
        break;
    default: // finished without an answer in time: maybe a late ack, never an ack
        REQUIRE(!o.ack);
        break;
    }
    REQUIRE(!o.hasLateAck() || o.lateAckAt != Clock::time_point{});
    REQUIRE(o.progressPercent >= -1 && o.progressPercent <= 100);
    REQUIRE(o.progressSteps.size() <= CommandOutcome::MaxProgressSteps);
    REQUIRE(o.latency() >= nanoseconds::zero());
}

// ... and what fillRecord makes of it.
void checkRecord(const CommandOutcome &o)
{
    checkOutcome(o);
    v1::CommandRecord record;
    convert::fillRecord(record, o);
    requireRoundTrip(record);
    REQUIRE(convert::stateOf(record.outcome()) == o.state);
    REQUIRE(wire::checkId(record.command_id(), "command_id").empty());
    REQUIRE(wire::checkId(record.bot_id(), "bot_id").empty());
    REQUIRE(record.has_finished_at() == o.finished());
    REQUIRE(record.has_ack() == o.ack.has_value());
    REQUIRE(record.has_late_ack() == o.lateAck.has_value());
    if (o.ack)
        requireAckRoundTrip(record.ack(), *o.ack);
    if (o.lateAck) {
        requireAckRoundTrip(record.late_ack(), *o.lateAck);
        requireDuration(record.late_by());
    }
    requireTimestamp(record.registered_at());
    requireTimestamp(record.deadline());
    if (record.has_sent_at())
        requireTimestamp(record.sent_at());
    if (record.has_finished_at()) {
        requireTimestamp(record.finished_at());
        requireDuration(record.latency());
    }
    REQUIRE(record.progress_percent() == o.progressPercent);
    REQUIRE(wire::checkText(record.progress_message(), "progress_message",
                            wire::limits::ProgressTextBytes)
                .empty());
}

// One simulated stream of one bot, with the registry the hub would use.
class Session
{
public:
    explicit Session(const v1::Hello &hello)
    {
        registry = std::make_unique<CommandRegistry>();
        // Direct connections: emitted in the thread of the transition, which is this one
        // (nothing expires by the clock within an input).
        QObject::connect(registry.get(), &CommandRegistry::finished,
                         [this](const CommandOutcome &o) { ++finishedTimes[o.sequence]; });
        QObject::connect(registry.get(), &CommandRegistry::changed,
                         [](const QList<CommandOutcome> &records) {
                             for (const CommandOutcome &o : records)
                                 checkOutcome(o); // fillRecord: on the snapshots
                         });

        // As HubPrivate::sessionHello records the bot.
        recentAcks.assign(hello.recent_acks().begin(), hello.recent_acks().end());
        botId = fromStd(hello.bot_id());
        bot.botId = botId;
        bot.session = session;
        bot.connected = true;
        bot.botVersion = fromStd(hello.bot_version());
        for (const auto &[key, value] : hello.labels())
            bot.labels.insert(fromStd(key), fromStd(value));
        bot.connectedAtMs = bot.lastSeenMs = 1'700'000'000'000;
        bot.connects = 1;

        for (int i = 0; i < PresetCommands; ++i)
            add(commandId(i), botId, i % 2 == 0);
        for (int i = 0; i < SentPresetCommands; ++i)
            REQUIRE(registry->markSent(commandId(i), session));
        add(QStringLiteral("o-0"), OtherBot, true);
        REQUIRE(registry->pendingCount(botId) == PresetCommands + (botId == OtherBot ? 1 : 0));
    }

    ~Session()
    {
        // The destructor cancels what is still pending: every future then has its one result.
        registry.reset();
        for (const auto &[id, future] : futures) {
            REQUIRE(future.isFinished());
            REQUIRE(future.resultCount() == 1);
        }
        for (const auto &[sequence, times] : finishedTimes)
            REQUIRE(times == 1);
    }

    void message(const v1::BotMessage &m);
    void hubEvent(unsigned action, unsigned arg);
    void streamEnded(const QString &reason);
    void checkAll();

private:
    // A registration as the hub makes it: with a future (SendCommand) or without (the GUI).
    void add(const QString &id, const QString &forBot, bool withFuture)
    {
        const QString kind = QStringLiteral("ping");
        if (withFuture) {
            QFuture<CommandOutcome> future =
                registry->registerCommand(id, forBot, LongTimeout, kind);
            if (future.isFinished()) { // refused at once: a finished Refused outcome
                REQUIRE(future.resultCount() == 1);
                REQUIRE(future.result().state == CommandState::Refused);
                return;
            }
            futures.emplace(registry->find(id).value().sequence, std::move(future));
        } else {
            QString error;
            const bool ok = registry->trackCommand(id, forBot, LongTimeout, kind, &error);
            REQUIRE(ok == error.isEmpty());
        }
    }

    void ack(const v1::CommandAck &ack);
    void progress(const v1::CommandProgress &progress);

    std::map<quint64, int> finishedTimes; // by sequence: the finished signal per command
    std::map<quint64, QFuture<CommandOutcome>> futures;
    std::vector<v1::CommandAck> recentAcks;    // the Hello's, told again on a reconnect
    std::unique_ptr<CommandRegistry> registry; // after what its signals touch: destroyed first

public:
    QString botId;
    quint64 session = 1;
    BotInfo bot;
    std::string lastFuzzedId; // the last command id a bot message carried that passed checkId
    bool bulkDone = false;
    int violations = 0;
};

void Session::ack(const v1::CommandAck &ack)
{
    const wire::AckCheck checked = wire::checkAck(ack);
    if (!checked.problem.empty()) {
        ++violations;
        return;
    }
    if (!checked.fieldProblem.empty())
        ++violations;
    REQUIRE(checked.message.size() <= wire::limits::TextBytes);
    REQUIRE(wire::checkText(checked.message, "message", wire::limits::TextBytes).empty());
    REQUIRE(v1::AckErrorCode_IsValid(checked.errorCode));
    lastFuzzedId = ack.command_id();

    const CommandAckData data = convert::toAckData(ack, checked);
    // What the hub would write back for it, checked again, is what it holds.
    requireAckRoundTrip(convert::fromAckData(fromStd(ack.command_id()), data), data);

    const QString id = fromStd(ack.command_id());
    const std::optional<CommandOutcome> before = registry->find(id);
    const ResolveResult result = registry->resolveCommand(id, botId, data);
    const std::optional<CommandOutcome> after = registry->find(id);
    switch (result) {
    case ResolveResult::Resolved:
        REQUIRE(before && before->state == CommandState::Pending);
        // The entry may be forgotten at once (setMaxRemembered(0), setLateAckWindow(0)).
        if (after) {
            REQUIRE(after->sequence == before->sequence);
            REQUIRE(after->state == (data.success ? CommandState::Acked : CommandState::Rejected));
            REQUIRE(after->ack && sameAck(*after->ack, data));
        }
        break;
    case ResolveResult::Unknown:
        REQUIRE(!before && !after);
        break;
    case ResolveResult::WrongBot:
        REQUIRE(before && before->botId != botId);
        REQUIRE(after && after->state == before->state &&
                after->ack.has_value() == before->ack.has_value());
        break;
    case ResolveResult::Duplicate:
        REQUIRE(before && before->finished() && (before->ack || before->lateAck));
        REQUIRE(after && after->state == before->state);
        REQUIRE(after->ack.has_value() == before->ack.has_value());
        REQUIRE(after->lateAck.has_value() == before->lateAck.has_value());
        break;
    case ResolveResult::Late:
        REQUIRE(before && before->finished() && !before->ack && !before->lateAck);
        REQUIRE(after && after->lateAck && sameAck(*after->lateAck, data));
        REQUIRE(after->state == before->state);
        break;
    }
}

void Session::progress(const v1::CommandProgress &progress)
{
    if (!wire::checkProgress(progress).empty()) {
        ++violations;
        return;
    }
    REQUIRE(progress.percent() <= 100);
    lastFuzzedId = progress.command_id();
    const QString id = fromStd(progress.command_id());
    const bool applied =
        registry->reportProgress(id, botId, int(progress.percent()), fromStd(progress.message()));
    if (applied) {
        const std::optional<CommandOutcome> after = registry->find(id);
        REQUIRE(after && after->state == CommandState::Pending);
        REQUIRE(after->progressPercent == int(progress.percent()));
        REQUIRE(toStd(after->progressMessage) == progress.message());
    }
}

// HubPrivate::sessionMessage, with the registry and the bot record.
void Session::message(const v1::BotMessage &m)
{
    switch (m.kind_case()) {
    case v1::BotMessage::kAck:
        ack(m.ack());
        break;
    case v1::BotMessage::kProgress:
        progress(m.progress());
        break;
    case v1::BotMessage::kHeartbeat:
    case v1::BotMessage::kStatus: {
        const bool isStatus = m.kind_case() == v1::BotMessage::kStatus;
        if (isStatus && !wire::checkStatus(m.status()).empty()) {
            ++violations;
            return;
        }
        const QString state =
            convert::botStateName(isStatus ? m.status().state() : m.heartbeat().state());
        bot.lastSeenMs += 1000;
        if (!state.isEmpty())
            bot.state = state;
        if (isStatus) {
            QMap<QString, QString> fields;
            for (const auto &[key, value] : m.status().fields())
                fields.insert(fromStd(key), fromStd(value));
            REQUIRE(fields.size() == m.status().fields_size());
            bot.status = std::move(fields);
        }
        break;
    }
    case v1::BotMessage::kHello: // a second Hello on one stream: ignored, counted
    case v1::BotMessage::KIND_NOT_SET:
        ++violations;
        break;
    }
}

// What the hub and the registry's other users do meanwhile.
void Session::hubEvent(unsigned action, unsigned arg)
{
    const QString id = commandId(int(arg % 16)); // c-8..c-15 exist only once registered here
    switch (action) {
    case 0:
        registry->cancelCommand(id, QStringLiteral("cancelled through the API"));
        break;
    case 1: {
        const bool ok = registry->failCommand(id, stateFrom(arg >> 4), QStringLiteral("failed"));
        const CommandState s = stateFrom(arg >> 4);
        REQUIRE(!ok || (s != CommandState::Pending && s != CommandState::Acked &&
                        s != CommandState::Rejected));
        break;
    }
    case 2: // sent now; with a response timeout the deadline moves (still far away)
        registry->markSent(id, session,
                           arg & 0x80 ? std::optional(LongTimeout + milliseconds(arg))
                                      : std::nullopt);
        break;
    case 3:
        add(id, arg & 0x40 ? OtherBot : botId, arg & 0x20);
        break;
    case 4: // a command with the id a bot message just used, so fuzzed ids reach the registry
        if (!lastFuzzedId.empty())
            add(fromStd(lastFuzzedId), arg & 0x40 ? OtherBot : botId, arg & 0x20);
        break;
    case 5: { // a newer stream of the same bot replaced this one (HubPrivate::sessionHello)
        registry->failBot(botId, QStringLiteral("connection replaced by a newer session"), session);
        ++session;
        bot.session = session;
        ++bot.connects;
        // Its Hello (the first one, again) tells its recent acks: applied as the hub does,
        // never counted as violations, at most one outcome or late ack per command.
        const RegistryCounters before = registry->counters();
        for (const v1::CommandAck &resent : recentAcks) {
            const wire::AckCheck checked = wire::checkAck(resent);
            REQUIRE(checked.problem.empty()); // checkHello refused bad ids
            const QString id = fromStd(resent.command_id());
            const auto was = registry->find(id);
            const ResolveResult r =
                registry->applyResentAck(id, botId, convert::toAckData(resent, checked));
            const auto now = registry->find(id);
            if (r == ResolveResult::Resolved || r == ResolveResult::Late) {
                REQUIRE(was && now && was->botId == botId);
                REQUIRE(r == ResolveResult::Late ? (!was->ack && !was->lateAck && now->lateAck)
                                                 : now->ack.has_value());
            }
        }
        const RegistryCounters after = registry->counters();
        REQUIRE(after.unknownAcks == before.unknownAcks);
        REQUIRE(after.duplicateAcks == before.duplicateAcks);
        REQUIRE(after.wrongBotAcks == before.wrongBotAcks);
        REQUIRE(after.resentAcksApplied + after.resentAcksIgnored ==
                before.resentAcksApplied + before.resentAcksIgnored + quint64(recentAcks.size()));
        break;
    }
    case 6:
        registry->failBot(arg & 1 ? OtherBot : botId, QStringLiteral("bot disconnected"));
        break;
    case 7: {
        const int n = registry->failAll(stateFrom(arg), QStringLiteral("hub shutting down"));
        REQUIRE(n == 0 || registry->pendingCount() == 0);
        break;
    }
    case 8:
        REQUIRE(registry->cleanupExpired() == 0); // nothing is due within an input
        break;
    case 9:
        registry->flushChanges();
        QCoreApplication::sendPostedEvents(registry.get());
        break;
    case 10:
        registry->setMaxRemembered(int(arg % 4));
        break;
    case 11:
        registry->setLateAckWindow(arg == 0 ? 0ms : CommandRegistry::DefaultLateAckWindow);
        break;
    case 12:
        registry->setMaxPendingPerBot(int(arg % 4));
        break;
    case 13: { // a ListCommands page
        bool more = false;
        const QList<CommandOutcome> page = registry->page(
            arg & 0xF, int(arg >> 4),
            [&](const CommandOutcome &o) { return arg & 1 || o.botId == botId; }, &more);
        REQUIRE(page.size() <= int(arg >> 4));
        quint64 last = arg & 0xF;
        for (const CommandOutcome &o : page) {
            REQUIRE(o.sequence > last);
            last = o.sequence;
            checkRecord(o);
        }
        break;
    }
    case 14: // below LongTimeout: registrations are refused; markSent clamps a response
             // timeout to it, so it stays far beyond any input
        registry->setMaxTimeout(arg == 0 ? LongTimeout / 2 : CommandRegistry::DefaultMaxTimeout);
        break;
    case 15: { // many at once: more chunks of slots, and the lazy compactions (heap, order,
               // a bot's refs) once enough of them finished or were forgotten
        if (bulkDone)
            break; // once per input: thousands of records are slow to check
        bulkDone = true;
        // Small (8..128) unless the low five bits are all set: 1,152 is past the first chunk
        // of 1,024 slots and the compaction thresholds (2 * pending + 1,024 stale items).
        const int n = (arg & 0x1F) == 0x1F ? 1152 : 8 * (1 + int(arg & 0xF));
        const QString forBot = arg & 0x20 ? OtherBot : botId;
        for (int i = 0; i < n; ++i) {
            const QString bulkId = QStringLiteral("b-%1").arg(i);
            registry->trackCommand(bulkId, forBot, LongTimeout, QStringLiteral("ping"));
            if (arg & 0x80)
                registry->markSent(bulkId, session);
            if (arg & 0x40 && i % 8 != 0)
                registry->cancelCommand(bulkId, QStringLiteral("cancelled"));
        }
        break;
    }
    }
}

void Session::streamEnded(const QString &reason)
{
    registry->failBot(botId, reason, session);
    // Nothing sent on the ended stream is still pending (commands not sent yet wait for the
    // bot's next stream: they have session 0).
    for (const CommandOutcome &o : registry->snapshot())
        REQUIRE(o.finished() || o.botId != botId || o.session != session);
    bot.connected = false;
    bot.disconnectedAtMs = bot.lastSeenMs + 1;
    bot.disconnectReason = reason;
}

void Session::checkAll()
{
    registry->flushChanges();
    QCoreApplication::sendPostedEvents(registry.get());

    const QList<CommandOutcome> records = registry->snapshot();
    int pending = 0;
    quint64 lastSequence = 0;
    quint64 finished = 0;
    for (const CommandOutcome &o : records) {
        REQUIRE(o.sequence > lastSequence); // registration order
        lastSequence = o.sequence;
        // Of a bulk, one record in 64 goes through fillRecord: they differ only in their id.
        if (o.commandId.startsWith(QLatin1String("b-")) && o.sequence % 64 != 0)
            checkOutcome(o);
        else
            checkRecord(o);
        const auto it = finishedTimes.find(o.sequence);
        const int times = it == finishedTimes.end() ? 0 : it->second;
        REQUIRE(times == (o.finished() ? 1 : 0)); // each command finished at most once
        if (!o.finished())
            ++pending;
        else
            ++finished;
        if (const auto f = futures.find(o.sequence); f != futures.end()) {
            REQUIRE(f->second.isFinished() == o.finished());
            if (o.finished()) {
                REQUIRE(f->second.resultCount() == 1);
                REQUIRE(f->second.result().state == o.state);
            }
        }
        REQUIRE(registry->find(o.commandId).has_value());
    }
    REQUIRE(pending == registry->pendingCount());
    REQUIRE(registry->pendingIds().size() == pending);
    for (const auto &[sequence, times] : finishedTimes)
        REQUIRE(times == 1);
    const RegistryCounters c = registry->counters();
    const quint64 finishes = c.acked + c.rejected + c.expired + c.cancelled + c.disconnected +
                             c.notConnected + c.failedOther;
    REQUIRE(finishes == finishedTimes.size());
    REQUIRE(c.registered == finishes + quint64(pending));
    REQUIRE(finished <= finishes);
    const RegistrySizes sizes = registry->sizes();
    REQUIRE(sizes.entries == records.size());

    // The bot as ListBots and Watch show it.
    v1::BotRecord record;
    convert::fillBot(record, bot, registry->pendingCount(botId));
    requireRoundTrip(record);
    REQUIRE(wire::checkId(record.bot_id(), "bot_id").empty());
    REQUIRE(wire::checkLabel(record.bot_version(), "bot_version", wire::limits::ShortTextBytes)
                .empty());
    REQUIRE(wire::checkLabels(record.labels(), "labels").empty());
    REQUIRE(wire::checkLabels(record.status(), "status").empty());
    requireTimestamp(record.connected_at());
    requireTimestamp(record.last_seen());
}

// The hub's answers to a Hello: a Welcome or a Reject whose reason is the check's sentence.
void checkHelloAnswer(const std::string &problem)
{
    v1::HubMessage answer;
    if (problem.empty()) {
        answer.mutable_welcome()->set_session_id("1");
        *answer.mutable_welcome()->mutable_heartbeat_interval() = wire::durationFromMs(5000);
        answer.mutable_welcome()->set_protocol_version(wire::limits::ProtocolVersion);
    } else {
        answer.mutable_reject()->set_reason(problem);
    }
    requireRoundTrip(answer); // the bot can read it (a string field must be valid UTF-8)
}

class Frames
{
public:
    Frames(const uint8_t *data, size_t size) : m_p(data), m_n(size) {}

    struct Frame
    {
        bool hub = false;
        unsigned action = 0, arg = 0;
        const uint8_t *bytes = nullptr;
        size_t size = 0;
    };

    bool next(Frame &f)
    {
        if (m_n < 2)
            return false;
        const unsigned h = unsigned(m_p[0]) | unsigned(m_p[1]) << 8;
        m_p += 2;
        m_n -= 2;
        f = {};
        if (h >= 0xF000) {
            f.hub = true;
            f.action = (h >> 8) & 0xF;
            f.arg = h & 0xFF;
            return true;
        }
        f.bytes = m_p;
        f.size = std::min<size_t>(h, m_n);
        m_p += f.size;
        m_n -= f.size;
        return true;
    }

private:
    const uint8_t *m_p;
    size_t m_n;
};

} // namespace

OPCONSOLE_FUZZER_INITIALIZE("fuzz_botmessages")

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Frames frames(data, size);
    Frames::Frame f;
    if (!frames.next(f) || f.hub)
        return 0;
    v1::BotMessage first;
    if (!first.ParseFromArray(f.bytes, int(f.size)))
        return 0; // the stream breaks before Hello: nothing was published
    const std::string problem = first.kind_case() == v1::BotMessage::kHello
                                    ? wire::checkHello(first.hello())
                                    : std::string("the first message must be Hello");
    checkHelloAnswer(problem);
    if (!problem.empty())
        return 0; // refused: BotSession::handleHello

    Session session(first.hello());
    QString endReason = QStringLiteral("stream closed by the bot");
    while (frames.next(f)) {
        if (f.hub) {
            session.hubEvent(f.action, f.arg);
            continue;
        }
        v1::BotMessage m;
        if (!m.ParseFromArray(f.bytes, int(f.size))) {
            endReason = QStringLiteral("stream broken: a message did not parse");
            break;
        }
        session.message(m);
    }
    session.checkAll();
    session.streamEnded(endReason);
    session.checkAll();
    return 0;
}
