"""The emulator's determinism: one seed, hashed with what a value is about, gives every id and draw.

Nothing here keeps state: the same parts give the same number on every run and machine, which is
what lets a seeded emulator answer a request the same way twice.
"""

from __future__ import annotations

import hashlib
import string

__all__ = ["bytes_hash", "spelled_id", "stable_hash"]

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
ID_DIGITS = 22


def stable_hash(*parts: object) -> int:
    """A 64-bit hash of `parts` that is the same on every run and machine."""
    digest = hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def bytes_hash(data: bytes) -> int:
    """A 64-bit hash of raw bytes (a request body), the same on every run and machine.

    `stable_hash(data)` would hash the bytes' repr, which costs more than the hash itself for a
    request of a few kilobytes."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def spelled_id(prefix: str, number: int) -> str:
    """An id in the API's shape (`msg_01` and 22 base-62 digits) spelling the low digits of `number`.

    The digits come least significant first, two at a time (`_DIGIT_PAIRS`: the same characters a
    digit at a time would give, in half the steps).
    """
    pairs = []
    for _ in range(ID_DIGITS // 2):
        number, pair = divmod(number, 62 * 62)
        pairs.append(_DIGIT_PAIRS[pair])
    return f"{prefix}_01{''.join(pairs)}"


# For 0 <= n < 62**2: the two base-62 digits of n, least significant first.
_DIGIT_PAIRS = tuple(BASE62[n % 62] + BASE62[n // 62] for n in range(62 * 62))
