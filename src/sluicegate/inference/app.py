"""The inference face's intake: the ASGI entry that routes OpenAI/Anthropic calls to configured providers.

Owns: which requests are ours (``path_prefix`` or ``listen_hosts``), path -> protocol (``protocol.detect``),
client keys (constant-time, every key compared), ``/v1/models``, the bounded request body read (declared
``Content-Length`` over ``max_request_body_bytes`` refused before reading; a streamed one cut at the cap),
the model field and the model's candidates, protocol-shaped errors, and the request's lifecycle on the
shared edge primitives: ``ClientWatch`` (a disconnect cancels the handler exactly once; the upstream
exchange is then released, which closes its connection), one ``Deadline`` per request for every upstream
wait, ``send_simple`` for our own answers. Then hands over to ``attempts`` (no byte reaches the client
before a candidate is chosen) and ``relay`` (bytes out as they arrive).

Must not know publisher rules, provider credentials (``providers``), retry policy (``attempts``), response
streaming (``relay``), protocol translation, the mock provider (``dev/``), or how the server dispatches to it.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from sluicegate.config.inference import InferenceSettings
from sluicegate.config.model import Settings
from sluicegate.edge.asgi import BODY_WRITE, ClientGone, Receive, Scope, Send, send_simple
from sluicegate.edge.client import BodyTooLarge, start_request
from sluicegate.edge.lifespan import serve_lifespan
from sluicegate.inference import metrics as m
from sluicegate.inference.attempts import Attempt, Attempts, Chosen, Exchange, prepare
from sluicegate.inference.protocol import Api, Detected, Family, detect, error_body, model_body, models_body
from sluicegate.inference.providers import Pools, build
from sluicegate.inference.relay import Relay, StreamAborted
from sluicegate.inference.routing import Router
from sluicegate.inference.splice import SpliceError, find_model
from sluicegate.inference.sse import Usage
from sluicegate.inference.translate import translate_error
from sluicegate.teams.governor import CURRENT, Governor, Refusal, Ticket

log = logging.getLogger("sluicegate.inference")
__all__ = ["InferenceApp", "StreamAborted"]


class InferenceApp:
    """ASGI app for ``[inference]``. ``startup``/``shutdown`` must run inside the serving event loop."""

    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.cfg: InferenceSettings = settings.inference
        self.prefix = self.cfg.path_prefix
        self.id_header = settings.server.request_id_header
        self.hosts = frozenset(self.cfg.listen_hosts)
        self.router = Router(self.cfg)
        self.created = int(time.time())
        self.client_keys: list[bytes] = []
        if self.cfg.client_keys_env:
            raw = env.get(self.cfg.client_keys_env, "")
            self.client_keys = [k.strip().encode() for k in raw.split(",") if k.strip()]
            if not self.client_keys:
                raise ValueError(f"inference.client_keys_env: {self.cfg.client_keys_env} is empty or unset")
        self.providers = build(self.cfg, env, self.id_header)
        self.pools = Pools()
        self.meters = m.Meters(frozenset(self.router.models))
        self.attempts = Attempts(self.cfg, self.router, self.providers, self.meters)
        self.relay = Relay(self.cfg, self.router, self.meters, self.id_header)
        self.teams = Governor(self.cfg, env, bool(self.client_keys))  # virtual keys, limits, ledger (teams/)
        self._started = False

    @property
    def last_usage(self) -> Usage | None:
        """Usage of the most recent finished exchange (tests, debugging)."""
        return self.relay.last_usage

    # ---- lifecycle ------------------------------------------------------------------------------

    async def startup(self) -> None:
        if not self._started:
            self.pools.open(self.providers)
            await self.teams.startup()
            self._started = True

    async def shutdown(self) -> None:
        await self.teams.shutdown()
        await self.pools.close(self.providers)
        self._started = False

    # ---- dispatch -------------------------------------------------------------------------------

    def matches(self, scope: Scope) -> bool:
        if scope.get("type") != "http" or not self.cfg.enabled:
            return False
        path: str = scope.get("path", "")
        if self.prefix and (path == self.prefix or path.startswith(self.prefix + "/")):
            return True
        if self.hosts:
            for name, value in scope.get("headers", ()):
                if name == b"host":
                    host = value.decode("latin-1").lower()
                    return host in self.hosts or host.rsplit(":", 1)[0] in self.hosts
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # run on its own under an ASGI server (benchmarks, tests)
            await serve_lifespan(receive, send, self.startup, self.shutdown)
            return
        if scope["type"] != "http":
            return
        if not self._started:
            await self.startup()
        started = time.perf_counter()
        path: str = scope["path"]
        if self.prefix and (path == self.prefix or path.startswith(self.prefix + "/")):
            path = path[len(self.prefix):] or "/"
        raw_headers: list[tuple[bytes, bytes]] = list(scope["headers"])
        hdict = dict(raw_headers)
        method: str = scope["method"]
        det = detect(method, path, scope.get("raw_path"), hdict)
        info = scope.get("sluicegate.info")
        request_id = info.request_id if info is not None else os.urandom(8).hex()
        ids = [(self.id_header, request_id)]
        if info is not None:
            info.route = det.api.value if det.api is not None else "none"
        if det.api is None:
            await self._reject(send, det, 404, f"no inference API at {method} {path[:200]}", ids, info,
                               "unknown_url", code="unknown_url")
            return
        teams = self.teams
        # Governance off (no keys, no shared store): no per-request coroutine at all.
        key = await teams.authenticate(hdict, info.client_ip if info is not None else "") if teams.active else None
        if isinstance(key, Refusal):
            await self._refuse(send, det, key, ids, info)
            return
        if self.client_keys and key is None and not self._client_ok(hdict):
            await self._reject(send, det, 401, "missing or invalid client key", ids, info, "unauthorized",
                               code="invalid_api_key", outcome="unauthorized")
            return
        if not det.api.routed:
            await self._models(send, det, method, ids)
            return
        # From here the client can vanish at any moment: the watch reads the body, then cancels this task
        # the moment a disconnect arrives (once); the upstream exchange is released on the way out.
        # Under the native core the scope's disconnect hook replaces the watch task (a task, a receive() future and
        # a cancel per request); a disconnect still cancels this task in the loop turn that saw it.
        watch, deadline = start_request(receive, send, has_body=True, scope=scope)
        sender = watch.sender
        api = det.api
        model = ""
        ticket: Ticket | None = None
        try:
            declared = hdict.get(b"content-length")
            if declared is not None and not declared.isdigit():
                await self._reject(sender, det, 400, "malformed request framing", ids, info, "bad_framing")
                return
            try:
                body = await watch.read(self.cfg.max_request_body_bytes,
                                        int(declared) if declared is not None else None)
            except BodyTooLarge:
                await self._reject(sender, det, 413, "request body too large", ids, info, "body_too_large")
                return
            try:
                mfield = find_model(body)
            except SpliceError as exc:
                await self._reject(sender, det, 400, str(exc), ids, info, exc.kind, code=exc.kind)
                return
            candidates = self.router.candidates(mfield.model)
            if info is not None:
                info.model = mfield.model[:200]
            if not candidates:
                await self._reject(sender, det, 404, f"model {mfield.model[:200]!r} is not configured here",
                                   ids, info, "unknown_model", code="model_not_found", outcome="unknown_model")
                return
            model = mfield.model
            admitted = (await teams.admit(key, model, body, request_id, det.family is Family.ANTHROPIC)
                        if teams.active else None)
            if isinstance(admitted, Refusal):
                await self._refuse(sender, det, admitted, ids, info)
                return
            if admitted is not None:
                ticket = admitted
                CURRENT.set(ticket)
            ex = Exchange(det, api, method, scope.get("query_string", b""), raw_headers, body, mfield, candidates,
                          request_id, [(self.id_header.encode("latin-1"), request_id.encode())], started,
                          deadline, info, scope.get(BODY_WRITE))
            await self._serve(sender, ex)
        except ClientGone:
            self._gone(api, model, request_id, info, ticket)  # while sending its body
        except asyncio.CancelledError:
            if not watch.disconnected:
                raise
            task = asyncio.current_task()
            assert task is not None
            task.uncancel()
            self._gone(api, model, request_id, info, ticket)
        finally:
            watch.stop()
            deadline.close()
            if ticket is not None:  # the response has ended: reservation -> reported usage, ledger row
                await self.teams.settle(ticket, info.ttfb if info is not None else None)

    async def _refuse(self, send: Send, det: Detected, r: Refusal, ids: list[tuple[str, str]], info: Any) -> None:
        """A team-governance refusal (401/403/429/402/503), with its Retry-After."""
        await self._reject(send, det, r.status, r.message, ids + r.str_headers(), info, r.code, code=r.code)

    def _gone(self, api: Api, model: str, request_id: str, info: Any, ticket: Ticket | None = None) -> None:
        if ticket is not None:
            ticket.outcome = "client_gone"
        self.meters.requests(api.value, model, "client_gone").inc()
        if info is not None:
            info.error = "client_gone"
        log.info("inference %s model=%s client disconnected; upstream cancelled", request_id, model)

    async def _serve(self, send: Send, ex: Exchange) -> None:
        api, model = ex.api, ex.mfield.model
        # Per target: byte relay when its provider speaks the client's API, else translation (or skipped).
        prep = prepare(api, ex.det.path, self.router.models[model].settings, self.providers, ex.body,
                       ex.candidates)
        if not prep.ready:
            if prep.refused is not None:
                msg, code = str(prep.refused), "unsupported_parameter"
            else:
                msg, code = f"model {model!r} has no usable target: {'; '.join(prep.reasons)}", "no_target"
            await self._reject(send, ex.det, 400, msg[:2000], [(self.id_header, ex.request_id)], None, code,
                               code=code, model=model)
            return
        result = await self.attempts.run(ex, prep)
        info = ex.info
        if not isinstance(result, Chosen):
            await self._give_up(send, ex, result)
            m.REQUESTS.labels(api.value, model, "failed").inc()
            if info is not None:
                failure = result.failure if result is not None else ""
                info.error = f"upstream_{failure}" if failure else "upstream_failed"
                info.upstream_status = result.error_status if result is not None else 0
            return
        ch = result
        ticket = CURRENT.get()
        if ticket is not None:  # the answering target, for the ledger (usage is observed by the relay)
            ticket.observe(None, ch.provider.name, ch.resp.status, "")
            ticket.upstream_model = ch.target.target.model
        if ch.target is not ex.candidates[0]:
            m.FALLBACKS.labels(model).inc()
        if info is not None:
            info.provider = ch.provider.name
            info.upstream_status = ch.resp.status
            info.upstream_s = time.perf_counter() - ex.started
        try:
            if ch.prepared.route is not None:
                await self.relay.translated(send, ex, ch)
            else:
                await self.relay.passthrough(send, ex, ch)
        finally:
            ch.resp.release()  # a complete answer returns the connection to the pool; anything else closes it
            self.attempts.done(ch.target, ch.provider)

    async def _give_up(self, send: Send, ex: Exchange, last: Attempt | None) -> None:
        if last is not None and last.error_body and last.error_status:
            # The last upstream's own error answer, verbatim (its status, its body, its rate-limit headers);
            # re-shaped into the client's error format when the request was translated.
            status, err = last.error_status, last.error_body
            own = self.id_header.lower().encode("latin-1")  # ours goes out once, not the provider's too
            hdrs = [(k, v) for k, v in last.error_headers if k != own]
            if last.translated:
                status, err = translate_error(status, err, ex.det.family)
                hdrs = [(k, v) for k, v in hdrs if k not in (b"content-type", b"content-encoding")]
                hdrs.append((b"content-type", b"application/json"))
            await send({"type": "http.response.start", "status": status,
                        "headers": [*hdrs, (b"content-length", str(len(err)).encode()), *ex.extra]})
            await send({"type": "http.response.body", "body": err})
            return
        status = last.error_status if last is not None and last.error_status else 503
        msg = {504: "no upstream answered in time", 503: "no upstream available"}.get(status, "upstream failed")
        await self._error(send, ex.det.family, status, msg, [(self.id_header, ex.request_id)],
                          "upstream_unavailable")

    # ---- intake helpers -------------------------------------------------------------------------

    def _client_ok(self, headers: dict[bytes, bytes]) -> bool:
        presented = headers.get(b"x-api-key", b"")
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer ":
            presented = presented or auth[7:].strip()
        ok = False
        for key in self.client_keys:  # compare against every key: no early exit timing
            ok |= hmac.compare_digest(presented, key)
        return ok and bool(presented)

    async def _models(self, send: Send, det: Detected, method: str, ids: list[tuple[str, str]]) -> None:
        names = self.router.names()
        if det.api is Api.MODEL:
            if det.model_id not in names:
                await self._error(send, det.family, 404, f"model {det.model_id[:200]!r} is not configured here",
                                  ids, "model_not_found")
                return
            body = model_body(det.model_id, self.created)
        else:
            body = models_body(names, self.created)
        await send_simple(send, 200, body, ids, content_type="application/json", head_only=method == "HEAD")
        m.REQUESTS.labels(det.api.value if det.api else "none", "", "ok").inc()

    async def _reject(self, send: Send, det: Detected, status: int, message: str, ids: list[tuple[str, str]],
                      info: Any, why: str, *, code: str | None = None, outcome: str = "rejected",
                      model: str = "") -> None:
        """A request refused before any upstream call: the client's error shape, counted, and named in the
        access log (``why``; ``info`` None leaves the log's error as it is)."""
        if info is not None:
            info.error = why
        await self._error(send, det.family, status, message, ids, code)
        m.REQUESTS.labels(det.api.value if det.api is not None else "none", model, outcome).inc()

    async def _error(self, send: Send, family: Family, status: int, message: str, ids: list[tuple[str, str]],
                     code: str | None = None) -> None:
        await send_simple(send, status, error_body(family, status, message, code), ids,
                          content_type="application/json")
