"""Third-party HTML relayed by ``{prefix}/proxy`` over real sockets gets the publisher-page rules:
``sluicegate serve`` fetches a creative that a real third party writes in pieces cut inside URL
literals, tags and a long inline script; URL literals in its scripts, its ``<noscript>`` markup and
its CSS ``url()`` on allowed domains come back signed, other hosts and ``javascript:``/``data:`` as
written, the head and the first pieces before the third party has sent its last one."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from sluicegate.firstparty.signing import Signer
from tests.integration.firstparty.conftest import K2, Env, creative_html, utf16_html

SIGNER = Signer([K2.encode()], "/first-party", 300)


def _target(href: str, kind: str = "proxy") -> str:
    href = href.replace("&amp;", "&")
    assert href.startswith(f"/first-party/{kind}?url="), href
    return SIGNER.verify(kind, urlsplit(href).query).url


def _dechunk(body: bytes) -> bytes:
    out, pos = b"", 0
    while True:
        eol = body.index(b"\r\n", pos)
        size = int(body[pos:eol].split(b";")[0], 16)
        if size == 0:
            return out
        out += body[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2


def test_proxied_creative_is_signed_as_it_streams(fp: Env) -> None:
    fp.tp.creative_release.clear()
    tp = f"http://cdn.fp.test:{fp.tp_port}"
    href = fp.sign(f"{tp}/creative.html")
    with socket.create_connection(("127.0.0.1", fp.proxy.port), timeout=10) as s:
        s.sendall(f"GET {href} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while b"<noscript>" not in data:  # the head and the rewritten first script, streamed
            got = s.recv(65536)
            assert got, data
            data += got
        assert not fp.tp.creative_release.is_set()  # the third party still holds its last piece
        fp.tp.creative_release.set()
        while got := s.recv(65536):
            data += got
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"set-cookie" not in head.lower()
    assert b"content-security-policy: sandbox" in head.lower()
    html = (_dechunk(body) if b"transfer-encoding: chunked" in head.lower() else body).decode()
    port = fp.tp_port

    script = html.split("<script>")[1].split("</script>")[0]
    js_src = script.split('s.src="')[1].split('"')[0]
    assert _target(js_src) == f"{tp}/a.js?k=1&v=2" and "&amp;" not in js_src
    assert _target(script.split("var p='")[1].split("'")[0]) == f"https://x.ads.fp.test:{port}/pixel.gif"
    escaped = script.split('{"u":"')[1].split('"')[0]
    assert escaped.startswith("\\/first-party\\/proxy?url=") and _target(escaped.replace("\\/", "/")) == f"{tp}/a.js"
    for kept in ('var keep="https://not-allowed.example/x.js"', 'var keep2="//not-allowed.example/y.js"',
                 'var j="javascript:void(0)"', 'var d="data:text/javascript,alert(1)"', f'var cat="{tp}/" + "a.js"'):
        assert kept in script, kept
    late = html.split("var late='")[1].split("'")[0]  # after 40 KB of script: the streamed body path
    assert _target(late) == f"{tp}/late.js"

    style = html.split("<style>")[1].split("</style>")[0]
    assert _target(style.split("url(")[1].split(")")[0].strip('"')) == f"{tp}/bg.png"
    assert "url(https://not-allowed.example/k.png)" in style
    div = html.split('<div style="')[1].split('"')[0].replace("&quot;", '"').replace("&#39;", "'")
    assert _target(div.split("url(")[1].split(")")[0].strip("'\"")) == f"{tp}/d.png"

    noscript = html.split("<noscript>")[1].split("</noscript>")[0]
    imgs = [p.split('"')[0] for p in noscript.split('<img src="')[1:]]
    assert _target(imgs[0]) == f"{tp}/ns.png?x=1&y=2"
    assert _target(imgs[1]) == f"{tp}/rel/ns2.png"  # relative: against the creative's own URL
    assert imgs[2] == "https://not-allowed.example/ns3.png"
    assert _target(noscript.split('<a href="')[1].split('"')[0], "click") == f"{tp}/landing"
    assert '<a href="javascript:alert(2)">' in html and '<img src="data:image/png;base64,AAAA">' in html

    # the rest of the document is byte for byte the third party's
    original = creative_html(port)
    assert html.endswith(original[original.index("</script><a href=") :])
    # a signed script URL relays the third party's script
    status, _, got = fp.get(js_src)
    assert status == 200 and got.startswith(b"console.log")
    assert fp.decoy.hits == 0


def test_proxied_utf16_document_is_relayed_unmodified(fp: Env) -> None:
    status, headers, body = fp.get(fp.sign(f"http://cdn.fp.test:{fp.tp_port}/utf16.html"))
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-16"
    assert body == utf16_html(fp.tp_port)
