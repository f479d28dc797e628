"""``bench relay-ttfb --stages``: the Stream route's first segment stage by stage, in a child process.

What it measures: the work between the origin's response head and the first body send for relay-ttfb's page
(its first 1 KiB as one sync-flushed gzip segment), each stage timed on its own (``perf_counter_ns``), per
fresh response, the median of ``reps`` responses: the response head mapped (``publisher.headers``), the decoder,
the HTML processor and the encoder built (``pipeline.codecs``, ``publisher.processors``), the segment decoded,
rewritten, compressed and sync-flushed. Twice: *warm* (responses back to back: code and data in the caches, the
best case) and *cold* (8 MiB of memory written between every two stages, so each stage starts with caches
holding someone else's data, as on a machine shared with other busy processes). Also the whole of
``Relay.respond`` to its first body send, warm and cold, for PassThrough of the same bytes, the Stream route
from an identity origin (rewritten, not re-encoded) and from the gzip origin (rewritten, re-encoded).

Why: on the loaded 2-core machine the Stream route's share of the added first-byte time (stream - pass in
``--decompose``) is several times what the same work costs warm; this says which stage grows.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import MutableMapping
from typing import Any

STAGES = ("headers", "decoder", "processor", "encoder", "decode", "rewrite", "compress", "flush")
_THRASH = 8 << 20


def stages(reps: int, cold: bool) -> dict[str, float]:
    from sluicegate.config.model import Settings
    from sluicegate.dev.origin.content import trickle_html
    from sluicegate.gate import Kind
    from sluicegate.pipeline.codecs import decoder_for, encoder_for
    from sluicegate.pipeline.hosts import OriginMatcher
    from sluicegate.publisher import headers as hdr
    from sluicegate.publisher.processors import build_processor

    origin = "http://127.0.0.1:8080"
    settings = Settings.model_validate({"publisher": {"origin_url": origin, "public_hosts": ["127.0.0.1:9000"]}})
    pub = settings.publisher
    rw = OriginMatcher(pub.origin, pub.all_origin_aliases).for_request("http", "127.0.0.1:9000")
    z = zlib.compressobj(6, zlib.DEFLATED, 31)
    segment = z.compress(trickle_html(origin)[:1024]) + z.flush(zlib.Z_SYNC_FLUSH)
    head = [("content-type", "text/html; charset=utf-8"), ("content-encoding", "gzip"),
            ("transfer-encoding", "chunked"), ("cache-control", "no-store")]
    levels = settings.compression.model_dump()
    thrash = bytearray(_THRASH)
    times: dict[str, list[float]] = {s: [] for s in STAGES}
    marks: list[int] = []
    state = {"i": 0}

    def mark() -> None:
        if cold:
            k = state["i"] % 64
            thrash[k::64] = bytes(len(range(k, _THRASH, 64)))
        marks.append(time.perf_counter_ns())

    for i in range(reps + reps // 10):
        marks.clear()
        state["i"] = i
        mark()
        hdr.downstream_response_headers(head, rw, pub.origin, "rid", id_header="x-request-id",
                                        origin_host_header=pub.origin_host_header, public_hosts=pub.public_hosts,
                                        aliases=pub.origin_aliases)
        marks.append(time.perf_counter_ns())
        mark()
        dec = decoder_for("gzip", 1 << 30, 16384)
        marks.append(time.perf_counter_ns())
        mark()
        proc = build_processor(Kind.HTML, rw, settings, navigation_request=True, content_type=head[0][1])
        marks.append(time.perf_counter_ns())
        mark()
        enc = encoder_for("gzip", **levels)
        marks.append(time.perf_counter_ns())
        mark()
        pieces = list(dec.feed_pieces(segment))
        marks.append(time.perf_counter_ns())
        mark()
        out = b"".join(proc.feed(p) for p in pieces)
        marks.append(time.perf_counter_ns())
        mark()
        enc.compress(out)
        marks.append(time.perf_counter_ns())
        mark()
        enc.flush()
        marks.append(time.perf_counter_ns())
        if i >= reps // 10:  # the first tenth: first-use costs
            for k, name in enumerate(STAGES):
                times[name].append((marks[2 * k + 1] - marks[2 * k]) / 1000)
    return {name: round(statistics.median(v), 1) for name, v in times.items()}


async def first_send(reps: int, cold: bool) -> dict[str, float]:
    from sluicegate.config.model import Settings
    from sluicegate.dev.origin.content import trickle_html
    from sluicegate.edge.deadline import Deadline
    from sluicegate.pipeline.hosts import OriginMatcher
    from sluicegate.publisher import coding
    from sluicegate.publisher.relay import Relay

    class Stop(Exception):
        pass

    class Resp:
        def __init__(self, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
            self.status = 200
            self.headers = headers
            self._chunks = [body]

        async def read(self) -> bytes:
            return self._chunks.pop(0) if self._chunks else b""

        def at_eof(self) -> bool:
            return False  # more is to come (the trickle)

        def ready(self) -> bool:
            return bool(self._chunks)

    origin = "http://127.0.0.1:8080"
    settings = Settings.model_validate({"publisher": {"origin_url": origin, "public_hosts": ["127.0.0.1:9000"]}})
    pub = settings.publisher
    rw = OriginMatcher(pub.origin, pub.all_origin_aliases).for_request("http", "127.0.0.1:9000")
    relay = Relay(settings, pub.origin, None)
    task = asyncio.current_task()
    assert task is not None
    deadline = Deadline(asyncio.get_running_loop(), task)
    html = trickle_html(origin)[:1024]
    z = zlib.compressobj(6, zlib.DEFLATED, 31)
    segment = z.compress(html) + z.flush(zlib.Z_SYNC_FLUSH)
    chunked = (b"transfer-encoding", b"chunked")
    cases = {
        "pass": ([(b"content-type", b"application/octet-stream"), (b"content-encoding", b"gzip"), chunked], segment),
        "stream, identity origin": ([(b"content-type", b"text/html; charset=utf-8"), chunked], html),
        "stream, gzip origin": ([(b"content-type", b"text/html; charset=utf-8"), (b"content-encoding", b"gzip"),
                                 chunked], segment),
    }

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            raise Stop

    thrash = bytearray(_THRASH)
    out: dict[str, list[float]] = {k: [] for k in cases}
    for i in range(reps + reps // 10):
        for name, (headers, body) in cases.items():
            await asyncio.sleep(0)  # what a response schedules runs between two, as in a worker
            if cold:
                thrash[i % 64::64] = bytes(len(range(i % 64, _THRASH, 64)))
            t0 = time.perf_counter_ns()
            resp = Resp(body, headers)
            decision, plan = relay.classify("GET", resp)
            try:
                await relay.respond(resp, None, decision, plan=plan, method="GET", rewriter=rw, navigation=True,
                                    send=send, request_id="bench", deadline=deadline,
                                    accepted=coding.Accepted("gzip"), label="GET /trickle.html")
            except Stop:
                pass
            if i >= reps // 10:
                out[name].append((time.perf_counter_ns() - t0) / 1000)
    return {name: round(statistics.median(v), 1) for name, v in out.items()}


def _child(reps: int) -> None:
    res = {"stages_warm_us": stages(reps, False), "stages_cold_us": stages(reps, True),
           "first_send_warm_us": asyncio.run(first_send(reps, False)),
           "first_send_cold_us": asyncio.run(first_send(reps, True))}
    print(json.dumps(res))


def run(reps: int = 200) -> dict[str, Any]:
    """In a fresh interpreter (nothing else of the bench warms its caches): the figures as a dict."""
    code = f"from sluicegate.bench.suites.relay_ttfb_stages import _child; _child({int(reps)})"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    res: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    return res


def report(res: dict[str, Any]) -> str:
    w, c = res["stages_warm_us"], res["stages_cold_us"]
    lines = ["Stream route, first segment (relay-ttfb's first KiB, gzip in and out), stage by stage, µs "
             "(median; cold = caches overwritten before each stage)", "",
             "| stage | warm | cold |", "|---|---|---|"]
    lines += [f"| {s} | {w[s]:.1f} | {c[s]:.1f} |" for s in STAGES]
    lines.append(f"| total | {sum(w.values()):.1f} | {sum(c.values()):.1f} |")
    fw, fc = res["first_send_warm_us"], res["first_send_cold_us"]
    lines += ["", "Relay.respond from the origin's head to the first body send, µs (median; cold = caches "
              "overwritten before each response)", "", "| route | warm | cold |", "|---|---|---|"]
    lines += [f"| {k} | {fw[k]:.1f} | {fc[k]:.1f} |" for k in fw]
    return "\n".join(lines)
