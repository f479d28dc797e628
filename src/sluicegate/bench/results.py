"""Result documents of ``sluicegate bench``: statistics, the JSON envelope, saving and loading.

Every command produces one :class:`Result`: tool version, machine, settings, raw samples
(``label -> metric -> [values]``), a summary computed from those samples and command-specific extras.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sluicegate

SCHEMA = 1

Samples = dict[str, dict[str, list[float]]]


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    frac = pos - lo
    return data[lo] + (data[hi] - data[lo]) * frac


def describe(values: list[float]) -> dict[str, float]:
    """The summary statistics printed and compared for one metric."""
    clean = [v for v in values if v is not None and not math.isnan(v)]
    if not clean:
        return {"n": 0}
    return {
        "n": len(clean),
        "median": percentile(clean, 50),
        "p25": percentile(clean, 25),
        "p75": percentile(clean, 75),
        "p90": percentile(clean, 90),
        "p99": percentile(clean, 99),
        "min": min(clean),
        "max": max(clean),
        "mean": sum(clean) / len(clean),
    }


def machine_info() -> dict[str, Any]:
    """Where the figures were measured."""
    try:
        load = list(os.getloadavg())
    except OSError:  # pragma: no cover - not on Linux
        load = []
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "hostname": socket.gethostname(),
        "loadavg_at_start": load,
    }


@dataclass
class Result:
    """One saved measurement (the JSON document written by ``--save``)."""

    command: str
    settings: dict[str, Any]
    samples: Samples = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=machine_info)
    created: str = field(
        default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    )
    version: str = sluicegate.__version__

    def add(self, label: str, metric: str, value: float | None) -> None:
        """Append one sample (``None`` = not measured for this run; skipped)."""
        series = self.samples.setdefault(label, {}).setdefault(metric, [])
        if value is not None:
            series.append(float(value))

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        return {
            label: {metric: describe(values) for metric, values in metrics.items()}
            for label, metrics in self.samples.items()
        }

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "schema": SCHEMA,
            "tool": "sluicegate bench",
            "version": self.version,
            "command": self.command,
            "created": self.created,
            "machine": self.machine,
            "settings": self.settings,
            "samples": self.samples,
            "summary": self.summary(),
            "extra": self.extra,
        }
        return dict(jsonable(doc))

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Result:
        if not isinstance(doc, dict) or "samples" not in doc or "command" not in doc:
            raise ValueError("not a sluicegate bench result (no 'command'/'samples')")
        return cls(
            command=str(doc["command"]),
            settings=dict(doc.get("settings", {})),
            samples={
                str(label): {str(m): [float(v) for v in vals] for m, vals in metrics.items()}
                for label, metrics in doc["samples"].items()
            },
            extra=dict(doc.get("extra", {})),
            machine=dict(doc.get("machine", {})),
            created=str(doc.get("created", "")),
            version=str(doc.get("version", "?")),
        )


def save_path(name: str) -> Path:
    """``--save NAME`` -> ``NAME`` if it already ends in ``.json``, else ``NAME.json``."""
    return Path(name if name.endswith(".json") else name + ".json")


def save(result: Result, name: str) -> Path:
    path = save_path(name)
    if path.parent != Path(""):
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_json(), indent=1, allow_nan=False, default=str) + "\n")
    return path


def load(path: str | Path) -> Result:
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    return Result.from_json(doc)


def jsonable(obj: Any) -> Any:
    """Replace NaN/inf floats by ``None`` so the document is strict JSON."""
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    return obj
