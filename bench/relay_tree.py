#!/usr/bin/env python3
"""Relay tree figures for docs/scale.md: what an edge costs its origin.

    python3 bench/relay_tree.py [--bin build/tribune] [--edges 8] [--seconds 10]

Starts `tribune demo` (the origin, 1 worker) and measures its CPU (user + system, the master and its
workers, from /proc) for S seconds alone, then with E edges (`tribune relay --origin`, separate
processes on loopback), each pulling the demo space for one tribune-load listener. The difference
divided by E x S is the origin's CPU-seconds per edge-second: one WebSocket stream out plus one
report (POST /api/edges) a second in. Prints a Markdown table. Loopback only; every process is
stopped at the end.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")


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


def start(binary, cmd, extra, tmp):
    port = free_port()
    data = tempfile.mkdtemp(dir=tmp)
    log = open(os.path.join(tmp, "%s-%d.log" % (cmd, port)), "wb")
    p = subprocess.Popen([binary, cmd, "--listen", "127.0.0.1:%d" % port, "--data", data, "--workers", "1"] + extra,
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    url = "http://127.0.0.1:%d" % port
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/api/spaces", timeout=2) as r:
                if r.status == 200:
                    return p, url
        except OSError:
            time.sleep(0.05)
    p.kill()
    sys.exit("%s did not start" % cmd)


def hearing(url):
    with urllib.request.urlopen(url + "/api/spaces/demo", timeout=5) as r:
        return json.load(r)["listeners"]["hearing"]


def measure(pid, seconds):
    c0, t0 = cpu_s(pid), time.monotonic()
    time.sleep(seconds)  # a measurement window, not a wait for a condition
    return (cpu_s(pid) - c0) / (time.monotonic() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/tribune")
    ap.add_argument("--edges", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10)
    a = ap.parse_args()
    load_bin = os.path.join(os.path.dirname(a.bin), "tribune-load")
    tmp = tempfile.mkdtemp(prefix="tribune-bench-tree-")
    procs = []
    try:
        origin, ourl = start(a.bin, "demo", [], tmp)
        procs.append(origin)
        alone = measure(origin.pid, a.seconds)
        edges = []
        for _ in range(a.edges):
            p, url = start(a.bin, "relay", ["--origin", ourl], tmp)
            procs.append(p)
            edges.append(url)
        for url in edges:
            procs.append(subprocess.Popen([load_bin, url + "/spaces/demo/live.opus", "-n", "1",
                                           "-d", str(int(a.seconds * 2 + 15)), "--quiet"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 15
        while hearing(ourl) != a.edges and time.monotonic() < deadline:
            time.sleep(0.1)
        n = hearing(ourl)
        loaded = measure(origin.pid, a.seconds)
        per_edge = (loaded - alone) / a.edges
        print("| origin CPU alone (demo, 1 worker) | %.4f cores |" % alone)
        print("| origin CPU with %d edges (each 1 listener; origin counts %d hearing) | %.4f cores |"
              % (a.edges, n, loaded))
        print("| origin CPU-seconds per edge-second | %.5f (%.0f µs per edge per second) |"
              % (per_edge, per_edge * 1e6))
        if per_edge > 0:
            print("| edges one origin core could feed at this cost | %.0f |" % (1 / per_edge))
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
