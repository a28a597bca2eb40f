"""A small WebSocket (RFC 6455) client for Tribune's tests. Standard library only.

    ws = wslib.connect(server, "/spaces/%s/ws" % sid)        # server: lib.Server or (host, port)
    op, payload = ws.recv(timeout=5)                          # (wslib.TEXT, b'{"codec":...}')
    ws.send(wslib.BINARY, b"...")                             # masked, as a client must
    ws.close(1000, "bye")                                     # sends a close frame
    code, reason = ws.close_code, ws.close_reason            # once a close frame was received

connect() does a real opening handshake on a fresh socket with a random 16-byte key and checks
Sec-WebSocket-Accept; a handshake the server refuses raises HandshakeError with its status,
headers and body. recv() reassembles fragmented messages and returns control frames as they
come (CLOSE, PING, PONG); after a close frame or the end of the stream it returns (CLOSE, ...)
or raises ConnectionClosed. Raw bytes (malformed frames on purpose) go through send_raw() or
frame(). Every read has a deadline.
"""

import base64
import hashlib
import os
import socket
import struct
import time

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class HandshakeError(Exception):
    def __init__(self, status, headers, body):
        Exception.__init__(self, "WebSocket handshake refused: %s %r" % (status, body[:200]))
        self.status = status
        self.headers = headers
        self.body = body


class ConnectionClosed(Exception):
    pass


def accept_for(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (str)."""
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, key=None, length=None):
    """Bytes of one frame. mask=False, rsv bits or a false `length` make malformed frames."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n <= 0xFFFF:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = key if key is not None else os.urandom(4)
    return head + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))


def _addr(server):
    return server.addr if hasattr(server, "addr") else tuple(server)


def _parse_head(raw):
    head = raw.decode("latin-1")
    lines = head.split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers = {}
    for ln in lines[1:]:
        if ":" in ln:
            k, v = ln.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return status, headers


class WebSocket:
    def __init__(self, sock, rest=b""):
        self.sock = sock
        self.buf = bytearray(rest)
        self.close_code = None
        self.close_reason = None
        self.closed = False  # a close frame or EOF was received

    # -- reading -------------------------------------------------------------------------------
    def _fill(self, n, deadline):
        reads = 0
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out waiting for %d bytes (have %d)" % (n, len(self.buf)))
            self.sock.settimeout(left)
            try:
                x = self.sock.recv(65536)
            except ConnectionResetError:
                x = b""
            if not x:
                self.closed = True
                raise ConnectionClosed("connection closed by the server (had %d of %d bytes)" % (len(self.buf), n))
            self.buf += x
            reads += 1
            if reads > 10_000_000:
                raise socket.timeout("too many reads")

    def recv_frame(self, timeout=5):
        """One frame: (fin, opcode, payload). Server frames must not be masked."""
        deadline = time.monotonic() + timeout
        self._fill(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        if b0 & 0x70:
            raise ValueError("server frame with reserved bits 0x%02x" % b0)
        if b1 & 0x80:
            raise ValueError("server frame is masked")
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._fill(4, deadline)
            n = struct.unpack_from("!H", self.buf, 2)[0]
            off = 4
        elif n == 127:
            self._fill(10, deadline)
            n = struct.unpack_from("!Q", self.buf, 2)[0]
            off = 10
        if n > 1 << 26:
            raise ValueError("server frame of %d bytes" % n)
        self._fill(off + n, deadline)
        payload = bytes(self.buf[off:off + n])
        del self.buf[:off + n]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv(self, timeout=5):
        """One message: (opcode, payload), fragments reassembled; control frames as they come.
        A close frame sets close_code/close_reason and returns (CLOSE, payload)."""
        deadline = time.monotonic() + timeout
        op0, parts = None, []
        for _ in range(100_000):
            fin, op, payload = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if op >= 0x8:
                if op == CLOSE:
                    self.closed = True
                    if len(payload) >= 2:
                        self.close_code = struct.unpack("!H", payload[:2])[0]
                        self.close_reason = payload[2:].decode("utf-8", "replace")
                    else:
                        self.close_code = 1005
                        self.close_reason = ""
                return op, payload
            if op0 is None:
                if op == CONT:
                    raise ValueError("continuation frame without a first fragment")
                op0 = op
            elif op != CONT:
                raise ValueError("new data frame (op %d) inside a fragmented message" % op)
            parts.append(payload)
            if fin:
                return op0, b"".join(parts)
        raise ValueError("too many fragments")

    def recv_data(self, timeout=5):
        """The next data message (TEXT/BINARY), answering pings; raises ConnectionClosed on close."""
        deadline = time.monotonic() + timeout
        for _ in range(100_000):
            op, payload = self.recv(max(0.0, deadline - time.monotonic()))
            if op == PING:
                self.send(PONG, payload)
            elif op == CLOSE:
                raise ConnectionClosed("close frame %s %r" % (self.close_code, self.close_reason))
            elif op != PONG:
                return op, payload
        raise ValueError("too many control frames")

    def wait_closed(self, timeout=5):
        """Reads (and drops) until the server closes the TCP connection. Returns True if it did
        within timeout; the close frame, if any, is in close_code/close_reason."""
        deadline = time.monotonic() + timeout
        for _ in range(10_000_000):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                op, payload = self.recv(left)
            except ConnectionClosed:
                return True
            except socket.timeout:
                return False
            except ValueError:
                # after a close frame the rest is not ours to parse; keep reading bytes to EOF
                self.buf.clear()
                try:
                    self.sock.settimeout(left)
                    if not self.sock.recv(65536):
                        return True
                except ConnectionResetError:
                    return True
                except socket.timeout:
                    return False
        return False

    # -- writing -------------------------------------------------------------------------------
    def send(self, opcode, payload=b"", fin=True):
        self.sock.sendall(frame(opcode, payload, fin=fin))

    def send_raw(self, data):
        self.sock.sendall(data)

    def close(self, code=1000, reason="", wait=0):
        """Sends a close frame (unless the socket is gone); with wait>0 waits for the server's
        close frame; then closes the socket."""
        try:
            payload = struct.pack("!H", code) + reason.encode() if code is not None else b""
            self.send(CLOSE, payload)
            if wait > 0:
                deadline = time.monotonic() + wait
                for _ in range(100_000):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    op, _ = self.recv(left)
                    if op == CLOSE:
                        break
        except (OSError, ConnectionClosed, ValueError):
            pass
        finally:
            self.sock.close()

    def fileno(self):
        return self.sock.fileno()


def handshake_request(path, host, key, headers=None, version="13"):
    hd = {"Host": host, "Upgrade": "websocket", "Connection": "Upgrade",
          "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": version}
    for k, v in (headers or {}).items():
        if v is None:
            hd.pop(k, None)
        else:
            hd[k] = v
    return ("GET %s HTTP/1.1\r\n" % path + "".join("%s: %s\r\n" % kv for kv in hd.items()) + "\r\n").encode()


def connect(server, path, headers=None, timeout=5, src=None):
    """Opens a WebSocket. headers override the handshake's (a value None removes a header).
    Raises HandshakeError when the server does not answer 101 with the right accept value."""
    host, port = _addr(server)
    key = base64.b64encode(os.urandom(16)).decode()
    sock = socket.create_connection((host, port), timeout=timeout,
                                    source_address=(src, 0) if src else None)
    try:
        sock.sendall(handshake_request(path, "%s:%d" % (host, port), key, headers))
        raw = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in raw:
            left = deadline - time.monotonic()
            if left <= 0 or len(raw) > 65536:
                raise socket.timeout("no complete handshake answer within %.1fs: %r" % (timeout, raw[:200]))
            sock.settimeout(left)
            x = sock.recv(65536)
            if not x:
                break
            raw += x
        head, sep, rest = raw.partition(b"\r\n\r\n")
        status, hd = _parse_head(head)
        if status != 101:
            body = rest
            n = int(hd.get("content-length", "0") or 0)
            while len(body) < n and time.monotonic() < deadline:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                x = sock.recv(65536)
                if not x:
                    break
                body += x
            raise HandshakeError(status, hd, body)
        if hd.get("sec-websocket-accept") != accept_for(key):
            raise HandshakeError(status, hd, b"wrong Sec-WebSocket-Accept %r" % hd.get("sec-websocket-accept"))
        if hd.get("upgrade", "").lower() != "websocket":
            raise HandshakeError(status, hd, b"101 without Upgrade: websocket")
    except BaseException:
        sock.close()
        raise
    return WebSocket(sock, rest)


def parse_audio(payload):
    """Tribune's audio message: (seq, timestamp, opus packet), or None if it is not one."""
    if len(payload) < 13 or payload[0] != 1:
        return None
    seq, ts = struct.unpack_from("!IQ", payload, 1)
    return seq, ts, payload[13:]


if __name__ == "__main__":
    # self-test of the pure parts
    assert accept_for("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 1.3
    f = frame(TEXT, b"Hello", key=b"\x37\xfa\x21\x3d")
    assert f == bytes.fromhex("818537fa213d7f9f4d5158"), f.hex()
    assert frame(BINARY, b"x" * 200, mask=False)[:4] == b"\x82\x7e\x00\xc8"
    assert frame(BINARY, b"", mask=False, length=70000)[:10] == b"\x82\x7f" + struct.pack("!Q", 70000)
    print("wslib self-test ok")
