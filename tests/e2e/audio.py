"""What a listener heard, on the program's own timeline: decode a recorded Ogg/Opus stream and
measure tones per 20 ms window, each window placed at its Ogg granule position.

Standard library only (python3-numpy is not among scripts/deps.sh's packages); ffmpeg decodes.

The timeline. The server numbers program audio with Ogg granule positions (48 kHz samples, RFC 7845),
and the API answers mute, unmute and go-live with `program_granule` in the same numbering. A
recording starts wherever the listener joined, so decoded sample 0 must be tied to a granule:
  - The first audio page (after OpusHead and OpusTags) ends at granule G1 and carries packets of
    S samples in all, so its first packet starts at G0 = G1 - S.
  - The decoder drops the first `pre_skip` samples it decodes (OpusHead bytes 10-11; 312 for
    libopus), whatever the stream's starting granule; so decoded sample 0 is the sample at granule
    G0 + pre_skip, and decoded sample i the one at G0 + pre_skip + i.
  self_test() checks this against ffmpeg itself: a file whose tone starts at a known granule, cut
  to begin at a later page as a late joiner's recording does, decodes with the onset exactly where
  this arithmetic puts it.

Tone power: a single-bin DFT per window (what Goertzel computes; goertzel() is the textbook
recursion, kept as the reference, and bin_power_db() the same sum done with C-speed map/sum over
precomputed tables) through a 4-term Blackman-Harris window: a strong tone 4.4 bins away (440 vs
660 Hz, at 50 Hz per bin) leaks below -90 dB into the other's bin, where a rectangular window leaks
-23 dB and Hann's -48 dB (too close to the 30 dB a mute must remove). Levels are dBFS: a full-scale
sine reads 0 dB in its own bin.
"""
import math
import operator
import os
import struct
import subprocess

from lib import check, parse_pages, packets, opus_packet_samples, read_s16, tmpdir

RATE = 48000
WIN = 960             # 20 ms, one program frame
FLOOR_DB = -200.0


class Recording:
    """A decoded recording. samples: array('h'); g0: granule of decoded sample 0; pre_skip;
    pages: the parsed pages (first audio page index in first_audio)."""

    def __init__(self, path, samples, g0, pre_skip, pages, first_audio):
        self.path, self.samples, self.g0, self.pre_skip = path, samples, g0, pre_skip
        self.pages, self.first_audio = pages, first_audio
        self._tables = {}

    @property
    def g_end(self):
        return self.g0 + len(self.samples)

    def index_of(self, granule):
        """Decoded sample index of a granule position (may be outside the recording)."""
        return granule - self.g0

    def window_starts(self, g_from=None, g_to=None):
        """Start granules of the whole 20 ms windows inside [g_from, g_to) (default: all), on a grid
        aligned with decoded sample 0."""
        lo = 0 if g_from is None else max(0, self.index_of(g_from))
        hi = len(self.samples) if g_to is None else min(len(self.samples), self.index_of(g_to))
        lo = (lo + WIN - 1) // WIN * WIN
        return [self.g0 + i for i in range(lo, hi - WIN + 1, WIN)]

    def level_db(self, granule, freq, n=WIN):
        """Power of `freq` in the n samples starting at `granule`, dBFS."""
        i = self.index_of(granule)
        return bin_power_db(self.samples[i:i + n], freq, self._table(freq, n))

    def levels(self, freqs, g_from=None, g_to=None):
        """[(window start granule, {freq: dBFS})] for each 20 ms window in [g_from, g_to)."""
        out = []
        for g in self.window_starts(g_from, g_to):
            out.append((g, {f: self.level_db(g, f) for f in freqs}))
        return out

    def clipped(self):
        """Samples at full scale (|x| >= 32767): clipping in the program, or in the decoder."""
        return sum(1 for v in self.samples if v >= 32767 or v <= -32767)

    def peak(self):
        return max((abs(v) for v in self.samples), default=0)

    def _table(self, freq, n):
        key = (freq, n)
        if key not in self._tables:
            self._tables[key] = dft_tables(freq, n)
        return self._tables[key]


def window(n):
    """4-term Blackman-Harris: sidelobes below -92 dB, main lobe +-4 bins (+-200 Hz at 20 ms)."""
    a0, a1, a2, a3 = 0.35875, 0.48829, 0.14128, 0.01168
    return [a0 - a1 * math.cos(2 * math.pi * i / n) + a2 * math.cos(4 * math.pi * i / n)
            - a3 * math.cos(6 * math.pi * i / n) for i in range(n)]


def dft_tables(freq, n=WIN, rate=RATE):
    """Windowed cosine and sine of `freq` over n samples, and the full-scale reference power."""
    w = window(n)
    c = [w[i] * math.cos(2 * math.pi * freq * i / rate) for i in range(n)]
    s = [w[i] * math.sin(2 * math.pi * freq * i / rate) for i in range(n)]
    ref = (32768.0 * sum(w) / 2) ** 2      # a full-scale sine at `freq`
    return c, s, ref


def bin_power_db(seg, freq, tables):
    c, s, ref = tables
    if len(seg) < len(c):
        return FLOOR_DB
    re = sum(map(operator.mul, seg, c))
    im = sum(map(operator.mul, seg, s))
    p = (re * re + im * im) / ref
    return 10 * math.log10(p) if p > 0 else FLOOR_DB


def goertzel(seg, freq, rate=RATE):
    """Goertzel's recursion for the windowed power of `freq` in seg (same scale as
    bin_power_db's numerator before normalisation): the reference the fast path is checked with."""
    n = len(seg)
    w = window(n)
    k = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for i in range(n):
        s0 = seg[i] * w[i] + k * s1 - s2
        s2, s1 = s1, s0
    return s1 * s1 + s2 * s2 - k * s1 * s2


# ----------------------------------------------------------------------------------------------
# Ogg -> granule of decoded sample 0
# ----------------------------------------------------------------------------------------------

def whole_pages(data):
    """The complete pages of a capture (a recording stopped mid-page loses that page)."""
    pages, tail = parse_pages(data)
    return pages, data[: len(data) - tail]


def timeline(pages):
    """(g0, pre_skip, index of the first audio page) for a stream that starts with its headers."""
    check(len(pages) >= 3, "recording has %d pages, not even one audio page" % len(pages))
    head = pages[0].body
    check(head.startswith(b"OpusHead") and len(head) >= 19, "first page is not OpusHead: %r" % head[:16])
    pre_skip = struct.unpack_from("<H", head, 10)[0]
    first = None
    for i, p in enumerate(pages[2:], 2):
        if p.granule != -1:
            first = i
            break
    check(first is not None, "no audio page with a granule position")
    check(first == 2 and not pages[2].continued,
          "the first audio page is not a fresh page right after the headers (%r): the decode would "
          "not start at its first packet" % pages[2])
    samples = sum(opus_packet_samples(pk) for pk in packets([pages[first]]))
    return pages[first].granule - samples + pre_skip, pre_skip, first


def decode(ogg_path, raw_path=None):
    """ffmpeg -> s16le mono 48 kHz. Fails the test on any decoder message."""
    raw_path = raw_path or ogg_path + ".raw"
    r = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", ogg_path, "-f", "s16le", "-ac", "1",
                        "-ar", str(RATE), raw_path], capture_output=True, timeout=120)
    err = r.stderr.decode(errors="replace").strip()
    check(r.returncode == 0 and err == "", "ffmpeg cannot decode %s cleanly (rc %d): %s"
          % (ogg_path, r.returncode, err[-2000:]))
    return read_s16(raw_path)


def load(data, path=None):
    """A Recording from the raw bytes of a listener (the body of GET .../live.opus)."""
    pages, whole = whole_pages(bytes(data))
    path = path or os.path.join(tmpdir(), "recording.opus")
    with open(path, "wb") as f:
        f.write(whole)
    g0, pre_skip, first = timeline(pages)
    samples = decode(path)
    return Recording(path, samples, g0, pre_skip, pages, first)


def load_listener(lst, path=None):
    """A Recording of what a lib.Listener (keep=True) received."""
    with lst.lock:
        data = bytes(lst.body)
    return load(data, path)


# ----------------------------------------------------------------------------------------------
# Judgements over windows
# ----------------------------------------------------------------------------------------------

def present(levels, freq, min_db, over_db, noise_freq):
    """Window start granules where `freq` is at least min_db dBFS and over_db above noise_freq."""
    return [g for g, lv in levels if lv[freq] >= min_db and lv[freq] - lv[noise_freq] >= over_db]


def absent_windows(levels, freq, min_db, over_db, noise_freq):
    """Window start granules where `freq` is NOT present (see present())."""
    ok = set(present(levels, freq, min_db, over_db, noise_freq))
    return [g for g, _ in levels if g not in ok]


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else FLOOR_DB


def summary(levels, freq):
    """(min, median, max) dBFS of freq over the windows."""
    v = [lv[freq] for _, lv in levels]
    return (min(v), median(v), max(v)) if v else (FLOOR_DB, FLOOR_DB, FLOOR_DB)


def runs(granules, step=WIN):
    """Group sorted window granules into (first, count) runs of adjacent windows."""
    out = []
    for g in granules:
        if out and g == out[-1][0] + out[-1][1] * step:
            out[-1][1] += 1
        else:
            out.append([g, 1])
    return [tuple(r) for r in out]


# ----------------------------------------------------------------------------------------------
# Self test (no server): the granule arithmetic against ffmpeg's own decoder, and the detector
# ----------------------------------------------------------------------------------------------

def _encode(path, expr, seconds, page_ms=20):
    argv = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
            "aevalsrc=%s:s=48000:c=mono" % expr, "-t", str(seconds), "-c:a", "libopus", "-b:a", "48k",
            "-frame_duration", "20", "-page_duration", str(page_ms * 1000), "-f", "ogg", path]
    r = subprocess.run(argv, capture_output=True, timeout=60)
    check(r.returncode == 0, "ffmpeg could not encode: %s" % r.stderr.decode(errors="replace"))
    with open(path, "rb") as f:
        return f.read()


def crossing(rec, freq, from_g, steady_db, rising=True, step=24, n=480, to_g=None):
    """Where a tone switches on (rising) or off, to `step` samples: the centre of the first n-sample
    window (sliding from from_g) in which freq reaches half its steady amplitude (steady_db - 6 dB),
    or falls below it. For a step and a symmetric window that is when half the window's weight holds
    the tone, i.e. when the centre is at the switch (for a short ramp: at its middle). None if it
    does not happen before to_g (default: the end of the recording)."""
    tab = dft_tables(freq, n)
    i = max(0, rec.index_of(from_g))
    end = len(rec.samples) if to_g is None else min(len(rec.samples), rec.index_of(to_g) + n // 2)
    while i + n <= end:
        above = bin_power_db(rec.samples[i:i + n], freq, tab) >= steady_db - 6.02
        if above == rising:
            return rec.g0 + i + n // 2
        i += step
    return None


def onset(rec, freq, from_g, steady_db):
    return crossing(rec, freq, from_g, steady_db, rising=True)


def self_test():
    import random
    d = tmpdir()
    # 1. the fast bin equals Goertzel's recursion
    rnd = random.Random(2)
    seg = [int(8000 * math.sin(2 * math.pi * 440 * i / RATE) + rnd.randint(-500, 500)) for i in range(WIN)]
    for f in (440, 660, 1870):
        c, s, ref = dft_tables(f)
        fast = (sum(map(operator.mul, seg, c)) ** 2 + sum(map(operator.mul, seg, s)) ** 2)
        slow = goertzel(seg, f)
        assert abs(fast - slow) <= 1e-6 * max(fast, slow, 1.0), (f, fast, slow)
    full = [int(32767 * math.sin(2 * math.pi * 440 * i / RATE + 0.3)) for i in range(WIN)]
    db = bin_power_db(full, 440, dft_tables(440))
    assert abs(db) < 0.3, db
    leak = bin_power_db(full, 660, dft_tables(660))
    assert leak < -85, leak
    print("detector: full-scale 440 Hz reads %.2f dBFS; its leakage into the 660 Hz bin %.1f dBFS" % (db, leak))

    # 2. granule arithmetic: a tone switched on at t = 1.5 s (sample 72000 of the source, so
    # granule 72000 + pre_skip), recorded as by a listener joining at page k: headers + pages k..
    path = os.path.join(d, "onset.opus")
    data = _encode(path, "'if(gte(t,1.5),sin(2*PI*660*t),0)'", 3)
    pages, _ = parse_pages(data, allow_partial_tail=False)
    pre_skip = struct.unpack_from("<H", pages[0].body, 10)[0]
    want = 72000 + pre_skip
    for k in (2, 9, 30, 51):
        cut = b"".join(p.raw for p in pages[:2] + pages[k:])
        rec = load(cut, os.path.join(d, "cut%d.opus" % k))
        got = onset(rec, 660, rec.g0, rec.level_db(want + 9600, 660))
        print("late joiner from page %d: g0 %d (pre-skip %d), tone onset at granule %s, expected %d (%+d samples)"
              % (k, rec.g0, rec.pre_skip, got, want, (got or 0) - want))
        assert got is not None and abs(got - want) <= 48, (k, got, want)
    # and the whole file from its start: g0 = 0 + pre_skip
    rec = load(data, os.path.join(d, "whole.opus"))
    assert rec.g0 == pre_skip, (rec.g0, pre_skip)
    print("audio self test ok (pre-skip %d)" % pre_skip)


if __name__ == "__main__":
    self_test()
