"""Bad publishers: each gets a clear error, and a listener of a live space notices nothing.

Space A is published by real ffmpeg for the whole test and listened to by L (raw socket, strict Ogg
parser: any garbage, partial page or CRC error in what L receives fails the test). After each bad
input we check the expected error AND that L received more whole pages meanwhile and is still
connected.

  1. wrong key (A and B), missing key (B) -> 401 with WWW-Authenticate: Basic
  2. unknown space -> 404
  3. second publisher on A while ffmpeg publishes -> 409
  4. body not Ogg on B -> 415 with a message; Ogg/Vorbis on B -> 415 with a message
  5. space C, listener LC: a raw publisher sends valid pages, then a truncated page followed by garbage,
     then valid pages again. LC only ever receives whole valid pages and hears the tone again
     afterwards (whether the server resyncs or drops that publisher and the next one resumes).
  6. on C, a raw publisher sends half a page and closes with RST: LC stays connected and keeps
     getting whole pages (silence); a new publisher starts and LC hears it on the same connection,
     same serial, granule positions still increasing.
  7. on A, ffmpeg is SIGKILLed mid-stream: L keeps getting whole pages; a new ffmpeg publishes and
     L hears it without reconnecting.
"""
import os
import signal
import subprocess
import time

from lib import (Listener, RawPublisher, Server, check, create_space, ffmpeg_publish, final_response, log,
                 make_ogg, packets, parse_head, parse_pages, proc_log, run_test, start_raw_publisher, stop_process, tmpdir,
                 wait_silent_tail, wait_until)


def wait_more_pages(lst, n, timeout, what):
    base = lst.page_count()
    lst.wait_pages(base + n, timeout, what)


def is_tone_packet(p):
    return len(p) > 40


def wait_tone(lst, from_page, timeout, what):
    """Wait until lst has received at least 5 tone-sized Opus packets after page index from_page."""
    def ok():
        lst.check_ok()
        return sum(1 for p in lst.audio_packets_since(from_page) if is_tone_packet(p)) >= 5
    wait_until(ok, timeout, what)


def unaffected(lst, what):
    """The listener is still connected and received >= 3 more whole pages (about 300 ms)."""
    wait_more_pages(lst, 3, 5, "(listener should keep receiving audio after %s)" % what)
    lst.check_ok()


def publish_attempt(srv, sid, key, body=None, method="PUT", timeout=5):
    """Send a publish head (and body bytes, if given). Returns (final status, headers, body text)."""
    p = RawPublisher(srv, sid, key, method=method)
    try:
        if body is not None:
            try:
                p.send(body)
            except OSError:
                pass   # the server may answer and close before reading all of it
        r = p.read_response(timeout=timeout, want_final=(body is not None))
        check(r is not None, "%s %s: no response within %ss (got %r)" % (method, sid, timeout, p.resp[:200]))
        st, hd, rest = r
        if st >= 400:
            p.read_body_until_close(2)
            rest = final_response(p.resp)[2]
        return st, hd, rest.decode("utf-8", "replace")
    finally:
        p.close()


def check_full_capture(lst, what):
    pages, _ = parse_pages(bytes(lst.body))
    serial = pages[0].serial
    prev = 0
    for p in pages:
        check(p.serial == serial, "%s: serial changed mid-connection %08x -> %08x" % (what, serial, p.serial))
        if p.granule not in (-1, 0):
            check(p.granule > prev, "%s: granule went from %d to %d" % (what, prev, p.granule))
            prev = p.granule
    return pages


def main():
    srv = Server().start()
    d = tmpdir()
    sid_a, key_a = create_space(srv, "A: live all along")
    sid_b, key_b = create_space(srv, "B: bad publishers")
    sid_c, key_c = create_space(srv, "C: broken streams")

    pub_a = ffmpeg_publish(srv, sid_a, key_a, 45)
    L = Listener(srv, sid_a, max_seconds=55)
    L.start()
    L.wait_head(5)
    wait_tone(L, 2, 10, "tone on space A")
    log("A is live")

    # 1. keys
    for sid, key, what in ((sid_a, "0" * 32, "wrong key on a live space"), (sid_b, key_a, "another space's key"),
                           (sid_b, None, "no key")):
        st, hd, body = publish_attempt(srv, sid, key)
        check(st == 401, "%s: status %d (expected 401) %r" % (what, st, body[:200]))
        check(hd.get("www-authenticate", "").lower().startswith("basic"),
              "%s: 401 without WWW-Authenticate: Basic (headers %r)" % (what, hd))
        unaffected(L, what)

    # 2. unknown space
    st, hd, body = publish_attempt(srv, "no-such-space", key_a)
    check(st == 404, "PUT to an unknown space: status %d (expected 404) %r" % (st, body[:200]))
    unaffected(L, "unknown space")

    # 3. second publisher
    st, hd, body = publish_attempt(srv, sid_a, key_a)
    check(st == 409, "second publisher while ffmpeg publishes: status %d (expected 409) %r" % (st, body[:200]))
    check(pub_a.poll() is None, "the first publisher was disconnected by the second one: %s" % proc_log(pub_a))
    unaffected(L, "second publisher")

    # 4. not Ogg, Ogg/Vorbis
    junk = b"This is not an Ogg stream, it is text.\n" * 120
    st, hd, body = publish_attempt(srv, sid_b, key_b, body=junk)
    check(st == 415, "not-Ogg body: status %d (expected 415) %r" % (st, body[:200]))
    check(body.strip() != "", "415 for a non-Ogg body carries no message")
    unaffected(L, "not-Ogg body")
    vorbis = open(make_ogg(os.path.join(d, "v.ogg"), 2, codec="libvorbis"), "rb").read()
    st, hd, body = publish_attempt(srv, sid_b, key_b, body=vorbis)
    check(st == 415, "Ogg/Vorbis body: status %d (expected 415) %r" % (st, body[:200]))
    check(body.strip() != "", "415 for Ogg/Vorbis carries no message")
    unaffected(L, "Ogg/Vorbis body")
    srv.check_alive()

    # 5. truncated page + garbage between pages, on C with listener LC
    opus = open(make_ogg(os.path.join(d, "c.opus"), 12, page_ms=100), "rb").read()
    pages, _ = parse_pages(opus)
    head, audio = pages[:2], pages[2:]
    check(len(audio) > 100, "expected ~120 pages of 100 ms, got %d" % len(audio))
    LC = Listener(srv, sid_c, max_seconds=50)
    LC.start()
    LC.wait_head(5)
    p = start_raw_publisher(srv, sid_c, key_c, b"".join(x.raw for x in head), "raw publisher on C")
    p.send_pages_paced(audio[:15])
    wait_tone(LC, 2, 5, "tone on C from the raw publisher")
    mark = LC.page_count()
    half = audio[15].raw[: len(audio[15].raw) // 2]
    garbage = b"GARBAGE!" * 64 + b"OggS" + b"\xff" * 40 + b"Og"
    dropped = False
    mark2 = None
    try:
        p.send(half + garbage)
        p.send_pages_paced(audio[16:31])
        # Pages after mark2 can only carry audio sent after the garbage (the pages before it
        # left 1.5 s ago), so tone there means the server resynchronised.
        mark2 = LC.page_count()
        p.send_pages_paced(audio[31:50])
    except OSError as e:
        dropped = True
        log("server dropped the publisher after garbage (%r)" % e)
    LC.check_ok()
    if dropped or not sum(1 for x in LC.audio_packets_since(mark2) if is_tone_packet(x)) >= 5:
        # The server may drop a publisher that sends garbage; the next publisher must resume.
        log("no resync after garbage (dropped=%s); trying a new publisher" % dropped)
        p.close()
        wait_more_pages(LC, 5, 5, "(silence after the garbage publisher was dropped)")
        mark2 = LC.page_count()
        p = start_raw_publisher(srv, sid_c, key_c, b"".join(x.raw for x in head), "publisher after garbage")
        p.send_pages_paced(audio[40:60])
    wait_tone(LC, mark2, 5, "tone on C after the garbage")
    log("C survived garbage (publisher dropped: %s)" % dropped)
    unaffected(L, "garbage on another space")

    # 6. publisher dies mid-page (half a page, then RST)
    p.send(audio[60].raw[: len(audio[60].raw) // 2])
    p.close(rst=True)
    mark = LC.page_count()
    # LC keeps getting whole pages: the remaining buffered audio, then silence (1 s of it).
    wait_more_pages(LC, 10, 6, "(listener on C should keep receiving pages after its publisher died)")
    wait_silent_tail(LC, 10, 8, "1 s of silence on C after its publisher died")
    mark = LC.page_count()
    p = start_raw_publisher(srv, sid_c, key_c, b"".join(x.raw for x in head), "new publisher on C after a dead one")
    p.send_pages_paced(audio[:20])
    wait_tone(LC, mark, 5, "tone on C from the returning publisher, same connection")
    p.close()
    wait_more_pages(LC, 3, 5, "after the returning publisher closed")
    LC.stop()
    check_full_capture(LC, "listener on C")

    # 7. SIGKILL ffmpeg on A, then a new ffmpeg
    pub_a.send_signal(signal.SIGKILL)
    pub_a.wait(5)
    wait_more_pages(L, 10, 6, "(listener on A after ffmpeg was SIGKILLed)")
    wait_silent_tail(L, 10, 8, "1 s of silence on A after ffmpeg was SIGKILLed")
    mark = L.page_count()
    pub_a2 = ffmpeg_publish(srv, sid_a, key_a, 4)
    try:
        wait_tone(L, mark, 10, "tone on A from a new ffmpeg, same connection")
    except Exception:
        print("second ffmpeg log:", proc_log(pub_a2))
        raise
    stop_process(pub_a2)
    L.stop()
    check_full_capture(L, "listener on A")
    srv.check_alive()
    srv.stop()


if __name__ == "__main__":
    run_test(main)
