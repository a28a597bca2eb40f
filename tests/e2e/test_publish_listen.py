"""Real ffmpeg publishes (Icecast PUT, then legacy SOURCE); real ffmpeg listens and decodes.

How the duration assertion is made meaningful (and not flaky):
  - Both listeners (real ffmpeg over HTTP, and a raw-socket capture) are connected *before* the
    publisher starts: ffmpeg's connection is confirmed from /proc (an ESTABLISHED socket of the
    ffmpeg process to the server's port), so neither the burst nor connect timing can add or remove
    tone. Anything the server sends before the publisher starts is silence (or nothing).
  - The publisher sends exactly 8 s of a 440 Hz sine at real time (-re -t 8).
  - After the publisher has gone, the server sends silence (or nothing); we stop the listener once its
    decoded output shows the tone ended and at least 1 s of non-tone after it (or after a deadline).
  - We then measure the tone itself in the decoded PCM: the span from the first to the last 20 ms
    window holding a 440 Hz tone must be 8 s within 5 % (7.6..8.4 s), at least 99 % of the windows
    in that span must hold the tone (no holes: lost or duplicated audio shows up here, since the span
    is bounded by what was published), and the tone must be 440 Hz (zero crossings and a DFT peak).
    Wall clock never enters the assertion; it only bounds the waits.
  - ffmpeg runs with -v error: any line on its stderr is a decode error and fails the test.
"""
import os
import subprocess
import time

from lib import (Listener, Server, check, check_opus_head_pages, create_space, dft_peak, established_to_port,
                 ffmpeg_decode_file, ffmpeg_publish, log, parse_pages, proc_log, read_s16, run_test, wait_silent_tail,
                 stop_process, tmpdir, tone_report, track, wait_until)

PUBLISH_S = 8.0


def check_capture(lst, what):
    """Strict checks on a raw capture: whole valid pages only, headers first, one serial,
    contiguous page sequence numbers, granule positions increasing."""
    data = bytes(lst.body)
    pages, tail = parse_pages(data)   # raises on any garbage or CRC error
    serial = check_opus_head_pages(pages, what)
    prev_seq = None
    prev_gp = 0
    for p in pages:
        check(p.serial == serial, "%s: page %r has another serial than the headers (%08x)" % (what, p, serial))
        check(not p.bos or p is pages[0], "%s: BOS flag on a later page %r" % (what, p))
        # Sequence numbers are the server's (shared by every listener, so a late joiner sees a jump
        # after the header pages); from the first audio page on, a listener that keeps up sees
        # every page.
        if prev_seq is not None:
            if p is pages[2]:
                check(p.seq > prev_seq, "%s: page sequence goes back %d -> %d" % (what, prev_seq, p.seq))
            else:
                check(p.seq == prev_seq + 1, "%s: page sequence jumps %d -> %d" % (what, prev_seq, p.seq))
        prev_seq = p.seq
        if p.granule != -1 and p is not pages[0] and p is not pages[1]:
            check(p.granule > prev_gp, "%s: granule not increasing: %d after %d (%r)" % (what, p.granule, prev_gp, p))
            prev_gp = p.granule
    return pages, data[: len(data) - tail]


def decoded_tone(path):
    return tone_report(read_s16(path))


def main():
    srv = Server().start()
    sid, key = create_space(srv, "Publish and listen")
    d = tmpdir()
    url = "%s/spaces/%s/live.opus" % (srv.url, sid)

    # ---- listeners first ----
    cap = Listener(srv, sid, max_seconds=50)
    cap.start()
    cap.wait_head(5)
    check("audio/ogg" in (cap.headers.get("content-type") or ""),
          "listener Content-Type %r (expected audio/ogg)" % cap.headers.get("content-type"))
    check("content-length" not in cap.headers, "live stream must not have Content-Length: %r" % cap.headers)

    out_raw = os.path.join(d, "ffmpeg-listen.raw")
    err_path = os.path.join(d, "ffmpeg-listen.err")
    errf = open(err_path, "wb")
    lis = track(subprocess.Popen(["ffmpeg", "-nostdin", "-v", "error", "-i", url, "-f", "s16le", "-ac", "1",
                            "-ar", "48000", "-y", out_raw], stdin=subprocess.DEVNULL, stdout=errf, stderr=errf))
    errf.close()
    try:
        wait_until(lambda: established_to_port(lis.pid, srv.port) >= 1 or lis.poll() is not None, 10,
                   "ffmpeg listener to connect")
        check(lis.poll() is None, "ffmpeg listener exited early (%s): %s" % (lis.returncode, open(err_path).read()))

        # ---- publish exactly 8 s, the command from the README/issue, unchanged ----
        t_pub = time.monotonic()
        pub = ffmpeg_publish(srv, sid, key, PUBLISH_S)
        try:
            pub.wait(PUBLISH_S + 20)
        except subprocess.TimeoutExpired:
            stop_process(pub)
            check(False, "ffmpeg publisher did not finish 8 s within 28 s: %s" % proc_log(pub))
        pub_wall = time.monotonic() - t_pub
        check(pub.returncode == 0, "ffmpeg publisher (PUT) exited %d: %s" % (pub.returncode, proc_log(pub)))
        check(proc_log(pub).strip() == "", "ffmpeg publisher printed errors: %s" % proc_log(pub))
        log("publisher done after %.2fs wall" % pub_wall)
        srv.check_alive("after the publisher ended")

        # ---- wait for the end of the tone plus 1 s of what follows (silence), or a deadline ----
        def tail_done():
            if lis.poll() is not None:
                return True
            try:
                rep = decoded_tone(out_raw)
            except (OSError, IndexError):
                return False
            return rep["last_s"] is not None and rep["total_s"] - rep["last_s"] >= 1.0
        deadline = time.monotonic() + 8
        n = 0
        while time.monotonic() < deadline and n < 100 and not tail_done():
            time.sleep(0.3)
            n += 1
        silence_followed = tail_done()
        check(lis.poll() is None, "ffmpeg listener exited (%s) instead of staying connected: %s"
              % (lis.returncode, open(err_path).read()))
    finally:
        stop_process(lis)
    cap.stop()

    errs = open(err_path, "rb").read().decode(errors="replace").strip()
    check(errs == "", "ffmpeg listener reported decode errors:\n%s" % errs[-3000:])
    rep = decoded_tone(out_raw)
    log("ffmpeg listener: %r (silence after tone seen: %s)" % (rep, silence_followed))
    check(rep["tone_windows"] > 0, "ffmpeg listener decoded no 440 Hz tone at all: %r" % rep)
    check(abs(rep["span_s"] - PUBLISH_S) <= 0.05 * PUBLISH_S,
          "decoded tone lasts %.2fs, expected %.1fs within 5%%: %r" % (rep["span_s"], PUBLISH_S, rep))
    check(rep["inside_fraction"] >= 0.99, "tone has holes (%.1f%% of windows hold it; holes at (s, len)): %r"
          % (100 * rep["inside_fraction"], rep))
    check(abs(rep["mean_freq"] - 440) <= 5, "tone frequency %.1f Hz, expected 440: %r" % (rep["mean_freq"], rep))
    s = read_s16(out_raw)
    mid = int((rep["first_s"] + rep["span_s"] / 2) * 48000)
    peak = dft_peak(s[mid: mid + 4800])
    check(peak == 440, "DFT peak at %s Hz, expected 440" % peak)

    # ---- the raw capture of the same stream: whole valid pages, and it decodes to the same tone ----
    pages, whole = check_capture(cap, "raw listener")
    log("raw listener: %d pages, %d bytes" % (len(pages), len(whole)))
    cap_path = os.path.join(d, "capture.opus")
    with open(cap_path, "wb") as f:
        f.write(whole)
    rc, err = ffmpeg_decode_file(cap_path, cap_path + ".raw")
    check(rc == 0 and err.strip() == "", "ffmpeg cannot decode the raw capture cleanly (rc %d): %s" % (rc, err))
    rep2 = decoded_tone(cap_path + ".raw")
    log("raw capture decoded: %r" % rep2)
    check(abs(rep2["span_s"] - PUBLISH_S) <= 0.05 * PUBLISH_S and rep2["inside_fraction"] >= 0.99,
          "raw capture: tone %.2fs (expected %.1fs within 5%%) %r" % (rep2["span_s"], PUBLISH_S, rep2))

    # ---- legacy SOURCE publishes too (fresh space, a raw listener) ----
    sid2, key2 = create_space(srv, "Legacy source")
    cap2 = Listener(srv, sid2, max_seconds=30)
    cap2.start()
    cap2.wait_head(5)
    pub2 = ffmpeg_publish(srv, sid2, key2, 3, legacy=True, content_type="audio/ogg")
    try:
        pub2.wait(25)
    except subprocess.TimeoutExpired:
        stop_process(pub2)
        check(False, "legacy SOURCE publisher did not finish: %s" % proc_log(pub2))
    check(pub2.returncode == 0, "ffmpeg SOURCE publisher exited %d: %s" % (pub2.returncode, proc_log(pub2)))
    # The end of the tone can still be in the server's buffers: wait for 1 s of silence after it.
    wait_silent_tail(cap2, 10, 10, "1 s of silence after the SOURCE publisher ended")
    cap2.stop()
    pages2, whole2 = check_capture(cap2, "SOURCE listener")
    p2 = os.path.join(d, "capture2.opus")
    with open(p2, "wb") as f:
        f.write(whole2)
    rc, err = ffmpeg_decode_file(p2, p2 + ".raw")
    check(rc == 0 and err.strip() == "", "SOURCE capture does not decode cleanly: %s" % err)
    rep3 = decoded_tone(p2 + ".raw")
    log("SOURCE capture decoded: %r" % rep3)
    check(rep3["span_s"] >= 2.7, "SOURCE publish: only %.2fs of the 3 s tone reached a listener: %r"
          % (rep3["span_s"], rep3))
    srv.check_alive()
    srv.stop()


if __name__ == "__main__":
    run_test(main)
