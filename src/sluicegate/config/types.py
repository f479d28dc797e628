"""Shared config value types and the error that locates a cross-field problem.

Owns: ``Duration`` (seconds as a number, or a string with a unit: ``"250ms"``, ``"30s"``, ``"5m"``,
``"1h"``, ``"365d"``), ``CidrList`` (network ranges: ``10.0.0.0/8``, ``2001:db8::/32``, a bare address),
``ListenAddress`` (``host:port``, IPv6 in brackets; empty = off) and ``FieldProblem``, a
``ValueError`` that carries the location of the field it is about, so a model validator checking
several fields reports the right ``file:line: key`` (the loader reads ``loc`` from it).
Strictness (no ``"8181"`` for an int, no ``"yes"`` for a bool) is not declared here per model: the loader
validates with ``strict=True``, so every field of every section gets it, including ones added later.
Must not know about files, environment variables or requests.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class FieldProblem(ValueError):
    """A problem with one field, raised from a validator that looks at several (``loc`` is relative to it)."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def parse_duration(value: Any) -> Any:
    """``"30s"`` -> 30.0; numbers pass (strict validation still refuses bools and other strings)."""
    if isinstance(value, str):
        m = _DURATION.match(value)
        if not m:
            raise ValueError(f"not a duration: {value!r} (a number of seconds, or e.g. \"250ms\", \"30s\", \"5m\")")
        return float(m.group(1)) * _UNIT[m.group(2)]
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]


def parse_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:9901"`` -> ``("127.0.0.1", 9901)``; ``"[::1]:9901"`` -> ``("::1", 9901)``."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise ValueError(f"not host:port: {value!r}")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"not host:port: {value!r}")
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"IPv6 addresses need brackets: {value!r}")
    if not host or any(c in host for c in "/ \t@[]"):
        raise ValueError(f"not host:port: {value!r}")
    return host, int(port)


def _check_listen(value: Any) -> Any:
    if isinstance(value, str) and value:
        parse_listen(value)
    return value


ListenAddress = Annotated[str, BeforeValidator(_check_listen)]


def _check_cidrs(value: list[str]) -> list[str]:
    for cidr in value:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError as exc:
            raise ValueError(f"not a CIDR: {cidr!r}") from exc
    return value


CidrList = Annotated[list[str], AfterValidator(_check_cidrs)]
