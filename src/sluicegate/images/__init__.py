"""The image optimizer: operator-defined profiles applied to images behind asset routes (issue #16 §3).

``profiles`` decides from the request alone (profile, format, derived ETag; sans-IO), ``engine`` makes one
image with libvips in a pool thread, ``pool`` bounds how many are admitted and run, ``serve`` is the I/O
shell an asset route calls (``ImageOptimizer.maybe_optimize``, built here by ``route_optimizer``). A client
only ever names a profile; sizes and formats are the operator's (``[image_optimizer.profile_sets.*]``,
config/images.py). docs/images.md has the contract. Must not know about route tables or page rewriting.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from sluicegate.config.images import ImageRouteOptimizer

if TYPE_CHECKING:
    from sluicegate.images.serve import ImageOptimizer


def route_optimizer(route: Any, settings: Any) -> ImageOptimizer | None:
    """The optimizer of one asset route (``publisher.optimizer_seam.build``), or None when it is off.

    Raises ``ValueError`` naming the route for a profile set that does not exist or a missing engine
    (``pip install 'sluicegate[images]'``): the server does not start with an optimizer it cannot run.
    """
    raw = route.image_optimizer
    if raw is None:
        return None
    conf = raw if isinstance(raw, ImageRouteOptimizer) else ImageRouteOptimizer.model_validate(raw, strict=True)
    if not conf.enabled:
        return None
    where = f"publisher.routes[{route.name}].image_optimizer"
    sets = settings.image_optimizer.profile_sets
    if conf.profile_set not in sets:
        known = ", ".join(sorted(sets)) or "none defined"
        raise ValueError(f"{where}.profile_set: no [image_optimizer.profile_sets.{conf.profile_set}] ({known})")
    # Found, not loaded: libvips is loaded by the first image, in a pool thread of a worker process (the
    # supervisor also builds the app, to check the config, and must not carry the codecs).
    if importlib.util.find_spec("pyvips") is None:
        raise ValueError(f"{where}: the image engine is not installed (no module named 'pyvips'); "
                         "install sluicegate with the 'images' extra (pyvips[binary])")
    from sluicegate.images.serve import ImageOptimizer

    return ImageOptimizer(settings.image_optimizer, conf.profile_set)
