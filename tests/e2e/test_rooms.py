"""Rooms (issue 6, /work/spec-rooms.md): several speakers mixed into one program, heard by a real listener.

Real ffmpeg publishers send sines (aevalsrc at full scale, Opus 48 kbit/s, 20 ms pages) on
/spaces/{id}/speakers/{name}.opus; one raw listener records the program from before the space is live
to its end; tests/e2e/audio.py decodes the recording and measures each tone per 20 ms window, each
window placed at its Ogg granule position, so that what the API answers (program_granule of go-live,
mute, unmute) is compared with what the listener heard at that very position of the program.

 1. Green, then live: a space created with starts_at in the future; speakers a (440 Hz) and b (660 Hz)
    connect: the space is green, listeners get silence (both tones below -60 dBFS before go-live's
    granule), the host's monitor has both tones. Live: from program_granule + 12000 (250 ms: the spec
    gives go-live no granule bound, and listeners switch at a 100 ms chunk boundary) every window has
    both tones, each > 20 dB above a non-tone bin (1870 Hz) and within 10 dB of the other; where they
    switch on is printed, and must not precede go-live's granule.
 2. Mute b: from the mute's program_granule + 4800, 660 Hz is > 30 dB below its level before (440 Hz
    stays); unmute: it is back within 6 dB of that level from the unmute's granule + 4800. Where 660 Hz
    falls and rises (half amplitude, to 0.5 ms) is printed and checked against the spec: not before the
    answer's granule G (this also checks the recording's granule arithmetic against the server's
    numbering), and by G + 1920 (the frame after G + 960) at the latest.
 3. No clipping: both publishers at full scale, the program decodes with no sample at |x| >= 32767
    over every stretch where both were mixed.
 4. Remove a (DELETE): its ffmpeg's connection closes within 1 s (its ESTABLISHED socket to the server
    is gone, or it exited), 440 Hz leaves the program, and a's old key answers 401.
 5. A speaker c (440 Hz) killed with SIGKILL mid-stream: b's 660 Hz is in every 20 ms window from 1 s
    before to 3 s after the kill (no gap, no dip over 10 dB below its median there).
 6. Requests to speak: a listener files one, the host lists it (pending first) and approves it, the
    requester reads the key once (a second read has none), publishes 1000 Hz with it and is heard.
 7. Bad input: each refusal is the status the spec gives, with a JSON {"error": ...} body, and
    GET /api/spaces/{id} is unchanged after it (state, speakers, max_speakers).
 8. End: 200 {"state":"ended"}; the listener is closed; joining answers 410, publishing 409, going
    live 409.
 9. Waiting, then live, at scale (heavy: one at a time, heavy.py): 2,000 listeners from tribune-load join
    a green space (two speakers connected); the server counts them waiting (2,000) and none hearing; the
    host goes live at T0 (unix time taken just before the request): the server's hearing reaches 2,000
    within 1 s (polled every 50 ms), and tribune-load's --loud-bytes 20 (the first page carrying an Opus
    packet over 20 bytes: sound, not silence) saw all 2,000 with p99 - T0 <= 1 s, and none before T0.
Every comparison prints both numbers. Waits poll with deadlines; nothing sleeps in place of a condition.
A refusal with the wrong status (or body) does not stop the test: it is printed as "SPEC MISMATCH" and the
test goes on, then fails at the end with the list, so that one run shows every departure from the spec.
"""
import json
import os
import resource
import signal
import time

import audio
import heavy
from lib import (Listener, Server, bearer, check, established_to_port, ffmpeg_publish_speaker,
                 fresh_source, http, http_json, http_json_from, log, proc_log, run_test, speaker_publish_status,
                 start_load, stop_process, wait_until)

A_HZ, B_HZ, C_HZ, R_HZ = 440, 660, 440, 1000
NOISE_HZ = 1870          # no tone, no intermodulation product of 440/660/1000 Hz near it
FREQS = (440, 660, 1000, NOISE_HZ)
MS = 48                  # granules per millisecond
PUBLISH_S = 150          # publishers outlive the test; they are stopped at its end
LIVE_MS = 250            # go-live has no granule bound in the spec: listeners switch from silence to the
                         # program at a chunk boundary (100 ms chunks), so both tones are required from
                         # 250 ms on; where they really start is printed (and must not precede go-live)
TONE_DB = -40.0          # a tone "present": at least this loud (dBFS) ...
OVER_NOISE_DB = 20.0     # ... and this far above the non-tone bin


MISMATCHES = []


def expect(cond, msg):
    """A check whose failure does not change what the rest of the test can observe (a status code,
    an error body): noted, printed, and failed at the end of the test."""
    if not cond:
        if msg not in MISMATCHES:     # the same request made twice is one finding
            MISMATCHES.append(msg)
        log("SPEC MISMATCH: %s" % msg)
    return cond


# ---- API helpers ------------------------------------------------------------------------------

def space(srv, sid):
    st, _, obj = http_json(srv, "GET", "/api/spaces/%s" % sid)
    check(st == 200, "GET /api/spaces/%s -> %d %r" % (sid, st, obj))
    return obj


def stable(obj):
    """What a refused request must leave unchanged in GET /api/spaces/{id}."""
    sp = sorted((s.get("name"), s.get("connected"), s.get("muted")) for s in obj.get("speakers") or [])
    return {"state": obj.get("state"), "title": obj.get("title"), "starts_at": obj.get("starts_at"),
            "max_speakers": obj.get("max_speakers"), "speakers": sp}


def speaker_state(srv, sid, name):
    for s in space(srv, sid).get("speakers") or []:
        if s.get("name") == name:
            return s
    return None


def host(srv, method, path, key, body=None):
    return http_json(srv, method, path, body, headers=bearer(key))


def invite(srv, sid, hkey, name):
    st, _, obj = host(srv, "POST", "/api/spaces/%s/speakers" % sid, hkey, {"name": name})
    check(st == 201 and isinstance(obj, dict) and obj.get("name") == name and obj.get("key"),
          "invite %s: POST /api/spaces/%s/speakers -> %d %r (expected 201 {name, key})" % (name, sid, st, obj))
    return obj["key"]


def wait_connected(srv, sid, names, timeout=10):
    def ok():
        got = {n: (speaker_state(srv, sid, n) or {}).get("connected") for n in names}
        return all(v is True for v in got.values()) and got
    got = wait_until(ok, timeout, "speakers %s connected (GET /api/spaces/%s speakers)" % (names, sid), 0.05)
    log("speakers connected: %s" % got)


def program_granule(srv, sid):
    g = space(srv, sid).get("program_granule")
    check(isinstance(g, int) and g >= 0, "GET /api/spaces/%s: program_granule %r is not a granule" % (sid, g))
    return g


def json_or_bytes(body):
    try:
        return json.loads(body.decode() or "null")
    except ValueError:
        return body[:200]


def check_error(st, obj, want, what):
    """A refusal: status `want` with a JSON {"error": "..."} body (a mismatch is noted, see expect())."""
    expect(st == want, "%s: answered %s %r, expected %d" % (what, st, obj, want))
    expect(isinstance(obj, dict) and isinstance(obj.get("error"), str) and obj["error"].strip(),
           "%s: %s without a JSON {\"error\": ...} body: %r" % (what, st, obj))


# ---- the recording ----------------------------------------------------------------------------

def last_granule(lst):
    for p in reversed(lst.page_list()):
        if p.granule > 0:
            return p.granule
    return -1


def wait_heard_until(lst, granule, timeout, what):
    """Until the listener has received program audio up to `granule`."""
    wait_until(lambda: lst.check_ok() or last_granule(lst) >= granule, timeout,
               "the listener to receive audio up to granule %d (%s; has %d)" % (granule, what, last_granule(lst)),
               0.05)


def snapshot(lst):
    return audio.load_listener(lst)


def present(lv, f):
    """Is tone f present in the levels lv of one window (see TONE_DB, OVER_NOISE_DB)?"""
    return lv[f] >= TONE_DB and lv[f] - lv[NOISE_HZ] >= OVER_NOISE_DB


def fmt_windows(rows, freqs, n=6):
    return ", ".join("g=%d %s" % (g, " ".join("%d:%.1f" % (f, lv[f]) for f in freqs)) for g, lv in rows[:n])


def wait_tone_heard(lst, freq, seconds, timeout, what, g_from):
    """Until the recording holds, from granule g_from on, `seconds` of consecutive windows with freq
    present; returns the granule where that run starts."""
    need = int(seconds * 50)

    def ok():
        rec = snapshot(lst)
        lv = rec.levels(FREQS, g_from)
        run = 0
        for g, x in lv:
            run = run + 1 if present(x, freq) else 0
            if run >= need:
                return g - (need - 1) * audio.WIN
        return None
    g = wait_until(ok, timeout, what, 0.3)
    log("%s: %d Hz heard from granule %d" % (what, freq, g))
    return g


# ---- the parts --------------------------------------------------------------------------------

def green_then_live(srv, sid, hkey, lst):
    """Part 1; returns the go-live granule."""
    obj = space(srv, sid)
    log("before go-live: state %s, listeners %s" % (obj.get("state"), obj.get("listeners")))
    check(obj.get("state") == "green", "two speakers connected: state %r, expected green" % obj.get("state"))
    # the monitor carries the mix in the green room
    mon = Listener(srv, sid, path="/spaces/%s/monitor.opus?key=%s" % (sid, hkey), max_seconds=30)
    mon.start()
    mon.wait_head(5)
    g_mon = wait_until(lambda: last_granule(mon) > 0 and last_granule(mon), 5, "monitor audio", 0.05)
    wait_heard_until(mon, g_mon + 2 * 48000, 10, "2 s of monitor")
    mon.stop()
    rec = audio.load_listener(mon)
    lv = rec.levels(FREQS, g_mon + 48000)
    both = [g for g, x in lv if present(x, A_HZ) and present(x, B_HZ)]
    log("monitor in green: both tones in %d of %d windows of its last second (440 median %.1f, 660 median "
        "%.1f dBFS)" % (len(both), len(lv), audio.summary(lv, A_HZ)[1], audio.summary(lv, B_HZ)[1]))
    check(len(lv) >= 40 and len(both) == len(lv), "monitor in green lacks a tone: %s" % fmt_windows(
        [r for r in lv if r[0] not in set(both)], FREQS))
    # listeners are waiting, not hearing, and get silence
    l = space(srv, sid)["listeners"]
    log("green: listeners waiting %s hearing %s" % (l.get("waiting"), l.get("hearing")))
    check(l.get("hearing") == 0 and l.get("waiting", 0) >= 1, "green room: listeners %r, expected waiting" % l)

    st, _, obj = host(srv, "POST", "/api/spaces/%s/live" % sid, hkey)
    check(st == 200 and obj.get("state") == "live" and isinstance(obj.get("program_granule"), int),
          "POST live -> %d %r (expected 200 {state: live, program_granule})" % (st, obj))
    g_live = obj["program_granule"]
    log("live at program granule %d" % g_live)
    wait_heard_until(lst, g_live + 3 * 48000, 15, "3 s after go-live")
    rec = snapshot(lst)
    before = rec.levels(FREQS, None, g_live - audio.WIN)
    loud = [r for r in before if max(r[1][A_HZ], r[1][B_HZ]) >= -60]
    log("before go-live: %d windows (%.1f s) recorded, loudest 440 %.1f dBFS, 660 %.1f dBFS"
        % (len(before), len(before) * 0.02, audio.summary(before, A_HZ)[2], audio.summary(before, B_HZ)[2]))
    check(len(before) >= 25, "too little recorded before go-live (%d windows) to judge the green room" % len(before))
    check(not loud, "listeners heard the green room before go-live: %s" % fmt_windows(loud, FREQS))
    after = rec.levels(FREQS, g_live, g_live + 3 * 48000)
    onset = next((g for g, x in after if present(x, A_HZ) and present(x, B_HZ)), None)
    log("both tones first in the window at granule %s = go-live + %s ms" % (
        onset, None if onset is None else (onset - g_live) // MS))
    live = rec.levels(FREQS, g_live + LIVE_MS * MS, g_live + 3 * 48000)
    bad = [(g, x) for g, x in live if not (present(x, A_HZ) and present(x, B_HZ)
                                           and abs(x[A_HZ] - x[B_HZ]) <= 10)]
    a, b, n = (audio.summary(live, f) for f in (A_HZ, B_HZ, NOISE_HZ))
    log("live, go-live + 250 ms .. + 3 s (%d windows): 440 min/median %.1f/%.1f, 660 %.1f/%.1f, "
        "%d Hz (no tone) max %.1f dBFS; largest 440-660 difference %.1f dB"
        % (len(live), a[0], a[1], b[0], b[1], NOISE_HZ, n[2],
           max(abs(x[A_HZ] - x[B_HZ]) for _, x in live)))
    check(len(live) >= 130, "only %d windows after go-live" % len(live))
    check(not bad, "%d windows after go-live + 250 ms lack a tone, or the two differ by over 10 dB: %s"
          % (len(bad), fmt_windows(bad, FREQS)))
    for f, steady in ((A_HZ, a[1]), (B_HZ, b[1])):
        on = audio.crossing(rec, f, g_live - 100 * MS, steady, rising=True, to_g=g_live + 500 * MS)
        log("%d Hz switches on at go-live %s (half its steady amplitude, to 0.5 ms)" % (f, ms_after(on, g_live)))
        causal(on, g_live, "%d Hz at go-live" % f)
    return g_live


def mute_unmute(srv, sid, hkey, lst):
    """Part 2; returns (mute granule, unmute granule)."""
    st, _, obj = host(srv, "POST", "/api/spaces/%s/speakers/b/mute" % sid, hkey)
    check(st == 200 and obj.get("name") == "b" and obj.get("muted") is True
          and isinstance(obj.get("program_granule"), int), "mute b -> %d %r" % (st, obj))
    g_mute = obj["program_granule"]
    check(speaker_state(srv, sid, "b").get("muted") is True, "GET /api/spaces/%s: b not shown muted" % sid)
    wait_heard_until(lst, g_mute + 100 * MS + 2 * 48000, 10, "2 s after the mute")
    st, _, obj = host(srv, "POST", "/api/spaces/%s/speakers/b/unmute" % sid, hkey)
    check(st == 200 and obj.get("name") == "b" and obj.get("muted") is False
          and isinstance(obj.get("program_granule"), int), "unmute b -> %d %r" % (st, obj))
    g_unmute = obj["program_granule"]
    wait_heard_until(lst, g_unmute + 100 * MS + 2 * 48000, 10, "2 s after the unmute")
    rec = snapshot(lst)

    before = rec.levels(FREQS, g_mute - 48000, g_mute - audio.WIN)
    ref = audio.summary(before, B_HZ)[1]
    muted = rec.levels(FREQS, g_mute + 100 * MS, g_unmute)
    loud = [(g, x) for g, x in muted if x[B_HZ] > ref - 30]
    a_gone = [(g, x) for g, x in muted if not present(x, A_HZ)]
    log("mute at granule %d: 660 Hz before %.1f dBFS (median of 1 s); from mute + 100 ms (%d windows) max %.1f "
        "dBFS = %.1f dB below; 440 Hz meanwhile min %.1f dBFS" % (
            g_mute, ref, len(muted), audio.summary(muted, B_HZ)[2], ref - audio.summary(muted, B_HZ)[2],
            audio.summary(muted, A_HZ)[0]))
    first_quiet = next((g for g, x in rec.levels(FREQS, g_mute, g_unmute) if x[B_HZ] <= ref - 30), None)
    log("660 Hz first 30 dB down in the window at granule %s = mute + %s ms" % (
        first_quiet, None if first_quiet is None else (first_quiet - g_mute) // MS))
    check(len(muted) >= 50, "only %d windows between mute + 100 ms and unmute" % len(muted))
    check(not loud, "660 Hz still within 30 dB of %.1f dBFS after mute + 100 ms: %s" % (ref, fmt_windows(loud, FREQS)))
    check(not a_gone, "440 Hz (a, not muted) missing while b was muted: %s" % fmt_windows(a_gone, FREQS))

    back = rec.levels(FREQS, g_unmute + 100 * MS, g_unmute + 100 * MS + 2 * 48000)
    off = [(g, x) for g, x in back if not present(x, B_HZ) or abs(x[B_HZ] - ref) > 6]
    log("unmute at granule %d: 660 Hz from unmute + 100 ms (%d windows) min/median %.1f/%.1f dBFS, before the "
        "mute %.1f" % (g_unmute, len(back), audio.summary(back, B_HZ)[0], audio.summary(back, B_HZ)[1], ref))
    check(len(back) >= 90, "only %d windows after the unmute" % len(back))
    check(not off, "660 Hz not back within 6 dB of %.1f dBFS after unmute + 100 ms: %s" % (ref, fmt_windows(off, FREQS)))
    # where exactly: the spec applies a change answered with G to every frame above G + 960 at the
    # latest, i.e. from the frame ending at G + 1920 (a ramp of a few ms may start earlier)
    g_off = audio.crossing(rec, B_HZ, g_mute - 100 * MS, ref, rising=False, to_g=g_unmute)
    g_on = audio.crossing(rec, B_HZ, g_unmute - 100 * MS, ref, rising=True, to_g=g_unmute + 500 * MS)
    log("660 Hz falls to half amplitude at mute %s, rises to it at unmute %s (spec: by + 40 ms at the latest)"
        % (ms_after(g_off, g_mute), ms_after(g_on, g_unmute)))
    causal(g_off, g_mute, "mute", g_mute + 1920)
    causal(g_on, g_unmute, "unmute", g_unmute + 1920)
    return g_mute, g_unmute


def ms_after(g, ref):
    return "never" if g is None else "%+.1f ms" % ((g - ref) / float(MS))


def causal(g, g_api, what, bound=None):
    """The recording's timeline against the API's: a switch the API answered with program_granule
    g_api cannot show in the program before it (to 1 ms: the crossing's resolution and a ramp's
    half-width), which checks the recording's granule arithmetic (audio.py) against the server's
    numbering; `bound`: the spec's latest granule for it."""
    expect(g is not None and g >= g_api - MS, "%s: the switch shows at program_granule %s, before the API's "
           "answer (%d): the recording and the API disagree on granules" % (what, ms_after(g, g_api), g_api))
    if bound is not None:
        expect(g is not None and g <= bound, "%s: the switch shows at program_granule %s, the spec's latest is "
               "%s" % (what, ms_after(g, g_api), ms_after(bound, g_api)))


def no_clipping(rec, spans):
    """Part 3 over the [from, to) granule spans where both speakers were mixed."""
    total = clipped = peak = 0
    for g_from, g_to in spans:
        lo, hi = max(0, rec.index_of(g_from)), min(len(rec.samples), rec.index_of(g_to))
        seg = rec.samples[lo:hi]
        total += len(seg)
        clipped += sum(1 for v in seg if v >= 32767 or v <= -32767)
        peak = max([peak] + [abs(v) for v in seg])
    log("no clipping: both speakers at full scale, %.1f s of program mixed from both: peak %d (%.2f dBFS), "
        "%d samples at |x| >= 32767" % (total / 48000.0, peak, audio.math.log10(max(peak, 1) / 32768.0) * 20,
                                        clipped))
    check(total >= 4 * 48000, "only %.1f s of mixed program to judge clipping on" % (total / 48000.0))
    check(clipped == 0 and peak < 32767, "the program clips: peak %d, %d samples at full scale" % (peak, clipped))


def remove_a(srv, sid, hkey, key_a, pub_a, lst):
    """Part 4; returns the program granule read just before the DELETE."""
    check(established_to_port(pub_a.pid, srv.port) >= 1, "a's ffmpeg has no connection before the removal")
    g_before = program_granule(srv, sid)
    t0 = time.monotonic()
    st, _, obj = host(srv, "DELETE", "/api/spaces/%s/speakers/a" % sid, hkey)
    t_answer = time.monotonic() - t0
    check(st == 200 and obj.get("name") == "a" and obj.get("removed") is True,
          "DELETE speaker a -> %d %r (expected 200 {name: a, removed: true})" % (st, obj))
    g_after = program_granule(srv, sid)
    wait_until(lambda: pub_a.poll() is not None or established_to_port(pub_a.pid, srv.port) == 0, 5,
               "a's ffmpeg connection to close after DELETE", 0.02)
    closed_s = time.monotonic() - t0
    log("DELETE a answered in %.0f ms; a's ffmpeg connection closed %.0f ms after the request (limit 1000); ffmpeg "
        "%s" % (t_answer * 1000, closed_s * 1000, "exited %s" % pub_a.returncode if pub_a.poll() is not None
                else "still running"))
    check(closed_s <= 1.0, "a's connection closed %.2f s after DELETE, expected within 1 s" % closed_s)
    st, body = speaker_publish_status(srv, sid, "a", key_a, src=fresh_source())
    log("publish with a's old key after removal: %s %r" % (st, body[:120]))
    check_error(st, json_or_bytes(body), 401, "PUT /spaces/%s/speakers/a.opus with the removed speaker's key" % sid)
    sp = speaker_state(srv, sid, "a")
    check(sp is None or sp.get("connected") is False, "GET /api/spaces/%s still shows a connected: %r" % (sid, sp))
    st, _, obj = host(srv, "GET", "/api/spaces/%s/speakers" % sid, hkey)
    check(st == 200, "GET speakers -> %d %r" % (st, obj))
    names = [s.get("name") for s in obj.get("speakers", [])]
    log("GET /api/spaces/%s/speakers after the removal: %s" % (sid, names))
    # a's tone leaves the program
    wait_heard_until(lst, g_after + 1500 * MS, 10, "1.5 s after the removal")
    rec = snapshot(lst)
    gone = rec.levels(FREQS, g_after + 100 * MS, g_after + 1500 * MS)
    still = [(g, x) for g, x in gone if x[A_HZ] >= TONE_DB]
    log("after the removal (granule %d..%d): 440 Hz max %.1f dBFS over %d windows from + 100 ms" % (
        g_before, g_after, audio.summary(gone, A_HZ)[2], len(gone)))
    check(not still, "440 Hz (a, removed) still in the program after the removal + 100 ms: %s"
          % fmt_windows(still, FREQS))
    return g_before


def kill_c(srv, sid, hkey, lst):
    """Part 5."""
    key_c = invite(srv, sid, hkey, "c")
    g_pub = program_granule(srv, sid)
    pub_c = ffmpeg_publish_speaker(srv, sid, "c", key_c, PUBLISH_S, freq=C_HZ)
    wait_connected(srv, sid, ["b", "c"])
    g_heard = wait_tone_heard(lst, C_HZ, 1.0, 15, "c's tone", g_pub)
    log("c heard %d ms after its publisher started (program granule %d at its start)" % (
        (g_heard - g_pub) // MS, g_pub))
    g0 = program_granule(srv, sid)
    pub_c.send_signal(signal.SIGKILL)
    pub_c.wait(5)
    g1 = program_granule(srv, sid)
    log("c killed (SIGKILL) between program granules %d and %d" % (g0, g1))
    wait_heard_until(lst, g1 + 3 * 48000, 10, "3 s after the kill")
    rec = snapshot(lst)
    around = rec.levels(FREQS, g0 - 48000, g1 + 3 * 48000)
    # b's level changes when c goes (mixed with c under the limiter, then alone): a gap is a window
    # below the lower of the two steady levels by over 10 dB, or without the tone at all
    med_mixed = audio.summary(rec.levels(FREQS, g0 - 48000, g0), B_HZ)[1]
    med_alone = audio.summary(rec.levels(FREQS, g1 + 2 * 48000, g1 + 3 * 48000), B_HZ)[1]
    floor = min(med_mixed, med_alone) - 10
    gaps = [(g, x) for g, x in around if not present(x, B_HZ) or x[B_HZ] < floor]
    log("around the kill (%d windows, kill - 1 s .. kill + 3 s): 660 Hz min %.1f dBFS (median %.1f with c, %.1f "
        "after; floor %.1f), min over noise %.1f dB; windows without it: %d" % (
            len(around), audio.summary(around, B_HZ)[0], med_mixed, med_alone, floor,
            min(x[B_HZ] - x[NOISE_HZ] for _, x in around), len(gaps)))
    check(len(around) >= 190, "only %d windows around the kill" % len(around))
    check(not gaps, "b's 660 Hz has a gap around c's death: %s" % fmt_windows(gaps, FREQS))
    wait_until(lambda: (speaker_state(srv, sid, "c") or {}).get("connected") is False, 5,
               "c shown disconnected after its death", 0.05)


def request_to_speak(srv, sid, hkey, lst):
    """Part 6; returns the requester's publisher."""
    st, _, req = http_json(srv, "POST", "/api/spaces/%s/requests" % sid, {"name": "r1"})
    check(st == 201 and isinstance(req, dict) and req.get("state") == "pending" and req.get("token")
          and req.get("id") is not None, "POST requests -> %d %r (expected 201 {id, token, state: pending})"
          % (st, req))
    rid, token = req["id"], req["token"]
    st, _, lst_obj = host(srv, "GET", "/api/spaces/%s/requests" % sid, hkey)
    check(st == 200 and isinstance(lst_obj.get("requests"), list) and lst_obj["requests"],
          "GET requests -> %d %r" % (st, lst_obj))
    first = lst_obj["requests"][0]
    log("host lists requests: %s" % json.dumps(lst_obj["requests"]))
    check(first.get("id") == rid and first.get("name") == "r1" and first.get("state") == "pending",
          "first request listed %r, expected r1 pending (id %r)" % (first, rid))
    st, _, obj = http_json(srv, "GET", "/api/spaces/%s/requests/%s" % (sid, rid), headers=bearer(token))
    check(st == 200 and obj.get("state") == "pending" and "key" not in obj, "requester reads pending: %d %r" % (st, obj))
    st, _, appr = host(srv, "POST", "/api/spaces/%s/requests/%s/approve" % (sid, rid), hkey)
    check(st == 200 and appr.get("name") == "r1" and appr.get("key"), "approve -> %d %r" % (st, appr))
    st, _, once = http_json(srv, "GET", "/api/spaces/%s/requests/%s" % (sid, rid), headers=bearer(token))
    st2, _, twice = http_json(srv, "GET", "/api/spaces/%s/requests/%s" % (sid, rid), headers=bearer(token))
    log("requester reads: first %d %r; second %d %r" % (st, once, st2, twice))
    check(st == 200 and once.get("state") == "approved" and once.get("key"),
          "the requester's first read after approval -> %d %r (expected state approved and a key)" % (st, once))
    check(once["key"] == appr["key"], "the requester got key %r, the host's approval answered %r"
          % (once["key"], appr["key"]))
    check(st2 == 200 and "key" not in twice and twice.get("state") == "approved",
          "the requester's second read -> %d %r (expected no key)" % (st2, twice))
    st, _, again = host(srv, "POST", "/api/spaces/%s/requests/%s/approve" % (sid, rid), hkey)
    check_error(st, again, 409, "approving an approved request")
    g_pub = program_granule(srv, sid)
    pub = ffmpeg_publish_speaker(srv, sid, "r1", once["key"], PUBLISH_S, freq=R_HZ)
    wait_connected(srv, sid, ["r1"])
    wait_tone_heard(lst, R_HZ, 1.0, 15, "the approved requester r1", g_pub)
    return pub


def bad_inputs(srv, sid, hkey, sid2, hkey2, key_a, key_b, lst):
    """Part 7: the refusals table."""
    key_x = invite(srv, sid2, hkey2, "x")
    invite(srv, sid, hkey, "d")          # invited, never connected: a target for another space's key
    rid = http_json(srv, "POST", "/api/spaces/%s/requests" % sid, {"name": "r2"})[2]["id"]
    wrong = hkey2                        # a real host key, of another space
    sp = "/api/spaces/%s" % sid
    # (what, method, path, body, headers, expected)
    rows = [
        ("invite without key", "POST", sp + "/speakers", {"name": "e"}, {}, 401),
        ("live without key", "POST", sp + "/live", None, {}, 401),
        ("end without key", "POST", sp + "/end", None, {}, 401),
        ("mute without key", "POST", sp + "/speakers/b/mute", None, {}, 401),
        ("unmute without key", "POST", sp + "/speakers/b/unmute", None, {}, 401),
        ("delete without key", "DELETE", sp + "/speakers/b", None, {}, 401),
        ("list speakers without key", "GET", sp + "/speakers", None, {}, 401),
        ("list requests without key", "GET", sp + "/requests", None, {}, 401),
        ("approve without key", "POST", sp + "/requests/%s/approve" % rid, None, {}, 401),
        ("refuse without key", "POST", sp + "/requests/%s/refuse" % rid, None, {}, 401),
        ("read a request without its token", "GET", sp + "/requests/%s" % rid, None, {}, 401),
        ("mute with a wrong key", "POST", sp + "/speakers/b/mute", None, bearer(wrong), 401),
        ("invite with a wrong key", "POST", sp + "/speakers", {"name": "e"}, bearer(wrong), 401),
        ("delete with a speaker's key", "DELETE", sp + "/speakers/b", None, bearer(key_b), 401),
        ("end with a wrong key", "POST", sp + "/end", None, bearer(wrong), 401),
        ("mute an unknown speaker", "POST", sp + "/speakers/nobody/mute", None, bearer(hkey), 404),
        ("delete an unknown speaker", "DELETE", sp + "/speakers/nobody", None, bearer(hkey), 404),
        ("invite a taken name", "POST", sp + "/speakers", {"name": "b"}, bearer(hkey), 409),
        ("invite a bad name", "POST", sp + "/speakers", {"name": "no/slash"}, bearer(hkey), 400),
        ("invite as host", "POST", sp + "/speakers", {"name": "host"}, bearer(hkey), 400),
        ("request with a bad name", "POST", sp + "/requests", {"name": ""}, {}, 400),
    ]
    for what, method, path, body, hd, want in rows:
        before = stable(space(srv, sid))
        src = fresh_source()     # failed key attempts are limited per address: one each
        st, _, obj = http_json_from(srv, src, method, path, body, headers=hd)
        after = stable(space(srv, sid))
        log("%-34s %s %s -> %d %s" % (what, method, path, st, json.dumps(obj)))
        check_error(st, obj, want, what)
        expect(after == before, "%s changed the space: before %r after %r" % (what, before, after))
    # monitor without the key
    st, _, body = http_json_from(srv, fresh_source(), "GET", "/spaces/%s/monitor.opus" % sid)
    log("%-34s GET /spaces/%s/monitor.opus -> %d %s" % ("monitor without key", sid, st, repr(body)[:100]))
    expect(st == 401, "GET /spaces/%s/monitor.opus without the host key -> %d, expected 401" % (sid, st))
    # publishing refusals (raw PUT, no audio)
    pubs = [("another space's speaker key", "d", key_x, 401),
            ("the removed speaker's key", "a", key_a, 401),
            ("unknown speaker name", "nobody", key_b, 404),
            ("no key", "d", None, 401),
            ("already connected", "b", key_b, 409)]
    for what, name, key, want in pubs:
        before = stable(space(srv, sid))
        st, body = speaker_publish_status(srv, sid, name, key, src=fresh_source())
        after = stable(space(srv, sid))
        obj = json_or_bytes(body)
        log("%-34s PUT /spaces/%s/speakers/%s.opus -> %s %s" % ("publish: " + what, sid, name, st, obj))
        check_error(st, obj, want, "PUT /spaces/%s/speakers/%s.opus with %s" % (sid, name, what))
        expect(after == before, "publish with %s changed the space: before %r after %r" % (what, before, after))
    # the 14th speaker of space 2 (x and 12 more invited: 13, the default max_speakers)
    mx = space(srv, sid2).get("max_speakers")
    expect(mx == 13, "GET /api/spaces/%s: max_speakers %r, expected the default 13" % (sid2, mx))
    for i in range(12):
        invite(srv, sid2, hkey2, "s%d" % i)
    before = stable(space(srv, sid2))
    st, _, obj = host(srv, "POST", "/api/spaces/%s/speakers" % sid2, hkey2, {"name": "fourteenth"})
    after = stable(space(srv, sid2))
    log("%-34s -> %d %s (space %s has %d speakers)" % ("14th speaker invite", st, json.dumps(obj), sid2,
                                                       len(before["speakers"])))
    check_error(st, obj, 409, "14th speaker invite")
    expect(after == before, "the 14th invite changed the space: before %r after %r" % (before, after))
    lst.check_ok()


def end_space(srv, sid, hkey, key_b, lst, pubs):
    """Part 8."""
    st, _, obj = host(srv, "POST", "/api/spaces/%s/end" % sid, hkey)
    check(st == 200 and obj.get("state") == "ended", "POST end -> %d %r" % (st, obj))
    wait_until(lambda: lst.closed_by_server or not lst.is_alive(), 5, "the listener to be closed at the end", 0.05)
    for name, p in pubs:
        wait_until(lambda: p.poll() is not None or established_to_port(p.pid, srv.port) == 0, 5,
                   "%s's publisher to be closed at the end" % name, 0.05)
    st, _, body = http(srv, "GET", "/spaces/%s/live.opus" % sid)
    log("after the end: join -> %d" % st)
    expect(st == 410, "GET /spaces/%s/live.opus of an ended space -> %d, expected 410" % (sid, st))
    st, _, obj = host(srv, "POST", "/api/spaces/%s/live" % sid, hkey)
    check_error(st, obj, 409, "going live after the end")
    st, body = speaker_publish_status(srv, sid, "b", key_b)
    log("after the end: live -> 409, publish with b's key -> %s %r" % (st, body[:100]))
    expect(st == 409, "PUT /spaces/%s/speakers/b.opus (b's key) on an ended space -> %s, expected 409" % (sid, st))


def main():
    srv = Server().start()
    starts = int(time.time()) + 3600
    st, _, obj = http_json(srv, "POST", "/api/spaces", {"title": "Rooms", "starts_at": starts})
    check(st == 201, "POST /api/spaces -> %d %r" % (st, obj))
    sid, hkey = obj["id"], obj["host_key"]
    sid2, hkey2 = (lambda o: (o["id"], o["host_key"]))(
        http_json(srv, "POST", "/api/spaces", {"title": "Other", "starts_at": starts})[2])
    obj = space(srv, sid)
    log("space %s: state %s, starts_at %s, max_speakers %s" % (sid, obj.get("state"), obj.get("starts_at"),
                                                              obj.get("max_speakers")))
    check(obj.get("state") == "scheduled", "a new space with starts_at: state %r, expected scheduled" % obj.get("state"))
    key_a = invite(srv, sid, hkey, "a")
    key_b = invite(srv, sid, hkey, "b")

    lst = Listener(srv, sid, max_seconds=170)
    lst.start()
    lst.wait_head(5)
    pub_a = ffmpeg_publish_speaker(srv, sid, "a", key_a, PUBLISH_S, freq=A_HZ)
    pub_b = ffmpeg_publish_speaker(srv, sid, "b", key_b, PUBLISH_S, freq=B_HZ)
    pubs = [("a", pub_a), ("b", pub_b)]
    try:
        wait_connected(srv, sid, ["a", "b"])
        # a second of green room on the listener's recording, and the jitter buffers primed
        g = wait_until(lambda: last_granule(lst) > 0 and last_granule(lst), 5, "silence to reach the listener")
        wait_heard_until(lst, g + 1500 * MS, 5, "1.5 s of the green room")

        g_live = green_then_live(srv, sid, hkey, lst)
        g_mute, g_unmute = mute_unmute(srv, sid, hkey, lst)
        g_del = remove_a(srv, sid, hkey, key_a, pub_a, lst)
        no_clipping(snapshot(lst), [(g_live + 100 * MS, g_mute), (g_unmute + 100 * MS, g_del)])
        kill_c(srv, sid, hkey, lst)
        pubs.append(("r1", request_to_speak(srv, sid, hkey, lst)))
        bad_inputs(srv, sid, hkey, sid2, hkey2, key_a, key_b, lst)
        for name, p in pubs:
            check(p.poll() is None or name == "a", "publisher %s exited early (%s): %s"
                  % (name, p.returncode, proc_log(p)[-500:]))
        end_space(srv, sid, hkey, key_b, lst, [(n, p) for n, p in pubs if n != "a"])
    finally:
        lst.stop()
        for _, p in pubs:
            stop_process(p)
    srv.check_alive()
    srv.stop()


LOAD_N = 2000
LOAD_S = 20


def run_load(url, out):
    """tribune-load next to the server binary (build/tribune-load, build/asan/tribune-load, ...)."""
    return start_load(url, ["-n", LOAD_N, "-r", 1000, "-d", LOAD_S, "--loud-bytes", 20, "--json", out, "--quiet"])


def waiting_then_live():
    """Part 9."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))   # the server inherits it
    srv = Server(name="load").start()
    st, _, obj = http_json(srv, "POST", "/api/spaces", {"title": "Waiting room", "starts_at": int(time.time()) + 600})
    check(st == 201, "POST /api/spaces -> %d %r" % (st, obj))
    sid, hkey = obj["id"], obj["host_key"]
    pubs = [ffmpeg_publish_speaker(srv, sid, n, invite(srv, sid, hkey, n), 90, freq=f)
            for n, f in (("a", A_HZ), ("b", B_HZ))]
    load = None
    try:
        wait_connected(srv, sid, ["a", "b"])
        check(space(srv, sid).get("state") == "green", "two speakers connected, state %r" % space(srv, sid).get("state"))
        out = os.path.join(os.path.dirname(srv.log_path), "load.json")
        t_start = time.monotonic()
        load = run_load("%s/spaces/%s/live.opus" % (srv.url, sid), out)

        def all_waiting():
            check(load.poll() is None, "tribune-load ended early: %s" % "\n".join(load.lines[-20:]))
            l = space(srv, sid)["listeners"]
            return l.get("waiting") == LOAD_N and l
        l = wait_until(all_waiting, 20, "the server to count %d listeners waiting" % LOAD_N, 0.1)
        log("%.1f s after tribune-load started: server listeners waiting %d, hearing %d (of %d joined)"
            % (time.monotonic() - t_start, l["waiting"], l["hearing"], LOAD_N))
        check(l["hearing"] == 0, "listeners of a green space counted hearing: %r" % l)
        check(time.monotonic() - t_start < LOAD_S - 8, "too late to go live within tribune-load's run")

        t0 = time.time()
        st, _, obj = host(srv, "POST", "/api/spaces/%s/live" % sid, hkey)
        t_answer = time.time() - t0
        check(st == 200 and obj.get("state") == "live", "POST live -> %d %r" % (st, obj))
        seen = []

        def all_hearing():
            l = space(srv, sid)["listeners"]
            seen.append((time.time() - t0, l.get("hearing"), l.get("waiting")))
            return l.get("hearing") == LOAD_N
        wait_until(all_hearing, 10, "the server to count %d hearing after go-live" % LOAD_N, 0.05)
        t_hearing = seen[-1][0]
        log("go-live at T0 = %.6f (answered in %.0f ms); server hearing over time (s after T0, hearing, waiting): %s"
            % (t0, t_answer * 1000, ", ".join("%.2f %s %s" % x for x in seen[:: max(1, len(seen) // 12)] + seen[-1:])))
        log("server hearing reached %d at T0 + %.2f s (limit 1.0)" % (LOAD_N, t_hearing))
        check(t_hearing <= 1.0, "server hearing reached %d only %.2f s after go-live" % (LOAD_N, t_hearing))

        load.wait(LOAD_S + 30)
        load.reader.join(10)
        check(load.returncode == 0, "tribune-load exited %s: %s" % (load.returncode, "\n".join(load.lines[-30:])))
        with open(out) as f:
            rep = json.load(f)
        loud = rep["loud"]
        for line in load.lines:
            if line.strip().startswith(("loud", "joined", "hearing", "failed", "refused")):
                log("tribune-load: %s" % line.strip())
        log("tribune-load loud: %d listeners; first T0 %+.3f s, p50 T0 %+.3f s, p99 T0 %+.3f s, last T0 %+.3f s "
            "(limit for p99: +1.0 s)" % (loud["listeners"], loud["first_unix"] - t0, loud["p50_unix"] - t0,
                                          loud["p99_unix"] - t0, loud["last_unix"] - t0)
            if loud["listeners"] else "tribune-load loud: no listener heard sound: %r" % loud)
        check(loud["listeners"] == LOAD_N, "%s of %d listeners heard sound (a packet over 20 bytes)"
              % (loud["listeners"], LOAD_N))
        check(loud["first_unix"] >= t0, "a listener heard sound %.3f s before go-live (green room leaked)"
              % (t0 - loud["first_unix"]))
        check(loud["p99_unix"] - t0 <= 1.0, "loud p99 is T0 + %.3f s, expected <= 1.0" % (loud["p99_unix"] - t0))
    finally:
        if load is not None and load.poll() is None:
            stop_process(load)
        for p in pubs:
            stop_process(p)
    srv.check_alive()
    srv.stop()


def all_parts():
    main()
    with heavy.exclusive("test_rooms"):
        waiting_then_live()
    check(not MISMATCHES, "%d departures from the spec:\n  %s" % (len(MISMATCHES), "\n  ".join(MISMATCHES)))


if __name__ == "__main__":
    run_test(all_parts)
