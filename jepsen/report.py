"""Run reports: the minimal witness, timeline.html and latency/throughput PNGs.

Fault windows are drawn on every view, so an anomaly can be read against the fault
that caused it without cross-referencing timestamps by hand.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from jepsen.checkers.result import INVALID, CheckResult
from jepsen.history import INF, Op

COLORS = {"ok": "#4caf50", "fail": "#f44336", "info": "#ff9800"}
# One colour per nemesis kind (jepsen/nemesis.py SHAPES), so no fault is drawn grey;
# a test pins that every kind has one. The legend is drawn from this table.
FAULT_COLORS = {
    "kill": "#e57373",
    "pause": "#64b5f6",
    "partition": "#ffd54f",
    "link": "#ba68c8",
    "clock": "#4db6ac",
    "membership": "#a1887f",
    "leader": "#7986cb",
    "stall-kill": "#f06292",
    "lag-elect": "#ff8a65",
    "failpoint": "#90a4ae",
    "hostile": "#aed581",
}
UNKNOWN_FAULT = "#cccccc"


def legend_html(kinds: list[str]) -> str:
    """A swatch per fault kind present in the run, labelled."""
    items = [
        f"<span style='display:inline-block;width:12px;height:12px;margin:0 4px 0 10px;"
        f"vertical-align:middle;background:{FAULT_COLORS.get(k, UNKNOWN_FAULT)}'></span>"
        f"{html.escape(k)}"
        for k in kinds
    ]
    return "<p>faults:" + "".join(items) + "</p>" if items else "<p>faults: none</p>"


def witness(results: list[CheckResult], windows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first invalid checker's witness plus the faults within ±5 s of it."""
    for r in results:
        if r.verdict != INVALID:
            continue
        w = r.details.get("witness", r.details)
        times = _times(w)
        near = [
            win
            for win in windows
            if times and win["start"] - 5 <= max(times) and win["stop"] + 5 >= min(times)
        ]
        return {"checker": r.name, "witness": w, "nemesis_within_5s": near}
    return None


def format_witness(w: dict[str, Any]) -> str:
    """One line per fact: nested op lists become one compact JSON op per line."""
    lines = [f"witness ({w['checker']}):"]

    def walk(obj: Any, label: str) -> None:
        if isinstance(obj, dict) and "f" in obj and "call" in obj:
            lines.append(f"    {label}: {json.dumps(obj, default=str)}")
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, k)
        elif isinstance(obj, list):
            for v in obj:
                walk(v, label)
        else:
            lines.append(f"  {label}: {obj}")

    walk(w["witness"], "")
    for win in w["nemesis_within_5s"]:
        lines.append(f"  nemesis: {json.dumps(win)}")
    if not w["nemesis_within_5s"]:
        lines.append("  nemesis: no fault within 5 s")
    return "\n".join(lines)


def _times(obj: Any) -> list[float]:
    out: list[float] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("call", "ret") and isinstance(v, int | float):
                out.append(float(v))
            else:
                out += _times(v)
    elif isinstance(obj, list):
        for v in obj:
            out += _times(v)
    return out


def render(
    out: Path, ops: list[Op], windows: list[dict[str, Any]], summary: dict[str, Any]
) -> None:
    end = max([o.call for o in ops] + [o.ret for o in ops if o.ret != INF] + [1.0])
    _timeline(out / "timeline.html", ops, windows, end, summary)
    _plots(out, ops, windows, end)


def _timeline(
    path: Path, ops: list[Op], windows: list[dict[str, Any]], end: float, summary: dict[str, Any]
) -> None:
    px = 1200 / end
    procs = sorted({o.process for o in ops})
    row = {p: i for i, p in enumerate(procs)}
    h = 18 * len(procs) + 30
    parts = [
        "<!doctype html><meta charset=utf-8><title>raftkv jepsen timeline</title>",
        "<style>body{font:12px sans-serif}.op{position:absolute;height:14px;opacity:.8}"
        ".f{position:absolute;top:0;opacity:.25}.lab{position:absolute;left:0;width:60px}</style>",
        f"<h3>{html.escape(summary['dir'])}: {summary['verdict'].upper()}</h3>",
        "<p>"
        + " | ".join(
            html.escape(f"{c['name']}: {c['verdict']} {c['summary']}") for c in summary["checkers"]
        )
        + "</p>",
        "<p>ops: ok=green fail=red info=orange (runs to the end)</p>",
        legend_html(sorted({w["kind"] for w in windows})),
        f"<div style='position:relative;height:{h}px;margin-left:70px;width:1220px'>",
    ]
    for w in windows:
        left, width = w["start"] * px, max(2.0, (w["stop"] - w["start"]) * px)
        parts.append(
            f"<div class=f title='{html.escape(str(w))}' "
            f"style='left:{left:.0f}px;width:{width:.0f}px;"
            f"height:{h}px;background:{FAULT_COLORS.get(w['kind'], UNKNOWN_FAULT)}'></div>"
        )
    for p in procs:
        parts.append(f"<div class=lab style='top:{row[p] * 18}px;left:-70px'>p{p}</div>")
    for o in ops:
        ret = end if o.ret == INF else o.ret
        title = html.escape(
            f"{o.f} {o.key} {o.value} -> {o.type} {o.result or ''} {o.error or ''}"
            f" [{o.call:.3f}, {ret:.3f}] {o.node}"
        )
        parts.append(
            f"<div class=op title='{title}' style='top:{row[o.process] * 18}px;"
            f"left:{o.call * px:.1f}px;width:{max(1.0, (ret - o.call) * px):.1f}px;"
            f"background:{COLORS[o.type]}'></div>"
        )
    parts.append("</div>")
    path.write_text("\n".join(parts))


def _plots(out: Path, ops: list[Op], windows: list[dict[str, Any]], end: float) -> None:
    try:
        import matplotlib
    except ImportError:  # the optional `jepsen` extra: the HTML timeline still works
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def bands(ax: Any) -> None:
        seen_kinds: set[str] = set()  # one legend entry per fault kind
        for w in windows:
            ax.axvspan(
                w["start"],
                w["stop"],
                color=FAULT_COLORS.get(w["kind"], UNKNOWN_FAULT),
                alpha=0.3,
                label=w["kind"] if w["kind"] not in seen_kinds else None,
            )
            seen_kinds.add(w["kind"])

    fig, ax = plt.subplots(figsize=(10, 4))
    bands(ax)
    for t in ("ok", "fail", "info"):
        pts = [(o.call, (o.ret - o.call) * 1000) for o in ops if o.type == t and o.ret != INF]
        if t == "info":
            pts = [(o.call, 0.0) for o in ops if o.type == t and o.ret == INF] + pts
        if pts:
            ax.scatter(*zip(*pts, strict=True), s=4, color=COLORS[t], label=t)
    ax.set_yscale("symlog")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("latency (ms)")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 3))
    bands(ax)
    nbins = max(1, int(end) + 1)
    for t in ("ok", "fail", "info"):
        counts = [0] * nbins
        for o in ops:
            if o.type == t:
                counts[min(nbins - 1, int(o.call))] += 1
        ax.plot(range(nbins), counts, color=COLORS[t], label=t)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("ops/s")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=90)
    plt.close(fig)
