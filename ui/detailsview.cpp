#include "detailsview.h"

#include "commandtext.h"

namespace opconsole {

DetailsView::DetailsView(QWidget *parent) : QTextBrowser(parent)
{
    setPlaceholderText(tr("Select a command to see it, its ack and its timeline."));
}

void DetailsView::showRecord(const CommandOutcome *record, const SentSpec *sent)
{
    if (!record) {
        clear();
        return;
    }
    setHtml(detailsHtml(*record, sent));
}

} // namespace opconsole
