"""The inference gateway: a plain ASGI app that routes OpenAI/Anthropic calls to configured providers.

Owns: request intake (prefix/host match, protocol detection, body cap, client keys), candidate attempts
with retry/fallback strictly before the first byte is committed to the client (``upstream``: providers,
headers), the byte-transparent relay with a side tap for usage, protocol-shaped errors, and cancelling the
upstream the moment the client goes away. Cross-protocol targets are handed to ``translated``. Must not
know publisher rules, protocol translation itself, or how the surrounding server dispatches to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import aiohttp
from yarl import URL

from sluicegate.config.inference import InferenceSettings
from sluicegate.config.model import Settings
from sluicegate.edge.lifespan import serve_lifespan
from sluicegate.inference import metrics as m
from sluicegate.inference.mock import MockProvider
from sluicegate.inference.protocol import (
    Api,
    Detected,
    Family,
    detect,
    error_body,
    model_body,
    models_body,
    stream_error_event,
)
from sluicegate.inference.routing import Router, TargetState
from sluicegate.inference.splice import ModelField, SpliceError, find_model
from sluicegate.inference.sse import JsonTap, SseTap, Usage
from sluicegate.inference.translate import translate_error
from sluicegate.inference.translated import Prepared, prepare, relay_translated, upstream_headers
from sluicegate.inference.upstream import (
    _BASE_ALLOW,
    _DROP_RESPONSE,
    _KIND_ALLOW,
    _KIND_DEFAULTS,
    _RETRYABLE,
    StreamAborted,
    _Attempt,
    _CapExceeded,
    _IdleWatch,
    _looks_like_error_event,
    _Provider,
    _retry_after,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("sluicegate.inference")
__all__ = ["InferenceGateway", "StreamAborted"]


class InferenceGateway:
    """ASGI app for ``[inference]``. ``startup``/``shutdown`` must run inside the serving event loop."""

    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.cfg: InferenceSettings = settings.inference
        self.prefix = self.cfg.path_prefix
        self.id_header = settings.server.request_id_header.encode("latin-1")
        self.hosts = frozenset(self.cfg.listen_hosts)
        self.router = Router(self.cfg)
        self.created = int(time.time())
        self.client_keys: list[bytes] = []
        if self.cfg.client_keys_env:
            raw = env.get(self.cfg.client_keys_env, "")
            self.client_keys = [k.strip().encode() for k in raw.split(",") if k.strip()]
            if not self.client_keys:
                raise ValueError(f"inference.client_keys_env: {self.cfg.client_keys_env} is empty or unset")
        self.providers: dict[str, _Provider] = {}
        for p in self.cfg.providers:
            key = p.api_key or (env.get(p.api_key_env, "") if p.api_key_env else "")
            if p.auth_style != "none" and not key:
                raise ValueError(f"inference provider {p.name!r}: {p.api_key_env} is empty or unset")
            auth: tuple[str, str] | None = None
            if p.auth_style == "bearer":
                auth = ("authorization", f"Bearer {key}")
            elif p.auth_style == "x-api-key":
                auth = ("x-api-key", key)
            allow = _BASE_ALLOW | _KIND_ALLOW.get(p.kind, frozenset()) | {h.encode() for h in p.forward_headers}
            t = p.timeouts
            self.providers[p.name] = _Provider(
                settings=p,
                base_url=p.effective_base_url,
                auth=auth,
                allow=frozenset(allow),
                defaults={**_KIND_DEFAULTS.get(p.kind, {}), **p.headers},
                timeout=aiohttp.ClientTimeout(total=t.total or None, sock_connect=t.connect, sock_read=t.idle),
                first_byte=t.first_byte,
                idle=t.idle or 0.0,
                id_header=settings.server.request_id_header,
            )
        self._started = False
        # Metric children by label values, resolved once (only configured model names, so bounded).
        self._m_requests: dict[tuple[str, str, str], Any] = {}
        self._m_tokens: dict[tuple[str, str, str], Any] = {}
        self.last_usage: Usage | None = None  # usage of the most recent finished exchange (tests, debugging)

    # ---- lifecycle ------------------------------------------------------------------------------

    async def startup(self) -> None:
        if self._started:
            return
        for prov in self.providers.values():
            if prov.settings.kind == "mock" and not prov.base_url:
                prov.mock = MockProvider(prov.settings.mock)
                prov.mock.keep_log = False
                await prov.mock.start()
                prov.base_url = prov.mock.url
            connector = aiohttp.TCPConnector(limit=prov.settings.max_connections, limit_per_host=0,
                                             ssl=prov.settings.verify_tls,
                                             keepalive_timeout=30, ttl_dns_cache=60)
            # TCP_NODELAY is set by aiohttp on every connection; decompression stays off (bytes relayed
            # as sent); only headers we forward go out (no invented Accept-Encoding/User-Agent/Content-Type).
            prov.session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None),
                skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        self._started = True

    async def shutdown(self) -> None:
        for prov in self.providers.values():
            if prov.session is not None:
                await prov.session.close()
                prov.session = None
            if prov.mock is not None:
                await prov.mock.stop()
                prov.base_url = ""
                prov.mock = None
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
        if scope["type"] == "lifespan":  # when run on its own under an ASGI server
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
        resp_extra = [(self.id_header, request_id.encode())]
        if info is not None:
            info.route = det.api.value if det.api is not None else "none"
        if det.api is None:
            if info is not None:
                info.error = "unknown_url"
            await self._error(send, det.family, 404, f"no inference API at {method} {path[:200]}",
                              resp_extra, "unknown_url")
            m.REQUESTS.labels("none", "", "rejected").inc()
            return
        if self.client_keys and not self._client_ok(hdict):
            await self._error(send, det.family, 401, "missing or invalid client key", resp_extra,
                              "invalid_api_key")
            m.REQUESTS.labels(det.api.value, "", "unauthorized").inc()
            if info is not None:
                info.error = "unauthorized"
            return
        if not det.api.routed:
            await self._models(send, det, method, resp_extra)
            return
        body = await self._read_body(receive, hdict)
        if body is None:
            return  # client left while sending
        if isinstance(body, int):
            msg = "request body too large" if body == 413 else "malformed request framing"
            if info is not None:
                info.error = "body_too_large" if body == 413 else "bad_framing"
            await self._error(send, det.family, body, msg, resp_extra)
            m.REQUESTS.labels(det.api.value, "", "rejected").inc()
            return
        try:
            mfield = find_model(body)
        except SpliceError as exc:
            await self._error(send, det.family, 400, str(exc), resp_extra, exc.kind)
            if info is not None:
                info.error = exc.kind
            m.REQUESTS.labels(det.api.value, "", "rejected").inc()
            return
        candidates = self.router.candidates(mfield.model)
        if info is not None:
            info.model = mfield.model[:200]
        if not candidates:
            if info is not None:
                info.error = "unknown_model"
            await self._error(send, det.family, 404, f"model {mfield.model[:200]!r} is not configured here",
                              resp_extra, "model_not_found")
            m.REQUESTS.labels(det.api.value, "", "unknown_model").inc()
            return

        # From here the client can vanish at any moment: watch it while we work, cancel us when it goes.
        task = asyncio.current_task()
        assert task is not None
        state = {"done": False, "gone": False}

        async def watch() -> None:
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    if not state["done"]:
                        state["gone"] = True
                        task.cancel()
                    return

        watcher = asyncio.ensure_future(watch())
        try:
            await self._serve(send, det, method, scope.get("query_string", b""), raw_headers, body, mfield,
                              candidates, request_id, resp_extra, started, state, info)
        except asyncio.CancelledError:
            if not state["gone"]:
                raise
            task.uncancel()
            self._requests(det.api.value, mfield.model, "client_gone").inc()
            if info is not None:
                info.error = "client_gone"
            log.info("inference %s model=%s client disconnected; upstream cancelled", request_id, mfield.model)
        finally:
            state["done"] = True
            watcher.cancel()

    def _requests(self, api: str, model: str, outcome: str) -> Any:
        key = (api, model, outcome)
        child = self._m_requests.get(key)
        if child is None:
            child = m.REQUESTS.labels(api, model, outcome)
            if model in self.router.models:
                self._m_requests[key] = child
        return child

    def _breaker(self, t: TargetState, value: int) -> None:
        m.BREAKER_STATE.labels(t.target.provider, t.target.model).set(value)

    def _tokens(self, model: str, provider: str, direction: str) -> Any:
        key = (model, provider, direction)
        child = self._m_tokens.get(key)
        if child is None:
            child = self._m_tokens[key] = m.TOKENS.labels(model, provider, direction)
        return child

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

    async def _read_body(self, receive: Receive, headers: dict[bytes, bytes]) -> bytes | int | None:
        cap = self.cfg.max_request_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                return 400
            if int(declared) > cap:
                return 413
        parts: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return None
            chunk: bytes = msg.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > cap:
                    return 413
                parts.append(chunk)
            if not msg.get("more_body", False):
                break
        return b"".join(parts)

    async def _models(self, send: Send, det: Detected, method: str, extra: list[tuple[bytes, bytes]]) -> None:
        names = self.router.names()
        if det.api is Api.MODEL:
            if det.model_id not in names:
                await self._error(send, det.family, 404, f"model {det.model_id[:200]!r} is not configured here",
                                  extra, "model_not_found")
                return
            body = model_body(det.model_id, self.created)
        else:
            body = models_body(names, self.created)
        await self._plain(send, 200, body, extra, head_only=method == "HEAD")
        m.REQUESTS.labels(det.api.value if det.api else "none", "", "ok").inc()

    async def _plain(self, send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]],
                     head_only: bool = False) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()), *extra]})
        await send({"type": "http.response.body", "body": b"" if head_only else body})

    async def _error(self, send: Send, family: Family, status: int, message: str,
                     extra: list[tuple[bytes, bytes]], code: str | None = None) -> None:
        await self._plain(send, status, error_body(family, status, message, code), extra)

    # ---- attempts (before commit) ---------------------------------------------------------------

    async def _attempt(self, prov: _Provider, method: str, url: URL, headers: dict[str, str], body: bytes,
                       want_first: bool) -> _Attempt:
        assert prov.session is not None
        resp: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout(prov.first_byte):
                resp = await prov.session.request(method, url, data=body, headers=headers,
                                                  timeout=prov.timeout, allow_redirects=False)
                status = resp.status
                if status in _RETRYABLE:
                    data = await resp.content.read(64 * 1024)
                    hdrs = [(k.lower(), v) for k, v in resp.raw_headers
                            if k.lower() not in _DROP_RESPONSE and k.lower() != b"content-length"]
                    after = _retry_after(resp.headers.get("retry-after"))
                    resp.close()
                    return _Attempt(error_status=status, error_headers=hdrs, error_body=data,
                                    retry_after=after, failure=f"status_{status}")
                first = b""
                if want_first:
                    first = await resp.content.readany()
                    if status == 200 and _looks_like_error_event(first):
                        # A 200 whose first event is an error (overloaded etc.): nothing sent yet, so fall back.
                        resp.close()
                        return _Attempt(error_status=503, error_body=b"", failure="error_event")
                return _Attempt(resp=resp, first=first)
        except TimeoutError:
            if resp is not None:
                resp.close()
            return _Attempt(failure="timeout", error_status=504)
        except (aiohttp.ClientConnectorError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError,
                aiohttp.ClientResponseError, OSError):
            if resp is not None:
                resp.close()
            return _Attempt(failure="connect", error_status=503)
        except BaseException:
            if resp is not None:
                resp.close()
            raise

    async def _serve(self, send: Send, det: Detected, method: str, query: bytes,
                     client_headers: list[tuple[bytes, bytes]], body: bytes, mfield: ModelField,
                     candidates: list[TargetState], request_id: str, extra: list[tuple[bytes, bytes]],
                     started: float, state: dict[str, bool], info: Any = None) -> None:
        assert det.api is not None
        api = det.api
        retry = self.cfg.retry
        # Per target: byte relay when its provider speaks the client's API, else translation (or skipped).
        prep = prepare(api, det.path, self.router.models[mfield.model].settings, self.providers, body, candidates)
        if not prep.ready:
            if prep.refused is not None:
                msg, code = str(prep.refused), "unsupported_parameter"
            else:
                msg, code = f"model {mfield.model!r} has no usable target: {'; '.join(prep.reasons)}", "no_target"
            await self._error(send, det.family, 400, msg[:2000], extra, code)
            m.REQUESTS.labels(api.value, mfield.model, "rejected").inc()
            return
        want_first = self.cfg.commit == "first_byte" and method != "HEAD"
        tried: dict[tuple[str, str], float] = {}  # target -> retry-after it asked for
        last: _Attempt | None = None
        chosen: TargetState | None = None
        chosen_prep: Prepared | None = None
        attempt: _Attempt | None = None
        n = 0
        idx = 0
        ready = prep.ready
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
            prov = self.providers[t.target.provider]
            url = prov.url_for(p.path, query)
            hdrs = client_headers if p.route is None else upstream_headers(client_headers)
            self.router.begin(t)
            prov.m_inflight.inc()
            up_headers = prov.headers(hdrs, request_id)
            if info is not None and info.span is not None:  # tracing on: one client span per attempt
                info.upstream_span, carried = info.tracer.client_span(
                    info.span, f"{method} {prov.name}", {"sluicegate.provider": prov.name,
                                                         "gen_ai.request.model": t.target.model})
                up_headers.update(carried)
            try:
                attempt = await self._attempt(prov, method, url, up_headers, p.payload(body, mfield), want_first)
                attempt.translated = p.route is not None
            except BaseException:
                self.router.end(t)
                prov.m_inflight.dec()
                raise
            if info is not None and info.upstream_span is not None:
                info.tracer.end_client(info.upstream_span, attempt.resp.status if attempt.resp is not None
                                       else attempt.error_status, attempt.failure)
                info.upstream_span = None
            if attempt.resp is not None:
                chosen, chosen_prep = t, p
                break
            self.router.end(t)
            prov.m_inflight.dec()
            m.ATTEMPTS.labels(prov.name, attempt.failure).inc()
            if self.router.failure(t):
                m.BREAKER_OPEN.labels(prov.name).inc()
                self._breaker(t, 1)
            log.info("inference %s attempt %d %s/%s failed: %s", request_id, n, prov.name, t.target.model,
                     attempt.failure)
            tried[t.key] = attempt.retry_after
            last = attempt
        if chosen is None or attempt is None or attempt.resp is None:
            await self._give_up(send, det, last, extra)
            m.REQUESTS.labels(api.value, mfield.model, "failed").inc()
            if info is not None:
                info.error = f"upstream_{last.failure}" if last is not None and last.failure else "upstream_failed"
                info.upstream_status = last.error_status if last is not None else 0
            return
        prov = self.providers[chosen.target.provider]
        resp = attempt.resp
        if chosen is not candidates[0]:
            m.FALLBACKS.labels(mfield.model).inc()
        if info is not None:
            info.provider = prov.name
            info.upstream_status = resp.status
            info.upstream_s = time.perf_counter() - started
        try:
            if chosen_prep is not None and chosen_prep.route is not None:
                await relay_translated(self, send, api, resp, attempt.first, prov, chosen, mfield, request_id,
                                       extra, started, chosen_prep, info)
            else:
                await self._relay(send, api, method, resp, attempt.first, prov, chosen, mfield, request_id,
                                  extra, started, info)
        finally:
            resp.close()
            self.router.end(chosen)
            prov.m_inflight.dec()

    async def _give_up(self, send: Send, det: Detected, last: _Attempt | None,
                       extra: list[tuple[bytes, bytes]]) -> None:
        if last is not None and last.error_body and last.error_status:
            # The last upstream's own error answer, verbatim (its status, its body, its rate-limit headers);
            # re-shaped into the client's error format when the request was translated.
            status, err, hdrs = last.error_status, last.error_body, last.error_headers
            if last.translated:
                status, err = translate_error(status, err, det.family)
                hdrs = [(k, v) for k, v in hdrs if k not in (b"content-type", b"content-encoding")]
                hdrs.append((b"content-type", b"application/json"))
            await send({"type": "http.response.start", "status": status,
                        "headers": [*hdrs, (b"content-length", str(len(err)).encode()), *extra]})
            await send({"type": "http.response.body", "body": err})
            return
        status = last.error_status if last is not None and last.error_status else 503
        msg = {504: "no upstream answered in time", 503: "no upstream available"}.get(
            status, "upstream failed")
        await self._error(send, det.family, status, msg, extra, "upstream_unavailable")

    # ---- relay (after commit) -------------------------------------------------------------------

    async def _relay(self, send: Send, api: Api, method: str, resp: aiohttp.ClientResponse, first: bytes,
                     prov: _Provider, target: TargetState, mfield: ModelField, request_id: str,
                     extra: list[tuple[bytes, bytes]], started: float, info: Any = None) -> None:
        headers: list[tuple[bytes, bytes]] = []
        ctype = b""
        encoded = False
        for k, v in resp.raw_headers:
            name = k.lower()
            if name in _DROP_RESPONSE:
                continue
            if name == b"content-type":
                ctype = v.lower()
            elif name == b"content-encoding" and v.strip().lower() not in (b"", b"identity"):
                encoded = True
            headers.append((name, v))
        headers += extra
        sse = ctype.startswith(b"text/event-stream")
        if sse:
            headers += [(b"x-accel-buffering", b"no"), (b"cache-control", b"no-cache")]
        tap: SseTap | JsonTap | None = None
        if not encoded:
            if sse:
                tap = SseTap(self.cfg.tap_max_event_bytes)
            elif ctype.startswith(b"application/json"):
                tap = JsonTap()
        await send({"type": "http.response.start", "status": resp.status, "headers": headers})
        cap = self.cfg.max_response_bytes
        total = 0
        content = resp.content
        chunk = first
        ok_status = resp.status < 400
        kind = ""
        sse_tap = tap if isinstance(tap, SseTap) else None
        readany = content.readany
        at_eof = content.at_eof
        final = b""
        head_only = method == "HEAD"
        # The idle timeout covers origin reads only: one lazy deadline per stream instead of aiohttp's
        # per-chunk timer (see _IdleWatch). Not needed when the whole answer is already buffered.
        loop = asyncio.get_running_loop()
        watch: _IdleWatch | None = None
        conn = resp.connection
        if prov.idle and not head_only and conn is not None and conn.protocol is not None:
            conn.protocol.read_timeout = None
            conn.protocol.start_timeout()  # drops the timer aiohttp armed for the previous read
            watch = _IdleWatch(loop, prov.idle, content)
        try:
            if chunk:
                prov.m_first_byte.observe(time.perf_counter() - started)
            while True:
                if chunk:
                    total += len(chunk)
                    if total > cap:
                        raise _CapExceeded
                    if sse_tap is not None:
                        # Event-aligned relay: the same bytes in the same order, but an incomplete event
                        # waits for its end, so a failure can always be framed on a real boundary.
                        # Events over tap_max_event_bytes pass straight through.
                        chunk = sse_tap.split(chunk)
                    elif tap is not None:
                        tap.feed(chunk)
                if head_only or at_eof():
                    # Nothing more can come: the last bytes leave with the end of the response (one write).
                    final = chunk + sse_tap.held() if sse_tap is not None else chunk
                    break
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if watch is not None:
                    watch.since = loop.time()
                    chunk = await readany()
                    watch.since = -1.0
                else:
                    chunk = await readany()
                if not chunk:
                    final = sse_tap.held() if sse_tap is not None else b""
                    break
        except _CapExceeded:
            kind = "response_cap"
        except TimeoutError:
            kind = "idle_timeout"
        except (aiohttp.ClientError, OSError):
            kind = "upstream_reset"
        finally:
            if watch is not None:
                watch.cancel()
        if kind:
            resp.close()
            m.STREAM_ERRORS.labels(prov.name, kind).inc()
            if self.router.failure(target):
                m.BREAKER_OPEN.labels(prov.name).inc()
                self._breaker(target, 1)
            self._account(api, mfield, prov, tap, request_id, resp.status, started, kind, info)
            if isinstance(tap, SseTap):
                # Identity SSE: close the current event, then one error event in the client's own shape.
                event = stream_error_event(api, f"upstream stream failed: {kind}", kind)
                closing = b"\n\n" if tap.skipping else b""  # held bytes were never sent
                with contextlib.suppress(Exception):
                    await send({"type": "http.response.body", "body": closing + event,
                                "more_body": True})
            raise StreamAborted(kind)
        if ok_status:
            if target.failures:
                self._breaker(target, 0)  # was failing (perhaps open): closed again
            self.router.success(target)
            prov.m_ok.inc()
        else:
            m.ATTEMPTS.labels(prov.name, f"status_{resp.status}").inc()
        # Accounted before the end goes out: whoever sees the response complete sees its usage recorded.
        self._account(api, mfield, prov, tap, request_id, resp.status, started, "", info)
        await send({"type": "http.response.body", "body": final, "more_body": False})

    def _account(self, api: Api, mfield: ModelField, prov: _Provider, tap: SseTap | JsonTap | None,
                 request_id: str, status: int, started: float, failure: str, info: Any = None) -> None:
        usage: Usage | None = None
        if isinstance(tap, JsonTap):
            usage = tap.finish()
        elif isinstance(tap, SseTap):
            usage = tap.usage
        outcome = failure or ("ok" if status < 400 else "upstream_status")
        self._requests(api.value, mfield.model, outcome).inc()
        if usage is not None:
            if usage.input_tokens is not None:
                self._tokens(mfield.model, prov.name, "input").inc(usage.input_tokens)
            if usage.output_tokens is not None:
                self._tokens(mfield.model, prov.name, "output").inc(usage.output_tokens)
        self.last_usage = usage
        if info is not None and usage is not None:
            info.tokens_in = usage.input_tokens
            info.tokens_out = usage.output_tokens
        if log.isEnabledFor(logging.INFO):
            log.info("inference %s api=%s model=%s provider=%s status=%d outcome=%s ms=%.1f in=%s out=%s",
                     request_id, api.value, mfield.model, prov.name, status, outcome,
                     (time.perf_counter() - started) * 1000,
                     usage.input_tokens if usage else None, usage.output_tokens if usage else None)
