"""``server.h1.framing.encode_head``: the response head's bytes and the checks that keep a response from being split.

The head is checked as a whole (line count against the lines written, no NUL), so every way a value could carry a
line break -- CR LF, a bare LF, a bare CR, a NUL -- must still be refused, in any header's position, and the framing
headers must be found whatever their case."""

from __future__ import annotations

import pytest

from sluicegate.server.h1 import framing as fr

NGINX = [(b"server", b"nginx/1.22.1"), (b"date", b"Mon, 07 Dec 2026 14:00:00 GMT"),
         (b"content-type", b"text/html"), (b"content-length", b"2048"), (b"etag", b'"6571-800"')]


def test_the_head_is_the_status_line_the_headers_and_a_blank_line() -> None:
    head, mode, length, keep = fr.encode_head(200, NGINX, keep_alive=True, head_request=False)
    assert head == b"HTTP/1.1 200 OK\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in NGINX) + b"\r\n"
    assert (mode, length, keep) == (fr.FRAME_LENGTH, 2048, True)
    head, mode, _, keep = fr.encode_head(200, [], keep_alive=False, head_request=False)
    assert head == b"HTTP/1.1 200 OK\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n"
    assert (mode, keep) == (fr.FRAME_CHUNKED, False)


@pytest.mark.parametrize("bad", [b"a\r\nset-cookie: x=1", b"a\nb", b"a\rb", b"a\x00b", b"\r\n", b"x\r"])
@pytest.mark.parametrize("at", [0, 2, 5])
def test_a_line_break_or_nul_in_any_value_is_refused(bad: bytes, at: int) -> None:
    headers = [*NGINX[:at], (b"x-evil", bad), *NGINX[at:]]
    with pytest.raises(fr.HeadError, match="x-evil"):
        fr.encode_head(200, headers, keep_alive=True, head_request=False)
    with pytest.raises(fr.HeadError):  # also when the core adds lines of its own (close, chunked)
        fr.encode_head(200, [(b"x-evil", bad)], keep_alive=False, head_request=False, http10=True)


def test_framing_headers_are_found_in_any_case() -> None:
    _, mode, length, keep = fr.encode_head(200, [(b"Content-Length", b"3"), (b"CONNECTION", b"Close")],
                                           keep_alive=True, head_request=False)
    assert (mode, length, keep) == (fr.FRAME_LENGTH, 3, False)
    _, mode, _, _ = fr.encode_head(200, [(b"Transfer-Encoding", b"chunked")], keep_alive=True, head_request=False)
    assert mode == fr.FRAME_CHUNKED
    with pytest.raises(fr.HeadError):
        fr.encode_head(200, [(b"CONTENT-LENGTH", b"3"), (b"transfer-encoding", b"chunked")], keep_alive=True,
                       head_request=False)
    with pytest.raises(fr.HeadError, match="name"):
        fr.encode_head(200, [(b"bad name", b"x")], keep_alive=True, head_request=False)
