"""``bench ttfb``: n sequential fresh-connection requests per URL, phase medians/p90 and cold-start detection."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sluicegate.bench.probe import Timing, probe
from sluicegate.bench.report import Progress, fmt_bytes, fmt_num, table
from sluicegate.bench.results import Result, describe, percentile

METRICS: tuple[tuple[str, str], ...] = (
    ("dns_ms", "DNS"),
    ("connect_ms", "TCP connect"),
    ("tls_ms", "TLS handshake"),
    ("headers_ms", "time to headers"),
    ("first_byte_ms", "first body byte"),
    ("total_ms", "last body byte"),
    ("bytes", "body bytes"),
)


@dataclass
class RequestSpec:
    """What to send; ``label`` names the series in the result (defaults to the URL)."""

    url: str
    label: str = ""
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def name(self) -> str:
        return self.label or self.url


@dataclass
class ColdStart:
    detected: bool
    first_ms: float
    rest_median_ms: float
    ratio: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "detected": self.detected,
            "metric": "headers_ms",
            "first_ms": self.first_ms,
            "rest_median_ms": self.rest_median_ms,
            "ratio": self.ratio,
        }


def detect_cold_start(
    values: Sequence[float], factor: float = 2.0, min_extra_ms: float = 10.0
) -> ColdStart | None:
    """The first request is a cold start when it took ``factor``x the median of the rest and at least
    ``min_extra_ms`` more (so sub-millisecond jitter on localhost never counts). Needs 3+ samples."""
    if len(values) < 3:
        return None
    first, rest = values[0], list(values[1:])
    med = percentile(rest, 50)
    ratio = first / med if med > 0 else float("inf")
    detected = ratio >= factor and first - med >= min_extra_ms
    return ColdStart(detected, first, med, ratio)


def record(result: Result, label: str, timing: Timing) -> None:
    """Add one probe to ``result``: raw run, samples (only completed responses) and error counts."""
    runs = result.extra.setdefault("runs", {}).setdefault(label, [])
    entry = timing.as_dict()
    entry.pop("response_headers", None)
    runs.append(entry)
    errors: dict[str, int] = result.extra.setdefault("errors", {}).setdefault(label, {})
    statuses: dict[str, int] = result.extra.setdefault("statuses", {}).setdefault(label, {})
    if timing.error is not None:
        errors[timing.error] = errors.get(timing.error, 0) + 1
        return
    statuses[str(timing.status)] = statuses.get(str(timing.status), 0) + 1
    if timing.status is not None and timing.status >= 400:
        kind = f"http_{timing.status // 100}xx"
        errors[kind] = errors.get(kind, 0) + 1
    for metric, _title in METRICS:
        value = getattr(timing, metric)
        result.add(label, metric, value)


async def run_specs(
    result: Result,
    specs: Sequence[RequestSpec],
    n: int,
    *,
    timeout: float = 30.0,
    verify_tls: bool = True,
    pause: float = 0.0,
    progress: Progress | None = None,
) -> None:
    """``n`` rounds; each round requests every spec once, the order reversed every other round so slow
    drift of the machine affects every URL alike."""
    total = n * len(specs)
    done = 0
    for spec in specs:  # every label exists even when all its requests fail
        for metric, _title in METRICS:
            result.samples.setdefault(spec.name(), {}).setdefault(metric, [])
    for i in range(n):
        order = list(specs) if i % 2 == 0 else list(reversed(specs))
        for spec in order:
            timing = await probe(
                spec.url,
                method=spec.method,
                headers=spec.headers,
                body=spec.body,
                timeout=timeout,
                verify_tls=verify_tls,
            )
            record(result, spec.name(), timing)
            done += 1
            if progress:
                progress.update(done / total, f"{done}/{total} {spec.name()[:50]}")
            if pause:
                await asyncio.sleep(pause)
    if progress:
        progress.done()
    finalize(result, [s.name() for s in specs])


def finalize(result: Result, labels: Sequence[str]) -> None:
    cold = result.extra.setdefault("cold_start", {})
    for label in labels:
        runs = [r for r in result.extra.get("runs", {}).get(label, []) if r["error"] is None]
        detection = detect_cold_start([float(r["headers_ms"]) for r in runs])
        cold[label] = detection.as_dict() if detection else None


def render(result: Result, labels: Sequence[str] | None = None) -> str:
    out: list[str] = []
    for label in labels or list(result.samples):
        metrics = result.samples.get(label, {})
        statuses = result.extra.get("statuses", {}).get(label, {})
        errors = result.extra.get("errors", {}).get(label, {})
        ok = sum(statuses.values())
        status_txt = ", ".join(f"{k}x{v}" for k, v in sorted(statuses.items())) or "none"
        head = f"{label}  ({ok} responses; status {status_txt}"
        failed = {k: v for k, v in errors.items() if not k.startswith("http_")}
        if failed:
            head += "; failed: " + ", ".join(f"{k} x{v}" for k, v in sorted(failed.items()))
        head += ")"
        out.append(head)
        cold = result.extra.get("cold_start", {}).get(label)
        if cold and cold["detected"]:
            out.append(
                f"  COLD START: first request {cold['first_ms']:.1f} ms to headers vs "
                f"{cold['rest_median_ms']:.1f} ms median of the rest ({cold['ratio']:.1f}x)"
            )
        rows = []
        for metric, title in METRICS:
            stats = describe(metrics.get(metric, []))
            if not stats["n"]:
                continue
            if metric == "bytes":
                rows.append([title, *(fmt_bytes(stats[k]) for k in ("median", "p90", "min", "max"))])
            else:
                rows.append([title + " ms", *(fmt_num(stats[k], 2) for k in ("median", "p90", "min", "max"))])
        if rows:
            out.append(table(["metric", "median", "p90", "min", "max"], rows))
        details = Counter(
            r["error_detail"] for r in result.extra.get("runs", {}).get(label, []) if r["error"]
        )
        for detail, count in details.most_common(3):
            out.append(f"  error x{count}: {detail}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
