"""Parquet manifests: read one batch of one row group at a time; each column keeps its own type."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from .errors import ManifestError
from .refs import INT64_MAX, RESERVED_COLUMNS, DocumentRef, ManifestRows

__all__ = ["arrow_kind", "parquet_check_schema", "parquet_file", "parquet_metadata_columns", "read_parquet"]

PARQUET_BATCH_ROWS = 4096


def parquet_file(path: Path) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except PermissionError:
        raise ManifestError("permission denied", path=path) from None
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise ManifestError(f"cannot read the Parquet file: {exc}", path=path) from None


def parquet_check_schema(path: Path, parquet: Any) -> None:
    names = list(parquet.schema_arrow.names)
    if "id" not in names:
        raise ManifestError(f"no 'id' column in the Parquet schema (columns: {', '.join(names)})", path=path)
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:  # a row holds one value per name: which column's would be a guess
        raise ManifestError(f"column {duplicates[0]!r} appears twice in the Parquet schema", path=path)
    if parquet.metadata.num_rows == 0:
        raise ManifestError("empty manifest: no rows", path=path)


def arrow_kind(arrow_type: Any) -> str:
    import pyarrow as pa

    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_integer(arrow_type):
        return "int64"
    if pa.types.is_floating(arrow_type):
        return "float64"
    return "string"


def _as_string(value: Any) -> str | None:
    """A Parquet value of a type without a metadata kind of its own (dates, decimals, lists...) as text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def read_parquet(path: Path) -> Iterator[DocumentRef]:
    import pyarrow as pa

    parquet = parquet_file(path)
    parquet_check_schema(path, parquet)
    schema = parquet.schema_arrow
    metadata_fields = [field for field in schema if field.name not in RESERVED_COLUMNS]
    string_columns = [field.name for field in metadata_fields if arrow_kind(field.type) == "string"]
    # The output holds integers as int64: an unsigned 64-bit value may not fit.
    unsigned_columns = [field.name for field in metadata_fields if pa.types.is_uint64(field.type)]
    metadata_names = [field.name for field in metadata_fields]
    rows = ManifestRows(path, "row")
    number = 0
    try:
        # Row group by row group: a corrupt group fails after every row before it was read.
        batches = (
            batch
            for group in range(parquet.metadata.num_row_groups)
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, row_groups=[group])
        )
        for batch in batches:
            batch_rows, unreadable = _batch_rows(batch)
            for index, row in enumerate(batch_rows):
                number += 1
                metadata = {name: row[name] for name in metadata_names}
                for name in string_columns:
                    metadata[name] = _as_string(metadata[name])
                problem: str | None = None
                if index in unreadable:
                    column, problem = unreadable[index]
                    if column == "id":
                        yield rows.failed(number, problem)
                        continue
                for name in unsigned_columns:
                    if (value := metadata[name]) is not None and value > INT64_MAX:
                        problem = problem or f"column {name!r}: {value} does not fit a 64-bit integer"
                        metadata[name] = None
                yield rows.ref(number, row, metadata, problem)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise ManifestError(f"cannot read the Parquet file after row {number}: {exc}", path=path) from None


def _batch_rows(batch: Any) -> tuple[list[dict[str, Any]], dict[int, tuple[str, str]]]:
    """A Parquet batch's rows, and for each row holding a value Python cannot hold: (its column, why).

    Such a value (a string whose bytes are not UTF-8, a date past the year 9999) fails the conversion
    of its whole batch; only then is the batch converted column by column, and a failing column value
    by value, so that the value costs its row alone and the common path stays one call per batch.
    """
    try:
        return batch.to_pylist(), {}
    except (ValueError, ArithmeticError):
        pass
    unreadable: dict[int, tuple[str, str]] = {}
    columns: list[list[Any]] = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        try:
            columns.append(column.to_pylist())
            continue
        except (ValueError, ArithmeticError):
            pass
        values: list[Any] = []
        for index in range(len(column)):
            try:
                values.append(column[index].as_py())
            except (ValueError, ArithmeticError) as exc:
                values.append(None)
                reason = (
                    "is not valid Unicode text: its bytes are not UTF-8"
                    if isinstance(exc, UnicodeDecodeError)
                    else f"holds a value docpipe cannot read ({exc})"
                )
                if name == "id" or index not in unreadable:  # an unreadable id decides how the row is named
                    unreadable[index] = (name, f"column {name!r} {reason}")
        columns.append(values)
    names = batch.schema.names
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)], unreadable


def parquet_metadata_columns(path: Path) -> dict[str, str]:
    """Every column but id, path and text, with the metadata kind of its Parquet type."""
    parquet = parquet_file(path)
    parquet_check_schema(path, parquet)
    return {field.name: arrow_kind(field.type) for field in parquet.schema_arrow if field.name not in RESERVED_COLUMNS}
