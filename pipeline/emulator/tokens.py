"""The emulator's one token approximation.

Real tokenizers are model-specific; the emulator needs only a count that is deterministic, cheap and
consistent everywhere it is used (usage, count_tokens, rate limits, caching, max_tokens
truncation). It charges one token per started four bytes of UTF-8, a fixed overhead per message and
per content block, and counts JSON-serialised structures (schemas, tools) by the same rule. A PDF
costs, per page, its extracted text by that rule plus a fixed page image (`pdf_tokens`).
"""

from __future__ import annotations

import json
import math
from typing import Any, NamedTuple

from .canonical import canonical_json, remembered
from .images import read_base64_image
from .pdf import PdfError, read_base64_pdf

__all__ = ["PromptPart", "count_request_tokens", "count_text_tokens", "pdf_tokens", "render_prefix_parts"]

MESSAGE_OVERHEAD_TOKENS = 3
BLOCK_OVERHEAD_TOKENS = 1
REQUEST_OVERHEAD_TOKENS = 4
# A PDF page is sent as an image too, and an image is scaled down until it costs about 1,600 tokens
# at most (https://platform.claude.com/docs/en/build-with-claude/vision, "Evaluate image size"); a
# page image is billed at that ceiling, so a page of 500 words (about 750 tokens of text here)
# costs about 2,350, within the pdf-support docs' estimate of 1,500-3,000 tokens per page.
PDF_PAGE_IMAGE_TOKENS = 1_600
IMAGE_MAX_EDGE_PX = 1_568  # longer images are scaled down before they are billed (vision docs)
PIXELS_PER_IMAGE_TOKEN = 750


def count_text_tokens(text: str) -> int:
    """Tokens of a piece of text: one per started four bytes of UTF-8."""
    if not text:
        return 0
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    return (size + 3) // 4


def pdf_tokens(data: str) -> int:
    """Tokens of a base64 PDF: each page's extracted text by the rule above, plus one page image.

    A PDF the API would refuse (validation turns it away before anything is billed) is counted by
    its decoded size, so counting never fails.
    """
    try:
        pages = read_base64_pdf(data)
    except PdfError:
        return (len(data) * 3 // 4 + 3) // 4
    return sum(count_text_tokens(text) + PDF_PAGE_IMAGE_TOKENS for text in pages.page_texts)


def _block_tokens(block: Any) -> int:
    if isinstance(block, str):
        return count_text_tokens(block) + BLOCK_OVERHEAD_TOKENS
    if not isinstance(block, dict):
        return BLOCK_OVERHEAD_TOKENS
    kind = block.get("type")
    if kind == "text":
        return count_text_tokens(str(block.get("text", ""))) + BLOCK_OVERHEAD_TOKENS
    if kind == "document":
        source = block.get("source") or {}
        data = source.get("data") if isinstance(source, dict) else None
        if isinstance(data, str):
            if source.get("type") == "base64":
                return pdf_tokens(data) + BLOCK_OVERHEAD_TOKENS
            return count_text_tokens(data) + BLOCK_OVERHEAD_TOKENS
        return count_text_tokens(json.dumps(source, sort_keys=True)) + BLOCK_OVERHEAD_TOKENS
    if kind == "image":
        source = block.get("source") or {}
        data = source.get("data") if isinstance(source, dict) and source.get("type") == "base64" else None
        if isinstance(data, str):
            return image_tokens(data) + BLOCK_OVERHEAD_TOKENS
    blob = {k: v for k, v in block.items() if k != "cache_control"}
    return count_text_tokens(json.dumps(blob, sort_keys=True)) + BLOCK_OVERHEAD_TOKENS


def image_tokens(data: str) -> int:
    """Tokens of a base64 image, by its pixels as the vision docs bill them: `width * height / 750`,
    after scaling the long edge down to IMAGE_MAX_EDGE_PX, and never over PDF_PAGE_IMAGE_TOKENS
    (https://platform.claude.com/docs/en/build-with-claude/vision, "Evaluate image size"). An image
    whose size cannot be read (a cut header, data that is not base64) costs the ceiling.
    """
    read = read_base64_image(data)
    size = read[1] if read is not None else None
    if size is None:
        return PDF_PAGE_IMAGE_TOKENS
    width, height = size
    scale = min(1.0, IMAGE_MAX_EDGE_PX / max(width, height, 1))
    return min(PDF_PAGE_IMAGE_TOKENS, max(1, math.ceil(width * scale * height * scale / PIXELS_PER_IMAGE_TOKEN)))


class PromptPart(NamedTuple):
    """One block of the rendered prompt: its tokens, its cache marker, and the block itself."""

    tokens: int
    cache_control: dict[str, Any] | None
    block: Any


def render_prefix_parts(body: dict[str, Any]) -> list[PromptPart]:
    """The prompt in render order (tools, system, messages), one part per block (read-only: shared).

    Prompt caching works on prefixes of exactly this sequence: a block carrying `cache_control`
    closes a cacheable prefix made of itself and everything before it. Rendered once per request
    (validation's token count and prompt caching both read it).
    """
    return remembered("parts", body, _render_prefix_parts)


def _render_prefix_parts(body: dict[str, Any]) -> list[PromptPart]:
    parts = [PromptPart(REQUEST_OVERHEAD_TOKENS, None, body.get("model"))]
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            blob = {k: v for k, v in tool.items() if k != "cache_control"}
            parts.append(
                PromptPart(count_text_tokens(json.dumps(blob, sort_keys=True)), tool.get("cache_control"), blob)
            )
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if isinstance(fmt, dict):
        parts.append(PromptPart(count_text_tokens(canonical_json(fmt)), None, fmt))
    system = body.get("system")
    if isinstance(system, str):
        parts.append(PromptPart(count_text_tokens(system), None, system))
    elif isinstance(system, list):
        for block in system:
            cc = block.get("cache_control") if isinstance(block, dict) else None
            parts.append(PromptPart(_block_tokens(block), cc, block))
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        parts.append(PromptPart(MESSAGE_OVERHEAD_TOKENS, None, message.get("role")))
        content = message.get("content")
        if isinstance(content, str):
            parts.append(PromptPart(count_text_tokens(content) + BLOCK_OVERHEAD_TOKENS, None, content))
        elif isinstance(content, list):
            for block in content:
                cc = block.get("cache_control") if isinstance(block, dict) else None
                parts.append(PromptPart(_block_tokens(block), cc, block))
    return parts


def count_request_tokens(body: dict[str, Any]) -> int:
    """Total input tokens of a Messages request (what count_tokens answers)."""
    return sum(part.tokens for part in render_prefix_parts(body))
