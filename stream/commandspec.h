#pragma once

#include <QByteArray>
#include <QMap>
#include <QMetaType>
#include <QString>
#include <QStringList>

#include <optional>

namespace opconsole {

enum class CommandKind : quint8
{
    Start,
    Stop,
    Restart,
    Pause,
    Resume,
    Ping,
    ConfigUpdate,
    Custom
};

// What to send, in Qt types: ui/ and opctl build this, stream/ turns it into the wire Command.
struct CommandSpec
{
    CommandKind kind = CommandKind::Ping;
    QString stopReason;            // Stop
    bool graceful = true;          // Stop
    QMap<QString, QString> config; // ConfigUpdate
    quint64 configVersion = 0;     // ConfigUpdate
    QString customName;            // Custom
    QByteArray jsonPayload;        // Custom: must be a JSON document

    static CommandSpec of(CommandKind kind)
    {
        CommandSpec spec;
        spec.kind = kind;
        return spec;
    }
    // "start", "stop", ..., "config", "custom".
    QString name() const { return kindName(kind); }
    static QString kindName(CommandKind kind);
    static std::optional<CommandKind> kindFromName(const QString &name);
    static QStringList kindNames();
    // Empty when the spec can be sent, else why not (e.g. the custom JSON does not parse).
    QString validate() const;
    // The parameters as compact JSON, for the record and history ({"reason":..} for stop,
    // {"version":..,"config":{..}} for config, {"name":..,"payload":..} for custom); empty
    // for kinds without parameters.
    QString paramsJson() const;
    // The spec back from a record's kind and paramsJson() (a record from opctl, another
    // console, history or a remote hub); none when they do not have that shape (cut at
    // CommandOutcome::MaxParamsLength, another version's fields, hostile).
    static std::optional<CommandSpec> fromRecord(const QString &kind, const QString &params);
};

} // namespace opconsole

Q_DECLARE_METATYPE(opconsole::CommandSpec)
