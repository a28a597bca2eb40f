"""Join tickets and the failed-key limit (issue 5, items 5 and 6).

(a) Tickets. A demo node (two workers) and a second space. The demo admits joins without a ticket
    until its host sets POST /api/spaces/demo/guard {"require_ticket": true} (Bearer host key, the
    key the demo printed); GET /api/spaces/demo then shows require_ticket true. From then on:
    a join without a ticket gets 403 with a JSON error and the server's
    refused{reason="ticket"} rises by one per refusal; with a fresh ticket from
    GET /api/spaces/demo/ticket the join hears Ogg/Opus; a ticket of the other space, a tampered
    ticket and garbage get 403. The ticket endpoint is open to anyone, answers
    {"ticket", "expires_at"} with expires_at about ticket_ttl_s ahead. {"require_ticket": false}
    lifts it: a join without a ticket hears again. The other space never required one.
(b) Expiry. A node started with --ticket_ttl_s 1: a ticket is refused (403, "expired") once the
    wall clock has reached its expires_at (waited for with wait_until, not a sleep).
(c) Failed keys, per client address. From 127.0.0.1, 5 host actions with a wrong key get 401 and
    the 6th gets 429 with Retry-After (refused{reason="key_limit"} +1), and so does the right key
    from there; from 127.0.0.2 a wrong key still gets 401 and the right key 200. Publishing with a
    wrong key counts the same way (from 127.0.0.3: 5 x 401, then 429).
(d) Restart: require_ticket and the node's secret persist (a ticket from before the restart is
    still good); the first join of a space no worker knows yet is judged by the master.
"""
import http.client as httpclient
import json
import re
import time

from lib import (Listener, Server, basic_auth, check, create_space, http_json, log, run_test,
                 wait_until)
from test_guard import refused


def request(srv, method, path, body=None, headers=None, src="127.0.0.1", timeout=10):
    """One request from source address `src`; (status, headers, parsed JSON or None)."""
    c = httpclient.HTTPConnection("127.0.0.1", srv.port, timeout=timeout, source_address=(src, 0))
    try:
        headers = dict(headers or {})
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        hd = {k.lower(): v for k, v in r.getheaders()}
        try:
            obj = json.loads(data.decode()) if data else None
        except ValueError:
            raise AssertionError("%s %s -> %d, not JSON: %r" % (method, path, r.status, data[:200]))
        return r.status, hd, obj
    finally:
        c.close()


def set_guard(srv, sid, key, require, src="127.0.0.1"):
    return request(srv, "POST", "/api/spaces/%s/guard" % sid, {"require_ticket": require},
                   {"Authorization": "Bearer %s" % key}, src=src)


def get_ticket(srv, sid):
    st, hd, obj = http_json(srv, "GET", "/api/spaces/%s/ticket" % sid)
    check(st == 200, "GET ticket of %s -> %d %r" % (sid, st, obj))
    check(isinstance(obj.get("ticket"), str) and isinstance(obj.get("expires_at"), int),
          "ticket answer %r" % obj)
    check(re.fullmatch(r"[A-Za-z0-9_.-]+", obj["ticket"]) is not None,
          "ticket is not URL-safe as it stands: %r" % obj["ticket"])
    return obj["ticket"], obj["expires_at"]


def join_status(srv, path, pages=3):
    """A join on a raw socket: (status, JSON body) for a refusal, (200, pages) for audio (at least
    `pages` Ogg pages; 0 for a space with nothing to hear yet)."""
    lst = Listener(srv, None, path=path, max_seconds=10)
    lst.start()
    check(lst.head_event.wait(10), "no answer to GET %s" % path)
    if lst.status == 200:
        lst.wait_pages(pages, 10, "after GET %s" % path)
        n = lst.page_count()
        lst.stop()
        return 200, n
    wait_until(lambda: not lst.is_alive(), 5, "the server to close a refused join")
    body = bytes(lst.body)
    try:
        obj = json.loads(body.decode())
    except ValueError:
        raise AssertionError("GET %s -> %s with a body that is not JSON: %r" % (path, lst.status, body))
    return lst.status, obj


def expect_refused(srv, path, what, text=None):
    before = refused(srv, "ticket")
    st, obj = join_status(srv, path)
    check(st == 403, "%s: GET %s -> %s %r (expected 403)" % (what, path, st, obj))
    check(isinstance(obj, dict) and "error" in obj, "%s: 403 body %r lacks error" % (what, obj))
    if text:
        check(text in obj["error"], "%s: error %r does not say %r" % (what, obj["error"], text))
    wait_until(lambda: refused(srv, "ticket") == before + 1, 3,
               "%s: refused{ticket} to rise by 1 (from %d)" % (what, before))
    log("%s: 403 %r, refused{ticket} +1" % (what, obj["error"]))


def tickets():
    srv = Server("demo", extra=["--workers", "2"]).start()
    m = wait_until(lambda: re.search(r"icecast://source:([0-9a-f]{32})@", srv.log_text()), 10,
                   "the demo's host key in its output")
    demo_key = m.group(1)
    other, other_key = create_space(srv, "Other space")
    live = "/spaces/demo/live.opus"

    st, _, obj = http_json(srv, "GET", "/api/spaces/demo")
    check(st == 200 and obj.get("require_ticket") is False, "demo starts without tickets: %r" % obj)
    check(join_status(srv, live)[0] == 200, "a join without a ticket hears before tickets are required")

    st, _, obj = set_guard(srv, "demo", demo_key, True)
    check(st == 200 and obj.get("require_ticket") is True, "POST guard -> %d %r" % (st, obj))
    st, _, obj = http_json(srv, "GET", "/api/spaces/demo")
    check(obj.get("require_ticket") is True, "GET /api/spaces/demo after guard: %r" % obj)
    st, _, obj = set_guard(srv, "demo", demo_key, "yes")
    check(st == 400, "require_ticket must be a boolean: %d %r" % (st, obj))

    expect_refused(srv, live, "no ticket", "requires a join ticket")
    expect_refused(srv, live + "?other=1", "a query without ticket")

    t, exp = get_ticket(srv, "demo")
    now = time.time()
    check(now + 50 <= exp <= now + 61, "expires_at %d is not about 60 s ahead of %d" % (exp, now))
    st, n = join_status(srv, live + "?ticket=" + t)
    check(st == 200, "a join with a fresh ticket -> %s %r" % (st, n))
    log("fresh ticket: 200 and %d pages" % n)
    st, n = join_status(srv, live + "?a=b&ticket=%s&c=d" % t)
    check(st == 200, "a ticket among other parameters -> %s %r" % (st, n))

    t_other, _ = get_ticket(srv, other)
    expect_refused(srv, live + "?ticket=" + t_other, "ticket for another space", "another space")
    tampered = t[:-1] + ("A" if t[-1] != "A" else "B")
    expect_refused(srv, live + "?ticket=" + tampered, "tampered ticket", "invalid")
    forged = "demo.%d.%s" % (exp + 3600, t.rsplit(".", 1)[1])
    expect_refused(srv, live + "?ticket=" + forged, "expiry moved forward", "invalid")
    expect_refused(srv, live + "?ticket=garbage", "garbage", "malformed")
    st, obj = join_status(srv, "/spaces/%s/live.opus" % other, pages=0)
    check(st == 200, "the other space never required a ticket: %s" % st)

    st, _, obj = set_guard(srv, "demo", demo_key, False)
    check(st == 200 and obj.get("require_ticket") is False, "guard off -> %d %r" % (st, obj))
    check(join_status(srv, live)[0] == 200, "a join without a ticket hears again")
    srv.stop()


def expiry():
    srv = Server("serve", extra=["--ticket_ttl_s", "1", "--workers", "1"]).start()
    sid, key = create_space(srv, "Short tickets")
    st, _, obj = set_guard(srv, sid, key, True)
    check(st == 200, "guard -> %d %r" % (st, obj))
    t, exp = get_ticket(srv, sid)
    check(exp <= time.time() + 1.5, "expires_at %d should be about 1 s ahead" % exp)
    wait_until(lambda: time.time() >= exp + 0.05, 5, "the wall clock to pass expires_at")
    expect_refused(srv, "/spaces/%s/live.opus?ticket=%s" % (sid, t), "expired ticket", "expired")
    srv.stop()


def key_limit():
    srv = Server("serve", extra=["--workers", "1"]).start()
    sid, key = create_space(srv, "Keys")
    bad = "0" * 32
    before = refused(srv, "key_limit")
    for i in range(5):
        st, _, obj = set_guard(srv, sid, bad, True)
        check(st == 401, "wrong key attempt %d -> %d %r (expected 401)" % (i + 1, st, obj))
    st, hd, obj = set_guard(srv, sid, bad, True)
    check(st == 429, "6th wrong key -> %d %r (expected 429)" % (st, obj))
    ra = hd.get("retry-after", "")
    check(ra.isdigit() and 1 <= int(ra) <= 60, "429 Retry-After %r" % ra)
    st, _, obj = set_guard(srv, sid, key, True)
    check(st == 429, "the right key from a limited address is not even looked at: %d %r" % (st, obj))
    wait_until(lambda: refused(srv, "key_limit") == before + 2, 3, "refused{key_limit} +2")
    log("127.0.0.1: 5 x 401, then 429 (Retry-After %s) for a wrong and the right key" % ra)

    st, _, obj = set_guard(srv, sid, bad, True, src="127.0.0.2")
    check(st == 401, "another address with a wrong key -> %d %r (expected 401)" % (st, obj))
    st, _, obj = set_guard(srv, sid, key, True, src="127.0.0.2")
    check(st == 200 and obj.get("require_ticket") is True, "another address, right key -> %d %r" % (st, obj))
    log("127.0.0.2: 401 for a wrong key, 200 for the right one")

    for i in range(5):
        st, _, obj = request(srv, "PUT", "/spaces/%s/live.opus" % sid, b"",
                             {"Authorization": basic_auth(bad), "Content-Type": "audio/ogg"},
                             src="127.0.0.3")
        check(st == 401, "publish with a wrong key %d -> %d %r" % (i + 1, st, obj))
    st, hd, obj = request(srv, "PUT", "/spaces/%s/live.opus" % sid, b"",
                          {"Authorization": basic_auth(bad), "Content-Type": "audio/ogg"},
                          src="127.0.0.3")
    check(st == 429 and "retry-after" in hd, "6th publish with a wrong key -> %d %r" % (st, hd))
    wait_until(lambda: refused(srv, "key_limit") == before + 3, 3, "refused{key_limit} +3")
    log("127.0.0.3: publish 5 x 401, then 429")

    # After a restart: the flag and the secret persist. The space is not loaded yet, so no worker
    # knows it: the first join is handed to the master, which checks the ticket itself.
    t, _ = get_ticket(srv, sid)
    srv.stop()
    srv = Server("serve", extra=["--workers", "1"], data_dir=srv.data_dir, name="restarted").start()
    expect_refused(srv, "/spaces/%s/live.opus" % sid, "after a restart, no ticket (master)")
    st, _ = join_status(srv, "/spaces/%s/live.opus?ticket=%s" % (sid, t), pages=0)
    check(st == 200, "a ticket from before the restart -> %s" % st)
    expect_refused(srv, "/spaces/%s/live.opus" % sid, "after a restart, no ticket (worker)")
    log("restart: require_ticket and the secret kept")
    srv.stop()


def main():
    tickets()
    expiry()
    key_limit()


if __name__ == "__main__":
    run_test(main)
