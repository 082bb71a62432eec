#include "confirm.h"

#include <QComboBox>
#include <QCoreApplication>
#include <QDialog>
#include <QDialogButtonBox>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSettings>
#include <QSpinBox>
#include <QStyle>
#include <QVBoxLayout>

#include <algorithm>
#include <chrono>

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
const QString batchKey = QStringLiteral("send/rolloutBatch");
const QString batchUnitKey = QStringLiteral("send/rolloutBatchUnit");   // "percent" or "count"
const QString abortAboveKey = QStringLiteral("send/rolloutAbortAbove"); // -1: never
const QString waveDelayKey = QStringLiteral("send/rolloutWaveDelay");   // seconds
constexpr int MaxBatchCount = 1'000'000;       // RolloutOptions::MaxBatchCount
constexpr int MaxWaveDelaySeconds = 24 * 3600; // RolloutOptions::MaxWaveDelay

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

namespace {

FanOutDecision ask(QWidget *parent, const QSet<CommandKind> &kinds, const QStringList &bots,
                   const QString &selector, bool offerWaves)
{
    FanOutDecision decision;
    QStringList distinct = bots;
    distinct.removeDuplicates();
    const bool destructive = std::any_of(kinds.cbegin(), kinds.cend(), isDestructive);
    if (!destructive || distinct.size() <= confirmAbove()) {
        decision.go = FanOutDecision::Go::AtOnce;
        return decision;
    }
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
    const QString how =
        offerWaves ? tr("\n\nThe command goes to each of them at once, or in waves: a wave starts "
                        "once the one before has every answer and the delay has passed, and "
                        "none does after a wave failed above the threshold. This is asked "
                        "above %1 bots (Settings > Confirm fan-outs).")
                         .arg(confirmAbove())
                   : tr("\n\nThe command goes to each of them at once. This is asked above "
                        "%1 bots (Settings > Confirm fan-outs).")
                         .arg(confirmAbove());

    QDialog dialog(parent);
    dialog.setObjectName(QStringLiteral("fanOutConfirm"));
    dialog.setWindowTitle(tr("Send to %1 bots?").arg(n));
    auto *layout = new QVBoxLayout(&dialog);
    auto *top = new QHBoxLayout;
    auto *icon = new QLabel;
    const int iconSize = dialog.style()->pixelMetric(QStyle::PM_MessageBoxIconSize);
    icon->setPixmap(dialog.style()->standardIcon(QStyle::SP_MessageBoxWarning).pixmap(iconSize));
    icon->setAlignment(Qt::AlignTop);
    top->addWidget(icon);
    // Named as QMessageBox names its text (the tests read it there).
    auto *text = new QLabel(question + QStringLiteral("\n\n") + someOf(distinct) + how);
    text->setObjectName(QStringLiteral("qt_msgbox_label"));
    text->setTextFormat(Qt::PlainText);
    text->setWordWrap(true);
    text->setTextInteractionFlags(Qt::TextSelectableByMouse);
    top->addWidget(text, 1);
    layout->addLayout(top);

    auto *buttons = new QDialogButtonBox(QDialogButtonBox::Cancel);
    QPushButton *cancel = buttons->button(QDialogButtonBox::Cancel);
    QPushButton *go = buttons->addButton(tr("%1 all %2 bots at once").arg(what).arg(n),
                                         QDialogButtonBox::AcceptRole);
    go->setObjectName(QStringLiteral("fanOutGo"));
    QPushButton *waves = nullptr;
    QSpinBox *batch = nullptr;
    QComboBox *unit = nullptr;
    QDoubleSpinBox *abortAbove = nullptr;
    QSpinBox *delay = nullptr;
    auto plan = [&] {
        RolloutPlan p;
        if (unit->currentIndex() == 0)
            p.batchPercent = batch->value();
        else
            p.batchCount = batch->value();
        if (abortAbove->value() >= 0)
            p.abortAbovePercent = abortAbove->value();
        p.waveDelay = std::chrono::seconds(delay->value());
        return p;
    };
    if (offerWaves) {
        auto *box = new QGroupBox(tr("Roll out in waves"));
        box->setObjectName(QStringLiteral("fanOutWaves"));
        auto *form = new QFormLayout(box);
        batch = new QSpinBox;
        batch->setObjectName(QStringLiteral("rolloutBatch"));
        unit = new QComboBox;
        unit->setObjectName(QStringLiteral("rolloutBatchUnit"));
        unit->addItems({tr("% of the bots"), tr("bots")});
        auto *batchRow = new QHBoxLayout;
        batchRow->addWidget(batch, 1);
        batchRow->addWidget(unit);
        form->addRow(tr("&Batch:"), batchRow);
        abortAbove = new QDoubleSpinBox;
        abortAbove->setObjectName(QStringLiteral("rolloutAbortAbove"));
        abortAbove->setRange(-1, 100);
        abortAbove->setDecimals(1);
        abortAbove->setSuffix(QStringLiteral(" %"));
        abortAbove->setSpecialValueText(tr("never"));
        abortAbove->setToolTip(tr("A wave whose failed share (rejected, expired, not connected, "
                                  "disconnected, refused) is above this stops the rollout"));
        form->addRow(tr("&Abort above:"), abortAbove);
        delay = new QSpinBox;
        delay->setObjectName(QStringLiteral("rolloutWaveDelay"));
        delay->setRange(0, MaxWaveDelaySeconds);
        delay->setSuffix(QStringLiteral(" s"));
        form->addRow(tr("Wave &delay:"), delay);
        layout->addWidget(box);

        const RolloutPlan defaults = rolloutDefaults();
        unit->setCurrentIndex(defaults.batchCount > 0 ? 1 : 0);
        auto limits = [batch, unit, n] {
            batch->setRange(1, unit->currentIndex() == 0 ? 100 : std::min(n, MaxBatchCount));
        };
        limits();
        batch->setValue(defaults.batchCount > 0 ? defaults.batchCount : defaults.batchPercent);
        abortAbove->setValue(defaults.abortAbovePercent.value_or(-1.0));
        delay->setValue(
            int(std::chrono::duration_cast<std::chrono::seconds>(defaults.waveDelay).count()));

        waves = buttons->addButton(QString(), QDialogButtonBox::AcceptRole);
        waves->setObjectName(QStringLiteral("fanOutRollout"));
        auto label = [waves, &plan, n] {
            const RolloutPlan p = plan();
            const int count = p.waves(n);
            waves->setText(count == 1 ? tr("Roll out in 1 wave")
                                      : tr("Roll out in %1 waves").arg(count));
            waves->setToolTip(tr("Waves of %1 bots").arg(p.waveSize(n)));
        };
        label();
        QObject::connect(unit, &QComboBox::currentIndexChanged, &dialog, [limits, label] {
            limits();
            label();
        });
        QObject::connect(batch, &QSpinBox::valueChanged, &dialog, label);
    }
    layout->addWidget(buttons);
    cancel->setDefault(true);
    cancel->setFocus();
    QAbstractButton *clicked = nullptr;
    QObject::connect(buttons, &QDialogButtonBox::clicked, &dialog,
                     [&clicked, &dialog, cancel](QAbstractButton *button) {
                         clicked = button;
                         if (button == cancel)
                             dialog.reject();
                         else
                             dialog.accept();
                     });
    if (dialog.exec() != QDialog::Accepted)
        return decision;
    if (clicked == go) {
        decision.go = FanOutDecision::Go::AtOnce;
    } else if (waves && clicked == waves) {
        decision.go = FanOutDecision::Go::InWaves;
        decision.rollout = plan();
        setRolloutDefaults(decision.rollout);
    }
    return decision;
}

} // namespace

RolloutPlan rolloutDefaults()
{
    const QSettings settings;
    RolloutPlan plan;
    const int batch = settings.value(batchKey, 10).toInt();
    if (settings.value(batchUnitKey).toString() == QLatin1String("count"))
        plan.batchCount = std::clamp(batch, 1, MaxBatchCount);
    else
        plan.batchPercent = std::clamp(batch, 1, 100);
    const double abortAbove = settings.value(abortAboveKey, 5.0).toDouble();
    if (abortAbove >= 0)
        plan.abortAbovePercent = std::min(abortAbove, 100.0);
    plan.waveDelay = std::chrono::seconds(
        std::clamp(settings.value(waveDelayKey, 10).toInt(), 0, MaxWaveDelaySeconds));
    return plan;
}

void setRolloutDefaults(const RolloutPlan &plan)
{
    QSettings settings;
    const bool count = plan.batchCount > 0;
    settings.setValue(batchKey, count ? plan.batchCount : plan.batchPercent);
    settings.setValue(batchUnitKey, count ? QStringLiteral("count") : QStringLiteral("percent"));
    settings.setValue(abortAboveKey, plan.abortAbovePercent.value_or(-1.0));
    settings.setValue(
        waveDelayKey,
        int(std::chrono::duration_cast<std::chrono::seconds>(plan.waveDelay).count()));
}

FanOutDecision confirmFanOut(QWidget *parent, const CommandSpec &spec, const QStringList &bots,
                             const QString &selector, bool offerWaves)
{
    return ask(parent, QSet<CommandKind>{spec.kind}, bots, selector, offerWaves);
}

bool confirmFanOut(QWidget *parent, const QSet<CommandKind> &kinds, const QStringList &bots,
                   const QString &selector)
{
    return ask(parent, kinds, bots, selector, false).go == FanOutDecision::Go::AtOnce;
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
