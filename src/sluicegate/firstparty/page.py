"""The publisher-page hook: ``[first_party] rewrite_domains`` in publisher pages and stylesheets.

``PageRewriting.install(html)`` registers the signing rule on the page's own ``HtmlRewriter``
after the origin rules (one tokenizer pass; ``build_processor(extra_html_rules=...)``): needles =
the configured hosts, so tags that name none of them stay on the rewriter's fast path.
``wrap(processor)`` is the same rule as a separate stage after the page's processor (a second
pass over its output): the proxy uses it when one pass could differ, i.e. when an injected
snippet or the public host names a rewrite domain (the second pass signs what the first pass
wrote; ``one_pass``). ``wrap_css(processor)`` signs the publisher's own CSS responses the way
a page's ``<style>`` is signed (``CssUrlStream`` after the origin rules' text replacer). Built
once per worker (keys loaded once).
"""

from __future__ import annotations

from sluicegate.config.domains import DomainList
from sluicegate.config.model import Settings
from sluicegate.firstparty.markup import (
    CssUrlStream,
    RawKey,
    UrlMinter,
    chain,
    install_page_rules,
    page_stage,
)
from sluicegate.firstparty.signing import Signer, load_keys
from sluicegate.gate import charset_of
from sluicegate.pipeline import Transformer
from sluicegate.pipeline.html import HtmlRewriter
from sluicegate.pipeline.html.processor import charset_gate


class PageRewriting:
    def __init__(self, settings: Settings, signer: Signer | None = None) -> None:
        fp = settings.first_party
        self.signer = signer or Signer(load_keys(fp.keys_file), fp.path_prefix, fp.url_ttl, fp.max_url_bytes)
        self.domains = DomainList(fp.rewrite_domains)
        self.max_tag_bytes = settings.html.max_tag_bytes
        self.max_text_bytes = settings.html.max_text_bytes
        self.max_css_token_bytes = fp.max_css_token_bytes
        self.cache: dict[str, tuple[int, str | None]] = {}
        self.raw_cache: dict[RawKey, tuple[int, bytes | None]] = {}
        needles = self.domains.needles()
        snippets = "".join(settings.html.head_inject + settings.html.body_end_inject).lower().encode()
        # an injected snippet naming a rewrite domain is signed only by a pass over the output
        self._snippets_named = any(n in snippets for n in needles)
        self._needles = needles

    @classmethod
    def from_settings(cls, settings: Settings) -> PageRewriting | None:
        fp = settings.first_party
        if not (fp.enabled and fp.allowed_domains and fp.rewrite_domains):
            return None
        return cls(settings)

    def one_pass(self, public_host: str) -> bool:
        """Whether ``install`` on the page's rewriter gives the same bytes as ``wrap``: nothing
        the origin rules write (snippets, the public host) names a rewrite domain."""
        if self._snippets_named:
            return False
        host = public_host.lower().encode()
        return not any(n in host for n in self._needles)

    def install(self, html: HtmlRewriter) -> None:
        minter = UrlMinter(self.signer, self.domains, cache=self.cache, raw_cache=self.raw_cache)
        install_page_rules(html, minter, self.max_css_token_bytes)

    def stage(self) -> Transformer:
        minter = UrlMinter(self.signer, self.domains, cache=self.cache, raw_cache=self.raw_cache)
        return page_stage(minter, max_tag_bytes=self.max_tag_bytes, max_text_bytes=self.max_text_bytes,
                          max_css_token_bytes=self.max_css_token_bytes)

    def wrap(self, processor: Transformer, content_type: str = "") -> Transformer:
        """``processor`` then the rule as a second pass, behind the page's charset gate (a
        UTF-16/32 page passes both unmodified)."""
        return chain(processor, charset_gate(self.stage(), charset_of(content_type)))

    def wrap_css(self, processor: Transformer, content_type: str = "") -> Transformer:
        """``processor`` (the origin rules on a ``text/css`` body) then ``url()``/``@import`` on rewrite
        domains signed, as in a page's ``<style>``; a UTF-16/32 stylesheet passes unmodified."""
        minter = UrlMinter(self.signer, self.domains, cache=self.cache, raw_cache=self.raw_cache)
        return chain(processor, charset_gate(CssUrlStream(minter, self.max_css_token_bytes),
                                             charset_of(content_type)))
