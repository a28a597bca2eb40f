"""tribune-load's attack modes (issue 5 item 8) against a real server: what the tool reports agrees
with what the server counted, and a listener running alongside keeps hearing.

Each flood run is tribune-load with one listener of its own (judged by its hearing meter) plus a few
hundred flood connections for 6 s, against a demo node started with --header_timeout_ms 2000:

  junk       300 connections from 300 source addresses (--flood-addrs 300), each 1-4 KB of random
             bytes: every one answered; the 4xx answers the tool counts equal the rise of the
             server's tribune_requests_refused_total{reason="bad_request"}
  reset      300 connect-and-reset from one address (--flood-addrs 1): 300 reset by the tool, the
             server is untouched (a fresh listener gets audio afterwards)
  oversize   200 connections from 200 addresses: 100 with a 64 KiB request target answered 414, 100 with 200 header
             fields answered 431; bad_request rises by 200
  slow-body  100 POST /api/spaces heads (from 100 addresses) trickling their body at one byte per 200 ms: the server
             closes every one (its 2 s deadline) without an answer; refused{reason="timeout"} rises by
             100
In every run the tool's own listener hears, and the outcomes partition the flood: each connection is
counted exactly once (answered by status, bad answer, closed silently, reset by the server, reset by
us, waiting, failed to connect, connecting).

Retry: a node with --workers 1 --max_listeners 50, and 80 listeners. With --retry none, 50 hear and
30 are refused once each (30 listeners with a longest run of one 503, no retries). With --retry after,
50 hear and each of the 30 refused honours Retry-After (1-2 s here) and retries for the rest of the
8 s run: all 30 retried, every one with a run of at least 2 consecutive 503s, and the server's
refused{reason="full"} rose by the 503s the tool saw (its first attempts plus retries, less those
still in flight at the end).
"""
import json
import os
import re
import subprocess

import heavy
from lib import ROOT, Listener, Server, check, http, log, run_test, tmpdir, wait_until

LOAD_BIN = os.path.join(ROOT, "build", "tribune-load")
SECONDS = 6
OUTCOMES = ("flood_bad_answer", "flood_closed_silent", "flood_reset_by_server", "flood_reset_sent",
            "flood_waiting", "flood_failed_connect", "flood_connecting", "flood_answered_status")


def refused(srv, reason):
    st, _, body = http(srv, "GET", "/metrics", timeout=5)
    check(st == 200, "GET /metrics -> %d" % st)
    m = re.search(r'^tribune_requests_refused_total\{reason="%s"\} (\d+)' % reason, body.decode(), re.M)
    check(m is not None, "no refusal counter for reason %s in /metrics" % reason)
    return int(m.group(1))


def load(srv, what, args, seconds=SECONDS, listeners=1):
    """Runs tribune-load against the demo space; returns its JSON report."""
    out = os.path.join(tmpdir(), "%s.json" % what)
    argv = [LOAD_BIN, "%s/spaces/demo/live.opus" % srv.url, "-n", str(listeners), "-r", "200",
            "-d", str(seconds), "--quiet", "--json", out] + args
    log("%s: %s" % (what, " ".join(argv)))
    r = subprocess.run(argv, capture_output=True, timeout=seconds + 30)
    text = r.stdout.decode(errors="replace")
    log("%s: report\n%s" % (what, "\n".join(line for line in text.splitlines()
                                            if line.lstrip().startswith(("hearing", "refused", "flood",
                                                                        "retry", "503")))))
    check(r.returncode == 0, "%s: tribune-load exited %d: %s" % (what, r.returncode, r.stderr.decode()[-2000:]))
    with open(out) as f:
        return json.load(f)


def check_flood(rep, what, n):
    """Every flood connection started and is counted by exactly one outcome; the listener heard."""
    check(rep["flood_started"] == n, "%s: flood_started %s, expected %d" % (what, rep["flood_started"], n))
    total = sum(rep[k] for k in OUTCOMES)
    check(total == n, "%s: outcomes add up to %d, not %d: %s" % (what, total, n, {k: rep[k] for k in OUTCOMES}))
    check(rep["flood_answered_status"] == sum(rep["flood_by_status"].values()) + rep["flood_status_other"],
          "%s: answered %s but by status %s" % (what, rep["flood_answered_status"], rep["flood_by_status"]))
    check(rep["flood_failed_connect"] == 0, "%s: %s flood connections failed to connect"
          % (what, rep["flood_failed_connect"]))
    check(rep["hearing"] == 1, "%s: the tool's own listener does not hear: %s" % (what, json.dumps(rep)))


def fours(rep):
    return sum(v for k, v in rep["flood_by_status"].items() if k.startswith("4"))


def junk(srv):
    before = refused(srv, "bad_request")
    rep = load(srv, "junk", ["--flood", "300", "--flood-rate", "150", "--flood-mode", "junk",
                             "--flood-addrs", "300"])
    check_flood(rep, "junk", 300)
    check(rep["flood_mode"] == "junk" and rep["flood_addrs"] == 300, "junk: mode or addrs not reported")
    check(rep["flood_answered_status"] == 300, "junk: %s of 300 answered: %s"
          % (rep["flood_answered_status"], json.dumps(rep)))
    n = fours(rep)
    check(n == 300, "junk: %d answers are 4xx, expected all 300: %s" % (n, rep["flood_by_status"]))
    wait_until(lambda: refused(srv, "bad_request") - before == n, 5,
               "refused{bad_request} to rise by the %d 4xx the tool counted" % n)
    log("junk: tool %s, server bad_request +%d" % (rep["flood_by_status"], refused(srv, "bad_request") - before))


def reset(srv):
    rep = load(srv, "reset", ["--flood", "300", "--flood-rate", "150", "--flood-mode", "reset",
                              "--flood-addrs", "1"])
    check_flood(rep, "reset", 300)
    check(rep["flood_reset_sent"] == 300, "reset: %s reset by the tool, expected 300: %s"
          % (rep["flood_reset_sent"], json.dumps(rep)))
    srv.check_alive("after the reset flood")
    lst = Listener(srv, "demo", keep=False, max_seconds=10)
    lst.start()
    lst.wait_pages(5, 10, "a listener after the reset flood")
    lst.stop()
    log("reset: 300 reset by the tool, a fresh listener got audio")


def oversize(srv):
    before = refused(srv, "bad_request")
    rep = load(srv, "oversize", ["--flood", "200", "--flood-rate", "100", "--flood-mode", "oversize",
                                 "--flood-addrs", "200"])
    check_flood(rep, "oversize", 200)
    by = rep["flood_by_status"]
    check(by.get("414") == 100 and by.get("431") == 100 and len(by) == 2,
          "oversize: answers %s, expected 100 x 414 and 100 x 431" % by)
    wait_until(lambda: refused(srv, "bad_request") - before == 200, 5,
               "refused{bad_request} to rise by 200")
    log("oversize: tool %s, server bad_request +%d" % (by, refused(srv, "bad_request") - before))


def slow_body(srv):
    before = refused(srv, "timeout")
    rep = load(srv, "slow-body", ["--flood", "100", "--flood-rate", "100", "--flood-mode", "slow-body",
                                  "--flood-trickle", "200", "--flood-addrs", "100"])
    check_flood(rep, "slow-body", 100)
    closed = rep["flood_closed_silent"] + rep["flood_reset_by_server"]
    check(closed == 100, "slow-body: the server closed %d of 100 (by status %s, waiting %s)"
          % (closed, rep["flood_by_status"], rep["flood_waiting"]))
    wait_until(lambda: refused(srv, "timeout") - before == 100, 5, "refused{timeout} to rise by 100")
    log("slow-body: 100 closed by the server without an answer (%d silently, %d reset), timeout +%d"
        % (rep["flood_closed_silent"], rep["flood_reset_by_server"], refused(srv, "timeout") - before))


def retry():
    srv = Server("demo", name="retry", extra=["--workers", "1", "--max_listeners", "50"]).start()
    rep = load(srv, "retry-none", ["--retry", "none"], seconds=6, listeners=80)
    check(rep["hearing"] == 50 and rep["refused"] == 30, "retry none: hearing %s refused %s, expected 50 "
          "and 30: %s" % (rep["hearing"], rep["refused"], json.dumps(rep)))
    c = rep["consecutive_503"]
    check(rep["retried"] == 0 and rep["retries"] == 0, "retry none: %s listeners retried" % rep["retried"])
    check(c == {"max": 1, "1": 30, "2": 0, "3": 0, ">3": 0}, "retry none: consecutive 503s %s" % c)
    srv.stop()

    srv = Server("demo", name="retry-after", extra=["--workers", "1", "--max_listeners", "50"]).start()
    before = refused(srv, "full")
    rep = load(srv, "retry-after", ["--retry", "after"], seconds=8, listeners=80)
    c = rep["consecutive_503"]
    check(rep["hearing"] == 50, "retry after: hearing %s, expected 50: %s" % (rep["hearing"], json.dumps(rep)))
    check(rep["retried"] == 30, "retry after: %s listeners retried, expected every one of the 30 refused"
          % rep["retried"])
    check(rep["retried_hearing"] == 0, "retry after: %s hear after retrying, but nobody left"
          % rep["retried_hearing"])
    # Retry-After is 1 or 2 s: over ~7.5 s each refused listener tries 3 to 8 more times
    check(30 * 3 <= rep["retries"] <= 30 * 8, "retry after: %s retries for 30 listeners" % rep["retries"])
    check(c["1"] == 0 and c["2"] + c["3"] + c[">3"] == 30 and c["max"] >= 3,
          "retry after: consecutive 503s %s" % c)
    full = refused(srv, "full") - before
    check(rep["retries"] <= full <= 30 + rep["retries"],
          "retry after: the server refused %d as full; the tool made 30 first attempts and %d retries"
          % (full, rep["retries"]))
    log("retry after: 30 retried %d times, consecutive 503s %s, server refused{full} +%d"
        % (rep["retries"], c, full))
    srv.stop()


def main():
    check(os.access(LOAD_BIN, os.X_OK), "%s is missing: build it" % LOAD_BIN)
    # Per-address limits off: the modes run one after another from the same 127.0.1.x addresses
    # (the reset flood's single address would otherwise still be paced when the next mode starts);
    # test_guard.py tests those limits.
    srv = Server("demo", extra=["--header_timeout_ms", "2000", "--addr_conn_rate", "0",
                                "--addr_handshakes", "0"]).start()
    junk(srv)
    reset(srv)
    oversize(srv)
    slow_body(srv)
    srv.check_alive("after the floods")
    srv.stop()
    retry()


def heavy_main():
    with heavy.exclusive("test_load_attacks"):
        main()


if __name__ == "__main__":
    run_test(heavy_main)
