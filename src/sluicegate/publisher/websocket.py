"""WebSocket proxying on publisher routes: the upgrade forwarded to the origin, then a frame-aware tunnel.

uvicorn hands an upgrade request to the protocol class it was given as ``ws`` (``server.worker`` gives it
``tunnel_protocol(proxy)``): that class, ``TunnelProtocol``, owns the client connection from the request
head on. ``WebSocketProxy.serve`` then
  1. judges the request like an HTTP one (GET, Host against ``public_hosts``, header size, another face's
     path -> 404, ``publisher.websocket`` off -> 403, tunnels per worker over ``[websocket]
     max_connections`` -> 503);
  2. opens a new origin connection (TLS with SNI + verification as for HTTP) and sends the upgrade with the
     same header rules as HTTP (hop-by-hop stripped, forwarding headers set, ``Origin``/``Cookie``/query
     mapped public -> origin with ``map_requests``), ``Sec-WebSocket-*`` passed end to end;
  3. origin answers 101: the 101 goes to the client (headers mapped, ``Sec-WebSocket-*`` untouched) and
     the tunnel starts; any other status goes to the client as it is (a short body relayed, or replaced
     by a one-line one), then the connection closes.

The tunnel (``wstunnel.Tunnel``) relays bytes both ways as they arrive: each direction passes through a
``wsframes.FrameScanner``, which never assembles a message, only follows frame boundaries. So pings,
pongs, close frames and their codes, fragmented messages and negotiated extensions pass end to end. The
proxy speaks only to end the tunnel: no byte for ``idle_timeout`` -> close 1001 to both sides; a message
over ``max_message_bytes`` -> 1009; broken framing -> 1002; the origin gone without a close frame -> 1014
to the client; worker drain -> 1001. It writes a frame of its own only at a frame boundary of that
stream, else it just closes the TCP connection (the peer sees 1006: visibly failed, never truncated).
Backpressure: a side whose write buffer passes ``buffer_bytes`` pauses reading from the other side.

Must not know about HTTP body rewriting or the ASGI request path (upgrades never enter the ASGI app).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections.abc import Callable
from typing import Any, cast

from prometheus_client import Counter, Gauge

from sluicegate.config.model import Settings
from sluicegate.edge.headers import TrustedProxies
from sluicegate.observability.metrics import REGISTRY
from sluicegate.pipeline.hosts import HostRewriter, OriginMatcher
from sluicegate.publisher import headers as hdr
from sluicegate.publisher import inbound
from sluicegate.publisher import wsframes as wf
from sluicegate.publisher.wstunnel import Tunnel
from sluicegate.upstream.tls import client_context

log = logging.getLogger("sluicegate.websocket")

WS_OPEN = Gauge(
    "sluicegate_websocket_connections", "WebSocket tunnels open now", multiprocess_mode="livesum", registry=REGISTRY
)
WS_UPGRADES = Counter(
    "sluicegate_websocket_upgrades_total",
    "WebSocket upgrade requests by outcome: tunnelled (origin said 101), refused (origin answered another "
    "status), rejected (the proxy answered: host, method, limits), failed (origin unreachable or invalid)",
    ["outcome"],
    registry=REGISTRY,
)
WS_CLOSED = Counter(
    "sluicegate_websocket_closed_total",
    "WebSocket tunnels ended, by reason (closed = close handshake, client_gone, origin_gone, idle, "
    "too_big, protocol, shutdown)",
    ["reason"],
    registry=REGISTRY,
)
_REFUSAL_BODY_MAX = 64 * 1024  # an origin's refusal body up to this is relayed; a longer one is replaced
_REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            421: "Misdirected Request", 431: "Request Header Fields Too Large", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}


class HandshakeFailed(Exception):
    def __init__(self, status: int, message: str, outcome: str) -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome


class WebSocketProxy:
    """One per worker: admits upgrades, does the origin handshake, runs the tunnels."""

    def __init__(self, settings: Settings, other_face: Callable[[dict[str, Any]], bool] | None = None) -> None:
        self.settings = settings
        pub = settings.publisher
        self.enabled = pub.enabled and pub.websocket
        self.origin = pub.origin
        self.matcher = OriginMatcher(self.origin, pub.all_origin_aliases)
        self.trusted = TrustedProxies(settings.server.trusted_proxies)
        self.cfg = settings.websocket
        self.id_header = settings.server.request_id_header
        self.other_face = other_face
        self.open = 0
        self.owner: WebSocketProxy = self  # whose tunnel count bounds this one (a route's proxy: the face's)
        # [[publisher.routes]]: a page route's upgrades go to its own backend; asset routes take none, nor do
        # page routes that rewrite the path or strip the query (not supported for upgrades yet): 403
        self.routes: list[tuple[Any, WebSocketProxy | None]] = []
        if pub.routes:
            from sluicegate.publisher.routes import _Entry, page_settings

            for route in pub.routes:
                sub = None
                if route.kind == "page" and route.rewrite is None and route.query != "strip":
                    sub = WebSocketProxy(page_settings(settings, route), other_face)
                    sub.owner = self
                self.routes.append((_Entry(route, None), sub))
            self.routes.sort(key=lambda r: (-len(r[0].prefix), not r[0].hosts))
        self.tunnels: set[Tunnel] = set()
        self.ssl: ssl.SSLContext | None = None
        if self.origin.scheme == "https":
            self.ssl = client_context(verify=pub.verify_tls, ca_file=pub.ca_file)

    # ---- handshake ---------------------------------------------------------------------------------
    async def serve(self, client: TunnelProtocol, head: bytes) -> None:
        request_id = os.urandom(8).hex()
        started = time.perf_counter()
        tunnel: Tunnel | None = None
        try:
            tunnel = await self._handshake(client, head, request_id)
        except HandshakeFailed as exc:
            WS_UPGRADES.labels(exc.outcome).inc()
            level = logging.WARNING if exc.outcome == "failed" else logging.INFO
            log.log(level, "websocket %s: %s -> %d", request_id, exc, exc.status)
            client.reply(exc.status, f"{exc} (request id {request_id})\n".encode(), [(self.id_header, request_id)])
            return
        except asyncio.CancelledError:
            client.abort()
            raise
        if tunnel is None:  # refused by the origin (already relayed) or the client left during the handshake
            return
        WS_UPGRADES.labels("tunnelled").inc()
        self.open += 1
        self.tunnels.add(tunnel)
        WS_OPEN.inc()
        try:
            await tunnel.done
        finally:
            self.open -= 1
            self.tunnels.discard(tunnel)
            WS_OPEN.dec()
            WS_CLOSED.labels(tunnel.reason).inc()
            log.info(
                "websocket %s: %s after %.1fs (client close %s, origin close %s), %d B up, %d B down",
                request_id, tunnel.reason, time.perf_counter() - started, tunnel.up.close_code,
                tunnel.down.close_code, tunnel.up_bytes, tunnel.down_bytes,
            )

    async def _handshake(self, client: TunnelProtocol, head: bytes, request_id: str) -> Tunnel | None:
        method, target, req_headers = _parse_request_head(head)
        if not self.enabled:
            raise HandshakeFailed(403, "WebSocket is not enabled here", "rejected")
        if self.routes:
            path = target.partition("?")[0]
            host = next((v for k, v in req_headers if k == "host"), "").strip().lower()
            for entry, sub in self.routes:
                if entry.matches(path) and (not entry.hosts or hdr.host_allowed(host, client.scheme, entry.hosts)):
                    if sub is None:
                        raise HandshakeFailed(403, f"WebSocket is not enabled on route {entry.name}", "rejected")
                    if "/./" in path + "/" or "/../" in path + "/":
                        raise HandshakeFailed(400, "Path with dot segments refused", "rejected")
                    return await sub._handshake(client, head, request_id)
        if method != "GET":
            raise HandshakeFailed(405, "a WebSocket upgrade is a GET", "rejected")
        hosts = [v for k, v in req_headers if k == "host"]
        host = hosts[0].strip() if len(hosts) == 1 else ""
        if not host or not hdr.valid_host(host):
            raise HandshakeFailed(400, "Missing or invalid Host header", "rejected")
        if not any(k == "sec-websocket-key" for k, _ in req_headers):
            raise HandshakeFailed(400, "not a WebSocket handshake (no Sec-WebSocket-Key)", "rejected")
        facts = hdr.client_facts(client.peer_ip, client.scheme, host, req_headers, self.trusted)
        if not hdr.host_allowed(host, facts.scheme, self.settings.publisher.public_hosts):
            raise HandshakeFailed(421, "Misdirected request: this host is not served here", "rejected")
        if sum(len(k) + len(v) + 4 for k, v in req_headers) > self.settings.limits.max_request_header_bytes:
            raise HandshakeFailed(431, "Request header fields too large", "rejected")
        path, _, query = target.partition("?")
        if self.other_face is not None and self.other_face(_scope(path, req_headers)):
            raise HandshakeFailed(404, "Not found", "rejected")
        if self.owner.open >= self.cfg.max_connections:
            raise HandshakeFailed(503, "too many WebSocket connections", "rejected")

        pub = self.settings.publisher
        up_headers = hdr.upstream_request_headers(
            req_headers, facts, self.origin, pub.origin_host_header, request_id, id_header=self.id_header
        )
        mapper = None
        if pub.map_requests:
            mapper = inbound.InboundMapper.build(facts.scheme, host.lower(), self.origin, pub.origin_host_header)
        if mapper is not None:
            up_headers = mapper.map_headers(up_headers)
            if query:
                query = mapper.map_query(query.encode("latin-1")).decode("latin-1")
        if not path.startswith("/"):
            path = "/" + path
        lines = [f"GET {path}{'?' + query if query else ''} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in up_headers]
        lines += ["connection: upgrade", "upgrade: websocket", "", ""]
        request = "\r\n".join(lines).encode("latin-1")

        loop = asyncio.get_running_loop()
        timeouts = self.settings.timeouts
        origin = _OriginSide(self.settings.limits.max_origin_head_bytes)
        try:
            async with asyncio.timeout(timeouts.connect):
                await loop.create_connection(
                    lambda: origin, self.origin.host, self.origin.port, ssl=self.ssl,
                    server_hostname=self.origin.host if self.ssl is not None else None,
                )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            raise HandshakeFailed(502, "cannot connect to origin", "failed") from exc
        try:
            assert origin.transport is not None
            origin.transport.write(request)
            try:
                async with asyncio.timeout(timeouts.first_byte):
                    status, resp_headers = await origin.read_head()
            except TimeoutError:
                raise HandshakeFailed(504, "origin did not answer in time", "failed") from None
            rewriter = self.matcher.for_request(facts.scheme, host.lower())
            if status != 101:
                await self._refused(client, origin, status, resp_headers, rewriter, request_id)
                return None
            if next((v for k, v in resp_headers if k == "upgrade"), "").strip().lower() != "websocket":
                raise HandshakeFailed(502, "invalid response from origin (101 without Upgrade: websocket)", "failed")
            if client.gone:
                origin.close()
                return None
            out = self._client_headers(resp_headers, rewriter, request_id)
            head_out = ["HTTP/1.1 101 Switching Protocols"] + [f"{k}: {v}" for k, v in out]
            head_out += ["upgrade: websocket", "connection: upgrade", "", ""]
            tunnel = Tunnel(client, origin, self.cfg.max_message_bytes, self.cfg.idle_timeout, self.cfg.buffer_bytes)
            client.write("\r\n".join(head_out).encode("latin-1"))
            tunnel.start(origin.take_rest(), client.take_early())
            return tunnel
        except BaseException:
            origin.close()
            raise

    def _client_headers(self, headers: list[tuple[str, str]], rewriter: HostRewriter,
                        request_id: str) -> list[tuple[str, str]]:
        pub = self.settings.publisher
        kept = [(k, v) for k, v in headers if k.startswith("sec-websocket-")]
        mapped = hdr.downstream_response_headers(
            [(k, v) for k, v in headers if not k.startswith("sec-websocket-")], rewriter, self.origin, request_id,
            id_header=self.id_header, origin_host_header=pub.origin_host_header, public_hosts=pub.public_hosts,
            aliases=pub.origin_aliases,
        )
        return mapped + kept

    async def _refused(self, client: TunnelProtocol, origin: _OriginSide, status: int,
                       headers: list[tuple[str, str]], rewriter: HostRewriter, request_id: str) -> None:
        """The origin did not switch: its status (and a short body) go to the client, then both close."""
        WS_UPGRADES.labels("refused").inc()
        log.info("websocket %s: origin refused the upgrade with %d", request_id, status)
        length = next((v for k, v in headers if k == "content-length"), None)
        chunked = any(k == "transfer-encoding" for k, _ in headers)
        body: bytes | None = None
        if length is not None and length.strip().isdigit() and not chunked and int(length) <= _REFUSAL_BODY_MAX:
            try:
                async with asyncio.timeout(self.settings.timeouts.idle):
                    body = await origin.read_exact(int(length))
            except (TimeoutError, ConnectionError):
                body = None
        origin.close()
        out = [(k, v) for k, v in self._client_headers(headers, rewriter, request_id)
               if k not in ("content-length", "content-encoding", "content-type")]
        if body is None:
            body = f"origin refused the WebSocket upgrade ({status}) (request id {request_id})\n".encode()
            out.append(("content-type", "text/plain; charset=utf-8"))
        else:
            out += [(k, v) for k, v in headers if k in ("content-type", "content-encoding")]
        client.reply(status, body, out, reason=_REASONS.get(status, "Refused"))

    def shutdown(self) -> None:
        for tunnel in list(self.tunnels):
            tunnel.fail(wf.CLOSE_GOING_AWAY, "server shutting down", "shutdown")


def _scope(path: str, headers: list[tuple[str, str]]) -> dict[str, Any]:
    return {"type": "http", "path": path, "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]}


def _parse_request_head(head: bytes) -> tuple[str, str, list[tuple[str, str]]]:
    """uvicorn re-serialised the (already parsed) request: ``METHOD target HTTP/1.1`` and lower-case names."""
    text = head.decode("latin-1")
    lines = text.split("\r\n")
    method, _, rest = lines[0].partition(" ")
    target = rest.rpartition(" ")[0]
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            break
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return method.upper(), target, headers


def _parse_response_head(head: bytes) -> tuple[int, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
        raise HandshakeFailed(502, "invalid response from origin", "failed")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or line[0] in " \t":
            raise HandshakeFailed(502, "invalid response from origin (header line)", "failed")
        headers.append((name.lower(), value.strip()))
    return int(parts[1]), headers


# ---- the two connections --------------------------------------------------------------------------
class _OriginSide(asyncio.Protocol):
    """The origin connection: the response head is read here, then bytes go to the tunnel."""

    def __init__(self, max_head: int) -> None:
        self.max_head = max_head
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.eof = False
        self.tunnel: Tunnel | None = None
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.from_origin(data)
            return
        self.buf += data
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        if self.tunnel is not None:
            self.tunnel.origin_gone()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self._wake()
        if self.tunnel is not None:
            self.tunnel.origin_gone()

    def pause_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.client.pause_reading()

    def resume_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.client.resume_reading()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _more(self) -> None:
        if self.eof:
            raise ConnectionError("origin closed the connection")
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter
        self._waiter = None

    async def read_head(self) -> tuple[int, list[tuple[str, str]]]:
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self.buf[:end])
                del self.buf[:end + 4]
                return _parse_response_head(head)
            if len(self.buf) > self.max_head:
                raise HandshakeFailed(502, "invalid response from origin (head too large)", "failed")
            try:
                await self._more()
            except ConnectionError:
                raise HandshakeFailed(502, "origin closed the connection", "failed") from None

    async def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            await self._more()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def take_rest(self) -> bytes:
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class TunnelProtocol(asyncio.Protocol):
    """The client connection from the upgrade request on (uvicorn's ``ws`` protocol class)."""

    proxy: WebSocketProxy  # set on the bound subclass (``tunnel_protocol``)

    def __init__(self, config: Any = None, server_state: Any = None, app_state: Any = None) -> None:
        self.server_state = server_state
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.task: asyncio.Task[None] | None = None
        self.tunnel: Tunnel | None = None
        self.early: list[bytes] = []  # client bytes that came before the tunnel existed
        self.gone = False
        self.peer_ip = ""
        self.scheme = "http"

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        peer = transport.get_extra_info("peername")
        self.peer_ip = peer[0] if isinstance(peer, tuple) and peer else ""
        self.scheme = "https" if transport.get_extra_info("sslcontext") is not None else "http"
        if self.server_state is not None:
            self.server_state.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.from_client(data)
        elif self.task is None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end >= 0:
                head, rest = self.head[:end + 4], self.head[end + 4:]
                self.head = b""
                if rest:
                    self.early.append(rest)
                self.task = asyncio.get_running_loop().create_task(self.proxy.serve(self, head))
                if self.server_state is not None:
                    self.server_state.tasks.add(self.task)
                    self.task.add_done_callback(self.server_state.tasks.discard)
        else:  # a client must wait for the 101; hold what it sends meanwhile, and stop reading
            self.early.append(data)
            self.pause_reading()

    def eof_received(self) -> bool:
        self._gone()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone()
        if self.server_state is not None:
            self.server_state.connections.discard(self)

    def _gone(self) -> None:
        if self.gone:
            return
        self.gone = True
        if self.tunnel is not None:
            self.tunnel.client_gone()
        elif self.task is not None and not self.task.done():  # left during the origin handshake: stop it
            self.task.cancel()

    def pause_writing(self) -> None:
        if self.tunnel is not None and self.tunnel.origin.transport is not None:
            self.tunnel.origin.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.tunnel is not None and self.tunnel.origin.transport is not None:
            self.tunnel.origin.transport.resume_reading()

    # uvicorn's drain calls this on every connection
    def shutdown(self) -> None:
        if self.tunnel is not None:
            self.tunnel.fail(wf.CLOSE_GOING_AWAY, "server shutting down", "shutdown")
        elif self.task is None and self.transport is not None:
            self.transport.close()

    # used by the proxy
    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def reply(self, status: int, body: bytes, headers: list[tuple[str, str]], reason: str = "") -> None:
        reason = reason or _REASONS.get(status, "Error")
        lines = [f"HTTP/1.1 {status} {reason}"]
        if not any(k == "content-type" for k, _ in headers):
            headers = [*headers, ("content-type", "text/plain; charset=utf-8")]
        lines += [f"{k}: {v}" for k, v in headers]
        lines += [f"content-length: {len(body)}", "connection: close", "", ""]
        self.write("\r\n".join(lines).encode("latin-1") + body)
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def take_early(self) -> bytes:
        data = b"".join(self.early)
        self.early.clear()
        return data


def tunnel_protocol(proxy: WebSocketProxy) -> type[TunnelProtocol]:
    """The protocol class uvicorn is given as ``ws``, bound to this worker's proxy."""
    return type("BoundTunnelProtocol", (TunnelProtocol,), {"proxy": proxy})
