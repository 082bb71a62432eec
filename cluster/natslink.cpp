#include "natslink.h"

#include <vector>

namespace opconsole::cluster {

QString natsProblem(natsStatus status)
{
    QString text = QString::fromUtf8(natsStatus_GetText(status));
    natsStatus last = NATS_OK;
    if (const char *detail = nats_GetLastError(&last); detail && *detail && last == status)
        text += QStringLiteral(": ") + QString::fromUtf8(detail);
    return text;
}

std::shared_ptr<NatsLink> NatsLink::connect(const ClusterOptions &o, QString *error)
{
    std::shared_ptr<NatsLink> link(new NatsLink);
    natsOptions *opts = nullptr;
    natsStatus s = natsOptions_Create(&opts);
    std::vector<QByteArray> urls;
    for (const QString &server : o.servers)
        urls.push_back(server.toUtf8());
    std::vector<const char *> pointers;
    for (const QByteArray &u : urls)
        pointers.push_back(u.constData());
    const QByteArray name = "opconsole hub " + o.hubId.toUtf8();
    const auto step = [&](natsStatus next, const char *what) {
        if (s == NATS_OK && next != NATS_OK && error)
            *error = QStringLiteral("NATS %1: %2").arg(QLatin1String(what), natsProblem(next));
        if (s == NATS_OK)
            s = next;
    };
    if (s == NATS_OK) {
        step(natsOptions_SetServers(opts, pointers.data(), int(pointers.size())), "servers");
        step(natsOptions_SetName(opts, name.constData()), "name");
        // Never give up on the cluster: a hub keeps its own bots whatever NATS does.
        step(natsOptions_SetMaxReconnect(opts, -1), "reconnect");
        step(natsOptions_SetReconnectWait(opts, 250), "reconnect wait");
        step(natsOptions_SetTimeout(opts, 5000), "timeout");
        step(natsOptions_SetReconnectedCB(
                 opts,
                 [](natsConnection *, void *closure) {
                     ++static_cast<NatsLink *>(closure)->m_reconnects;
                 },
                 link.get()),
             "reconnected");
        // Every subscription's messages on one pool thread, not one thread per bot.
        step(natsOptions_UseGlobalMessageDelivery(opts, true), "delivery");
        // Two of them: a hub's own forwards' answers and the commands it holds for others do
        // not wait behind each other.
        step(nats_SetMessageDeliveryPoolSize(2), "delivery threads");
        // Published at once from the publishing thread. The library's flusher thread sleeps
        // a millisecond before each flush (for throughput): two of those are in every
        // forwarded command's round trip (2.0 ms at one caller). ClusterNode's sender batches
        // what it publishes itself.
        step(natsOptions_SetSendAsap(opts, true), "send asap");
        if (!o.token.isEmpty())
            step(natsOptions_SetToken(opts, o.token.toUtf8().constData()), "token");
        if (!o.user.isEmpty())
            step(natsOptions_SetUserInfo(opts, o.user.toUtf8().constData(),
                                         o.password.toUtf8().constData()),
                 "user");
        if (o.tls()) {
            step(natsOptions_SetSecure(opts, true), "TLS");
            if (!o.tlsCa.isEmpty())
                step(natsOptions_LoadCATrustedCertificates(opts, o.tlsCa.toUtf8().constData()),
                     "TLS CA");
            if (!o.tlsCert.isEmpty() || !o.tlsKey.isEmpty())
                step(natsOptions_LoadCertificatesChain(opts, o.tlsCert.toUtf8().constData(),
                                                       o.tlsKey.toUtf8().constData()),
                     "TLS certificate");
        }
    }
    if (s == NATS_OK) {
        s = natsConnection_Connect(&link->m_nc, opts);
        if (s != NATS_OK && error)
            *error = QStringLiteral("cannot reach NATS at %1: %2")
                         .arg(o.servers.join(QLatin1Char(',')), natsProblem(s));
    }
    natsOptions_Destroy(opts);
    if (s != NATS_OK)
        return nullptr;
    return link;
}

bool NatsLink::publish(const QByteArray &subject, const std::string &data,
                       const QByteArray &reply) const
{
    if (!m_nc)
        return false;
    const natsStatus s =
        reply.isEmpty()
            ? natsConnection_Publish(m_nc, subject.constData(), data.data(), int(data.size()))
            : natsConnection_PublishRequest(m_nc, subject.constData(), reply.constData(),
                                            data.data(), int(data.size()));
    return s == NATS_OK;
}

void NatsLink::close()
{
    if (m_nc)
        natsConnection_Close(m_nc);
}

NatsLink::~NatsLink()
{
    if (m_nc) {
        natsConnection_Close(m_nc);
        natsConnection_Destroy(m_nc);
    }
}

} // namespace opconsole::cluster
