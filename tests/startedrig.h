#pragma once
// What the hub tests with hand-driven bots share: a started HubRig, a bounded wait for a
// future, and "the bot still works" as one ping round trip.
#include "hubrig.h"
#include "rawbot.h"

#include <QTest>

// Bounded wait for a future, processing events meanwhile.
inline bool finishes(const QFuture<opconsole::CommandOutcome> &future, int ms = 5000)
{
    return QTest::qWaitFor([&] { return future.isFinished(); }, ms);
}

struct StartedRig : HubRig
{
    explicit StartedRig(opconsole::HubOptions options = {}) : HubRig(std::move(options))
    {
        start();
    }
};

// The bot is connected, a ping goes down its stream and its ack comes back.
inline bool pingRoundTrips(HubRig &rig, RawBot &bot, const QString &botId)
{
    using namespace std::chrono_literals;
    if (!rig.hub->isConnected(botId))
        return false;
    auto ping =
        rig.service->send(botId, opconsole::CommandSpec::of(opconsole::CommandKind::Ping), 5s);
    const auto command = bot.readCommand();
    if (!command)
        return false;
    bot.ack(command->command_id());
    return finishes(ping) && ping.result().state == opconsole::CommandState::Acked;
}
