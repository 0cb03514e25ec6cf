"""Scoring (pipeline.evaluation): every metric against numbers worked out by hand, and properties over any table."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.evaluation import (
    DEFAULT_TOLERANCE,
    Disagreement,
    ValueScore,
    compare,
    evaluate,
    normalise,
    score_field,
)
from pipeline.evaluation_report import describe_comparison, describe_evaluation, to_json
from pipeline.fields import Field

LABEL = Field("label", "enum", values=(("a", ""), ("b", ""), ("c", "")))
FLAG = Field("flag", "boolean")
TEXT = Field("text", "string")
AMOUNT = Field("amount", "number")
ITEMS = Field("items", "list")
WHEN = Field("when", "date")


def triples(expected: list[Any], actual: list[Any]) -> list[tuple[str, Any, Any]]:
    return [(f"d{i}", e, a) for i, (e, a) in enumerate(zip(expected, actual, strict=True))]


def test_enum_accuracy_confusion_and_per_value_scores() -> None:
    """Accuracy, the confusion matrix and precision/recall/F1 per value, an empty answer scored as `null`."""
    score = score_field(LABEL, triples(["a", "a", "b", "b", "c"], ["a", "b", "b", "b", None]))
    assert (5, 3) == (score.compared, score.matched)
    assert {"a": {"a": 1, "b": 1}, "b": {"b": 2}, "c": {"null": 1}} == score.confusion
    assert (
        ValueScore("a", support=2, predicted=1, correct=1, precision=1.0, recall=0.5, f1=pytest.approx(2 / 3)),
        ValueScore("b", support=2, predicted=3, correct=2, precision=pytest.approx(2 / 3), recall=1.0, f1=0.8),
        ValueScore("c", support=1, predicted=0, correct=0, precision=None, recall=0.0, f1=0.0),
        ValueScore("null", support=0, predicted=1, correct=0, precision=0.0, recall=None, f1=0.0),
    ) == score.values
    assert {"accuracy": 0.6, "macro_f1": pytest.approx((2 / 3 + 0.8 + 0.0) / 3)} == score.metrics
    assert (Disagreement("d1", "a", "b"), Disagreement("d4", "c", None)) == score.disagreements


def test_boolean_scores_true_and_false_as_values() -> None:
    """A boolean field is scored like an enum of true and false, in that order."""
    score = score_field(FLAG, triples([True, True, False, False], [True, False, False, False]))
    assert {"true": {"true": 1, "false": 1}, "false": {"false": 2}} == score.confusion
    assert ["true", "false"] == [value.value for value in score.values]
    assert 0.75 == score.metrics["accuracy"]
    assert (1.0, 0.5) == (score.values[0].precision, score.values[0].recall)


def test_string_exact_and_normalised_match() -> None:
    """Exact match counts the identical strings; normalised match folds case, punctuation and whitespace."""
    score = score_field(TEXT, triples(["Hello, World", "x", "A  b"], ["hello world", "x", "ab"]))
    assert {"normalised": pytest.approx(2 / 3), "exact": pytest.approx(1 / 3)} == score.metrics
    assert 2 == score.matched


def test_numbers_mean_absolute_error_and_share_within_tolerance() -> None:
    """MAE over the answered values; within tolerance over all (an empty answer is never within)."""
    score = score_field(AMOUNT, triples([10.0, 0.0, 100.0, 5.0], [11.0, 0.0, 80.0, None]))
    assert {"mae": 7.0, "within_tolerance": 0.5} == score.metrics
    wider = score_field(AMOUNT, triples([10.0, 0.0, 100.0, 5.0], [11.0, 0.0, 80.0, None]), tolerance=0.2)
    assert 0.75 == wider.metrics["within_tolerance"]


def test_lists_jaccard_and_item_precision_recall() -> None:
    """Mean Jaccard of the normalised item sets (two empty lists agree); item precision and recall are pooled."""
    score = score_field(ITEMS, triples([["A", "b"], [], ["x"]], [["a.", "c"], [], None]))
    expected = {"jaccard": pytest.approx(4 / 9), "item_precision": 0.5, "item_recall": pytest.approx(1 / 3)}
    assert expected == score.metrics
    assert 1 == score.matched  # only the two empty lists are the same


def test_dates_exact_match() -> None:
    """A date is right only when it is the same day."""
    score = score_field(WHEN, triples([date(2026, 1, 2), date(2026, 1, 3)], [date(2026, 1, 2), date(2026, 3, 1)]))
    assert {"exact": 0.5} == score.metrics


def test_unlabelled_values_are_not_scored() -> None:
    """An expected value of None leaves the document out of that field's score."""
    score = score_field(LABEL, triples(["a", None, "b"], ["a", "c", "c"]))
    assert (2, 1) == (score.compared, score.matched)
    assert {"accuracy": 0.5, "macro_f1": pytest.approx((1.0 + 0.0) / 2)} == score.metrics


def test_no_labelled_document_gives_no_numbers() -> None:
    """A field nobody labelled has no metric rather than a division by zero."""
    score = score_field(AMOUNT, triples([None], [3.0]))
    assert {"mae": None, "within_tolerance": None} == score.metrics


def test_evaluate_counts_missing_errored_and_unlabelled_documents() -> None:
    """Truth rows without an ok row are missing (and counted in error when the output failed them)."""
    truth = {"d1": {"label": "a"}, "d2": {"label": "b"}, "d3": {"label": "c"}, "d4": {"label": "a"}}
    answers = {
        "d1": {"label": "a", "job_fingerprint": "f1"},
        "d2": {"label": "a", "job_fingerprint": "f1"},
        "d9": {"label": "a", "job_fingerprint": "f1"},
    }
    evaluation = evaluate([LABEL], truth, answers, errored=frozenset({"d3", "d8"}))
    assert (4, 2, ("d3", "d4"), 1, 2, 1) == (
        evaluation.truth_rows,
        evaluation.scored,
        evaluation.missing,
        evaluation.missing_in_error,
        evaluation.error_documents,
        evaluation.unlabelled,
    )
    assert ("f1",) == evaluation.job_fingerprints
    assert 0.5 == evaluation.fields[0].metrics["accuracy"]
    report = describe_evaluation(evaluation)
    assert "missing (no ok row): 2, 1 of them in error" in report
    assert "missing: d3, d4" in report


def test_compare_scores_b_against_a_and_sets_cost_and_latency_side_by_side() -> None:
    """B is scored against A over the shared documents; cost, tokens and latency are over those documents."""
    a = {
        f"d{i}": {"label": "a", "model": "m-a", "cost_usd": 0.01, "latency_ms": 100.0 * (i + 1), "input_tokens": 10,
                  "output_tokens": 2}
        for i in range(4)
    }
    b = {
        f"d{i}": {"label": "a" if i < 2 else "b", "model": "m-b", "cost_usd": 0.03, "latency_ms": 50.0,
                  "input_tokens": 10, "output_tokens": 3}
        for i in range(1, 5)
    }
    comparison = compare([LABEL, AMOUNT], [LABEL, Field("amount", "integer")], a, b, errored_b=frozenset({"d7"}))
    assert 3 == comparison.shared
    assert {"amount": "number in A, integer in B"} == comparison.skipped_fields
    assert [("d2", "a", "b"), ("d3", "a", "b")] == [
        (d.doc_id, d.expected, d.actual) for d in comparison.fields[0].disagreements
    ]
    assert pytest.approx(1 / 3) == comparison.fields[0].metrics["accuracy"]
    assert (("m-a",), 4, 0, 1) == (
        comparison.a.models, comparison.a.documents, comparison.a.errors, comparison.a.only_here
    )
    assert (("m-b",), 4, 1, 1) == (
        comparison.b.models, comparison.b.documents, comparison.b.errors, comparison.b.only_here
    )
    assert pytest.approx(0.03) == comparison.a.cost_usd
    assert pytest.approx(0.01) == comparison.a.cost_per_document_usd
    assert pytest.approx(0.09) == comparison.b.cost_usd
    assert (30, 6, 30, 9) == (comparison.a.input_tokens, comparison.a.output_tokens, comparison.b.input_tokens,
                              comparison.b.output_tokens)
    assert (300.0, 50.0) == (comparison.a.latency_p50_ms, comparison.b.latency_p50_ms)
    report = describe_comparison(comparison, limit=1)
    assert "label: 2 document(s) disagree, first 1" in report
    assert "amount: not compared (number in A, integer in B)" in report
    assert '"shared": 3' in to_json(comparison)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Hello,  World!", "hello world"), ("  A\tb\n", "a b"), ("NWL-INV-2026-0142", "nwlinv20260142"),
     ("Straße", "strasse"), ("ﬁle", "file"), ("...", "")],
)
def test_normalise_folds_case_punctuation_and_whitespace(text: str, expected: str) -> None:
    """Normalisation: NFKC, casefold, punctuation removed, whitespace collapsed."""
    assert expected == normalise(text)


# -- properties ------------------------------------------------------------------------------------

labels = st.sampled_from(["a", "b", "c"])
VALUES_OF: dict[str, tuple[Field, st.SearchStrategy[Any]]] = {
    "enum": (LABEL, labels),
    "boolean": (FLAG, st.booleans()),
    "string": (TEXT, st.text(max_size=20)),
    "number": (AMOUNT, st.floats(allow_nan=False, allow_infinity=False, width=32)),
    "list": (ITEMS, st.lists(st.text(max_size=8), max_size=4)),
    "date": (WHEN, st.dates()),
}


@pytest.mark.parametrize("kind", sorted(VALUES_OF))
@given(data=st.data())
def test_a_table_scored_against_itself_is_perfect(kind: str, data: st.DataObject) -> None:
    """Any column scored against itself: every document right, every headline metric 1 (or an error of 0)."""
    values = data.draw(st.lists(VALUES_OF[kind][1], min_size=1, max_size=20))
    field = VALUES_OF[kind][0]
    score = score_field(field, triples(values, values))
    assert (len(values), len(values), ()) == (score.compared, score.matched, score.disagreements)
    headline = next(iter(score.metrics.values()))
    assert (0.0 if kind == "number" else 1.0) == headline


@given(st.lists(st.tuples(labels, st.one_of(st.none(), labels)), min_size=1, max_size=40))
def test_categorical_scores_are_consistent(pairs: list[tuple[str, str | None]]) -> None:
    """For any enum answers: the matrix counts every document, and every score lies between 0 and 1."""
    score = score_field(LABEL, triples([e for e, _ in pairs], [a for _, a in pairs]))
    assert len(pairs) == sum(sum(row.values()) for row in score.confusion.values())
    assert sum(value.correct for value in score.values) == score.matched
    assert sum(value.support for value in score.values) == sum(value.predicted for value in score.values)
    for value in score.values:
        for number in (value.precision, value.recall, value.f1):
            assert number is None or 0.0 <= number <= 1.0
    accuracy = score.metrics["accuracy"]
    assert accuracy is not None and 0.0 <= accuracy <= 1.0


@given(st.text(max_size=30))
def test_normalise_is_idempotent(text: str) -> None:
    """Normalising twice changes nothing more."""
    assert normalise(text) == normalise(normalise(text))


def test_default_tolerance_is_ten_percent() -> None:
    """The documented default: 10 % relative."""
    assert 0.1 == DEFAULT_TOLERANCE
