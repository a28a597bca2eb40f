#!/usr/bin/env python3
"""A recording survives a crash of its server (issue 7: "crash safety").

Once: a 30 s Ogg/Opus file (the publisher's copy): a 440 Hz tone with a 20 ms click (2.5 kHz
burst) at pseudo-random intervals of 200-300 ms, so that any stretch of it can be placed exactly.

Each iteration (TRIBUNE_RECORD_ITER, default 20; 10 with the ASan build), bounded in time:
  1. a server (--workers 1) on a fresh data directory; a space without starts_at; ffmpeg -re -c copy
     publishes the file on live.opus (the space goes live, the recording starts);
  2. poll until the space is live and the recording's duration_s > 0.5, then wait a delay drawn
     from random.Random(iteration) in [0.5, 3.5] s, polling the API all along;
  3. SIGKILL to the master (the worker follows it through PR_SET_PDEATHSIG);
  4. restart on the same data directory and port. Segment 1 (the one being written at the kill)
     must be valid: page-by-page CRC scan, EOS on its last page, oggz-validate; it must hold at
     least the duration_s the API showed at the last poll before the kill, and the audio the
     server had emitted by the kill (that poll's program_granule plus the wall time since) minus
     at most one page (100 ms) plus the packet the recorder holds back (20 ms); decoded, it must
     match the publisher's audio, sample-aligned, window by window over its whole length;
  5. the host ends the space; every segment passes the CRC scan and oggz-validate and the replay
     (GET /spaces/{id}/recording.opus) decodes with no ffmpeg error output.

Figures per iteration: kill delay, recorded seconds, expected, segments, validity.
"""
import json
import math
import operator
import os
import random
import re
import signal
import struct
import subprocess
import sys
import time
from array import array

from lib import (SLOW, Server, bearer, check, check_segment_file, create_space, decode_clean, http, http_json,
                 icecast_url, log, ogg_streams, packets, parse_pages, read_manifest, run_test, segment_files,
                 stop_process, tmpdir, track, wait_until)

RATE = 48000
SIGNAL_S = 30
TONE_AMP = 0.3
CLICK_AMP = 0.4
CLICK_HZ = 2500
CLICK_S = 0.020
PAGE_S = 0.100        # the recorder's page (node.c: page_ms = 100)
HELD_S = 0.0          # nothing is held back (EOS is set on the last page in place at close)
BLOCK = 48            # 1 ms blocks for click detection
WIN = 960             # 20 ms windows for the match
MIN_SNR_DB = 20.0


# ----------------------------------------------------------------------------------------------
# The publisher's signal and its analysis
# ----------------------------------------------------------------------------------------------

def click_times(seconds=SIGNAL_S, seed=7):
    rnd = random.Random(seed)
    t, out = 0.15, []
    while t < seconds - 0.5:
        out.append(t)
        t += rnd.uniform(0.2, 0.3)
    return out


def make_signal(path, seconds=SIGNAL_S):
    """Writes the publisher's Ogg/Opus file (20 ms packets, 20 ms pages). Returns path."""
    n = seconds * RATE
    w = 2 * math.pi * 440 / RATE
    a = TONE_AMP * 32767
    x = [a * math.sin(w * i) for i in range(n)]
    cw = 2 * math.pi * CLICK_HZ / RATE
    cl = int(CLICK_S * RATE)
    ramp = 96
    for t in click_times(seconds):
        i0 = int(t * RATE)
        for k in range(cl):
            env = min(1.0, k / ramp, (cl - 1 - k) / ramp)
            x[i0 + k] += CLICK_AMP * 32767 * env * math.sin(cw * k)
    pcm = array("h", (max(-32767, min(32767, int(v))) for v in x))
    if sys.byteorder != "little":
        pcm.byteswap()
    argv = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "s16le", "-ar", str(RATE), "-ac", "1", "-i", "pipe:0",
            "-c:a", "libopus", "-b:a", "64k", "-frame_duration", "20", "-page_duration", "20000", "-f", "ogg", path]
    r = subprocess.run(argv, input=pcm.tobytes(), capture_output=True, timeout=120)
    check(r.returncode == 0, "ffmpeg could not encode the signal: %s" % r.stderr.decode(errors="replace"))
    return path


def hf_energy(x):
    """Energy of the first difference per 1 ms block (the clicks stand 15 dB above the tone)."""
    d = array("d", map(operator.sub, x[1:], x[:-1]))
    return [sum(map(operator.mul, d[i:i + BLOCK], d[i:i + BLOCK])) for i in range(0, len(d) - BLOCK + 1, BLOCK)]


def click_onsets(x):
    """Block indices where a click starts (rising edges over a threshold, 100 ms apart at least)."""
    e = hf_energy(x)
    tone = (TONE_AMP * 32767 * 2 * math.pi * 440 / RATE) ** 2 / 2 * BLOCK
    thr = 8 * tone
    out = []
    for k in range(1, len(e)):
        if e[k] > thr >= e[k - 1] and (not out or k - out[-1] > 100):
            out.append(k)
    return out


def dot(a, b):
    return sum(map(operator.mul, a, b))


def align(rec, pub, rec_onsets, pub_onsets):
    """Offset (samples) such that rec[i] is pub[i + offset], from the click pattern (to 1 ms) then
    the cross-correlation around the first clicks (to the sample). Returns (offset, matched clicks)."""
    check(len(rec_onsets) >= 2, "fewer than 2 clicks in the recording: %r" % rec_onsets)
    pub_set = set(pub_onsets)
    best = (0, None)
    for r0 in rec_onsets[:3]:
        for p in pub_onsets:
            off = p - r0
            score = sum(1 for r in rec_onsets if any((r + off + d) in pub_set for d in (-2, -1, 0, 1, 2)))
            if score > best[0]:
                best = (score, off)
    score, off_blocks = best
    check(score >= len(rec_onsets) - 1, "the recording's clicks do not match the publisher's: %d of %d"
          % (score, len(rec_onsets)))
    coarse = off_blocks * BLOCK
    c = rec_onsets[0] * BLOCK
    lo, hi = max(0, c - 1200), min(len(rec), c + 3600)
    seg = rec[lo:hi]
    best = (-1e300, coarse)
    for off in range(coarse - 144, coarse + 145):
        if lo + off < 0 or hi + off > len(pub):
            continue
        v = dot(seg, pub[lo + off:hi + off])
        if v > best[0]:
            best = (v, off)
    return best[1], score


def snr_windows(rec, pub, off, start, end):
    """Per 20 ms window of rec[start:end]: SNR (dB) of rec against pub shifted by off."""
    out = []
    for i in range(start, end - WIN + 1, WIN):
        r = rec[i:i + WIN]
        p = pub[i + off:i + off + WIN]
        if len(p) < WIN:
            break
        e = array("d", map(operator.sub, r, p))
        sig = dot(p, p)
        err = dot(e, e)
        out.append(99.0 if err == 0 else 10 * math.log10(max(sig, 1.0) / err))
    return out


def first_loud(x, min_rms=1000.0):
    for i in range(0, len(x) - WIN + 1, WIN):
        if dot(x[i:i + WIN], x[i:i + WIN]) / WIN >= min_rms * min_rms:
            return i
    return None


class Reference:
    """The publisher's copy: file, decoded samples and click onsets (computed once)."""

    def __init__(self, d):
        t = time.monotonic()
        self.path = make_signal(os.path.join(d, "publisher.opus"))
        self.samples = decode_clean(self.path, self.path + ".raw")
        self.onsets = click_onsets(self.samples)
        with open(self.path, "rb") as f:
            self.packets = packets(parse_pages(f.read())[0][2:])
        log("publisher's copy: %s, %.1f s, %d clicks, %d packets (made in %.1f s)" % (
            self.path, len(self.samples) / RATE, len(self.onsets), len(self.packets), time.monotonic() - t))


def match_content(ref, rec, what):
    """The decoded recording against the publisher's audio. Returns a dict of figures; fails when
    the audio after the leading silence (the program's jitter buffer filling) is not the publisher's,
    sample-aligned, in every 20 ms window."""
    loud = first_loud(rec)
    check(loud is not None, "%s: no audio above silence in %.2f s" % (what, len(rec) / RATE))
    lead = rec[:loud]
    peak_lead = max((abs(v) for v in lead), default=0)
    check(peak_lead < 1000, "%s: the part before the publisher's audio is not silence (peak %d)" % (what, peak_lead))
    onsets = click_onsets(rec)
    off, matched = align(rec, ref.samples, onsets, ref.onsets)
    # The window where the program switches from silence to the publisher holds both; and the
    # decoder's state converges over the next few packets (different history): skip 100 ms there.
    start = loud + 6 * WIN
    snr = snr_windows(rec, ref.samples, off, start, len(rec))
    bad = [(round((start + i * WIN) / RATE, 2), round(v, 1)) for i, v in enumerate(snr) if v < MIN_SNR_DB]
    fig = {"audio_from_s": round(loud / RATE, 3), "offset_samples": off, "clicks": len(onsets),
           "clicks_matched": matched, "windows": len(snr), "min_snr_db": round(min(snr), 1) if snr else None,
           "median_snr_db": round(sorted(snr)[len(snr) // 2], 1) if snr else None}
    check(len(snr) >= 5, "%s: fewer than 5 windows of the publisher's audio to compare: %r" % (what, fig))
    check(not bad, "%s: windows not matching the publisher's audio (< %.0f dB SNR) at (s, dB) %r; %r"
          % (what, MIN_SNR_DB, bad[:20], fig))
    return fig


def same_packets(ref, pages):
    """How many of the recording's audio packets (after its leading silence) are the publisher's,
    byte for byte, in order (a lone host's stream passes through the program without re-encoding).
    Returns (identical, packets after the silence)."""
    pk = packets(pages[2:])
    first = next((k for k, p in enumerate(pk) if len(p) > 10), None)
    if first is None:
        return 0, 0
    pk = pk[first:]
    for k in range(min(5, len(pk))):      # anchor on the first packet found in the publisher's
        if pk[k] in ref.packets:
            i = ref.packets.index(pk[k]) - k
            n = sum(1 for j, p in enumerate(pk) if 0 <= i + j < len(ref.packets) and ref.packets[i + j] == p)
            return n, len(pk)
    return 0, len(pk)


# ----------------------------------------------------------------------------------------------
# One iteration
# ----------------------------------------------------------------------------------------------

def space_json(srv, sid):
    st, _, obj = http_json(srv, "GET", "/api/spaces/%s" % sid, timeout=5)
    check(st == 200, "GET /api/spaces/%s -> %d %r" % (sid, st, obj))
    return obj


def worker_pids(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def publish_file(srv, sid, hk, path):
    argv = ["ffmpeg", "-nostdin", "-v", "error", "-re", "-i", path, "-c", "copy", "-page_duration", "20000",
            "-f", "ogg", icecast_url(srv, sid, hk)]
    logp = os.path.join(tmpdir(), "ffmpeg-publish-%d.log" % time.time_ns())
    f = open(logp, "wb")
    p = track(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=f))
    f.close()
    return p


def iteration(ref, it, extra=()):
    """One crash and restart. Returns the iteration's figures (fails the test on a violation)."""
    t_start = time.monotonic()
    delay = random.Random(it).uniform(0.5, 3.5)
    data = tmpdir()
    srv = Server(extra=["--workers", "1"] + list(extra), data_dir=data, name="crash%d" % it).start()
    sid, hk = create_space(srv, "Crash %d" % it)
    pub = publish_file(srv, sid, hk, ref.path)

    def recording_started():
        o = space_json(srv, sid)
        r = o.get("recording")
        return o if o["state"] == "live" and r and r["duration_s"] > 0.5 else None
    wait_until(recording_started, 15 * SLOW, "space live and its recording's duration_s > 0.5")
    workers = worker_pids(srv.proc.pid)
    t0 = time.monotonic()
    last = None
    for _ in range(10000):     # poll the API until the delay is over: the last answer before the kill
        if time.monotonic() - t0 >= delay:
            break
        o = space_json(srv, sid)
        last = (time.monotonic(), o["recording"]["duration_s"], o["program_granule"], o["recording"]["bytes"])
        remaining = delay - (time.monotonic() - t0)
        if remaining > 0:
            time.sleep(min(0.05, remaining))
    check(last is not None, "no poll during the delay")
    t_kill = time.monotonic()
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(10)
    srv.stopped = True
    stop_process(pub, signal.SIGKILL)
    wait_until(lambda: not any(pid_alive(w) for w in workers), 5, "workers %r to exit after the master" % workers)
    t_poll, d_poll, pg_poll, bytes_poll = last
    emitted = (pg_poll - 312) / RATE + (t_kill - t_poll)
    seg1 = segment_files(data, sid)[0]
    size_at_kill = os.path.getsize(seg1)

    port = srv.port
    srv2 = Server(extra=["--workers", "1"] + list(extra), data_dir=data, name="crash%d-after" % it).start(port=port)
    m = re.search(r"%s recovered, (\d+) of (\d+) bytes kept" % re.escape(os.path.basename(seg1)), srv2.log_text())
    kept = (int(m.group(1)), int(m.group(2))) if m else None
    man = read_manifest(data, sid)
    check(man["segments"][0]["state"] == "recovered", "segment 1 after the crash: %r" % man["segments"][0])
    s1 = check_segment_file(seg1)
    rec_s = s1["seconds"]
    with open(seg1, "rb") as f:
        pages = parse_pages(f.read())[0]
    samples = decode_clean(seg1, seg1 + ".raw")
    fig = match_content(ref, samples, "iteration %d segment 1" % it)
    same, npk = same_packets(ref, pages)

    # The space is still live: the recording goes on in a new segment. End it: all segments closed.
    st, _, obj = http_json(srv2, "POST", "/api/spaces/%s/end" % sid, headers=bearer(hk))
    check(st == 200, "end -> %d %r" % (st, obj))
    wait_until(lambda: space_json(srv2, sid)["recording"]["recording"] is False, 10 * SLOW,
               "the recording closed after the end")
    # "recording": false is the media loop's view; the recorder thread closes the last segment (or
    # deletes it when it got no audio: the restarted space had no publisher) just after.
    def closed_on_disk():
        segs = read_manifest(data, sid)["segments"]
        files = [os.path.join(data, "recordings", sid, s["file"]) for s in segs]
        return files if files == segment_files(data, sid) and all(s["state"] != "open" for s in segs) else None
    files = wait_until(closed_on_disk, 5 * SLOW, "every segment closed in the manifest and on disk")
    info = space_json(srv2, sid)["recording"]
    check(info["segments"] == len(files), "API segments %d, manifest %d" % (info["segments"], len(files)))
    for p in files:
        check_segment_file(p)
    st, hd, body = http(srv2, "GET", "/spaces/%s/recording.opus" % sid, timeout=20)
    check(st == 200 and len(body) == int(hd.get("content-length", -1)) == info["bytes"],
          "replay -> %d, %d bytes, Content-Length %s, API bytes %s" % (st, len(body), hd.get("content-length"),
                                                                     info["bytes"]))
    streams = ogg_streams(body, "replay")
    check(len(streams) == len(files), "replay holds %d streams, %d segment files" % (len(streams), len(files)))
    with open(seg1, "rb") as f:
        check(body.startswith(f.read()), "the replay does not start with segment 1's bytes")
    replay_path = os.path.join(tmpdir(), "replay-%d.opus" % it)
    with open(replay_path, "wb") as f:
        f.write(body)
    decode_clean(replay_path, replay_path + ".raw", "the replay")
    srv2.stop()

    res = {"iteration": it, "delay_s": round(delay, 3), "recorded_s": round(rec_s, 3),
           "duration_s_last_poll": d_poll, "poll_to_kill_s": round(t_kill - t_poll, 3),
           "emitted_s": round(emitted, 3), "deficit_s": round(emitted - rec_s, 3),
           "bytes_at_kill": size_at_kill, "bytes_kept": kept[0] if kept else None,
           "segments": len(files), "segment_states": [s["state"] for s in read_manifest(data, sid)["segments"]],
           "same_packets": [same, npk], "valid": True, "seconds": round(time.monotonic() - t_start, 2)}
    res.update(fig)
    log("iteration %d: kill after %.2f s; recorded %.3f s, expected >= %.3f (last poll) and ~%.3f (emitted by "
        "the kill; deficit %.3f s); segments %d %r; bytes %d at kill, %s kept; packets identical %d/%d; audio from "
        "%.2f s, offset %d, clicks %d/%d, SNR min %.1f dB median %.1f; valid" % (
            it, delay, rec_s, d_poll, emitted, emitted - rec_s, len(files), res["segment_states"], size_at_kill,
            res["bytes_kept"], same, npk, fig["audio_from_s"], fig["offset_samples"], fig["clicks_matched"],
            fig["clicks"], fig["min_snr_db"], fig["median_snr_db"]))
    check(rec_s >= d_poll - 0.001, "iteration %d: recorded %.3f s < %.3f s the API showed before the kill: "
          "recovery lost written pages" % (it, rec_s, d_poll))
    check(emitted - rec_s <= PAGE_S + HELD_S + 0.02, "iteration %d: recorded %.3f s, the server had emitted "
          "~%.3f s by the kill: %.3f s lost, more than one page" % (
              it, rec_s, emitted, emitted - rec_s))
    return res


def run_iterations(n, extra=()):
    ref = Reference(tmpdir())
    out = []
    for it in range(n):
        out.append(iteration(ref, it, extra))
    return out


def summary(results):
    d = [r["deficit_s"] for r in results]
    return {"iterations": len(results), "all_valid": all(r["valid"] for r in results),
            "recorded_s_min": min(r["recorded_s"] for r in results),
            "recorded_s_max": max(r["recorded_s"] for r in results),
            "deficit_s_min": min(d), "deficit_s_max": max(d), "deficit_s_mean": round(sum(d) / len(d), 3),
            "min_snr_db": min(r["min_snr_db"] for r in results),
            "seconds_per_iteration": round(sum(r["seconds"] for r in results) / len(results), 2)}


def main():
    # 20 kills with the normal build (the count), 10 with the sanitizer build (the same
    # recovery code, there for memory errors), to keep make test near 15 minutes.
    asan = "asan" in os.environ.get("TRIBUNE_BIN", "")
    n = int(os.environ.get("TRIBUNE_RECORD_ITER", "10" if asan else "20"))
    t = time.monotonic()
    results = run_iterations(n)
    s = summary(results)
    log("summary: %s" % json.dumps(s))
    log("%d iterations in %.1f s" % (n, time.monotonic() - t))


if __name__ == "__main__":
    run_test(main)
