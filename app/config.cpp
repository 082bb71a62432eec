#include "config.h"

#include <QCommandLineParser>
#include <QFile>
#include <QFileInfo>

#include <algorithm>
#include <cmath>

namespace opconsole {

namespace {

using Kind = Setting::Kind;

// What a number may be: the range, and a whole number where the kind says so.
QString rangeText(const Setting &s)
{
    const QString unit = *s.unit ? QStringLiteral(" ") + QString::fromLatin1(s.unit) : QString();
    return QStringLiteral("%1 to %2%3")
        .arg(QString::number(s.min, 'g', 15), QString::number(s.max, 'g', 15), unit);
}

bool parseSwitch(const QString &value, bool *on)
{
    const QString v = value.trimmed().toLower();
    if (v == QLatin1String("true") || v == QLatin1String("yes") || v == QLatin1String("on") ||
        v == QLatin1String("1")) {
        *on = true;
        return true;
    }
    if (v == QLatin1String("false") || v == QLatin1String("no") || v == QLatin1String("off") ||
        v == QLatin1String("0")) {
        *on = false;
        return true;
    }
    return false;
}

} // namespace

const std::vector<Setting> &Config::settings()
{
    // The defaults are those of HubOptions, CommandRegistry and CommandService: a hub started
    // with no flag and no file runs as it did before the table existed.
    static const std::vector<Setting> all = {
        // Where it listens and how fast it notices.
        {"hub", "listen", Kind::Address, "127.0.0.1:50051", 0, 0, "",
         "Address bots connect to (host:port; port 0 picks a free one)."},
        {"hub", "operator-listen", Kind::Address, "127.0.0.1:50052", 0, 0, "",
         "Address of the Operator API (opctl, consoles): host:port or unix:/path (made 0600)."},
        {"hub", "heartbeat", Kind::Integer, "2000", 50, 3'600'000, "ms",
         "Heartbeat interval told to bots."},
        {"hub", "missed-heartbeats", Kind::Integer, "3", 1, 1000, "",
         "A bot silent for this many heartbeat intervals is disconnected."},
        {"hub", "hello-timeout", Kind::Integer, "0", 0, 3'600'000, "ms",
         "A stream that says no Hello within this is closed (0: three heartbeat intervals)."},
        {"hub", "max-handshaking", Kind::Integer, "10000", 1, 10'000'000, "streams",
         "Streams waiting for their Hello at once; more are refused."},
        {"hub", "max-live-sessions", Kind::Integer, "100000", 1, 10'000'000, "bots",
         "Connected bots at most; Hellos past this are refused."},
        {"hub", "max-known-bots", Kind::Integer, "200000", 1, 10'000'000, "bots",
         "Bots remembered, connected or not; the oldest gone ones go first."},
        {"hub", "max-queued-per-bot", Kind::Integer, "4096", 1, 10'000'000, "messages",
         "Outgoing messages waiting for one bot's stream; a send past this is refused."},
        {"hub", "max-queued-bytes-per-bot", Kind::Integer, "4194304", 1024, 1LL << 34, "bytes",
         "The bytes of those messages, at most."},
        {"hub", "max-message-bytes", Kind::Integer, "65536", 1024, 64 * 1024 * 1024, "bytes",
         "A larger message from a bot closes its stream."},
        {"hub", "max-progress-per-second", Kind::Number, "200", 0, 1e6, "per bot",
         "Progress messages per second a bot may send (0: no limit); more are dropped."},
        {"hub", "max-status-per-second", Kind::Number, "20", 0, 1e6, "per bot",
         "Heartbeats and status reports per second a bot may send (0: no limit)."},
        {"hub", "max-violations-per-second", Kind::Number, "5", 0, 1e6, "per bot",
         "Protocol violations reported per second before the bot's stream is ended."},
        // What commands may be.
        {"commands", "max-timeout", Kind::Integer, "86400", 1, 2'147'483, "s",
         "Longest command timeout accepted (Qt's timers count milliseconds in an int)."},
        {"commands", "late-ack-window", Kind::Integer, "300000", 0, 86'400'000, "ms",
         "How long after its deadline a command still takes a late ack."},
        {"commands", "max-remembered", Kind::Integer, "100000", 100, 100'000'000, "commands",
         "Finished commands kept in memory (for late acks, Watch and the console)."},
        {"commands", "max-in-flight-per-bot", Kind::Integer, "10000", 0, 10'000'000, "commands",
         "Commands pending for one bot at most (0: no limit); more are refused."},
        // History.
        {"history", "data-dir", Kind::Text, "", 0, 0, "",
         "Where the history and admission decisions are kept (default: the user's application "
         "data folder)."},
        {"history", "no-history", Kind::Switch, "false", 0, 0, "",
         "Keep no history: commands live in memory only."},
        {"history", "history-days", Kind::Integer, "30", 1, 3650, "days",
         "Delete history older than this."},
        {"history", "history-max-mb", Kind::Integer, "1024", 1, 1024 * 1024, "MiB",
         "Delete the oldest history past this size."},
        {"history", "history-fsync", Kind::Switch, "false", 0, 0, "",
         "Sync every history commit to disk (survives a power loss, not only a crash)."},
        // Security (docs/security.md).
        {"security", "tls-cert", Kind::Text, "", 0, 0, "",
         "TLS certificate of both listeners (PEM)."},
        {"security", "tls-key", Kind::Text, "", 0, 0, "", "Private key of tls-cert (PEM)."},
        {"security", "tls-client-ca", Kind::Text, "", 0, 0, "",
         "Verify client certificates against this CA; a bot's certificate then names the bot "
         "ids it may use."},
        {"security", "operators", Kind::Text, "", 0, 0, "",
         "Operator tokens, roles and scopes; without it every local caller of the Operator API "
         "is an admin."},
        {"security", "bot-tokens", Kind::Text, "", 0, 0, "",
         "Bot tokens and the bot ids each may use."},
        {"security", "admission", Kind::Choice, "open", 0, 0, "open|approve",
         "open: bots with a valid credential are admitted; approve: new ones wait for an "
         "admin."},
        {"security", "operator-rate", Kind::Number, "50", 0, 1e6, "sends/s",
         "Sends per second allowed to each operator token (0: no limit)."},
        {"security", "max-streams-per-credential", Kind::Integer, "1000", 1, 1'000'000, "streams",
         "Open bot streams per certificate or token."},
        {"security", "insecure", Kind::Switch, "false", 0, 0, "",
         "Allow a listener other machines reach without TLS (or the Operator API there "
         "without operators). Logged every hour."},
        // The log and the metrics.
        {"log", "log-level", Kind::Choice, "info", 0, 0, "debug|info|warning|error",
         "Least level logged: debug, info, warning, error."},
        {"metrics", "metrics-listen", Kind::Address, "", 0, 0, "",
         "Serve Prometheus metrics at http://host:port/metrics (plain HTTP, no "
         "authentication: loopback or a private network). Off when empty."},
        // The cluster (docs/cluster.md).
        {"cluster", "cluster", Kind::Text, "", 0, 0, "",
         "Share one fleet with other hubs over NATS: nats://host:port[,...] (tls://... for "
         "TLS). Off when empty."},
        {"cluster", "hub-id", Kind::Text, "", 0, 0, "",
         "This hub's id in the cluster: letters, digits, '_' and '-' (default: host name and "
         "port)."},
        {"cluster", "cluster-token", Kind::Text, "", 0, 0, "",
         "NATS authorization token (nats-server's authorization { token })."},
        {"cluster", "cluster-ca", Kind::Text, "", 0, 0, "",
         "TLS to NATS: trust this CA (PEM); turns TLS on."},
        {"cluster", "cluster-cert", Kind::Text, "", 0, 0, "",
         "TLS to NATS: this hub's client certificate (PEM), when the server verifies clients."},
        {"cluster", "cluster-key", Kind::Text, "", 0, 0, "", "Private key of cluster-cert (PEM)."},
    };
    return all;
}

const Setting *Config::find(const QString &name)
{
    for (const Setting &s : settings()) {
        if (name == QLatin1String(s.name))
            return &s;
    }
    return nullptr;
}

void Config::addOptions(QCommandLineParser &parser)
{
    for (const Setting &s : settings()) {
        const QString name = QString::fromLatin1(s.name);
        QString help = QString::fromLatin1(s.help);
        if (s.kind == Kind::Switch) {
            parser.addOption({name, help});
            continue;
        }
        if (s.kind == Kind::Integer || s.kind == Kind::Number)
            help += QStringLiteral(" %1; default %2.")
                        .arg(rangeText(s), QString::fromLatin1(s.fallback));
        else if (s.kind == Kind::Choice)
            help += QStringLiteral(" One of %1; default %2.")
                        .arg(QString::fromLatin1(s.unit).replace(u'|', QStringLiteral(", ")),
                             QString::fromLatin1(s.fallback));
        else if (*s.fallback)
            help += QStringLiteral(" Default %1.").arg(QString::fromLatin1(s.fallback));
        const QString valueName = s.kind == Kind::Choice    ? QStringLiteral("word")
                                  : s.kind == Kind::Address ? QStringLiteral("address")
                                  : s.kind == Kind::Text    ? QStringLiteral("value")
                                  : QLatin1String(s.unit) == QLatin1String("ms") ||
                                          QLatin1String(s.unit) == QLatin1String("s")
                                      ? QString::fromLatin1(s.unit)
                                      : QStringLiteral("n");
        parser.addOption({name, help, valueName});
    }
}

QString Config::problem(const Setting &s, const QString &value)
{
    // One line, as written: what --print-config writes must read back the same.
    if (std::any_of(value.cbegin(), value.cend(), [](QChar c) { return c.unicode() < 0x20; }))
        return QStringLiteral("holds a control character (a value is one line)");
    if (value != value.trimmed())
        return QStringLiteral("has spaces at an end");
    switch (s.kind) {
    case Kind::Text:
        return value.size() > 4096 ? QStringLiteral("is longer than 4096 characters") : QString();
    case Kind::Switch: {
        bool on = false;
        return parseSwitch(value, &on) ? QString() : QStringLiteral("takes true or false");
    }
    case Kind::Choice: {
        const QStringList words = QString::fromLatin1(s.unit).split(u'|');
        return words.contains(value)
                   ? QString()
                   : QStringLiteral("takes %1").arg(words.join(QStringLiteral(", ")));
    }
    case Kind::Address: {
        if (value.isEmpty())
            return *s.fallback ? QStringLiteral("takes host:port or unix:/path") : QString();
        if (value.startsWith(QLatin1String("unix:")))
            return value.size() > 5 && value.at(5) == u'/' && value.size() < 108
                       ? QString()
                       : QStringLiteral("takes unix: and an absolute path shorter than 100 "
                                        "characters");
        const qsizetype colon = value.lastIndexOf(u':');
        bool ok = false;
        const int port = colon > 0 ? value.mid(colon + 1).toInt(&ok) : -1;
        if (!ok || port < 0 || port > 65535 || value.size() > 255 || value.contains(u' '))
            return QStringLiteral("takes host:port (port 0 to 65535; 0 picks a free one) or "
                                  "unix:/path");
        return {};
    }
    case Kind::Integer:
    case Kind::Number: {
        bool ok = false;
        const double v = value.toDouble(&ok);
        const bool whole = s.kind == Kind::Number || (std::isfinite(v) && v == std::floor(v));
        if (!ok || !std::isfinite(v) || !whole || v < s.min || v > s.max)
            return QStringLiteral("takes %1%2")
                .arg(s.kind == Kind::Integer ? QStringLiteral("a whole number, ") : QString(),
                     rangeText(s));
        return {};
    }
    }
    return {};
}

bool Config::load(const QString &file, const QCommandLineParser &parser, QString *error)
{
    for (const Setting &s : settings()) {
        m_values.insert(QString::fromLatin1(s.name), QString::fromLatin1(s.fallback));
        m_from.insert(QString::fromLatin1(s.name), QStringLiteral("default"));
    }
    if (!file.isEmpty()) {
        QFile in(file);
        constexpr qint64 MaxBytes = 1024 * 1024;
        if (!QFileInfo(file).isFile() || !in.open(QIODevice::ReadOnly)) {
            *error = QStringLiteral("--config %1: no such readable file").arg(file);
            return false;
        }
        if (in.size() > MaxBytes) {
            *error = QStringLiteral("--config %1: larger than 1 MiB").arg(file);
            return false;
        }
        if (!loadText(in.readAll(), file, error))
            return false;
    }
    for (const Setting &s : settings()) {
        const QString name = QString::fromLatin1(s.name);
        if (!parser.isSet(name))
            continue;
        const QString value = s.kind == Kind::Switch ? QStringLiteral("true") : parser.value(name);
        if (const QString why = problem(s, value); !why.isEmpty()) {
            *error = QStringLiteral("--%1 %2").arg(name, why);
            return false;
        }
        m_values.insert(name, value);
        m_from.insert(name, QStringLiteral("command line"));
    }
    return true;
}

bool Config::loadText(const QByteArray &text, const QString &file, QString *error)
{
    QString section;
    QHash<QString, int> seen; // name -> line
    const QList<QByteArray> lines = text.split('\n');
    for (qsizetype n = 0; n < lines.size(); ++n) {
        const int lineNo = int(n) + 1;
        QByteArray raw = lines.at(n);
        if (raw.endsWith('\r'))
            raw.chop(1);
        const QString line = QString::fromUtf8(raw).trimmed();
        const auto fail = [&](const QString &why) {
            *error = QStringLiteral("--config %1, line %2: %3").arg(file).arg(lineNo).arg(why);
            return false;
        };
        if (line.isEmpty() || line.startsWith(u';') || line.startsWith(u'#'))
            continue;
        if (line.startsWith(u'[')) {
            section = line.endsWith(u']') ? line.mid(1, line.size() - 2).trimmed() : QString();
            const bool known =
                std::any_of(settings().cbegin(), settings().cend(),
                            [&](const Setting &s) { return section == QLatin1String(s.section); });
            if (!known)
                return fail(QStringLiteral("unknown section %1").arg(line.left(80)));
            continue;
        }
        const qsizetype eq = line.indexOf(u'=');
        if (eq <= 0)
            return fail(
                QStringLiteral("not a section, a comment or key = value: %1").arg(line.left(80)));
        const QString name = line.left(eq).trimmed();
        const QString value = line.mid(eq + 1).trimmed();
        const Setting *s = find(name);
        if (!s)
            return fail(QStringLiteral("unknown setting %1 (opconsole --print-config lists them "
                                       "all)")
                            .arg(name.left(80)));
        if (section != QLatin1String(s->section))
            return fail(
                QStringLiteral("%1 belongs in [%2]").arg(name, QString::fromLatin1(s->section)));
        if (const int before = seen.value(name); before > 0)
            return fail(QStringLiteral("%1 is set twice (also on line %2)").arg(name).arg(before));
        seen.insert(name, lineNo);
        if (const QString why = problem(*s, value); !why.isEmpty())
            return fail(QStringLiteral("%1 = %2 %3").arg(name, value.left(80), why));
        m_values.insert(name, value);
        m_from.insert(name, QFileInfo(file).fileName());
    }
    return true;
}

QString Config::text(const QString &name) const
{
    Q_ASSERT(find(name));
    return m_values.value(name);
}

qint64 Config::integer(const QString &name) const
{
    return qint64(number(name));
}

double Config::number(const QString &name) const
{
    Q_ASSERT(find(name) && (find(name)->kind == Kind::Integer || find(name)->kind == Kind::Number));
    return m_values.value(name).toDouble();
}

bool Config::isOn(const QString &name) const
{
    Q_ASSERT(find(name) && find(name)->kind == Kind::Switch);
    bool on = false;
    parseSwitch(m_values.value(name), &on);
    return on;
}

QString Config::print() const
{
    QString out = QStringLiteral("; opconsole's effective settings: give this file to --config, "
                                 "change what you need\n");
    const char *section = "";
    for (const Setting &s : settings()) {
        if (qstrcmp(section, s.section) != 0) {
            section = s.section;
            out += QStringLiteral("\n[%1]\n").arg(QString::fromLatin1(section));
        }
        const QString name = QString::fromLatin1(s.name);
        QString about = QString::fromLatin1(s.help);
        if (s.kind == Kind::Integer || s.kind == Kind::Number)
            about += QStringLiteral(" (%1)").arg(rangeText(s));
        else if (s.kind == Kind::Choice)
            about += QStringLiteral(" (%1)").arg(
                QString::fromLatin1(s.unit).replace(u'|', QStringLiteral(", ")));
        out += QStringLiteral("; %1\n; from: %2\n%3 = %4\n")
                   .arg(about, m_from.value(name), name, m_values.value(name));
    }
    return out;
}

} // namespace opconsole
