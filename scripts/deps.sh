#!/bin/sh
# Install the Debian packages Tribune needs to build, test and run the demo.
# Idempotent: installs only what is missing, prints what it installs, and runs
# `apt-get update` once, only when something must be installed.
set -eu
PKGS="build-essential pkg-config libopus-dev libogg-dev libhttp-parser-dev libinih-dev
libcjson-dev libsqlite3-dev libssl-dev check ffmpeg oggz-tools python3 curl clang-format prometheus
chromium clang libclang-rt-dev"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    echo "deps: all packages present"
    exit 0
fi
echo "deps: installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
