"""The mixer absorbs publishers' clock drift (issue 6, /work/spec-rooms.md): delay never grows, no gap.

Two real ffmpeg speakers whose clocks are off by 1 % each way: `fast` sends a 440 Hz tone at
-readrate 1.01 (0.6 s more audio than real time over 60 s), `slow` 660 Hz at -readrate 0.99 (0.6 s
less). Uncorrected, fast's jitter buffer would grow by 10 ms every second (over the 450 ms bound
after 15 s) and slow's would run dry after about 30 s (its 300 ms at 10 ms/s), then underrun again
and again.

Over DRIFT_S seconds of live program (60 by default, 40 with the ASan build; TRIBUNE_DRIFT_S=120
for the issue's two minutes):
  - GET /api/spaces/{id}/speakers, polled every second: each speaker's buffered_ms stays below
    jitter_ms + 150 = 450 ms at every poll (the delay does not grow);
  - at the end, fast's drift_drops > 0 and slow's drift_fills > 0 (the mixer did correct, and in
    the right direction);
  - a listener's recording of the program, decoded and measured per 20 ms window on its granule
    timeline (audio.py): from go-live + 100 ms to the end, every window holds both tones, each at
    least -40 dBFS, 20 dB above a non-tone bin (1870 Hz) and no more than 10 dB below its median.
Why 60 s: each correction starts about 5 s in (a window's level off target by 40 ms), so 60 s is
55 s of steady state (about 28 drops and 28 fills), twice the time an uncorrected slow speaker
needs to run dry: the test fails without the correction, in either direction. 120 s (the issue's
wording, the default until the suite had to fit in 15 minutes) shows the same steady state for
longer and cost a minute of every `make test`. Under ASan, whose run is for memory errors in the
same paths, 40 s still makes a dozen drops and fills and crosses the uncorrected dry point.
Every comparison prints both numbers; waits poll with deadlines.
"""
import os
import time

import audio
from lib import (Listener, Server, bearer, check, ffmpeg_publish_speaker, http_json, log, proc_log, run_test,
                 stop_process, wait_until)

# The sanitizer build runs the same mixer for its memory errors: 40 s there, 60 s in the normal
# build (see above; TRIBUNE_DRIFT_S=120 for the two minutes).
DRIFT_S = int(os.environ.get("TRIBUNE_DRIFT_S", "40" if "asan" in os.environ.get("TRIBUNE_BIN", "") else "60"))
JITTER_MS = 300          # the default jitter_ms
FAST, SLOW = ("fast", 440, 1.01), ("slow", 660, 0.99)
NOISE_HZ = 1870
FREQS = (440, 660, NOISE_HZ)


def speakers(srv, sid, hkey):
    st, _, obj = http_json(srv, "GET", "/api/spaces/%s/speakers" % sid, headers=bearer(hkey))
    check(st == 200 and isinstance(obj, dict) and isinstance(obj.get("speakers"), list),
          "GET /api/spaces/%s/speakers -> %d %r" % (sid, st, obj))
    return {s.get("name"): s for s in obj["speakers"]}


def program_granule(srv, sid):
    st, _, obj = http_json(srv, "GET", "/api/spaces/%s" % sid)
    check(st == 200 and isinstance(obj.get("program_granule"), int), "GET /api/spaces/%s -> %d %r" % (sid, st, obj))
    return obj["program_granule"]


def last_granule(lst):
    for p in reversed(lst.page_list()):
        if p.granule > 0:
            return p.granule
    return -1


def main():
    srv = Server().start()
    st, _, obj = http_json(srv, "POST", "/api/spaces", {"title": "Drift", "starts_at": int(time.time()) + 600})
    check(st == 201, "POST /api/spaces -> %d %r" % (st, obj))
    sid, hkey = obj["id"], obj["host_key"]
    keys = {}
    for name, _, _ in (FAST, SLOW):
        st, _, obj = http_json(srv, "POST", "/api/spaces/%s/speakers" % sid, {"name": name}, headers=bearer(hkey))
        check(st == 201 and obj.get("key"), "invite %s -> %d %r" % (name, st, obj))
        keys[name] = obj["key"]
    lst = Listener(srv, sid, max_seconds=DRIFT_S + 60)
    lst.start()
    lst.wait_head(5)
    pubs = {name: ffmpeg_publish_speaker(srv, sid, name, keys[name], DRIFT_S + 30, freq=f, readrate=r)
            for name, f, r in (FAST, SLOW)}
    try:
        wait_until(lambda: all(s.get("connected") for s in speakers(srv, sid, hkey).values())
                   and len(speakers(srv, sid, hkey)) == 2, 10, "both speakers connected", 0.05)
        g = program_granule(srv, sid)
        wait_until(lambda: program_granule(srv, sid) >= g + 48000, 5, "one second of program after both connected",
                   0.05)
        st, _, obj = http_json(srv, "POST", "/api/spaces/%s/live" % sid, headers=bearer(hkey))
        check(st == 200 and isinstance(obj.get("program_granule"), int), "POST live -> %d %r" % (st, obj))
        g_live = obj["program_granule"]
        t_live = time.monotonic()
        log("live at granule %d; polling the speakers every second for %d s" % (g_live, DRIFT_S))

        limit = JITTER_MS + 150
        polls = []
        next_t = t_live
        for i in range(DRIFT_S + 1):
            # the observer's period (one poll a second), not a wait for a condition
            time.sleep(max(0.0, next_t - time.monotonic()))
            next_t += 1.0
            sp = speakers(srv, sid, hkey)
            polls.append((time.monotonic() - t_live, sp))
            for name, _, _ in (FAST, SLOW):
                s = sp.get(name) or {}
                check(s.get("connected") is True, "t=%.0fs: %s not connected: %r (ffmpeg: %s)"
                      % (polls[-1][0], name, s, proc_log(pubs[name])[-300:]))
                check(isinstance(s.get("buffered_ms"), (int, float)) and s["buffered_ms"] < limit,
                      "t=%.0fs: %s buffered_ms %r, limit %d (jitter %d + 150): the delay grows"
                      % (polls[-1][0], name, s.get("buffered_ms"), limit, JITTER_MS))
            if i % 10 == 0:
                log("t=%3.0fs " % polls[-1][0] + "  ".join(
                    "%s: buffered %s ms drops %s fills %s underruns %s" % (
                        n, sp[n].get("buffered_ms"), sp[n].get("drift_drops"), sp[n].get("drift_fills"),
                        sp[n].get("underruns")) for n in ("fast", "slow")))
        end = polls[-1][1]
        for name, _, _ in (FAST, SLOW):
            b = [p[1][name]["buffered_ms"] for p in polls]
            log("%s: buffered_ms min %s max %s (limit %d) over %d polls; drift_drops %s, drift_fills %s, underruns %s"
                % (name, min(b), max(b), limit, len(b), end[name].get("drift_drops"), end[name].get("drift_fills"),
                   end[name].get("underruns")))
        check(end["fast"].get("drift_drops", 0) > 0, "the fast speaker (readrate 1.01) has drift_drops %r, expected > 0"
              % end["fast"].get("drift_drops"))
        check(end["slow"].get("drift_fills", 0) > 0, "the slow speaker (readrate 0.99) has drift_fills %r, expected > 0"
              % end["slow"].get("drift_fills"))

        g_end = g_live + DRIFT_S * 48000
        wait_until(lambda: lst.check_ok() or last_granule(lst) >= g_end, 10, "the listener to reach granule %d" % g_end,
                   0.05)
        lst.stop()
        for p in pubs.values():
            check(p.poll() is None, "a publisher ended early (%s): %s" % (p.returncode, proc_log(p)[-500:]))
    finally:
        lst.stop()
        for p in pubs.values():
            stop_process(p)

    t = time.monotonic()
    rec = audio.load_listener(lst)
    lv = rec.levels(FREQS, g_live + 100 * 48, g_end)
    log("recording: %d windows from go-live + 100 ms to + %d s, analysed in %.1f s"
        % (len(lv), DRIFT_S, time.monotonic() - t))
    check(len(lv) >= DRIFT_S * 50 - 10, "only %d windows recorded, expected about %d" % (len(lv), DRIFT_S * 50))
    for name, f, r in (FAST, SLOW):
        mn, med, mx = audio.summary(lv, f)
        over = min(x[f] - x[NOISE_HZ] for _, x in lv)
        bad = [(g, x) for g, x in lv if x[f] < -40 or x[f] - x[NOISE_HZ] < 20 or x[f] < med - 10]
        log("%s (%d Hz, readrate %.2f): min/median/max %.1f/%.1f/%.1f dBFS, min over %d Hz %.1f dB; windows without "
            "it: %d of %d" % (name, f, r, mn, med, mx, NOISE_HZ, over, len(bad), len(lv)))
        check(not bad, "%s's %d Hz has gaps: %d windows, first at %s" % (
            name, f, len(bad), ", ".join("g=%d (+%.2f s) %.1f dBFS noise %.1f" % (
                g, (g - g_live) / 48000.0, x[f], x[NOISE_HZ]) for g, x in bad[:6])))
    srv.check_alive()
    srv.stop()


if __name__ == "__main__":
    run_test(main)
