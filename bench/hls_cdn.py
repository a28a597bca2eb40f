#!/usr/bin/env python3
"""HLS behind nginx proxy_cache: what reaches the origin, and what it costs, against the players.

  python3 bench/hls_cdn.py [--json OUT]

`tribune demo` (the origin, --addr_conn_rate 0: nginx is one address) behind a real nginx with the
config of tests/e2e/hlsload.py (proxy_cache keyed on $uri, proxy_cache_lock, /api/ uncached). For
each step of N players (tests/e2e/hlsload.py, split over BENCH_HLS_PROCS load processes, a new
connection per request, a beacon every 10 s), run for BENCH_HLS_SECONDS s after the program lists
three segments, measured over the whole step:
  - the origin's HLS requests per second by kind (tribune_hls_requests_total deltas) and beacons per
    second (nginx's access log: every beacon goes upstream);
  - the origin's CPU (its whole process tree, bench/procstat.py) and nginx's, in % of one core;
  - the segment hit ratio (nginx's $upstream_cache_status over the step), and the players' errors
    and stalls.
The load processes share the machine's two cores with nginx and the origin: the nginx and load
figures are what this box gives, the origin's are the point (flat in N behind a cache, but for
beacons). Settings (environment): BENCH_HLS_STEPS=0,500,1000,2000 BENCH_HLS_SECONDS=20
BENCH_HLS_PROCS=2 TRIBUNE=build/tribune.
"""
import asyncio
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
sys.path.insert(0, HERE)
import hlsload  # noqa: E402
import procstat  # noqa: E402

TRIBUNE = os.environ.get("TRIBUNE", os.path.join(HERE, "..", "build", "tribune"))
STEPS = [int(x) for x in os.environ.get("BENCH_HLS_STEPS", "0,500,1000,2000").split(",")]
SECONDS = float(os.environ.get("BENCH_HLS_SECONDS", "20"))
PROCS = int(os.environ.get("BENCH_HLS_PROCS", "2"))


def log(msg):
    print("[hls_cdn] " + msg, flush=True)


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
        return r.status, r.read()


def wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("timed out waiting for " + what)


def origin_counts(port):
    _, body = get(port, "/metrics")
    out = {}
    for m in re.finditer(r'^tribune_hls_requests_total\{kind="(\w+)"\} (\d+)', body.decode(), re.M):
        out[m.group(1)] = int(m.group(2))
    return out


def load_proc(port, n, first, q):
    st = asyncio.run(hlsload.run_players(port, "demo", n, SECONDS, first=first, seed=first))
    q.put({"errors": len(st.errors), "first_errors": st.errors[:3], "stalls": st.stalls,
           "segments_ok": st.segments_ok, "requests": st.requests, "with_media": st.players_with_media})


def log_lines_from(path, off):
    with open(path) as f:
        f.seek(off)
        data = f.read()
        return data, f.tell()


def main():
    out_json = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    work = tempfile.mkdtemp(prefix="bench-hls-cdn-")
    procs = []
    try:
        oport, nport = free_port(), free_port()
        ologf = open(os.path.join(work, "origin.log"), "wb")
        origin = subprocess.Popen([TRIBUNE, "demo", "--listen", "127.0.0.1:%d" % oport, "--data",
                                   os.path.join(work, "data"), "--addr_conn_rate", "0"],
                                  stdin=subprocess.DEVNULL, stdout=ologf, stderr=ologf, start_new_session=True)
        procs.append(origin)
        ndir = os.path.join(work, "nginx")
        os.makedirs(ndir)
        with open(os.path.join(ndir, "nginx.conf"), "w") as f:
            f.write(hlsload.nginx_conf(ndir, nport, oport))
        nginx = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-c", os.path.join(ndir, "nginx.conf"),
                                  "-p", ndir + "/", "-e", os.path.join(ndir, "error.log")],
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        procs.append(nginx)

        def listed():
            st, body = get(oport, "/spaces/demo/hls/live.m3u8")
            return st == 200 and len(hlsload.parse_playlist(body.decode())[2]) >= 3
        wait(listed, 20, "three segments at the origin")
        wait(lambda: get(nport, "/api/spaces")[0] == 200, 10, "nginx")
        access = os.path.join(ndir, "access.log")
        results = []
        log("%6s %9s %9s %9s %9s %9s %9s %8s %7s %7s" % ("players", "orig pl/s", "orig seg/s", "beacon/s",
                                                          "orig CPU%", "nginx CPU%", "hit ratio", "errors",
                                                          "stalls", "heard"))
        for k, n in enumerate(STEPS):
            c0 = origin_counts(oport)
            o0, x0 = procstat.snap(origin.pid)["cpu_s"], procstat.snap(nginx.pid)["cpu_s"]
            off = os.path.getsize(access)
            t0 = time.monotonic()
            q = multiprocessing.Queue()
            per = [n // PROCS + (1 if i < n % PROCS else 0) for i in range(PROCS)]
            ps = [multiprocessing.Process(target=load_proc, args=(nport, m, 1000000 * (k + 1) + 100000 * i, q))
                  for i, m in enumerate(per) if m]
            for p in ps:
                p.start()
            if not ps:
                time.sleep(SECONDS)  # step 0: the origin's cost with no player (a measuring window)
            parts = [q.get(timeout=SECONDS + 60) for _ in ps]
            for p in ps:
                p.join(10)
            dt = time.monotonic() - t0
            c1 = origin_counts(oport)
            o1, x1 = procstat.snap(origin.pid)["cpu_s"], procstat.snap(nginx.pid)["cpu_s"]
            data, _ = log_lines_from(access, off)
            seg_total = seg_hit = beacons = 0
            for ln in data.splitlines():
                f = ln.split()
                if len(f) >= 3 and f[0].endswith(".m4s"):
                    seg_total += 1
                    seg_hit += f[2] == "HIT"
                elif f and f[0].endswith("/beacon"):
                    beacons += 1
            r = {"players": n, "seconds": round(dt, 2),
                 "origin_per_s": {kk: round((c1.get(kk, 0) - c0.get(kk, 0)) / dt, 2) for kk in c1},
                 "beacons_per_s": round(beacons / dt, 2),
                 "origin_cpu_pct": round(100 * (o1 - o0) / dt, 1), "nginx_cpu_pct": round(100 * (x1 - x0) / dt, 1),
                 "hit_ratio": round(seg_hit / float(seg_total), 4) if seg_total else "-",
                 "segment_requests": seg_total,
                 "errors": sum(p["errors"] for p in parts), "first_errors": [e for p in parts for e in p["first_errors"]],
                 "stalls": sum(p["stalls"] for p in parts), "with_media": sum(p["with_media"] for p in parts)}
            results.append(r)
            log("%6d %9.2f %9.2f %9.2f %9.1f %9.1f %9s %8d %7d %7d" % (
                n, r["origin_per_s"].get("playlist", 0), r["origin_per_s"].get("segment", 0), r["beacons_per_s"],
                r["origin_cpu_pct"], r["nginx_cpu_pct"], r["hit_ratio"], r["errors"], r["stalls"], r["with_media"]))
            if r["first_errors"]:
                log("first errors: %r" % r["first_errors"])
        if out_json:
            with open(out_json, "w") as f:
                json.dump(results, f, indent=1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
