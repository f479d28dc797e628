"""One third-party fetch: allowlist, address guard, connect to the vetted address, redirects.

Each hop: the host must be in ``allowed_domains``; its name is resolved once and every answer must
pass the ``AddressGuard``; the connection goes to that very address (``OriginPool`` keyed by
address, TLS checked against the name), so a second DNS answer can never slip in between check and
connect. 301/302/303/307/308 are followed up to ``max_redirects`` hops (each hop re-checked);
``javascript:`` and other non-http(s) locations are refused; one more redirect than allowed is a
502. Only GET (and HEAD) are relayed.

Must not know: ASGI, signing, markup.
"""

from __future__ import annotations

from urllib.parse import urljoin

from sluicegate.config.domains import DomainList
from sluicegate.firstparty.guard import AddressGuard, Refused, Resolver, pick_address
from sluicegate.firstparty.signing import BadUrl, Target, canonical_url
from sluicegate.upstream.errors import OriginError
from sluicegate.upstream.http1 import OriginResponse
from sluicegate.upstream.pools import Pools

REDIRECTS = frozenset({301, 302, 303, 307, 308})


class ThirdPartyClient:
    """Pools per (scheme, address, port, TLS name), LRU-bounded (``upstream.pools``); one per worker."""

    def __init__(
        self,
        allowed: DomainList,
        guard: AddressGuard,
        resolver: Resolver,
        *,
        connect_timeout: float,
        max_redirects: int = 4,
        max_connections: int = 256,
        max_pools: int = 64,
        max_head_bytes: int = 64 * 1024,
        high_water: int = 256 * 1024,
        keepalive_timeout: float = 30.0,
        max_url_bytes: int = 8192,
    ) -> None:
        self.allowed = allowed
        self.guard = guard
        self.resolver = resolver
        self.max_redirects = max_redirects
        self.max_url_bytes = max_url_bytes
        self._pools = Pools(
            max_pools=max_pools,
            connect_timeout=connect_timeout,
            limit=max_connections,
            keepalive_timeout=keepalive_timeout,
            max_head_bytes=max_head_bytes,
            high_water=high_water,
        )

    def check_host(self, target: Target) -> None:
        if not self.allowed.matches(target.host):
            raise Refused(403, f"host {target.host} is not in first_party.allowed_domains")

    async def open(
        self, method: str, target: Target, headers: list[tuple[str, str]]
    ) -> tuple[OriginResponse, Target]:
        """The final (non-redirect) response and the URL it came from. Raises ``Refused``/``OriginError``."""
        for hop in range(self.max_redirects + 1):
            self.check_host(target)
            addr = await pick_address(self.resolver, self.guard, target.host.strip("[]"), target.port)
            pool = self._pools.get(target.scheme, str(addr), target.port, target.host)
            resp = await pool.request(method, target.path_query, [("host", target.authority), *headers])
            if resp.status not in REDIRECTS:
                return resp, target
            location = next((v for k, v in resp.headers if k.lower() == b"location"), b"").decode("latin-1").strip()
            resp.release()
            if not location:
                raise Refused(502, f"third party sent a {resp.status} without Location")
            if hop == self.max_redirects:
                raise Refused(502, f"more than {self.max_redirects} redirects")
            try:
                target = canonical_url(urljoin(target.url, location), self.max_url_bytes)
            except BadUrl as exc:
                raise Refused(403, f"redirect refused: {exc.reason}") from None
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self._pools.close()


__all__ = ["OriginError", "Refused", "ThirdPartyClient"]
