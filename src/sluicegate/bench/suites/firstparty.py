"""Benchmark for issue 17: what first-party rewriting and consent-gated identity cost.

1. Rewriter: the 500 KB page of ``bench html`` with 50 third-party tags (script/img/link/iframe on
   ``cdn.adtech.example``) through the page's own HTML processor alone, and chained with the
   ``[first_party] rewrite_domains`` stage (50 URLs signed). CPU-time MB/s, pure Python and mypyc-compiled
   (the HTML rewriter compiled, the first-party stage interpreted), side by side in one run.
2. TTFB: ``sluicegate serve`` twice (identity off / identity on with trusted geo headers), the same
   navigation requests with a TCF cookie (``DE``, Purpose 1) — once as a first visit (ID minted,
   Set-Cookie) and once as a returning visitor (valid ID cookie) — A/B interleaved on keep-alive
   connections; p50/p90 time to the response head, and the proxy process's CPU per request
   (``/proc/<pid>/stat`` utime+stime over all requests: robust on a shared machine).

Run:  sluicegate bench firstparty [--requests N] [--runs N] [--no-mypyc]
Writes bench/results/firstparty.json.  The machine is shared: read wall-clock figures with care.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from sluicegate.bench import lab
from sluicegate.bench.suites.html import KEY, chunks, make_page, page_with_third_party, timed

ROOT = lab.repo_root() or Path.cwd()  # the checkout: scripts/, tests/data/, git history
ME = "sluicegate.bench.suites.firstparty"  # children run as python -m ME

SECRET = "bench-identity-secret-0123456789-abcdefghij"


def child(runs: int) -> dict[str, object]:
    import sluicegate.pipeline.html as html
    from sluicegate.config.html import HtmlSettings
    from sluicegate.config.model import Settings
    from sluicegate.config.origin import Origin
    from sluicegate.firstparty.page import PageRewriting
    from sluicegate.firstparty.signing import Signer
    from sluicegate.pipeline.hosts import OriginMatcher

    settings = HtmlSettings(head_inject=['<script src="/static/sg.js"></script>'])
    page = page_with_third_party()
    pieces = chunks(page, 8192)
    rw = OriginMatcher(Origin.parse("https://www.publisher-origin.com")).for_request("https", "www.proxy.example")
    full = Settings.model_validate({
        "first_party": {"enabled": True, "allowed_domains": ["cdn.adtech.example"],
                        "rewrite_domains": ["cdn.adtech.example"]},
    })
    pages = PageRewriting(full, Signer([KEY.encode()], "/first-party", 3600))

    def base() -> bytes:
        p = html.build_html_processor(rw, settings)
        return b"".join(p.feed(c) for c in pieces) + p.finish()

    def signed() -> bytes:
        p = pages.wrap(html.build_html_processor(rw, settings))
        return b"".join(p.feed(c) for c in pieces) + p.finish()

    def signed_cold() -> bytes:
        pages.cache.clear()  # every URL canonicalised and signed again (a first view after a TTL step)
        return signed()

    plain = chunks(make_page(500_000), 8192)

    def stage_alone_no_urls() -> bytes:
        s = pages.stage()
        return b"".join(s.feed(c) for c in plain) + s.finish()

    def single_pass() -> bytes:
        # what the proxy runs: the signing rule on the page's own rewriter (one pass, two needles:
        # the multi-needle fast path; the origin rule's raw-byte hook stays on for origin-only tags)
        p = html.build_html_processor(rw, settings, extra_rules=pages.install)
        return b"".join(p.feed(c) for c in pieces) + p.finish()

    n_signed = signed().count(b"/first-party/proxy?url=")
    assert single_pass() == signed()  # one pass: the same bytes as the separate stage
    cpu0, wall0 = timed(base, runs)
    cpu1, wall1 = timed(signed, runs)
    cpu2, _ = timed(signed_cold, runs)
    cpu3, _ = timed(stage_alone_no_urls, runs)
    cpu4, _ = timed(single_pass, runs)
    return {
        "single_pass_design_mb_per_s_cpu": round(len(page) / cpu4 / 1e6, 1),
        "signed_cold_mb_per_s_cpu": round(len(page) / cpu2 / 1e6, 1),
        "stage_alone_page_without_third_party_mb_per_s_cpu": round(500_000 / cpu3 / 1e6, 1),
        "compiled": html.COMPILED, "page_bytes": len(page), "third_party_urls_signed": n_signed,
        "base_mb_per_s_cpu": round(len(page) / cpu0 / 1e6, 1), "base_mb_per_s_wall": round(len(page) / wall0 / 1e6, 1),
        "signed_mb_per_s_cpu": round(len(page) / cpu1 / 1e6, 1),
        "signed_mb_per_s_wall": round(len(page) / wall1 / 1e6, 1),
        "added_ms_per_page_cpu": round((cpu1 - cpu0) * 1e3, 3),
    }


# -- TTFB ------------------------------------------------------------------------------------------


def start_origin() -> int:
    body = make_page(30_000)
    port = lab.free_port()
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: %d\r\n\r\n" % len(body)

    def serve(conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    conn.sendall(head + body)

    def accept(srv: socket.socket) -> None:
        while True:
            c, _ = srv.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    srv = socket.create_server(("127.0.0.1", port))
    threading.Thread(target=accept, args=(srv,), daemon=True).start()
    return port


def start_proxy(tmp: str, origin: int, identity: bool) -> tuple[subprocess.Popen[bytes], int]:
    port, admin = lab.free_port(), lab.free_port()
    cfg = Path(tmp) / f"sg-{port}.toml"
    text = (f'[server]\nhost = "127.0.0.1"\ntrusted_proxies = ["127.0.0.1/32"]\n'
            f'[admin]\nlisten = "127.0.0.1:{admin}"\n[publisher]\n'
            f'origin_url = "http://127.0.0.1:{origin}"\npublic_hosts = ["127.0.0.1:{port}"]\n')
    if identity:
        text += ('[identity]\nenabled = true\ngeo_country_header = "x-geo-country"\n'
                 'geo_region_header = "x-geo-region"\nforward_header = "x-sg-id"\n')
    cfg.write_text(text)
    env = {**os.environ, "SLUICEGATE_IDENTITY_SECRET": SECRET}
    proc = subprocess.Popen([sys.executable, "-m", "sluicegate", "serve", "--config", str(cfg), "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/livez", timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("proxy did not start")


def tc_string() -> str:
    fields = [(2, 6), (16000000000, 36), (16000000000, 36), (7, 12), (1, 12), (1, 6), (269, 12), (100, 12),
              (5, 6), (0, 1), (0, 1), (0, 12), (1 << 23 | 1 << 20, 24), (0, 24), (0, 1), (196, 12),
              (0, 16), (0, 1), (0, 16), (0, 1)]
    bits = "".join(format(v, f"0{w}b") for v, w in fields)
    bits += "0" * (-len(bits) % 8)
    return base64.urlsafe_b64encode(int(bits, 2).to_bytes(len(bits) // 8, "big")).rstrip(b"=").decode()


class Client:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def get(self, request: bytes) -> float:
        t0 = time.perf_counter()
        self.sock.sendall(request)
        buf = self.sock.recv(65536)
        ttfb = time.perf_counter() - t0
        while b"\r\n\r\n" not in buf:
            buf += self.sock.recv(65536)
        rest = buf.partition(b"\r\n\r\n")[2]
        # chunked (rewritten HTML): read to the terminating chunk
        while not rest.endswith(b"0\r\n\r\n"):
            rest += self.sock.recv(65536)
        return ttfb


def ttfb(requests: int) -> dict[str, object]:
    origin = start_origin()
    tc = tc_string()
    returning = "a" * 64 + ".Bench1"
    with tempfile.TemporaryDirectory() as tmp:
        off, off_port = start_proxy(tmp, origin, identity=False)
        on, on_port = start_proxy(tmp, origin, identity=True)
        ctl, ctl_port = start_proxy(tmp, origin, identity=False)  # A/A control: the noise floor
        try:
            out: dict[str, object] = {}
            for case, cookie in (("first_visit", f"euconsent-v2={tc}"),
                                 ("returning", f"euconsent-v2={tc}; sg_id={returning}")):
                reqs = {}
                for name, port in (("off", off_port), ("on", on_port), ("control_off", ctl_port)):
                    reqs[name] = (f"GET /p HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nSec-Fetch-Dest: document\r\n"
                                  f"Accept: text/html\r\nX-Geo-Country: DE\r\nCookie: {cookie}\r\n\r\n").encode()
                names = ("off", "on", "control_off")
                clients = {"off": Client(off_port), "on": Client(on_port), "control_off": Client(ctl_port)}
                procs = {"off": off, "on": on, "control_off": ctl}
                for name in names:  # warm-up
                    for _ in range(200):
                        clients[name].get(reqs[name])
                times: dict[str, list[float]] = {n: [] for n in names}
                cpu: dict[str, float] = {}
                for name in names:
                    cpu[name] = -lab.tree_cpu_s(procs[name].pid)
                for i in range(requests):
                    for name in names[i % 3 :] + names[: i % 3]:
                        times[name].append(clients[name].get(reqs[name]))
                for name in names:
                    cpu[name] += lab.tree_cpu_s(procs[name].pid)
                res: dict[str, Any] = {}
                for name in names:
                    t = sorted(times[name])
                    res[name] = {"p50_ms": round(t[len(t) // 2] * 1e3, 4),
                                 "p90_ms": round(t[int(len(t) * 0.9)] * 1e3, 4),
                                 "cpu_us_per_request": round(cpu[name] / requests * 1e6, 1)}
                res["added_p50_ms"] = round(res["on"]["p50_ms"] - res["off"]["p50_ms"], 4)
                res["added_cpu_us_per_request"] = round(
                    res["on"]["cpu_us_per_request"] - res["off"]["cpu_us_per_request"], 1)
                res["control_p50_diff_ms"] = round(
                res["control_off"]["p50_ms"] - res["off"]["p50_ms"], 4)
                res["control_cpu_diff_us_per_request"] = round(
                    res["control_off"]["cpu_us_per_request"] - res["off"]["cpu_us_per_request"], 1)
                out[case] = res
            return out
        finally:
            for p in (off, on, ctl):
                p.terminate()
                p.wait(10)


def identity_micro(runs: int) -> dict[str, float]:
    """CPU per call of the identity hook itself (no sockets): the decision for a navigation."""
    from sluicegate.config.firstparty import IdentitySettings
    from sluicegate.identity.edge import EdgeIdentity

    ident = EdgeIdentity(IdentitySettings(enabled=True, geo_country_header="x-geo-country",
                                          forward_header="x-sg-id"), SECRET.encode())
    tc = tc_string()
    cases = {
        "first_visit": [("sec-fetch-dest", "document"), ("x-geo-country", "DE"), ("cookie", f"euconsent-v2={tc}")],
        "returning": [("sec-fetch-dest", "document"), ("x-geo-country", "DE"),
                      ("cookie", f"euconsent-v2={tc}; sg_id={'a' * 64}.Bench1")],
        "subresource": [("sec-fetch-dest", "image"), ("x-geo-country", "DE")],
    }
    out = {}
    for name, headers in cases.items():
        n = 20000
        t0 = time.process_time()
        for _ in range(n):
            ident.begin(headers, "203.0.113.7", True)
        out[f"{name}_us_cpu"] = round((time.process_time() - t0) / n * 1e6, 2)
    return out


def run_child(runs: int, env: dict[str, str]) -> dict[str, object]:
    cmd = [sys.executable, "-m", ME, "--child", "--runs", str(runs)]
    res = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, check=True)
    return json.loads(res.stdout)  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sluicegate bench firstparty")
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--no-mypyc", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.runs)))
        return 0
    results: dict[str, object] = {"python": sys.version.split()[0], "machine": platform.machine(),
                                  "cpus": os.cpu_count(), "load_average_at_start": list(os.getloadavg()),
                                  "note": "shared machine: prefer the CPU figures and the side-by-side ratios"}
    results["rewriter_pure"] = r = run_child(args.runs, {"SLUICEGATE_PURE_PYTHON": "1"})
    print(f"pure   500KB + 50 third-party URLs: page rules {r['base_mb_per_s_cpu']} MB/s CPU, "
          f"+ signing stage {r['signed_mb_per_s_cpu']} MB/s CPU warm, {r['signed_cold_mb_per_s_cpu']} cold "
          f"({r['third_party_urls_signed']} signed); stage alone on a page without them "
          f"{r['stage_alone_page_without_third_party_mb_per_s_cpu']} MB/s; single-pass design "
          f"{r['single_pass_design_mb_per_s_cpu']} MB/s")
    if not args.no_mypyc:
        with tempfile.TemporaryDirectory(prefix="sg-bench-mypyc-") as tmp:
            lab.build_mypyc(tmp)
            results["rewriter_mypyc"] = r = run_child(args.runs, {"PYTHONPATH": tmp, "SLUICEGATE_PURE_PYTHON": ""})
        if not r["compiled"]:
            raise SystemExit("the mypyc child did not run compiled modules")
        print(f"mypyc  500KB + 50 third-party URLs: page rules {r['base_mb_per_s_cpu']} MB/s CPU, "
              f"+ signing stage {r['signed_mb_per_s_cpu']} MB/s CPU warm, {r['signed_cold_mb_per_s_cpu']} cold "
          f"({r['third_party_urls_signed']} signed); stage alone on a page without them "
          f"{r['stage_alone_page_without_third_party_mb_per_s_cpu']} MB/s; single-pass design "
          f"{r['single_pass_design_mb_per_s_cpu']} MB/s")
    results["identity_hook"] = micro = identity_micro(args.runs)
    print(f"identity hook per request (CPU): {micro}")
    results["ttfb"] = t = ttfb(args.requests)
    for case, res in t.items():
        print(f"TTFB {case}: {res}")
    results["load_average_at_end"] = list(os.getloadavg())
    print(f"wrote {lab.write_json('firstparty', results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
