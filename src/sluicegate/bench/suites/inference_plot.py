"""The plot of an ``inference`` run: per offered rate, p95 TTFB and stream duration against the SLO, and the
gateway's CPU per stream, for this tree and (when measured alongside) the other gateway.

Reads only the result dictionary ``suites/inference.py`` writes; matplotlib is optional (no plot without it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _series(streams: dict[str, Any], key: str) -> tuple[list[float], list[float]]:
    xs = [st["via_gateway"]["offered_per_s"] for st in streams["ladder"]]
    ys = [st["via_gateway"][key] for st in streams["ladder"]]
    return xs, ys


def plot(result: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot", flush=True)
        return
    runs = [(f"this tree ({result.get('after_core', '')})", result["streams"])]
    if "before" in result:
        runs.insert(0, (f"before ({str(result['before']['rev'])[:24]})", result["before"]["streams"]))
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.4))
    for (name, streams), color in zip(runs, ("tab:gray", "tab:blue"), strict=False):
        xs, ttfb = _series(streams, "p95_ttfb_ms")
        _, dur = _series(streams, "p95_duration_ms")
        ax1.plot(xs, ttfb, "o-", color=color, label=f"{name} p95 TTFB")
        ax1.plot(xs, dur, "s--", color=color, label=f"{name} p95 duration")
        _, cpu = _series(streams, "gateway_cpu_ms_per_stream")
        ax2.plot(xs, cpu, "o-", color=color, label=f"{name} (sustainable {streams['sustainable_streams_per_s']:.0f}/s)")
        busy = [st["via_gateway"].get("cpu_busy", {}).get("gateway", 0.0) for st in streams["ladder"]]
        ax3.plot(xs, busy, "o-", color=color, label=f"{name} gateway")
    last = result["streams"]["ladder"]
    xs = [st["via_gateway"]["offered_per_s"] for st in last]
    for proc, style in (("mock", ":"), ("loadgen", "-.")):
        ax3.plot(xs, [st["via_gateway"].get("cpu_busy", {}).get(proc, 0.0) for st in last], style, color="tab:orange"
                 if proc == "mock" else "tab:green", label=f"{proc} (this tree's rounds)")
    ax1.axhline(100, color="red", lw=0.8)
    ax1.axhline(200, color="red", lw=0.8, ls="--")
    ax1.set(xlabel="offered streams/s", ylabel="ms", title="SLO: p95 TTFB <= 100, duration <= 200", yscale="log")
    ax2.set(xlabel="offered streams/s", ylabel="gateway CPU ms per stream", title="gateway CPU per stream",
            ylim=(0, None))
    ax3.set(xlabel="offered streams/s", ylabel="cores busy", title="CPU busy per process (1.0 = one core)",
            ylim=(0, None))
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"inference relay, litellm-bench protocol, 1 gateway worker ({result['when']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}", flush=True)
