// The default listening path: progressive Ogg/Opus in an <audio> element
// (GET /spaces/{id}/live.opus), routed through the page's AudioContext so the
// analyser sees what plays. The element reconnects with backoff.js's policy
// when the stream fails, ends, or stops advancing for STALL_MS.
import { Retrier } from './backoff.js';
import { probeAndRetry, watchClock } from './element.js';
import { api, spacePath } from './api.js';
import { nodes } from './nodes.js';

const STALL_MS = 2500; // audible, then no progress for this long: reconnect
const START_MS = 10000; // connected, never audible, no bytes for NET_MS either: reconnect
// Before its first sound Chromium reads 32 KiB of the stream (docs/internals/web.md): ~5 s of
// speech at 48 kbit/s, over a minute of silence. Bytes still arriving then are not a stall,
// up to this long:
const START_MAX_MS = 30000;
// The element would first play the seconds it holds (Chromium: ~2 s decoded, more
// undecoded), so a dead stream is seen from the network side: 'progress' fires
// every ~350 ms while bytes arrive (the server writes every 100-250 ms), and
// 'suspend' as soon as the download stops, which for a live stream means the
// connection is gone.
const NET_MS = 3000; // audible, and no 'progress' for this long: the stream is dead
const SUSPEND_MS = 1000; // 'suspend' with no 'progress' after it for this long: dead too

export class ProgressivePlayer {
  // ctx, out: the shared AudioContext and the node to connect to (the analyser).
  // onState(state, text): 'connecting' | 'playing' | 'waiting' | 'reconnecting'.
  constructor(spaceId, ctx, out, onState) {
    this.id = spaceId;
    this.mode = 'progressive';
    this.onState = onState;
    this.audio = new Audio();
    this.audio.preload = 'none';
    // CORS mode: a stream from another node (failover, or a 302 to an edge) reaches the
    // analyser only when fetched with CORS (live.opus answers Access-Control-Allow-Origin: *)
    this.audio.crossOrigin = 'anonymous';
    this.source = ctx.createMediaElementSource(this.audio);
    this.source.connect(out);
    this.stats = { bufferMs: 0, packets: 0, lost: 0, reconnects: 0, lastSeq: 0, lastTimestamp: 0 };
    this.playing = false;
    this.retrier = new Retrier(() => this.connect(),
      (ms) => this.onState('reconnecting', ms));
    this.lastTime = 0;
    this.lastProgress = 0;
    this.poll = null;
    const fail = () => this.fail();
    this.audio.addEventListener('error', fail);
    this.audio.addEventListener('ended', fail);
    this.spaceLive = true; // set by Player.setSpaceState
    this.lastNet = 0; // the last 'progress' (bytes arrived)
    this.suspendedAt = 0; // the last 'suspend' not followed by a 'progress'
    this.audio.addEventListener('progress', () => {
      this.lastNet = performance.now();
      this.suspendedAt = 0;
    });
    this.audio.addEventListener('suspend', () => (this.suspendedAt = performance.now()));
    this.isAudible = false; // currentTime moves: set by watch(), not by the 'playing' event
  }

  get path() {
    return '/spaces/' + encodeURIComponent(this.id) + '/live.opus';
  }

  get url() {
    return nodes.url(this.path, this.base);
  }

  start() {
    this.playing = true;
    this.retrier.reset();
    this.poll = setInterval(() => this.watch(), 250);
    this.connect();
  }

  stop() {
    this.playing = false;
    this.retrier.stop();
    clearInterval(this.poll);
    this.audio.pause();
    this.audio.removeAttribute('src');
    this.audio.load(); // closes the stream
    this.stats.bufferMs = 0;
  }

  // A space that requires join tickets gets one first (they expire: a new one each time).
  async connect() {
    if (!this.playing) return;
    this.onState('connecting');
    this.base = nodes.current; // this attempt's node (nodes.js)
    let url = this.url;
    try {
      const sp = await api('GET', nodes.url(spacePath(this.id), this.base), { timeoutMs: 5000 });
      if (sp && sp.require_ticket) {
        const t = await api('GET', nodes.url(spacePath(this.id) + '/ticket', this.base),
          { timeoutMs: 5000 });
        url += '?ticket=' + encodeURIComponent(t.ticket);
      }
    } catch { /* the stream's own failure will tell */ }
    if (!this.playing) return;
    this.lastProgress = performance.now();
    this.lastTime = 0;
    this.lastNet = performance.now();
    this.suspendedAt = 0;
    this.baseline = null; // currentTime where this stream starts (Chromium: its first granule)
    this.isAudible = false;
    this.audio.src = url;
    this.audio.play().catch(() => {}); // failures arrive as 'error'
  }

  // The element failed or the stream ended: ask the server why, then retry (on the next
  // node when this one stopped answering: nodes.js).
  fail() {
    return probeAndRetry(this, () => {
      this.audio.removeAttribute('src');
      this.audio.load();
    });
  }

  // Four times a second: the buffer ahead of the play position, and stall and
  // cut detection. The element is audible once currentTime has moved 200 ms past
  // where the stream started (Chromium jumps to the start position first and
  // only then buffers for a few seconds).
  watch() {
    const a = this.audio, now = performance.now();
    watchClock(this, now);
    // a space that is not live yet holds its listeners silent: no stall then
    if (!this.spaceLive || !a.src || this.retrier.pending) return;
    const still = now - this.lastProgress;
    const isStalled = this.isAudible ? still > STALL_MS
      : still > START_MAX_MS || (still > START_MS && now - this.lastNet > NET_MS);
    const isCut = this.isAudible && (now - this.lastNet > NET_MS ||
      (this.suspendedAt && now - this.suspendedAt > SUSPEND_MS));
    if (isStalled || isCut) {
      this.lastProgress = this.lastNet = now;
      this.suspendedAt = 0;
      this.fail();
    }
  }
}
