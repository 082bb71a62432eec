#include "hubset.h"

#include <QJsonDocument>
#include <QJsonObject>

#include <QDateTime>
#include <QRandomGenerator>

#include <algorithm>
#include <map>

namespace opconsole {

HubSet::HubSet(const QStringList &addresses, RemoteBackend::Options options, QObject *parent)
    : ConsoleBackend(parent), m_addresses(addresses),
      m_idPrefix(QString::number(QRandomGenerator::global()->bounded(36 * 36 * 36 * 36), 36))
{
    if (!options.sequence)
        options.sequence = std::make_shared<quint64>(1); // one row order over every hub
    for (const QString &address : addresses) {
        auto hub = std::make_unique<RemoteBackend>(address, options);
        connect(hub.get(), &ConsoleBackend::commandsChanged, this,
                &ConsoleBackend::commandsChanged);
        connect(hub.get(), &ConsoleBackend::botsChanged, this, &ConsoleBackend::botsChanged);
        connect(hub.get(), &ConsoleBackend::linkChanged, this, &ConsoleBackend::linkChanged);
        connect(hub.get(), &ConsoleBackend::notice, this, &ConsoleBackend::notice);
        m_hubs.push_back(std::move(hub));
    }
}

HubSet::~HubSet() = default;

QString HubSet::address() const
{
    return m_addresses.join(QStringLiteral(", "));
}

ConsoleBackend::Link HubSet::link() const
{
    Link worst = Link::Live;
    for (const auto &hub : m_hubs) {
        if (hub->link() == Link::Down)
            return Link::Down;
        if (hub->link() == Link::Connecting)
            worst = Link::Connecting;
    }
    return worst;
}

bool HubSet::canSend() const
{
    for (const auto &hub : m_hubs)
        if (hub->link() == Link::Live)
            return true;
    return false;
}

QString HubSet::linkProblem() const
{
    QStringList problems;
    for (const auto &hub : m_hubs)
        if (hub->link() != Link::Live)
            problems << hub->linkProblem();
    return problems.join(QStringLiteral("; "));
}

QList<BotInfo> HubSet::bots() const
{
    QList<BotInfo> out;
    for (const auto &hub : m_hubs)
        out += hub->bots();
    return out;
}

QList<CommandOutcome> HubSet::commands() const
{
    QList<CommandOutcome> out;
    for (const auto &hub : m_hubs)
        out += hub->commands();
    std::sort(out.begin(), out.end(), [](const CommandOutcome &a, const CommandOutcome &b) {
        return a.sequence < b.sequence;
    });
    return out;
}

int HubSet::hubOf(const QString &botId) const
{
    // Where it is connected by an attached hub's account; else where a hub that is not
    // attached last saw it connected (a frozen view, trusted last); else where it was seen.
    int stale = -1;
    int seen = -1;
    for (int i = 0; i < size(); ++i) {
        if (const BotInfo *bot = m_hubs[size_t(i)]->bot(botId)) {
            if (bot->connected && m_hubs[size_t(i)]->link() == Link::Live)
                return i;
            if (bot->connected && stale < 0)
                stale = i;
            seen = i;
        }
    }
    return stale >= 0 ? stale : seen;
}

int HubSet::pendingCount(const QString &botId) const
{
    int n = 0;
    for (const auto &hub : m_hubs)
        n += hub->pendingCount(botId);
    return n;
}

SendReceipt HubSet::send(const QStringList &botIds, const CommandSpec &spec,
                         std::chrono::milliseconds timeout, const QString &commandId)
{
    SendReceipt receipt;
    if (botIds.isEmpty()) {
        receipt.error = tr("no bot selected");
        return receipt;
    }
    // Which hub takes which bots; refused whole if a bot has no hub or its hub is not attached.
    std::map<int, QStringList> byHub;
    for (const QString &bot : botIds) {
        const int i = m_hubs.size() == 1 ? 0 : hubOf(bot);
        if (i < 0) {
            receipt.error = tr("no attached hub knows bot %1").arg(bot);
            return receipt;
        }
        byHub[i] << bot;
    }
    for (const auto &[i, bots] : byHub) {
        if (m_hubs[size_t(i)]->link() != Link::Live) {
            receipt.error = tr("hub %1 is not attached (%2); nothing was sent")
                                .arg(m_addresses.at(i), m_hubs[size_t(i)]->linkProblem());
            return receipt;
        }
    }
    if (botIds.size() == 1)
        return m_hubs[size_t(byHub.begin()->first)]->send(botIds, spec, timeout, commandId);
    // One fan-out id on every hub involved: one tally in every console.
    const QString fanOut =
        QStringLiteral("f-%1-%2-%3")
            .arg(QString::number(QDateTime::currentMSecsSinceEpoch(), 36), m_idPrefix)
            .arg(++m_fanOuts);
    receipt.fanOut = fanOut;
    for (const auto &[i, bots] : byHub) {
        // Links were checked above and change only in this thread: no part is refused.
        receipt.commandIds += m_hubs[size_t(i)]->sendFanOut(bots, spec, timeout, fanOut).commandIds;
    }
    return receipt;
}

bool HubSet::cancel(const QString &commandId, const QString &reason, const QString &hub)
{
    if (!hub.isEmpty()) {
        const qsizetype i = m_addresses.indexOf(hub);
        return i >= 0 && m_hubs[size_t(i)]->cancel(commandId, reason);
    }
    for (const auto &remote : m_hubs)
        if (remote->knows(commandId))
            return remote->cancel(commandId, reason);
    return false;
}

QFuture<HistoryPage> HubSet::queryHistory(const HistoryQuery &query)
{
    if (m_hubs.size() == 1)
        return m_hubs.front()->queryHistory(query);
    // The token is each hub's own: {"0": "...", "2": "..."}; a hub missing from a token is done.
    QJsonObject tokens;
    if (!query.pageToken.isEmpty()) {
        const QJsonDocument doc = QJsonDocument::fromJson(query.pageToken.toUtf8());
        if (!doc.isObject() || query.pageToken.size() > 64 * 1024) {
            HistoryPage bad;
            bad.error = tr("malformed page token");
            return QtFuture::makeReadyFuture(bad);
        }
        tokens = doc.object();
    }
    QList<QFuture<HistoryPage>> pages;
    QList<int> asked;
    for (int i = 0; i < int(m_hubs.size()); ++i) {
        const QString key = QString::number(i);
        if (!query.pageToken.isEmpty() && !tokens.contains(key))
            continue;
        HistoryQuery one = query;
        one.pageToken = tokens.value(key).toString();
        pages << m_hubs[size_t(i)]->queryHistory(one);
        asked << i;
    }
    if (pages.isEmpty())
        return QtFuture::makeReadyFuture(HistoryPage{});
    return QtFuture::whenAll(pages.begin(), pages.end())
        .then([asked](const QList<QFuture<HistoryPage>> &done) {
            HistoryPage merged;
            QJsonObject next;
            QStringList errors;
            for (qsizetype k = 0; k < done.size(); ++k) {
                const HistoryPage page = done[k].result();
                if (!page.error.isEmpty())
                    errors << page.error;
                merged.records += page.records;
                if (!page.nextPageToken.isEmpty())
                    next.insert(QString::number(asked[k]), page.nextPageToken);
            }
            std::stable_sort(merged.records.begin(), merged.records.end(),
                             [](const CommandOutcome &a, const CommandOutcome &b) {
                                 return a.registeredWallMs > b.registeredWallMs;
                             });
            if (!next.isEmpty())
                merged.nextPageToken =
                    QString::fromUtf8(QJsonDocument(next).toJson(QJsonDocument::Compact));
            merged.error = errors.join(QStringLiteral("; "));
            return merged;
        });
}

} // namespace opconsole
