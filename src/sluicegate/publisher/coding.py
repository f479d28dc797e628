"""Content-coding negotiation on the response side: does the client accept what the origin sent?

We narrow the ``Accept-Encoding`` sent to the origin (``pipeline.codecs.narrow_accept_encoding``), but origins
that serve pre-compressed files ignore it. RFC 9110 §12.5.3 decides what the client accepts:

* no ``Accept-Encoding`` field at all: any coding is acceptable;
* a coding listed with q > 0 is acceptable; listed with ``q=0`` it is not;
* an unlisted coding takes the ``*`` entry's q, and is not acceptable when there is no ``*``;
* an empty field value accepts no coding (identity only).

Pure functions of header values. Owns: parsing Accept-Encoding for the response, choosing the coding of a
rewritten body, and the header edits that go with a changed coding (``Content-Encoding``, ``Vary``).
Must not know about bodies or sockets.
"""

from __future__ import annotations

from collections.abc import Iterable

from sluicegate.gate import DECODABLE

# What a rewritten body is re-encoded to when the origin's coding is not acceptable, best first
# (ties in q): gzip is universal and cheap at the configured level; br/zstd next; deflate last
# (historically ambiguous zlib-vs-raw framing).
ENCODE_PREFERENCE = ("gzip", "br", "zstd", "deflate")


class Accepted:
    """A parsed ``Accept-Encoding`` (``None`` = the client sent none: anything goes)."""

    __slots__ = ("_q", "_star")

    def __init__(self, value: str | None) -> None:
        self._q: dict[str, float] | None = None
        self._star: float | None = None
        if value is None:
            return
        q_of: dict[str, float] = {}
        for item in value.split(","):
            parts = item.split(";")
            token = parts[0].strip().lower()
            if not token:
                continue
            q = 1.0
            for param in parts[1:]:
                name, _, v = param.strip().partition("=")
                if name.strip().lower() == "q":
                    try:
                        q = min(1.0, max(0.0, float(v.strip())))
                    except ValueError:
                        q = 0.0  # an unreadable weight accepts nothing rather than everything
            if token == "x-gzip":
                token = "gzip"  # RFC 9110 §8.4.1.3: equivalent
            q_of.setdefault(token, q)
        self._star = q_of.pop("*", None)
        self._q = q_of

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, str]]) -> Accepted:
        values = [v for k, v in headers if k.lower() == "accept-encoding"]
        return cls(", ".join(values) if values else None)

    @property
    def anything(self) -> bool:
        return self._q is None

    def quality(self, coding: str) -> float:
        if self._q is None:
            return 1.0
        coding = coding.lower()
        if coding in ("", "identity"):
            # identity is acceptable unless refused explicitly (identity;q=0, or *;q=0 without identity)
            if "identity" in self._q:
                return self._q["identity"]
            return self._star if self._star is not None else 1.0
        q = self._q.get(coding)
        if q is None:
            q = self._star if self._star is not None else 0.0
        return q

    def accepts(self, coding: str) -> bool:
        return self.quality(coding) > 0

    def best_encoding(self) -> str:
        """The coding to re-encode a rewritten body to: highest q among ours, ``""`` (identity) if none."""
        best, best_q = "", 0.0
        for coding in ENCODE_PREFERENCE:
            q = self.quality(coding)
            if q > best_q:
                best, best_q = coding, q
        return best


def content_codings(headers: Iterable[tuple[str, str]]) -> list[str]:
    """The codings applied to the body, in order (``identity`` tokens dropped)."""
    out: list[str] = []
    for name, value in headers:
        if name.lower() == "content-encoding":
            out += [c for c in (t.strip().lower() for t in value.split(",")) if c and c != "identity"]
    return out


def decodable(codings: list[str]) -> str | None:
    """The one coding we can undo, or None (none, stacked, or unknown)."""
    if len(codings) == 1 and codings[0] in DECODABLE:
        return codings[0]
    return None


def recoded_headers(headers: list[tuple[str, str]], coding: str) -> list[tuple[str, str]]:
    """Headers for a body now sent with ``coding`` (``""`` = identity) instead of the origin's coding.

    ``Content-Encoding`` is replaced, ``Content-Length`` dropped (the length changes), a strong ETag becomes
    weak, and ``Vary`` names ``Accept-Encoding`` (the body now depends on it).
    """
    out: list[tuple[str, str]] = []
    vary_ok = False
    for name, value in headers:
        ln = name.lower()
        if ln in ("content-encoding", "content-length"):
            continue
        if ln == "etag" and not value.startswith("W/"):
            value = "W/" + value
        elif ln == "vary":
            tokens = {t.strip().lower() for t in value.split(",")}
            if "accept-encoding" in tokens or "*" in tokens:
                vary_ok = True
        out.append((name, value))
    if coding:
        out.append(("content-encoding", coding))
    if not vary_ok:
        out.append(("vary", "Accept-Encoding"))
    return out


def ensure_vary(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``Vary: Accept-Encoding`` added when missing (the coding we send depends on the client's header)."""
    for name, value in headers:
        if name.lower() == "vary":
            tokens = {t.strip().lower() for t in value.split(",")}
            if "accept-encoding" in tokens or "*" in tokens:
                return headers
    return [*headers, ("vary", "Accept-Encoding")]
