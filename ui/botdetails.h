#pragma once
// One bot at a glance (the fleet's double-click, its context menu's Details…): who it is,
// its connection and sessions, labels, last status, admission, what is in flight, and the
// actions on it (ping, its commands, its history, copy id). Refreshed while open.

#include "botinfo.h"

#include <QDialog>

class QLabel;
class QPushButton;

namespace opconsole {

// The dialog's text, as HTML; every text that came from a bot is escaped. `nowMs`: the wall
// clock the ages are counted to.
QString botDetailsHtml(const BotInfo &bot, int inFlight, const QString &lastLatency, qint64 nowMs);

class BotDetailsDialog final : public QDialog
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(BotDetailsDialog)

public:
    explicit BotDetailsDialog(QWidget *parent = nullptr);

    QString botId() const { return m_botId; }
    QString text() const; // as shown, for tests
    // Shows `bot` (another one, or the same one's news).
    void showBot(const BotInfo &bot, int inFlight, const QString &lastLatency);
    void setHistoryAvailable(bool available);

signals:
    void pingRequested(const QString &botId);
    void commandsRequested(const QString &botId);
    void historyRequested(const QString &botId);

private:
    QString m_botId;
    QLabel *m_text;
    QPushButton *m_history;
};

} // namespace opconsole
