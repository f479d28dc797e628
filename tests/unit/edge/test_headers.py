"""The one hop-by-hop rule: the fixed set, ``Proxy-*``, names listed in ``Connection``; its users agree."""

from __future__ import annotations

import pytest

from sluicegate.config.inference import ProviderSettings
from sluicegate.edge.headers import HOP_BY_HOP, HOP_BY_HOP_BYTES, end_to_end, is_hop_by_hop, strip_hop_by_hop


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
