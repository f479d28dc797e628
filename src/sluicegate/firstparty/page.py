"""The publisher-page hook: ``[first_party] rewrite_domains`` as a stage after the page's processor.

``PageRewriting.wrap(processor)`` returns a transformer that runs the page's own HTML processor
and then ``markup.page_stage`` (its own tokenizer pass, needles = the configured hosts), so the
origin rules in ``pipeline/html`` stay untouched. Built once per worker (keys loaded once).
"""

from __future__ import annotations

from sluicegate.config.model import Settings
from sluicegate.firstparty.guard import DomainList
from sluicegate.firstparty.markup import UrlMinter, chain, page_stage
from sluicegate.firstparty.signing import Signer, load_keys
from sluicegate.pipeline import Transformer


class PageRewriting:
    def __init__(self, settings: Settings, signer: Signer | None = None) -> None:
        fp = settings.first_party
        self.signer = signer or Signer(load_keys(fp.keys_file), fp.path_prefix, fp.url_ttl, fp.max_url_bytes)
        self.domains = DomainList(fp.rewrite_domains)
        self.max_tag_bytes = settings.html.max_tag_bytes
        self.max_text_bytes = settings.html.max_text_bytes
        self.cache: dict[str, tuple[int, str | None]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> PageRewriting | None:
        fp = settings.first_party
        if not (fp.enabled and fp.allowed_domains and fp.rewrite_domains):
            return None
        return cls(settings)

    def stage(self) -> Transformer:
        minter = UrlMinter(self.signer, self.domains, cache=self.cache)
        return page_stage(minter, max_tag_bytes=self.max_tag_bytes, max_text_bytes=self.max_text_bytes)

    def wrap(self, processor: Transformer) -> Transformer:
        return chain(processor, self.stage())
