"""`docpipe export OUT`: the output's rows as CSV or JSONL, for tools that do not read Parquet.

The rows are those of `load_results`: the latest row per document, or every row ever written
(`every_row`). Values are written as plain text a spreadsheet or `jq` reads the same everywhere:
UTF-8, dates and timestamps in ISO 8601, an empty cell (CSV) or `null` (JSONL) for a missing
value, lists and objects as JSON text in a CSV cell and as JSON in a JSONL line. Rows are
converted a record batch at a time, so an export holds one batch of Python values at most.

`write_rows` is the pure part (rows in, text out to any stream); `export_rows` reads the
directory and writes to a file (whole or not at all) or a stream.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, TextIO

from .errors import ConfigError, EnvironmentFailure
from .status import check_output_dir
from .stores import PartStore

__all__ = ["FORMATS", "export_rows", "write_rows"]

FORMATS = ("csv", "jsonl")


def json_value(value: Any) -> Any:
    """A value as JSON can hold it: dates and times as ISO 8601 text, NaN as null, nested values alike."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): json_value(item) for key, item in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


# A text cell a spreadsheet would run as a formula (=, +, -, @, or a tab or carriage return before one):
# answers come from documents nobody vetted, so such a cell is opened with an apostrophe, which the
# spreadsheet shows as text (OWASP, "CSV Injection"). Numbers are written as numbers.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """A value as one CSV cell: empty for a missing value, JSON text for a list or an object."""
    value = json_value(value)
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return str(value)


def write_rows(rows: Iterable[dict[str, Any]], columns: list[str], sink: TextIO, *, format: str) -> int:
    """Write `rows` (Python values, columns in order) as CSV with a header, or as JSON lines; return the count."""
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}: choose one of {', '.join(FORMATS)}")
    written = 0
    if format == "csv":
        writer = csv.writer(sink, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([csv_cell(row.get(name)) for name in columns])
            written += 1
    else:
        for row in rows:
            line = {name: json_value(row.get(name)) for name in columns}
            sink.write(json.dumps(line, ensure_ascii=False, allow_nan=False) + "\n")
            written += 1
    return written


def _table_rows(table: Any) -> Iterator[dict[str, Any]]:
    for batch in table.to_batches():
        yield from batch.to_pylist()


def export_rows(
    out_dir: Path | PartStore, *, format: str, to: Path | None, sink: TextIO, every_row: bool = False
) -> int:
    """Write the output's rows to the file `to` (replaced whole) or, when None, to `sink`; return the rows written.

    Raises `ConfigError` when `out_dir` is not a docpipe output directory or holds no rows.
    """
    from .results import results_table  # pyarrow, paid only by this command

    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}: choose one of {', '.join(FORMATS)}")
    check_output_dir(out_dir)
    try:
        table = results_table(out_dir, latest=not every_row)
    except ConfigError:
        message = f"no rows in {out_dir} to export: run `docpipe run JOB INPUT --out {out_dir}` first"
        raise ConfigError(message) from None
    columns = list(table.column_names)
    if to is None:
        return write_rows(_table_rows(table), columns, sink, format=format)
    temporary = to.with_name(f".{to.name}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            written = write_rows(_table_rows(table), columns, handle, format=format)
        os.replace(temporary, to)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise EnvironmentFailure.from_os_error(
            exc, doing="write the export to", path=to, advice="check the path, its permissions and its disk"
        ) from None
    return written
