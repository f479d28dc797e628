"""The ASGI handler for ``{path_prefix}/sign``, ``/proxy`` and ``/click``.

* ``sign?url=<absolute URL>`` -> ``200 {"href": "<root-relative signed proxy URL>"}``; the host must
  be on ``allowed_domains`` (minting checks the allowlist, unlike Trusted Server).
* ``proxy?url=..&exp=..&sig=..`` -> the target fetched (``fetch.ThirdPartyClient``) and relayed as
  it arrives; HTML and CSS rewritten on the fly (``markup``: HTML by the publisher-page rules,
  ``install_rules``, with ``allowed_domains``, including inline scripts and ``<noscript>``);
  request headers from an allowlist (no cookies, no Authorization, Referer cut to its origin, no
  client address); ``Set-Cookie``, CORS and other origin-scoped response headers removed;
  ``nosniff`` and a ``sandbox`` CSP added so a third-party document never runs with the
  publisher's origin.
* ``click?...`` -> ``302`` to the target.

The edge ID is appended to proxy/click targets only when ``identity`` says consent allows it for
this very request (re-checked every time; the ID is read only from its cookie).
Signature problems: 400 malformed, 403 tampered/expired; host/address refusals: 403.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from prometheus_client import Counter

from sluicegate import gate
from sluicegate.config.domains import DomainList
from sluicegate.config.model import Settings
from sluicegate.edge.asgi import (
    Message,
    Receive,
    ResponseAborted,
    Scope,
    Send,
    encode_headers,
    header_list,
    send_simple,
)
from sluicegate.edge.client import start_request
from sluicegate.edge.deadline import Deadline
from sluicegate.edge.headers import TrustedProxies, for_rewritten_body, strip_hop_by_hop
from sluicegate.firstparty.fetch import ThirdPartyClient
from sluicegate.firstparty.guard import AddressGuard, Refused, Resolver
from sluicegate.firstparty.markup import CssUrlStream, UrlMinter, proxied_html
from sluicegate.firstparty.signing import BadUrl, Signer, Target, canonical_url, load_keys, with_param
from sluicegate.observability import metrics
from sluicegate.pipeline import PipelineError, Transformer
from sluicegate.pipeline.codecs import decoder_for, encoder_for, narrow_accept_encoding
from sluicegate.pipeline.html.processor import charset_gate
from sluicegate.upstream.errors import OriginError
from sluicegate.upstream.http1 import OriginResponse

if TYPE_CHECKING:
    from sluicegate.identity.edge import EdgeIdentity

log = logging.getLogger("sluicegate.firstparty")

FIRST_PARTY = Counter(
    "sluicegate_first_party_responses_total",
    "First-party endpoint answers by endpoint and status",
    ["endpoint", "status"],
    registry=metrics.REGISTRY,
)


@functools.cache
def _count(endpoint: str, status: int) -> Counter:
    return FIRST_PARTY.labels(endpoint, str(status))

_FORWARD = frozenset(
    {"user-agent", "accept", "accept-language", "if-none-match", "if-modified-since", "range", "if-range"}
)
_DROP_RESPONSE = frozenset(
    {
        "set-cookie",
        "set-cookie2",
        "strict-transport-security",
        "clear-site-data",
        "alt-svc",
        "public-key-pins",
        "report-to",
        "nel",
        "content-security-policy",  # replaced by our sandbox policy
        "content-security-policy-report-only",
        "service-worker-allowed",
        "origin-agent-cluster",
        "location",
    }
)
# Applies only when the response is a document (a navigation or a frame); subresources ignore it.
SANDBOX_CSP = (
    "sandbox allow-scripts allow-forms allow-popups allow-popups-to-escape-sandbox "
    "allow-top-navigation-by-user-activation"
)


def _counting(send: Send, endpoint: str) -> Send:
    async def counted(message: Message) -> None:
        if message["type"] == "http.response.start":
            _count(endpoint, message["status"]).inc()
        await send(message)

    return counted


def private_cache(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``Cache-Control`` made ``private`` (``public`` and ``s-maxage`` dropped, the rest kept)."""
    directives: list[str] = []
    out: list[tuple[str, str]] = []
    for name, value in headers:
        if name.lower() == "cache-control":
            directives += [d.strip() for d in value.split(",") if d.strip()]
        else:
            out.append((name, value))
    kept = [d for d in directives if d.split("=", 1)[0].strip().lower() not in ("public", "s-maxage", "private")]
    out.append(("cache-control", ", ".join(["private", *kept])))
    return out


def _json(body: dict[str, str]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


class FirstPartyEndpoints:
    def __init__(self, settings: Settings, identity: EdgeIdentity | None = None) -> None:
        fp = settings.first_party
        self.settings = settings
        self.prefix = fp.path_prefix
        self.allowed = DomainList(fp.allowed_domains)
        self.on = fp.enabled and bool(self.allowed)
        self.identity = identity
        self.trusted = TrustedProxies(settings.server.trusted_proxies)
        self.signer: Signer | None = None
        if self.on:
            self.signer = Signer(load_keys(fp.keys_file), fp.path_prefix, fp.url_ttl, fp.max_url_bytes)
        self.client: ThirdPartyClient | None = None
        self.timeouts = settings.timeouts
        self.limits = settings.limits
        self.codec_levels = settings.compression.model_dump()

    def matches(self, path: str) -> bool:
        return path.startswith(self.prefix) and (len(path) == len(self.prefix) or path[len(self.prefix)] == "/")

    def _client(self) -> ThirdPartyClient:
        if self.client is None:
            fp = self.settings.first_party
            self.client = ThirdPartyClient(
                self.allowed,
                AddressGuard(fp.allow_private_addresses),
                Resolver(fp.resolve),
                connect_timeout=self.timeouts.connect,
                max_redirects=fp.max_redirects,
                max_connections=fp.max_connections,
                max_pools=fp.max_pools,
                max_head_bytes=self.limits.max_origin_head_bytes,
                high_water=self.limits.origin_read_buffer_bytes,
                keepalive_timeout=self.timeouts.origin_keepalive,
                max_url_bytes=fp.max_url_bytes,
            )
        return self.client

    async def shutdown(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if not self.on or self.signer is None:
            await send_simple(send, 404, b"first-party endpoints are off (no [first_party] allowed_domains)\n")
            return
        method = scope["method"].upper()
        action = path[len(self.prefix) :]
        if action not in ("/sign", "/proxy", "/click"):
            await send_simple(send, 404, b"unknown first-party endpoint\n")
            return
        if method not in ("GET", "HEAD"):
            await send_simple(send, 405, b"only GET and HEAD\n", [("allow", "GET, HEAD")])
            return
        query = scope.get("query_string", b"").decode("latin-1")
        send = _counting(send, action[1:])
        try:
            if action == "/sign":
                await self._sign(query, send)
            elif action == "/click":
                target = self._with_id(self.signer.verify("click", query), scope)
                await send_simple(
                    send, 302, b"", [("location", target.url), ("cache-control", "no-store, private")]
                )
            else:
                target = self.signer.verify("proxy", query)
                self._client().check_host(target)  # before anything else: a key leak is not an open proxy
                personal = self._with_id(target, scope)
                await self._proxy(scope, receive, send, method, personal, personal is not target)
        except BadUrl as exc:
            await send_simple(send, exc.status, f"{exc.reason}\n".encode())
        except Refused as exc:
            log.info("first-party: refused (%d): %s", exc.status, exc.reason)
            await send_simple(send, exc.status, f"{exc.reason}\n".encode())

    async def _sign(self, query: str, send: Send) -> None:
        assert self.signer is not None
        urls = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == "url"]
        if len(urls) != 1:
            raise BadUrl(400, "sign needs exactly one url parameter")
        target = canonical_url(urls[0], self.signer.max_url_bytes)
        self._client().check_host(target)
        href = self.signer.mint("proxy", target)
        await send_simple(
            send,
            200,
            _json({"href": href}),
            [("cache-control", "no-store, private")],
            content_type="application/json",
        )

    def _with_id(self, target: Target, scope: Scope) -> Target:
        ident = self.identity
        if ident is None:
            return target
        client = scope.get("client") or ("", 0)
        edge_id = ident.current_id(header_list(scope), client[0], client[0] in self.trusted)
        if edge_id is None:
            return target
        return with_param(target, ident.settings.cookie_name, edge_id)

    def _outbound_headers(self, scope: Scope) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for name, value in header_list(scope):
            ln = name.lower()
            if ln in _FORWARD:
                out.append((ln, value))
            elif ln == "accept-encoding":
                narrowed = narrow_accept_encoding(value)
                if narrowed is not None:
                    out.append((ln, narrowed))
            elif ln == "referer":
                try:
                    parts = urlsplit(value)
                except ValueError:
                    continue
                if parts.scheme in ("http", "https") and parts.netloc:
                    out.append(("referer", f"{parts.scheme}://{parts.netloc}/"))
        return out

    async def _proxy(
        self, scope: Scope, receive: Receive, send: Send, method: str, target: Target, personal: bool
    ) -> None:
        watch, deadline = start_request(receive, send, has_body=False)
        send = watch.send
        try:
            try:
                with deadline:
                    deadline.after(self.timeouts.first_byte)
                    resp, final = await self._client().open(method, target, self._outbound_headers(scope))
            except TimeoutError:
                await send_simple(send, 504, b"third party sent no response head in time\n")
                return
            except OriginError as exc:
                log.info("first-party: %s fetch failed: %s", target.host, exc.kind)
                await send_simple(send, 502, f"third party unreachable or invalid ({exc.kind})\n".encode())
                return
            try:
                await self._relay(resp, final, method, send, deadline, personal)
            finally:
                resp.release()
        except asyncio.CancelledError:
            if watch.disconnected:
                return
            raise
        finally:
            deadline.close()
            watch.stop()

    def _transformer(
        self, decision: gate.Decision, headers: list[tuple[str, str]], final: Target
    ) -> Transformer | None:
        assert self.signer is not None
        content_type = next((v for k, v in reversed(headers) if k.lower() == "content-type"), "")
        ctype = gate.media_type(content_type)
        minter = UrlMinter(self.signer, self.allowed, base=final.url)
        html = self.settings.html
        if decision.kind is gate.Kind.HTML:
            # behind the publisher pages' charset gate: UTF-16/32 documents pass unmodified
            return charset_gate(
                proxied_html(minter, max_tag_bytes=html.max_tag_bytes, max_text_bytes=html.max_text_bytes,
                             max_css_token_bytes=self.settings.first_party.max_css_token_bytes),
                gate.charset_of(content_type),
            )
        if ctype == "text/css":
            return CssUrlStream(minter, self.settings.first_party.max_css_token_bytes)
        return None

    async def _relay(
        self, resp: OriginResponse, final: Target, method: str, send: Send, deadline: Deadline, personal: bool
    ) -> None:
        raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers]
        decision = gate.classify(method, resp.status, raw)
        out = [
            (k, v)
            for k, v in strip_hop_by_hop(raw)
            if (ln := k.lower()) not in _DROP_RESPONSE and not ln.startswith("access-control-")
        ]
        out += [("x-content-type-options", "nosniff"), ("content-security-policy", SANDBOX_CSP)]
        if personal:  # the request carried the visitor's ID: the answer may be theirs alone
            out = private_cache(out)
        if decision.route is gate.Route.BODILESS:
            await send({"type": "http.response.start", "status": resp.status,
                        "headers": encode_headers(gate.bodiless_headers(resp.status, out))})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        processor = self._transformer(decision, raw, final) if decision.route is gate.Route.STREAM else None
        transform: Callable[[bytes], bytes] | None = None
        tail: Callable[[], bytes] | None = None
        if processor is not None:
            decoder = decoder_for(decision.encoding, self.limits.max_decoded_body_bytes)
            encoder = encoder_for(decision.encoding, **self.codec_levels)
            out = for_rewritten_body(out)
            proc = processor

            def transform(chunk: bytes) -> bytes:
                return b"".join(encoder.feed(proc.feed(p)) for p in decoder.feed_pieces(chunk))

            def tail() -> bytes:
                rest = proc.feed(decoder.finish()) + proc.finish()
                return encoder.feed(rest) + encoder.finish()

        await send({"type": "http.response.start", "status": resp.status, "headers": encode_headers(out)})
        idle = self.timeouts.idle
        started = time.monotonic()
        try:
            with deadline:
                while True:
                    deadline.after(idle)
                    chunk = await resp.read()
                    deadline.clear()
                    if not chunk:
                        break
                    body = transform(chunk) if transform is not None else chunk
                    if body:
                        await send({"type": "http.response.body", "body": body, "more_body": True})
            final_bytes = tail() if tail is not None else b""
        except TimeoutError:
            raise ResponseAborted(f"third party idle for {idle:g}s mid-body") from None
        except (PipelineError, OriginError) as exc:
            log.info("first-party: %s body failed after %.3fs: %s", final.host, time.monotonic() - started, exc)
            raise ResponseAborted(str(exc)) from None
        await send({"type": "http.response.body", "body": final_bytes, "more_body": False})
