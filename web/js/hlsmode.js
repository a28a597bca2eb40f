// The HLS listening path (for caches and CDNs): GET /spaces/{id}/hls/live.m3u8
// played by hls.js (npm, embedded as /web/vendor/hls.min.js when `npm ci` ran
// in web/) through Media Source Extensions into an <audio> element routed into
// the page's AudioContext, like the progressive path. fMP4 Opus segments
// (docs/internals/hls.md): Chromium's MSE takes `audio/mp4; codecs="opus"`.
//
// A player behind a cache never reaches the origin's listener code, so it
// counts itself: POST /api/spaces/{id}/beacon {session, playing, buffered_s,
// stalls} once at start, once audible, and every 10 s while the mode plays. The session id is
// random, one per page load; stalls counts 'waiting' events once audible.
import { Retrier } from './backoff.js';
import { probeAndRetry, watchClock } from './element.js';
import { api, spacePath } from './api.js';
import { nodes } from './nodes.js';

const VENDOR = '/web/vendor/hls.min.js';
const BEACON_MS = 10000;
const STALL_MS = 10000; // audible, then currentTime still for this long: start over
const START_MS = 20000; // connected but never audible for this long: start over

// One session id per page load (8 to 64 of [A-Za-z0-9_-]).
const SESSION = Array.from(crypto.getRandomValues(new Uint8Array(16)),
  (b) => 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_'[b & 63]).join('');

let hlsLoad = null; // the one load of the vendor script: resolves to Hls, or null
// Loads hls.min.js once (a classic script defining window.Hls). Resolves null when
// the build has no vendor file (404) or the browser has no MSE.
function loadHls() {
  if (!hlsLoad) hlsLoad = new Promise((resolve) => {
    if (window.Hls) return resolve(window.Hls);
    const s = document.createElement('script');
    s.src = VENDOR;
    s.onload = () => resolve(window.Hls || null);
    s.onerror = () => resolve(null);
    document.head.append(s);
  }).then((Hls) => (Hls && Hls.isSupported() ? Hls : null));
  return hlsLoad;
}

export class HlsPlayer {
  // ctx, out: the shared AudioContext and the node to connect to (the analyser).
  // onState(state, arg): as ProgressivePlayer, and ('unavailable', 'hls').
  constructor(spaceId, ctx, out, onState) {
    this.id = spaceId;
    this.mode = 'hls';
    this.session = SESSION;
    this.onState = onState;
    this.audio = new Audio();
    this.source = ctx.createMediaElementSource(this.audio);
    this.source.connect(out);
    this.hls = null;
    this.playing = false;
    this.isAudible = false;
    this.spaceLive = true; // set by Player.setSpaceState (HLS plays silence off-air: unused)
    this.stats = { bufferMs: 0, packets: 0, lost: 0, reconnects: 0, lastSeq: 0, lastTimestamp: 0,
      stalls: 0, beacons: 0, latencyMs: 0 };
    this.retrier = new Retrier(() => this.connect(), (ms) => this.onState('reconnecting', ms));
    this.poll = this.beaconTimer = null;
    this.audio.addEventListener('waiting', () => { if (this.isAudible) this.stats.stalls++; });
    this.audio.addEventListener('ended', () => this.fail());
  }

  get url() {
    return nodes.url('/spaces/' + encodeURIComponent(this.id) + '/hls/live.m3u8', this.base);
  }

  async start() {
    this.playing = true;
    this.retrier.reset();
    this.Hls = await loadHls();
    if (!this.playing) return;
    if (!this.Hls) {
      this.playing = false;
      return this.onState('unavailable', 'hls');
    }
    this.poll = setInterval(() => this.watch(), 250);
    this.beaconTimer = setInterval(() => this.beacon(), BEACON_MS);
    this.connect();
    this.beacon();
  }

  stop() {
    this.playing = false;
    this.retrier.stop();
    clearInterval(this.poll);
    clearInterval(this.beaconTimer);
    this.close();
    this.stats.bufferMs = 0;
  }

  close() {
    if (this.hls) this.hls.destroy(); // detaches the media and stops loading
    this.hls = null;
    this.audio.pause();
    this.audio.removeAttribute('src');
    this.audio.load();
  }

  // A new hls.js instance on the playlist. No worker: the page's CSP has no blob: workers.
  connect() {
    if (!this.playing) return;
    this.close();
    this.onState('connecting');
    this.base = nodes.current; // this attempt's node (nodes.js)
    this.isAudible = false;
    this.baseline = null;
    this.lastTime = 0;
    this.lastProgress = performance.now();
    const hls = (this.hls = new this.Hls({ enableWorker: false }));
    hls.on(this.Hls.Events.ERROR, (ev, data) => { if (data.fatal) this.fail(); });
    hls.on(this.Hls.Events.MANIFEST_PARSED, () => this.audio.play().catch(() => {}));
    hls.loadSource(this.url);
    hls.attachMedia(this.audio);
  }

  // A fatal hls.js error, the stream ended, or no progress: ask the server why, then retry.
  fail() {
    return probeAndRetry(this, () => this.close());
  }

  // Four times a second: buffer ahead, latency (the play position's
  // PROGRAM-DATE-TIME against the clock), audible, stalled.
  watch() {
    const now = performance.now();
    const date = this.hls && this.hls.playingDate;
    if (date) this.stats.latencyMs = Math.round(Date.now() - date.getTime());
    if (watchClock(this, now)) this.beacon(); // hearing now, not in up to 10 s
    if (!this.hls || this.retrier.pending) return;
    if (now - this.lastProgress > (this.isAudible ? STALL_MS : START_MS)) {
      this.lastProgress = now;
      this.fail();
    }
  }

  // One beacon; failures are ignored (the next one comes in 10 s).
  async beacon() {
    if (!this.playing) return;
    const a = this.audio;
    const body = { session: this.session, playing: this.isAudible && !a.paused,
      buffered_s: this.stats.bufferMs / 1000, stalls: this.stats.stalls };
    try {
      // to the node it plays from (that node counts it); text/plain: no CORS preflight
      await api('POST', nodes.url(spacePath(this.id) + '/beacon', this.base),
        { body, type: 'text/plain', timeoutMs: 5000 });
      this.stats.beacons++;
    } catch { /* counted as gone after 30 s without one */ }
  }
}
