#include "tlscredentials.h"

#include <QFile>

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <arpa/inet.h>

#include <cstring>

namespace opconsole::security {

namespace {

constexpr qint64 MaxPemBytes = 1024 * 1024;

bool readPem(const QString &path, const char *what, std::string *out, QString *error)
{
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly)) {
        *error = QStringLiteral("%1 %2: %3").arg(QLatin1String(what), path, file.errorString());
        return false;
    }
    const QByteArray text = file.read(MaxPemBytes + 1);
    if (text.size() > MaxPemBytes || !text.contains("-----BEGIN ")) {
        *error = QStringLiteral("%1 %2: not a PEM file").arg(QLatin1String(what), path);
        return false;
    }
    *out = text.toStdString();
    return true;
}

struct BioFree
{
    void operator()(BIO *b) const { BIO_free(b); }
};
struct X509Free
{
    void operator()(X509 *x) const { X509_free(x); }
};
struct KeyFree
{
    void operator()(EVP_PKEY *k) const { EVP_PKEY_free(k); }
};

std::unique_ptr<X509, X509Free> parseCert(const std::string &pem)
{
    std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), int(pem.size())));
    return std::unique_ptr<X509, X509Free>(
        bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
}

// The certificate and key parse, and belong together.
bool checkPair(const std::string &certPem, const std::string &keyPem, const QString &certPath,
               const QString &keyPath, QString *error)
{
    const auto cert = parseCert(certPem);
    if (!cert) {
        *error = QStringLiteral("certificate %1: no certificate in it").arg(certPath);
        return false;
    }
    std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(keyPem.data(), int(keyPem.size())));
    std::unique_ptr<EVP_PKEY, KeyFree> key(
        bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!key) {
        *error = QStringLiteral("key %1: no private key in it (or it is encrypted)").arg(keyPath);
        return false;
    }
    if (X509_check_private_key(cert.get(), key.get()) != 1) {
        *error = QStringLiteral("key %1 does not belong to certificate %2").arg(keyPath, certPath);
        return false;
    }
    return true;
}

} // namespace

std::shared_ptr<grpc::ServerCredentials> serverCredentials(const ServerTls &tls, QString *error)
{
    if (!tls.enabled()) {
        if (!tls.clientCa.isEmpty()) {
            *error = QStringLiteral("--tls-client-ca needs --tls-cert and --tls-key");
            return nullptr;
        }
        return grpc::InsecureServerCredentials();
    }
    if (tls.cert.isEmpty() || tls.key.isEmpty()) {
        *error = QStringLiteral("TLS needs both --tls-cert and --tls-key");
        return nullptr;
    }
    grpc::SslServerCredentialsOptions options(
        tls.clientCa.isEmpty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                               // A certificate, when sent, must verify; bots with tokens send none.
                               : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    if (!readPem(tls.cert, "certificate", &pair.cert_chain, error) ||
        !readPem(tls.key, "key", &pair.private_key, error) ||
        !checkPair(pair.cert_chain, pair.private_key, tls.cert, tls.key, error))
        return nullptr;
    if (!tls.clientCa.isEmpty()) {
        if (!readPem(tls.clientCa, "client CA", &options.pem_root_certs, error))
            return nullptr;
        if (!parseCert(options.pem_root_certs)) {
            *error = QStringLiteral("client CA %1: no certificate in it").arg(tls.clientCa);
            return nullptr;
        }
    }
    options.pem_key_cert_pairs.push_back(std::move(pair));
    return grpc::SslServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> channelCredentials(const ClientTls &tls, QString *error)
{
    if (!tls.enabled())
        return grpc::InsecureChannelCredentials();
    grpc::SslCredentialsOptions options;
    if (!tls.ca.isEmpty() && !readPem(tls.ca, "CA", &options.pem_root_certs, error))
        return nullptr;
    if (!tls.cert.isEmpty() || !tls.key.isEmpty()) {
        if (tls.cert.isEmpty() || tls.key.isEmpty()) {
            *error = QStringLiteral("a client certificate needs both --tls-cert and --tls-key");
            return nullptr;
        }
        if (!readPem(tls.cert, "certificate", &options.pem_cert_chain, error) ||
            !readPem(tls.key, "key", &options.pem_private_key, error) ||
            !checkPair(options.pem_cert_chain, options.pem_private_key, tls.cert, tls.key, error))
            return nullptr;
    }
    return grpc::SslCredentials(options);
}

void applyChannelArguments(const ClientTls &tls, grpc::ChannelArguments &args)
{
    if (!tls.serverName.isEmpty())
        args.SetSslTargetNameOverride(tls.serverName.toStdString());
}

PeerCertificate peerCertificate(const grpc::AuthContext &context)
{
    PeerCertificate peer;
    if (!context.IsPeerAuthenticated())
        return peer;
    const auto pems = context.FindPropertyValues("x509_pem_cert");
    if (pems.empty())
        return peer;
    const std::string pem(pems.front().data(), pems.front().size());
    const auto cert = parseCert(pem);
    if (!cert)
        return peer;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (X509_digest(cert.get(), EVP_sha256(), digest, &length) != 1)
        return peer;
    peer.fingerprint = QString::fromLatin1(
        QByteArray(reinterpret_cast<const char *>(digest), int(length)).toHex());
    // gRPC's peer identity: the subject alternative names, or the common name when it has
    // none (as a browser would take it).
    for (const auto &value : context.GetPeerIdentity()) {
        const QString name = QString::fromUtf8(value.data(), qsizetype(value.size()));
        if (!name.isEmpty() && !peer.names.contains(name))
            peer.names << name;
    }
    peer.present = true;
    return peer;
}

std::string connectionError(std::string why)
{
    if (const auto at = why.find("last error: "); at != std::string::npos)
        why = why.substr(at + std::strlen("last error: "));
    for (const char *prefix : {"UNKNOWN: ", "UNAVAILABLE: "})
        if (why.rfind(prefix, 0) == 0)
            why = why.substr(std::strlen(prefix));
    for (const char *scheme : {"ipv4:", "ipv6:", "unix:"}) {
        if (why.rfind(scheme, 0) == 0) {
            if (const auto end = why.find(": ", std::strlen(scheme)); end != std::string::npos)
                why = why.substr(end + 2);
        }
    }
    return why;
}

QString plaintextTokenProblem(const ClientTls &tls, const QString &target)
{
    if (tls.enabled() || target.startsWith(QLatin1String("unix-abstract:")))
        return {};
    // gRPC's target forms for the same local addresses.
    QString address = target;
    for (const char *scheme : {"dns:///", "ipv4:", "ipv6:"}) {
        if (address.startsWith(QLatin1String(scheme))) {
            address = address.mid(int(std::strlen(scheme)));
            break;
        }
    }
    if (isLoopbackListen(address))
        return {};
    return QStringLiteral("the token would cross the network to %1 in plaintext: give --tls-ca "
                          "(or --tls for the system's CAs), or --insecure")
        .arg(target);
}

bool isLoopbackListen(const QString &address)
{
    if (address.startsWith(QLatin1String("unix:")))
        return true;
    QString host = address.section(QLatin1Char(':'), 0, -2);
    if (host.startsWith(QLatin1Char('[')) && host.endsWith(QLatin1Char(']')))
        host = host.mid(1, host.size() - 2);
    if (host == QLatin1String("localhost"))
        return true;
    const QByteArray text = host.toLatin1();
    in_addr v4{};
    if (inet_pton(AF_INET, text.constData(), &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    in6_addr v6{};
    return inet_pton(AF_INET6, text.constData(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

} // namespace opconsole::security
