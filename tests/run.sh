#!/usr/bin/env bash
# Tribune test runner, called by `make test` after both trees are built:
#   build/       normal build       build/asan/   ASan+UBSan build (make SAN=1 BUILD=build/asan)
#
# Runs, as one entry each:
#   - every Check unit test binary under build/tests/unit/** and build/asan/tests/unit/**
#   - every fuzz replayer build{,/asan}/tests/fuzz/*_fuzz over tests/fuzz/corpus/<name>/ (if present)
#   - every libFuzzer build build/fuzz/*_fuzz (make fuzz-build), fuzzing for FUZZ_SHORT seconds
#   - every tests/e2e/test_*.py twice: TRIBUNE_BIN=build/tribune and TRIBUNE_BIN=build/asan/tribune
#     (the figure tests in E2E_NORMAL_ONLY once, with build/tribune)
#   - every tests/browser/test_*.mjs once, with node, TRIBUNE_BIN=build/tribune (real Chromium)
#
# Usage: tests/run.sh [PATTERN]     PATTERN (a grep -E regex) selects entries by name.
# Environment: E2E_JOBS (default 2) entries run at once (unit tests, fuzzers, e2e tests);
# TRIBUNE_E2E_KEEP=1 keeps temp dirs; FUZZ_SHORT (default 30) seconds each libFuzzer target runs.
#
# Order: unit tests and fuzz replays, then libFuzzer runs, then the e2e pool, each E2E_JOBS at a
# time; then the browser tests, one at a time. In the e2e pool the longest tests start first
# (E2E_EXPECT), and a heavy test (one that takes tests/e2e/heavy.py's lock) is started only when no
# other heavy test runs: it never sits in a slot waiting for the lock while a light test could run.
#
# Output: one line per entry as it finishes, `PASS name (1.2s)` or `FAIL name (reason, 1.2s)`
# followed by the last 40 lines of its output; the very last line is `N passed, N failed`.
# Exit 1 if any failed.
set -u

cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
PATTERN=${1:-}
E2E_JOBS=${E2E_JOBS:-2}
UNIT_TIMEOUT=120
E2E_TIMEOUT=300

# Raise the open-file limit to the hard limit: the e2e tests open many listener sockets at once
# (and the server under test inherits the limit), and the soft default of 1024 is too low.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

OUT=$(mktemp -d "${TMPDIR:-/tmp}/tribune-run.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
PASSED=0
FAILED=0

selected() { [ -z "$PATTERN" ] || printf '%s\n' "$1" | grep -Eq -- "$PATTERN"; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fs", b - a }'; }

# report NAME RC SECONDS LOGFILE: print the verdict line (and the tail of the log on failure).
report() {
	local name=$1 rc=$2 secs=$3 logf=$4
	if [ "$rc" -eq 0 ]; then
		echo "PASS $name ($secs)"
		PASSED=$((PASSED + 1))
	else
		local why="exit $rc"
		[ "$rc" -eq 124 ] && why="timed out"
		[ "$rc" -gt 128 ] && [ "$rc" -ne 124 ] && why="killed by signal $((rc - 128))"
		echo "FAIL $name ($why, $secs)"
		tail -n 40 "$logf" | sed 's/^/    /'
		FAILED=$((FAILED + 1))
	fi
}

# run_one NAME TIMEOUT CMD...: run synchronously and report.
run_one() {
	local name=$1 limit=$2
	shift 2
	local logf="$OUT/$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '_').log"
	local t0 rc
	t0=$(now)
	timeout -k 5 "$limit" "$@" >"$logf" 2>&1 </dev/null
	rc=$?
	report "$name" "$rc" "$(elapsed "$t0" "$(now)")" "$logf"
}

# Timing-sensitive tests (real browsers, real-time audio, thousands of sockets on two shared cores)
# get one second chance: a failure is printed in full as `RETRY name (...)`, never hidden, and the
# test runs again once, alone; its second verdict counts (`PASS name (retried)` or FAIL). A test
# that only passes on its retry is flaky: the RETRY lines in the output are the list to fix.
# RETRIES=0 turns this off.
RETRIES=${RETRIES:-1}
RETRIED=0
retry_note() {
	local name=$1 rc=$2 secs=$3 logf=$4
	echo "RETRY $name (exit $rc, $secs): failed once, running it again alone"
	tail -n 40 "$logf" | sed 's/^/    /'
	RETRIED=$((RETRIED + 1))
}

# ---- the pool: entries run E2E_JOBS at a time, each verdict printed as it finishes ---------------
# pool_add NAME TIMEOUT HEAVY RETRY CMD...: queues an entry. HEAVY=1: never two at once (and one
# such entry starts as soon as none runs); RETRY=1: a failure gets the second chance above, run
# alone after the pool. pool_run starts the queue in its order (pool_sort first to reorder).
p_names=()
p_limits=()
p_heavy=()
p_retry=()
p_cmds=()
pool_add() {
	p_names+=("$1")
	p_limits+=("$2")
	p_heavy+=("$3")
	p_retry+=("$4")
	shift 4
	p_cmds+=("$(printf '%q ' "$@")")
}

# pool_run: runs the queue (indices in p_order, default: in the order added), then the retries.
pool_run() {
	[ ${#p_names[@]} -eq 0 ] && { p_order=(); return; }
	local -a order=("${!p_names[@]}") retry_list=()
	[ ${#p_order[@]} -gt 0 ] && order=("${p_order[@]}")
	local -A pids=() starts=() logs=()
	local running=0 heavy_running=0 i k pick fin_pid wrc
	while [ ${#order[@]} -gt 0 ] || [ "$running" -gt 0 ]; do
		while [ "$running" -lt "$E2E_JOBS" ] && [ ${#order[@]} -gt 0 ]; do
			# the first heavy entry if none runs, else the first light one
			pick=-1
			if [ "$heavy_running" -eq 0 ]; then
				for k in "${!order[@]}"; do
					[ "${p_heavy[${order[$k]}]}" = 1 ] && { pick=$k; break; }
				done
			fi
			if [ "$pick" -lt 0 ]; then
				for k in "${!order[@]}"; do
					[ "${p_heavy[${order[$k]}]}" = 1 ] || { pick=$k; break; }
				done
			fi
			[ "$pick" -lt 0 ] && break # only heavy entries left, and one runs
			i=${order[$pick]}
			unset 'order[pick]'
			order=("${order[@]}")
			logs[$i]="$OUT/$(printf '%s' "${p_names[$i]}" | tr -c 'A-Za-z0-9._-' '_').log"
			starts[$i]=$(now)
			eval "timeout -k 5 ${p_limits[$i]} ${p_cmds[$i]}" >"${logs[$i]}" 2>&1 </dev/null &
			pids[$i]=$!
			running=$((running + 1))
			[ "${p_heavy[$i]}" = 1 ] && heavy_running=1
		done
		wait -n -p fin_pid 2>/dev/null
		wrc=$?
		for i in "${!pids[@]}"; do
			[ "${pids[$i]}" = "${fin_pid:-x}" ] || continue
			unset 'pids[$i]'
			running=$((running - 1))
			[ "${p_heavy[$i]}" = 1 ] && heavy_running=0
			if [ "$wrc" -ne 0 ] && [ "${p_retry[$i]}" = 1 ] && [ "$RETRIES" -gt 0 ]; then
				retry_note "${p_names[$i]}" "$wrc" "$(elapsed "${starts[$i]}" "$(now)")" "${logs[$i]}"
				retry_list+=("$i")
			else
				report "${p_names[$i]}" "$wrc" "$(elapsed "${starts[$i]}" "$(now)")" "${logs[$i]}"
			fi
		done
	done
	for i in "${retry_list[@]}"; do
		eval "run_one \"\${p_names[$i]} (retried)\" ${p_limits[$i]} ${p_cmds[$i]}"
	done
	p_names=() p_limits=() p_heavy=() p_retry=() p_cmds=() p_order=()
}
p_order=()

# ---- unit tests (Check binaries) ----------------------------------------------------------------
for tree in build build/asan; do
	[ -d "$tree/tests/unit" ] || continue
	while IFS= read -r bin; do
		name="unit:${bin#build/}"
		selected "$name" || continue
		if [ "$tree" = build/asan ]; then
			pool_add "$name" "$UNIT_TIMEOUT" 0 0 env ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
				UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$bin"
		else
			pool_add "$name" "$UNIT_TIMEOUT" 0 0 "$bin"
		fi
	done < <(find "$tree/tests/unit" -type f -perm -u+x 2>/dev/null | sort)
done

# ---- fuzz corpus replayers ------------------------------------------------------------------------
for tree in build build/asan; do
	for bin in "$tree"/tests/fuzz/*_fuzz; do
		[ -x "$bin" ] || continue
		base=$(basename "$bin")
		corpus="tests/fuzz/corpus/${base%_fuzz}"
		name="fuzz:${bin#build/}"
		selected "$name" || continue
		# The replayer (tests/fuzz/replay.c) walks directories named on its command line.
		files=()
		[ -d "$corpus" ] && files=("$corpus")
		if [ "$tree" = build/asan ]; then
			pool_add "$name" "$UNIT_TIMEOUT" 0 0 env ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
				UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$bin" "${files[@]}"
		else
			pool_add "$name" "$UNIT_TIMEOUT" 0 0 "$bin" "${files[@]}"
		fi
	done
done
pool_run

# ---- short libFuzzer runs -------------------------------------------------------------------------
# Each target starts from its committed corpus and fuzzes FUZZ_RUNS inputs (at most FUZZ_SHORT
# seconds) under ASan+UBSan (docs/fuzzing.md), from a fixed seed: the same inputs on every machine,
# so a run that passes here passes in CI (open-ended fuzzing is `make fuzz`). New inputs go to a
# scratch directory that is discarded; a crash, leak, UB or slow input fails the entry, and its
# reproducer is kept in build/fuzz/artifacts/.
FUZZ_SHORT=${FUZZ_SHORT:-30}
FUZZ_RUNS=${FUZZ_RUNS:-100000}
for bin in build/fuzz/*_fuzz; do
	[ -x "$bin" ] || continue
	base=$(basename "$bin")
	name="fuzz:libfuzzer/$base"
	selected "$name" || continue
	scratch="$OUT/corpus-${base%_fuzz}"
	mkdir -p "$scratch" build/fuzz/artifacts
	pool_add "$name" $((FUZZ_SHORT + 60)) 0 0 "$bin" -seed=1 -runs="$FUZZ_RUNS" -max_total_time="$FUZZ_SHORT" -timeout=10 \
		-artifact_prefix="build/fuzz/artifacts/${base%_fuzz}-" "$scratch" "tests/fuzz/corpus/${base%_fuzz}"
done
pool_run

# ---- end-to-end tests -----------------------------------------------------------------------------
# Each test is its own python process, E2E_JOBS at a time (the machine has 2 cores).
# Tests whose subject is a figure at scale (throughput under attack, a cache's hit ratio, a relay
# tree's counts, exact counts under stress) run with the normal build only: under ASan they measure
# the sanitizer, and the same code paths run under ASan in the functional tests (test_guard,
# test_load_attacks, test_slow_listener, test_tickets; test_hls; test_relay; test_truth).
E2E_NORMAL_ONLY=" test_guard_figures test_hls_cdn test_relay_tree test_truth_stress "
# Seconds each long test took alone in a clean run (tag:name, or name for both builds), for the
# launch order only: the longest start first, so that the pool does not end on one long test.
# Tests not listed count as 10 s.
declare -A E2E_EXPECT=([test_guard_figures]=125 [e2e:test_mixer_drift]=65 [e2e-asan:test_mixer_drift]=45
	[e2e:test_record_crash]=64 [e2e-asan:test_record_crash]=38 [test_load_attacks]=45 [test_truth_stress]=46
	[test_rooms]=44 [test_relay]=30 [test_hls_cdn]=27 [test_record_disk_full]=26 [test_relay_tree]=25
	[test_publish_listen]=22 [test_truth]=21 [test_guard]=19 [test_slow_listener]=19 [test_bad_publish]=16
	[e2e:test_load]=10 [e2e-asan:test_load]=14 [test_hls]=13 [test_record_replay]=11)
e2e_env=(env PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)
# (The sanitizer options only matter to the asan binary; the normal build ignores them.)
e2e_keys=()
for bin in build/tribune build/asan/tribune; do
	for t in tests/e2e/test_*.py; do
		[ -f "$t" ] || continue
		base=$(basename "$t" .py)
		tag=e2e
		[ "$bin" = build/asan/tribune ] && tag=e2e-asan
		[ "$tag" = e2e-asan ] && [[ "$E2E_NORMAL_ONLY" == *" $base "* ]] && continue
		name="$tag:$base"
		selected "$name" || continue
		heavy=0
		grep -q 'heavy.exclusive' "$t" && heavy=1
		if [ ! -x "$bin" ]; then
			pool_add "$name" "$E2E_TIMEOUT" 0 0 sh -c "echo '$bin is missing: build it first (make, make SAN=1 BUILD=build/asan)'; exit 127"
		else
			pool_add "$name" "$E2E_TIMEOUT" "$heavy" 1 "${e2e_env[@]}" TRIBUNE_BIN="$ROOT/$bin" python3 "$t"
		fi
		e2e_keys+=("${E2E_EXPECT[$name]:-${E2E_EXPECT[$base]:-10}} ${#e2e_keys[@]}")
	done
done
# longest first (a stable sort: equal expectations keep their order)
[ ${#e2e_keys[@]} -gt 0 ] && mapfile -t p_order < <(printf '%s\n' "${e2e_keys[@]}" | sort -s -k1,1nr | awk '{print $2}')
pool_run

# ---- browser tests --------------------------------------------------------------------------------
# Each tests/browser/test_*.mjs drives Debian's chromium through playwright-core (scripts/deps.sh
# runs npm ci in tests/browser), against build/tribune only. One at a time, after the e2e pool:
# Chromium and the latency figures need the cores.
BROWSER_TIMEOUT=120
for t in tests/browser/test_*.mjs; do
	[ -f "$t" ] || continue
	name="browser:$(basename "$t" .mjs)"
	selected "$name" || continue
	if [ ! -x build/tribune ]; then
		logf="$OUT/$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '_').log"
		echo "build/tribune is missing: build it first (make)" >"$logf"
		report "$name" 127 0.0s "$logf"
	elif [ ! -f tests/browser/node_modules/playwright-core/package.json ]; then
		logf="$OUT/$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '_').log"
		echo "tests/browser/node_modules is missing: run scripts/deps.sh (npm ci in tests/browser)" >"$logf"
		report "$name" 127 0.0s "$logf"
	else
		logf="$OUT/$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '_').log"
		t0=$(now)
		timeout -k 5 "$BROWSER_TIMEOUT" env TRIBUNE_BIN="$ROOT/build/tribune" node "$t" >"$logf" 2>&1 </dev/null
		rc=$?
		if [ "$rc" -ne 0 ] && [ "$RETRIES" -gt 0 ]; then
			retry_note "$name" "$rc" "$(elapsed "$t0" "$(now)")" "$logf"
			run_one "$name (retried)" "$BROWSER_TIMEOUT" env TRIBUNE_BIN="$ROOT/build/tribune" node "$t"
		else
			report "$name" "$rc" "$(elapsed "$t0" "$(now)")" "$logf"
		fi
	fi
done

[ "$RETRIED" -gt 0 ] && echo "$RETRIED test(s) failed once and ran again (RETRY lines above): flaky, to fix"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
