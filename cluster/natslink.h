#pragma once

#include "clusteroptions.h"

#include <QString>

#include <nats/nats.h>

#include <atomic>
#include <memory>

namespace opconsole::cluster {

// One connection to NATS, made from ClusterOptions (servers, credentials, TLS); it reconnects
// by itself for ever. Shared by whatever publishes on it (a continuation that answers after
// its node stopped still holds a valid, closed, connection).
class NatsLink
{
public:
    // Null with *error when the connection cannot be made.
    static std::shared_ptr<NatsLink> connect(const ClusterOptions &options, QString *error);
    ~NatsLink();
    NatsLink(const NatsLink &) = delete;
    NatsLink &operator=(const NatsLink &) = delete;

    natsConnection *connection() const { return m_nc; }
    // How often the connection came back after losing its server (NATS's reconnected event).
    quint64 reconnects() const { return m_reconnects.load(); }
    // Publishes; false when the connection is closed or the message cannot be buffered.
    bool publish(const QByteArray &subject, const std::string &data,
                 const QByteArray &reply = {}) const;
    void close();

private:
    NatsLink() = default;
    natsConnection *m_nc = nullptr;
    std::atomic<quint64> m_reconnects{0};
};

// A NATS status as one line, with the library's last error when it says more.
QString natsProblem(natsStatus status);

} // namespace opconsole::cluster
