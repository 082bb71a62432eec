#!/usr/bin/env bash
# Configures and builds a preset (default: release, in build/). Extra arguments are targets.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${PRESET:-release}
dir=$(case "$preset" in release) echo build ;; *) echo "build-$preset" ;; esac)
if [ ! -f "$dir/build.ninja" ]; then
    cmake --preset "$preset" >/dev/null
fi
jobs=${JOBS:-$(nproc)}
if [ $# -gt 0 ]; then
    cmake --build "$dir" -j "$jobs" --target "$@"
else
    cmake --build "$dir" -j "$jobs"
fi
