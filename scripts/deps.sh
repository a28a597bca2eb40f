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
# npm packages, at the versions of each package-lock.json: in tests/browser, playwright-core (it
# drives /usr/bin/chromium and downloads no browser); in web/, hls.js (the listen page's HLS mode:
# scripts/embed_web.py embeds its dist/hls.min.js; a build without it says the mode is unavailable).
npm_ci() { # DIR PACKAGE
    if [ ! -f "$1/node_modules/$2/package.json" ] ||
        ! cmp -s "$1/package-lock.json" "$1/node_modules/.package-lock.json.copy"; then
        echo "deps: npm ci in $1"
        (cd "$1" && npm ci --no-audit --no-fund --loglevel=error &&
            cp package-lock.json node_modules/.package-lock.json.copy)
    fi
}
root="$(dirname "$0")/.."
npm_ci "$root/tests/browser" playwright-core
npm_ci "$root/web" hls.js
