#include "commandspec.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QJsonParseError>

#include <array>

namespace opconsole {

namespace {
struct KindName
{
    CommandKind kind;
    const char *name;
};
constexpr std::array<KindName, 8> kindNamesTable{{
    {CommandKind::Start, "start"},
    {CommandKind::Stop, "stop"},
    {CommandKind::Restart, "restart"},
    {CommandKind::Pause, "pause"},
    {CommandKind::Resume, "resume"},
    {CommandKind::Ping, "ping"},
    {CommandKind::ConfigUpdate, "config"},
    {CommandKind::Custom, "custom"},
}};
} // namespace

QString CommandSpec::kindName(CommandKind kind)
{
    for (const auto &k : kindNamesTable) {
        if (k.kind == kind)
            return QString::fromLatin1(k.name);
    }
    return QStringLiteral("unknown");
}

std::optional<CommandKind> CommandSpec::kindFromName(const QString &name)
{
    const QString lower = name.trimmed().toLower();
    for (const auto &k : kindNamesTable) {
        if (lower == QLatin1String(k.name))
            return k.kind;
    }
    if (lower == QLatin1String("configupdate") || lower == QLatin1String("config-update"))
        return CommandKind::ConfigUpdate;
    return std::nullopt;
}

QStringList CommandSpec::kindNames()
{
    QStringList names;
    for (const auto &k : kindNamesTable)
        names.append(QString::fromLatin1(k.name));
    return names;
}

QString CommandSpec::validate() const
{
    switch (kind) {
    case CommandKind::ConfigUpdate:
        if (config.isEmpty())
            return QStringLiteral("a config update needs at least one key=value");
        for (auto it = config.cbegin(); it != config.cend(); ++it) {
            if (it.key().trimmed().isEmpty())
                return QStringLiteral("a config key is empty");
            // opctl's --set k=v and every line that shows it split at the first '='.
            if (it.key().contains(QLatin1Char('=')))
                return QStringLiteral("a config key must not contain '=': %1").arg(it.key());
        }
        return {};
    case CommandKind::Custom: {
        if (customName.trimmed().isEmpty())
            return QStringLiteral("a custom command needs a name");
        if (jsonPayload.trimmed().isEmpty())
            return {};
        // An object or an array: say so, rather than Qt's "illegal value" for a scalar.
        const QByteArray trimmed = jsonPayload.trimmed();
        if (!trimmed.startsWith('{') && !trimmed.startsWith('['))
            return QStringLiteral("the JSON payload must be an object {…} or an array […], not "
                                  "a single value");
        QJsonParseError error;
        QJsonDocument::fromJson(jsonPayload, &error);
        if (error.error != QJsonParseError::NoError) {
            // Where, as an editor counts: line and column (1-based), from the byte offset.
            const QByteArray before = jsonPayload.left(error.offset);
            const qsizetype lineStart = before.lastIndexOf('\n') + 1;
            return QStringLiteral("the JSON payload does not parse: %1 at line %2, column %3")
                .arg(error.errorString())
                .arg(before.count('\n') + 1)
                .arg(QString::fromUtf8(before.mid(lineStart)).size() + 1);
        }
        return {};
    }
    default:
        return {};
    }
}

QString CommandSpec::paramsJson() const
{
    QJsonObject o;
    switch (kind) {
    case CommandKind::Stop:
        o.insert(QStringLiteral("graceful"), graceful);
        if (!stopReason.isEmpty())
            o.insert(QStringLiteral("reason"), stopReason);
        break;
    case CommandKind::ConfigUpdate: {
        QJsonObject values;
        for (auto it = config.cbegin(); it != config.cend(); ++it)
            values.insert(it.key(), it.value());
        o.insert(QStringLiteral("version"), qint64(configVersion));
        o.insert(QStringLiteral("config"), values);
        break;
    }
    case CommandKind::Custom: {
        o.insert(QStringLiteral("name"), customName);
        const QJsonDocument payload = QJsonDocument::fromJson(jsonPayload);
        if (payload.isObject())
            o.insert(QStringLiteral("payload"), payload.object());
        else if (payload.isArray())
            o.insert(QStringLiteral("payload"), payload.array());
        else if (!jsonPayload.isEmpty())
            o.insert(QStringLiteral("payload"), QString::fromUtf8(jsonPayload));
        break;
    }
    default:
        return {};
    }
    return QString::fromUtf8(QJsonDocument(o).toJson(QJsonDocument::Compact));
}

std::optional<CommandSpec> CommandSpec::fromRecord(const QString &kind, const QString &params)
{
    const std::optional<CommandKind> k = kindFromName(kind);
    if (!k)
        return std::nullopt;
    CommandSpec spec = of(*k);
    if (params.isEmpty())
        return spec.paramsJson().isEmpty() ? std::optional(spec) : std::nullopt;
    const QJsonDocument doc = QJsonDocument::fromJson(params.toUtf8());
    if (!doc.isObject())
        return std::nullopt;
    const QJsonObject o = doc.object();
    switch (*k) {
    case CommandKind::Stop: {
        const QJsonValue graceful = o.value(QStringLiteral("graceful"));
        const QJsonValue reason = o.value(QStringLiteral("reason"));
        if (!(graceful.isBool() || graceful.isUndefined()) ||
            !(reason.isString() || reason.isUndefined()))
            return std::nullopt;
        spec.graceful = graceful.toBool(true);
        spec.stopReason = reason.toString();
        break;
    }
    case CommandKind::ConfigUpdate: {
        const QJsonValue version = o.value(QStringLiteral("version"));
        const QJsonValue config = o.value(QStringLiteral("config"));
        // A version is a whole number a double holds exactly; anything else is not ours.
        const double v = version.toDouble(-1);
        if (!version.isDouble() || v < 0 || v > 9007199254740992.0 || v != double(qint64(v)) ||
            !config.isObject())
            return std::nullopt;
        spec.configVersion = quint64(v);
        const QJsonObject values = config.toObject();
        for (auto it = values.constBegin(); it != values.constEnd(); ++it) {
            if (!it.value().isString())
                return std::nullopt;
            spec.config.insert(it.key(), it.value().toString());
        }
        break;
    }
    case CommandKind::Custom: {
        const QJsonValue name = o.value(QStringLiteral("name"));
        const QJsonValue payload = o.value(QStringLiteral("payload"));
        if (!name.isString())
            return std::nullopt;
        spec.customName = name.toString();
        if (payload.isObject())
            spec.jsonPayload = QJsonDocument(payload.toObject()).toJson(QJsonDocument::Compact);
        else if (payload.isArray())
            spec.jsonPayload = QJsonDocument(payload.toArray()).toJson(QJsonDocument::Compact);
        else if (payload.isString())
            spec.jsonPayload = payload.toString().toUtf8();
        else if (!payload.isUndefined())
            return std::nullopt;
        break;
    }
    default:
        return std::nullopt; // these kinds have no parameters
    }
    // Only what paramsJson() writes, byte for byte (every hub and history keeps exactly
    // that), and a spec that could be sent: a missing field read as its default, an unknown
    // or repeated one, a payload given as a string, an empty config are not ours.
    if (!spec.validate().isEmpty() || spec.paramsJson() != params)
        return std::nullopt;
    return spec;
}

} // namespace opconsole
