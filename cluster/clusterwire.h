#pragma once
// The validation layer of the cluster's messages (cluster.proto): what a hub takes from NATS
// is checked here, in one place, before it is used (and fuzzed: fuzz/fuzz_cluster.cpp).

#include "commandoutcome.h"
#include "opconsole/v1/cluster.pb.h"
#include "operatorrequest.h"

#include <QMap>
#include <QString>

#include <chrono>
#include <optional>

namespace opconsole::cluster::checks {

// A forwarded command, checked and converted for the holder's CommandService.
struct Forwarded
{
    QString commandId;
    QString issuingHub;
    api::CommandRequest request; // spec, timeout; options carry issuer, fan-out, params, scope
};

// Why the holder refuses a forwarded command for `botId` (its subject's bot); empty when fine,
// *out filled then. Whether it can be answered at all: answerable() (a hub id and its run to
// answer to); one that cannot is never run (nobody would learn its outcome).
QString checkForwarded(const v1::ForwardedCommand &fc, const QString &botId,
                       std::chrono::milliseconds maxTimeout, Forwarded *out);
bool answerable(const v1::ForwardedCommand &fc);

// A holder's final record, checked: std::nullopt (and *problem) when it breaks a rule or is not
// final. Which command it answers (seq, id, bot) the issuer matches itself.
std::optional<CommandOutcome> checkAnswer(const v1::ForwardReply &reply, QString *problem);

// A beacon and shared acks: empty when fine.
QString checkBeacon(const v1::HubBeacon &beacon);
QString checkResentAcks(const v1::ResentAcks &acks);
QString checkAdmission(const v1::AdmissionShared &decision);

} // namespace opconsole::cluster::checks
