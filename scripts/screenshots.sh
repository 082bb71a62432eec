#!/usr/bin/env bash
# Renders the console's pictures in docs/screenshots/: a demo fleet of 50 bots with some
# traffic (opconsole --demo --screenshot), in a real X window under Xvfb, at 1024x700 and
# 1920x1080, with the dark palette, and at 2x scale. Each run starts from no saved settings.
# Everything runs on loopback and stops by itself (60 s at most a picture).
set -euo pipefail
cd "$(dirname "$0")/.."
OPCONSOLE_WITH_XVFB=1 scripts/deps.sh
scripts/build.sh opconsole
out=docs/screenshots
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/opconsole-shots.XXXXXX")
trap 'rm -rf "$work"' EXIT

# shoot FILE WIDTHxHEIGHT SCALE [opconsole options...]
shoot() {
    local file=$1 size=$2 scale=$3
    shift 3
    local w=${size%x*} h=${size#*x}
    local config
    config=$(mktemp -d "$work/config.XXXXXX")
    XDG_CONFIG_HOME=$config QT_SCALE_FACTOR=$scale \
        xvfb-run -a -s "-screen 0 $((w * scale + 64))x$((h * scale + 64))x24" \
        env QT_QPA_PLATFORM=xcb timeout 60 build/bin/opconsole --listen 127.0.0.1:0 \
        --operator-listen 127.0.0.1:0 --demo 50 --no-history --screenshot "$out/$file" \
        -geometry "${size}+0+0" "$@" >"$work/$file.log" 2>&1 ||
        { echo "screenshots: $file failed; see the log:" >&2; tail -5 "$work/$file.log" >&2; return 1; }
    echo "screenshots: $out/$file"
}
shoot 1024x700.png 1024x700 1
shoot 1920x1080.png 1920x1080 1
shoot dark.png 1400x860 1 --theme dark
shoot scale2.png 1200x800 2
