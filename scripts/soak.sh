#!/usr/bin/env bash
# The soak run (not part of scripts/test.sh): a headless hub, a botsim fleet with every fault
# on, an ack-flooding bot, a bot that never reads, and 16 Operator API callers sending,
# cancelling and fanning out for 10 minutes (or the minutes given). At the end it checks that
# every command has exactly one outcome, that it matches what the bots did, that no caller
# waited past its deadline and that hub memory stayed flat, and prints the figures
# (docs/performance.md). Exit 0 when every check passed.
#
#   scripts/soak.sh [minutes]      default 10
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
scripts/deps.sh
scripts/build.sh soak botsim opconsole
exec build/bin/soak --minutes "$minutes"
