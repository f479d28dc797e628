"""WebSocket frames (RFC 6455 §5), sans-IO: follow one direction of a tunnel without changing a byte.

Owns: ``FrameScanner``, which reads a byte stream frame by frame and returns the bytes that may be
forwarded (frame headers are held until complete, payloads pass through as they arrive: no message is
ever assembled), checks the framing (masking per direction, opcodes, control frames ≤ 125 bytes and not
fragmented, continuation order), bounds a message's size, and notes the code of a close frame;
``close_frame`` builds the close frames the proxy itself sends (idle, too big, protocol error, going away).
Extensions (permessage-deflate) are negotiated end to end: RSV bits pass, sizes are counted as sent.
Must not know about sockets, event loops or HTTP.
"""

from __future__ import annotations

import os
import struct

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005
CLOSE_TOO_BIG = 1009
CLOSE_BAD_GATEWAY = 1014

_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_KNOWN = frozenset({_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG})


class FrameError(Exception):
    """The stream cannot be relayed further: ``code`` is the close code both sides are sent."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class FrameScanner:
    """One direction of a tunnel. ``masked``: frames must carry a mask (client → server) or must not."""

    __slots__ = (
        "_close_buf", "_close_mask", "_head", "_in_message", "_is_close", "_remaining",
        "close_code", "closed", "frames", "masked", "max_message", "message_bytes", "payload_bytes",
    )

    def __init__(self, *, masked: bool, max_message: int) -> None:
        self.masked = masked
        self.max_message = max_message
        self._head = b""  # an incomplete frame header (at most 13 bytes)
        self._remaining = 0  # payload bytes of the current frame still to pass
        self._in_message = False  # a fragmented data message is open (continuations expected)
        self.message_bytes = 0  # payload bytes of the open data message so far
        self._is_close = False
        self._close_buf = b""  # the first two payload bytes of a close frame (the code), unmasked
        self._close_mask = b""
        self.close_code: int | None = None  # the code of the close frame seen (1005 when it had none)
        self.closed = False  # a close frame passed completely: nothing more may follow
        self.frames = 0
        self.payload_bytes = 0

    @property
    def at_boundary(self) -> bool:
        """Nothing of a frame is half-forwarded: the proxy may write a frame of its own on this stream."""
        return self._remaining == 0

    def feed(self, data: bytes) -> bytes:
        """The bytes of ``data`` that may be forwarded now (held header bytes are released with their frame).

        Raises ``FrameError`` at the first frame that breaks the rules or the size bound; nothing of that
        frame has been returned then (its header is held until it is judged).
        """
        out: list[bytes] = []
        pos = 0
        end = len(data)
        while pos < end:
            remaining = self._remaining
            if remaining:
                take = min(remaining, end - pos)
                if self._is_close and len(self._close_buf) < 2:
                    self._note_close(data[pos:pos + take])
                out.append(data[pos:pos + take])
                pos += take
                self._remaining = remaining - take
                self.payload_bytes += take
                if self._remaining == 0 and self._is_close:
                    self._closed()
                continue
            if self.closed:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "data after a close frame")
            head = self._head + data[pos:pos + 14] if self._head else data[pos:pos + 14]
            size = _header_size(head)
            if size == 0 or len(head) < size:  # incomplete header: hold it
                self._head = head
                pos = end
                break
            used = size - len(self._head)
            self._head = b""
            pos += used
            length = self._start(head[:size])
            out.append(head[:size])
            self.frames += 1
            if length == 0 and self._is_close:
                self._closed()
        return b"".join(out) if len(out) != 1 else out[0]

    def _start(self, head: bytes) -> int:
        b0, b1 = head[0], head[1]
        fin = b0 & 0x80
        opcode = b0 & 0x0F
        masked = bool(b1 & 0x80)
        length = b1 & 0x7F
        if length == 126:
            length = struct.unpack_from("!H", head, 2)[0]
        elif length == 127:
            length = struct.unpack_from("!Q", head, 2)[0]
            if length >> 63:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "frame length has the high bit set")
        if masked != self.masked:
            raise FrameError(CLOSE_PROTOCOL_ERROR, "client frames must be masked" if self.masked
                             else "server frames must not be masked")
        if opcode not in _KNOWN:
            raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
        self._is_close = opcode == _CLOSE
        if opcode >= _CLOSE:  # control frame
            if not fin or length > 125:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "control frames are short and not fragmented")
            if self._is_close:
                self._close_buf = b""
                self._close_mask = head[-4:] if masked else b""
        else:
            if opcode == _CONTINUATION:
                if not self._in_message:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "continuation frame without a message")
            else:
                if self._in_message:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
                self.message_bytes = 0
            self.message_bytes += length
            if self.message_bytes > self.max_message:
                raise FrameError(CLOSE_TOO_BIG, f"message over {self.max_message} bytes")
            self._in_message = not fin
        self._remaining = length
        return length

    def _note_close(self, piece: bytes) -> None:
        need = 2 - len(self._close_buf)
        got = piece[:need]
        if self._close_mask:
            start = len(self._close_buf)
            got = bytes(b ^ self._close_mask[(start + i) % 4] for i, b in enumerate(got))
        self._close_buf += got

    def _closed(self) -> None:
        self.closed = True
        self._is_close = False
        if len(self._close_buf) >= 2:
            self.close_code = struct.unpack("!H", self._close_buf[:2])[0]
        else:
            self.close_code = CLOSE_NO_STATUS


def _header_size(head: bytes) -> int:
    """The full header size once its first two bytes are there (0 before)."""
    if len(head) < 2:
        return 0
    length = head[1] & 0x7F
    size = 2 + (2 if length == 126 else 8 if length == 127 else 0)
    return size + (4 if head[1] & 0x80 else 0)


def close_frame(code: int, reason: str = "", *, masked: bool) -> bytes:
    """A close frame the proxy sends: unmasked towards a client, masked (random key) towards an origin."""
    payload = struct.pack("!H", code) + reason.encode()[:123]
    if not masked:
        return bytes((0x88, len(payload))) + payload
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes((0x88, 0x80 | len(payload))) + key + body
