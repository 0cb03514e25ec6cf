"""A job's `[[fields]]` (the answer's columns) and `[[examples]]` (answers shown to the model), checked at load.

Each field entry is checked against its type (`fields.py`: which keys a type takes), named as a
person finds it in the file when it is wrong; each example's output is checked the way an answer is.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from pathlib import Path
from typing import Any

from .columns import RESERVED_COLUMNS
from .errors import JobError
from .fields import FIELD_OPTIONS, FIELD_TYPES, LIST_ITEM_TYPES, Field, FieldType, enum_values, types_taking
from .job_tables import check_keys, expect, positive_int

__all__ = ["MAX_EXAMPLES", "MAX_OPTIONAL_FIELDS", "NAME_RE", "parse_examples", "parse_fields"]

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
FIELD_KEYS = frozenset({"name", "type", "description", "required", *FIELD_OPTIONS})
# An optional field is `anyOf [type, null]` in the answer's schema, and structured outputs take at most
# 16 union-typed parameters per request ("Schema complexity limits",
# https://platform.claude.com/docs/en/build-with-claude/structured-outputs): a 17th would make every request a 400.
MAX_OPTIONAL_FIELDS = 16
EXAMPLE_KEYS = frozenset({"input", "output"})
MAX_EXAMPLES = 20


def _field_name(raw: dict[str, Any], where: str, path: Path | None) -> str:
    name: str = expect(raw, "name", str, where, path, "a field name")
    if not NAME_RE.match(name):
        raise JobError(
            f"field name {name!r} must be lower_snake_case (letters, digits, underscores)",
            path=path,
            key=f"{where}name",
        )
    if name in RESERVED_COLUMNS:
        raise JobError(f"field name {name!r} is reserved for a docpipe column", path=path, key=f"{where}name")
    return name


def _field_options(
    raw: dict[str, Any], kind: FieldType, where: str, path: Path | None
) -> tuple[tuple[tuple[str, str], ...], int | None, int | None]:
    """The entry's per-type keys (values, max_words, max_items), each refused on a type that does not take it."""
    values: tuple[tuple[str, str], ...] = ()
    if "values" in kind.options:
        try:
            values = enum_values(raw.get("values"))
        except ValueError as exc:
            raise JobError(str(exc), path=path, key=f"{where}values") from None
    elif "values" in raw:
        raise JobError(
            f"'values' applies to {types_taking('values')} fields only, not {kind.name}",
            path=path,
            key=f"{where}values",
        )
    if "items" in raw and ("items" not in kind.options or raw["items"] not in LIST_ITEM_TYPES):
        raise JobError(
            f"only {types_taking('items')} fields take items, and only "
            + " or ".join(f'items = "{item}"' for item in LIST_ITEM_TYPES),
            path=path,
            key=f"{where}items",
        )
    limits = []
    for key in ("max_words", "max_items"):
        limit = positive_int(raw, key, where, path)
        if limit is not None and key not in kind.options:
            raise JobError(
                f"'{key}' applies to {types_taking(key)} fields only, not {kind.name}", path=path, key=f"{where}{key}"
            )
        limits.append(limit)
    return values, limits[0], limits[1]


def _parse_field(raw: Any, index: int, path: Path | None) -> Field:
    where = f"fields[{index}]."
    if not isinstance(raw, dict):
        raise JobError("expected a table with name and type", path=path, key=f"fields[{index}]")
    check_keys(raw, FIELD_KEYS, where, path)
    for key in ("name", "type"):
        if key not in raw:
            raise JobError("missing required key", path=path, key=f"{where}{key}")
    name = _field_name(raw, where, path)
    try:
        type_name = raw["type"]
        kind = FIELD_TYPES.get(type_name) if isinstance(type_name, str) else None  # a TOML array is not hashable
        if kind is None:
            raise JobError(
                f"expected one of {', '.join(FIELD_TYPES)}, got {type_name!r}", path=path, key=f"{where}type"
            )
        description = expect(raw, "description", str, where, path, "a string") if "description" in raw else ""
        values, max_words, max_items = _field_options(raw, kind, where, path)
        required = expect(raw, "required", bool, where, path, "true or false") if "required" in raw else True
    except JobError as exc:  # the field named, as a person finds it in the file
        raise JobError(f"field {name!r}: {exc.detail}", path=path, key=exc.key) from None
    return Field(name, kind.name, description.strip(), values, max_words, max_items, required)


def parse_fields(data: dict[str, Any], path: Path | None) -> tuple[Field, ...]:
    raw_fields = data.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        raise JobError("a job needs at least one [[fields]] entry", path=path, key="fields")
    fields = tuple(_parse_field(raw, i, path) for i, raw in enumerate(raw_fields))
    seen: set[str] = set()
    for index, field in enumerate(fields):
        if field.name in seen:
            raise JobError(f"duplicate field name {field.name!r}", path=path, key=f"fields[{index}].name")
        seen.add(field.name)
    optional = [index for index, field in enumerate(fields) if not field.required]
    if len(optional) > MAX_OPTIONAL_FIELDS:
        raise JobError(
            f"at most {MAX_OPTIONAL_FIELDS} fields may be optional (structured outputs refuse a schema with more "
            f"union-typed parameters, and each optional field is one); this job has {len(optional)}",
            path=path,
            key=f"fields[{optional[MAX_OPTIONAL_FIELDS]}].required",
        )
    return fields


def parse_examples(data: dict[str, Any], fields: tuple[Field, ...], path: Path | None) -> tuple[tuple[str, str], ...]:
    """`[[examples]]`: a short input and the answer expected of it, checked against the fields as an answer is.

    They go in the cached prefix (`requests.system_prompt`), so they are paid for once per cache entry.
    """
    raw = data.get("examples", [])
    if not isinstance(raw, list) or len(raw) > MAX_EXAMPLES:
        raise JobError(f"expected at most {MAX_EXAMPLES} [[examples]] entries", path=path, key="examples")
    examples = []
    by_name = {field.name: field for field in fields}
    for index, example in enumerate(raw):
        where = f"examples[{index}]."
        if not isinstance(example, dict):
            raise JobError("expected a table with input and output", path=path, key=f"examples[{index}]")
        check_keys(example, EXAMPLE_KEYS, where, path)
        text = expect(example, "input", str, where, path, "the example document's text")
        if not text.strip():
            raise JobError("expected the example document's text, got an empty string", path=path, key=where + "input")
        output = example.get("output")
        if not isinstance(output, dict):
            raise JobError("expected a table of the job's fields and their values", path=path, key=where + "output")
        for name in output:
            if name not in by_name:
                raise JobError(f"{name!r} is not one of the job's fields", path=path, key=f"{where}output.{name}")
        answer: dict[str, Any] = {}
        for field in fields:
            if field.name not in output and field.required:
                raise JobError("missing: the field is required", path=path, key=f"{where}output.{field.name}")
            value = output.get(field.name)
            if isinstance(value, datetime.date | datetime.time):  # a TOML date: the answer gives it as text
                value = value.isoformat()
            if isinstance(value, float) and not math.isfinite(value):  # not JSON, and no answer can give it
                raise JobError(f"expected a finite number, got {value}", path=path, key=f"{where}output.{field.name}")
            try:
                field.convert(value)
            except ValueError as exc:
                raise JobError(str(exc), path=path, key=f"{where}output.{field.name}") from None
            answer[field.name] = value
        examples.append((text, json.dumps(answer, ensure_ascii=False)))
    return tuple(examples)
