#include "subjects.h"

#include "clusteroptions.h"

namespace opconsole::cluster {

QString checkHubId(const QString &id)
{
    if (id.isEmpty() || id.size() > 64)
        return QStringLiteral("a hub id has 1 to 64 characters");
    for (const QChar c : id) {
        const bool ok = (c >= QLatin1Char('a') && c <= QLatin1Char('z')) ||
                        (c >= QLatin1Char('A') && c <= QLatin1Char('Z')) ||
                        (c >= QLatin1Char('0') && c <= QLatin1Char('9')) || c == QLatin1Char('_') ||
                        c == QLatin1Char('-');
        if (!ok)
            return QStringLiteral("a hub id has only letters, digits, '_' and '-' (\"%1\")")
                .arg(id);
    }
    return {};
}

namespace subjects {

namespace {
bool plain(const QString &id)
{
    if (id.isEmpty())
        return false;
    for (const QChar c : id) {
        const ushort u = c.unicode();
        if (!((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') ||
              u == '_' || u == '-'))
            return false;
    }
    return true;
}
} // namespace

QByteArray token(const QString &id)
{
    if (plain(id))
        return id.toLatin1();
    return '=' + id.toUtf8().toHex();
}

QString idOf(const QByteArray &token)
{
    if (token.startsWith('=')) {
        const QByteArray hex = token.mid(1);
        if (hex.isEmpty() || hex.size() % 2 != 0)
            return {};
        for (const char c : hex)
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
                return {};
        const QString id = QString::fromUtf8(QByteArray::fromHex(hex));
        return plain(id) || id.toUtf8().toHex() != hex ? QString() : id; // one spelling only
    }
    const QString id = QString::fromLatin1(token);
    return plain(id) ? id : QString();
}

QByteArray botSubject(const QString &botId, const char *what)
{
    return QByteArray(Prefix) + ".bot." + token(botId) + '.' + what;
}

QByteArray botWildcard(const QString &botId)
{
    return QByteArray(Prefix) + ".bot." + token(botId) + ".*";
}

QByteArray answerSubject(const QString &hubId, quint64 incarnation)
{
    return QByteArray(Prefix) + ".reply." + token(hubId) + '.' + QByteArray::number(incarnation) +
           ".r";
}

QByteArray batchReplySubject(const QString &hubId, quint64 incarnation, quint64 batch)
{
    return QByteArray(Prefix) + ".reply." + token(hubId) + '.' + QByteArray::number(incarnation) +
           ".b" + QByteArray::number(batch);
}

QByteArray replyWildcard(const QString &hubId, quint64 incarnation)
{
    return QByteArray(Prefix) + ".reply." + token(hubId) + '.' + QByteArray::number(incarnation) +
           ".*";
}

QByteArray beaconSubject()
{
    return QByteArray(Prefix) + ".hub.beacon";
}

QByteArray acksSubject()
{
    return QByteArray(Prefix) + ".acks";
}

QByteArray admissionSubject()
{
    return QByteArray(Prefix) + ".admission";
}

QByteArray directoryKey(const QString &botId)
{
    return "bot." + token(botId);
}

} // namespace subjects
} // namespace opconsole::cluster
