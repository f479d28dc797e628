"""check-site's own notion of "the same modulo hosts": authority spellings, boundaries, leaks."""

from __future__ import annotations

import pytest

from sluicegate.sitecheck.sites import SCHEME, SITE, SiteError, SiteMap, url_key

ORIGIN, PUBLIC = "http://origin.example:8080", "https://www.pub.example"


@pytest.fixture
def site() -> SiteMap:
    return SiteMap(ORIGIN, PUBLIC, aliases=["www.origin.example", "origin-internal:8443"])


@pytest.mark.parametrize("url", [
    "http://origin.example:8080/a",
    "HTTP://ORIGIN.EXAMPLE:8080/a",
    "http://origin.example.:8080/",
    "http://www.origin.example/x",
    "http://origin-internal:8443/y",
    "ws://origin.example:8080/socket",
])
def test_leaks_are_requests_to_any_origin_authority(site: SiteMap, url: str) -> None:
    assert site.leaks([url, "https://www.pub.example/a"]) == [url]


@pytest.mark.parametrize("url", [
    "http://origin.example/a",            # another port is another authority
    "http://origin.example:80801/a",
    "http://a.origin.example:8080/",
    "http://origin.example.evil:8080/",
    "https://www.pub.example/",
    "data:text/plain,http://origin.example:8080/",
    "blob:https://www.pub.example/1",
])
def test_not_leaks(site: SiteMap, url: str) -> None:
    assert site.leaks([url]) == []


def test_url_key_defaults_ports_and_lowercases() -> None:
    assert url_key("HTTPS://Example.COM./p") == ("example.com", 443)
    assert url_key("http://example.com:8080") == ("example.com", 8080)
    assert url_key("mailto:x@example.com") is None
    assert url_key("http://[::1]:bad/") is None


@pytest.mark.parametrize("text", [
    "see http://origin.example:8080/p",
    "url=http%3A%2F%2Forigin.example%3A8080%2Fp",
    "url=http%3a%2f%2forigin.example%3a8080%2fp",
    "{\"u\":\"http:\\/\\/origin.example:8080\\/p\"}",
    "{\"u\":\"http:\\u002F\\u002Forigin.example:8080\\u002Fp\"}",
    "//origin.example:8080/p and ORIGIN.EXAMPLE:8080",
    "mail the host origin.example:8080.",
    "http://www.origin.example/ and origin-internal:8443",
])
def test_origin_refs_found_in_every_spelling(site: SiteMap, text: str) -> None:
    assert site.origin_refs(text)


@pytest.mark.parametrize("text", [
    "http://origin.example:80800/",
    "http://xorigin.example:8080/",
    "http://origin.example.evil:8080/",
    "http://sub.www.origin.example/",
    "https://www.pub.example/p",
    "origin.example:8443",
])
def test_no_origin_ref_at_other_hosts(site: SiteMap, text: str) -> None:
    assert site.origin_refs(text) == []


def test_normalise_maps_both_sides_to_one_form(site: SiteMap) -> None:
    direct = ('a href="http://origin.example:8080/p?u=http%3A%2F%2Forigin.example%3A8080%2Fq" '
              '{"x":"http:\\/\\/origin.example:8080\\/"}')
    proxied = ('a href="https://www.pub.example/p?u=https%3A%2F%2Fwww.pub.example%2Fq" '
               '{"x":"https:\\/\\/www.pub.example\\/"}')
    assert site.norm_direct(direct) == site.norm_proxied(proxied)
    assert SITE in site.norm_direct(direct) and SCHEME in site.norm_direct(direct)


def test_normalise_keeps_what_the_proxy_left_unmapped(site: SiteMap) -> None:
    assert site.norm_direct("at http://origin.example:8080/") != site.norm_proxied("at http://origin.example:8080/")
    # the encoding must match too: a proxy that decoded the value changed the page
    assert site.norm_direct("u=http%3A%2F%2Forigin.example%3A8080") != site.norm_proxied("u=https://www.pub.example")


def test_schemes_only_merge_next_to_the_host(site: SiteMap) -> None:
    assert site.norm_direct("http is fine; http://origin.example:8080") == f"http is fine; {SCHEME}://{SITE}"


def test_to_public_and_page_key(site: SiteMap) -> None:
    assert site.to_public("http://origin.example:8080/a/b?x=1#f") == "https://www.pub.example/a/b?x=1#f"
    assert site.to_public("http://www.origin.example") == "https://www.pub.example/"
    assert site.to_public("https://elsewhere.example/") == "https://elsewhere.example/"
    assert site.page_key("HTTP://Origin.example:8080/a#frag") == "http://origin.example:8080/a"


@pytest.mark.parametrize(("origin", "public"), [
    ("ftp://origin.example/", PUBLIC),
    ("origin.example", PUBLIC),
    (ORIGIN, "http://origin.example:8080"),
    ("http://origin.example:99999/", PUBLIC),
])
def test_bad_configurations_are_errors(origin: str, public: str) -> None:
    with pytest.raises(SiteError):
        SiteMap(origin, public)
