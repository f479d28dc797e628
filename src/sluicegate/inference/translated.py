"""The gateway's translation shell: per-target preparation of a translated request, and the relay of a
translated answer (streamed event by event, or whole).

Thin I/O around the sans-IO ``inference.translate`` package. ``prepare`` decides, per candidate target,
whether the client's API is relayed as bytes (the provider speaks it) or translated (and translates the
body once per target model), skipping targets that cannot be reached (``translate = "never"``, no
protocol in common) or that refuse a parameter. ``relay_translated`` writes the client protocol's answer:
upstream SSE through a ``StreamTranslator`` (each complete event flushed at once; the usage tap reads the
provider's own bytes), a whole JSON answer through the route's ``whole``, an error answer re-shaped into
the client's error format with the upstream's status and rate-limit headers. A failure mid-stream becomes
the client protocol's error event and the response then ENDS CLEANLY (the SDKs surface the error event).
Must not know about retries, breakers' policy or the server's dispatch.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp

from sluicegate.config.inference import ModelSettings
from sluicegate.edge.headers import HOP_BY_HOP_BYTES
from sluicegate.inference import metrics as m
from sluicegate.inference.protocol import Api, error_body
from sluicegate.inference.routing import TargetState
from sluicegate.inference.splice import ModelField
from sluicegate.inference.sse import JsonTap, SseTap
from sluicegate.inference.translate import (
    Ctx,
    Route,
    StreamOverflow,
    TranslateError,
    choose,
    route_for,
    speaks,
    synth,
    translate_error,
)

if TYPE_CHECKING:
    from sluicegate.inference.gateway import InferenceGateway
    from sluicegate.inference.upstream import _Provider

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
log = logging.getLogger("sluicegate.inference")

# Upstream response headers a translated answer never relays: framing, encoding and type are ours now.
_DROP = HOP_BY_HOP_BYTES | {b"set-cookie", b"date", b"server", b"alt-svc", b"content-length", b"content-type",
                            b"content-encoding"}
_MAX_ERROR_BODY = 64 * 1024
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


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


def prepare(api: Api, path: str, model: ModelSettings, providers: dict[str, _Provider], body: bytes,
            candidates: list[TargetState]) -> Preparation:
    """Per candidate: relay as-is, translate, or skip (with the reason kept for the 400)."""
    out = Preparation()
    parsed: dict[str, Any] | None = None
    cache: dict[tuple[Api, str, str], Prepared | TranslateError] = {}
    for t in candidates:
        prov = providers[t.target.provider]
        ps = prov.settings
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


def upstream_headers(client: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Client headers for a translated request: the body is ours (JSON), and we must read the answer."""
    skip = (b"accept-encoding", b"accept", b"content-type", b"content-length")
    return [(k, v) for k, v in client if k not in skip] + [(b"accept-encoding", b"identity"),
                                                            (b"content-type", b"application/json")]


def _headers(resp: aiohttp.ClientResponse, extra: list[tuple[bytes, bytes]], ctype: bytes,
             dropped: set[str]) -> list[tuple[bytes, bytes]]:
    out = [(k.lower(), v) for k, v in resp.raw_headers if k.lower() not in _DROP]
    out.append((b"content-type", ctype))
    if dropped:
        out.append((b"x-sluicegate-dropped", ",".join(sorted(dropped)).encode()))
    return out + extra


async def relay_translated(gw: InferenceGateway, send: Send, api: Api, resp: aiohttp.ClientResponse,
                           first: bytes, prov: _Provider, target: TargetState, mfield: ModelField,
                           request_id: str, extra: list[tuple[bytes, bytes]], started: float,
                           prep: Prepared, info: Any = None) -> None:
    assert prep.route is not None and prep.ctx is not None
    route, ctx = prep.route, prep.ctx
    m.TRANSLATED.labels(route.client.value, route.upstream.value, "yes" if ctx.dropped else "no").inc()
    cap = gw.cfg.max_response_bytes
    content = resp.content
    ctype = resp.headers.get("content-type", "").lower()
    if first:
        prov.m_first_byte.observe(time.perf_counter() - started)
    if resp.status >= 400 or not (ctype.startswith("text/event-stream") or ctype.startswith("application/json")):
        # An error answer (or something we cannot parse): the client's error shape, the upstream's status.
        raw = first
        while len(raw) < _MAX_ERROR_BODY and not content.at_eof():
            more = await content.read(_MAX_ERROR_BODY - len(raw))
            if not more:
                break
            raw += more
        status = resp.status if resp.status >= 400 else 502
        status, body = translate_error(status, raw, api.family)
        m.ATTEMPTS.labels(prov.name, f"status_{resp.status}").inc()
        gw._account(api, mfield, prov, None, request_id, status, started, "", info)
        await send({"type": "http.response.start", "status": status,
                    "headers": [*_headers(resp, [], b"application/json", set()),
                                (b"content-length", str(len(body)).encode()), *extra]})
        await send({"type": "http.response.body", "body": body})
        return
    if ctype.startswith("application/json"):
        await _whole(gw, send, api, resp, first, prov, target, mfield, request_id, extra, started, route, ctx,
                     info)
        return
    tr = route.stream(ctx, gw.cfg.tap_max_event_bytes)
    tap = SseTap(gw.cfg.tap_max_event_bytes)
    headers = _headers(resp, extra, b"text/event-stream; charset=utf-8", ctx.dropped)
    headers += [(b"x-accel-buffering", b"no"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": resp.status, "headers": headers})
    total = 0
    kind = ""
    chunk = first
    readany = content.readany
    try:
        while True:
            if chunk:
                total += len(chunk)
                if total > cap:
                    kind = "response_cap"
                    break
                tap.feed(chunk)
                out = tr.feed(chunk)
                if out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
                if tr.done:
                    break  # the upstream's answer is over (its terminator or error event)
            chunk = await readany()
            if not chunk:
                break
    except StreamOverflow:
        kind = "event_too_large"
    except TimeoutError:
        kind = "idle_timeout"
    except (aiohttp.ClientError, OSError):
        kind = "upstream_reset"
    if kind:
        resp.close()
        m.STREAM_ERRORS.labels(prov.name, kind).inc()
        if gw.router.failure(target):
            m.BREAKER_OPEN.labels(prov.name).inc()
        tail = tr.fail(f"upstream stream failed: {kind}", kind)
    else:
        tail = tr.finish()
        if tap.saw_error:
            m.STREAM_ERRORS.labels(prov.name, "upstream_error_event").inc()
        else:
            gw.router.success(target)
            prov.m_ok.inc()
    late = tr.dropped - ctx.dropped
    if late:  # dropped after the headers left: said as an SSE comment (inert to every client)
        tail += b": x-sluicegate-dropped " + ",".join(sorted(late)).encode() + b"\n\n"
        log.info("inference %s dropped in translation: %s", request_id, ",".join(sorted(late)))
    gw._account(api, mfield, prov, tap, request_id, resp.status, started, kind, info)
    # A translated stream always ends cleanly: the client protocol's own terminator after any error event.
    await send({"type": "http.response.body", "body": tail, "more_body": False})


async def _whole(gw: InferenceGateway, send: Send, api: Api, resp: aiohttp.ClientResponse, first: bytes,
                 prov: _Provider, target: TargetState, mfield: ModelField, request_id: str,
                 extra: list[tuple[bytes, bytes]], started: float, route: Route, ctx: Ctx,
                 info: Any = None) -> None:
    cap = gw.cfg.max_response_bytes
    parts = [first]
    size = len(first)
    failure = ""
    try:
        while not resp.content.at_eof():
            chunk = await resp.content.readany()
            if not chunk:
                break
            size += len(chunk)
            if size > cap:
                failure = "response_cap"
                break
            parts.append(chunk)
    except TimeoutError:
        failure = "idle_timeout"
    except (aiohttp.ClientError, OSError):
        failure = "upstream_reset"
    raw = b"".join(parts)
    tap = JsonTap(cap)
    tap.feed(raw)
    obj: Any = None
    if not failure:
        try:
            obj = json.loads(raw)
        except ValueError:
            failure = "invalid_json"
    if failure or not isinstance(obj, dict):
        failure = failure or "invalid_json"
        m.STREAM_ERRORS.labels(prov.name, failure).inc()
        if gw.router.failure(target):
            m.BREAKER_OPEN.labels(prov.name).inc()
        gw._account(api, mfield, prov, tap, request_id, 502, started, failure, info)
        body = error_body(api.family, 502, f"upstream answer failed: {failure}", failure)
        await send({"type": "http.response.start", "status": 502,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()), *extra]})
        await send({"type": "http.response.body", "body": body})
        return
    gw.router.success(target)
    prov.m_ok.inc()
    gw._account(api, mfield, prov, tap, request_id, resp.status, started, "", info)
    if ctx.stream:
        # The client asked for a stream and the provider answered whole: replay the answer as the
        # provider's own stream through the streaming translator, so the client gets the stream it asked for.
        tr = route.stream(ctx, max(gw.cfg.tap_max_event_bytes, size + 1024))
        replay = synth.messages_events(obj) if route.upstream is Api.MESSAGES else synth.chat_events(obj)
        data = tr.feed(replay) + tr.finish()
        headers = _headers(resp, extra, b"text/event-stream; charset=utf-8", ctx.dropped | tr.dropped)
        await send({"type": "http.response.start", "status": resp.status,
                    "headers": [*headers, (b"content-length", str(len(data)).encode()),
                                (b"cache-control", b"no-cache")]})
        await send({"type": "http.response.body", "body": data})
        return
    body = _dumps(route.whole(obj, ctx)).encode()
    await send({"type": "http.response.start", "status": resp.status,
                "headers": [*_headers(resp, [], b"application/json", ctx.dropped),
                            (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})
