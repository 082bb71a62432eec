#!/usr/bin/env bash
# Renders the main window with a demo fleet to docs/screenshot.png: a real X window under
# Xvfb (installed when missing), or offscreen rendering with OPCONSOLE_SCREENSHOT_OFFSCREEN=1.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/screenshot.png}"
args=(--listen 127.0.0.1:0 --demo 30 --screenshot "$out")
if [ "${OPCONSOLE_SCREENSHOT_OFFSCREEN:-0}" = 1 ]; then
    scripts/deps.sh
    scripts/build.sh opconsole
    QT_QPA_PLATFORM=offscreen build/bin/opconsole "${args[@]}"
else
    OPCONSOLE_WITH_XVFB=1 scripts/deps.sh
    scripts/build.sh opconsole
    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb build/bin/opconsole "${args[@]}"
fi
