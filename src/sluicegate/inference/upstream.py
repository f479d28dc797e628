"""The upstream side of the gateway: a provider handle (base URL, credential, header allowlist, pooled
session, metric children), the outcome of one attempt before commit, and the lazy idle watch of a relayed
stream.

Owns which client headers may reach a provider of each kind, the kind's default headers, the response
headers never relayed, and which statuses are retryable. Must not know about routing, client protocols
or translation.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from sluicegate.config.inference import ProviderSettings
from sluicegate.edge.asgi import ResponseAborted
from sluicegate.edge.headers import HOP_BY_HOP_BYTES
from sluicegate.inference import metrics as m
from sluicegate.inference.mock import MockProvider


class StreamAborted(ResponseAborted):
    """Raised after the response started and the upstream failed: the server must abort the connection."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"inference stream aborted: {kind}")
        self.kind = kind


class _CapExceeded(Exception):
    pass

_BASE_ALLOW = frozenset({b"content-type", b"accept", b"accept-encoding", b"user-agent", b"idempotency-key"})
_KIND_ALLOW: dict[str, frozenset[bytes]] = {
    "openai": frozenset({b"openai-organization", b"openai-project", b"openai-beta"}),
    "openai-compatible": frozenset({b"openai-organization", b"openai-project", b"openai-beta", b"x-model-id"}),
    "anthropic": frozenset({b"anthropic-version", b"anthropic-beta"}),
    "mock": frozenset({b"anthropic-version", b"anthropic-beta", b"openai-organization", b"x-mock-fault"}),
}
_KIND_DEFAULTS: dict[str, dict[str, str]] = {"anthropic": {"anthropic-version": "2023-06-01"}}
# Upstream response headers never relayed (framing is ours; cookies are not the client's business).
_DROP_RESPONSE = HOP_BY_HOP_BYTES | {b"set-cookie", b"date", b"server", b"alt-svc"}
_RETRYABLE = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})


@dataclass(slots=True)
class _Provider:
    settings: ProviderSettings
    base_url: str
    auth: tuple[str, str] | None
    allow: frozenset[bytes]
    defaults: dict[str, str]
    timeout: aiohttp.ClientTimeout
    first_byte: float
    idle: float  # 0: no idle timeout between upstream chunks
    session: aiohttp.ClientSession | None = None
    mock: MockProvider | None = None
    # Metric children resolved once (labels() lookups are not free on the hot path).
    m_inflight: Any = None
    m_first_byte: Any = None
    m_ok: Any = None
    urls: dict[str, URL] = field(default_factory=dict)  # parsed upstream URL per path (no query string)
    id_header: str = "x-request-id"  # [server] request_id_header, sent upstream

    def __post_init__(self) -> None:
        self.m_inflight = m.INFLIGHT.labels(self.settings.name)
        self.m_first_byte = m.FIRST_BYTE.labels(self.settings.name)
        self.m_ok = m.ATTEMPTS.labels(self.settings.name, "ok")

    @property
    def name(self) -> str:
        return self.settings.name

    def url(self, path: str, query: bytes) -> str:
        base = self.base_url
        if base.endswith("/v1") and path.startswith("/v1/"):
            path = path[3:]
        return base + path + ("?" + query.decode("latin-1") if query else "")

    def url_for(self, path: str, query: bytes) -> URL:
        """``url`` parsed once per path (paths are the few detected API routes; queries are not cached)."""
        if query:
            return URL(self.url(path, query))
        url = self.urls.get(path)
        if url is None:
            url = self.urls[path] = URL(self.url(path, query))
        return url

    def headers(self, client: list[tuple[bytes, bytes]], request_id: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in client:
            if name in self.allow:
                out[name.decode("latin-1")] = value.decode("latin-1")
        for dname, dvalue in self.defaults.items():
            out.setdefault(dname, dvalue)
        out[self.id_header] = request_id
        if self.auth is not None:
            out[self.auth[0]] = self.auth[1]
        return out


@dataclass(slots=True)
class _Attempt:
    """The outcome of trying one candidate before commit."""

    resp: aiohttp.ClientResponse | None = None
    first: bytes = b""
    error_status: int = 0  # retryable upstream status (body kept below)
    error_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    error_body: bytes = b""
    retry_after: float = 0.0
    failure: str = ""  # connect, timeout, status_429, ...
    translated: bool = False  # the request was translated: an error answer is re-shaped for the client


def _retry_after(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0


class _IdleWatch:
    """The idle timeout of one relayed stream: fires only while the relay waits on the upstream.

    aiohttp's ``sock_read`` re-arms a timer on every received chunk; here the relay just stamps ``since``
    around each read (a float store) and one timer checks lazily: when it fires early it re-arms for the
    real deadline, when it fires while no read is pending it re-arms a full period ahead (any later read
    starts after now). On expiry the read fails with aiohttp's own read timeout error.
    """

    __slots__ = ("_content", "_handle", "_idle", "_loop", "since")

    def __init__(self, loop: asyncio.AbstractEventLoop, idle: float, content: aiohttp.StreamReader) -> None:
        self._loop = loop
        self._idle = idle
        self._content = content
        self.since = -1.0  # loop time the pending upstream read started; -1 while not reading
        self._handle = loop.call_at(loop.time() + idle, self._check)

    def _check(self) -> None:
        now = self._loop.time()
        since = self.since
        if since >= 0 and now >= since + self._idle:
            self._content.set_exception(aiohttp.ServerTimeoutError("Timeout on reading data from socket"))
            return
        self._handle = self._loop.call_at((since if since >= 0 else now) + self._idle, self._check)

    def cancel(self) -> None:
        self._handle.cancel()


def _looks_like_error_event(first: bytes) -> bool:
    head = first[:64].lstrip()
    return head.startswith((b"event: error", b"event:error", b'data: {"error"', b'data:{"error"'))
