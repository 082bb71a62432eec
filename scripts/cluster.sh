#!/usr/bin/env bash
# A local cluster for a demo (docs/cluster.md): nats-server with JetStream, three headless hubs
# on loopback ports sharing one fleet, and botsim spread across them. Ctrl+C stops it all.
#   scripts/cluster.sh [BOTS]                    (300 bots by default)
#   OPCONSOLE_CLUSTER_PORT=4222                  nats-server's port
#   OPCONSOLE_CLUSTER_BASE=50050                 hub N: bots on BASE+N, Operator API on BASE+10+N
set -euo pipefail
cd "$(dirname "$0")/.."
bots=${1:-300}
nats_port=${OPCONSOLE_CLUSTER_PORT:-4222}
base=${OPCONSOLE_CLUSTER_BASE:-50050}
scripts/deps.sh
scripts/build.sh opconsole opctl botsim

work=$(mktemp -d -t opconsole-cluster.XXXXXX)
pids=()
cleanup() {
    trap - EXIT INT TERM
    [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Waits (at most 10 s) for a line in a log; fails with the log when it does not come.
wait_for() {
    local file=$1 pattern=$2
    for _ in $(seq 100); do
        grep -q "$pattern" "$file" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "cluster.sh: '$pattern' did not appear in $file:" >&2
    cat "$file" >&2
    return 1
}

nats-server -a 127.0.0.1 -p "$nats_port" -js -sd "$work/nats" >"$work/nats.log" 2>&1 &
pids+=($!)
wait_for "$work/nats.log" "Server is ready"

hubs=()
for i in 1 2 3; do
    build/bin/opconsole --headless --listen "127.0.0.1:$((base + i))" \
        --operator-listen "127.0.0.1:$((base + 10 + i))" --data-dir "$work/hub-$i" \
        --cluster "nats://127.0.0.1:$nats_port" --hub-id "hub-$i" 2>"$work/hub-$i.log" &
    pids+=($!)
    hubs+=("127.0.0.1:$((base + i))")
done
for i in 1 2 3; do wait_for "$work/hub-$i.log" cluster_joined; done

build/bin/botsim --hub "$(IFS=,; echo "${hubs[*]}")" --bots "$bots" \
    --latency lognormal:40:400 >"$work/botsim.log" 2>&1 &
pids+=($!)

cat <<TEXT
A cluster of three hubs over nats://127.0.0.1:$nats_port, $bots bots spread across them.
  Operator API of hub-1, hub-2, hub-3: 127.0.0.1:$((base + 11)), :$((base + 12)), :$((base + 13))
Try:
  build/bin/opctl --hub 127.0.0.1:$((base + 11)) bots                 (the whole fleet, with its hubs)
  build/bin/opctl --hub 127.0.0.1:$((base + 12)) send --all ping      (one tally across the hubs)
  build/bin/opconsole --connect 127.0.0.1:$((base + 13))              (a console on hub-3)
  kill one hub (its pid is in: pgrep -af 'hub-id hub-3'): its bots move to the others
Logs: $work (removed at exit). Ctrl+C stops everything.
TEXT
wait "${pids[0]}"
