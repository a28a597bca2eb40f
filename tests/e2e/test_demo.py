"""`tribune demo`: a ready space "demo", audible at once, and a web page with an <audio> element.

  - GET /api/spaces lists a space with id "demo".
  - ffmpeg decodes the first 3 s of /spaces/demo/live.opus with no error on stderr (-v error), the
    decoded audio lasts 3 s (within 5 %), and it is not silence: at least 10 % of its 20 ms windows
    are louder than -50 dBFS (the demo speaker may be speech with pauses, so not "all windows").
  - The first bytes are the Ogg header pages (OpusHead, OpusTags).
  - GET / is text/html with an <audio> element whose URL (src or <source>) is a live.opus URL that
    answers 200 audio/ogg.
  - Ctrl-C (SIGINT) stops the demo cleanly: exit 0 within 10 s, no sanitizer report.
"""
import os
import re
import signal
import subprocess

from lib import (Listener, Server, analyse_windows, check, check_opus_head_pages, http, http_json, log,
                 read_s16, run_test, tmpdir)


def main():
    srv = Server(cmd="demo").start()
    st, _, obj = http_json(srv, "GET", "/api/spaces")
    ids = [str(s.get("id")) for s in (obj or {}).get("spaces", [])]
    check("demo" in ids, "GET /api/spaces does not list the demo space: %r" % obj)

    out = os.path.join(tmpdir(), "demo.raw")
    url = srv.url + "/spaces/demo/live.opus"
    try:
        r = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", url, "-t", "3", "-f", "s16le", "-ac", "1",
                            "-ar", "48000", "-y", out], capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        check(False, "ffmpeg did not decode 3 s of the demo within 30 s")
    err = r.stderr.decode(errors="replace").strip()
    check(r.returncode == 0, "ffmpeg listening to the demo exited %d: %s" % (r.returncode, err))
    check(err == "", "ffmpeg reported errors decoding the demo:\n%s" % err[-3000:])
    s = read_s16(out)
    dur = len(s) / 48000.0
    check(abs(dur - 3.0) <= 0.15, "decoded %.2fs of the demo, expected 3 s" % dur)
    ws = analyse_windows(s)
    loud = sum(1 for rms, _ in ws if rms > 100)
    log("demo: %.2fs decoded, %d/%d windows above -50 dBFS, max rms %.0f"
        % (dur, loud, len(ws), max(r for r, _ in ws)))
    check(loud >= 0.1 * len(ws), "the demo is (nearly) silent: %d of %d windows above -50 dBFS" % (loud, len(ws)))

    lst = Listener(srv, "demo", max_seconds=20)
    lst.start()
    lst.wait_head(5)
    check("audio/ogg" in lst.headers.get("content-type", ""), "demo Content-Type %r" % lst.headers)
    lst.wait_pages(4, 5, "from the demo")
    check_opus_head_pages(lst.page_list(), "demo stream")
    lst.stop()

    st, hd, body = http(srv, "GET", "/")
    page = body.decode("utf-8", "replace")
    check(st == 200, "GET / -> %d" % st)
    check("text/html" in hd.get("content-type", ""), "GET / Content-Type %r" % hd.get("content-type"))
    m = re.search(r"<audio\b[^>]*>", page, re.I)
    check(m, "GET / has no <audio> element:\n%s" % page[:2000])
    rest = page[m.start():]
    end = re.search(r"</audio>", rest, re.I)
    elem = rest[: end.end()] if end else m.group(0)
    u = re.search(r"""(?:src)\s*=\s*["']?([^"' >]*live\.opus)""", elem, re.I)
    check(u, "the <audio> element does not point at a live.opus URL: %s" % elem[:500])
    src = u.group(1)
    path = re.sub(r"^https?://[^/]+", "", src)
    check(path.startswith("/"), "audio src %r is not an absolute path or URL" % src)
    lst = Listener(srv, None, path=path, max_seconds=10)
    lst.start()
    lst.wait_head(5)
    lst.wait_pages(2, 5, "from the page's audio URL %s" % path)
    lst.stop()
    log("GET / audio element -> %s" % src)

    srv.stop(sig=signal.SIGINT)


if __name__ == "__main__":
    run_test(main)
