#pragma once
// The questions the window asks before acting on many bots at once: a destructive fan-out
// (stop, restart, config) past a threshold, and rejecting or revoking bots. Each names what
// will happen, to how many and which; Cancel is the default.

#include "botinfo.h"
#include "commandspec.h"
#include "consolebackend.h"

#include <QSet>
#include <QStringList>

#include <optional>

class QWidget;

namespace opconsole {

// Stop, restart and config updates change what a bot does; the others do not (ping, pause
// and resume are undone as easily as they are done; a custom command is the bot's own).
bool isDestructive(CommandKind kind);

// How many bots a destructive command may reach without asking: QSettings "send/confirmAbove"
// (default 10; 0 asks every time).
int confirmAbove();
void setConfirmAbove(int bots);

// The waves the fan-out dialog offers first: QSettings "send/rollout*" (default waves of 10%,
// stopped above 5% failed, 10 s between waves), the last ones chosen.
RolloutPlan rolloutDefaults();
void setRolloutDefaults(const RolloutPlan &plan);

// What the operator chose for a fan-out.
struct FanOutDecision
{
    enum class Go : quint8
    {
        Cancel,
        AtOnce,  // to every bot at once (also when nothing was asked)
        InWaves, // a staged rollout, as `rollout` says
    };
    Go go = Go::Cancel;
    RolloutPlan rollout;
};

// Asks before `spec` goes to `bots` when it is destructive and they are more than
// confirmAbove(); `selector` says how they were chosen (the fleet filter), may be empty.
// With `offerWaves` the dialog also offers "Roll out in waves" (batch, abort above, delay).
FanOutDecision confirmFanOut(QWidget *parent, const CommandSpec &spec, const QStringList &bots,
                             const QString &selector, bool offerWaves);
// The same for commands of several kinds (a resend of selected rows); counts distinct bots.
bool confirmFanOut(QWidget *parent, const QSet<CommandKind> &kinds, const QStringList &bots,
                   const QString &selector);

// Reject or Revoke: the bots, what follows, and an optional reason; none when cancelled.
std::optional<QString> confirmDecision(QWidget *parent, BotDecision decision,
                                       const QList<BotInfo> &bots);

} // namespace opconsole
