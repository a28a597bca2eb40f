// AudioWorkletProcessor "tribune-player": plays decoded 48 kHz mono PCM from
// the low-latency path through a small adaptive buffer.
//
//   main thread --port {pcm: Float32Array}--> queue --process()--> output
//
// Buffer policy (docs/internals/web.md):
// - start playing once TARGET ms are queued (target starts at START_MS);
// - an underrun (queue empty while playing) grows the target by GROW_MS (up to
//   MAX_MS) and waits for it to refill;
// - every SHRINK_EVERY_S seconds without an underrun the target shrinks by
//   SHRINK_MS (down to MIN_MS): slowly, so a jittery network does not
//   oscillate;
// - more than target + DROP_OVER_MS queued (we fell far behind live): whole
//   frames are dropped from the old end down to the target;
// - the queue's low-water mark over each TRIM_WINDOW_S: when even its lowest
//   point stayed more than TRIM_OVER_MS above the target, audio arrived in a
//   bunch once and the surplus would otherwise stay as latency for good
//   (input and output run at the same rate): whole frames worth the surplus
//   are dropped from the old end.
const RATE = 48000;
const MIN_MS = 60, START_MS = 100, MAX_MS = 400, GROW_MS = 20, SHRINK_MS = 10;
const SHRINK_EVERY_S = 10, DROP_OVER_MS = 200, REPORT_EVERY = 40; // quanta (~107 ms)
const TRIM_WINDOW_S = 2, TRIM_OVER_MS = 40;

class TribunePlayer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = []; // Float32Array frames, oldest first
    this.head = 0; // read position in queue[0]
    this.queued = 0; // samples queued
    this.targetMs = START_MS;
    this.isPlaying = false;
    this.underruns = 0;
    this.dropped = 0;
    this.cleanQuanta = 0; // render quanta since the last underrun or shrink
    this.quanta = 0;
    this.lowWater = Infinity; // fewest samples queued in this trim window, while playing
    this.windowQuanta = 0;
    this.port.onmessage = (e) => this.push(e.data);
  }

  push(msg) {
    if (msg.reset) {
      this.queue = [];
      this.head = this.queued = 0;
      this.isPlaying = false;
      return;
    }
    this.queue.push(msg.pcm);
    this.queued += msg.pcm.length;
    const over = this.queued - ((this.targetMs + DROP_OVER_MS) * RATE) / 1000;
    if (over > 0) this.dropTo((this.targetMs * RATE) / 1000);
  }

  // Drops whole frames from the old end, at most `samples` in all.
  dropSome(samples) {
    while (this.queue.length > 1 && this.queue[0].length - this.head <= samples) {
      const n = this.queue[0].length - this.head;
      samples -= n;
      this.queued -= n;
      this.queue.shift();
      this.head = 0;
      this.dropped++;
    }
  }

  // At the end of each trim window: a surplus that never drained goes.
  trim() {
    const target = (this.targetMs * RATE) / 1000;
    const over = (TRIM_OVER_MS * RATE) / 1000;
    if (this.isPlaying && this.lowWater !== Infinity && this.lowWater > target + over)
      this.dropSome(this.lowWater - target);
    this.lowWater = Infinity;
    this.windowQuanta = 0;
  }

  dropTo(samples) {
    while (this.queue.length > 1 && this.queued - (this.queue[0].length - this.head) >= samples) {
      this.queued -= this.queue[0].length - this.head;
      this.queue.shift();
      this.head = 0;
      this.dropped++;
    }
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    const need = out.length;
    if (!this.isPlaying && this.queued >= (this.targetMs * RATE) / 1000) this.isPlaying = true;
    if (this.isPlaying) {
      let o = 0;
      while (o < need && this.queue.length) {
        const f = this.queue[0];
        const n = Math.min(need - o, f.length - this.head);
        out.set(f.subarray(this.head, this.head + n), o);
        o += n;
        this.head += n;
        this.queued -= n;
        if (this.head === f.length) {
          this.queue.shift();
          this.head = 0;
        }
      }
      if (o < need) { // underrun: the rest of this quantum stays silent
        this.isPlaying = false;
        this.underruns++;
        this.cleanQuanta = 0;
        this.targetMs = Math.min(MAX_MS, this.targetMs + GROW_MS);
      }
    }
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    if (this.isPlaying) this.lowWater = Math.min(this.lowWater, this.queued);
    if (++this.windowQuanta >= (TRIM_WINDOW_S * RATE) / need) this.trim();
    if (++this.cleanQuanta >= (SHRINK_EVERY_S * RATE) / need) {
      this.cleanQuanta = 0;
      this.targetMs = Math.max(MIN_MS, this.targetMs - SHRINK_MS);
    }
    if (++this.quanta % REPORT_EVERY === 0)
      this.port.postMessage({ bufferMs: Math.round((this.queued * 1000) / RATE),
        targetMs: this.targetMs, underruns: this.underruns, dropped: this.dropped,
        playing: this.isPlaying });
    return true;
  }
}

registerProcessor('tribune-player', TribunePlayer);
