"""Test images made at test time with libvips (nothing vendored): photo-like sources, alpha, bombs, cuts."""

from __future__ import annotations

import functools
import struct
import zlib

import pyvips  # type: ignore[import-untyped]


def photo(width: int, height: int, fmt: str = "jpeg", quality: int = 85, alpha: bool = False) -> bytes:
    """A noisy, smoothly shaded colour image (compresses like a photo, not like a flat fill)."""
    xyz = pyvips.Image.xyz(width, height)
    x, y = xyz[0], xyz[1]
    r = (x * 255 / max(width - 1, 1)).cast("uchar")
    g = (y * 255 / max(height - 1, 1)).cast("uchar")
    b = (pyvips.Image.gaussnoise(width, height, mean=128, sigma=40)).cast("uchar")
    img = r.bandjoin([g, b]).copy(interpretation="srgb")
    if alpha:
        img = img.bandjoin((x * 0 + 200).cast("uchar"))
    if fmt == "jpeg":
        return bytes(img.jpegsave_buffer(Q=quality))
    if fmt == "png":
        return bytes(img.pngsave_buffer(compression=1))
    if fmt == "webp":
        return bytes(img.webpsave_buffer(Q=quality))
    raise ValueError(fmt)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


@functools.cache
def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A valid 1-bit PNG of ``width x height`` zero pixels: ~1.4 MB that decodes to 2.5 G pixels."""
    comp = zlib.compressobj(1)
    row = b"\0" * (1 + (width + 7) // 8)
    parts = [comp.compress(row) for _ in range(height)]
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")


def size_of(data: bytes) -> tuple[str, int, int]:
    """(loader, width, height) of encoded image bytes, as libvips reads them."""
    img = pyvips.Image.new_from_buffer(data, "")
    return str(img.get("vips-loader")), int(img.width), int(img.height)
