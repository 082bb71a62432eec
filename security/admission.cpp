#include "admission.h"

#include <QDateTime>
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSaveFile>

namespace opconsole::security {

namespace {
constexpr int FormatVersion = 1;
constexpr qint64 MaxFileBytes = 512LL * 1024 * 1024;
} // namespace

QString decisionName(AdmissionDecision decision)
{
    switch (decision) {
    case AdmissionDecision::Accepted:
        return QStringLiteral("accepted");
    case AdmissionDecision::Rejected:
        return QStringLiteral("rejected");
    case AdmissionDecision::None:
        break;
    }
    return QStringLiteral("none");
}

std::unique_ptr<AdmissionStore> AdmissionStore::open(const QString &path, QString *error)
{
    auto store = std::unique_ptr<AdmissionStore>(new AdmissionStore);
    store->m_path = path;
    if (path.isEmpty() || !QFile::exists(path))
        return store;
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly)) {
        *error = QStringLiteral("%1: %2").arg(path, file.errorString());
        return nullptr;
    }
    if (file.size() > MaxFileBytes) {
        *error = QStringLiteral("%1: larger than %2 bytes").arg(path).arg(MaxFileBytes);
        return nullptr;
    }
    QJsonParseError parseError;
    const QJsonDocument doc = QJsonDocument::fromJson(file.readAll(), &parseError);
    if (!doc.isObject()) {
        *error = QStringLiteral("%1: not a JSON object (%2)").arg(path, parseError.errorString());
        return nullptr;
    }
    const QJsonObject root = doc.object();
    if (root.value(QStringLiteral("version")).toInt() != FormatVersion) {
        *error = QStringLiteral("%1: unknown format version %2")
                     .arg(path)
                     .arg(root.value(QStringLiteral("version")).toInt());
        return nullptr;
    }
    if (!root.value(QStringLiteral("bots")).isObject()) {
        *error = QStringLiteral("%1: \"bots\" is not an object").arg(path);
        return nullptr;
    }
    const QJsonObject bots = root.value(QStringLiteral("bots")).toObject();
    if (bots.size() > MaxRecords) {
        *error = QStringLiteral("%1: more than %2 decisions").arg(path).arg(MaxRecords);
        return nullptr;
    }
    for (auto it = bots.begin(); it != bots.end(); ++it) {
        if (!it.value().isObject()) {
            *error = QStringLiteral("%1: bot '%2' is not an object").arg(path, it.key().left(128));
            return nullptr;
        }
        const QJsonObject o = it.value().toObject();
        AdmissionRecord r;
        const QString decision = o.value(QStringLiteral("decision")).toString();
        if (decision == QLatin1String("accepted"))
            r.decision = AdmissionDecision::Accepted;
        else if (decision == QLatin1String("rejected"))
            r.decision = AdmissionDecision::Rejected;
        else {
            *error = QStringLiteral("%1: bot '%2' has no decision").arg(path, it.key().left(128));
            return nullptr;
        }
        r.credential = o.value(QStringLiteral("credential")).toString();
        r.by = o.value(QStringLiteral("by")).toString();
        r.reason = o.value(QStringLiteral("reason")).toString();
        r.atMs = qint64(o.value(QStringLiteral("at_ms")).toDouble());
        store->m_records.insert(it.key(), r);
    }
    return store;
}

AdmissionRecord AdmissionStore::find(const QString &botId) const
{
    std::lock_guard lock(m_mutex);
    return m_records.value(botId);
}

int AdmissionStore::size() const
{
    std::lock_guard lock(m_mutex);
    return int(m_records.size());
}

bool AdmissionStore::decide(const QString &botId, const AdmissionRecord &record, QString *error)
{
    // One decision at a time, written to the file before anyone can read it; lookups wait
    // only for the swap at the end, never for the disk.
    std::lock_guard writing(m_writeMutex);
    QHash<QString, AdmissionRecord> next;
    {
        std::lock_guard lock(m_mutex);
        next = m_records;
    }
    if (record.decision == AdmissionDecision::None)
        next.remove(botId);
    else
        next.insert(botId, record);
    if (next.size() > MaxRecords) {
        *error = QStringLiteral("more than %1 admission decisions").arg(MaxRecords);
        return false;
    }
    if (!save(next, error))
        return false;
    {
        std::lock_guard lock(m_mutex);
        std::swap(m_records, next);
    }
    return true; // the old table is freed here, outside the lookups' lock
}

bool AdmissionStore::save(const QHash<QString, AdmissionRecord> &records, QString *error) const
{
    if (m_path.isEmpty())
        return true;
    QJsonObject bots;
    for (auto it = records.cbegin(); it != records.cend(); ++it) {
        bots.insert(it.key(), QJsonObject{{QStringLiteral("decision"), decisionName(it->decision)},
                                          {QStringLiteral("credential"), it->credential},
                                          {QStringLiteral("by"), it->by},
                                          {QStringLiteral("reason"), it->reason},
                                          {QStringLiteral("at_ms"), double(it->atMs)}});
    }
    const QJsonObject root{{QStringLiteral("version"), FormatVersion},
                           {QStringLiteral("bots"), bots}};
    QSaveFile file(m_path);
    if (!file.open(QIODevice::WriteOnly)) {
        *error = QStringLiteral("%1: %2").arg(m_path, file.errorString());
        return false;
    }
    file.setPermissions(QFileDevice::ReadOwner | QFileDevice::WriteOwner);
    file.write(QJsonDocument(root).toJson(QJsonDocument::Indented));
    if (!file.commit()) {
        *error = QStringLiteral("%1: %2").arg(m_path, file.errorString());
        return false;
    }
    return true;
}

} // namespace opconsole::security
