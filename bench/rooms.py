#!/usr/bin/env python3
"""Rooms: what mixing costs, how fast a room goes live, what latency the mixer adds.

  python3 bench/rooms.py --json bench/results/rooms-<ts>.json     (bench/run.sh: BENCH_ROOMS)

Everything runs on loopback against a real `tribune serve --workers 1`, with ffmpeg publishers and
build/tribune-load; every server, publisher and load run is started in its own session, bounded in
time, and stopped (its whole group) in a `finally`. Three measurements:

  cpu      for N speakers in 0 (the baseline, measured first and again last), 1, 4 and 13: a fresh
           server, a space created with a future starts_at, N speakers invited, N ffmpeg publishers
           each sending a different sine (pre-encoded Ogg/Opus, 20 ms pages, looped with -c copy so
           that they cost almost nothing), live, one listener. After BENCH_ROOMS_WARMUP s, the
           master's CPU (utime+stime of the `tribune serve` process, all its threads) and its
           workers' (its children) over BENCH_ROOMS_SECONDS s, as ms of CPU per second (= % of a
           core); the mixer's own counters (underruns, drift drops and fills: their growth over the
           window) and each speaker's buffered_ms, sampled every 0.5 s (GET /api/spaces/{id}/speakers).
  golive   a space in green (two speakers connected and buffered), K listeners joined
           (BENCH_ROOMS_LISTENERS, tribune-load --loud-bytes 20), all counted `waiting` by the server;
           T0 = unix time right before POST /api/spaces/{id}/live. Reported against T0: when the
           listeners got their first loud Opus packet (p50, p99, last; how many did), and when the
           server's own listeners.hearing reached K (polled every 50 ms).
  latency  one publisher whose file is 4 s of silence then a 440 Hz tone, started with -re into a
           live space with one listener (tribune-load --loud-bytes 20): latency = the listener's
           first loud packet - (the publisher's start + 4 s). With the default jitter_ms (300), with
           --jitter_ms 0, and with a second (silent) speaker connected so that the program is mixed
           and re-encoded rather than passed through; BENCH_ROOMS_REPEAT times each, each started
           after a random wait (0-100 ms) so that the runs sample the phase of the 100 ms chunk.

Settings (environment): BENCH_ROOMS_SPEAKERS=1,4,13  BENCH_ROOMS_LISTENERS=2000
BENCH_ROOMS_WARMUP=5  BENCH_ROOMS_SECONDS=20  BENCH_ROOMS_REPEAT=5  BENCH_ROOMS_PORT=18600
TRIBUNE=build/tribune  LOAD=build/tribune-load. Standard library only.
"""
import datetime
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import procstat  # noqa: E402
from bench import ROOT, Proc, git_rev, http, wait_port  # noqa: E402

CFG = {
    "speakers": [int(x) for x in os.environ.get("BENCH_ROOMS_SPEAKERS", "1,4,13").split(",") if x],
    "listeners": int(os.environ.get("BENCH_ROOMS_LISTENERS", "2000")),
    "join_rate": 1000,
    "warmup_s": float(os.environ.get("BENCH_ROOMS_WARMUP", "5")),
    "seconds": float(os.environ.get("BENCH_ROOMS_SECONDS", "20")),
    "repeat": int(os.environ.get("BENCH_ROOMS_REPEAT", "5")),
    "port": int(os.environ.get("BENCH_ROOMS_PORT", "18600")),
    "tribune": os.environ.get("TRIBUNE", os.path.join(ROOT, "build/tribune")),
    "load": os.environ.get("LOAD", os.path.join(ROOT, "build/tribune-load")),
    "loud_bytes": 20,
}
FREQS = [220 + 70 * i for i in range(13)]  # a different sine per speaker, 220 .. 1060 Hz
CLK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print("rooms: " + msg, flush=True)


def next_port():
    CFG["port"] += 1
    return CFG["port"]


def encode(out, lavfi_src, extra_af=None):
    """One Ogg/Opus file (libopus, 48 kHz mono, VBR 48 kbit/s, 20 ms frames and 20 ms pages)."""
    argv = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", lavfi_src, "-ac", "1",
            "-ar", "48000"] + (["-af", extra_af] if extra_af else []) + \
        ["-c:a", "libopus", "-b:a", "48k", "-frame_duration", "20", "-page_duration", "20000", "-f", "ogg", out]
    subprocess.run(argv, check=True, timeout=60)
    return out


def make_sources(work):
    """The publishers' files, encoded once: a 10 s sine per frequency (quiet enough that 13 of them
    do not clip the mix), 10 s of silence, and 4 s of silence followed by 6 s of a 440 Hz tone."""
    src = {"sine": [], "silence": None, "step": None}
    for f in FREQS:
        src["sine"].append(encode(os.path.join(work, "sine-%d.opus" % f),
                                  "sine=frequency=%d:sample_rate=48000:duration=10" % f, "volume=0.5"))
    src["silence"] = encode(os.path.join(work, "silence.opus"), "anullsrc=r=48000:cl=mono:d=10")
    src["step"] = encode(os.path.join(work, "step.opus"),
                         "aevalsrc='if(gte(t,4),0.25*sin(2*PI*440*t),0)':s=48000:d=10")
    return src


def proc_cpu_s(pid):
    st = procstat.read_stat(pid)
    return st[1] / CLK if st else None


def workers_cpu_s(master):
    return sum(st[1] for pid, st in procstat.tree(master) if pid != master) / CLK


class Room:
    """A fresh `tribune serve --workers 1` and one space created with a future starts_at."""

    def __init__(self, work, tag, extra=()):
        self.work = tempfile.mkdtemp(prefix="rooms-%s-" % tag, dir=work)
        self.port = next_port()
        self.pubs, self.loads = [], []
        argv = [CFG["tribune"], "serve", "--workers", "1", "--listen", "127.0.0.1:%d" % self.port,
                "--data", os.path.join(self.work, "data")] + list(extra)
        self.server = Proc(argv, os.path.join(self.work, "server.log"))
        if not wait_port(self.port):
            raise RuntimeError("tribune did not listen on %d (see %s)" % (self.port, self.work))
        st, body = http(self.port, "POST", "/api/spaces", {"title": tag, "starts_at": int(time.time()) + 3600})
        if st != 201:
            raise RuntimeError("POST /api/spaces -> %d %r" % (st, body[:200]))
        obj = json.loads(body)
        self.sid, self.key = obj["id"], obj["host_key"]
        self.listen_url = "http://127.0.0.1:%d/spaces/%s/live.opus" % (self.port, self.sid)

    def host(self, method, path, body=None, timeout=5):
        st, out = http(self.port, method, "/api/spaces/%s%s" % (self.sid, path), body,
                       {"Authorization": "Bearer " + self.key}, timeout=timeout)
        try:
            return st, json.loads(out) if out else None
        except ValueError:
            return st, None

    def space(self):
        st, out = http(self.port, "GET", "/api/spaces/%s" % self.sid, timeout=2)
        return json.loads(out) if st == 200 else None

    def speakers(self):
        st, obj = self.host("GET", "/speakers", timeout=2)
        return {s["name"]: s for s in obj["speakers"]} if st == 200 else None

    def invite(self, name):
        st, obj = self.host("POST", "/speakers", {"name": name})
        if st != 201:
            raise RuntimeError("invite %s -> %d %r" % (name, st, obj))
        return obj["key"]

    def publish(self, name, key, path, loop=True):
        url = "icecast://source:%s@127.0.0.1:%d/spaces/%s/speakers/%s.opus" % (key, self.port, self.sid, name)
        argv = ["ffmpeg", "-nostdin", "-v", "error", "-re"] + (["-stream_loop", "-1"] if loop else []) + \
            ["-i", path, "-c", "copy", "-page_duration", "20000", "-content_type", "audio/ogg", "-f", "ogg", url]
        p = Proc(argv, os.path.join(self.work, "ffmpeg-%s.log" % name))
        self.pubs.append(p)
        return p

    def go_live(self):
        st, obj = self.host("POST", "/live")
        if st != 200:
            raise RuntimeError("POST live -> %d %r" % (st, obj))
        return obj

    def load(self, n, duration, name, extra=()):
        out = os.path.join(self.work, "%s.json" % name)
        argv = [CFG["load"], self.listen_url, "-n", str(n), "-r", str(CFG["join_rate"]), "-d", str(duration),
                "--loud-bytes", str(CFG["loud_bytes"]), "--json", out] + list(extra)
        p = Proc(argv, os.path.join(self.work, "%s.log" % name))
        p.json, p.duration = out, duration
        self.loads.append(p)
        return p

    def wait_speakers(self, names, timeout=15, min_ms=1):
        """Until every named speaker is connected with at least `min_ms` buffered."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            sp = self.speakers() or {}
            if all(sp.get(n, {}).get("connected") and sp[n].get("buffered_ms", 0) >= min_ms for n in names):
                return sp
            time.sleep(0.1)
        raise RuntimeError("speakers %s not connected and buffered within %d s: %r" % (names, timeout, sp))

    def stop(self):
        for p in self.loads + self.pubs:
            p.stop()
        self.server.stop(signal.SIGINT)


def finish_load(p):
    """Waits for a tribune-load run (bounded by its -d, plus a margin) and returns its report."""
    try:
        p.p.wait(p.duration + 30)
    except subprocess.TimeoutExpired:
        p.stop(signal.SIGKILL)
        raise RuntimeError("tribune-load overran its -d %d s" % p.duration)
    with open(p.json) as f:
        return json.load(f)


class SpeakerSampler(threading.Thread):
    """GET /api/spaces/{id}/speakers every 0.5 s: each speaker's buffered_ms."""

    def __init__(self, room):
        super().__init__(daemon=True)
        self.room, self.samples, self.done = room, [], threading.Event()

    def run(self):
        while not self.done.wait(0.5):
            try:
                sp = self.room.speakers()
            except (OSError, ValueError):
                sp = None
            if sp:
                self.samples.append(sp)


def counters(sp):
    return {k: sum(s[k] for s in sp.values()) for k in ("underruns", "drift_drops", "drift_fills")}


def cpu_run(work, src, n, tag):
    """One server, N speakers, one listener: the master's CPU over the window, the mixer's figures."""
    room = Room(work, tag)
    rec = {"speakers": n, "tag": tag}
    try:
        names = ["s%d" % i for i in range(n)]
        for i, name in enumerate(names):
            room.publish(name, room.invite(name), src["sine"][i])
        if names:
            room.wait_speakers(names)
        room.go_live()
        window = CFG["warmup_s"] + CFG["seconds"]
        lp = room.load(1, int(math.ceil(window)) + 4, "listener")
        time.sleep(CFG["warmup_s"])
        sampler = SpeakerSampler(room)
        sampler.start()
        sp0 = room.speakers() or {}
        t0, m0, w0 = time.monotonic(), proc_cpu_s(room.server.pid), workers_cpu_s(room.server.pid)
        p0 = sum(proc_cpu_s(p.pid) or 0 for p in room.pubs)
        time.sleep(CFG["seconds"])
        t1, m1, w1 = time.monotonic(), proc_cpu_s(room.server.pid), workers_cpu_s(room.server.pid)
        p1 = sum(proc_cpu_s(p.pid) or 0 for p in room.pubs)
        sp1 = room.speakers() or {}
        sampler.done.set()
        sampler.join()
        dt = t1 - t0
        rec.update({"window_s": round(dt, 2), "master_ms_per_s": round(1000 * (m1 - m0) / dt, 2),
                    "workers_ms_per_s": round(1000 * (w1 - w0) / dt, 2),
                    "publishers_ms_per_s": round(1000 * (p1 - p0) / dt, 2),
                    "loadavg": open("/proc/loadavg").read().split()[:3]})
        c0, c1 = counters(sp0), counters(sp1)
        rec["mixer_window"] = {k: c1[k] - c0.get(k, 0) for k in c1}
        rec["mixer_total"] = c1
        rec["per_speaker"] = {k: {x: v[x] for x in ("connected", "underruns", "drift_drops", "drift_fills",
                                                  "peak_dbfs")} for k, v in sp1.items()}
        bufs = {name: [s[name]["buffered_ms"] for s in sampler.samples if name in s] for name in names}
        allb = [x for v in bufs.values() for x in v]
        rec["buffered_ms"] = {"samples": len(allb),
                              "median": statistics.median(allb) if allb else None,
                              "max": max(allb) if allb else None,
                              "min": min(allb) if allb else None,
                              "per_speaker_median": {k: statistics.median(v) for k, v in bufs.items() if v}}
        rep = finish_load(lp)
        rec["listener"] = {k: rep.get(k) for k in ("hearing", "got_audio", "skips", "max_gap_ms", "loud")}
        rec["server_alive"] = room.server.alive()
    except Exception as e:
        rec["error"] = str(e)
        log("cpu %s: %s" % (tag, e))
    finally:
        room.stop()
    log("cpu N=%d (%s): master %s ms/s, workers %s ms/s, publishers %s ms/s; mixer over the window %s; "
        "buffered_ms %s" % (n, tag, rec.get("master_ms_per_s"), rec.get("workers_ms_per_s"),
                            rec.get("publishers_ms_per_s"), rec.get("mixer_window"), rec.get("buffered_ms")))
    return rec


def golive_run(work, src, k):
    """K waiting listeners in a green room; POST live at T0; when does everyone hear the speakers?"""
    room = Room(work, "golive")
    rec = {"listeners": k}
    try:
        for i, name in enumerate(("a", "b")):
            room.publish(name, room.invite(name), src["sine"][i])
        room.wait_speakers(["a", "b"], min_ms=100)
        rec["state_before"] = room.space()["state"]
        joins_s = int(math.ceil(k / CFG["join_rate"]))
        wait_s = joins_s + 10
        lp = room.load(k, wait_s + 12, "listeners")
        t_start = time.monotonic()
        waiting = 0
        while time.monotonic() < t_start + wait_s:
            sp = room.space()
            waiting = sp["listeners"]["waiting"] if sp else 0
            if waiting >= k:
                break
            time.sleep(0.1)
        rec["waiting_at_live"] = waiting
        rec["joined_in_s"] = round(time.monotonic() - t_start, 2)
        t0 = time.time()
        ans = room.go_live()
        rec["live_call_ms"] = round(1000 * (time.time() - t0), 1)
        rec["program_granule_at_live"] = ans.get("program_granule")
        hearing, t_all = 0, None
        while time.time() < t0 + 10:
            sp = room.space()
            hearing = sp["listeners"]["hearing"] if sp else hearing
            if hearing >= k:
                t_all = time.time()
                break
            time.sleep(0.05)
        rec["server_hearing_all_s"] = round(t_all - t0, 3) if t_all else None
        rec["server_hearing_last_seen"] = hearing
        rep = finish_load(lp)
        loud = rep.get("loud") or {}
        rec["loud"] = loud
        rec["t0_unix"] = t0
        for key in ("first", "p50", "p99", "last"):
            v = loud.get(key + "_unix")
            rec["loud_%s_s" % key] = round(v - t0, 3) if v else None
        rec["tool"] = {x: rep.get(x) for x in ("joined", "got_audio", "hearing", "skips", "max_gap_ms", "failed")}
        rec["server_alive"] = room.server.alive()
    except Exception as e:
        rec["error"] = str(e)
        log("golive: %s" % e)
    finally:
        room.stop()
    log("golive K=%d: %s" % (k, {x: rec.get(x) for x in ("waiting_at_live", "loud_first_s", "loud_p50_s",
                                                          "loud_p99_s", "loud_last_s", "server_hearing_all_s",
                                                          "loud", "error")}))
    return rec


def latency_run(work, src, jitter, mixed, tag):
    """Publisher start + 4 s (its tone) to the listener's first loud packet."""
    room = Room(work, tag, ["--jitter_ms", str(jitter)] if jitter is not None else [])
    rec = {"jitter_ms": jitter if jitter is not None else 300, "mixed": mixed, "tag": tag}
    try:
        key = room.invite("tone")
        if mixed:
            room.publish("quiet", room.invite("quiet"), src["silence"])
            room.wait_speakers(["quiet"], min_ms=100)
        room.go_live()
        lp = room.load(1, 16, "listener")
        end = time.monotonic() + 5
        while time.monotonic() < end and ((room.space() or {}).get("listeners", {}).get("hearing", 0) < 1):
            time.sleep(0.05)
        # the listener past its burst, hearing the live (silent) program; then a random wait of up
        # to one 100 ms chunk, so that the runs do not all land at one phase of the chunk cycle
        time.sleep(1 + random.uniform(0, 0.1))
        t_pub = time.time()
        room.publish("tone", key, src["step"], loop=False)
        t_conn = None
        while time.time() < t_pub + 5:
            sp = room.speakers() or {}
            if sp.get("tone", {}).get("connected"):
                t_conn = time.time()
                break
            time.sleep(0.02)
        rec["publisher_connected_s"] = round(t_conn - t_pub, 3) if t_conn else None
        rep = finish_load(lp)
        loud = rep.get("loud") or {}
        rec["loud"] = loud
        first = loud.get("first_unix")
        rec["latency_ms"] = round(1000 * (first - (t_pub + 4)), 1) if first else None
        # the same from when the server saw the publisher connected (polled every 20 ms): without
        # ffmpeg's own start-up, which varies with the machine's load
        rec["latency_from_connect_ms"] = round(1000 * (first - (t_conn + 4)), 1) if first and t_conn else None
        rec["server_alive"] = room.server.alive()
    except Exception as e:
        rec["error"] = str(e)
        log("latency %s: %s" % (tag, e))
    finally:
        room.stop()
    log("latency %s: %s ms (publisher connected after %s s)" % (tag, rec.get("latency_ms"),
                                                              rec.get("publisher_connected_s")))
    return rec


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(v, nd=1):
    if v is None:
        return "n/a"
    return ("%." + str(nd) + "f") % v if isinstance(v, float) else str(v)


def table_md(res):
    base = [r["master_ms_per_s"] for r in res["cpu"] if r["speakers"] == 0 and "master_ms_per_s" in r]
    b = statistics.mean(base) if base else None
    lines = ["| speakers | master, ms CPU per s (% of a core) | minus the mean baseline (mixing) | worker ms/s | "
             "publishers ms/s | buffered_ms median / max | underruns | drift drops / fills |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in res["cpu"]:
        n = r["speakers"]
        label = "0 (baseline, %s)" % r["tag"] if n == 0 else ("1 (passed through, no re-encoding)" if n == 1 else str(n))
        bm = r.get("buffered_ms") or {}
        mw = r.get("mixer_window") or {}
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            label, "%s (%s %%)" % (fmt(r.get("master_ms_per_s")), fmt(r["master_ms_per_s"] / 10, 2))
            if "master_ms_per_s" in r else "n/a",
            fmt(r["master_ms_per_s"] - b) if n and b is not None and "master_ms_per_s" in r else "",
            fmt(r.get("workers_ms_per_s")), fmt(r.get("publishers_ms_per_s")),
            "%s / %s" % (fmt(bm.get("median")), fmt(bm.get("max"))) if n else "",
            fmt(mw.get("underruns")) if n else "", "%s / %s" % (fmt(mw.get("drift_drops")),
                                                               fmt(mw.get("drift_fills"))) if n else ""))
    g = res["golive"]
    lines += ["", "| going live: listeners | waiting at T0 | loud p50 | loud p99 | loud last | loud listeners | "
              "server hearing = K |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
              "| %s | %s | %s s | %s s | %s s | %s of %s | %s s |" % (
                  g["listeners"], fmt(g.get("waiting_at_live")), fmt(g.get("loud_p50_s"), 3),
                  fmt(g.get("loud_p99_s"), 3), fmt(g.get("loud_last_s"), 3),
                  fmt((g.get("loud") or {}).get("listeners")), g["listeners"], fmt(g.get("server_hearing_all_s"), 3))]
    lines += ["", "| end to end (publisher's tone to listener) | runs (ms) | median ms | publisher connected "
              "after (median ms) | from the connection: runs (ms) | median ms |",
              "| --- | --- | ---: | ---: | --- | ---: |"]
    for label, rs in res["latency_groups"]:
        lines.append("| %s | %s | %s | %s | %s | %s |" % (
            label, ", ".join(fmt(r.get("latency_ms"), 0) for r in rs),
            fmt(med(r.get("latency_ms") for r in rs), 0),
            fmt(med(1000 * r["publisher_connected_s"] for r in rs if r.get("publisher_connected_s")), 0),
            ", ".join(fmt(r.get("latency_from_connect_ms"), 0) for r in rs),
            fmt(med(r.get("latency_from_connect_ms") for r in rs), 0)))
    return "\n".join(lines)


def main(argv):
    out = None
    if "--json" in argv:
        out = argv[argv.index("--json") + 1]
    ts = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = out or os.path.join(HERE, "results", "rooms-%s.json" % ts)
    work = tempfile.mkdtemp(prefix="tribune-rooms-")
    log("work dir %s; settings %s" % (work, json.dumps(CFG)))
    src = make_sources(work)
    res = {"timestamp": ts, "config": CFG, "tribune_rev": git_rev(),
           "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release},
           "loadavg_start": open("/proc/loadavg").read().split()[:3], "cpu": [], "latency": []}
    res["cpu"].append(cpu_run(work, src, 0, "before"))
    for n in CFG["speakers"]:
        res["cpu"].append(cpu_run(work, src, n, "n%d" % n))
    res["cpu"].append(cpu_run(work, src, 0, "after"))
    base = [r.get("master_ms_per_s") for r in res["cpu"] if r["speakers"] == 0]
    if None not in base and min(base) > 0:
        res["baseline_spread_pct"] = round(100 * (max(base) - min(base)) / min(base), 1)
        if res["baseline_spread_pct"] > 20:
            log("the two baselines differ by %.0f %%: the machine was busy; rerun" % res["baseline_spread_pct"])
    res["golive"] = golive_run(work, src, CFG["listeners"])
    groups = [("one speaker, jitter_ms 300 (default), passed through", 300, False),
              ("one speaker, jitter_ms 0, passed through", 0, False),
              ("two speakers (one silent), jitter_ms 300: mixed and re-encoded", 300, True)]
    res["latency_groups"] = []
    for label, jitter, mixed in groups:
        rs = []
        for i in range(CFG["repeat"]):
            rs.append(latency_run(work, src, None if jitter == 300 else jitter, mixed,
                                  "lat-j%d%s-%d" % (jitter, "-mix" if mixed else "", i)))
        res["latency"] += rs
        res["latency_groups"].append((label, rs))
    meds = [med(r.get("latency_ms") for r in rs) for _, rs in res["latency_groups"]]
    if meds[0] is not None and meds[1] is not None:
        res["jitter_difference_ms"] = round(meds[0] - meds[1], 1)
    cmeds = [med(r.get("latency_from_connect_ms") for r in rs) for _, rs in res["latency_groups"]]
    if cmeds[0] is not None and cmeds[1] is not None:
        res["jitter_difference_from_connect_ms"] = round(cmeds[0] - cmeds[1], 1)
    res["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    md = table_md(res)
    res["table_md"] = md
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
    print("\n" + md + "\n")
    log("results: %s" % out)
    failed = [r for r in res["cpu"] + res["latency"] + [res["golive"]] if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
