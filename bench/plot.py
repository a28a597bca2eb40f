#!/usr/bin/env python3
"""SVG plot of a bench result: hearing % and server CPU per listener-second
against listeners (log scale), one line per server. Standard library only.

  plot.py RESULT.json [OUT.svg]     (bench.py calls write_svg() directly)
"""
import json
import math
import sys

W, H = 960, 420
PANEL_W, PANEL_H = 380, 290
LEFT = (70, 60)
RIGHT = (550, 60)
COLORS = {"icecast": "#d9480f", "tribune": "#1c7ed6", "tribune-ws": "#2f9e44"}
FALLBACK = ["#2b8a3e", "#862e9c", "#495057"]


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def nice_max(v):
    if v <= 0:
        return 1.0
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * e:
            return m * e
    return 10 * e


def x_scale(ns):
    lo, hi = min(ns), max(ns)
    lo_l = math.floor(math.log10(lo)) if lo > 0 else 2
    hi_l = math.ceil(math.log10(hi)) if hi > 0 else 3
    if hi_l == lo_l:
        hi_l += 1
    return lo_l, hi_l


def panel(out, origin, title, ylabel, series, ymax, xr, yfmt):
    ox, oy = origin
    lo_l, hi_l = xr

    def px(n):
        return ox + (math.log10(n) - lo_l) / (hi_l - lo_l) * PANEL_W

    def py(v):
        return oy + PANEL_H - min(v, ymax) / ymax * PANEL_H

    out.append('<text x="%d" y="%d" font-size="15" font-weight="bold">%s</text>'
               % (ox, oy - 18, esc(title)))
    out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#868e96"/>'
               % (ox, oy, PANEL_W, PANEL_H))
    for i in range(6):
        v = ymax * i / 5
        y = py(v)
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e9ecef"/>'
                   % (ox, y, ox + PANEL_W, y))
        out.append('<text x="%d" y="%.1f" font-size="11" text-anchor="end">%s</text>'
                   % (ox - 6, y + 4, yfmt(v)))
    for e in range(lo_l, hi_l + 1):
        for m in (1, 2, 5):
            n = m * 10 ** e
            if n < 10 ** lo_l or n > 10 ** hi_l:
                continue
            x = px(n)
            out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e9ecef"/>'
                       % (x, oy, x, oy + PANEL_H))
            label = "%dk" % (n // 1000) if n >= 1000 else str(n)
            out.append('<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>'
                       % (x, oy + PANEL_H + 16, label))
    out.append('<text x="%d" y="%d" font-size="12" text-anchor="middle">listeners (log scale)'
               '</text>' % (ox + PANEL_W // 2, oy + PANEL_H + 36))
    out.append('<text x="%d" y="%d" font-size="12" text-anchor="middle" '
               'transform="rotate(-90 %d %d)">%s</text>'
               % (ox - 48, oy + PANEL_H // 2, ox - 48, oy + PANEL_H // 2, esc(ylabel)))
    for name, color, pts in series:
        pts = [(n, v) for n, v in pts if v is not None and n > 0]
        if not pts:
            continue
        path = " ".join("%.1f,%.1f" % (px(n), py(v)) for n, v in pts)
        out.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2.5"/>'
                   % (path, color))
        for n, v in pts:
            out.append('<circle cx="%.1f" cy="%.1f" r="4" fill="%s"><title>%s N=%d: %s</title>'
                       '</circle>' % (px(n), py(v), color, esc(name), n, yfmt(v)))


def svg(result):
    summary = result["summary"]
    names = list(summary)
    colors = {n: COLORS.get(n, FALLBACK[i % len(FALLBACK)]) for i, n in enumerate(names)}
    ns = [r["n"] for s in summary.values() for r in s["steps"]] or [1000]
    xr = x_scale(ns)
    hearing = [(n, colors[n], [(r["n"], r["hearing_pct"]) for r in summary[n]["steps"]])
               for n in names]
    cpu = [(n, colors[n], [(r["n"], r["cpu_us_per_ls"]) for r in summary[n]["steps"]])
           for n in names]
    cmax = nice_max(max([v for _, _, pts in cpu for _, v in pts if v is not None] or [1]))
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" viewBox="0 0 %d %d">' % (W, H, W, H),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="22" font-size="13" fill="#495057">%s — %s</text>'
           % (LEFT[0], esc(result.get("label", "")), esc(result.get("timestamp", "")))]
    panel(out, LEFT, "Listeners hearing", "hearing %", hearing, 100.0, xr,
          lambda v: "%.0f" % v)
    panel(out, RIGHT, "Server CPU per listener-second", "CPU µs per listener-second", cpu,
          cmax, xr, lambda v: ("%.0f" if cmax >= 10 else "%.1f") % v)
    for i, n in enumerate(names):
        x = RIGHT[0] + PANEL_W - 150 + i * 80
        out.append('<rect x="%d" y="14" width="14" height="4" fill="%s"/>' % (x, colors[n]))
        out.append('<text x="%d" y="20" font-size="12">%s</text>' % (x + 18, esc(n)))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_svg(result, path):
    with open(path, "w") as f:
        f.write(svg(result))


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        result = json.load(f)
    write_svg(result, argv[2] if len(argv) > 2 else argv[1].rsplit(".", 1)[0] + ".svg")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
