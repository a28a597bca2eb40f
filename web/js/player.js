// The listen page's player: one AudioContext and one AnalyserNode, fed by
// any path (progressive <audio>, the low-latency WebSocket, or HLS through
// hls.js), so that `window.tribune.player` looks the same whichever plays:
//   mode ('progressive' | 'ws' | 'hls'), analyser, audio, stats, playing.
import { ProgressivePlayer } from './progressive.js';
import { LowLatencyPlayer, lowLatencySupported } from './lowlatency.js';
import { HlsPlayer } from './hlsmode.js';

const PATHS = { progressive: ProgressivePlayer, ws: LowLatencyPlayer, hls: HlsPlayer };

export class Player {
  // onState(state, arg): see ProgressivePlayer / LowLatencyPlayer.
  constructor(spaceId, onState) {
    this.id = spaceId;
    this.onState = onState;
    this.ctx = null;
    this.analyser = null;
    this.impl = null;
    this.want = 'progressive';
    this.playing = false;
  }

  get mode() { return this.want; }
  get audio() { return this.impl && this.impl.audio; }
  get stats() {
    return this.impl ? this.impl.stats
      : { bufferMs: 0, packets: 0, lost: 0, reconnects: 0, lastSeq: 0, lastTimestamp: 0 };
  }

  // The space's state word, from its event stream: a space that is not live
  // yet is silent on purpose (no stall, no reconnection).
  setSpaceState(state) {
    const live = state === 'live';
    for (const p of Object.values(this.paths || {})) {
      if (live && !p.spaceLive) p.lastProgress = p.lastNet = performance.now();
      p.spaceLive = live;
    }
    this.spaceState = state;
  }

  // The context is created on the first play (a user gesture lets it run).
  ensureContext() {
    if (this.ctx) return;
    this.ctx = new AudioContext({ sampleRate: 48000, latencyHint: 'interactive' });
    this.analyser = this.ctx.createAnalyser();
    this.analyser.fftSize = 2048;
    this.analyser.connect(this.ctx.destination);
    this.paths = {};
  }

  // Each path is built once and kept: an <audio> element can be routed
  // into a context only once.
  path(key) {
    if (!this.paths[key])
      this.paths[key] = new PATHS[key](this.id, this.ctx, this.analyser, this.onState);
    this.paths[key].spaceLive = this.spaceState === undefined || this.spaceState === 'live';
    return this.paths[key];
  }

  async play() {
    this.ensureContext();
    this.playing = true;
    await this.ctx.resume();
    if (this.want === 'ws' && !lowLatencySupported()) {
      this.want = 'progressive';
      this.onState('unavailable');
    }
    this.impl = this.path(this.want);
    await this.impl.start();
  }

  stop() {
    this.playing = false;
    if (this.impl) this.impl.stop();
    this.onState('idle');
  }

  // The low-latency and HLS switches: restart on the other path if playing.
  setLowLatency(on) { return this.setMode(on ? 'ws' : 'progressive'); }
  setHls(on) { return this.setMode(on ? 'hls' : 'progressive'); }

  async setMode(mode) {
    if (mode === this.want) return;
    if (this.impl && this.playing) this.impl.stop();
    this.want = mode;
    if (this.playing) {
      this.impl = this.path(mode);
      await this.impl.start();
    } else if (this.ctx) {
      this.impl = this.path(mode);
    }
  }
}
