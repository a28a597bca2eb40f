"""One heavy end-to-end test at a time.

tests/run.sh runs two e2e tests at once on a 2-core machine. Tests that drive thousands of
listeners (tribune-load) and compare counts second by second measure the machine as much as the
server when two of them share it: the load tool's own meter starves and judges listeners stalled.
Such tests hold this lock while they run, so they run one at a time, each next to at most one light
test. The wait is bounded (a holder is itself bounded by run.sh's per-test timeout).
"""
import fcntl
import os
import tempfile
import time
from contextlib import contextmanager

LOCK_PATH = os.path.join(tempfile.gettempdir(), "tribune-e2e-heavy.lock")


@contextmanager
def exclusive(what, timeout=240):
    f = open(LOCK_PATH, "a")
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise AssertionError("%s: another heavy test held %s for %ds" % (what, LOCK_PATH, timeout))
                time.sleep(0.2)  # polling a lock held by another process, bounded by the deadline
        yield
    finally:
        f.close()  # releases the lock
