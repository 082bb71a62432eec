#pragma once

#include <QString>
#include <QStringList>

#include <algorithm>

#include <chrono>

namespace opconsole::cluster {

// How a hub joins a cluster (docs/cluster.md): --cluster, --hub-id and the NATS credentials.
struct ClusterOptions
{
    QStringList servers; // nats://host:port (tls://host:port for TLS), tried in order
    QString hubId;       // unique in the cluster: 1..64 of [A-Za-z0-9_-] (checkHubId)
    // NATS credentials: a token, or a user and password (nats-server's authorization block).
    QString token;
    QString user;
    QString password;
    // TLS to nats-server: trust this CA (PEM); with a client certificate and key when the
    // server verifies clients. Setting any of them, or a tls:// URL, turns TLS on.
    QString tlsCa;
    QString tlsCert;
    QString tlsKey;
    // The directory: entries live this long unless their hub refreshes them (a third of it).
    std::chrono::milliseconds directoryTtl{30'000};
    // A hub says it is alive this often; one silent for deadAfter is gone.
    std::chrono::milliseconds beaconInterval{250};
    std::chrono::milliseconds deadAfter{1'000};
    // A forwarded command that no hub answers for within this is Disconnected: the holder
    // says "taken" at its next beacon tick for a command still pending (one that ends
    // sooner is answered by its outcome).
    std::chrono::milliseconds takeTimeout{1'500};
    // The issuing hub's deadline for a forwarded command: the holder's, plus this (the
    // holder's outcome, Expired included, normally arrives first).
    std::chrono::milliseconds forwardGrace{1'000};

    bool tls() const
    {
        return !tlsCa.isEmpty() || !tlsCert.isEmpty() ||
               std::any_of(servers.cbegin(), servers.cend(),
                           [](const QString &s) { return s.startsWith(QLatin1String("tls://")); });
    }
};

// Why a hub id cannot be used (empty when fine).
QString checkHubId(const QString &id);

} // namespace opconsole::cluster
