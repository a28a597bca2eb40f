"""The server's audience count against an independent observer (issue 4's truth tests, first part).

1. 3,000 listeners from tribune-load on the demo space (reading every 500 ms, so that its spans
   last at least 4 s and its own scheduling on these two shared cores does not count as a stall): once every listener has joined, the server's
   `hearing` (GET /api/spaces/demo) equals the number tribune-load itself judges hearing, exactly,
   at every poll through a steady window (from the second tribune-load itself counts all of them); `waiting` and `lagging` are 0; `peak_hearing` is 3,000.
2. Listeners that join a space before it is live are `waiting`, not `hearing`; when a publisher
   starts, they become `hearing` and `waiting` drops to 0.
Each comparison prints both numbers.
"""
import json
import os
import re
import subprocess
import threading
import time

import heavy
from lib import (Listener, ROOT, Server, check, create_space, ffmpeg_publish, http_json, log, run_test,
                 stop_process, tmpdir, wait_until)

N = 3000
SECONDS = 20


def listeners(srv, sid):
    st, _, obj = http_json(srv, "GET", "/api/spaces/%s" % sid)
    check(st == 200, "GET /api/spaces/%s -> %d" % (sid, st))
    return obj["listeners"]


def load_truth(srv):
    load_bin = os.path.join(ROOT, "build", "tribune-load")
    out = os.path.join(tmpdir(), "truth.json")
    argv = [load_bin, "%s/spaces/demo/live.opus" % srv.url, "-n", str(N), "-r", "1000", "-d", str(SECONDS),
            "--read-interval", "500", "--json", out]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(p.stdout.read().decode(errors="replace").splitlines()),
                              daemon=True)
    reader.start()
    t0 = time.monotonic()
    samples = []  # (seconds since start, server listeners object)
    while p.poll() is None and time.monotonic() - t0 < SECONDS + 30:
        samples.append((time.monotonic() - t0, listeners(srv, "demo")))
        time.sleep(0.5)  # the sampling period of this observer, not a wait for a condition
    p.wait(30)
    reader.join(10)
    check(p.returncode == 0, "tribune-load exited %s: %s" % (p.returncode, "\n".join(lines[-20:])))
    with open(out) as f:
        rep = json.load(f)
    # tribune-load's own count, second by second: "t=7s joined=3000 warming=0 hearing=3000 ...".
    own = {}
    for line in lines:
        m = re.match(r"t=(\d+)s joined=(\d+) .*?hearing=(\d+)", line.strip())
        if m:
            own[int(m.group(1))] = int(m.group(3))
    log("tribune-load, hearing per second: %s" % own)
    # Steady: from the first second in which tribune-load judges all N hearing (joins done, its
    # own 2 s warm-up over) to 2 s before the end. Within it the two counts must agree exactly.
    start = min([t for t, n in own.items() if n == N] or [SECONDS])
    steady = [(t, l) for t, l in samples if start + 1 <= t <= SECONDS - 2]
    check(len(steady) >= 4, "too few server samples in the steady window from t=%ds: %d (tribune-load: %s)"
          % (start, len(steady), own))
    for t, l in steady:
        log("t=%.1fs server hearing %d waiting %d lagging %d; tribune-load hearing %s"
            % (t, l["hearing"], l["waiting"], l["lagging"], own.get(int(t))))
        check(l["hearing"] == N and l["waiting"] == 0 and l["lagging"] == 0,
              "server counts %r at t=%.1fs, expected %d hearing" % (l, t, N))
        if int(t) in own:
            check(own[int(t)] == l["hearing"], "at t=%ds tribune-load counts %d hearing, the server %d"
                  % (int(t), own[int(t)], l["hearing"]))
    log("steady: server hearing %d = tribune-load hearing %d (final report: %d of %d hearing now)"
        % (steady[-1][1]["hearing"], own[int(steady[-1][0])], rep["hearing_now"], N))
    wait_until(lambda: listeners(srv, "demo")["connected"] == 0, 10, "the listeners to be gone")
    peak = listeners(srv, "demo")["peak_hearing"]
    check(peak == N, "peak_hearing is %d, expected %d" % (peak, N))


def waiting_before_live(srv):
    sid, key = create_space(srv, "Not live yet")
    ls = [Listener(srv, sid, keep=False, max_seconds=60) for _ in range(20)]
    for lst in ls:
        lst.start()
    for lst in ls:
        lst.wait_head(10)
    wait_until(lambda: listeners(srv, sid)["waiting"] == 20, 5, "20 waiting listeners")
    l = listeners(srv, sid)
    log("before the publisher: server waiting %d hearing %d (20 raw listeners connected, no audio)"
        % (l["waiting"], l["hearing"]))
    check(l["hearing"] == 0, "listeners of a space that is not live counted as hearing: %r" % l)
    pub = ffmpeg_publish(srv, sid, key, 20)
    try:
        wait_until(lambda: listeners(srv, sid)["hearing"] == 20, 15, "the 20 listeners to hear")
        for lst in ls:
            lst.wait_pages(3, 10, "after the publisher started")
        l = listeners(srv, sid)
        log("after the publisher: server waiting %d hearing %d; listeners receiving pages: %d"
            % (l["waiting"], l["hearing"], sum(1 for x in ls if x.page_count() >= 3)))
        check(l["waiting"] == 0, "still waiting after the publisher started: %r" % l)
    finally:
        stop_process(pub)
        for lst in ls:
            lst.stop(join=False)
        for lst in ls:
            lst.join(5)


def main():
    srv = Server("demo").start()
    load_truth(srv)
    waiting_before_live(srv)
    srv.stop()


def heavy_main():
    with heavy.exclusive("test_truth"):
        main()


if __name__ == "__main__":
    run_test(heavy_main)
