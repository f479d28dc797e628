"""One image's work order and its outcome, without the engine: what the I/O shell and the pool hand around.

Owns: ``Job`` (source bytes or the pipe they stream through, the profile's numbers, the bounds, the
cancellation flag, the source's own failure), ``Result``, ``ImageError`` (the HTTP status an image that
cannot be made maps to) and ``sniff`` (the format from the first bytes). Importing this never loads libvips:
the supervisor builds the app once to check a config (``server.supervisor.check_buildable``) and must not
carry the codecs (~16 MiB resident) for it; the engine is loaded by the first image, in a pool thread.
Must not know about pyvips, HTTP or the event loop.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

MAGIC_KINDS = ("jpeg", "png", "gif", "webp", "heif")
_HEIF_BRANDS = (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1", b"hevc")


class ImageError(Exception):
    """An image that cannot be made; ``status`` is the HTTP answer, ``kind`` the metrics/log word."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


@dataclass
class Job:
    source: bytes | bytearray
    width: int
    height: int  # 0: from the width
    fit: str  # contain | cover
    crop: str
    quality: int
    format: str  # webp | avif | jpeg | png; jpeg from "auto" becomes png for an image with alpha
    auto: bool
    max_pixels: int
    max_aspect: float
    timeout: float
    effort: int = 2  # the profile's encoder effort (WebP: at most 6)
    cancelled: threading.Event = field(default_factory=threading.Event)
    started: float = 0.0
    # Streamed source (``images.stream``): the read end of a pipe the rest of the body arrives on after
    # ``source`` (then only its first bytes, for recognition); -1 when ``source`` is the whole body.
    stream_fd: int = -1
    # Set by the feeding side before it closes the pipe when the source failed (too large, cut, stalled):
    # whatever libvips made of the bytes it got, this is the answer.
    source_error: ImageError | None = None
    _fd_lock: threading.Lock = field(default_factory=threading.Lock)
    # The image being computed (the engine's final pyvips image while it is encoded); ``kill()`` stops it.
    _target: Any = None

    def kill(self) -> bool:
        """Stop the image being computed (thread-safe; libvips checks the flag per tile); False when no image
        is being computed yet or any more (the engine checks ``cancelled`` and its deadline itself then)."""
        with self._fd_lock:
            target = self._target  # our own reference: the image cannot be freed while it is flagged
        if target is None:
            return False
        target.set_kill(True)
        return True

    def computing(self, image: Any) -> None:
        """The engine's image ``kill()`` stops from now on (None: done)."""
        with self._fd_lock:
            self._target = image

    def close_stream(self) -> None:
        """Close the pipe's read end (idempotent; the pool calls it when the job is done or dropped)."""
        with self._fd_lock:
            fd, self.stream_fd = self.stream_fd, -1
        if fd >= 0:
            os.close(fd)


@dataclass
class Result:
    body: bytes
    format: str
    width: int
    height: int
    source_width: int
    source_height: int


def sniff(data: bytes | bytearray) -> str | None:
    """The source format from its first bytes, or None when it is not one this engine takes."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "heif"
    return None
