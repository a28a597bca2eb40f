#!/bin/sh
# Install the Debian packages Tribune needs to build, test and run the demo.
# Idempotent: installs only what is missing, prints what it installs, and runs
# `apt-get update` once, only when something must be installed.
set -eu
PKGS="build-essential pkg-config libopus-dev libogg-dev libhttp-parser-dev libinih-dev
libcjson-dev libsqlite3-dev libssl-dev check ffmpeg oggz-tools python3 curl clang-format prometheus
chromium clang libclang-rt-dev libwslay-dev nginx"
missing=""
# Node.js and npm run the browser tests (playwright-core from npm drives Debian's chromium). A
# machine whose Node.js came with its own npm keeps it; otherwise Debian's packages are installed.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    PKGS="$PKGS nodejs npm"
fi
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    echo "deps: all packages present"
else
    echo "deps: installing:$missing"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -q --no-install-recommends $missing
fi
# npm packages of the browser tests, at the versions of tests/browser/package-lock.json. Only
# playwright-core: it drives /usr/bin/chromium and downloads no browser.
cd "$(dirname "$0")/../tests/browser"
if [ ! -f node_modules/playwright-core/package.json ] ||
    ! cmp -s package-lock.json node_modules/.package-lock.json.copy; then
    echo "deps: npm ci in tests/browser"
    npm ci --no-audit --no-fund --loglevel=error
    cp package-lock.json node_modules/.package-lock.json.copy
fi
