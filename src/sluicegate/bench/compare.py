"""``bench compare``: per-metric deltas between two results (or two series of one), a noise verdict, plots.

Verdict per metric, from the raw samples: ``clear`` when the two min-max ranges do not overlap,
``likely`` when only the interquartile ranges (p25-p75) are disjoint, ``noise`` when those overlap,
``n<2`` when a side has fewer than two samples. PNG plots need matplotlib (imported lazily).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sluicegate.bench.report import fmt_num, table
from sluicegate.bench.results import Result, describe


class PlotUnavailable(Exception):
    pass


@dataclass
class Row:
    label: str
    metric: str
    n_a: int
    n_b: int
    median_a: float
    median_b: float
    delta: float
    delta_pct: float | None
    verdict: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verdict(a: list[float], b: list[float]) -> str:
    if len(a) < 2 or len(b) < 2:
        return "n<2"
    sa, sb = describe(a), describe(b)
    if sa["max"] < sb["min"] or sb["max"] < sa["min"]:
        return "clear"
    if sa["p75"] < sb["p25"] or sb["p75"] < sa["p25"]:
        return "likely"
    return "noise"


def compare_series(label: str, metric: str, a: list[float], b: list[float]) -> Row | None:
    if not a or not b:
        return None
    ma, mb = describe(a)["median"], describe(b)["median"]
    delta = mb - ma
    pct = delta / ma * 100.0 if ma else None
    return Row(label, metric, len(a), len(b), ma, mb, delta, pct, verdict(a, b))


def compare_labels(a: Result, la: str, b: Result, lb: str, metrics: Sequence[str] | None = None) -> list[Row]:
    sa, sb = a.samples.get(la, {}), b.samples.get(lb, {})
    names = list(metrics) if metrics else [m for m in sa if m in sb]
    label = la if la == lb else f"{la} -> {lb}"
    rows = []
    for metric in names:
        row = compare_series(label, metric, sa.get(metric, []), sb.get(metric, []))
        if row is not None:
            rows.append(row)
    return rows


def pair_labels(a: Result, b: Result) -> list[tuple[str, str]]:
    """Same-named series pair up; otherwise series pair by position when both have as many."""
    common = [label for label in a.samples if label in b.samples]
    if common:
        return [(label, label) for label in common]
    if len(a.samples) == len(b.samples):
        return list(zip(a.samples, b.samples, strict=True))
    return []


def compare_results(a: Result, b: Result) -> list[Row]:
    rows: list[Row] = []
    for la, lb in pair_labels(a, b):
        rows.extend(compare_labels(a, la, b, lb))
    return rows


def render(rows: Sequence[Row], name_a: str, name_b: str, show_label: bool = True) -> str:
    headers = (["series"] if show_label else []) + [
        "metric", "n A/B", "median A", "median B", "delta", "delta %", "verdict"
    ]
    body = []
    for r in rows:
        body.append(([r.label] if show_label else []) + [
            r.metric,
            f"{r.n_a}/{r.n_b}",
            fmt_num(r.median_a, 2),
            fmt_num(r.median_b, 2),
            ("+" if r.delta > 0 else "") + fmt_num(r.delta, 2),
            "-" if r.delta_pct is None else f"{r.delta_pct:+.1f} %",
            r.verdict,
        ])
    legend = (
        f"A = {name_a}\nB = {name_b}\n"
        "verdict: clear = min-max ranges disjoint, likely = p25-p75 ranges disjoint, noise = they overlap"
    )
    return table(headers, body) + "\n" + legend


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80] or "series"


def plot(a: Result, b: Result, out_dir: str, name_a: str, name_b: str) -> list[Path]:
    """Per pair of series: ``<series>-distributions.png`` (box + points per metric) and
    ``<series>-runs.png`` (value per run, in measurement order)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotUnavailable("--plot needs matplotlib: pip install matplotlib") from exc
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for la, lb in pair_labels(a, b):
        metrics = [m for m in a.samples[la] if m in b.samples[lb] and a.samples[la][m] and b.samples[lb][m]]
        if not metrics:
            continue
        series = _safe(la if la == lb else f"{la}_vs_{lb}")
        cols = min(3, len(metrics))
        rows_n = (len(metrics) + cols - 1) // cols
        for kind in ("distributions", "runs"):
            fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 3.2 * rows_n), squeeze=False)
            for i, metric in enumerate(metrics):
                ax = axes[i // cols][i % cols]
                va, vb = a.samples[la][metric], b.samples[lb][metric]
                if kind == "distributions":
                    ax.boxplot([va, vb], tick_labels=["A", "B"], showfliers=False)
                    for x, all_vals in ((1, va), (2, vb)):
                        vals = all_vals[:: max(1, len(all_vals) // 400)]  # thin big sets for the dots
                        step = 0.3 / max(1, len(vals))
                        ax.scatter([x - 0.15 + step * j for j in range(len(vals))], vals, s=6, alpha=0.5)
                else:
                    ax.plot(range(1, len(va) + 1), va, marker=".", label="A")
                    ax.plot(range(1, len(vb) + 1), vb, marker=".", label="B")
                    ax.set_xlabel("run")
                    ax.legend(fontsize=7)
                ax.set_title(metric, fontsize=9)
                ax.tick_params(labelsize=7)
            for j in range(len(metrics), rows_n * cols):
                axes[j // cols][j % cols].axis("off")
            fig.suptitle(f"{series}\nA = {Path(name_a).name}   B = {Path(name_b).name}", fontsize=9)
            fig.tight_layout()
            path = out / f"{series}-{kind}.png"
            fig.savefig(path, dpi=90)
            plt.close(fig)
            written.append(path)
    return written
