#pragma once
// Bearer tokens for operators and bots, and the files that map their hashes to identities.
// The hub never holds a token, only its keyed hash (tokenHash); a token is 256 random bits,
// so the hash needs no secret key to resist guessing. Formats: docs/security.md.

#include <QByteArray>
#include <QByteArrayView>
#include <QMap>
#include <QString>
#include <QStringList>

#include <memory>
#include <optional>
#include <string_view>
#include <unordered_map>

namespace opconsole::security {

// What an operator token allows; each role includes the ones before it.
enum class Role : quint8
{
    None,
    Viewer,   // ListBots, ListCommands, Watch, QueryHistory, WhoAmI
    Operator, // and SendCommand, SendToMany, CancelCommand
    Admin,    // and DecideBot (accept, reject, revoke bots)
};
QString roleName(Role role);
std::optional<Role> roleFromName(const QString &name);

// A new token: "opc_" and 43 base64url characters (32 bytes from OpenSSL's RAND_bytes).
QString newToken();
// "hmac-sha256:" and 64 hex digits: HMAC-SHA256 of the token under a fixed key (domain
// separation: a hash made for opconsole means nothing elsewhere).
QString tokenHash(QByteArrayView token);
// The token of an "authorization" metadata value "Bearer <token>"; empty when it is absent,
// malformed or longer than 512 bytes.
QByteArray bearerToken(std::string_view header);
inline constexpr int MaxTokenBytes = 512;

// A label selector "k=v[,k=v...]" (empty text: empty selector). False with *error when malformed.
bool parseSelector(const QString &text, QMap<QString, QString> *out, QString *error);
QString selectorText(const QMap<QString, QString> &selector);
// Names in the files, ids in bot patterns: 1..64 (names) characters of letters, digits . _ @ -.
bool validName(const QString &name);

struct OperatorIdentity
{
    QString name;
    Role role = Role::None;
    QMap<QString, QString> scope; // the bots it may command, by label; empty: every bot
};

// `--operators FILE`: one operator per line, "NAME ROLE HASH [SCOPE]"; '#' starts a comment.
class OperatorDirectory
{
public:
    // nullptr with *error ("FILE:LINE: why") when the file is unreadable, malformed, or writable
    // by others (anyone could add an admin).
    static std::shared_ptr<const OperatorDirectory> load(const QString &path, QString *error);
    static std::shared_ptr<const OperatorDirectory> parse(const QByteArray &text,
                                                          const QString &source, QString *error);
    std::optional<OperatorIdentity> find(QByteArrayView token) const;
    int size() const { return int(m_byHash.size()); }

private:
    std::unordered_map<QString, OperatorIdentity> m_byHash;
};

// A bot token's entry: the bot ids it may say Hello as.
struct BotTokenEntry
{
    QString name;
    QStringList ids; // exact ids, or prefixes ending in '*' ("sim-*"); "*" alone: any id
    bool covers(const QString &botId) const;
};

// `--bot-tokens FILE`: one token per line, "NAME BOT-IDS HASH" (BOT-IDS comma-separated).
class BotTokens
{
public:
    static std::shared_ptr<const BotTokens> load(const QString &path, QString *error);
    static std::shared_ptr<const BotTokens> parse(const QByteArray &text, const QString &source,
                                                  QString *error);
    const BotTokenEntry *find(QByteArrayView token) const;
    int size() const { return int(m_byHash.size()); }

private:
    std::unordered_map<QString, BotTokenEntry> m_byHash;
};

// Reads a token file (opctl --token-file, botsim): the first non-empty line, trimmed; refuses a
// file others may read. Empty with *error on failure.
QByteArray readTokenFile(const QString &path, QString *error);

} // namespace opconsole::security
