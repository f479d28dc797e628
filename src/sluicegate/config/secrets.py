"""Secret keys read from a file or the environment (never from the TOML): what makes one usable.

``check_keys`` refuses a key shorter than ``MIN_KEY_BYTES`` or one that looks like a documentation
placeholder, with a ``SecretError`` that names where the key came from and never the key. Used for the
first-party signing keys and the edge-identity secret. Imports the standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MIN_KEY_BYTES = 32
_PLACEHOLDER = re.compile(r"^(?:secret|password|todo|(.)\1+)$", re.IGNORECASE)
# Documentation markers anywhere in the value.
_PLACEHOLDER_PART = re.compile(
    r"<[^>]*>|\$\{|x{3,}|change[-_ ]?me|your[-_ ]|example|placeholder|replace[-_ ]?me|insert[-_ ]|dummy",
    re.IGNORECASE,
)


class SecretError(ValueError):
    """Signing keys missing or unfit (message never contains a key)."""


def _looks_placeholder(key: str) -> bool:
    key = key.strip()
    return bool(_PLACEHOLDER.match(key) or _PLACEHOLDER_PART.search(key)) or len(set(key)) < 8


def check_keys(keys: Sequence[str], source: str) -> list[bytes]:
    out = []
    for i, key in enumerate(keys, 1):
        if len(key.encode()) < MIN_KEY_BYTES:
            raise SecretError(f"{source}: key #{i} is shorter than {MIN_KEY_BYTES} bytes")
        if _looks_placeholder(key):
            raise SecretError(f"{source}: key #{i} looks like a placeholder, not a secret")
        out.append(key.encode())
    if not out:
        raise SecretError(f"{source}: no signing key")
    return out
