#pragma once
// A command record as the change feed gives the views, for the table and panel tests:
// cmd-<seq> to `bot`, a ping registered now with a 30 s deadline, finished 12 ms later when
// its state is final. Each call takes the next change number.
#include "commandoutcome.h"

#include <QString>

#include <chrono>

inline opconsole::CommandOutcome
testRecord(quint64 seq, const QString &bot,
           opconsole::CommandState state = opconsole::CommandState::Pending,
           const QString &fanOut = {})
{
    using namespace std::chrono_literals;
    static quint64 changes = 0;
    opconsole::CommandOutcome o;
    o.commandId = QStringLiteral("cmd-%1").arg(seq);
    o.botId = bot;
    o.kind = QStringLiteral("ping");
    o.sequence = seq;
    o.change = ++changes;
    o.state = state;
    o.fanOut = fanOut;
    o.registeredAt = opconsole::Clock::now();
    o.deadline = o.registeredAt + 30s;
    o.registeredWallMs = 1'700'000'000'000;
    if (!opconsole::isFinal(state))
        return o;
    o.finishedAt = o.registeredAt + 12ms;
    return o;
}
