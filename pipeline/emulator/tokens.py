"""The emulator's one token approximation.

Real tokenizers are model-specific; the emulator needs only a count that is deterministic, cheap and
consistent everywhere it is used (usage, count_tokens, rate limits, caching, max_tokens
truncation). It charges one token per started four bytes of UTF-8, a fixed overhead per message and
per content block, and counts JSON-serialised structures (schemas, tools) by the same rule. A PDF
costs, per page, its extracted text by that rule plus a fixed page image (`pdf_tokens`).
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from .canonical import canonical_json
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
    blob = {k: v for k, v in block.items() if k != "cache_control"}
    return count_text_tokens(json.dumps(blob, sort_keys=True)) + BLOCK_OVERHEAD_TOKENS


class PromptPart(NamedTuple):
    """One block of the rendered prompt: its tokens, its cache marker, and the block itself."""

    tokens: int
    cache_control: dict[str, Any] | None
    block: Any


def render_prefix_parts(body: dict[str, Any]) -> list[PromptPart]:
    """The prompt in render order (tools, system, messages), one part per block.

    Prompt caching works on prefixes of exactly this sequence: a block carrying `cache_control`
    closes a cacheable prefix made of itself and everything before it.
    """
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
