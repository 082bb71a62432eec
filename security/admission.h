#pragma once
// Admission decisions, as Salt keeps minion keys: an admin accepts a bot (with the credential
// it connected with) or rejects it; the decisions survive restarts in a JSON file written
// atomically (QSaveFile) before a decision is reported done. Thread-safe.

#include <QHash>
#include <QString>

#include <memory>
#include <mutex>

namespace opconsole::security {

enum class AdmissionDecision : quint8
{
    None,     // never decided: held for approval (or admitted, when admission is open)
    Accepted, // admitted with `credential`; another credential is held again
    Rejected, // refused whatever its credential, until accepted again
};

struct AdmissionRecord
{
    AdmissionDecision decision = AdmissionDecision::None;
    QString credential; // "cert:...", "token:NAME", "none"
    QString by;         // who decided
    QString reason;
    qint64 atMs = 0;
};

class AdmissionStore
{
public:
    static constexpr int MaxRecords = 1'000'000;

    // Reads `path` if it exists (an empty path keeps decisions in memory only). nullptr with
    // *error when the file is unreadable or malformed: never started with decisions lost.
    static std::unique_ptr<AdmissionStore> open(const QString &path, QString *error);

    AdmissionRecord find(const QString &botId) const;
    // Records the decision and writes the file; false with *error (the decision is then not
    // taken: memory keeps what the file has).
    bool decide(const QString &botId, const AdmissionRecord &record, QString *error);
    QString path() const { return m_path; }
    int size() const;

private:
    bool save(const QHash<QString, AdmissionRecord> &records, QString *error) const;

    QString m_path;
    std::mutex m_writeMutex;    // one decision (and file write) at a time
    mutable std::mutex m_mutex; // m_records, held only to read or swap it
    QHash<QString, AdmissionRecord> m_records;
};

QString decisionName(AdmissionDecision decision);

} // namespace opconsole::security
