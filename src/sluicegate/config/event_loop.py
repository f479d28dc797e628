"""``[event_loop]``: how much CPU one response may spend per turn of a worker's event loop, and the loop-lag monitor.

A worker is one event loop; a body transform (decode -> rewrite -> encode) that never waits would hold it
for the whole body. The relay works in slices of at most ``slice_ms`` of CPU, each made of decoded pieces
of at most ``piece_bytes``, and gives the loop a turn between slices (docs/fairness.md has the measurements
behind the defaults).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EventLoopSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # CPU time one rewritten response may use before it lets the loop run other work; 0 = no slicing
    # (one read is transformed in one go, as before issue 24; for A/B comparisons only).
    slice_ms: float = Field(default=1.0, ge=0, le=1000)
    # When nothing else is ready on the loop (no I/O, quiet turns), a spent slice runs on without a pause, for
    # at most this long since the loop last ran (timers may be late by this much); 0 = pause after every slice.
    stretch_ms: float = Field(default=8.0, ge=0, le=100)
    # Decoded bytes per step of a body transform: the granularity at which slice_ms is checked.
    piece_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    # The loop-lag monitor's timer period (sluicegate_event_loop_lag_seconds samples once per period).
    lag_resolution_ms: float = Field(default=10.0, ge=1, le=1000)
    # A loop stall longer than this logs a warning naming the request that held the loop.
    stall_warn_ms: float = Field(default=100.0, ge=1)
    # The lag timer parks while the worker is idle (no request in flight, the loop idle) and the next request
    # re-arms it: an idle worker is not woken. false = it ticks every lag_resolution_ms even when idle (which
    # keeps the loop's code warm: ~40 us less CPU on a request after idle on a shared VM, for ~8 ms of CPU per
    # idle second; docs/benchmarks-issue19.md row 6).
    idle_park: bool = True
