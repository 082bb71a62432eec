#pragma once

#include <QTextBrowser>

namespace opconsole {

struct CommandOutcome;
struct SentSpec;

// The details pane: one command, its parameters, timeline and acks (see detailsHtml).
class DetailsView final : public QTextBrowser
{
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(DetailsView)

public:
    explicit DetailsView(QWidget *parent = nullptr);

    // Shows `record`, with what this console sent for it when known; null clears the pane.
    void showRecord(const CommandOutcome *record, const SentSpec *sent = nullptr);
};

} // namespace opconsole
