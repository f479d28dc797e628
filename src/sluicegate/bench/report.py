"""Plain-text rendering for ``sluicegate bench``: aligned tables, number formatting, a progress line."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import TextIO


def fmt_num(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 10000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def fmt_bytes(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A left-aligned first column, right-aligned others, a dashed rule under the header."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            out.append(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]))
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *[line(r) for r in rows]])


class Progress:
    """A one-line progress bar on stderr (only when it is a terminal, unless forced)."""

    def __init__(self, enabled: bool | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._last = 0

    def update(self, fraction: float, text: str) -> None:
        if not self.enabled:
            return
        fraction = min(max(fraction, 0.0), 1.0)
        width = 30
        done = int(fraction * width)
        msg = f"\r[{'#' * done}{'.' * (width - done)}] {fraction * 100:5.1f}%  {text}"
        pad = max(0, self._last - len(msg))
        self.stream.write(msg + " " * pad)
        self.stream.flush()
        self._last = len(msg)

    def done(self) -> None:
        if self.enabled and self._last:
            self.stream.write("\r" + " " * self._last + "\r")
            self.stream.flush()
            self._last = 0
