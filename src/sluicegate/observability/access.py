"""Access log: one line per request, JSON or an nginx-``log_format``-like template of ``$field`` names.

Owns: the per-request record (``RequestInfo``, filled by the server wrapper and by each face), the field
names a template may use, rendering a record to one line, and ``AccessWriter``: lines go to stdout in
batches of whole lines (at most ``BATCH_BYTES`` per write, so lines from several workers sharing one pipe
never interleave) at most ``FLUSH_S`` after they were logged, and at shutdown. A per-line ``logging`` call
plus a write per request cost more than the rest of the access log together (sluicegate bench observability).
Must not know how requests are served; secrets never reach it (faces fill in names, ids and counts only:
no header values besides ``user_agent``, no query strings, no bodies).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import stat
import sys
import time
from collections.abc import Callable
from json.encoder import encode_basestring  # C-accelerated JSON string quoting
from typing import Any

COMBINED = ('$client_ip - - [$time_local] "$method $path" $status $bytes_out "$user_agent" '
            "rid=$request_id face=$face route=$route up=$upstream_status ms=$duration_ms")
_VAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


class RequestInfo:
    """What one request did; the server wrapper creates it (``scope["sluicegate.info"]``), faces fill it."""

    __slots__ = (
        "bytes_in", "bytes_out", "client_ip", "error", "face", "host", "kind", "method", "model", "path",
        "provider", "request_id", "route", "span", "started", "status", "tokens_in", "tokens_out", "tracer", "ts",
        "ttfb", "upstream_s", "upstream_span", "upstream_status", "user_agent",
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
        self.tracer: Any = None  # observability.tracing.Tracer when tracing is on
        self.span: Any = None  # the server span (tracing on)
        self.upstream_span: Any = None  # the client span of the upstream attempt in progress

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


_second = [-1, ""]  # the formatted second last seen (one strftime per second, not per request)


def _iso(ts: float) -> str:
    sec = int(ts)
    if sec != _second[0]:
        _second[0], _second[1] = sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{_second[1]}.{int(ts % 1 * 1000):03d}Z"


def _ms(seconds: float) -> str:
    return "null" if seconds < 0 else "%.3f" % (seconds * 1000)


def _str(value: str) -> str:
    return encode_basestring(value) if value else "null"


def _word(value: str) -> str:
    """Our own words (routes, kinds, error kinds, configured provider names): nothing to escape."""
    return f'"{value}"' if value else "null"


# One %-template for the whole line: a single formatting call per request. Quoted without escaping (%s
# inside quotes): request ids (validated charset), IPs, methods (HTTP tokens) and the face; %s without
# quotes: numbers, ``null`` and values already quoted by ``encode_basestring`` or as our own words.
_LINE = (
    '{"ts":"%s.%03dZ","request_id":"%s","face":"%s","client_ip":"%s","method":"%s","host":%s,"path":%s,'
    '"status":%d,"bytes_in":%d,"bytes_out":%d,"ttfb_ms":%s,"duration_ms":%.3f,"upstream_ms":%s,'
    '"upstream_status":%s,"route":%s,"kind":%s,"error":%s,"model":%s,"provider":%s,"tokens_in":%s,'
    '"tokens_out":%s,"user_agent":%s}'
)


def _json_line(info: RequestInfo, duration: float) -> str:
    """The same object as ``json.dumps(info.fields(duration))``, built without the dict (hot path).

    Quoted without escaping: request ids (validated charset), IPs, methods (HTTP tokens) and our own words;
    everything a client chose freely (host, path, model, user agent) goes through ``encode_basestring``.
    The timestamp's second is formatted once per second (``_second``), the milliseconds per line.
    """
    ts = info.ts
    sec = int(ts)
    if sec != _second[0]:
        _second[0], _second[1] = sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    ttfb, up = info.ttfb, info.upstream_s
    route, kind, error, model, provider = info.route, info.kind, info.error, info.model, info.provider
    t_in, t_out, ua = info.tokens_in, info.tokens_out, info.user_agent
    return _LINE % (
        _second[1], int(ts % 1 * 1000), info.request_id, info.face, info.client_ip, info.method,
        encode_basestring(info.host), encode_basestring(info.path), info.status, info.bytes_in, info.bytes_out,
        "null" if ttfb < 0 else "%.3f" % (ttfb * 1000), duration * 1000,
        "null" if up < 0 else "%.3f" % (up * 1000), info.upstream_status or "null",
        f'"{route}"' if route else "null", f'"{kind}"' if kind else "null", f'"{error}"' if error else "null",
        encode_basestring(model) if model else "null", f'"{provider}"' if provider else "null",
        "null" if t_in is None else t_in, "null" if t_out is None else t_out,
        encode_basestring(ua) if ua else "null",
    )


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


BATCH_BYTES = 4096  # PIPE_BUF on Linux: a write this size to a pipe is atomic
FILE_BATCH_BYTES = 65536  # a regular file: writes from several workers never interleave (O_APPEND or a shared offset)
FLUSH_S = 0.1


class AccessWriter:
    """Buffered whole-line writes to a file descriptor (stdout by default), at most ``FLUSH_S`` after a line
    was logged. Bounded: at most ``BATCH_BYTES`` held (``FILE_BATCH_BYTES`` when the descriptor is a regular
    file, where no atomicity limit applies). Lines are kept as text and encoded once per batch."""

    def __init__(self, fd: int | None = None) -> None:
        self.fd = fd  # None: stdout's descriptor, looked up at the first write (or sys.stdout if it has none)
        self._lines: list[str] = []
        self._size = 0
        self._limit = 0  # batch bound, set at the first write (needs the descriptor)
        self._timer: asyncio.TimerHandle | None = None

    def write(self, line: str) -> None:
        size = len(line) + 1 if line.isascii() else len(line.encode("utf-8", "replace")) + 1
        if self._size + size > (self._limit or self._set_limit()):
            self.flush()
        self._lines.append(line)
        self._size += size
        if self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(FLUSH_S, self.flush)
            except RuntimeError:  # no loop (tests, tools): write at once
                self.flush()

    def _set_limit(self) -> int:
        limit = BATCH_BYTES
        fd = self.fd
        if fd is None:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                fd = sys.stdout.fileno()
        if fd is not None:
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    limit = FILE_BATCH_BYTES
        self._limit = limit
        return limit

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        self._lines.append("")
        data = "\n".join(self._lines).encode("utf-8", "replace")
        self._lines.clear()
        self._size = 0
        if self.fd is None:
            try:
                self.fd = sys.stdout.fileno()
            except (OSError, ValueError):  # stdout replaced by something without a descriptor (tests, embedding)
                sys.stdout.write(data.decode("utf-8", "replace"))
                return
        with contextlib.suppress(OSError):  # a closed stdout must not fail requests
            while data:
                n = os.write(self.fd, data)
                data = data[n:]
