"""The origin's response head as the client gets it, planned once per header shape and applied in one pass.

An origin sends the same header *names* in the same order for most of its responses (nginx: Server, Date,
Content-Type, Content-Length, Last-Modified, Connection, ETag, Accept-Ranges); only values change. What the
response header rules (``headers.downstream_response_headers``: hop-by-hop stripping, our request id instead
of the origin's, the host mapping of every value but ``response_headers.NOT_MAPPED``, the Set-Cookie and CSP
rules) do to each position depends on its name alone (and on the ``Connection`` header's list of names), so a
``HeadPlan`` decides it once per shape and ``apply`` only copies bytes: kept headers go out as the origin's
bytes (lower-case name), no decoding and re-encoding; the values under the general rule are mapped as one
``\\n``-joined text (one ``rewrite_text`` call, as ``map_response_headers`` does) and only decoded when that
changes something; Set-Cookie and CSP values go through their own rules. The gate's decision needs only the
Content-Type and Content-Encoding values, which the plan knows the positions of.

The result is exactly what the general path gives (tests/unit/publisher/test_head_plan.py compares them on
real header lists); ``HeadPlans`` keeps at most ``MAX_PLANS`` shapes (cleared when full: an origin whose
shapes never repeat costs one plan per response, the general path's work plus a dict lookup).

Must not know: bodies, sockets, how a match is found (``pipeline.hosts``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sluicegate import gate
from sluicegate.edge.headers import HOP_BY_HOP
from sluicegate.pipeline.hosts import HostRewriter
from sluicegate.publisher.response_headers import (
    CSP_HEADERS,
    NOT_MAPPED,
    _hostname,
    map_csp,
    map_set_cookie,
)

MAX_PLANS = 256
_MAX_DECISIONS = 256

KEEP = 0  # the origin's bytes, name lower-cased
MAP = 1  # the general rule: the host mapping of the value
COOKIE = 2  # Set-Cookie's rule
CSP = 3  # Content-Security-Policy's rule


class HeadPlan:
    """What happens to each position of one header shape."""

    __slots__ = ("ctype_at", "encoding_at", "general", "own", "steps")

    def __init__(self, names: Sequence[bytes], connection: bytes, id_header: bytes) -> None:
        listed = {t.strip().lower() for t in connection.split(b",")} if connection else set()
        steps: list[tuple[int, bytes, int]] = []  # (position, lower-case name, action)
        self.ctype_at = -1  # the last Content-Type's position (the last one wins, as in gate.classify)
        self.encoding_at: list[int] = []  # every Content-Encoding's position, in order
        for i, name in enumerate(names):
            low = name.lower()
            text = low.decode("latin-1")
            if text in HOP_BY_HOP or text.startswith("proxy-") or low in listed or low == id_header:
                continue
            if text == "content-type":
                self.ctype_at = i
            elif text == "content-encoding":
                self.encoding_at.append(i)
            if text == "set-cookie":
                action = COOKIE
            elif text in CSP_HEADERS:
                action = CSP
            elif text in NOT_MAPPED:
                action = KEEP
            else:
                action = MAP
            steps.append((i, low, action))
        self.steps = steps
        self.general = [(k, i) for k, (i, _, action) in enumerate(steps) if action == MAP]
        self.own = any(action in (COOKIE, CSP) for _, _, action in steps)

    def apply(
        self, raw: Sequence[tuple[bytes, bytes]], rewriter: HostRewriter, names: frozenset[str],
        public_hosts: Sequence[str],
    ) -> list[tuple[bytes, bytes]]:
        """The client's headers (lower-case names, latin-1 bytes), without our request id (the caller adds it)."""
        out = [(low, raw[i][1]) for i, low, _ in self.steps]
        general = self.general
        if general:
            values = [raw[i][1].decode("latin-1") for _, i in general]
            blob = values[0] if len(values) == 1 else "\n".join(values)
            if rewriter.rewrite_text(blob) != blob:
                for (k, _), value in zip(general, values, strict=True):
                    out[k] = (out[k][0], rewriter.rewrite_text(value).encode("latin-1"))
        if self.own:
            for k, (i, low, action) in enumerate(self.steps):
                if action == COOKIE:
                    value = map_set_cookie(raw[i][1].decode("latin-1"), rewriter, names,
                                           _hostname(rewriter.public_authority), public_hosts)
                    out[k] = (low, value.encode("latin-1"))
                elif action == CSP:
                    value = map_csp(raw[i][1].decode("latin-1"), rewriter, names, rewriter.public_authority)
                    out[k] = (low, value.encode("latin-1"))
        return out


class HeadPlans:
    """The plans of one publisher face (bounded), and the gate's decisions by (method, status, type, coding)."""

    def __init__(self, id_header: str) -> None:
        self.id_header = id_header.lower().encode("latin-1")
        self._plans: dict[tuple[bytes, ...], HeadPlan] = {}
        self._decisions: dict[tuple[str, int, bytes, tuple[bytes, ...]], gate.Decision] = {}

    def plan(self, raw: Sequence[tuple[bytes, bytes]]) -> HeadPlan:
        names = tuple([name for name, _ in raw])
        connection = b""
        for name, value in raw:
            if len(name) == 10 and name.lower() == b"connection":
                connection = value if not connection else connection + b"," + value
        key = (*names, b"\0" + connection) if connection else names
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= MAX_PLANS:
                self._plans.clear()
            plan = self._plans[key] = HeadPlan(names, connection, self.id_header)
        return plan

    def decision(self, method: str, status: int, raw: Sequence[tuple[bytes, bytes]], plan: HeadPlan) -> gate.Decision:
        """``gate.classify`` of this head (from the plan's Content-Type and Content-Encoding values)."""
        ctype = raw[plan.ctype_at][1] if plan.ctype_at >= 0 else b""
        codings = tuple([raw[i][1] for i in plan.encoding_at])
        key = (method, status, ctype, codings)
        decision = self._decisions.get(key)
        if decision is None:
            few = [("content-encoding", c.decode("latin-1")) for c in codings]
            if plan.ctype_at >= 0:
                few.append(("content-type", ctype.decode("latin-1")))
            decision = gate.classify(method, status, few)
            if len(self._decisions) >= _MAX_DECISIONS:
                self._decisions.clear()
            self._decisions[key] = decision
        return decision
