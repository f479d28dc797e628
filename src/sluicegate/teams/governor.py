"""The governor: the narrow interface between the inference intake and team governance.

Three calls per request, all outside the relay loop:
  * ``authenticate(headers, client_ip)`` at intake, before the body is read: the presented key
    (``Authorization: Bearer`` or ``x-api-key``) -> its ``KeyRecord``, a ``Refusal`` (401/403), or ``None``
    (no virtual key and none required: single-user mode, or a static ``client_keys_env`` key);
  * ``admit(key, model, body, request_id, family)`` once the model is known, before any upstream call:
    model allow-list, then one atomic check-and-reserve in the limit store (rpm, tpm with the request's
    reserved tokens, concurrent streams, budget) -> a ``Ticket`` or a ``Refusal`` (429 + Retry-After;
    budget 402/429);
  * ``settle(ticket, info)`` after the response ended: the tokens the terminal usage event reported
    (recorded on the ticket by ``observe`` where the usage tap finishes, via ``CURRENT``) replace the
    reservation; the ledger row goes to the bounded queue.
Inactive (returns ``None`` everywhere, no files touched) until keys exist or are required. Must not know
ASGI, SSE framing or providers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import re
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluicegate.config.inference import InferenceSettings
from sluicegate.config.teams import PriceSettings
from sluicegate.teams import metrics as tm
from sluicegate.teams.backends import open_limits, open_state
from sluicegate.teams.keys import KeyHasher, KeyRecord, Period, load_pepper, looks_like_key, period_end, period_label
from sluicegate.teams.ledger import LedgerWriter
from sluicegate.teams.store import Denied, KeyStore, LedgerStore, LimitStore, Reservation, StoreUnavailable

log = logging.getLogger("sluicegate.teams")
_MAX_TOKENS = re.compile(rb'"(?:max_tokens|max_completion_tokens|max_output_tokens)"\s*:\s*(\d{1,9})')
_CACHE_MAX = 10_000


@dataclass(slots=True)
class Refusal:
    status: int
    message: str
    code: str
    retry_after: float | None = None

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(k.encode(), v.encode()) for k, v in self.str_headers()]

    def str_headers(self) -> list[tuple[str, str]]:
        if self.retry_after is None:
            return []
        return [("retry-after", str(max(1, math.ceil(self.retry_after))))]


@dataclass(slots=True)
class Ticket:
    """One admitted request: what it reserved, and what the relay observed (filled by ``observe``)."""

    key: KeyRecord | None
    res: Reservation | None
    model: str
    request_id: str
    anthropic: bool
    est_input: int
    ts: float
    started: float
    attempts: int = 0
    usage: Any = None  # inference.sse.Usage from the terminal usage event, when the provider sent one
    provider: str = ""
    upstream_model: str = ""
    status: int = 0
    outcome: str = ""

    def observe(self, usage: Any, provider: str, status: int, outcome: str) -> None:
        self.usage = usage
        self.provider = provider
        self.status = status
        self.outcome = outcome


CURRENT: ContextVar[Ticket | None] = ContextVar("sluicegate_teams_ticket", default=None)


def presented_key(headers: Mapping[bytes, bytes]) -> bytes:
    key = headers.get(b"x-api-key", b"").strip()
    if not key:
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer ":
            key = auth[7:].strip()
    return key


class Governor:
    def __init__(self, cfg: InferenceSettings, environ: Mapping[str, str] | None = None,
                 has_static_keys: bool = False) -> None:
        self.cfg = cfg
        self.env = dict(os.environ if environ is None else environ)
        st = cfg.state
        self.data_dir = Path(st.data_dir)
        self.has_static = has_static_keys
        self.prices: dict[str, PriceSettings] = dict(cfg.prices)
        self.keys: KeyStore
        self.ledger_store: LedgerStore
        self.limits: LimitStore
        self.keys, self.ledger_store = open_state(st, cfg.teams.key_pepper_env, self.env)
        self.limits = open_limits(st)
        self.ledger = LedgerWriter(self.ledger_store, self.data_dir, queue_max=st.ledger_queue_max,
                                   batch_max=st.ledger_batch_max, interval=st.ledger_flush_interval,
                                   spool_max_bytes=st.spool_max_bytes, retention_days=st.ledger_retention_days)
        self._pepper: bytes | None = None
        self._hasher: KeyHasher | None = None
        self._req_pid = 0
        self._req_prefix = ""  # random per process, + a counter: reservation ids unique across processes
        self._req_seq = itertools.count()
        self._periods: dict[str, tuple[int, str]] = {}
        self._cache: dict[bytes, tuple[float, KeyRecord | None]] = {}
        self._active = False
        self._active_checked = -1e9
        self._any_keys = (False, -1e9)
        self._labels: dict[str, str] = {}
        self._children: dict[tuple[str, str], Any] = {}  # bounded: labels are bounded, outcomes fixed words
        self._settled: dict[str, tuple[Any, Any, Any, Any]] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._store_errors = 0
        self._store_error_logged = -1e9
        self.remote = bool(st.database_url)

    # ---- lifecycle ----

    async def startup(self) -> None:
        self._reaper = asyncio.ensure_future(self._reap_loop())

    async def shutdown(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(BaseException):
                await self._reaper
        await asyncio.get_running_loop().run_in_executor(None, self.ledger.stop)
        await self.limits.close()
        await asyncio.get_running_loop().run_in_executor(None, self.keys.close)

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(15)
            if self.active:
                try:
                    n = await self.limits.reap(time.time())
                    if n:
                        log.warning("released %d in-flight reservations held by exited workers", n)
                except StoreUnavailable:
                    pass

    # ---- state ----

    @property
    def active(self) -> bool:
        """Governance is on when keys are required, a shared database is named, or a state database exists."""
        if self._active:
            return True
        now = time.monotonic()
        if now - self._active_checked < max(self.cfg.teams.key_cache_ttl, 0.5):
            return False
        self._active_checked = now
        self._active = bool(self.cfg.require_keys or self.remote or (self.data_dir / "state.db").exists())
        return self._active

    async def _store(self, fn: Any, *args: Any) -> Any:
        """A key-store call: inline for SQLite (tens of us), on a worker thread for a network database."""
        if not self.remote:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def _required(self) -> bool:
        if self.cfg.require_keys is not None:
            return self.cfg.require_keys
        any_keys, at = self._any_keys
        now = time.monotonic()
        if now - at > self.cfg.teams.key_cache_ttl:
            try:
                any_keys = await self._store(self.keys.count) > 0
            except Exception as exc:  # unreachable: keep the last answer (never opens up a keyed gateway)
                log.warning("key store unavailable (%s)", exc)
                any_keys = any_keys or at < 0
            self._any_keys = (any_keys, now)
        return bool(any_keys)

    def pepper(self) -> bytes:
        if self._pepper is None:
            self._pepper = load_pepper(self.cfg.teams.key_pepper_env, self.data_dir, self.env)
        return self._pepper

    async def _lookup(self, key: bytes) -> KeyRecord | None:
        if self._hasher is None:
            self._hasher = KeyHasher(self.pepper())
        digest = self._hasher(key)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            rec: KeyRecord | None = await self._store(self.keys.by_hash, digest)
        except Exception:
            if hit is not None:  # key store unreachable: the last answer stands until it comes back
                return hit[1]
            raise
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[digest] = (now + self.cfg.teams.key_cache_ttl, rec)
        return rec

    def _label(self, key: KeyRecord | None) -> str:
        if key is None:
            return "none"
        label = self._labels.get(key.name)
        if label is None:
            label = key.name if len(self._labels) < self.cfg.teams.metrics_max_keys else "other"
            if len(self._labels) < 4 * self.cfg.teams.metrics_max_keys + 16:
                self._labels[key.name] = label
        return label

    def _count(self, label: str, outcome: str) -> None:
        child = self._children.get((label, outcome))
        if child is None:
            child = self._children[(label, outcome)] = tm.KEY_REQUESTS.labels(label, outcome)
        child.inc()

    # ---- the three calls ----

    async def authenticate(self, headers: Mapping[bytes, bytes], client_ip: str) -> KeyRecord | Refusal | None:
        if not self.active:
            return None
        presented = presented_key(headers)
        if not looks_like_key(presented):
            if self.has_static and presented:
                return None  # a static client_keys_env key: the gateway checks it
            if await self._required():
                self._count("none", "unauthorized")
                return Refusal(401, "missing or invalid API key", "invalid_api_key")
            return None
        try:
            rec = await self._lookup(presented)
        except Exception as exc:
            log.error("virtual key lookup failed: %s", exc)
            return Refusal(503, "key store unavailable", "key_store_unavailable", 1.0)
        if rec is None or not rec.enabled:
            self._count("none", "unauthorized")
            return Refusal(401, "invalid or disabled API key", "invalid_api_key")
        if not rec.allows_ip(client_ip):
            self._count(self._label(rec), "forbidden")
            return Refusal(403, "this API key may not be used from this address", "address_not_allowed")
        return rec

    async def admit(self, key: KeyRecord | None, model: str, body: bytes, request_id: str,
                    anthropic: bool) -> Ticket | Refusal | None:
        if not self.active:
            return None
        now = time.time()
        est_input = len(body) // 4  # ~4 bytes per token of JSON prompt: a reservation, settled to the truth
        ticket = Ticket(key, None, model, request_id, anthropic, est_input, now, time.perf_counter())
        if key is None:
            return ticket
        if not key.allows_model(model):
            self._count(self._label(key), "forbidden")
            return Refusal(403, f"this API key may not use model {model[:200]!r}", "model_not_allowed")
        if not key.limited:
            self._count(self._label(key), "admitted")
            return ticket
        m = _MAX_TOKENS.search(body)
        max_out = int(m.group(1)) if m else self.cfg.teams.default_reserve_tokens
        tokens = est_input + max_out
        # (each window caps the reservation at its tpm: a request bigger than a whole minute can still run alone)
        if self._req_pid != os.getpid():  # forked: a prefix of our own
            self._req_pid, self._req_prefix = os.getpid(), os.urandom(6).hex()
        res = Reservation(f"{self._req_prefix}{next(self._req_seq):x}", key.id, tokens,
                          self.cost(model, "", est_input, max_out, 0, anthropic),
                          self._period(key.period, now) if key.budget is not None else "", model=model)
        try:
            denied = await self.limits.admit(key, res, now)
        except StoreUnavailable as exc:
            policy = self.cfg.state.counter_failure
            tm.COUNTER_STORE_ERRORS.labels(policy).inc()
            self._store_errors += 1
            mono = time.monotonic()
            if mono - self._store_error_logged >= 10:  # one line per 10 s, not one per request
                self._store_error_logged = mono
                log.warning("limit store unavailable (%s): %s request %s (%d such requests so far)", exc,
                            "admitting" if policy == "fail_open" else "refusing", request_id, self._store_errors)
            if policy == "fail_closed":
                self._count(self._label(key), "unavailable")
                return Refusal(503, "rate limiter unavailable", "limiter_unavailable", 1.0)
            res.held = False
            denied = None
        if denied is not None:
            self._count(self._label(key), denied.reason)
            return self._refusal(key, denied, now)
        ticket.res = res
        self._count(self._label(key), "admitted")
        return ticket

    def _period(self, period: Period, now: float) -> str:
        """``period_label``, formatted once per second (not per request)."""
        second = int(now)
        hit = self._periods.get(period)
        if hit is None or hit[0] != second:
            hit = self._periods[period] = (second, period_label(period, now))
        return hit[1]

    def _refusal(self, key: KeyRecord, d: Denied, now: float) -> Refusal:
        if d.reason == "budget":
            return Refusal(self.cfg.teams.budget_status,
                           f"budget of {key.budget:g} USD per {key.period} is spent for this key",
                           "budget_exceeded", period_end(key.period, now) - now)
        what = {"rpm": f"{int(d.limit)} requests per minute", "tpm": f"{int(d.limit)} tokens per minute",
                "streams": f"{int(d.limit)} concurrent requests"}.get(d.reason, d.reason)
        return Refusal(429, f"rate limit reached for this key: {what}", "rate_limit_exceeded", d.retry_after)

    async def settle(self, ticket: Ticket, ttfb: float | None = None) -> None:
        usage = ticket.usage
        cached = 0
        estimated = False
        if usage is not None and usage.known:
            tin = usage.input_tokens or 0
            tout = usage.output_tokens or 0
            cached = usage.cache_read_tokens or 0
        else:  # an accepted request that reported nothing (cut short): the prompt estimate, as providers bill it
            tin, tout, estimated = (ticket.est_input if 0 < ticket.status < 400 else 0), 0, True
        tokens = tin + tout + (cached if ticket.anthropic else 0)
        cost = self.cost(ticket.model, ticket.upstream_model, tin, tout, cached, ticket.anthropic)
        key = ticket.key
        res = ticket.res
        if key is not None and res is not None and res.held:
            try:
                await self.limits.settle(key, res, tokens, cost)
            except StoreUnavailable as exc:
                log.warning("settling request %s failed (%s): its reservation stands until it expires",
                            ticket.request_id, exc)
        if key is not None:
            label = self._label(key)
            m = self._settled.get(label)
            if m is None:
                m = self._settled[label] = (tm.KEY_TOKENS.labels(label, "input"), tm.KEY_TOKENS.labels(label, "output"),
                                            tm.KEY_TOKENS.labels(label, "cached"), tm.KEY_COST.labels(label))
            m[0].inc(tin)
            m[1].inc(tout)
            if cached:
                m[2].inc(cached)
            if cost:
                m[3].inc(cost)
        duration = (time.perf_counter() - ticket.started) * 1000
        if not self.ledger.running:  # started with the first row: single-user mode runs no writer thread
            self.ledger.start()
        self.ledger.put((ticket.ts, ticket.request_id, key.id if key else None, key.name if key else None,
                         ticket.model, ticket.provider, ticket.upstream_model, ticket.attempts, ticket.status,
                         ticket.outcome or "unanswered", tin, tout, cached, int(estimated), round(cost, 9),
                         round(ttfb * 1000, 3) if ttfb is not None and ttfb >= 0 else None, round(duration, 3)))

    def cost(self, model: str, upstream_model: str, tin: int, tout: int, cached: int, anthropic: bool) -> float:
        price = self.prices.get(upstream_model) or self.prices.get(model)
        if price is None:
            return 0.0
        cached_price = price.input if price.cached_input is None else price.cached_input
        # OpenAI usage counts cached tokens inside input_tokens; Anthropic reports cache reads apart.
        uncached = tin if anthropic else max(tin - cached, 0)
        return (uncached * price.input + cached * cached_price + tout * price.output) / 1_000_000
