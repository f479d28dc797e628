"""``bench serving-cores``: the native HTTP/1.1 core vs uvicorn vs nginx, same app, same run (a throughput-ab preset).

What it measures: ``bench throughput-ab`` with three variants, 2 workers each, in front of the nginx origin of
``bench throughput``: ``nginx-w2`` (nginx ``proxy_pass``), ``sluicegate-w2`` with ``[server] http_core =
"uvicorn"`` and with ``"native"`` (``server.h1``), on the four pages (2 KB / 200 KB, PassThrough binary and
Stream HTML), interleaved rounds (order reversed every round), median req/s and median proxy CPU µs per
request (process-tree CPU / requests: steadier than req/s on a shared machine). Then the ratios: each core
vs nginx (req/s) and native vs uvicorn (req/s and CPU per request).

Run: ``sluicegate bench serving-cores`` (about 6 minutes; ``--rounds``, ``--duration``, ``--pages`` are passed on)
-> ``bench/results/serving-cores.json`` (the throughput-ab document plus ``ratios``).
"""

from __future__ import annotations

from typing import Any

from sluicegate.bench import lab
from sluicegate.bench.suites import throughput_ab

NGINX = "nginx-w2"
UVICORN = "sluicegate-w2:SLUICEGATE__SERVER__HTTP_CORE=uvicorn"
NATIVE = "sluicegate-w2:SLUICEGATE__SERVER__HTTP_CORE=native"
DEFAULTS = ["--pages", "page2k.bin,page200k.bin,page2k.html,page200k.html", "--rounds", "3", "--duration", "4"]


def ratios(summary: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for page, ng in summary[NGINX].items():
        uv, na = summary[UVICORN][page], summary[NATIVE][page]
        out[page] = {
            "uvicorn_vs_nginx_rps": round(uv["rps_median"] / ng["rps_median"], 3),
            "native_vs_nginx_rps": round(na["rps_median"] / ng["rps_median"], 3),
            "native_vs_uvicorn_rps": round(na["rps_median"] / uv["rps_median"], 3),
            "native_vs_uvicorn_cpu_per_req": round(na["cpu_us_per_req_median"] / uv["cpu_us_per_req_median"], 3),
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    result = throughput_ab.main([NGINX, UVICORN, NATIVE, *DEFAULTS, *(argv or [])], name="serving-cores",
                                prog="serving-cores", doc=__doc__)
    result["ratios"] = ratios(result["summary"])
    print(f"\n{'page':14} {'uvicorn/nginx':>14} {'native/nginx':>13} {'native/uvicorn req/s':>21} "
          f"{'native/uvicorn CPU/req':>23}")
    for page, r in result["ratios"].items():
        print(f"{page:14} {r['uvicorn_vs_nginx_rps']:14.3f} {r['native_vs_nginx_rps']:13.3f} "
              f"{r['native_vs_uvicorn_rps']:21.3f} {r['native_vs_uvicorn_cpu_per_req']:23.3f}")
    lab.log(f"wrote {lab.write_json('serving-cores', result)}")
    return result
