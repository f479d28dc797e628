"""``head_plan``: the planned response head is exactly the general path's (``downstream_response_headers`` then
``encode_headers``), and the plan's decision is ``gate.classify``'s, on real-world header lists."""

from __future__ import annotations

import pytest

from sluicegate import gate
from sluicegate.config.origin import Origin
from sluicegate.edge.asgi import encode_headers
from sluicegate.pipeline.hosts import OriginMatcher
from sluicegate.publisher import headers as hdr
from sluicegate.publisher import response_headers as rh
from sluicegate.publisher.head_plan import MAX_PLANS, HeadPlans

ORIGIN = Origin.parse("https://www.origin-site.com")
NAMES = rh.origin_names(ORIGIN)
RW = OriginMatcher(ORIGIN).for_request("https", "www.pub.example")
PUBLIC = ("www.pub.example", "static.pub.example")

NGINX = [(b"Server", b"nginx/1.22.1"), (b"Date", b"Mon, 07 Dec 2026 06:00:00 GMT"),
         (b"Content-Type", b"application/octet-stream"), (b"Content-Length", b"2048"),
         (b"Last-Modified", b"Mon, 07 Dec 2026 05:00:00 GMT"), (b"Connection", b"keep-alive"),
         (b"ETag", b'"abc-800"'), (b"Accept-Ranges", b"bytes")]
HEADS = {
    "nginx static": NGINX,
    "origin URLs, cookies, CSP": [
        (b"Content-Type", b"text/html; charset=utf-8"), (b"Location", b"https://www.origin-site.com/next"),
        (b"Link", b"<https://www.origin-site.com/a.css>; rel=preload"), (b"X-Request-Id", b"origin-own-id"),
        (b"Set-Cookie", b"sid=1; Domain=.origin-site.com; Path=/; Secure"), (b"Set-Cookie", b"other=2"),
        (b"Content-Security-Policy", b"default-src 'self' *.origin-site.com https://www.origin-site.com"),
        (b"Cache-Control", b"max-age=60, https://www.origin-site.com"), (b"Vary", b"Accept-Encoding"),
    ],
    "hop-by-hop and Connection-listed": [
        (b"Connection", b"close, X-Secret"), (b"X-Secret", b"hop"), (b"Keep-Alive", b"timeout=5"),
        (b"Proxy-Authenticate", b"Basic"), (b"Transfer-Encoding", b"chunked"), (b"TE", b"trailers"),
        (b"Upgrade", b"h2c"), (b"Connection", b"x-other"), (b"X-Other", b"hop"), (b"X-Kept", b"https://www.origin-site.com/"),
        (b"Content-Type", b"text/css"), (b"Content-Type", b"image/png"), (b"Content-Encoding", b"gzip"),
    ],
    "stacked codings": [(b"Content-Type", b"text/html"), (b"Content-Encoding", b"gzip, identity"),
                        (b"content-encoding", b"br")],
    "no content type": [(b"Content-Length", b"0"), (b"X-Thing", b"origin-site.com")],
}


def general(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    text = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]
    return encode_headers(hdr.downstream_response_headers(text, RW, ORIGIN, "rid", public_hosts=PUBLIC))


@pytest.mark.parametrize("name", sorted(HEADS))
def test_the_planned_head_is_the_general_paths(name: str) -> None:
    raw = HEADS[name]
    plans = HeadPlans("x-request-id")
    for _ in range(2):  # the plan as built, and as found again
        plan = plans.plan(raw)
        assert [*plan.apply(raw, RW, NAMES, PUBLIC), (b"x-request-id", b"rid")] == general(raw)
    text = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]
    for method in ("GET", "HEAD", "POST"):
        for status in (200, 204, 304, 404):
            assert plans.decision(method, status, raw, plan) == gate.classify(method, status, text)


def test_a_plan_serves_every_head_of_its_shape_with_that_heads_values() -> None:
    plans = HeadPlans("x-request-id")
    other = [(k, v.replace(b"2048", b"99").replace(b"06:00:00", b"06:00:01")) for k, v in NGINX]
    assert plans.plan(NGINX) is plans.plan(other)
    assert plans.plan(other).apply(other, RW, NAMES, PUBLIC) == general(other)[:-1]
    mapped = [(b"Server", b"https://www.origin-site.com/x"), *NGINX[1:]]  # same shape, a value to map
    assert plans.plan(mapped).apply(mapped, RW, NAMES, PUBLIC)[0] == (b"server", b"https://www.pub.example/x")
    # the Connection header's list is part of the shape: it decides what is stripped
    listed = [(k, b"close, ETag" if k == b"Connection" else v) for k, v in NGINX]
    assert plans.plan(listed) is not plans.plan(NGINX)
    assert (b"etag", b'"abc-800"') not in plans.plan(listed).apply(listed, RW, NAMES, PUBLIC)


def test_plans_are_bounded() -> None:
    plans = HeadPlans("x-request-id")
    for i in range(MAX_PLANS * 2 + 3):
        plans.plan([(b"X-%d" % i, b"v")])
    assert len(plans._plans) <= MAX_PLANS
