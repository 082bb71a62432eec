#include "historypanel.h"

#include "commandspec.h"
#include "consolebackend.h"
#include "detailsview.h"
#include "historymodel.h"
#include "tableview.h"
#include "theme.h"

#include <QAction>
#include <QApplication>
#include <QCheckBox>
#include <QClipboard>
#include <QComboBox>
#include <QCompleter>
#include <QDateTimeEdit>
#include <QFutureWatcher>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QKeyEvent>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSettings>
#include <QSortFilterProxyModel>
#include <QSplitter>
#include <QStringListModel>
#include <QTableView>
#include <QTimer>
#include <QVBoxLayout>

#include <algorithm>

namespace opconsole {

namespace {

// The state combo's items besides the states themselves.
constexpr int AnyState = -1;
constexpr int ProblemStates = -2;

// Longest texts the fields take: an id (CommandRegistry::MaxIdLength), an issuer
// (CommandOutcome::MaxIssuerLength), a search text.
constexpr int MaxBotLength = 128;
constexpr int MaxIssuerLength = 256;
constexpr int MaxTextLength = 256;

// How often the summary of what the history keeps is reread while the panel is shown.
constexpr int SummaryEveryMs = 5000;

QDateTime oldestChoice()
{
    return QDateTime(QDate(2000, 1, 1), QTime(0, 0));
}

} // namespace

HistoryPanel::HistoryPanel(ConsoleBackend &backend, QWidget *parent)
    : QWidget(parent), m_backend(backend)
{
    m_model = new HistoryModel(this);
    m_proxy = new QSortFilterProxyModel(this);
    m_proxy->setSourceModel(m_model);
    m_proxy->setSortRole(HistoryModel::SortRole);

    m_fields = new QWidget;
    auto *grid = new QGridLayout(m_fields);
    grid->setContentsMargins(0, 0, 0, 0);
    m_bot = new QLineEdit;
    m_bot->setPlaceholderText(tr("any bot"));
    m_bot->setMaxLength(MaxBotLength);
    m_bot->setClearButtonEnabled(true);
    m_knownBots = new QStringListModel(this);
    auto *completer = new QCompleter(m_knownBots, this);
    completer->setCaseSensitivity(Qt::CaseInsensitive);
    m_bot->setCompleter(completer);
    m_kind = new QComboBox;
    m_kind->addItem(tr("any command"), QString());
    for (const QString &name : CommandSpec::kindNames())
        m_kind->addItem(name, name);
    m_state = new QComboBox;
    m_state->addItem(tr("any state"), AnyState);
    m_state->addItem(tr("problems"), ProblemStates);
    m_state->setItemData(1, tr("Everything that is neither pending nor acked"), Qt::ToolTipRole);
    for (int s = 0; s < CommandStateCount; ++s)
        m_state->addItem(stateName(CommandState(s)), s);
    m_state->setItemData(m_state->findData(int(CommandState::Unknown)),
                         tr("The hub stopped while the command was pending"), Qt::ToolTipRole);
    m_issuer = new QLineEdit;
    m_issuer->setPlaceholderText(tr("issued by anyone"));
    m_issuer->setToolTip(tr("Who issued it, exactly as recorded: an operator token's name, "
                            "console:alice, operator@…"));
    m_issuer->setMaxLength(MaxIssuerLength);
    m_issuer->setClearButtonEnabled(true);
    m_text = new QLineEdit;
    m_text->setPlaceholderText(tr("Text in id, bot, message, reason or parameters"));
    m_text->setMaxLength(MaxTextLength);
    m_text->setClearButtonEnabled(true);
    auto dateEdit = [] {
        auto *edit = new QDateTimeEdit;
        edit->setDisplayFormat(QStringLiteral("yyyy-MM-dd HH:mm:ss"));
        edit->setCalendarPopup(true);
        edit->setMinimumDateTime(oldestChoice());
        edit->setDateTime(QDateTime::currentDateTime());
        edit->setEnabled(false);
        return edit;
    };
    m_fromOn = new QCheckBox(tr("From"));
    m_fromOn->setToolTip(tr("Only commands registered at or after this time"));
    m_from = dateEdit();
    m_toOn = new QCheckBox(tr("to"));
    m_toOn->setToolTip(tr("Only commands registered before this time"));
    m_to = dateEdit();
    m_searchButton = new QPushButton(tr("Search"));
    m_searchButton->setToolTip(tr("Search the history (Enter in a field)"));
    m_moreButton = new QPushButton(tr("More"));
    m_moreButton->setToolTip(tr("Load the next page of this search"));
    m_moreButton->setEnabled(false);
    m_exportButton = new QPushButton(tr("Export…"));
    m_exportButton->setToolTip(tr("Write the rows loaded here to a CSV or JSON file"));

    // Row 1: who and what; row 2: when, and the buttons.
    grid->addWidget(new QLabel(tr("<b>History</b>")), 0, 0);
    grid->addWidget(m_bot, 0, 1);
    grid->addWidget(m_kind, 0, 2);
    grid->addWidget(m_state, 0, 3);
    grid->addWidget(m_issuer, 0, 4);
    grid->addWidget(m_text, 0, 5);
    grid->setColumnStretch(5, 1);
    auto *second = new QHBoxLayout;
    second->addWidget(m_fromOn);
    second->addWidget(m_from);
    second->addWidget(m_toOn);
    second->addWidget(m_to);
    second->addStretch(1);
    second->addWidget(m_searchButton);
    second->addWidget(m_moreButton);
    second->addWidget(m_exportButton);
    grid->addLayout(second, 1, 1, 1, 5);

    m_status = new QLabel;
    m_status->setObjectName(QStringLiteral("historyStatus"));
    m_status->setWordWrap(true);
    m_status->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_status->setToolTip(tr("What the history keeps: commands older than its age limit, or "
                            "past its size limit, are deleted oldest first."));

    m_view = makeTable(m_proxy, this);
    m_view->setObjectName(QStringLiteral("history"));
    m_view->sortByColumn(-1, Qt::AscendingOrder); // as searched: newest first
    m_view->setColumnHidden(HistoryModel::Hub, true);
    m_view->setColumnWidth(HistoryModel::State, 180);
    m_view->setColumnWidth(HistoryModel::Id, 170);
    fitColumn(m_view, HistoryModel::Bot, QStringLiteral("bot-0000"));
    fitColumn(m_view, HistoryModel::Kind, QStringLiteral("restart"));
    fitColumn(m_view, HistoryModel::Issuer, QStringLiteral("console:operator"));
    fitColumn(m_view, HistoryModel::Registered, QStringLiteral("0000-00-00 00:00:00.000"));
    fitColumn(m_view, HistoryModel::Latency, QStringLiteral("000.0 ms (late)"));
    m_view->setColumnWidth(HistoryModel::Message, 220);
    m_view->setColumnWidth(HistoryModel::FanOut, 130);
    m_details = new DetailsView;
    // The details beside the table: docked under the window's tables, the panel is wide and
    // not tall.
    m_split = new QSplitter(Qt::Horizontal);
    m_split->addWidget(m_view);
    m_split->addWidget(m_details);
    m_split->setStretchFactor(0, 2);
    m_split->setStretchFactor(1, 1);
    m_split->setSizes({900, 400});

    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    layout->addWidget(m_fields);
    layout->addWidget(m_status);
    layout->addWidget(m_split, 1);

    auto *copy = new QAction(tr("Copy id"), m_view);
    copy->setShortcut(QKeySequence::Copy);
    copy->setShortcutContext(Qt::WidgetShortcut);
    connect(copy, &QAction::triggered, this, [this] {
        QStringList ids;
        for (const QModelIndex &index : m_view->selectionModel()->selectedRows())
            ids << index.data(HistoryModel::CommandIdRole).toString();
        QApplication::clipboard()->setText(ids.join(QLatin1Char('\n')));
    });
    m_view->addAction(copy);
    m_view->setContextMenuPolicy(Qt::ActionsContextMenu);

    connect(m_fromOn, &QCheckBox::toggled, this, [this](bool on) {
        m_from->setEnabled(on);
        if (on)
            m_from->setDateTime(QDateTime::currentDateTime().addDays(-1));
    });
    connect(m_toOn, &QCheckBox::toggled, this, [this](bool on) {
        m_to->setEnabled(on);
        if (on)
            m_to->setDateTime(QDateTime::currentDateTime().addSecs(60));
    });
    connect(m_searchButton, &QPushButton::clicked, this, &HistoryPanel::search);
    connect(m_moreButton, &QPushButton::clicked, this, &HistoryPanel::more);
    connect(m_exportButton, &QPushButton::clicked, this, &HistoryPanel::exportRequested);
    connect(m_view->selectionModel(), &QItemSelectionModel::currentRowChanged, this,
            &HistoryPanel::showCurrent);
    // A double click or Enter on a row: its details, in view even if the pane was closed.
    connect(m_view, &QAbstractItemView::activated, this, [this] {
        const QList<int> sizes = m_split->sizes();
        if (sizes.size() == 2 && sizes[1] == 0)
            m_split->setSizes({sizes[0] * 3 / 4, sizes[0] / 4});
        showCurrent();
    });
    m_summaryTimer = new QTimer(this);
    m_summaryTimer->setInterval(SummaryEveryMs);
    connect(m_summaryTimer, &QTimer::timeout, this, [this] {
        if (isVisible())
            refreshSummary();
    });
    m_summaryTimer->start();

    if (!m_backend.hasHistory()) {
        m_fields->setEnabled(false);
        m_error = tr("This console keeps no history (it was started with --no-history).");
    }
    refreshSummary();
}

HistoryQuery HistoryPanel::queryFromFields(QString *error) const
{
    HistoryQuery q;
    q.botId = m_bot->text().trimmed();
    q.kind = m_kind->currentData().toString();
    const int state = m_state->currentData().toInt();
    if (state == ProblemStates) {
        for (int s = 0; s < CommandStateCount; ++s) {
            if (isProblem(CommandState(s)))
                q.states << CommandState(s);
        }
    } else if (state >= 0 && state < CommandStateCount) {
        q.states << CommandState(state);
    }
    q.issuer = m_issuer->text().trimmed();
    q.text = m_text->text().trimmed();
    if (m_fromOn->isChecked())
        q.sinceMs = std::max<qint64>(1, m_from->dateTime().toMSecsSinceEpoch());
    if (m_toOn->isChecked())
        q.untilMs = std::max<qint64>(1, m_to->dateTime().toMSecsSinceEpoch());
    q.pageSize = m_pageSize;
    if (error) {
        error->clear();
        if (q.sinceMs > 0 && q.untilMs > 0 && q.untilMs <= q.sinceMs)
            *error = tr("The time range ends before it starts.");
    }
    return q;
}

void HistoryPanel::clearFields()
{
    m_bot->clear();
    m_kind->setCurrentIndex(0);
    m_state->setCurrentIndex(0);
    m_issuer->clear();
    m_text->clear();
    m_fromOn->setChecked(false);
    m_toOn->setChecked(false);
}

void HistoryPanel::showBot(const QString &botId)
{
    clearFields();
    m_bot->setText(botId);
    search();
}

void HistoryPanel::addBots(const QStringList &botIds)
{
    if (botIds.isEmpty())
        return;
    // The batch sorted and merged in: sorting the whole list again for every batch of a
    // connect storm was a fifth of the window's time at 50,000 bots.
    QStringList fresh = botIds;
    fresh.sort();
    fresh.erase(std::unique(fresh.begin(), fresh.end()), fresh.end());
    const QStringList known = m_knownBots->stringList();
    QStringList merged;
    merged.reserve(known.size() + fresh.size());
    std::set_union(known.cbegin(), known.cend(), fresh.cbegin(), fresh.cend(),
                   std::back_inserter(merged));
    if (merged.size() != known.size())
        m_knownBots->setStringList(merged);
}

void HistoryPanel::setPageSize(int size)
{
    m_pageSize = std::clamp(size, 1, HistoryQuery::MaxPageSize);
}

void HistoryPanel::search()
{
    if (!m_backend.hasHistory())
        return;
    QString problem;
    const HistoryQuery query = queryFromFields(&problem);
    if (!problem.isEmpty()) {
        // Nothing is asked; an answer to an earlier search is no longer wanted either.
        ++m_generation;
        m_busy = false;
        m_model->clear();
        m_query = {};
        m_error = problem;
        updateStatus();
        emit pageLoaded();
        return;
    }
    m_model->clear();
    m_details->showRecord(nullptr);
    request(query, false);
}

void HistoryPanel::more()
{
    if (m_busy || m_query.pageToken.isEmpty() || m_model->full() ||
        m_model->rowCount() >= m_model->maxRows())
        return;
    request(m_query, true);
}

void HistoryPanel::request(const HistoryQuery &query, bool append)
{
    // A replaced search is cancelled: the hub's reader skips it if it has not started, so
    // holding Enter does not fill the history's queue of searches (second review).
    m_pending.cancel();
    const quint64 generation = ++m_generation;
    m_busy = true;
    m_error.clear();
    if (!append)
        m_query = query;
    updateStatus();
    auto *watcher = new QFutureWatcher<HistoryPage>(this);
    connect(watcher, &QFutureWatcherBase::finished, this, [this, watcher, generation] {
        watcher->deleteLater();
        if (generation != m_generation)
            return; // replaced by a newer search
        m_busy = false;
        const QFuture<HistoryPage> future = watcher->future();
        if (future.isCanceled() || future.resultCount() < 1) {
            m_error = tr("the search was not answered");
        } else {
            const HistoryPage page = future.result();
            m_error = page.error;
            m_model->append(page.records);
            // A failed page with nothing in it keeps the token: More tries it again.
            if (page.error.isEmpty() || !page.records.isEmpty())
                m_query.pageToken = page.nextPageToken;
        }
        refreshSummary();
        emit pageLoaded();
    });
    m_pending = m_backend.queryHistory(query);
    watcher->setFuture(m_pending);
}

QList<CommandOutcome> HistoryPanel::shownRecords() const
{
    return recordsInViewOrder(*m_proxy, *m_model);
}

void HistoryPanel::setHubColumnVisible(bool visible)
{
    m_view->setColumnHidden(HistoryModel::Hub, !visible);
}

void HistoryPanel::refreshSummary()
{
    m_summary = m_backend.historySummary();
    updateStatus();
}

void HistoryPanel::showCurrent()
{
    const QModelIndex source = m_proxy->mapToSource(m_view->currentIndex());
    m_details->showRecord(source.isValid() ? m_model->record(source.row()) : nullptr);
}

void HistoryPanel::updateStatus()
{
    const int rows = m_model->rowCount();
    const bool capped = m_model->full() || rows >= m_model->maxRows();
    QString text;
    if (m_busy) {
        text = rows > 0 ? tr("Loading more…") : tr("Searching…");
    } else if (!m_error.isEmpty()) {
        text = m_generation > 0 && m_backend.hasHistory() ? tr("Search failed: %1").arg(m_error)
                                                          : m_error;
        if (rows > 0)
            text += rows == 1 ? tr(" · 1 command shown") : tr(" · %1 commands shown").arg(rows);
    } else if (m_generation > 0) {
        text = rows == 1 ? tr("1 command found") : tr("%1 commands found").arg(rows);
        if (capped)
            text += tr(" · only the first %1 are shown: narrow the search")
                        .arg(QLocale().toString(m_model->maxRows()));
        else if (!m_query.pageToken.isEmpty())
            text += tr(" so far · More loads the next page");
    }
    if (!m_summary.isEmpty())
        text +=
            (text.isEmpty() ? QString() : QStringLiteral("\n")) + tr("History: %1").arg(m_summary);
    m_status->setText(text);
    setThemedStyleSheet(m_status, !m_error.isEmpty() ? QStringLiteral("QLabel { color: @problem; }")
                                                     : QString());
    m_moreButton->setEnabled(!m_busy && !m_query.pageToken.isEmpty() && !capped &&
                             m_backend.hasHistory());
}

void HistoryPanel::keyPressEvent(QKeyEvent *event)
{
    // Enter in any search field (line edits, combos and date edits pass it on) searches.
    if (event->key() == Qt::Key_Return || event->key() == Qt::Key_Enter) {
        QWidget *focus = focusWidget();
        if (focus && m_fields->isAncestorOf(focus) && m_fields->isEnabled()) {
            search();
            event->accept();
            return;
        }
    }
    QWidget::keyPressEvent(event);
}

void HistoryPanel::showEvent(QShowEvent *event)
{
    QWidget::showEvent(event);
    refreshSummary();
    // Shown for the first time: the newest commands, without waiting for a click.
    if (!searchedOnce() && m_backend.hasHistory())
        search();
}

void HistoryPanel::saveSettings() const
{
    QSettings settings;
    settings.setValue(QStringLiteral("history/header"), m_view->horizontalHeader()->saveState());
    settings.setValue(QStringLiteral("history/split"), m_split->saveState());
}

void HistoryPanel::loadSettings()
{
    QSettings settings;
    m_view->horizontalHeader()->restoreState(
        settings.value(QStringLiteral("history/header")).toByteArray());
    m_split->restoreState(settings.value(QStringLiteral("history/split")).toByteArray());
}

} // namespace opconsole
