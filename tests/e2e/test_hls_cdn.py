"""HLS through a real nginx proxy_cache: 500 players (200 under ASan), the origin serves each segment ~once.

`tribune demo` is the origin (its addr_conn_rate lifted: nginx is one client address for all the
players' beacons); nginx (its own process, config and prefix in a temp dir, `daemon off`, as the
current user) caches /spaces/ keyed on the path without the query string, honoring the origin's
Cache-Control, with proxy_cache_lock; /api/ is passed through uncached. tests/e2e/hlsload.py runs
the players through nginx for ~20 s: playlist every target duration, init once, each new segment
once (checked as fMP4 boxes with moof + mdat), a beacon at the first segment and every 10 s; one
player in four adds a cache-busting query string.
  - every request answered 200 (no 404/5xx, no timeout) and every segment parsed;
  - the origin served each distinct segment at most twice (tribune_hls_requests_total{kind="segment"}
    against the distinct segments the players got), and nginx's access log agrees;
  - the origin served at most about 2 playlists a second (nginx revalidates an expired one once
    and serves the others the previous copy meanwhile: proxy_cache_use_stale updating);
  - the cache hit ratio (HIT / all segment requests through nginx) is printed and >= 0.95;
  - GET /api/spaces/demo and tribune_format_listeners{format="hls",state="hearing"} count all N
    players as hearing within 15 s of the first beacon.
Expiry 30 s after the last beacon is not waited for here (it would double the test's time): it is
asserted in tests/unit/space/beacons_test.c.
"""
import asyncio
import os
import re
import shutil
import subprocess
import threading
import time

import heavy
import hlsload
from lib import (IS_ASAN, Server, check, free_port, http, http_json, log, run_test, tmpdir,
                 wait_until)

N = int(os.environ.get("TRIBUNE_HLS_CDN_PLAYERS", 200 if IS_ASAN else 500))
DURATION = 20.0


def origin_count(srv, kind):
    st, _, body = http(srv, "GET", "/metrics")
    check(st == 200, "GET /metrics -> %d" % st)
    m = re.search(r'^tribune_hls_requests_total\{kind="%s"\} (\d+)' % kind, body.decode(), re.M)
    check(m, "/metrics lacks tribune_hls_requests_total{kind=%r}" % kind)
    return int(m.group(1))


def hls_listeners(srv):
    """tribune_format_listeners{space="demo",format="hls"} as {state: value}."""
    st, _, body = http(srv, "GET", "/metrics")
    check(st == 200, "GET /metrics -> %d" % st)
    out = {}
    for m in re.finditer(r'^tribune_format_listeners\{space="demo",format="hls",state="(\w+)"\} (\S+)$',
                         body.decode(), re.M):
        out[m.group(1)] = int(float(m.group(2)))
    return out


def hls_hearing(srv):
    return hls_listeners(srv).get("hearing")


def start_nginx(origin):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    check(os.access(nginx, os.X_OK), "nginx not installed (scripts/deps.sh installs it)")
    d = tmpdir()
    port = free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(hlsload.nginx_conf(d, port, origin.port))
    logf = open(os.path.join(d, "nginx.out"), "wb")
    p = subprocess.Popen([nginx, "-c", conf, "-p", d + "/", "-e", os.path.join(d, "error.log")],
                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
    logf.close()

    class Front:
        pass
    front = Front()
    front.port, front.proc, front.dir = port, p, d

    def ready():
        if p.poll() is not None:
            with open(os.path.join(d, "nginx.out")) as f:
                check(False, "nginx exited %s:\n%s" % (p.returncode, f.read()))
        try:
            st, _, _ = http(front, "GET", "/api/spaces", timeout=2)
            return st == 200
        except OSError:
            return False
    wait_until(ready, 10, "nginx answering on port %d" % port)
    log("nginx on port %d (pid %d), origin %d, conf %s" % (port, p.pid, origin.port, conf))
    return front


def main():
    srv = Server(cmd="demo", extra=["--addr_conn_rate", "0"]).start()
    front = start_nginx(srv)
    try:
        # players join a running program: three segments listed (6 s), as they start three back
        def listed():
            st, _, body = http(srv, "GET", "/spaces/demo/hls/live.m3u8")
            return st == 200 and len(hlsload.parse_playlist(body.decode())[2]) >= 3
        wait_until(listed, 15, "three segments in the demo's playlist", interval=0.2)
        base = {k: origin_count(srv, k) for k in ("playlist", "init", "segment")}

        box = {}

        def players():
            box["stats"] = asyncio.run(hlsload.run_players(front.port, "demo", N, DURATION))
        t = threading.Thread(target=players, daemon=True)
        t0 = time.monotonic()
        t.start()

        # all N hearing within 15 s of the first beacon, while they play
        wait_until(lambda: t.is_alive() or "stats" in box, 1, "players running")
        deadline = t0 + DURATION
        seen = None
        while time.monotonic() < deadline:
            h = hls_hearing(srv)
            if h == N:
                seen = time.monotonic() - t0
                break
            time.sleep(0.25)
        st, _, obj = http_json(srv, "GET", "/api/spaces/demo")
        api_hearing = obj["listeners"]["hearing"]
        t.join(DURATION + 20)
        check(not t.is_alive(), "players did not stop by themselves")
        s = box["stats"]
        check(s.first_beacon is not None, "no beacon was answered 200")
        first_beacon = s.first_beacon - t0
        log("hearing: format=hls reached %d at %s s after start, first beacon at %.1f s; "
            "GET /api/spaces/demo hearing %d"
            % (N, "%.1f" % seen if seen is not None else "never", first_beacon, api_hearing))
        check(seen is not None and seen - first_beacon <= 15,
              "tribune_format_listeners{format=hls} never had %d hearing (last %r; API %r; player errors %d: %r)"
              % (N, hls_listeners(srv), obj["listeners"], len(s.errors), s.errors[:5]))
        check(api_hearing >= N, "GET /api/spaces/demo hearing %d < %d players" % (api_hearing, N))

        log("players: %d, requests %r, segments ok %d, distinct segments %d, stalls %d, min buffered %.2f s, "
            "beacons ok %d, errors %d"
            % (N, s.requests, s.segments_ok, len(s.seg_uris), s.stalls, s.min_buffered or 0, s.beacons_ok,
               len(s.errors)))
        check(not s.errors, "player errors (%d), first: %r" % (len(s.errors), s.errors[:10]))
        check(s.stalls == 0, "%d stalls (min buffered %.2f s)" % (s.stalls, s.min_buffered or 0))
        check(s.players_with_media == N, "only %d of %d players got a segment" % (s.players_with_media, N))
        check(s.segments_ok == s.requests["segment"], "segments ok %d != asked %d"
              % (s.segments_ok, s.requests["segment"]))

        orig = {k: origin_count(srv, k) - base[k] for k in base}
        counts, log_segs, bad = hlsload.access_log_counts(os.path.join(front.dir, "access.log"))
        seg = counts.get("segment", {})
        total = sum(seg.values())
        hits = seg.get("HIT", 0)
        ratio = hits / float(total) if total else 0.0
        log("origin served: %r for %d distinct segments (%.2f a segment); nginx: %r" %
            (orig, len(log_segs), orig["segment"] / max(1.0, len(log_segs)), counts))
        log("cache hit ratio (segments): %d HIT / %d = %.4f" % (hits, total, ratio))
        check(not bad, "non-200 answers in nginx's access log: %r" % bad)
        check(total == s.requests["segment"], "nginx logged %d segment requests, players made %d"
              % (total, s.requests["segment"]))
        check(orig["segment"] <= 2 * len(log_segs), "the origin served %d segment requests for %d distinct segments"
              % (orig["segment"], len(log_segs)))
        misses = sum(v for k, v in seg.items() if k != "HIT")
        check(misses <= 2 * len(log_segs), "nginx missed %d times for %d segments: %r" % (misses, len(log_segs), seg))
        check(ratio >= 0.95, "cache hit ratio %.4f < 0.95" % ratio)
        check(orig["playlist"] <= 2 * (DURATION + 5), "the origin served %d playlists in about %.0f s"
              % (orig["playlist"], DURATION))
        check(orig["init"] <= 2, "the origin served the init segment %d times" % orig["init"])
        log("done in %.1f s" % (time.monotonic() - t0))
    finally:
        if front.proc.poll() is None:
            front.proc.terminate()
            try:
                front.proc.wait(10)
            except subprocess.TimeoutExpired:
                front.proc.kill()
                front.proc.wait()


def heavy_main():
    # 500 players, nginx and the origin: one heavy test at a time (heavy.py), so that the players'
    # own loop is not starved by another load test and judged stalling
    with heavy.exclusive("test_hls_cdn"):
        main()


if __name__ == "__main__":
    run_test(heavy_main)
