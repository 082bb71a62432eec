#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, runs every test, then the
# registry and stream tests again under AddressSanitizer and ThreadSanitizer, then the
# fuzzers over what bots and API callers send, 15 s each (docs/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
scripts/build.sh

export QT_QPA_PLATFORM=offscreen
echo "== tests (release build)"
ctest --test-dir build --output-on-failure --timeout 600

# Sanitizer builds cover the threaded core. ASan/UBSan/LSan: the registry, the hub and the
# console's remote backend, the history store, and security (credentials, admission, TLS).
# TSan: the registry and the history store (its own threads and locks; SQLite is used by one
# thread per connection). Debian's gRPC and abseil are not built with TSan, so their locks are
# invisible to it and every gRPC callback path reports false races (docs/architecture.md).
tests_labelled() { sed -n "s/^opconsole_add_test(\([a-z_]*\) \($1\)[ )].*/\1/p" tests/CMakeLists.txt; }
asan_targets=$(tests_labelled 'registry\|history\|stream\|console\|security')
tsan_targets=$(tests_labelled 'registry\|history')

if [ "${OPCONSOLE_SKIP_SANITIZERS:-0}" != 1 ]; then
    echo "== tests under AddressSanitizer + UndefinedBehaviorSanitizer"
    PRESET=asan scripts/build.sh $asan_targets
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        ctest --test-dir build-asan --output-on-failure -L '^(registry|history|stream|console|security)$' --timeout 900

    echo "== tests under ThreadSanitizer"
    PRESET=tsan scripts/build.sh $tsan_targets
    # QT_NO_GLIB: Qt's own dispatcher; glib's is not instrumented either and adds noise.
    QT_NO_GLIB=1 TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp" \
        ctest --test-dir build-tsan --output-on-failure -L '^(registry|history)$' --timeout 900
fi
if [ "${OPCONSOLE_SKIP_FUZZ:-0}" != 1 ]; then
    echo "== fuzzers (clang, libFuzzer + ASan/UBSan), ${FUZZ_SECONDS:-15} s each"
    scripts/fuzz.sh "${FUZZ_SECONDS:-15}"
fi
echo "== all tests passed"
