"""Shared helpers for Tribune's end-to-end tests.

Standard library only. External tools: ffmpeg, ffprobe, curl, oggz-validate.

What is here:
  - Ogg page parsing with CRC verification (OggParser, parse_pages, ogg_crc).
  - Server: start `$TRIBUNE_BIN serve` (or `demo`) on a free loopback port with a fresh data dir,
    wait until GET /api/spaces answers 200, stop it with SIGTERM and check its exit status and
    its stderr for sanitizer reports.
  - http(): one request, any method, any status (4xx is a result, not an exception).
  - Listener: a raw-socket listener in a thread, keeping the bytes and the parsed pages.
  - RawPublisher: a raw-socket Icecast PUT publisher that sends pages paced at real time.
  - ffmpeg helpers, PCM analysis (tone detection), and run_test(), the standard main().

Rules every test follows: no sleeping in place of a condition (poll with deadlines: wait_until),
every loop bounded by count and deadline, loopback only.
"""

import base64
import http.client as httpclient
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zlib
from array import array

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TRIBUNE_BIN = os.environ.get("TRIBUNE_BIN", os.path.join(ROOT, "build", "tribune"))
IS_ASAN = "asan" in TRIBUNE_BIN
# Sanitizer builds are slower to start and to serve; deadlines for readiness scale with this.
SLOW = 3.0 if IS_ASAN else 1.0

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error", "UndefinedBehaviorSanitizer")


class TestFailure(AssertionError):
    pass


def check(cond, msg):
    """assert that survives python -O and says what was expected."""
    if not cond:
        raise TestFailure(msg)


def log(msg):
    print("[%7.2f] %s" % (time.monotonic() - _T0, msg), flush=True)


_T0 = time.monotonic()


def wait_until(pred, timeout, what, interval=0.02):
    """Poll pred() until it returns a truthy value or timeout seconds pass (then fail with `what`)."""
    deadline = time.monotonic() + timeout
    n = 0
    while True:
        v = pred()
        if v:
            return v
        n += 1
        if time.monotonic() >= deadline or n > 1_000_000:
            raise TestFailure("timed out after %.1fs waiting for: %s" % (timeout, what))
        time.sleep(interval)


# ----------------------------------------------------------------------------------------------
# Ogg
# ----------------------------------------------------------------------------------------------

def _make_crc_table():
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if (r & 0x80000000) else (r << 1)
            r &= 0xFFFFFFFF
        table.append(r)
    return table


_CRC_TABLE = _make_crc_table()
_BITREV8 = bytes(int("{:08b}".format(i)[::-1], 2) for i in range(256))


def ogg_crc_slow(data):
    """Reference Ogg CRC-32: polynomial 0x04c11db7, no reflection, initial value 0, no final xor."""
    crc = 0
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[((crc >> 24) ^ b) & 0xFF]
    return crc


def _bitrev32(x):
    return int("{:032b}".format(x)[::-1], 2)


def ogg_crc(data):
    """Fast Ogg CRC via zlib: the unreflected CRC equals the bit-reversed reflected CRC of the
    bit-reversed bytes. zlib.crc32(d, 0xffffffff) ^ 0xffffffff is the reflected CRC with initial
    register 0 and no final xor. Checked against ogg_crc_slow() in self_test()."""
    r = zlib.crc32(bytes(data).translate(_BITREV8), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return _bitrev32(r)


class OggError(Exception):
    pass


class Page:
    """One Ogg page (RFC 3533). raw is the whole page as bytes."""

    __slots__ = ("raw", "header_type", "granule", "serial", "seq", "crc", "lacing", "body")

    def __init__(self, raw, header_type, granule, serial, seq, crc, lacing, body):
        self.raw, self.header_type, self.granule = raw, header_type, granule
        self.serial, self.seq, self.crc, self.lacing, self.body = serial, seq, crc, lacing, body

    @property
    def continued(self):
        return bool(self.header_type & 1)

    @property
    def bos(self):
        return bool(self.header_type & 2)

    @property
    def eos(self):
        return bool(self.header_type & 4)

    @property
    def ends_with_complete_packet(self):
        return len(self.lacing) > 0 and self.lacing[-1] < 255

    def __repr__(self):
        return "Page(seq=%d serial=%08x gp=%d type=%d len=%d)" % (
            self.seq, self.serial, self.granule, self.header_type, len(self.raw))


def parse_page(buf, off=0):
    """Parse one page at buf[off:]. Returns (Page, next_off), or None if buf holds only a prefix
    of a page. Raises OggError if the bytes at off are not a valid page (capture pattern,
    version, CRC)."""
    if len(buf) - off < 27:
        if bytes(buf[off:off + 4]) != b"OggS"[: len(buf) - off]:
            raise OggError("no capture pattern at offset %d: %r" % (off, bytes(buf[off:off + 8])))
        return None
    if bytes(buf[off:off + 4]) != b"OggS":
        raise OggError("no capture pattern at offset %d: %r" % (off, bytes(buf[off:off + 8])))
    version, header_type, granule, serial, seq, crc, nseg = struct.unpack_from("<BBqIIIB", buf, off + 4)
    if version != 0:
        raise OggError("page at %d: stream_structure_version %d != 0" % (off, version))
    if header_type & ~7:
        raise OggError("page at %d: bad header_type 0x%x" % (off, header_type))
    if len(buf) - off < 27 + nseg:
        return None
    lacing = bytes(buf[off + 27: off + 27 + nseg])
    body_len = sum(lacing)
    end = off + 27 + nseg + body_len
    if len(buf) < end:
        return None
    raw = bytes(buf[off:end])
    zeroed = raw[:22] + b"\0\0\0\0" + raw[26:]
    got = ogg_crc(zeroed)
    if got != crc:
        raise OggError("page at %d (seq %d): CRC mismatch: header says %08x, computed %08x"
                       % (off, seq, crc, got))
    return Page(raw, header_type, granule, serial, seq, crc, lacing, raw[27 + nseg:]), end


def parse_pages(data, allow_partial_tail=True):
    """Parse a byte string that must be a sequence of whole Ogg pages from offset 0 (no garbage).
    Returns (pages, tail_len) where tail_len counts the bytes of an incomplete last page."""
    pages = []
    off = 0
    while off < len(data):
        r = parse_page(data, off)
        if r is None:
            if not allow_partial_tail:
                raise OggError("incomplete page at offset %d (%d bytes left)" % (off, len(data) - off))
            break
        p, off = r
        pages.append(p)
    return pages, len(data) - off


class OggParser:
    """Incremental strict parser: feed() bytes, get whole pages. Any garbage is an error."""

    def __init__(self):
        self.buf = bytearray()
        self.pages_seen = 0

    def feed(self, data):
        self.buf += data
        out = []
        off = 0
        while True:
            r = parse_page(self.buf, off)
            if r is None:
                break
            p, off = r
            out.append(p)
        if off:
            del self.buf[:off]
        self.pages_seen += len(out)
        return out


def packets(pages):
    """Reassemble the packets of one logical stream. Returns list of bytes; a trailing
    incomplete packet is dropped."""
    out = []
    cur = b""
    for p in pages:
        pos = 0
        for lv in p.lacing:
            cur += p.body[pos:pos + lv]
            pos += lv
            if lv < 255:
                out.append(cur)
                cur = b""
    return out


def opus_packet_samples(pkt):
    """Number of 48 kHz samples in one Opus packet (RFC 6716 section 3.1)."""
    if not pkt:
        return 0
    toc = pkt[0]
    config = toc >> 3
    if config < 12:
        fs = [480, 960, 1920, 2880][config & 3]
    elif config < 16:
        fs = [480, 960][config & 1]
    else:
        fs = [120, 240, 480, 960][config & 3]
    c = toc & 3
    if c == 0:
        n = 1
    elif c in (1, 2):
        n = 2
    else:
        n = (pkt[1] & 0x3F) if len(pkt) > 1 else 0
    return fs * n


def check_opus_head_pages(pages, what="stream"):
    """The first page carries OpusHead alone (BOS), the second starts OpusTags; returns the serial."""
    check(len(pages) >= 2, "%s: fewer than 2 pages (%d)" % (what, len(pages)))
    p0, p1 = pages[0], pages[1]
    check(p0.bos, "%s: first page is not BOS: %r" % (what, p0))
    check(p0.body.startswith(b"OpusHead"), "%s: first page does not start with OpusHead: %r" % (what, p0.body[:16]))
    check(p1.body.startswith(b"OpusTags"), "%s: second page does not start with OpusTags: %r" % (what, p1.body[:16]))
    check(p0.serial == p1.serial, "%s: header pages have different serials" % what)
    check(p0.granule == 0, "%s: OpusHead page granule %d != 0" % (what, p0.granule))
    return p0.serial


# ----------------------------------------------------------------------------------------------
# Server process
# ----------------------------------------------------------------------------------------------

_SERVERS = []
_TMPDIRS = []
_PROCS = []      # helper processes (ffmpeg) to kill if a test fails half-way


def track(p):
    """Register a helper process so that run_test() kills it if the test fails half-way."""
    _PROCS.append(p)
    return p


def tmpdir():
    d = tempfile.mkdtemp(prefix="tribune-e2e-")
    _TMPDIRS.append(d)
    return d


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """A Tribune process on 127.0.0.1:<free port>.

    Server(cmd="serve", extra=["--header_timeout_ms", "1000"], data_dir=None).start()
    """

    def __init__(self, cmd="serve", extra=(), data_dir=None, name=None):
        self.cmd = cmd
        self.extra = list(extra)
        self.data_dir = data_dir or tmpdir()
        self.name = name or cmd
        self.proc = None
        self.port = None
        self.log_path = None
        self.stopped = False
        _SERVERS.append(self)

    @property
    def addr(self):
        return ("127.0.0.1", self.port)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self, ready_timeout=None, port=None):
        """Starts the server on a free port, or on `port` (a restart on the same address)."""
        ready_timeout = ready_timeout or 15 * SLOW
        check(os.access(TRIBUNE_BIN, os.X_OK), "TRIBUNE_BIN %s is not an executable" % TRIBUNE_BIN)
        last = None
        for attempt in range(3):  # a free port can be taken between our probe and the bind
            self.port = port or free_port()
            self.log_path = os.path.join(tmpdir(), "server-%s-%d.log" % (self.name, self.port))
            argv = [TRIBUNE_BIN, self.cmd, "--listen", "127.0.0.1:%d" % self.port,
                    "--data", self.data_dir] + self.extra
            log("start: %s" % " ".join(argv))
            logf = open(self.log_path, "wb")
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
            logf.close()
            self.stopped = False
            deadline = time.monotonic() + ready_timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    st, _, _ = http(self, "GET", "/api/spaces", timeout=2)
                    if st == 200:
                        log("server %s ready on port %d (pid %d)" % (self.name, self.port, self.proc.pid))
                        return self
                except OSError:
                    pass
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.kill()
                raise TestFailure("server did not answer GET /api/spaces with 200 within %.0fs\n%s"
                                  % (ready_timeout, self.log_tail()))
            last = "server exited with %s before becoming ready\n%s" % (self.proc.returncode, self.log_tail())
            if "in use" not in self.log_text().lower():
                break
        raise TestFailure(last)

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def log_tail(self, n=40):
        lines = self.log_text().splitlines()
        return "---- server %s log (%s), last %d of %d lines ----\n%s\n---- end of server log ----" % (
            self.name, self.log_path, min(n, len(lines)), len(lines), "\n".join(lines[-n:]))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self, what=""):
        check(self.alive(), "server died (exit %s) %s\n%s" % (
            self.proc.returncode if self.proc else None, what, self.log_tail()))

    def check_sanitizers(self):
        text = self.log_text()
        for m in SANITIZER_MARKERS:
            check(m not in text, "server log contains %r\n%s" % (m, self.log_tail(80)))

    def stop(self, timeout=10, sig=signal.SIGTERM):
        """SIGTERM (or sig); the server must exit 0 within timeout seconds with a clean log."""
        if self.stopped or self.proc is None:
            return
        self.stopped = True
        check(self.proc.poll() is None, "server had already exited with %s before stop\n%s"
              % (self.proc.returncode, self.log_tail()))
        self.proc.send_signal(sig)
        name = signal.Signals(sig).name
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise TestFailure("server did not exit within %ss of %s\n%s" % (timeout, name, self.log_tail()))
        check(rc == 0, "server exited with %s after %s (expected 0)\n%s" % (rc, name, self.log_tail()))
        self.check_sanitizers()
        log("server %s stopped cleanly" % self.name)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stopped = True


# ----------------------------------------------------------------------------------------------
# HTTP
# ----------------------------------------------------------------------------------------------

def http(server, method, path, body=None, headers=None, timeout=10, src=None):
    """One request on a fresh connection (from source address `src` when given). Returns (status,
    headers dict with lower-case names, body bytes)."""
    c = httpclient.HTTPConnection("127.0.0.1", server.port, timeout=timeout,
                                  source_address=(src, 0) if src else None)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = dict(headers or {})
            headers.setdefault("Content-Type", "application/json")
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def http_json(server, method, path, body=None, headers=None, timeout=10):
    st, hd, data = http(server, method, path, body, headers, timeout)
    try:
        obj = json.loads(data.decode()) if data else None
    except ValueError:
        raise TestFailure("%s %s -> %d with a body that is not JSON: %r" % (method, path, st, data[:300]))
    return st, hd, obj


def refusals(server, timeout=10):
    """Every tribune_requests_refused_total{reason} from one GET /metrics: {reason: count}."""
    import re
    st, _, body = http(server, "GET", "/metrics", timeout=timeout)
    check(st == 200, "GET /metrics -> %d" % st)
    return {m.group(1): int(m.group(2)) for m in
            re.finditer(r'^tribune_requests_refused_total\{reason="([a-z_]+)"\} (\d+)', body.decode(), re.M)}


def create_space(server, title="Test space", **kw):
    body = {"title": title}
    body.update(kw)
    st, _, obj = http_json(server, "POST", "/api/spaces", body)
    check(st == 201, "POST /api/spaces -> %d %r (expected 201)" % (st, obj))
    check(isinstance(obj, dict) and "id" in obj and "host_key" in obj, "create response lacks id/host_key: %r" % obj)
    return str(obj["id"]), obj["host_key"]


def raw_request(server, data, timeout=5, read_all=True):
    """Send raw bytes, return everything the server answers until it closes (or timeout)."""
    s = socket.create_connection(server.addr, timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(out) < 1 << 20:
            try:
                x = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not x:
                break
            out += x
            if not read_all and b"\r\n\r\n" in out:
                break
        return out
    finally:
        s.close()


def parse_head(data):
    """Parse 'HTTP/1.x NNN reason\\r\\nheaders\\r\\n\\r\\n'. Returns (status, headers, rest) or None."""
    i = data.find(b"\r\n\r\n")
    if i < 0:
        return None
    lines = data[:i].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise TestFailure("not an HTTP response: %r" % data[:200])
    hd = {}
    for ln in lines[1:]:
        if ":" in ln:
            k, v = ln.split(":", 1)
            hd[k.strip().lower()] = v.strip()
    return int(parts[1]), hd, data[i + 4:]


def final_response(data):
    """Skip interim 1xx responses. Returns (status, headers, rest) of the final one, or None."""
    for _ in range(10):
        r = parse_head(data)
        if r is None:
            return None
        st, hd, rest = r
        if 100 <= st < 200:
            data = rest
            continue
        return r
    return None


def basic_auth(key, user="source"):
    return "Basic " + base64.b64encode(("%s:%s" % (user, key)).encode()).decode()


# ----------------------------------------------------------------------------------------------
# Listener (raw socket, thread)
# ----------------------------------------------------------------------------------------------

class Listener(threading.Thread):
    """GET /spaces/{id}/live.opus on a raw socket; keeps every byte and parses pages as they come.

    parse=False keeps only bytes (parse later with parse_pages), cheaper for many listeners.
    """

    def __init__(self, server, space_id, parse=True, keep=True, max_seconds=60, path=None):
        super().__init__(daemon=True)
        self.server = server
        self.path = path or "/spaces/%s/live.opus" % space_id
        self.parse = parse
        self.keep = keep
        self.max_seconds = max_seconds
        self.status = None
        self.headers = None
        self.body = bytearray()
        self.nbytes = 0
        self.pages = []          # (arrival monotonic time, Page)
        self.error = None        # parse error or unexpected exception
        self.closed_by_server = False
        self.head_event = threading.Event()
        self._stop_flag = threading.Event()
        self.parser = OggParser()
        self.lock = threading.Lock()
        self.sock = None

    def run(self):
        try:
            self.sock = socket.create_connection(self.server.addr, timeout=10)
            self.sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: tribune-e2e\r\n"
                               "Accept: */*\r\n\r\n" % (self.path, self.server.port)).encode())
            self.sock.settimeout(0.2)
            head = b""
            deadline = time.monotonic() + self.max_seconds
            while time.monotonic() < deadline and not self._stop_flag.is_set():
                try:
                    x = self.sock.recv(65536)
                except socket.timeout:
                    continue
                if not x:
                    self.closed_by_server = True
                    break
                if self.headers is None:
                    head += x
                    if len(head) > 65536:
                        raise TestFailure("response head larger than 64 KiB")
                    r = parse_head(head)
                    if r is None:
                        continue
                    self.status, self.headers, x = r
                    self.head_event.set()
                    if self.status != 200:
                        self.body += x
                        continue
                self._on_data(x)
        except Exception as e:  # reported by the test through .error
            if not self._stop_flag.is_set():
                self.error = e
        finally:
            self.head_event.set()
            if self.sock:
                self.sock.close()

    def _on_data(self, x):
        now = time.monotonic()
        with self.lock:
            self.nbytes += len(x)
            if self.keep:
                self.body += x
            if self.parse:
                try:
                    for p in self.parser.feed(x):
                        self.pages.append((now, p))
                except OggError as e:
                    self.error = e
                    raise

    def stop(self, join=True):
        self._stop_flag.set()
        if join:
            self.join(5)

    def wait_head(self, timeout=5):
        check(self.head_event.wait(timeout), "listener %s: no response head within %ss" % (self.path, timeout))
        check(self.error is None, "listener %s: error %r" % (self.path, self.error))
        check(self.status == 200, "listener %s: status %s (expected 200), body %r"
              % (self.path, self.status, bytes(self.body[:300])))
        return self

    def page_count(self):
        with self.lock:
            return len(self.pages)

    def page_list(self):
        with self.lock:
            return [p for _, p in self.pages]

    def wait_pages(self, n, timeout, what=""):
        wait_until(lambda: self.error is not None or self.page_count() >= n or not self.is_alive(), timeout,
                   "listener to have %d pages %s (has %d)" % (n, what, self.page_count()))
        self.check_ok()
        check(self.page_count() >= n, "listener stopped with %d pages (wanted %d) %s closed_by_server=%s"
              % (self.page_count(), n, what, self.closed_by_server))

    def check_ok(self):
        check(self.error is None, "listener error: %r" % (self.error,))
        check(not self.closed_by_server, "server closed the listener connection")

    def audio_packets_since(self, page_index):
        with self.lock:
            pages = [p for _, p in self.pages[page_index:]]
        return packets(pages)


def wait_silent_tail(lst, n_pages, timeout, what):
    """Wait until the last n_pages pages the listener received carry only silence-sized Opus packets,
    after some audio (the publisher's audio has drained through the server's buffers)."""
    def ok():
        lst.check_ok()
        pages = lst.page_list()
        if len(pages) < 2 + n_pages:
            return False
        pk = packets(pages[-n_pages:])
        if not pk or max(len(p) for p in pk) >= 20:
            return False
        # and some audio came before that silence
        return any(len(p) >= 20 for p in packets(pages[2:-n_pages]))
    wait_until(ok, timeout, what)


def listener_is_silent(lst, from_page):
    """Heuristic on the Opus packets after page index from_page: Opus encoders emit tiny packets
    (<= ~10 bytes) for digital silence; a 440 Hz tone at 48 kbit/s gives ~100-byte packets."""
    pk = [p for p in lst.audio_packets_since(from_page)]
    if not pk:
        return True
    return max(len(p) for p in pk) < 20


# ----------------------------------------------------------------------------------------------
# Publishers
# ----------------------------------------------------------------------------------------------

def make_ogg(path, seconds, codec="libopus", freq=440, page_ms=100, extra=()):
    """Encode `seconds` of a sine with ffmpeg into an Ogg file (pages of about page_ms)."""
    argv = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi",
            "-i", "sine=frequency=%d:sample_rate=48000" % freq, "-t", str(seconds), "-ac", "1",
            "-c:a", codec] + (["-b:a", "48k"] if codec == "libopus" else []) + list(extra) + \
           ["-page_duration", str(page_ms * 1000), "-f", "ogg", path]
    r = subprocess.run(argv, capture_output=True, timeout=60)
    check(r.returncode == 0, "ffmpeg could not make %s: %s" % (path, r.stderr.decode(errors="replace")))
    return path


def icecast_url(server, space_id, key):
    return "icecast://source:%s@127.0.0.1:%d/spaces/%s/live.opus" % (key, server.port, space_id)


def ffmpeg_publish(server, space_id, key, seconds, freq=440, legacy=False, content_type=None, realtime=True,
                   log_path=None):
    """Start ffmpeg publishing a sine through the icecast protocol. Returns the Popen (stderr to log_path)."""
    argv = ["ffmpeg", "-nostdin", "-v", "error"] + (["-re"] if realtime else []) + \
           ["-f", "lavfi", "-i", "sine=frequency=%d:sample_rate=48000" % freq, "-t", str(seconds),
            "-ac", "1", "-c:a", "libopus", "-b:a", "48k"]
    if legacy:
        argv += ["-legacy_icecast", "1"]
    if content_type:
        argv += ["-content_type", content_type]
    argv += ["-f", "ogg", icecast_url(server, space_id, key)]
    log_path = log_path or os.path.join(tmpdir(), "ffmpeg-publish.log")
    log("publish: %s" % " ".join(argv))
    f = open(log_path, "wb")
    p = track(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=f))
    f.close()
    p.log_path = log_path
    return p


def proc_log(p):
    try:
        with open(p.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


class RawPublisher:
    """An Icecast PUT source on a raw socket: head, then bytes we choose, paced or not."""

    def __init__(self, server, space_id, key, method="PUT", content_type="audio/ogg", expect=False):
        self.server = server
        self.sock = socket.create_connection(server.addr, timeout=5)
        hdrs = ["%s /spaces/%s/live.opus HTTP/1.1" % (method, space_id),
                "Host: 127.0.0.1:%d" % server.port, "User-Agent: tribune-e2e-raw",
                "Content-Type: %s" % content_type, "Ice-Public: 0"]
        if key is not None:
            hdrs.append("Authorization: " + basic_auth(key))
        if expect:
            hdrs.append("Expect: 100-continue")
        self.sock.sendall(("\r\n".join(hdrs) + "\r\n\r\n").encode())
        self.resp = b""

    def read_response(self, timeout=5, want_final=True):
        """Read until a (final, unless want_final=False) response head arrives. Returns (status, headers, rest)."""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.2)
        while time.monotonic() < deadline:
            r = final_response(self.resp) if want_final else parse_head(self.resp)
            if r is not None:
                return r
            try:
                x = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                break
            if not x:
                break
            self.resp += x
        r = final_response(self.resp) if want_final else parse_head(self.resp)
        return r

    def read_body_until_close(self, timeout=3):
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.2)
        while time.monotonic() < deadline and len(self.resp) < 1 << 20:
            try:
                x = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not x:
                break
            self.resp += x
        return self.resp

    def send(self, data):
        self.sock.sendall(data)

    def send_pages_paced(self, pages, lead=0.3, deadline_s=60):
        """Send pages so that each leaves no earlier than its start time minus `lead` seconds
        (start time = previous page's granule / 48 kHz), like a live encoder."""
        t0 = time.monotonic()
        base = None      # granule of the first audio page sent: time 0 of this run
        prev_gp = None
        end = t0 + deadline_s
        for p in pages:
            if prev_gp is not None:
                due = t0 + (prev_gp - base) / 48000.0 - lead
                while time.monotonic() < due and time.monotonic() < end:
                    time.sleep(min(0.02, max(0, due - time.monotonic())))
            self.sock.sendall(p.raw)
            if p.granule > 0:
                if base is None:
                    base = p.granule
                prev_gp = p.granule

    def close(self, rst=False):
        if rst:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


# ----------------------------------------------------------------------------------------------
# Processes, sockets
# ----------------------------------------------------------------------------------------------

def start_raw_publisher(server, space_id, key, first_bytes, what="raw publisher"):
    """Open a raw PUT publisher, send first_bytes (the Ogg header pages) at once, as Icecast sources
    without Expect do (a server may wait for them before it answers), and check the answer is
    100 Continue or 200. Returns the RawPublisher."""
    p = RawPublisher(server, space_id, key)
    try:
        p.send(first_bytes)
    except OSError:
        pass
    r = p.read_response(5, want_final=False)
    check(r is not None and r[0] in (100, 200), "%s refused or unanswered: %r" % (what, p.resp[:300]))
    return p


def established_to_port(pid, port):
    """How many ESTABLISHED TCP connections the process pid has to 127.0.0.1:port (from /proc)."""
    inodes = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if t.startswith("socket:["):
                inodes.add(t[8:-1])
    except OSError:
        return 0
    n = 0
    for fn in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(fn) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    rem_port = int(parts[2].split(":")[1], 16)
                    if rem_port == port and parts[3] == "01" and parts[9] in inodes:
                        n += 1
        except OSError:
            pass
    return n


def stop_process(p, sig=signal.SIGINT, timeout=10):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


# ----------------------------------------------------------------------------------------------
# PCM analysis
# ----------------------------------------------------------------------------------------------

def read_s16(path):
    a = array("h")
    with open(path, "rb") as f:
        data = f.read()
    a.frombytes(data[: len(data) // 2 * 2])
    if sys.byteorder != "little":
        a.byteswap()
    return a


def analyse_windows(samples, rate=48000, win_s=0.02):
    """Per window of win_s: (rms, frequency estimated from zero crossings)."""
    w = int(rate * win_s)
    out = []
    prev = samples[0] if len(samples) else 0
    for i in range(0, len(samples) - w + 1, w):
        seg = samples[i:i + w]
        s2 = 0
        zc = 0
        for v in seg:
            s2 += v * v
            if (prev < 0) != (v < 0):
                zc += 1
            prev = v
        rms = (s2 / w) ** 0.5
        out.append((rms, zc / 2.0 / win_s))
    return out


def tone_report(samples, freq=440, rate=48000, win_s=0.02, min_rms=300.0, tol_hz=25.0):
    """Find where a tone of `freq` is present. Returns dict: total_s, tone_windows, first_s, last_s,
    span_s (first to last tone window, inclusive), inside_fraction (tone windows / windows in span),
    mean_freq."""
    ws = analyse_windows(samples, rate, win_s)
    is_tone = [rms >= min_rms and abs(f - freq) <= tol_hz for rms, f in ws]
    idx = [i for i, t in enumerate(is_tone) if t]
    rep = {"total_s": len(samples) / rate, "windows": len(ws), "tone_windows": len(idx)}
    if not idx:
        rep.update(first_s=None, last_s=None, span_s=0.0, inside_fraction=0.0, mean_freq=None,
                   max_rms=max([r for r, _ in ws] or [0]))
        return rep
    first, last = idx[0], idx[-1]
    holes = []
    i = first
    while i <= last and len(holes) < 20:
        if not is_tone[i]:
            j = i
            while not is_tone[j]:
                j += 1
            holes.append((round(i * win_s, 2), round((j - i) * win_s, 2)))
            i = j
        i += 1
    rep["holes"] = holes
    rep.update(first_s=first * win_s, last_s=(last + 1) * win_s, span_s=(last - first + 1) * win_s,
               inside_fraction=len(idx) / float(last - first + 1),
               mean_freq=sum(ws[i][1] for i in idx) / len(idx),
               max_rms=max(r for r, _ in ws))
    return rep


def dft_peak(samples, rate=48000, lo=100, hi=2000, step=10):
    """Frequency (Hz, to `step`) with the largest DFT magnitude over a 0.1 s slice (Goertzel)."""
    import math
    n = min(len(samples), rate // 10)
    seg = samples[:n]
    best = (0.0, None)
    for f in range(lo, hi + 1, step):
        k = 2 * math.cos(2 * math.pi * f / rate)
        s1 = s2 = 0.0
        for v in seg:
            s0 = v + k * s1 - s2
            s2, s1 = s1, s0
        power = s1 * s1 + s2 * s2 - k * s1 * s2
        if power > best[0]:
            best = (power, f)
    return best[1]


def ffmpeg_decode_file(path, out_raw):
    """Decode an Ogg/Opus file to s16le mono 48 kHz. Returns (returncode, stderr text)."""
    r = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", path, "-f", "s16le", "-ac", "1",
                        "-ar", "48000", out_raw], capture_output=True, timeout=60)
    return r.returncode, r.stderr.decode(errors="replace")


def ffmpeg_decode_url(url, seconds, out_raw, what):
    """ffmpeg reads `seconds` of a live URL (following redirects) into s16le mono 48 kHz, with no
    output on stderr at -v error, within 30 s. Returns the samples."""
    try:
        r = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", url, "-t", str(seconds), "-f", "s16le",
                            "-ac", "1", "-ar", "48000", "-y", out_raw], capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        check(False, "ffmpeg did not decode %s s %s within 30 s" % (seconds, what))
    err = r.stderr.decode(errors="replace").strip()
    check(r.returncode == 0 and err == "", "ffmpeg %s: rc %d: %s" % (what, r.returncode, err[-2000:]))
    return read_s16(out_raw)


def start_load(url, args, what="load"):
    """Starts tribune-load (the one next to the server binary: build/tribune-load,
    build/asan/tribune-load, ...) on `url` with `args`, in the background. The process gets
    `lines`, its output lines, filled by a reader thread (`reader`) until it exits."""
    load_bin = os.path.join(os.path.dirname(TRIBUNE_BIN), "tribune-load")
    check(os.access(load_bin, os.X_OK), "%s is not built" % load_bin)
    argv = [load_bin, url] + [str(a) for a in args]
    log("%s: %s" % (what, " ".join(argv)))
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    p.lines = []
    p.reader = threading.Thread(target=lambda: p.lines.extend(p.stdout.read().decode(errors="replace").splitlines()),
                                daemon=True)
    p.reader.start()
    return p


# ----------------------------------------------------------------------------------------------
# Test main
# ----------------------------------------------------------------------------------------------

def run_test(fn):
    """Standard main: run fn(); print PASS/FAIL with server log tails; exit 0/1.
    Servers still running at the end are stopped and checked (exit 0, clean sanitizer log)."""
    name = os.path.basename(sys.argv[0])
    log("%s with TRIBUNE_BIN=%s" % (name, TRIBUNE_BIN))
    ok = True
    try:
        fn()
        for s in _SERVERS:
            if not s.stopped:
                s.stop()
    except BaseException as e:
        ok = False
        traceback.print_exc()
        for s in _SERVERS:
            print(s.log_tail(40))
            s.kill()
        # once more after the server logs, so that the tail run.sh prints holds the assertion
        print("%s failed: %s: %s" % (name, type(e).__name__, e), flush=True)
    else:
        for s in _SERVERS:
            try:
                s.check_sanitizers()
            except TestFailure as e:
                ok = False
                print(e)
    finally:
        for p in _PROCS:
            if p.poll() is None:
                p.kill()
                p.wait()
        if os.environ.get("TRIBUNE_E2E_KEEP") is None:
            import shutil
            for d in _TMPDIRS:
                shutil.rmtree(d, ignore_errors=True)
    log("%s %s" % (name, "OK" if ok else "FAILED"))
    sys.exit(0 if ok else 1)


def self_test():
    """Check the helpers without a server: CRC implementations agree, ffmpeg output parses."""
    import random
    rnd = random.Random(1)
    for n in (0, 1, 27, 300, 5000):
        d = bytes(rnd.getrandbits(8) for _ in range(n))
        assert ogg_crc(d) == ogg_crc_slow(d), n
    d = tmpdir()
    f = make_ogg(os.path.join(d, "a.opus"), 2)
    data = open(f, "rb").read()
    pages, tail = parse_pages(data, allow_partial_tail=False)
    check_opus_head_pages(pages)
    assert tail == 0 and pages[-1].eos
    bad = bytearray(data)
    bad[200] ^= 1
    try:
        parse_pages(bytes(bad))
        raise AssertionError("corrupted page parsed")
    except OggError:
        pass
    pk = packets(pages)
    total = sum(opus_packet_samples(p) for p in pk[2:])
    assert abs(total - 2 * 48000) < 2000, total
    raw = os.path.join(d, "a.raw")
    rc, err = ffmpeg_decode_file(f, raw)
    assert rc == 0 and not err.strip(), err
    rep = tone_report(read_s16(raw))
    assert abs(rep["span_s"] - 2.0) < 0.05 and abs(rep["mean_freq"] - 440) < 5, rep
    assert dft_peak(read_s16(raw)[48000:]) == 440
    print("lib self test ok", rep)


# ----------------------------------------------------------------------------------------------
# Rooms (issue 6): speakers, host actions, tone publishers with a chosen pace
# ----------------------------------------------------------------------------------------------

def bearer(key):
    """The host's (or a requester's) Authorization header."""
    return {"Authorization": "Bearer %s" % key}


def speaker_icecast_url(server, space_id, name, key):
    return "icecast://source:%s@127.0.0.1:%d/spaces/%s/speakers/%s.opus" % (key, server.port, space_id, name)


def ffmpeg_publish_tone(server, url, seconds, freq=440, amplitude=1.0, readrate=1.0, page_ms=20, log_path=None,
                        name="tone"):
    """Start ffmpeg publishing a sine (aevalsrc, `amplitude` of full scale) to an icecast:// `url`,
    read at `readrate` times real time (ffmpeg's -readrate; 1.0 is -re: a live encoder whose clock
    runs `readrate` times as fast as ours), Opus 48 kbit/s mono in 20 ms frames and pages of
    `page_ms`. Returns the Popen (tracked; stderr in p.log_path)."""
    argv = ["ffmpeg", "-nostdin", "-v", "error", "-readrate", repr(float(readrate)), "-f", "lavfi",
            "-i", "aevalsrc=%r*sin(2*PI*%d*t):s=48000:c=mono" % (float(amplitude), freq), "-t", str(seconds),
            "-c:a", "libopus", "-b:a", "48k", "-frame_duration", "20", "-page_duration", str(page_ms * 1000),
            "-f", "ogg", url]
    log_path = log_path or os.path.join(tmpdir(), "ffmpeg-%s.log" % name)
    log("publish %s: %s" % (name, " ".join(argv)))
    f = open(log_path, "wb")
    p = track(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=f))
    f.close()
    p.log_path = log_path
    return p


def ffmpeg_publish_speaker(server, space_id, name, key, seconds, freq=440, amplitude=1.0, readrate=1.0):
    """A speaker publishing a tone on PUT /spaces/{id}/speakers/{name}.opus (Basic source:<key>)."""
    return ffmpeg_publish_tone(server, speaker_icecast_url(server, space_id, name, key), seconds, freq=freq,
                               amplitude=amplitude, readrate=readrate, name="speaker-%s" % name)


def speaker_publish_status(server, space_id, name, key, timeout=5, src=None):
    """One raw PUT on a speaker's mount with `key` (None: no Authorization), no audio sent, from
    source address `src` (default: any). Returns (status, body bytes): the final status the server
    answers (100 if it only said "100 Continue", that is, it accepted the head and waits for audio;
    None if it said nothing) and, for a refusal, its body up to the server's close."""
    hdrs = ["PUT /spaces/%s/speakers/%s.opus HTTP/1.1" % (space_id, name), "Host: 127.0.0.1:%d" % server.port,
            "User-Agent: tribune-e2e-raw", "Content-Type: audio/ogg", "Ice-Public: 0"]
    if key is not None:
        hdrs.append("Authorization: " + basic_auth(key))
    s = socket.create_connection(server.addr, timeout=timeout, source_address=(src, 0) if src else None)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        s.sendall(("\r\n".join(hdrs) + "\r\n\r\n").encode())
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            r = final_response(data)
            if r is not None and (r[0] < 400 or int(r[1].get("content-length", "-1")) <= len(r[2])):
                break
            try:
                x = s.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not x:
                break
            data += x
    finally:
        s.close()
    r = final_response(data) or parse_head(data)   # an interim 100 alone: the server waits for audio
    return (r[0], r[2]) if r is not None else (None, data)


_SRC_NEXT = [0]


def fresh_source():
    """A loopback source address no other request of this process used (127.0.9.1 and up): the
    server limits failed key attempts per client address (5 at once, docs/config.md), so a test that
    makes many refused attempts on purpose spreads them, one address each."""
    _SRC_NEXT[0] += 1
    n = _SRC_NEXT[0]
    check(n < 254 * 200, "out of fresh source addresses")
    return "127.0.%d.%d" % (9 + n // 254, 1 + n % 254)


def http_json_from(server, src, method, path, body=None, headers=None, timeout=10):
    """http_json() from source address `src`. Returns (status, headers, parsed JSON or raw bytes)."""
    st, hd, data = http(server, method, path, body, headers, timeout, src=src)
    try:
        return st, hd, json.loads(data.decode()) if data else None
    except ValueError:
        return st, hd, data




# ----------------------------------------------------------------------------------------------
# Recordings (issue 7): segment files, the replay, the API and metrics
# ----------------------------------------------------------------------------------------------

OPUS_PRE_SKIP_DEFAULT = 312


def oggz_validate(path):
    """oggz-validate on one file. Returns (ok, its output)."""
    r = subprocess.run(["oggz-validate", path], capture_output=True, timeout=60)
    out = (r.stdout + r.stderr).decode(errors="replace").strip()
    return r.returncode == 0, out


def ogg_streams(data, what="recording"):
    """Page-by-page CRC scan of a (possibly chained) Ogg/Opus byte string that must be whole pages
    from offset 0. Splits it into logical streams (a chained stream: each starts with a BOS page and
    ends with an EOS page). Returns a list of dicts: serial, pages, pre_skip, seconds (last granule
    minus pre-skip, 48 kHz), has_eos. Fails on a CRC error, garbage, a partial page, interleaving."""
    try:
        pages, tail = parse_pages(data, allow_partial_tail=False)
    except OggError as e:
        raise TestFailure("%s: %s" % (what, e))
    check(tail == 0, "%s: %d bytes of a partial page at the end" % (what, tail))
    streams = []
    for p in pages:
        if p.bos:
            check(not streams or streams[-1]["has_eos"], "%s: a new stream (BOS) starts before the "
                  "previous one ended (no EOS): %r" % (what, p))
            streams.append({"serial": p.serial, "pages": [p], "has_eos": p.eos})
            continue
        check(streams and p.serial == streams[-1]["serial"], "%s: page of an unknown serial: %r" % (what, p))
        check(not streams[-1]["has_eos"], "%s: page after the end of stream: %r" % (what, p))
        streams[-1]["pages"].append(p)
        streams[-1]["has_eos"] = p.eos
    for i, s in enumerate(streams):
        sp = s["pages"]
        check_opus_head_pages(sp, "%s stream %d" % (what, i))
        s["pre_skip"] = struct.unpack_from("<H", sp[0].body, 10)[0]
        seqs = [p.seq for p in sp]
        check(seqs == list(range(seqs[0], seqs[0] + len(seqs))), "%s stream %d: page sequence numbers "
              "jump: %r" % (what, i, seqs[:50]))
        gps = [p.granule for p in sp[2:] if p.granule != -1]
        check(all(a <= b for a, b in zip(gps, gps[1:])), "%s stream %d: granules go back" % (what, i))
        s["seconds"] = max(0, (gps[-1] if gps else 0) - s["pre_skip"]) / 48000.0
    return streams


def check_segment_file(path, need_eos=True):
    """One segment file: CRC scan (one Opus stream, whole pages, EOS on its last page when
    need_eos) and oggz-validate. Returns the stream dict of ogg_streams()."""
    with open(path, "rb") as f:
        data = f.read()
    streams = ogg_streams(data, os.path.basename(path))
    check(len(streams) == 1, "%s holds %d streams, expected 1" % (path, len(streams)))
    if need_eos:
        check(streams[0]["has_eos"], "%s: last page lacks the end-of-stream flag" % path)
        ok, out = oggz_validate(path)
        check(ok, "oggz-validate %s failed: %s" % (path, out))
    return streams[0]


def segment_files(data_dir, space_id):
    """The segment files of a space's recording on disk, sorted."""
    d = os.path.join(data_dir, "recordings", space_id)
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.startswith("seg-") and f.endswith(".opus"))


def read_manifest(data_dir, space_id):
    with open(os.path.join(data_dir, "recordings", space_id, "manifest.json"), "rb") as f:
        return json.loads(f.read().decode())


def recording_info(server, space_id, timeout=10):
    """GET /api/spaces/{id}/recording: the JSON object, or None on 404."""
    st, _, obj = http_json(server, "GET", "/api/spaces/%s/recording" % space_id, timeout=timeout)
    if st == 404:
        return None
    check(st == 200, "GET /api/spaces/%s/recording -> %d %r" % (space_id, st, obj))
    return obj


def metric_value(server, name, labels=None, timeout=10):
    """One sample of GET /metrics: the value of `name` with exactly `labels` ({} or None: none),
    or None when absent."""
    import re
    st, _, body = http(server, "GET", "/metrics", timeout=timeout)
    check(st == 200, "GET /metrics -> %d" % st)
    want = "" if not labels else "{" + ",".join('%s="%s"' % kv for kv in sorted(labels.items())) + "}"
    for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$", body.decode(), re.M):
        if m.group(1) == name and (m.group(2) or "") == want:
            return float(m.group(3))
    return None


def decode_clean(path, out_raw, what=None):
    """ffmpeg decodes an Ogg/Opus file (or URL) with no output on stderr at -v error. Returns samples."""
    rc, err = ffmpeg_decode_file(path, out_raw)
    check(rc == 0 and not err.strip(), "ffmpeg decoding %s: rc %d, errors: %s" % (what or path, rc, err[-2000:]))
    return read_s16(out_raw)


def parse_multipart_byteranges(body, content_type):
    """Split a multipart/byteranges body. Returns [(Content-Range value, part bytes)]."""
    import re
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    check(m is not None, "multipart response without a boundary: %r" % content_type)
    delim = b"--" + m.group(1).encode()
    parts = []
    pos = body.find(delim)
    check(pos >= 0, "no boundary in the multipart body")
    for _ in range(1000):
        pos += len(delim)
        if body[pos:pos + 2] == b"--":
            return parts
        check(body[pos:pos + 2] == b"\r\n", "boundary not followed by CRLF at %d" % pos)
        hend = body.find(b"\r\n\r\n", pos)
        check(hend >= 0, "part without the end of its headers")
        hd = {}
        for ln in body[pos + 2:hend].decode("latin-1").split("\r\n"):
            if ":" in ln:
                k, v = ln.split(":", 1)
                hd[k.strip().lower()] = v.strip()
        cr = hd.get("content-range", "")
        m2 = re.match(r"bytes (\d+)-(\d+)/(\d+)$", cr)
        check(m2 is not None, "part without a valid Content-Range: %r" % hd)
        n = int(m2.group(2)) - int(m2.group(1)) + 1
        data = body[hend + 4:hend + 4 + n]
        check(len(data) == n, "part %r cut short" % cr)
        parts.append((cr, data))
        pos = hend + 4 + n
        check(body[pos:pos + 2] == b"\r\n", "part %r not followed by CRLF" % cr)
        pos += 2
        check(body[pos:pos + len(delim)] == delim, "part %r not followed by the boundary" % cr)
    raise TestFailure("more than 1000 parts")


# ffmpeg 5.1 (Debian 12) prints this once when it probes the duration of a chained Ogg file whose
# last link is longer than the tail it reads (ogg_get_length meets pages of an unknown serial): it
# does so for any chained file (cat a.opus long.opus), and decodes every link all the same.
FFMPEG_CHAINED_NOTE = "failed to create or replace stream"


def decode_chained(path, out_raw, streams, what=None):
    """Decode a chained Ogg/Opus file with ffmpeg: no error output but FFMPEG_CHAINED_NOTE (with
    several links), and as many samples as the links' durations (`streams` from ogg_streams)
    within 20 ms each. Returns the samples."""
    rc, err = ffmpeg_decode_file(path, out_raw)
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    other = [ln for ln in lines if not (len(streams) > 1 and ln.endswith(FFMPEG_CHAINED_NOTE))]
    check(rc == 0 and not other, "ffmpeg decoding %s: rc %d, errors: %s" % (what or path, rc, "\n".join(other)[-2000:]))
    pcm = read_s16(out_raw)
    want = sum(s["seconds"] for s in streams)
    check(abs(len(pcm) / 48000.0 - want) <= 0.02 * len(streams), "%s decoded %.3f s, its links hold %.3f s"
          % (what or path, len(pcm) / 48000.0, want))
    return pcm


if __name__ == "__main__":
    self_test()
