"""Benchmark of the round-trip mappings (docs/round-trip.md): their CPU cost per response / request.

Side by side in one run (CPU time, ``time.process_time``: the code's own cost on a shared machine):

* response headers, per response: the fixed list of four URL headers this replaced (re-implemented
  here as it was, for the comparison) vs every header mapped, on a typical 16-header page response
  without origin references and on one with five;
* inbound, per request: query + ``Referer``/``Origin``/``Cookie`` mapping on a typical request with
  nothing to map and on one with an encoded public URL in the query, the Referer and a cookie;
* form bodies: ``FormBodyMapper`` MB/s on a 4 MiB body in 8 KiB chunks, without and with a public URL
  every 4 KiB, and the largest hold seen.

Run:  sluicegate bench round-trip [--runs N]
Writes bench/results/round-trip.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial

from sluicegate.bench.lab import results_dir
from sluicegate.config.origin import Origin
from sluicegate.edge.headers import strip_hop_by_hop
from sluicegate.pipeline.hosts import OriginMatcher
from sluicegate.publisher import headers as hdr
from sluicegate.publisher.inbound import InboundMapper

ORIGIN = Origin.parse("https://www.publisher-origin.com")
PUBLIC = "www.publisher.example"
RW = OriginMatcher(ORIGIN).for_request("https", PUBLIC)
_IN = InboundMapper.build("https", PUBLIC, ORIGIN)
assert _IN is not None
IN: InboundMapper = _IN


def response_headers(refs: bool) -> list[tuple[str, str]]:
    o = "https://www.publisher-origin.com" if refs else "https://cdn.elsewhere.net"
    return [
        ("Date", "Sun, 06 Dec 2026 21:00:00 GMT"),
        ("Content-Type", "text/html; charset=UTF-8"),
        ("Transfer-Encoding", "chunked"),
        ("Connection", "keep-alive"),
        ("Server", "nginx"),
        ("Vary", "Accept-Encoding, Cookie"),
        ("Cache-Control", "max-age=0, must-revalidate"),
        ("X-Powered-By", "PHP/8.2"),
        ("X-Pingback", f"{o}/xmlrpc.php"),
        ("Link", f'<{o}/wp-json/>; rel="https://api.w.org/"'),
        ("Link", f"<{o}/?p=42>; rel=shortlink"),
        ("Set-Cookie", "pll_language=en; expires=Mon, 06 Dec 2027 21:00:00 GMT; path=/; domain=.publisher-origin.com"),
        ("Content-Security-Policy", f"default-src 'self' {o}; img-src * data:"),
        ("Strict-Transport-Security", "max-age=31536000"),
        ("ETag", 'W/"5f2-abc"'),
        ("Last-Modified", "Sun, 06 Dec 2026 20:00:00 GMT"),
    ]


def old_fixed_list(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """What main did: four URL headers through the mapping, Set-Cookie Domain by regex."""
    import re

    url_headers = {"location", "content-location", "refresh", "link"}
    dom = re.compile(r";\s*domain\s*=\s*\.?([^;\s]+)", re.IGNORECASE)
    out = []
    for name, value in strip_hop_by_hop(headers):
        ln = name.lower()
        if ln in url_headers:
            value = RW.rewrite_text(value)
        elif ln == "set-cookie":
            value = dom.sub(lambda m: m.group(0) if m.group(1).lower() != ORIGIN.host else f"; Domain={PUBLIC}", value)
        out.append((name, value))
    return out


def new_rule(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return hdr.downstream_response_headers(headers, RW, ORIGIN, "rid", public_hosts=[PUBLIC])


def request(refs: bool) -> tuple[bytes, list[tuple[str, str]]]:
    p = PUBLIC if refs else "www.elsewhere.net"
    query = f"s=news&page=2&redirect_to=https%3A%2F%2F{p}%2Fwp-admin%2F&utm_source=x".encode()
    headers = [
        ("accept", "text/html,application/xhtml+xml"),
        ("accept-language", "en-GB,en;q=0.9"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0"),
        ("referer", f"https://{PUBLIC}/2026/12/06/hello-world/?share=https%3A%2F%2F{p}%2F"),
        ("cookie", f"pll_language=en; wp_back=https%3A%2F%2F{p}%2Fcart; _ga=GA1.1.123.456"),
        ("origin", f"https://{PUBLIC}"),
    ]
    return query, headers


def form_body(size: int, every: int) -> bytes:
    out = []
    n = 0
    i = 0
    while n < size:
        field = b"f%d=" % i + b"lorem+ipsum+dolor+" * (every // 18)
        if i % 2 == 0:
            field += b"+https%3A%2F%2F" + PUBLIC.encode() + b"%2Fp%2F" + str(i).encode()
        out.append(field)
        n += len(field) + 1
        i += 1
    return b"&".join(out)[:size]


def _inbound(query: bytes, headers: list[tuple[str, str]]) -> object:
    return IN.map_query(query), IN.map_headers(headers)


def cpu(fn: Callable[[], object], n: int) -> float:
    t = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t) / n


def median_of(runs: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(runs))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="sluicegate bench round-trip", description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    results: dict[str, object] = {
        "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "load_avg_1m": os.getloadavg()[0],
    }
    print("response headers, µs CPU per response (16 headers)")
    for refs in (False, True):
        h = response_headers(refs)
        old = median_of(args.runs, partial(cpu, partial(old_fixed_list, h), 20000)) * 1e6
        new = median_of(args.runs, partial(cpu, partial(new_rule, h), 20000)) * 1e6
        key = "with_refs" if refs else "no_refs"
        results[f"headers_{key}"] = {"old_fixed_list_us": old, "every_header_us": new, "ratio": new / old}
        print(f"  {key:10} old fixed list {old:6.2f}   every header {new:6.2f}   ratio {new / old:4.2f}x")

    print("inbound, µs CPU per request (query + 6 headers)")
    for refs in (False, True):
        q, h = request(refs)
        us = median_of(args.runs, partial(cpu, partial(_inbound, q, h), 20000)) * 1e6
        key = "with_refs" if refs else "no_refs"
        results[f"inbound_{key}_us"] = us
        print(f"  {key:10} {us:6.2f}")

    print("form body, MB/s CPU (4 MiB, 8 KiB chunks)")
    for every in (0, 4096):
        body = form_body(4 << 20, every or 4096)
        if not every:
            body = body.replace(PUBLIC.encode(), b"www.elsewhere.net")
        chunks = [body[i : i + 8192] for i in range(0, len(body), 8192)]
        held = 0

        def run(chunks: list[bytes] = chunks) -> float:
            nonlocal held
            fm = IN.form_mapper(hold=64 * 1024, limit=1 << 30)
            t = time.process_time()
            out = 0
            seen = 0
            for c in chunks:
                out += len(fm.feed(c))
                seen += len(c)
                held = max(held, seen - out)
            fm.finish()
            return time.process_time() - t

        secs = median_of(args.runs, run)
        mbps = len(body) / secs / 1e6
        key = f"form_url_every_{every}" if every else "form_no_urls"
        results[key] = {"mb_per_s": mbps, "largest_hold_bytes": held}
        print(f"  {key:22} {mbps:7.1f} MB/s   largest hold {held} B")
    out = results_dir() / "round-trip.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out} (load average {results['load_avg_1m']:.2f}: the machine is shared)")


if __name__ == "__main__":
    main()
