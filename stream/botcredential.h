#pragma once
// Internal to stream/: what a bot's stream proved about its caller before Hello (a client
// certificate, a bot token, or nothing on a hub that asks for neither), and which bot ids
// that lets it claim. Built once per stream (HubPrivate::identify), immutable afterwards.

#include "tokens.h"

#include <QString>
#include <QStringList>

#include <atomic>
#include <memory>
#include <vector>

namespace opconsole {

struct BotCredential
{
    // "cert:<16 hex of its SHA-256>", "token:<name>", both joined by '+', or "none".
    QString key = QStringLiteral("none");
    bool hasCertificate = false;
    QStringList certificateNames; // its subject alternative names (or common name)
    bool hasToken = false;
    security::BotTokenEntry token;
    // Streams open with each part of this credential (its certificate, its token), shared by
    // them: the limit holds per part, so a certificate with many tokens gets no more streams.
    std::vector<std::shared_ptr<std::atomic<int>>> streams;

    bool anonymous() const { return !hasCertificate && !hasToken; }
    // Every credential presented must cover the id (a certificate and a token: both).
    bool covers(const QString &botId) const
    {
        if (hasCertificate && !certificateNames.contains(botId))
            return false;
        return !hasToken || token.covers(botId);
    }
};

} // namespace opconsole
