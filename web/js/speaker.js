// A browser speaker: microphone -> AudioContext (48 kHz) -> "tribune-capture"
// worklet (20 ms frames) -> WebCodecs AudioEncoder (Opus, mono, 48 kbit/s,
// 20 ms) -> WebSocket GET /spaces/{id}/speak?key=KEY[&name=NAME], one Opus
// packet per binary message (the listen path's format, src/http/ws.h):
//   byte 0 = 1, 1-4 sequence u32 BE, 5-12 timestamp u64 BE (48 kHz samples
//   at the end of the packet), 13.. the packet.
// The server talks back in text JSON: {"type":"hello","muted","state"},
// {"type":"muted","muted"}, {"type":"state","state"}; removal closes with
// 1008 "removed by the host" (no reconnection then).
import { Retrier, probe } from './backoff.js';
import { wsUrl } from './util.js';

const RATE = 48000, FRAME = 960, HDR = 13;
const CLOSE_POLICY = 1008;

export class Speaker {
  // on(event, value): 'state' (connecting|speaking|reconnecting|removed|ended,
  // with a delay in ms for reconnecting), 'servermuted' (bool), 'spacestate' (word).
  constructor(spaceId, key, name, on) {
    this.id = spaceId;
    this.key = key;
    this.name = name;
    this.on = on;
    this.stats = { sent: 0, seq: 0, level: 0, dropped: 0, reconnects: 0 };
    this.muted = false; // muted here: silence is encoded and sent
    this.serverMuted = false;
    this.active = false;
    this.ws = null;
    this.samples = 0; // encoder time in samples
    this.retrier = new Retrier(() => this.connect(), (ms) => this.on('state', 'reconnecting', ms));
  }

  get path() {
    const q = new URLSearchParams({ key: this.key });
    if (this.name) q.set('name', this.name);
    return `/spaces/${encodeURIComponent(this.id)}/speak?${q}`;
  }

  async start() {
    if (typeof AudioEncoder !== 'function') throw new Error('this browser has no WebCodecs AudioEncoder');
    this.active = true;
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true } });
    this.ctx = new AudioContext({ sampleRate: RATE });
    await this.ctx.audioWorklet.addModule('/web/js/worklet-capture.js');
    this.src = this.ctx.createMediaStreamSource(this.stream);
    this.node = new AudioWorkletNode(this.ctx, 'tribune-capture', { numberOfInputs: 1,
      numberOfOutputs: 0, channelCount: 1, channelCountMode: 'explicit' });
    this.node.port.onmessage = (e) => this.frame(e.data);
    this.src.connect(this.node);
    await this.ctx.resume();
    this.encoder = new AudioEncoder({ output: (chunk) => this.send(chunk),
      error: (e) => console.warn('encoder', e) });
    this.encoder.configure({ codec: 'opus', sampleRate: RATE, numberOfChannels: 1, bitrate: 48000,
      opus: { frameDuration: 20000 } });
    this.retrier.reset();
    this.connect();
  }

  stop() {
    this.active = false;
    this.retrier.stop();
    this.closeSocket(1000);
    if (this.encoder && this.encoder.state !== 'closed') this.encoder.close();
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    if (this.ctx) this.ctx.close();
  }

  setMuted(m) {
    this.muted = m;
  }

  // One 20 ms frame from the microphone: the level meter, then the encoder.
  frame(pcm) {
    let peak = 0;
    for (let i = 0; i < pcm.length; i++) peak = Math.max(peak, Math.abs(pcm[i]));
    const db = 20 * Math.log10(peak || 1e-6);
    this.stats.level = this.muted ? 0 : Math.max(0, Math.min(1, (db + 60) / 60));
    if (this.muted) pcm.fill(0);
    if (!this.encoder || this.encoder.state !== 'configured') return;
    const data = new AudioData({ format: 'f32-planar', sampleRate: RATE, numberOfFrames: FRAME,
      numberOfChannels: 1, timestamp: Math.round((this.samples * 1e6) / RATE), data: pcm });
    this.samples += FRAME;
    this.encoder.encode(data);
    data.close();
  }

  send(chunk) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || !this.ready) {
      this.stats.dropped++;
      return;
    }
    const msg = new Uint8Array(HDR + chunk.byteLength);
    const v = new DataView(msg.buffer);
    const seq = this.stats.seq;
    const end = Math.round((chunk.timestamp * RATE) / 1e6) + FRAME;
    v.setUint8(0, 1);
    v.setUint32(1, seq >>> 0);
    v.setBigUint64(5, BigInt(end));
    chunk.copyTo(msg.subarray(HDR));
    this.ws.send(msg);
    this.stats.seq = (seq + 1) >>> 0;
    this.stats.sent++;
  }

  connect() {
    if (!this.active) return;
    this.closeSocket();
    this.on('state', 'connecting');
    this.ready = false;
    const ws = (this.ws = new WebSocket(wsUrl(this.path)));
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      this.ready = true;
      this.retrier.connected();
      this.on('state', 'speaking');
    };
    ws.onmessage = (e) => typeof e.data === 'string' && this.control(e.data);
    ws.onclose = (e) => this.closed(e);
  }

  control(text) {
    let m;
    try { m = JSON.parse(text); } catch { return; }
    if ('muted' in m) {
      this.serverMuted = !!m.muted;
      this.on('servermuted', this.serverMuted);
    }
    if (m.state) {
      this.on('spacestate', m.state);
      if (m.state === 'ended') {
        this.active = false;
        this.on('state', 'ended');
      }
    }
  }

  // The space's public view, or null (the API tells what a refused handshake
  // cannot: the space ended, or this speaker is connected elsewhere).
  async space() {
    try {
      const r = await fetch(`/api/spaces/${encodeURIComponent(this.id)}`, { cache: 'no-store' });
      return r.ok ? await r.json() : null;
    } catch {
      return null;
    }
  }

  closeSocket(code) {
    if (!this.ws) return;
    this.ws.onopen = this.ws.onclose = this.ws.onmessage = null;
    this.ws.close(code);
    this.ws = null;
  }

  async closed(e) {
    this.ws = null;
    this.ready = false;
    if (!this.active) return;
    if (e.code === CLOSE_POLICY) {
      this.active = false;
      this.stop();
      return this.on('state', 'removed', e.reason);
    }
    // why did it fail? 401 (key refused or removed) or an ended space end
    // the session (the server may close without a state message first)
    const p = await probe(`/spaces/${encodeURIComponent(this.id)}/speak`); // no key in a plain GET
    if (!this.active) return;
    if (p.status === 401 || p.status === 403) {
      this.stop();
      return this.on('state', 'removed', 'the key was refused');
    }
    const sp = p.status === 0 ? null : await this.space();
    if (!this.active) return;
    if (p.status === 410 || (sp && sp.state === 'ended')) {
      this.stop();
      return this.on('state', 'ended');
    }
    this.stats.reconnects++;
    const me = this.name || 'host';
    this.busy = !!(sp && (sp.speakers || []).some((x) => x.name === me && x.connected));
    this.retrier.failed(p.retryAfterMs);
  }
}
