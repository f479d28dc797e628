"""Attempts: per-target preparation, candidate selection, retry and fallback — all before the commit.

Owns, for one request: which candidate targets can serve it (a byte relay when the provider speaks the
client's API; else translated by ``inference.translate``, or skipped under ``translate = "never"`` / when
no protocol is shared / when a parameter is refused), the attempt on each (request sent, response head,
with ``commit = "first_byte"`` the first body bytes, all within the provider's ``first_byte`` deadline),
which failures are retryable (connect, timeout, statuses 408/409/425/429/5xx/529, a 200 whose first
event is an error) and how long to wait (``Retry-After`` up to ``retry.max_retry_after``, else
``retry.backoff``), breaker bookkeeping per attempt, and a per-attempt tracing span.

Invariant: NOTHING reaches the client here. This module has no ``send``: it returns the chosen
candidate with its open response (and the bytes already read), or the last failure; the relay or the
intake writes the answer. So a fallback can only ever happen before the first byte.

Must not know about ASGI, the relay's taps or the response format of any protocol.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sluicegate.config.inference import InferenceSettings, ModelSettings
from sluicegate.edge.deadline import Deadline
from sluicegate.edge.headers import HOP_BY_HOP_BYTES
from sluicegate.inference import metrics as m
from sluicegate.inference.protocol import Api, Detected
from sluicegate.inference.providers import Provider
from sluicegate.inference.routing import Router, TargetState
from sluicegate.inference.splice import ModelField
from sluicegate.inference.translate import Ctx, Route, TranslateError, choose, route_for, speaks
from sluicegate.teams.governor import CURRENT
from sluicegate.upstream.errors import OriginError
from sluicegate.upstream.http1 import OriginResponse

log = logging.getLogger("sluicegate.inference")

RETRYABLE = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
_MAX_ERROR_BODY = 64 * 1024
# Upstream response headers never relayed (framing is ours; cookies are not the client's business).
DROP_RESPONSE = HOP_BY_HOP_BYTES | {b"set-cookie", b"date", b"server", b"alt-svc"}
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass(slots=True)
class Exchange:
    """One client request after intake: what was asked, of which model, and the request's own deadline."""

    det: Detected
    api: Api
    method: str
    query: bytes
    headers: list[tuple[bytes, bytes]]  # the client's, lower-case names
    body: bytes
    mfield: ModelField
    candidates: list[TargetState]
    request_id: str
    extra: list[tuple[bytes, bytes]]  # response headers we add (request id)
    started: float
    deadline: Deadline
    info: Any = None  # the observer's per-request record (or None when run bare)
    write: Callable[[bytes], bool] | None = None  # the server's edge.asgi.BODY_WRITE (native core), for the relay


@dataclass(slots=True)
class Prepared:
    """One candidate target, ready to try: the body to send and, when translated, how."""

    target: TargetState
    body: bytes  # the translated body; b"" for a relay (spliced only when this target is tried)
    path: str
    route: Route | None = None
    ctx: Ctx | None = None

    def payload(self, body: bytes, mfield: ModelField) -> bytes:
        if self.route is not None:
            return self.body
        model = self.target.target.model
        return mfield.splice(body, model) if model != mfield.model else body


@dataclass(slots=True)
class Preparation:
    ready: list[Prepared] = field(default_factory=list)
    refused: TranslateError | None = None  # the first parameter a translated target refused
    reasons: list[str] = field(default_factory=list)  # why targets were skipped


@dataclass(slots=True)
class Attempt:
    """The outcome of trying one candidate before commit."""

    resp: OriginResponse | None = None
    first: bytes = b""
    error_status: int = 0  # retryable upstream status (body kept below)
    error_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    error_body: bytes = b""
    retry_after: float = 0.0
    failure: str = ""  # connect, timeout, status_429, ...
    translated: bool = False  # the request was translated: an error answer is re-shaped for the client


@dataclass(slots=True)
class Chosen:
    """The candidate that answered: its target, provider, preparation and open response."""

    target: TargetState
    provider: Provider
    prepared: Prepared
    resp: OriginResponse
    first: bytes


def prepare(api: Api, path: str, model: ModelSettings, providers: dict[str, Provider], body: bytes,
            candidates: list[TargetState]) -> Preparation:
    """Per candidate: relay as-is, translate, or skip (with the reason kept for the 400)."""
    out = Preparation()
    parsed: dict[str, Any] | None = None
    cache: dict[tuple[Api, str, str], Prepared | TranslateError] = {}
    for t in candidates:
        ps = providers[t.target.provider].settings
        upstream = choose(api, speaks(ps.kind, ps.apis))
        if upstream is None:
            out.reasons.append(f"provider {ps.name!r} ({ps.kind}) does not speak {api.value}")
            continue
        route = route_for(api, upstream)
        if route is None:
            out.ready.append(Prepared(t, b"", path))
            continue
        if model.translate == "never":
            out.reasons.append(f"provider {ps.name!r} ({ps.kind}) needs translation and translate = \"never\"")
            continue
        key = (upstream, ps.kind, t.target.model)
        hit = cache.get(key)
        if hit is None:
            if parsed is None:
                parsed = json.loads(body)  # find_model already proved it is one JSON object
            ctx = Ctx(ps.kind, model.default_max_tokens, frozenset(model.drop_params))
            try:
                req = route.request(dict(parsed), ctx)
                req["model"] = t.target.model
                hit = Prepared(t, _dumps(req).encode(), route.path, route, ctx)
            except TranslateError as exc:
                hit = exc
            cache[key] = hit
        if isinstance(hit, TranslateError):
            out.refused = out.refused or hit
            out.reasons.append(f"provider {ps.name!r}: {hit}")
            continue
        out.ready.append(Prepared(t, hit.body, hit.path, hit.route, hit.ctx))
    return out


def translated_headers(client: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Client headers for a translated request: the body is ours (JSON), and we must read the answer."""
    skip = (b"accept-encoding", b"accept", b"content-type", b"content-length")
    return [(k, v) for k, v in client if k not in skip] + [(b"accept-encoding", b"identity"),
                                                            (b"content-type", b"application/json")]


def retry_after(value: bytes | None) -> float:
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0


def looks_like_error_event(first: bytes) -> bool:
    head = first[:64].lstrip()
    return head.startswith((b"event: error", b"event:error", b'data: {"error"', b'data:{"error"'))


def header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of ``name`` (lower-case) among raw response headers (any case)."""
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


async def attempt(prov: Provider, method: str, target: str, headers: list[tuple[str, str]], body: bytes,
                  want_first: bool, deadline: Deadline) -> Attempt:
    """One try: request, head and (``want_first``) the first body bytes, within the first-byte deadline."""
    pool = prov.pool
    assert pool is not None, "providers' pools are opened at start-up"
    resp: OriginResponse | None = None
    deadline.expired = False  # an earlier attempt's expiry must not turn a later cancellation into a timeout
    try:
        with deadline:
            deadline.after(min(prov.first_byte, prov.total) if prov.total else prov.first_byte)
            resp = await pool.request(method, target, headers, body)
            status = resp.status
            if status in RETRYABLE:
                data = b""
                while len(data) < _MAX_ERROR_BODY and not resp.at_eof():
                    more = await resp.read()
                    if not more:
                        break
                    data += more
                hdrs = [(k.lower(), v) for k, v in resp.headers
                        if k.lower() not in DROP_RESPONSE and k.lower() != b"content-length"]
                after = retry_after(header(resp.headers, b"retry-after"))
                resp.release()
                return Attempt(error_status=status, error_headers=hdrs, error_body=data[:_MAX_ERROR_BODY],
                               retry_after=after, failure=f"status_{status}")
            first = b""
            if want_first:
                first = await resp.read()
                if status == 200 and looks_like_error_event(first):
                    # A 200 whose first event is an error (overloaded etc.): nothing sent yet, so fall back.
                    resp.release()
                    return Attempt(error_status=503, error_body=b"", failure="error_event")
            return Attempt(resp=resp, first=first)
    except TimeoutError:
        if resp is not None:
            resp.release()
        return Attempt(failure="timeout", error_status=504)
    except OriginError:
        if resp is not None:
            resp.release()
        return Attempt(failure="connect", error_status=503)
    except BaseException:
        if resp is not None:
            resp.release()
        raise


class Attempts:
    """Tries a request's candidates in order until one answers; the caller relays it or reports the failure."""

    def __init__(self, cfg: InferenceSettings, router: Router, providers: dict[str, Provider],
                 meters: m.Meters) -> None:
        self.cfg = cfg
        self.router = router
        self.providers = providers
        self.meters = meters

    async def run(self, ex: Exchange, prep: Preparation) -> Chosen | Attempt | None:
        """The chosen candidate (its response open: the caller must ``release`` it, and end the target's
        in-flight count via ``done``), else the last failed attempt (None when none was made)."""
        retry = self.cfg.retry
        want_first = self.cfg.commit == "first_byte" and ex.method != "HEAD"
        tried: dict[tuple[str, str], float] = {}  # target -> retry-after it asked for
        last: Attempt | None = None
        ready = prep.ready
        info = ex.info
        n = 0
        idx = 0
        while n < retry.max_attempts:
            p = ready[idx % len(ready)]
            t = p.target
            idx += 1
            if t.key in tried:
                wait = tried[t.key]
                if wait > retry.max_retry_after:
                    if all(v > retry.max_retry_after for v in tried.values()) and len(tried) == len(ready):
                        break  # everyone asked for longer than we will wait
                    continue
                await asyncio.sleep(max(wait, retry.backoff))
            n += 1
            ticket = CURRENT.get()
            if ticket is not None:  # team governance: attempts per request in the ledger
                ticket.attempts = n
            prov = self.providers[t.target.provider]
            target = prov.target(p.path, ex.query)
            client = ex.headers if p.route is None else translated_headers(ex.headers)
            self.router.begin(t)
            prov.m_inflight.inc()
            up_headers = prov.headers(client, ex.request_id)
            if info is not None and info.span is not None:  # tracing on: one client span per attempt
                info.upstream_span, carried = info.tracer.client_span(
                    info.span, f"{ex.method} {prov.name}", {"sluicegate.provider": prov.name,
                                                            "gen_ai.request.model": t.target.model})
                up_headers += list(carried.items())
            try:
                a = await attempt(prov, ex.method, target, up_headers, p.payload(ex.body, ex.mfield), want_first,
                                  ex.deadline)
                a.translated = p.route is not None
            except BaseException:
                self.done(t, prov)
                raise
            if info is not None and info.upstream_span is not None:
                info.tracer.end_client(info.upstream_span, a.resp.status if a.resp is not None
                                       else a.error_status, a.failure)
                info.upstream_span = None
            if a.resp is not None:
                return Chosen(t, prov, p, a.resp, a.first)
            self.done(t, prov)
            m.ATTEMPTS.labels(prov.name, a.failure).inc()
            if self.router.failure(t):
                m.BREAKER_OPEN.labels(prov.name).inc()
                self.meters.breaker(t, 1)
            log.info("inference %s attempt %d %s/%s failed: %s", ex.request_id, n, prov.name, t.target.model,
                     a.failure)
            tried[t.key] = a.retry_after
            last = a
        return last

    def done(self, t: TargetState, prov: Provider) -> None:
        self.router.end(t)
        prov.m_inflight.dec()
