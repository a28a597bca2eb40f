// The JSON API and the space's event stream (SSE), with the reconnection
// policy of backoff.js.
import { Retrier, probe, retryAfterMs } from './backoff.js';

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// fetch + JSON; throws ApiError with the server's {"error"} text on failure (status 0:
// no answer, or none within timeoutMs). `type` is the body's Content-Type: text/plain keeps
// a POST to another node a "simple" request (no CORS preflight, which the server does not
// answer); the server reads the JSON whatever the type says.
export async function api(method, path, { body, key, timeoutMs = 0, type = 'application/json' } = {}) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = type;
  if (key) headers.Authorization = 'Bearer ' + key;
  let r, text;
  try {
    r = await fetch(path, { method, headers, cache: 'no-store',
      signal: timeoutMs ? AbortSignal.timeout(timeoutMs) : undefined,
      body: body === undefined ? undefined : JSON.stringify(body) });
    text = await r.text();
  } catch {
    throw new ApiError(0, 'the server cannot be reached');
  }
  let obj = null;
  try { obj = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!r.ok) throw new ApiError(r.status, (obj && obj.error) || `${r.status} ${r.statusText}`);
  return obj;
}

export const spacePath = (id) => '/api/spaces/' + encodeURIComponent(id);

// Splits an SSE byte stream into events; calls onEvent(data) for each
// complete one (the data: lines joined with \n). Returns a push(text) function.
export function sseParser(onEvent) {
  let buf = '', data = [];
  return (text) => {
    buf += text;
    let nl;
    while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
      if (line === '') {
        if (data.length) onEvent(data.join('\n'));
        data = [];
      } else if (line.startsWith('data:')) {
        data.push(line.slice(line[5] === ' ' ? 6 : 5));
      }
    }
  };
}

// Watches GET /api/spaces/{id}/events: onSpace(space JSON) once a second.
// onStatus(state, text, delayMs) reports 'connecting' | 'open' |
// 'reconnecting' | 'gone' (404: no such space; no retry). fetch rather than
// EventSource: we see the status and Retry-After, and EventSource's own
// fixed-delay retries cannot be jittered. With `nodes` (nodes.js: the listen page),
// the stream is read from the page's current node: it moves when a player moves
// (reopened at once), and moves the page itself when its node stops answering.
export class SpaceWatch {
  constructor(id, onSpace, onStatus = () => {}, nodes = null) {
    this.path = spacePath(id);
    this.nodes = nodes;
    if (nodes) nodes.subscribe(() => this.reopen());
    this.onSpace = onSpace;
    this.onStatus = onStatus;
    this.retrier = new Retrier(() => this.open(), (ms) => this.onStatus('reconnecting', ms));
    this.ctl = null;
    this.reconnects = 0;
  }

  start() {
    this.retrier.reset();
    this.open();
    return this;
  }

  stop() {
    this.retrier.stop();
    if (this.ctl) this.ctl.abort();
    this.ctl = null;
  }

  // The node moved (nodes.js): drop the stream on the old one and open on the new one now.
  reopen() {
    if (this.retrier.stopped) return;
    if (this.ctl) this.ctl.abort();
    this.ctl = null;
    this.retrier.reset();
    this.open();
  }

  async open() {
    this.onStatus('connecting', 0);
    const ctl = (this.ctl = new AbortController());
    const base = this.nodes ? this.nodes.current : null;
    const url = (p) => (this.nodes ? this.nodes.url(p, base) : p);
    let minWait = 0, status = 0;
    try {
      // Another node: read the space first (an edge that never served it pulls it from its
      // origin on this request; its event stream answers only spaces it holds).
      if (this.nodes && base !== this.nodes.home)
        this.onSpace(await api('GET', url(this.path), { timeoutMs: 5000 }));
      if (this.ctl !== ctl) return;
      const r = await fetch(url(this.path + '/events'), { cache: 'no-store', signal: ctl.signal,
        headers: { Accept: 'text/event-stream' } });
      status = r.status;
      if (r.status === 404) {
        this.onStatus('gone', 0);
        return;
      }
      if (!r.ok || !r.body) {
        minWait = retryAfterMs(r.headers.get('Retry-After'));
        throw new Error('status ' + r.status);
      }
      this.retrier.connected();
      if (this.nodes) this.nodes.ok(this);
      this.onStatus('open', 0);
      const push = sseParser((data) => {
        try { this.onSpace(JSON.parse(data)); } catch (e) { console.warn('bad event', e); }
      });
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        push(dec.decode(value, { stream: true }));
      }
    } catch (e) {
      if (ctl.signal.aborted && this.ctl !== ctl) return; // stopped by us
      if (e instanceof ApiError && e.status) status = e.status; // the space read first
    }
    if (this.ctl !== ctl) return;
    this.reconnects++;
    if (this.nodes && this.nodes.known.length) { // another node to go to
      // no status, or a stream that broke after its 200: ask the node whether it answers
      if (status === 0 || status === 200) status = (await probe(url(this.path))).status;
      if (this.ctl !== ctl) return;
      this.nodes.failed(this, base, status);
      if (this.ctl !== ctl) return; // it moved the page: reopen() opened on the new node
    }
    this.retrier.failed(minWait);
  }
}

// Re-exported for the pages that poll (index, host requests).
export { Retrier, probe };
