"""WebSocket pieces of the fault suite: the origin side of ``/ws/N`` and a client that judges the message.

The origin answers the upgrade (RFC 6455 accept key) and sends one binary message of N pattern bytes
(``faultnet.body``) as 1 MiB fragments, then a close 1000. ``ws_fetch`` does the handshake on a fresh
connection, reads frames (optionally slowly, or leaving early) and judges like ``faultnet.fetch``: exact
(the whole message, every byte right, then close 1000), failed (a close with another code, or the connection
ended: visible), corrupted (a complete message with wrong bytes) or lost (nothing within the time limit).
Must not know the proxy's internals.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct

from sluicegate.bench.suites.faultnet import Outcome, body

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_FRAGMENT = 1 << 20


def _accept(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def _frame(opcode: int, payload: bytes, fin: bool) -> bytes:
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        return bytes((b0, n)) + payload
    if n < 65536:
        return bytes((b0, 126)) + struct.pack("!H", n) + payload
    return bytes((b0, 127)) + struct.pack("!Q", n) + payload


async def serve_ws(head: bytes, n: int, writer: asyncio.StreamWriter) -> None:
    key = next((line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")), b"")
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + _accept(key) + b"\r\n\r\n")
    sent = 0
    while sent < n:
        take = min(_FRAGMENT, n - sent)
        writer.write(_frame(0x2 if sent == 0 else 0x0, body(take, sent), fin=sent + take == n))
        sent += take
        await writer.drain()
    writer.write(_frame(0x8, struct.pack("!H", 1000), fin=True))
    await writer.drain()


async def ws_fetch(port: int, path: str, host: str, *, timeout: float = 60.0, read_delay: float = 0.0,
                   read_size: int = 65536, stop_after: int = 0) -> Outcome:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    n = int(path.rsplit("/", 1)[1])
    out = Outcome("lost")
    got = 0
    same = True
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            key = base64.b64encode(os.urandom(16))
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            out.first_byte_s = loop.time() - t0
            out.status = int(head.split(b" ", 2)[1])
            if out.status != 101 or _accept(key) not in head:
                out.verdict, out.detail = "failed", f"handshake answered {out.status}"
                return out
            while True:
                h = await reader.readexactly(2)
                opcode, length = h[0] & 0x0F, h[1] & 0x7F
                if length == 126:
                    length = struct.unpack("!H", await reader.readexactly(2))[0]
                elif length == 127:
                    length = struct.unpack("!Q", await reader.readexactly(8))[0]
                if opcode == 0x8:
                    payload = await reader.readexactly(length)
                    code = struct.unpack("!H", payload[:2])[0] if length >= 2 else 1005
                    out.got = got
                    if code == 1000 and got == n:
                        out.verdict = "exact" if same else "corrupted"
                        out.detail = "" if same else "whole message with wrong bytes"
                    else:
                        out.verdict, out.detail = "failed", f"close {code} after {got} bytes"
                    return out
                left = length
                while left:
                    if read_delay:
                        await asyncio.sleep(read_delay)
                    piece = await reader.readexactly(min(left, read_size))
                    if same and piece != body(len(piece), got):
                        same = False
                    got += len(piece)
                    left -= len(piece)
                    if stop_after and got >= stop_after:
                        out.verdict, out.got, out.detail = "failed", got, "client left"
                        return out
    except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
        out.verdict, out.got, out.detail = "failed", got, f"connection ended ({exc.__class__.__name__})"
    except TimeoutError:
        out.verdict, out.got, out.detail = "lost", got, f"nothing for {timeout:g}s"
    finally:
        out.seconds = loop.time() - t0
        if writer is not None:
            writer.close()
    return out
