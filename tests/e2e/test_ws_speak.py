"""The browser speak path (issue 8): GET /spaces/{id}/speak, a WebSocket carrying Opus packets into the
mixer, and "who is talking now" (level_dbfs, talking in GET /api/spaces/{id}).

 1. Refusals before the upgrade, JSON bodies: wrong key 401, unknown speaker 404, no WebSocket headers
    426 or 400; each leaves the space as it was.
 2. A speaker "web" connects with ?key=...&name=web: 101, then {"type":"hello",...,"muted":false}.
 3. A tone file (ffmpeg: 440 Hz at -6 dBFS for 3 s, then 2 s of silence; Opus 20 ms mono 48 kHz) is
    demuxed with lib's Ogg parser and sent one packet per 20 ms, paced by the monotonic clock, as
    Tribune audio messages (type 1, sequence, timestamp). Meanwhile speaker "ogg" publishes 660 Hz
    with ffmpeg over PUT, and a listener records live.opus.
 4. While the tone plays GET /api/spaces/{id} shows web talking=true (level above -30 dBFS) within
    1.5 s of the first packet; after the tone it shows talking=false within 1.5 s of its end.
 5. The listener's program (decoded with ffmpeg, Goertzel-style bins per 20 ms: audio.py) has 440 Hz
    and 660 Hz together for at least 2 s: the WebSocket speaker is mixed with the Ogg one. The latency
    from the first tone packet's send to the arrival of the listener's page holding the tone's onset
    is printed (under 1 s required; it includes the Ogg listener's 100 ms chunks).
 6. Host mute and unmute: the WebSocket speaker gets {"type":"muted","muted":true} then false.
 7. DELETE the speaker: its WebSocket gets close 1008 "removed by the host"; its key then answers 401.
 9. A speaker that stops sending (a dead tab) is closed with 1001 after publisher_timeout_ms (2 s here);
    ending the space sends the state message "ended" and then closes a speaker with 1001; a session still open at shutdown costs nothing (the
    server exits 0 with a clean sanitizer log).
 8. Violations (as the host, without a name): a text message 1003, an oversized message 1009, a
    message shorter than its header 1002, an unknown type 1003, a packet that is not Opus 1003, an
    unmasked frame 1002; each closes only that session: the listener keeps getting pages throughout,
    the server stays up, tribune_speak_sessions{transport="ws"} is back to 0.
Every wait polls with a deadline.
"""
import json
import os
import struct
import subprocess
import threading
import time
import urllib.parse

import audio
import wslib
from lib import (Listener, Server, bearer, check, create_space, ffmpeg_publish_speaker, http, http_json, log,
                 metric_value, packets, parse_pages, run_test, tmpdir, wait_until)

TONE_S, SILENCE_S = 3.0, 2.0
WEB_HZ, OGG_HZ, NOISE_HZ = 440, 660, 1870


def encode_tone(path):
    expr = "if(lt(t\\,%g)\\,0.5*sin(2*PI*%d*t)\\,0)" % (TONE_S, WEB_HZ)
    argv = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
            "aevalsrc=%s:s=48000:c=mono" % expr, "-t", str(TONE_S + SILENCE_S), "-c:a", "libopus", "-b:a", "48k",
            "-frame_duration", "20", "-f", "ogg", path]
    r = subprocess.run(argv, capture_output=True, timeout=60)
    check(r.returncode == 0, "ffmpeg could not encode the tone: %s" % r.stderr.decode(errors="replace"))
    with open(path, "rb") as f:
        pages, _ = parse_pages(f.read())
    pkts = packets(pages)
    check(pkts[0].startswith(b"OpusHead") and pkts[1].startswith(b"OpusTags"), "not an Ogg/Opus file")
    return pkts[2:]


def audio_msg(seq, pkt):
    return b"\x01" + struct.pack("!IQ", seq, (seq + 1) * 960) + pkt


def space_speaker(srv, sid, name):
    st, _, obj = http_json(srv, "GET", "/api/spaces/%s" % sid)
    check(st == 200, "GET /api/spaces/%s -> %d" % (sid, st))
    return next((s for s in obj.get("speakers") or [] if s.get("name") == name), None)


def invite(srv, sid, hkey, name):
    st, _, obj = http_json(srv, "POST", "/api/spaces/%s/speakers" % sid, {"name": name}, headers=bearer(hkey))
    check(st == 201 and obj.get("key"), "invite %s -> %d %r" % (name, st, obj))
    return obj["key"]


def speak_path(sid, key, name=None):
    q = "key=" + urllib.parse.quote(key, safe="")
    if name:
        q += "&name=" + name
    return "/spaces/%s/speak?%s" % (sid, q)


def expect_refusal(srv, path, statuses, what, headers=None):
    try:
        ws = wslib.connect(srv, path, headers=headers)
    except wslib.HandshakeError as e:
        body = json.loads(e.body.decode() or "null")
        check(e.status in statuses and isinstance(body, dict) and body.get("error"),
              "%s: %s %r (expected %s with a JSON error)" % (what, e.status, body, statuses))
        log("%s: %d %s" % (what, e.status, body["error"]))
        return
    ws.close()
    check(False, "%s: the upgrade was accepted" % what)


def hello(ws, name):
    op, payload = ws.recv_data(timeout=5)
    msg = json.loads(payload.decode())
    check(op == wslib.TEXT and msg.get("type") == "hello" and msg.get("name") == name
          and msg.get("muted") is False and msg.get("state") in ("scheduled", "green", "live"),
          "first message is not the hello for %s: %r" % (name, msg))
    return msg


class Sender(threading.Thread):
    """Sends the packets one per 20 ms on a monotonic schedule; t0 is when the first left."""

    def __init__(self, ws, pkts):
        super().__init__(daemon=True)
        self.ws, self.pkts, self.t0, self.error = ws, pkts, None, None

    def run(self):
        try:
            self.t0 = time.monotonic()
            for i, p in enumerate(self.pkts):
                due = self.t0 + i * 0.02
                while time.monotonic() < due:
                    time.sleep(min(0.005, max(0.0, due - time.monotonic())))
                self.ws.send(wslib.BINARY, audio_msg(i, p))
        except Exception as e:
            self.error = e


def expect_close(ws, code, what):
    """The server's close frame carries `code`; we answer it as a browser does, and the server then
    closes the connection at once (the closing handshake completes)."""
    t0 = time.monotonic()
    for _ in range(1000):
        op, _ = ws.recv(timeout=max(0.0, t0 + 5 - time.monotonic()))
        if op == wslib.CLOSE:
            break
    check(ws.close_code == code, "%s: close code %s %r (expected %d)" % (what, ws.close_code, ws.close_reason, code))
    ws.send(wslib.CLOSE, struct.pack("!H", code))
    closed = ws.wait_closed(timeout=1)
    check(closed, "%s: the server did not close the connection within 1 s of our close frame" % what)
    log("%s: closed with %d %r in %.2f s" % (what, ws.close_code, ws.close_reason, time.monotonic() - t0))


def violations(srv, sid, hkey, lst):
    before = lst.page_count()
    good = audio_msg(0, b"\xf8\xff\xfe")   # a valid 20 ms CELT silence packet
    cases = [
        ("text message", lambda ws: ws.send(wslib.TEXT, b'{"hello":1}'), 1003),
        ("oversized message", lambda ws: ws.send(wslib.BINARY, audio_msg(1, b"\xf8" + b"\0" * 1400)), 1009),
        ("shorter than the header", lambda ws: ws.send(wslib.BINARY, b"\x01\0\0"), 1002),
        ("unknown type", lambda ws: ws.send(wslib.BINARY, b"\x07" + good[1:]), 1003),
        ("not Opus", lambda ws: ws.send(wslib.BINARY, audio_msg(1, b"\x03")), 1003),
        ("unmasked frame", lambda ws: ws.send_raw(wslib.frame(wslib.BINARY, good, mask=False)), 1002),
    ]
    for what, act, code in cases:
        ws = wslib.connect(srv, speak_path(sid, hkey))
        hello(ws, "host")
        ws.send(wslib.BINARY, good)
        act(ws)
        expect_close(ws, code, what)
        ws.sock.close()
        srv.check_alive(what)
        wait_until(lambda: space_speaker(srv, sid, "host") is None, 5, "the host's slot to be free after " + what)
    lst.wait_pages(before + 10, 10, "while the violations were answered")
    lst.check_ok()


def latency(rec, lst, t0, tone_levels):
    """Mouth to ear, browser speaker to Ogg listener: from the first tone packet's send to the arrival
    of the page holding the program's onset of that tone (half its steady amplitude). It includes the
    speaker's jitter target (80 ms), one program frame and the Ogg listener's 100 ms chunks."""
    onset = audio.onset(rec, WEB_HZ, rec.g0, audio.median(tone_levels))
    check(onset is not None, "no onset of the WebSocket speaker's tone in the program")
    arrival = next((t for t, p in list(lst.pages) if p.granule >= onset), None)
    check(arrival is not None, "no page holds the onset")
    ms = (arrival - t0) * 1000
    log("WebSocket speaker -> Ogg listener: %.0f ms (the tone's onset at granule %d)" % (ms, onset))
    check(ms < 1000, "WebSocket speaker to Ogg listener took %.0f ms (expected well under 1 s)" % ms)


def test():
    srv = Server(extra=["--publisher_timeout_ms", "2000"]).start()
    sid, hkey = create_space(srv, "speak")
    st, _, _ = http(srv, "POST", "/api/spaces/%s/live" % sid, headers=bearer(hkey))
    check(st == 200, "go live -> %d" % st)
    wkey, okey = invite(srv, sid, hkey, "web"), invite(srv, sid, hkey, "ogg")
    pkts = encode_tone(os.path.join(tmpdir(), "tone.opus"))
    log("tone file: %d packets" % len(pkts))

    expect_refusal(srv, speak_path(sid, "wrong-key", "web"), (401,), "wrong key")
    expect_refusal(srv, speak_path(sid, wkey, "nobody"), (404,), "unknown speaker")
    expect_refusal(srv, speak_path("nosuchspace", wkey, "web"), (404,), "unknown space")
    expect_refusal(srv, speak_path(sid, wkey, "web"), (400, 426), "no upgrade",
                   headers={"Upgrade": None, "Connection": "close"})

    lst = Listener(srv, sid, max_seconds=60)
    lst.start()
    lst.wait_head()
    ogg = ffmpeg_publish_speaker(srv, sid, "ogg", okey, 20, freq=OGG_HZ, amplitude=0.5)
    ws = wslib.connect(srv, speak_path(sid, wkey, "web"))
    hello(ws, "web")
    wait_until(lambda: (space_speaker(srv, sid, "ogg") or {}).get("talking"), 10, "ogg talking")
    sender = Sender(ws, pkts)
    sender.start()
    wait_until(lambda: sender.t0 is not None, 2, "the sender to start")
    on = wait_until(lambda: (lambda s: s if s and s.get("talking") else None)(space_speaker(srv, sid, "web")),
                    1.5, "web talking=true while its tone plays")
    t_on = time.monotonic() - sender.t0
    check(on.get("transport") == "ws" and on.get("level_dbfs", -120) > -30,
          "web while talking: %r (expected transport ws, level above -30 dBFS)" % on)
    log("web talking after %.2f s: level %.1f dBFS" % (t_on, on["level_dbfs"]))
    wait_until(lambda: time.monotonic() - sender.t0 > TONE_S, TONE_S + 1, "the tone to end")
    off = wait_until(lambda: (lambda s: s if s and s.get("talking") is False else None)(space_speaker(srv, sid, "web")),
                     1.5, "web talking=false after its tone")
    log("web not talking %.2f s after its tone: level %.1f dBFS" % (time.monotonic() - sender.t0 - TONE_S,
                                                                    off["level_dbfs"]))
    sender.join(SILENCE_S + 3)
    check(sender.error is None and not sender.is_alive(), "sender: %r" % sender.error)

    for muted in (True, False):
        st, _, _ = http(srv, "POST", "/api/spaces/%s/speakers/web/%s" % (sid, "mute" if muted else "unmute"),
                        headers=bearer(hkey))
        check(st == 200, "mute=%s -> %d" % (muted, st))
        op, payload = ws.recv_data(timeout=5)
        msg = json.loads(payload.decode())
        check(msg == {"type": "muted", "muted": muted}, "after mute=%s the speaker got %r" % (muted, msg))
    st, _, _ = http(srv, "DELETE", "/api/spaces/%s/speakers/web" % sid, headers=bearer(hkey))
    check(st in (200, 204), "DELETE web -> %d" % st)
    expect_close(ws, 1008, "removed")
    check("removed" in (ws.close_reason or ""), "close reason %r" % ws.close_reason)
    expect_refusal(srv, speak_path(sid, wkey, "web"), (401,), "removed speaker's key")

    violations(srv, sid, hkey, lst)
    check(metric_value(srv, "tribune_speak_sessions", {"space": sid, "transport": "ws"}) == 0,
          "tribune_speak_sessions{ws} is not 0 after every session closed")

    ws = wslib.connect(srv, speak_path(sid, hkey))
    hello(ws, "host")
    ws.send(wslib.BINARY, audio_msg(0, b"\xf8\xff\xfe"))
    t0 = time.monotonic()
    expect_close(ws, 1001, "a speaker that stopped sending")
    check(1.5 <= time.monotonic() - t0 <= 4.5, "timed out after %.2f s (publisher_timeout_ms 2000)"
          % (time.monotonic() - t0))

    lst.stop()
    ogg.kill()
    rec = audio.load_listener(lst)
    levels = rec.levels((WEB_HZ, OGG_HZ, NOISE_HZ))
    both = [g for g, lv in levels if lv[WEB_HZ] >= -40 and lv[OGG_HZ] >= -40
            and min(lv[WEB_HZ], lv[OGG_HZ]) - lv[NOISE_HZ] >= 20]
    runs = audio.runs(both)
    longest = max((n for _, n in runs), default=0)
    log("program: %d windows with both tones, longest run %.2f s" % (len(both), longest * 0.02))
    check(longest * 0.02 >= 2.0, "the program did not carry both tones together for 2 s (longest %.2f s)"
          % (longest * 0.02))
    latency(rec, lst, sender.t0, [lv[WEB_HZ] for g, lv in levels if g in set(both)])

    ws = wslib.connect(srv, speak_path(sid, hkey))
    hello(ws, "host")
    st, _, _ = http(srv, "POST", "/api/spaces/%s/end" % sid, headers=bearer(hkey))
    check(st == 200, "end -> %d" % st)
    # the state message comes before the close (wslay would send a close queued at once first)
    op, payload = ws.recv_data(timeout=5)
    check(op == wslib.TEXT and json.loads(payload.decode()) == {"type": "state", "state": "ended"},
          "ending the space: %r (expected the state message: ended, then the close)" % payload)
    expect_close(ws, 1001, "the space ended")
    sid2, hkey2 = create_space(srv, "left open")
    ws2 = wslib.connect(srv, speak_path(sid2, hkey2))
    check(hello(ws2, "host")["state"] == "scheduled", "hello before the host's connection made it live")
    op, payload = ws2.recv_data(timeout=5)
    check(json.loads(payload.decode()) == {"type": "state", "state": "live"},
          "the host speaking in a space without a start time: %r (expected the state message: live)" % payload)
    ws2.send(wslib.BINARY, audio_msg(0, b"\xf8\xff\xfe"))
    srv.stop()          # exits 0 with the session open, nothing leaked
    ws2.sock.close()


if __name__ == "__main__":
    run_test(test)
