"""Shared helpers of the repository benchmarks (``sluicegate bench <suite>``), each defined once.

``procs`` (ports, servers, tools, ``sluicegate serve`` configs), ``sysstat`` (/proc sampling, machine facts),
``rawhttp`` (first-body-byte client), ``nginx`` (the reference peer), ``build`` (mypyc builds), ``output``
(results directory, JSON, statistics, Markdown tables).
The user-facing measuring commands (``ttfb``, ``load``, ...) reuse ``procs.free_port`` and ``results``.
"""

from __future__ import annotations

from sluicegate.bench.lab import nginx
from sluicegate.bench.lab.build import build_mypyc, source_at
from sluicegate.bench.lab.output import log, med, pct, repo_root, results_dir, summary, table, write_json
from sluicegate.bench.lab.procs import (
    PY,
    Proc,
    Procs,
    ensure_apt,
    ensure_py_spy,
    free_port,
    sluicegate_proc,
    start_fast_origin,
    wait_http,
    wait_port,
    write_sluicegate_config,
)
from sluicegate.bench.lab.rawhttp import Fetch, http_get
from sluicegate.bench.lab.sysstat import (
    CLK_TCK,
    PAGE_KIB,
    CpuMeter,
    RssSampler,
    children_map,
    cpu_ticks,
    hwm_kib,
    loadavg1,
    machine,
    machine_busy_s,
    rss_kib,
    tree,
    tree_cpu_s,
    tree_hwm_kib,
    tree_rss_kib,
    versions,
    worker_pids,
)

__all__ = [
    "CLK_TCK",
    "PAGE_KIB",
    "PY",
    "CpuMeter",
    "Fetch",
    "Proc",
    "Procs",
    "RssSampler",
    "build_mypyc",
    "children_map",
    "cpu_ticks",
    "ensure_apt",
    "ensure_py_spy",
    "free_port",
    "http_get",
    "hwm_kib",
    "loadavg1",
    "log",
    "machine",
    "machine_busy_s",
    "med",
    "nginx",
    "pct",
    "repo_root",
    "results_dir",
    "rss_kib",
    "sluicegate_proc",
    "source_at",
    "start_fast_origin",
    "summary",
    "table",
    "tree",
    "tree_cpu_s",
    "tree_hwm_kib",
    "tree_rss_kib",
    "versions",
    "wait_http",
    "wait_port",
    "worker_pids",
    "write_json",
    "write_sluicegate_config",
]
