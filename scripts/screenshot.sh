#!/usr/bin/env bash
# Renders the main window with a demo fleet to docs/screenshot.png (offscreen, no display).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh opconsole
QT_QPA_PLATFORM=offscreen build/bin/opconsole --listen 127.0.0.1:0 --demo 30 \
    --screenshot "${1:-docs/screenshot.png}"
