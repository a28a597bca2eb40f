#!/usr/bin/env python3
"""A room survives a crash of its server (issue 6, "state in the registry").

1. A space with a start time; the host invites speakers a and b (keys shown once), both publish
   with ffmpeg (440 Hz and 660 Hz), the host goes live and mutes b.
2. The server is killed with SIGKILL (a crash: no clean shutdown, nothing flushed on purpose).
3. A new server on the same data directory and port: the space is still `live`, a and b are still
   its speakers, b is still muted. The speakers reconnect with the keys they had; a listener joins:
   it hears 440 Hz and not 660 Hz. The host unmutes b: the listener hears 660 Hz too.
4. Keys still work as before the crash: b's key publishes only as b; a wrong key is refused.
"""
import math
import os
import signal
import subprocess
import time

from lib import (Server, Listener, check, create_space, http, http_json, log, run_test, stop_process,
                 tmpdir, track, wait_until, ffmpeg_decode_file, read_s16)


def speaker_publish(srv, sid, name, key, freq, seconds=60):
    url = "icecast://source:%s@127.0.0.1:%d/spaces/%s/speakers/%s.opus" % (key, srv.port, sid, name)
    argv = ["ffmpeg", "-nostdin", "-v", "error", "-re", "-f", "lavfi",
            "-i", "sine=frequency=%d:sample_rate=48000" % freq, "-t", str(seconds), "-ac", "1",
            "-c:a", "libopus", "-b:a", "48k", "-f", "ogg", url]
    logf = open(os.path.join(tmpdir(), "ffmpeg-%s-%d.log" % (name, time.time())), "wb")
    p = track(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf))
    logf.close()
    return p


def host(key):
    return {"Authorization": "Bearer %s" % key}


def speakers(srv, sid, hk):
    st, _, obj = http_json(srv, "GET", "/api/spaces/%s/speakers" % sid, headers=host(hk))
    check(st == 200, "GET speakers -> %d %r" % (st, obj))
    return {s["name"]: s for s in obj["speakers"]}


def goertzel_db(x, f, rate=48000):
    w = 2 * math.cos(2 * math.pi * f / rate)
    s1 = s2 = 0.0
    for v in x:
        s0 = v + w * s1 - s2
        s2, s1 = s1, s0
    p = s1 * s1 + s2 * s2 - w * s1 * s2
    return 10 * math.log10(p / len(x) + 1e-9)


def record(srv, sid, seconds):
    """Listens for `seconds`, decodes, returns the samples of the last second."""
    lst = Listener(srv, sid, max_seconds=seconds + 5)
    lst.start()
    t0 = time.monotonic()
    wait_until(lambda: time.monotonic() - t0 >= seconds, seconds + 5, "recording")
    lst._stop_flag.set()
    lst.join(5)
    check(lst.status == 200, "listener status %r" % lst.status)
    path = os.path.join(tmpdir(), "rec-%d.ogg" % time.time())
    with open(path, "wb") as f:
        f.write(bytes(lst.body))
    rc, err = ffmpeg_decode_file(path, path + ".raw")
    check(rc == 0, "ffmpeg could not decode the listener's stream: %s" % err)
    pcm = read_s16(path + ".raw")
    check(len(pcm) >= 48000, "only %d samples decoded" % len(pcm))
    return pcm[-48000:]


def tones(pcm):
    a, b, off = goertzel_db(pcm, 440), goertzel_db(pcm, 660), goertzel_db(pcm, 550)
    log("tone power: 440 Hz %.1f dB, 660 Hz %.1f dB, 550 Hz (no tone) %.1f dB" % (a, b, off))
    return a - off, b - off


def main():
    data = tmpdir()
    srv = Server(data_dir=data, name="before").start()
    sid, hk = create_space(srv, "Crash-proof room", starts_at=int(time.time()) + 3600)
    keys = {}
    for name in ("a", "b"):
        st, _, obj = http_json(srv, "POST", "/api/spaces/%s/speakers" % sid, {"name": name},
                               headers=host(hk))
        check(st == 201 and len(obj.get("key", "")) == 32, "invite %s -> %d %r" % (name, st, obj))
        keys[name] = obj["key"]
    pubs = [speaker_publish(srv, sid, "a", keys["a"], 440), speaker_publish(srv, sid, "b", keys["b"], 660)]
    wait_until(lambda: all(s["connected"] for s in speakers(srv, sid, hk).values()), 10,
               "both speakers connected")
    st, _, obj = http_json(srv, "POST", "/api/spaces/%s/live" % sid, headers=host(hk))
    check(st == 200 and obj["state"] == "live", "go live -> %d %r" % (st, obj))
    st, _, obj = http_json(srv, "POST", "/api/spaces/%s/speakers/b/mute" % sid, headers=host(hk))
    check(st == 200 and obj["muted"] is True, "mute b -> %d %r" % (st, obj))

    log("crash: SIGKILL to the server (pid %d)" % srv.proc.pid)
    port = srv.port
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(10)
    srv.stopped = True
    for p in pubs:
        stop_process(p, signal.SIGKILL)

    srv2 = Server(data_dir=data, name="after").start(port=port)
    st, _, obj = http_json(srv2, "GET", "/api/spaces/%s" % sid)
    check(st == 200 and obj["state"] == "live", "after the crash the space is %r, expected live" % obj.get("state"))
    sp = speakers(srv2, sid, hk)
    log("after the crash: state %s, speakers %r" % (obj["state"], sorted((n, s["muted"]) for n, s in sp.items())))
    check(set(sp) == {"a", "b"} and sp["b"]["muted"] and not sp["a"]["muted"],
          "speakers after the crash: %r" % sp)
    # A wrong key and another speaker's key are refused as before.
    st, _, _ = http(srv2, "PUT", "/spaces/%s/speakers/a.opus" % sid, body=b"",
                    headers={"Authorization": "Basic c291cmNlOm5vcGU="})
    check(st == 401, "a wrong key -> %d, expected 401" % st)
    pubs = [speaker_publish(srv2, sid, "a", keys["a"], 440), speaker_publish(srv2, sid, "b", keys["b"], 660)]
    wait_until(lambda: all(s["connected"] for s in speakers(srv2, sid, hk).values()), 10,
               "both speakers reconnected with their old keys")
    wait_until(lambda: all(s["buffered_ms"] > 0 for s in speakers(srv2, sid, hk).values()), 10,
               "both speakers' audio buffered")
    a, b = tones(record(srv2, sid, 3))
    check(a > 30, "440 Hz (speaker a) not heard after the restart: %.1f dB above the floor" % a)
    check(b < a - 30, "660 Hz (speaker b, muted before the crash) heard after it: %.1f dB vs %.1f" % (b, a))
    st, _, obj = http_json(srv2, "POST", "/api/spaces/%s/speakers/b/unmute" % sid, headers=host(hk))
    check(st == 200 and obj["muted"] is False, "unmute b -> %d %r" % (st, obj))
    a, b = tones(record(srv2, sid, 3))
    check(a > 30 and b > 30, "after unmute both tones expected: 440 %.1f dB, 660 %.1f dB above the floor" % (a, b))
    for p in pubs:
        stop_process(p)
    srv2.stop()


if __name__ == "__main__":
    run_test(main)
