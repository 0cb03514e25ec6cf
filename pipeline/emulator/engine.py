"""The emulator's deterministic "model": content as a pure function of the request and the seed.

It emulates the contract, not intelligence. Structured-output requests get JSON that validates
against their schema, built from the document itself: enum values are chosen by the overlap of the
document's words with each value's name and description, strings are extractive (sentences of the
document, cut to the length the prompt asks for), dates, amounts, e-mail addresses are found in the
text when present. Plain requests get an extractive summary. `max_tokens` and `stop_sequences` are
honoured exactly as the API does (truncation gives `stop_reason: "max_tokens"`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..models import ModelSpec
from .tokens import count_text_tokens

__all__ = ["Generation", "document_text", "generate", "stable_hash"]

WORD_RE = re.compile(r"[a-zA-ZÀ-ÿ]{3,}")
SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+|\n{2,}|\n(?=[-*#\d])")
NUMBER_RE = re.compile(r"(?<![\w.])(\d{1,3}(?:[,\s]\d{3})+|\d+)(?:\.(\d+))?(?![\w])")
ISO_DATE_RE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
WRITTEN_DATE_RE = re.compile(
    r"\b(\d{1,2})\s+(January|February|March|April|May|June|July|August|September|October|November|December)"
    r"\s+(\d{4})\b|\b(January|February|March|April|May|June|July|August|September|October|November|December)"
    r"\s+(\d{1,2}),?\s+(\d{4})\b"
)
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
URL_RE = re.compile(r"https?://[^\s)\"'<>]+")
LENGTH_RE = re.compile(r"(\d+)\s*(words?|sentences?)", re.IGNORECASE)
ITEMS_RE = re.compile(r"(\d+)\s*items?\b", re.IGNORECASE)
MONTHS = {
    name: index
    for index, name in enumerate(
        [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ],
        start=1,
    )
}
STOPWORDS = frozenset(
    [
        "the",
        "and",
        "for",
        "with",
        "that",
        "this",
        "from",
        "are",
        "was",
        "were",
        "will",
        "have",
        "has",
        "had",
        "not",
        "but",
        "any",
        "all",
        "can",
        "our",
        "your",
        "their",
        "they",
        "them",
        "you",
        "one",
        "two",
        "its",
        "per",
        "into",
        "out",
        "about",
        "over",
        "under",
        "more",
        "most",
        "such",
        "than",
        "then",
        "there",
        "these",
        "those",
        "which",
        "who",
        "whom",
        "what",
        "when",
        "where",
        "why",
        "how",
        "also",
        "each",
        "other",
        "some",
        "only",
        "own",
        "same",
        "very",
        "just",
        "should",
        "would",
        "could",
        "may",
        "might",
        "must",
        "shall",
        "been",
        "being",
        "does",
        "did",
        "done",
        "use",
        "used",
        "using",
    ]
)
DEFAULT_STRING_WORDS = 12
DEFAULT_SUMMARY_WORDS = 40
DEFAULT_TEXT_SENTENCES = 3
DEFAULT_LIST_ITEMS = 3


def stable_hash(*parts: object) -> int:
    """A 64-bit hash of `parts` that is the same on every run and machine."""
    digest = hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _text_of(content: Any, *, skip_cached: bool) -> list[str]:
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    if isinstance(content, list):
        for block in content:
            if not isinstance(block, dict) or (skip_cached and block.get("cache_control")):
                continue
            if block.get("type") == "text":
                texts.append(str(block.get("text", "")))
            elif block.get("type") == "document":
                source = block.get("source") or {}
                if source.get("type") == "text":
                    texts.append(str(source.get("data", "")))
                elif source.get("type") == "content" and isinstance(source.get("content"), str):
                    texts.append(source["content"])
    return texts


# A line that is nothing but an XML-style tag (`<document id="7">`, `</document>`): markup that fences
# a document in the prompt, never words of it, so never part of an answer drawn from it.
_TAG_LINE_RE = re.compile(r"^[ \t]*</?[A-Za-z][\w.-]*(?:\s[^<>]*)?>[ \t]*$", re.MULTILINE)


def document_text(body: dict[str, Any]) -> str:
    """The text the request is about: the last user turn, without its cached (shared) blocks or fence tags."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            texts = _text_of(message.get("content"), skip_cached=True)
            if not any(t.strip() for t in texts):
                texts = _text_of(message.get("content"), skip_cached=False)
            return _TAG_LINE_RE.sub("", "\n\n".join(texts)).strip("\n")
    return ""


def instructions_text(body: dict[str, Any]) -> str:
    """Everything the request says that is not the document: system and cached user blocks."""
    system = body.get("system")
    parts = [system] if isinstance(system, str) else _text_of(system, skip_cached=False)
    for message in body.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                parts += [
                    str(b.get("text", ""))
                    for b in content
                    if isinstance(b, dict) and b.get("cache_control") and b.get("type") == "text"
                ]
    return "\n".join(parts)


STEM_CHARS = 5  # a keyword longer than this also counts words sharing its first STEM_CHARS letters


@dataclass(frozen=True)
class _Doc:
    text: str
    sentences: tuple[str, ...]
    words: Counter[str] = field(compare=False)
    stems: Counter[str] = field(compare=False)  # words counted by their first STEM_CHARS letters


@lru_cache(maxsize=256)
def _analyse(text: str) -> _Doc:
    sentences = []
    for raw in SENTENCE_SPLIT_RE.split(text):
        sentence = " ".join(raw.split())
        if len(sentence.split()) >= 4 and any(c.isalpha() for c in sentence):
            sentences.append(sentence)
    if not sentences and text.strip():
        sentences = [" ".join(text.split())]
    words = Counter(w.lower() for w in WORD_RE.findall(text))
    stems: Counter[str] = Counter()
    for word, count in words.items():
        if len(word) >= STEM_CHARS:
            stems[word[:STEM_CHARS]] += count
    return _Doc(text, tuple(sentences), words, stems)


def _keywords(text: str) -> set[str]:
    return {w.lower() for w in WORD_RE.findall(text.replace("_", " ").replace("-", " "))} - STOPWORDS


def _stem_hits(doc: _Doc, keywords: set[str]) -> float:
    score = 0.0
    for keyword in keywords:
        hits = doc.words.get(keyword, 0)
        if not hits and len(keyword) > STEM_CHARS:
            hits = doc.stems.get(keyword[:STEM_CHARS], 0)
        score += min(hits, 5)
    return score


def _enum_descriptions(schema: dict[str, Any], values: list[Any]) -> dict[Any, str]:
    """Per-value descriptions: from `anyOf` consts, or `value: text` lines in the description."""
    names = tuple(value for value in values if isinstance(value, str))
    return dict(_described_values(str(schema.get("description", "")), names))


@lru_cache(maxsize=256)
def _described_values(description: str, names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(name, text) for each `name: text` line of a description (a schema's enum is fixed per job: cached)."""
    found: dict[str, str] = {}
    for line in description.splitlines():
        line = line.strip().lstrip("-*• ").strip()
        for name in names:
            if re.match(rf"{re.escape(name)}\s*[:—–=-]", line):
                found[name] = re.split(r"[:—–=-]", line, maxsplit=1)[1]
    return tuple(found.items())


def _choose(values: list[Any], descriptions: dict[Any, str], doc: _Doc) -> tuple[Any, float]:
    """The value whose name and description best overlap the document, and a 0..1 margin."""
    scores = []
    for value in values:
        name_words = _keywords(str(value))
        desc_words = _keywords(descriptions.get(value, "")) - name_words
        raw = 3 * _stem_hits(doc, name_words) + _stem_hits(doc, desc_words)
        scores.append(raw / math.sqrt(1 + len(name_words) + len(desc_words)))
    best = max(range(len(values)), key=lambda i: (scores[i], -i))
    if scores[best] == 0:
        fallback = next((i for i, v in enumerate(values) if str(v).lower() in ("other", "unknown", "none")), None)
        if fallback is not None:
            return values[fallback], 0.3
    ranked = sorted(scores, reverse=True)
    margin = (ranked[0] - ranked[1]) / ranked[0] if len(ranked) > 1 and ranked[0] > 0 else 0.5
    return values[best], margin


def _length_limit(*texts: str, default_words: int) -> tuple[int, str]:
    for text in texts:
        match = LENGTH_RE.search(text or "")
        if match:
            unit = "sentences" if match.group(2).lower().startswith("sentence") else "words"
            return max(1, int(match.group(1))), unit
    return default_words, "words"


def _extract(doc: _Doc, limit: int, unit: str, *, focus: set[str] | None = None, skip: int = 0) -> str:
    sentences = list(doc.sentences)
    if focus:
        ranked = sorted(range(len(sentences)), key=lambda i: (-_stem_hits(_analyse(sentences[i]), focus), i))
        sentences = [sentences[i] for i in ranked]
    sentences = sentences[skip:] or sentences
    if not sentences:
        return ""
    if unit == "sentences":
        return " ".join(sentences[:limit])
    words: list[str] = []
    for sentence in sentences:
        words.extend(sentence.split())
        if len(words) >= limit:
            break
    text = " ".join(words[:limit])
    return text if len(words) <= limit else text.rstrip(",;:") + "…"


def _find_date(doc: _Doc) -> str | None:
    match = ISO_DATE_RE.search(doc.text)
    if match:
        return match.group(0)
    written = WRITTEN_DATE_RE.search(doc.text)
    if written:
        if written.group(1):
            day, month, year = int(written.group(1)), MONTHS[written.group(2)], int(written.group(3))
        else:
            month, day, year = MONTHS[written.group(4)], int(written.group(5)), int(written.group(6))
        return f"{year:04d}-{month:02d}-{min(day, 28):02d}"
    return None


def _find_number(doc: _Doc, salt: int) -> float | None:
    amounts = []
    for match in NUMBER_RE.finditer(doc.text):
        whole = re.sub(r"[,\s]", "", match.group(1))
        value = float(f"{whole}.{match.group(2)}") if match.group(2) else float(whole)
        if 1900 <= value <= 2100 and not match.group(2):
            continue  # most likely a year
        amounts.append(value)
    if not amounts:
        return None
    return max(amounts) if salt % 2 == 0 else amounts[0]


class _Filler:
    """Builds one JSON value per schema node from the document."""

    def __init__(self, doc: _Doc, instructions: str, root: dict[str, Any], seed: int) -> None:
        self.doc = doc
        self.instructions = instructions
        self.defs = root.get("$defs") or {}
        self.seed = seed
        self.last_margin = 0.5
        self.strings_used = 0

    def fill(self, schema: dict[str, Any], name: str) -> Any:
        if "$ref" in schema:
            return self.fill(self.defs[schema["$ref"].removeprefix("#/$defs/")], name)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            value, self.last_margin = _choose(
                list(schema["enum"]), _enum_descriptions(schema, schema["enum"]), self.doc
            )
            return value
        if "anyOf" in schema:
            variants = schema["anyOf"]
            consts = [v for v in variants if isinstance(v, dict) and "const" in v]
            if consts and len(consts) == len(variants):
                values = [v["const"] for v in consts]
                descriptions = {v["const"]: str(v.get("description", "")) for v in consts}
                value, self.last_margin = _choose(values, descriptions, self.doc)
                return value
            non_null = [v for v in variants if not (isinstance(v, dict) and v.get("type") == "null")]
            return self.fill(non_null[0] if non_null else variants[0], name)
        if "allOf" in schema:
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                merged.update(part)
            return self.fill(merged, name)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        description = str(schema.get("description", ""))
        if kind == "object":
            properties = schema.get("properties") or {}
            return {key: self.fill(sub, key) for key, sub in properties.items()}
        if kind == "array":
            return self._array(schema, name, description)
        if kind == "string":
            return self._string(schema, name, description)
        if kind in ("number", "integer"):
            return self._number(kind, name, description)
        if kind == "boolean":
            focus = _keywords(name + " " + description)
            return _stem_hits(self.doc, focus) >= 2
        return None

    def _array(self, schema: dict[str, Any], name: str, description: str) -> list[Any]:
        items = schema.get("items") or {"type": "string"}
        asked = ITEMS_RE.search(description)  # "At most 3 items." is how docpipe's jobs say it
        count = int(asked.group(1)) if asked else _length_limit(description, default_words=DEFAULT_LIST_ITEMS)[0]
        count = max(int(schema.get("minItems", 0)), min(count, 10))
        if items.get("type") == "string" and "enum" not in items and "format" not in items:
            limit, unit = _length_limit(str(items.get("description", "")), default_words=DEFAULT_STRING_WORDS + 8)
            sentences = self.doc.sentences[:count] or ("(empty document)",)
            return [_extract(_analyse(s), limit, unit) for s in sentences]
        return [self.fill(items, name) for _ in range(max(1, min(count, 2)))]

    def _string(self, schema: dict[str, Any], name: str, description: str) -> str:
        fmt = schema.get("format")
        focus = _keywords(name + " " + description)
        if fmt == "date" or (fmt is None and re.search(r"\bdate\b", name.replace("_", " "))):
            return _find_date(self.doc) or "2026-01-01"
        if fmt == "date-time":
            return (_find_date(self.doc) or "2026-01-01") + "T00:00:00Z"
        if fmt == "time":
            return "09:00:00"
        if fmt == "duration":
            return "P1Y"
        if fmt == "email":
            found = EMAIL_RE.search(self.doc.text)
            return found.group(0).rstrip(".") if found else "contact@example.com"
        if fmt == "uri":
            url = URL_RE.search(self.doc.text)
            return url.group(0).rstrip(".,") if url else "https://example.com/"
        if fmt == "uuid":
            return str(uuid.UUID(int=stable_hash(self.seed, self.doc.text, name) << 64 | stable_hash(name)))
        if fmt in ("ipv4", "hostname", "ipv6"):
            return {"ipv4": "192.0.2.1", "hostname": "host.example.com", "ipv6": "2001:db8::1"}[fmt]
        is_summary = "summary" in name.lower() or "summar" in description.lower()
        default = DEFAULT_SUMMARY_WORDS if is_summary else DEFAULT_STRING_WORDS
        instructions = self.instructions if is_summary else ""
        limit, unit = _length_limit(description, instructions, default_words=default)
        if not self.doc.sentences:
            return "The document contains no readable text."
        if is_summary:
            return _extract(self.doc, limit, unit)
        self.strings_used += 1
        return _extract(self.doc, limit, unit, focus=focus)

    def _number(self, kind: str, name: str, description: str) -> float | int:
        lowered = (name + " " + description).lower()
        if any(word in lowered for word in ("confidence", "probability", "likelihood", "score")):
            value = round(0.55 + 0.4 * self.last_margin, 2)
            return value if kind == "number" else round(value * 100)
        found = _find_number(self.doc, stable_hash(self.seed, name))
        if found is None:
            found = float(stable_hash(self.seed, self.doc.text[:200], name) % 100)
        return int(found) if kind == "integer" else round(found, 2)


@dataclass(frozen=True)
class Generation:
    """What the model "said": content blocks, stop reason and output token counts."""

    content: list[dict[str, Any]]
    stop_reason: str
    stop_sequence: str | None
    output_tokens: int
    thinking_tokens: int


def _structured_text(body: dict[str, Any], schema: dict[str, Any], seed: int) -> str:
    doc = _analyse(document_text(body))
    filler = _Filler(doc, instructions_text(body), schema, seed)
    return json.dumps(filler.fill(schema, "root"), ensure_ascii=False)


def _plain_text(body: dict[str, Any]) -> str:
    doc = _analyse(document_text(body))
    limit, unit = _length_limit(instructions_text(body), document_text(body)[:500], default_words=0)
    if limit == 0:
        limit, unit = DEFAULT_TEXT_SENTENCES, "sentences"
    text = _extract(doc, limit, unit)
    return text or "I received an empty message."


def _truncate(text: str, max_tokens: int) -> str:
    """The longest prefix of `text` that fits in `max_tokens` under the token approximation."""
    if count_text_tokens(text) <= max_tokens:
        return text
    low, high = 0, min(len(text), max_tokens * 4)
    while low < high:
        mid = (low + high + 1) // 2
        if count_text_tokens(text[:mid]) <= max_tokens:
            low = mid
        else:
            high = mid - 1
    return text[:low]


def generate(body: dict[str, Any], spec: ModelSpec, seed: int) -> Generation:
    """The response content for a validated Messages request."""
    max_tokens: int = body["max_tokens"]
    if max_tokens == 0:
        return Generation([], "max_tokens", None, 0, 0)
    config = body.get("output_config") or {}
    fmt = config.get("format") if isinstance(config, dict) else None
    text = _structured_text(body, fmt["schema"], seed) if isinstance(fmt, dict) else _plain_text(body)
    content: list[dict[str, Any]] = []
    budget = max_tokens
    thinking_tokens = 0
    thinking = body.get("thinking") or {}
    if spec.adaptive_thinking or thinking.get("type") in ("adaptive", "enabled"):
        words = len(document_text(body).split())
        thought = f"The request asks for a response about a document of about {words} words. I will answer from it."
        if thinking.get("display") == "omitted":
            thought = ""
        thinking_tokens = min(budget, count_text_tokens(thought) + 8)
        signature = hashlib.sha256(f"{seed}:{thought}".encode()).hexdigest()
        content.append({"type": "thinking", "thinking": thought, "signature": signature})
        budget -= thinking_tokens
    stop_reason, stop_sequence = "end_turn", None
    for sequence in body.get("stop_sequences") or []:
        position = text.find(sequence) if sequence else -1
        if position >= 0:
            text, stop_reason, stop_sequence = text[:position], "stop_sequence", sequence
    if count_text_tokens(text) > budget:
        text, stop_reason, stop_sequence = _truncate(text, budget), "max_tokens", None
    output_tokens = thinking_tokens + count_text_tokens(text)
    if text:
        content.append({"type": "text", "text": text, "citations": None})
    return Generation(content, stop_reason, stop_sequence, output_tokens, thinking_tokens)
