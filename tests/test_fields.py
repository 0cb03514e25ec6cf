"""The field-type table: each type's column type, and one entry being all a new type needs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pipeline import fields
from pipeline.columns import BASE_COLUMNS, RESERVED_COLUMNS, TRAILING_COLUMNS
from pipeline.fields import FIELD_TYPES, Field, FieldType
from pipeline.jobs import parse_job
from pipeline.output import arrow_type, output_schema
from pipeline.requests import parse_answer, system_prompt

JOBS_DIR = Path(__file__).resolve().parent.parent / "jobs"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("string", pa.string()),
        ("enum", pa.dictionary(pa.int32(), pa.string())),
        ("number", pa.float64()),
        ("integer", pa.int64()),
        ("boolean", pa.bool_()),
        ("date", pa.date32()),
        ("list", pa.list_(pa.string())),
    ],
)
def test_each_field_type_has_its_column_type(kind: str, expected: pa.DataType) -> None:
    """A field's Parquet column has the Arrow type its type names."""
    data = {"job": {"instructions": "Do it."}, "fields": [{"name": "x", "type": kind}]}
    if kind == "enum":
        data["fields"][0]["values"] = ["a", "b"]
    assert expected == output_schema(parse_job(data)).field("x").type


def test_every_table_type_names_an_arrow_type() -> None:
    """Every field type and every fixed column names a type `output.arrow_type` can build."""
    names = [kind.arrow_type for kind in FIELD_TYPES.values()] + [t for _, t, _ in BASE_COLUMNS + TRAILING_COLUMNS]
    for name in names:
        assert isinstance(arrow_type(name), pa.DataType)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("doc_id", pa.string()),
        ("status", pa.dictionary(pa.int32(), pa.string())),
        ("attempts", pa.int32()),
        ("cost_usd", pa.float64()),
        ("streamed", pa.bool_()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("source_mtime_ns", pa.int64()),
    ],
)
def test_fixed_columns_keep_their_arrow_types(name: str, expected: pa.DataType) -> None:
    """The fixed columns, named once in columns.py, come out with the Arrow types of every earlier run."""
    job = parse_job({"job": {"instructions": "Do it."}, "fields": [{"name": "x", "type": "string"}]})
    assert expected == output_schema(job).field(name).type


def test_reserved_names_are_the_fixed_columns_in_schema_order() -> None:
    """The reserved names are the schema's own columns other than the job's fields."""
    job = parse_job({"job": {"instructions": "Do it."}, "fields": [{"name": "x", "type": "string"}]})
    assert set(output_schema(job).names) - {"x"} == RESERVED_COLUMNS


def test_a_new_field_type_is_one_table_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A type added to FIELD_TYPES alone is accepted in a job, described to the model, checked and typed."""

    def to_url(field: Field, value: Any) -> str:
        if not isinstance(value, str) or not value.startswith("https://"):
            raise ValueError(f"field '{field.name}' should be an https URL")
        return value

    url = FieldType(
        "url",
        arrow_type="large_string",
        schema=lambda field: {"type": "string", "format": "uri", "description": field.description},
        convert=to_url,
        prompt=lambda field: ["    An https URL."],
        options=frozenset({"max_words"}),
    )
    monkeypatch.setitem(FIELD_TYPES, "url", url)
    job = parse_job(
        {
            "job": {"instructions": "Find the link."},
            "fields": [{"name": "link", "type": "url", "description": "The link.", "max_words": 1}],
        }
    )
    assert {"type": "string", "format": "uri", "description": "The link."} == job.output_schema()["properties"]["link"]
    assert "- link (url): The link.\n    An https URL." in system_prompt(job)
    assert pa.large_string() == output_schema(job).field("link").type
    message = {"stop_reason": "end_turn", "content": [{"type": "text", "text": json.dumps({"link": "https://a"})}]}
    assert {"link": "https://a"} == parse_answer(job, message, document_id="d", request_id=None).values
    assert "string or url" == fields.types_taking("max_words")


def test_a_field_of_an_unknown_type_says_so() -> None:
    """A Field built by hand with a type the table lacks fails with a message naming the known types."""
    with pytest.raises(ValueError, match="unknown type float; expected one of string, enum"):
        Field("x", "float").json_schema()


def test_loading_a_job_imports_no_pyarrow() -> None:
    """`import pipeline` and loading a job leave pyarrow (the output module's alone) unloaded."""
    code = (
        "import sys, pipeline; from pathlib import Path; "
        f"job = pipeline.load_job(Path({str(JOBS_DIR / 'triage.toml')!r})); job.output_schema(); "
        "print(sorted(m for m in ('pyarrow', 'anthropic') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "[]" == loaded.strip()
