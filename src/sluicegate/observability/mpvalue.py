"""A cheaper multi-process metric value for worker processes (same files, same collector as prometheus_client).

prometheus_client's multi-process value takes a lock and calls ``os.getpid()`` (a system call) on every
``inc``/``observe``, to survive a ``fork`` after metrics were created; with ~15 updates per proxied request that
was most of the metrics cost (measured: sluicegate bench observability). A sluicegate worker is a fresh
process (spawned, never forked after start) with one event-loop thread, so neither is needed. Values are
written to the same ``<type>_<pid>.db`` files in ``PROMETHEUS_MULTIPROC_DIR`` through prometheus_client's own
``MmapedDict``, so ``MultiProcessCollector`` in the supervisor reads them unchanged.

``install()`` must run before any metric is created (the worker calls it first thing). Must not be used in a
process that forks after creating metrics, or from several threads.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import values
from prometheus_client.mmap_dict import MmapedDict, mmap_key


def install() -> bool:
    """Use ``WorkerValue`` for metrics created from now on (only in multi-process mode)."""
    found = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not found:
        return False
    path: str = found
    pid = os.getpid()
    files: dict[str, MmapedDict] = {}

    class WorkerValue:
        _multiprocess = True

        def __init__(self, typ: str, metric_name: str, name: str, labelnames: Any, labelvalues: Any,
                     help_text: str, multiprocess_mode: str = "", **_kwargs: Any) -> None:
            prefix = f"{typ}_{multiprocess_mode}" if typ == "gauge" else typ
            file = files.get(prefix)
            if file is None:
                file = files[prefix] = MmapedDict(os.path.join(path, f"{prefix}_{pid}.db"))  # type: ignore[no-untyped-call]
            self._file = file
            self._key = mmap_key(metric_name, name, labelnames, labelvalues, help_text)
            self._value, _ts = file.read_value(self._key)  # type: ignore[no-untyped-call]

        def inc(self, amount: float) -> None:
            self._value += amount
            self._file.write_value(self._key, self._value, 0.0)  # type: ignore[no-untyped-call]

        def set(self, value: float, timestamp: float | None = None) -> None:
            self._value = value
            self._file.write_value(self._key, value, timestamp or 0.0)  # type: ignore[no-untyped-call]

        def set_exemplar(self, exemplar: Any) -> None:
            return

        def get(self) -> float:
            return float(self._value)

        def get_exemplar(self) -> None:
            return None

    values.ValueClass = WorkerValue
    return True
