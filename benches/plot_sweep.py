#!/usr/bin/env python3
"""Plot a loadgen sweep report as an SVG: latency percentiles against the
number of students (log-scale latency axis). Python standard library only.

    python3 benches/plot_sweep.py sweep.json docs/perf/sweep.svg
"""

import html
import json
import math
import sys

W, H = 760, 460
LEFT, RIGHT, TOP, BOTTOM = 70, 190, 40, 60

SERIES = [
    # (label, op, field, colour, dashed)
    ("echo p50", "echo", "p50_ms", "#9ecae1", False),
    ("echo p95", "echo", "p95_ms", "#4292c6", False),
    ("echo p99", "echo", "p99_ms", "#08306b", False),
    ("save p99", "save", "p99_ms", "#e6550d", True),
    ("run→first output p99", "run_first_output", "p99_ms", "#31a354", True),
]


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        sweep = json.load(f)
    steps = sweep.get("steps", [])
    if not steps:
        print("no steps in the sweep report", file=sys.stderr)
        return 1
    limit = float(sweep.get("echo_p99_limit_ms", 50))
    xs = [s["students"] for s in steps]
    values = [
        max(s["ops"][op][field], 0.01) for s in steps for _, op, field, _, _ in SERIES
    ]
    lo = 10 ** math.floor(math.log10(min(values + [1.0])))
    hi = 10 ** math.ceil(math.log10(max(values + [limit * 2])))
    xmin, xmax = 0, max(xs) * 1.05
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def sx(x):
        return LEFT + (x - xmin) / (xmax - xmin) * pw

    def sy(v):
        v = max(v, lo)
        return TOP + ph - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{LEFT}" y="22" font-size="15" font-weight="bold">'
        f"Campus latency vs students ({sweep.get('duration_s_per_step', 0):.0f} s per step)</text>",
    ]
    # Grid: decades and their 2x/5x on y; students on x.
    d = lo
    while d <= hi * 1.0001:
        for m in (1, 2, 5):
            v = d * m
            if v > hi * 1.0001:
                break
            y = sy(v)
            major = m == 1
            out.append(
                f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" '
                f'stroke="{"#ccc" if major else "#eee"}"/>'
            )
            label = f"{v:g}"
            out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
        d *= 10
    step = nice_step(xmax)
    x = 0
    while x <= xmax:
        out.append(f'<line x1="{sx(x):.1f}" y1="{TOP + ph}" x2="{sx(x):.1f}" y2="{TOP + ph + 5}" stroke="#333"/>')
        out.append(f'<text x="{sx(x):.1f}" y="{TOP + ph + 18}" text-anchor="middle">{x}</text>')
        x += step
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{H - 15}" text-anchor="middle">active students</text>')
    out.append(
        f'<text x="18" y="{TOP + ph / 2}" text-anchor="middle" '
        f'transform="rotate(-90 18 {TOP + ph / 2})">latency, ms (log scale)</text>'
    )
    # Thresholds: the echo p99 target (10 ms) and the knee limit.
    for v, text in ((10.0, "echo p99 target 10 ms"), (limit, f"knee limit {limit:g} ms")):
        if lo <= v <= hi:
            out.append(
                f'<line x1="{LEFT}" y1="{sy(v):.1f}" x2="{LEFT + pw}" y2="{sy(v):.1f}" '
                f'stroke="#c00" stroke-dasharray="2,3"/>'
            )
            out.append(f'<text x="{LEFT + pw - 4}" y="{sy(v) - 4:.1f}" text-anchor="end" fill="#c00">{text}</text>')
    for i, (label, op, field, colour, dashed) in enumerate(SERIES):
        pts = [(sx(s["students"]), sy(s["ops"][op][field])) for s in steps]
        dash = ' stroke-dasharray="6,4"' if dashed else ""
        out.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="'
            + " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
            + '"/>'
        )
        for px, py in pts:
            out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>')
        ly = TOP + 10 + i * 20
        lx = LEFT + pw + 15
        out.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 24}" y2="{ly}" stroke="{colour}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{lx + 30}" y="{ly + 4}">{html.escape(label)}</text>')
    # Steps with unexpected errors are marked.
    for s in steps:
        if s.get("unexpected_errors", 0) > 0:
            px = sx(s["students"])
            out.append(f'<text x="{px:.1f}" y="{TOP + 14}" text-anchor="middle" fill="#c00">errors</text>')
    knee = sweep.get("knee")
    notes = [f"knee: {knee} students" if knee else "no knee within the sweep"]
    if sweep.get("last_ok"):
        notes.append(f"last passing: {sweep['last_ok']}")
    for j, note in enumerate(notes):
        y = TOP + 10 + (len(SERIES) + j) * 20 + 10
        out.append(f'<text x="{LEFT + pw + 15}" y="{y}">{html.escape(note)}</text>')
    out.append("</svg>")
    with open(argv[2], "w") as f:
        f.write("\n".join(out) + "\n")
    return 0


def nice_step(span):
    raw = span / 8
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return int(m * mag) or 1
    return int(10 * mag)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
