"""The body pipeline: sans-IO transformers, run decode -> process -> encode by the relays.

Every stage is a plain object with ``feed(data) -> bytes`` and ``finish() -> bytes``. A stage
holds only bounded state of its own; it never touches sockets, event loops or headers. The I/O
shells (``sluicegate.publisher.relay.BodyWork``, the first-party relay in ``firstparty.endpoints``)
move bytes through decoder, processor and encoder and decide what to do with errors. Stages raise
``PipelineError`` subclasses for bad input; they never swallow bytes.
"""

from __future__ import annotations

from typing import Protocol


class Transformer(Protocol):
    """A streaming byte transformer. Output of ``feed``/``finish`` may be empty."""

    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class PipelineError(Exception):
    """Bad input met by a stage (corrupt encoding, cap exceeded...). ``kind`` names it for logs/metrics."""

    kind = "pipeline"


class LimitExceeded(PipelineError):
    kind = "limit"


class WorkBoundExceeded(LimitExceeded):
    """A per-response bound on work was hit; ``bound`` names the config key (log line, metric label)."""

    def __init__(self, bound: str, message: str) -> None:
        super().__init__(message)
        self.bound = bound
        self.kind = bound


class UnsafeOverlongTag(LimitExceeded):
    """A tag over ``[html] max_tag_bytes`` spells an origin URL only its decoding reveals
    (character references, percent-encoded host): it cannot be rewritten in bounded memory, and
    is never emitted unrewritten, so the response is aborted (fail closed)."""

    kind = "html_overlong_tag"


class Identity:
    """Passes bytes through unchanged."""

    def feed(self, data: bytes) -> bytes:
        return data

    def finish(self) -> bytes:
        return b""
