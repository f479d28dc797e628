"""A backend that failed before the response head: the one exception and what the client is told.

Owns: ``UpstreamFailed`` (status, kind, log message) and ``public_reason`` (the short, detail-free line a
client sees; exception text and addresses go to the log only). Used by the page relay's intake
(``publisher.app``) and the asset routes (``publisher.assets``). Must not know: sockets, metrics, logging.
"""

from __future__ import annotations


class UpstreamFailed(Exception):
    """The backend failed before the response head: answered with ``status``, logged and counted once."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


_REASONS = {
    "connect": "cannot connect to {the}",
    "first_byte_timeout": "{name} did not answer in time",
    "bad_response": "invalid response from {the}",
    "disconnected": "{name} closed the connection",
}


def public_reason(exc: UpstreamFailed, name: str, the: str, fallback: str) -> str:
    """What the client is told for ``exc``: ``name`` is the backend's noun ("origin"), ``the`` the same with
    its article where one reads better ("the asset backend"), ``fallback`` the line for an unlisted kind."""
    template = _REASONS.get(exc.kind)
    return template.format(name=name, the=the) if template else fallback
