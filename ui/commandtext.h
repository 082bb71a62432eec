#pragma once
// What the window says about one command, as text: the details pane's HTML and the opctl
// line that sends it again. Pure functions of the record and of what this console sent.

#include "commandoutcome.h"
#include "commandspec.h"

#include <QString>

#include <chrono>

namespace opconsole {

// What this console sent for a command: the record does not carry the parameters.
struct SentSpec
{
    CommandSpec spec;
    std::chrono::milliseconds timeout;
};

// `s` as one word for a POSIX shell: unchanged when it is plainly safe, else single-quoted.
QString shellQuote(const QString &s);

// The details pane: the command, its state, its parameters (when `sent` is known), its
// timeline and its acks. Every text that came from a bot or an operator is escaped.
QString detailsHtml(const CommandOutcome &o, const SentSpec *sent);

// "opctl --hub ... send BOT KIND --timeout ...": the same command from a shell. The record's
// hub when it names one, else hubAddress; the parameters only when `sent` is known.
QString opctlLine(const CommandOutcome &o, const QString &hubAddress, const SentSpec *sent);

} // namespace opconsole
