"""What `docpipe report` shows, gathered as plain data: no HTML and no charting library here.

`collect_report` reads an output directory once (the latest row per document, the run summaries,
what is pending) and folds it into a `Report`: counts per enum and boolean field, the distribution
of each numeric field, latency percentiles, cost and tokens per run, the documents in error, and the
documents to review first (the lowest values of a confidence field). With a truth file, the
evaluation of `docpipe eval` joins it. `report_html` draws it.

Distributions are binned here, so the page holds counts, not values: its size does not grow with
the number of documents. The folding functions are pure, over Python values, and tested as such.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .evaluation import Evaluation, label
from .fields import Field
from .jobs import Job
from .status import ErrorGroup, RunLine, check_output_dir, group_errors, read_runs
from .status_pending import collect_pending, pending_lines
from .stores import OutputView

__all__ = [
    "DEFAULT_ERRORS_LISTED",
    "DEFAULT_REVIEW_COUNT",
    "Distribution",
    "Report",
    "ValueCounts",
    "cell_text",
    "collect_report",
    "distribution",
    "fold_columns",
    "percentiles",
    "review_cells",
    "review_field",
    "review_order",
    "value_counts",
]

DEFAULT_REVIEW_COUNT = 20  # documents listed to review first
DEFAULT_ERRORS_LISTED = 50  # documents named per error type
HISTOGRAM_BINS = 20
PERCENTILES = (50, 90, 95, 99)
NULL_LABEL = "(none)"  # an answer left empty, as a count shows it
CELL_CHARS = 200  # a string answer in the review table is cut to this
COUNTED_TYPES = frozenset({"enum", "boolean"})
MEASURED_TYPES = frozenset({"number", "integer"})
# The row columns the report reads, besides the fields.
ROW_COLUMNS = ["doc_id", "source", "status", "error_type", "error_message", "latency_ms", "model", "job", "cost_usd",
               "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"]


@dataclass(frozen=True, slots=True)
class ValueCounts:
    """How often each value of an enum or boolean field was answered, over the documents answered ok."""

    name: str
    type: str
    counts: tuple[tuple[str, int], ...]  # (value, documents), in the job's order where known, else most first
    missing: int  # answered ok with the field empty


@dataclass(frozen=True, slots=True)
class Distribution:
    """A numeric column binned into equal-width bins, with the figures a reader asks first."""

    name: str
    count: int  # values binned (empty answers left out)
    missing: int
    minimum: float | None
    maximum: float | None
    mean: float | None
    percentiles: dict[str, float]  # "p50" -> value
    edges: tuple[float, ...]  # bin edges, one more than counts
    counts: tuple[int, ...]
    curve: tuple[float, ...] = ()  # the 0th to the 100th percentile, for a percentile chart


@dataclass(frozen=True, slots=True)
class Report:
    """Everything the page shows."""

    out: str
    generated_at: str
    jobs: tuple[str, ...]
    models: tuple[str, ...]
    documents: int
    ok: int
    error: int
    cost_usd: float | None  # of the latest rows; None when some row's price is unknown
    tokens: dict[str, int]  # of the latest rows, by kind
    runs: tuple[RunLine, ...]
    pending: tuple[str, ...]  # one line per thing waiting; empty when nothing is
    counts: tuple[ValueCounts, ...]
    distributions: tuple[Distribution, ...]
    latency: Distribution | None  # realtime rows answered ok; None when there are none
    errors: tuple[ErrorGroup, ...]
    review_by: str | None  # the field the review list is sorted by
    review: tuple[dict[str, str], ...]  # the documents to review first, lowest value first: column -> text
    review_columns: tuple[str, ...]
    evaluation: Evaluation | None = None
    notes: tuple[str, ...] = field(default=())  # what the page could not show, and why


# -- pure folds ------------------------------------------------------------------------------------


def _label(value: Any) -> str:
    return label(value, null=NULL_LABEL)


def value_counts(field_: Field, values: Sequence[Any]) -> ValueCounts:
    """The answers of one enum or boolean field counted; the job's values come first, in its order, zeros kept."""
    counter = Counter(_label(value) for value in values if value is not None)
    known: list[str] = [value for value, _ in field_.values] if field_.type == "enum" else []
    if field_.type == "boolean":
        known = ["true", "false"]
    order = known + [label for label, _ in counter.most_common() if label not in known]
    return ValueCounts(
        name=field_.name,
        type=field_.type,
        counts=tuple((label, counter.get(label, 0)) for label in order),
        missing=sum(1 for value in values if value is None),
    )


def percentiles(ordered: Sequence[float], ranks: Sequence[int] = PERCENTILES) -> dict[str, float]:
    """Percentiles of sorted values by linear interpolation (numpy's default); empty when there are none."""
    if not ordered:
        return {}
    result = {}
    for rank in ranks:
        position = (len(ordered) - 1) * rank / 100
        low = math.floor(position)
        high = min(low + 1, len(ordered) - 1)
        share, step = position - low, ordered[high] - ordered[low]
        result[f"p{rank}"] = (ordered[low] + step * share if math.isfinite(step)  # as numpy, unless that overflows
                              else ordered[low] * (1 - share) + ordered[high] * share)
    return result


def distribution(name: str, values: Sequence[Any], *, bins: int = HISTOGRAM_BINS) -> Distribution:
    """Finite numbers among `values` binned into `bins` equal bins over their range (one bin when all are equal)."""
    numbers = sorted(float(value) for value in values if _finite(value))
    missing = len(values) - len(numbers)
    if not numbers:
        return Distribution(name, 0, missing, None, None, None, {}, (), ())
    low, high = numbers[0], numbers[-1]
    width = high / bins - low / bins  # (high - low) / bins may overflow; this cannot
    if width > 0 and low + width > low and math.isfinite(low / width) and math.isfinite(high / width):
        # low + width * i overflows for a range near the largest float; this weighted mean cannot
        edges: tuple[float, ...] = (*(low * (1 - i / bins) + high * (i / bins) for i in range(bins)), high)
        binned = [0] * bins
        for number in numbers:
            binned[min(int(number / width - low / width), bins - 1)] += 1
        counts: tuple[int, ...] = tuple(binned)
    else:  # all equal, or too close to tell apart: one bin around them, wide enough to draw
        pad = 0.5 if low == int(low) and abs(low) < 2**52 else max(abs(low) * 0.05, 1e-9)
        # near the largest float the padded edge would be infinite: the bin stops at the largest float
        edges, counts = (max(low - pad, -sys.float_info.max), min(high + pad, sys.float_info.max)), (len(numbers),)
    return Distribution(
        name=name,
        count=len(numbers),
        missing=missing,
        minimum=low,
        maximum=high,
        mean=math.fsum(number / len(numbers) for number in numbers),  # a sum of huge values would overflow
        percentiles=percentiles(numbers),
        edges=edges,
        counts=counts,
        curve=tuple(percentiles(numbers, range(101)).values()),
    )


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def review_field(fields: Sequence[Field], chosen: str | None) -> str | None:
    """The numeric field to sort the review list by: the one asked for, else the first whose name says confidence."""
    numeric = [field_.name for field_ in fields if field_.type in MEASURED_TYPES]
    if chosen is not None:
        if chosen not in numeric:
            have = ", ".join(numeric) or "none"
            raise ConfigError(f"--review-by {chosen}: not a numeric field of this output (numeric fields: {have})")
        return chosen
    return next((name for name in numeric if "confidence" in name.lower()), None)


def cell_text(value: Any) -> str:
    """An answer as one line of text for a table cell: a list's items joined by `;`, cut to `CELL_CHARS`."""
    if value is None:
        return ""
    if isinstance(value, list):
        text = "; ".join(_label(item) for item in value)
    elif isinstance(value, float):
        text = f"{value:.3g}"
    else:
        text = _label(value)
    folded = " ".join(text.split())
    return folded if len(folded) <= CELL_CHARS else folded[: CELL_CHARS - 3] + "..."


def review_order(
    values: Sequence[Any], doc_ids: Sequence[str], answered: Sequence[bool], *, count: int
) -> list[int]:
    """The positions of the `count` answered rows with the lowest value (empty answers first: they were not even
    rated), ties by document id."""
    rated = [index for index, ok in enumerate(answered) if ok]
    rated.sort(key=lambda i: (_finite(values[i]), values[i] if _finite(values[i]) else 0.0, doc_ids[i]))
    return rated[:count]


def review_cells(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> tuple[dict[str, str], ...]:
    """Rows as text cells of `columns`, in order."""
    return tuple({column: cell_text(row.get(column)) for column in columns} for row in rows)


def _sum_cost(costs: Sequence[float | None], spent: Sequence[bool]) -> float | None:
    """The total, or None when a row that spent tokens has no price."""
    if any(cost is None and paid for cost, paid in zip(costs, spent, strict=True)):
        return None
    return round(math.fsum(cost or 0.0 for cost in costs), 6)


def fold_columns(
    columns: Mapping[str, Sequence[Any]],
    fields: Sequence[Field],
    *,
    review_by: str | None,
    review_count: int = DEFAULT_REVIEW_COUNT,
    errors_listed: int = DEFAULT_ERRORS_LISTED,
) -> dict[str, Any]:
    """The parts of the report that come from the latest rows (one per document), given column by column (a
    million rows as Python dicts would take gigabytes), as `Report` keyword arguments; "review" holds the
    positions of the rows to review, for the caller to turn into cells."""
    status, doc_ids = columns["status"], columns["doc_id"]
    answered = [value == "ok" for value in status]
    positions = [index for index, ok in enumerate(answered) if ok]

    def of_answered(name: str) -> list[Any]:
        column = columns[name]
        return [column[index] for index in positions]

    latencies = [value for value in of_answered("latency_ms") if value is not None]
    kinds = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    tokens = {kind: sum(value or 0 for value in columns[kind]) for kind in kinds}
    spent = [bool((a or 0) + (b or 0)) for a, b in zip(columns["input_tokens"], columns["output_tokens"], strict=True)]
    failed = {
        str(doc_ids[index]): {name: columns[name][index] for name in ("doc_id", "status", "error_type",
                                                                       "error_message")}
        for index, ok in enumerate(answered) if not ok
    }
    return {
        "jobs": tuple(sorted({str(job) for job in columns["job"] if job})),
        "models": tuple(sorted({str(model) for model in of_answered("model") if model})),
        "documents": len(status),
        "ok": len(positions),
        "error": len(status) - len(positions),
        "cost_usd": _sum_cost(columns["cost_usd"], spent),
        "tokens": tokens,
        "counts": tuple(value_counts(field_, of_answered(field_.name)) for field_ in fields
                        if field_.type in COUNTED_TYPES),
        "distributions": tuple(distribution(field_.name, of_answered(field_.name)) for field_ in fields
                               if field_.type in MEASURED_TYPES),
        "latency": distribution("latency_ms", latencies) if latencies else None,
        "errors": tuple(group_errors(failed, listed=errors_listed)),
        "review_by": review_by,
        "review": review_order(columns[review_by], doc_ids, answered, count=review_count) if review_by else [],
    }


# -- reading the directory -------------------------------------------------------------------------


def collect_report(
    out: OutputView | Path,
    *,
    job: Job | None = None,
    truth_path: Path | None = None,
    review_by: str | None = None,
    review_count: int = DEFAULT_REVIEW_COUNT,
    errors_listed: int = DEFAULT_ERRORS_LISTED,
    now: datetime | None = None,
) -> Report:
    """The report of an output directory; `ConfigError` unless it is one with results, or the options do not fit."""
    import pyarrow as pa

    from .evaluation_io import evaluate_output, output_fields
    from .results import latest_positions, load_table

    view = out if isinstance(out, OutputView) else OutputView(out, out)
    out_dir = view.parts
    check_output_dir(out_dir)
    fields = output_fields(out_dir, job=job)
    chosen = review_field(fields, review_by)
    charted = [field_.name for field_ in fields if field_.type in COUNTED_TYPES | MEASURED_TYPES]
    shown = [field_.name for field_ in fields if field_.type != "list"][:6]
    review_columns = ("doc_id", *([chosen] if chosen else []), *(name for name in shown if name != chosen))
    wanted = list(dict.fromkeys([*ROW_COLUMNS, "created_at", *charted, *review_columns]))
    # A part written by an older docpipe may lack one of docpipe's columns: it reads empty.
    table = load_table(out_dir, columns=wanted, optional=tuple(name for name in wanted if name not in charted))
    if not table.num_rows:
        raise ConfigError(f"no results in {out_dir}: run `docpipe run JOB INPUT --out {out_dir}` first")
    table = table.take(latest_positions(table))  # the latest row per document, as load_results keeps
    columns = {name: table.column(name).to_pylist() for name in dict.fromkeys([*ROW_COLUMNS, *charted])}
    folded = fold_columns(columns, fields, review_by=chosen, review_count=review_count, errors_listed=errors_listed)
    del columns
    picked = table.take(pa.array(folded.pop("review"), type=pa.int64())).select(list(review_columns))
    problems: list[str] = []
    runs = read_runs(out_dir, problems)
    pending = collect_pending(view.state, problems) if view.state is not None else None
    evaluation = evaluate_output(out_dir, truth_path, job=job) if truth_path is not None else None
    notes = list(problems)
    if chosen is None:
        notes.append("no numeric field named like 'confidence': give --review-by FIELD for a list to review first")
    if any(field_.type == "enum" and not field_.values for field_ in fields):
        notes.append("enum values in the order of their counts; give --job JOB to list them in the job's order, "
                     "unanswered values included")
    return Report(
        out=str(out_dir),
        generated_at=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
        runs=tuple(runs),
        pending=() if pending is None else tuple(line.strip() for line in pending_lines(pending)
                                                 if line.strip() != "nothing"),
        evaluation=evaluation,
        notes=tuple(notes),
        review=review_cells(picked.to_pylist(), review_columns) if chosen else (),
        review_columns=review_columns if chosen else (),
        **folded,
    )
