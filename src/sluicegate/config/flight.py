"""``[flight]``: React Server Components (Flight) and Next.js rewriting settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FlightSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True  # off: text/x-component bodies and __next_f scripts pass through untouched
    # One open Flight T row held (its header needs the rewritten length); longer rows pass unrewritten.
    max_row_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # Flight bytes carried from one __next_f script to the next while a T row spans them (no HTML is
    # ever held for Flight); a longer T row passes through unrewritten with its original length.
    max_inline_hold_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
