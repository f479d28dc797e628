"""``[inference]``: the LLM gateway (providers, models, routing)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class InferenceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    listen_hosts: list[str] = Field(default_factory=list)
    path_prefix: str = ""
