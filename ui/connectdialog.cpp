#include "connectdialog.h"

#include "theme.h"

#include <QDialogButtonBox>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QPushButton>
#include <QRegularExpression>
#include <QSettings>
#include <QVBoxLayout>

namespace opconsole {

namespace {

constexpr int MaxHubs = 16; // HubSet::MaxHubs (ui/ does not include console/ internals)
const QString RecentKey = QStringLiteral("attach/recent");

} // namespace

ConnectDialog::ConnectDialog(QWidget *parent) : QDialog(parent)
{
    setWindowTitle(tr("Attach to hubs"));
    auto *layout = new QVBoxLayout(this);
    layout->addWidget(new QLabel(tr("Hubs attached to before (pick one or several):")));
    m_list = new QListWidget;
    m_list->setSelectionMode(QAbstractItemView::ExtendedSelection);
    m_list->addItems(remembered());
    layout->addWidget(m_list, 1);
    layout->addWidget(new QLabel(tr("Or another hub:")));
    m_address = new QLineEdit;
    m_address->setPlaceholderText(
        tr("host:port of its operator listener, e.g. hub1.example:50052"));
    m_address->setClearButtonEnabled(true);
    layout->addWidget(m_address);
    m_problem = new QLabel;
    setThemedStyleSheet(m_problem, QStringLiteral("color: @problem;")); // follows the palette
    m_problem->hide();
    layout->addWidget(m_problem);
    m_buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel);
    m_buttons->button(QDialogButtonBox::Ok)->setText(tr("Attach"));
    layout->addWidget(m_buttons);
    connect(m_buttons, &QDialogButtonBox::accepted, this, &QDialog::accept);
    connect(m_buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    connect(m_address, &QLineEdit::textChanged, this, &ConnectDialog::validate);
    connect(m_list, &QListWidget::itemSelectionChanged, this, &ConnectDialog::validate);
    connect(m_list, &QListWidget::itemDoubleClicked, this, &QDialog::accept);
    if (m_list->count() > 0)
        m_list->setCurrentRow(0);
    validate();
}

QString ConnectDialog::checkAddress(const QString &address)
{
    if (address.isEmpty())
        return tr("no address");
    if (address.size() > 255)
        return tr("longer than 255 characters");
    static const QRegularExpression shape(QStringLiteral("^[^\\s,]+:([0-9]{1,5})$"));
    const QRegularExpressionMatch m = shape.match(address);
    if (!m.hasMatch())
        return tr("not host:port");
    const int port = m.captured(1).toInt();
    if (port < 1 || port > 65535)
        return tr("port %1 is not 1..65535").arg(m.captured(1));
    return {};
}

QStringList ConnectDialog::chosen() const
{
    QStringList hubs;
    const QString typed = m_address->text().trimmed();
    if (!typed.isEmpty() && checkAddress(typed).isEmpty())
        hubs << typed;
    for (int row = 0; row < m_list->count(); ++row) {
        const QListWidgetItem *item = m_list->item(row);
        if (item->isSelected() && !hubs.contains(item->text()))
            hubs << item->text();
    }
    return hubs.mid(0, MaxHubs);
}

void ConnectDialog::validate()
{
    const QString typed = m_address->text().trimmed();
    const QString problem = typed.isEmpty() ? QString() : checkAddress(typed);
    m_problem->setText(problem.isEmpty() ? QString() : tr("%1: %2").arg(typed, problem));
    m_problem->setVisible(!problem.isEmpty());
    m_buttons->button(QDialogButtonBox::Ok)->setEnabled(problem.isEmpty() && !chosen().isEmpty());
}

QStringList ConnectDialog::remembered()
{
    QStringList hubs;
    // Settings can be edited by hand: only what --connect would take comes back.
    for (const QString &hub : QSettings().value(RecentKey).toStringList())
        if (checkAddress(hub).isEmpty() && !hubs.contains(hub) && hubs.size() < MaxRemembered)
            hubs << hub;
    return hubs;
}

void ConnectDialog::remember(const QStringList &hubs)
{
    QStringList list;
    for (const QString &hub : hubs + remembered())
        if (checkAddress(hub).isEmpty() && !list.contains(hub) && list.size() < MaxRemembered)
            list << hub;
    QSettings().setValue(RecentKey, list);
}

} // namespace opconsole
