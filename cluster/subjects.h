#pragma once
// The NATS subjects and the directory's keys (docs/cluster.md, "Subjects and buckets").

#include <QByteArray>
#include <QString>

namespace opconsole::cluster::subjects {

// An id as one subject token (and key part): itself when it is only [A-Za-z0-9_-], else '='
// and its UTF-8 in hex ('=' never starts a plain token, so the two never meet).
QByteArray token(const QString &id);
// The id a token names; empty when it is not a token of ours.
QString idOf(const QByteArray &token);

inline constexpr const char *Prefix = "opc";
inline constexpr const char *HolderQueue = "holders";
inline constexpr const char *Bucket = "opconsole-bots";

// Commands and cancels for one bot go to the hub that holds it: opc.bot.<bot>.cmd / .cancel
QByteArray botSubject(const QString &botId, const char *what);
QByteArray botWildcard(const QString &botId); // opc.bot.<bot>.*
// What comes back to one run (incarnation) of a hub for the commands it forwarded: its
// holders' answers on opc.reply.<hub>.<run>.r, and NATS's "no responders" for a batch on
// opc.reply.<hub>.<run>.b<batch>. Per run: two processes with one hub id, or a restarted hub,
// never take each other's answers.
QByteArray answerSubject(const QString &hubId, quint64 incarnation);
QByteArray batchReplySubject(const QString &hubId, quint64 incarnation, quint64 batch);
QByteArray replyWildcard(const QString &hubId, quint64 incarnation);
QByteArray beaconSubject();    // opc.hub.beacon
QByteArray acksSubject();      // opc.acks: bots' acks their hub knows no command for
QByteArray admissionSubject(); // opc.admission: rejections and revocations
// The directory's key of a bot: bot.<bot>
QByteArray directoryKey(const QString &botId);

} // namespace opconsole::cluster::subjects
