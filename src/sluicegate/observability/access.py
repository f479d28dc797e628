"""Access log: one line per request, JSON or an nginx-``log_format``-like template of ``$field`` names.

Owns: the per-request record (``RequestInfo``, filled by the server wrapper and by each face), the field
names a template may use, and rendering a record to one line on the ``sluicegate.access`` logger.
Must not know how requests are served; secrets never reach it (faces fill in names, ids and counts only:
no header values besides ``user_agent``, no query strings, no bodies).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable
from typing import Any

access_log = logging.getLogger("sluicegate.access")

# Every field of a line, in JSON order; a template may use any of them as $name.
FIELDS = (
    "ts", "request_id", "face", "client_ip", "method", "host", "path", "status", "bytes_in", "bytes_out",
    "ttfb_ms", "duration_ms", "upstream_ms", "upstream_status", "route", "kind", "error", "model", "provider",
    "tokens_in", "tokens_out", "user_agent",
)
EXTRA_VARS = ("time_local",)  # template-only: nginx-style local time
COMBINED = ('$client_ip - - [$time_local] "$method $path" $status $bytes_out "$user_agent" '
            "rid=$request_id face=$face route=$route up=$upstream_status ms=$duration_ms")
_VAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def check_template(template: str) -> None:
    """Refuse a template naming an unknown field (called by config validation)."""
    if "\n" in template or "\r" in template:
        raise ValueError("an access_log template must be one line")
    names = _VAR.findall(template)
    if not names:
        raise ValueError('access_log is "json", "off", "auto", "combined" or a template using $fields')
    unknown = [n for n in names if n not in FIELDS and n not in EXTRA_VARS]
    if unknown:
        raise ValueError(f"unknown access_log field(s) {', '.join('$' + n for n in unknown)}; "
                         f"known: {', '.join(FIELDS + EXTRA_VARS)}")


class RequestInfo:
    """What one request did; the server wrapper creates it (``scope["sluicegate.info"]``), faces fill it."""

    __slots__ = (
        "bytes_in", "bytes_out", "client_ip", "error", "face", "host", "kind", "method", "model", "path",
        "provider", "request_id", "route", "started", "status", "tokens_in", "tokens_out", "ts", "ttfb",
        "upstream_s", "upstream_status", "user_agent",
    )

    def __init__(self, request_id: str, method: str, path: str, host: str, client_ip: str, user_agent: str) -> None:
        self.request_id = request_id
        self.method = method
        self.path = path
        self.host = host
        self.client_ip = client_ip
        self.user_agent = user_agent
        self.ts = time.time()
        self.started = time.perf_counter()
        self.face = "none"
        self.status = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.ttfb = -1.0  # seconds to the response head; -1: none sent
        self.upstream_s = -1.0  # seconds waiting for the upstream's response head; -1: no upstream answered
        self.upstream_status = 0
        self.route = ""
        self.kind = ""
        self.error = ""
        self.model = ""
        self.provider = ""
        self.tokens_in: int | None = None
        self.tokens_out: int | None = None

    def fields(self, duration: float) -> dict[str, Any]:
        return {
            "ts": _iso(self.ts),
            "request_id": self.request_id,
            "face": self.face,
            "client_ip": self.client_ip,
            "method": self.method,
            "host": self.host,
            "path": self.path,
            "status": self.status,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "ttfb_ms": round(self.ttfb * 1000, 3) if self.ttfb >= 0 else None,
            "duration_ms": round(duration * 1000, 3),
            "upstream_ms": round(self.upstream_s * 1000, 3) if self.upstream_s >= 0 else None,
            "upstream_status": self.upstream_status or None,
            "route": self.route or None,
            "kind": self.kind or None,
            "error": self.error or None,
            "model": self.model or None,
            "provider": self.provider or None,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "user_agent": self.user_agent or None,
        }


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def _json_line(info: RequestInfo, duration: float) -> str:
    return json.dumps(info.fields(duration), separators=(",", ":"), ensure_ascii=False)


def _template_renderer(template: str) -> Callable[[RequestInfo, float], str]:
    parts = _VAR.split(template)  # literal, name, literal, name, ...

    def render(info: RequestInfo, duration: float) -> str:
        values = info.fields(duration)
        out = []
        for i, part in enumerate(parts):
            if i % 2 == 0:
                out.append(part)
            elif part == "time_local":
                out.append(time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(info.ts)))
            else:
                value = values[part]
                out.append("-" if value is None or value == "" else _safe(str(value)))
        return "".join(out)

    return render


def _safe(value: str) -> str:
    """Template values cannot break the line or the quoting (user agents are client-controlled)."""
    if value.isprintable() and '"' not in value and "\\" not in value:
        return value
    return "".join(c if c.isprintable() and c not in '"\\' else f"\\x{ord(c):02x}" for c in value)


def renderer(setting: bool | str, isatty: bool | None = None) -> Callable[[RequestInfo, float], str] | None:
    """The line renderer for ``[server] access_log``; ``None`` = off."""
    if setting is False or setting == "off":
        return None
    if setting is True or setting == "auto":
        tty = sys.stdout.isatty() if isatty is None else isatty
        setting = "combined" if tty else "json"
    if setting == "json":
        return _json_line
    return _template_renderer(COMBINED if setting == "combined" else str(setting))


def setup_access_logger() -> None:
    """Lines go to stdout, one write each (whole lines: several workers share the stream), nothing else."""
    if not access_log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    access_log.propagate = False
