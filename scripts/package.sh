#!/usr/bin/env bash
# Builds the Debian package (CPack, packaging/CMakeLists.txt) from a release build: the
# executables, the system service (opconsole.service), its settings (/etc/opconsole/hub.conf),
# the desktop entry and icons. Prints the .deb's path.
#
#   scripts/package.sh            into build/package/
#   scripts/package.sh DIR        into DIR
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/package}
scripts/deps.sh
scripts/build.sh opconsole opctl botsim
mkdir -p "$out"
# Only what is installed goes in (the tests and benchmarks are not).
(cd build && cpack -G DEB -B "$(realpath -m "../$out")" >/dev/null) || {
    echo "package: cpack failed (build/_CPack_Packages has its logs)" >&2
    exit 1
}
ls "$out"/opconsole_*.deb
