"""Key administration and usage reports: the operations behind ``sluicegate keys|usage`` and the admin API.

Owns argument checking for a new key's policy, key creation/rotation (the secret is returned once and
never stored), and ``--since`` parsing. Works on the configured stores directly (no server needed).
Must not know about argparse or HTTP.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sluicegate.config.inference import InferenceSettings
from sluicegate.teams.backends import open_state
from sluicegate.teams.keys import KeyRecord, hint, key_hash, load_pepper, new_key, new_key_id, parse_networks
from sluicegate.teams.store import GroupBy, KeyStore, LedgerStore

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,63}$")
_SINCE = re.compile(r"^(\d{1,6})([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class ManageError(ValueError):
    """A refused operation (bad argument, unknown key); the message is for the operator."""


def parse_since(value: str, now: float | None = None) -> float:
    m = _SINCE.match(value.strip())
    if not m:
        raise ManageError(f"--since: not a duration like 7d, 12h, 30m: {value!r}")
    return (time.time() if now is None else now) - int(m.group(1)) * _UNIT[m.group(2)]


class KeyAdmin:
    def __init__(self, cfg: InferenceSettings, environ: Mapping[str, str] | None = None) -> None:
        self.cfg = cfg
        self.data_dir = Path(cfg.state.data_dir)
        self.environ = dict(environ) if environ is not None else None
        self.keys: KeyStore
        self.ledger: LedgerStore
        self.keys, self.ledger = open_state(cfg.state, cfg.teams.key_pepper_env, self.environ)

    def close(self) -> None:
        self.keys.close()

    def _pepper(self) -> bytes:
        return load_pepper(self.cfg.teams.key_pepper_env, self.data_dir, self.environ)

    def create(self, name: str, *, models: list[str] | None = None, cidrs: list[str] | None = None,
               rpm: int | None = None, tpm: int | None = None, max_streams: int | None = None,
               budget: float | None = None, period: str = "month",
               model_limits: dict[str, dict[str, int | None]] | None = None) -> tuple[str, KeyRecord]:
        if not _NAME.match(name or ""):
            raise ManageError(f"--name: 1..64 letters, digits, . _ : @ + - (got {name!r})")
        for label, value in (("rpm", rpm), ("tpm", tpm), ("max-streams", max_streams)):
            if value is not None and not 1 <= value <= 1_000_000_000:
                raise ManageError(f"--{label} must be between 1 and 1e9")
        if budget is not None and not 0 <= budget <= 1e12:
            raise ManageError("--budget must be a non-negative number of USD")
        if period not in ("day", "month"):
            raise ManageError("--period must be day or month")
        models = [m.strip() for m in models or [] if m.strip()]
        unknown = sorted(set(models) - {m.name for m in self.cfg.models})
        if unknown:
            raise ManageError(f"--models: not configured in [inference]: {', '.join(unknown)}")
        per_model = []
        for model, lim in (model_limits or {}).items():
            if model not in {m.name for m in self.cfg.models}:
                raise ManageError(f"--model-limit: model {model!r} is not configured in [inference]")
            if not isinstance(lim, dict) or set(lim) - {"rpm", "tpm"}:
                raise ManageError("--model-limit: give rpm and/or tpm, e.g. fast:rpm=10,tpm=20000")
            rpm_m, tpm_m = lim.get("rpm"), lim.get("tpm")
            for v in (rpm_m, tpm_m):
                if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 1_000_000_000):
                    raise ManageError("--model-limit: rpm/tpm must be whole numbers between 1 and 1e9")
            per_model.append((model, rpm_m, tpm_m))
        cidrs = [c.strip() for c in cidrs or [] if c.strip()]
        try:
            parse_networks(cidrs)
        except ValueError as exc:
            raise ManageError(f"--cidrs: {exc}") from None
        secret = new_key()
        rec = KeyRecord(id=new_key_id(), name=name, hint=hint(secret), models=tuple(models), cidrs=tuple(cidrs),
                        rpm=rpm, tpm=tpm, max_streams=max_streams, budget=budget, model_limits=tuple(per_model),
                        period=period)  # type: ignore[arg-type]
        try:
            self.keys.create(rec, key_hash(self._pepper(), secret.encode()))
        except ValueError as exc:
            raise ManageError(str(exc)) from None
        return secret, rec

    def get(self, ident: str) -> KeyRecord:
        rec = self.keys.get(ident)
        if rec is None:
            raise ManageError(f"no key with id or name {ident!r}")
        return rec

    def list_keys(self) -> list[KeyRecord]:
        return self.keys.list_keys()

    def set_enabled(self, ident: str, enabled: bool) -> KeyRecord:
        if not self.keys.set_enabled(ident, enabled):
            raise ManageError(f"no key with id or name {ident!r}")
        return self.get(ident)

    def rotate(self, ident: str) -> tuple[str, KeyRecord]:
        secret = new_key()
        if not self.keys.rotate(ident, key_hash(self._pepper(), secret.encode()), hint(secret)):
            raise ManageError(f"no key with id or name {ident!r}")
        return secret, self.get(ident)

    def delete(self, ident: str) -> None:
        if not self.keys.delete(ident):
            raise ManageError(f"no key with id or name {ident!r}")

    def usage(self, by: str, since: str = "30d") -> list[dict[str, Any]]:
        if by not in ("key", "model", "day"):
            raise ManageError("--by must be key, model or day")
        group: GroupBy = by  # type: ignore[assignment]
        return self.ledger.usage(group, parse_since(since))


def parse_model_limit(value: str) -> tuple[str, dict[str, int | None]]:
    """``fast:rpm=10,tpm=20000`` -> ``("fast", {"rpm": 10, "tpm": 20000})``."""
    model, sep, spec = value.partition(":")
    out: dict[str, int | None] = {}
    for item in spec.split(",") if sep else []:
        name, eq, num = item.strip().partition("=")
        if name not in ("rpm", "tpm") or not eq or not num.isdigit():
            raise ManageError(f"--model-limit: not MODEL:rpm=N,tpm=N: {value!r}")
        out[name] = int(num)
    if not model or not out:
        raise ManageError(f"--model-limit: not MODEL:rpm=N,tpm=N: {value!r}")
    return model, out
