"""A worker's imports without what it never uses; called first thing by ``server.worker`` and by one
process (``server.single``, whose exposition then loads at the first scrape of its admin ``/metrics``);
docs/operations.md.

* prometheus_client without its exposition (``observability.promlazy``): the supervisor renders the metrics;
* pydantic without plugin discovery: pydantic looks for plugins (``importlib.metadata`` entry points of every
  installed distribution) when it builds its first validator, which imports ``importlib.metadata`` and with it
  ``email``, ``zipfile`` and ``csv`` (+2.2 MiB RSS), then reads every installed package's metadata. A worker
  validates once, a snapshot the supervisor has validated already; plugins (logfire's, say) still see the
  supervisor's and ``sluicegate check``'s validations. Done by giving ``pydantic.plugin._loader`` (the only
  module that imports ``importlib.metadata`` on that path; pydantic 2.x) the answer it gives with
  ``PYDANTIC_DISABLE_PLUGINS=__all__``: no plugins.

Both must run before prometheus_client and pydantic are imported; each does nothing when its package already is.
Must not know the config model or the metrics.
"""

from __future__ import annotations

import sys
from types import ModuleType

from sluicegate.observability import promlazy

PYDANTIC_PLUGIN_LOADER = "pydantic.plugin._loader"


def _no_plugins() -> tuple[()]:
    return ()


def skip_pydantic_plugins() -> bool:
    """Make pydantic find no plugins without looking for them; returns whether it did."""
    if "pydantic" in sys.modules or PYDANTIC_PLUGIN_LOADER in sys.modules:
        return False
    loader = ModuleType(PYDANTIC_PLUGIN_LOADER, "sluicegate.server.lean: no pydantic plugins in a worker")
    vars(loader)["get_plugins"] = _no_plugins
    sys.modules[PYDANTIC_PLUGIN_LOADER] = loader
    return True


def install() -> dict[str, bool]:
    """Both; what was done, for the worker's debug log."""
    return {"prometheus_exposition_deferred": promlazy.defer_exposition(),
            "pydantic_plugins_skipped": skip_pydantic_plugins()}
