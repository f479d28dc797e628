"""Where the repository benchmarks write and how they print: results directory, JSON, statistics, tables.

Results go to ``bench/results/`` of the checkout (found from the working directory or this installed package;
``SLUICEGATE_BENCH_RESULTS`` overrides it), as ``<name>.json`` (+ plots) — gitignored.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sluicegate.bench.results import percentile


def repo_root() -> Path | None:
    """The sluicegate checkout the benchmarks run in (its ``pyproject.toml``), or ``None`` (installed wheel)."""
    for start in (Path.cwd(), Path(__file__).resolve()):
        for d in (start, *start.parents):
            if (d / "pyproject.toml").is_file() and (d / "src" / "sluicegate").is_dir():
                return d
    return None


def results_dir() -> Path:
    """``$SLUICEGATE_BENCH_RESULTS``, else ``<checkout>/bench/results``, else ``./bench-results``."""
    env = os.environ.get("SLUICEGATE_BENCH_RESULTS")
    if env:
        path = Path(env)
    else:
        root = repo_root()
        path = root / "bench" / "results" if root is not None else Path.cwd() / "bench-results"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(name: str, data: dict[str, Any]) -> Path:
    """``<results>/<name>.json`` (pretty, non-JSON values as strings)."""
    path = results_dir() / f"{name}.json"
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")
    return path


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def med(xs: Sequence[float]) -> float:
    ys = [x for x in xs if x == x]
    return statistics.median(ys) if ys else float("nan")


def pct(xs: Sequence[float], p: float) -> float:
    """Percentile ``p`` (0..100) of the non-NaN values; NaN when there are none."""
    return percentile([x for x in xs if x == x], p)


def summary(xs: Sequence[float]) -> dict[str, float | int]:
    ys = [x for x in xs if x == x]
    if not ys:
        return {"n": 0, "median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"n": len(ys), "median": statistics.median(ys), "p90": pct(ys, 90), "min": min(ys), "max": max(ys)}


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table (pasted into docs/*.md): floats rounded by magnitude, NaN as ``n/a``."""
    body = [[_cell(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    out = [line, sep]
    out += ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in body]
    return "\n".join(out)


def _cell(c: object) -> str:
    if isinstance(c, float):
        if c != c:
            return "n/a"
        return f"{c:,.0f}" if abs(c) >= 1000 else f"{c:.2f}" if abs(c) < 10 else f"{c:.1f}"
    return str(c)
