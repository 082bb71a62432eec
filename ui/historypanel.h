#pragma once

#include "commandoutcome.h"
#include "historyquery.h"

#include <QFuture>
#include <QWidget>

class QCheckBox;
class QComboBox;
class QDateTimeEdit;
class QLabel;
class QLineEdit;
class QPushButton;
class QSortFilterProxyModel;
class QSplitter;
class QStringListModel;
class QTableView;
class QTimer;

namespace opconsole {

class ConsoleBackend;
class DetailsView;
class HistoryModel;

// The command history, searched on the hub (across restarts): fields for bot, command, state,
// issuer, free text and a time range; Search (or Enter in a field) loads the newest page,
// More the next one. The status line says how many were found, what went wrong, and what the
// history keeps (ConsoleBackend::historySummary). A row's details under the table.
// Never waits: every search is a future, and an answer to a search that was replaced by
// another is dropped.
class HistoryPanel final : public QWidget
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(HistoryPanel)

public:
    static constexpr int DefaultPageSize = 500;

    explicit HistoryPanel(ConsoleBackend &backend, QWidget *parent = nullptr);

    // The fields, for tests and the window.
    QLineEdit *botField() const { return m_bot; }
    QComboBox *kindField() const { return m_kind; }
    QComboBox *stateField() const { return m_state; }
    QLineEdit *issuerField() const { return m_issuer; }
    QLineEdit *textField() const { return m_text; }
    QCheckBox *fromEnabled() const { return m_fromOn; }
    QDateTimeEdit *fromField() const { return m_from; }
    QCheckBox *toEnabled() const { return m_toOn; }
    QDateTimeEdit *toField() const { return m_to; }
    QPushButton *searchButton() const { return m_searchButton; }
    QPushButton *moreButton() const { return m_moreButton; }
    QPushButton *exportButton() const { return m_exportButton; }
    QLabel *statusLabel() const { return m_status; }
    QTableView *view() const { return m_view; }
    HistoryModel *model() const { return m_model; }
    DetailsView *details() const { return m_details; }

    // The search the fields describe (first page); *error says why they make no sense (a
    // range that ends before it starts), and the query is not to be run then.
    HistoryQuery queryFromFields(QString *error) const;
    // Every field back to "any".
    void clearFields();
    // The history of one bot: the other fields cleared, searched at once.
    void showBot(const QString &botId);
    // Offers bot ids in the bot field's completion.
    void addBots(const QStringList &botIds);
    void setPageSize(int size); // 1..HistoryQuery::MaxPageSize
    // A search or More is waiting for its answer.
    bool busy() const { return m_busy; }
    // Whether a search was started since the panel was made.
    bool searchedOnce() const { return m_generation > 0; }
    // The rows loaded, in the view's order (sorting included): what File > Export writes.
    QList<CommandOutcome> shownRecords() const;
    void setHubColumnVisible(bool visible);
    // Rereads the backend's summary of what the history keeps (cheap: cached stats).
    void refreshSummary();

    void saveSettings() const;
    void loadSettings();

public slots:
    // A new search from the fields: the table is emptied and the newest page loaded.
    void search();
    // The next page of the last search, appended.
    void more();

signals:
    // A page arrived or the search failed (status and table are up to date).
    void pageLoaded();
    // "Export…": the window asks where, then writes shownRecords().
    void exportRequested();

protected:
    void keyPressEvent(QKeyEvent *event) override;
    void showEvent(QShowEvent *event) override;

private:
    void request(const HistoryQuery &query, bool append);
    void showCurrent();
    void updateStatus();

    ConsoleBackend &m_backend;
    QWidget *m_fields;
    QLineEdit *m_bot;
    QStringListModel *m_knownBots;
    QComboBox *m_kind;
    QComboBox *m_state;
    QLineEdit *m_issuer;
    QLineEdit *m_text;
    QCheckBox *m_fromOn;
    QDateTimeEdit *m_from;
    QCheckBox *m_toOn;
    QDateTimeEdit *m_to;
    QPushButton *m_searchButton;
    QPushButton *m_moreButton;
    QPushButton *m_exportButton;
    QLabel *m_status;
    HistoryModel *m_model;
    QSortFilterProxyModel *m_proxy;
    QTableView *m_view;
    DetailsView *m_details;
    QSplitter *m_split;
    QTimer *m_summaryTimer;

    int m_pageSize = DefaultPageSize;
    HistoryQuery m_query;           // the last search, its token the next page's
    quint64 m_generation = 0;       // of the newest request; older answers are dropped
    QFuture<HistoryPage> m_pending; // the newest request's answer, cancelled when replaced
    bool m_busy = false;
    QString m_error;   // of the last answer
    QString m_summary; // what the history keeps
};

} // namespace opconsole
