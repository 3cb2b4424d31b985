#!/usr/bin/env python3
"""Median summary and an SVG chart of smtp-bench RESULT lines (Herald vs Postfix).

usage: summarize.py results.txt [chart.svg]
"""
import statistics
import sys
from collections import defaultdict


def parse(path):
    rows = []
    for line in open(path):
        if not line.startswith("RESULT") or "failed" in line.split()[1:2]:
            continue
        kv = dict(p.split("=", 1) for p in line.split()[1:] if "=" in p)
        rows.append(kv)
    return rows


def main():
    rows = parse(sys.argv[1])
    groups = defaultdict(list)
    for r in rows:
        groups[(r["messages"], r["sessions"], r["size"], r["label"])].append(r)
    cases = sorted({k[:3] for k in groups}, key=lambda c: (int(c[0]), int(c[1]), int(c[2])))
    med = lambda rs, f: statistics.median(float(r[f]) for r in rs)
    print(f"{'case':<22} {'mta':<8} {'runs':>4} {'accept/s':>9} {'relay/s':>8} {'PSS MB':>7} {'RSS MB':>7} lost dup")
    summary = {}
    for c in cases:
        for mta in ("postfix", "herald"):
            rs = groups.get(c + (mta,), [])
            if not rs:
                continue
            s = {f: med(rs, f) for f in ("accept_msgs_per_s", "relay_msgs_per_s", "peak_pss_kb", "peak_rss_kb")}
            s["lost"] = sum(int(r["lost"]) for r in rs)
            s["dup"] = sum(int(r["dup"]) for r in rs)
            summary[c + (mta,)] = s
            name = f"{c[0]}/{c[1]}/{int(c[2]) // 1024}KiB"
            print(f"{name:<22} {mta:<8} {len(rs):>4} {s['accept_msgs_per_s']:>9.0f} {s['relay_msgs_per_s']:>8.0f} "
                  f"{s['peak_pss_kb'] / 1024:>7.0f} {s['peak_rss_kb'] / 1024:>7.0f} {s['lost']:>4} {s['dup']:>3}")
        p, h = summary.get(c + ("postfix",)), summary.get(c + ("herald",))
        if p and h:
            print(f"{'':<22} ratio    accept {h['accept_msgs_per_s'] / p['accept_msgs_per_s']:.2f}x  "
                  f"relay {h['relay_msgs_per_s'] / p['relay_msgs_per_s']:.2f}x  "
                  f"PSS {h['peak_pss_kb'] / p['peak_pss_kb']:.2f}x")
    if len(sys.argv) > 2:
        chart(summary, cases, sys.argv[2])


def chart(summary, cases, path):
    """Grouped bars: accept and relay rate per case, Postfix vs Herald."""
    bars = []
    for c in cases:
        for metric in ("accept_msgs_per_s", "relay_msgs_per_s"):
            for mta in ("postfix", "herald"):
                s = summary.get(c + (mta,))
                if s:
                    bars.append((f"{c[0]}/{c[1]}/{int(c[2]) // 1024}K", metric.split("_")[0], mta, s[metric]))
    top = max(b[3] for b in bars) * 1.15
    w, h, left, bottom, bw = 120 + 60 * len(bars), 360, 60, 300, 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
           f'<text x="{left}" y="16" font-size="13">Messages per second (median of interleaved runs)</text>',
           f'<line x1="{left}" y1="{bottom}" x2="{w - 10}" y2="{bottom}" stroke="black"/>']
    for i, (case, metric, mta, v) in enumerate(bars):
        x = left + 10 + i * 60
        bh = (bottom - 30) * v / top
        color = "#c0504d" if mta == "postfix" else "#4f81bd"
        out.append(f'<rect x="{x}" y="{bottom - bh:.1f}" width="{bw}" height="{bh:.1f}" fill="{color}"/>')
        out.append(f'<text x="{x + bw / 2}" y="{bottom - bh - 4:.1f}" text-anchor="middle">{v:.0f}</text>')
        out.append(f'<text x="{x + bw / 2}" y="{bottom + 14}" text-anchor="middle">{mta}</text>')
        out.append(f'<text x="{x + bw / 2}" y="{bottom + 28}" text-anchor="middle">{metric}</text>')
        out.append(f'<text x="{x + bw / 2}" y="{bottom + 42}" text-anchor="middle">{case}</text>')
    out.append("</svg>")
    open(path, "w").write("\n".join(out))
    print(f"chart written to {path}")


if __name__ == "__main__":
    main()
