"""The emulator's image header reader (format and pixel size from the first bytes alone), and what an
image costs."""

from __future__ import annotations

import base64

import anthropic
import pytest

from pipeline.emulator.images import image_format, image_size
from pipeline.emulator.tokens import BLOCK_OVERHEAD_TOKENS


def png(width: int, height: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR" + width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x06"


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + width.to_bytes(2, "little") + height.to_bytes(2, "little") + b"\x80\x00\x00"


def jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0\x00\x11\x08" + height.to_bytes(2, "big") + width.to_bytes(2, "big") + b"\x03"
    return b"\xff\xd8" + app0 + b"\xff\xdb\x00\x04\x00\x00" + sof0


def webp_vp8x(width: int, height: int) -> bytes:
    size = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x00" + size


def webp_vp8l(width: int, height: int) -> bytes:
    bits = (width - 1) | (height - 1) << 14
    return b"RIFF\x00\x00\x00\x00WEBPVP8L\x00\x00\x00\x00\x2f" + bits.to_bytes(4, "little")


def webp_vp8(width: int, height: int) -> bytes:
    frame = b"\x00\x00\x00\x9d\x01\x2a" + width.to_bytes(2, "little") + height.to_bytes(2, "little")
    return b"RIFF\x00\x00\x00\x00WEBPVP8 \x00\x00\x00\x00" + frame


@pytest.mark.parametrize(
    ("make", "media_type"),
    [
        (png, "image/png"),
        (gif, "image/gif"),
        (jpeg, "image/jpeg"),
        (webp_vp8x, "image/webp"),
        (webp_vp8l, "image/webp"),
        (webp_vp8, "image/webp"),
    ],
)
@pytest.mark.parametrize(("width", "height"), [(1, 1), (8001, 3), (640, 2000)])
def test_format_and_size_come_from_the_header(make: object, media_type: str, width: int, height: int) -> None:
    """Each of the four formats (and the three WebP flavours) gives its media type and pixel size."""
    data = make(width, height)  # type: ignore[operator]
    assert (media_type, (width, height)) == (image_format(data), image_size(data))


@pytest.mark.parametrize(
    "data", [b"", b"hello", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0\x00\x10", b"RIFF\0\0\0\0WEBPVP8 "]
)
def test_a_cut_short_or_unknown_header_has_no_size(data: bytes) -> None:
    """No size is invented: the emulator skips the pixel limits when the header does not tell."""
    assert image_size(data) is None


@pytest.mark.parametrize(
    ("width", "height", "tokens"),
    [
        (100, 100, 14),  # 10,000 px / 750, rounded up
        (1000, 750, 1000),
        (1568, 1568, 1600),  # 3,278 by the formula: never over the ceiling
        (6000, 300, 164),  # scaled to 1568 x 78.4 first: 122,931 px
    ],
)
def test_an_image_costs_its_pixels_not_its_bytes(
    client: anthropic.Anthropic, width: int, height: int, tokens: int
) -> None:
    """count_tokens (and so usage) bills a base64 image at width x height / 750 after the long edge is
    scaled to 1568 px, at most 1,600 tokens, whatever its file size (vision docs, "Evaluate image size")."""
    padded = png(width, height) + bytes(200_000)  # a big file: its bytes must not count
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(padded)}}
    text = {"type": "text", "text": "What is this?"}
    with_image = client.messages.count_tokens(
        model="claude-sonnet-4-6", messages=[{"role": "user", "content": [image, text]}]
    ).input_tokens
    without = client.messages.count_tokens(
        model="claude-sonnet-4-6", messages=[{"role": "user", "content": [text]}]
    ).input_tokens
    assert with_image - without == tokens + BLOCK_OVERHEAD_TOKENS


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_more_than_600_images_in_a_request_are_refused(client: anthropic.Anthropic) -> None:
    """A request may hold many images, not without end: 600 pass, the 601st is a 400."""
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(png(10, 10))}}
    text = {"type": "text", "text": "What are these?"}
    count = client.messages.count_tokens(
        model="claude-sonnet-4-6", messages=[{"role": "user", "content": [image] * 600 + [text]}]
    )
    assert count.input_tokens > 600
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.count_tokens(
            model="claude-sonnet-4-6", messages=[{"role": "user", "content": [image] * 601 + [text]}]
        )
    assert "too many images: 601 > 600" in caught.value.api_message
