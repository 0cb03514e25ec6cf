"""Evaluations and comparisons for people (aligned text tables) and for programs (JSON)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date
from typing import Any

from .evaluation import Comparison, Evaluation, FieldScore, SideStats

__all__ = ["DEFAULT_DISAGREEMENTS_SHOWN", "describe_comparison", "describe_evaluation", "to_json"]

DEFAULT_DISAGREEMENTS_SHOWN = 5  # per field, in `docpipe compare`'s table
MISSING_SHOWN = 10  # truth rows without an answer, named in `docpipe eval`'s table
VALUE_WIDTH = 40  # a value in a disagreement is cut to this many characters
METRIC_NAMES = {
    "accuracy": "accuracy",
    "macro_f1": "macro F1",
    "normalised": "normalised match",
    "exact": "exact match",
    "mae": "mean abs error",
    "within_tolerance": "within tolerance",
    "jaccard": "mean Jaccard",
    "item_precision": "item precision",
    "item_recall": "item recall",
}


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table(rows: Sequence[Sequence[str]], *, numbers: bool = True) -> list[str]:
    """Rows as aligned columns: the first left-aligned, the others right-aligned when they hold numbers."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = []
    for row in rows:
        rest = zip(row[1:], widths[1:], strict=True)
        aligned = (cell.rjust(width) if numbers else cell.ljust(width) for cell, width in rest)
        cells = [row[0].ljust(widths[0]), *aligned]
        lines.append(("  " + "  ".join(cells)).rstrip())
    return lines


def _field_rows(scores: Sequence[FieldScore]) -> list[str]:
    rows = [("field", "type", "compared", "right", "scores")]
    for score in scores:
        metrics = ", ".join(
            f"{METRIC_NAMES.get(name, name)} {_number(value)}" for name, value in score.metrics.items()
        )
        rows.append((score.name, score.type, str(score.compared), str(score.matched), metrics))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    return [
        f"  {name.ljust(widths[0])}  {kind.ljust(widths[1])}  {compared.rjust(widths[2])}  {right.rjust(widths[3])}  "
        f"{metrics}".rstrip()
        for name, kind, compared, right, metrics in rows
    ]


def _categorical_detail(score: FieldScore, *, expected: str, answered: str) -> list[str]:
    labels = [value.value for value in score.values]
    matrix = [(f"{expected} \\ {answered}", *labels)]
    matrix += [
        (label, *(str(score.confusion[label].get(other, 0) or ".") for other in labels))
        for label in labels
        if label in score.confusion
    ]
    per_value = [("value", expected, answered, "both", "precision", "recall", "F1")]
    per_value += [
        (value.value, str(value.support), str(value.predicted), str(value.correct), _number(value.precision),
         _number(value.recall), _number(value.f1))
        for value in score.values
    ]
    return [
        "",
        f"{score.name}: confusion matrix (rows: {expected}, columns: {answered})",
        *_table(matrix),
        f"{score.name}: per value",
        *_table(per_value),
    ]


def _shown(value: Any) -> str:
    text = value.isoformat() if isinstance(value, date) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 3] + "..."


def describe_evaluation(evaluation: Evaluation) -> str:
    """The evaluation as a readable report: counts, one line per field, then each enum's and boolean's detail."""
    lines = [
        f"truth rows: {evaluation.truth_rows}; scored (an ok row): {evaluation.scored}; "
        f"missing (no ok row): {len(evaluation.missing)}, {evaluation.missing_in_error} of them in error",
        f"output: {evaluation.error_documents} document(s) in error; "
        f"{evaluation.unlabelled} answered document(s) not in the truth file",
    ]
    if evaluation.missing:
        more = len(evaluation.missing) - MISSING_SHOWN
        tail = f", ... {more} more" if more > 0 else ""
        lines.append("missing: " + ", ".join(evaluation.missing[:MISSING_SHOWN]) + tail)
    if len(evaluation.job_fingerprints) > 1:
        lines.append(f"note: the rows scored come from {len(evaluation.job_fingerprints)} versions of the job "
                     f"({', '.join(evaluation.job_fingerprints)})")
    lines += ["", f"numbers count as right within {evaluation.tolerance:.0%} of the expected value", ""]
    lines += _field_rows(evaluation.fields)
    for score in evaluation.fields:
        if score.confusion:
            lines += _categorical_detail(score, expected="expected", answered="answered")
    return "\n".join(lines)


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:.6f}"


def _cost(value: float | None) -> str:
    """A side's cost (None when some of its rows have no price): "unknown", never a $0 that reads as free."""
    return "unknown (no price for the model)" if value is None else _money(value)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _sides(a: SideStats, b: SideStats, shared: int) -> list[str]:
    rows: list[tuple[str, str, str]] = [("", "A", "B")]
    for label, show in (
        ("output", lambda side: side.out),
        ("model", lambda side: ", ".join(side.models) or "-"),
        ("documents ok", lambda side: str(side.documents)),
        ("documents in error", lambda side: str(side.errors)),
        ("ok on this side only", lambda side: str(side.only_here)),
        (f"cost, {shared} shared documents", lambda side: _cost(side.cost_usd)),
        ("cost per document", lambda side: _cost(side.cost_per_document_usd)),
        ("input tokens", lambda side: f"{side.input_tokens:,}"),
        ("output tokens", lambda side: f"{side.output_tokens:,}"),
        ("latency p50", lambda side: _ms(side.latency_p50_ms)),
        ("latency p95", lambda side: _ms(side.latency_p95_ms)),
    ):
        rows.append((label, show(a), show(b)))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    return [f"  {label.ljust(widths[0])}  {left.ljust(widths[1])}  {right}".rstrip() for label, left, right in rows]


def describe_comparison(comparison: Comparison, *, limit: int = DEFAULT_DISAGREEMENTS_SHOWN) -> str:
    """The comparison as a readable report: the two sides, agreement per field, the first `limit` disagreements."""
    lines = [f"documents answered by both: {comparison.shared}", ""]
    lines += _sides(comparison.a, comparison.b, comparison.shared)
    within = f"{comparison.tolerance:.0%}"
    agreement = f"agreement of B with A (A taken as the expected values; numbers agree within {within})"
    lines += ["", agreement, ""]
    lines += _field_rows(comparison.fields)
    for name, why in comparison.skipped_fields.items():
        lines.append(f"  {name}: not compared ({why})")
    for score in comparison.fields:
        if score.confusion:
            lines += _categorical_detail(score, expected="A", answered="B")
    for score in comparison.fields:
        if not score.disagreements or limit == 0:
            continue
        shown = score.disagreements[:limit]
        first = f", first {len(shown)}" if len(shown) < len(score.disagreements) else ""
        lines += ["", f"{score.name}: {len(score.disagreements)} document(s) disagree{first}"]
        disagreeing = [(d.doc_id, _shown(d.expected), _shown(d.actual)) for d in shown]
        lines += _table([("doc_id", "A", "B"), *disagreeing], numbers=False)
    return "\n".join(lines)


def to_json(result: Evaluation | Comparison) -> str:
    """The whole evaluation or comparison as JSON: every count, metric, matrix and disagreement."""
    return json.dumps(asdict(result), indent=2, ensure_ascii=False, default=str) + "\n"
