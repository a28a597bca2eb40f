// The default listening path: progressive Ogg/Opus in an <audio> element
// (GET /spaces/{id}/live.opus), routed through the page's AudioContext so the
// analyser sees what plays. The element reconnects with backoff.js's policy
// when the stream fails, ends, or stops advancing for STALL_MS.
import { Retrier, probe } from './backoff.js';
import { api, spacePath } from './api.js';

const STALL_MS = 6000; // no progress while playing for this long: reconnect

export class ProgressivePlayer {
  // ctx, out: the shared AudioContext and the node to connect to (the analyser).
  // onState(state, text): 'connecting' | 'playing' | 'waiting' | 'reconnecting'.
  constructor(spaceId, ctx, out, onState) {
    this.id = spaceId;
    this.mode = 'progressive';
    this.onState = onState;
    this.audio = new Audio();
    this.audio.preload = 'none';
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
    this.audio.addEventListener('playing', () => {
      this.retrier.connected();
      this.onState('playing');
    });
    this.audio.addEventListener('waiting', () => this.playing && this.onState('waiting'));
  }

  get url() {
    return '/spaces/' + encodeURIComponent(this.id) + '/live.opus';
  }

  start() {
    this.playing = true;
    this.retrier.reset();
    this.poll = setInterval(() => this.watch(), 500);
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
    let url = this.url;
    try {
      const sp = await api('GET', spacePath(this.id));
      if (sp && sp.require_ticket) {
        const t = await api('GET', spacePath(this.id) + '/ticket');
        url += '?ticket=' + encodeURIComponent(t.ticket);
      }
    } catch { /* the stream's own failure will tell */ }
    if (!this.playing) return;
    this.lastProgress = performance.now();
    this.lastTime = 0;
    this.audio.src = url;
    this.audio.play().catch(() => {}); // failures arrive as 'error'
  }

  // The element failed or the stream ended: ask the server why, then retry.
  async fail() {
    if (!this.playing || this.retrier.pending || this.probing) return;
    this.probing = true;
    this.audio.removeAttribute('src');
    this.audio.load();
    const p = await probe(this.url);
    this.probing = false;
    if (!this.playing) return;
    if (p.status === 410) {
      this.onState('ended');
      return;
    }
    this.stats.reconnects++;
    this.retrier.failed(p.retryAfterMs);
  }

  // Twice a second: the buffer ahead of the play position, and stall detection.
  watch() {
    const a = this.audio;
    if (a.buffered.length) this.stats.bufferMs = Math.max(0,
      Math.round((a.buffered.end(a.buffered.length - 1) - a.currentTime) * 1000));
    const now = performance.now();
    if (a.currentTime !== this.lastTime) {
      this.lastTime = a.currentTime;
      this.lastProgress = now;
    } else if (a.src && !this.retrier.pending && now - this.lastProgress > STALL_MS) {
      this.lastProgress = now;
      this.fail();
    }
  }
}
