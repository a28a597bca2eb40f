// A small line chart on a <canvas>: hearing and lagging over the last
// WINDOW_S seconds, one sample a second (the space's event stream). Redrawn
// on each sample and on resize; sharp on high-density screens.
const WINDOW_S = 300;

export class Chart {
  constructor(canvas, series) {
    this.canvas = canvas;
    this.series = series; // [{key, label, color}]
    this.points = []; // {t (ms), values {key: n}}
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  push(values, t = Date.now()) {
    this.points.push({ t, values });
    const oldest = t - WINDOW_S * 1000;
    while (this.points.length && this.points[0].t < oldest) this.points.shift();
    this.draw();
  }

  draw() {
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, h = c.clientHeight;
    if (!w || !h) return;
    if (c.width !== Math.round(w * dpr)) c.width = Math.round(w * dpr);
    if (c.height !== Math.round(h * dpr)) c.height = Math.round(h * dpr);
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const css = getComputedStyle(c);
    const fg = css.color, line = css.getPropertyValue('--line') || '#ccc';
    const pad = { l: 36, r: 8, t: 8, b: 20 };
    const now = Date.now(), t0 = now - WINDOW_S * 1000;
    let max = 4; // at least 0, 2, 4 on the axis
    for (const p of this.points) for (const s of this.series) max = Math.max(max, p.values[s.key] || 0);
    max = niceCeil(max);
    const x = (t) => pad.l + ((t - t0) / (WINDOW_S * 1000)) * (w - pad.l - pad.r);
    const y = (v) => h - pad.b - (v / max) * (h - pad.t - pad.b);
    // axes: 0, max/2, max; minutes ago along the bottom
    g.font = '11px system-ui, sans-serif';
    g.fillStyle = fg;
    g.strokeStyle = line;
    g.lineWidth = 1;
    for (const v of [0, max / 2, max]) {
      g.beginPath();
      g.moveTo(pad.l, y(v));
      g.lineTo(w - pad.r, y(v));
      g.stroke();
      g.fillText(String(Math.round(v)), 2, y(v) + 4);
    }
    for (let m = 0; m <= WINDOW_S / 60; m++) {
      const label = m === 0 ? 'now' : `-${m} min`;
      const tx = x(now - m * 60000);
      g.fillText(label, Math.min(tx - 10, w - 28), h - 5);
    }
    for (const s of this.series) {
      g.strokeStyle = s.color;
      g.lineWidth = 2;
      g.beginPath();
      this.points.forEach((p, i) => {
        const px = x(p.t), py = y(p.values[s.key] || 0);
        if (i) g.lineTo(px, py); else g.moveTo(px, py);
      });
      g.stroke();
    }
  }
}

// 4, 6, 8, 10, 20, 40...: a round, even top for the axis (its half is a whole number).
function niceCeil(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [2, 4, 6, 8, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}
