"""Team governance of the inference face: ``[inference.state]``, ``[inference.teams]``, ``[inference.prices]``.

Owns the typed shape of where keys, limit counters and the usage ledger live (an embedded SQLite
directory by default; Redis for counters and PostgreSQL for keys + ledger when scaled out), the policy
knobs of admission (reservation default, budget status, caches) and the per-model prices. Must not know
about requests, sockets or stores; ``sluicegate.teams`` reads these values.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sluicegate.config.types import Duration

_FROZEN = ConfigDict(extra="forbid", frozen=True)
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class StateSettings(BaseModel):
    """Where governance state lives. Embedded SQLite under ``data_dir`` unless Redis/PostgreSQL are named."""

    model_config = _FROZEN

    # Directory of the embedded SQLite database (WAL), the key-hash pepper file and the ledger spool.
    # Relative paths are taken from the working directory of the process.
    data_dir: str = "sluicegate-data"
    # redis://host:port/db: limit counters (rpm, tpm, streams, budget) move to Redis (atomic Lua scripts).
    redis_url: str = Field(default="", repr=False)
    # postgresql://user:pass@host/db: keys and ledger move to PostgreSQL (asyncpg).
    database_url: str = Field(default="", repr=False)
    # What admission does when the counter store (Redis) cannot be reached: refuse (503) or admit unlimited.
    counter_failure: Literal["fail_open", "fail_closed"] = "fail_closed"
    # Ledger rows waiting for the batch writer; a full queue drops the row (counted + logged), never blocks.
    ledger_queue_max: int = Field(default=10_000, ge=16, le=1_000_000)
    ledger_batch_max: int = Field(default=500, ge=1, le=100_000)  # rows per write transaction
    ledger_flush_interval: Duration = Field(default=0.25, gt=0, le=60)  # longest a row waits, seconds
    # Ledger rows spooled to disk while the database is unreachable (bounded; over it rows are dropped+counted).
    # Ledger rows older than this are deleted (once an hour, by the writer); 0 keeps them forever.
    ledger_retention_days: int = Field(default=400, ge=0, le=100_000)
    spool_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024 * 1024, le=1024**4)
    # How long one admission waits for the shared SQLite write lock before answering 503.
    lock_timeout: Duration = Field(default=2.0, gt=0, le=60)
    # Embedded store: while a key is far below its limits, a worker leases up to this many admissions
    # (with their tokens, budget and stream slots) in one transaction and admits them locally; 0 = every
    # admission is its own SQLite transaction. Never over-admits; see docs/teams.md.
    lease_max_requests: int = Field(default=32, ge=0, le=10_000)
    # How long a lease lives: admissions under it are counted as if made at its end (the sliding window
    # errs late by at most this), and a refusal near the limit may wait this long for other workers' leases.
    lease_ttl: Duration = Field(default=0.25, gt=0, le=5)

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str) -> str:
        if value and not re.match(r"^rediss?://", value):
            raise ValueError("must be a redis:// or rediss:// URL")
        return value

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str) -> str:
        if value and not re.match(r"^postgres(?:ql)?://", value):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("data_dir")
    @classmethod
    def _dir(cls, value: str) -> str:
        if not value.strip() or "\0" in value:
            raise ValueError("must be a directory path")
        return value


class TeamsSettings(BaseModel):
    """Admission policy shared by every key (per-key limits live with the keys, in the state store)."""

    model_config = _FROZEN

    # Output tokens reserved for a request that names no max_tokens (settled to the real count at the end).
    default_reserve_tokens: int = Field(default=1024, ge=0, le=10_000_000)
    # Status of a request refused because its key's budget for the period is spent: 402 or 429.
    budget_status: Literal[402, 429] = 429
    # Seconds a looked-up key (policy, enabled) is cached per worker: a disabled key stops within this time.
    key_cache_ttl: Duration = Field(default=2.0, ge=0, le=300)
    # Keys with their own Prometheus label value; further keys are counted under key="other".
    metrics_max_keys: int = Field(default=100, ge=0, le=10_000)
    # Environment variable with the admin API token (or admin_token_file); neither set = admin API off.
    admin_token_env: str = "SLUICEGATE_ADMIN_TOKEN"
    admin_token_file: str = ""
    # Environment variable with the secret mixed into the key hash (HMAC-SHA256); unset = a random pepper
    # kept in data_dir/key-pepper (0600). Instances sharing a database must share the pepper.
    key_pepper_env: str = "SLUICEGATE_KEY_PEPPER"

    @field_validator("admin_token_env", "key_pepper_env")
    @classmethod
    def _env(cls, value: str) -> str:
        if value and not _ENV.match(value):
            raise ValueError("not an environment variable name")
        return value


class PriceSettings(BaseModel):
    """USD per million tokens for one model (client model name, or the upstream model a target names)."""

    model_config = _FROZEN

    input: float = Field(default=0.0, ge=0, le=1_000_000)
    output: float = Field(default=0.0, ge=0, le=1_000_000)
    cached_input: float | None = Field(default=None, ge=0, le=1_000_000)  # default: the input price
