"""The rewriter's output: an ordered queue of byte pieces and ``Deferred`` slots.

Owns the order guarantee: bytes come out exactly in document order. ``emit`` appends bytes;
``emit_slot`` appends a ``Deferred`` whose bytes are decided later, and everything after an
unresolved slot is held (counted in ``held``, so a handler can enforce its own cap) until the slot
is resolved. ``take`` returns what is ready. ``suppress`` > 0 drops output (a removed element's
content). Must not know: tokens, handlers, rules; it sees bytes and slots only.
"""

from __future__ import annotations


class Deferred:
    """An output slot whose bytes are decided later; output after it is held until ``resolve``."""

    __slots__ = ("_out", "original", "resolved", "value")

    def __init__(self, out: OutputQueue, original: bytes) -> None:
        self._out = out
        self.original = original
        self.resolved = False
        self.value = original

    def resolve(self, new_raw: bytes) -> None:
        if self.resolved:
            raise RuntimeError("Deferred already resolved")
        self.resolved = True
        self.value = new_raw
        self._out.drain()


class OutputQueue:
    """Bytes ready to be returned, then the held queue behind the first unresolved slot."""

    def __init__(self) -> None:
        self.ready: list[bytes] = []
        self.queue: list[bytes | Deferred] = []
        self.held = 0
        self.suppress = 0

    def emit(self, data: bytes) -> None:
        if self.suppress or not data:
            return
        if self.queue:
            self.queue.append(data)
            self.held += len(data)
        else:
            self.ready.append(data)

    def emit_slot(self, slot: Deferred) -> None:
        if self.suppress:
            return
        self.queue.append(slot)
        self.held += len(slot.original)
        self.drain()

    def drain(self) -> None:
        """Move everything up to the first unresolved slot to the ready list."""
        q = self.queue
        i = 0
        while i < len(q):
            item = q[i]
            if isinstance(item, Deferred):
                if not item.resolved:
                    break
                self.held -= len(item.original)
                if item.value:
                    self.ready.append(item.value)
            else:
                self.held -= len(item)
                self.ready.append(item)
            i += 1
        del q[:i]

    def release_all(self) -> None:
        """Document end: slots still open fall back to their original bytes."""
        for item in self.queue:
            if isinstance(item, Deferred) and not item.resolved:
                item.resolved = True
        self.drain()

    def take(self) -> bytes:
        out = b"".join(self.ready)
        self.ready.clear()
        return out
