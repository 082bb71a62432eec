#pragma once

#include <QMap>
#include <QMetaType>
#include <QString>

namespace opconsole {

// Whether commands may reach a bot (docs/security.md, "Admission").
enum class BotAdmission : quint8
{
    Accepted, // admitted (by its credential, an admin, or an open hub)
    Awaiting, // connected with a valid credential, held until an admin decides; no commands
    Rejected, // refused whenever it connects
};

// What the hub knows of one bot, for views and the Operator API. Every bot that connected
// during this run is kept, connected or not.
struct BotInfo
{
    QString botId;
    quint64 session = 0; // current or last session
    bool connected = false;
    QString state; // "running", "paused", "stopped" as last reported; empty when unknown
    QString botVersion;
    QMap<QString, QString> labels;
    QMap<QString, QString> status; // free-form fields of the last StatusReport
    qint64 connectedAtMs = 0;      // wall clock, ms since the epoch
    qint64 disconnectedAtMs = 0;   // 0 while connected
    qint64 lastSeenMs = 0;         // last message of any kind
    QString disconnectReason;
    int connects = 0; // how many sessions this run
    QString hub;      // the hub that reported it, for a console attached to several; else empty
    // In a cluster (docs/cluster.md): the id of the hub that holds it, as the Operator API says
    // (BotRecord.hub); a console's Hub column shows it. Empty outside a cluster.
    QString holder;
    BotAdmission admission = BotAdmission::Accepted;
    QString credential; // what it connected with: "cert:<sha-256 prefix>", "token:<name>", "none"

    bool matches(const QMap<QString, QString> &selector) const
    {
        for (auto it = selector.cbegin(); it != selector.cend(); ++it) {
            if (labels.value(it.key()) != it.value())
                return false;
        }
        return true;
    }
};

} // namespace opconsole

Q_DECLARE_METATYPE(opconsole::BotInfo)
