"""Response framing for the native HTTP/1.1 core: the bytes of a response head, computed once where possible.

Owns: the status lines of every status (precomputed at import), the check of response header names and
values (no CR/LF/NUL in a value: no response splitting; names are tokens), what the head says about the
body's framing (``Content-Length``, ``Transfer-Encoding: chunked`` added when neither is given and a body
may follow, ``Connection: close`` added when the connection will close), and the fixed answers the core
gives without the app (400, 431, 500, ``100 Continue``). Adds no ``Server`` or ``Date`` header.

Must not know: sockets, the event loop, the ASGI app. Pure functions of bytes.
"""

from __future__ import annotations

import http
import re

STATUS_LINES: dict[int, bytes] = {}
for _status in http.HTTPStatus:
    STATUS_LINES[_status.value] = b"HTTP/1.1 %d %s\r\n" % (_status.value, _status.phrase.encode("latin-1"))


def status_line(status: int) -> bytes:
    line = STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 999:
            raise ValueError(f"invalid HTTP status {status!r}")
        line = STATUS_LINES[status] = b"HTTP/1.1 %d \r\n" % status
    return line


_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_GOOD_NAMES: set[bytes] = set()  # names already checked (bounded: grows only by names apps use)
_GOOD_NAMES_MAX = 4096
_BAD_VALUE = re.compile(rb"[\x00\r\n]")

CONTINUE_100 = b"HTTP/1.1 100 Continue\r\n\r\n"
CHUNK_END = b"0\r\n\r\n"
CHUNK_END_AFTER_DATA = b"\r\n0\r\n\r\n"  # a last chunk's CRLF and the terminating chunk, in one piece
CRLF = b"\r\n"

# Framing modes of a response body.
FRAME_NONE = 0  # no body may follow (HEAD, 1xx, 204, 304): body bytes are dropped
FRAME_LENGTH = 1  # Content-Length: exactly that many bytes
FRAME_CHUNKED = 2  # Transfer-Encoding: chunked
FRAME_CLOSE = 3  # HTTP/1.0 client, no Content-Length: the body ends when the connection closes


class HeadError(ValueError):
    """The app's response head cannot be written (bad name/value, bad Content-Length)."""


def encode_head(
    status: int, headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...], *, keep_alive: bool,
    head_request: bool, http10: bool = False,
) -> tuple[bytes, int, int, bool]:
    """(head bytes, framing mode, content length or -1, keep_alive after this response).

    Raises ``HeadError`` on a header the wire must not carry."""
    parts = [status_line(status)]
    length = -1
    chunked = False
    close_sent = False
    good = _GOOD_NAMES
    for name, value in headers:
        if name not in good:
            if not _TOKEN.match(name):
                raise HeadError(f"invalid response header name {name!r}")
            if len(good) < _GOOD_NAMES_MAX:
                good.add(name)
        size = len(name)  # the three names the framing reads, by length first (no lower() per header)
        if size == 14 or size == 17 or size == 10:
            lname = name.lower()
            if lname == b"content-length":
                try:
                    n = int(value)
                except ValueError:
                    raise HeadError(f"invalid Content-Length {value!r}") from None
                if n < 0 or (length >= 0 and n != length):
                    raise HeadError(f"invalid Content-Length {value!r}")
                length = n
            elif lname == b"transfer-encoding":
                if value.lower().strip() != b"chunked":
                    raise HeadError(f"unsupported Transfer-Encoding {value!r}")
                chunked = True
            elif lname == b"connection" and b"close" in value.lower():
                keep_alive = False
                close_sent = True
        parts += (name, b": ", value, CRLF)
    if chunked and length >= 0:
        raise HeadError("both Content-Length and Transfer-Encoding")
    if not keep_alive and not close_sent:
        parts.append(b"connection: close\r\n")
        close_sent = True
    if head_request or status < 200 or status in (204, 304):
        mode = FRAME_NONE
    elif length >= 0:
        mode = FRAME_LENGTH
    elif http10 and not chunked:
        mode = FRAME_CLOSE
        keep_alive = False
        if not close_sent:
            parts.append(b"connection: close\r\n")
    else:
        if not chunked:
            parts.append(b"transfer-encoding: chunked\r\n")
        mode = FRAME_CHUNKED
    parts.append(CRLF)
    head = b"".join(parts)
    # Every line must end where we ended it (a CR, LF or NUL inside a value would split the response): three C
    # scans of the whole head instead of a regex per value (names are tokens, the status line is ours).
    lines = len(parts) - 3 * len(headers)  # parts: status line, 4 per header, 1 per added line, the blank line
    if head.count(b"\n") != lines or head.count(b"\r") != lines or b"\0" in head:
        for name, value in headers:
            if _BAD_VALUE.search(value) is not None:
                raise HeadError(f"invalid value for response header {name!r}")
    return head, mode, length, keep_alive


def simple_response(status: int, message: bytes, *, close: bool = True) -> bytes:
    """A whole plain-text answer the core gives by itself."""
    return b"".join((
        status_line(status),
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\n" % len(message),
        b"connection: close\r\n" if close else b"",
        CRLF,
        message,
    ))


BAD_REQUEST = simple_response(400, b"Invalid HTTP request received.")
HEAD_TOO_LARGE = simple_response(431, b"Request header fields too large.")
SERVER_ERROR = simple_response(500, b"Internal Server Error")
