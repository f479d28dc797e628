"""The one hop-by-hop rule: the fixed set, ``Proxy-*``, names listed in ``Connection``; its users agree."""

from __future__ import annotations

import pytest

from sluicegate.config.inference import ProviderSettings
from sluicegate.edge.headers import (
    HOP_BY_HOP,
    HOP_BY_HOP_BYTES,
    TrustedProxies,
    end_to_end,
    for_rewritten_body,
    is_hop_by_hop,
    strip_hop_by_hop,
)


def test_hop_by_hop_and_connection_listed() -> None:
    src = [
        ("Connection", "keep-alive, X-Secret-Hop"),
        ("Keep-Alive", "5"),
        ("TE", "trailers"),
        ("Trailer", "x"),
        ("Transfer-Encoding", "chunked"),
        ("Upgrade", "h2c"),
        ("Proxy-Authorization", "x"),
        ("Proxy-Connection", "x"),
        ("X-Secret-Hop", "1"),
        ("Accept", "*/*"),
    ]
    assert strip_hop_by_hop(src) == [("Accept", "*/*")]


def test_end_to_end_keeps_order_and_lowers_names_once() -> None:
    src = [("X-A", "1"), ("Connection", "close"), ("x-b", "2"), ("X-A", "3")]
    assert end_to_end(src) == [("x-a", "X-A", "1"), ("x-b", "x-b", "2"), ("x-a", "X-A", "3")]


def test_connection_tokens_are_trimmed_and_case_folded() -> None:
    src = [("connection", " X-One ,x-TWO,, "), ("X-One", "1"), ("X-Two", "2"), ("X-Three", "3")]
    assert strip_hop_by_hop(src) == [("X-Three", "3")]


def test_bytes_form_is_the_same_set() -> None:
    assert {n.decode() for n in HOP_BY_HOP_BYTES} == set(HOP_BY_HOP)
    assert all(is_hop_by_hop(n) for n in HOP_BY_HOP)
    assert is_hop_by_hop("proxy-anything") and not is_hop_by_hop("x-proxy")


@pytest.mark.parametrize("name", ["Connection", "Keep-Alive", "TE", "Proxy-Authorization", "Proxy-Whatever"])
def test_the_config_refuses_a_hop_by_hop_provider_header(name: str) -> None:
    """config/inference validates provider headers with the same rule (no list of its own)."""
    with pytest.raises(ValueError, match="header not allowed here"):
        ProviderSettings(name="p", kind="mock", headers={name: "x"})
    with pytest.raises(ValueError, match="header cannot be forwarded"):
        ProviderSettings(name="p", kind="mock", forward_headers=[name])


def test_rewritten_body_headers() -> None:
    out = for_rewritten_body(
        [("Content-Length", "5"), ("ETag", '"abc"'), ("Accept-Ranges", "bytes"), ("Content-Encoding", "gzip")]
    )
    assert out == [("ETag", 'W/"abc"'), ("Content-Encoding", "gzip")]
    assert for_rewritten_body([("etag", 'W/"x"')]) == [("etag", 'W/"x"')]


def test_trusted_proxies_match_configured_networks_only() -> None:
    trusted = TrustedProxies(["10.0.0.0/8", "2001:db8::/32"])
    assert "10.1.2.3" in trusted and "2001:db8::1" in trusted
    assert "11.0.0.1" not in trusted and "" not in trusted and None not in trusted and "not-an-ip" not in trusted
    assert "10.0.0.1" not in TrustedProxies([])
