"""Chromium's <audio> plays the demo (issue 2: "plays in ... Chromium's <audio>").

Real headless Chromium (Debian package chromium) opens a page that holds
`<audio src="http://127.0.0.1:PORT/spaces/demo/live.opus">` (the element Tribune's own `/` page
uses, with an absolute URL), calls play() (muted, so autoplay is allowed), and reports the element's
state to this test once a second over HTTP. Asserts: play() resolved, no media error, and
currentTime advanced by at least 3 s, about as fast as the wall clock (the browser decodes and
plays the Ogg/Opus stream). Also asserts that Tribune's `/` page has that <audio> element.
"""
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import os
import shutil
import subprocess
import threading
import time
import urllib.parse

from lib import Server, check, http, log, run_test, tmpdir, wait_until

PAGE = """<!doctype html><html><body>
<audio id="a" src="%s/spaces/demo/live.opus" muted></audio>
<script>
const a = document.getElementById('a');
function report(kv) { fetch('/report?' + kv).catch(() => {}); }
a.play().then(() => report('played=1')).catch(e => report('err=' + encodeURIComponent(e)));
setInterval(() => report('t=' + a.currentTime + '&e=' + (a.error ? a.error.code : 0) + '&r=' + a.readyState), 500);
</script></body></html>"""


def main():
    chromium = shutil.which("chromium")
    check(chromium is not None, "chromium is missing: scripts/deps.sh installs the Debian package")
    srv = Server("demo").start()
    st, _, body = http(srv, "GET", "/")
    check(st == 200 and b'<audio' in body and b'/spaces/demo/live.opus' in body,
          "GET / lacks the demo's <audio> element: %r" % body[:500])
    reports = []
    page = (PAGE % srv.url).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/report"):
                q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                reports.append((time.monotonic(), {k: v[0] for k, v in q.items()}))
                self.send_response(204)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    web = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    profile = tmpdir()
    argv = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--user-data-dir=" + profile, "--autoplay-policy=no-user-gesture-required",
            "http://127.0.0.1:%d/" % web.server_port]
    log("start: %s" % " ".join(argv))
    br = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def played():
            errs = [r for _, r in reports if "err" in r]
            check(not errs, "play() was refused: %r" % errs)
            return any("played" in r for _, r in reports)
        wait_until(played, 30, "Chromium to start playing")

        def position():
            ts = [(t, float(r["t"])) for t, r in reports if "t" in r]
            return ts[-1] if ts else (0, 0.0)
        start = position()

        def advanced():
            return position()[1] - start[1] >= 3.0
        wait_until(advanced, 15, "currentTime to advance 3 s")
        end = position()
        errors = [r["e"] for _, r in reports if "e" in r and r["e"] != "0"]
        check(not errors, "media errors: %r" % errors)
        rate = (end[1] - start[1]) / max(end[0] - start[0], 0.001)
        log("Chromium played %.2f s of audio in %.2f s of wall time (rate %.2f), readyState %s"
            % (end[1] - start[1], end[0] - start[0], rate, reports[-1][1].get("r")))
        check(0.7 <= rate <= 1.5, "playback rate %.2f: not real time" % rate)
    finally:
        br.kill()
        br.wait()
        web.shutdown()
        shutil.rmtree(profile, ignore_errors=True)
    srv.stop()


if __name__ == "__main__":
    run_test(main)
