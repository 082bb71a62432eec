#pragma once
// What the window says about one command, as text: the details pane's HTML and the opctl
// line that sends it again. Pure functions of the record and of what this console sent.

#include "commandoutcome.h"
#include "commandspec.h"

#include <QString>

#include <chrono>
#include <optional>

namespace opconsole {

// A command as sent: its parameters and timeout.
struct SentSpec
{
    CommandSpec spec;
    std::chrono::milliseconds timeout;
};

// `s` as one word for a POSIX shell: unchanged when it is plainly safe, else single-quoted.
QString shellQuote(const QString &s);

// What a command was: from the record's kind, params and timeout (whoever sent it: this
// window, opctl, another console, an earlier run); `sent`, what this window sent, only where
// the record's params do not rebuild a spec (cut at the record's limit). None when neither.
std::optional<SentSpec> commandOf(const CommandOutcome &o, const SentSpec *sent);

// The details pane: the command, its state, its parameters (commandOf), its timeline and its
// acks. Every text that came from a bot or an operator is escaped.
QString detailsHtml(const CommandOutcome &o, const SentSpec *sent);

// "opctl --hub ... send BOT KIND --timeout ...": the same command from a shell. The record's
// hub when it names one, else hubAddress; the parameters from commandOf.
QString opctlLine(const CommandOutcome &o, const QString &hubAddress, const SentSpec *sent);

} // namespace opconsole
