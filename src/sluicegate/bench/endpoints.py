"""``bench endpoints``: a TOML list of named endpoints, each measured like ``ttfb``; one breakdown table.

File format::

    base_url = "http://127.0.0.1:8080"   # joined with each endpoint's path (or give a full url)
    n = 10                               # requests per endpoint (the -n flag overrides)
    verify_tls = true
    [headers]                            # sent with every endpoint
    Accept-Language = "en"

    [[endpoint]]
    name = "home"
    path = "/"

    [[endpoint]]
    name = "search"
    method = "POST"
    path = "/api/search"
    headers = { Content-Type = "application/json" }
    body = '{"q": "shoes"}'
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

from sluicegate.bench.report import fmt_bytes, fmt_num, table
from sluicegate.bench.results import Result, describe
from sluicegate.bench.ttfb import RequestSpec

_ENDPOINT_KEYS = {"name", "method", "path", "url", "headers", "body"}


@dataclass
class Suite:
    path: str
    base_url: str
    n: int = 10
    verify_tls: bool = True
    specs: list[RequestSpec] = field(default_factory=list)

    def settings(self) -> dict[str, Any]:
        return {
            "config": self.path,
            "base_url": self.base_url,
            "verify_tls": self.verify_tls,
            "endpoints": [
                {"name": s.label, "method": s.method, "url": s.url, "headers": s.headers,
                 "body_bytes": len(s.body)}
                for s in self.specs
            ],
        }


def _str_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: must be a table of header names to strings")
    return {str(k): str(v) for k, v in value.items()}


def load_suite(path: str, base_url: str | None = None) -> Suite:
    with open(path, "rb") as fh:
        try:
            doc = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: {exc}") from exc
    base = base_url or str(doc.get("base_url", ""))
    n = doc.get("n", 10)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"{path}: n must be a positive integer")
    common = _str_map(doc.get("headers", {}), f"{path}: headers")
    items = doc.get("endpoint", [])
    if not isinstance(items, list) or not items:
        raise ValueError(f"{path}: no [[endpoint]] entries")
    suite = Suite(path=path, base_url=base, n=n, verify_tls=bool(doc.get("verify_tls", True)))
    seen: set[str] = set()
    for i, item in enumerate(items, 1):
        where = f"{path}: endpoint #{i}"
        unknown = set(item) - _ENDPOINT_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        name = str(item.get("name") or f"endpoint-{i}")
        if name in seen:
            raise ValueError(f"{where}: duplicate name {name!r}")
        seen.add(name)
        if "url" in item:
            url = str(item["url"])
        elif base:
            url = urljoin(base.rstrip("/") + "/", str(item.get("path", "/")).lstrip("/"))
        else:
            raise ValueError(f"{where}: needs 'url', or 'path' with a base_url")
        body = item.get("body", "")
        suite.specs.append(RequestSpec(
            url=url,
            label=name,
            method=str(item.get("method", "GET")).upper(),
            headers={**common, **_str_map(item.get("headers", {}), f"{where}: headers")},
            body=body.encode() if isinstance(body, str) else bytes(body),
        ))
    return suite


def render(result: Result, suite: Suite) -> str:
    rows = []
    for spec in suite.specs:
        metrics = result.samples.get(spec.label, {})
        statuses = result.extra.get("statuses", {}).get(spec.label, {})
        errors = {k: v for k, v in result.extra.get("errors", {}).get(spec.label, {}).items()
                  if not k.startswith("http_")}

        def med(metric: str, samples: dict[str, list[float]] = metrics) -> str:
            return fmt_num(describe(samples.get(metric, [])).get("median"), 2)

        total = describe(metrics.get("total_ms", []))
        rows.append([
            spec.label,
            f"{spec.method} {spec.url}",
            "/".join(sorted(statuses)) or "-",
            med("connect_ms"),
            med("tls_ms"),
            med("headers_ms"),
            med("first_byte_ms"),
            med("total_ms"),
            fmt_num(total.get("p90"), 2),
            fmt_bytes(describe(metrics.get("bytes", [])).get("median")),
            ", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "0",
        ])
    return table(
        ["endpoint", "request", "status", "connect", "TLS", "headers", "1st byte", "last byte", "p90 last",
         "bytes", "failed"],
        rows,
    ) + "\n(medians in ms since the start of each request, new connection each time)\n"
