"""Spaces API: create, list, get, input errors, persistence across a restart, `tribune space create`.

Contract checked:
  POST /api/spaces {"title", "starts_at"?} -> 201 JSON with id, host_key (32 hex), title, state.
  Bad JSON, missing/empty/non-string title, title > 200 bytes -> 400 JSON {"error": "..."}.
  Body > 64 KiB -> 413.
  GET /api/spaces -> 200 {"spaces": [...]} without host_key; GET /api/spaces/{id} -> 200; unknown -> 404 JSON.
  The same --data dir after a restart still holds the spaces (and their keys still publish: checked
  by the 401/accept distinction on a raw PUT).
  `tribune space create --title T --server URL` prints `id: X` and `host_key: Y`, exits 0.
"""
import json
import os
import re
import subprocess

from lib import (Server, RawPublisher, TRIBUNE_BIN, check, create_space, http, http_json, log, make_ogg,
                 parse_pages, run_test, tmpdir)


def check_error_json(st, obj, want, what):
    check(st == want, "%s: status %d (expected %d), body %r" % (what, st, want, obj))
    check(isinstance(obj, dict) and isinstance(obj.get("error"), str) and obj["error"],
          "%s: body should be JSON {\"error\": \"...\"}, got %r" % (what, obj))


def post_raw(srv, body, ctype="application/json"):
    st, hd, data = http(srv, "POST", "/api/spaces", body=body, headers={"Content-Type": ctype})
    try:
        obj = json.loads(data.decode()) if data else None
    except ValueError:
        obj = data
    return st, hd, obj


def check_space(obj, what):
    check(isinstance(obj, dict), "%s: not an object: %r" % (what, obj))
    for k in ("id", "title", "state"):
        check(k in obj, "%s: missing %r: %r" % (what, k, obj))
    check("host_key" not in obj, "%s: host_key must never be listed/read back: %r" % (what, obj))


_OPUS = []


def publish_status(srv, sid, key):
    """Status a raw PUT gets with this key; it sends a valid Ogg/Opus start (headers and 0.5 s of
    audio), since a server may wait for the first body bytes before it answers 200."""
    if not _OPUS:
        pages, _ = parse_pages(open(make_ogg(os.path.join(tmpdir(), "k.opus"), 1), "rb").read())
        _OPUS.append(b"".join(p.raw for p in pages[:7]))
    p = RawPublisher(srv, sid, key)
    try:
        p.send(_OPUS[0])
    except OSError:
        pass
    r = p.read_response(timeout=3, want_final=False)
    p.close()
    if r and r[0] == 100:   # "100 Continue": the head (and so the key) was accepted
        return 200
    return r[0] if r else None


def main():
    srv = Server().start()

    # ---- create ----
    st, hd, obj = http_json(srv, "POST", "/api/spaces", {"title": "Morning show", "starts_at": 1790000000})
    check(st == 201, "POST /api/spaces -> %d %r" % (st, obj))
    check("json" in hd.get("content-type", ""), "create: Content-Type %r is not JSON" % hd.get("content-type"))
    for k in ("id", "host_key", "title", "state"):
        check(k in obj, "create response lacks %r: %r" % (k, obj))
    check(obj["title"] == "Morning show", "title echoed wrong: %r" % obj["title"])
    check(re.fullmatch(r"[0-9a-f]{32}", str(obj["host_key"])) is not None,
          "host_key should be 32 lower-case hex chars: %r" % obj["host_key"])
    sid1, key1 = str(obj["id"]), obj["host_key"]
    check(re.fullmatch(r"[A-Za-z0-9_-]+", sid1) is not None, "id %r is not URL-safe" % sid1)

    sid2, key2 = create_space(srv, "Second")           # without starts_at
    check(sid2 != sid1 and key2 != key1, "two spaces share id or key: %s/%s" % (sid1, sid2))
    unicode_title = "Caf\u00e9 \u2615 \"quoted\" \\ back"
    sid3, _ = create_space(srv, unicode_title)

    # ---- list / get ----
    st, _, obj = http_json(srv, "GET", "/api/spaces")
    check(st == 200 and isinstance(obj, dict) and isinstance(obj.get("spaces"), list),
          "GET /api/spaces -> %d %r" % (st, obj))
    byid = {str(s.get("id")): s for s in obj["spaces"]}
    for sid in (sid1, sid2, sid3):
        check(sid in byid, "space %s missing from list %r" % (sid, list(byid)))
        check_space(byid[sid], "list entry %s" % sid)
    check("starts_at" in byid[sid1] and byid[sid1]["starts_at"] == 1790000000,
          "starts_at not kept: %r" % byid[sid1])
    check(byid[sid3]["title"] == unicode_title, "unicode title mangled: %r" % byid[sid3]["title"])
    st, _, obj = http_json(srv, "GET", "/api/spaces/%s" % sid1)
    check(st == 200, "GET /api/spaces/%s -> %d %r" % (sid1, st, obj))
    check_space(obj, "get %s" % sid1)
    check(obj["title"] == "Morning show" and str(obj["id"]) == sid1, "get returned %r" % obj)
    st, _, obj = http_json(srv, "GET", "/api/spaces/doesnotexist42")
    check_error_json(st, obj, 404, "GET unknown space")

    # ---- errors ----
    cases = [
        (b"{not json", "bad JSON"),
        (b"", "empty body"),
        (b"[]", "JSON array"),
        (json.dumps({}).encode(), "missing title"),
        (json.dumps({"title": ""}).encode(), "empty title"),
        (json.dumps({"title": 42}).encode(), "non-string title"),
        (json.dumps({"title": "x" * 201}).encode(), "title of 201 bytes"),
        (json.dumps({"title": "\u00e9" * 101}).encode(), "title of 202 bytes (101 x 2-byte char)"),
    ]
    for body, what in cases:
        st, _, obj = post_raw(srv, body)
        check_error_json(st, obj, 400, "POST /api/spaces with %s" % what)
    st, _, obj = post_raw(srv, json.dumps({"title": "y" * 200}).encode())
    check(st == 201, "title of exactly 200 bytes must be accepted: %d %r" % (st, obj))
    big = json.dumps({"title": "big", "pad": "z" * (65 * 1024)}).encode()
    st, _, obj = post_raw(srv, big)
    check(st == 413, "body of %d bytes: status %d (expected 413) %r" % (len(big), st, obj))
    srv.check_alive("after API error cases")

    # The list never leaks keys, whatever else it holds.
    st, _, data = http(srv, "GET", "/api/spaces")
    for k in (key1, key2):
        check(k.encode() not in data, "GET /api/spaces leaks a host key")

    # ---- persistence ----
    check(publish_status(srv, sid1, key1) == 200, "host key does not authorize a PUT before restart")
    srv.stop()
    srv2 = Server(data_dir=srv.data_dir, name="restarted").start()
    st, _, obj = http_json(srv2, "GET", "/api/spaces")
    ids = [str(s.get("id")) for s in obj.get("spaces", [])]
    for sid in (sid1, sid2, sid3):
        check(sid in ids, "space %s lost across restart (have %r)" % (sid, ids))
    st, _, obj = http_json(srv2, "GET", "/api/spaces/%s" % sid1)
    check(st == 200 and obj.get("title") == "Morning show" and obj.get("starts_at") == 1790000000,
          "space after restart: %d %r" % (st, obj))
    check(publish_status(srv2, sid1, key1) == 200, "host key no longer publishes after restart")
    check(publish_status(srv2, sid1, key2) == 401, "another space's key publishes after restart")

    # ---- CLI ----
    r = subprocess.run([TRIBUNE_BIN, "space", "create", "--title", "From CLI", "--server", srv2.url],
                       capture_output=True, timeout=30)
    out = r.stdout.decode(errors="replace")
    check(r.returncode == 0, "tribune space create exited %d: %s %s" % (r.returncode, out, r.stderr.decode()))
    m_id = re.search(r"^id: *(\S+)\s*$", out, re.M)
    m_key = re.search(r"^host_key: *([0-9a-f]{32})\s*$", out, re.M)
    check(m_id and m_key, "tribune space create output lacks `id: X` / `host_key: Y` lines: %r" % out)
    st, _, obj = http_json(srv2, "GET", "/api/spaces/%s" % m_id.group(1))
    check(st == 200 and obj.get("title") == "From CLI", "CLI-created space: %d %r" % (st, obj))
    check(publish_status(srv2, m_id.group(1), m_key.group(1)) == 200, "CLI host key does not publish")
    log("CLI created %s" % m_id.group(1))

    r = subprocess.run([TRIBUNE_BIN, "space", "create", "--title", "x", "--server",
                        "http://127.0.0.1:%d" % 1], capture_output=True, timeout=30)
    check(r.returncode != 0, "tribune space create against a closed port should fail, exited 0")
    srv2.stop()


if __name__ == "__main__":
    run_test(main)
