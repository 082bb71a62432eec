#!/usr/bin/env bash
# The Debian package as a user gets it (ctest: package_installs): cpack from this build, the
# .deb unpacked into a scratch root (dpkg-deb -x, no root needed), and there: the files where
# Debian expects them, the service's settings valid for this opconsole, `opconsole --version`
# running, the dependencies and the conffile declared. Usage: package_test.sh BUILD_DIR
set -euo pipefail
build=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/opconsole-package.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "package_test: $*" >&2; exit 1; }

(cd "$build" && cpack -G DEB -B "$work/out" >"$work/cpack.log" 2>&1) ||
    { cat "$work/cpack.log" >&2; fail "cpack failed"; }
deb=$(ls "$work"/out/opconsole_*.deb)
root="$work/root"
dpkg-deb -x "$deb" "$root"

for f in usr/bin/opconsole usr/bin/opctl usr/bin/botsim \
    usr/lib/systemd/system/opconsole.service etc/opconsole/hub.conf \
    usr/share/applications/io.github.opconsole.desktop \
    usr/share/metainfo/io.github.opconsole.metainfo.xml \
    usr/share/icons/hicolor/scalable/apps/opconsole.svg; do
    [ -e "$root/$f" ] || fail "$f is not in the package"
done
version=$("$root/usr/bin/opconsole" --version) || fail "opconsole --version failed"
[[ "$version" == "opconsole "* ]] || fail "unexpected version line: $version"
# The settings the service starts with are valid for this opconsole.
"$root/usr/bin/opconsole" --config "$root/etc/opconsole/hub.conf" --print-config >"$work/effective" ||
    fail "the packaged hub.conf is refused"
grep -q '^operator-listen = unix:/run/opconsole/operator.sock$' "$work/effective" ||
    fail "hub.conf's operator-listen is not in effect"
# The service starts what the package installs, with its settings.
grep -q '^ExecStart=/usr/bin/opconsole --headless --config /etc/opconsole/hub.conf$' \
    "$root/usr/lib/systemd/system/opconsole.service" || fail "ExecStart does not match"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libqt6core6 libgrpc++ libssl libqt6svg6; do
    [[ "$depends" == *"$lib"* ]] || fail "Depends lacks $lib: $depends"
done
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/opconsole/hub.conf ||
    fail "hub.conf is not a conffile"
echo "package_test: $(basename "$deb"): $version; $(dpkg-deb -f "$deb" Installed-Size) KiB installed"
