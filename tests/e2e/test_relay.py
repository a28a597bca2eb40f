"""Edge relays (`tribune relay --origin URL`, docs/internals/relay.md): an origin (`tribune demo`) and a
2-level tree of edges, A fed by the origin and B fed by A, each a separate process on loopback.

  1. The demo through both edges: ffmpeg decodes 3 s of B's live.opus with no decoder message, and
     the demo's notes (262, 330, 392, 523 Hz) stand 20 dB above a 1500 Hz bin in most 20 ms windows.
  2. Counts: tribune-load joins N_A listeners to A (Ogg) and N_B to B (WebSocket); the origin's
     GET /api/spaces/demo counts hearing == N_A + N_B (the whole tree's, each listener once: the
     edges' upstream connections are not counted) within a deadline, with listeners.edges.edges == 1.
  3. The origin is killed (SIGKILL) for about 5 s: both edges keep every listener connected (their
     own API counts N_A + N_B and N_B connected throughout), and once the origin is back on the same
     port the origin's count converges to N_A + N_B again. At the end each tribune-load reports all
     its listeners hearing, none failed (connect, reset, closed early, bad data): while the origin is
     away the edges' programs play silence, so the streams go on without a gap.
  4. Kill an edge: with N_K Listener threads on B only, the origin counts N_K, then B is killed and
     the origin's hearing drops to 0 within 5 s (A's report of B expires after 2.5 s, A reports every
     second).
  5. Publishing to an edge is refused with 403 (publish to the origin).
  6. The edges follow the origin's state (the answer to their reports): a listener on B of a space
     scheduled at the origin counts as waiting there, then hearing within 5 s of POST .../live.
  7. With edge_key set, POST /api/edges without the key or with a wrong one is 403; with it, 200 and
     the reported spaces' states and the spaces to load ahead ("soon": the live demo), and the report
     counts.
  8. Loaded ahead: a space scheduled at the origin to start in 60 s is loaded on A and on B (their
     /metrics list it) and both upstreams are open (the origin and A count one upstream each), before
     any listener asked an edge, within 5 s; its host publishes (green), goes live, and a listener who
     joins B at that moment hears sound (an Opus packet of 20 bytes or more) within 1.5 s.
  9. HLS at an edge: B's playlist for that space passes ffprobe (Opus, 48 kHz), and so do its init
     and latest segment; a beacon posted to B counts at B (format hls) and at the origin (hearing 1,
     the edges' share) within 5 s.
"""
import json
import os
import re
import signal
import subprocess
import time

import audio
from lib import (Listener, Server, check, ffmpeg_decode_url, ffmpeg_publish, http, http_json, log,
                 run_test, start_load, tmpdir, wait_until, IS_ASAN, SLOW)

N_A = 40 if IS_ASAN else 100
N_B = 40 if IS_ASAN else 100
N_K = 5
LOAD_S = 22
NOTES = (261.63, 329.63, 392.0, 523.25)
NOISE_HZ = 1500.0


def listeners(srv):
    st, _, obj = http_json(srv, "GET", "/api/spaces/demo", timeout=5)
    check(st == 200, "GET /api/spaces/demo on %s -> %d %r" % (srv.name, st, obj))
    return obj["listeners"]


def metric(srv, name, labels):
    st, _, body = http(srv, "GET", "/metrics")
    check(st == 200, "GET /metrics -> %d" % st)
    for line in body.decode().splitlines():
        if line.startswith(name + "{"):
            lab = line[len(name) + 1:line.index("}")]
            if all(('%s="%s"' % kv) in lab for kv in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return None


def space_listeners_of(srv, sid):
    st, _, o = http_json(srv, "GET", "/api/spaces/%s" % sid, timeout=5)
    check(st == 200, "GET /api/spaces/%s on %s -> %d %r" % (sid, srv.name, st, o))
    return o["listeners"]


def space_state(srv, sid):
    st, _, o = http_json(srv, "GET", "/api/spaces/%s" % sid, timeout=5)
    check(st == 200, "GET /api/spaces/%s on %s -> %d %r" % (sid, srv.name, st, o))
    return o["state"]


def check_hls(edge, sid):
    """The edge's own HLS: its playlist and a segment (after the init) pass ffprobe as Opus, 48 kHz."""
    base = "/spaces/%s/hls/" % sid

    def playlist():
        st, _, body = http(edge, "GET", base + "live.m3u8")
        check(st in (200, 503), "GET %slive.m3u8 on %s -> %d %r" % (base, edge.name, st, body[:200]))
        return body.decode() if st == 200 else None
    wait_until(lambda: playlist() is not None, 10 * SLOW, "the edge's HLS playlist", 0.2)
    text = playlist()
    lines = text.split("\n")
    check(lines[0] == "#EXTM3U", "the edge's playlist:\n%s" % text)
    init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', text)
    segs = [ln for ln in lines if ln.endswith(".m4s")]
    check(init and segs, "the edge's playlist has no init or no segment:\n%s" % text)
    r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,sample_rate", "-of",
                        "default=nw=1", edge.url + base + "live.m3u8"], capture_output=True, timeout=20)
    probe = r.stdout.decode()
    check(r.returncode == 0 and "codec_name=opus" in probe and "sample_rate=48000" in probe,
          "ffprobe on the edge's playlist: %s %s" % (probe, r.stderr.decode()[-500:]))
    path = os.path.join(tmpdir(), "edge-seg.mp4")
    with open(path, "wb") as f:
        for name in (init.group(1), segs[-1]):
            st, hd, body = http(edge, "GET", base + name)
            check(st == 200 and hd.get("content-type") == "audio/mp4" and body,
                  "GET %s%s on %s -> %d %r" % (base, name, edge.name, st, hd))
            f.write(body)
    r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,sample_rate:format=duration",
                        "-of", "default=nw=1", path], capture_output=True, timeout=20)
    probe = r.stdout.decode()
    check(r.returncode == 0 and "codec_name=opus" in probe and "sample_rate=48000" in probe,
          "ffprobe on the edge's init + %s: %s %s" % (segs[-1], probe, r.stderr.decode()[-500:]))
    log("HLS at edge %s: playlist of %d segments, ffprobe on it and on init + %s: %s"
        % (edge.name, len(segs), segs[-1], " ".join(probe.split())))


def run_load(url, n, out):
    return start_load(url, ["-n", n, "-r", 500, "-d", LOAD_S, "--json", out, "--quiet"])


def check_tone(edge):
    s = ffmpeg_decode_url(edge.url + "/spaces/demo/live.opus", 3, os.path.join(tmpdir(), "edge.raw"),
                          "through the edge")
    check(abs(len(s) / 48000.0 - 3.0) <= 0.15, "decoded %.2f s through the edge, expected 3" % (len(s) / 48000.0))
    tables = {f: audio.dft_tables(f) for f in NOTES + (NOISE_HZ,)}
    good = total = 0
    for i in range(0, len(s) - audio.WIN, audio.WIN):
        seg = s[i:i + audio.WIN]
        note = max(audio.bin_power_db(seg, f, tables[f]) for f in NOTES)
        noise = audio.bin_power_db(seg, NOISE_HZ, tables[NOISE_HZ])
        total += 1
        good += note >= -40 and note - noise >= 20
    log("through 2 edges: %d of %d 20 ms windows carry a demo note (>= -40 dBFS, 20 dB over %g Hz)"
        % (good, total, NOISE_HZ))
    check(good >= 0.6 * total, "the demo's notes are missing through the edges: %d of %d windows" % (good, total))


def main():
    origin = Server(cmd="demo", extra=["--workers", "1"], name="origin").start()
    edge_a = Server(cmd="relay", extra=["--origin", origin.url, "--workers", "1"], name="edge-a").start()
    edge_b = Server(cmd="relay", extra=["--origin", edge_a.url, "--workers", "1"], name="edge-b").start()

    # 5. publishing to an edge
    st, _, body = http(edge_b, "PUT", "/spaces/demo/live.opus", body=b"x", headers={"Content-Type": "audio/ogg"})
    check(st == 403 and b"origin" in body, "PUT on an edge -> %d %r" % (st, body))
    st, _, _ = http(edge_b, "GET", "/spaces/nosuchspace/live.opus")
    check(st == 404, "an unknown space through two edges -> %d, expected 404" % st)

    # 1. the demo through both edges
    check_tone(edge_b)

    # 2. counts: the whole tree's at the origin
    out_a = os.path.join(tmpdir(), "load-a.json")
    out_b = os.path.join(tmpdir(), "load-b.json")
    t_start = time.monotonic()
    load_a = run_load(edge_a.url + "/spaces/demo/live.opus", N_A, out_a)
    load_b = run_load(edge_b.url + "/spaces/demo/ws", N_B, out_b)
    total = N_A + N_B
    try:
        def tree_counted():
            return listeners(origin)["hearing"] == total

        wait_until(tree_counted, 10, "the origin to count %d hearing (the tree's)" % total, 0.1)
        lo = listeners(origin)
        log("%.1f s after the loads started: origin counts %r" % (time.monotonic() - t_start, lo))
        check(lo["connected"] == total and lo["edges"]["edges"] == 1,
              "origin: connected %r, edges %r (expected %d, 1 edge)" % (lo["connected"], lo["edges"], total))
        m = {k: metric(origin, "tribune_format_listeners", {"space": "demo", "format": k, "state": "hearing"})
             for k in ("ogg", "ws", "edge")}
        m["all"] = metric(origin, "tribune_listeners", {"space": "demo", "state": "hearing"})
        log("origin /metrics, hearing: %r" % m)
        check(m == {"ogg": 0, "ws": 0, "edge": total, "all": total},
              "origin /metrics hearing %r, expected the edges' %d and no own listener" % (m, total))

        # 3. the origin goes away for ~5 s
        port = origin.port
        origin.proc.send_signal(signal.SIGKILL)
        origin.proc.wait()
        origin.stopped = True
        t_kill = time.monotonic()
        log("origin killed")
        while time.monotonic() - t_kill < 5:
            la, lb = listeners(edge_a), listeners(edge_b)
            check(la["connected"] == total and lb["connected"] == N_B,
                  "while the origin is away, edges count A %r, B %r connected (expected %d, %d)"
                  % (la["connected"], lb["connected"], total, N_B))
            time.sleep(0.25)
        log("5 s without the origin: A still counts %d connected, B %d" % (la["connected"], lb["connected"]))
        origin.start(port=port)
        t_back = time.monotonic()
        wait_until(tree_counted, 10, "the origin to count %d hearing again after its return" % total, 0.1)
        log("the origin counts the tree's %d hearing again %.1f s after its return" % (total, time.monotonic() - t_back))
        check(time.monotonic() - t_start < LOAD_S - 2, "the loads ended before the count converged")

        for name, p, out, n in (("A", load_a, out_a, N_A), ("B", load_b, out_b, N_B)):
            p.wait(LOAD_S + 30)
            p.reader.join(10)
            check(p.returncode == 0, "tribune-load on %s exited %s: %s" % (name, p.returncode, "\n".join(p.lines[-30:])))
            with open(out) as f:
                rep = json.load(f)
            log("tribune-load on edge %s: hearing %d of %d, failed %d %r, stalled ever %d, max gap %d ms, skips %d"
                % (name, rep["hearing"], n, rep["failed"], rep.get("failed_by_kind"), rep["ever_stalled"],
                   rep["max_gap_ms"], rep["skips"]))
            check(rep["failed"] == 0 and rep["joined"] == n, "tribune-load on %s: %r" % (name, rep))
            check(rep["hearing"] == n, "tribune-load on %s: %d of %d hearing" % (name, rep["hearing"], n))
    finally:
        for p in (load_a, load_b):
            if p.poll() is None:
                p.kill()
                p.wait()

    # 6. the edges follow the origin's state: waiting in a scheduled space, hearing once it is live
    st, _, obj = http_json(origin, "POST", "/api/spaces", {"title": "Later", "starts_at": int(time.time()) + 600})
    check(st == 201, "POST /api/spaces -> %d %r" % (st, obj))
    sid, hkey = obj["id"], obj["host_key"]
    early = Listener(edge_b, sid, parse=False, keep=False, max_seconds=30)
    early.start()
    early.wait_head(5)
    check(early.status == 200, "a listener of a scheduled space through two edges: %r" % early.status)

    def space_listeners(srv):
        st, _, o = http_json(srv, "GET", "/api/spaces/%s" % sid, timeout=5)
        check(st == 200, "GET /api/spaces/%s on %s -> %d" % (sid, srv.name, st))
        return o["listeners"]
    # (the edges' share counts: until A's report comes, A's own upstream is a listener waiting here)
    wait_until(lambda: space_listeners(origin)["waiting"] == 1 and space_listeners(origin)["edges"]["waiting"] == 1,
               5, "the origin to count B's listener waiting", 0.1)
    check(space_listeners(origin)["hearing"] == 0, "scheduled: origin %r" % space_listeners(origin))
    st, _, obj = http_json(origin, "POST", "/api/spaces/%s/live" % sid, headers={"Authorization": "Bearer " + hkey})
    check(st == 200, "POST live -> %d %r" % (st, obj))
    t_live = time.monotonic()
    wait_until(lambda: space_listeners(origin)["hearing"] == 1 and space_listeners(origin)["edges"]["hearing"] == 1,
               5, "the origin to count B's listener hearing", 0.1)
    log("scheduled space: B's listener counted waiting at the origin, then hearing %.1f s after go-live"
        % (time.monotonic() - t_live))
    early.stop()

    # 8. loaded ahead: a space scheduled to start within RELAY_AHEAD_S is loaded on both edges, its
    #    upstreams open, before any listener asked them; a listener who joins at the start hears at once
    soon_at = int(time.time()) + 60
    st, _, obj = http_json(origin, "POST", "/api/spaces", {"title": "Soon", "starts_at": soon_at})
    check(st == 201, "POST /api/spaces -> %d %r" % (st, obj))
    sid2, hkey2 = obj["id"], obj["host_key"]
    t_made = time.monotonic()

    def loaded(srv):  # /metrics lists the loaded spaces, and never loads one
        st, _, body = http(srv, "GET", "/metrics")
        check(st == 200, "GET /metrics on %s -> %d" % (srv.name, st))
        return ('space="%s"' % sid2) in body.decode()

    def upstreams(srv):  # the edges' upstream connections open to srv, from their reports
        return space_listeners_of(srv, sid2)["edges"]["upstreams"]
    wait_until(lambda: loaded(edge_a) and loaded(edge_b), 5 * SLOW,
               "both edges to load the space scheduled in 60 s, with no listener", 0.1)
    wait_until(lambda: upstreams(origin) == 1 and upstreams(edge_a) == 1, 5 * SLOW,
               "the upstreams of A (at the origin) and B (at A) to be open", 0.1)
    log("space scheduled 60 s ahead: loaded on A and B, both upstreams open, %.1f s after its creation"
        % (time.monotonic() - t_made))
    check(space_listeners_of(edge_b, sid2)["connected"] == 0, "a listener on B already? %r"
          % space_listeners_of(edge_b, sid2))
    pub = ffmpeg_publish(origin, sid2, hkey2, 30)
    wait_until(lambda: space_state(origin, sid2) == "green" and
               (metric(origin, "tribune_program_frames_total", {"space": sid2, "kind": "passthrough"}) or 0) > 0,
               10 * SLOW, "the host's audio to reach the origin's program (green, not yet live)", 0.1)
    st, _, obj = http_json(origin, "POST", "/api/spaces/%s/live" % sid2, headers={"Authorization": "Bearer " + hkey2})
    check(st == 200, "POST live -> %d %r" % (st, obj))
    t_join = time.monotonic()
    at_start = Listener(edge_b, sid2, parse=True, keep=False, max_seconds=30)
    at_start.start()
    at_start.wait_head(5)

    def first_audio():  # arrival of the first page with a packet of sound (silence packets are < 20 bytes)
        with at_start.lock:
            for t, pg in at_start.pages[2:]:
                if any(20 <= lv for lv in pg.lacing):
                    return t
        return None
    wait_until(lambda: first_audio() is not None, 10 * SLOW, "the listener who joined B at the start to hear sound")
    took = first_audio() - t_join
    log("joined B as the space went live: first sound after %.2f s (two edges' jitter buffers)" % took)
    check(took <= 1.5 * SLOW, "first sound at B %.2f s after joining at the start" % took)
    at_start.stop()

    # 9. HLS at an edge: B builds it from its own program; a beacon posted to B counts at the origin
    check_hls(edge_b, sid2)
    wait_until(lambda: space_listeners_of(origin, sid2)["connected"] == 0, 5 * SLOW,
               "the origin to count no listener of %s" % sid2, 0.1)
    st, _, obj = http_json(edge_b, "POST", "/api/spaces/%s/beacon" % sid2,
                           {"session": "player-edge-1", "playing": True, "buffered_s": 4.0})
    check(st == 200, "a beacon to edge B -> %d %r" % (st, obj))
    t_beacon = time.monotonic()
    check(metric(edge_b, "tribune_format_listeners", {"space": sid2, "format": "hls", "state": "hearing"}) == 1,
          "edge B does not count the HLS player it heard from")
    wait_until(lambda: space_listeners_of(origin, sid2)["hearing"] == 1, 5 * SLOW,
               "the origin to count the HLS player that beacons to B", 0.1)
    lo = space_listeners_of(origin, sid2)
    check(lo["edges"]["hearing"] == 1, "origin: the HLS player is not the edges' %r" % lo)
    log("a beacon posted to B: the origin counts its player hearing %.1f s later" % (time.monotonic() - t_beacon))
    pub.kill()
    pub.wait()

    # 4. an edge dies: its listeners leave the origin's count within 5 s
    lsts = [Listener(edge_b, "demo", parse=False, keep=False, max_seconds=30) for _ in range(N_K)]
    for lst in lsts:
        lst.start()
    wait_until(lambda: listeners(origin)["hearing"] == N_K, 10, "the origin to count B's %d listeners" % N_K, 0.1)
    edge_b.kill()
    t_kill = time.monotonic()
    wait_until(lambda: listeners(origin)["hearing"] == 0, 5, "the origin to drop the dead edge's listeners", 0.1)
    log("edge B killed: the origin's hearing dropped from %d to 0 in %.1f s" % (N_K, time.monotonic() - t_kill))
    for lst in lsts:
        lst.stop()
    edge_a.stop()
    origin.stop()

    # 7. with edge_key set, a report needs it
    keyed = Server(cmd="demo", extra=["--workers", "1", "--edge_key", "s3cret"], name="keyed").start()
    report = {"edge": "e1", "spaces": [{"id": "demo", "connected": 3, "hearing": 3}]}
    for hdrs, want in (({}, 403), ({"X-Tribune-Edge-Key": "wrong"}, 403), ({"X-Tribune-Edge-Key": "s3cret"}, 200)):
        st, _, obj = http_json(keyed, "POST", "/api/edges", report, headers=hdrs)
        check(st == want, "POST /api/edges with %r -> %d %r (expected %d)" % (hdrs, st, obj, want))
    check(obj["spaces"] == [{"id": "demo", "state": "live"}], "the answer to a report: %r" % obj)
    soon = obj.get("soon")
    check(isinstance(soon, list) and [x["id"] for x in soon] == ["demo"] and soon[0]["state"] == "live",
          "the answer's spaces to load ahead: %r" % soon)
    check(listeners(keyed)["edges"]["hearing"] == 3, "a keyed report not counted: %r" % listeners(keyed))
    keyed.stop()


if __name__ == "__main__":
    run_test(main)
