"""Strings UTF-8 cannot encode: lone surrogates, found cheaply and shown readably.

A Python `str` may hold the code points U+D800 to U+DFFF on their own. They are not characters and
UTF-8 refuses them, so a string holding one cannot be sent to the API, written to the journal or
stored in Parquet. They come from two places:

- a JSON `\\ud800` escape: half of a UTF-16 pair cut from its other half (a JSONL manifest, a
  `.json` document, a PDF's text map, a model's answer);
- a file name whose bytes are not UTF-8: Python decodes each undecodable byte 0xNN to U+DC00+0xNN
  (`surrogateescape`), so that the name can still be opened.

`utf8_problem` finds the first one (free for ASCII, the common case: `str.isascii()` reads a flag);
`escape_surrogates` shows each as text that can be written: an undecodable byte as `\\xNN`, any
other surrogate as `\\udNNN`. Which fields are refused and which are shown escaped is the rule of
`pipeline.sources`.
"""

from __future__ import annotations

import re

__all__ = ["escape_surrogates", "is_utf8", "utf8_problem"]

_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPED_BYTES = range(0xDC80, 0xDD00)  # what surrogateescape makes of the bytes 0x80 to 0xFF


def is_utf8(text: str) -> bool:
    """Whether UTF-8 can encode `text`."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def utf8_problem(text: str) -> str | None:
    """None when UTF-8 can encode `text`; otherwise what its first surrogate is and where, for a reason."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")  # faster than a regex scan, and it allocates only on this rare path
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        what = (
            f"a byte that is not UTF-8 (0x{code - 0xDC00:02X})"
            if code in _ESCAPED_BYTES
            else f"a lone surrogate U+{code:04X} (half of a UTF-16 pair, not a character)"
        )
        return f"{what} at character {exc.start + 1}"
    return None


def escape_surrogates(text: str) -> str:
    """`text` with every surrogate shown as an escape: `\\xNN` for an undecodable byte, else `\\udNNN`."""
    if text.isascii():
        return text
    return _SURROGATE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02x}" if code in _ESCAPED_BYTES else f"\\u{code:04x}"
