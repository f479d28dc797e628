"""Host patterns as configured (``[first_party] allowed_domains``, ``rewrite_domains``): ``DomainList``.

``host`` matches exactly; ``*.suffix`` matches the apex and its subdomains at a dot boundary
(``evil-example.com`` never matches ``*.example.com``). The config checks one list covers another at
load time; the first-party face matches hosts against them. Imports the standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence


class DomainList:
    """Host patterns: ``"cdn.example.com"`` (exact) or ``"*.example.com"`` (apex + subdomains)."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.exact: frozenset[str] = frozenset(p for p in patterns if not p.startswith("*."))
        self.suffixes: tuple[str, ...] = tuple(p[2:] for p in patterns if p.startswith("*."))
        self.patterns = tuple(patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        if not host:
            return False
        if host in self.exact:
            return True
        return any(host == s or (host.endswith(s) and host[-len(s) - 1] == ".") for s in self.suffixes)

    def covers_pattern(self, pattern: str) -> bool:
        """Whether every host ``pattern`` matches is matched here too."""
        if pattern.startswith("*."):
            base = pattern[2:]
            return any(base == s or base.endswith("." + s) for s in self.suffixes)
        return self.matches(pattern)

    def needles(self) -> list[bytes]:
        """Lower-case byte strings one of which every matching host contains (for fast scans)."""
        return sorted({p.encode() for p in self.exact} | {s.encode() for s in self.suffixes})
