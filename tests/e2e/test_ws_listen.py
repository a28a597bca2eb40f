"""The low-latency WebSocket listen path GET /spaces/{id}/ws (docs/internals/websocket.md).

With ffmpeg publishing a tone to a space (workers on, the default):
  - the first message is the JSON hello; then binary audio messages with consecutive sequence
    numbers and timestamps advancing 960 (20 ms) per packet;
  - the Opus packets are byte-identical to the Ogg packets with the same granule, read by a
    simultaneous live.opus listener;
  - N WebSocket listeners all receive the same messages (same sequence -> same bytes);
  - GET /api/spaces/{id} counts them as hearing, and /metrics splits them out (format="ws");
  - ping -> pong; a client that closes gets a close frame (its code echoed) and the connection ends;
  - the protocol-violation table: bad handshakes get 400/426 with a JSON body; unmasked frame,
    reserved bits, oversize or fragmented control frame, huge message, unknown opcode, continuation
    without a message, garbage bytes -> a close frame 1002/1009 and the connection dropped, counted
    in tribune_dropped_total{reason="protocol"}, while a reference WS listener keeps receiving
    without a gap in its sequence numbers;
  - an ended space answers 410.
Then with one worker and room for 4 listeners: WS listeners joining a space before it is loaded
(the worker hands the first join to the master, which loads the space and checks the handshake;
the worker admits it and answers 101) wait in silence, then hear once the host publishes; with
require_ticket a join gets 403 without a ticket and 101 with one; a full node answers 503 with
Retry-After, directly and through the master (never a 101 first). Standard library only (tests/e2e/wslib.py).
"""
import json
import re
import socket
import struct
import threading
import time

import wslib
from lib import (IS_ASAN, Listener, Server, bearer, check, create_space, ffmpeg_publish, http, http_json, log,
                 opus_packet_samples, proc_log, run_test, stop_process, wait_until)

N = 20 if IS_ASAN else 50
LISTEN_S = 3.0


class WSListener(threading.Thread):
    """One WebSocket listener in a thread: keeps (seq, timestamp, packet) of every audio message."""

    def __init__(self, server, path, max_seconds=60):
        super().__init__(daemon=True)
        self.server, self.path, self.max_seconds = server, path, max_seconds
        self.hello = None
        self.msgs = []
        self.error = None
        self.closed = False
        self._stop_flag = threading.Event()
        self.ready = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        try:
            ws = wslib.connect(self.server, self.path, timeout=10)
            op, p = ws.recv(10)
            check(op == wslib.TEXT, "first message is not text: op %d %r" % (op, p[:60]))
            self.hello = json.loads(p.decode())
            self.ready.set()
            deadline = time.monotonic() + self.max_seconds
            while not self._stop_flag.is_set() and time.monotonic() < deadline:
                try:
                    op, p = ws.recv(0.2)
                except socket.timeout:
                    continue
                if op == wslib.CLOSE:
                    self.closed = True
                    break
                a = wslib.parse_audio(p) if op == wslib.BINARY else None
                check(a is not None, "not an audio message: op %d %r" % (op, p[:20]))
                with self.lock:
                    self.msgs.append(a)
            ws.close()
        except wslib.ConnectionClosed:
            self.closed = True
        except Exception as e:  # reported by the test
            self.error = e
            self.ready.set()

    def stop(self, join=True):
        self._stop_flag.set()
        if join:
            self.join(10)

    def count(self):
        with self.lock:
            return len(self.msgs)


def check_sequence(msgs, what):
    """Consecutive sequence numbers, timestamps +960 per packet, 20 ms packets."""
    check(len(msgs) > 0, "%s: no audio messages" % what)
    for (s0, t0, _), (s1, t1, p1) in zip(msgs, msgs[1:]):
        check(s1 == s0 + 1, "%s: sequence %d after %d (a gap)" % (what, s1, s0))
        check(t1 == t0 + 960, "%s: timestamp %d after %d (expected +960)" % (what, t1, t0))
        check(opus_packet_samples(p1) == 960, "%s: packet of %d samples" % (what, opus_packet_samples(p1)))


def ogg_packets_by_granule(pages):
    """{granule at the end of the packet: packet} for the audio pages of a live.opus capture."""
    out = {}
    cur = b""
    for p in pages[2:]:  # OpusHead, OpusTags
        done = []
        pos = 0
        for lv in p.lacing:
            cur += p.body[pos:pos + lv]
            pos += lv
            if lv < 255:
                done.append(cur)
                cur = b""
        g = p.granule
        for pkt in reversed(done):
            out[g] = pkt
            g -= opus_packet_samples(pkt)
    return out


def space_counts(srv, sid):
    st, _, obj = http_json(srv, "GET", "/api/spaces/%s" % sid)
    check(st == 200, "GET /api/spaces/%s -> %d" % (sid, st))
    return obj["listeners"]


def metric(srv, name, labels):
    st, _, body = http(srv, "GET", "/metrics")
    check(st == 200, "GET /metrics -> %d" % st)
    want = ",".join('%s="%s"' % kv for kv in labels.items())
    for line in body.decode().splitlines():
        if line.startswith(name + "{"):
            lab = line[len(name) + 1:line.index("}")]
            if all(('%s="%s"' % kv) in lab for kv in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no %s{%s} in /metrics" % (name, want))


def raw_handshake(srv, path, headers, method="GET"):
    """One request with exactly these headers; returns (status, headers, body)."""
    s = socket.create_connection(srv.addr, timeout=5)
    try:
        req = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % (method, path)
        req += "".join("%s: %s\r\n" % kv for kv in headers.items()) + "\r\n"
        s.sendall(req.encode())
        data = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(data) < 65536:
            try:
                x = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not x:
                break
            data += x
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        hd = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
        return status, hd, body
    finally:
        s.close()


GOOD = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


def handshake_table(srv, sid):
    path = "/spaces/%s/ws" % sid
    rows = [
        ("no Upgrade", {k: v for k, v in GOOD.items() if k != "Upgrade"}, 426),
        ("Upgrade: h2c", dict(GOOD, Upgrade="h2c"), 426),
        ("no Connection: Upgrade", dict(GOOD, Connection="keep-alive"), 400),
        ("version 8", dict(GOOD, **{"Sec-WebSocket-Version": "8"}), 426),
        ("no version", {k: v for k, v in GOOD.items() if k != "Sec-WebSocket-Version"}, 426),
        ("no key", {k: v for k, v in GOOD.items() if k != "Sec-WebSocket-Key"}, 400),
        ("key of 15 bytes", dict(GOOD, **{"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ="}), 400),
        ("key not base64", dict(GOOD, **{"Sec-WebSocket-Key": "!!!!!!!!!!!!!!!!!!!!!!=="}), 400),
    ]
    for what, hd, want in rows:
        st, h, body = raw_handshake(srv, path, hd)
        check(st == want, "handshake %s -> %d (expected %d) %r" % (what, st, want, body[:200]))
        check(h.get("content-type") == "application/json", "handshake %s: content-type %r" % (what, h))
        err = json.loads(body.decode())["error"]
        check(len(err) > 10, "handshake %s: error text %r" % (what, err))
        check(h.get("sec-websocket-version") == "13", "handshake %s: no Sec-WebSocket-Version: 13" % what)
        log("handshake %-22s -> %d %s" % (what, st, err))
    st, _, _ = raw_handshake(srv, "/spaces/no-such-space/ws", GOOD)
    check(st == 404, "unknown space -> %d (expected 404)" % st)
    st, _, _ = raw_handshake(srv, path, GOOD, method="POST")
    check(st == 405, "POST on the ws path -> %d (expected 405)" % st)


def violation_table(srv, sid):
    path = "/spaces/%s/ws" % sid
    rows = [
        ("unmasked frame", wslib.frame(wslib.TEXT, b"hello", mask=False), 1002),
        ("reserved bit RSV1", wslib.frame(wslib.BINARY, b"abc", rsv=4), 1002),
        ("reserved bits RSV2+3", wslib.frame(wslib.TEXT, b"abc", rsv=3), 1002),
        ("ping of 126 bytes", wslib.frame(wslib.PING, b"p" * 126), 1002),
        ("fragmented ping", wslib.frame(wslib.PING, b"p", fin=False), 1002),
        ("close with 1 byte", wslib.frame(wslib.CLOSE, b"\x03"), 1002),
        ("close code 1005", wslib.frame(wslib.CLOSE, struct.pack("!H", 1005)), 1002),
        ("unknown opcode 3", wslib.frame(0x3, b"abc"), 1002),
        ("unknown opcode 0xB", wslib.frame(0xB, b"abc"), 1002),
        ("continuation first", wslib.frame(wslib.CONT, b"abc"), 1002),
        ("new message in a fragmented one",
         wslib.frame(wslib.TEXT, b"a", fin=False) + wslib.frame(wslib.TEXT, b"b"), 1002),
        ("message of 1 MiB (header)", wslib.frame(wslib.BINARY, b"x" * 64, length=1 << 20), 1009),
        ("message of 5000 bytes", wslib.frame(wslib.BINARY, b"y" * 5000), 1009),
        ("fragments adding to 6000", wslib.frame(wslib.TEXT, b"z" * 3000, fin=False) +
         wslib.frame(wslib.CONT, b"z" * 3000), 1009),
        ("garbage bytes", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1002),
    ]
    before = metric(srv, "tribune_dropped_total", {"space": sid, "reason": "protocol"})
    for what, data, code in rows:
        ws = wslib.connect(srv, path)
        op, p = ws.recv(5)
        check(op == wslib.TEXT, "%s: no hello" % what)
        ws.send_raw(data)
        got_close = None
        deadline = time.monotonic() + 5
        ended = False
        for _ in range(10000):
            left = deadline - time.monotonic()
            check(left > 0, "%s: the server neither closed nor sent a close frame within 5 s" % what)
            try:
                op, p = ws.recv(left)
            except wslib.ConnectionClosed:
                ended = True
                break
            if op == wslib.CLOSE:
                got_close = (ws.close_code, ws.close_reason)
        check(ended, "%s: the connection was not dropped" % what)
        check(got_close is not None, "%s: no close frame before the end" % what)
        check(got_close[0] == code, "%s: close code %s (expected %d)" % (what, got_close, code))
        check(len(got_close[1]) > 3, "%s: close without a reason %r" % (what, got_close))
        ws.sock.close()
        log("violation %-32s -> close %d %r, dropped" % (what, got_close[0], got_close[1]))
    wait_until(lambda: metric(srv, "tribune_dropped_total", {"space": sid, "reason": "protocol"})
               >= before + len(rows), 5, "tribune_dropped_total{reason=protocol} +%d" % len(rows))
    return len(rows)


def client_frames(srv, sid):
    path = "/spaces/%s/ws" % sid
    ws = wslib.connect(srv, path)
    ws.recv(5)
    # data from a listener is ignored (up to 4 KiB a message), a ping answered with its payload
    ws.send(wslib.TEXT, "hello server")
    ws.send(wslib.BINARY, b"\x00" * 4000)
    ws.send(wslib.PONG, b"unsolicited")
    ws.send(wslib.PING, b"are you there")
    got = None
    deadline = time.monotonic() + 5
    for _ in range(10000):
        check(time.monotonic() < deadline, "no pong within 5 s")
        op, p = ws.recv(max(0.01, deadline - time.monotonic()))
        check(op != wslib.CLOSE, "closed after data, pong and ping: %s %r" % (ws.close_code, ws.close_reason))
        if op == wslib.PONG:
            got = p
            break
    check(got == b"are you there", "pong payload %r" % got)
    # the client closes: a close frame with its code echoed, then the end of the connection
    ws.send(wslib.CLOSE, struct.pack("!H", 1001) + b"going away")
    closed = ws.wait_closed(5)
    check(ws.close_code == 1001, "close answered with %s (expected 1001 echoed)" % ws.close_code)
    check(closed, "the server did not end the connection after the close handshake")
    ws.sock.close()
    log("ping -> pong %r; close 1001 -> close %d, connection ended" % (got, ws.close_code))


def main():
    srv = Server().start()
    sid, key = create_space(srv, "WebSocket listen")
    pub = ffmpeg_publish(srv, sid, key, 40)
    try:
        path = "/spaces/%s/ws" % sid
        ref = WSListener(srv, path)
        ref.start()
        check(ref.ready.wait(10) and ref.error is None, "reference listener: %r" % ref.error)
        hello = ref.hello
        check(hello == {"codec": "opus", "sample_rate": 48000, "channels": 1, "frame_ms": 20, "space": sid},
              "hello %r" % hello)
        wait_until(lambda: pub.poll() is None and any(len(m[2]) > 40 for m in list(ref.msgs)), 15,
                   "tone-sized packets on the reference WebSocket listener (publisher: %s)" % pub.poll())

        # a live.opus listener and N WebSocket listeners at the same time
        ogg = Listener(srv, sid, max_seconds=30)
        ogg.start()
        ogg.wait_head(5)
        ls = [WSListener(srv, path) for _ in range(N)]
        t_join = time.monotonic()
        for w in ls:
            w.start()
        for w in ls:
            check(w.ready.wait(10) and w.error is None, "WS listener: %r" % w.error)
        wait_until(lambda: all(w.count() > 0 for w in ls), 5, "audio on every WS listener")
        log("%d WS listeners joined, audio on all within %.2f s" % (N, time.monotonic() - t_join))

        # counts: every WS listener hearing, in the space's totals and in /metrics format="ws"
        def all_hearing():
            c = space_counts(srv, sid)
            return c["hearing"] >= N + 2 and c
        c = wait_until(all_hearing, 5, "%d hearing in GET /api/spaces/%s" % (N + 2, sid), interval=0.1)
        log("API listeners: %r" % c)
        ws_hearing = metric(srv, "tribune_format_listeners", {"space": sid, "format": "ws", "state": "hearing"})
        ogg_hearing = metric(srv, "tribune_format_listeners", {"space": sid, "format": "ogg", "state": "hearing"})
        check(ws_hearing == N + 1, "tribune_format_listeners{format=ws,hearing} = %s (expected %d)"
              % (ws_hearing, N + 1))
        check(ogg_hearing == 1, "tribune_format_listeners{format=ogg,hearing} = %s (expected 1)" % ogg_hearing)
        total = metric(srv, "tribune_listeners", {"space": sid, "state": "hearing"})
        check(total == N + 2, "tribune_listeners{hearing} = %s (expected %d)" % (total, N + 2))

        try:
            pub.wait(LISTEN_S)
        except Exception:
            pass
        check(pub.poll() is None, "publisher exited (%s): %s" % (pub.returncode, proc_log(pub)))
        for w in ls:
            w.stop(join=False)
        ogg.stop()
        for w in ls:
            w.join(10)

        # N listeners: consecutive, and the same bytes for the same sequence number
        by_seq = {}
        for i, w in enumerate(ls):
            check(w.error is None, "WS listener %d: %r" % (i, w.error))
            check_sequence(w.msgs, "WS listener %d" % i)
            check(len(w.msgs) >= int(LISTEN_S * 50 * 0.8), "WS listener %d: %d messages in %.1f s"
                  % (i, len(w.msgs), LISTEN_S))
            for m in w.msgs:
                prev = by_seq.setdefault(m[0], m)
                check(prev == m, "WS listener %d: sequence %d differs from another listener's" % (i, m[0]))
        log("%d WS listeners: %d distinct messages, identical where they overlap" % (N, len(by_seq)))

        # the same Opus packets as the Ogg stream, stamped with the Ogg granule
        by_granule = ogg_packets_by_granule(ogg.page_list())
        common = [m for m in by_seq.values() if m[1] in by_granule]
        check(len(common) >= 100, "only %d WS packets overlap the Ogg capture" % len(common))
        for s, t, pkt in common:
            check(pkt == by_granule[t], "granule %d: WS packet (seq %d, %d bytes) != Ogg packet (%d bytes)"
                  % (t, s, len(pkt), len(by_granule[t])))
        log("%d packets byte-identical to the Ogg packets with the same granule" % len(common))

        handshake_table(srv, sid)
        client_frames(srv, sid)
        nrows = violation_table(srv, sid)

        # the reference listener never missed a packet through all of this
        n_before = ref.count()
        wait_until(lambda: ref.count() > n_before + 10, 5, "the reference listener still receiving")
        ref.stop()
        check(ref.error is None, "reference listener: %r" % ref.error)
        check_sequence(ref.msgs, "reference listener")
        log("reference listener: %d messages, no gap, through %d violations" % (len(ref.msgs), nrows))
        check(metric(srv, "tribune_ws_client_closes_total", {"space": sid}) >= 1, "client close not counted")
        refused = metric(srv, "tribune_requests_refused_total", {"reason": "ws_handshake"})
        check(refused >= 8, "tribune_requests_refused_total{ws_handshake} = %s (expected >= 8)" % refused)

        # an ended space: its WS listeners are closed, joins get 410
        last = WSListener(srv, path)
        last.start()
        check(last.ready.wait(10), "last listener")
        st, _, _ = http_json(srv, "POST", "/api/spaces/%s/end" % sid, headers=bearer(key))
        check(st == 200, "POST end -> %d" % st)
        wait_until(lambda: not last.is_alive() or last.closed, 5, "the WS listener closed at the end")
        st, _, body = raw_handshake(srv, path, GOOD)
        check(st == 410, "ws join of an ended space -> %d %r (expected 410)" % (st, body))
        wait_until(lambda: space_counts(srv, sid)["connected"] == 0, 5, "no listener left after the end")
    finally:
        stop_process(pub)
    srv.stop()

    # one worker, room for 4 listeners: the first join of a space not loaded yet goes through the
    # master (the worker hands it over, the master loads the space and checks the handshake, the
    # worker admits it and sends the 101), the next ones straight to the worker; they wait
    # (silence) until the host publishes, then hear. Then tickets and admission on both routes.
    srv = Server(extra=["--workers", "1", "--max_listeners", "4"], name="one-worker").start()
    sid, key = create_space(srv, "WebSocket one worker")
    path = "/spaces/%s/ws" % sid
    pub = None
    try:
        ws = [WSListener(srv, path) for _ in range(3)]
        for w in ws:
            w.start()
            check(w.ready.wait(10) and w.error is None, "WS listener: %r" % w.error)
        wait_until(lambda: space_counts(srv, sid)["waiting"] == 3, 5, "3 WS listeners waiting", interval=0.1)
        pub = ffmpeg_publish(srv, sid, key, 20)
        wait_until(lambda: space_counts(srv, sid)["hearing"] == 3, 10, "3 WS listeners hearing", interval=0.1)
        wait_until(lambda: all(w.count() >= 25 for w in ws), 10, "half a second of audio on 3 WS listeners")
        handshake_table(srv, sid)

        # join tickets: 403 without, 101 with ?ticket=
        st, _, obj = http_json(srv, "POST", "/api/spaces/%s/guard" % sid, {"require_ticket": True},
                               headers=bearer(key))
        check(st == 200, "POST guard -> %d %r" % (st, obj))
        st, hd, body = raw_handshake(srv, path, GOOD)
        check(st == 403 and "error" in json.loads(body.decode()), "ws join without a ticket -> %d %r" % (st, body))
        st, _, obj = http_json(srv, "GET", "/api/spaces/%s/ticket" % sid)
        check(st == 200, "GET ticket -> %d" % st)
        fourth = wslib.connect(srv, "%s?ticket=%s" % (path, obj["ticket"]))
        op, p = fourth.recv(5)
        check(op == wslib.TEXT and json.loads(p.decode())["space"] == sid, "4th listener's hello %r" % p)
        log("tickets: 403 without, 101 and the hello with ?ticket=")

        # admission: the node is full (4): the worker answers 503 with Retry-After (no 101)
        st, hd, body = raw_handshake(srv, "%s?ticket=%s" % (path, obj["ticket"]), GOOD)
        check(st == 503 and "retry-after" in hd, "5th join -> %d %r %r (expected 503 with Retry-After)"
              % (st, hd, body[:100]))
        # ... and through the master: a space not loaded yet is handed over, checked, admitted by
        # the worker, which is full: the client gets the 503, never a 101 first
        sid2, _ = create_space(srv, "WebSocket full")
        st, hd, body = raw_handshake(srv, "/spaces/%s/ws" % sid2, GOOD)
        check(st == 503 and "retry-after" in hd, "join of a new space on a full node -> %d %r %r"
              % (st, hd, body[:100]))
        log("admission: 503 with Retry-After, direct and through the master")
        fourth.close()
        for w in ws:
            w.stop()
            check_sequence(w.msgs, "one-worker WS listener")
    finally:
        if pub:
            stop_process(pub)
    srv.stop()


if __name__ == "__main__":
    run_test(main)
