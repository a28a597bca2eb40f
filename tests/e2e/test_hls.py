"""HLS (fMP4/CMAF Opus) served by the origin: GET /spaces/{id}/hls/live.m3u8, init and segments.

A space whose host publishes a 440 Hz tone with ffmpeg, on a node with delivery workers (so every
HLS request is handed from a worker to the master):
  - before the first segment is complete the playlist is 503 with Retry-After (never 404: hls.js
    would give up); an unknown space is 404;
  - the playlist is valid: #EXTM3U first, VERSION, TARGETDURATION >= every EXTINF (3 decimals),
    MEDIA-SEQUENCE, one EXT-X-MAP, a PROGRAM-DATE-TIME per segment; the media sequence grows over
    time; headers application/vnd.apple.mpegurl, Cache-Control max-age=1, an ETag;
  - ffprobe on the playlist URL says opus, 48 kHz; ffmpeg plays `-i live.m3u8 -t 6` without error
    and decodes 6 s (within 5 %) in which 440 Hz dominates (1 kHz as the noise reference) in at
    least 95 % of the 20 ms windows;
  - segments and the named init: audio/mp4, `public, max-age=31536000, immutable`, ETag, 304 on
    If-None-Match, HEAD with the same length and no body; a query string (?_HLS_msn=, ?t=) gets
    byte-identical answers;
  - a segment of another run, one far ahead, malformed names and traversal spellings: 404 or 400,
    and no file's bytes;
  - tribune_hls_requests_total and tribune_hls_bytes_total in /metrics count what was served;
  - beacons (POST /api/spaces/{id}/beacon): 20 sessions, each twice (deduplicated), one stalled and
    one paused: 18 hearing, 1 lagging, 1 waiting in GET /api/spaces/{id} and in
    tribune_format_listeners{format="hls"}; bad bodies 400, an unknown space 404, 410 once ended;
  - the space ended: the playlist ends with #EXT-X-ENDLIST and its segments are still served.
The HLS latency is reported from program date-times (PDT vs the wall clock when the playlist was
fetched): how old the live edge is, and how far behind the live edge a player that starts three
segments back (ffmpeg's and hls.js's default) hears.
"""
import os
import re
import socket
import subprocess
import time

import audio
from lib import (Server, bearer, check, create_space, ffmpeg_publish, http, http_json, log, read_s16, run_test,
                 tmpdir, wait_until)


def parse_playlist(text):
    """Checks a live media playlist; returns a dict of its fields and segments."""
    lines = [ln for ln in text.split("\n") if ln]
    check(lines and lines[0] == "#EXTM3U", "playlist does not start with #EXTM3U:\n%s" % text)
    pl = {"segments": [], "maps": [], "ended": False}
    pdt = dur = None
    for ln in lines[1:]:
        if ln.startswith("#EXT-X-VERSION:"):
            pl["version"] = int(ln.split(":", 1)[1])
        elif ln.startswith("#EXT-X-TARGETDURATION:"):
            pl["target"] = int(ln.split(":", 1)[1])
        elif ln.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            pl["seq"] = int(ln.split(":", 1)[1])
        elif ln.startswith("#EXT-X-MAP:"):
            m = re.match(r'#EXT-X-MAP:URI="([^"]+)"$', ln)
            check(m, "bad EXT-X-MAP line %r" % ln)
            pl["maps"].append(m.group(1))
        elif ln.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            v = ln.split(":", 1)[1]
            check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", v), "bad PDT %r" % v)
            pdt = time.mktime(time.strptime(v[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone + int(v[20:23]) / 1000.0
        elif ln.startswith("#EXTINF:"):
            m = re.match(r"^#EXTINF:(\d+\.\d{3}),$", ln)
            check(m, "EXTINF without 3 decimals: %r" % ln)
            dur = float(m.group(1))
        elif ln == "#EXT-X-ENDLIST":
            pl["ended"] = True
        elif ln.startswith("#"):
            continue
        else:
            check(dur is not None and pdt is not None, "segment %r without EXTINF and PDT" % ln)
            pl["segments"].append({"uri": ln, "dur": dur, "pdt": pdt})
            pdt = dur = None
    for k in ("version", "target", "seq"):
        check(k in pl, "playlist lacks %s:\n%s" % (k, text))
    check(pl["version"] >= 6, "EXT-X-VERSION %d < 6 (EXT-X-MAP in a media playlist)" % pl["version"])
    check(len(pl["maps"]) == 1, "expected one EXT-X-MAP: %r" % pl["maps"])
    check(pl["segments"], "playlist lists no segment:\n%s" % text)
    for s in pl["segments"]:
        check(s["dur"] <= pl["target"], "EXTINF %.3f over TARGETDURATION %d" % (s["dur"], pl["target"]))
        check(re.match(r"^[a-z0-9.-]+$", s["uri"]), "odd segment URI %r" % s["uri"])
    for a, b in zip(pl["segments"], pl["segments"][1:]):
        check(abs(b["pdt"] - (a["pdt"] + a["dur"])) < 0.002, "PDTs not contiguous: %r then %r" % (a, b))
    return pl


def get_playlist(srv, base):
    st, hd, body = http(srv, "GET", base + "live.m3u8")
    check(st == 200, "playlist -> %d %r" % (st, body[:200]))
    return hd, parse_playlist(body.decode()), time.time()


def metric(srv, name, kind):
    st, _, body = http(srv, "GET", "/metrics")
    check(st == 200, "GET /metrics -> %d" % st)
    m = re.search(r'^%s\{kind="%s"\} (\d+)' % (name, kind), body.decode(), re.M)
    check(m, "/metrics lacks %s{kind=%r}" % (name, kind))
    return int(m.group(1))


def raw_status(srv, target):
    """The status line's code for a request target sent as is (no client normalisation)."""
    s = socket.create_connection(srv.addr, timeout=5)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target).encode())
        data = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            b = s.recv(65536)
            if not b:
                break
            data += b
    finally:
        s.close()
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", data)
    check(m, "no status line for %r: %r" % (target, data[:100]))
    return int(m.group(1)), data


def check_cache_headers(hd, what, immutable):
    cc = hd.get("cache-control", "")
    if immutable:
        check("immutable" in cc and "max-age=31536000" in cc and "public" in cc,
              "%s Cache-Control %r" % (what, cc))
        check(hd.get("content-type") == "audio/mp4", "%s Content-Type %r" % (what, hd.get("content-type")))
    else:
        check("max-age=1" in cc and "immutable" not in cc, "%s Cache-Control %r" % (what, cc))
    check(hd.get("etag", "").startswith('"'), "%s has no strong ETag: %r" % (what, hd))


def play_and_check_tone(srv, base):
    out = os.path.join(tmpdir(), "hls.raw")
    url = srv.url + base + "live.m3u8"
    r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,sample_rate", "-of",
                        "default=nw=1", url], capture_output=True, timeout=20)
    probe = r.stdout.decode()
    check(r.returncode == 0 and "codec_name=opus" in probe and "sample_rate=48000" in probe,
          "ffprobe on the playlist: %s %s" % (probe, r.stderr.decode()[-500:]))
    t0 = time.monotonic()
    r = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", url, "-t", "6", "-f", "s16le", "-ac", "1",
                        "-ar", "48000", "-y", out], capture_output=True, timeout=30)
    err = r.stderr.decode(errors="replace").strip()
    check(r.returncode == 0 and err == "", "ffmpeg playing the playlist: exit %d: %s" % (r.returncode, err[-2000:]))
    s = read_s16(out)
    dur = len(s) / 48000.0
    check(abs(dur - 6.0) <= 0.3, "ffmpeg decoded %.2f s of HLS, expected 6" % dur)
    t440, t1k = audio.dft_tables(440, audio.WIN), audio.dft_tables(1000, audio.WIN)
    good = total = 0
    for i in range(0, len(s) - audio.WIN + 1, audio.WIN):
        seg = s[i:i + audio.WIN]
        total += 1
        if audio.bin_power_db(seg, 440, t440) > max(-40.0, audio.bin_power_db(seg, 1000, t1k) + 30):
            good += 1
    log("ffmpeg decoded %.2f s of HLS in %.1f s; 440 Hz dominant in %d of %d windows of 20 ms"
        % (dur, time.monotonic() - t0, good, total))
    check(good >= 0.95 * total, "the tone is missing: 440 Hz dominant in only %d of %d windows" % (good, total))


def format_listeners(srv, sid, fmt):
    st, _, body = http(srv, "GET", "/metrics")
    check(st == 200, "GET /metrics -> %d" % st)
    out = {}
    for m in re.finditer(r'^tribune_format_listeners\{space="%s",format="%s",state="(\w+)"\} (\d+)' % (sid, fmt),
                         body.decode(), re.M):
        out[m.group(1)] = int(m.group(2))
    return out


def check_beacons(srv, sid):
    """20 players beacon (twice each: deduplicated); one stalls, one pauses."""
    path = "/api/spaces/%s/beacon" % sid
    for rnd in range(2):
        for i in range(20):
            b = {"session": "player-%04d" % i, "playing": i != 1, "buffered_s": 4.5,
                 "stalls": 1 if (i == 0 and rnd == 1) else 0}
            st, hd, obj = http_json(srv, "POST", path, b)
            check(st == 200 and obj.get("interval_s") == 10, "beacon %r -> %d %r" % (b, st, obj))
    st, _, obj = http_json(srv, "GET", "/api/spaces/%s" % sid)
    lis = obj["listeners"]
    check(lis["hearing"] == 18 and lis["lagging"] == 1 and lis["waiting"] == 1,
          "20 beaconing players (one stalled, one paused) in the space's listeners: %r" % lis)
    f = format_listeners(srv, sid, "hls")
    check(f == {"waiting": 1, "hearing": 18, "lagging": 1}, "tribune_format_listeners format=hls %r" % f)
    check(format_listeners(srv, sid, "ogg").get("hearing") == 0, "HLS players counted as ogg listeners")
    bad = [None, "[]", {"playing": True}, {"session": "short", "playing": True},
           {"session": "player/../x", "playing": True}, {"session": "player-0001", "playing": "yes"},
           {"session": "player-0001", "playing": True, "buffered_s": -1},
           {"session": "player-0001", "playing": True, "stalls": 1.5}]
    for b in bad:
        st, _, _ = http(srv, "POST", path, b.encode() if isinstance(b, str) else b)
        check(st == 400, "beacon %r -> %d (want 400)" % (b, st))
    st, _, _ = http_json(srv, "POST", "/api/spaces/nosuchspace/beacon", {"session": "player-0000", "playing": True})
    check(st == 404, "a beacon to an unknown space -> %d" % st)
    log("beacons: 20 sessions x 2 beacons -> %r in the space's listeners" % f)


def main():
    srv = Server(extra=["--workers", "1"]).start()
    sid, key = create_space(srv, "HLS test")
    base = "/spaces/%s/hls/" % sid
    st, hd, _ = http(srv, "GET", base + "live.m3u8")
    check(st == 503 and hd.get("retry-after"), "a space's playlist before its first segment: %d %r (want 503 "
          "with Retry-After)" % (st, hd))
    st, _, _ = http(srv, "GET", "/spaces/nosuchspace/hls/live.m3u8")
    check(st == 404, "an unknown space's playlist -> %d" % st)

    pub = ffmpeg_publish(srv, sid, key, 40)

    def is_live():
        st, _, obj = http_json(srv, "GET", "/api/spaces/%s" % sid)
        return st == 200 and obj.get("state") == "live" and obj.get("has_publisher")
    wait_until(is_live, 15, "the space live with its publisher")
    live_wall = time.time()
    wait_until(lambda: http(srv, "GET", base + "live.m3u8")[0] == 200, 10, "the first segment", interval=0.1)
    hd, pl, _ = get_playlist(srv, base)
    check("application/vnd.apple.mpegurl" in hd.get("content-type", ""), "playlist type %r" % hd)
    check_cache_headers(hd, "playlist", False)
    first_seq = pl["seq"] + len(pl["segments"])

    # Wait until a player starting three segments back hears only the publisher's tone (on the
    # air once its jitter buffer holds 0.5 s): PDT of that segment >= the time it went live + 1 s.
    def tone_window():
        _, p, _ = get_playlist(srv, base)
        return len(p["segments"]) >= 3 and p["segments"][-3]["pdt"] >= live_wall + 1.0
    wait_until(tone_window, 20, "three segments of the publisher's tone", interval=0.2)
    hd, pl, now = get_playlist(srv, base)
    check(pl["seq"] + len(pl["segments"]) > first_seq, "media sequence did not grow: %d then %r" % (first_seq, pl))
    edge = pl["segments"][-1]
    start = pl["segments"][-3]
    log("HLS latency (PDT vs wall clock at the playlist fetch): live edge %.2f s old; a player starting "
        "3 segments back hears audio %.2f s old" % (now - (edge["pdt"] + edge["dur"]), now - start["pdt"]))
    check(now - (edge["pdt"] + edge["dur"]) < 2.0 + pl["target"], "the live edge is %.2f s old"
          % (now - (edge["pdt"] + edge["dur"])))
    play_and_check_tone(srv, base)

    # Files: headers, validators, HEAD, query strings.
    hd, pl, _ = get_playlist(srv, base)
    seg = pl["segments"][-1]["uri"]
    st, shd, sbody = http(srv, "GET", base + seg)
    check(st == 200 and len(sbody) > 1000, "segment %s -> %d, %d bytes" % (seg, st, len(sbody)))
    check(sbody[4:8] == b"moof", "segment does not start with a moof box: %r" % sbody[:16])
    check_cache_headers(shd, "segment", True)
    for q in ("?_HLS_msn=%d&_HLS_part=0" % pl["seq"], "?t=%d" % int(time.time())):
        st, qhd, qbody = http(srv, "GET", base + seg + q)
        check(st == 200 and qbody == sbody and qhd.get("etag") == shd.get("etag"),
              "segment with query %s: %d, %s bytes" % (q, st, "same" if qbody == sbody else "different"))
    st, hhd, hbody = http(srv, "HEAD", base + seg)
    check(st == 200 and hbody == b"" and hhd.get("content-length") == str(len(sbody)),
          "HEAD segment: %d %r" % (st, hhd))
    st, _, nbody = http(srv, "GET", base + seg, headers={"If-None-Match": shd["etag"]})
    check(st == 304 and nbody == b"", "If-None-Match on a segment -> %d" % st)
    st, ihd, ibody = http(srv, "GET", base + pl["maps"][0])
    check(st == 200 and ibody[4:8] == b"ftyp", "init %s -> %d %r" % (pl["maps"][0], st, ibody[:16]))
    check_cache_headers(ihd, "init", True)
    st, _, ibody2 = http(srv, "GET", base + "init.mp4?v=2")
    check(st == 200 and ibody2 == ibody, "init.mp4 -> %d, differs from %s" % (st, pl["maps"][0]))
    same = False
    for _ in range(3):  # a segment may close between the two requests: then their ETags differ
        st1, h1, b1 = http(srv, "GET", base + "live.m3u8")
        st2, h2, b2 = http(srv, "GET", base + "live.m3u8?_HLS_msn=1&t=2")
        if h1.get("etag") == h2.get("etag"):
            check(b1 == b2, "the playlist with a query string differs though its ETag is the same")
            same = True
            break
    check(same, "the playlist never gave the same ETag twice in a row")

    # Names that are not ours: 404 (or 400 for what the HTTP layer refuses), never a file.
    run, msn = re.match(r"^seg-([0-9a-f]+)-(\d+)\.m4s$", seg).groups()
    other = "%x" % (int(run, 16) - 1)
    bad = ["seg-%s-%s.m4s" % (other, msn), "seg-%s-%d.m4s" % (run, int(msn) + 100), "seg-%s-0%s.m4s" % (run, msn),
           "seg-%s.m4s" % run, "init-%s.mp4" % other, "live.m3u", "x.m4s"]
    for name in bad:
        st, _, _ = http(srv, "GET", base + name)
        check(st == 404, "%s -> %d (want 404)" % (name, st))
    for target in (base + "../../../../etc/passwd", base + "..%2f..%2f..%2fetc%2fpasswd",
                   base + "%2e%2e/%2e%2e/live.m3u8", base + "seg-%s-%s.m4s%%00" % (run, msn),
                   base + "..", base + "./live.m3u8/", "/spaces/%s/hls/../hls/init.mp4" % sid):
        st, data = raw_status(srv, target)
        check(st in (400, 404), "%s -> %d (want 400 or 404)" % (target, st))
        check(b"root:" not in data and b"ftyp" not in data, "%s answered file bytes" % target)

    n_seg = metric(srv, "tribune_hls_requests_total", "segment")
    b_seg = metric(srv, "tribune_hls_bytes_total", "segment")
    n_pl = metric(srv, "tribune_hls_requests_total", "playlist")
    log("metrics: %d segment requests (%d bytes), %d playlist requests" % (n_seg, b_seg, n_pl))
    check(n_seg >= 5 and b_seg >= 4 * len(sbody) and n_pl >= 5, "HLS metrics too low")

    check_beacons(srv, sid)

    st, _, _ = http_json(srv, "POST", "/api/spaces/%s/end" % sid, headers=bearer(key))
    check(st == 200, "end -> %d" % st)
    hd, pl, _ = get_playlist(srv, base)
    check(pl["ended"], "the ended space's playlist lacks #EXT-X-ENDLIST")
    st, _, b = http(srv, "GET", base + pl["segments"][-1]["uri"])
    check(st == 200 and b[4:8] == b"moof", "the ended space's last segment -> %d" % st)
    st, _, _ = http_json(srv, "POST", "/api/spaces/%s/beacon" % sid,
                         {"session": "player-0000", "playing": True})
    check(st == 410, "a beacon to an ended space -> %d" % st)
    pub.wait(10)
    srv.stop()


if __name__ == "__main__":
    run_test(main)
