"""Signatures on the thinking blocks the emulator writes, and the check on the ones sent back.

The real API signs every `thinking` block so that it can tell, when a conversation sends the block
back, that Claude wrote it and nobody changed it ("Thinking blocks must be passed back unmodified";
SDK `types/thinking_block_param.py`). The emulator's signature is a keyed hash of the thinking text
under the emulator's seed: a block the emulator wrote verifies, an edited or invented one does not.
Pure functions; no state.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["sign_thinking", "thinking_signature_is_valid"]


def sign_thinking(seed: int, thinking: str) -> str:
    """The signature the emulator puts on a thinking block with this text."""
    return hashlib.sha256(f"{seed}:{thinking}".encode()).hexdigest()


def thinking_signature_is_valid(seed: int, thinking: str, signature: str) -> bool:
    """True when `signature` is the one the emulator issued for exactly this thinking text."""
    return hmac.compare_digest(sign_thinking(seed, thinking).encode(), signature.encode("utf-8", "replace"))
