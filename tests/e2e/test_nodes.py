"""Failover nodes and CORS (docs/internals/relay.md, Failover; docs/internals/web.md, Failover).

  0. The page's side, web/js/nodes.js run in Node: the list is read as origins (duplicates,
     other schemes and junk dropped); URLs stay relative on the page's own node; a client moves
     only after two no-answers in a row on its node (a 503 or an unreadable answer, -1, starts the
     count over), to the next node that is not the failed one; another client of the same node
     follows at once; a node that failed lately is tried last; with no other node nobody moves.
  1. A node without `edges`: GET /api/spaces/{id} has "nodes": [] and
     Access-Control-Allow-Origin: *, as do GET /api/spaces and the event stream; answers to
     requests that carry a key (POST .../live, GET .../speakers with the host key) have no
     Access-Control-Allow-Origin; the listen page's CSP lets media and connections go to other
     nodes (media-src http: https:, connect-src ws: wss:) and still runs scripts from 'self' only.
  2. An origin (`tribune demo`) with `edges` = E1,E2 (E2 not started yet) and edge E1: once E1
     serves the demo, the origin lists "nodes": [E1] (only fresh edges); E1 lists [origin] (no
     other edge, itself left out, the origin last).
  3. E2 starts and serves the demo with 2 listeners, E1 with none: the origin lists [E1, E2]
     (least loaded first); then 4 listeners on E1: [E2, E1]; E1 lists [E2, origin] and E2 lists
     [E1, origin] (each leaves itself out).
  4. The answer to POST /api/edges carries the origin's "nodes".
  5. E2 is killed (SIGKILL): the origin's list drops it within 5 s (its reports expire after
     2.5 s); E1's list follows within a further 5 s.
"""
import json
import os
import socket
import subprocess
import time

from lib import (Listener, Server, check, create_space, free_port, http, http_json, log, run_test,
                 wait_until)


def nodes(srv):
    st, hd, obj = http_json(srv, "GET", "/api/spaces/demo", timeout=5)
    check(st == 200, "GET /api/spaces/demo on %s -> %d %r" % (srv.name, st, obj))
    return obj.get("nodes")


def wait_nodes(srv, want, timeout, what):
    got = []

    def pred():
        got[:] = [nodes(srv)]
        return got[0] == want
    try:
        wait_until(pred, timeout, what, interval=0.1)
    except AssertionError:
        raise AssertionError("%s: %s lists %r, expected %r" % (what, srv.name, got[0] if got else None, want))
    log("%s lists nodes %r" % (srv.name, want))


def listeners_on(srv, n):
    ls = [Listener(srv, "demo", parse=False, keep=False) for _ in range(n)]
    for listener in ls:
        listener.start()
    for listener in ls:
        listener.head_event.wait(5)
        check(listener.status == 200, "a listener on %s got %r" % (srv.name, listener.status))
    return ls


NODES_JS = r"""
import { Nodes } from '%(web)s/js/nodes.js';
const out = {};
const n = new Nodes('http://e1:1');
const moves = [];
n.subscribe((to, from) => moves.push([to, from]));
n.learn(['http://e2:2/', 'http://o:3', 'ftp://x:4', 'junk', 'http://e2:2/x']);
out.known = n.known;
out.urls = [n.url('/p'), n.wsUrl('/p')];
const a = {}, b = {};
out.seq = [n.failed(a, 'http://e1:1', 503), n.failed(a, 'http://e1:1', 0), n.failed(a, 'http://e1:1', -1),
  n.failed(a, 'http://e1:1', 0), n.failed(a, 'http://e1:1', 0)];
out.after = [n.current, n.url('/p'), n.wsUrl('/p'), n.switches];
out.follow = n.failed(b, 'http://e1:1', 0);
n.learn(['http://e1:1', 'http://o:3']);
n.failed(a, 'http://e2:2', 0); n.failed(a, 'http://e2:2', 0);
out.second = n.current;
n.failed(a, 'http://o:3', 0); n.failed(a, 'http://o:3', 0);
out.third = n.current; // only e1 and o listed, both failed lately: the older failure, e1
out.moves = moves;
const lone = new Nodes('http://h:1');
out.lone = [lone.failed(a, 'http://h:1', 0), lone.failed(a, 'http://h:1', 0), lone.current];
console.log(JSON.stringify(out));
"""


def check_nodes_js():
    web = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "web")
    r = subprocess.run(["node", "--input-type=module", "-e", NODES_JS % {"web": os.path.abspath(web)}],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "node on nodes.js: %s" % r.stderr[-2000:])
    o = json.loads(r.stdout)
    check(o["known"] == ["http://e2:2", "http://o:3"], "learn: %r" % o["known"])
    check(o["urls"] == ["/p", "ws://e1:1/p"], "urls on the own node: %r" % o["urls"])
    check(o["seq"] == [False, False, False, False, True], "failed() sequence %r" % o["seq"])
    check(o["after"] == ["http://e2:2", "http://e2:2/p", "ws://e2:2/p", 1], "after the move: %r" % o["after"])
    check(o["follow"] is True, "a second client of the dead node does not follow")
    check(o["second"] == "http://o:3", "from e2 (list e1, o; e1 down): moved to %r" % o["second"])
    check(o["third"] == "http://e1:1", "from o (e1 down longest): moved to %r" % o["third"])
    check(o["moves"] == [["http://e2:2", "http://e1:1"], ["http://o:3", "http://e2:2"],
                         ["http://e1:1", "http://o:3"]], "moves %r" % o["moves"])
    check(o["lone"] == [False, False, "http://h:1"], "no other node: %r" % o["lone"])
    log("nodes.js: moves after 2 no-answers, to the next node not failed lately: %r" % o["moves"])


def check_plain_node():
    srv = Server(name="plain").start()
    sid, key = create_space(srv, "cors")
    st, hd, obj = http_json(srv, "GET", "/api/spaces/%s" % sid)
    check(st == 200 and obj.get("nodes") == [], "GET /api/spaces/{id} without edges: nodes %r" % obj.get("nodes"))
    check(hd.get("access-control-allow-origin") == "*", "GET /api/spaces/{id}: no CORS header %r" % hd)
    st, hd, obj = http_json(srv, "GET", "/api/spaces")
    check(hd.get("access-control-allow-origin") == "*", "GET /api/spaces: no CORS header %r" % hd)
    check(all(s.get("nodes") == [] for s in obj["spaces"]), "GET /api/spaces: nodes %r" % obj)
    # the event stream never ends: read its head only
    s = socket.create_connection(srv.addr, timeout=5)
    s.sendall(("GET /api/spaces/%s/events HTTP/1.1\r\nHost: x\r\n\r\n" % sid).encode())
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 8192:
        x = s.recv(4096)
        if not x:
            break
        head += x
    s.close()
    check(b"\r\nAccess-Control-Allow-Origin: *\r\n" in head, "events stream: no CORS header %r" % head[:300])
    auth = {"Authorization": "Bearer " + key}
    st, hd, _ = http(srv, "POST", "/api/spaces/%s/live" % sid, headers=auth)
    check(st == 200, "POST .../live -> %d" % st)
    check("access-control-allow-origin" not in hd, "a host action's answer has a CORS header: %r" % hd)
    st, hd, _ = http(srv, "GET", "/api/spaces/%s/speakers" % sid, headers=auth)
    check(st == 200, "GET .../speakers with the host key -> %d" % st)
    check("access-control-allow-origin" not in hd, "a keyed GET's answer has a CORS header: %r" % hd)
    st, hd, _ = http(srv, "GET", "/s/%s" % sid)
    csp = hd.get("content-security-policy", "")
    check(st == 200 and "default-src 'self'" in csp and "script-src" not in csp, "listen page CSP %r" % csp)
    for part in ("media-src 'self' blob: http: https:", "connect-src 'self' http: https: ws: wss:"):
        check(part in csp, "listen page CSP lacks %r: %r" % (part, csp))
    log("plain node: nodes [], CORS on public reads and events only, CSP %r" % csp)
    srv.stop()


def main():
    check_nodes_js()
    check_plain_node()

    p1, p2 = free_port(), free_port()
    e1_url, e2_url = "http://127.0.0.1:%d" % p1, "http://127.0.0.1:%d" % p2
    origin = Server(cmd="demo", name="origin",
                    extra=["--workers", "1", "--edges", "%s,%s/" % (e1_url, e2_url)]).start()
    relay = ["--origin", origin.url, "--workers", "1"]
    e1 = Server(cmd="relay", extra=relay, name="e1").start(port=p1)
    check(nodes(origin) == [], "the origin lists %r before any edge reports" % nodes(origin))
    check(nodes(e1) is not None, "E1 has no nodes field")  # this read pulls the demo on E1
    wait_nodes(origin, [e1_url], 5, "the origin to list E1 once it reports")
    wait_nodes(e1, [origin.url], 5, "E1 to list the origin only")

    e2 = Server(cmd="relay", extra=relay, name="e2").start(port=p2)
    on_e2 = listeners_on(e2, 2)
    wait_nodes(origin, [e1_url, e2_url], 5, "the origin to list E1 (0 listeners) before E2 (2)")
    on_e1 = listeners_on(e1, 4)
    wait_nodes(origin, [e2_url, e1_url], 5, "the origin to list E2 (2 listeners) before E1 (4)")
    wait_nodes(e1, [e2_url, origin.url], 5, "E1 to list E2 then the origin")
    wait_nodes(e2, [e1_url, origin.url], 5, "E2 to list E1 then the origin")

    st, _, obj = http_json(origin, "POST", "/api/edges",
                           {"edge": "00000000-127.0.0.1:9", "spaces": [{"id": "demo", "connected": 0}]})
    check(st == 200 and obj.get("nodes") == [e2_url, e1_url], "POST /api/edges answered %d %r" % (st, obj))
    log("POST /api/edges answers %s" % json.dumps(obj))

    for listener in on_e2:
        listener.stop(join=False)
    t = time.monotonic()
    e2.kill()
    wait_nodes(origin, [e1_url], 5, "the origin to drop E2 once its reports expire")
    dropped = time.monotonic() - t
    wait_nodes(e1, [origin.url], 5, "E1 to drop E2 too")
    log("E2 killed: the origin dropped it after %.1f s, E1 after %.1f s" % (dropped, time.monotonic() - t))
    for listener in on_e1:
        listener.stop()


if __name__ == "__main__":
    run_test(main)
