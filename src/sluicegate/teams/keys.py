"""Virtual keys: the ``sk-sg-…`` format, the keyed hash that is all we store, and a key's policy.

A key is ``sk-sg-`` followed by 43 URL-safe characters (32 random bytes). Only
``HMAC-SHA256(pepper, key)`` is stored: keys carry 256 bits of entropy, so a slow password KDF buys
nothing and would cost every request; the pepper (a secret kept outside the database) means a copy of
the database alone cannot even confirm a guessed key. Lookups compare hashes by exact index match
(no secret-dependent early exit on the key material). Must not know about stores, HTTP or config files.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import ipaddress
import os
import secrets
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

PREFIX = "sk-sg-"
_KEY_LEN = len(PREFIX) + 43
Period = Literal["day", "month"]
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    return "key_" + secrets.token_hex(6)


def looks_like_key(value: bytes) -> bool:
    return value.startswith(PREFIX.encode()) and len(value) == _KEY_LEN


def key_hash(pepper: bytes, key: bytes) -> bytes:
    return hmac.new(pepper, key, hashlib.sha256).digest()


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class KeyHasher:
    """``key_hash`` for one pepper, with the pepper's inner and outer pads hashed once (RFC 2104).

    Per key this is two SHA-256 copies and updates, about a quarter of ``hmac.new`` (whose OpenSSL
    set-up dominates for a 49-byte key); the result is the same HMAC-SHA256."""

    def __init__(self, pepper: bytes) -> None:
        if len(pepper) > 64:
            pepper = hashlib.sha256(pepper).digest()
        block = pepper.ljust(64, b"\0")
        self._inner = hashlib.sha256(block.translate(_IPAD))
        self._outer = hashlib.sha256(block.translate(_OPAD))

    def __call__(self, key: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(key)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


def hint(key: str) -> str:
    """What listings show of a key: enough to tell keys apart, useless to an attacker."""
    return f"{key[:9]}…{key[-4:]}"


def load_pepper(env_name: str, data_dir: Path, environ: dict[str, str] | None = None) -> bytes:
    """The hash pepper: from the environment when set there, else ``data_dir/key-pepper`` (created 0600)."""
    env = os.environ if environ is None else environ
    value = env.get(env_name, "") if env_name else ""
    if value:
        if len(value) < 16:
            raise ValueError(f"{env_name} must hold at least 16 characters")
        return value.encode()
    path = data_dir / "key-pepper"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        data = secrets.token_hex(32).encode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
        except FileExistsError:  # another process won the race: use its pepper
            return path.read_bytes().strip()
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return data
    data = data.strip()
    if len(data) < 16:
        raise ValueError(f"{path}: the key pepper is shorter than 16 bytes")
    return data


def parse_networks(values: list[str] | tuple[str, ...]) -> tuple[IpNetwork, ...]:
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP network: {value!r} (e.g. 10.0.0.0/8 or 2001:db8::/32)") from None
    return tuple(out)


@dataclass(frozen=True)
class KeyRecord:
    """One virtual key's identity and policy (never its secret)."""

    id: str
    name: str
    hint: str
    models: tuple[str, ...] = ()  # client model names allowed; empty = all
    cidrs: tuple[str, ...] = ()  # source networks allowed; empty = any
    rpm: int | None = None  # requests per sliding minute
    tpm: int | None = None  # tokens (input + output) per sliding minute
    max_streams: int | None = None  # requests in flight at once
    budget: float | None = None  # USD per period
    period: Period = "month"
    enabled: bool = True
    created: float = field(default_factory=time.time)
    # Per-model windows inside the key: (client model name, rpm, tpm), counted besides the key's own.
    model_limits: tuple[tuple[str, int | None, int | None], ...] = ()
    networks: tuple[IpNetwork, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.cidrs and not self.networks:
            object.__setattr__(self, "networks", parse_networks(self.cidrs))

    @property
    def limited(self) -> bool:
        return bool(self.rpm or self.tpm or self.max_streams or self.budget is not None or self.model_limits)

    def windows(self, model: str) -> list[tuple[str, int, int]]:
        """The sliding windows a request for ``model`` counts in: (window id, rpm, tpm; 0 = no limit)."""
        out = [(self.id, self.rpm or 0, self.tpm or 0)] if self.rpm or self.tpm else []
        for name, rpm, tpm in self.model_limits:
            if name == model and (rpm or tpm):
                out.append((f"{self.id}|{name}", rpm or 0, tpm or 0))
        return out

    def allows_model(self, model: str) -> bool:
        return not self.models or model in self.models

    def allows_ip(self, ip: str) -> bool:
        if not self.networks:
            return True
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self.networks)

    def public(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "hint": self.hint, "models": list(self.models),
                "cidrs": list(self.cidrs), "rpm": self.rpm, "tpm": self.tpm, "max_streams": self.max_streams,
                "budget": self.budget, "period": self.period, "enabled": self.enabled,
                "model_limits": {m: {"rpm": r, "tpm": t} for m, r, t in self.model_limits},
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created))}


def period_label(period: Period, now: float) -> str:
    t = time.gmtime(now)
    return time.strftime("%Y-%m-%d" if period == "day" else "%Y-%m", t)


def period_end(period: Period, now: float) -> float:
    """Epoch seconds at which the budget period containing ``now`` ends (UTC)."""
    t = time.gmtime(now)
    if period == "day":
        return float(calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, 0)) + 86400)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return float(calendar.timegm((year, month, 1, 0, 0, 0, 0, 0, 0)))
