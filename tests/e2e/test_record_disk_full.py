#!/usr/bin/env python3
"""The disk fills up under a live recording (issue 7: "faults"). Needs root (mount tmpfs): skipped
with a message, exit 0, when not root or when the mount fails.

1. A 4 MiB tmpfs at <data>/recordings (unmounted in a finally, even on failure); the server; the host
   publishes a 440 Hz tone; 200 listeners from build/tribune-load hear it.
2. A filler file takes the rest of the tmpfs (written until ENOSPC): within 1 s
   tribune_recording_failing{space} is 1 in /metrics (polled every 50 ms; the time is printed), as
   are tribune_recordings_failing and the API's failing, and the log has the recorder's error line.
3. Listeners go on: the server's listeners.hearing is 200 at every poll from before the fill to after
   the resume, and tribune-load's report at the end says 200 hearing, none failed or stalled.
4. The filler is removed: the recording resumes in a new segment (segments 2, failing 0, gap_s > 0,
   tribune_recording_lost_seconds > 0, the manifest's gap "disk full").
5. The host ends the space: every segment file passes the CRC scan and oggz-validate, the replay
   (two chained streams) decodes: each segment with no ffmpeg error output, the replay with none but
   the one note ffmpeg 5.1 prints for any chained Ogg file (lib.FFMPEG_CHAINED_NOTE), to its full length.
"""
import errno
import json
import os
import subprocess
import sys
import threading
import time

from lib import (ROOT, SLOW, TRIBUNE_BIN, Server, bearer, check, check_segment_file, create_space, decode_chained, decode_clean,
                 ffmpeg_publish, http, http_json, log, metric_value, ogg_streams, read_manifest, recording_info,
                 run_test, segment_files, stop_process, tmpdir, track, wait_until)

N = 200
TMPFS = "4m"
LOAD_S = 24


def space(srv, sid):
    st, _, obj = http_json(srv, "GET", "/api/spaces/%s" % sid, timeout=5)
    check(st == 200, "GET /api/spaces/%s -> %d" % (sid, st))
    return obj


class HearingWatch(threading.Thread):
    """Polls listeners.hearing every 100 ms; keeps (t, hearing) until stopped."""

    def __init__(self, srv, sid):
        super().__init__(daemon=True)
        self.srv, self.sid = srv, sid
        self.samples = []
        self.error = None
        self.stop_flag = threading.Event()

    def run(self):
        deadline = time.monotonic() + 120
        while not self.stop_flag.is_set() and time.monotonic() < deadline:
            try:
                self.samples.append((time.monotonic(), space(self.srv, self.sid)["listeners"]["hearing"]))
            except Exception as e:
                self.error = e
                return
            self.stop_flag.wait(0.1)   # the sampling period, not a wait for a condition


def fill(path):
    """Writes `path` until ENOSPC (at most 64 MiB). Returns the bytes written."""
    n = 0
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        for _ in range(1024):
            try:
                n += f.write(chunk)
            except OSError as e:
                check(e.errno == errno.ENOSPC, "filler: %s" % e)
                return n
    raise AssertionError("the tmpfs never filled up")


def run(data, rec_dir):
    srv = Server(data_dir=data).start()
    sid, hk = create_space(srv, "Disk full")
    pub = ffmpeg_publish(srv, sid, hk, 120)
    wait_until(lambda: (recording_info(srv, sid) or {}).get("duration_s", 0) >= 1.0, 15 * SLOW, "1 s recorded")
    load_bin = os.path.join(os.path.dirname(TRIBUNE_BIN), "tribune-load")
    out = os.path.join(tmpdir(), "load.json")
    argv = [load_bin, "%s/spaces/%s/live.opus" % (srv.url, sid), "-n", str(N), "-r", "1000", "-d", str(LOAD_S),
            "--json", out, "--quiet"]
    log("load: %s" % " ".join(argv))
    loadlog = open(os.path.join(tmpdir(), "load.log"), "wb")
    load = track(subprocess.Popen(argv, stdout=loadlog, stderr=loadlog))
    loadlog.close()
    wait_until(lambda: space(srv, sid)["listeners"]["hearing"] == N, 15 * SLOW, "%d listeners hearing" % N)
    watch = HearingWatch(srv, sid)
    watch.start()
    wait_until(lambda: len(watch.samples) >= 10, 5 * SLOW, "10 hearing samples before the fill")
    info0 = recording_info(srv, sid)
    check(info0["segments"] == 1 and not info0["failing"], "before the fill: %r" % info0)

    filler = os.path.join(rec_dir, "filler")
    t_full = time.monotonic()
    n = fill(filler)
    log("filler: %d bytes written until ENOSPC" % n)
    label = {"space": sid}
    fail_s = wait_until(lambda: metric_value(srv, "tribune_recording_failing", label) == 1 and
                        time.monotonic() - t_full, 3 * SLOW, "tribune_recording_failing{space} = 1", interval=0.05)
    log("tribune_recording_failing{space=%s} = 1 after %.3f s" % (sid, fail_s))
    check(fail_s <= 1.0, "the alarm came after %.3f s, more than 1 s after the disk filled" % fail_s)
    check(metric_value(srv, "tribune_recordings_failing") == 1, "tribune_recordings_failing is not 1")
    info = recording_info(srv, sid)
    check(info["failing"] is True and info.get("last_error"), "API while full: %r" % info)
    marker = "writing seg-000001.opus failed: No space left on device"
    wait_until(lambda: marker in srv.log_text(), 2, "the log line %r" % marker)
    line = [ln for ln in srv.log_text().splitlines() if marker in ln][0]
    log("log: %s" % line)
    log("API while full: %r" % {k: info[k] for k in ("failing", "last_error", "segments", "duration_s", "gap_s")})

    # Full for 2 s (the length of the fault, not a wait for a condition): the alarm stays on.
    t_end = time.monotonic() + 2.0
    for _ in range(100):
        if time.monotonic() >= t_end:
            break
        check(metric_value(srv, "tribune_recording_failing", label) == 1, "the alarm went off while the disk is full")
        time.sleep(0.1)

    os.unlink(filler)
    t_free = time.monotonic()
    info = wait_until(lambda: (lambda i: i if not i["failing"] and i["segments"] == 2 else None)(
        recording_info(srv, sid)), 5 * SLOW, "the recording to resume in a new segment")
    log("resumed %.2f s after the filler was removed: %r" % (
        time.monotonic() - t_free, {k: info[k] for k in ("failing", "segments", "duration_s", "gap_s", "bytes")}))
    check(info["gap_s"] > 0, "no gap recorded: %r" % info)
    check(metric_value(srv, "tribune_recording_failing", label) == 0, "alarm still on after the resume")
    check(metric_value(srv, "tribune_recordings_failing") == 0, "tribune_recordings_failing still on")
    lost = metric_value(srv, "tribune_recording_lost_seconds", label)
    check(lost is not None and lost > 0, "tribune_recording_lost_seconds %r" % lost)
    d_resume = info["duration_s"]
    wait_until(lambda: recording_info(srv, sid)["duration_s"] >= d_resume + 1.0, 5 * SLOW, "1 s recorded after")
    watch.stop_flag.set()
    watch.join(5)
    check(watch.error is None, "hearing watch: %r" % watch.error)
    hs = [h for _, h in watch.samples]
    log("server hearing: %d samples from before the fill to after the resume, min %d, max %d"
        % (len(hs), min(hs), max(hs)))
    check(min(hs) == N, "hearing dropped below %d: %r" % (N, [(round(t - t_full, 2), h) for t, h in watch.samples
                                                              if h != N][:20]))
    load.wait(LOAD_S + 30)
    check(load.returncode == 0, "tribune-load exited %s" % load.returncode)
    with open(out) as f:
        rep = json.load(f)
    log("tribune-load: hearing %d (%.1f %%), hearing_now %d, failed %d, ever_stalled %d, skips %d, spans_low %d, "
        "max_gap_ms %d" % (rep["hearing"], rep["hearing_pct"], rep["hearing_now"], rep["failed"], rep["ever_stalled"],
                           rep["skips"], rep["spans_low"], rep["max_gap_ms"]))
    check(rep["hearing"] == N and rep["failed"] == 0 and rep["ever_stalled"] == 0 and rep["spans_low"] == 0,
          "tribune-load: %r" % {k: rep[k] for k in ("hearing", "hearing_now", "failed", "ever_stalled", "spans_low")})

    st, _, obj = http_json(srv, "POST", "/api/spaces/%s/end" % sid, headers=bearer(hk))
    check(st == 200, "end -> %d %r" % (st, obj))
    stop_process(pub)

    def closed():
        m = read_manifest(data, sid)
        files = [os.path.join(rec_dir, sid, s["file"]) for s in m["segments"]]
        return m if files == segment_files(data, sid) and all(s["state"] != "open" for s in m["segments"]) else None
    man = wait_until(closed, 5 * SLOW, "every segment closed")
    log("manifest: segments %r, gaps %r" % ([(s["file"], s["state"], s["duration_ms"]) for s in man["segments"]],
                                           man["gaps"]))
    check([s["state"] for s in man["segments"]] == ["failed", "closed"], "segment states %r" % man["segments"])
    check(len(man["gaps"]) == 1 and man["gaps"][0]["reason"] == "disk full", "gaps %r" % man["gaps"])
    for p in segment_files(data, sid):
        s = check_segment_file(p)
        decode_clean(p, p + ".raw")
        log("%s: %.2f s, %d pages, CRC and EOS ok, oggz-validate ok" % (os.path.basename(p), s["seconds"],
                                                                       len(s["pages"])))
    st, hd, body = http(srv, "GET", "/spaces/%s/recording.opus" % sid, timeout=20)
    check(st == 200 and len(body) == int(hd["content-length"]), "replay -> %d" % st)
    streams = ogg_streams(body, "replay")
    check(len(streams) == 2 and all(s["has_eos"] for s in streams), "replay: %d streams" % len(streams))
    rp = os.path.join(tmpdir(), "replay.opus")
    with open(rp, "wb") as f:
        f.write(body)
    pcm = decode_chained(rp, rp + ".raw", streams, "the replay")
    log("replay: %d bytes, 2 chained streams (%.2f s + %.2f s), decoded %.2f s with no error"
        % (len(body), streams[0]["seconds"], streams[1]["seconds"], len(pcm) / 48000.0))
    srv.stop()


def main():
    if os.geteuid() != 0:
        log("SKIP: not root, cannot mount a tmpfs")
        return
    data = tmpdir()
    rec_dir = os.path.join(data, "recordings")
    os.makedirs(rec_dir)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % TMPFS, "tmpfs", rec_dir], capture_output=True)
    if r.returncode != 0:
        log("SKIP: mount -t tmpfs failed: %s" % r.stderr.decode(errors="replace").strip())
        return
    log("tmpfs of %s mounted at %s" % (TMPFS, rec_dir))
    try:
        run(data, rec_dir)
    finally:
        from lib import _SERVERS
        for s in _SERVERS:      # the server holds files on the tmpfs: it goes first
            if s.alive():
                s.kill()
        r = subprocess.run(["umount", rec_dir], capture_output=True)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", rec_dir], capture_output=True)
        log("tmpfs unmounted")


if __name__ == "__main__":
    run_test(main)
