"""prometheus_client in a worker without what only an exposition needs (4.8 MiB of a worker's resident set).

``import prometheus_client`` runs the package's ``__init__``, which imports ``exposition`` (``http.server``,
``wsgiref``, ``urllib.request``, ``email``, ``gzip``/``bz2``/``lzma``), the ASGI app, and the process, platform
and gc collectors. A worker uses none of them: it creates metrics and writes their values (``metrics``,
``mpvalue``); the supervisor's admin listener renders them. Measured on an idle worker (docs/operations.md,
"Footprint"): the package's ``__init__`` +5.4 MiB RSS, the modules a worker uses (``metrics``, ``registry``,
``values``, ``mmap_dict`` and theirs) +0.6.

``defer_exposition()`` puts the package in ``sys.modules`` without running its ``__init__``; the names it would
define are resolved on first use (PEP 562 ``__getattr__``): ``Counter``, ``Gauge``, ``Histogram``, ``Summary``,
``Info``, ``Enum``, ``CollectorRegistry``, ``REGISTRY`` and ``Metric`` from the submodules that define them, a
submodule by importing it, and any other name (``generate_latest``, ``start_http_server``...) by running the
real ``__init__`` then, once, in the same module object: nothing is lost, it is only paid for when used. The
collectors registered by that ``__init__`` go to prometheus_client's default ``REGISTRY``, which sluicegate
never exposes (``metrics.REGISTRY`` is its own), so no metric changes.

Must run before anything imports prometheus_client (the worker calls it first). Must not know sluicegate's
metrics.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

PACKAGE = "prometheus_client"
# the names of the package's ``__init__`` a worker uses, and the submodule that defines each (prometheus_client 0.2x)
CHEAP: dict[str, str] = {
    "Counter": "metrics", "Gauge": "metrics", "Histogram": "metrics", "Summary": "metrics", "Info": "metrics",
    "Enum": "metrics", "CollectorRegistry": "registry", "REGISTRY": "registry", "Metric": "metrics_core",
}


def defer_exposition() -> bool:
    """Make ``prometheus_client`` a package whose ``__init__`` runs only when a name only it defines is used.

    Returns whether it did (not when the package is already imported or cannot be found)."""
    if PACKAGE in sys.modules:
        return False
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return False
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader
    ran = [False]

    def __getattr__(name: str) -> object:
        if name.startswith("__") or ran[0]:
            raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")
        where = CHEAP.get(name)
        if where is not None:
            return getattr(importlib.import_module(f"{PACKAGE}.{where}"), name)
        if importlib.util.find_spec(f"{PACKAGE}.{name}") is not None:  # a submodule (``from ... import values``)
            return importlib.import_module(f"{PACKAGE}.{name}")
        ran[0] = True  # the real __init__, now, in this module object (it imports what it needs through it)
        loader.exec_module(package)
        return getattr(package, name)

    vars(package)["__getattr__"] = __getattr__
    sys.modules[PACKAGE] = package
    return True


def deferred(module: ModuleType | None = None) -> bool:
    """Whether the package's ``__init__`` has not run (``exposition`` not imported): for tests and the footprint."""
    package = module if module is not None else sys.modules.get(PACKAGE)
    return package is not None and "generate_latest" not in vars(package)
