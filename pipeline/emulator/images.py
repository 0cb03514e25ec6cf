"""What an image's first bytes say: its format and its pixel size, read from the header alone.

The emulator never decodes pixels; the API's checks on an image (the declared media type, the
8000-pixel and many-image 2000-pixel limits) and its token cost need only the header. Pure
functions over bytes, and `read_base64_image`, which validation and the token count share.
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache

__all__ = ["image_format", "image_size", "read_base64_image"]

IMAGES_READ_KEPT = 8  # images of up to 5 MB of base64 each: 40 MB at most

JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame, not DHT/JPG/DAC
JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xDA)})  # no length field


def image_format(data: bytes) -> str | None:
    """The media type the image's first bytes announce, or None when they are not JPEG, PNG, GIF or WebP."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) in pixels from the header, or None when the header is cut short or unknown."""
    kind = image_format(data)
    if kind == "image/png" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if kind == "image/gif" and len(data) >= 10:
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    if kind == "image/webp":
        return _webp_size(data)
    if kind == "image/jpeg":
        return _jpeg_size(data)
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in JPEG_STANDALONE_MARKERS:
            position += 2
            continue
        if marker in JPEG_SOF_MARKERS:
            if position + 9 > len(data):
                return None
            height = int.from_bytes(data[position + 5 : position + 7], "big")
            width = int.from_bytes(data[position + 7 : position + 9], "big")
            return width, height
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    return None


@lru_cache(maxsize=IMAGES_READ_KEPT)
def read_base64_image(data: str) -> tuple[str | None, tuple[int, int] | None] | None:
    """An image's format and pixel size from its base64 data, or None when that is not valid base64.

    Kept for the last few images: validation and the token count read the same image once, and a
    request naming one uploaded image many times decodes it once."""
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
    return image_format(decoded), image_size(decoded)
