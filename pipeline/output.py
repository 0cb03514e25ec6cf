"""The Parquet output: typed rows, written incrementally and atomically, exactly once.

Design. An output directory is a Parquet dataset that pandas, polars, DuckDB and
`pyarrow.dataset` read directly (`part-*.parquet`); docpipe's own bookkeeping lives in
`_`-prefixed names, which dataset readers skip. This module holds the rows' schema; the rest of
the output lives in one module per concept:

- `writer.py`: `ResultWriter` appends each finished row to a write-ahead journal (`journal.py`),
  so a SIGKILL loses none, and publishes the rows as parts, each whole or absent;
- `recovery.py`: `recover` publishes what a killed run left in the journal, and quarantines the
  lines it cannot read;
- `ledger.py`: `load_ledger` reads the done ledger (what a rerun skips) from the parts and the
  journal, read-only, and refuses a directory of another job or a column changing type;
- `parts.py`: how a part is named, written, and told apart from a foreign or corrupt file;
- `results.py`: `load_results`, the output as a DataFrame.

The output modules are the only ones that import pyarrow (and a Parquet manifest's reader).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

import pyarrow as pa

from . import columns as row_columns
from .errors import ConfigError
from .jobs import Job

__all__ = ["BASE_COLUMNS", "FIELDS_KEY", "TRAILING_COLUMNS", "arrow_type", "metadata_column_names", "output_schema"]

JOB_KEY, FINGERPRINT_KEY = b"docpipe.job", b"docpipe.job_fingerprint"
FIELDS_KEY = b"docpipe.fields"  # the job's fields as JSON: what readers score and chart without the job file

METADATA_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
}
_COMPOSITE_TYPE = re.compile(r"^(list|dictionary)<(.+)>$")
_TIMESTAMP_TYPE = re.compile(r"^timestamp\[(\w+), tz=([\w/+-]+)\]$")


@cache
def arrow_type(name: str) -> pa.DataType:
    """The Arrow type named in `columns.py` or `fields.py`: a pyarrow alias (`string`, `int64`, `date32`...),
    `list<T>`, `dictionary<T>` (int32 indices) or `timestamp[unit, tz=Z]`."""
    if composite := _COMPOSITE_TYPE.match(name):
        outer, inner = composite.groups()
        return pa.list_(arrow_type(inner)) if outer == "list" else pa.dictionary(pa.int32(), arrow_type(inner))
    if timestamp := _TIMESTAMP_TYPE.match(name):
        return pa.timestamp(timestamp.group(1), tz=timestamp.group(2))
    return pa.type_for_alias(name)


# (name, type, description) of the columns every row has, in order (`columns.py`). Job fields and
# manifest metadata columns come between `doc_sha256` and `status`.
BASE_COLUMNS: tuple[tuple[str, pa.DataType, str], ...] = tuple(
    (name, arrow_type(kind), text) for name, kind, text in row_columns.BASE_COLUMNS
)
TRAILING_COLUMNS: tuple[tuple[str, pa.DataType, str], ...] = tuple(
    (name, arrow_type(kind), text) for name, kind, text in row_columns.TRAILING_COLUMNS
)


def output_schema(job: Job, metadata_columns: Mapping[str, str] | None = None) -> pa.Schema:
    """The Parquet schema of a job's rows: base columns, metadata, the job's fields, bookkeeping."""
    fields: list[pa.Field] = [pa.field(name, kind) for name, kind, _ in BASE_COLUMNS]
    columns = metadata_column_names(metadata_columns or {}, job)
    for name, kind in (metadata_columns or {}).items():
        fields.append(pa.field(columns[name], METADATA_TYPES.get(kind, pa.string())))
    fields += [pa.field(field.name, arrow_type(field.arrow_type)) for field in job.fields]
    fields += [pa.field(name, kind) for name, kind, _ in TRAILING_COLUMNS]
    names = [field.name for field in fields]
    if len(set(names)) != len(names):  # readers refuse a Parquet file with two columns of one name
        twice = next(name for name in names if names.count(name) > 1)
        raise ConfigError(
            f"two output columns would be named {twice!r}: rename the manifest column that becomes it "
            "(a manifest column named like one of docpipe's or the job's is prefixed meta_)"
        )
    described: list[dict[str, Any]] = [{"name": field.name, "type": field.type} for field in job.fields]
    for entry, field in zip(described, job.fields, strict=True):
        if field.values:
            entry["values"] = [value for value, _ in field.values]
    metadata = {JOB_KEY: job.name, FINGERPRINT_KEY: job.fingerprint, FIELDS_KEY: json.dumps(described)}
    return pa.schema(fields, metadata=metadata)


def metadata_column_names(names: Iterable[str], job: Job) -> dict[str, str]:
    """Manifest metadata column -> output column (prefixed `meta_` when it clashes with ours)."""
    taken = {n for n, _, _ in BASE_COLUMNS + TRAILING_COLUMNS} | {f.name for f in job.fields}
    return {name: name if name not in taken else f"meta_{name}" for name in names}
