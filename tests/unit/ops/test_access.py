"""Access-log lines: the hand-built JSON equals json.dumps of the record; templates; batched whole-line writes."""

from __future__ import annotations

import json
import os

from sluicegate.observability import access


def _info() -> access.RequestInfo:
    info = access.RequestInfo("r1", "GET", '/p"\\ath\u2028é', "h:1", "10.0.0.1", 'ua "x"\x01')
    info.face, info.status, info.bytes_out, info.ttfb, info.route = "publisher", 200, 12, 0.0015, "stream"
    info.tokens_in = 3
    return info


def test_fast_json_is_the_record() -> None:
    info = _info()
    line = access._json_line(info, 0.25)
    parsed = json.loads(line)
    want = info.fields(0.25)
    assert parsed == want and "\n" not in line
    bare = access.RequestInfo("r2", "GET", "/", "", "", "")
    assert json.loads(access._json_line(bare, 0.0)) == bare.fields(0.0)


def test_template_and_renderer_choice() -> None:
    render = access.renderer("$method $path $status $ttfb_ms $model")
    assert render is not None
    assert render(_info(), 0.1) == "GET /p\\x22\\x5cath\\x2028é 200 1.5 -"  # quote, backslash, U+2028 escaped
    assert access.renderer("off") is None and access.renderer(False) is None
    assert access.renderer("auto", isatty=False) is access._json_line
    assert access.renderer(True, isatty=True) is not access._json_line


def test_writer_batches_whole_lines() -> None:
    r, w = os.pipe()
    writer = access.AccessWriter(w)
    for i in range(100):  # no running loop: written at once
        writer.write(f"line {i} " + "x" * 100)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    lines = data.decode().splitlines()
    assert lines == [f"line {i} " + "x" * 100 for i in range(100)]


def test_observe_many_equals_observe_each() -> None:
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from sluicegate.server.observe import _observe_many

    one, many = CollectorRegistry(), CollectorRegistry()
    h1 = Histogram("x", "x", buckets=(0.001, 0.01, 0.1, 1), registry=one)
    h2 = Histogram("x", "x", buckets=(0.001, 0.01, 0.1, 1), registry=many)
    values = [0.0005, 0.001, 0.005, 0.01, 0.5, 1.0, 3.0, 0.1, 0.25]
    for v in values:
        h1.observe(v)
    _observe_many(h2, values[:1])
    _observe_many(h2, values[1:])

    def samples(reg: CollectorRegistry) -> list[bytes]:
        return [line for line in generate_latest(reg).splitlines() if b"created" not in line and b"_sum" not in line]

    assert samples(one) == samples(many)
    assert abs(h1._sum.get() - h2._sum.get()) < 1e-9  # type: ignore[attr-defined]
