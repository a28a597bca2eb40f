"""50 concurrent raw-socket listeners while ffmpeg publishes.

Each captured stream must:
  - be a sequence of whole, CRC-valid Ogg pages from the first body byte (no garbage, no partial page
    except the one in flight when we stopped reading, which is cut off),
  - begin with the OpusHead page (BOS) then the OpusTags page, one serial throughout,
  - carry about 4 s of audio (granule span) that is not silence,
and for every page sequence number present in two streams, the page bytes must be identical
(one shared chunk ring, no per-listener re-muxing).

oggz-validate must accept one captured stream. A live capture ends mid-stream without an EOS page, so
plain oggz-validate reports "missing *** eos"; its --prefix flag ("treat input as the prefix of a
stream; suppress warnings about missing end-of-stream markers") is exactly our situation, and it
suppresses nothing else. The capture is cut at a page boundary.
"""
import os
import subprocess
import time

from lib import (Listener, Server, check, check_opus_head_pages, create_space, ffmpeg_publish, log, packets,
                 parse_pages, proc_log, run_test, stop_process, tmpdir, wait_until)

N = 50
LISTEN_S = 4.0


def main():
    srv = Server().start()
    sid, key = create_space(srv, "Fan-out")
    pub = ffmpeg_publish(srv, sid, key, 20)
    try:
        # Wait until audio flows: a probe listener sees tone-sized Opus packets.
        probe = Listener(srv, sid, max_seconds=30)
        probe.start()
        probe.wait_head(5)

        def audio_flows():
            check(pub.poll() is None, "publisher exited early (%s): %s" % (pub.returncode, proc_log(pub)))
            pk = packets(probe.page_list()[2:])
            return any(len(p) > 40 for p in pk)
        wait_until(audio_flows, 10, "audio (non-silent packets) to reach a probe listener")
        probe.stop()

        ls = [Listener(srv, sid, parse=False, max_seconds=30) for _ in range(N)]
        for lst in ls:
            lst.start()
        for lst in ls:
            lst.wait_head(10)
        t0 = time.monotonic()
        # Listen for LISTEN_S seconds (a bounded wait on the publisher doubles as the timer).
        try:
            pub.wait(LISTEN_S)
        except subprocess.TimeoutExpired:
            pass
        check(pub.poll() is None, "publisher exited during fan-out (%s): %s" % (pub.returncode, proc_log(pub)))
        for lst in ls:
            lst.stop(join=False)
        for lst in ls:
            lst.join(5)
        log("%d listeners for %.1fs" % (N, time.monotonic() - t0))
        srv.check_alive("with %d listeners" % N)
    finally:
        stop_process(pub)

    by_seq = {}
    first_serial = None
    heads = None
    for i, lst in enumerate(ls):
        what = "listener %d" % i
        check(lst.error is None, "%s: %r" % (what, lst.error))
        check(not lst.closed_by_server, "%s: the server closed the connection" % what)
        check("audio/ogg" in lst.headers.get("content-type", ""), "%s: Content-Type %r" % (what, lst.headers))
        pages, tail = parse_pages(bytes(lst.body))
        serial = check_opus_head_pages(pages, what)
        if first_serial is None:
            first_serial, heads = serial, (pages[0].raw, pages[1].raw)
        check(serial == first_serial, "%s: serial %08x differs from listener 0's %08x" % (what, serial, first_serial))
        check((pages[0].raw, pages[1].raw) == heads, "%s: header pages differ from listener 0's" % what)
        audio = pages[2:]
        check(all(p.serial == serial for p in audio), "%s: a page with a foreign serial" % what)
        gps = [p.granule for p in audio if p.granule != -1]
        check(len(gps) >= 2, "%s: fewer than 2 audio pages (%d bytes received)" % (what, lst.nbytes))
        check(all(b > a for a, b in zip(gps, gps[1:])), "%s: granule positions not increasing" % what)
        span = (gps[-1] - gps[0]) / 48000.0
        check(span >= LISTEN_S - 1.0, "%s: only %.2fs of audio in %.1fs" % (what, span, LISTEN_S))
        seqs = [p.seq for p in audio]
        check(all(b == a + 1 for a, b in zip(seqs, seqs[1:])), "%s: page sequence has holes: %r" % (what, seqs))
        pk = packets(audio)
        check(sum(1 for p in pk if len(p) > 40) >= len(pk) // 2, "%s: audio is mostly silence" % what)
        for p in audio:
            ref = by_seq.setdefault(p.seq, (i, p.raw))
            check(ref[1] == p.raw, "page seq %d differs between listener %d and listener %d (%d vs %d bytes)"
                  % (p.seq, ref[0], i, len(ref[1]), len(p.raw)))
        if i == 0:
            whole = bytes(lst.body[: len(lst.body) - tail])
    shared = sum(1 for s in by_seq)
    log("all %d streams agree; %d distinct audio pages" % (N, shared))

    path = os.path.join(tmpdir(), "capture.opus")
    with open(path, "wb") as f:
        f.write(whole)
    r = subprocess.run(["oggz-validate", "--prefix", path], capture_output=True, timeout=30)
    out = (r.stdout + r.stderr).decode(errors="replace")
    check(r.returncode == 0, "oggz-validate --prefix rejects a captured stream (rc %d):\n%s" % (r.returncode, out))
    r = subprocess.run(["oggz-validate", path], capture_output=True, timeout=30)
    log("plain oggz-validate (no --prefix) says (expected: only missing eos): rc %d %s"
        % (r.returncode, (r.stdout + r.stderr).decode(errors="replace").strip()))
    srv.stop()


if __name__ == "__main__":
    run_test(main)
