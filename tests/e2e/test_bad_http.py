"""Bad HTTP clients: each gets a clear error or is cut, and listeners notice nothing.

The server runs with --header_timeout_ms 1000. A raw publisher feeds space A with a 440 Hz tone
(paced at real time, in a thread) and listener L (strict Ogg parser) listens throughout; after each
case L must have received more whole pages and still be connected.

  1. unknown paths -> 404; wrong methods on known paths -> 405 with an Allow header
  2. request target > 2048 bytes -> 414; header block > 8192 bytes -> 431 (one huge header, and
     many small ones)
  2b. strict parsing, each 400 with a JSON error naming the problem, and the connection closed:
     Content-Length with Transfer-Encoding, two Content-Lengths (even equal), a Content-Length that is
     not plain digits, obs-fold, bare LF (and bare CR), Transfer-Encoding other than "chunked"; 101
     header fields -> 431. Still fine: CRLF requests, 100 header fields, a POST with Content-Length and
     a chunked POST. A request pipelined behind another (answered or refused) is never processed.
  3. headers trickled one byte per 200 ms -> connection closed by the 1 s header deadline (well within
     ~2 s), and a silent connection that sends nothing is closed too
  4. 200 listeners that connect, read a little and reset the connection (SO_LINGER 0), plus some that
     reset before the response and some mid-request; 20 listeners that never read (the server's
     writes to them fill the socket) and then reset: the server survives (no SIGPIPE), L unaffected
"""
import os
import socket
import struct
import threading
import time

from lib import (SLOW, Listener, RawPublisher, Server, check, create_space, http, log, make_ogg, packets,
                 parse_head, parse_pages, raw_request, run_test, start_raw_publisher, tmpdir, wait_until)


def unaffected(lst, what, n=3):
    base = lst.page_count()
    lst.wait_pages(base + n, 5, "(listener should keep receiving audio after %s)" % what)
    lst.check_ok()


def status_of(data, what):
    r = parse_head(data)
    check(r is not None, "%s: no complete HTTP response, got %r (if the server closed with unread request "
          "bytes, the kernel's RST can destroy its response: shut down writing and drain before close)"
          % (what, data[:200]))
    return r


def rst_close(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


class Feeder(threading.Thread):
    """Publishes the tone on a raw socket, paced, until stopped (loops the file's audio pages)."""

    def __init__(self, srv, sid, key, pages):
        super().__init__(daemon=True)
        self.srv, self.sid, self.key, self.pages = srv, sid, key, pages
        self.stop_flag = threading.Event()
        self.error = None

    def run(self):
        try:
            p = start_raw_publisher(self.srv, self.sid, self.key, b"".join(x.raw for x in self.pages[:2]))
            audio = self.pages[2:]
            t0 = time.monotonic()
            for i in range(100000):
                if self.stop_flag.is_set() or time.monotonic() - t0 > 55:
                    break
                pg = audio[i % len(audio)]
                due = t0 + i * 0.1 - 0.3
                while time.monotonic() < due and not self.stop_flag.is_set():
                    time.sleep(0.01)
                # Rewrite nothing: granules restart when the file loops, which a server may treat as a
                # discontinuity; so the file is long enough (40 s) never to loop in this test.
                p.send(pg.raw)
            p.close()
        except Exception as e:
            self.error = e


def main():
    srv = Server(extra=["--header_timeout_ms", "1000"]).start()
    sid, key = create_space(srv, "A")
    pages, _ = parse_pages(open(make_ogg(os.path.join(tmpdir(), "a.opus"), 40, page_ms=100), "rb").read())
    feeder = Feeder(srv, sid, key, pages)
    feeder.start()
    L = Listener(srv, sid, max_seconds=55)
    L.start()
    L.wait_head(5)

    def tone():
        check(feeder.error is None, "raw publisher failed: %r" % feeder.error)
        return sum(1 for p in L.audio_packets_since(2) if len(p) > 40) >= 5
    wait_until(tone, 10, "tone to reach the listener")

    # 1. 404 / 405
    for method, path in (("GET", "/nope"), ("GET", "/spaces/%s/nope.mp3" % sid), ("GET", "/api/nope"),
                         ("GET", "/spaces/no-such-space/live.opus"), ("GET", "/api/spaces/%s/x/y" % sid)):
        st, hd, body = http(srv, method, path)
        check(st == 404, "%s %s: status %d (expected 404) %r" % (method, path, st, body[:200]))
    for method, path in (("DELETE", "/api/spaces"), ("PUT", "/api/spaces"), ("POST", "/spaces/%s/live.opus" % sid),
                         ("DELETE", "/spaces/%s/live.opus" % sid), ("PATCH", "/api/spaces/%s" % sid),
                         ("POST", "/")):
        st, hd, body = http(srv, method, path)
        check(st == 405, "%s %s: status %d (expected 405) %r" % (method, path, st, body[:200]))
        check(hd.get("allow"), "%s %s: 405 without an Allow header: %r" % (method, path, hd))
        check(method not in [m.strip() for m in hd["allow"].split(",")],
              "%s %s: Allow %r lists the refused method" % (method, path, hd["allow"]))
    unaffected(L, "404/405")

    # 2. 414 / 431
    data = raw_request(srv, ("GET /spaces/%s/live.opus?%s HTTP/1.1\r\nHost: x\r\n\r\n" % (sid, "a" * 3000)).encode())
    st = status_of(data, "target of 3000 bytes")[0]
    check(st == 414, "request target of 3000+ bytes: status %d (expected 414)" % st)
    data = raw_request(srv, ("GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % ("b" * 2100)).encode())
    check(status_of(data, "path of 2100 bytes")[0] == 414, "path of 2100 bytes: %r" % data[:100])
    # without ever finishing the line: the server must not wait for the end of a 10 KB line
    data = raw_request(srv, ("GET /" + "c" * 10000).encode(), timeout=5)
    check(status_of(data, "unfinished 10 KB request line")[0] == 414, "unfinished 10 KB line: %r" % data[:100])
    data = raw_request(srv, ("GET /api/spaces HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n" % ("p" * 9000)).encode())
    check(status_of(data, "9000-byte header")[0] == 431, "9000-byte header: %r" % data[:100])
    many = "".join("X-H%03d: %s\r\n" % (i, "q" * 90) for i in range(100))
    data = raw_request(srv, ("GET /api/spaces HTTP/1.1\r\nHost: x\r\n%s\r\n" % many).encode())
    check(status_of(data, "100 headers of 100 bytes")[0] == 431, "10 KB of small headers: %r" % data[:100])
    # just under the limits is fine
    data = raw_request(srv, ("GET /api/spaces HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\nConnection: close\r\n\r\n"
                             % ("p" * 7000)).encode())
    check(status_of(data, "7000-byte header")[0] == 200, "a 7000-byte header must be accepted: %r" % data[:100])
    unaffected(L, "414/431")

    # 2b. strict parsing
    def refused(raw, why, what):
        t0 = time.monotonic()
        data = raw_request(srv, raw.encode(), timeout=5)
        took = time.monotonic() - t0
        st, hd, body = status_of(data, what)
        check(st == 400, "%s: status %d (expected 400) %r" % (what, st, data[:200]))
        check(why.encode() in body, "%s: error body %r does not say %r" % (what, body[:200], why))
        check(hd.get("connection") == "close", "%s: no Connection: close: %r" % (what, hd))
        check(data.count(b"HTTP/1.") == 1, "%s: more than one response: %r" % (what, data[:400]))
        check(took < 3, "%s: server did not close after its 400 (%.1fs)" % (what, took))

    post = "POST /api/spaces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    title = '{"title": "strict"}'
    chunked = "%x\r\n%s\r\n0\r\n\r\n" % (len(title), title)
    refused(post + "Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n%s" % (len(chunked), chunked),
            "both Content-Length and Transfer-Encoding", "Content-Length with Transfer-Encoding")
    refused(post + "Transfer-Encoding: chunked\r\nContent-Length: %d\r\n\r\n%s" % (len(title), title),
            "both Content-Length and Transfer-Encoding", "Transfer-Encoding with Content-Length")
    refused(post + "Content-Length: %d\r\nContent-Length: %d\r\n\r\n%s" % (len(title), len(title), title),
            "more than one Content-Length", "two equal Content-Lengths")
    refused(post + "Content-Length: 0\r\nContent-Length: %d\r\n\r\n%s" % (len(title), title),
            "more than one Content-Length", "two different Content-Lengths")
    for cl in ("+%d" % len(title), "0x%x" % len(title), "%d, %d" % (len(title), len(title)), "abc"):
        refused(post + "Content-Length: %s\r\n\r\n%s" % (cl, title), "Content-Length is not a number",
                "Content-Length %r" % cl)
    refused("GET /api/spaces HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n", "obs-fold", "obs-fold (space)")
    refused("GET /api/spaces HTTP/1.1\r\nX-Folded: a\r\n\tb\r\nHost: x\r\n\r\n", "obs-fold", "obs-fold (tab)")
    refused("GET /api/spaces HTTP/1.1\nHost: x\n\n", "bare LF", "bare LF everywhere")
    refused("GET /api/spaces HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n", "bare LF", "one bare LF in a header")
    refused("GET /api/spaces HTTP/1.1\r\nHost: x\r\n\n", "bare LF", "bare LF ending the head")
    refused("GET /api/spaces HTTP/1.1\r\nHost: x\rX-A: 1\r\n\r\n", "bare CR", "bare CR")
    for te in ("gzip", "gzip, chunked", "chunked, chunked", "identity"):
        refused(post + "Transfer-Encoding: %s\r\n\r\n%s" % (te, chunked), "Transfer-Encoding other than chunked",
                "Transfer-Encoding %r" % te)
    refused("GET /spaces/%s/live.opus HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n" % sid,
            "Transfer-Encoding other than chunked", "a listen request with Transfer-Encoding gzip")
    refused(post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked,
            "more than one Transfer-Encoding", "two Transfer-Encodings")
    tiny = "".join("X-H%03d: %d\r\n" % (i, i) for i in range(100))
    data = raw_request(srv, ("GET /api/spaces HTTP/1.1\r\nHost: x\r\n%s\r\n" % tiny).encode())
    check(status_of(data, "101 header fields")[0] == 431, "101 small header fields: %r" % data[:100])
    # still fine
    data = raw_request(srv, ("GET /api/spaces HTTP/1.1\r\n%s\r\n" % tiny).encode())
    check(status_of(data, "100 header fields")[0] == 200, "100 small header fields must pass: %r" % data[:100])
    for what, raw in (("Content-Length", post + "Content-Length: %d\r\n\r\n%s" % (len(title), title)),
                      ("chunked", post + "Transfer-Encoding: chunked\r\n\r\n" + chunked)):
        data = raw_request(srv, raw.encode())
        st, _, body = status_of(data, "a POST with " + what)
        check(st == 201, "a POST with %s: status %d (expected 201) %r" % (what, st, data[:300]))
    # pipelining: one request per connection, whatever follows it is never parsed
    smuggled = post + 'Content-Length: 22\r\n\r\n{"title": "smuggled"}\n'
    data = raw_request(srv, ("GET /api/spaces HTTP/1.1\r\nHost: x\r\n\r\n" + smuggled).encode())
    check(status_of(data, "pipelined after a GET")[0] == 200, "pipelined after a GET: %r" % data[:100])
    check(data.count(b"HTTP/1.") == 1, "two responses to a pipelined pair: %r" % data[:400])
    refused(post + "Content-Length: 0\r\nContent-Length: %d\r\n\r\n%s" % (len(smuggled), smuggled),
            "more than one Content-Length", "a smuggling attempt")
    st, _, body = http(srv, "GET", "/api/spaces")
    check(st == 200 and b'"strict"' in body, "the spaces made by the valid POSTs are not listed: %r" % body[:400])
    check(b"smuggled" not in body, "a pipelined request was processed: %r" % body[:400])
    unaffected(L, "strict parsing")

    # 3. trickle, and silence
    s = socket.create_connection(srv.addr, timeout=5)
    s.settimeout(0.2)
    msg = b"GET /api/spaces HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"z" * 100
    t0 = time.monotonic()
    closed_at = None
    for i in range(len(msg)):
        try:
            s.send(msg[i:i + 1])
        except OSError:
            closed_at = time.monotonic() - t0
            break
        end = time.monotonic() + 0.2
        try:
            x = s.recv(4096)
            # EOF, or a response (say 408): either way the server ended the request.
            closed_at = time.monotonic() - t0
            log("trickle: server answered %r" % x[:60])
            break
        except socket.timeout:
            pass
        except OSError:
            closed_at = time.monotonic() - t0
            break
        while time.monotonic() < end:
            time.sleep(0.01)
        if time.monotonic() - t0 > 8:
            break
    s.close()
    check(closed_at is not None, "trickling client was not cut within 8 s (header_timeout_ms 1000)")
    check(closed_at <= 2.0 + (1.0 if SLOW > 1 else 0), "trickling client cut only after %.2fs (deadline 1 s)" % closed_at)
    log("trickling client cut after %.2fs" % closed_at)
    s = socket.create_connection(srv.addr, timeout=5)
    s.settimeout(4)
    t0 = time.monotonic()
    try:
        while s.recv(4096):
            pass
    except socket.timeout:
        check(False, "a client that sends nothing is still connected after 4 s")
    except OSError:
        pass
    idle = time.monotonic() - t0
    s.close()
    check(idle <= 2.5, "silent client cut only after %.2fs" % idle)
    unaffected(L, "trickling and silent clients")

    # 4. abrupt listeners
    req = ("GET /spaces/%s/live.opus HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % sid).encode()
    t0 = time.monotonic()
    for i in range(200):
        check(time.monotonic() - t0 < 40, "abrupt listeners: too slow (%d done in 40 s)" % i)
        s = socket.create_connection(srv.addr, timeout=5)
        s.sendall(req)
        got = b""
        while len(got) < 500:
            x = s.recv(4096)
            if not x:
                break
            got += x
        check(got.startswith(b"HTTP/1.1 200") or got.startswith(b"HTTP/1.0 200"),
              "abrupt listener %d: response %r" % (i, got[:80]))
        rst_close(s)
    for i in range(20):
        s = socket.create_connection(srv.addr, timeout=5)
        s.sendall(req)
        rst_close(s)                    # before reading anything
        s = socket.create_connection(srv.addr, timeout=5)
        s.sendall(req[:10])
        rst_close(s)                    # mid-request
    log("220 abrupt listeners in %.1fs" % (time.monotonic() - t0))
    srv.check_alive("after 200 reset listeners")
    unaffected(L, "200 reset listeners")

    stuck = []
    for i in range(20):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(5)
        s.connect(srv.addr)
        s.sendall(req)
        stuck.append(s)
    # The stuck listeners' windows fill up within about a second of audio plus burst.
    unaffected(L, "20 listeners that never read", n=15)
    for s in stuck:
        rst_close(s)
    unaffected(L, "20 stuck listeners reset")
    st, _, _ = http(srv, "GET", "/api/spaces")
    check(st == 200, "API after abrupt listeners: %d" % st)
    srv.check_alive()

    feeder.stop_flag.set()
    feeder.join(5)
    check(feeder.error is None, "raw publisher failed: %r" % feeder.error)
    L.stop()
    check(L.error is None, "listener error: %r" % L.error)
    srv.stop()


if __name__ == "__main__":
    run_test(main)
