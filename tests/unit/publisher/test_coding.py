"""Accept-Encoding on the response side (RFC 9110 §12.5.3) and the header edits of a changed coding."""

from __future__ import annotations

import pytest

from sluicegate.publisher.coding import Accepted, content_codings, decodable, ensure_vary, recoded_headers


@pytest.mark.parametrize(
    ("header", "coding", "accepted"),
    [
        (None, "gzip", True),  # no field: anything goes
        (None, "br", True),
        ("", "gzip", False),  # empty field: identity only
        ("", "", True),
        ("identity", "gzip", False),
        ("identity", "", True),
        ("gzip;q=0", "gzip", False),
        ("gzip;q=0", "", True),
        ("*;q=0", "gzip", False),
        ("*;q=0", "", False),  # refused explicitly (we still send identity: nothing else is possible)
        ("*;q=0, identity", "", True),
        ("br", "gzip", False),
        ("br", "br", True),
        ("BR;Q=0.5", "br", True),
        ("gzip, deflate, br", "zstd", False),
        ("*", "zstd", True),
        ("*, gzip;q=0", "gzip", False),
        ("*, gzip;q=0", "br", True),
        ("x-gzip", "gzip", True),
        ("gzip;q=abc", "gzip", False),  # unreadable weight: not a yes
        ("gzip;q=0.000", "gzip", False),
        ("gzip ; q=0.001", "gzip", True),
    ],
)
def test_acceptance(header: str | None, coding: str, accepted: bool) -> None:
    assert Accepted(header).accepts(coding) is accepted


@pytest.mark.parametrize(
    ("header", "best"),
    [
        ("br", "br"),
        ("identity", ""),
        ("*;q=0", ""),
        ("gzip;q=0.2, br;q=0.8", "br"),
        ("zstd, br", "br"),  # ties: our preference order (gzip, br, zstd, deflate)
        ("deflate, zstd", "zstd"),
        ("*", "gzip"),
        (None, "gzip"),
    ],
)
def test_best_encoding(header: str | None, best: str) -> None:
    assert Accepted(header).best_encoding() == best


def test_from_headers_joins_repeated_fields() -> None:
    a = Accepted.from_headers([("Accept-Encoding", "br"), ("accept-encoding", "gzip;q=0.5")])
    assert a.accepts("br") and a.accepts("gzip") and not a.accepts("zstd")
    assert Accepted.from_headers([("host", "x")]).anything


def test_codings() -> None:
    assert content_codings([("Content-Encoding", "gzip"), ("x", "y")]) == ["gzip"]
    assert content_codings([("content-encoding", "identity, GZIP")]) == ["gzip"]
    assert decodable(["gzip"]) == "gzip"
    assert decodable(["gzip", "br"]) is None
    assert decodable(["compress"]) is None
    assert decodable([]) is None


def test_recoded_headers() -> None:
    hdrs = [("Content-Type", "text/html"), ("Content-Encoding", "gzip"), ("Content-Length", "10"), ("ETag", '"a"')]
    out = recoded_headers(hdrs, "")
    assert out == [("Content-Type", "text/html"), ("ETag", 'W/"a"'), ("vary", "Accept-Encoding")]
    out = recoded_headers([*hdrs, ("Vary", "Cookie, accept-encoding")], "br")
    assert ("content-encoding", "br") in out and ("Vary", "Cookie, accept-encoding") in out
    assert sum(1 for k, _ in out if k.lower() == "vary") == 1
    assert ensure_vary([("vary", "*")]) == [("vary", "*")]
    assert ensure_vary([("Vary", "Origin")]) == [("Vary", "Origin"), ("vary", "Accept-Encoding")]
