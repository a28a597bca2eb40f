#!/usr/bin/env python3
"""Replay of a recording (issue 7): GET/HEAD /spaces/{id}/recording.opus, with Range.

1. A space without starts_at; the host publishes the crash test's signal (440 Hz tone, clicks at
   known pseudo-random times) with ffmpeg -re -c copy: the space goes live, the recording starts.
2. While live: two GETs a few seconds apart: the second is longer, starts with the first's bytes,
   and both decode with no ffmpeg error output. 404s: no such space, a space with no recording.
3. After POST /end: the API shows recording false; the replay is one Ogg/Opus stream whose last
   page has the end-of-stream flag, passes the CRC scan and oggz-validate; Content-Length equals the
   body and the API's bytes; HEAD has the same head and no body.
4. Range: bytes=0-0, a middle range, bytes=N- , a suffix (bytes=-1000), beyond the end (416 with
   Content-Range: bytes */SIZE), several ranges (multipart/byteranges: each part's bytes are the
   same slice of the full GET).
5. ffmpeg -ss 3 -i URL -t 1 decodes one second that is the full decode's second from 3 s on.
6. 50-odd path traversal spellings sent raw on a socket: each gets 400 or 404, and no body holds
   bytes of a file on disk ("SQLite format", "seg-", "manifest", "OggS").
"""
import os
import re
import socket
import subprocess
import time

from lib import (SLOW, Server, bearer, check, check_segment_file, create_space, decode_clean, fresh_source, http,
                 http_json, log, ogg_streams, oggz_validate, parse_head, parse_multipart_byteranges, read_manifest,
                 read_s16, recording_info, run_test, segment_files, stop_process, tmpdir, wait_until)
from test_record_crash import RATE, Reference, align, click_onsets, match_content, publish_file, snr_windows


def get(srv, path, headers=None, method="GET"):
    return http(srv, method, path, headers=headers, timeout=20)


def raw_get(srv, target, timeout=5):
    """One raw request (the target's bytes exactly as given) from a fresh source address; returns
    (status or None, everything the server sent)."""
    s = socket.create_connection(srv.addr, timeout=timeout, source_address=(fresh_source(), 0))
    out = b""
    try:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: tribune-e2e\r\n\r\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(out) < 1 << 20:
            try:
                x = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not x:
                break
            out += x
    finally:
        s.close()
    r = parse_head(out) if out.startswith(b"HTTP/") else None
    return (r[0] if r else None), out


def traversal_targets(sid):
    S = sid.encode()
    return [
        b"/spaces/../tribune.db", b"/spaces/../../etc/passwd", b"/spaces/" + S + b"/../../tribune.db",
        b"/spaces/../../tribune.db/recording.opus", b"/spaces/%2e%2e/recording.opus",
        b"/spaces/%2E%2E/recording.opus", b"/spaces/..%2frecordings%2f" + S + b"/recording.opus",
        b"/spaces/..%2f..%2ftribune.db/recording.opus", b"/spaces/%2e%2e%2f%2e%2e%2ftribune.db/recording.opus",
        b"/spaces/%252e%252e/recording.opus", b"/spaces/%252e%252e%252ftribune.db/recording.opus",
        b"/spaces/" + S + b"%00/recording.opus", b"/spaces/" + S + b"/recording.opus%00.db",
        b"/spaces/..\\tribune.db/recording.opus", b"/spaces/..\\..\\tribune.db/recording.opus",
        b"/spaces//recording.opus", b"//spaces/" + S + b"/../../tribune.db", b"//tribune.db",
        b"/spaces/" + S + b"/recording.opus/../../../tribune.db", b"/spaces/recordings/" + S + b"/seg-000001.opus",
        b"/recordings/" + S + b"/seg-000001.opus", b"/recordings/" + S + b"/manifest.json",
        b"/spaces/" + S + b"/seg-000001.opus", b"/spaces/" + S + b"/manifest.json",
        b"/spaces/%2e%2e%2frecordings%2f" + S + b"%2fmanifest.json/recording.opus",
        b"/spaces/%c0%ae%c0%ae/recording.opus", b"/spaces/%c0%ae%c0%ae%c0%aftribune.db/recording.opus",
        b"/spaces/%e0%80%ae%e0%80%ae/recording.opus", b"/spaces/%c0%2e%c0%2e/recording.opus",
        b"/spaces/" + S + b"./recording.opus", b"/spaces/" + S + b"../recording.opus",
        b"/spaces/.../recording.opus", b"/spaces/./recording.opus", b"/spaces/..;/tribune.db",
        b"/spaces/%2E%2E/%2E%2E/tribune.db", b"/spaces/..%5ctribune.db/recording.opus",
        b"/spaces/..%255ctribune.db/recording.opus", b"/spaces/%u002e%u002e/recording.opus",
        b"/spaces/..%c0%af../tribune.db/recording.opus", b"/spaces/" + S + b"%2frecording.opus",
        b"/spaces%2f" + S + b"%2frecording.opus", b"/spaces/" + S + b"%2f..%2f..%2ftribune.db",
        b"/spaces/tribune.db/recording.opus", b"/spaces/ticket.key/recording.opus",
        b"/spaces/..../recording.opus", b"/spaces/%2e/recording.opus", b"/spaces/recordings/recording.opus",
        b"/spaces/" + S + b"%20/recording.opus", b"/..%2f..%2ftribune.db", b"/api/spaces/..%2f..%2ftribune.db/recording",
        b"/api/spaces/%2e%2e/recording", b"..\\tribune.db", b"/spaces/\x00/recording.opus",
        b"/spaces/" + S + b"/%2e%2e/%2e%2e/%2e%2e/tribune.db", b"/spaces/" + S + b"\\..\\..\\tribune.db",
        b"/spaces/recordings%2f" + S + b"%2fseg-000001.opus/recording.opus", b"/tribune.db", b"/ticket.key",
    ]


def check_traversals(srv, sid):
    targets = traversal_targets(sid)
    check(len(targets) >= 50, "only %d traversal spellings" % len(targets))
    seen = {}
    for t in targets:
        st, out = raw_get(srv, t)
        check(st in (400, 404), "traversal %r -> %r (expected 400 or 404): %r" % (t, st, out[:300]))
        for marker in (b"SQLite format", b"seg-", b"manifest", b"OggS"):
            check(marker not in out, "traversal %r: the response holds %r: %r" % (t, marker, out[:300]))
        seen[st] = seen.get(st, 0) + 1
    log("path traversal: %d spellings, answers %r, no file bytes" % (len(targets), seen))


def check_ranges(srv, path, full):
    size = len(full)

    def one(rng, want_first, want_last):
        st, hd, body = get(srv, path, {"Range": rng})
        check(st == 206, "Range %s -> %d (expected 206) %r" % (rng, st, body[:200]))
        cr = "bytes %d-%d/%d" % (want_first, want_last, size)
        check(hd.get("content-range") == cr, "Range %s: Content-Range %r, expected %r" % (rng, hd.get("content-range"), cr))
        check(body == full[want_first:want_last + 1], "Range %s: body is not that slice (%d bytes)" % (rng, len(body)))
        check(int(hd.get("content-length", -1)) == len(body), "Range %s: Content-Length %r for %d bytes"
              % (rng, hd.get("content-length"), len(body)))
    one("bytes=0-0", 0, 0)
    mid = size // 2
    one("bytes=%d-%d" % (mid, mid + 999), mid, mid + 999)
    one("bytes=-1000", size - 1000, size - 1)
    one("bytes=%d-" % (size - 10), size - 10, size - 1)
    one("bytes=%d-%d" % (size - 5, size + 100), size - 5, size - 1)     # last clipped to the end
    for rng in ("bytes=%d-" % size, "bytes=%d-%d" % (size + 10, size + 20)):
        st, hd, body = get(srv, path, {"Range": rng})
        check(st == 416, "Range %s beyond the end (size %d) -> %d, expected 416" % (rng, size, st))
        check(hd.get("content-range") == "bytes */%d" % size, "Range %s: 416 with Content-Range %r, expected "
              "'bytes */%d'" % (rng, hd.get("content-range"), size))
        check(b"OggS" not in body, "416 with recording bytes")
    rng = "bytes=0-99,%d-%d,-50" % (mid, mid + 299)
    st, hd, body = get(srv, path, {"Range": rng})
    check(st == 206, "Range %s -> %d (expected 206)" % (rng, st))
    ct = hd.get("content-type", "")
    check(ct.startswith("multipart/byteranges"), "several ranges: Content-Type %r" % ct)
    check(int(hd.get("content-length", -1)) == len(body), "multipart: Content-Length %r for %d bytes"
          % (hd.get("content-length"), len(body)))
    parts = parse_multipart_byteranges(body, ct)
    want = [(0, 99), (mid, mid + 299), (size - 50, size - 1)]
    check(len(parts) == 3, "multipart: %d parts, expected 3: %r" % (len(parts), [p[0] for p in parts]))
    for (cr, data), (a, b) in zip(parts, want):
        check(cr == "bytes %d-%d/%d" % (a, b, size), "part Content-Range %r, expected %d-%d/%d" % (cr, a, b, size))
        check(data == full[a:b + 1], "part %s is not the same slice of the full GET" % cr)
    log("ranges: 0-0, middle 1000, -1000, N-, clipped, 416 x2, multipart %d parts: all equal the full GET's slices"
        % len(parts))


def check_head(srv, path, full_hd, size):
    st, out = None, b""
    s = socket.create_connection(srv.addr, timeout=5)
    try:
        s.sendall(("HEAD %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode())
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            x = s.recv(65536)
            if not x:
                break
            out += x
    finally:
        s.close()
    st, hd, rest = parse_head(out)
    check(st == 200, "HEAD -> %d" % st)
    check(rest == b"", "HEAD answered %d body bytes" % len(rest))
    check(int(hd.get("content-length", -1)) == size, "HEAD Content-Length %r, GET's body %d" % (hd.get("content-length"), size))
    check(hd.get("accept-ranges") == "bytes" and hd.get("content-type") == full_hd.get("content-type"),
          "HEAD headers %r vs GET %r" % (hd, full_hd))


def check_seek(srv, path, full_pcm):
    """ffmpeg -ss 3 -i URL -t 1: one second that is the full decode's from 3.0 s."""
    out = os.path.join(tmpdir(), "seek.raw")
    r = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", "3", "-i", srv.url + path, "-t", "1",
                        "-f", "s16le", "-ac", "1", "-ar", str(RATE), out], capture_output=True, timeout=60)
    err = r.stderr.decode(errors="replace").strip()
    check(r.returncode == 0 and not err, "ffmpeg -ss 3 on the replay: rc %d %s" % (r.returncode, err))
    pcm = read_s16(out)
    check(abs(len(pcm) - RATE) <= 960, "seek decoded %d samples, expected %d" % (len(pcm), RATE))
    # Where in the full decode is it? The click pattern (a pure tone alone repeats every 2.3 ms and
    # makes a plain correlation ambiguous), then the cross-correlation around the first click.
    off, _ = align(pcm, full_pcm, click_onsets(pcm), click_onsets(full_pcm))
    at = off / RATE
    snr = snr_windows(pcm, full_pcm, off, 4800, len(pcm))
    log("seek: ffmpeg -ss 3 -t 1 decoded %d samples starting at %.4f s of the full decode; SNR min %.1f dB"
        % (len(pcm), at, min(snr)))
    check(abs(at - 3.0) <= 0.0005, "ffmpeg -ss 3 started at %.4f s of the recording, expected 3.000" % at)
    check(min(snr) >= 20, "the seeked second differs from the full decode: SNR %r" % [round(x, 1) for x in snr])


def main():
    ref = Reference(tmpdir())
    srv = Server().start()
    sid, hk = create_space(srv, "Replay")
    path = "/spaces/%s/recording.opus" % sid
    st, _, _ = get(srv, path)
    check(st == 404, "no recording yet: GET %s -> %d, expected 404" % (path, st))
    check(recording_info(srv, sid) is None, "no recording yet, but the API shows one")
    st, _, obj = http_json(srv, "GET", "/api/spaces/%s" % sid)
    check(st == 200 and "recording" in obj and obj["recording"] is None, "GET space: recording %r, expected null"
          % obj.get("recording"))
    for p in ("/spaces/nosuchspace/recording.opus", "/api/spaces/nosuchspace/recording"):
        st, _, _ = get(srv, p)
        check(st == 404, "GET %s -> %d, expected 404" % (p, st))
    st, _, _ = get(srv, "/spaces/nosuchspace/recording.opus", method="HEAD")
    check(st == 404, "HEAD of no such space's recording -> %d" % st)

    pub = publish_file(srv, sid, hk, ref.path)
    wait_until(lambda: (recording_info(srv, sid) or {}).get("duration_s", 0) >= 2.0, 15 * SLOW,
               "the recording holds 2 s")
    st, hd1, a = get(srv, path)
    check(st == 200 and len(a) == int(hd1["content-length"]), "live GET -> %d, %d bytes, %r" % (st, len(a), hd1))
    d1 = recording_info(srv, sid)["duration_s"]
    wait_until(lambda: recording_info(srv, sid)["duration_s"] >= d1 + 2.5, 10 * SLOW, "2.5 s more recorded")
    st, hd2, b = get(srv, path)
    check(st == 200 and len(b) == int(hd2["content-length"]), "live GET 2 -> %d, %d bytes" % (st, len(b)))
    check(len(b) > len(a) and b.startswith(a), "second live GET %d bytes, first %d: longer and the same prefix?"
          % (len(b), len(a)))
    secs = []
    for name, data in (("live1", a), ("live2", b)):
        s = ogg_streams(data, name)
        check(len(s) == 1 and not s[0]["has_eos"], "%s: %d streams, eos %r" % (name, len(s), s[-1]["has_eos"]))
        p = os.path.join(tmpdir(), name + ".opus")
        with open(p, "wb") as f:
            f.write(data)
        pcm = decode_clean(p, p + ".raw", "the replay while live (%s)" % name)
        secs.append((len(data), s[0]["seconds"], len(pcm) / RATE))
    log("while live: GET 1 %d bytes %.2f s (decoded %.2f s), GET 2 %d bytes %.2f s (decoded %.2f s)"
        % (secs[0] + secs[1]))

    wait_until(lambda: recording_info(srv, sid)["duration_s"] >= 7.0, 15 * SLOW, "7 s recorded")
    st, _, obj = http_json(srv, "POST", "/api/spaces/%s/end" % sid, headers=bearer(hk))
    check(st == 200, "end -> %d %r" % (st, obj))
    wait_until(lambda: recording_info(srv, sid)["recording"] is False, 5 * SLOW, "API: recording false after end")
    info = recording_info(srv, sid)
    st, hd, full = get(srv, path)      # at once: the API says the recording is over
    stop_process(pub)
    check(st == 200, "GET after end -> %d" % st)
    streams = ogg_streams(full, "replay after end")
    log("after end: API %r; GET %d bytes, %d stream(s), last page EOS %s" % (
        {k: info[k] for k in ("recording", "bytes", "duration_s", "segments", "gap_s")}, len(full), len(streams),
        streams[-1]["has_eos"]))
    check(streams[-1]["has_eos"], "the replay fetched right after the API showed recording false ends without "
          "the end-of-stream flag (%d bytes; API bytes %d)" % (len(full), info["bytes"]))
    check(int(hd.get("content-length", -1)) == len(full) == info["bytes"], "Content-Length %r, body %d, API bytes %d"
          % (hd.get("content-length"), len(full), info["bytes"]))
    check(hd.get("accept-ranges") == "bytes" and hd.get("content-type") == "audio/ogg", "replay headers %r" % hd)
    check(info["segments"] == 1 and info["gap_s"] == 0 and not info["failing"] and info["suspect_segments"] == 0,
          "API after end: %r" % info)
    check(abs(streams[0]["seconds"] - info["duration_s"]) < 0.0015, "replay %.3f s, API duration_s %.3f"
          % (streams[0]["seconds"], info["duration_s"]))
    fp = os.path.join(tmpdir(), "replay.opus")
    with open(fp, "wb") as f:
        f.write(full)
    ok, out = oggz_validate(fp)
    check(ok, "oggz-validate on the replay: %s" % out)
    for p in segment_files(srv.data_dir, sid):
        check_segment_file(p)
    full_pcm = decode_clean(fp, fp + ".raw", "the replay after end")
    fig = match_content(ref, full_pcm, "the replay")
    log("replay content: %r" % fig)
    st, _, lst = http_json(srv, "GET", "/api/recordings")
    mine = [r for r in lst["recordings"] if r["space"] == sid]
    check(st == 200 and len(mine) == 1, "GET /api/recordings: %r" % lst)
    for k in ("space", "url", "recording", "failing", "bytes", "duration_s", "gap_s", "segments", "suspect_segments",
              "started_at"):
        check(k in mine[0], "GET /api/recordings: %r lacks %s" % (mine[0], k))
    check(mine[0]["url"] == path and mine[0]["recording"] is False and mine[0]["state"] == "ended",
          "GET /api/recordings: %r" % mine[0])
    st, _, sp = http_json(srv, "GET", "/api/spaces/%s" % sid)
    check(sp["recording"] and sp["recording"]["recording"] is False and sp["recording"]["bytes"] == len(full),
          "GET space after end: recording %r" % sp["recording"])

    check_head(srv, path, hd, len(full))
    check_ranges(srv, path, full)
    check_seek(srv, path, full_pcm)
    check_traversals(srv, sid)
    srv.stop()


if __name__ == "__main__":
    run_test(main)
