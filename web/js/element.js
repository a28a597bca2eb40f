// What the two <audio>-element players (progressive.js, hlsmode.js) share: the
// failure path (ask the server why, then retry, on the next node when this one
// stopped answering: nodes.js) and the element's clock (buffer ahead, progress,
// audible once currentTime has moved 200 ms past where the stream started:
// Chromium jumps to the start position first and only then buffers).
import { probe } from './backoff.js';
import { nodes } from './nodes.js';

// `p` is the player (playing, probing, url, base, stats, retrier, onState);
// `close` drops its current stream before the probe.
export async function probeAndRetry(p, close) {
  if (!p.playing || p.retrier.pending || p.probing) return;
  p.probing = true;
  close();
  const r = await probe(p.url);
  p.probing = false;
  if (!p.playing) return;
  if (r.status === 410) {
    p.onState('ended');
    return;
  }
  p.stats.reconnects++;
  nodes.failed(p, p.base, r.status);
  p.retrier.failed(r.retryAfterMs);
}

// One look at the element (four times a second): stats.bufferMs, lastTime and
// lastProgress follow it; returns true when it just became audible (then the
// retrier and nodes.js hear that it is connected, and the page 'playing').
export function watchClock(p, now) {
  const a = p.audio, t = a.currentTime;
  const end = a.buffered.length ? a.buffered.end(a.buffered.length - 1) : t;
  p.stats.bufferMs = Math.max(0, Math.round((end - t) * 1000));
  if (p.baseline === null && t > 0) p.baseline = p.lastTime = t;
  if (t === p.lastTime) return false;
  p.lastTime = t;
  p.lastProgress = now;
  if (p.isAudible || t - p.baseline < 0.2) return false;
  p.isAudible = true;
  p.retrier.connected();
  nodes.ok(p);
  p.onState('playing');
  return true;
}
