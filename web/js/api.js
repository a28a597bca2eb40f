// The JSON API and the space's event stream (SSE), with the reconnection
// policy of backoff.js.
import { Retrier, probe, retryAfterMs } from './backoff.js';

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// fetch + JSON; throws ApiError with the server's {"error"} text on failure.
export async function api(method, path, { body, key } = {}) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (key) headers.Authorization = 'Bearer ' + key;
  let r;
  try {
    r = await fetch(path, { method, headers, cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, 'the server cannot be reached');
  }
  const text = await r.text();
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
// fixed-delay retries cannot be jittered.
export class SpaceWatch {
  constructor(id, onSpace, onStatus = () => {}) {
    this.url = spacePath(id) + '/events';
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

  async open() {
    this.onStatus('connecting', 0);
    const ctl = (this.ctl = new AbortController());
    let minWait = 0;
    try {
      const r = await fetch(this.url, { cache: 'no-store', signal: ctl.signal,
        headers: { Accept: 'text/event-stream' } });
      if (r.status === 404) {
        this.onStatus('gone', 0);
        return;
      }
      if (!r.ok || !r.body) {
        minWait = retryAfterMs(r.headers.get('Retry-After'));
        throw new Error('status ' + r.status);
      }
      this.retrier.connected();
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
    }
    if (this.ctl !== ctl) return;
    this.reconnects++;
    this.retrier.failed(minWait);
  }
}

// Re-exported for the pages that poll (index, host requests).
export { Retrier, probe };
