"""GET /api/spaces/{id}/events: Server-Sent Events, one update per second.

  - `tribune demo`: a raw socket on /api/spaces/demo/events gets 200, text/event-stream, no-cache and
    CORS *, then 3 events within 5 s, each with an `id:` (increasing) and a `data:` that parses as the
    space's JSON with listeners.hearing.
  - 5 raw listeners join the demo: a later event shows hearing == 5.
  - An unknown space (and an invalid id) answers 404.
  - Clients that disconnect (FIN, and RST) and one that never reads are no problem: the first stream
    goes on, the API answers, and at SIGTERM the server (with a stream still open) exits 0, clean log.
"""
import json
import socket
import struct
import threading
import time

from lib import SLOW, Listener, Server, check, http, log, parse_head, run_test, wait_until


class SSEClient(threading.Thread):
    """GET path on a raw socket; parses the SSE stream into (arrival time, id, data text) events."""

    def __init__(self, server, path, max_seconds=60):
        super().__init__(daemon=True)
        self.server, self.path, self.max_seconds = server, path, max_seconds
        self.status = self.headers = None
        self.events = []
        self.error = None
        self.closed_by_server = False
        self.head_event = threading.Event()
        self._stop_flag = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        sock = None
        try:
            sock = socket.create_connection(self.server.addr, timeout=10)
            sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/event-stream\r\n\r\n"
                          % (self.path, self.server.port)).encode())
            sock.settimeout(0.2)
            buf = b""
            deadline = time.monotonic() + self.max_seconds
            while time.monotonic() < deadline and not self._stop_flag.is_set():
                try:
                    x = sock.recv(65536)
                except socket.timeout:
                    continue
                if not x:
                    self.closed_by_server = True
                    break
                buf += x
                if self.headers is None:
                    r = parse_head(buf)
                    if r is None:
                        continue
                    self.status, self.headers, buf = r
                    self.head_event.set()
                while b"\n\n" in buf:
                    block, buf = buf.split(b"\n\n", 1)
                    ev_id, data = None, []
                    for line in block.decode("utf-8").split("\n"):
                        if line.startswith(":"):
                            continue
                        k, _, v = line.partition(":")
                        v = v[1:] if v.startswith(" ") else v
                        if k == "id":
                            ev_id = v
                        elif k == "data":
                            data.append(v)
                    if data:
                        with self.lock:
                            self.events.append((time.monotonic(), ev_id, "\n".join(data)))
        except Exception as e:
            if not self._stop_flag.is_set():
                self.error = e
        finally:
            self.head_event.set()
            if sock:
                sock.close()

    def stop(self):
        self._stop_flag.set()
        self.join(5)

    def count(self):
        with self.lock:
            return len(self.events)

    def event(self, i):
        with self.lock:
            return self.events[i]


def main():
    srv = Server(cmd="demo").start()

    a = SSEClient(srv, "/api/spaces/demo/events")
    t0 = time.monotonic()
    a.start()
    check(a.head_event.wait(5), "no response head from /api/spaces/demo/events within 5 s")
    check(a.error is None, "events client error: %r" % (a.error,))
    check(a.status == 200, "events: status %s" % a.status)
    h = a.headers
    check(h.get("content-type", "").startswith("text/event-stream"), "events Content-Type %r" % h)
    check("no-cache" in h.get("cache-control", ""), "events Cache-Control %r" % h)
    check(h.get("access-control-allow-origin") == "*", "events CORS header %r" % h)
    wait_until(lambda: a.count() >= 3 or a.error or not a.is_alive(), 5 * SLOW, "3 events")
    check(a.error is None and a.count() >= 3, "got %d events in 5 s (error %r, closed %s)"
          % (a.count(), a.error, a.closed_by_server))
    log("3 events in %.2fs" % (a.event(2)[0] - t0))
    last_id = -1
    for i in range(3):
        _, ev_id, data = a.event(i)
        check(ev_id is not None and ev_id.isdigit(), "event %d has no numeric id: %r" % (i, ev_id))
        check(int(ev_id) > last_id, "event ids do not increase: %r after %d" % (ev_id, last_id))
        last_id = int(ev_id)
        obj = json.loads(data)
        check(obj.get("id") == "demo", "event %d is not the demo space: %r" % (i, obj))
        check(isinstance(obj.get("listeners", {}).get("hearing"), int), "event %d lacks listeners.hearing" % i)
    if a.count() >= 3:
        gap = a.event(2)[0] - a.event(1)[0]
        check(0.5 <= gap <= 1.5 * SLOW, "events %.2fs apart (expected about 1 s)" % gap)

    # 5 listeners: a later event says hearing == 5.
    lsts = [Listener(srv, "demo", parse=False, keep=False, max_seconds=60) for _ in range(5)]
    for lst in lsts:
        lst.start()
    for lst in lsts:
        lst.wait_head(5)
    seen = [None]

    def hearing5():
        n = a.count()
        for i in range(n):
            obj = json.loads(a.event(i)[2])
            if obj["listeners"]["hearing"] == 5:
                seen[0] = obj
                return True
        return a.error is not None or not a.is_alive()

    wait_until(hearing5, 15 * SLOW, "an event with hearing == 5")
    check(seen[0] is not None, "no event with hearing == 5 (error %r, closed %s)" % (a.error, a.closed_by_server))
    log("event with 5 listeners: %s" % json.dumps(seen[0]["listeners"]))

    # Unknown space, invalid id.
    for path in ("/api/spaces/nosuchspace/events", "/api/spaces/bad!id/events"):
        st, _, body = http(srv, "GET", path)
        check(st == 404, "GET %s -> %d %r (expected 404)" % (path, st, body[:200]))

    # Clients that go away: FIN right after the head, RST after an event, and one that never reads.
    s1 = socket.create_connection(srv.addr, timeout=5)
    s1.sendall(b"GET /api/spaces/demo/events HTTP/1.1\r\nHost: x\r\n\r\n")
    check(s1.recv(1024).startswith(b"HTTP/1.1 200"), "second events client: no 200")
    s1.close()
    s2 = socket.create_connection(srv.addr, timeout=5)
    s2.sendall(b"GET /api/spaces/demo/events HTTP/1.1\r\nHost: x\r\n\r\n")
    check(s2.recv(1024).startswith(b"HTTP/1.1 200"), "third events client: no 200")
    s2.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s2.close()
    s3 = socket.socket()
    s3.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s3.connect(srv.addr)
    s3.sendall(b"GET /api/spaces/demo/events HTTP/1.1\r\nHost: x\r\n\r\n")
    s4 = socket.create_connection(srv.addr, timeout=5)
    s4.sendall(b"GET /api/spaces/demo/events HTTP/1.1\r\nHost: x\r\n")
    s4.close()  # before the head is complete
    n0 = a.count()
    wait_until(lambda: a.count() >= n0 + 3 or not a.is_alive(), 6 * SLOW, "3 more events after the disconnects")
    check(a.error is None and not a.closed_by_server, "first stream broke: %r %s" % (a.error, a.closed_by_server))
    srv.check_alive("after events clients disconnected")
    st, _, _ = http(srv, "GET", "/api/spaces/demo")
    check(st == 200, "GET /api/spaces/demo -> %d after the disconnects" % st)

    for lst in lsts:
        lst.stop(join=False)
    for lst in lsts:
        lst.join(5)
    srv.stop()  # with stream `a` and the non-reader still open: must exit 0 with a clean log
    s3.close()
    a.stop()
    text = srv.log_text()
    check("error" not in text.lower().replace("error_", ""), "server log mentions an error:\n%s" % srv.log_tail())


if __name__ == "__main__":
    run_test(main)
