#!/usr/bin/env bash
# Installs the Debian 12 packages opconsole needs; quiet and quick when they are all there.
set -euo pipefail

packages=(
    cmake ninja-build g++ pkg-config
    qt6-base-dev libgl-dev
    libqt6svg6                     # the SVG icon engine plugin: state and application icons
    libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
    libqt6sql6-sqlite libsqlite3-dev fonts-dejavu-core
    libssl-dev openssl
    qt6-httpserver-dev qt6-websockets-dev # /metrics (HttpServer's CMake config needs WebSockets)
    nats-server libnats-dev        # the cluster (docs/cluster.md): the tests start a real server
    desktop-file-utils appstream   # checks of resources/ (ctest desktop_file_validate, appstream_validate)
)
if [ "${OPCONSOLE_WITH_XVFB:-0}" = 1 ]; then
    packages+=(xvfb xauth)
fi

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "deps: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
