#include "statusline.h"

namespace opconsole {

void OutcomeCounts::note(const CommandOutcome *before, const CommandOutcome &after)
{
    const bool wasPending = before && before->state == CommandState::Pending;
    const bool wasFinished = before && before->finished();
    if (!before && after.state == CommandState::Pending)
        ++m_pending;
    if (after.finished() && !wasFinished) {
        if (wasPending)
            --m_pending;
        ++m_finished;
        m_acked += after.state == CommandState::Acked;
        m_rejected += after.state == CommandState::Rejected;
        m_expired += after.state == CommandState::Expired;
        m_cancelled += after.state == CommandState::Cancelled;
    }
    if (after.hasLateAck() && !(before && before->hasLateAck()))
        ++m_lateAcks;
}

StatusLine::StatusLine(QWidget *parent) : QLabel(parent)
{
    m_clock.start();
}

void StatusLine::setHub(const QString &address, bool remote)
{
    m_where = remote ? tr("attached to %1").arg(address) : tr("hub %1").arg(address);
}

void StatusLine::refreshAt(qint64 nowMs, int connectedBots, int bots)
{
    const quint64 finished = quint64(m_counts.finished());
    m_rateWindow.emplace_back(nowMs, finished);
    while (m_rateWindow.size() > 2 && nowMs - m_rateWindow.front().first > 5000)
        m_rateWindow.pop_front();
    double rate = 0;
    if (m_rateWindow.size() >= 2 && nowMs > m_rateWindow.front().first)
        rate = double(finished - m_rateWindow.front().second) * 1000.0 /
               double(nowMs - m_rateWindow.front().first);
    const QString fleet = m_awaiting > 0 ? tr("bots %1/%2 connected, %3 awaiting approval")
                                               .arg(connectedBots)
                                               .arg(bots)
                                               .arg(m_awaiting)
                                         : tr("bots %1/%2 connected").arg(connectedBots).arg(bots);
    const QString where = m_identity.isEmpty() ? m_where : m_where + QLatin1Char(' ') + m_identity;
    // The other ends, when there are any: with them the counts add up to every command.
    QString others;
    if (m_counts.cancelled() > 0)
        others += tr(" · cancelled %1").arg(m_counts.cancelled());
    if (m_counts.failed() > 0)
        others += tr(" · failed %1").arg(m_counts.failed());
    setText(tr("%1 · pending %2 · acked %3 · rejected %4 · expired %5%6 · late acks %7 · %8 "
               "cmd/s · %9")
                .arg(fleet)
                .arg(m_counts.pending())
                .arg(m_counts.acked())
                .arg(m_counts.rejected())
                .arg(m_counts.expired())
                .arg(others)
                .arg(m_counts.lateAcks())
                .arg(rate, 0, 'f', rate < 10 ? 1 : 0)
                .arg(where));
    setToolTip(tr("failed: not connected, disconnected, refused or unknown (the hub stopped)"));
}

} // namespace opconsole
