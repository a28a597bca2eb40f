// The listen page's player: one AudioContext and one AnalyserNode, fed by
// either path (progressive <audio> or the low-latency WebSocket), so that
// `window.tribune.player` looks the same whichever plays:
//   mode ('progressive' | 'ws'), analyser, audio, stats, playing.
import { ProgressivePlayer } from './progressive.js';
import { LowLatencyPlayer, lowLatencySupported } from './lowlatency.js';

export class Player {
  // onState(state, arg): see ProgressivePlayer / LowLatencyPlayer.
  constructor(spaceId, onState) {
    this.id = spaceId;
    this.onState = onState;
    this.ctx = null;
    this.analyser = null;
    this.impl = null;
    this.wantWs = false;
    this.playing = false;
  }

  get mode() { return this.wantWs ? 'ws' : 'progressive'; }
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

  // Both paths are built once and kept: an <audio> element can be routed
  // into a context only once.
  path(ws) {
    const key = ws ? 'ws' : 'progressive';
    if (!this.paths[key])
      this.paths[key] = ws ? new LowLatencyPlayer(this.id, this.ctx, this.analyser, this.onState)
        : new ProgressivePlayer(this.id, this.ctx, this.analyser, this.onState);
    this.paths[key].spaceLive = this.spaceState === undefined || this.spaceState === 'live';
    return this.paths[key];
  }

  async play() {
    this.ensureContext();
    this.playing = true;
    await this.ctx.resume();
    if (this.wantWs && !lowLatencySupported()) {
      this.wantWs = false;
      this.onState('unavailable');
    }
    this.impl = this.path(this.wantWs);
    await this.impl.start();
  }

  stop() {
    this.playing = false;
    if (this.impl) this.impl.stop();
    this.onState('idle');
  }

  // The low-latency switch: restarts on the other path if playing.
  async setLowLatency(on) {
    if (on === this.wantWs) return;
    if (this.impl && this.playing) this.impl.stop();
    this.wantWs = on;
    if (this.playing) {
      this.impl = this.path(on);
      await this.impl.start();
    } else if (this.ctx) {
      this.impl = this.path(on);
    }
  }
}
