"""N HLS players in one asyncio loop (standard library only), for test_hls_cdn.py and bench/hls_cdn.py.

Each player, against http://127.0.0.1:<port>/spaces/<space>/hls/live.m3u8:
  - fetches the playlist every target duration (a new connection per request, Connection: close);
  - fetches the init segment (EXT-X-MAP) once, then starts three segments back from the live edge
    (as ffmpeg and hls.js do) and fetches each newer segment once, in order;
  - checks that each segment's bytes are whole ISO-BMFF boxes holding a moof and an mdat;
  - keeps its buffer: seconds of media fetched minus wall time since its first segment; a stall is
    the buffer reaching 0 (counted once per stall);
  - POSTs a beacon {session, playing, buffered_s, stalls} at once after its first segment, then
    every `beacon_s` seconds.
One player in four adds a per-player query string to its playlist and segment requests (a cache
buster): a cache keyed on $uri must give it the same cached bytes.
Bounded: every player stops `duration` seconds after the run starts, every request has a timeout.
"""
import asyncio
import json
import random
import re
import time


async def request(port, method, path, body=None, timeout=5.0):
    """One HTTP/1.1 request on a new connection; returns (status, headers, body)."""
    async def go():
        r, w = await asyncio.open_connection("127.0.0.1", port)
        try:
            head = "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n" % (method, path, port)
            if body is not None:
                head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
            w.write(head.encode() + b"\r\n" + (body or b""))
            await w.drain()
            data = await r.read()
        finally:
            w.close()
        hend = data.find(b"\r\n\r\n")
        if hend < 0:
            raise OSError("no HTTP head in %d bytes" % len(data))
        lines = data[:hend].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        hd = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hd[k.strip().lower()] = v.strip()
        payload = data[hend + 4:]
        if "content-length" in hd:
            payload = payload[:int(hd["content-length"])]
        elif hd.get("transfer-encoding", "").lower() == "chunked":
            payload = dechunk(payload)
        return status, hd, payload
    return await asyncio.wait_for(go(), timeout)


def dechunk(data):
    out, i = bytearray(), 0
    while True:
        j = data.index(b"\r\n", i)
        n = int(data[i:j].split(b";")[0], 16)
        if n == 0:
            return bytes(out)
        out += data[j + 2:j + 2 + n]
        i = j + 2 + n + 2


def fmp4_boxes(data):
    """Top-level box types of an ISO-BMFF buffer; ValueError unless the boxes cover it exactly."""
    types, off = [], 0
    while off < len(data):
        if off + 8 > len(data):
            raise ValueError("truncated box header at %d" % off)
        size = int.from_bytes(data[off:off + 4], "big")
        if size < 8 or off + size > len(data):
            raise ValueError("bad box size %d at %d of %d" % (size, off, len(data)))
        types.append(data[off + 4:off + 8].decode("latin-1"))
        off += size
    return types


def parse_playlist(text):
    """(target duration, media sequence, [(msn, uri, duration)], map uri)."""
    target = seq = None
    mp = None
    segs, dur = [], None
    for ln in text.split("\n"):
        ln = ln.strip()
        if ln.startswith("#EXT-X-TARGETDURATION:"):
            target = int(ln.split(":", 1)[1])
        elif ln.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            seq = int(ln.split(":", 1)[1])
        elif ln.startswith("#EXT-X-MAP:"):
            m = re.search(r'URI="([^"]+)"', ln)
            mp = m and m.group(1)
        elif ln.startswith("#EXTINF:"):
            dur = float(ln[8:].split(",")[0])
        elif ln and not ln.startswith("#"):
            segs.append((seq + len(segs), ln, dur))
    if target is None or seq is None or mp is None:
        raise ValueError("playlist lacks TARGETDURATION, MEDIA-SEQUENCE or MAP:\n" + text)
    return target, seq, segs, mp


class Stats:
    def __init__(self):
        self.errors = []          # (player, what) for every failed request or bad body
        self.requests = {"playlist": 0, "init": 0, "segment": 0, "beacon": 0}
        self.segments_ok = 0
        self.beacons_ok = 0
        self.first_beacon = None  # monotonic time of the first beacon answered 200
        self.stalls = 0
        self.min_buffered = None
        self.players_with_media = 0
        self.seg_uris = set()


class Player:
    def __init__(self, i, port, space, stats, t_end, beacon_s, bust):
        self.i, self.port, self.stats, self.t_end = i, port, stats, t_end
        self.base = "/spaces/%s/hls/" % space
        self.beacon_path = "/api/spaces/%s/beacon" % space
        self.session = "cdnplayer-%05d" % i
        self.beacon_s = beacon_s
        self.bust = bust
        self.fetched_s = 0.0
        self.t_first = None
        self.stalls = 0
        self.stalled = False
        self.next_msn = None
        self.next_beacon = None
        self.n_req = 0

    def q(self):
        self.n_req += 1
        return "?p=%d&t=%d" % (self.i, self.n_req) if self.bust else ""

    def err(self, what):
        if len(self.stats.errors) < 1000:
            self.stats.errors.append((self.i, what))

    def buffered(self, now):
        return self.fetched_s - (now - self.t_first) if self.t_first is not None else 0.0

    async def get(self, kind, name):
        self.stats.requests[kind] += 1
        try:
            st, hd, body = await request(self.port, "GET", self.base + name + self.q())
        except (OSError, asyncio.TimeoutError, ValueError, IndexError) as e:
            self.err("%s %s: %r" % (kind, name, e))
            return None
        if st != 200:
            self.err("%s %s -> %d" % (kind, name, st))
            return None
        return body

    async def beacon(self, now):
        b = self.buffered(now)
        body = json.dumps({"session": self.session, "playing": True, "buffered_s": round(max(b, 0.0), 3),
                           "stalls": self.stalls}).encode()
        self.stats.requests["beacon"] += 1
        try:
            st, _, _ = await request(self.port, "POST", self.beacon_path, body)
        except (OSError, asyncio.TimeoutError, ValueError, IndexError) as e:
            self.err("beacon: %r" % e)
            return
        if st != 200:
            self.err("beacon -> %d" % st)
            return
        self.stats.beacons_ok += 1
        if self.stats.first_beacon is None:
            self.stats.first_beacon = time.monotonic()

    async def run(self, start_delay):
        await asyncio.sleep(start_delay)
        target = 2
        while time.monotonic() < self.t_end:
            t_poll = time.monotonic()
            body = await self.get("playlist", "live.m3u8")
            if body is not None:
                try:
                    target, seq, segs, mp = parse_playlist(body.decode())
                except ValueError as e:
                    self.err("playlist: %s" % e)
                    segs = []
                if segs and self.next_msn is None:
                    init = await self.get("init", mp)
                    if init is not None:
                        try:
                            fmp4_boxes(init)
                        except ValueError as e:
                            self.err("init: %s" % e)
                    self.next_msn = segs[max(0, len(segs) - 3)][0]
                for msn, uri, dur in segs:
                    if self.next_msn is None or msn < self.next_msn or time.monotonic() >= self.t_end:
                        continue
                    data = await self.get("segment", uri)
                    self.next_msn = msn + 1
                    if data is None:
                        continue
                    try:
                        types = fmp4_boxes(data)
                        if "moof" not in types or "mdat" not in types:
                            raise ValueError("boxes %r" % types)
                    except ValueError as e:
                        self.err("segment %s: %s" % (uri, e))
                        continue
                    self.stats.segments_ok += 1
                    self.stats.seg_uris.add(uri)
                    now = time.monotonic()
                    if self.t_first is None:
                        self.t_first = now
                        self.stats.players_with_media += 1
                        self.next_beacon = now
                    self.fetched_s += dur
            now = time.monotonic()
            b = self.buffered(now)
            if self.t_first is not None:
                if b <= 0 and not self.stalled:
                    self.stalls += 1
                    self.stats.stalls += 1
                self.stalled = b <= 0
                if self.stats.min_buffered is None or b < self.stats.min_buffered:
                    self.stats.min_buffered = b
            if self.next_beacon is not None and now >= self.next_beacon:
                self.next_beacon = now + self.beacon_s
                await self.beacon(now)
            wait = t_poll + target - time.monotonic()
            if wait > 0:
                await asyncio.sleep(min(wait, max(0.0, self.t_end - time.monotonic())))


async def run_players(port, space, n, duration, beacon_s=10.0, ramp_s=2.0, seed=9, first=0):
    """n players (numbered from `first`: their beacon sessions) for `duration` seconds, each starting
    within the first ramp_s seconds; returns Stats."""
    rnd = random.Random(seed)
    stats = Stats()
    t_end = time.monotonic() + duration
    players = [Player(i, port, space, stats, t_end, beacon_s, i % 4 == 3) for i in range(first, first + n)]
    await asyncio.wait_for(asyncio.gather(*(p.run(rnd.uniform(0, ramp_s)) for p in players)), duration + 15)
    return stats


NGINX_CONF = """daemon off;
worker_processes 1;
%(user)s
error_log %(dir)s/error.log warn;
pid %(dir)s/nginx.pid;
events { worker_connections 8192; }
http {
    log_format cdn '$uri $status $upstream_cache_status $upstream_status';
    access_log %(dir)s/access.log cdn;
    client_body_temp_path %(dir)s/body;
    proxy_temp_path %(dir)s/proxy;
    fastcgi_temp_path %(dir)s/fastcgi;
    uwsgi_temp_path %(dir)s/uwsgi;
    scgi_temp_path %(dir)s/scgi;
    proxy_cache_path %(dir)s/cache levels=1:2 keys_zone=hls:10m max_size=256m inactive=60s use_temp_path=off;
    upstream origin { server 127.0.0.1:%(origin)d; }
    server {
        listen 127.0.0.1:%(port)d backlog=4096;
        # HLS: cached by the path alone (query strings ignored), for as long as the origin's
        # Cache-Control says (playlist 1 s, init and segments a year); concurrent misses of one
        # object go upstream once (the others wait for the copy); an expired playlist is
        # revalidated with its ETag (304) by one request while the others get the previous copy
        # (the lock covers only objects not cached yet: without use_stale updating every
        # concurrent request for an expired playlist goes upstream).
        location /spaces/ {
            proxy_pass http://origin;
            proxy_cache hls;
            proxy_cache_key $scheme$proxy_host$uri;
            proxy_cache_valid 200 1s;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 5s;
            proxy_cache_lock_age 5s;
            proxy_cache_revalidate on;
            proxy_cache_use_stale updating error timeout;
            add_header X-Cache-Status $upstream_cache_status;
        }
        # Beacons and the rest of the API: passed through, never cached.
        location /api/ {
            proxy_pass http://origin;
            proxy_cache off;
        }
    }
}
"""


def nginx_conf(dirname, port, origin_port):
    import os
    user = "user root root;" if os.geteuid() == 0 else ""  # workers would run as nobody: the temp dir is 0700
    return NGINX_CONF % {"dir": dirname, "port": port, "origin": origin_port, "user": user}


def access_log_counts(path):
    """From the access log: {kind: {cache status: count}}, distinct segment URIs, non-200 lines."""
    counts, seg_uris, bad = {}, set(), []
    with open(path) as f:
        for ln in f:
            parts = ln.split()
            if len(parts) < 3:
                continue
            uri, status, cache = parts[0], parts[1], parts[2]
            name = uri.rsplit("/", 1)[-1]
            kind = ("segment" if name.endswith(".m4s") else "init" if name.endswith(".mp4") else
                    "playlist" if name.endswith(".m3u8") else "beacon" if name == "beacon" else "other")
            counts.setdefault(kind, {}).setdefault(cache, 0)
            counts[kind][cache] += 1
            if kind == "segment":
                seg_uris.add(uri)
            if status != "200" and len(bad) < 20:
                bad.append(ln.strip())
    return counts, seg_uris, bad
