"""Scoring answers: a job's rows against expected values (`evaluate`), or one output against another (`compare`).

Pure functions over plain data: the caller reads the truth file and the outputs (`evaluation_io.py`)
and hands over, per document, a mapping of field name to value, already converted the way a row
stores it (`Field.convert`). What a field is scored by depends on its type:

    enum, boolean     accuracy and macro F1; a confusion matrix; precision, recall and F1 per value
    string            exact match, and match after folding case, whitespace and punctuation
    date              exact match
    number, integer   mean absolute error; the share within a relative tolerance (10 % by default)
    list              mean Jaccard overlap of the normalised items; item precision and recall

An expected value of None means "not labelled": the document is not scored on that field. An
answer of None (an optional field left empty) is scored as a miss: the label `null` in a confusion
matrix, no match, outside any tolerance, an empty list.

`compare` scores output B against output A as if A were the truth, over the documents both have
answered, and sets side by side what each cost and how long it took.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .fields import Field
from .summary import percentile, unpriced

__all__ = [
    "DEFAULT_TOLERANCE",
    "Comparison",
    "Disagreement",
    "Evaluation",
    "FieldScore",
    "SideStats",
    "ValueScore",
    "compare",
    "evaluate",
    "label",
    "normalise",
    "score_field",
]

DEFAULT_TOLERANCE = 0.10  # a number within 10 % of the expected one counts as right
NULL_LABEL = "null"  # an answer left empty, as a confusion matrix shows it
CATEGORICAL_TYPES = frozenset({"enum", "boolean"})
NUMERIC_TYPES = frozenset({"number", "integer"})

Row = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ValueScore:
    """One value of an enum or boolean field: how often it was expected (support) and answered (predicted)."""

    value: str
    support: int
    predicted: int
    correct: int
    precision: float | None  # None: never answered
    recall: float | None  # None: never expected
    f1: float | None  # None: neither expected nor answered


@dataclass(frozen=True, slots=True)
class Disagreement:
    """A document whose answer does not match the expected value."""

    doc_id: str
    expected: Any
    actual: Any


@dataclass(frozen=True, slots=True)
class FieldScore:
    """How one field scored. `metrics` holds the type's measures, headline first (see the module docstring);
    `confusion` maps expected label -> answered label -> documents (enum and boolean fields only)."""

    name: str
    type: str
    compared: int  # documents with an expected value
    matched: int  # of these, answered right (categorical, string and date: equal after folding; number: within
    # the tolerance; list: the same normalised items)
    metrics: dict[str, float | None]
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)
    values: tuple[ValueScore, ...] = ()
    disagreements: tuple[Disagreement, ...] = ()


@dataclass(frozen=True, slots=True)
class Evaluation:
    """An output scored against a truth file."""

    fields: tuple[FieldScore, ...]
    truth_rows: int
    scored: int  # truth rows with an ok row
    missing: tuple[str, ...]  # truth rows without an ok row, by doc_id
    missing_in_error: int  # of these, documents the output holds an error row for
    error_documents: int  # documents of the output whose latest row is an error (with a truth row or not)
    unlabelled: int  # documents answered ok that the truth file does not have
    job_fingerprints: tuple[str, ...]  # of the rows scored: more than one means the job changed between runs
    tolerance: float


@dataclass(frozen=True, slots=True)
class SideStats:
    """One output of a comparison: what it holds, and (over the documents both sides answered) its cost and speed."""

    out: str
    models: tuple[str, ...]
    documents: int  # answered ok
    errors: int  # latest row an error
    only_here: int  # answered ok on this side only
    cost_usd: float | None  # None when a row that used tokens has no price (a model priced nowhere)
    cost_per_document_usd: float | None
    input_tokens: int
    output_tokens: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None


@dataclass(frozen=True, slots=True)
class Comparison:
    """Output B scored against output A over the documents both answered ok."""

    a: SideStats
    b: SideStats
    shared: int
    fields: tuple[FieldScore, ...]
    skipped_fields: dict[str, str]  # field -> why it is not compared (on one side only, or typed differently)
    tolerance: float


def normalise(text: str) -> str:
    """Text folded for a lenient match: Unicode compatibility forms, case, punctuation removed, whitespace collapsed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(ch for ch in folded if not unicodedata.category(ch).startswith("P"))
    return " ".join(kept.split())


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def label(value: Any, *, null: str = NULL_LABEL) -> str:
    """An answer as a category label: booleans as true/false, an empty answer as `null`."""
    if value is None:
        return null
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _items(value: Any) -> set[str]:
    return {normalise(item) for item in value or ()} - {""}


def _within(expected: float, actual: float | None, tolerance: float) -> bool:
    return actual is not None and abs(actual - expected) <= tolerance * abs(expected)


def _matches(kind: str, expected: Any, actual: Any, tolerance: float) -> bool:
    """Whether an answer counts as right: the definition behind `FieldScore.matched` and its disagreements."""
    if kind == "string":
        return actual is not None and normalise(expected) == normalise(actual)
    if kind in NUMERIC_TYPES:
        return _within(expected, actual, tolerance)
    if kind == "list":
        return _items(expected) == _items(actual)
    return bool(expected == actual)  # enum, boolean, date


def _categorical(
    field: Field, pairs: Sequence[tuple[Any, Any]]
) -> tuple[dict[str, float | None], dict[str, dict[str, int]], tuple[ValueScore, ...]]:
    """Accuracy and macro F1, the confusion matrix and the per-value scores of an enum or boolean field."""
    confusion: dict[str, Counter[str]] = {}
    predicted: Counter[str] = Counter()
    for expected, actual in pairs:
        confusion.setdefault(label(expected), Counter())[label(actual)] += 1
        predicted[label(actual)] += 1
    support = {label: sum(row.values()) for label, row in confusion.items()}
    known = [value for value, _ in field.values] if field.type == "enum" else ["true", "false"]
    seen = set(support) | set(predicted)
    order = [value for value in known if value in seen] + sorted(seen - set(known))
    values = []
    for value in order:
        correct = confusion.get(value, Counter())[value]
        expected_n, predicted_n = support.get(value, 0), predicted[value]
        precision, recall = _ratio(correct, predicted_n), _ratio(correct, expected_n)
        f1 = _ratio(2 * correct, expected_n + predicted_n)  # 2TP / (2TP + FP + FN)
        values.append(ValueScore(value, expected_n, predicted_n, correct, precision, recall, f1))
    f1_of_expected = [score.f1 or 0.0 for score in values if score.support]
    matrix = {
        label: {answered: confusion[label][answered] for answered in order if confusion[label][answered]}
        for label in order
        if label in confusion
    }
    metrics = {
        "accuracy": _ratio(sum(score.correct for score in values), len(pairs)),
        "macro_f1": _ratio(sum(f1_of_expected), len(f1_of_expected)),
    }
    return metrics, matrix, tuple(values)


def _numeric(pairs: Sequence[tuple[Any, Any]], tolerance: float) -> dict[str, float | None]:
    errors = [abs(actual - expected) for expected, actual in pairs if actual is not None]
    within = sum(_within(expected, actual, tolerance) for expected, actual in pairs)
    return {"mae": _ratio(sum(errors), len(errors)), "within_tolerance": _ratio(within, len(pairs))}


def _lists(pairs: Sequence[tuple[Any, Any]]) -> dict[str, float | None]:
    overlaps, common, answered, expected_total = [], 0, 0, 0
    for expected, actual in pairs:
        expected_items, actual_items = _items(expected), _items(actual)
        union = expected_items | actual_items
        overlaps.append(len(expected_items & actual_items) / len(union) if union else 1.0)
        common += len(expected_items & actual_items)
        answered += len(actual_items)
        expected_total += len(expected_items)
    return {
        "jaccard": _ratio(sum(overlaps), len(overlaps)),
        "item_precision": _ratio(common, answered),
        "item_recall": _ratio(common, expected_total),
    }


def score_field(
    field: Field, documents: Sequence[tuple[str, Any, Any]], *, tolerance: float = DEFAULT_TOLERANCE
) -> FieldScore:
    """Score one field over (doc_id, expected, actual) triples; a triple whose expected value is None is skipped."""
    labelled = [(doc_id, expected, actual) for doc_id, expected, actual in documents if expected is not None]
    pairs = [(expected, actual) for _, expected, actual in labelled]
    disagreements = tuple(
        Disagreement(doc_id, expected, actual)
        for doc_id, expected, actual in labelled
        if not _matches(field.type, expected, actual, tolerance)
    )
    matched = len(labelled) - len(disagreements)
    confusion: dict[str, dict[str, int]] = {}
    values: tuple[ValueScore, ...] = ()
    metrics: dict[str, float | None]
    if field.type in CATEGORICAL_TYPES:
        metrics, confusion, values = _categorical(field, pairs)
    elif field.type == "string":
        exact = sum(expected == actual for expected, actual in pairs)
        metrics = {"normalised": _ratio(matched, len(pairs)), "exact": _ratio(exact, len(pairs))}
    elif field.type in NUMERIC_TYPES:
        metrics = _numeric(pairs, tolerance)
    elif field.type == "list":
        metrics = _lists(pairs)
    else:  # date, and any type added later: equality
        metrics = {"exact": _ratio(matched, len(pairs))}
    return FieldScore(field.name, field.type, len(pairs), matched, metrics, confusion, values, disagreements)


def _score_fields(
    fields: Sequence[Field], expected: Mapping[str, Row], actual: Mapping[str, Row], documents: Sequence[str],
    *, tolerance: float,
) -> tuple[FieldScore, ...]:
    """Each field scored over `documents`: `expected`'s value of it against `actual`'s."""
    return tuple(
        score_field(
            field,
            [(doc_id, expected[doc_id].get(field.name), actual[doc_id].get(field.name)) for doc_id in documents],
            tolerance=tolerance,
        )
        for field in fields
    )


def evaluate(
    fields: Sequence[Field],
    truth: Mapping[str, Row],
    answers: Mapping[str, Row],
    *,
    errored: frozenset[str] = frozenset(),
    tolerance: float = DEFAULT_TOLERANCE,
) -> Evaluation:
    """Score the answers (doc_id -> latest ok row) against the truth (doc_id -> expected values) on `fields`.

    `errored` holds the documents whose latest row in the output is an error.
    """
    scored = sorted(doc_id for doc_id in truth if doc_id in answers)
    missing = tuple(sorted(doc_id for doc_id in truth if doc_id not in answers))
    scores = _score_fields(fields, truth, answers, scored, tolerance=tolerance)
    fingerprints = {str(answers[doc_id].get("job_fingerprint")) for doc_id in scored}
    return Evaluation(
        fields=scores,
        truth_rows=len(truth),
        scored=len(scored),
        missing=missing,
        missing_in_error=sum(doc_id in errored for doc_id in missing),
        error_documents=len(errored),
        unlabelled=sum(doc_id not in truth for doc_id in answers),
        job_fingerprints=tuple(sorted(fingerprints - {"None"})),
        tolerance=tolerance,
    )


def _side(out: str, answers: Mapping[str, Row], shared: Sequence[str], *, errors: int, only_here: int) -> SideStats:
    rows = [answers[doc_id] for doc_id in shared]
    cost_usd = None if any(map(unpriced, rows)) else math.fsum(float(row.get("cost_usd") or 0.0) for row in rows)
    latencies = [float(row["latency_ms"]) for row in rows if row.get("latency_ms") is not None]
    return SideStats(
        out=out,
        models=tuple(sorted({str(row["model"]) for row in answers.values() if row.get("model")})),
        documents=len(answers),
        errors=errors,
        only_here=only_here,
        cost_usd=cost_usd,
        cost_per_document_usd=None if cost_usd is None else _ratio(cost_usd, len(rows)),
        input_tokens=sum(int(row.get("input_tokens") or 0) for row in rows),
        output_tokens=sum(int(row.get("output_tokens") or 0) for row in rows),
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
    )


def compare(
    fields_a: Sequence[Field],
    fields_b: Sequence[Field],
    answers_a: Mapping[str, Row],
    answers_b: Mapping[str, Row],
    *,
    out_a: str = "A",
    out_b: str = "B",
    errored_a: frozenset[str] = frozenset(),
    errored_b: frozenset[str] = frozenset(),
    tolerance: float = DEFAULT_TOLERANCE,
) -> Comparison:
    """Score B's answers against A's on the fields both share (by name and type), over the documents both answered."""
    shared = sorted(set(answers_a) & set(answers_b))
    by_name_b = {field.name: field for field in fields_b}
    skipped: dict[str, str] = {}
    compared: list[Field] = []
    for field_a in fields_a:
        field_b = by_name_b.get(field_a.name)
        if field_b is None:
            skipped[field_a.name] = f"only in {out_a}"
        elif field_b.type != field_a.type:
            skipped[field_a.name] = f"{field_a.type} in {out_a}, {field_b.type} in {out_b}"
        else:
            compared.append(field_a)
    names_a = {field.name for field in fields_a}
    skipped.update({field.name: f"only in {out_b}" for field in fields_b if field.name not in names_a})
    scores = _score_fields(compared, answers_a, answers_b, shared, tolerance=tolerance)
    return Comparison(
        a=_side(out_a, answers_a, shared, errors=len(errored_a), only_here=len(set(answers_a) - set(answers_b))),
        b=_side(out_b, answers_b, shared, errors=len(errored_b), only_here=len(set(answers_b) - set(answers_a))),
        shared=len(shared),
        fields=scores,
        skipped_fields=skipped,
        tolerance=tolerance,
    )
