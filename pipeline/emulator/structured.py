"""Answers to structured-output requests: JSON that validates against the request's schema.

The value of every schema node is built from the document (see `document.py`): an enum value is the
one whose name and description best overlap the document's words; a string is extractive (the
document's sentences about the field, cut to the length the description or the prompt asks for);
dates, amounts, e-mail addresses and URLs are found in the text when present, and a fixed,
plausible value otherwise. A confidence is higher when the last enum choice won by a wider margin.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .document import (
    EMAIL_RE,
    STEM_CHARS,
    URL_RE,
    Doc,
    analyse,
    extract,
    find_date,
    find_number,
    instructions_text,
    keywords,
    length_limit,
    one_sentence,
    stem_hits,
)
from .hashing import stable_hash
from .schemas import local_defs

__all__ = ["structured_text"]

ITEMS_RE = re.compile(r"(\d+)\s*items?\b", re.IGNORECASE)
DEFAULT_STRING_WORDS = 12
DEFAULT_SUMMARY_WORDS = 40
DEFAULT_LIST_ITEMS = 3
ENUM_CACHE_SIZE = 256
# Values one answer gets before its arrays shrink to `minItems` and its objects to their required properties:
# nested arrays would otherwise multiply (two items per level), so the answer stays linear in the schema's size.
VALUE_BUDGET = 500


def structured_text(body: dict[str, Any], document: str, schema: dict[str, Any], seed: int) -> str:
    """The JSON text of a value for `schema`, drawn from the request's document (`document_text(body)`)."""
    doc = analyse(document)
    filler = _Filler(doc, instructions_text(body), schema, seed)
    return json.dumps(filler.fill(schema, "root"), ensure_ascii=False)


def _is_primitive(value: Any) -> bool:
    """A string, number, boolean or null: a value that can name a choice (and key a dict)."""
    return value is None or isinstance(value, str | int | float | bool)


def _enum_descriptions(schema: dict[str, Any], values: list[Any]) -> dict[Any, str]:
    """Per-value descriptions: from `anyOf` consts, or `value: text` lines in the description."""
    names = tuple(value for value in values if isinstance(value, str))
    return dict(_described_values(str(schema.get("description", "")), names))


@lru_cache(maxsize=ENUM_CACHE_SIZE)
def _described_values(description: str, names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(name, text) for each `name: text` line of a description (a schema's enum is fixed per job: cached).

    A line describes each name it starts with that is followed (after any spaces) by one of
    `:—–=-`; its text is what follows the line's first such character. Names are looked up by the
    line's prefixes of their lengths, so a taxonomy of thousands of values costs one pass over the
    lines, not a pattern per value and line.
    """
    order = {name: index for index, name in reversed(list(enumerate(names)))}
    lengths = sorted({len(name) for name in names})
    found: dict[str, str] = {}
    for line in description.splitlines():
        line = line.strip().lstrip("-*• ").strip()
        starts = [line[:size] for size in lengths if size <= len(line) and line[:size] in order]
        for name in sorted(starts, key=order.__getitem__):
            if line[len(name) :].lstrip()[:1] in _SEPARATORS:
                found[name] = _SEPARATOR_RE.split(line, maxsplit=1)[1]
    return tuple(found.items())


_SEPARATORS = frozenset(":—–=-")
_SEPARATOR_RE = re.compile(r"[:—–=-]")


def _choose(values: list[Any], descriptions: dict[Any, str], doc: Doc) -> tuple[Any, float]:
    """The value whose name and description best overlap the document, and a 0..1 margin.

    A value scores 3 hits per use of a name keyword and 1 per description keyword (five uses at most
    per keyword, a stem standing in for a long word, as `stem_hits` counts), over the square root of
    its keyword count. Each keyword of the enum is looked up in the document once, whichever values
    share it.
    """
    names = tuple(str(value) for value in values)  # the key is the names: `True` and `1` are equal, not alike
    if all(map(_is_primitive, values)):
        plan = _choice_plan(names, tuple(descriptions.get(value, "") for value in values))
    else:  # object consts (in `anyOf`): not keys of `descriptions`
        plan = _plan(list(names), [descriptions.get(value, "") for value in values])
    raw = [0] * len(values)
    words = doc.words
    found = plan.keywords & words.keys()  # the set operations run in C; the loops below only over hits
    for keyword in found:
        _score(raw, plan.targets[keyword], words[keyword])
    if plan.stems:
        stems = doc.stems
        for stem in plan.stems & stems.keys():  # a stem stands in for a long keyword the text lacks
            for keyword in plan.by_stem[stem]:
                if keyword not in found:
                    _score(raw, plan.targets[keyword], stems[stem])
    scores = [points / norm for points, norm in zip(raw, plan.norms, strict=True)]
    best = max(range(len(values)), key=lambda i: (scores[i], -i))
    if scores[best] == 0:
        fallback = next((i for i, v in enumerate(values) if str(v).lower() in ("other", "unknown", "none")), None)
        if fallback is not None:
            return values[fallback], 0.3
    ranked = sorted(scores, reverse=True)
    margin = (ranked[0] - ranked[1]) / ranked[0] if len(ranked) > 1 and ranked[0] > 0 else 0.5
    return values[best], margin


def _score(raw: list[int], targets: tuple[tuple[int, int], ...], hits: int) -> None:
    for index, weight in targets:
        raw[index] += weight * (hits if hits < 5 else 5)


@dataclass(frozen=True, slots=True)
class _Plan:
    """An enum's keywords, which values each scores for (3 for a name word, 1 for a description word
    not in the name), the stems that stand in for its long keywords, and each value's norm."""

    targets: dict[str, tuple[tuple[int, int], ...]]
    keywords: frozenset[str]
    by_stem: dict[str, tuple[str, ...]]
    stems: frozenset[str]
    norms: tuple[float, ...]


@lru_cache(maxsize=ENUM_CACHE_SIZE)
def _choice_plan(names: tuple[str, ...], descriptions: tuple[str, ...]) -> _Plan:
    """`_plan` of an enum of primitive values, by their names (a job's enum is the same in every request:
    cached)."""
    return _plan(list(names), list(descriptions))


def _plan(names: list[str], descriptions: list[str]) -> _Plan:
    targets: dict[str, list[tuple[int, int]]] = {}
    norms = []
    for index, (name, description) in enumerate(zip(names, descriptions, strict=True)):
        name_words = keywords(name)
        desc_words = keywords(description) - name_words
        for keyword in name_words:
            targets.setdefault(keyword, []).append((index, 3))
        for keyword in desc_words:
            targets.setdefault(keyword, []).append((index, 1))
        norms.append(math.sqrt(1 + len(name_words) + len(desc_words)))
    by_stem: dict[str, list[str]] = {}
    for keyword in targets:
        if len(keyword) > STEM_CHARS:
            by_stem.setdefault(keyword[:STEM_CHARS], []).append(keyword)
    return _Plan(
        targets={keyword: tuple(pairs) for keyword, pairs in targets.items()},
        keywords=frozenset(targets),
        by_stem={stem: tuple(words) for stem, words in by_stem.items()},
        stems=frozenset(by_stem),
        norms=tuple(norms),
    )


class _Filler:
    """Builds one JSON value per schema node from the document."""

    def __init__(self, doc: Doc, instructions: str, root: dict[str, Any], seed: int) -> None:
        self.doc = doc
        self.instructions = instructions
        self.defs = local_defs(root)  # validation has refused recursive, external and unresolvable refs
        self.seed = seed
        self.last_margin = 0.5
        self.strings_used = 0
        self.budget = VALUE_BUDGET

    def fill(self, schema: dict[str, Any], name: str) -> Any:
        self.budget -= 1
        if "$ref" in schema:
            return self.fill(self.defs[schema["$ref"]], name)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            value, self.last_margin = _choose(
                list(schema["enum"]), _enum_descriptions(schema, schema["enum"]), self.doc
            )
            return value
        if "anyOf" in schema:
            variants = schema["anyOf"]
            consts = [v for v in variants if isinstance(v, dict) and _is_primitive(v.get("const", ()))]
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
            required = schema.get("required") or ()
            return {key: self.fill(sub, key) for key, sub in properties.items() if self.budget > 0 or key in required}
        if kind == "array":
            return self._array(schema, name, description)
        if kind == "string":
            return self._string(schema, name, description)
        if kind in ("number", "integer"):
            return self._number(kind, name, description)
        if kind == "boolean":
            focus = keywords(name + " " + description)
            return stem_hits(self.doc, focus) >= 2
        return None

    def _array(self, schema: dict[str, Any], name: str, description: str) -> list[Any]:
        items = schema.get("items") or {"type": "string"}
        asked = ITEMS_RE.search(description)  # "At most 3 items." is how docpipe's jobs say it
        count = int(asked.group(1)) if asked else length_limit(description, default_words=DEFAULT_LIST_ITEMS)[0]
        count = max(int(schema.get("minItems", 0)), min(count, 10) if self.budget > 0 else 0)
        if items.get("type") == "string" and "enum" not in items and "format" not in items:
            limit, unit = length_limit(str(items.get("description", "")), default_words=DEFAULT_STRING_WORDS + 8)
            sentences = self.doc.sentences[:count] or ("(empty document)",)
            return [extract(one_sentence(self.doc, s), limit, unit) for s in sentences]
        return [self.fill(items, name) for _ in range(min(count, 2) if self.budget <= 0 else max(1, min(count, 2)))]

    def _string(self, schema: dict[str, Any], name: str, description: str) -> str:
        fmt = schema.get("format")
        focus = keywords(name + " " + description)
        if fmt == "date" or (fmt is None and re.search(r"\bdate\b", name.replace("_", " "))):
            return find_date(self.doc) or "2026-01-01"
        if fmt == "date-time":
            return (find_date(self.doc) or "2026-01-01") + "T00:00:00Z"
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
        limit, unit = length_limit(description, instructions, default_words=default)
        if not self.doc.sentences:
            return "The document contains no readable text."
        if is_summary:
            return extract(self.doc, limit, unit)
        self.strings_used += 1
        return extract(self.doc, limit, unit, focus=focus)

    def _number(self, kind: str, name: str, description: str) -> float | int:
        lowered = (name + " " + description).lower()
        if any(word in lowered for word in ("confidence", "probability", "likelihood", "score")):
            value = round(0.55 + 0.4 * self.last_margin, 2)
            return value if kind == "number" else round(value * 100)
        found = find_number(self.doc, stable_hash(self.seed, name))
        if found is None:
            found = float(stable_hash(self.seed, self.doc.text[:200], name) % 100)
        return int(found) if kind == "integer" else round(found, 2)
