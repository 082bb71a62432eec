#pragma once

#include "commandspec.h"

#include <QMap>
#include <QWidget>

#include <chrono>

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QPushButton;
class QSpinBox;
class QStackedWidget;
class QTableWidget;

namespace opconsole {

// Composes a command: its type, its parameters (a key/value editor for config updates, a
// validated JSON editor for custom commands) and its timeout, remembered per type.
class SendPanel final : public QWidget
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(SendPanel)

public:
    explicit SendPanel(QWidget *parent = nullptr);

    CommandSpec spec() const;
    std::chrono::milliseconds timeout() const;
    std::chrono::milliseconds timeoutFor(CommandKind kind) const;
    QString problem() const; // why the command cannot be sent; empty when it can
    void setKind(CommandKind kind);
    void setTargetCount(int bots);
    void setConfigValues(const QMap<QString, QString> &values); // for tests and resends
    void setCustom(const QString &name, const QByteArray &json);

    QPushButton *sendButton() const { return m_send; }
    QComboBox *kindBox() const { return m_kind; }

    void saveSettings() const;
    void loadSettings();

signals:
    void sendRequested();
    // The parameters shown changed, and with them the height the panel wants.
    void heightWanted();

private:
    void kindChanged();
    void revalidate();

    QComboBox *m_kind;
    QDoubleSpinBox *m_timeout;
    QStackedWidget *m_params;
    QLineEdit *m_stopReason;
    QCheckBox *m_graceful;
    QTableWidget *m_config;
    QSpinBox *m_configVersion;
    QLineEdit *m_customName;
    QPlainTextEdit *m_json;
    QLabel *m_problem;
    QLabel *m_target;
    QPushButton *m_send;
    QMap<CommandKind, double> m_timeouts; // seconds, per type
    int m_targets = 0;
};

} // namespace opconsole
