"""The exceptions pypdf raises on a malformed file, besides its own `PyPdfError`: each means "corrupt".

Shared by text extraction (`extract_pdf.py`) and the emulator's PDF reader (`emulator/pdf.py`), so
that a file docpipe calls corrupt is one the emulator refuses, and the other way round.
"""

from __future__ import annotations

import struct
import zlib

__all__ = ["PDF_PARSE_FAILURES"]

PDF_PARSE_FAILURES: tuple[type[BaseException], ...] = (
    ArithmeticError,
    AssertionError,
    AttributeError,
    IndexError,
    KeyError,
    OSError,
    RecursionError,
    TypeError,
    ValueError,
    struct.error,
    zlib.error,
)
