"""Part files: how a part is named, written whole or not at all, and told apart from a foreign file.

A part is written to a temporary name, fsynced and renamed, so it is either whole or absent; in
object storage it is uploaded under its final, unique name, visible whole or not at all (`stores`). A
part that is not readable Parquet, or lacks docpipe's bookkeeping columns, is an
`EnvironmentFailure` naming it and the command that sets it aside. A column keeps one type per
output directory (`check_types`): readers cannot unify two types of one column (pandas, DuckDB and
`load_results` all fail), and casting values behind the user's back could turn "high" into an
error row or a null.

The journal's header carries the Arrow schema of its rows, serialized here (`journal_header`,
`header_schema`) so that `journal.py` stays free of pyarrow.
"""

from __future__ import annotations

import base64
import os
import shlex
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .errors import ConfigError, EnvironmentFailure
from .jobs import Job
from .journal import JournalHeader
from .output import BASE_COLUMNS, FINGERPRINT_KEY, JOB_KEY, TRAILING_COLUMNS
from .stores import PartStore, RemotePart

__all__ = [
    "ARROW_ERRORS",
    "CONVERSION_ERRORS",
    "LEDGER_COLUMNS",
    "PART_PREFIX",
    "Part",
    "Parts",
    "check_types",
    "first_line",
    "header_schema",
    "journal_header",
    "part_exists",
    "part_files",
    "part_path",
    "read_part",
    "rows_table",
    "schema_job",
    "schema_problem",
    "unreadable_part",
    "write_part",
]

PART_PREFIX = "part-"
PART_SUFFIX = ".parquet"
Parts = Path | PartStore  # where an output's parts live: its local directory, or a prefix in object storage
Part = Path | RemotePart
PARTS_QUARANTINE_DIR = "_quarantine"  # where a person sets aside a corrupt part; readers skip `_` names
# The columns the ledger reads; a docpipe part has at least these, of these types.
LEDGER_COLUMNS = [
    "doc_id",
    "doc_sha256",
    "job_fingerprint",
    "status",
    "source_size",
    "source_mtime_ns",
    "job",
    "error_type",
    "error_message",
]
# What a reader may raise on a file that is not (whole) Parquet, or on a row that does not fit.
ARROW_ERRORS = (pa.ArrowException, OSError)
CONVERSION_ERRORS = (pa.ArrowException, TypeError, ValueError, OverflowError)
_PART_COLUMN_TYPES: dict[str, pa.DataType] = {
    name: kind for name, kind, _ in BASE_COLUMNS + TRAILING_COLUMNS if name in LEDGER_COLUMNS
}


def schema_job(schema: pa.Schema) -> str:
    job: bytes = (schema.metadata or {}).get(JOB_KEY, b"")
    return job.decode("utf-8")


def journal_header(schema: pa.Schema) -> JournalHeader:
    metadata = schema.metadata or {}
    encoded = base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")
    return JournalHeader(schema_job(schema), metadata.get(FINGERPRINT_KEY, b"").decode("utf-8"), encoded)


def header_schema(header: JournalHeader) -> pa.Schema | None:
    try:
        return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(header.schema, validate=True)))
    except (ValueError, pa.ArrowException):
        return None


def rows_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


def part_path(out_dir: Path, name: str) -> Path:
    return out_dir / f"{PART_PREFIX}{name}{PART_SUFFIX}"


def part_exists(parts: Parts, name: str) -> bool:
    """Whether the part of journal segment `name` is published."""
    if isinstance(parts, PartStore):
        return parts.exists(f"{PART_PREFIX}{name}{PART_SUFFIX}")
    return part_path(parts, name).exists()


def write_part(parts: Parts, name: str, table: pa.Table) -> None:
    """Publish a part whole or not at all: locally by a rename, in object storage by one upload (`stores`)."""
    if isinstance(parts, PartStore):
        parts.write_table(f"{PART_PREFIX}{name}{PART_SUFFIX}", table)
        return
    out_dir = parts
    final = part_path(out_dir, name)
    temporary = out_dir / f".{PART_PREFIX}{name}.parquet.tmp"
    # The local filesystem named: pyarrow would read a path like "s3:/x" or "file:/x" as a URI.
    pq.write_table(table, str(temporary), compression="zstd", filesystem=pafs.LocalFileSystem())
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, final)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def part_files(parts: Parts) -> list[Part]:
    """The parts in name order (which is the order they were written)."""
    if isinstance(parts, PartStore):
        return [parts.part(name) for name in parts.names(PART_PREFIX, PART_SUFFIX)]
    if not parts.is_dir():
        return []
    return list(sorted(parts.glob(f"{PART_PREFIX}*{PART_SUFFIX}")))


def unreadable_part(parts: Parts, part: Part, cause: str) -> EnvironmentFailure:
    """The one-line error for a file that sits among the parts but is not one: what, why, what to do."""
    if isinstance(parts, PartStore) or isinstance(part, RemotePart):
        return EnvironmentFailure(
            f"{part} is not a readable docpipe part: {cause}. Nothing was changed; move it under "
            f"{parts}/{PARTS_QUARANTINE_DIR}/ (dataset readers skip `_` names) and run again",
            path=Path(str(part)),
        )
    out_dir = parts
    aside = out_dir / PARTS_QUARANTINE_DIR
    command = f"mkdir -p {shlex.quote(str(aside))} && mv {shlex.quote(str(part))} {shlex.quote(str(aside))}/"
    return EnvironmentFailure(
        f"{part} is not a readable docpipe part: {cause}. Nothing was changed; set it aside (dataset "
        f"readers skip `_` names) and run again: {command}",
        path=part,
    )


def schema_problem(schema: pa.Schema) -> str | None:
    """Why a schema is not one of docpipe's rows (a column missing or of another type), or None."""
    for name, kind in _PART_COLUMN_TYPES.items():
        index = schema.get_field_index(name)
        if index < 0:
            return f"it has no column {name!r}"
        actual = schema.field(index).type
        if actual != kind and not (name == "status" and actual == pa.string()):
            return f"its column {name!r} is {actual}, not {kind}"
    return None


def read_part(parts: Parts, part: Part, columns: list[str] | None) -> tuple[pa.Schema, pa.Table | None]:
    """A part's schema and the given columns; EnvironmentFailure for a corrupt or foreign file."""
    try:
        source = parts.open_input_file(part.path) if isinstance(parts, PartStore) and isinstance(part, RemotePart) \
            else part
        with pq.ParquetFile(source) as parquet:
            schema = parquet.schema_arrow
            problem = schema_problem(schema)
            if problem is not None:
                raise unreadable_part(parts, part, problem)
            return schema, parquet.read(columns=columns, use_threads=False) if columns is not None else None
    except ARROW_ERRORS as exc:
        raise unreadable_part(parts, part, first_line(exc)) from None


def check_types(out_dir: Parts, where: str, existing: pa.Schema, schema: pa.Schema, job: Job) -> None:
    """Refuse a run that would write a column of the directory with another type (see the docstring)."""
    fields = {f.name for f in job.fields}
    ours = {name for name, _, _ in BASE_COLUMNS + TRAILING_COLUMNS}
    for column in schema:
        index = existing.get_field_index(column.name)
        if index < 0 or existing.field(index).type == column.type:
            continue
        before, after = existing.field(index).type, column.type
        if column.name in fields:
            advice = f"set field {column.name!r} of job {job.name!r} back to its earlier type"
        elif column.name in ours:
            advice = "run the docpipe version that wrote it"
        else:
            advice = (
                f"give the manifest's {column.name!r} {before} values again (a CSV manifest gives "
                "strings only; a JSONL one takes each column's type from its first value)"
            )
        raise ConfigError(
            f"{out_dir} holds column {column.name!r} as {before} ({where}), but this run would write it as "
            f"{after}; a column keeps one type in an output directory. Nothing was changed: {advice}, "
            "or write this run to a new --out directory"
        )

