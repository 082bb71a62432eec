#pragma once

#include "botinfo.h"
#include "commandspec.h"

#include <QList>
#include <QMap>
#include <QString>

#include <chrono>
#include <optional>

namespace opconsole {

// The rest of a cluster, as the hub's sending side sees it (implemented by cluster/): bots
// held by other hubs, and a way to hand them a command. Every method may be called from any
// thread.
class CommandForwarder
{
public:
    virtual ~CommandForwarder() = default;

    struct Command
    {
        QString commandId; // registered and pending in this hub's registry
        QString botId;
        CommandSpec spec;
        std::chrono::milliseconds timeout{};
        QString fanOut;
        QString issuer;
        QString params;
        QMap<QString, QString> scope; // the operator's scope, checked again by the holder
    };
    // Takes a pending command for a bot this hub does not hold: it ends with the holder's
    // outcome, or NotConnected (no hub holds the bot), or Disconnected (the holder went away).
    // False: not taken (the caller fails it as it would without a cluster).
    virtual bool forward(const Command &command) = 0;
    // Tells the holder of a forwarded command to cancel it (the waiter was released already).
    virtual void cancel(const QString &botId, const QString &commandId, const QString &reason) = 0;
    // Bots other hubs hold, as the fleet directory has them (BotInfo::holder names the hub);
    // never this hub's own.
    virtual std::optional<BotInfo> remoteBot(const QString &botId) const = 0;
    virtual QList<BotInfo> remoteBots() const = 0;
    // This hub's id in the cluster.
    virtual QString hubId() const = 0;
};

} // namespace opconsole
