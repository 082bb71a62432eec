#include "sendpanel.h"

#include "theme.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSettings>
#include <QSpinBox>
#include <QStackedWidget>
#include <QTableWidget>
#include <QToolButton>
#include <QVBoxLayout>

namespace opconsole {

namespace {
double defaultTimeoutSeconds(CommandKind kind)
{
    switch (kind) {
    case CommandKind::Restart:
    case CommandKind::ConfigUpdate:
        return 10;
    case CommandKind::Custom:
        return 30;
    case CommandKind::Ping:
        return 3;
    default:
        return 5;
    }
}
} // namespace

SendPanel::SendPanel(QWidget *parent) : QWidget(parent)
{
    m_kind = new QComboBox;
    for (const QString &name : CommandSpec::kindNames())
        m_kind->addItem(name, int(*CommandSpec::kindFromName(name)));
    m_kind->setToolTip(tr("Command type"));
    m_timeout = new QDoubleSpinBox;
    m_timeout->setRange(0.05, 3600);
    m_timeout->setDecimals(2);
    m_timeout->setSuffix(tr(" s"));
    m_timeout->setToolTip(tr("How long to wait for the ack; remembered per command type"));
    m_target = new QLabel;
    m_send = new QPushButton(tr("Send"));
    m_send->setToolTip(tr("Send to the selected bots (Ctrl+Enter)"));
    m_send->setDefault(true);

    // Parameters of the selected type.
    m_params = new QStackedWidget;
    m_params->addWidget(new QWidget); // no parameters: no line spent on saying so
    auto *stop = new QWidget;
    auto *stopForm = new QFormLayout(stop);
    stopForm->setContentsMargins(0, 0, 0, 0);
    m_stopReason = new QLineEdit;
    m_stopReason->setPlaceholderText(tr("why (optional)"));
    m_graceful = new QCheckBox(tr("graceful"));
    m_graceful->setChecked(true);
    stopForm->addRow(tr("Reason"), m_stopReason);
    stopForm->addRow(QString(), m_graceful);
    m_params->addWidget(stop);
    auto *config = new QWidget;
    auto *configLayout = new QHBoxLayout(config);
    configLayout->setContentsMargins(0, 0, 0, 0);
    m_config = new QTableWidget(0, 2);
    m_config->setHorizontalHeaderLabels({tr("Key"), tr("Value")});
    m_config->horizontalHeader()->setStretchLastSection(true);
    m_config->verticalHeader()->setVisible(false);
    // Three rows and a scroll bar: the commands table keeps its room (issue 12, item 13).
    m_config->verticalHeader()->setDefaultSectionSize(m_config->fontMetrics().height() + 6);
    m_config->setMaximumHeight(m_config->horizontalHeader()->sizeHint().height() +
                               3 * m_config->verticalHeader()->defaultSectionSize() + 4);
    // The buttons beside the table, not under it.
    auto *configButtons = new QVBoxLayout;
    auto *add = new QToolButton;
    add->setObjectName(QStringLiteral("addConfigRow"));
    add->setText(tr("+"));
    add->setToolTip(tr("Add a key"));
    auto *remove = new QToolButton;
    remove->setText(tr("−"));
    remove->setToolTip(tr("Remove the selected key"));
    m_configVersion = new QSpinBox;
    m_configVersion->setRange(0, 1'000'000'000);
    m_configVersion->setPrefix(tr("version "));
    auto *addRemove = new QHBoxLayout;
    addRemove->addWidget(add);
    addRemove->addWidget(remove);
    addRemove->addStretch();
    configButtons->addLayout(addRemove);
    configButtons->addWidget(m_configVersion);
    configButtons->addStretch();
    configLayout->addWidget(m_config, 1);
    configLayout->addLayout(configButtons);
    m_params->addWidget(config);
    auto *custom = new QWidget;
    auto *customForm = new QFormLayout(custom);
    customForm->setContentsMargins(0, 0, 0, 0);
    m_customName = new QLineEdit;
    m_customName->setPlaceholderText(tr("command name"));
    m_json = new QPlainTextEdit;
    m_json->setPlaceholderText(tr("{ \"JSON\": \"payload\" }"));
    m_json->setMaximumHeight(4 * m_json->fontMetrics().height() + 12);
    m_json->setFont(QFont(QStringLiteral("monospace")));
    customForm->addRow(tr("Name"), m_customName);
    customForm->addRow(tr("Payload"), m_json);
    m_params->addWidget(custom);

    m_problem = new QLabel;
    setThemedStyleSheet(m_problem, QStringLiteral("color: @problem")); // follows the palette
    // One line, always there: a hint that comes and goes does not move what is under it (the
    // whole text is in its tooltip when the panel is too narrow for it).
    m_problem->setObjectName(QStringLiteral("sendProblem"));
    m_problem->setWordWrap(false);
    m_problem->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Fixed);
    m_problem->setFixedHeight(m_problem->fontMetrics().height() + 2);

    auto *top = new QHBoxLayout;
    top->addWidget(new QLabel(tr("Command")));
    top->addWidget(m_kind);
    top->addWidget(new QLabel(tr("Timeout")));
    top->addWidget(m_timeout);
    top->addStretch();
    top->addWidget(m_target);
    top->addWidget(m_send);
    auto *layout = new QVBoxLayout(this);
    layout->addLayout(top);
    layout->addWidget(m_params);
    layout->addWidget(m_problem);

    connect(m_kind, &QComboBox::currentIndexChanged, this, &SendPanel::kindChanged);
    connect(m_timeout, &QDoubleSpinBox::valueChanged, this,
            [this](double v) { m_timeouts[spec().kind] = v; });
    connect(add, &QToolButton::clicked, this, [this] {
        // The row's cells exist before they are edited (editItem on a missing cell does
        // nothing, and what the operator types then lands elsewhere).
        const int row = m_config->rowCount();
        m_config->insertRow(row);
        m_config->setItem(row, 0, new QTableWidgetItem);
        m_config->setItem(row, 1, new QTableWidgetItem);
        m_config->setCurrentCell(row, 0);
        m_config->setFocus();
        m_config->editItem(m_config->item(row, 0));
        revalidate();
    });
    connect(remove, &QToolButton::clicked, this, [this] {
        if (m_config->currentRow() >= 0)
            m_config->removeRow(m_config->currentRow());
        revalidate();
    });
    connect(m_config, &QTableWidget::itemChanged, this, &SendPanel::revalidate);
    connect(m_customName, &QLineEdit::textChanged, this, &SendPanel::revalidate);
    connect(m_json, &QPlainTextEdit::textChanged, this, &SendPanel::revalidate);
    connect(m_send, &QPushButton::clicked, this, [this] {
        if (problem().isEmpty())
            emit sendRequested();
    });
    kindChanged();
}

CommandSpec SendPanel::spec() const
{
    // Only the fields of the chosen kind: what the other kinds' editors hold stays out of the
    // command, its record and its opctl line.
    CommandSpec spec = CommandSpec::of(CommandKind(m_kind->currentData().toInt()));
    switch (spec.kind) {
    case CommandKind::Stop:
        spec.stopReason = m_stopReason->text();
        spec.graceful = m_graceful->isChecked();
        break;
    case CommandKind::ConfigUpdate:
        for (int r = 0; r < m_config->rowCount(); ++r) {
            const auto *key = m_config->item(r, 0);
            const auto *value = m_config->item(r, 1);
            if (key && !key->text().trimmed().isEmpty())
                spec.config.insert(key->text().trimmed(), value ? value->text() : QString());
        }
        spec.configVersion = quint64(m_configVersion->value());
        break;
    case CommandKind::Custom:
        spec.customName = m_customName->text().trimmed();
        spec.jsonPayload = m_json->toPlainText().toUtf8();
        break;
    default:
        break;
    }
    return spec;
}

std::chrono::milliseconds SendPanel::timeout() const
{
    return std::chrono::milliseconds(qint64(m_timeout->value() * 1000));
}

std::chrono::milliseconds SendPanel::timeoutFor(CommandKind kind) const
{
    return std::chrono::milliseconds(
        qint64(m_timeouts.value(kind, defaultTimeoutSeconds(kind)) * 1000));
}

QString SendPanel::problem() const
{
    if (m_targets == 0)
        return tr("Select one or more bots in the fleet.");
    return spec().validate();
}

void SendPanel::setKind(CommandKind kind)
{
    m_kind->setCurrentIndex(m_kind->findData(int(kind)));
}

void SendPanel::setTargetCount(int bots)
{
    m_targets = bots;
    m_target->setText(bots == 1 ? tr("to 1 bot") : tr("to %1 bots").arg(bots));
    revalidate();
}

void SendPanel::setConfigValues(const QMap<QString, QString> &values)
{
    m_config->setRowCount(0);
    for (auto it = values.cbegin(); it != values.cend(); ++it) {
        const int r = m_config->rowCount();
        m_config->insertRow(r);
        m_config->setItem(r, 0, new QTableWidgetItem(it.key()));
        m_config->setItem(r, 1, new QTableWidgetItem(it.value()));
    }
    revalidate();
}

void SendPanel::setCustom(const QString &name, const QByteArray &json)
{
    m_customName->setText(name);
    m_json->setPlainText(QString::fromUtf8(json));
}

void SendPanel::kindChanged()
{
    const CommandKind kind = CommandKind(m_kind->currentData().toInt());
    m_params->setCurrentIndex(kind == CommandKind::Stop           ? 1
                              : kind == CommandKind::ConfigUpdate ? 2
                              : kind == CommandKind::Custom       ? 3
                                                                  : 0);
    // The stack sizes itself to the page shown, not to its largest page: a ping needs one
    // line, the config editor several, and what they leave goes to the commands table.
    for (int i = 0; i < m_params->count(); ++i)
        m_params->widget(i)->setSizePolicy(QSizePolicy::Preferred, i == m_params->currentIndex()
                                                                       ? QSizePolicy::Preferred
                                                                       : QSizePolicy::Ignored);
    m_params->updateGeometry();
    const QSignalBlocker block(m_timeout);
    m_timeout->setValue(m_timeouts.value(kind, defaultTimeoutSeconds(kind)));
    revalidate();
    emit heightWanted();
}

void SendPanel::revalidate()
{
    const QString why = problem();
    m_problem->setText(why);
    m_problem->setToolTip(why);
    m_send->setEnabled(why.isEmpty());
}

void SendPanel::saveSettings() const
{
    QSettings settings;
    settings.beginGroup(QStringLiteral("send"));
    for (auto it = m_timeouts.cbegin(); it != m_timeouts.cend(); ++it)
        settings.setValue(QStringLiteral("timeout/") + CommandSpec::kindName(it.key()), it.value());
    settings.setValue(QStringLiteral("kind"), spec().name());
}

void SendPanel::loadSettings()
{
    QSettings settings;
    settings.beginGroup(QStringLiteral("send"));
    for (const QString &name : CommandSpec::kindNames()) {
        // A settings file is input too: only a number in the spin box's range is taken.
        bool ok = false;
        const double seconds = settings.value(QStringLiteral("timeout/") + name).toDouble(&ok);
        if (ok && seconds >= m_timeout->minimum() && seconds <= m_timeout->maximum())
            m_timeouts[*CommandSpec::kindFromName(name)] = seconds;
    }
    if (const auto kind =
            CommandSpec::kindFromName(settings.value(QStringLiteral("kind")).toString()))
        setKind(*kind);
    kindChanged();
}

} // namespace opconsole
