"""Field types: what docpipe knows about each kind of output field, in one table.

A job's `[[fields]]` entry names a type, and the type decides everything that differs between
fields: which per-type keys the entry takes (`values`, `max_words`, `max_items`, `items`), the
JSON-schema fragment sent in `output_config.format`, the lines the system prompt gives the field,
how a value of the model's answer is checked and converted for its row, and the Arrow type of the
field's Parquet column. `jobs.py` (validating a job), `requests.py` (the prompt and the answer) and
`output.py` (the Parquet schema) all ask `FIELD_TYPES`, so a new field type is one entry in it.

The Arrow type is given by name (`output.arrow_type` reads it), so that loading a job imports no
pyarrow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from .surrogates import utf8_problem

__all__ = ["FIELD_TYPES", "Field", "FieldType", "enum_values", "types_taking"]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# The per-type keys of a `[[fields]]` entry (every entry also takes name, type, description, required).
FIELD_OPTIONS = ("values", "max_words", "max_items", "items")
LIST_ITEM_TYPES = ("string",)
PROMPT_INDENT = "    "


@dataclass(frozen=True, slots=True)
class Field:
    """One output field: a JSON-schema property, lines of the system prompt and a typed Parquet column."""

    name: str
    type: str
    description: str = ""
    values: tuple[tuple[str, str], ...] = ()  # enum: (value, description)
    max_words: int | None = None  # string
    max_items: int | None = None  # list
    required: bool = True

    @property
    def kind(self) -> FieldType:
        """The field's type, from `FIELD_TYPES`."""
        kind = FIELD_TYPES.get(self.type)
        if kind is None:
            raise ValueError(
                f"field '{self.name}' has unknown type {self.type}; expected one of {', '.join(FIELD_TYPES)}"
            )
        return kind

    @property
    def arrow_type(self) -> str:
        """The Arrow type of the field's column, by name (see `output.arrow_type`)."""
        return self.kind.arrow_type

    def json_schema(self) -> dict[str, Any]:
        """The field's property in the answer's JSON schema; an optional field may also be null."""
        schema = self.kind.schema(self)
        if not self.required:
            return {"anyOf": [schema, {"type": "null"}]}
        return schema

    def prompt_lines(self) -> list[str]:
        """The field as the system prompt lists it: its name, type and meaning, then what its type adds."""
        head = f"- {self.name} ({self.type}){': ' + self.description if self.description else ''}"
        return [head, *self.kind.prompt(self)]

    def convert(self, value: Any) -> Any:
        """The answer's value as the row stores it; ValueError, naming the field, when it does not fit."""
        if value is None:
            if self.required:
                raise ValueError(f"field '{self.name}' is null but required")
            return None
        return self.kind.convert(self, value)


@dataclass(frozen=True, slots=True)
class FieldType:
    """One kind of field. `schema` gives the JSON-schema fragment of a field, description included;
    `prompt` the lines the system prompt adds under the field's own; `convert` checks and converts a
    non-null answer value (ValueError when it does not fit); `options` are the per-type keys of a
    `[[fields]]` entry it takes; `arrow_type` names its column's Arrow type."""

    name: str
    arrow_type: str
    schema: Callable[[Field], dict[str, Any]]
    convert: Callable[[Field, Any], Any]
    prompt: Callable[[Field], list[str]] = lambda _: []  # most types add no lines
    options: frozenset[str] = frozenset()


def _described(schema: dict[str, Any], description: str) -> dict[str, Any]:
    if description:
        schema["description"] = description
    return schema


def _at_most(description: str, limit: int | None, unit: str) -> str:
    return f"{description} At most {limit} {unit}.".strip() if limit else description


def _check_text(field: Field, value: str) -> None:
    """A `\\ud800` escape in an answer decodes to a lone surrogate, which no row can store."""
    problem = utf8_problem(value)
    if problem is not None:
        raise ValueError(f"field '{field.name}' is not valid Unicode text: it holds {problem}")


def _string_schema(field: Field) -> dict[str, Any]:
    return _described({"type": "string"}, _at_most(field.description, field.max_words, "words"))


def _string_prompt(field: Field) -> list[str]:
    return [f"{PROMPT_INDENT}At most {field.max_words} words."] if field.max_words else []


def _to_string(field: Field, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"field '{field.name}' should be a string")
    _check_text(field, value)
    return value


def _enum_schema(field: Field) -> dict[str, Any]:
    lines = "\n".join(f"- {value}: {text}" if text else f"- {value}" for value, text in field.values)
    description = f"{field.description}\nOne of:\n{lines}".strip()
    return _described({"type": "string", "enum": [value for value, _ in field.values]}, description)


def _enum_prompt(field: Field) -> list[str]:
    return [
        f"{PROMPT_INDENT}- {value}: {text}" if text else f"{PROMPT_INDENT}- {value}" for value, text in field.values
    ]


def _to_enum(field: Field, value: Any) -> Any:
    allowed = [v for v, _ in field.values]
    if value not in allowed:
        raise ValueError(f"field '{field.name}' is {value!r}, not one of {allowed}")
    return value


def _plain_schema(field: Field) -> dict[str, Any]:
    return _described({"type": field.type}, field.description)


def _to_number(field: Field, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"field '{field.name}' should be a number")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"field '{field.name}' is a number too large for a 64-bit float") from None


def _to_integer(field: Field, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"field '{field.name}' should be an integer")
    if not INT64_MIN <= value <= INT64_MAX:  # the column is int64: such a row could never be written
        raise ValueError(f"field '{field.name}' is an integer outside the 64-bit range")
    return value


def _to_boolean(field: Field, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"field '{field.name}' should be true or false")
    return value


def _date_schema(field: Field) -> dict[str, Any]:
    description = f"{field.description} An ISO 8601 date (YYYY-MM-DD).".strip()
    return _described({"type": "string", "format": "date"}, description)


def _to_date(field: Field, value: Any) -> date:
    if not isinstance(value, str):
        raise ValueError(f"field '{field.name}' should be an ISO date string")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"field '{field.name}' is {value!r}, not an ISO date (YYYY-MM-DD)") from None


def _list_schema(field: Field) -> dict[str, Any]:
    description = _at_most(field.description, field.max_items, "items")
    return _described({"type": "array", "items": {"type": "string"}}, description)


def _list_prompt(field: Field) -> list[str]:
    return [f"{PROMPT_INDENT}At most {field.max_items} items."] if field.max_items else []


def _to_list(field: Field, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"field '{field.name}' should be a list of strings")
    for item in value:
        _check_text(field, item)
    return value


FIELD_TYPES: dict[str, FieldType] = {
    kind.name: kind
    for kind in (
        FieldType(
            "string",
            arrow_type="string",
            schema=_string_schema,
            convert=_to_string,
            prompt=_string_prompt,
            options=frozenset({"max_words"}),
        ),
        FieldType(
            "enum",
            arrow_type="dictionary<string>",
            schema=_enum_schema,
            convert=_to_enum,
            prompt=_enum_prompt,
            options=frozenset({"values"}),
        ),
        FieldType("number", arrow_type="float64", schema=_plain_schema, convert=_to_number),
        FieldType("integer", arrow_type="int64", schema=_plain_schema, convert=_to_integer),
        FieldType("boolean", arrow_type="bool", schema=_plain_schema, convert=_to_boolean),
        FieldType("date", arrow_type="date32", schema=_date_schema, convert=_to_date),
        FieldType(
            "list",
            arrow_type="list<string>",
            schema=_list_schema,
            convert=_to_list,
            prompt=_list_prompt,
            options=frozenset({"max_items", "items"}),
        ),
    )
}


def types_taking(option: str) -> str:
    """The field types that take a per-type key, for a message: `string`, or `enum or list`."""
    return " or ".join(name for name, kind in FIELD_TYPES.items() if option in kind.options)


def enum_values(raw: object) -> tuple[tuple[str, str], ...]:
    """An enum's `values` (a table of value = "description", or a list of strings; None when absent) as
    (value, description) pairs; ValueError saying what is wrong."""
    if raw is None:
        raise ValueError('an enum field needs values = { value = "description", ... }')
    if isinstance(raw, list) and all(isinstance(v, str) for v in raw):
        values = tuple((v, "") for v in raw)
    elif isinstance(raw, dict) and all(isinstance(v, str) for v in raw.values()):
        values = tuple((str(k), str(v)) for k, v in raw.items())
    else:
        raise ValueError('expected a table of value = "description" (or a list of strings)')
    if len(values) < 2:
        raise ValueError("an enum needs at least two values")
    if len({value for value, _ in values}) != len(values):
        raise ValueError("enum values must be distinct")
    return values
