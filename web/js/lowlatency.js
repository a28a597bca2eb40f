// The low-latency listening path: WebSocket GET /spaces/{id}/ws, one Opus
// packet per binary message, decoded by WebCodecs' AudioDecoder and played by
// the "tribune-player" AudioWorklet (worklet-player.js: the adaptive buffer).
//
// Messages (src/http/ws.h): first a text hello {"codec":"opus",
// "sample_rate":48000,"channels":1,"frame_ms":20,"space":ID}; then binary:
// byte 0 = 1 (audio), 1-4 sequence u32 BE, 5-12 timestamp u64 BE (48 kHz
// samples), 13.. one 20 ms Opus packet.
import { Retrier, probe } from './backoff.js';
import { nodes } from './nodes.js';

const MSG_AUDIO = 1, HDR = 13, FRAME = 960; // samples per 20 ms at 48 kHz
const MAX_CONCEAL = 5; // a gap of up to this many packets is filled with silence

export function lowLatencySupported() {
  return typeof AudioDecoder === 'function' && typeof AudioWorkletNode === 'function';
}

export class LowLatencyPlayer {
  constructor(spaceId, ctx, out, onState) {
    this.id = spaceId;
    this.mode = 'ws';
    this.ctx = ctx;
    this.out = out;
    this.onState = onState;
    this.audio = null;
    this.playing = false;
    this.ws = null;
    this.node = null;
    this.decoder = null;
    this.stats = { bufferMs: 0, targetMs: 0, packets: 0, lost: 0, reconnects: 0, underruns: 0,
      dropped: 0, lastSeq: 0, lastTimestamp: 0 };
    this.retrier = new Retrier(() => this.connect(), (ms) => this.onState('reconnecting', ms));
  }

  get path() {
    return '/spaces/' + encodeURIComponent(this.id) + '/ws';
  }

  async start() {
    this.playing = true;
    this.retrier.reset();
    if (!this.node) {
      await this.ctx.audioWorklet.addModule('/web/js/worklet-player.js');
      if (!this.playing) return;
      this.node = new AudioWorkletNode(this.ctx, 'tribune-player', { numberOfInputs: 0,
        outputChannelCount: [1] });
      this.node.port.onmessage = (e) => Object.assign(this.stats, {
        bufferMs: e.data.bufferMs, targetMs: e.data.targetMs, underruns: e.data.underruns,
        dropped: e.data.dropped });
      this.node.connect(this.out);
    }
    this.connect();
  }

  stop() {
    this.playing = false;
    this.retrier.stop();
    this.close();
    if (this.node) {
      this.node.port.postMessage({ reset: true });
      this.node.disconnect();
      this.node = null;
    }
    this.stats.bufferMs = 0;
  }

  close() {
    if (this.ws) {
      this.ws.onclose = this.ws.onmessage = this.ws.onerror = null;
      this.ws.close();
      this.ws = null;
    }
    if (this.decoder && this.decoder.state !== 'closed') this.decoder.close();
    this.decoder = null;
  }

  connect() {
    if (!this.playing) return;
    this.close();
    this.onState('connecting');
    this.expectSeq = null;
    this.base = nodes.current; // this attempt's node (nodes.js)
    const ws = (this.ws = new WebSocket(nodes.wsUrl(this.path, this.base)));
    ws.binaryType = 'arraybuffer';
    ws.onmessage = (e) => (typeof e.data === 'string' ? this.hello(e.data) : this.packet(e.data));
    ws.onclose = (e) => this.dropped(e);
  }

  hello(text) {
    let h = {};
    try { h = JSON.parse(text); } catch { /* ignored: not a hello */ }
    if (h.codec && h.codec !== 'opus') console.warn('unexpected codec', h.codec);
    if (this.decoder && this.decoder.state !== 'closed') this.decoder.close();
    this.decoder = new AudioDecoder({
      output: (data) => this.play(data),
      error: (e) => console.warn('decoder', e),
    });
    this.decoder.configure({ codec: 'opus', sampleRate: h.sample_rate || 48000,
      numberOfChannels: h.channels || 1 });
    this.retrier.connected();
    nodes.ok(this);
    this.onState('playing');
  }

  packet(buf) {
    if (!this.decoder || buf.byteLength <= HDR) return;
    const v = new DataView(buf);
    if (v.getUint8(0) !== MSG_AUDIO) return;
    const seq = v.getUint32(1);
    const ts = Number(v.getBigUint64(5));
    if (this.expectSeq !== null && seq !== this.expectSeq) {
      const gap = (seq - this.expectSeq) >>> 0; // wraps at 2^32
      if (gap < 1000) {
        this.stats.lost += gap;
        // keep time: silence for a short gap (no PLC in WebCodecs)
        for (let i = 0; i < Math.min(gap, MAX_CONCEAL); i++)
          this.node.port.postMessage({ pcm: new Float32Array(FRAME) });
      }
    }
    this.expectSeq = (seq + 1) >>> 0;
    this.stats.packets++;
    this.stats.lastSeq = seq;
    this.stats.lastTimestamp = ts;
    if (this.decoder.state === 'closed') this.hello('{}'); // a decode error closed it: start over
    try {
      this.decoder.decode(new EncodedAudioChunk({ type: 'key',
        timestamp: Math.round((ts * 1e6) / 48000), data: new Uint8Array(buf, HDR) }));
    } catch (e) {
      console.warn('decode', e);
    }
  }

  // Decoded PCM (mono; a second channel, if any, is ignored) to the worklet.
  play(data) {
    const pcm = new Float32Array(data.numberOfFrames);
    data.copyTo(pcm, { planeIndex: 0, format: 'f32-planar' });
    data.close();
    if (this.node) this.node.port.postMessage({ pcm }, [pcm.buffer]);
  }

  // The socket closed or never opened: ask its node why (a plain GET of the path), then
  // retry, on the next node when this one stopped answering (nodes.js).
  async dropped(e) {
    this.close();
    if (!this.playing) return;
    const p = await probe(nodes.url(this.path, this.base));
    if (!this.playing) return;
    if (p.status === 410) return this.onState('ended');
    if (p.status === 404) return this.onState('unavailable');
    this.stats.reconnects++;
    nodes.failed(this, this.base, p.status);
    this.retrier.failed(p.retryAfterMs);
  }
}
