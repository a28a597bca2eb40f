"""The web app (issue 8): every page and asset of web/ served by the binary itself.

  - GET of `/`, `/s/demo`, `/host/demo`, `/speak/demo`: 200 text/html, `<html lang="en">`, a viewport
    meta, the page's module script; `/` holds the demo's `<audio src="/spaces/demo/live.opus">`.
  - Every file under web/: GET /web/<path> answers 200 with its exact bytes, the Content-Type of its
    extension (js = text/javascript), an ETag and `Cache-Control: no-cache`; HEAD answers the same
    head with no body; If-None-Match with that ETag (also weak, also in a list, also `*`) answers 304
    with no body; a stale ETag answers 200.
  - 404 for unknown assets, unknown spaces and every traversal spelling (sent raw, unnormalised),
    405 for POST; the server is unharmed afterwards.
  - Every web/js module parses (`node --check`), and pages load nothing from outside (no http(s)://
    URL in web/ besides the SVG namespace).
  - web/node_modules and web's npm files are not served; hls.js's two files are, under /web/vendor/,
    when `npm ci` in web/ installed them (scripts/embed_web.py): checked like any asset then.
  - The reconnection policy (web/js/backoff.js, run in Node): each attempt's delays lie in
    [0, min(10 s, 0.5 s x 2^attempt)) and spread over that window (full jitter), Retry-After is read
    (seconds and HTTP dates) and honoured as a floor, a client never holds two pending attempts,
    and the attempt counter starts over after 10 s connected. The SSE parser (web/js/api.js) splits
    events across chunk and CRLF boundaries.
"""
import json
import os
import re
import shutil
import subprocess

from lib import Server, check, http, log, parse_head, raw_request, run_test

WEB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "web")
TYPES = {".html": "text/html", ".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml",
         ".png": "image/png", ".json": "application/json", ".txt": "text/plain"}
# Served from web/node_modules when present (scripts/embed_web.py VENDOR): served name -> file.
VENDOR = {"vendor/hls.min.js": "node_modules/hls.js/dist/hls.min.js",
          "vendor/hls.min.js.LICENSE.txt": "node_modules/hls.js/LICENSE"}
NPM_TOP = {"node_modules", "package.json", "package-lock.json"}
PAGES = {"/": "index.js", "/s/demo": "listen.js", "/host/demo": "host.js", "/speak/demo": "speak.js"}
BAD = ["/web/nope.js", "/web/js/nope.js", "/web/", "/web/js", "/web/js/", "/web/../README.md",
       "/web/../../etc/passwd", "/web/js/../index.html", "/web/%2e%2e/Makefile", "/web/js/%2e%2e/index.html",
       "/web//index.html", "/web/./index.html", "/web/INDEX.HTML", "/web/index.html%00", "/web/js/api.js/x",
       "/web/..%2fREADME.md", "/web/css/../../src/main.c", "/s/no-such-space", "/host/bad!id", "/speak/x/y",
       "/s/" + "a" * 40, "/web/package.json", "/web/package-lock.json",
       "/web/node_modules/hls.js/dist/hls.min.js", "/web/node_modules/hls.js/package.json"]


def web_files():
    out = []
    for d, dirs, names in os.walk(WEB):
        if os.path.samefile(d, WEB):
            dirs[:] = [x for x in dirs if x not in NPM_TOP]
            names = [x for x in names if x not in NPM_TOP]
        dirs.sort()
        for n in sorted(names):
            out.append(os.path.relpath(os.path.join(d, n), WEB).replace(os.sep, "/"))
    return out


def raw_get(srv, path, method="GET", headers=""):
    data = raw_request(srv, ("%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (method, path, headers)).encode())
    r = parse_head(data)
    check(r is not None, "%s %s: no HTTP answer: %r" % (method, path, data[:200]))
    return r


def check_pages(srv):
    for path, module in PAGES.items():
        st, hd, body = http(srv, "GET", path)
        page = body.decode()
        check(st == 200, "GET %s -> %d" % (path, st))
        check(hd.get("content-type", "").startswith("text/html"), "GET %s Content-Type %r" % (path, hd))
        check('<html lang="en">' in page and 'name="viewport"' in page, "GET %s lacks lang/viewport" % path)
        check('src="/web/js/%s"' % module in page, "GET %s does not load /web/js/%s" % (path, module))
        check("default-src 'self'" in hd.get("content-security-policy", ""), "GET %s: no CSP %r" % (path, hd))
    _, _, body = http(srv, "GET", "/")
    check(re.search(rb'<audio\b[^>]*src="/spaces/demo/live.opus"', body), "/ lacks the demo's <audio>")


def check_asset(srv, rel, disk=None):
    with open(os.path.join(WEB, disk or rel), "rb") as f:
        want = f.read()
    path = "/web/" + rel
    st, hd, body = http(srv, "GET", path)
    check(st == 200, "GET %s -> %d" % (path, st))
    ctype = TYPES.get(os.path.splitext(rel)[1], "application/octet-stream")
    check(hd.get("content-type", "").startswith(ctype), "GET %s Content-Type %r, want %s" % (path, hd.get("content-type"), ctype))
    check(body == want, "GET %s: %d bytes differ from web/%s (%d bytes): rebuild?" % (path, len(body), rel, len(want)))
    etag = hd.get("etag", "")
    check(re.fullmatch(r'"[0-9a-f]{16}"', etag), "GET %s ETag %r" % (path, etag))
    check(hd.get("cache-control") == "no-cache", "GET %s Cache-Control %r" % (path, hd.get("cache-control")))
    # HEAD: the same head, no body (read raw: the connection closes after the head)
    st, hh, rest = raw_get(srv, path, "HEAD")
    check(st == 200 and rest == b"", "HEAD %s -> %d with %d body bytes" % (path, st, len(rest)))
    check(hh.get("content-length") == str(len(want)) and hh.get("etag") == etag, "HEAD %s head %r" % (path, hh))
    for inm in (etag, "W/" + etag, '"0000000000000000", ' + etag, "*"):
        st, h3, rest = raw_get(srv, path, headers="If-None-Match: %s\r\n" % inm)
        check(st == 304 and rest == b"", "If-None-Match %s on %s -> %d, %d bytes" % (inm, path, st, len(rest)))
        check(h3.get("etag") == etag and "content-length" not in h3, "304 of %s head %r" % (path, h3))
    st, _, body = http(srv, "GET", path, headers={"If-None-Match": '"0000000000000000"'})
    check(st == 200 and body == want, "a stale ETag on %s -> %d" % (path, st))


def check_refusals(srv):
    for path in BAD:
        st, hd, rest = raw_get(srv, path)
        check(st == 404, "GET %s -> %d, want 404" % (path, st))
        check(len(rest) < 2000 and b"#include" not in rest and b"root:" not in rest,
              "GET %s: a 404 with a body of %d bytes: %r" % (path, len(rest), rest[:200]))
    st, hd, _ = http(srv, "POST", "/web/js/api.js", body=b"x")
    check(st == 405, "POST /web/js/api.js -> %d, want 405" % st)
    st, _, _ = http(srv, "GET", "/api/spaces")
    check(st == 200, "the API after the refusals -> %d" % st)


def check_sources(files):
    node = shutil.which("node")
    check(node is not None, "node is missing: scripts/deps.sh installs Node.js")
    js = [f for f in files if f.endswith(".js")]
    check(len(js) >= 8, "only %d JS modules in web/js" % len(js))
    for f in js:
        r = subprocess.run([node, "--check", os.path.join(WEB, f)], capture_output=True, timeout=30)
        check(r.returncode == 0, "node --check web/%s: %s" % (f, r.stderr.decode(errors="replace")[-2000:]))
    for f in files:
        with open(os.path.join(WEB, f), "rb") as fh:
            text = fh.read().decode("utf-8", "replace")
        ext = re.findall(r"https?://[^\s\"')]+", text)
        ext = [u for u in ext if u != "http://www.w3.org/2000/svg"]
        check(not ext, "web/%s loads from outside: %r" % (f, ext))


POLICY_JS = r"""
import { jitteredDelay, retryAfterMs, Retrier, BASE_MS, CAP_MS, RESET_MS } from '%(web)s/js/backoff.js';
import { sseParser } from '%(web)s/js/api.js';
const out = { windows: [] };
for (let a = 0; a <= 8; a++) {
  const d = Array.from({ length: 4000 }, () => jitteredDelay(a));
  out.windows.push({ a, min: Math.min(...d), max: Math.max(...d), mean: d.reduce((x, y) => x + y) / d.length });
}
out.base = BASE_MS; out.cap = CAP_MS; out.reset = RESET_MS;
out.ra = [retryAfterMs('7'), retryAfterMs(''), retryAfterMs('soon'),
  retryAfterMs(new Date(Date.now() + 4000).toUTCString())];
let calls = 0;
const r = new Retrier(() => calls++);
const first = r.failed(), second = r.failed();
r.stop();
const r2 = new Retrier(() => calls++);
const floor = r2.failed(5000);
r2.stop();
const r3 = new Retrier(() => {});
for (let i = 0; i < 6; i++) { r3.failed(); r3.stop(); r3.stopped = false; }
const before = r3.failures;
r3.connected(); r3.upSince = performance.now() - RESET_MS - 1; r3.failed(); r3.stop();
out.retrier = { first, second, floor, before, after: r3.failures };
const events = [];
const push = sseParser((d) => events.push(d));
for (const piece of ['id: 1\r\ndata: {"a"', ':1}\r\n\r\nda', 'ta: x\ndata: y\n', '\n']) push(piece);
out.events = events;
setTimeout(() => { out.calls = calls; console.log(JSON.stringify(out)); }, 50);
"""


def check_policy(node):
    r = subprocess.run([node, "--input-type=module", "-e", POLICY_JS % {"web": os.path.abspath(WEB)}],
                       capture_output=True, timeout=30)
    check(r.returncode == 0, "the policy check failed in Node: %s" % r.stderr.decode(errors="replace")[-2000:])
    o = json.loads(r.stdout.decode())
    check(o["base"] == 500 and o["cap"] == 10000 and o["reset"] == 10000, "policy constants %r" % o)
    for w in o["windows"]:
        ceiling = min(10000, 500 * 2 ** w["a"])
        check(w["min"] >= 0 and w["max"] < ceiling, "attempt %d: delays %r outside [0, %d)" % (w["a"], w, ceiling))
        check(w["min"] < 0.05 * ceiling and w["max"] > 0.95 * ceiling and abs(w["mean"] - ceiling / 2) < 0.06 * ceiling,
              "attempt %d: delays %r do not spread over [0, %d) (full jitter)" % (w["a"], w, ceiling))
    check(o["ra"][:3] == [7000, 0, 0] and 2000 < o["ra"][3] <= 4000, "Retry-After readings %r" % o["ra"])
    t = o["retrier"]
    check(0 <= t["first"] < 500 and t["second"] == -1, "a second failure while one attempt is pending: %r" % t)
    check(t["floor"] >= 5000, "Retry-After 5 s not honoured: delay %r" % t["floor"])
    check(t["before"] == 6 and t["after"] == 1, "the counter after 10 s connected: %r" % t)
    check(o["calls"] == 0, "a stopped Retrier still called its attempt (%d)" % o["calls"])
    check(o["events"] == ['{"a":1}', "x\ny"], "SSE events %r" % o["events"])
    log("backoff: delays within and spread over [0, min(10 s, 0.5 s x 2^n)) for n = 0..8, Retry-After honoured, "
        "one pending attempt, reset after 10 s; SSE parser ok")


def main():
    files = web_files()
    check({"index.html", "listen.html", "host.html", "speak.html", "css/tribune.css"} <= set(files),
          "web/ lacks a page: %r" % files)
    check_sources(files)
    check_policy(shutil.which("node"))
    srv = Server(cmd="demo").start()
    check_pages(srv)
    for rel in files:
        check_asset(srv, rel)
    vendor = [(rel, disk) for rel, disk in VENDOR.items() if os.path.isfile(os.path.join(WEB, disk))]
    for rel, disk in vendor:
        check_asset(srv, rel, disk)
    check_refusals(srv)
    log("%d assets (%d from web/node_modules) served with their bytes, types, ETags, HEAD and 304; "
        "%d refusals answered 404" % (len(files) + len(vendor), len(vendor), len(BAD)))
    srv.stop()


if __name__ == "__main__":
    run_test(main)
