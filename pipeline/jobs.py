"""Job definitions: what to ask of every document, and what a row of the answer looks like.

A job file (TOML) names the model, the instructions and the output fields. The fields become both
the structured-output JSON schema sent with every request and the typed columns of the Parquet
output, so the two cannot drift apart; what each type of field means is in `fields.py`. Everything
that changes the answer goes into the job's fingerprint, which every row carries: a job edit
re-processes every document, a rerun of the same job never does.

    [job]
    name = "triage"
    model = "claude-haiku-5-5"
    max_tokens = 1024
    instructions = "Classify the document..."

    [[fields]]
    name = "label"
    type = "enum"
    description = "The kind of document."
    values = { invoice = "A bill or request for payment", contract = "An agreement between parties" }
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .columns import RESERVED_COLUMNS
from .errors import JobError
from .fields import FIELD_OPTIONS, FIELD_TYPES, LIST_ITEM_TYPES, Field, FieldType, enum_values, types_taking
from .models import DEFAULT_MODEL, MODELS, ModelSpec, get_model

__all__ = [
    "FIELD_TYPES",
    "Field",
    "Job",
    "RetrySettings",
    "load_job",
    "parse_job",
]

STREAM_MODES = ("auto", "always", "never")
TOO_LONG_POLICIES = ("truncate", "error", "chunk")  # chunk: pieces that fit, then one reduce request
TRUNCATE_KEEPS = ("head", "head_and_tail")
PDF_MODES = ("auto", "native", "text")  # native: a `document` block, as the model sees the file; auto: by text layer
BATCH_RETRIES = ("batch", "realtime")
ATTACHMENT_MODES = ("sections", "documents")  # an e-mail's attachments: sections of it, or documents of their own
CACHE_TTLS = ("5m", "1h", "off")  # off: no cache_control (every request pays its whole prompt)
EFFORTS = ("low", "medium", "high", "xhigh", "max")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
DEFAULT_MAX_TOKENS = 1024
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MAX_DOCUMENT_TOKENS = 100_000
# An optional field is `anyOf [type, null]` in the answer's schema, and structured outputs take at most
# 16 union-typed parameters per request ("Schema complexity limits",
# https://platform.claude.com/docs/en/build-with-claude/structured-outputs): a 17th would make every request a 400.
MAX_OPTIONAL_FIELDS = 16
PROMPT_VERSION = 1  # bump when the prompt template in requests.py changes the answer

JOB_KEYS = frozenset(
    {
        "name",
        "description",
        "model",
        "max_tokens",
        "instructions",
        "stream",
        "timeout_s",
        "too_long",
        "truncate",
        "max_document_tokens",
        "pdf",
        "cache_ttl",
        "cache_warmup",
        "batch_above",
        "batch_retry",
        "effort",
        "schema_retries",
        "context_window",  # a model the table does not know: its limits, checked at load
        "max_output_tokens",
        "attachments",
    }
)
FIELD_KEYS = frozenset({"name", "type", "description", "required", *FIELD_OPTIONS})
RETRY_KEYS = frozenset({"max_attempts", "max_time_s", "initial_backoff_s", "max_backoff_s"})
LIMIT_KEYS = frozenset({"rpm", "itpm", "otpm"})
# USD per million tokens, over the model table and any DOCPIPE_PRICES file (pricing.PRICE_FIELDS)
PRICE_KEYS = frozenset({"input_usd", "output_usd", "cache_write_5m_usd", "cache_write_1h_usd", "cache_read_usd"})


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """Bounds of the one retry layer (see retry.py)."""

    max_attempts: int = 8
    max_time_s: float = 600.0
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Job:
    """A validated job definition."""

    name: str
    path: Path | None
    model: str
    max_tokens: int
    instructions: str
    fields: tuple[Field, ...]
    description: str = ""
    stream: str = "auto"
    timeout_s: float = DEFAULT_TIMEOUT_S
    too_long: str = "truncate"
    truncate: str = "head"  # or "head_and_tail": what a truncated document keeps
    max_document_tokens: int = DEFAULT_MAX_DOCUMENT_TOKENS
    pdf: str = "auto"  # "native", "text", or auto: native when a PDF has little or no text layer
    cache_ttl: str | None = None  # "5m", "1h" or "off"; None: by mode, 5m realtime and 1h in batches
    cache_warmup: bool = True  # realtime: the first request leads, the fan-out waits for its response to begin
    batch_above: int | None = None  # --mode auto: from this many documents to send, Message Batches
    batch_retry: str = "batch"  # or "realtime": what a batch left unanswered goes out at once, not in a follow-up
    prices: tuple[tuple[str, float], ...] = ()  # [prices]: the job's own (negotiated, or a new model's), by field
    effort: str | None = None
    schema_retries: int = 2
    attachments: str = "sections"  # or "documents": each attachment of an e-mail a document of its own
    retry: RetrySettings = RetrySettings()
    rpm: int | None = None
    itpm: int | None = None
    otpm: int | None = None
    examples: tuple[tuple[str, str], ...] = ()  # [[examples]]: (input text, the expected answer as JSON)

    def output_schema(self) -> dict[str, Any]:
        """The structured-output JSON schema of one answer."""
        return {
            "type": "object",
            "properties": {field.name: field.json_schema() for field in self.fields},
            "required": [field.name for field in self.fields],
            "additionalProperties": False,
        }

    @property
    def model_note(self) -> str | None:
        """A warning line for a model docpipe's table does not know: what is not checked, and its price."""
        if get_model(self.model) is not None:
            return None
        from .pricing import model_prices

        priced = model_prices(self.model, self.prices) is not None
        return (
            f"model {self.model!r} is not in docpipe's model table: its limits are the API's (and the job's "
            "context_window / max_output_tokens, if set)"
            + (
                ""
                if priced
                else "; it has no prices ([prices] in the job, or DOCPIPE_PRICES), so cost_usd is null and "
                "--max-cost cannot cap it"
            )
        )

    @property
    def fingerprint(self) -> str:
        """A short hash of everything that changes the answer (not timeouts, retries or limits)."""
        material = {
            "prompt_version": PROMPT_VERSION,
            "model": self.model,
            "max_tokens": self.max_tokens,
            "instructions": self.instructions,
            "schema": self.output_schema(),
            "too_long": self.too_long,
            "max_document_tokens": self.max_document_tokens,
            "effort": self.effort,
        }
        # Added later: in the material only when set otherwise, so that the jobs written before keep their fingerprint.
        if self.truncate != "head":
            material["truncate"] = self.truncate
        if self.pdf != "auto":
            material["pdf"] = self.pdf
        if self.attachments != "sections":  # an e-mail's text changes
            material["attachments"] = self.attachments
        if self.examples:
            material["examples"] = [list(example) for example in self.examples]
        canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _expect(
    table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, path: Path | None, what: str
) -> Any:
    value = table[key]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise JobError(f"expected {what}, got {value!r}", path=path, key=f"{where}{key}")
    if not isinstance(value, kind):
        raise JobError(f"expected {what}, got {type(value).__name__} {value!r}", path=path, key=f"{where}{key}")
    return value


def _check_keys(table: dict[str, Any], allowed: frozenset[str], where: str, path: Path | None) -> None:
    for key in table:
        if key not in allowed:
            raise JobError(
                f"unknown key; expected one of: {', '.join(sorted(allowed))}", path=path, key=f"{where}{key}"
            )


def _positive_int(table: dict[str, Any], key: str, where: str, path: Path | None) -> int | None:
    if key not in table:
        return None
    value = _expect(table, key, int, where, path, "a positive integer")
    if value <= 0:
        raise JobError(f"expected a positive integer, got {value}", path=path, key=f"{where}{key}")
    return int(value)


def _seconds(table: dict[str, Any], key: str, default: float, where: str, path: Path | None) -> float:
    if key not in table:
        return default
    value = float(_expect(table, key, (int, float), where, path, "a number of seconds >= 0"))
    if value < 0:
        raise JobError(f"expected a number of seconds >= 0, got {value:g}", path=path, key=f"{where}{key}")
    return value


def _choice(
    table: dict[str, Any], key: str, choices: tuple[str, ...], default: str, where: str, path: Path | None
) -> str:
    if key not in table:
        return default
    value = table[key]
    if value not in choices:
        raise JobError(
            f"expected one of {', '.join(map(repr, choices))}, got {value!r}", path=path, key=f"{where}{key}"
        )
    return str(value)


def _field_name(raw: dict[str, Any], where: str, path: Path | None) -> str:
    name: str = _expect(raw, "name", str, where, path, "a field name")
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
        limit = _positive_int(raw, key, where, path)
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
    _check_keys(raw, FIELD_KEYS, where, path)
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
        description = _expect(raw, "description", str, where, path, "a string") if "description" in raw else ""
        values, max_words, max_items = _field_options(raw, kind, where, path)
        required = _expect(raw, "required", bool, where, path, "true or false") if "required" in raw else True
    except JobError as exc:  # the field named, as a person finds it in the file
        raise JobError(f"field {name!r}: {exc.detail}", path=path, key=exc.key) from None
    return Field(name, kind.name, description.strip(), values, max_words, max_items, required)


def _model(table: dict[str, Any], path: Path | None) -> tuple[str, ModelSpec | None, int, int | None]:
    """The job's model, its spec (None for a model the table does not know), max_tokens, and its context window.

    The model table is knowledge, not a gate: a model it does not know (released after this docpipe)
    runs, its limits from the job (`context_window`, `max_output_tokens`) where it gives them, else
    from the API (`GET /v1/models`, asked at run time) and its refusals.
    """
    model = _expect(table, "model", str, "job.", path, "a model id") if "model" in table else DEFAULT_MODEL
    if not model.strip():
        raise JobError("expected a model id, got an empty string", path=path, key="job.model")
    spec = get_model(model)
    if spec is not None and spec.lifecycle == "retired":
        served = ", ".join(sorted(m.id for m in MODELS.values() if m.lifecycle != "retired" and m.line == spec.line))
        raise JobError(
            f"model {model!r} is retired{f' since {spec.retires_at}' if spec.retires_at else ''} and answers every "
            f"request with an error; choose a served model (the {spec.line} line: {served})",
            path=path,
            key="job.model",
        )
    max_output = spec.max_output_tokens if spec is not None else _positive_int(table, "max_output_tokens", "job.", path)
    context = spec.max_input_tokens if spec is not None else _positive_int(table, "context_window", "job.", path)
    max_tokens = _positive_int(table, "max_tokens", "job.", path) or DEFAULT_MAX_TOKENS
    if max_output is not None and max_tokens > max_output:
        raise JobError(
            f"{max_tokens} exceeds {model}'s maximum output of {max_output} tokens",
            path=path,
            key="job.max_tokens",
        )
    return model, spec, max_tokens, context


def _instructions(table: dict[str, Any], path: Path | None) -> str:
    if "instructions" not in table:
        raise JobError(
            "missing required key: what the model should do with each document", path=path, key="job.instructions"
        )
    instructions = str(_expect(table, "instructions", str, "job.", path, "a string")).strip()
    if not instructions:
        raise JobError("must not be empty", path=path, key="job.instructions")
    return instructions


def _fields(data: dict[str, Any], path: Path | None) -> tuple[Field, ...]:
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


EXAMPLE_KEYS = frozenset({"input", "output"})
MAX_EXAMPLES = 20


def _examples(data: dict[str, Any], fields: tuple[Field, ...], path: Path | None) -> tuple[tuple[str, str], ...]:
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
        _check_keys(example, EXAMPLE_KEYS, where, path)
        text = _expect(example, "input", str, where, path, "the example document's text")
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


def _timeout_s(table: dict[str, Any], path: Path | None) -> float:
    timeout_s = (
        float(_expect(table, "timeout_s", (int, float), "job.", path, "a number of seconds"))
        if "timeout_s" in table
        else DEFAULT_TIMEOUT_S
    )
    if timeout_s <= 0:
        raise JobError("expected a positive number of seconds", path=path, key="job.timeout_s")
    return timeout_s


def _schema_retries(table: dict[str, Any], path: Path | None) -> int:
    schema_retries = (
        int(_expect(table, "schema_retries", int, "job.", path, "an integer >= 0")) if "schema_retries" in table else 2
    )
    if schema_retries < 0:
        raise JobError("expected an integer >= 0", path=path, key="job.schema_retries")
    return schema_retries


def _subtable(data: dict[str, Any], name: str, allowed: frozenset[str], path: Path | None) -> dict[str, Any]:
    """An optional table (`[retry]`, `[limits]`), empty when absent, its keys checked."""
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise JobError(f"expected a [{name}] table", path=path, key=name)
    _check_keys(table, allowed, f"{name}.", path)
    return table


def _prices(data: dict[str, Any], path: Path | None) -> tuple[tuple[str, float], ...]:
    """`[prices]`: USD per million tokens that replace the model table's (and a prices file's) for this job."""
    table = _subtable(data, "prices", PRICE_KEYS, path)
    prices = []
    for key, value in sorted(table.items()):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise JobError(f"expected a price in USD per million tokens (a number >= 0), got {value!r}",
                           path=path, key=f"prices.{key}")
        prices.append((key, float(value)))
    return tuple(prices)


def _retry_settings(data: dict[str, Any], path: Path | None) -> RetrySettings:
    table = _subtable(data, "retry", RETRY_KEYS, path)
    defaults = RetrySettings()
    return RetrySettings(
        max_attempts=_positive_int(table, "max_attempts", "retry.", path) or defaults.max_attempts,
        max_time_s=_seconds(table, "max_time_s", defaults.max_time_s, "retry.", path),
        initial_backoff_s=_seconds(table, "initial_backoff_s", defaults.initial_backoff_s, "retry.", path),
        max_backoff_s=_seconds(table, "max_backoff_s", defaults.max_backoff_s, "retry.", path),
    )


def _max_document_tokens(
    table: dict[str, Any], model: str, context: int | None, max_tokens: int, path: Path | None
) -> int:
    max_document_tokens = _positive_int(table, "max_document_tokens", "job.", path) or DEFAULT_MAX_DOCUMENT_TOKENS
    if context is not None and max_document_tokens + max_tokens > context:
        raise JobError(
            f"{max_document_tokens:,} document tokens plus max_tokens {max_tokens:,} exceed {model}'s context of "
            f"{context:,} tokens: every long document would be refused by the API; lower it",
            path=path,
            key="job.max_document_tokens",
        )
    return max_document_tokens


def parse_job(
    data: dict[str, Any], *, path: Path | None = None, default_name: str = "job", model: str | None = None
) -> Job:
    """Validate a parsed job document; every problem names the file and the key.

    `model` (the command line's `--model`) replaces the job's model before anything is checked, so
    every check that depends on the model is made for the one that will run.
    """
    _check_keys(data, frozenset({"job", "fields", "retry", "limits", "prices", "examples"}), "", path)
    table = data.get("job")
    if not isinstance(table, dict):
        raise JobError("missing [job] table", path=path, key="job")
    if model is not None:
        table = table | {"model": model}
    _check_keys(table, JOB_KEYS, "job.", path)
    name = _expect(table, "name", str, "job.", path, "a string") if "name" in table else default_name
    model, spec, max_tokens, context = _model(table, path)
    instructions = _instructions(table, path)
    fields = _fields(data, path)
    timeout_s = _timeout_s(table, path)
    schema_retries = _schema_retries(table, path)
    effort = _choice(table, "effort", EFFORTS, "", "job.", path) or None
    if effort is not None and spec is not None and effort not in spec.efforts:
        supported = ", ".join(spec.efforts) if spec.efforts else "none: leave effort out"
        raise JobError(
            f"{model} does not take effort {effort!r} (every request would be refused); it takes {supported}",
            path=path,
            key="job.effort",
        )
    retry = _retry_settings(data, path)
    max_document_tokens = _max_document_tokens(table, model, context, max_tokens, path)
    limits_table = _subtable(data, "limits", LIMIT_KEYS, path)
    return Job(
        name=name,
        path=path,
        model=model,
        max_tokens=max_tokens,
        instructions=instructions,
        fields=fields,
        description=_expect(table, "description", str, "job.", path, "a string") if "description" in table else "",
        stream=_choice(table, "stream", STREAM_MODES, "auto", "job.", path),
        timeout_s=timeout_s,
        too_long=_choice(table, "too_long", TOO_LONG_POLICIES, "truncate", "job.", path),
        truncate=_choice(table, "truncate", TRUNCATE_KEEPS, "head", "job.", path),
        pdf=_choice(table, "pdf", PDF_MODES, "auto", "job.", path),
        max_document_tokens=max_document_tokens,
        cache_ttl=_choice(table, "cache_ttl", CACHE_TTLS, "", "job.", path) or None,
        cache_warmup=_expect(table, "cache_warmup", bool, "job.", path, "true or false")
        if "cache_warmup" in table
        else True,
        batch_above=_positive_int(table, "batch_above", "job.", path),
        batch_retry=_choice(table, "batch_retry", BATCH_RETRIES, "batch", "job.", path),
        effort=effort,
        schema_retries=schema_retries,
        attachments=_choice(table, "attachments", ATTACHMENT_MODES, "sections", "job.", path),
        retry=retry,
        prices=_prices(data, path),
        examples=_examples(data, fields, path),
        rpm=_positive_int(limits_table, "rpm", "limits.", path),
        itpm=_positive_int(limits_table, "itpm", "limits.", path),
        otpm=_positive_int(limits_table, "otpm", "limits.", path),
    )


def load_job(path: Path, *, model: str | None = None) -> Job:
    """Read and validate a job file; `model` overrides the job's (`--model`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JobError("job file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JobError(f"cannot read job file: {exc}", path=path) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise JobError(f"not valid TOML: {exc}", path=path) from None
    return parse_job(data, path=path, default_name=path.stem, model=model)
