"""The edges of `docpipe eval` and `docpipe compare`: reading truth files and outputs, then scoring them.

A truth file is CSV, JSONL or Parquet, with a `doc_id` column (the output's document id: a folder
run's path relative to the folder, or a manifest's `id`) and some of the job's fields. Its values
are converted and checked the way an answer's are (`Field.convert`), so an enum value the job does
not have, or a date that is not ISO, is a `ConfigError` naming the file, the row and the field. An
empty cell (or null) means "not labelled": that document is not scored on that field. In a CSV a
boolean is true/false (also yes/no, 1/0), and a list is a JSON array or items separated by `;`.

The fields, their types and an enum's values come from the job when one is given, else from the
record each part keeps of its job's fields (`output.FIELDS_KEY`). Parts written before that record
existed give only their columns' types: an enum value is then not checked, and a manifest's metadata
column is indistinguishable from a field and may be scored like one.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .evaluation import DEFAULT_TOLERANCE, Comparison, Evaluation, compare, evaluate
from .fields import Field
from .jobs import Job
from .stores import PartStore

__all__ = ["compare_outputs", "evaluate_output", "load_answers", "output_fields", "read_truth"]

ID_COLUMN = "doc_id"
TRUTH_FORMATS = (".csv", ".jsonl", ".parquet")
TRUE_WORDS, FALSE_WORDS = frozenset({"true", "yes", "1"}), frozenset({"false", "no", "0"})
LIST_SEPARATOR = ";"
# The row columns a score or a comparison reads, besides the fields.
ROW_COLUMNS = ["doc_id", "status", "created_at", "model", "cost_usd", "latency_ms", "input_tokens", "output_tokens",
               "cache_read_tokens", "job_fingerprint"]

Answers = dict[str, dict[str, Any]]


def output_fields(out_dir: Path | PartStore, *, job: Job | None = None) -> tuple[Field, ...]:
    """The fields an output can be scored on: the job's when given (each must be a column), else those its parts
    record, else (parts written before docpipe recorded them) every column not docpipe's own, typed by its type."""
    from .results import field_types, job_fields

    if isinstance(out_dir, Path) and not out_dir.is_dir():
        raise ConfigError(f"{out_dir}: no such output directory")
    types = field_types(out_dir)
    if types is None:
        raise ConfigError(f"no results in {out_dir}: run `docpipe run JOB INPUT --out {out_dir}` first")
    if job is None:
        return job_fields(out_dir, types) or tuple(Field(name, kind) for name, kind in types.items())
    for field in job.fields:
        if types.get(field.name) != field.type:
            have = f"a {types[field.name]} column" if field.name in types else "no such column"
            raise ConfigError(f"{out_dir} is not an output of job {job.name!r}: its field {field.name!r} "
                              f"({field.type}) has {have}")
    return job.fields


def load_answers(out_dir: Path | PartStore, fields: tuple[Field, ...]) -> tuple[Answers, frozenset[str]]:
    """The latest ok row of each document (doc_id -> row), and the documents whose latest row is an error."""
    from .results import load_table

    table = load_table(out_dir, columns=[*ROW_COLUMNS, *(field.name for field in fields)])
    rows = sorted(table.to_pylist(), key=lambda row: (row["doc_id"], row["created_at"]))
    answers: Answers = {}
    latest_status: dict[str, str] = {}
    for row in rows:
        latest_status[row["doc_id"]] = row["status"]
        if row["status"] == "ok":
            answers[row["doc_id"]] = row
    return answers, frozenset(doc_id for doc_id, status in latest_status.items() if status != "ok")


def _from_text(field: Field, text: str) -> Any:
    """A CSV cell as the JSON value an answer would hold; ValueError naming the field when it cannot be one."""
    if field.type == "boolean":
        word = text.strip().lower()
        if word not in TRUE_WORDS | FALSE_WORDS:
            raise ValueError(f"field '{field.name}' is {text!r}, not true or false")
        return word in TRUE_WORDS
    if field.type in ("number", "integer"):
        try:
            return int(text) if field.type == "integer" else float(text)
        except ValueError:
            raise ValueError(f"field '{field.name}' is {text!r}, not a {field.type}") from None
    if field.type == "list":
        if text.lstrip().startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"field '{field.name}' is not a JSON array: {exc.msg}") from None
        return [item.strip() for item in text.split(LIST_SEPARATOR) if item.strip()]
    return text.strip() if field.type in ("enum", "date") else text


def _convert(field: Field, value: Any) -> Any:
    if isinstance(value, date):  # a Parquet truth file's date column
        value = value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):  # no answer can be; it would make every mean NaN
        raise ValueError(f"field '{field.name}' is {value}, not a finite number")
    if field.type == "enum" and not field.values:  # from the schema alone: its values are unknown
        if not isinstance(value, str):
            raise ValueError(f"field '{field.name}' should be a string")
        return value
    return field.convert(value)


def _check_columns(path: Path, columns: list[str], fields: Mapping[str, Field]) -> None:
    if ID_COLUMN not in columns:
        have = ", ".join(columns) or "none"
        raise ConfigError(f"{path}: the truth file has no {ID_COLUMN!r} column (its columns: {have})")
    for name in columns:
        if name != ID_COLUMN and name not in fields:
            raise ConfigError(f"{path}: column {name!r} is not a field of the job (its fields: {', '.join(fields)})")


def _truth_records(path: Path, fields: Mapping[str, Field]) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(where, record, is_text) per row of a truth file: where names the row for a message."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            _check_columns(path, list(reader.fieldnames or ()), fields)
            for number, record in enumerate(reader, start=1):
                if None in record:
                    raise ConfigError(f"{path}, row {number}: more cells than the header has columns")
                yield f"row {number}", {key: value for key, value in record.items() if value != ""}, True
    elif suffix == ".jsonl":
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{path}, line {number}: not JSON: {exc.msg}") from None
                if not isinstance(record, dict):
                    raise ConfigError(f"{path}, line {number}: expected a JSON object")
                _check_columns(path, list(record), fields)
                yield f"line {number}", record, False
    elif suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            raise ConfigError(f"{path}: not a readable Parquet file: {str(exc).splitlines()[0]}") from None
        _check_columns(path, table.column_names, fields)
        records = table.to_pylist()
        for number, record in enumerate(records, start=1):
            yield f"row {number}", record, False
    else:
        raise ConfigError(f"{path}: a truth file is {', '.join(TRUTH_FORMATS)}, not {suffix or 'a file without one'}")


def read_truth(path: Path, fields: tuple[Field, ...]) -> dict[str, dict[str, Any]]:
    """The expected values per document (doc_id -> field -> value, None for a value not labelled)."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such truth file")
    by_name = {field.name: field for field in fields}
    truth: dict[str, dict[str, Any]] = {}
    try:
        for where, record, is_text in _truth_records(path, by_name):
            doc_id = record.pop(ID_COLUMN, None)
            if not isinstance(doc_id, str) or not doc_id.strip():
                raise ConfigError(f"{path}, {where}: {ID_COLUMN} is empty or not text")
            if doc_id in truth:
                raise ConfigError(f"{path}, {where}: doc_id {doc_id!r} appears twice")
            expected: dict[str, Any] = {}
            for name, value in record.items():
                field = by_name[name]
                try:
                    if value is not None:
                        expected[name] = _convert(field, _from_text(field, value) if is_text else value)
                except ValueError as exc:
                    raise ConfigError(f"{path}, {where} ({doc_id}): {exc}") from None
            truth[doc_id] = expected
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{path}: cannot read the truth file: {exc}") from None
    if not truth:
        raise ConfigError(f"{path}: the truth file has no rows")
    return truth


def _labelled_fields(fields: tuple[Field, ...], truth: Mapping[str, Mapping[str, Any]]) -> tuple[Field, ...]:
    named = {name for expected in truth.values() for name in expected}
    return tuple(field for field in fields if field.name in named)


def evaluate_output(
    out_dir: Path | PartStore, truth_path: Path, *, job: Job | None = None, tolerance: float = DEFAULT_TOLERANCE
) -> Evaluation:
    """Score an output directory against a truth file, on the fields the truth file has."""
    fields = output_fields(out_dir, job=job)
    truth = read_truth(truth_path, fields)
    fields = _labelled_fields(fields, truth)
    answers, errored = load_answers(out_dir, fields)
    if truth and (answers or errored) and not (set(truth) & (set(answers) | errored)):
        raise ConfigError(
            f"{truth_path}: none of its {len(truth)} doc_id(s) is a document of {out_dir} (truth: "
            f"{min(truth)!r}; output: {min(answers or errored)!r}); doc_id is a folder run's path relative to "
            "the folder, or a manifest's id"
        )
    return evaluate(fields, truth, answers, errored=errored, tolerance=tolerance)


def compare_outputs(
    out_a: Path | PartStore, out_b: Path | PartStore, *, tolerance: float = DEFAULT_TOLERANCE
) -> Comparison:
    """Score output B against output A over the documents both answered; ConfigError when they share none."""
    fields_a, fields_b = output_fields(out_a), output_fields(out_b)
    answers_a, errored_a = load_answers(out_a, fields_a)
    answers_b, errored_b = load_answers(out_b, fields_b)
    if not set(answers_a) & set(answers_b):
        raise ConfigError(
            f"{out_a} ({len(answers_a)} documents answered) and {out_b} ({len(answers_b)}) have no document in "
            "common: compare two runs over the same documents"
        )
    return compare(fields_a, fields_b, answers_a, answers_b, out_a=str(out_a), out_b=str(out_b),
                   errored_a=errored_a, errored_b=errored_b, tolerance=tolerance)
