#include "tokens.h"

#include <QFile>
#include <QFileInfo>
#include <QMessageAuthenticationCode>
#include <QRegularExpression>

#include <openssl/rand.h>

#include <sys/stat.h>
#include <unistd.h>

namespace opconsole::security {

namespace {

constexpr QByteArrayView HashKey = "opconsole token v1";
constexpr QLatin1StringView HashPrefix{"hmac-sha256:"};
constexpr qint64 MaxFileBytes = 4 * 1024 * 1024;
constexpr int MaxEntries = 100'000;

bool validHash(const QString &hash)
{
    static const QRegularExpression pattern(QStringLiteral("^hmac-sha256:[0-9a-f]{64}$"));
    return pattern.match(hash).hasMatch();
}

// The file's text, refused when others may write it (or, for secrets, read it).
bool readGuarded(const QString &path, bool secret, QByteArray *text, QString *error)
{
    struct stat st = {};
    const QByteArray native = QFile::encodeName(path);
    if (::stat(native.constData(), &st) != 0 || !S_ISREG(st.st_mode)) {
        *error = QStringLiteral("%1: not a readable file").arg(path);
        return false;
    }
    // Whoever may write it may add an admin: only its owner, and only this user or root.
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        *error = QStringLiteral("%1: writable by others than its owner; chmod go-w it").arg(path);
        return false;
    }
    if (st.st_uid != ::geteuid() && st.st_uid != 0) {
        *error = QStringLiteral("%1: owned by another user (uid %2); it must be this user's or "
                                "root's")
                     .arg(path)
                     .arg(st.st_uid);
        return false;
    }
    if (secret && (st.st_mode & (S_IRWXG | S_IRWXO))) {
        *error =
            QStringLiteral("%1: holds a secret but others may read it; chmod 600 it").arg(path);
        return false;
    }
    if (st.st_size > MaxFileBytes) {
        *error = QStringLiteral("%1: larger than %2 bytes").arg(path).arg(MaxFileBytes);
        return false;
    }
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly)) {
        *error = QStringLiteral("%1: %2").arg(path, file.errorString());
        return false;
    }
    *text = file.read(MaxFileBytes + 1);
    if (text->size() > MaxFileBytes) {
        *error = QStringLiteral("%1: larger than %2 bytes").arg(path).arg(MaxFileBytes);
        return false;
    }
    return true;
}

// Calls `entry(lineNumber, fields)` for every line with content; stops at the first error.
template <typename Entry>
bool forEachLine(const QByteArray &text, const QString &source, QString *error, Entry &&entry)
{
    int number = 0;
    int entries = 0;
    for (const QByteArray &raw : text.split('\n')) {
        ++number;
        QByteArray line = raw;
        if (const qsizetype hash = line.indexOf('#'); hash >= 0)
            line.truncate(hash);
        const QString content = QString::fromUtf8(line).trimmed();
        if (content.isEmpty())
            continue;
        if (++entries > MaxEntries) {
            *error = QStringLiteral("%1: more than %2 entries").arg(source).arg(MaxEntries);
            return false;
        }
        static const QRegularExpression spaces(QStringLiteral("\\s+"));
        QString why;
        if (!entry(content.split(spaces), &why)) {
            *error = QStringLiteral("%1:%2: %3").arg(source).arg(number).arg(why);
            return false;
        }
    }
    return true;
}

} // namespace

QString roleName(Role role)
{
    switch (role) {
    case Role::Viewer:
        return QStringLiteral("viewer");
    case Role::Operator:
        return QStringLiteral("operator");
    case Role::Admin:
        return QStringLiteral("admin");
    case Role::None:
        break;
    }
    return QStringLiteral("none");
}

std::optional<Role> roleFromName(const QString &name)
{
    for (Role r : {Role::Viewer, Role::Operator, Role::Admin}) {
        if (name == roleName(r))
            return r;
    }
    return std::nullopt;
}

QString newToken()
{
    unsigned char bytes[32];
    if (RAND_bytes(bytes, int(sizeof bytes)) != 1)
        qFatal("OpenSSL could not give random bytes for a token");
    return QStringLiteral("opc_") +
           QString::fromLatin1(
               QByteArray(reinterpret_cast<const char *>(bytes), sizeof bytes)
                   .toBase64(QByteArray::Base64UrlEncoding | QByteArray::OmitTrailingEquals));
}

QString tokenHash(QByteArrayView token)
{
    return HashPrefix + QString::fromLatin1(QMessageAuthenticationCode::hash(
                                                token.toByteArray(), HashKey.toByteArray(),
                                                QCryptographicHash::Sha256)
                                                .toHex());
}

QByteArray bearerToken(std::string_view header)
{
    constexpr std::string_view scheme = "Bearer ";
    if (header.size() <= scheme.size() || header.size() > scheme.size() + MaxTokenBytes)
        return {};
    // The scheme is case-insensitive (RFC 6750); the token is taken as it is.
    for (size_t i = 0; i < scheme.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(header[i])) !=
            std::tolower(static_cast<unsigned char>(scheme[i])))
            return {};
    }
    const std::string_view token = header.substr(scheme.size());
    for (char c : token) {
        if (static_cast<unsigned char>(c) <= ' ' || static_cast<unsigned char>(c) >= 0x7f)
            return {};
    }
    return QByteArray(token.data(), qsizetype(token.size()));
}

bool validName(const QString &name)
{
    static const QRegularExpression pattern(QStringLiteral("^[A-Za-z0-9._@-]{1,64}$"));
    return pattern.match(name).hasMatch();
}

bool parseSelector(const QString &text, QMap<QString, QString> *out, QString *error)
{
    out->clear();
    if (text.isEmpty())
        return true;
    static const QRegularExpression part(
        QStringLiteral("^([A-Za-z0-9._/-]{1,64})=([^,=#\\s]{0,256})$"));
    for (const QString &item : text.split(QLatin1Char(','))) {
        const auto m = part.match(item);
        if (!m.hasMatch()) {
            *error = QStringLiteral("'%1' is not key=value").arg(item.left(80));
            return false;
        }
        if (out->contains(m.captured(1))) {
            *error = QStringLiteral("label '%1' given twice").arg(m.captured(1));
            return false;
        }
        out->insert(m.captured(1), m.captured(2));
    }
    return true;
}

QString selectorText(const QMap<QString, QString> &selector)
{
    QStringList parts;
    for (auto it = selector.cbegin(); it != selector.cend(); ++it)
        parts << it.key() + QLatin1Char('=') + it.value();
    return parts.join(QLatin1Char(','));
}

std::shared_ptr<const OperatorDirectory> OperatorDirectory::load(const QString &path,
                                                                 QString *error)
{
    QByteArray text;
    if (!readGuarded(path, false, &text, error))
        return nullptr;
    return parse(text, path, error);
}

std::shared_ptr<const OperatorDirectory>
OperatorDirectory::parse(const QByteArray &text, const QString &source, QString *error)
{
    auto directory = std::make_shared<OperatorDirectory>();
    QSet<QString> names;
    const bool ok = forEachLine(text, source, error, [&](const QStringList &f, QString *why) {
        if (f.size() < 3 || f.size() > 4) {
            *why = QStringLiteral("expected NAME ROLE HASH [SCOPE]");
            return false;
        }
        OperatorIdentity identity;
        identity.name = f[0];
        if (!validName(identity.name)) {
            *why =
                QStringLiteral("bad name '%1' (1..64 of A-Z a-z 0-9 . _ @ -)").arg(f[0].left(80));
            return false;
        }
        const auto role = roleFromName(f[1]);
        if (!role) {
            *why = QStringLiteral("role '%1' is not viewer, operator or admin").arg(f[1].left(80));
            return false;
        }
        identity.role = *role;
        if (!validHash(f[2])) {
            *why = QStringLiteral("the hash must be hmac-sha256: and 64 hex digits "
                                  "(opctl token new makes one)");
            return false;
        }
        if (f.size() == 4) {
            QString problem;
            if (!parseSelector(f[3], &identity.scope, &problem)) {
                *why = QStringLiteral("scope: %1").arg(problem);
                return false;
            }
        }
        if (names.contains(identity.name)) {
            *why = QStringLiteral("operator '%1' listed twice").arg(identity.name);
            return false;
        }
        names.insert(identity.name);
        if (!directory->m_byHash.emplace(f[2], std::move(identity)).second) {
            *why = QStringLiteral("the same token hash is listed twice");
            return false;
        }
        return true;
    });
    return ok ? directory : nullptr;
}

std::optional<OperatorIdentity> OperatorDirectory::find(QByteArrayView token) const
{
    if (token.isEmpty())
        return std::nullopt;
    const auto it = m_byHash.find(tokenHash(token));
    if (it == m_byHash.end())
        return std::nullopt;
    return it->second;
}

bool BotTokenEntry::covers(const QString &botId) const
{
    for (const QString &id : ids) {
        if (id.endsWith(QLatin1Char('*'))) {
            if (botId.startsWith(QStringView(id).chopped(1)))
                return true;
        } else if (id == botId) {
            return true;
        }
    }
    return false;
}

std::shared_ptr<const BotTokens> BotTokens::load(const QString &path, QString *error)
{
    QByteArray text;
    if (!readGuarded(path, false, &text, error))
        return nullptr;
    return parse(text, path, error);
}

std::shared_ptr<const BotTokens> BotTokens::parse(const QByteArray &text, const QString &source,
                                                  QString *error)
{
    auto tokens = std::make_shared<BotTokens>();
    QSet<QString> names;
    const bool ok = forEachLine(text, source, error, [&](const QStringList &f, QString *why) {
        if (f.size() != 3) {
            *why = QStringLiteral("expected NAME BOT-IDS HASH");
            return false;
        }
        BotTokenEntry entry;
        entry.name = f[0];
        if (!validName(entry.name)) {
            *why =
                QStringLiteral("bad name '%1' (1..64 of A-Z a-z 0-9 . _ @ -)").arg(f[0].left(80));
            return false;
        }
        static const QRegularExpression idPattern(QStringLiteral("^[A-Za-z0-9._:@/-]{0,128}\\*?$"));
        for (const QString &id : f[1].split(QLatin1Char(','))) {
            if (id.isEmpty() || !idPattern.match(id).hasMatch()) {
                *why = QStringLiteral("bad bot id or pattern '%1'").arg(id.left(80));
                return false;
            }
            entry.ids << id;
        }
        if (!validHash(f[2])) {
            *why = QStringLiteral("the hash must be hmac-sha256: and 64 hex digits "
                                  "(opctl token new makes one)");
            return false;
        }
        if (names.contains(entry.name)) {
            *why = QStringLiteral("token '%1' listed twice").arg(entry.name);
            return false;
        }
        names.insert(entry.name);
        if (!tokens->m_byHash.emplace(f[2], std::move(entry)).second) {
            *why = QStringLiteral("the same token hash is listed twice");
            return false;
        }
        return true;
    });
    return ok ? tokens : nullptr;
}

const BotTokenEntry *BotTokens::find(QByteArrayView token) const
{
    if (token.isEmpty())
        return nullptr;
    const auto it = m_byHash.find(tokenHash(token));
    return it == m_byHash.end() ? nullptr : &it->second;
}

QByteArray readTokenFile(const QString &path, QString *error)
{
    QByteArray text;
    if (!readGuarded(path, true, &text, error))
        return {};
    for (const QByteArray &line : text.split('\n')) {
        const QByteArray token = line.trimmed();
        if (token.isEmpty())
            continue;
        if (token.size() > MaxTokenBytes ||
            bearerToken(("Bearer " + token).toStdString()).isEmpty()) {
            *error = QStringLiteral("%1: the token has spaces, control characters or is too long")
                         .arg(path);
            return {};
        }
        return token;
    }
    *error = QStringLiteral("%1: no token in it").arg(path);
    return {};
}

} // namespace opconsole::security
