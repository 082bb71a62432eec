// libFuzzer target: what a hub takes from NATS in a cluster (docs/cluster.md, docs/fuzzing.md).
//
// Input: the first byte picks the message (byte % 6: ForwardedBatch on a bot's command
// subject, ForwardReplies on a hub's answer subject, HubBeacon, ResentAcks, a directory entry
// (BotRecord), AdmissionShared); the rest is parsed as that message and checked the way cluster/
// does it (cluster/clusterwire.h, wire::checkBotRecord + convert::toBotInfo). Invariants: a
// forwarded command that passes names a valid id and the subject's bot, with a positive timeout
// within the cap, and its spec converts back to a command that passes the bot-side check; an answer
// that passes is final and converts to the same id and bot it carries; a directory entry that
// passes converts with its own id. The raw payload also goes through the subject-token decoder,
// which must give back only ids that encode to that token again.
#include "botinfo.h"
#include "clusteroptions.h"
#include "clusterwire.h"
#include "commandregistry.h"
#include "fuzzsupport.h"
#include "protoconvert.h"
#include "subjects.h"
#include "wirecheck.h"

#include <chrono>
#include <cstdint>
#include <string>

using namespace opconsole;
using namespace std::chrono;

OPCONSOLE_FUZZER_INITIALIZE("fuzz_cluster")

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const auto *payload = reinterpret_cast<const char *>(data + 1);
    const int len = int(size - 1);
    const QString botId = QStringLiteral("bot-1");
    const milliseconds maxTimeout = CommandRegistry::DefaultMaxTimeout;

    // Subject tokens: whatever decodes must encode to the same token.
    const QByteArray token(payload, len);
    if (const QString id = cluster::subjects::idOf(token); !id.isEmpty())
        REQUIRE(cluster::subjects::token(id) == token);

    switch (data[0] % 6) {
    case 0: {
        v1::ForwardedBatch batch;
        if (!batch.ParseFromArray(payload, len))
            return 0;
        for (const v1::ForwardedCommand &fc : batch.commands()) {
            cluster::checks::Forwarded out;
            if (!cluster::checks::checkForwarded(fc, botId, maxTimeout, &out).isEmpty())
                continue;
            REQUIRE(cluster::checks::answerable(fc));
            REQUIRE(wire::checkId(convert::toStd(out.commandId), "id").empty());
            REQUIRE(fc.request().bot_id() == "bot-1");
            REQUIRE(out.request.timeout > 0ms && out.request.timeout <= maxTimeout);
            REQUIRE(out.request.options.forwarded);
            REQUIRE(out.request.spec.validate().isEmpty());
            v1::Command again;
            convert::fillCommand(again, out.commandId, out.request.spec, out.request.timeout);
            REQUIRE(wire::checkCommandAction(again).empty());
            // The subject the answer goes to is a valid one.
            REQUIRE(!cluster::subjects::answerSubject(out.issuingHub, fc.issuing_incarnation())
                         .contains(' '));
        }
        return 0;
    }
    case 1: {
        v1::ForwardReplies replies;
        if (!replies.ParseFromArray(payload, len))
            return 0;
        for (const v1::ForwardReply &r : replies.replies()) {
            QString problem;
            const std::optional<CommandOutcome> o = cluster::checks::checkAnswer(r, &problem);
            if (!o) {
                REQUIRE(!problem.isEmpty());
                continue;
            }
            REQUIRE(o->finished());
            REQUIRE(o->answered() == o->ack.has_value());
            REQUIRE(o->commandId == convert::fromStd(r.record().command_id()));
            REQUIRE(o->botId == convert::fromStd(r.record().bot_id()));
        }
        return 0;
    }
    case 2: {
        v1::HubBeacon beacon;
        if (beacon.ParseFromArray(payload, len) && cluster::checks::checkBeacon(beacon).isEmpty())
            REQUIRE(cluster::checkHubId(convert::fromStd(beacon.hub())).isEmpty());
        return 0;
    }
    case 3: {
        v1::ResentAcks acks;
        if (!acks.ParseFromArray(payload, len) || !cluster::checks::checkResentAcks(acks).isEmpty())
            return 0;
        REQUIRE(acks.acks_size() <= wire::limits::MaxResentAcks);
        for (const v1::CommandAck &ack : acks.acks()) {
            const wire::AckCheck checked = wire::checkAck(ack);
            if (checked.problem.empty())
                (void)convert::toAckData(ack, checked);
        }
        return 0;
    }
    case 5: {
        v1::AdmissionShared decision;
        if (decision.ParseFromArray(payload, len) &&
            cluster::checks::checkAdmission(decision).isEmpty())
            REQUIRE(wire::checkId(decision.bot_id(), "bot_id").empty());
        return 0;
    }
    default: {
        v1::BotRecord record;
        if (!record.ParseFromArray(payload, len) || !wire::checkBotRecord(record).empty())
            return 0;
        int pending = 0;
        QString problem;
        const std::optional<BotInfo> bot = convert::toBotInfo(record, &pending, &problem);
        if (bot)
            REQUIRE(bot->botId == convert::fromStd(record.bot_id()));
        return 0;
    }
    }
}
