#pragma once

#include <QDialog>
#include <QStringList>

class QDialogButtonBox;
class QLabel;
class QLineEdit;
class QListWidget;

namespace opconsole {

// "Attach to hubs…": the hubs this console attached to before (remembered in QSettings, the
// newest first; addresses only: credentials, when hubs require them, will never be kept in
// plain settings), one more to type, several to pick. The window opens the choice as another
// console (opconsole --connect a,b).
class ConnectDialog final : public QDialog
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(ConnectDialog)

public:
    static constexpr int MaxRemembered = 20;

    explicit ConnectDialog(QWidget *parent = nullptr);

    // The hubs picked (at most HubSet::MaxHubs), in list order; the typed one first.
    QStringList chosen() const;

    // "host:port": what --connect takes for one hub; the reason when not, else empty.
    static QString checkAddress(const QString &address);
    static QStringList remembered();
    // Puts these hubs first in the remembered list (no duplicates, at most MaxRemembered).
    static void remember(const QStringList &hubs);

    QLineEdit *addressEdit() const { return m_address; }
    QListWidget *hubList() const { return m_list; }
    QDialogButtonBox *buttons() const { return m_buttons; }

private:
    void validate();

    QListWidget *m_list;
    QLineEdit *m_address;
    QLabel *m_problem;
    QDialogButtonBox *m_buttons;
};

} // namespace opconsole
