"""2,000 listeners through tribune-load for 10 s: every one of them hears.

The demo space (built-in speaker, 48 kbit/s Opus) on a node with its default workers; tribune-load
(the optimised build, also for the sanitizer server) joins 2,000 listeners at 1,000/s over 10 s and judges each one
independently of the server (see `tribune-load --help` for the hearing rule). Asserts, from its JSON
report: 2,000 joined, 2,000 hearing (100 %), none failed, refused or stalled; and the server's own
count matches: the API reports 2,000 connected while the load runs.
"""
import json
import os
import subprocess
import threading

import heavy
from lib import IS_ASAN, ROOT, Server, check, http_json, log, run_test, tmpdir, wait_until

N = 2000
SECONDS = 10


def main():
    # The load tool is the observer, not the subject: always the optimised build.
    load_bin = os.path.join(ROOT, "build", "tribune-load")
    check(os.access(load_bin, os.X_OK), "%s is missing: build it" % load_bin)
    srv = Server("demo").start()
    out = os.path.join(tmpdir(), "load.json")
    argv = [load_bin, "%s/spaces/demo/live.opus" % srv.url, "-n", str(N), "-r", "1000", "-d", str(SECONDS),
            "--quiet", "--json", out]
    log("run: %s" % " ".join(argv))
    peak = [0]

    def watch():
        def seen():
            st, _, obj = http_json(srv, "GET", "/api/spaces/demo")
            peak[0] = max(peak[0], obj["listeners"]["connected"] if st == 200 else 0)
            return peak[0] >= N
        try:
            wait_until(seen, SECONDS + 5, "the API to count %d listeners" % N, interval=0.5)
        except Exception as e:  # reported below through peak
            log("watch: %s" % e)

    w = threading.Thread(target=watch, daemon=True)
    w.start()
    r = subprocess.run(argv, capture_output=True, timeout=SECONDS + 60)
    w.join(10)
    log(r.stdout.decode(errors="replace")[-1500:])
    check(r.returncode == 0, "tribune-load exited %d: %s" % (r.returncode, r.stderr.decode()[-2000:]))
    with open(out) as f:
        rep = json.load(f)
    for key in ("joined", "hearing"):
        check(rep[key] == N, "%s = %s, expected %d: %s" % (key, rep[key], N, json.dumps(rep)))
    for key in ("failed", "refused", "ever_stalled"):
        check(rep[key] == 0, "%s = %s, expected 0: %s" % (key, rep[key], json.dumps(rep)))
    check(peak[0] == N, "the API's peak listener count was %d, expected %d" % (peak[0], N))
    log("%d of %d hearing, join p99 %.1f ms, max gap %d ms, API peak %d%s"
        % (rep["hearing"], N, rep["join_ms"]["p99"], rep["max_gap_ms"], peak[0], " (asan)" if IS_ASAN else ""))
    srv.stop()


def heavy_main():
    with heavy.exclusive("test_load"):
        main()


if __name__ == "__main__":
    run_test(heavy_main)
