"""``bench stream-cost``: the publisher relay's own CPU per response, in-process, by route and coding.

What it measures: ``Relay.respond`` (``publisher.relay``) driven directly, without sockets or a serving core:
an origin response whose body is already in hand (the whole body in one read, as a small origin answer
arrives) and a client ``send`` that keeps nothing. Per case, CPU time (``process_time``) per response, the
best of ``--rounds`` rounds (the least disturbed by other processes: on a shared machine the one figure that
holds still). Cases: PassThrough, and the Stream route (HTML rewritten) from an identity and from a gzip
origin (gzip re-encoded, ``Accept-Encoding: gzip``), on the throughput bench's 2 KB and 200 KB pages, and a
2 KB gzip page that names no origin host (nothing to rewrite)
(``dev.origin.content.page``); the rewriter alone on the 200 KB page (``build_processor``, fed in 16 KiB
pieces: what the 200 KB Stream route compares with); and "first send": the relay's CPU from the origin's
head to its first body send when the origin sends a first 1 KiB gzip segment and more is to come
(relay-ttfb's trickled page): the relay's share of the added TTFB of a rewritten page.

A/B: run it twice, alternating, once with ``PYTHONPATH=/path/to/other/build`` (``scripts/build_mypyc.py
--target DIR`` of the other tree): ``--ab DIR`` does exactly that, in ``--alternations`` alternations, and
prints both side by side with the ratio.

Run: ``sluicegate bench stream-cost [--ab DIR]`` (~1 min; 2 min with --ab) -> ``bench/results/stream-cost.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import statistics
import subprocess
import sys
import time
import zlib
from typing import Any

from sluicegate.bench.lab import write_json

CASES = ("pass", "html", "html-gzip")
SIZES = (2048, 200 * 1024)


class _Stop(Exception):
    pass


class _Resp:
    """An origin response whose reads are scripted (``ready``: nothing to wait for)."""

    def __init__(self, chunks: list[bytes], *, ends: bool) -> None:
        self.status = 200
        self._chunks = chunks
        self._ends = ends

    async def read(self) -> bytes:
        return self._chunks.pop(0) if self._chunks else b""

    def at_eof(self) -> bool:
        return self._ends and not self._chunks

    def ready(self) -> bool:
        return bool(self._chunks) or self._ends


async def _measure(rounds: int, scale: float) -> dict[str, float]:
    from sluicegate import gate
    from sluicegate.config.model import Settings
    from sluicegate.dev.origin.content import page
    from sluicegate.edge.deadline import Deadline
    from sluicegate.firstparty.page import PageRewriting
    from sluicegate.pipeline.hosts import OriginMatcher
    from sluicegate.publisher import coding
    from sluicegate.publisher.relay import Relay

    origin = "http://127.0.0.1:8080"
    settings = Settings.model_validate({"publisher": {"origin_url": origin, "public_hosts": ["127.0.0.1:9000"]}})
    rewriter = OriginMatcher(settings.publisher.origin, settings.publisher.all_origin_aliases).for_request(
        "http", "127.0.0.1:9000")
    relay = Relay(settings, settings.publisher.origin, PageRewriting.from_settings(settings))
    deadline = Deadline(asyncio.get_running_loop(), asyncio.current_task())  # type: ignore[arg-type]
    out: dict[str, float] = {}
    stop_at_body = False

    async def send(message: Any) -> None:
        if stop_at_body and message["type"] == "http.response.body":
            raise _Stop

    async def timed(name: str, headers: list[tuple[str, str]], chunks: list[bytes], ends: bool, reps: int) -> None:
        decision = gate.classify("GET", 200, headers)
        accepted = coding.Accepted("gzip")

        async def one() -> None:
            try:
                await relay.respond(_Resp(list(chunks), ends=ends), headers, decision, method="GET",  # type: ignore[arg-type]
                                    rewriter=rewriter, navigation=True, send=send, request_id="bench",
                                    deadline=deadline, accepted=accepted, label="GET /bench")
            except _Stop:
                pass

        for _ in range(max(2, reps // 10)):
            await one()
        best = float("inf")
        for _ in range(rounds):
            t = time.process_time()
            for _ in range(reps):
                await one()
            best = min(best, (time.process_time() - t) / reps)
        out[name] = round(best * 1e6, 1)

    for size in SIZES:
        body = page(origin, size)
        packed = gzip.compress(body, 6)
        reps = max(3, int((400 if size < 10_000 else 8) * scale))
        await timed(f"pass {size}", [("content-type", "application/octet-stream"),
                                     ("content-length", str(size))], [body], True, reps)
        await timed(f"html {size}", [("content-type", "text/html"), ("content-length", str(size))], [body], True,
                    reps)
        await timed(f"html-gzip {size}", [("content-type", "text/html"), ("content-encoding", "gzip"),
                                          ("content-length", str(len(packed)))], [packed], True, reps)
    # the rewriter alone on the 200 KB page (16 KiB pieces, as the relay feeds it): the denominator of the
    # "route / rewriter alone" ratio, same process, same page
    out[f"rewriter alone {SIZES[-1]}"] = round(rewriter_alone_us(SIZES[-1], rounds, max(3, int(8 * scale))), 1)
    # a page the rewriter leaves unchanged (its links name another host): gzip'd at the origin
    other = gzip.compress(page("http://cdn.elsewhere.example", SIZES[0]), 6)
    await timed(f"html-gzip {SIZES[0]}, nothing to rewrite", [("content-type", "text/html"),
                ("content-encoding", "gzip"), ("content-length", str(len(other)))], [other], True,
                max(3, int(400 * scale)))
    z = zlib.compressobj(6, zlib.DEFLATED, 31)
    segment = z.compress(page(origin, 64 * 1024)[:1024]) + z.flush(zlib.Z_SYNC_FLUSH)
    stop_at_body = True
    await timed("first send, gzip 1 KiB segment", [("content-type", "text/html"), ("content-encoding", "gzip"),
                                                   ("transfer-encoding", "chunked")], [segment], False,
                max(3, int(400 * scale)))
    return out


def rewriter_alone_us(size: int = SIZES[-1], rounds: int = 5, reps: int = 8, piece: int = 16384) -> float:
    """CPU µs per page of the relay's HTML processor alone (``build_processor``: the proxy's rule set, a
    navigation request) on the throughput bench's ``size`` page (``dev.origin.content.page``) fed in ``piece``
    pieces, as the relay feeds it: the best of ``rounds`` rounds of ``reps`` pages. The denominator of issue 19's
    "route / rewriter alone" row (``bench goals`` uses it too)."""
    from sluicegate.config.model import Settings
    from sluicegate.dev.origin.content import page
    from sluicegate.gate import Kind
    from sluicegate.pipeline.hosts import OriginMatcher
    from sluicegate.publisher.processors import build_processor

    origin = "http://127.0.0.1:8080"
    settings = Settings.model_validate({"publisher": {"origin_url": origin, "public_hosts": ["127.0.0.1:9000"]}})
    rewriter = OriginMatcher(settings.publisher.origin, settings.publisher.all_origin_aliases).for_request(
        "http", "127.0.0.1:9000")
    big = page(origin, size)

    def one() -> None:
        proc = build_processor(Kind.HTML, rewriter, settings, navigation_request=True, content_type="text/html")
        for i in range(0, len(big), piece):
            proc.feed(big[i : i + piece])
        proc.finish()

    one()  # untimed: first-use costs (compiled patterns, scan plans) out of the figure
    best = float("inf")
    for _ in range(rounds):
        t = time.process_time()
        for _ in range(reps):
            one()
        best = min(best, (time.process_time() - t) / reps)
    return best * 1e6


def _child(rounds: int, scale: float) -> None:
    print(json.dumps(asyncio.run(_measure(rounds, scale))))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="sluicegate bench stream-cost", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1.0, help="repetitions per round x this")
    ap.add_argument("--ab", default="", help="another build's PYTHONPATH, measured alternately with this one")
    ap.add_argument("--alternations", type=int, default=3)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.rounds, args.scale)
        return {}
    variants = {"this": os.environ.get("PYTHONPATH", "")}
    if args.ab:
        variants = {"other": args.ab, "this": variants["this"]}
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    for i in range(args.alternations if args.ab else 1):
        order = list(variants) if i % 2 == 0 else list(variants)[::-1]
        for name in order:
            env = dict(os.environ)
            env["PYTHONPATH"] = variants[name]
            if not variants[name]:
                env.pop("PYTHONPATH", None)
            # this file run as a script in a fresh interpreter, so that the other build need not have it
            code = (f"import runpy, sys; sys.argv = ['stream-cost', '--child', '--rounds', '{args.rounds}', "
                    f"'--scale', '{args.scale}']; runpy.run_path({__file__!r}, run_name='__main__')")
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
            runs[name].append(json.loads(r.stdout.strip().splitlines()[-1]))
    summary = {v: {case: min(r[case] for r in rs) for case in rs[0]} for v, rs in runs.items()}
    cases = list(summary["this"])
    header = f"{'case (us CPU per response, best)':36}" + "".join(f"{v:>10}" for v in summary)
    print(header + ("  this/other" if args.ab else ""))
    for case in cases:
        line = f"{case:36}" + "".join(f"{summary[v][case]:10.1f}" for v in summary)
        if args.ab:
            line += f"  {summary['this'][case] / summary['other'][case]:10.3f}"
        print(line)
    result = {"benchmark": "stream-cost", "variants": variants, "runs": runs, "summary": summary,
              "spread": {v: {c: [min(r[c] for r in rs), statistics.median(r[c] for r in rs)] for c in cases}
                         for v, rs in runs.items()},
              "loadavg": os.getloadavg(), "method": __doc__}
    print(f"wrote {write_json('stream-cost', result)}")
    return result


if __name__ == "__main__":
    main()
