"""Providers: credentials, the headers a provider may see, and one connection pool per provider authority.

Owns, per configured provider: the credential (literal or from ``api_key_env``, resolved once at start-up;
a missing one is a start-up error naming the variable, never the value), which client headers may reach a
provider of each kind and the kind's default headers, the request target and ``Host`` of each call, the
outbound proxy from the environment (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``, ``upstream/proxy.py``:
https through a CONNECT tunnel, http in absolute form), and the ``upstream.http1.OriginPool`` it uses
(TLS with SNI and certificate verification unless ``verify_tls = false``). Providers with the same
authority and TLS/proxy settings share one pool.

Must not know about client protocols, routing, retries or the ASGI side.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sluicegate.config.inference import InferenceSettings, ProviderSettings
from sluicegate.inference import metrics as m
from sluicegate.upstream.http1 import OriginPool
from sluicegate.upstream.proxy import Proxy, ProxyEnv

_BASE_ALLOW = frozenset({b"content-type", b"accept", b"accept-encoding", b"user-agent", b"idempotency-key"})
_KIND_ALLOW: dict[str, frozenset[bytes]] = {
    "openai": frozenset({b"openai-organization", b"openai-project", b"openai-beta"}),
    "openai-compatible": frozenset({b"openai-organization", b"openai-project", b"openai-beta", b"x-model-id"}),
    "anthropic": frozenset({b"anthropic-version", b"anthropic-beta"}),
    "mock": frozenset({b"anthropic-version", b"anthropic-beta", b"openai-organization", b"x-mock-fault"}),
}
_KIND_DEFAULTS: dict[str, dict[str, str]] = {"anthropic": {"anthropic-version": "2023-06-01"}}
_MAX_RESPONSE_HEAD = 64 * 1024


@dataclass(slots=True)
class Provider:
    """One configured provider, ready to be called: where, with which credential and headers, over which pool."""

    settings: ProviderSettings
    scheme: str
    host: str  # the upstream's host (no brackets) and port
    port: int
    base_path: str  # the base URL's path, no trailing slash ("/v1")
    authority: str  # Host header value
    auth: tuple[str, str] | None
    allow: frozenset[bytes]
    defaults: dict[str, str]
    first_byte: float
    idle: float
    total: float  # 0: no cap on the whole exchange
    id_header: str
    proxy: Proxy | None = None
    pool: OriginPool | None = None
    absolute: bool = False  # plain http through a proxy: request targets in absolute form
    targets: dict[str, str] = field(default_factory=dict)  # request target per API path (no query)
    # Metric children resolved once (labels() lookups are not free on the hot path).
    m_inflight: Any = None
    m_first_byte: Any = None
    m_ok: Any = None

    def __post_init__(self) -> None:
        self.m_inflight = m.INFLIGHT.labels(self.settings.name)
        self.m_first_byte = m.FIRST_BYTE.labels(self.settings.name)
        self.m_ok = m.ATTEMPTS.labels(self.settings.name, "ok")

    @property
    def name(self) -> str:
        return self.settings.name

    def target(self, path: str, query: bytes) -> str:
        """The request target for a client API path: the base URL's path + the path (a leading /v1 is not
        doubled), the query as sent; absolute form when the request goes through an http proxy."""
        if not query:
            hit = self.targets.get(path)
            if hit is not None:
                return hit
        base = self.base_path
        p = path[3:] if base.endswith("/v1") and path.startswith("/v1/") else path
        out = base + p + ("?" + query.decode("latin-1") if query else "")
        if self.absolute:
            out = f"{self.scheme}://{self.authority}{out}"
        if not query:
            self.targets[path] = out
        return out

    def headers(self, client: list[tuple[bytes, bytes]], request_id: str) -> list[tuple[str, str]]:
        """Allowed client headers, the kind's defaults where the client sent none, the request id, ``Host``
        and the credential (always ours: a client's own ``authorization``/``x-api-key`` never passes)."""
        out: dict[str, str] = {"host": self.authority}
        allow = self.allow
        for name, value in client:
            if name in allow:
                out[name.decode("latin-1")] = value.decode("latin-1")
        for dname, dvalue in self.defaults.items():
            out.setdefault(dname, dvalue)
        out[self.id_header] = request_id
        if self.auth is not None:
            out[self.auth[0]] = self.auth[1]
        if self.absolute and self.proxy is not None and self.proxy.authorization:
            out["proxy-authorization"] = self.proxy.authorization
        return list(out.items())


def build(cfg: InferenceSettings, env: Mapping[str, str], id_header: str) -> dict[str, Provider]:
    """Every configured provider with its credential resolved; raises ``ValueError`` naming what is missing."""
    proxies = ProxyEnv(env)
    out: dict[str, Provider] = {}
    for p in cfg.providers:
        key = p.api_key or (env.get(p.api_key_env, "") if p.api_key_env else "")
        if p.auth_style != "none" and not key:
            raise ValueError(f"inference provider {p.name!r}: {p.api_key_env} is empty or unset")
        if not p.effective_base_url:
            raise ValueError(
                f"inference provider {p.name!r}: kind = \"mock\" needs a base_url (the gateway does not start "
                "the mock: run `python -m sluicegate.dev.mock_provider --port 9100` or `sluicegate demo`)")
        auth: tuple[str, str] | None = None
        if p.auth_style == "bearer":
            auth = ("authorization", f"Bearer {key}")
        elif p.auth_style == "x-api-key":
            auth = ("x-api-key", key)
        u = urllib.parse.urlsplit(p.effective_base_url)
        host = u.hostname or ""
        port = u.port or (443 if u.scheme == "https" else 80)
        default_port = port == (443 if u.scheme == "https" else 80)
        shown = f"[{host}]" if ":" in host else host
        proxy = proxies.for_url(u.scheme, host, port)
        t = p.timeouts
        out[p.name] = Provider(
            settings=p,
            scheme=u.scheme,
            host=host,
            port=port,
            base_path=u.path.rstrip("/"),
            authority=shown if default_port else f"{shown}:{port}",
            auth=auth,
            allow=_BASE_ALLOW | _KIND_ALLOW.get(p.kind, frozenset()) | {h.encode() for h in p.forward_headers},
            defaults={**_KIND_DEFAULTS.get(p.kind, {}), **p.headers},
            first_byte=t.first_byte,
            idle=t.idle,
            total=t.total,
            id_header=id_header,
            proxy=proxy,
            absolute=proxy is not None and u.scheme == "http",
        )
    return out


class Pools:
    """The connection pools of a worker: one per (authority, TLS verification, proxy), opened at start-up."""

    def __init__(self) -> None:
        self._pools: dict[tuple[str, str, int, bool, Proxy | None], OriginPool] = {}

    def open(self, providers: Mapping[str, Provider]) -> None:
        """Must run inside the serving event loop (a pool belongs to the loop it was made in)."""
        for prov in providers.values():
            s = prov.settings
            key = (prov.scheme, prov.host, prov.port, s.verify_tls, prov.proxy)
            pool = self._pools.get(key)
            if pool is None:
                if prov.absolute and prov.proxy is not None:  # plain http via the proxy: connect to it
                    pool = OriginPool("http", prov.proxy.host, prov.proxy.port, connect_timeout=s.timeouts.connect,
                                      limit=s.max_connections, max_head_bytes=_MAX_RESPONSE_HEAD)
                else:
                    pool = OriginPool(prov.scheme, prov.host, prov.port, connect_timeout=s.timeouts.connect,
                                      verify_tls=s.verify_tls, limit=s.max_connections,
                                      max_head_bytes=_MAX_RESPONSE_HEAD, tunnel=prov.proxy)
                self._pools[key] = pool
            prov.pool = pool

    async def close(self, providers: Mapping[str, Provider]) -> None:
        for pool in self._pools.values():
            await pool.close()
        self._pools.clear()
        for prov in providers.values():
            prov.pool = None
