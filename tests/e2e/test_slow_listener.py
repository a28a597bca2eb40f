"""Listeners that cannot keep up: skipped to live, then dropped, and nobody else notices.

One worker, a 2 s ring, a 4 KiB send buffer, and stall_timeout_ms 6000, on the demo space:
  - a slow reader (3 KB/s, half the stream's rate) falls behind the ring's tail: it is skipped
    to live at a page boundary (its stream stays whole, CRC-valid pages, with a jump in page sequence
    numbers), and when it falls behind again within a minute it is dropped;
  - a reader that stops reading altogether is dropped once its socket made no progress for
    stall_timeout_ms;
  - ten normal listeners on the same worker see no gap over 1 s and stay connected;
  - the API counts the skips and the drops.
"""
import socket
import threading
import time

from lib import (Listener, OggParser, Server, check, http_json, log, parse_head, run_test, wait_until)


class SlowReader(threading.Thread):
    def __init__(self, srv, rate_bps, stop_after_head=False):
        super().__init__(daemon=True)
        self.srv = srv
        self.rate = rate_bps
        self.stop_after_head = stop_after_head
        self.body = bytearray()
        self.closed = False
        self.error = None
        self.done = threading.Event()
        self.sock = socket.socket()
        # A small receive buffer makes the reader's pace reach the server within seconds. Loopback's
        # 64 KiB MSS would make TCP reopen a small window only after long pauses (the reader then
        # looks stalled, not slow); a real network's segment size keeps the flow smooth.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048 if stop_after_head else 8192)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1000)

    def run(self):
        try:
            s = self.sock
            s.settimeout(10)
            s.connect(self.srv.addr)
            s.sendall(b"GET /spaces/demo/live.opus HTTP/1.1\r\nHost: x\r\n\r\n")
            head = b""
            while parse_head(head) is None:
                head += s.recv(1024)
            st, _, rest = parse_head(head)
            check(st == 200, "slow reader: status %s" % st)
            self.body += rest
            if self.stop_after_head:
                self.done.wait(60)
                return
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not self.done.is_set():
                x = s.recv(500)
                if not x:
                    self.closed = True
                    return
                self.body += x
                time.sleep(500.0 / self.rate)  # the pace of a slow reader is the point of this test
        except OSError as e:
            self.closed = True
            self.error = e
        except Exception as e:
            self.error = e


def stats(srv):
    st, _, obj = http_json(srv, "GET", "/api/spaces/demo")
    check(st == 200, "GET /api/spaces/demo -> %d" % st)
    return obj["listeners"]


def main():
    srv = Server("demo", extra=["--workers", "1", "--ring_ms", "2000", "--burst_ms", "500",
                                "--sndbuf_bytes", "4096", "--stall_timeout_ms", "6000"]).start()
    normal = [Listener(srv, "demo", keep=False, max_seconds=90) for _ in range(10)]
    for lst in normal:
        lst.start()
    for lst in normal:
        lst.wait_pages(3, 10, "normal listener")
    t0 = time.monotonic()
    slow = SlowReader(srv, 3000)
    stuck = SlowReader(srv, 0, stop_after_head=True)
    slow.start()
    stuck.start()

    wait_until(lambda: slow.error is not None or stats(srv)["skips"] >= 1, 30,
               "the slow reader to be skipped to live")
    check(slow.error is None, "slow reader: %r" % (slow.error,))
    log("skipped after %.1f s: %s" % (time.monotonic() - t0, stats(srv)))
    wait_until(lambda: slow.closed or slow.error is not None, 40, "the slow reader to be dropped")
    log("slow reader dropped after %.1f s (%d bytes read)" % (time.monotonic() - t0, len(slow.body)))
    wait_until(lambda: stats(srv)["dropped"] >= 2, 40, "the stopped reader to be dropped too")
    log("both dropped after %.1f s: %s" % (time.monotonic() - t0, stats(srv)))

    # The stopped reader's socket is closed by the server: draining it ends in EOF.
    stuck.sock.settimeout(5)
    n = 0
    try:
        while n < 10 * 1024 * 1024:
            x = stuck.sock.recv(65536)
            if not x:
                break
            n += len(x)
    except OSError:
        pass
    stuck.done.set()

    # What the slow reader got is whole pages, with a jump in page sequence numbers (the skip).
    pages = OggParser().feed(bytes(slow.body))
    check(len(pages) > 5, "slow reader got only %d pages" % len(pages))
    seqs = [p.seq for p in pages]
    jumps = [(a, b) for a, b in zip(seqs, seqs[1:]) if b != a + 1]
    check(jumps, "no jump in the slow reader's page sequence numbers: %s" % seqs[:50])
    log("slow reader: %d whole pages, sequence jumps %s" % (len(pages), jumps[:5]))

    t_end = time.monotonic()
    for lst in normal:
        lst.check_ok()
        with lst.lock:
            times = [t for t, _ in lst.pages if t >= t0]
        g = max(b - a for a, b in zip(times, times[1:]))
        check(g <= 1.0, "a normal listener had a %.2f s gap while the slow ones lagged" % g)
        check(times[-1] > t_end - 1.0, "a normal listener stopped receiving")
    check(stats(srv)["connected"] == 10, "connected is %s, expected the 10 normal listeners"
          % stats(srv)["connected"])
    log("10 normal listeners: no gap over 1 s, still connected")
    for lst in normal:
        lst.stop(join=False)
    for lst in normal:
        lst.join(5)
    srv.stop()


if __name__ == "__main__":
    run_test(main)
