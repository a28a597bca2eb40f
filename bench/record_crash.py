#!/usr/bin/env python3
"""make bench: the recording crash test (tests/e2e/test_record_crash.py) at length.

BENCH_RECORD_ITER iterations (default 100; about 3.3 s each, 5.5 min in all): a server on a fresh
data directory, the host publishing the test's signal, SIGKILL after a delay drawn from
random.Random(iteration) in [0.5, 3.5] s, a restart on the same data, and every check of the
test (valid segments, nothing lost that the API showed before the kill, at most one page plus the
held-back packet lost against what the server had emitted, the publisher's audio sample-aligned).
A failed iteration is recorded with its error and the run goes on.

Writes $BENCH_RESULTS/record-crash-<UTC timestamp>.json (default bench/results): the settings,
one object per iteration (kill delay, recorded and expected seconds, deficit, bytes at the kill
and kept by recovery, segments, packets identical, SNR, valid) and a summary. Exit 1 if any
iteration failed. TRIBUNE_BIN selects the binary (default build/tribune).
"""
import json
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

import lib  # noqa: E402
from test_record_crash import Reference, iteration, summary  # noqa: E402


def kill_leftovers():
    for s in lib._SERVERS:
        s.kill()
    for p in lib._PROCS:
        if p.poll() is None:
            p.kill()
            p.wait()


def main():
    n = int(os.environ.get("BENCH_RECORD_ITER", "100"))
    out_dir = os.environ.get("BENCH_RESULTS", os.path.join(ROOT, "bench", "results"))
    os.makedirs(out_dir, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out = os.path.join(out_dir, "record-crash-%s.json" % stamp)
    t0 = time.monotonic()
    ref = Reference(lib.tmpdir())
    results, failures = [], []
    for it in range(n):
        try:
            results.append(iteration(ref, it))
        except Exception as e:
            traceback.print_exc()
            failures.append({"iteration": it, "valid": False, "error": str(e)[:2000]})
            kill_leftovers()
        lib._SERVERS[:] = [s for s in lib._SERVERS if not s.stopped]
    doc = {"bench": "record-crash", "utc": stamp, "tribune_bin": lib.TRIBUNE_BIN, "iterations": n,
           "seconds": round(time.monotonic() - t0, 1), "results": results, "failures": failures,
           "summary": dict(summary(results) if results else {}, failed=len(failures))}
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
    lib.log("record-crash: %d iterations, %d failed, %.0f s; summary %s -> %s" % (
        n, len(failures), doc["seconds"], json.dumps(doc["summary"]), out))
    kill_leftovers()
    if os.environ.get("TRIBUNE_E2E_KEEP") is None:
        import shutil
        for d in lib._TMPDIRS:
            shutil.rmtree(d, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
