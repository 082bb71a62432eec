#pragma once
// The hub's settings in one table: every listener, limit and tunable, its default, its range
// and what it does. Each is a command-line flag (--heartbeat 2000) and a key of an INI file
// given with --config (heartbeat = 2000 in [hub]); a flag wins over the file, the file over
// the default. --print-config writes the effective values as such a file, each with where it
// came from. The file is read line by line by this class, not QSettings (which drops lines
// without '=', cuts values at ';', splits them at ',' and applies backslash escapes): a
// section, `key = value` (the value verbatim up to the end of the line), or a comment line
// starting with ';' or '#'. An unknown section or key, a key in the wrong section or given
// twice, a line that is none of these, a value out of range: an error naming the file, the
// line and what it takes. Nothing is silently ignored, and what --print-config writes reads
// back to the same values.

#include <QHash>
#include <QString>
#include <QStringList>

#include <vector>

class QCommandLineParser;

namespace opconsole {

struct Setting
{
    enum class Kind : quint8
    {
        Text,    // any text on one line (a file)
        Integer, // a whole number in [min, max]
        Number,  // a number in [min, max]
        Switch,  // a flag on the command line; true/false in the file
        Choice,  // one of the words in `unit`, separated by '|'
        Address, // host:port (port 0..65535; 0 picks one) or unix:/absolute/path; may be empty
                 // only when its default is
    };
    const char *section; // the INI section: hub, commands, history, security, log, metrics, cluster
    const char *name;    // the flag (--name) and the key in its section
    Kind kind;
    const char *fallback; // the default, as text ("" for none)
    double min = 0;
    double max = 0;
    const char *unit = ""; // "ms", "s", "bytes", ... for the help; a Choice's words
    const char *help = "";
};

class Config
{
public:
    // Every setting of the hub, in the order --print-config writes them.
    static const std::vector<Setting> &settings();
    static const Setting *find(const QString &name);
    // One QCommandLineOption per setting (with its default in the help), for main's parser.
    static void addOptions(QCommandLineParser &parser);

    // Defaults, then FILE (when not empty), then the flags given on the command line. False,
    // with *error (one line), when the file cannot be read or holds a mistake, or a value is
    // out of range.
    bool load(const QString &file, const QCommandLineParser &parser, QString *error);
    // The same from a file's text (load() reads the file, then this); `name` for messages.
    bool loadText(const QByteArray &text, const QString &name, QString *error);

    QString text(const QString &name) const;
    qint64 integer(const QString &name) const;
    double number(const QString &name) const;
    bool isOn(const QString &name) const;
    // The effective values as an INI file, each with a comment saying what it is and where
    // its value came from (default, the file, the command line).
    QString print() const;

private:
    // Checks `value` against the setting's kind and range; empty when it fits.
    static QString problem(const Setting &s, const QString &value);

    QHash<QString, QString> m_values; // name -> value as text
    QHash<QString, QString> m_from;   // name -> "default", the file, "command line"
};

} // namespace opconsole
