"""Access-log lines: the hand-built JSON equals json.dumps of the record; templates; batched whole-line writes."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

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


def test_cached_second_stays_right_across_boundaries() -> None:
    """The second is formatted once per second and reused: lines on both sides of a boundary (and going
    back in time, e.g. a clock step) carry their own second and milliseconds."""
    import time

    base = 1_800_000_000
    for ts in (base + 0.999, base + 1.0, base + 1.001, base + 0.5, base + 86_400.25, base + 1.9994):
        info = access.RequestInfo("r", "GET", "/", "h", "127.0.0.1", "")
        info.ts = ts
        want = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(ts))) + f".{int(ts % 1 * 1000):03d}Z"
        assert json.loads(access._json_line(info, 0.001))["ts"] == want
        assert info.fields(0.001)["ts"] == want


def test_writer_batch_bound_depends_on_the_descriptor(tmp_path: Path) -> None:
    """Pipes keep 4 KiB batches (atomic writes: lines of workers sharing the pipe never interleave);
    a regular file takes 64 KiB batches. Non-ASCII lines are counted in bytes."""
    fd = os.open(tmp_path / "access.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    writer = access.AccessWriter(fd)
    lines = [f"line {i} é" + "x" * 200 for i in range(1000)]
    writes: list[int] = []
    real_write = os.write

    def counting_write(fd_: int, data: bytes) -> int:
        writes.append(len(data))
        return real_write(fd_, data)

    async def log_all() -> None:  # with a running loop: batched, flushed by size or timer
        for line in lines:
            writer.write(line)
        writer.flush()

    os.write = counting_write  # type: ignore[assignment]
    try:
        asyncio.run(log_all())
    finally:
        os.write = real_write
    os.close(fd)
    assert (tmp_path / "access.log").read_text("utf-8").splitlines() == lines
    assert writer._limit == access.FILE_BATCH_BYTES
    assert max(writes) <= access.FILE_BATCH_BYTES and len(writes) <= len(lines) * 212 // access.FILE_BATCH_BYTES + 2

    r, w = os.pipe()
    pipe_writer = access.AccessWriter(w)
    pipe_writer.write("x")
    assert pipe_writer._limit == access.BATCH_BYTES
    os.close(w)
    assert os.read(r, 10) == b"x\n"
    os.close(r)


def test_pipe_batches_stay_atomic() -> None:
    r, w = os.pipe()
    writer = access.AccessWriter(w)
    writes: list[int] = []
    real_write = os.write

    def counting_write(fd_: int, data: bytes) -> int:
        writes.append(len(data))
        return real_write(fd_, data)

    async def log_all() -> None:
        for i in range(200):
            writer.write(f"{i} " + "ü" * 100)  # 2 bytes per character in UTF-8
        writer.flush()

    os.write = counting_write  # type: ignore[assignment]
    try:
        asyncio.run(log_all())
    finally:
        os.write = real_write
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    assert data.decode().splitlines() == [f"{i} " + "ü" * 100 for i in range(200)]
    assert max(writes) <= access.BATCH_BYTES
