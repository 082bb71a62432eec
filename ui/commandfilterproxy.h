#pragma once

#include <QSortFilterProxyModel>

namespace opconsole {

// Filters the commands table by state group, bot and free text; sorts by SortRole.
class CommandFilterProxy final : public QSortFilterProxyModel
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(CommandFilterProxy)

public:
    enum class StateGroup
    {
        All,
        Pending,
        Done,
        Problems
    };

    explicit CommandFilterProxy(QObject *parent = nullptr);
    void setStateGroup(StateGroup group);
    StateGroup stateGroup() const { return m_group; }
    void setBot(const QString &botId); // empty: every bot
    QString bot() const { return m_bot; }
    void setFanOut(const QString &fanOutId); // empty: every command
    QString fanOut() const { return m_fanOut; }
    void setText(const QString &text); // matched against id, bot, command, state, message

protected:
    bool filterAcceptsRow(int sourceRow, const QModelIndex &sourceParent) const override;

private:
    StateGroup m_group = StateGroup::All;
    QString m_bot;
    QString m_fanOut;
    QString m_text;
};

} // namespace opconsole
