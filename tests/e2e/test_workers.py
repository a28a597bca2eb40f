"""Kill one delivery worker: it comes back, the other workers' listeners keep hearing.

A node is a master plus worker processes sharing the port (DESIGN.md, "Processes and ownership").
With three workers and 60 raw listeners on the demo space:
  - each listener's connection is mapped to the worker process holding it (from /proc: the worker's
    socket inodes against /proc/net/tcp);
  - one worker that holds listeners is killed with SIGKILL;
  - its listeners see their connection end (EOF or reset) within 5 s;
  - every other listener keeps receiving whole pages with no gap over 1 s around the kill;
  - the master restarts the worker (a new child process appears);
  - the API's listener count drops to the survivors (the dead worker's listeners are counted as gone);
  - the killed worker's listeners rejoin and hear audio again.
Then the admin address (`--admin_listen`), accepted by the master itself: with every worker
stopped (SIGSTOP), the API answers there at once while the workers' port answers nothing.
Finally, honest counts when the workers fall behind: every worker is stopped (SIGSTOP) for 3 s with
all listeners connected, then continued: the audio they now deliver is more than 2 s behind live
(feed_clock, src/deliver/feed.h), so the server counts every listener lagging, none hearing, within
5 s, although each socket accepts every chunk; with the workers on time again they count hearing
again once FEED_HEAR_WINDOW_MS (10 s) has passed without lateness.
"""
import json
import os
import signal
import time

import socket

from lib import Listener, Server, check, free_port, http_json, log, run_test, wait_until

N = 60
WORKERS = 3


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(d))
    return sorted(out)


def socket_inodes(pid):
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if t.startswith("socket:["):
            inodes.add(t[8:-1])
    return inodes


def server_side_inodes(server_port):
    """{client port: inode} of established connections accepted on server_port."""
    out = {}
    for fn in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(fn) as f:
            next(f)
            for line in f:
                parts = line.split()
                loc_port = int(parts[1].split(":")[1], 16)
                rem_port = int(parts[2].split(":")[1], 16)
                if loc_port == server_port and parts[3] == "01":
                    out[rem_port] = parts[9]
    return out


def max_gap(lst, t_from, t_to):
    with lst.lock:
        times = [t for t, _ in lst.pages if t_from <= t <= t_to]
    if len(times) < 2:
        return float("inf")
    return max(b - a for a, b in zip(times, times[1:]))


def api_listeners(srv):
    st, _, obj = http_json(srv, "GET", "/api/spaces/demo")
    check(st == 200, "GET /api/spaces/demo -> %d" % st)
    return obj["listeners"]


def connected(srv):
    st, _, obj = http_json(srv, "GET", "/api/spaces/demo")
    check(st == 200, "GET /api/spaces/demo -> %d" % st)
    return obj["listeners"]["connected"]


def main():
    admin_port = free_port()
    srv = Server("demo", extra=["--workers", str(WORKERS),
                                "--admin_listen", "127.0.0.1:%d" % admin_port]).start()
    wait_until(lambda: len(children(srv.proc.pid)) == WORKERS, 10, "%d workers to run" % WORKERS)
    workers = children(srv.proc.pid)
    log("workers: %s" % workers)

    ls = [Listener(srv, "demo", keep=False, max_seconds=60) for _ in range(N)]
    for lst in ls:
        lst.start()
    for lst in ls:
        lst.wait_pages(5, 10, "before the kill")

    # Which worker holds which listener.
    by_port = server_side_inodes(srv.port)
    owner = {}
    for w in workers:
        inodes = socket_inodes(w)
        for lst in ls:
            port = lst.sock.getsockname()[1]
            if by_port.get(port) in inodes:
                owner[id(lst)] = w
    check(len(owner) == N, "mapped %d of %d listeners to a worker" % (len(owner), N))
    counts = {w: sum(1 for lst in ls if owner[id(lst)] == w) for w in workers}
    log("listeners per worker: %s" % counts)
    victim = max(counts, key=counts.get)
    victims = [lst for lst in ls if owner[id(lst)] == victim]
    others = [lst for lst in ls if owner[id(lst)] != victim]
    check(victims and others, "the kernel put every listener on one worker: %s" % counts)
    wait_until(lambda: connected(srv) == N, 5, "the API to count %d listeners" % N)
    joined_before = api_listeners(srv)["joined"]
    check(joined_before == N, "the API counted %d joins, expected %d" % (joined_before, N))

    t_kill = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    log("killed worker %d holding %d listeners" % (victim, len(victims)))
    wait_until(lambda: all(v.closed_by_server or v.error is not None or not v.is_alive() for v in victims),
               5, "the killed worker's listeners to see their connections end")

    wait_until(lambda: len(children(srv.proc.pid)) == WORKERS and victim not in children(srv.proc.pid),
               10, "the master to restart the worker")
    log("workers now: %s" % children(srv.proc.pid))

    # The others keep hearing: listen 3 s past the kill and look at page arrival gaps.
    wait_until(lambda: time.monotonic() > t_kill + 3, 5, "3 s after the kill")
    for lst in others:
        lst.check_ok()
        g = max_gap(lst, t_kill - 1, t_kill + 3)
        check(g <= 1.0, "a listener on a surviving worker had a %.2f s gap around the kill" % g)
    log("%d listeners on other workers: no gap over 1 s" % len(others))

    wait_until(lambda: connected(srv) == len(others), 5,
               "the API to count %d listeners (the dead worker's are gone)" % len(others))
    # Counters never go back when a worker dies: its joins stay counted.
    joined_after = api_listeners(srv)["joined"]
    check(joined_after == N, "after the kill the API counts %d joins, expected still %d" % (joined_after, N))

    again = [Listener(srv, "demo", keep=False, max_seconds=30) for _ in victims]
    for lst in again:
        lst.start()
    for lst in again:
        lst.wait_pages(5, 10, "after rejoining")
    wait_until(lambda: connected(srv) == N, 5, "the API to count %d listeners after the rejoin" % N)
    wait_until(lambda: api_listeners(srv)["joined"] == N + len(victims), 5,
               "the API to count %d joins (the first %d and %d rejoins)" % (N + len(victims), N, len(victims)))
    log("%d listeners rejoined and hear" % len(again))

    stalled_workers_count_lagging(srv, admin_port, N)
    for lst in ls + again:
        lst.stop(join=False)
    for lst in ls + again:
        lst.join(5)
    admin_answers_while_workers_stop(srv, admin_port)
    srv.stop()
    srv.check_sanitizers()


def get_json(port, path, timeout):
    """GET path on 127.0.0.1:port: the JSON, or None when nothing answers 200 within timeout."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
            c.settimeout(timeout)
            c.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
            data = b""
            while True:
                x = c.recv(65536)
                if not x:
                    break
                data += x
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    return json.loads(body) if head.startswith(b"HTTP/1.1 200") else None


def stalled_workers_count_lagging(srv, admin_port, n):
    def counts():
        obj = get_json(admin_port, "/api/spaces/demo", 5)
        check(obj is not None, "the admin address did not answer GET /api/spaces/demo")
        return obj["listeners"]
    wait_until(lambda: counts()["hearing"] == n, 15, "the server to count %d hearing before the stall" % n)
    workers = children(srv.proc.pid)
    for w in workers:
        os.kill(w, signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        wait_until(lambda: time.monotonic() > t0 + 3, 5, "3 s of stopped workers")
    finally:
        for w in workers:
            os.kill(w, signal.SIGCONT)
    t_cont = time.monotonic()
    wait_until(lambda: (lambda c: c["hearing"] == 0 and c["lagging"] == n)(counts()), 5,
               "the server to count all %d listeners lagging after its workers fell 3 s behind" % n)
    c = counts()
    log("workers stopped 3 s: %.1f s after they continued the server counts hearing %d, lagging %d"
        % (time.monotonic() - t_cont, c["hearing"], c["lagging"]))
    wait_until(lambda: counts()["hearing"] == n, 20, "the %d listeners to count hearing again" % n)
    log("hearing %d again %.1f s after the workers continued" % (n, time.monotonic() - t_cont))


def get_node(port, timeout):
    """GET /api/node on 127.0.0.1:port: the JSON, or None when nothing answers within timeout."""
    return get_json(port, "/api/node", timeout)


def admin_answers_while_workers_stop(srv, admin_port):
    workers = children(srv.proc.pid)
    node = get_node(admin_port, 5)
    check(node and node["workers_up"] == WORKERS, "the admin address answered %r" % node)
    for w in workers:
        os.kill(w, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        node = get_node(admin_port, 2)
        dt = time.monotonic() - t0
        log("workers stopped: the admin address answered in %.3f s: workers_up %s" % (
            dt, node and node["workers_up"]))
        check(node is not None and dt < 1.0, "the admin address did not answer with every worker stopped")
        main_port = get_node(srv.port, 1.0)
        log("the workers' port answered: %r" % (main_port is not None))
        check(main_port is None, "the workers' port answered with every worker stopped")
    finally:
        for w in workers:
            os.kill(w, signal.SIGCONT)


if __name__ == "__main__":
    run_test(main)
