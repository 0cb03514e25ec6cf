"""Reading the output back: every part as one table, or the latest row per document, for people and notebooks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from .errors import ConfigError, EnvironmentFailure
from .fields import Field
from .output import BASE_COLUMNS, FIELDS_KEY, TRAILING_COLUMNS
from .parts import ARROW_ERRORS, CONVERSION_ERRORS, Parts, first_line, part_files, read_part, unreadable_part
from .stores import PartStore, RemotePart, location, open_store

__all__ = [
    "field_types",
    "job_fields",
    "latest_positions",
    "load_results",
    "load_table",
    "parts_at",
    "results_table",
]

# A column's Arrow type -> the job field type that writes it (`fields.FIELD_TYPES`' `arrow_type`, read backwards).
_FIELD_TYPE_OF = (
    (pa.types.is_dictionary, "enum"),
    (pa.types.is_string, "string"),
    (pa.types.is_floating, "number"),
    (pa.types.is_integer, "integer"),
    (pa.types.is_boolean, "boolean"),
    (pa.types.is_date, "date"),
    (pa.types.is_list, "list"),
)


def parts_at(out: str | os.PathLike[str] | Parts) -> Parts:
    """Where the parts of `out` live: a local directory, or the object store a URI names."""
    if isinstance(out, PartStore | Path):
        return out
    where = location(out, what="OUT")
    return open_store(where, what="OUT") if isinstance(where, str) else where


def _unified_dataset(out_dir: Parts) -> ds.Dataset | None:
    parts = part_files(out_dir)
    if not parts:
        return None
    schema: pa.Schema | None = None
    for part in parts:
        part_schema, _ = read_part(out_dir, part, None)
        try:
            schema = pa.unify_schemas([schema or part_schema, part_schema], promote_options="permissive")
        except CONVERSION_ERRORS as exc:
            cause = f"its columns clash with the other parts': {first_line(exc)}"
            raise unreadable_part(out_dir, part, cause) from None
    if isinstance(out_dir, PartStore):
        paths = [part.path for part in parts if isinstance(part, RemotePart)]
        return ds.dataset(paths, schema=schema, format="parquet", filesystem=out_dir.filesystem)
    return ds.dataset([str(p) for p in parts], schema=schema, format="parquet")


def _dataset_table(out_dir: Parts, dataset: ds.Dataset, job: str | None) -> pa.Table:
    """The dataset's rows; a part whose data is damaged past its footer is named."""
    try:
        return dataset.to_table(filter=(ds.field("job") == job) if job else None)
    except ARROW_ERRORS as exc:
        for part in part_files(out_dir):
            part_schema, _ = read_part(out_dir, part, None)
            read_part(out_dir, part, part_schema.names)  # a part damaged past its footer is named here
        raise EnvironmentFailure(f"{out_dir} cannot be read: {first_line(exc)}", path=Path(str(out_dir))) from None


def load_table(out_dir: Parts, *, columns: list[str], optional: tuple[str, ...] = ()) -> pa.Table:
    """These columns of every row of the output, as one Arrow table (empty when there is no part). Of the
    `optional` ones, a column no part has (written by an older docpipe) reads as nulls."""
    dataset = _unified_dataset(out_dir)
    if dataset is None:
        return pa.table({name: pa.array([]) for name in columns})
    present = [name for name in columns if name not in optional or name in dataset.schema.names]
    try:
        table = dataset.to_table(columns=present)
    except ARROW_ERRORS:
        table = _dataset_table(out_dir, dataset, None).select(present)
    for name in columns:
        if name not in present:
            table = table.append_column(name, pa.nulls(table.num_rows))
    return table.select(columns)


def field_types(out_dir: Parts) -> dict[str, str] | None:
    """The output's columns other than docpipe's own (the job's fields, and any manifest metadata), each with
    the field type that writes such a column; None when the directory holds no part."""
    dataset = _unified_dataset(out_dir)
    if dataset is None:
        return None
    own = {name for name, _, _ in BASE_COLUMNS + TRAILING_COLUMNS}
    types: dict[str, str] = {}
    for column in dataset.schema:
        if column.name in own:
            continue
        kind = next((name for is_kind, name in _FIELD_TYPE_OF if is_kind(column.type)), None)
        if kind is not None:
            types[column.name] = kind
    return types


def job_fields(out_dir: Parts, types: dict[str, str]) -> tuple[Field, ...] | None:
    """The job's fields as the newest part records them (names, types, enum values), each checked against the
    output's column `types`; None when the part predates the record or does not match."""
    parts = part_files(out_dir)
    if not parts:
        return None
    try:
        schema, _ = read_part(out_dir, parts[-1], None)
        recorded = json.loads((schema.metadata or {}).get(FIELDS_KEY, b"null"))
    except (*ARROW_ERRORS, EnvironmentFailure, ValueError):
        return None
    if not isinstance(recorded, list):
        return None
    fields = []
    for entry in recorded:
        if not (isinstance(entry, dict) and isinstance(entry.get("name"), str)
                and types.get(entry["name"]) == entry.get("type")):
            return None
        values = entry.get("values") or []
        fields.append(Field(entry["name"], entry["type"], values=tuple((str(value), "") for value in values)))
    return tuple(fields)


def load_results(out: str | os.PathLike[str] | Parts, *, job: str | None = None, latest: bool = True) -> Any:
    """The output as a pandas DataFrame (pandas, a dependency, is imported here only): the latest row per document.

    `out` is an output directory, or the URI of one in object storage (`s3://bucket/prefix`).

    `latest=False` returns every row ever written, errors and superseded answers included. A part
    that is corrupt or not docpipe's raises `EnvironmentFailure` naming it.
    """
    return results_table(out, job=job, latest=latest).to_pandas()


def results_table(out: str | os.PathLike[str] | Parts, *, job: str | None = None, latest: bool = True) -> pa.Table:
    """What `load_results` returns, as an Arrow table (for writers that want Python values, not pandas')."""
    parts = parts_at(out)
    dataset = _unified_dataset(parts)
    if dataset is None:
        raise ConfigError(f"no results in {out}: run `docpipe run JOB INPUT --out {out}` first")
    table = _dataset_table(parts, dataset, job)
    if latest and table.num_rows:
        table = table.take(latest_positions(table))
    return table


def latest_positions(table: pa.Table) -> pa.Array:
    """The positions of the latest row of each document (by created_at, the later position on a tie), in
    doc_id order. Only the two key columns are sorted: sorting every column took seconds and a copy of the
    table for a few hundred thousand rows."""
    keys = pa.table({
        "doc_id": table.column("doc_id"),
        "created_at": table.column("created_at"),
        "position": pa.array(range(table.num_rows), type=pa.int64()),
    })
    order = pc.sort_indices(keys, sort_keys=[("doc_id", "ascending"), ("created_at", "descending"),
                                            ("position", "descending")])
    doc_ids = pc.take(keys.column("doc_id"), order)
    starts = pc.not_equal(doc_ids.slice(1), doc_ids.slice(0, len(doc_ids) - 1))
    first = pa.concat_arrays([pa.array([0], type=pa.int64()),
                              pc.add(pc.indices_nonzero(starts.combine_chunks()), 1).cast(pa.int64())])
    return pc.take(pc.take(keys.column("position"), order), first)
