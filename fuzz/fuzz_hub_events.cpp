// libFuzzer target: what a console receives from a hub it attaches to (docs/fuzzing.md).
//
// Input: frames of a 2-byte little-endian length and a WatchEvent, as a hostile or broken hub
// could send them on Watch. Each event goes through the console's receiving path: a command
// record through convert::toOutcome (wire::checkRecord first), a bot through convert::toBotInfo,
// and every accepted record into a FanOutTracker, as RemoteBackend and the fan-out list apply
// them. Invariants: nothing accepted breaks a rule (valid ids, known state, progress -1..100,
// times that keep steady_clock arithmetic far from overflow, latency and lateness not
// negative); an accepted record written back (convert::fillRecord) is accepted again with the
// same fields; a record's params read back as a command (CommandSpec::fromRecord, what the
// console's details, Copy as opctl and resend use) only when it validates and writes them again
// byte for byte; every tally's counts are never negative and add up to its total.
#include "commandspec.h"
#include "fanouts.h"
#include "fuzzsupport.h"
#include "protoconvert.h"
#include "wirecheck.h"

#include <google/protobuf/stubs/logging.h>

#include <QCoreApplication>

#include <chrono>
#include <cstdint>
#include <map>

using namespace opconsole;
using namespace std::chrono;

namespace {

void checkTally(const FanOutSummary &s)
{
    for (int n : {s.pending, s.acked, s.rejected, s.expired, s.notConnected, s.disconnected,
                  s.cancelled, s.refused, s.unknown, s.lateAcks})
        REQUIRE(n >= 0);
    REQUIRE(s.pending + s.acked + s.rejected + s.expired + s.notConnected + s.disconnected +
                s.cancelled + s.refused + s.unknown ==
            s.total);
    REQUIRE(s.lateAcks <= s.total);
    REQUIRE(!s.text().isEmpty());
}

void checkAccepted(const CommandOutcome &o)
{
    REQUIRE(wire::checkId(convert::toStd(o.commandId), "id").empty());
    REQUIRE(wire::checkId(convert::toStd(o.botId), "bot").empty());
    REQUIRE(o.fanOut.isEmpty() || wire::checkId(convert::toStd(o.fanOut), "fan-out").empty());
    REQUIRE(o.progressPercent >= -1 && o.progressPercent <= 100);
    // Every time point within about a century of now: differences never overflow.
    const auto now = Clock::now();
    constexpr auto Century = hours(24 * 366 * 101);
    for (const Clock::time_point t : {o.registeredAt, o.deadline})
        REQUIRE(t > now - Century && t < now + Century);
    if (o.wasSent())
        REQUIRE(o.sentAt > now - Century && o.sentAt < now + Century);
    REQUIRE(o.latency() >= nanoseconds::zero());
    REQUIRE(o.lateBy() >= nanoseconds::zero());
    (void)o.wallMs(o.deadline);
    (void)o.answeredIn();
    REQUIRE(!o.finished() || o.state != CommandState::Pending);
}

} // namespace

OPCONSOLE_FUZZER_INITIALIZE("fuzz_hub_events")

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FanOutTracker tracker(4);
    std::map<QString, quint64> newest; // per command, the newest change applied
    size_t at = 0;
    while (at + 2 <= size) {
        const size_t length = size_t(data[at]) | size_t(data[at + 1]) << 8;
        at += 2;
        if (length > size - at)
            break;
        v1::WatchEvent event;
        const bool parsed = event.ParseFromArray(data + at, int(length));
        at += length;
        if (!parsed)
            break; // the stream breaks: the console reconnects
        if (event.has_bot()) {
            int pending = -1;
            QString problem;
            if (const auto bot = convert::toBotInfo(event.bot(), &pending, &problem)) {
                REQUIRE(problem.isEmpty());
                REQUIRE(wire::checkId(convert::toStd(bot->botId), "bot").empty());
                REQUIRE(pending >= 0 && bot->connects >= 0);
            } else {
                REQUIRE(!problem.isEmpty());
            }
            continue;
        }
        if (!event.has_command())
            continue;
        QString problem;
        const auto record = convert::toOutcome(event.command(), &problem);
        if (!record) {
            REQUIRE(!problem.isEmpty());
            continue;
        }
        checkAccepted(*record);
        // What the console reads back as the command (details, Copy as opctl, resend): only
        // a spec that validates and writes the record's params again, byte for byte.
        if (const auto spec = CommandSpec::fromRecord(record->kind, record->params)) {
            REQUIRE(spec->validate().isEmpty());
            REQUIRE(spec->paramsJson() == record->params);
        }
        // Written back the way a hub writes it, it is accepted again, unchanged where it counts.
        v1::CommandRecord again;
        convert::fillRecord(again, *record);
        const auto back = convert::toOutcome(again, &problem);
        REQUIRE(back.has_value());
        REQUIRE(back->commandId == record->commandId && back->botId == record->botId);
        REQUIRE(back->state == record->state && back->fanOut == record->fanOut);
        REQUIRE(back->change == record->change && back->hasLateAck() == record->hasLateAck());
        REQUIRE(back->progressPercent == record->progressPercent);
        // The console applies a change once, newest wins (RemoteBackend::applyCommand).
        quint64 &seen = newest[record->commandId];
        if (record->change != 0 && record->change <= seen)
            continue;
        seen = record->change;
        const QString fan = tracker.apply(*record);
        REQUIRE(fan.isEmpty() || fan == record->fanOut);
        for (const QString &id : tracker.ids())
            checkTally(*tracker.find(id));
        REQUIRE(tracker.size() <= 4);
    }
    return 0;
}
