#!/usr/bin/env bash
# The README's run command: installs what is missing, builds, and opens the console.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
exec build/bin/opconsole --demo "${OPCONSOLE_DEMO_BOTS:-50}" "$@"
