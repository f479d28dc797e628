"""``[flight]``: React Server Components (Flight) and Next.js rewriting settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FlightSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    max_row_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)  # one incomplete Flight row held at most
    # __next_f scripts held while a T row spans them
    max_inline_hold_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
