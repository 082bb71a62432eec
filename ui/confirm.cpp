#include "confirm.h"

#include <QCoreApplication>
#include <QDialog>
#include <QDialogButtonBox>
#include <QLabel>
#include <QLineEdit>
#include <QMessageBox>
#include <QPushButton>
#include <QSettings>
#include <QVBoxLayout>

namespace opconsole {

namespace {

QString tr(const char *text, const char *disambiguation = nullptr, int n = -1)
{
    return QCoreApplication::translate("opconsole::Confirm", text, disambiguation, n);
}

// The first ten names, and an ellipsis for the rest.
QString someOf(const QStringList &names)
{
    constexpr int MaxNamed = 10;
    return names.mid(0, MaxNamed).join(QStringLiteral(", ")) +
           (names.size() > MaxNamed ? QStringLiteral(", …") : QString());
}

const QString confirmKey = QStringLiteral("send/confirmAbove");

} // namespace

bool isDestructive(CommandKind kind)
{
    return kind == CommandKind::Stop || kind == CommandKind::Restart ||
           kind == CommandKind::ConfigUpdate;
}

int confirmAbove()
{
    bool ok = false;
    const int n = QSettings().value(confirmKey, 10).toInt(&ok);
    return ok && n >= 0 ? n : 10;
}

void setConfirmAbove(int bots)
{
    QSettings().setValue(confirmKey, std::max(0, bots));
}

bool confirmFanOut(QWidget *parent, const CommandSpec &spec, const QStringList &bots,
                   const QString &selector)
{
    return confirmFanOut(parent, QSet<CommandKind>{spec.kind}, bots, selector);
}

bool confirmFanOut(QWidget *parent, const QSet<CommandKind> &kinds, const QStringList &bots,
                   const QString &selector)
{
    QStringList distinct = bots;
    distinct.removeDuplicates();
    const bool destructive = std::any_of(kinds.cbegin(), kinds.cend(), isDestructive);
    if (!destructive || distinct.size() <= confirmAbove())
        return true;
    const CommandKind kind = kinds.size() == 1 ? *kinds.cbegin() : CommandKind::Custom;
    const QString what = kinds.size() > 1               ? tr("Stop, restart or reconfigure")
                         : kind == CommandKind::Stop    ? tr("Stop")
                         : kind == CommandKind::Restart ? tr("Restart")
                                                        : tr("Update the config of");
    const int n = int(distinct.size());
    // All of it plain text: bot ids and the filter come from bots and operators, and the
    // question that guards a fan-out must show them as they are.
    const QString question =
        selector.isEmpty()
            ? tr("%1 %2 bots?").arg(what).arg(n)
            : tr("%1 %2 bots, chosen with the fleet filter “%3”?").arg(what).arg(n).arg(selector);
    QMessageBox box(QMessageBox::Warning, tr("Send to %1 bots?").arg(n),
                    question + QStringLiteral("\n\n") + someOf(distinct) +
                        tr("\n\nThe command goes to each of them at once. This is asked above "
                           "%1 bots (Settings > Confirm fan-outs).")
                            .arg(confirmAbove()),
                    QMessageBox::Cancel, parent);
    box.setObjectName(QStringLiteral("fanOutConfirm"));
    box.setTextFormat(Qt::PlainText);
    QPushButton *go = box.addButton(tr("%1 %2 bots").arg(what).arg(n), QMessageBox::AcceptRole);
    go->setObjectName(QStringLiteral("fanOutGo"));
    box.setDefaultButton(QMessageBox::Cancel);
    box.exec();
    return box.clickedButton() == go;
}

std::optional<QString> confirmDecision(QWidget *parent, BotDecision decision,
                                       const QList<BotInfo> &bots)
{
    const bool revoke = decision == BotDecision::Revoke;
    QStringList names;
    for (const BotInfo &bot : bots)
        names << (bot.credential.isEmpty() ? bot.botId
                                           : tr("%1 (%2)").arg(bot.botId, bot.credential));
    const QString which = names.size() == 1
                              ? names.first()
                              : tr("these %1 bots: %2").arg(names.size()).arg(someOf(names));
    QDialog dialog(parent);
    dialog.setObjectName(QStringLiteral("decisionDialog"));
    dialog.setWindowTitle(revoke ? tr("Revoke bots") : tr("Reject bots"));
    auto *layout = new QVBoxLayout(&dialog);
    auto *question = new QLabel(
        revoke ? tr("Revoke %1?\n\nIt is disconnected at once, its pending commands fail, and it "
                    "is refused whenever it connects until an admin accepts it again.")
                     .arg(which)
               : tr("Reject %1?\n\nIt is refused whenever it connects, until an admin accepts "
                    "it again.")
                     .arg(which));
    question->setTextFormat(Qt::PlainText);
    question->setWordWrap(true);
    layout->addWidget(question);
    layout->addSpacing(6);
    auto *reasonLabel = new QLabel(tr("&Reason (optional, kept with the decision and told to the "
                                      "bot):"));
    auto *reasonEdit = new QLineEdit;
    reasonEdit->setObjectName(QStringLiteral("decisionReason"));
    reasonEdit->setMaxLength(1000);
    reasonLabel->setBuddy(reasonEdit);
    layout->addWidget(reasonLabel);
    layout->addWidget(reasonEdit);
    auto *buttons = new QDialogButtonBox(QDialogButtonBox::Cancel);
    QPushButton *confirm =
        buttons->addButton(revoke ? tr("Revoke") : tr("Reject"), QDialogButtonBox::AcceptRole);
    confirm->setObjectName(QStringLiteral("decisionConfirm"));
    confirm->setDefault(true);
    layout->addWidget(buttons);
    QObject::connect(buttons, &QDialogButtonBox::accepted, &dialog, &QDialog::accept);
    QObject::connect(buttons, &QDialogButtonBox::rejected, &dialog, &QDialog::reject);
    reasonEdit->setFocus();
    if (dialog.exec() != QDialog::Accepted)
        return std::nullopt;
    return reasonEdit->text().trimmed();
}

} // namespace opconsole
