"""What an image request asks for, decided from the request alone (sans-IO: no sockets, no pyvips).

Owns: choosing the profile from the one query parameter (``unknown_profile``: default or 400), the operator
switch that streams the original, ``.svg``/``.svgz`` never processed, format negotiation from ``Accept``
(``format = "auto"``: the set's ``auto_formats`` in order, only types the client lists explicitly), the
derived ETag (source ETag + profile + format + a fingerprint of the profile's definition) and reading it
back out of ``If-None-Match`` so a revalidation can be asked of the origin with the source's own ETag,
and the query the origin sees (the selecting parameters removed).
Must not know about the origin connection, the worker pool or the image engine.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote_to_bytes

from sluicegate.config.images import ImageOptimizerSettings, ImageProfile, ProfileSet

# Longest source ETag carried inside a derived one (a longer one gives no ETag: never a truncated one).
MAX_SOURCE_ETAG = 256
_ETAG_ITEM = re.compile(r'\s*(W/)?"([^"]*)"\s*(?:,|$)')
_DERIVED = re.compile(r"^sgi\.([a-z0-9_-]+)\.([a-z]+)\.([0-9a-f]{8})\.([A-Za-z0-9_-]*)$")
_MEDIA_RANGE = re.compile(r"^\s*([A-Za-z0-9.+*-]+/[A-Za-z0-9.+*-]+)\s*(.*)$")
_NEVER = (".svg", ".svgz")
# Paths the optimizer takes: a raster image's extension, or none (``/media/8f3a``); anything else (.css, .mp4,
# .pdf) streams through the route untouched, with its Range and conditional semantics, never fetched here.
_RASTER_EXT = frozenset({"jpg", "jpeg", "jpe", "jfif", "png", "gif", "webp", "avif", "heic", "heif"})
CONTENT_TYPES = {"webp": "image/webp", "avif": "image/avif", "jpeg": "image/jpeg", "png": "image/png"}


@dataclass(frozen=True)
class Passthrough:
    """Stream the original unchanged; ``reason`` is for logs (``svg``, ``original``, ``method``)."""

    reason: str


@dataclass(frozen=True)
class Reject:
    status: int
    message: str


@dataclass(frozen=True)
class Plan:
    """One image to make: which profile, which output format (``jpeg`` falls back to PNG for alpha)."""

    profile_name: str
    profile: ImageProfile
    format: str  # webp | avif | jpeg | png (jpeg: PNG when the source has alpha and the profile says auto)
    negotiated: bool  # format came from Accept: the response varies on it
    fingerprint: str  # 8 hex digits over the profile's definition: a changed profile is a new ETag

    def etag_for(self, source_etag: str) -> str | None:
        """``W/"sgi.<profile>.<format>.<fp>.<source etag, base64url>"``; None when the source has none."""
        if not source_etag or len(source_etag) > MAX_SOURCE_ETAG:
            return None
        token = base64.urlsafe_b64encode(source_etag.encode("latin-1")).rstrip(b"=").decode()
        return f'W/"sgi.{self.profile_name}.{self.format}.{self.fingerprint}.{token}"'

    def source_etags(self, if_none_match: str) -> list[str] | None:
        """The source ETags inside the client's ``If-None-Match`` that were derived for this very plan.

        ``["*"]`` for ``*``; ``[]`` when none of the client's tags is ours (a tag of the original, or of
        another profile, must not reach the origin: its 304 would answer for a different representation);
        None when the header is malformed.
        """
        if if_none_match.strip() == "*":
            return ["*"]
        out: list[str] = []
        pos = 0
        text = if_none_match.strip()
        while pos < len(text):
            m = _ETAG_ITEM.match(text, pos)
            if not m:
                return None
            pos = m.end()
            d = _DERIVED.match(m.group(2))
            if not d or d.group(1) != self.profile_name or d.group(2) != self.format:
                continue
            if d.group(3) != self.fingerprint:
                continue
            token = d.group(4)
            try:
                raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("latin-1")
            except (binascii.Error, ValueError):
                continue
            if _ETAG_ITEM.fullmatch(raw) and len(raw) <= MAX_SOURCE_ETAG:
                out.append(raw)
        return out


def profile_fingerprint(profile: ImageProfile) -> str:
    text = profile.model_dump_json()
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def never_processed(path: str) -> bool:
    """``.svg``/``.svgz`` (any case, before a query or ``;params``): vector files are never rasterised here."""
    p = path.split("?", 1)[0].split(";", 1)[0].lower()
    return p.endswith(_NEVER)


def raster_path(path: str) -> bool:
    """The last segment has a raster image extension, or no extension."""
    last = path.split("?", 1)[0].rsplit("/", 1)[-1]
    stem, dot, ext = last.rpartition(".")
    return not dot or not stem or ext.lower() in _RASTER_EXT


def _query_values(query: bytes, name: str) -> list[str]:
    return [v for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True) if k == name]


def origin_query(query: bytes, names: tuple[str, ...]) -> bytes:
    """The query string without the parameters that select a profile (the origin serves the source)."""
    if not query:
        return query
    kept = []
    for part in query.split(b"&"):
        key = part.split(b"=", 1)[0]
        try:
            decoded = unquote_to_bytes(key.replace(b"+", b" ")).decode("latin-1")
        except ValueError:
            decoded = ""
        if decoded not in names:
            kept.append(part)
    return b"&".join(kept)


def accepted_types(accept: str) -> dict[str, float]:
    """``Accept`` media ranges with their q (explicit types only matter for image formats)."""
    out: dict[str, float] = {}
    for item in accept.split(","):
        m = _MEDIA_RANGE.match(item)
        if not m:
            continue
        q = 1.0
        for param in m.group(2).split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = max(0.0, min(1.0, float(value)))
                except ValueError:
                    q = 0.0
        out[m.group(1).lower()] = q
    return out


def negotiate(auto_formats: list[str], accept: str) -> str:
    """The first of ``auto_formats`` the client lists explicitly with q > 0; the last one otherwise.

    ``*/*`` and ``image/*`` do not count: a client that says only that (curl, an old browser) gets the
    universal fallback, never an AVIF it may not decode.
    """
    types = accepted_types(accept)
    for fmt in auto_formats:
        if types.get(CONTENT_TYPES[fmt], 0.0) > 0.0:
            return fmt
    return auto_formats[-1]


def fingerprints(pset: ProfileSet) -> dict[str, str]:
    return {name: profile_fingerprint(p) for name, p in pset.profiles.items()}


class Selector:
    """Decides per request from method, path, query and Accept. Built once per profile set."""

    def __init__(self, settings: ImageOptimizerSettings, set_name: str) -> None:
        self.settings = settings
        self.pset = settings.profile_sets[set_name]
        self.set_name = set_name
        self._fingerprints = fingerprints(self.pset)
        self.param_names = tuple(n for n in (self.pset.param, settings.original_param) if n)

    def decide(self, method: str, path: str, query: bytes, accept: str) -> Plan | Passthrough | Reject:
        if method not in ("GET", "HEAD"):
            return Passthrough("method")
        if never_processed(path):
            return Passthrough("svg")
        if not raster_path(path):
            return Passthrough("extension")
        if self.settings.original_param and _query_values(query, self.settings.original_param) == ["1"]:
            return Passthrough("original")
        asked = _query_values(query, self.pset.param)
        if len(asked) > 1:
            return Reject(400, f"image profile: give the {self.pset.param!r} parameter once\n")
        name = asked[0] if asked else self.pset.default_profile
        if name not in self.pset.profiles:
            if self.pset.unknown_profile == "reject":
                known = ", ".join(sorted(self.pset.profiles))
                shown = quote(name[:64], safe="")
                return Reject(400, f"unknown image profile {shown!r}; this route offers: {known}\n")
            name = self.pset.default_profile
        profile = self.pset.profiles[name]
        if profile.format == "auto":
            fmt, negotiated = negotiate(list(self.pset.auto_formats), accept), True
        else:
            fmt, negotiated = profile.format, False
        return Plan(name, profile, fmt, negotiated, self._fingerprints[name])
