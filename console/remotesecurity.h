#pragma once
// How a console reaches hubs that ask for credentials (docs/security.md): TLS with the hub's CA
// (and a client certificate for mTLS) on every channel, and an operator token sent on every
// call as the metadata "authorization: Bearer <token>" (call credentials would be dropped by
// gRPC on a plaintext channel, e.g. to a hub on loopback).

#include "tlscredentials.h"

#include <QByteArray>
#include <QString>

namespace opconsole {

struct RemoteSecurity
{
    security::ClientTls tls; // not enabled(): plaintext (a hub that listens on loopback only)
    QByteArray token;        // the operator token (security::readTokenFile); empty: none sent

    // Why these settings cannot make a channel (a TLS file unreadable, not PEM, a key that does
    // not match its certificate, a token with characters a header cannot carry); empty when
    // they can. A console given such settings stays unattached with this as its problem.
    QString problem() const;
};

} // namespace opconsole
