// AudioWorkletProcessor "tribune-capture": collects the microphone's 128-sample
// render quanta (mono, at the context's rate: 48 kHz) into 20 ms frames of
// 960 samples and posts each to the main thread (speaker.js), which encodes it.
const FRAME = 960;

class TribuneCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.buf = new Float32Array(FRAME);
    this.n = 0;
  }

  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (!ch) return true; // no input connected yet
    let i = 0;
    while (i < ch.length) {
      const k = Math.min(FRAME - this.n, ch.length - i);
      this.buf.set(ch.subarray(i, i + k), this.n);
      this.n += k;
      i += k;
      if (this.n === FRAME) {
        this.port.postMessage(this.buf, [this.buf.buffer]);
        this.buf = new Float32Array(FRAME);
        this.n = 0;
      }
    }
    return true;
  }
}

registerProcessor('tribune-capture', TribuneCapture);
