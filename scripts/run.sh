#!/usr/bin/env bash
# The README's run command: installs what is missing, builds, and opens the console with a
# simulated fleet (50 bots; OPCONSOLE_DEMO_BOTS changes that). Extra arguments go to opconsole.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh opconsole opctl botsim
args=(--demo "${OPCONSOLE_DEMO_BOTS:-50}")
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ] && [ -z "${QT_QPA_PLATFORM:-}" ]; then
    echo "run.sh: no display here; starting the hub headless (try: build/bin/opctl bots)" >&2
    args+=(--headless)
fi
exec build/bin/opconsole "${args[@]}" "$@"
