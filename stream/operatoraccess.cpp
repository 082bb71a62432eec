#include "operatoraccess.h"

#include "botsession.h"
#include "operatorrequest.h"
#include "protoconvert.h"

namespace opconsole {

using convert::fromStd;
using convert::toStd;

grpc::Status OperatorAccess::refuse(grpc::StatusCode code, const QString &caller,
                                    const char *method, const QString &why,
                                    std::atomic<quint64> &counter)
{
    ++counter;
    bool report;
    {
        std::lock_guard lock(m_mutex);
        report = BotSession::allowed(m_reports.tokens, m_reports.refilled, 20);
    }
    if (report && onRefused)
        onRefused(caller, QString::fromLatin1(method), why);
    else if (!report)
        ++m_unreported;
    return grpc::Status(code, toStd(why));
}

grpc::Status OperatorAccess::authorize(const grpc::CallbackServerContext &context,
                                       security::Role needed, const char *method, Caller *caller)
{
    if (!m_options.operators) {
        // A hub that asks no token (its operator listener reaches this machine only, or
        // --insecure): every caller may do everything, known by its address.
        caller->name = api::issuerOf(context.peer());
        caller->role = security::Role::Admin;
        caller->authenticated = false;
        return grpc::Status::OK;
    }
    const auto &metadata = context.client_metadata();
    const auto it = metadata.find("authorization");
    const QString peer = fromStd(context.peer());
    if (it == metadata.end())
        return refuse(grpc::StatusCode::UNAUTHENTICATED, peer, method,
                      QStringLiteral("this hub needs an operator token (opctl --token-file)"),
                      m_unauthenticated);
    const QByteArray token =
        security::bearerToken(std::string_view(it->second.data(), it->second.size()));
    const auto identity = token.isEmpty() ? std::nullopt : m_options.operators->find(token);
    if (!identity)
        return refuse(grpc::StatusCode::UNAUTHENTICATED, peer, method,
                      QStringLiteral("unknown or malformed operator token"), m_unauthenticated);
    caller->name = identity->name;
    caller->role = identity->role;
    caller->scope = identity->scope;
    caller->authenticated = true;
    if (identity->role < needed)
        return refuse(grpc::StatusCode::PERMISSION_DENIED, caller->name, method,
                      QStringLiteral("%1 needs the %2 role; %3 is %4")
                          .arg(QString::fromLatin1(method), security::roleName(needed),
                               identity->name, security::roleName(identity->role)),
                      m_permissionDenied);
    return grpc::Status::OK;
}

grpc::Status OperatorAccess::chargeSend(const Caller &caller, const char *method)
{
    if (!caller.authenticated || m_options.sendsPerSecond <= 0)
        return grpc::Status::OK;
    bool allowed;
    {
        std::lock_guard lock(m_mutex);
        auto [it, fresh] = m_rates.try_emplace(caller.name);
        if (fresh)
            it->second = {2 * m_options.sendsPerSecond, std::chrono::steady_clock::now()};
        allowed =
            BotSession::allowed(it->second.tokens, it->second.refilled, m_options.sendsPerSecond);
    }
    if (allowed)
        return grpc::Status::OK;
    return refuse(grpc::StatusCode::RESOURCE_EXHAUSTED, caller.name, method,
                  QStringLiteral("%1 sends more than %2 a second")
                      .arg(caller.name)
                      .arg(m_options.sendsPerSecond),
                  m_rateLimited);
}

QString OperatorAccess::outOfScope(const Caller &caller, const QString &botId,
                                   const std::optional<BotInfo> &bot)
{
    if (caller.scope.isEmpty())
        return {};
    if (bot && bot->matches(caller.scope))
        return {};
    return QStringLiteral("permission denied: %1 may command bots with %2 only; %3 is outside")
        .arg(caller.name, security::selectorText(caller.scope), botId);
}

std::function<QString(const QString &)>
OperatorAccess::scopeCheck(const Caller &caller, const char *method, const CommandService &commands)
{
    if (caller.scope.isEmpty())
        return {};
    return [this, caller, method, &commands](const QString &botId) {
        QString why = outOfScope(caller, botId, commands.findBot(botId));
        if (!why.isEmpty())
            denied(caller, method, why);
        return why;
    };
}

grpc::Status OperatorAccess::denied(const Caller &caller, const char *method, const QString &why)
{
    return refuse(grpc::StatusCode::PERMISSION_DENIED, caller.name, method, why,
                  m_permissionDenied);
}

OperatorAccessCounters OperatorAccess::counters() const
{
    OperatorAccessCounters c;
    c.unauthenticated = m_unauthenticated;
    c.permissionDenied = m_permissionDenied;
    c.rateLimited = m_rateLimited;
    c.unreported = m_unreported;
    return c;
}

} // namespace opconsole
