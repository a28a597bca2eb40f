#!/usr/bin/env python3
"""Relay tree figures for docs/benchmarks.md ("Relay trees") and docs/scale.md.

    python3 bench/relay_tree.py [--bin build/tribune] [--parts cpu,latency,tree] [--edges 8]
        [--seconds 10] [--latency-seconds 20] [--tree 3x2] [--tree-listeners 500] [--tree-seconds 30]
        [--json FILE]

Every server is a separate process on loopback with 1 delivery worker; everything started is stopped
at the end. Three parts, each printing a Markdown table:

cpu      What an edge costs its origin. `tribune demo` (the origin) alone for S seconds, then with E
         edges (`tribune relay --origin`), each pulling the demo space for one tribune-load listener:
         the origin's CPU (user + system of the master and its workers, /proc) per edge-second, and
         the bytes the origin sends per edge link (its own listeners' byte counter, GET
         /api/spaces/demo -> listeners.bytes: the origin has no listener but the edges' upstreams),
         beside the size of one report and its answer (POST /api/edges, once a second per edge).
latency  The extra latency per relay hop. An origin, a first-level edge A (origin -> A) and a
         second-level edge B (A -> B); one WebSocket listener (GET /spaces/demo/ws) on each, in one
         process and one event loop, so that every arrival is stamped on one clock. An edge passes
         the origin's Opus packets through unchanged, so a packet heard on A is matched to the same
         bytes heard on the origin (the latest arrival of those bytes before it, within 2.5 s: the
         demo's arpeggio repeats every 3 s) and B to A. The first 5 s (connection bursts, the jitter
         buffers filling) are skipped; p50/p99 of the differences over the next L seconds.
tree     The largest tree run here: an origin, F first-level edges, F x K second-level edges (K under
         each), tribune-load listeners (N per leaf, Ogg) on the leaves only. The origin's hearing
         count, once a second, against the sum of the load tools' own counts for the same second,
         and each tool's verdict at the end; CPU of the origin and of the edges per level.
"""
import argparse
import json
import os
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")
WARMUP_S = 5.0
MATCH_WINDOW_S = 2.5


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid):
    """User + system seconds of pid and its children that are still alive."""
    total = 0
    pids = [pid]
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            pids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / TICK


class Run:
    """The processes of one part: started here, all stopped by stop()."""

    def __init__(self, binary, tmp):
        self.binary = binary
        self.load_bin = os.path.join(os.path.dirname(binary), "tribune-load")
        self.tmp = tmp
        self.procs = []

    def start(self, cmd, extra=()):
        port = free_port()
        data = tempfile.mkdtemp(dir=self.tmp)
        log = open(os.path.join(self.tmp, "%s-%d.log" % (cmd, port)), "wb")
        p = subprocess.Popen([self.binary, cmd, "--listen", "127.0.0.1:%d" % port, "--data", data,
                              "--workers", "1"] + list(extra),
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.procs.append(p)
        url = "http://127.0.0.1:%d" % port
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "/api/spaces", timeout=2) as r:
                    if r.status == 200:
                        return p, url
            except OSError:
                time.sleep(0.05)
        sys.exit("%s did not start" % cmd)

    def load(self, url, n, seconds, log_path, extra=()):
        log = open(log_path, "wb")
        p = subprocess.Popen([self.load_bin, url, "-n", str(n), "-d", str(int(seconds))] + list(extra),
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []


def api_listeners(url, sid="demo"):
    with urllib.request.urlopen(url + "/api/spaces/%s" % sid, timeout=5) as r:
        return json.load(r)["listeners"]


def wait_for(pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


def box_busy():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def measure(pid, seconds):
    c0, t0 = cpu_s(pid), time.monotonic()
    time.sleep(seconds)  # a measurement window, not a wait for a condition
    return (cpu_s(pid) - c0) / (time.monotonic() - t0)


def report_size(url):
    """Bytes of one edge report for the demo space and of the origin's answer (HTTP heads included)."""
    body = json.dumps({"edge": "bench-00000000-127.0.0.1:1", "spaces": [
        {"id": "demo", "connected": 1, "waiting": 0, "hearing": 1, "lagging": 0, "upstream": 1,
         "capacity": 100000}]}, separators=(",", ":")).encode()
    host = url.split("//", 1)[1]
    req = (b"POST /api/edges HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (host.encode(), len(body))) + body
    h, p = host.split(":")
    with socket.create_connection((h, int(p)), timeout=5) as s:
        s.sendall(req)
        ans = b""
        while True:
            x = s.recv(65536)
            if not x:
                break
            ans += x
    return len(req), len(ans)


# ---- part cpu: the origin's CPU and bytes per edge ----

def part_cpu(a, out):
    run = Run(a.bin, tempfile.mkdtemp(dir=a.tmp))
    try:
        origin, ourl = run.start("demo")
        alone = measure(origin.pid, a.seconds)
        edges = [run.start("relay", ["--origin", ourl])[1] for _ in range(a.edges)]
        for i, url in enumerate(edges):
            run.load(url + "/spaces/demo/live.opus", 1, a.seconds * 2 + 15,
                     os.path.join(run.tmp, "load-%d.log" % i), ["--quiet"])
        wait_for(lambda: api_listeners(ourl)["hearing"] == a.edges, 15)
        n = api_listeners(ourl)["hearing"]
        b0, t0 = api_listeners(ourl)["bytes"], time.monotonic()
        loaded = measure(origin.pid, a.seconds)
        b1, t1 = api_listeners(ourl)["bytes"], time.monotonic()
        req, ans = report_size(ourl)
    finally:
        run.stop()
    per_edge = (loaded - alone) / a.edges
    bps = (b1 - b0) / (t1 - t0) / a.edges
    out["cpu"] = {"edges": a.edges, "seconds": a.seconds, "origin_cores_alone": alone,
                  "origin_cores_with_edges": loaded, "origin_hearing": n, "cpu_s_per_edge_s": per_edge,
                  "upstream_bytes_per_s_per_edge": bps, "report_bytes": req, "answer_bytes": ans}
    print("| origin CPU alone (demo, 1 worker) | %.4f cores |" % alone)
    print("| origin CPU with %d edges (each 1 listener; origin counts %d hearing) | %.4f cores |"
          % (a.edges, n, loaded))
    print("| origin CPU-seconds per edge-second | %.5f (%.0f µs per edge per second) |"
          % (per_edge, per_edge * 1e6))
    if per_edge > 0:
        print("| edges one origin core could feed at this cost | %.0f |" % (1 / per_edge))
    print("| origin bytes sent per edge link (its upstream WebSocket) | %.0f B/s (%.1f kbit/s) |"
          % (bps, bps * 8 / 1000))
    print("| one report and its answer (POST /api/edges, once a second per edge) | %d + %d B |" % (req, ans))


# ---- part latency: per hop, matched by Opus payload ----

class WsTap:
    """A WebSocket listener on a raw non-blocking socket: (arrival, payload) of every audio message."""

    def __init__(self, url, sid="demo"):
        host, port = url.split("//", 1)[1].split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.sock.sendall(("GET /spaces/%s/ws HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: dHJpYnVuZSBiZW5jaCAxMg==\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n" % (sid, host, port)).encode())
        self.sock.setblocking(False)
        self.buf = b""
        self.head_done = False
        self.packets = []  # (monotonic arrival, opus bytes)

    def on_readable(self):
        now = time.monotonic()
        try:
            x = self.sock.recv(1 << 16)
        except BlockingIOError:
            return True
        if not x:
            return False
        self.buf += x
        if not self.head_done:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return True
            if not self.buf.startswith(b"HTTP/1.1 101"):
                raise RuntimeError("no 101: %r" % self.buf[:200])
            self.buf = self.buf[end + 4:]
            self.head_done = True
        off = 0
        while len(self.buf) - off >= 2:
            op, n, h = self.buf[off] & 0x0F, self.buf[off + 1] & 0x7F, 2
            if n == 126:
                if len(self.buf) - off < 4:
                    break
                n, h = int.from_bytes(self.buf[off + 2:off + 4], "big"), 4
            elif n == 127:
                if len(self.buf) - off < 10:
                    break
                n, h = int.from_bytes(self.buf[off + 2:off + 10], "big"), 10
            if len(self.buf) - off < h + n:
                break
            msg = self.buf[off + h:off + h + n]
            if op == 2 and n > 13 and msg[0] == 1:
                self.packets.append((now, bytes(msg[13:])))
            off += h + n
        self.buf = self.buf[off:]
        return True


def hop_delays(up, down, t_from, t_to):
    """For each packet of `down` arrived in [t_from, t_to), the delay since the same bytes arrived on
    `up` (the latest such arrival before it, within MATCH_WINDOW_S). Returns (delays, unmatched)."""
    seen = {}
    for t, p in up:
        seen.setdefault(p, []).append(t)
    delays, unmatched = [], 0
    for t, p in down:
        if not t_from <= t < t_to:
            continue
        cands = [u for u in seen.get(p, ()) if t - MATCH_WINDOW_S < u <= t]
        if cands:
            delays.append(t - max(cands))
        else:
            unmatched += 1
    return delays, unmatched


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q / 100.0 * len(xs)))] if xs else float("nan")


def part_latency(a, out):
    run = Run(a.bin, tempfile.mkdtemp(dir=a.tmp))
    try:
        origin, ourl = run.start("demo")
        _, aurl = run.start("relay", ["--origin", ourl])
        _, burl = run.start("relay", ["--origin", aurl])
        taps = {"origin": WsTap(ourl), "A": WsTap(aurl), "B": WsTap(burl)}
        sel = selectors.DefaultSelector()
        for name, tap in taps.items():
            sel.register(tap.sock, selectors.EVENT_READ, name)
        t0 = time.monotonic()
        t_end = t0 + WARMUP_S + a.latency_seconds
        while time.monotonic() < t_end:
            for key, _ in sel.select(0.2):
                if not taps[key.data].on_readable():
                    raise RuntimeError("%s closed the WebSocket" % key.data)
        for tap in taps.values():
            tap.sock.close()
    finally:
        run.stop()
    t_from, t_to = t0 + WARMUP_S, t_end
    res = {"warmup_s": WARMUP_S, "seconds": a.latency_seconds}
    rows = []
    for name, up, down in (("origin -> A (first hop)", "origin", "A"), ("A -> B (second hop)", "A", "B"),
                           ("origin -> B (two hops)", "origin", "B")):
        d, unmatched = hop_delays(taps[up].packets, taps[down].packets, t_from, t_to)
        ms = [x * 1000 for x in d]
        r = {"matched": len(ms), "unmatched": unmatched, "p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99),
             "min_ms": min(ms) if ms else None, "max_ms": max(ms) if ms else None,
             "mean_ms": statistics.mean(ms) if ms else None}
        res[name] = r
        rows.append((name, r))
    out["latency"] = res
    print("| hop (WebSocket listeners, packets matched by their Opus bytes, %.0f s after %.0f s of warm-up) "
          "| packets matched | unmatched | p50 | p99 | min | max |" % (a.latency_seconds, WARMUP_S))
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows:
        if r["matched"]:
            print("| %s | %d | %d | %.0f ms | %.0f ms | %.0f ms | %.0f ms |"
                  % (name, r["matched"], r["unmatched"], r["p50_ms"], r["p99_ms"], r["min_ms"], r["max_ms"]))
        else:
            print("| %s | 0 | %d | - | - | - | - |" % (name, r["unmatched"]))


# ---- part tree: the largest tree, counts against the load tools' ----

def tool_hearing_per_second(path):
    """tribune-load's progress lines ("t=7s joined=3000 warming=0 hearing=3000 ..."): {7: 3000, ...}."""
    out = {}
    try:
        with open(path, errors="replace") as f:
            for line in f:
                m = re.match(r"t=(\d+)s joined=\d+ warming=\d+ hearing=(\d+)", line.strip())
                if m:
                    out[int(m.group(1))] = int(m.group(2))
    except OSError:
        pass
    return out


def part_tree(a, out):
    fan, kids = (int(x) for x in a.tree.split("x"))
    run = Run(a.bin, tempfile.mkdtemp(dir=a.tmp))
    n, secs = a.tree_listeners, a.tree_seconds
    try:
        origin, ourl = run.start("demo")
        mids = [run.start("relay", ["--origin", ourl]) for _ in range(fan)]
        leaves = [run.start("relay", ["--origin", murl]) for _, murl in mids for _ in range(kids)]
        # the leaves load the demo ahead of any listener (the answer to their reports): wait for it
        wait_for(lambda: api_listeners(ourl)["edges"]["upstreams"] == fan, 10)
        # a probe: WebSocket listeners on the origin and on the first leaf, whose packets are
        # matched as in part latency (is the leaf's program keeping up with the origin's?)
        taps = [WsTap(ourl), WsTap(leaves[0][1])]
        sel = selectors.DefaultSelector()
        for tap in taps:
            sel.register(tap.sock, selectors.EVENT_READ, tap)
        t0 = time.monotonic()
        loads = []
        for i, (_, lurl) in enumerate(leaves):
            js = os.path.join(run.tmp, "load-%d.json" % i)
            lg = os.path.join(run.tmp, "load-%d.log" % i)
            p = run.load(lurl + "/spaces/demo/live.opus", n, secs, lg,
                         ["-r", str(a.tree_rate), "--json", js, "--read-interval", "500"])
            loads.append((p, js, lg))
        # the origin's count once a second, at the load tools' seconds (started within ~0.1 s of t0)
        origin_by_s, cpu = {}, {}
        steady_from = int(n / a.tree_rate) + 8  # joins, the tools' warm-up (2 s) and first reads
        k = 1
        while time.monotonic() < t0 + secs:
            while time.monotonic() < t0 + k:  # a sampling clock, meanwhile the probe reads
                for key, _ in sel.select(max(0.0, min(0.2, t0 + k - time.monotonic()))):
                    key.data.on_readable()
            try:  # the probe's two listeners are not the tools': out
                origin_by_s[k] = api_listeners(ourl)["hearing"] - len(taps)
            except OSError:
                origin_by_s[k] = None
            if k == steady_from:
                cpu0 = {p.pid: cpu_s(p.pid) for p in [origin] + [m for m, _ in mids] + [l for l, _ in leaves]
                        + [ld for ld, _, _ in loads]}
                tc0, box0 = time.monotonic(), box_busy()
            if k == secs - 3 and k > steady_from:
                tc1 = time.monotonic()
                cpu = {pid: (cpu_s(pid) - c) / (tc1 - tc0) for pid, c in cpu0.items()}
                box1 = box_busy()
                cpu["box"] = (box1[0] - box0[0]) / max(1, box1[1] - box0[1]) * os.cpu_count()
            k += 1
        for tap in taps:
            tap.sock.close()
        reports = []
        for p, js, lg in loads:
            try:
                p.wait(secs + 30)
            except subprocess.TimeoutExpired:
                p.kill()
            try:
                with open(js) as f:
                    reports.append(json.load(f))
            except (OSError, ValueError):
                reports.append(None)
        per_tool = [tool_hearing_per_second(lg) for _, _, lg in loads]
    finally:
        run.stop()
    total = n * len(leaves)
    rows = []
    for s in sorted(origin_by_s):
        tools = [t.get(s) for t in per_tool]
        rows.append((s, origin_by_s[s], sum(tools) if None not in tools else None))
    steady = [(s, o, t) for s, o, t in rows if s >= steady_from and o is not None and t is not None]
    diffs = [abs(o - t) for _, o, t in steady]
    t_from, t_to = t0 + steady_from, t0 + secs
    d, unmatched = hop_delays(taps[0].packets, taps[1].packets, t_from, t_to)
    per_s = {}
    for t, _ in taps[1].packets:
        if t_from <= t < t_to:
            per_s[int(t - t0)] = per_s.get(int(t - t0), 0) + 1
    probe = {"leaf_packets_per_s_min": min(per_s.values()) if per_s else 0,
             "leaf_packets_per_s_max": max(per_s.values()) if per_s else 0,
             "origin_to_leaf_p50_ms": pct(d, 50) * 1000, "origin_to_leaf_p99_ms": pct(d, 99) * 1000,
             "leaf_packets_matched": len(d), "leaf_packets_unmatched": unmatched}
    res = {"origin": 1, "first_level": fan, "second_level": fan * kids, "listeners_per_leaf": n,
           "listeners": total, "seconds": secs, "join_rate": a.tree_rate, "by_second": rows,
           "steady_from_s": steady_from, "max_diff_steady": max(diffs) if diffs else None, "probe": probe,
           "reports": reports}
    if cpu:
        res["cpu_cores"] = {"origin": cpu[origin.pid],
                            "first_level_mean": statistics.mean(cpu[m.pid] for m, _ in mids),
                            "second_level_mean": statistics.mean(cpu[l.pid] for l, _ in leaves),
                            "load_tools": sum(cpu[ld.pid] for ld, _, _ in loads), "whole_box": cpu["box"]}
    out["tree"] = res
    print("| tree | origin + %d edges + %d second-level edges, %d tribune-load listeners (Ogg) on each leaf: %d |"
          % (fan, fan * kids, n, total))
    print("| --- | --- |")
    if steady:
        s, o, t = steady[-1]
        print("| origin's hearing against the tools' sum, seconds %d-%d | max difference %d; at %d s: %d against %d |"
              % (steady[0][0], steady[-1][0], max(diffs), s, o, t))
    print("| probe (WebSocket on the origin and on leaf 1, seconds %d-%d): leaf packets per second, "
          "origin -> leaf p50 / p99, leaf packets not the origin's | %d-%d (50 expected), %.0f / %.0f ms, %d of %d |"
          % (steady_from, secs - 1, probe["leaf_packets_per_s_min"], probe["leaf_packets_per_s_max"],
             probe["origin_to_leaf_p50_ms"], probe["origin_to_leaf_p99_ms"], unmatched, unmatched + len(d)))
    good = [r for r in reports if r]
    if good:
        print("| tools at the end: hearing / joined / failed | %d / %d / %d (worst 1 s span %.1f %%, max gap %d ms) |"
              % (sum(r["hearing"] for r in good), sum(r["joined"] for r in good), sum(r["failed"] for r in good),
                 min(r.get("worst_span_pct", 100) for r in good), max(r.get("max_gap_ms", 0) for r in good)))
    if cpu:
        c = res["cpu_cores"]
        print("| CPU (master + worker, cores): origin / first-level edge (mean) / second-level edge (mean) "
              "| %.3f / %.3f / %.3f |" % (c["origin"], c["first_level_mean"], c["second_level_mean"]))
        print("| CPU (cores): the %d load tools together / the whole box (%d cores, other work included) "
              "| %.2f / %.2f |" % (len(loads), os.cpu_count(), c["load_tools"], c["whole_box"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/tribune")
    ap.add_argument("--parts", default="cpu,latency,tree")
    ap.add_argument("--edges", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--latency-seconds", type=float, default=20)
    ap.add_argument("--tree", default="3x2", help="F x K: F first-level edges, K second-level under each")
    ap.add_argument("--tree-listeners", type=int, default=500, help="tribune-load listeners per leaf")
    ap.add_argument("--tree-seconds", type=int, default=30)
    ap.add_argument("--tree-rate", type=int, default=250, help="joins per second per leaf")
    ap.add_argument("--json")
    a = ap.parse_args()
    a.tmp = tempfile.mkdtemp(prefix="tribune-bench-tree-")
    out = {}
    try:
        for part in a.parts.split(","):
            print("\n%s:\n" % part)
            sys.stdout.flush()
            {"cpu": part_cpu, "latency": part_latency, "tree": part_tree}[part](a, out)
            sys.stdout.flush()
    finally:
        shutil.rmtree(a.tmp, ignore_errors=True)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
