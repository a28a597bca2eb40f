#!/bin/sh
# make bench: Tribune against Icecast2 on this machine, same source, same load tool.
#
# What it does (details and the method: docs/benchmarks.md):
#   1. installs icecast2 (Debian package) if it is missing: a benchmark-only
#      dependency, deliberately not in scripts/deps.sh;
#   2. raises the open-file limit of this shell to its hard maximum (20,000 on
#      the reference box): the servers and tribune-load inherit it;
#   3. runs bench/bench.py, which for each step N starts a fresh server, publishes
#      a 48 kbit/s Ogg/Opus sine to it with ffmpeg, joins N listeners with
#      build/tribune-load, reads the server's CPU and memory from /proc, and
#      stops everything it started; for Tribune it also asks the server for its
#      hearing count once a second (GET /api/spaces/{id}) and compares it with
#      tribune-load's own count for the same second;
#
# Settings (environment):
#   BENCH_STEPS=1000,5000,10000,20000,50000,100000   listeners per step
#   BENCH_SECONDS=20     measured seconds per step, after joins and warm-up
#   BENCH_RATE=1000      joins per second during a step
#   BENCH_RATE_BY=       per-server join rates overriding BENCH_RATE, e.g. icecast:250
#   BENCH_RUNS=1         runs per step and server, interleaved; medians reported
#   BENCH_SERVERS=icecast,tribune   (tribune-ws: the same Tribune, listeners on the WebSocket path)
#   BENCH_STORM=15000    join-storm size (all within 1 s); 0 to skip
#   BENCH_PIN=off        or SERVER_CPUS:LOAD_CPUS (taskset lists), e.g. 0:1
#   BENCH_PIN_CHECK=5000 one extra step run pinned 0:1, to show whether pinning
#                        helps; 0 to skip
#   BENCH_STOP_PCT=50    stop ramping a server once hearing falls below this
#   BENCH_LABEL=latest   names the block of docs/benchmarks.md this run replaces
#   BENCH_NOTE=          a paragraph written at the top of that block
#   BENCH_DOCS=1         0: leave docs/benchmarks.md alone (smoke runs)
#   BENCH_RESULTS=bench/results   where the JSON and SVG go
#   TRIBUNE=build/tribune  TRIBUNE_ARGS=   LOAD=build/tribune-load
#   BENCH_LOAD_ARGS=     extra tribune-load flags for every run, e.g.
#                        "--read-interval 200" (less load-generator CPU at 50k+)
#   BENCH_GUARD=1        then the guard's figures at the long scale (flood, slowloris,
#                        zero-window readers, 1,024 descriptors: tests/e2e/guard_figures.py),
#                        to bench/results/guard-<timestamp>.json; 0 to skip; "only" to run
#                        nothing else
#   BENCH_ROOMS=1        then the rooms' figures (bench/rooms.py: CPU of the mixer with 1, 4
#                        and 13 speakers against a 0-speaker baseline, time from going live to
#                        audio at BENCH_ROOMS_LISTENERS=2000 waiting listeners, latency the
#                        mixer adds), to bench/results/rooms-<timestamp>.json; 0 to skip;
#                        "only" to run nothing else (and not install icecast2); its own
#                        settings (BENCH_ROOMS_*) are listed at the top of bench/rooms.py
#   BENCH_RECORD=1       then the recorder's crash test at 100 iterations (bench/record_crash.py:
#                        publish, kill -9 at a random moment, restart, check the recording),
#                        to bench/results/record-crash-<timestamp>.json; 0 to skip; "only"
#   BENCH_RELAY=1        then the relay tree's figures (bench/relay_tree.py, about 2 minutes):
#                        the origin's CPU and bytes per edge with BENCH_RELAY_EDGES=8 edges,
#                        the extra latency per relay hop (packets matched by their Opus bytes
#                        on an origin, an edge and an edge of that edge), and a tree of
#                        BENCH_RELAY_TREE=3x2 edges (3 first-level, 2 under each) with
#                        BENCH_RELAY_LISTENERS=500 tribune-load listeners per leaf for 30 s,
#                        the origin's count against the tools'; printed as tables for
#                        docs/benchmarks.md ("Relay trees"), to bench/results/relay-<timestamp>.json;
#                        0 to skip; "only" to run nothing else
set -eu
cd "$(dirname "$0")/.."

guard="${BENCH_GUARD:-1}"
rooms="${BENCH_ROOMS:-1}"
record="${BENCH_RECORD:-1}"
relay="${BENCH_RELAY:-1}"
only=""
[ "$guard" = "only" ] && only=guard
[ "$rooms" = "only" ] && only=rooms
[ "$record" = "only" ] && only=record
[ "$relay" = "only" ] && only=relay
# runs <part> <its setting>: true when that part of the benchmark runs this time
runs() { if [ -n "$only" ]; then [ "$only" = "$1" ]; else [ "$2" != "0" ]; fi; }

if [ -z "$only" ] && ! command -v icecast2 >/dev/null 2>&1; then
    echo "bench: installing icecast2 (Debian package, used by the benchmark only)"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends icecast2
fi
for tool in ffmpeg python3 taskset; do
    command -v "$tool" >/dev/null 2>&1 || { echo "bench: $tool missing (scripts/deps.sh)"; exit 1; }
done

# A process may hold at most `ulimit -Hn` descriptors (20,000 here, not raisable):
# take all of it, so that a single-process server can approach it and every
# tribune-load worker can hold its 15,000 listeners.
hard=$(ulimit -Hn)
ulimit -n "$hard"
echo "bench: open-file limit raised to $(ulimit -n) (hard limit $hard)"

rc=0
if [ -z "$only" ]; then
    python3 bench/bench.py "$@" || rc=$?
fi
if runs guard "$guard"; then
    out="${BENCH_RESULTS:-bench/results}/guard-$(date -u +%Y%m%d-%H%M%S).json"
    echo "bench: the guard's figures (long scale) -> $out"
    TRIBUNE_BIN="${TRIBUNE:-$PWD/build/tribune}" python3 tests/e2e/guard_figures.py long --json "$out" || rc=$?
fi
if runs rooms "$rooms"; then
    out="${BENCH_RESULTS:-bench/results}/rooms-$(date -u +%Y%m%d-%H%M%S).json"
    echo "bench: the rooms' figures (mixing, going live, latency) -> $out"
    python3 bench/rooms.py --json "$out" || rc=$?
fi
if runs record "$record"; then
    echo "bench: the recorder's crash test, 100 iterations -> ${BENCH_RESULTS:-bench/results}/record-crash-*.json"
    TRIBUNE_BIN="${TRIBUNE:-$PWD/build/tribune}" python3 bench/record_crash.py || rc=$?
fi
if runs relay "$relay"; then
    out="${BENCH_RESULTS:-bench/results}/relay-$(date -u +%Y%m%d-%H%M%S).json"
    echo "bench: the relay tree's figures (origin CPU and bytes per edge, latency per hop, a tree) -> $out"
    mkdir -p "$(dirname "$out")"
    python3 bench/relay_tree.py --bin "${TRIBUNE:-$PWD/build/tribune}" --edges "${BENCH_RELAY_EDGES:-8}" \
        --tree "${BENCH_RELAY_TREE:-3x2}" --tree-listeners "${BENCH_RELAY_LISTENERS:-500}" \
        --json "$out" || rc=$?
fi
exit $rc
