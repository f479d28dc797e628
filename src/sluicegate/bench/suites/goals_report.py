"""What ``bench goals`` prints and writes: the goals table (figure, goal, met), the per-target serving figures with
the CPU of every process, the JSON document and the PNG plot (ratio to goal per row, a line at 1.0).

Reads only the result dictionary ``suites/goals.py`` builds; matplotlib is optional (no plot without it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sluicegate.bench import lab

SHORT = {"passthrough_2k": "PassThrough 2 KB vs nginx", "passthrough_200k": "PassThrough 200 KB vs nginx",
         "stream_html_2k_gzip": "Stream HTML 2 KB, gzip origin, vs nginx",
         "stream_html_200k_vs_rewriter": "Stream HTML 200 KB / (rewriter x 2)",
         "rewriter_alone_compiled": "Rewriter alone 500 KB (text on, inject), compiled",
         "rewriter_alone_pure": "Rewriter alone 500 KB (text on, inject), pure",
         "added_ttfb_rewritten": "Added TTFB, rewritten page, p50",
         "inference_streams_vs_baseline": "Inference streams/s per worker vs baseline"}


def figure_text(row: dict[str, Any]) -> str:
    x, unit = row["figure"], row["unit"]
    if x != x:
        return "n/a"
    if unit.startswith("x ") or unit.startswith("of "):
        return f"{x:.3f}x"
    if unit == "ms":
        return f"{x:+.3f} ms"
    if unit.startswith("MB/s"):
        return f"{x:.1f} MB/s"
    return f"{x:,.0f} {unit}"


def goal_text(row: dict[str, Any]) -> str:
    g = row["goal"]
    if row["unit"] == "ms":
        return f"<= {g:g} ms p50"
    if row["unit"].startswith("MB/s"):
        return f">= {g:g} MB/s"
    if row["id"] == "inference_streams_vs_baseline":
        return f">= {g:g}x baseline"
    return f">= {g:g}x"


def met_text(row: dict[str, Any]) -> str:
    return "not measured" if row["met"] is None else ("yes" if row["met"] else "no")


def note_text(row: dict[str, Any]) -> str:
    d = row["detail"]
    if "sluicegate_w2" in d and "ratio_per_round" in d:
        sg, ng = d["sluicegate_w2"], d["nginx_w2"]
        return (f"{sg['rps']:,.0f} vs {ng['rps']:,.0f} req/s; per round "
                + "/".join(f"{r:.2f}" for r in d["ratio_per_round"])
                + f"; CPU µs/req {sg['proxy_cpu_us_per_req']:.0f} vs {ng['proxy_cpu_us_per_req']:.0f}")
    if "route_mb_per_s" in d:
        return (f"route {d['route_mb_per_s']:.1f} MB/s, rewriter alone {d['rewriter_alone_mb_per_s_cpu']:.1f} MB/s "
                f"CPU x {d['workers']}; by CPU: rewriter / route per page "
                f"{d['cpu_companion_rewriter_us_over_route_cpu_us_per_req']:.2f}")
    if "mb_per_s_cpu_per_round" in d:
        off = d.get("text_off_mb_per_s_cpu")  # row 5's companion: the same page with text rewriting off
        return ("per round " + " / ".join(f"{x:.1f}" for x in d["mb_per_s_cpu_per_round"]) + f"; {d['build']}"
                + (f"; text off {off:.1f}" if off else ""))
    if "added_first_body_ms" in d:
        a = d["added_first_body_ms"]
        text = (f"{d['pairs']} pairs, range {a['min']:+.2f}..{a['max']:+.2f} ms; per round "
                + " / ".join(f"{x:+.2f}" for x in d["added_median_per_round"]))
        if d.get("pass_added_first_body_ms"):  # (runs before the PassThrough reference have neither)
            text += f"; PassThrough of the same bytes {d['pass_added_first_body_ms']['median']:+.2f} ms"
        cpu = d.get("proxy_cpu_to_first_body_us") or {}
        if "stream" in cpu and "pass" in cpu:
            text += f"; worker CPU to 1st byte {cpu['stream']:.0f} / {cpu['pass']:.0f} µs (stream / pass)"
        return text
    if "baseline" in d:
        t, b = d["this_build"], d["baseline"]
        mine, old = t["gateway_cpu_ms_per_stream_by_rate"], b["gateway_cpu_ms_per_stream_by_rate"]
        per_rate = ", ".join(f"{r}/s {mine[r] / old[r]:.2f}" for r in mine if old.get(r))
        kept = d.get("ratio_where_both_kept_up")
        return (f"vs {b['rev']}: CPU per stream this / baseline by rate {per_rate}"
                + (f"; {kept:.2f}x where both kept up" if kept else "")
                + f"; SLO-sustainable {t['sustainable_streams_per_s']:g} vs {b['sustainable_streams_per_s']:g}/s")
    if "this_build" in d:
        t = d["this_build"]
        return (f"{row.get('note', '')}; SLO-sustainable {t['sustainable_streams_per_s']:g} streams/s, "
                f"added TTFB p50 {t['added_ttfb_p50_ms']:.3f} ms")
    return ""


def goals_table(result: dict[str, Any]) -> str:
    return lab.table(["#", "row", "figure", "goal", "met", "÷ goal", "detail"],
                     [[r["issue_row"], r["label"], figure_text(r), goal_text(r), met_text(r),
                       "-" if r["ratio_to_goal"] is None else f"{r['ratio_to_goal']:.2f}", note_text(r)]
                      for r in result["rows"]])


def serving_table(result: dict[str, Any]) -> str:
    rows = []
    for r in result["rows"]:
        d = r["detail"]
        for target in ("nginx_w2", "sluicegate_w2"):
            c = d.get(target)
            if c is None:
                continue
            pc = c["cpu_pct_of_one_core"]
            rows.append([d["path"], target.replace("_", "-"), f"{c['rps']:,.0f}", c["p50_ms"], c["p99_ms"],
                         f"{c['proxy_cpu_us_per_req']:.1f}", f"{pc['proxy']:.0f}", f"{pc['origin']:.0f}",
                         f"{pc['wrk']:.0f}", f"{pc['foreign']:.0f}", f"{c['loadavg_1m']:.2f}",
                         "; ".join(e for e in c["socket_errors"] if "timeout 0" not in e) or "-"])
    return lab.table(["page", "target", "req/s", "p50 ms", "p99 ms", "proxy CPU µs/req", "proxy CPU%", "origin CPU%",
                      "wrk CPU%", "foreign CPU%", "load 1m", "socket errors"], rows)


def render(result: dict[str, Any]) -> str:
    met = [r for r in result["rows"] if r["met"]]
    judged = [r for r in result["rows"] if r["met"] is not None]
    lb, la = result["load_average_before"], result["load_average_after"]
    return "\n".join([
        f"\nIssue 19 goals, one run ({result['started']}, {result['elapsed_s']:.0f} s; load average 1/5/15 min "
        f"before {lb[0]:.2f}/{lb[1]:.2f}/{lb[2]:.2f}, after {la[0]:.2f}/{la[1]:.2f}/{la[2]:.2f}); medians of "
        f"{result['options']['rounds']} rounds\n",
        goals_table(result),
        f"\n{len(met)} of {len(judged)} measured goals met.",
        "\nServing figures, 2 workers each (medians of rounds; CPU % of one core during each wrk run)\n",
        serving_table(result),
        "\nWall-clock figures were taken on a shared machine: read them with the load and the foreign CPU above.",
    ])


def _finite(x: Any) -> Any:
    """Strict JSON: NaN and infinities (a TTFB at or below 0 has an infinite ratio to its goal) become null."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def write(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(result), indent=1, default=str, allow_nan=False) + "\n")
    plot(result, path.with_suffix(".png"))


def plot(result: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot", flush=True)
        return
    rows = result["rows"]
    finite = [r["ratio_to_goal"] for r in rows if r["ratio_to_goal"] is not None and math.isfinite(r["ratio_to_goal"])]
    cap = max([1.2, *finite]) * 1.1
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(rows) + 1.6))
    labels = [f"{r['issue_row']}. {SHORT.get(r['id'], r['label'])}" for r in rows][::-1]
    for y, r in enumerate(rows[::-1]):
        ratio = r["ratio_to_goal"]
        if ratio is None and r["met"]:  # a TTFB at or below 0 (saved as null): met, beyond any scale
            ratio = math.inf
        text = f"{figure_text(r)} (goal {goal_text(r)})"
        if ratio is None:
            ax.text(0.02, y, f"{text}: ratio not measured", va="center", fontsize=8, color="grey")
            continue
        shown = min(ratio, cap) if ratio == ratio else 0.0
        ax.barh(y, shown, color="#2e8b57" if r["met"] else "#c0392b", height=0.6)
        ax.text(shown + cap * 0.01, y, text, va="center", fontsize=8,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlim(0, cap * 1.6)
    ax.set_xlabel("figure / goal (TTFB: goal / figure); 1.0 = goal met", fontsize=9)
    lb, la = result["load_average_before"], result["load_average_after"]
    ax.set_title(f"Issue 19 goals, one run, {result['started']}: medians of {result['options']['rounds']} rounds\n"
                 f"load average (1 min) {lb[0]:.1f} before, {la[0]:.1f} after; wall-clock ratios under that load",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
