"""What the emulator's model reads in a request: the document, the instructions, and their words.

A request's document is the text of its last user turn (a PDF's extracted text included), without
the blocks it shares with other requests (those carry `cache_control`) and without the tags that
fence it in the prompt. Everything an answer says is drawn from it: sentences for extractive
strings and summaries, words and their stems for choosing enum values, dates, amounts, e-mail
addresses and URLs where the text has them.

`analyse` is cached: it is a pure function of the text, and the cached value is read-only, so the
same text gives the same analysis in every request and every emulator of the process.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Set
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from .pdf import PdfError, read_base64_pdf

__all__ = [
    "Doc",
    "analyse",
    "document_text",
    "extract",
    "find_date",
    "find_number",
    "instructions_text",
    "keywords",
    "length_limit",
    "one_sentence",
    "stem_hits",
]

WORD_RE = re.compile(r"[a-zA-ZÀ-ÿ]{3,}")
# Every split starts on a space character; saying so first lets the engine skip to the next one
# instead of trying the look-behind at every position (the same splits, in about half the time).
SENTENCE_SPLIT_RE = re.compile(r"(?=\s)(?:(?<=[.!?])\s+|\n{2,}|\n(?=[-*#\d]))")
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
MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
MONTHS: Mapping[str, int] = MappingProxyType({name: index for index, name in enumerate(MONTH_NAMES, start=1)})
STOPWORDS = frozenset(
    {
        "the", "and", "for", "with", "that", "this", "from", "are", "was", "were", "will", "have", "has", "had",
        "not", "but", "any", "all", "can", "our", "your", "their", "they", "them", "you", "one", "two", "its",
        "per", "into", "out", "about", "over", "under", "more", "most", "such", "than", "then", "there", "these",
        "those", "which", "who", "whom", "what", "when", "where", "why", "how", "also", "each", "other", "some",
        "only", "own", "same", "very", "just", "should", "would", "could", "may", "might", "must", "shall",
        "been", "being", "does", "did", "done", "use", "used", "using",
    }
)  # fmt: skip
STEM_CHARS = 5  # a keyword longer than this also counts words sharing its first STEM_CHARS letters
ANALYSIS_CACHE_SIZE = 256
ANALYSIS_CACHE_MAX_CHARS = 64 * 1024  # 256 texts of at most 64 K characters: 16 M characters at most
KEYWORDS_CACHE_SIZE = 1024
_ASCII_LETTER_RE = re.compile(r"[A-Za-z]")
# A line that is nothing but an XML-style tag (`<document id="7">`, `</document>`): markup that fences
# a document in the prompt, never words of it, so never part of an answer drawn from it.
_TAG_LINE_RE = re.compile(r"^[ \t]*</?[A-Za-z][\w.-]*(?:\s[^<>]*)?>[ \t]*$", re.MULTILINE)


def _pdf_text(data: str) -> str:
    """The extracted text of a base64 PDF (parsed once per content, see `pdf.py`), or none."""
    try:
        return read_base64_pdf(data).text
    except PdfError:
        return ""


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
                elif source.get("type") == "base64" and isinstance(source.get("data"), str):
                    texts.append(_pdf_text(source["data"]))
                elif source.get("type") == "content" and isinstance(source.get("content"), str):
                    texts.append(source["content"])
    return texts


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


class Doc:
    """A text read once: its sentences, and (when first asked for) its words counted whole and by stem.

    Shared through `analyse`'s cache, so read-only: the counts are built once, on first use, because
    most answers need only the sentences of most texts they analyse.
    """

    __slots__ = ("_stems", "_words", "sentences", "split", "text")

    def __init__(self, text: str, sentences: tuple[str, ...], *, split: bool = True) -> None:
        self.text = text
        self.sentences = sentences
        self.split = split  # False when no piece of the text read as a sentence and the whole is taken
        self._words: Mapping[str, int] | None = None
        self._stems: Mapping[str, int] | None = None

    @property
    def words(self) -> Mapping[str, int]:
        """The text's words of three letters or more, lower-cased, with their counts."""
        if self._words is None:
            text = self.text
            if text.isascii():  # lower-casing first finds the same words: ASCII case keeps letters letters
                found = WORD_RE.findall(text.lower())
            else:
                found = [word.lower() for word in WORD_RE.findall(text)]
            self._words = MappingProxyType(Counter(found))
        return self._words

    @property
    def stems(self) -> Mapping[str, int]:
        """The words counted by their first STEM_CHARS letters (words shorter than that left out)."""
        if self._stems is None:
            stems: Counter[str] = Counter()
            for word, count in self.words.items():
                if len(word) >= STEM_CHARS:
                    stems[word[:STEM_CHARS]] += count
            self._stems = MappingProxyType(stems)
        return self._stems


def analyse(text: str) -> Doc:
    """The sentences of `text`, and its word counts on demand (pure, so cached; the result is shared and read-only).

    Only texts up to ANALYSIS_CACHE_MAX_CHARS are cached: the cache holds each text with its
    analysis, and a few hundred documents of megabytes each would hold gigabytes.
    """
    return _analyse_cached(text) if len(text) <= ANALYSIS_CACHE_MAX_CHARS else _analyse(text)


@lru_cache(maxsize=ANALYSIS_CACHE_SIZE)
def _analyse_cached(text: str) -> Doc:
    return _analyse(text)


def _analyse(text: str) -> Doc:
    sentences = []
    for raw in SENTENCE_SPLIT_RE.split(text):
        words = raw.split()
        if len(words) >= 4:
            sentence = " ".join(words)
            if _ASCII_LETTER_RE.search(sentence) if sentence.isascii() else any(c.isalpha() for c in sentence):
                sentences.append(sentence)
    if not sentences and text.strip():
        return Doc(text, (" ".join(text.split()),), split=False)
    return Doc(text, tuple(sentences))


def one_sentence(doc: Doc, sentence: str) -> Doc:
    """`analyse(sentence)` for one of `doc`'s sentences, without reading it again where that is known: a
    sentence split from its text has its whitespace collapsed and nothing in it splits further, so its
    analysis is the sentence alone. (The whole text taken as one sentence may split: read it.)"""
    return Doc(sentence, (sentence,)) if doc.split else analyse(sentence)


@lru_cache(maxsize=KEYWORDS_CACHE_SIZE)
def keywords(text: str) -> frozenset[str]:
    """The words of a name or description that can say what a value is about (no stopwords).

    Names and descriptions come from a job's schema, the same in every request: cached.
    """
    return frozenset({w.lower() for w in WORD_RE.findall(text.replace("_", " ").replace("-", " "))} - STOPWORDS)


def stem_hits(doc: Doc, focus: Set[str]) -> float:
    """How often the document uses the keywords (a stem stands in for a long word), five at most each."""
    words, stems = doc.words, None
    score = 0.0
    for keyword, stem in _lookups(focus if isinstance(focus, frozenset) else frozenset(focus)):
        hits = words.get(keyword, 0)
        if not hits and stem is not None:
            if stems is None:
                stems = doc.stems
            hits = stems.get(stem, 0)
        score += hits if hits < 5 else 5
    return score


@lru_cache(maxsize=KEYWORDS_CACHE_SIZE)
def _lookups(focus: frozenset[str]) -> tuple[tuple[str, str | None], ...]:
    """Each keyword with the stem that stands in for it (a keyword longer than STEM_CHARS), once per keyword set."""
    return tuple((keyword, keyword[:STEM_CHARS] if len(keyword) > STEM_CHARS else None) for keyword in focus)


def length_limit(*texts: str, default_words: int) -> tuple[int, str]:
    """The first "N words" or "N sentences" the texts ask for, or `default_words` words."""
    for text in texts:
        match = LENGTH_RE.search(text or "")
        if match:
            unit = "sentences" if match.group(2).lower().startswith("sentence") else "words"
            return max(1, int(match.group(1))), unit
    return default_words, "words"


def extract(doc: Doc, limit: int, unit: str, *, focus: Set[str] | None = None, skip: int = 0) -> str:
    """The document's first `limit` words or sentences; with `focus`, its sentences about those words first."""
    sentences = list(doc.sentences)
    if focus:
        ranked = sorted(range(len(sentences)), key=lambda i: (-stem_hits(analyse(sentences[i]), focus), i))
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


def find_date(doc: Doc) -> str | None:
    """The document's first ISO or written date, as an ISO date (days past the 28th become the 28th)."""
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


def find_number(doc: Doc, salt: int) -> float | None:
    """An amount from the document (its largest or its first, by `salt`), years left out."""
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
