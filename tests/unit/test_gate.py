"""The gate, case by case: every route and the header framing of bodiless responses."""

import pytest

from sluicegate.gate import Kind, Route, bodiless_headers, classify


def h(ctype: str | None = None, enc: str | None = None) -> list[tuple[str, str]]:
    out = []
    if ctype is not None:
        out.append(("Content-Type", ctype))
    if enc is not None:
        out.append(("Content-Encoding", enc))
    out.append(("Content-Length", "123"))
    return out


@pytest.mark.parametrize(
    "method,status",
    [("HEAD", 200), ("GET", 204), ("GET", 205), ("GET", 304), ("GET", 101), ("HEAD", 404), ("GET", 103)],
)
def test_bodiless(method: str, status: int) -> None:
    assert classify(method, status, h("text/html")).route is Route.BODILESS


def test_bodiless_framing() -> None:
    base = [("content-length", "10"), ("transfer-encoding", "chunked"), ("etag", '"x"')]
    assert bodiless_headers(204, base) == [("etag", '"x"')]
    assert bodiless_headers(205, base) == [("etag", '"x"'), ("content-length", "0")]
    assert bodiless_headers(304, base) == base  # describes the GET representation
    assert bodiless_headers(200, base) == base  # HEAD keeps Content-Length


@pytest.mark.parametrize(
    "ctype",
    [
        "image/png",
        "font/woff2",
        "video/mp4",
        "audio/mpeg",
        "application/octet-stream",
        "text/event-stream",
        "application/x-unknown",
        None,
        "",
        "application/jsonp",
        "application/pdf",
    ],
)
def test_pass_through_not_processable(ctype: str | None) -> None:
    d = classify("GET", 200, h(ctype))
    assert d.route is Route.PASS_THROUGH


@pytest.mark.parametrize("status", [200, 301, 404, 500])
def test_pass_through_at_any_status(status: int) -> None:
    assert classify("GET", status, h("image/webp")).route is Route.PASS_THROUGH


@pytest.mark.parametrize("enc", ["compress", "gzip, br", "br, gzip", "x-custom"])
def test_pass_through_undecodable_encoding(enc: str) -> None:
    assert classify("GET", 200, h("text/html", enc)).route is Route.PASS_THROUGH


@pytest.mark.parametrize(
    "ctype,kind",
    [
        ("text/html; charset=utf-8", Kind.HTML),
        ("TEXT/HTML", Kind.HTML),
        ("application/xhtml+xml", Kind.HTML),
        ("text/x-component", Kind.FLIGHT),
        ("text/css", Kind.TEXT),
        ("text/javascript", Kind.TEXT),
        ("application/javascript", Kind.TEXT),
        ("application/json", Kind.TEXT),
        ("application/ld+json", Kind.TEXT),
        ("application/manifest+json", Kind.TEXT),
        ("text/plain", Kind.TEXT),
        ("text/xml", Kind.TEXT),
        ("application/xml", Kind.TEXT),
        ("image/svg+xml", Kind.TEXT),
        ("application/rss+xml", Kind.TEXT),
    ],
)
@pytest.mark.parametrize("enc", [None, "gzip", "deflate", "br", "zstd", "identity", "GZIP"])
def test_stream(ctype: str, kind: Kind, enc: str | None) -> None:
    d = classify("GET", 200, h(ctype, enc))
    assert d.route is Route.STREAM
    assert d.kind is kind
    assert d.encoding == ("" if enc in (None, "identity") else enc.lower())


@pytest.mark.parametrize("status", [200, 302, 404, 503])
def test_stream_at_any_status(status: int) -> None:
    assert classify("POST", status, h("text/html")).route is Route.STREAM
