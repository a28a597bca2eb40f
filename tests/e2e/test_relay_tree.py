"""A relay tree (issue 9, scaled to fit the suite): an origin (`tribune demo`), three first-level edges
E1, E2, E3 fed by the origin and one second-level edge E4 fed by E1, each a separate process on
loopback, with N listeners on each edge from one tribune-load process per edge (2,000 each; 300 under
ASan).

  1. Counts: the origin's GET /api/spaces/demo counts hearing == 4 N (the whole tree's, each listener
     once), with 3 edges reporting to it directly; both figures are printed.
  2. The origin stops for 5 s (SIGSTOP, then SIGCONT), then goes away for 5 s (SIGKILL, then
     restarted on the same port): each time every edge keeps its N listeners connected (E1 counts its
     own and E4's: 2 N) and answers its API within 10 s throughout (the slowest answers are
     printed), and the origin's count is 4 N again within 10 s of its return. (Either used to stall an
     edge's API for 4-23 s on this box: an edge worker that fell behind wrote each queued chunk to its
     2,000 listeners in turn; docs/internals/relay.md, "Delivery under a backlog".)
  3. E3 (a leaf) is killed (SIGKILL). Its tribune-load was started with `--failover E1,E2`: its N
     listeners rejoin E1 or E2 (half each: the list is rotated per listener) after a jittered backoff
     of at most 1 s. The origin's count converges back to 4 N, with E3's report gone (2 edges report
     directly), within 5 s of the kill; the time is printed. Meanwhile it never exceeds 4 N: E3's
     report leaves the origin's count as soon as E3's upstream connection closes there (the worker
     tells the master: CHAN_EDGE_GONE), not 2.5 s later when it would expire.
  5. Steering: the origin has `max_listeners` 3 (its edges' upstreams) and `edges` = E1,E2,E3: a raw
     join gets `302 Found` to E2 or E3 (the fresh edges with the fewest listeners; E1 counts E4's too)
     before the outages, and to E2 after E3's death (E1 then counts 2.5 N, E2 1.5 N), once listeners
     have taken the slot E3's upstream freed.
  6. ffmpeg -i the origin's live.opus follows the 302 and decodes 2 s.
  4. At the end the four load tools report all N connected and none failed; the origin's last count
     equals the sum of their streams (connected, receiving audio). E3's tool counts N listeners failed
     over, none between streams, all heard again (tribune-load's meter: a full span with at least 0.9 s
     of audio per second on E1 or E2, after a new warm-up), and its death-to-audio times (p50/p99/max)
     are printed. Hearing since warm-up (never stalled) is
     printed, not checked: a listener that failed over had a gap, so it is never counted there; and on
     this shared 2-core box, with 8,000 listeners and 4 load tools, some 1 s spans fall under 0.9 s of
     audio (no skip, gaps under 300 ms) around the origin's restart, so that figure falls short for
     the other tools too; an open problem.
"""
import json
import os
import resource
import signal
import socket
import subprocess
import time

import heavy
from lib import Server, TestFailure, check, ffmpeg_decode_url, free_port, http_json, log, raw_request, \
    run_test, start_load, tmpdir, wait_until, IS_ASAN

N = 300 if IS_ASAN else 2000
LOAD_S = 34 if IS_ASAN else 36
FAILOVER_S = 5  # issue 9: the count converges within 5 s of an edge's death


def listeners(srv, timeout=5):
    try:
        st, _, obj = http_json(srv, "GET", "/api/spaces/demo", timeout=timeout)
    except OSError as e:
        check(False, "GET /api/spaces/demo on %s: %s" % (srv.name, e))
    check(st == 200, "GET /api/spaces/demo on %s -> %d %r" % (srv.name, st, obj))
    return obj["listeners"]


def run_load(name, url, n, out, failover=()):
    args = ["-n", n, "-r", 2000, "-d", LOAD_S, "--json", out, "--quiet"]
    if failover:
        args += ["--failover", ",".join(failover)]
    return start_load(url, args, "load on %s" % name)


def fill(origin, most):
    """Joins at the origin until one is not admitted (at most `most`); returns the admitted sockets."""
    held = []
    for _ in range(most):
        s = socket.create_connection(origin.addr, timeout=5)
        s.sendall(b"GET /spaces/demo/live.opus HTTP/1.1\r\nHost: x\r\n\r\n")
        head = b""
        deadline = time.monotonic() + 5
        while b"\r\n" not in head and time.monotonic() < deadline:
            x = s.recv(4096)
            if not x:
                break
            head += x
        if head.startswith(b"HTTP/1.1 200"):
            held.append(s)
            continue
        s.close()
        break
    return held


def steered_to(origin):
    """One raw join at the origin: (status line, Location)."""
    resp = raw_request(origin, b"GET /spaces/demo/live.opus HTTP/1.1\r\nHost: x\r\n\r\n",
                       read_all=False).decode(errors="replace")
    loc = ""
    for line in resp.split("\r\n")[1:]:
        if line.lower().startswith("location:"):
            loc = line.split(":", 1)[1].strip()
    return resp.split("\r\n", 1)[0], loc


def check_steering(origin, allowed, n):
    """n raw joins at the full origin: each is a 302 to one of `allowed` (base URLs), never a 503."""
    got = {}
    for _ in range(n):
        status, loc = steered_to(origin)
        got[(status, loc)] = got.get((status, loc), 0) + 1
        check(status == "HTTP/1.1 302 Found" and loc in [u + "/spaces/demo/live.opus" for u in allowed],
              "a join at the full origin -> %r, Location %r (expected 302 to one of %r)" % (status, loc, allowed))
    log("%d joins at the full origin: %r" % (n, got))


def edges_hold(edges, how):
    """For 5 s while the origin is away, every edge answers its API (within 10 s) and keeps its
    listeners: E1 counts its own and E4's (2 N), the others N."""
    want = {"E1": 2 * N, "E2": N, "E3": N, "E4": N}
    t_stop = time.monotonic()
    polls = 0
    slowest = dict.fromkeys(edges, 0.0)
    while time.monotonic() - t_stop < 5 and polls < 100:
        polls += 1
        got = {}
        for name, srv in edges.items():
            t = time.monotonic()
            got[name] = listeners(srv, timeout=10)["connected"]
            slowest[name] = max(slowest[name], time.monotonic() - t)
        check(got == want, "while the origin is %s, the edges count %r connected (expected %r)" % (how, got, want))
        time.sleep(0.25)
    log("5 s with the origin %s: the edges count %r connected; slowest API answer per edge (s): %s"
        % (how, got, {k: round(v, 2) for k, v in slowest.items()}))


def raise_fd_limit():
    """Each process here holds at most ~N + a few hundred descriptors; the children inherit this."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 20000) if hard != resource.RLIM_INFINITY else 20000
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    check(resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= N + 1000,
          "RLIMIT_NOFILE %d is too low for %d listeners per process" % (resource.getrlimit(resource.RLIMIT_NOFILE)[0], N))


def main():
    raise_fd_limit()
    t0 = time.monotonic()
    # the origin has room for its three edges' upstreams only, and steers everyone else to them
    origin = Server(cmd="demo", extra=["--workers", "1", "--max_listeners", "3"], name="origin")
    origin.port = free_port()
    edges = {}
    for name in ("E1", "E2", "E3"):
        edges[name] = Server(cmd="relay", extra=["--origin", origin.url, "--workers", "1"], name=name).start()
    origin.extra += ["--edges", ",".join(edges[name].url for name in ("E1", "E2", "E3"))]
    origin.start(port=origin.port)
    edges["E4"] = Server(cmd="relay", extra=["--origin", edges["E1"].url, "--workers", "1"], name="E4").start()
    log("edges: %s" % ", ".join("%s %s" % (name, srv.url) for name, srv in edges.items()))
    total = 4 * N

    loads, outs = {}, {}
    for name, srv in edges.items():
        outs[name] = os.path.join(tmpdir(), "load-%s.json" % name)
        # E3's listeners fail over to the other first-level edges when E3 dies (step 3)
        failover = [edges[e].url + "/spaces/demo/live.opus" for e in ("E1", "E2")] if name == "E3" else ()
        loads[name] = run_load(name, srv.url + "/spaces/demo/live.opus", N, outs[name], failover)
    t_start = time.monotonic()
    try:
        # 1. the tree's count at the origin
        counts = []
        try:
            wait_until(lambda: counts.append(listeners(origin)) or counts[-1]["hearing"] == total,
                       15 * (2 if IS_ASAN else 1), "the origin to count %d hearing (the tree's)" % total, 0.1)
        except TestFailure as e:
            check(False, "%s; its last count: %r; the edges count: %r"
                  % (e, counts[-1:], {name: listeners(srv) for name, srv in edges.items()}))
        lo = listeners(origin)
        log("%.1f s after the loads started: origin counts hearing %d (expected %d = 4 x %d), %d edges report"
            % (time.monotonic() - t_start, lo["hearing"], total, N, lo["edges"]["edges"]))
        check(lo["connected"] == total and lo["edges"]["edges"] == 3,
              "origin: connected %r, edges %r (expected %d, 3 edges)" % (lo["connected"], lo["edges"], total))

        # 5. steering: the full origin sends a new listener to the least-loaded fresh edge (E1 counts
        # E4's listeners too: 2 N against N for E2 and E3)
        check_steering(origin, [edges["E2"].url, edges["E3"].url], 5)

        # 2a. the origin stops for 5 s (SIGSTOP, then SIGCONT): the edges keep their listeners, answer
        # their API, and the origin counts the tree again
        frozen = [origin.proc.pid] + [int(x) for x in subprocess.run(
            ["pgrep", "-P", str(origin.proc.pid)], capture_output=True, text=True).stdout.split()]
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        log("origin stopped (SIGSTOP: master and %d worker(s))" % (len(frozen) - 1))
        try:
            edges_hold(edges, "stopped")
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        t_back = time.monotonic()
        wait_until(lambda: listeners(origin)["hearing"] == total, 10,
                   "the origin to count %d hearing again after SIGCONT" % total, 0.1)
        log("origin continued (SIGCONT): counts the tree's %d hearing again %.1f s later"
            % (total, time.monotonic() - t_back))

        # 2b. the origin goes away for 5 s (killed, then restarted on its port): the same
        port = origin.port
        origin.proc.send_signal(signal.SIGKILL)
        origin.proc.wait()
        origin.stopped = True
        log("origin killed (SIGKILL)")
        edges_hold(edges, "killed")
        origin.start(port=port)
        t_back = time.monotonic()
        wait_until(lambda: listeners(origin)["hearing"] == total, 10,
                   "the origin to count %d hearing again after its restart" % total, 0.1)
        log("origin restarted: counts the tree's %d hearing again %.1f s after its restart"
            % (total, time.monotonic() - t_back))

        # 3. a leaf edge dies: its listeners fail over to E1 and E2, the origin's count converges back.
        # First the tree is whole again: every first-level edge's upstream reconnected after the
        # origin's return (an edge whose upstream is down when it dies leaves the count only when its
        # report expires, 2.5 s later)
        t = time.monotonic()
        wait_until(lambda: listeners(origin)["edges"]["upstreams"] == 3, 15,
                   "the three first-level edges' upstreams to reconnect to the origin", 0.1)
        log("the three first-level edges pull from the origin again (%.1f s)" % (time.monotonic() - t))
        edges["E3"].kill()
        t_kill = time.monotonic()
        seen = []

        def converged():
            lo = listeners(origin)
            seen.append((round(time.monotonic() - t_kill, 2), lo["hearing"], lo["edges"]["edges"]))
            return lo["hearing"] == total and lo["edges"]["edges"] == 2
        try:
            wait_until(converged, FAILOVER_S, "the origin to count %d hearing from 2 edges after E3's death "
                       "(its listeners failing over to E1 and E2)" % total, 0.1)
        except TestFailure as e:
            check(False, "%s; (s after the kill, origin's hearing, edges reporting) seen: %r" % (e, seen[-30:]))
        t_conv = time.monotonic() - t_kill
        low, high = min(h for _, h, _ in seen), max(h for _, h, _ in seen)
        log("E3 killed (SIGKILL): its %d listeners failed over to E1 and E2; the origin counts %d hearing "
            "from 2 edges %.1f s after the kill (counts seen meanwhile %d to %d; %d polls)" % (N, total, t_conv, low, high, len(seen)))
        # each listener once: E3's report leaves the moment its upstream closes at the origin
        # (CHAN_EDGE_GONE), before its listeners reach E1 and E2, so the count never exceeds the total
        check(high <= total, "the origin counted %d hearing after E3's death, more than the %d listeners "
              "(E3's failed-over listeners counted twice); seen: %r" % (high, total, seen[-30:]))
        check(time.monotonic() - t_start < LOAD_S - 6,
              "the loads end too soon after E3's death to judge the failed-over listeners")
        last = listeners(origin)["hearing"]
        # E3's upstream slot at the origin is free now: listeners take the free slots (one, unless an
        # edge's upstream is reconnecting), then the origin is full again, and steers to E2 (E1 counts
        # its own N, E4's N and half of E3's)
        held = fill(origin, 3)
        log("%d listener(s) took the origin's free slots" % len(held))
        # the origin picks its steering target once a second from fresh reports, and at once when an
        # edge's upstream closes (E3's report is forgotten then)
        t = time.monotonic()
        to_e2 = ("HTTP/1.1 302 Found", edges["E2"].url + "/spaces/demo/live.opus")
        wait_until(lambda: steered_to(origin) == to_e2, 2.5, "the full origin to steer to E2 (%s)" % edges["E2"].url,
                   0.1)
        log("the full origin steers to E2 %.1f s after the count converged" % (time.monotonic() - t))
        check_steering(origin, [edges["E2"].url], 5)
        for s in held:
            s.close()

        # 4. the load tools against the origin's count; E3's listeners hear again on E1 and E2
        heard = conn = 0
        for name in ("E1", "E2", "E3", "E4"):
            p = loads[name]
            p.wait(LOAD_S + 30)
            p.reader.join(10)
            check(p.returncode == 0, "tribune-load on %s exited %s: %s" % (name, p.returncode, "\n".join(p.lines[-30:])))
            with open(outs[name]) as f:
                rep = json.load(f)
            log("tribune-load on %s: hearing now %d of %d (never stalled: %d; stalled ever %d, spans under 90 %%: %d, "
                "worst span %.1f %%, skips %d, max gap %d ms), failed %d %r"
                % (name, rep["hearing_now"], N, rep["hearing"], rep["ever_stalled"], rep["spans_low"],
                   rep["worst_span_pct"], rep["skips"], rep["max_gap_ms"], rep["failed"], rep.get("failed_by_kind")))
            check(rep["failed"] == 0 and rep["joined"] == N and rep["connected"] == N,
                  "tribune-load on %s: %r" % (name, rep))
            if name == "E3":
                fo = rep["failover_ms"]
                log("tribune-load on E3: %d listeners failed over (%d moves), %d heard again, %d hearing now, "
                    "%d between streams; death to audio ms p50 %.0f p99 %.0f max %.0f (%d outages)"
                    % (rep["failed_over"], rep["failovers"], rep["failover_heard"], rep["failover_hearing"],
                       rep["failover_down"], fo["p50"], fo["p99"], fo["max"], fo["n"]))
                check(rep["failed_over"] == N and rep["failover_down"] == 0 and fo["n"] == N,
                      "tribune-load on E3: %d of %d listeners failed over, %d still between streams, %d outages "
                      "ended" % (rep["failed_over"], N, rep["failover_down"], fo["n"]))
                # heard again: a full span meeting the bar on E1 or E2 since the failover (tribune-load's
                # meter). Hearing now, at the run's last instant, is printed only: on this shared box it
                # falls short by a few % for the undisturbed tools too (see 4. above)
                check(rep["failover_heard"] == N,
                      "tribune-load on E3: %d of %d failed-over listeners heard again (hearing now %d)"
                      % (rep["failover_heard"], N, rep["hearing_now"]))
                check(rep["hearing"] == 0 and rep["ever_stalled"] == N,
                      "tribune-load on E3: the failover gap must count as a stall (hearing %d, stalled ever %d)"
                      % (rep["hearing"], rep["ever_stalled"]))
            heard += rep["hearing_now"]
            conn += rep["connected"]
        log("origin's last count %d; tribune-load on E1 + E2 + E3 + E4: %d connected, %d hearing now"
            % (last, conn, heard))
        check(last == conn, "the origin counted %d, the load tools hold %d streams" % (last, conn))
    finally:
        for p in loads.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    # 6. a player follows the 302: ffmpeg opens the origin's URL and plays from an edge
    samples = ffmpeg_decode_url(origin.url + "/spaces/demo/live.opus", 2, os.path.join(tmpdir(), "steered.raw"),
                                "through the origin's 302")
    secs = len(samples) / 48000.0
    check(abs(secs - 2.0) <= 0.1, "decoded %.2f s through the origin's 302, expected 2" % secs)
    log("ffmpeg -i %s/spaces/demo/live.opus followed the 302 and decoded %.2f s" % (origin.url, secs))
    for name in ("E4", "E2", "E1"):
        edges[name].stop()
    origin.stop()
    log("whole test: %.1f s" % (time.monotonic() - t0))


def heavy_main():
    # 5 servers and 8,000 listeners: one heavy test at a time (heavy.py)
    with heavy.exclusive("test_relay_tree"):
        main()


if __name__ == "__main__":
    run_test(heavy_main)
