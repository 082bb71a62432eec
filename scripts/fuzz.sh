#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang 14, in build-fuzz/) and runs each for a bounded
# time on a copy of the committed seed corpus. Exits non-zero when a fuzzer finds a crash and
# prints the crashing input. docs/fuzzing.md explains the targets and how to reproduce a crash.
#
#   scripts/fuzz.sh [seconds]     seconds per fuzzer (default: $FUZZ_SECONDS, else 15)
#   FUZZ_SECONDS=600 scripts/fuzz.sh
#   JOBS=1 scripts/fuzz.sh        build with one job (default: all cores)
#   FUZZ_KEEP=1 scripts/fuzz.sh   keep the temp dir (grown corpus, logs) even when all passed
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-${FUZZ_SECONDS:-15}}
case "$seconds" in
'' | *[!0-9]*) echo "usage: scripts/fuzz.sh [seconds]" >&2; exit 2 ;;
esac
[ "$seconds" -ge 1 ] || { echo "fuzz: seconds must be at least 1" >&2; exit 2; }

# clang 14 and its sanitizer/fuzzer runtimes (GCC has no -fsanitize=fuzzer).
packages=(clang-14 libclang-rt-14-dev cmake ninja-build)
missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "fuzz: installing ${missing[*]}" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "fuzz: need root or sudo to install ${missing[*]}" >&2; exit 1; }
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
scripts/deps.sh # the project's own build dependencies (Qt, gRPC, protobuf)

build="build-fuzz"
if [ ! -f "$build/build.ninja" ]; then
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
        -DOPCONSOLE_WITH_FUZZ=ON -DOPCONSOLE_WITH_GUI=OFF -DOPCONSOLE_WITH_BENCH=OFF >/dev/null
fi
cmake --build "$build" -j "${JOBS:-$(nproc)}" --target fuzz_botmessages fuzz_operator_requests fuzz_hub_events \
    fuzz_credentials fuzz_cluster

# Everything a run writes (corpus copy, crash files, logs) goes to a temp dir; the committed
# corpus is only read. Kept when a fuzzer fails (or with FUZZ_KEEP=1), removed otherwise.
work=$(mktemp -d "${TMPDIR:-/tmp}/opconsole-fuzz.XXXXXX")
keep=${FUZZ_KEEP:-0}
cleanup() { [ "$keep" = 1 ] || rm -rf "$work"; }
trap cleanup EXIT

# One fuzzer at a time, one process each. libFuzzer stops itself after -max_total_time; the
# outer `timeout` is only a backstop for a hung process (grace for start-up and the final merge).
failed=0
for target in botmessages operator_requests hub_events credentials cluster; do
    corpus="$work/corpus-$target"
    artifacts="$work/artifacts-$target/"
    log="$work/$target.log"
    mkdir -p "$corpus" "$artifacts"
    cp -R "fuzz/corpus/$target/." "$corpus/"
    echo "== fuzz_$target: ${seconds}s on a copy of fuzz/corpus/$target ($(find "$corpus" -type f | wc -l) seeds)"
    rc=0
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
        timeout --kill-after=10 $((seconds + 120)) \
        "$build/bin/fuzz_$target" "$corpus" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -print_final_stats=1 -artifact_prefix="$artifacts" >"$log" 2>&1 || rc=$?
    # The summary: the last status line, the final stats.
    grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE)' "$log" | tail -n 1 || true
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" || true
    crashes=$(find "$artifacts" -type f | sort)
    if [ "$rc" -ne 0 ] || [ -n "$crashes" ]; then
        failed=1
        keep=1
        echo "!! fuzz_$target failed (exit $rc); log: $log" >&2
        grep -E -A40 '^==[0-9]+==ERROR|invariant violated|runtime error|deadly signal|Test unit written' "$log" | head -n 80 >&2 || true
        for c in $crashes; do
            echo "!! crashing input: $c" >&2
            echo "   reproduce: $build/bin/fuzz_$target $c" >&2
        done
    fi
done
if [ "$failed" -ne 0 ]; then
    echo "fuzz: FAILED (inputs and logs kept in $work)" >&2
    exit 1
fi
echo "fuzz: no crash in ${seconds}s per fuzzer"
[ "$keep" != 1 ] || echo "fuzz: corpora and logs kept in $work"
