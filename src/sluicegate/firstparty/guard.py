"""Which targets the first-party endpoints may reach: the host allowlist and the address guard.

Owns: ``AddressGuard`` (loopback, private,
link-local, CGNAT, cloud metadata, multicast, reserved and unspecified addresses refused unless a
configured CIDR allows them), and ``Resolver`` (DNS through the event loop, or static answers
from config). The guard runs on the address that is then connected to, never on a name: there is
no second lookup between the check and the connect (no DNS-rebinding gap).

The host allowlist itself is ``config.domains.DomainList`` (the config validates it at load).
Must not know: HTTP, signing, sockets beyond name resolution.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_METADATA = (
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
    ipaddress.ip_address("169.254.170.2"),  # ECS task metadata
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("fd00:ec2::254"),  # AWS IPv6 IMDS
)
_EXTRA_BLOCKED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "192.0.0.0/24",
        "198.18.0.0/15",
        "64:ff9b:1::/48",
        "fc00::/7",
        "fec0::/10",
    )
)


class Refused(Exception):
    """A target the rules do not allow; ``status`` is what the client gets (403 or 400)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def is_special(addr: IPAddress) -> str | None:
    """Why ``addr`` is not a public unicast address, or None when it is."""
    if isinstance(addr, ipaddress.IPv6Address):
        mapped = addr.ipv4_mapped or addr.sixtofour
        if mapped is not None:
            why = is_special(mapped)
            return f"{why} (IPv4 in IPv6)" if why else None
        if addr.teredo is not None:
            return "a Teredo tunnel address"
    if addr in _METADATA:
        return "a cloud metadata address"
    if addr.is_loopback:
        return "a loopback address"
    if addr.is_link_local:
        return "a link-local address"
    if isinstance(addr, ipaddress.IPv4Address) and addr in _CGNAT:
        return "a carrier-grade NAT (CGNAT) address"
    if addr.is_unspecified:
        return "the unspecified address"
    if addr.is_multicast:
        return "a multicast address"
    if addr.is_private or any(addr in n for n in _EXTRA_BLOCKED):
        return "a private address"
    if addr.is_reserved:
        return "a reserved address"
    return None


class AddressGuard:
    def __init__(self, allow_cidrs: Sequence[str]) -> None:
        self.allowed = [ipaddress.ip_network(c, strict=False) for c in allow_cidrs]

    def check(self, addr: IPAddress) -> str | None:
        """None if ``addr`` may be connected to, else why not."""
        why = is_special(addr)
        if why is None:
            return None
        if any(addr.version == n.version and addr in n for n in self.allowed):
            return None
        return why


class Resolver:
    """Name -> addresses. ``static`` answers (config ``resolve``) win over DNS; IP literals are themselves."""

    def __init__(self, static: dict[str, str] | None = None) -> None:
        self.static = {k.lower(): ipaddress.ip_address(v) for k, v in (static or {}).items()}

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        host = host.lower().rstrip(".")
        literal = host.strip("[]")
        try:
            return [ipaddress.ip_address(literal)]
        except ValueError:
            pass
        if host in self.static:
            return [self.static[host]]
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError) as exc:
            raise Refused(502, f"cannot resolve {host}: {exc.__class__.__name__}") from None
        out: list[IPAddress] = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            addr = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if addr not in out:
                out.append(addr)
        if not out:
            raise Refused(502, f"cannot resolve {host}: no addresses")
        return out


async def pick_address(resolver: Resolver, guard: AddressGuard, host: str, port: int) -> IPAddress:
    """The address to connect to for ``host``: every answer must pass the guard.

    Refusing when *any* answer is special (rather than picking a public one) keeps a name that
    mixes a public and a private answer from being a way in."""
    addrs = await resolver.resolve(host, port)
    for addr in addrs:
        why = guard.check(addr)
        if why is not None:
            raise Refused(403, f"target host {host} resolves to {why}")
    return addrs[0]
