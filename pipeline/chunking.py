"""Cutting a document too long for one request into pieces that fit, on its natural boundaries.

Pure functions over text and numbers: no I/O. Text is cut, by preference, where a section starts
(a Markdown heading, a numbered clause such as `7.3 Liability`, `Article IV`, a page break), then
between paragraphs, then between lines, then between sentences; a single sentence longer than a
piece is cut at the size limit. Pieces are filled with whole sections; a section that does not
fit in what is left of a piece starts the next one, unless it is longer than a piece itself and
the current piece is less than `SECTION_FILL` full, in which case it fills the rest. Nothing is
lost or reordered: the pieces, joined in order, hold every character of the text that is not
whitespace at a cut.

A PDF sent natively is cut into page ranges (`page_ranges`): consecutive pages, each range within
the token budget and the API's page limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

__all__ = ["SECTION_FILL", "page_ranges", "split_text"]

SECTION_FILL = 0.6  # a piece this full ends before the next section starts, not inside it
PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n+")
SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")
SECTION_START = re.compile(
    r"^(?:#{1,6}\s|(?:section|article|clause|part|schedule|annex|appendix|chapter)\s+[\dIVXLC]+\b|\d+(?:\.\d+)*\.?\s+\S)",
    re.IGNORECASE,
)

Estimate = Callable[[str], int]


def split_text(text: str, max_tokens: int, estimate: Estimate) -> list[str]:
    """`text` in pieces of at most `max_tokens` each (by `estimate`), cut on its natural boundaries."""
    if max_tokens < 1:
        raise ValueError("a piece must hold at least one token")
    if estimate(text) <= max_tokens:
        return [text]
    sections: list[list[tuple[str, int]]] = []
    for block, new_page in _blocks(text):
        for number, unit in enumerate(_fitting(block, max_tokens, estimate)):
            if not sections or (number == 0 and (new_page or SECTION_START.match(unit.lstrip()))):
                sections.append([])
            sections[-1].append((unit, estimate(unit) + 1))  # + the paragraph break that joins it
    pieces: list[str] = []
    current: list[str] = []
    current_tokens = 0
    for section in sections:
        size = sum(tokens for _, tokens in section)
        # A section that does not fit in what is left starts a piece of its own when it fits one,
        # or when the piece is well filled already; a longer one fills the rest of a short piece.
        well_filled = current_tokens >= SECTION_FILL * max_tokens
        if current and current_tokens + size > max_tokens and (size <= max_tokens or well_filled):
            pieces.append("\n\n".join(current))
            current, current_tokens = [], 0
        for unit, tokens in section:
            if current and current_tokens + tokens > max_tokens:
                pieces.append("\n\n".join(current))
                current, current_tokens = [], 0
            current.append(unit)
            current_tokens += tokens
    if current:
        pieces.append("\n\n".join(current))
    return pieces


def _blocks(text: str) -> list[tuple[str, bool]]:
    """The paragraphs that hold text, each with whether it starts a page after the first."""
    blocks: list[tuple[str, bool]] = []
    for page_number, page in enumerate(text.split("\f")):
        paragraphs = [paragraph.strip("\n") for paragraph in PARAGRAPH_BREAK.split(page) if paragraph.strip()]
        blocks.extend((paragraph, page_number > 0 and index == 0) for index, paragraph in enumerate(paragraphs))
    return blocks


def _fitting(block: str, max_tokens: int, estimate: Estimate) -> list[str]:
    """The block as units of at most `max_tokens`: itself, or its lines, sentences, or cuts."""
    if estimate(block) < max_tokens:
        return [block]
    units: list[str] = []
    for line in block.split("\n"):
        if estimate(line) < max_tokens:
            units.append(line)
            continue
        for sentence in SENTENCE_END.split(line):
            units.extend([sentence] if estimate(sentence) < max_tokens else _cut(sentence, max_tokens, estimate))
    return _merge(units, max_tokens, estimate, joiner="\n")


def _merge(units: Sequence[str], max_tokens: int, estimate: Estimate, *, joiner: str) -> list[str]:
    """Consecutive units joined back while they fit: a paragraph is cut into as few units as it must."""
    merged: list[str] = []
    current: list[str] = []
    current_tokens = 0
    for unit in units:
        tokens = estimate(unit) + 1
        if current and current_tokens + tokens >= max_tokens:
            merged.append(joiner.join(current))
            current, current_tokens = [], 0
        current.append(unit)
        current_tokens += tokens
    if current:
        merged.append(joiner.join(current))
    return [unit for unit in merged if unit.strip()]


def _cut(text: str, max_tokens: int, estimate: Estimate) -> list[str]:
    """A run of text with no boundary in it, cut into parts under `max_tokens` (at a space where one is near)."""
    parts: list[str] = []
    rest = text
    while estimate(rest) >= max_tokens:
        low, high = 1, len(rest)
        while low < high:  # the longest prefix under the budget
            middle = (low + high + 1) // 2
            if estimate(rest[:middle]) < max_tokens:
                low = middle
            else:
                high = middle - 1
        space = rest.rfind(" ", low // 2, low)
        cut = space + 1 if space > 0 else low
        parts.append(rest[:cut])
        rest = rest[cut:]
    if rest:
        parts.append(rest)
    return parts


def page_ranges(page_tokens: Sequence[int], max_tokens: int, *, max_pages: int) -> list[range]:
    """Consecutive page ranges (0-based) of at most `max_tokens` and `max_pages` each.

    A page over `max_tokens` on its own still makes a range of one page: a request cannot send less.
    """
    ranges: list[range] = []
    start = 0
    tokens = 0
    for index, page in enumerate(page_tokens):
        if index > start and (tokens + page > max_tokens or index - start >= max_pages):
            ranges.append(range(start, index))
            start, tokens = index, 0
        tokens += page
    if page_tokens:
        ranges.append(range(start, len(page_tokens)))
    return ranges
