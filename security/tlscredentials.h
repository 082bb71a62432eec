#pragma once
// TLS for every listener and client, with gRPC's own SSL credentials; the files are checked
// here (readable, PEM, the key matches the certificate) so a mistake is one clear line at
// start, not a handshake failure later.

#include <QString>
#include <QStringList>

#include <memory>
#include <string>

namespace grpc {
class AuthContext;
class ChannelArguments;
class ChannelCredentials;
class ServerCredentials;
} // namespace grpc

namespace opconsole::security {

struct ServerTls
{
    QString cert;     // PEM certificate chain of the listener
    QString key;      // its private key
    QString clientCa; // verify client certificates against this CA (when a client sends one)
    bool enabled() const { return !cert.isEmpty() || !key.isEmpty(); }
};

// Insecure credentials when `tls` is not enabled; nullptr with *error when a file is missing,
// unreadable, not PEM, or the key does not match the certificate.
std::shared_ptr<grpc::ServerCredentials> serverCredentials(const ServerTls &tls, QString *error);

struct ClientTls
{
    QString ca;         // trust this CA (empty with TLS on: the system's roots)
    QString cert, key;  // a client certificate, for mTLS
    QString serverName; // expect this name in the server's certificate (default: the host)
    bool on = false;    // TLS even when nothing else is given: the system's roots
    bool enabled() const
    {
        return on || !ca.isEmpty() || !cert.isEmpty() || !key.isEmpty() || !serverName.isEmpty();
    }
};

std::shared_ptr<grpc::ChannelCredentials> channelCredentials(const ClientTls &tls, QString *error);
// The channel argument serverName needs; nothing otherwise.
void applyChannelArguments(const ClientTls &tls, grpc::ChannelArguments &args);

// The client certificate of a call, when the peer sent one that verified.
struct PeerCertificate
{
    bool present = false;
    QStringList names;   // its subject alternative names, or its common name when it has none
    QString fingerprint; // SHA-256 of the DER, hex
};
PeerCertificate peerCertificate(const grpc::AuthContext &context);

// What gRPC says of a channel that could not connect, without what a one-line message says
// already: "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:50052:
// Socket closed" -> "Socket closed" (a plaintext client of a TLS hub), or the handshake error.
std::string connectionError(std::string why);

// Why a token must not go to `target` over this channel: plaintext to an address that is not
// loopback or a Unix socket (anyone on the path would read it). Empty when it may.
QString plaintextTokenProblem(const ClientTls &tls, const QString &target);

// Whether a listen address reaches only this machine: 127.0.0.0/8, ::1, localhost, unix:.
bool isLoopbackListen(const QString &address);

} // namespace opconsole::security
