"""Candidate ordering and per-target health: strategies (ordered, weighted, least-inflight) and breakers.

Pure state machine over an immutable snapshot of the model table; the clock is injected so tests can
drive it. Owns in-flight counts and consecutive-failure breakers per (provider, model) target. Must not
know about HTTP, bodies or sockets.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sluicegate.config.inference import BreakerSettings, InferenceSettings, ModelSettings, TargetSettings


@dataclass(slots=True)
class TargetState:
    target: TargetSettings
    index: int  # position in the model's target list
    inflight: int = 0
    failures: int = 0  # consecutive
    open_until: float = 0.0  # breaker open while now < open_until
    trial: bool = False  # half-open: one trial request is out

    @property
    def key(self) -> tuple[str, str]:
        return (self.target.provider, self.target.model)


@dataclass(slots=True)
class ModelRoute:
    settings: ModelSettings
    targets: list[TargetState] = field(default_factory=list)


class Router:
    """Orders a model's targets for one request; learns from each attempt's result."""

    def __init__(self, settings: InferenceSettings, clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self.breaker: BreakerSettings = settings.breaker
        self.clock = clock
        self.rng = rng or random.Random()
        self.models: dict[str, ModelRoute] = {}
        shared: dict[tuple[str, str], TargetState] = {}
        for model in settings.models:
            route = ModelRoute(model)
            for i, target in enumerate(model.targets):
                key = (target.provider, target.model)
                # A (provider, model) pair listed under several names shares health and in-flight counts.
                state = shared.get(key)
                if state is None:
                    state = shared[key] = TargetState(target, i)
                route.targets.append(state)
            self.models[model.name] = route

    def names(self) -> list[str]:
        return list(self.models)

    def candidates(self, model: str) -> list[TargetState] | None:
        """Targets to try, best first: healthy ones by strategy, then open ones (better than nothing)."""
        route = self.models.get(model)
        if route is None:
            return None
        now = self.clock()
        healthy: list[TargetState] = []
        opened: list[TargetState] = []
        for t in route.targets:
            if now < t.open_until or (t.trial and t.failures >= self.breaker.failure_threshold):
                opened.append(t)
            else:
                healthy.append(t)
        strategy = route.settings.strategy
        if strategy == "weighted" and len(healthy) > 1:
            healthy = self._weighted_order(healthy)
        elif strategy == "least-inflight" and len(healthy) > 1:
            healthy.sort(key=lambda t: (t.inflight, route.targets.index(t)))
        opened.sort(key=lambda t: t.open_until)
        return healthy + opened

    def _weighted_order(self, items: list[TargetState]) -> list[TargetState]:
        # Efraimidis-Spirakis: key = u^(1/w); descending keys give a weighted random permutation.
        keyed = [(self.rng.random() ** (1.0 / t.target.weight), t) for t in items]
        keyed.sort(key=lambda kv: kv[0], reverse=True)
        return [t for _, t in keyed]

    def begin(self, t: TargetState) -> None:
        t.inflight += 1
        if t.failures >= self.breaker.failure_threshold and self.clock() >= t.open_until:
            t.trial = True  # half-open: this request is the trial

    def end(self, t: TargetState) -> None:
        t.inflight -= 1

    def success(self, t: TargetState) -> None:
        t.failures = 0
        t.open_until = 0.0
        t.trial = False

    def failure(self, t: TargetState) -> bool:
        """Record a failure; returns True when this failure opened the breaker."""
        t.failures += 1
        t.trial = False
        if t.failures >= self.breaker.failure_threshold:
            was_open = self.clock() < t.open_until
            t.open_until = self.clock() + self.breaker.cooldown
            return not was_open
        return False
