"""Which stores a configuration names: embedded SQLite, or PostgreSQL (keys + ledger) and Redis (counters).

Must not know HTTP; the only place that maps ``[inference.state]`` to store classes.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path

from sluicegate.config.teams import StateSettings
from sluicegate.teams.sqlite import SqliteLimits, SqliteState
from sluicegate.teams.store import KeyStore, LedgerStore, LimitStore


def open_state(st: StateSettings, pepper_env: str = "", environ: Mapping[str, str] | None = None) \
        -> tuple[KeyStore, LedgerStore]:
    if st.database_url:
        _need("asyncpg", "inference.state.database_url")
        env = os.environ if environ is None else environ
        if pepper_env and not env.get(pepper_env):
            # a per-host pepper file would make each instance hash keys differently
            raise ValueError(f"inference.state.database_url: instances sharing keys must share the key-hash "
                             f"pepper: set the environment variable {pepper_env} (inference.teams.key_pepper_env)")
        from sluicegate.teams.postgres import PostgresState

        pg = PostgresState(st.database_url, timeout=max(st.lock_timeout, 1.0))
        return pg, pg
    sq = SqliteState(Path(st.data_dir))
    return sq, sq


def open_limits(st: StateSettings) -> LimitStore:
    if st.redis_url:
        _need("redis", "inference.state.redis_url")
        from sluicegate.teams.redis_limits import RedisLimits

        return RedisLimits(st.redis_url, st.lock_timeout)
    return SqliteLimits(Path(st.data_dir), st.lock_timeout, lease_max=st.lease_max_requests, lease_ttl=st.lease_ttl)


def _need(module: str, key: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ValueError(f"{key} needs the Python package {module!r}: pip install 'sluicegate[teams]'")
