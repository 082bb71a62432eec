#include "botdetails.h"

#include <QApplication>
#include <QClipboard>
#include <QDateTime>
#include <QDialogButtonBox>
#include <QLabel>
#include <QPushButton>
#include <QScrollArea>
#include <QVBoxLayout>

namespace opconsole {

namespace {

QString tr(const char *text, const char *disambiguation = nullptr, int n = -1)
{
    return QCoreApplication::translate("opconsole::BotDetails", text, disambiguation, n);
}

QString esc(const QString &s)
{
    return s.toHtmlEscaped();
}

// "14:02:11 (3 min ago)"
QString when(qint64 ms, qint64 nowMs)
{
    if (ms <= 0)
        return tr("never");
    const qint64 ago = std::max<qint64>(0, (nowMs - ms) / 1000);
    const QString age = ago < 120    ? tr("%1 s ago").arg(ago)
                        : ago < 7200 ? tr("%1 min ago").arg(ago / 60)
                                     : tr("%1 h ago").arg(ago / 3600);
    const QDateTime at = QDateTime::fromMSecsSinceEpoch(ms);
    const bool today = at.date() == QDateTime::fromMSecsSinceEpoch(nowMs).date();
    return QStringLiteral("%1 (%2)").arg(
        at.toString(today ? QStringLiteral("HH:mm:ss") : QStringLiteral("yyyy-MM-dd HH:mm:ss")),
        age);
}

QString mapRows(const QMap<QString, QString> &map)
{
    QString rows;
    for (auto it = map.cbegin(); it != map.cend(); ++it)
        rows +=
            QStringLiteral("<tr><td>%1</td><td>%2</td></tr>").arg(esc(it.key()), esc(it.value()));
    return rows;
}

} // namespace

QString botDetailsHtml(const BotInfo &bot, int inFlight, const QString &lastLatency, qint64 nowMs)
{
    QString html = QStringLiteral("<h3>%1</h3><table cellspacing=3>").arg(esc(bot.botId));
    auto row = [&html](const QString &name, const QString &value) {
        html += QStringLiteral("<tr><td><b>%1</b></td><td>%2</td></tr>").arg(name, value);
    };
    if (!bot.hub.isEmpty())
        row(tr("Hub"), esc(bot.hub));
    if (!bot.holder.isEmpty() && bot.holder != bot.hub)
        row(tr("Held by"), tr("%1 (cluster)").arg(esc(bot.holder)));
    row(tr("Connection"), bot.connected
                              ? tr("connected since %1").arg(when(bot.connectedAtMs, nowMs))
                              : tr("disconnected since %1%2")
                                    .arg(when(bot.disconnectedAtMs, nowMs),
                                         bot.disconnectReason.isEmpty()
                                             ? QString()
                                             : QStringLiteral(": ") + esc(bot.disconnectReason)));
    row(tr("State"), bot.state.isEmpty() ? tr("not reported") : esc(bot.state));
    row(tr("Version"), bot.botVersion.isEmpty() ? tr("not reported") : esc(bot.botVersion));
    row(tr("Session"), tr("%1 (%n session(s) this run)", nullptr, bot.connects).arg(bot.session));
    row(tr("Last seen"), when(bot.lastSeenMs, nowMs));
    const QString admission = bot.admission == BotAdmission::Accepted   ? tr("accepted")
                              : bot.admission == BotAdmission::Awaiting ? tr("awaiting approval")
                                                                        : tr("rejected");
    row(tr("Admission"), bot.credential.isEmpty()
                             ? admission
                             : tr("%1, with %2").arg(admission, esc(bot.credential)));
    row(tr("In flight"), QString::number(inFlight));
    row(tr("Last latency"), lastLatency.isEmpty() ? tr("no answer yet") : esc(lastLatency));
    html += QStringLiteral("</table>");
    html += QStringLiteral("<p><b>%1</b></p>").arg(tr("Labels"));
    html += bot.labels.isEmpty()
                ? tr("<p>none</p>")
                : QStringLiteral("<table cellspacing=3>%1</table>").arg(mapRows(bot.labels));
    html += QStringLiteral("<p><b>%1</b></p>").arg(tr("Last status"));
    html += bot.status.isEmpty()
                ? tr("<p>none reported</p>")
                : QStringLiteral("<table cellspacing=3>%1</table>").arg(mapRows(bot.status));
    return html;
}

BotDetailsDialog::BotDetailsDialog(QWidget *parent) : QDialog(parent)
{
    setObjectName(QStringLiteral("botDetails"));
    auto *layout = new QVBoxLayout(this);
    m_text = new QLabel;
    m_text->setObjectName(QStringLiteral("botDetailsText"));
    m_text->setTextFormat(Qt::RichText);
    m_text->setTextInteractionFlags(Qt::TextSelectableByMouse | Qt::TextSelectableByKeyboard);
    m_text->setAlignment(Qt::AlignTop | Qt::AlignLeft);
    auto *scroll = new QScrollArea;
    scroll->setWidget(m_text);
    scroll->setWidgetResizable(true);
    scroll->setFrameShape(QFrame::NoFrame);
    layout->addWidget(scroll, 1);
    auto *buttons = new QDialogButtonBox(QDialogButtonBox::Close);
    auto *ping = buttons->addButton(tr("&Ping"), QDialogButtonBox::ActionRole);
    ping->setObjectName(QStringLiteral("botPing"));
    auto *commands = buttons->addButton(tr("Its &commands"), QDialogButtonBox::ActionRole);
    commands->setObjectName(QStringLiteral("botCommands"));
    m_history = buttons->addButton(tr("&History"), QDialogButtonBox::ActionRole);
    m_history->setObjectName(QStringLiteral("botHistory"));
    auto *copy = buttons->addButton(tr("Copy &id"), QDialogButtonBox::ActionRole);
    connect(ping, &QPushButton::clicked, this, [this] { emit pingRequested(m_botId); });
    connect(commands, &QPushButton::clicked, this, [this] { emit commandsRequested(m_botId); });
    connect(m_history, &QPushButton::clicked, this, [this] { emit historyRequested(m_botId); });
    connect(copy, &QPushButton::clicked, this,
            [this] { QApplication::clipboard()->setText(m_botId); });
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::close);
    layout->addWidget(buttons);
    resize(460, 520);
}

QString BotDetailsDialog::text() const
{
    return m_text->text();
}

void BotDetailsDialog::showBot(const BotInfo &bot, int inFlight, const QString &lastLatency)
{
    m_botId = bot.botId;
    setWindowTitle(tr("Bot %1").arg(bot.botId));
    m_text->setText(
        botDetailsHtml(bot, inFlight, lastLatency, QDateTime::currentMSecsSinceEpoch()));
    if (isHidden())
        QDialog::show();
}

void BotDetailsDialog::setHistoryAvailable(bool available)
{
    m_history->setEnabled(available);
}

} // namespace opconsole
