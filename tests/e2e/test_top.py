"""`tribune top`: the operator's terminal view.

  - `tribune top URL --once` against `tribune demo` (with 2 raw listeners) prints the node line and a
    row for the demo space (state live, hearing 2), and exits 0, without ANSI escapes (stdout is a pipe).
  - Against a closed port, a non-HTTP URL, or a bad port it exits non-zero with a message on stderr.
  - `tribune top URL` (no --once) refreshes: 3 frames in about 2 s, the later ones with joins/s.
  - GET /api/node (and HEAD) answers workers_up >= 1 and cpu_seconds > 0; a listen to a space that
    does not exist (404) raises refused.no_space and refused_total (within 1.5 s: workers report
    each second); the --once frame's node line shows refused/s, cpu % and workers up/total.
"""
import re
import subprocess
import time

from lib import (SLOW, TRIBUNE_BIN, Listener, Server, check, free_port, http, http_json, log, run_test,
                 wait_until)


def top(*args, timeout=20):
    r = subprocess.run([TRIBUNE_BIN, "top"] + list(args), capture_output=True, timeout=timeout)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def main():
    srv = Server(cmd="demo").start()
    lsts = [Listener(srv, "demo", parse=False, keep=False, max_seconds=60) for _ in range(2)]
    for lst in lsts:
        lst.start()
    for lst in lsts:
        lst.wait_head(5)

    rows = {}

    def two_hearing():
        rc, out, err = top(srv.url, "--once")
        check(rc == 0, "tribune top --once exited %d: %s%s" % (rc, out, err))
        m = re.search(r"^demo\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$", out, re.M)
        check(m, "no demo row in:\n%s" % out)
        rows["out"], rows["m"] = out, m
        return m.group(3) == "2"

    wait_until(two_hearing, 10 * SLOW, "top to show 2 hearing", interval=0.3)
    out, m = rows["out"], rows["m"]
    log("tribune top --once:\n" + out)
    check(m.group(1) == "live", "demo state %r" % m.group(1))
    check(m.group(2) == "2", "demo connected %r" % m.group(2))
    check(re.search(r"^node: 1 spaces\s+hearing 2\s+lagging 0\s+waiting 0", out, re.M), "node line:\n%s" % out)
    check("\033[" not in out, "ANSI escapes on a pipe:\n%r" % out)

    # Refreshing view: frames once a second, rates from successive totals.
    p = subprocess.Popen([TRIBUNE_BIN, "top", srv.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(2.5)
    p.terminate()
    o, e = p.communicate(timeout=10)
    o = o.decode(errors="replace")
    frames = o.count("tribune top ")
    check(2 <= frames <= 4, "%d frames in 2.5 s (expected 3):\n%s%s" % (frames, o, e))
    check(re.search(r"joins/s \d+\.\d", o), "no joins/s rate in a later frame:\n%s" % o)

    # Node numbers: GET /api/node, and the node line of `tribune top`.
    check(re.search(r"refused/s -  cpu % -  workers \d+/\d+$", out, re.M), "first frame's node line:\n%s" % out)
    check(re.search(r"refused/s \d+\.\d  cpu % \d+\.\d  workers \d+/\d+$", o, re.M),
          "no refused/s or cpu %% rate in a later frame:\n%s" % o)
    st, _, node = http_json(srv, "GET", "/api/node")
    log("GET /api/node: %d %s" % (st, node))
    check(st == 200, "GET /api/node: %d" % st)
    check(node["workers_up"] >= 1 and node["workers_up"] <= node["workers"], "workers: %s" % node)
    check(node["cpu_seconds"] > 0, "cpu_seconds: %s" % node)
    check(node["uptime_seconds"] > 0, "uptime_seconds: %s" % node)
    check(node["refused_total"] == sum(node["refused"].values()), "refused_total: %s" % node)
    check("no_space" in node["refused"] and "full" in node["refused"], "reasons: %s" % node)
    st, _, _ = http(srv, "HEAD", "/api/node")
    check(st == 200, "HEAD /api/node: %d" % st)
    before = node["refused"]["no_space"]
    st, _, _ = http(srv, "GET", "/spaces/nosuchspace/live.opus")
    check(st == 404, "listen to a missing space: %d" % st)
    after = {}

    def bumped():
        after["node"] = http_json(srv, "GET", "/api/node")[2]
        return after["node"]["refused"]["no_space"] >= before + 1

    wait_until(bumped, 1.5 * SLOW, "refused.no_space to rise after a 404 listen", interval=0.1)
    log("refused.no_space %d -> %d, refused_total %d" % (before, after["node"]["refused"]["no_space"],
                                                          after["node"]["refused_total"]))
    check(after["node"]["refused_total"] >= node["refused_total"] + 1, "refused_total: %s" % after["node"])

    for lst in lsts:
        lst.stop(join=False)

    port = free_port()
    for url, what in (("http://127.0.0.1:%d" % port, "connect"), ("ftp://127.0.0.1:%d" % port, "bad URL"),
                      ("http://127.0.0.1:99999", "bad URL")):
        rc, out, err = top(url, "--once")
        check(rc != 0, "tribune top %s exited 0: %s" % (url, out))
        check(what in err, "tribune top %s: no clear message (%r)" % (url, err))
        log("tribune top %s -> %d: %s" % (url, rc, err.strip()))
    srv.stop()


if __name__ == "__main__":
    run_test(main)
