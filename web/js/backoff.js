// Reconnection that never becomes a retry storm (docs/internals/web.md).
//
// Every client of a page (the <audio> element, a WebSocket, the SSE stream)
// owns one Retrier. A failure asks it for one new attempt; it waits
//   delay = random(0, min(CAP, BASE * 2^attempt))      (full jitter)
// and at least the server's Retry-After, then calls the attempt. It never
// holds more than one pending attempt, and the attempt counter starts over
// once a connection has stayed up for RESET_MS.

export const BASE_MS = 500;
export const CAP_MS = 10000;
export const RESET_MS = 10000;

// The jittered delay of attempt number `attempt` (0 for the first retry).
export function jitteredDelay(attempt, random = Math.random) {
  const ceiling = Math.min(CAP_MS, BASE_MS * 2 ** Math.min(attempt, 20));
  return Math.floor(random() * ceiling);
}

// Reads a Retry-After header value (seconds, or an HTTP date) as milliseconds;
// 0 when absent or unreadable.
export function retryAfterMs(value, now = Date.now()) {
  if (!value) return 0;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const t = Date.parse(value);
  return Number.isNaN(t) ? 0 : Math.max(0, t - now);
}

// Asks the server what went wrong with `url` (a failed <audio>, WebSocket or
// stream gives no status): a GET whose body is dropped at once. Resolves to
// {status, retryAfterMs}; status 0 when the server cannot be reached, -1 when
// another node (failover, nodes.js) answered something its CORS headers do not
// let us read (an error page without Access-Control-Allow-Origin): alive.
export async function probe(url) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 5000);
  try {
    const r = await fetch(url, { cache: 'no-store', signal: ctl.signal });
    const out = { status: r.status, retryAfterMs: retryAfterMs(r.headers.get('Retry-After')) };
    ctl.abort(); // a live stream would never end: we only wanted the head
    return out;
  } catch {
    const isOther = new URL(url, location.href).origin !== location.origin;
    return { status: isOther && !ctl.signal.aborted && (await answers(url)) ? -1 : 0,
      retryAfterMs: 0 };
  } finally {
    clearTimeout(timer);
  }
}

// Whether another origin's server answers `url` at all (an opaque no-cors GET).
async function answers(url) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 5000);
  try {
    await fetch(url, { mode: 'no-cors', cache: 'no-store', signal: ctl.signal });
    ctl.abort();
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

export class Retrier {
  // attempt(): starts one connection attempt (its own failure calls failed()).
  // onWait(ms): the page tells the user "reconnecting in N s".
  constructor(attempt, onWait = () => {}) {
    this.attempt = attempt;
    this.onWait = onWait;
    this.failures = 0; // consecutive failures: the exponent
    this.timer = null; // the one pending attempt
    this.upSince = 0; // when the current connection came up (0: not up)
    this.stopped = false;
    this.lastDelay = 0;
  }

  // The connection works: remember since when (RESET_MS later, the next
  // failure counts as a first one).
  connected() {
    this.upSince = performance.now();
  }

  // The connection failed or dropped: schedule one attempt, unless one is
  // pending already. `minMs` is the server's Retry-After.
  failed(minMs = 0) {
    if (this.stopped || this.timer !== null) return -1;
    if (this.upSince && performance.now() - this.upSince >= RESET_MS) this.failures = 0;
    this.upSince = 0;
    const delay = Math.max(jitteredDelay(this.failures), minMs);
    this.failures++;
    this.lastDelay = delay;
    this.onWait(delay);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.stopped) this.attempt();
    }, delay);
    return delay;
  }

  // Forget everything (a user's stop, or a new start).
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
  }

  reset() {
    this.stop();
    this.stopped = false;
    this.failures = 0;
    this.upSince = 0;
  }

  get pending() {
    return this.timer !== null;
  }
}
