"""GET /metrics (Prometheus text format) on a multi-process node, checked by promtool and scraped by a
real Prometheus.

1. `tribune demo` (a master and its delivery workers), 50 raw listeners on the demo space.
   GET /metrics: 200, Content-Type text/plain; version=0.0.4; `promtool check metrics` exits 0;
   once the workers have reported (each second), tribune_listeners{space="demo",state="hearing"} is
   50, equal to GET /api/spaces/demo's hearing, tribune_join_to_first_audio_seconds_count is 50 and
   joins are 50: every listener counted once, over all workers. HEAD /metrics: 200, no body.
2. A real Prometheus (Debian package prometheus) scrapes the node every second; its HTTP API
   answers tribune_listeners{state="hearing"} = 50 within 30 s.
3. The listeners leave: connected 0, leaves 50, tribune_session_seconds_count 50.
Each comparison prints both numbers.
"""
import json
import os
import re
import subprocess
import time
import urllib.parse
import urllib.request

from lib import (Listener, Server, check, free_port, http, http_json, log, run_test, stop_process, tmpdir,
                 track, wait_until)

N = 50
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(srv):
    st, hdrs, body = http(srv, "GET", "/metrics")
    check(st == 200, "GET /metrics -> %d: %r" % (st, body[:200]))
    check(hdrs.get("content-type") == CONTENT_TYPE, "Content-Type %r" % hdrs.get("content-type"))
    text = body.decode("utf-8")
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        check(m is not None, "unparsable sample line %r" % line)
        labels = frozenset(LABEL.findall(m.group(3) or ""))
        samples[(m.group(1), labels)] = float(m.group(4))
    return text, samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def promtool(text):
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    out = (r.stdout + r.stderr).decode(errors="replace").strip()
    log("promtool check metrics: exit %d %s" % (r.returncode, out or "(no findings)"))
    check(r.returncode == 0, "promtool check metrics exited %d: %s\n%s" % (r.returncode, out, text))


def prometheus_query(port, query):
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": query}))
    with urllib.request.urlopen(url, timeout=5) as r:
        obj = json.loads(r.read().decode())
    check(obj.get("status") == "success", "Prometheus query failed: %r" % obj)
    return obj["data"]["result"]


def real_prometheus(srv):
    d = tmpdir()
    conf = os.path.join(d, "prometheus.yml")
    with open(conf, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                "scrape_configs:\n  - job_name: tribune\n    metrics_path: /metrics\n"
                "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % srv.port)
    port = free_port()
    logf = open(os.path.join(d, "prometheus.log"), "wb")
    p = track(subprocess.Popen(["prometheus", "--config.file=%s" % conf,
                                "--storage.tsdb.path=%s" % os.path.join(d, "tsdb"),
                                "--web.listen-address=127.0.0.1:%d" % port],
                               stdin=subprocess.DEVNULL, stdout=logf, stderr=logf))
    logf.close()
    log("prometheus pid %d on port %d scraping %s/metrics" % (p.pid, port, srv.url))
    seen = []

    def hearing():
        check(p.poll() is None, "prometheus exited %s: %s" % (
            p.returncode, open(os.path.join(d, "prometheus.log"), errors="replace").read()[-2000:]))
        try:
            res = prometheus_query(port, 'tribune_listeners{state="hearing"}')
        except OSError:
            return False
        for r in res:
            if r["metric"].get("space") == "demo":
                v = float(r["value"][1])
                seen.append(v)
                return v == N
        return False
    try:
        wait_until(hearing, 30, "Prometheus to report tribune_listeners{state=\"hearing\"} = %d" % N, 0.25)
        res = prometheus_query(port, 'up{job="tribune"}')
        log("Prometheus: tribune_listeners{space=\"demo\",state=\"hearing\"} = %d (queries answered: %s); up = %s"
            % (seen[-1], seen[-5:], [r["value"][1] for r in res]))
    finally:
        stop_process(p, timeout=15)
    log("prometheus stopped (exit %s)" % p.returncode)


def main():
    srv = Server("demo").start()
    ls = [Listener(srv, "demo", parse=False, max_seconds=90) for _ in range(N)]
    for lst in ls:
        lst.start()
    for lst in ls:
        lst.wait_head(10)

    def settled():
        _, s = scrape(srv)
        return s if value(s, "tribune_listeners", space="demo", state="hearing") == N and \
            value(s, "tribune_join_to_first_audio_seconds_count", space="demo") == N else None
    s = wait_until(settled, 15, "/metrics to count %d hearing and %d first audios" % (N, N), 0.2)
    text, s = scrape(srv)
    promtool(text)
    st, _, obj = http_json(srv, "GET", "/api/spaces/demo")
    api_hearing = obj["listeners"]["hearing"]
    m_hearing = value(s, "tribune_listeners", space="demo", state="hearing")
    workers = value(s, "tribune_workers", state="up")
    log("/metrics hearing %d, /api/spaces/demo hearing %d, listeners started %d, workers up %d"
        % (m_hearing, api_hearing, N, workers))
    log("/metrics join_to_first_audio count %d (sum %.3f s), joins %d, connected %d, bytes %d"
        % (value(s, "tribune_join_to_first_audio_seconds_count", space="demo"),
           value(s, "tribune_join_to_first_audio_seconds_sum", space="demo"),
           value(s, "tribune_listener_joins_total", space="demo"),
           value(s, "tribune_listeners_connected", space="demo"),
           value(s, "tribune_bytes_sent_total", space="demo")))
    check(m_hearing == N and api_hearing == N, "hearing: /metrics %s, API %s, expected %d" % (m_hearing, api_hearing, N))
    check(value(s, "tribune_listener_joins_total", space="demo") == N, "joins != %d" % N)
    check(value(s, "tribune_listeners_connected", space="demo") == N, "connected != %d" % N)
    check(value(s, "tribune_join_to_first_audio_seconds_bucket", space="demo", le="+Inf") == N,
          "join histogram +Inf bucket != %d" % N)
    check(workers is not None and workers >= 1, "no worker up: %s" % workers)
    st, hdrs, body = http(srv, "HEAD", "/metrics")
    check(st == 200 and body == b"" and hdrs.get("content-type") == CONTENT_TYPE,
          "HEAD /metrics -> %d %r %r" % (st, hdrs.get("content-type"), body[:100]))

    real_prometheus(srv)

    for lst in ls:
        lst.stop(join=False)
    for lst in ls:
        lst.join(5)

    def gone():
        _, s2 = scrape(srv)
        return s2 if value(s2, "tribune_listeners_connected", space="demo") == 0 and \
            value(s2, "tribune_session_seconds_count", space="demo") == N else None
    s = wait_until(gone, 15, "/metrics to count the %d listeners gone" % N, 0.2)
    text, s = scrape(srv)
    promtool(text)
    log("after leaving: connected %d, leaves %d, session count %d (sum %.1f s), listens %d, hearing %d"
        % (value(s, "tribune_listeners_connected", space="demo"),
           value(s, "tribune_listener_leaves_total", space="demo"),
           value(s, "tribune_session_seconds_count", space="demo"),
           value(s, "tribune_session_seconds_sum", space="demo"),
           value(s, "tribune_listens_total", space="demo"),
           value(s, "tribune_listeners", space="demo", state="hearing")))
    check(value(s, "tribune_listener_leaves_total", space="demo") == N, "leaves != %d" % N)
    check(value(s, "tribune_listeners", space="demo", state="hearing") == 0, "still hearing")
    refusals(srv)
    srv.stop()


def refusals(srv):
    """Requests turned away are counted by reason, over the master and the workers."""
    def refused(s, reason):
        return value(s, "tribune_requests_refused_total", reason=reason) or 0
    _, before = scrape(srv)
    for _ in range(3):  # a listen for a space that does not exist: 404
        check(http(srv, "GET", "/spaces/nosuchspace/live.opus")[0] == 404, "expected 404")
    for _ in range(2):  # a publish without the key: 401
        check(http(srv, "PUT", "/spaces/demo/live.opus", body=b"x")[0] == 401, "expected 401")
    st = http(srv, "GET", "/", headers={"X-Big": "a" * 10000})[0]
    check(st == 431, "a 10 kB header -> %d, expected 431" % st)

    def counted():
        _, s = scrape(srv)
        return s if (refused(s, "no_space") - refused(before, "no_space") == 3 and
                     refused(s, "bad_key") - refused(before, "bad_key") == 2 and
                     refused(s, "bad_request") - refused(before, "bad_request") >= 1) else None
    s = wait_until(counted, 5, "/metrics to count 3 no_space, 2 bad_key and a bad_request refusal", 0.2)
    log("refused: no_space %d, bad_key %d, bad_request %d (a worker's counts arrive within 1 s)"
        % (refused(s, "no_space"), refused(s, "bad_key"), refused(s, "bad_request")))


if __name__ == "__main__":
    run_test(main)
