"""``application/x-www-form-urlencoded`` request bodies, public -> origin, streamed with a bounded hold.

A sans-IO transformer (``feed(bytes) -> bytes``, ``finish() -> bytes``): field values go through
``inbound_values.ValueMapper``; names, ``&`` and ``=`` pass as they are. The output is the same for
every split of the input.

Hold: the unfinished field. A field value longer than ``hold`` is mapped piece by piece
(``ValueMapper.map_prefix``: only its last few hundred bytes wait); a field name longer than ``hold``
is passed on as it is. If a value is one unbroken run of public host names longer than ``hold`` (no
point in it that a match cannot reach), the rest of that value is passed on unmapped rather than held:
the hold never exceeds ``hold`` plus one input chunk. After ``limit`` input bytes the rest of the
body passes through unmapped (a huge upload is relayed, never refused, and costs no mapping work).

Must not know about requests or sockets.
"""

from __future__ import annotations

from sluicegate.publisher.inbound_values import ValueMapper


class FormBodyMapper:
    def __init__(self, values: ValueMapper, hold: int, limit: int) -> None:
        self._values = values
        self._hold = max(hold, 4 * values.keep)
        self._limit = limit
        self._seen = 0
        self._buf = b""  # the unfinished field, from the first byte not yet emitted
        self._in_value = False  # ``_buf`` starts inside the field's value (its name and "=" are out)
        self._passthrough = False
        self._skip_value = False  # the rest of this field's value passes unmapped (after a run without a safe point)
        self.unmapped_runs = 0  # values passed on unmapped because no safe point was found in ``hold``

    @property
    def passed_through(self) -> bool:
        """Did the body run past ``limit`` (the rest relayed unmapped)?"""
        return self._passthrough

    def feed(self, data: bytes) -> bytes:
        if self._passthrough:
            return data
        self._seen += len(data)
        if self._seen > self._limit:
            # this chunk crosses the mapping limit: map what came before it, pass the rest through
            room = len(data) - (self._seen - self._limit)
            head = self._process(self._buf + data[:room], final=True)
            self._buf = b""
            self._passthrough = True
            return head + data[room:]
        return self._process(self._buf + data, final=False)

    def finish(self) -> bytes:
        if self._passthrough:
            return b""
        out = self._process(self._buf, final=True)
        self._buf = b""
        return out

    def _process(self, buf: bytes, final: bool) -> bytes:
        out: list[bytes] = []
        start = 0
        amp = buf.find(b"&")
        while amp >= 0:
            out.append(self._field(buf[start:amp]))
            out.append(b"&")
            self._in_value = self._skip_value = False
            start = amp + 1
            amp = buf.find(b"&", start)
        rest = buf[start:]
        if final:
            out.append(self._field(rest))
            self._in_value = self._skip_value = False
            return b"".join(out)
        if self._skip_value:
            out.append(rest)
            self._buf = b""
            return b"".join(out)
        if not self._in_value:
            eq = rest.find(b"=")
            if eq >= 0:
                out.append(rest[: eq + 1])
                rest = rest[eq + 1 :]
                self._in_value = True
            elif len(rest) > self._hold:
                out.append(rest)  # a name this long is not mapped; nothing of it needs holding
                rest = b""
        if self._in_value and len(rest) > self._hold:
            piece, used = self._values.map_prefix(rest)
            if used == 0:
                # no safe point: the rest of this value passes unmapped (mapping what follows the cut
                # without the context before it could "fix" a host that continues across the cut)
                used = len(rest)
                piece = rest
                self._skip_value = True
                self.unmapped_runs += 1
            out.append(piece)
            rest = rest[used:]
        self._buf = rest
        return b"".join(out)

    def _field(self, field: bytes) -> bytes:
        if self._skip_value:
            return field
        if self._in_value:
            return self._values.map(field)
        name, eq, value = field.partition(b"=")
        if not eq:
            return field
        return name + eq + self._values.map(value)
