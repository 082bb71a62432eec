#include "commandfilterproxy.h"

#include "commandoutcome.h"
#include "commandtablemodel.h"

namespace opconsole {

CommandFilterProxy::CommandFilterProxy(QObject *parent) : QSortFilterProxyModel(parent)
{
    setSortRole(CommandTableModel::SortRole);
    setDynamicSortFilter(true);
}

void CommandFilterProxy::setStateGroup(StateGroup group)
{
    m_group = group;
    invalidateRowsFilter();
}

void CommandFilterProxy::setBot(const QString &botId)
{
    m_bot = botId;
    invalidateRowsFilter();
}

void CommandFilterProxy::setFanOut(const QString &fanOutId)
{
    m_fanOut = fanOutId;
    invalidateRowsFilter();
}

void CommandFilterProxy::setText(const QString &text)
{
    m_text = text.trimmed();
    invalidateRowsFilter();
}

bool CommandFilterProxy::filterAcceptsRow(int sourceRow, const QModelIndex &sourceParent) const
{
    const auto *model = sourceModel();
    const auto state = CommandState(
        model->index(sourceRow, 0, sourceParent).data(CommandTableModel::StateRole).toInt());
    switch (m_group) {
    case StateGroup::All:
        break;
    case StateGroup::Pending:
        if (state != CommandState::Pending)
            return false;
        break;
    case StateGroup::Done:
        if (state == CommandState::Pending)
            return false;
        break;
    case StateGroup::Problems:
        if (!isProblem(state) && !model->index(sourceRow, CommandTableModel::State, sourceParent)
                                      .data()
                                      .toString()
                                      .contains(QLatin1String("late ack")))
            return false;
        break;
    }
    if (!m_bot.isEmpty() &&
        model->index(sourceRow, CommandTableModel::Bot, sourceParent).data().toString() != m_bot)
        return false;
    if (!m_fanOut.isEmpty() &&
        model->index(sourceRow, 0, sourceParent).data(CommandTableModel::FanOutRole).toString() !=
            m_fanOut)
        return false;
    if (m_text.isEmpty())
        return true;
    if (model->index(sourceRow, 0, sourceParent)
            .data(CommandTableModel::CommandIdRole)
            .toString()
            .contains(m_text, Qt::CaseInsensitive))
        return true;
    for (int c : {CommandTableModel::Bot, CommandTableModel::Command, CommandTableModel::State,
                  CommandTableModel::Message, CommandTableModel::IssuedBy}) {
        if (model->index(sourceRow, c, sourceParent)
                .data()
                .toString()
                .contains(m_text, Qt::CaseInsensitive))
            return true;
    }
    return false;
}

} // namespace opconsole
