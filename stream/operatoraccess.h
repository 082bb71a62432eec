#pragma once
// Internal to stream/: who calls the Operator API, and what they may do (docs/security.md).
// Every method asks authorize() first; sends are charged against the caller's rate, and a
// scoped operator's commands to bots outside its labels are refused.

#include "botinfo.h"
#include "hub.h"
#include "operatorservice.h"
#include "tokens.h"

#include <QMap>
#include <QString>

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <unordered_map>

namespace opconsole {

struct Caller
{
    QString name; // the token's name; "operator@<peer>" without tokens
    security::Role role = security::Role::None;
    QMap<QString, QString> scope;
    bool authenticated = false;
};

class OperatorAccess
{
public:
    // Before the listener starts (not locked).
    void configure(OperatorAccessOptions options) { m_options = std::move(options); }

    // OK with *caller filled; else the status to end the call with (UNAUTHENTICATED without
    // a known token, PERMISSION_DENIED below `needed`).
    grpc::Status authorize(const grpc::CallbackServerContext &context, security::Role needed,
                           const char *method, Caller *caller);
    // One send (SendCommand, SendToMany) against the caller's rate: RESOURCE_EXHAUSTED past it.
    grpc::Status chargeSend(const Caller &caller, const char *method);
    // Why `caller` may not command the bot (empty: it may). A bot the hub does not know is
    // outside every scope: its labels are not known.
    static QString outOfScope(const Caller &caller, const QString &botId,
                              const std::optional<BotInfo> &bot);
    // The per-bot check a scoped caller's sends carry (SendOptions::admit): outOfScope, with
    // each refusal counted and reported for `method`. Empty for an unscoped caller.
    std::function<QString(const QString &botId)>
    scopeCheck(const Caller &caller, const char *method, const CommandService &commands);
    // Refused for scope by a method itself: counted and reported like the others.
    grpc::Status denied(const Caller &caller, const char *method, const QString &why);

    OperatorAccessCounters counters() const;
    bool asksTokens() const { return m_options.operators != nullptr; }

    // Reports a refusal (for the log), within 20 a second; the rest are counted only.
    std::function<void(const QString &caller, const QString &method, const QString &why)> onRefused;

private:
    grpc::Status refuse(grpc::StatusCode code, const QString &caller, const char *method,
                        const QString &why, std::atomic<quint64> &counter);

    OperatorAccessOptions m_options;
    struct Bucket
    {
        double tokens = 0;
        std::chrono::steady_clock::time_point refilled;
    };
    std::mutex m_mutex;
    std::unordered_map<QString, Bucket> m_rates; // by operator name
    Bucket m_reports{40, std::chrono::steady_clock::now()};
    std::atomic<quint64> m_unauthenticated{0}, m_permissionDenied{0}, m_rateLimited{0},
        m_unreported{0};
};

} // namespace opconsole
