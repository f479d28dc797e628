"""``[html]``: HTML rewriting and injection settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class HtmlSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    head_inject: list[str] = Field(default_factory=list)  # snippets prepended inside the first <head>
    body_end_inject: list[str] = Field(default_factory=list)  # snippets placed before the first real </body>
    max_tag_bytes: int = Field(default=64 * 1024, ge=256)  # an incomplete tag held longer is passed through
    # Origin references in HTML text (data text, <title>, <textarea>) are rewritten like everything
    # else; off: text and the Flight strings that can feed text are left alone (docs/url-mapping.md).
    rewrite_text: bool = True
    max_text_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)  # script/style body handed to a rule whole
