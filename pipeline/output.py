"""The Parquet output: typed rows, written incrementally and atomically, exactly once.

Design. An output directory is a Parquet dataset that pandas, polars, DuckDB and
`pyarrow.dataset` read directly (`part-*.parquet`); docpipe's own bookkeeping lives in
`_`-prefixed names, which dataset readers skip. This module holds the rows' schema; the rest of
the output lives in one module per concept, re-exported here:

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

import importlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .errors import ConfigError
from .jobs import Job

if TYPE_CHECKING:
    from .ledger import DoneLedger, load_ledger
    from .recovery import recover
    from .results import load_results
    from .writer import ResultWriter

__all__ = [
    "BASE_COLUMNS",
    "DoneLedger",
    "ResultWriter",
    "load_ledger",
    "load_results",
    "output_schema",
    "recover",
]

JOB_KEY, FINGERPRINT_KEY = b"docpipe.job", b"docpipe.job_fingerprint"

FIELD_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "enum": pa.dictionary(pa.int32(), pa.string()),
    "number": pa.float64(),
    "integer": pa.int64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "list": pa.list_(pa.string()),
}
METADATA_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
}
TIMESTAMP = pa.timestamp("us", tz="UTC")

# (name, type, description) of the columns every row has, in order. Job fields and manifest
# metadata columns come between `doc_sha256` and `status`.
BASE_COLUMNS: tuple[tuple[str, pa.DataType, str], ...] = (
    ("doc_id", pa.string(), "the document's id (manifest `id`, or path relative to the input folder)"),
    ("source", pa.string(), "where the document came from (relative path, or manifest:line for inline text)"),
    ("doc_sha256", pa.string(), "SHA-256 of the extracted text: what 'the same document' means"),
)
TRAILING_COLUMNS: tuple[tuple[str, pa.DataType, str], ...] = (
    ("status", pa.dictionary(pa.int32(), pa.string()), "ok or error"),
    ("error_type", pa.string(), "why it failed: extraction_error, refusal, schema_mismatch, overloaded_error..."),
    ("error_message", pa.string(), "what went wrong and what to do, for a person"),
    ("model", pa.string(), "the model that answered"),
    ("stop_reason", pa.string(), "the API's stop_reason"),
    ("input_tokens", pa.int64(), "uncached input tokens billed"),
    ("output_tokens", pa.int64(), "output tokens billed (thinking included)"),
    ("cache_read_tokens", pa.int64(), "input tokens read from the prompt cache"),
    ("cache_write_tokens", pa.int64(), "input tokens written to the prompt cache"),
    ("cost_usd", pa.float64(), "list-price cost of the successful response"),
    ("latency_ms", pa.float64(), "wall time of the successful attempt"),
    ("attempts", pa.int32(), "attempts made, retries included"),
    ("request_id", pa.string(), "the API's request-id of the last attempt"),
    ("streamed", pa.bool_(), "whether the response was streamed"),
    ("truncated", pa.bool_(), "whether the document was cut to job.max_document_tokens"),
    ("job", pa.string(), "the job's name"),
    ("job_fingerprint", pa.string(), "hash of everything in the job that changes the answer"),
    ("run_id", pa.string(), "the run that wrote the row"),
    ("backend", pa.string(), "api or emulator"),
    ("created_at", TIMESTAMP, "when the row was written (UTC)"),
    ("source_size", pa.int64(), "size in bytes of the source file (quick change check)"),
    ("source_mtime_ns", pa.int64(), "modification time of the source file (quick change check)"),
)


def output_schema(job: Job, metadata_columns: Mapping[str, str] | None = None) -> pa.Schema:
    """The Parquet schema of a job's rows: base columns, metadata, the job's fields, bookkeeping."""
    fields: list[pa.Field] = [pa.field(name, kind) for name, kind, _ in BASE_COLUMNS]
    columns = metadata_column_names(metadata_columns or {}, job)
    for name, kind in (metadata_columns or {}).items():
        fields.append(pa.field(columns[name], METADATA_TYPES.get(kind, pa.string())))
    fields += [pa.field(field.name, FIELD_TYPES[field.type]) for field in job.fields]
    fields += [pa.field(name, kind) for name, kind, _ in TRAILING_COLUMNS]
    names = [field.name for field in fields]
    if len(set(names)) != len(names):  # readers refuse a Parquet file with two columns of one name
        twice = next(name for name in names if names.count(name) > 1)
        raise ConfigError(
            f"two output columns would be named {twice!r}: rename the manifest column that becomes it "
            "(a manifest column named like one of docpipe's or the job's is prefixed meta_)"
        )
    return pa.schema(fields, metadata={JOB_KEY: job.name, FINGERPRINT_KEY: job.fingerprint})


def metadata_column_names(names: Iterable[str], job: Job) -> dict[str, str]:
    """Manifest metadata column -> output column (prefixed `meta_` when it clashes with ours)."""
    taken = {n for n, _, _ in BASE_COLUMNS + TRAILING_COLUMNS} | {f.name for f in job.fields}
    return {name: name if name not in taken else f"meta_{name}" for name in names}


# public name -> the module that defines it, imported on first use (they import this module)
_HOMES: dict[str, str] = {
    "DoneLedger": ".ledger",
    "load_ledger": ".ledger",
    "recover": ".recovery",
    "load_results": ".results",
    "ResultWriter": ".writer",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __package__), name)
    globals()[name] = value  # once resolved, a plain attribute
    return value
