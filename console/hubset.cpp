#include "hubset.h"

#include <QJsonDocument>
#include <QJsonObject>

#include <limits>

#include <QDateTime>
#include <QRandomGenerator>
#include <QSet>

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
        connect(hub.get(), &ConsoleBackend::identityChanged, this,
                &ConsoleBackend::identityChanged);
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

std::optional<BotInfo> HubSet::botInfo(const QString &botId) const
{
    for (const auto &hub : m_hubs)
        if (const BotInfo *b = hub->bot(botId))
            return *b;
    return std::nullopt;
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

bool HubSet::canRollOut() const
{
    return std::any_of(m_hubs.cbegin(), m_hubs.cend(),
                       [](const auto &hub) { return hub->canRollOut(); });
}

SendReceipt HubSet::sendRollout(const QStringList &botIds, const CommandSpec &spec,
                                std::chrono::milliseconds timeout, const RolloutPlan &plan)
{
    SendReceipt receipt;
    if (receipt.error = rolloutProblem(botIds, spec); !receipt.ok())
        return receipt;
    QSet<int> hubs;
    for (const QString &bot : botIds) {
        const int i = m_hubs.size() == 1 ? 0 : hubOf(bot);
        if (i < 0) {
            receipt.error = tr("no attached hub knows bot %1").arg(bot);
            return receipt;
        }
        hubs.insert(i);
    }
    if (hubs.size() > 1) {
        receipt.error = tr("a rollout across several hubs is not supported: these bots are on "
                           "%1 hubs; select the bots of one hub, or send to all at once")
                            .arg(hubs.size());
        return receipt;
    }
    const int i = *hubs.cbegin();
    if (m_hubs[size_t(i)]->link() != Link::Live) {
        receipt.error = tr("hub %1 is not attached (%2); nothing was sent")
                            .arg(m_addresses.at(i), m_hubs[size_t(i)]->linkProblem());
        return receipt;
    }
    return m_hubs[size_t(i)]->sendRollout(botIds, spec, timeout, plan);
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

ConsoleIdentity HubSet::identity() const
{
    if (m_hubs.size() == 1)
        return m_hubs.front()->identity();
    ConsoleIdentity out;
    QStringList names;
    bool first = true;
    for (const auto &hub : m_hubs) {
        const ConsoleIdentity one = hub->identity();
        if (!one.name.isEmpty() && !names.contains(one.name))
            names << one.name;
        out.role = first ? one.role : std::min(out.role, one.role);
        out.authenticated = first ? one.authenticated : out.authenticated && one.authenticated;
        if (first)
            out.scope = one.scope;
        else if (out.scope != one.scope)
            out.scope.clear();
        first = false;
    }
    out.name = names.join(QStringLiteral(", "));
    return out;
}

bool HubSet::canDecide(const QString &hub) const
{
    if (!hub.isEmpty()) {
        const qsizetype i = m_addresses.indexOf(hub);
        return i >= 0 && m_hubs[size_t(i)]->canDecide();
    }
    return std::any_of(m_hubs.begin(), m_hubs.end(),
                       [](const auto &remote) { return remote->canDecide(); });
}

QFuture<DecisionReply> HubSet::decideBot(const QString &botId, BotDecision decision,
                                         const QString &reason, const QString &hub,
                                         const QString &credential)
{
    const qsizetype i =
        hub.isEmpty() ? (m_hubs.size() == 1 ? 0 : hubOf(botId)) : m_addresses.indexOf(hub);
    if (i < 0) {
        DecisionReply reply;
        reply.error = hub.isEmpty() ? tr("no attached hub knows bot %1").arg(botId)
                                    : tr("this console is not attached to hub %1").arg(hub);
        return QtFuture::makeReadyFuture(reply);
    }
    return m_hubs[size_t(i)]->decideBot(botId, decision, reason, {}, credential);
}

QFuture<HistoryPage> HubSet::queryHistory(const HistoryQuery &query)
{
    if (m_hubs.size() == 1)
        return m_hubs.front()->queryHistory(query);
    // The token says, per hub index, where that hub goes on: {"0": {"t": "<its token>"},
    // "1": {"u": <before this ms>}}; a hub missing from a token is done. An empty token: every
    // hub from its newest.
    struct Ask
    {
        int hub;
        QJsonObject at; // what it was asked with, to ask again after a failure
    };
    QList<Ask> asks;
    if (query.pageToken.isEmpty()) {
        for (int i = 0; i < int(m_hubs.size()); ++i)
            asks.append({i, QJsonObject{{QStringLiteral("t"), QString()}}});
    } else {
        auto bad = [] {
            HistoryPage page;
            page.error = tr("malformed page token");
            page.badToken = true;
            return QtFuture::makeReadyFuture(page);
        };
        if (query.pageToken.size() > 4096)
            return bad();
        const QJsonDocument doc = QJsonDocument::fromJson(query.pageToken.toUtf8());
        if (!doc.isObject())
            return bad();
        const QJsonObject tokens = doc.object();
        for (auto it = tokens.begin(); it != tokens.end(); ++it) {
            bool ok = false;
            const int hub = it.key().toInt(&ok);
            const QJsonObject at = it.value().toObject();
            const bool token = at.size() == 1 && at.value(QStringLiteral("t")).isString() &&
                               at.value(QStringLiteral("t")).toString().size() <= 64;
            const double until = at.value(QStringLiteral("u")).toDouble(-1);
            const bool before =
                at.size() == 1 && until >= 1 && until < 9e15 && until == double(qint64(until));
            if (!ok || hub < 0 || hub >= int(m_hubs.size()) || !(token || before))
                return bad();
            asks.append({hub, at});
        }
    }
    QList<QFuture<HistoryPage>> pages;
    for (const Ask &ask : std::as_const(asks)) {
        HistoryQuery one = query;
        one.pageToken = ask.at.value(QStringLiteral("t")).toString();
        if (ask.at.contains(QStringLiteral("u"))) {
            const auto before = qint64(ask.at.value(QStringLiteral("u")).toDouble());
            one.untilMs = query.untilMs > 0 ? std::min(query.untilMs, before) : before;
        }
        pages << m_hubs[size_t(ask.hub)]->queryHistory(one);
    }
    if (pages.isEmpty())
        return QtFuture::makeReadyFuture(HistoryPage{});
    return QtFuture::whenAll(pages.begin(), pages.end())
        .then([asks](const QList<QFuture<HistoryPage>> &done) {
            // A k-way merge that stays in time order across pages: records older than the
            // oldest one of any hub that has more to give are held back (that hub may still
            // have newer ones); their hub goes on from just before that time next page.
            QList<HistoryPage> got;
            for (const auto &f : done)
                got << (f.resultCount() > 0 ? f.result()
                                            : HistoryPage{QList<CommandOutcome>{}, QString(),
                                                          QStringLiteral("not answered")});
            qint64 cut = std::numeric_limits<qint64>::min();
            for (const HistoryPage &page : std::as_const(got)) {
                if (!page.error.isEmpty() || page.nextPageToken.isEmpty())
                    continue;
                // A hub with more to give: nothing older than its last record is safe to
                // show yet (an empty page of a sparse search: nothing at all is).
                cut = std::max(cut, page.records.isEmpty() ? std::numeric_limits<qint64>::max()
                                                           : page.records.last().registeredWallMs);
            }
            HistoryPage merged;
            QJsonObject next;
            QStringList errors;
            for (qsizetype k = 0; k < got.size(); ++k) {
                const HistoryPage &page = got[k];
                const QString key = QString::number(asks[k].hub);
                if (!page.error.isEmpty())
                    errors << page.error;
                if (!page.error.isEmpty() && page.records.isEmpty()) {
                    next.insert(key, asks[k].at); // asked again on the next page
                    continue;
                }
                qsizetype kept = 0;
                for (const CommandOutcome &o : page.records) {
                    if (o.registeredWallMs < cut)
                        break; // newest first: the rest is older still
                    merged.records.append(o);
                    ++kept;
                }
                if (kept < page.records.size()) {
                    if (cut == std::numeric_limits<qint64>::max())
                        next.insert(key, asks[k].at); // nothing shown: the same page again
                    else
                        next.insert(key, QJsonObject{{QStringLiteral("u"), double(cut)}});
                } else if (!page.nextPageToken.isEmpty()) {
                    next.insert(key, QJsonObject{{QStringLiteral("t"), page.nextPageToken}});
                }
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
