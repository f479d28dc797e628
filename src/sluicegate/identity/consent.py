"""Bounded decoders for TCF v2 TC strings, GPP strings and US Privacy strings (sans-IO).

Bit layouts follow the IAB specifications (TCF v2.2 core segment; GPP v1 header with its Fibonacci
section-ID range; the US sections' fixed-width 2-bit fields, whose opt-out fields all sit before
any variable-length field). Every decoder returns ``None`` for input it cannot read, and logs that
once per kind; nothing here raises to its caller. Vendor lists are decoded only when asked for.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

log = logging.getLogger("sluicegate.identity")

MAX_CHARS = 16384
_URLSAFE = bytes.maketrans(b"-_", b"+/")
_B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_logged: set[str] = set()


class Malformed(Exception):
    pass


def malformed(kind: str, why: str) -> None:
    """Log a malformed consent string once per kind (never the string: it identifies a visitor)."""
    if kind not in _logged:
        _logged.add(kind)
        log.warning("consent: malformed %s treated as absent (%s); further ones are not logged", kind, why)


class Bits:
    """A big-endian bit string decoded from base64url (C-speed decode, one Python int)."""

    __slots__ = ("n", "value")

    def __init__(self, text: str) -> None:
        if not text or len(text) > MAX_CHARS or not _B64_ALPHABET.issuperset(text):
            raise Malformed("not base64url")
        pad = -len(text) % 4
        raw = base64.b64decode(text.encode("ascii").translate(_URLSAFE) + b"A" * pad)
        self.value = int.from_bytes(raw, "big") >> (6 * pad)
        self.n = 6 * len(text)

    def get(self, pos: int, width: int) -> int:
        if pos + width > self.n:
            raise Malformed("too short")
        return (self.value >> (self.n - pos - width)) & ((1 << width) - 1)

    def bitset(self, pos: int, width: int) -> set[int]:
        """Set of 1-based indices whose bit is 1 in ``width`` bits from ``pos``."""
        v = self.get(pos, width)
        return {width - i for i in range(width) if (v >> i) & 1}


def _fib(bits: Bits, pos: int) -> tuple[int, int]:
    """One Fibonacci-coded integer at ``pos`` -> (value, next position)."""
    value, a, b, prev = 0, 1, 2, 0
    for i in range(64):
        bit = bits.get(pos + i, 1)
        if bit and prev:
            return value, pos + i + 1
        if bit:
            value += a
        prev = bit
        a, b = b, a + b
    raise Malformed("Fibonacci integer too long")


@dataclass
class TcString:
    """The TCF v2 core segment fields (vendor sections decoded lazily)."""

    bits: Bits = field(repr=False)
    version: int
    created: int  # deciseconds since the epoch
    last_updated: int
    cmp_id: int
    cmp_version: int
    consent_screen: int
    consent_language: str
    vendor_list_version: int
    policy_version: int
    is_service_specific: bool
    use_non_standard_texts: bool
    special_features: set[int]
    purpose_consents: set[int]
    purpose_li: set[int]
    purpose_one_treatment: bool
    publisher_cc: str

    def purpose(self, n: int) -> bool:
        return n in self.purpose_consents

    @cached_property
    def _vendor_sections(self) -> tuple[set[int], set[int]]:
        consents, pos = _vendor_section(self.bits, 213)
        li, _ = _vendor_section(self.bits, pos)
        return consents, li

    @property
    def vendor_consents(self) -> set[int]:
        return self._vendor_sections[0]

    @property
    def vendor_li(self) -> set[int]:
        return self._vendor_sections[1]


def _letters(bits: Bits, pos: int) -> str:
    return chr(65 + bits.get(pos, 6)) + chr(65 + bits.get(pos + 6, 6))


def _vendor_section(bits: Bits, pos: int) -> tuple[set[int], int]:
    max_id = bits.get(pos, 16)
    pos += 16
    if not bits.get(pos, 1):
        return bits.bitset(pos + 1, max_id), pos + 1 + max_id
    pos += 1
    entries = bits.get(pos, 12)
    pos += 12
    out: set[int] = set()
    for _ in range(entries):
        is_range = bits.get(pos, 1)
        start = bits.get(pos + 1, 16)
        pos += 17
        end = start
        if is_range:
            end = bits.get(pos, 16)
            pos += 16
        if start < 1 or end < start or end > max_id:
            raise Malformed("vendor range out of bounds")
        out.update(range(start, end + 1))
    return out, pos


CACHED_CHARS = 1024  # strings up to this long are cached (4096 entries: a few MB at most)


def decode_tcf(text: str) -> TcString | None:
    """A TC string (core segment first, other segments after '.'), or None. Cached: a visitor's
    consent cookie repeats on every request (the result is shared: treat it as read-only)."""
    return _tcf_cached(text) if len(text) <= CACHED_CHARS else _decode_tcf(text)


def decode_gpp(text: str) -> GppString | None:
    """A GPP string (header ~ sections), or None. Cached like ``decode_tcf``."""
    return _gpp_cached(text) if len(text) <= CACHED_CHARS else _decode_gpp(text)


def _decode_tcf(text: str) -> TcString | None:
    try:
        core = text.strip().split(".", 1)[0]
        b = Bits(core)
        version = b.get(0, 6)
        if version != 2:
            raise Malformed(f"version {version}")
        tc = TcString(
            bits=b,
            version=version,
            created=b.get(6, 36),
            last_updated=b.get(42, 36),
            cmp_id=b.get(78, 12),
            cmp_version=b.get(90, 12),
            consent_screen=b.get(102, 6),
            consent_language=_letters(b, 108),
            vendor_list_version=b.get(120, 12),
            policy_version=b.get(132, 6),
            is_service_specific=bool(b.get(138, 1)),
            use_non_standard_texts=bool(b.get(139, 1)),
            special_features=b.bitset(140, 12),
            purpose_consents=b.bitset(152, 24),
            purpose_li=b.bitset(176, 24),
            purpose_one_treatment=bool(b.get(200, 1)),
            publisher_cc=_letters(b, 201),
        )
        b.get(213, 17)  # the vendor section's head must be there
        return tc
    except (Malformed, ValueError) as exc:
        malformed("tcf", str(exc))
        return None


@dataclass(frozen=True)
class UsPrivacy:
    version: int
    notice: str  # Y, N or -
    opt_out: str
    lspa: str

    @property
    def opted_out(self) -> bool:
        return self.opt_out == "Y"


@lru_cache(maxsize=1024)
def decode_usp(text: str) -> UsPrivacy | None:
    s = text.strip().upper()
    if len(s) != 4 or s[0] != "1" or any(c not in "YN-" for c in s[1:]):
        malformed("us_privacy", "not a 4-character version-1 string")
        return None
    return UsPrivacy(1, s[1], s[2], s[3])


# US sections: id -> (name, bit offsets of SaleOptOut, SharingOptOut, TargetedAdvertisingOptOut).
US_SECTIONS: dict[int, tuple[str, int | None, int | None, int | None]] = {
    7: ("usnat", 18, 20, 22),
    8: ("usca", 12, 14, None),
    9: ("usva", 12, None, 14),
    10: ("usco", 12, None, 14),
    11: ("usut", 14, None, 16),
    12: ("usct", 12, None, 14),
    13: ("usfl", 12, None, 14),
    14: ("usmt", 12, None, 14),
    15: ("usor", 12, None, 14),
    16: ("ustx", 12, None, 14),
    17: ("usde", 12, None, 14),
    18: ("usia", 14, None, 16),
    19: ("usne", 12, None, 14),
    20: ("usnh", 12, None, 14),
    21: ("usnj", 12, None, 14),
    22: ("ustn", 12, None, 14),
    23: ("usmn", 12, None, 14),
    24: ("usmd", 16, None, 18),
    25: ("usin", 16, None, 18),
    26: ("usky", 16, None, 18),
    27: ("usri", 16, None, 18),
}


@dataclass(frozen=True)
class UsSection:
    section_id: int
    name: str
    sale_opt_out: int  # 0 not applicable, 1 opted out, 2 did not opt out
    sharing_opt_out: int
    targeted_advertising_opt_out: int
    gpc: bool | None  # None: no GPC sub-segment

    @property
    def opted_out(self) -> bool:
        return 1 in (self.sale_opt_out, self.sharing_opt_out, self.targeted_advertising_opt_out) or bool(self.gpc)


@dataclass
class GppString:
    section_ids: list[int]
    tcf: TcString | None = None
    usp: UsPrivacy | None = None
    us: list[UsSection] = field(default_factory=list)

    def applicable(self, sid: list[int] | None) -> GppString:
        """Only the sections ``__gpp_sid`` lists (None: all)."""
        if sid is None:
            return self
        keep = set(sid)
        return GppString(
            [s for s in self.section_ids if s in keep],
            self.tcf if 2 in keep else None,
            self.usp if 6 in keep else None,
            [u for u in self.us if u.section_id in keep],
        )


def _us_section(sid: int, text: str) -> UsSection:
    name, sale, share, ta = US_SECTIONS[sid]
    parts = text.split(".")
    b = Bits(parts[0])
    gpc: bool | None = None
    for sub in parts[1:]:
        sb = Bits(sub)
        if sb.get(0, 2) == 1:
            gpc = bool(sb.get(2, 1))
    return UsSection(
        sid,
        name,
        b.get(sale, 2) if sale is not None else 0,
        b.get(share, 2) if share is not None else 0,
        b.get(ta, 2) if ta is not None else 0,
        gpc,
    )


def _decode_gpp(text: str) -> GppString | None:
    try:
        parts = text.strip().split("~")
        if len(parts) > 64:
            raise Malformed("too many sections")
        h = Bits(parts[0])
        if h.get(0, 6) != 3 or h.get(6, 6) != 1:
            raise Malformed("not a GPP v1 header")
        count = h.get(12, 12)
        if count > 64:
            raise Malformed("too many section ranges")
        pos, prev = 24, 0
        ids: list[int] = []
        for _ in range(count):
            is_range = h.get(pos, 1)
            start, pos = _fib(h, pos + 1)
            start += prev
            prev = start
            if is_range:
                end, pos = _fib(h, pos)
                end += prev
                prev = end
                if end - start > 64:
                    raise Malformed("section range too long")
                ids.extend(range(start, end + 1))
            else:
                ids.append(start)
        if len(ids) != len(parts) - 1:
            raise Malformed("section count does not match the header")
        gpp = GppString(ids)
        for sid, body in zip(ids, parts[1:], strict=True):
            if sid == 2:
                gpp.tcf = _decode_tcf(body)
                if gpp.tcf is None:
                    raise Malformed("TCF section unreadable")
            elif sid == 6:
                gpp.usp = decode_usp(body)
            elif sid in US_SECTIONS:
                gpp.us.append(_us_section(sid, body))
        return gpp
    except (Malformed, ValueError) as exc:
        malformed("gpp", str(exc))
        return None


def parse_sid(text: str) -> list[int] | None:
    try:
        ids = [int(p) for p in text.replace("_", ",").split(",") if p.strip()]
    except ValueError:
        malformed("gpp_sid", "not a list of integers")
        return None
    return ids[:64] if ids else None


_tcf_cached = lru_cache(maxsize=4096)(_decode_tcf)
_gpp_cached = lru_cache(maxsize=4096)(_decode_gpp)
