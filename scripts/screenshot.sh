#!/usr/bin/env bash
# Renders docs/screenshot.png: the console attached (--connect) to two headless hubs, each with
# a botsim fleet, after a fan-out across both hubs and an opctl fan-out with a timeout short
# enough for late acks. A real X window under Xvfb (installed when missing), or offscreen
# rendering with OPCONSOLE_SCREENSHOT_OFFSCREEN=1. Everything runs on loopback and is stopped
# at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/screenshot.png}"
if [ "${OPCONSOLE_SCREENSHOT_OFFSCREEN:-0}" = 1 ]; then
    scripts/deps.sh
    run=(env QT_QPA_PLATFORM=offscreen)
else
    OPCONSOLE_WITH_XVFB=1 scripts/deps.sh
    run=(xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb)
fi
scripts/build.sh opconsole botsim opctl

work=$(mktemp -d "${TMPDIR:-/tmp}/opconsole-shot.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Headless hubs on free ports; their addresses once they listen (10 s at most). Started here,
# not in a $(...) subshell, so that the EXIT trap of this shell is the one that stops them.
for n in 1 2; do
    build/bin/opconsole --headless --listen 127.0.0.1:0 --operator-listen 127.0.0.1:0 \
        --data-dir "$work/data$n" 2>"$work/hub$n.log" &
    pids+=($!)
done
# hub_address N KEY: "address" (where bots dial in) or "operator_address" (consoles, opctl).
hub_address() {
    for _ in $(seq 100); do
        addr=$(grep -o "\"$2\":\"[^\"]*\"" "$work/hub$1.log" | head -n 1 | cut -d'"' -f4)
        [ -n "$addr" ] && { echo "$addr"; return; }
        sleep 0.1
    done
    echo "screenshot: hub $1 did not start" >&2
    return 1
}
a=$(hub_address 1 address)
b=$(hub_address 2 address)
opa=$(hub_address 1 operator_address)
opb=$(hub_address 2 operator_address)
build/bin/botsim --hub "$a" --bots 14 --prefix eu- --label region=eu \
    --latency lognormal:40:900 --fail 0.05 --late 0.05 --seed 1 >/dev/null 2>&1 &
pids+=($!)
build/bin/botsim --hub "$b" --bots 14 --prefix us- --label region=us \
    --latency lognormal:60:1200 --fail 0.05 --late 0.05 --seed 2 >/dev/null 2>&1 &
pids+=($!)
# Once the console is attached it fans out a ping to every bot of both hubs and restarts one
# (app/main.cpp, runAttached); a script fans out a restart with a 400 ms timeout meanwhile.
(sleep 2.5 && build/bin/opctl --hub "$opb" send --label region=us restart --timeout 400ms \
    >/dev/null 2>&1 || true) &
XDG_CONFIG_HOME="$work/config" "${run[@]}" build/bin/opconsole --connect "$opa,$opb" \
    --screenshot "$out"
echo "screenshot: $out"
