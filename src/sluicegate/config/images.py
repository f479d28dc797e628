"""``[image_optimizer]``: operator-defined image profiles and the bounds of the image worker pool.

Owns the typed model of the section and its checks (profile names, widths and aspect ratios against the
set's allowlists, the default profile existing, every bound); ``ImageRouteOptimizer`` is the per-asset-route
switch ``image_optimizer = { enabled = true, profile_set = "web" }``. A client never passes a size or a
format: it can only name one of these profiles (``images/profiles.py`` does the choosing).
Must not know about requests, pyvips or the event loop.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sluicegate.config.types import Duration, FieldProblem

_FROZEN = ConfigDict(extra="forbid", frozen=True)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_RATIO = re.compile(r"^([1-9][0-9]{0,3}):([1-9][0-9]{0,3})$")
_PARAM = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
# Any profile's output stays within this box: the allowlists bound what a profile may ask for, this bounds
# the allowlists themselves (an 8192 x 8192 RGBA output is 256 MiB of pixels).
MAX_DIMENSION = 8192
WEBP_MAX_EFFORT = 6

OutputFormat = Literal["auto", "webp", "avif", "jpeg", "png"]
AutoFormat = Literal["avif", "webp", "jpeg"]
_AUTO_DEFAULT: tuple[AutoFormat, ...] = ("avif", "webp", "jpeg")


class ImageProfile(BaseModel):
    """One named output: the box, how the source fits it, the encoder quality and the format."""

    model_config = _FROZEN

    width: int = Field(ge=1, le=MAX_DIMENSION)
    height: int = Field(default=0, ge=0, le=MAX_DIMENSION)  # 0: from the width, keeping the source's ratio
    # contain: the whole image inside width x height; cover: fill the box exactly, cropping what is outside.
    fit: Literal["contain", "cover"] = "contain"
    # Which part a "cover" crop keeps: the centre, or libvips' "attention" / "entropy" choosers.
    crop: Literal["centre", "attention", "entropy"] = "centre"
    quality: int = Field(default=80, ge=1, le=100)
    format: OutputFormat = "auto"
    # Encoder effort, CPU per image against bytes: WebP 0-6 (used as min(effort, 6)), AVIF 0-9; JPEG and PNG
    # ignore it. 2 by measurement (docs/images.md): WebP q80 at 800 px costs 17 ms at effort 2 against 40 ms
    # at libwebp's default 4 (thumbor's), for 1.9 % more bytes and 0.08 dB less PSNR.
    effort: int = Field(default=2, ge=0, le=9)

    @model_validator(mode="after")
    def _cover_needs_a_box(self) -> ImageProfile:
        if self.fit == "cover" and not self.height:
            raise FieldProblem(("height",), 'fit = "cover" needs a height (the box it fills)')
        if self.format == "webp" and self.effort > WEBP_MAX_EFFORT:
            raise FieldProblem(("effort",), f"WebP's effort is 0-{WEBP_MAX_EFFORT}")
        return self


class ProfileSet(BaseModel):
    """``[image_optimizer.profile_sets.<name>]``: the profiles one asset route offers."""

    model_config = _FROZEN

    profiles: dict[str, ImageProfile]
    default_profile: str
    # A ?profile= value that names no profile: serve the default, or answer 400.
    unknown_profile: Literal["use_default", "reject"] = "reject"
    param: str = "profile"  # the query parameter that names a profile
    # Allowlists every profile must keep: its width, and (when it has a height) its width:height ratio.
    widths: list[int] = Field(min_length=1, max_length=64)
    aspect_ratios: list[str] = Field(default_factory=list, max_length=64)
    # format = "auto": the formats tried in this order against the client's Accept; the last is the fallback
    # (JPEG, or PNG when the image has an alpha channel and no listed format keeps it).
    auto_formats: list[AutoFormat] = Field(default_factory=lambda: list(_AUTO_DEFAULT))

    @field_validator("param")
    @classmethod
    def _param(cls, value: str) -> str:
        if not _PARAM.match(value):
            raise ValueError(f"not a usable query parameter name: {value!r}")
        return value

    @field_validator("widths")
    @classmethod
    def _widths(cls, value: list[int]) -> list[int]:
        for w in value:
            if not 1 <= w <= MAX_DIMENSION:
                raise ValueError(f"width {w} outside 1..{MAX_DIMENSION}")
        return value

    @field_validator("aspect_ratios")
    @classmethod
    def _ratios(cls, value: list[str]) -> list[str]:
        for ratio in value:
            m = _RATIO.match(ratio)
            if not m:
                raise ValueError(f'not an aspect ratio "W:H": {ratio!r}')
            w, h = int(m.group(1)), int(m.group(2))
            if max(w, h) / min(w, h) > 16:
                raise ValueError(f"aspect ratio {ratio} is more than 16:1 (an absurd box, refused)")
        return value

    @field_validator("auto_formats")
    @classmethod
    def _formats(cls, value: list[str]) -> list[str]:
        if not value or len(set(value)) != len(value):
            raise ValueError("needs at least one format, each once")
        return value

    @model_validator(mode="after")
    def _profiles_keep_the_allowlists(self) -> ProfileSet:
        if not self.profiles:
            raise FieldProblem(("profiles",), "needs at least one profile")
        for name, p in self.profiles.items():
            if not _NAME.match(name):
                raise FieldProblem(("profiles", name), "profile names are 1-32 of [a-z0-9_-], starting alnum")
            if p.width not in self.widths:
                raise FieldProblem(("profiles", name, "width"), f"width {p.width} is not in widths {self.widths}")
            if p.height and not any(_same_ratio(p.width, p.height, r) for r in self.aspect_ratios):
                raise FieldProblem(
                    ("profiles", name, "height"),
                    f"{p.width}x{p.height} is not one of aspect_ratios {self.aspect_ratios}",
                )
        if self.default_profile not in self.profiles:
            raise FieldProblem(("default_profile",), f"no profile named {self.default_profile!r}")
        return self


def _same_ratio(width: int, height: int, ratio: str) -> bool:
    """``width x height`` is ``ratio`` to within 1 % (800x533 is 3:2, 320x213 is 3:2)."""
    w, _, h = ratio.partition(":")
    return math.isclose(width / height, int(w) / int(h), rel_tol=0.01)


class ImageOptimizerSettings(BaseModel):
    """``[image_optimizer]``: the worker pool (per sluicegate worker process) and per-image bounds."""

    model_config = _FROZEN

    # Image threads per sluicegate worker process. libvips releases the GIL, so threads use every core
    # without a process per image (docs/images.md has the measurement).
    workers: int = Field(default=2, ge=1, le=64)
    # Requests admitted beyond the busy workers (each holds at most max_source_bytes); over it: 503.
    queue: int = Field(default=8, ge=0, le=1024)
    retry_after: int = Field(default=2, ge=1, le=3600)  # seconds, in the 503's Retry-After
    # Source bytes read from the origin per image; a larger one (by Content-Length or as it arrives): 413.
    max_source_bytes: int = Field(default=32 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    # Source width x height (read from the header before anything is decoded); more: 422.
    max_source_pixels: int = Field(default=64_000_000, ge=1024, le=1_000_000_000)
    # Long side / short side of the source; more extreme: 422.
    max_source_aspect_ratio: float = Field(default=32.0, ge=1.0, le=10_000.0)
    timeout: Duration = Field(default=10.0, gt=0, le=600)  # per image, decode + resize + encode; over it: 503
    source_timeout: Duration = Field(default=15.0, gt=0, le=3600)  # the whole source read; over it: 504
    # A JPEG or PNG source longer than this is streamed into the decoder through a pipe as it arrives (held:
    # the pipe's 1 MiB and a 512 KiB read buffer; a chunked source also this many bytes) instead of being read
    # whole first; 0: every source is read whole.
    stream_source_above: int = Field(default=4 * 1024 * 1024, ge=0, le=1024 * 1024 * 1024)
    # A streamed source from a plain (not TLS) origin connection is moved from the socket into the decoder's
    # pipe by splice(2), inside the kernel (Linux), instead of being read into a buffer and written out again.
    splice_sources: bool = True
    # libvips threads per image: 1 keeps the pool's size the number of cores in use (throughput per core).
    vips_concurrency: int = Field(default=1, ge=1, le=64)
    # When the heap an image freed goes back to the system (images/memory.py): "image" after every image
    # (lowest resident set, a few ms of CPU per image), "idle" when the pool's last running image is done,
    # "off" never (glibc keeps it for reuse).
    release_memory: Literal["image", "idle", "off"] = "idle"
    # glibc's mmap threshold in a worker with the engine loaded (images/engine.py): a block over it is mapped
    # fresh and unmapped when freed (resident set back at once; page faults and zeroing on every image);
    # under it, freed blocks are kept for the next image. 131072 (128 KiB): lowest peak; larger trades peak
    # resident set for CPU (docs/images.md measures it).
    malloc_mmap_threshold: int = Field(default=128 * 1024, ge=16 * 1024, le=32 * 1024 * 1024)
    # Operator switch: ?<original_param>=1 streams the source unchanged (debugging a profile).
    # "" (default): no such switch.
    original_param: str = ""
    profile_sets: dict[str, ProfileSet] = Field(default_factory=dict)

    @field_validator("original_param")
    @classmethod
    def _original(cls, value: str) -> str:
        if value and not _PARAM.match(value):
            raise ValueError(f"not a usable query parameter name: {value!r}")
        return value

    @model_validator(mode="after")
    def _names(self) -> ImageOptimizerSettings:
        for name, pset in self.profile_sets.items():
            if not _NAME.match(name):
                raise FieldProblem(("profile_sets", name), "profile set names are 1-32 of [a-z0-9_-]")
            if self.original_param and self.original_param == pset.param:
                raise FieldProblem(("original_param",), f"is profile_sets.{name}.param too")
        return self


def check_route_profile_sets(routes: Sequence[Any], images: ImageOptimizerSettings) -> None:
    """Every asset route's enabled optimizer names a defined profile set (``FieldProblem`` located on it)."""
    for i, route in enumerate(routes):
        conf = route.image_optimizer
        if conf is not None and conf.enabled and conf.profile_set not in images.profile_sets:
            known = ", ".join(sorted(images.profile_sets)) or "none is defined"
            raise FieldProblem(
                ("publisher", "routes", i, "image_optimizer"),
                f"profile_set {conf.profile_set!r}: no [image_optimizer.profile_sets.{conf.profile_set}] ({known})",
            )


class ImageRouteOptimizer(BaseModel):
    """Per asset route: ``image_optimizer = { enabled = true, profile_set = "web" }``."""

    model_config = _FROZEN

    enabled: bool = False
    profile_set: str = ""

    @model_validator(mode="after")
    def _set_named(self) -> ImageRouteOptimizer:
        if self.enabled and not self.profile_set:
            raise FieldProblem(("profile_set",), "an enabled image optimizer names a profile_set")
        return self
