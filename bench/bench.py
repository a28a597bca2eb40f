#!/usr/bin/env python3
"""Side-by-side benchmark: Icecast2 and Tribune, same source, same load tool.

Called by bench/run.sh (which installs icecast2 and raises the fd limit); the
settings are environment variables, listed in bench/run.sh. For each step N and
each server, interleaved:

  1. start a fresh server on a loopback port (Icecast2 with bench/icecast.xml.in,
     or `tribune serve` with a new space) and publish a 48 kbit/s CBR Ogg/Opus
     sine to it with ffmpeg (100 ms Ogg pages, like Tribune's chunks);
  2. wait until a probe listener receives audio, let the server idle 2 s, and read
     the idle baseline: CPU-seconds and RSS of every process in the server's tree
     (/proc/PID/stat), kernel socket memory (/proc/net/sockstat, /proc/slabinfo);
  3. run build/tribune-load (N listeners at BENCH_RATE joins/s, bounded with -d),
     sampling the server tree every 0.5 s;
  4. over the measured window (after every join and the warm-up), compute CPU
     microseconds per listener-second, RSS growth per listener and kernel socket
     memory growth per listener; take hearing %, refusals and join times from
     tribune-load's JSON report;
  5. for Tribune, compare the server's own audience count with tribune-load's:
     GET /api/spaces/{id} -> listeners.hearing once a second during the run,
     against the `t=Ns ... hearing=N` progress line tribune-load prints each
     second (read back from its log); record both at the last second of the
     measured window both have, and the largest difference over the steady part;
  6. stop the publisher and the server (their whole process groups).

BENCH_SERVERS may also name tribune-ws: the same Tribune server, its listeners on the WebSocket
path (GET /spaces/{id}/ws, tribune-load's WebSocket player), to compare the two delivery formats.

Then a join storm per server (BENCH_STORM listeners within 1 s), an optional
pinned-versus-unpinned check, and the outputs: bench/results/<ts>.json, an SVG
plot bench/results/<ts>.svg (bench/plot.py), and a markdown table in
docs/benchmarks.md between markers named by BENCH_LABEL. Standard library only.
"""
import datetime
import json
import math
import os
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import plot  # noqa: E402
import procstat  # noqa: E402

WARMUP_S = 2
SETTLE_S = 2  # after the warm-up, before the measured window opens
SOURCE_PASS = "benchsource"


def env_list(name, default):
    raw = os.environ.get(name, default)
    return [int(x) for x in raw.replace(" ", "").split(",") if x]


CFG = {
    "steps": env_list("BENCH_STEPS", "1000,5000,10000,20000,50000,100000"),
    "seconds": int(os.environ.get("BENCH_SECONDS", "20")),
    "rate": float(os.environ.get("BENCH_RATE", "1000")),
    # per-server join rates, e.g. "icecast:250": Icecast2's accept path cannot take
    # thousands of joins per second, and its capacity should not be judged at a rate it refuses
    "rate_by": {k: float(v) for k, v in (x.split(":") for x in
                os.environ.get("BENCH_RATE_BY", "").replace(" ", "").split(",") if x)},
    "runs": int(os.environ.get("BENCH_RUNS", "1")),
    "servers": [s for s in os.environ.get("BENCH_SERVERS", "icecast,tribune").split(",") if s],
    "storm": int(os.environ.get("BENCH_STORM", "15000")),
    "pin": os.environ.get("BENCH_PIN", "off"),
    "pin_check": int(os.environ.get("BENCH_PIN_CHECK", "5000")),
    "stop_pct": float(os.environ.get("BENCH_STOP_PCT", "50")),
    "label": os.environ.get("BENCH_LABEL", "latest"),
    "tribune": os.environ.get("TRIBUNE", os.path.join(ROOT, "build/tribune")),
    "tribune_args": os.environ.get("TRIBUNE_ARGS", "").split(),
    "load": os.environ.get("LOAD", os.path.join(ROOT, "build/tribune-load")),
    "port": int(os.environ.get("BENCH_PORT", "18400")),
    "results": os.environ.get("BENCH_RESULTS", os.path.join(HERE, "results")),
}


def log(msg):
    print("bench: " + msg, flush=True)


def taskset(cpus):
    return ["taskset", "-c", cpus] if cpus else []


def pin_split(pin):
    """'0:1' -> ('0', '1'); 'off' -> (None, None)."""
    if pin in ("", "off", "none"):
        return None, None
    server, _, load = pin.partition(":")
    return server or None, load or None


class Proc:
    """A child started in its own session, stopped with its whole group."""

    def __init__(self, argv, log_path, cwd=None):
        self.log_path = log_path
        self.f = open(log_path, "wb")
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.f, stderr=self.f,
                                  cwd=cwd, start_new_session=True)
        self.pid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, grace=8):
        if self.p.poll() is None:
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.p.wait()
        else:
            try:  # the leader is gone; make sure no worker it left behind survives
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.f.close()


def wait_port(port, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


def http(port, method, path, body=None, headers=None, timeout=5):
    """A tiny HTTP/1.0 client (status, body bytes)."""
    data = json.dumps(body).encode() if body is not None else b""
    req = "%s %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\n" % (
        method, path, port, len(data))
    for k, v in (headers or {}).items():
        req += "%s: %s\r\n" % (k, v)
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(req.encode() + b"\r\n" + data)
    out = b""
    while True:
        try:
            x = s.recv(65536)
        except socket.timeout:
            break
        if not x:
            break
        out += x
    s.close()
    head, _, rest = out.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.\d (\d+)", head)
    return (int(m.group(1)) if m else 0), rest


def wait_audio(port, path, timeout=20):
    """True once a listener on `path` has received two Ogg audio pages."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.sendall(("GET %s HTTP/1.0\r\nHost: x\r\n\r\n" % path).encode())
            buf = b""
            while time.monotonic() < end and len(buf) < 1 << 20:
                x = s.recv(65536)
                if not x:
                    break
                buf += x
                # "OggS" pages with a granule position other than 0 carry audio
                audio = [m for m in re.finditer(b"OggS\x00", buf)
                         if buf[m.start() + 6:m.start() + 14] not in (b"\0" * 8, b"")]
                if len(audio) >= 2:
                    s.close()
                    return True
            s.close()
        except OSError:
            pass
        time.sleep(0.5)
    return False


def ffmpeg_argv(url):
    """The one source both servers get: a 440 Hz sine, Opus CBR 48 kbit/s, mono,
    20 ms frames, 100 ms Ogg pages, in real time."""
    return ["ffmpeg", "-nostdin", "-v", "error", "-re", "-f", "lavfi",
            "-i", "sine=frequency=440:sample_rate=48000", "-ac", "1", "-c:a", "libopus",
            "-b:a", "48k", "-vbr", "off", "-frame_duration", "20", "-page_duration", "100000",
            "-content_type", "audio/ogg", "-f", "ogg", url]


class Icecast:
    name = "icecast"

    def __init__(self, port, cpus, work):
        self.port, self.cpus, self.work = port, cpus, work
        self.path = "/live.opus"
        self.server = self.source = None

    def start(self):
        d = tempfile.mkdtemp(prefix="icecast-", dir=self.work)
        os.chmod(d, 0o777)  # icecast2 drops root for the icecast2 user and logs here
        with open(os.path.join(HERE, "icecast.xml.in")) as f:
            xml = f.read().replace("@PORT@", str(self.port)).replace("@DIR@", d)
            xml = xml.replace("@PASS@", SOURCE_PASS)
        conf = os.path.join(d, "icecast.xml")
        with open(conf, "w") as f:
            f.write(xml)
        self.server = Proc(taskset(self.cpus) + ["icecast2", "-c", conf],
                           os.path.join(d, "stdout.log"))
        if not wait_port(self.port):
            raise RuntimeError("icecast2 did not listen on %d (see %s)" % (self.port, d))
        url = "icecast://source:%s@127.0.0.1:%d%s" % (SOURCE_PASS, self.port, self.path)
        self.source = Proc(ffmpeg_argv(url), os.path.join(d, "ffmpeg.log"))
        if not wait_audio(self.port, self.path):
            raise RuntimeError("no audio from icecast2 (see %s)" % d)

    def stop(self):
        for p in (self.source, self.server):
            if p is not None:
                p.stop()


class Tribune:
    name = "tribune"

    def __init__(self, port, cpus, work):
        self.port, self.cpus, self.work = port, cpus, work
        self.server = self.source = None
        self.path = self.sid = None

    def start(self):
        d = tempfile.mkdtemp(prefix="tribune-", dir=self.work)
        # The server-side counts are read on the admin address, accepted by the master itself:
        # it answers while the workers' port is saturated (at 100,000 joins it is).
        self.admin_port = self.port + 10000
        argv = taskset(self.cpus) + [CFG["tribune"], "serve", "--listen",
                                     "127.0.0.1:%d" % self.port, "--admin_listen",
                                     "127.0.0.1:%d" % self.admin_port, "--data",
                                     os.path.join(d, "data")] + CFG["tribune_args"]
        self.server = Proc(argv, os.path.join(d, "server.log"))
        if not wait_port(self.port):
            raise RuntimeError("tribune did not listen on %d (see %s)" % (self.port, d))
        st, body = http(self.port, "POST", "/api/spaces", {"title": "bench"})
        if st != 201:
            raise RuntimeError("POST /api/spaces -> %d %r" % (st, body[:200]))
        obj = json.loads(body)
        sid, key = obj["id"], obj["host_key"]
        self.sid = sid
        self.path = "/spaces/%s/live.opus" % sid
        url = "icecast://source:%s@127.0.0.1:%d%s" % (key, self.port, self.path)
        self.source = Proc(ffmpeg_argv(url), os.path.join(d, "ffmpeg.log"))
        time.sleep(1)
        http(self.port, "POST", "/api/spaces/%s/live" % sid,
             headers={"Authorization": "Bearer " + key})  # the space may already be live
        if not wait_audio(self.port, self.path):
            raise RuntimeError("no audio from tribune (see %s)" % d)

    def stop(self):
        if self.source is not None:
            self.source.stop()
        if self.server is not None:
            self.server.stop(signal.SIGINT)


class Sampler(threading.Thread):
    """Samples a server's process tree every 0.5 s while a load runs."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.samples, self.done = pid, [], threading.Event()

    def run(self):
        while not self.done.is_set():
            s = procstat.snap(self.pid)
            s["mono"] = time.monotonic()
            self.samples.append(s)
            self.done.wait(0.5)

    def window(self, t0, t1):
        return [s for s in self.samples if t0 <= s["mono"] <= t1]


class HearingSampler(threading.Thread):
    """Asks the server for its own hearing count (GET /api/spaces/{id} ->
    listeners.hearing) once a second, at t0 + 1 s, t0 + 2 s, ..., so that
    second k lines up with tribune-load's progress line `t=ks`. A second whose
    request fails or times out is recorded as None; a slow answer makes the
    sampler skip to the next whole second rather than fall behind."""

    def __init__(self, port, sid, t0):
        super().__init__(daemon=True)
        self.port, self.sid, self.t0 = port, sid, t0
        self.by_second, self.done = {}, threading.Event()

    def hearing(self):
        try:
            st, body = http(self.port, "GET", "/api/spaces/%s" % self.sid, timeout=2)
            if st != 200:
                return None
            v = json.loads(body)["listeners"]["hearing"]
            return int(v)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def run(self):
        k = 1
        while True:
            if self.done.wait(max(0.0, self.t0 + k - time.monotonic())):
                return
            self.by_second[k] = self.hearing()
            k = max(k + 1, math.floor(time.monotonic() - self.t0) + 1)


def load_hearing_per_second(log_path):
    """tribune-load's own count each second, from its progress lines
    ("t=7s joined=3000 warming=0 hearing=3000 ..."): {7: 3000, ...}."""
    own = {}
    try:
        with open(log_path, errors="replace") as f:
            for line in f:
                m = re.match(r"t=(\d+)s joined=\d+ warming=\d+ hearing=(\d+)", line.strip())
                if m:
                    own[int(m.group(1))] = int(m.group(2))
    except OSError:
        pass
    return own


def compare_hearing(server, tool, first_s, last_s):
    """The server's count against tribune-load's, second by second.

    `first_s`..`last_s` is the measured window in whole seconds since the load
    started. The steady part starts at the first second in which tribune-load
    counts everyone it will count (its highest count of the run; from the
    window's start if that came earlier) and runs to the window's end. Returns
    the fields the record keeps; None where a figure is unknown (for instance
    the API did not answer)."""
    out = {"server_hearing": None, "tool_hearing": None, "hearing_at_s": None,
           "hearing_max_diff": None, "hearing_steady_from_s": None, "hearing_compared_s": 0}
    seconds = sorted(set(server) | set(tool))
    out["hearing_by_second"] = [[t, server.get(t), tool.get(t)] for t in seconds]
    common = [t for t in seconds if first_s <= t <= last_s
              and server.get(t) is not None and tool.get(t) is not None]
    if common:
        t = common[-1]
        out["hearing_at_s"], out["server_hearing"], out["tool_hearing"] = t, server[t], tool[t]
    counted = [v for t, v in tool.items() if t <= last_s]
    if not counted:
        return out
    peak = max(counted)
    start = max(first_s, min(t for t, v in tool.items() if v == peak))
    out["hearing_steady_from_s"] = start
    steady = [t for t in common if t >= start]
    if steady:
        out["hearing_max_diff"] = max(abs(server[t] - tool[t]) for t in steady)
        out["hearing_compared_s"] = len(steady)
    return out


def load_duration(n, rate):
    return math.ceil(n / rate) + WARMUP_S + SETTLE_S + CFG["seconds"] + 1


def run_load(url, n, rate, duration, cpus, out_json, log_path, procs=None):
    argv = taskset(cpus) + [CFG["load"], url, "-n", str(n), "-r", str(rate), "-d",
                            str(duration), "--warmup", str(WARMUP_S), "--json", out_json]
    if procs:
        argv += ["-p", str(procs)]
    argv += os.environ.get("BENCH_LOAD_ARGS", "").split()
    with open(log_path, "wb") as f:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                             start_new_session=True)
        try:
            _, status, ru = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
        except KeyboardInterrupt:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise
    with open(out_json) as f:
        rep = json.load(f)
    rep["load_cpu_s"] = round(ru.ru_utime + ru.ru_stime, 2)
    rep["load_rc"] = p.returncode
    return rep, argv


def measure(samples_win, idle, listeners):
    """CPU us per listener-second, RSS and kernel socket bytes per listener."""
    out = {"cpu_us_per_ls": None, "rss_b_per_l": None, "kernel_b_per_l": None,
           "server_cpu_pct": None}
    if len(samples_win) < 2 or listeners <= 0:
        return out
    a, b = samples_win[0], samples_win[-1]
    dt = b["mono"] - a["mono"]
    dcpu = b["cpu_s"] - a["cpu_s"]
    out["cpu_us_per_ls"] = round(dcpu / (listeners * dt) * 1e6, 2)
    out["server_cpu_pct"] = round(100 * dcpu / dt, 1)
    rss = statistics.median(s["rss_kb"] for s in samples_win)
    tcp = statistics.median(s["tcp_mem_kb"] + s["slab_kb"] for s in samples_win)
    out["rss_b_per_l"] = round((rss - idle["rss_kb"]) * 1024 / listeners, 1)
    # both ends of each loopback connection, system-wide: the server's share is about half
    out["kernel_b_per_l"] = round((tcp - idle["tcp_mem_kb"] - idle["slab_kb"]) * 1024 / listeners, 1)
    out["server_procs"] = max(s["procs"] for s in samples_win)
    out["server_rss_kb"] = rss
    return out


def one_run(kind, n, rate, pin, work, port, tag):
    """One server, one load run; returns the record."""
    s_cpus, l_cpus = pin_split(pin)
    srv = (Icecast if kind == "icecast" else Tribune)(port, s_cpus, work)
    rec = {"server": kind, "n": n, "rate": rate, "pin": pin, "tag": tag,
           "loadavg_before": open("/proc/loadavg").read().split()[0]}
    try:
        srv.start()
        time.sleep(2)
        idle = procstat.snap(srv.server.pid)
        rec["idle"] = idle
        sampler = Sampler(srv.server.pid)
        sampler.start()
        duration = load_duration(n, rate)
        # tribune-ws: the same server, its listeners on the WebSocket path (tribune-load's ws player)
        path = srv.path.replace("/live.opus", "/ws") if kind == "tribune-ws" else srv.path
        url = "http://127.0.0.1:%d%s" % (port, path)
        out_json = os.path.join(work, "%s-%s-%d.json" % (tag, kind, n))
        load_log = os.path.join(work, "%s-%s-%d.log" % (tag, kind, n))
        t0 = time.monotonic()
        counter = HearingSampler(srv.admin_port, srv.sid, t0) if kind.startswith("tribune") else None
        if counter is not None:
            counter.start()
        try:
            rep, argv = run_load(url, n, rate, duration, l_cpus, out_json, load_log,
                                 procs=max(2, math.ceil(n / 15000)) if rate >= 5000 else None)
        finally:
            if counter is not None:
                counter.done.set()
                counter.join()
        sampler.done.set()
        sampler.join()
        w0 = t0 + math.ceil(n / rate) + WARMUP_S + SETTLE_S
        w1 = t0 + duration - 0.5
        if counter is not None:
            rec.update(compare_hearing(counter.by_second, load_hearing_per_second(load_log),
                                       math.ceil(w0 - t0), math.floor(w1 - t0)))
        listeners = rep.get("streaming", 0)
        rec.update(measure(sampler.window(w0, w1), idle, listeners))
        rec["server_alive"] = srv.server.alive()
        rec["load_argv"] = " ".join(argv)
        for k in ("joined", "connected", "streaming", "got_audio", "hearing", "hearing_pct",
                  "ever_stalled", "judged", "worst_span_pct", "skips", "failed",
                  "failed_by_kind", "refused", "refused_by_status", "join_ms", "max_gap_ms",
                  "bitrate_measured", "load_cpu_s", "load_rc", "duration_s", "hearing_now"):
            rec[k] = rep.get(k)
    except Exception as e:  # a server that cannot start or crashes is a result too
        rec["error"] = str(e)
        rec["hearing_pct"] = 0.0
        log("%s N=%d: %s" % (kind, n, e))
    finally:
        srv.stop()
    return rec


def show(rec):
    j = rec.get("join_ms") or {}
    log("%-8s N=%-6d pin=%-4s hearing %s/%d (%.2f %%) refused %s failed %s join p99 %s ms  "
        "cpu %s us/listener-s (%s %% of a core)  rss %s B/l  kernel %s B/l  load cpu %s s"
        % (rec["server"], rec["n"], rec["pin"], rec.get("hearing"), rec["n"],
           rec.get("hearing_pct") or 0, rec.get("refused"), rec.get("failed"), j.get("p99"),
           rec.get("cpu_us_per_ls"), rec.get("server_cpu_pct"), rec.get("rss_b_per_l"),
           rec.get("kernel_b_per_l"), rec.get("load_cpu_s")))
    if rec["server"] == "tribune":
        log("tribune N=%d server hearing %s, tribune-load hearing %s (max difference over the "
            "window %s)" % (rec["n"], fmt(rec.get("server_hearing")), fmt(rec.get("tool_hearing")),
                            fmt(rec.get("hearing_max_diff"))))


def median_of(recs, key):
    vals = [r.get(key) for r in recs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def summarize(recs):
    """Medians per (server, N) over the interleaved runs; capacity per server."""
    out = {}
    for kind in CFG["servers"]:
        rows = []
        for n in sorted({r["n"] for r in recs if r["server"] == kind}):
            rs = [r for r in recs if r["server"] == kind and r["n"] == n]
            row = {"n": n, "runs": len(rs), "rate": median_of(rs, "rate")}
            for k in ("hearing_pct", "hearing", "cpu_us_per_ls", "server_cpu_pct", "rss_b_per_l",
                      "kernel_b_per_l", "refused", "failed", "load_cpu_s", "server_hearing",
                      "tool_hearing", "hearing_max_diff"):
                row[k] = median_of(rs, k)
            row["join_p99_ms"] = median_of([r.get("join_ms") or {} for r in rs], "p99")
            rows.append(row)
        ok = [r["n"] for r in rows if (r["hearing_pct"] or 0) >= 99.9]
        out[kind] = {"steps": rows, "capacity": max(ok) if ok else 0}
    return out


def fmt(v, nd=1):
    if v is None:
        return "n/a"
    return ("%." + str(nd) + "f") % v if isinstance(v, float) else str(v)


def ratio_lines(summary):
    """Tribune against Icecast2 at equal N (the issue's targets: CPU <= 1/5, capacity >= 10x)."""
    if "tribune" not in summary or "icecast" not in summary:
        return []
    ice = {r["n"]: r for r in summary["icecast"]["steps"]}
    out = []
    for r in summary["tribune"]["steps"]:
        i = ice.get(r["n"])
        if not i or not i["cpu_us_per_ls"] or not r["cpu_us_per_ls"]:
            continue
        out.append("N=%d: CPU per listener-second %.2fx, user-space memory per listener %s "
                   "(Tribune / Icecast2; Icecast2 hearing %s %%)"
                   % (r["n"], r["cpu_us_per_ls"] / i["cpu_us_per_ls"],
                      "%.2fx" % (r["rss_b_per_l"] / i["rss_b_per_l"])
                      if r["rss_b_per_l"] and i["rss_b_per_l"] else "n/a",
                      fmt(i["hearing_pct"], 2)))
    ct, ci = summary["tribune"]["capacity"], summary["icecast"]["capacity"]
    lines = ["", "Ratios at equal N:", ""] + ["- " + x for x in out] if out else []
    lines.append("")
    lines.append("Capacity ratio (Tribune / Icecast2): %s." % (
        "%.1fx" % (ct / ci) if ci else "Icecast2 below the first step"))
    return lines


def table_md(summary, storm, pin_check):
    lines = ["| server | listeners | joins/s | hearing % | CPU µs per listener-s | server CPU % of a core | "
             "RSS B per listener | kernel B per listener (both ends) | join p99 ms | refused | failed | "
             "server hearing | tool hearing | max diff |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for kind, s in summary.items():
        for r in s["steps"]:
            lines.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                kind, r["n"], fmt(r.get("rate"), 0), fmt(r["hearing_pct"], 2), fmt(r["cpu_us_per_ls"]),
                fmt(r["server_cpu_pct"]), fmt(r["rss_b_per_l"], 0),
                fmt(r["kernel_b_per_l"], 0), fmt(r["join_p99_ms"], 0),
                fmt(r["refused"]), fmt(r["failed"]), fmt(r.get("server_hearing"), 0),
                fmt(r.get("tool_hearing"), 0), fmt(r.get("hearing_max_diff"), 0)))
    lines.append("")
    lines.append("Capacity (largest N with ≥ 99.9 % hearing): " + ", ".join(
        "%s %s" % (k, s["capacity"] if s["capacity"] else "below the first step")
        for k, s in summary.items()) + ".")
    lines += ratio_lines(summary)
    if storm:
        lines += ["", "Join storm (all listeners asked to join within 1 s):", "",
                  "| server | listeners | got audio | hearing % | failed | refused | "
                  "join p50 ms | join p99 ms | join max ms |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in storm:
            j = r.get("join_ms") or {}
            lines.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s |" % (
                r["server"], r["n"], fmt(r.get("got_audio")), fmt(r.get("hearing_pct"), 2),
                fmt(r.get("failed")), fmt(r.get("refused")), fmt(j.get("p50"), 0),
                fmt(j.get("p99"), 0), fmt(j.get("max"), 0)))
    if pin_check:
        lines += ["", "Pinning check (server on CPU 0, tribune-load on CPU 1, against unpinned):",
                  "", "| server | listeners | pinned | hearing % | CPU µs per listener-s | "
                  "join p99 ms | load CPU s |", "| --- | ---: | --- | ---: | ---: | ---: | ---: |"]
        for r in pin_check:
            j = r.get("join_ms") or {}
            lines.append("| %s | %d | %s | %s | %s | %s | %s |" % (
                r["server"], r["n"], "yes" if r["pin"] != "off" else "no",
                fmt(r.get("hearing_pct"), 2), fmt(r.get("cpu_us_per_ls")), fmt(j.get("p99"), 0),
                fmt(r.get("load_cpu_s"))))
    return "\n".join(lines)


def write_docs(md_block, ts, label, command):
    path = os.path.join(ROOT, "docs/benchmarks.md")
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    begin, end = "<!-- bench:%s:begin -->" % slug, "<!-- bench:%s:end -->" % slug
    note = os.environ.get("BENCH_NOTE", "")
    block = "%s\n### Results: %s (%s)\n\n%sCommand: `%s`  \nRaw data: `bench/results/%s.json`, " \
            "plot: `bench/results/%s.svg`\n\n%s\n%s" % (begin, label, ts, note + "\n\n" if note else "",
                                                         command, ts, ts, md_block, end)
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    elif "\n## Results\n" in text:  # newest first, above older blocks and their notes
        at = text.index("\n## Results\n") + len("\n## Results\n")
        text = text[:at] + "\n" + block + "\n" + text[at:]
    else:
        text = text.rstrip("\n") + "\n\n## Results\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)


def git_rev():
    try:
        r = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                           capture_output=True, text=True, timeout=5)
        return r.stdout.strip()
    except OSError:
        return "unknown"


def ramp(work):
    """Every step, each server in turn (order alternating between runs)."""
    recs, stopped, port = [], set(), CFG["port"]
    for n in CFG["steps"]:
        for run in range(CFG["runs"]):
            kinds = CFG["servers"] if run % 2 == 0 else list(reversed(CFG["servers"]))
            for kind in kinds:
                if kind in stopped:
                    continue
                port += 1
                rate = CFG["rate_by"].get(kind, CFG["rate"])
                rec = one_run(kind, n, rate, CFG["pin"], work, port, "ramp%d" % run)
                recs.append(rec)
                show(rec)
        for kind in CFG["servers"]:
            rs = [r for r in recs if r["server"] == kind and r["n"] == n]
            if rs and kind not in stopped and median_of(rs, "hearing_pct") < CFG["stop_pct"]:
                log("%s below %.0f %% hearing at N=%d: no larger steps" % (kind, CFG["stop_pct"], n))
                stopped.add(kind)
    return recs, port


def main():
    ts = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    os.makedirs(CFG["results"], exist_ok=True)
    work = tempfile.mkdtemp(prefix="tribune-bench-")
    os.chmod(work, 0o755)  # icecast2 runs as its own user and writes its logs below
    command = " ".join("%s=%s" % (k, shlex.quote(os.environ[k])) for k in sorted(os.environ)
                       if (k.startswith("BENCH_") and k != "BENCH_NOTE")
                       or k in ("TRIBUNE", "TRIBUNE_ARGS", "LOAD"))
    command = (command + " make bench").strip()
    log("work dir %s; settings %s" % (work, json.dumps(CFG)))
    recs, port = ramp(work)
    storm = []
    for kind in CFG["servers"] if CFG["storm"] > 0 else []:
        port += 1
        rec = one_run(kind, CFG["storm"], float(CFG["storm"]), CFG["pin"], work, port, "storm")
        storm.append(rec)
        show(rec)
    pin_check = []
    if CFG["pin_check"] > 0 and os.cpu_count() and os.cpu_count() >= 2:
        for pin in ("0:1", "off"):
            for kind in CFG["servers"]:
                port += 1
                rec = one_run(kind, CFG["pin_check"], CFG["rate"], pin, work, port, "pin")
                pin_check.append(rec)
                show(rec)
    summary = summarize(recs)
    result = {"timestamp": ts, "label": CFG["label"], "command": command, "config": CFG,
              "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release,
                          "fd_limit": os.sysconf("SC_OPEN_MAX")},
              "tribune_rev": git_rev(), "runs": recs, "summary": summary, "storm": storm,
              "pin_check": pin_check}
    out = os.path.join(CFG["results"], ts + ".json")
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    plot.write_svg(result, os.path.join(CFG["results"], ts + ".svg"))
    md = table_md(summary, storm, pin_check)
    if os.environ.get("BENCH_DOCS", "1") != "0":
        write_docs(md, ts, CFG["label"], command)
    print("\n" + md + "\n")
    log("results: %s (+ .svg)%s" % (out, ", table in docs/benchmarks.md"
                                       if os.environ.get("BENCH_DOCS", "1") != "0" else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
