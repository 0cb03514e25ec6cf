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

import hashlib
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, JobError
from .fields import FIELD_TYPES, Field
from .job_fields import parse_examples, parse_fields
from .job_tables import check_keys, choice, expect, positive_int, seconds, subtable
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
DEFAULT_MAX_TOKENS = 1024
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MAX_DOCUMENT_TOKENS = 100_000
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
    prices_for: str | None = None  # set when --model runs another model than the job's: [prices] were for this one
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
        """A warning line: the job's [prices] left out under --model, a model docpipe's table does not know."""
        notes = []
        if self.prices_for is not None:
            notes.append(
                f"the job's [prices] are for {self.prices_for!r}, not applied to {self.model!r} (--model): its prices "
                "are the model table's or DOCPIPE_PRICES's"
            )
        if get_model(self.model) is None:
            from .pricing import model_prices

            notes.append(
                f"model {self.model!r} is not in docpipe's model table: its limits are the API's (and the job's "
                "context_window / max_output_tokens, if set)"
            )
            if model_prices(self.model, self.prices) is None:
                where = "DOCPIPE_PRICES" if self.prices_for else "[prices] in the job, or DOCPIPE_PRICES"
                notes[-1] += f"; it has no prices ({where}), so cost_usd is null and --max-cost cannot cap it"
        return "; ".join(notes) or None

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


def _model(table: dict[str, Any], path: Path | None) -> tuple[str, ModelSpec | None, int, int | None]:
    """The job's model, its spec (None for a model the table does not know), max_tokens, and its context window.

    The model table is knowledge, not a gate: a model it does not know (released after this docpipe)
    runs, its limits from the job (`context_window`, `max_output_tokens`) where it gives them, else
    from the API (`GET /v1/models`, asked at run time) and its refusals.
    """
    model = expect(table, "model", str, "job.", path, "a model id") if "model" in table else DEFAULT_MODEL
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
    max_output = spec.max_output_tokens if spec is not None else positive_int(table, "max_output_tokens", "job.", path)
    context = spec.max_input_tokens if spec is not None else positive_int(table, "context_window", "job.", path)
    max_tokens = positive_int(table, "max_tokens", "job.", path) or DEFAULT_MAX_TOKENS
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
    instructions = str(expect(table, "instructions", str, "job.", path, "a string")).strip()
    if not instructions:
        raise JobError("must not be empty", path=path, key="job.instructions")
    return instructions


def _timeout_s(table: dict[str, Any], path: Path | None) -> float:
    timeout_s = (
        float(expect(table, "timeout_s", (int, float), "job.", path, "a number of seconds"))
        if "timeout_s" in table
        else DEFAULT_TIMEOUT_S
    )
    if timeout_s <= 0:
        raise JobError("expected a positive number of seconds", path=path, key="job.timeout_s")
    return timeout_s


def _schema_retries(table: dict[str, Any], path: Path | None) -> int:
    schema_retries = (
        int(expect(table, "schema_retries", int, "job.", path, "an integer >= 0")) if "schema_retries" in table else 2
    )
    if schema_retries < 0:
        raise JobError("expected an integer >= 0", path=path, key="job.schema_retries")
    return schema_retries


def _prices(data: dict[str, Any], path: Path | None) -> tuple[tuple[str, float], ...]:
    """`[prices]`: USD per million tokens that replace the model table's (and a prices file's) for this job."""
    table = subtable(data, "prices", PRICE_KEYS, path)
    prices = []
    for key, value in sorted(table.items()):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise JobError(f"expected a price in USD per million tokens (a number >= 0), got {value!r}",
                           path=path, key=f"prices.{key}")
        prices.append((key, float(value)))
    return tuple(prices)


def _retry_settings(data: dict[str, Any], path: Path | None) -> RetrySettings:
    table = subtable(data, "retry", RETRY_KEYS, path)
    defaults = RetrySettings()
    return RetrySettings(
        max_attempts=positive_int(table, "max_attempts", "retry.", path) or defaults.max_attempts,
        max_time_s=seconds(table, "max_time_s", defaults.max_time_s, "retry.", path),
        initial_backoff_s=seconds(table, "initial_backoff_s", defaults.initial_backoff_s, "retry.", path),
        max_backoff_s=seconds(table, "max_backoff_s", defaults.max_backoff_s, "retry.", path),
    )


def _max_document_tokens(
    table: dict[str, Any], model: str, context: int | None, max_tokens: int, path: Path | None
) -> int:
    max_document_tokens = positive_int(table, "max_document_tokens", "job.", path) or DEFAULT_MAX_DOCUMENT_TOKENS
    if context is not None and max_document_tokens + max_tokens > context:
        raise JobError(
            f"{max_document_tokens:,} document tokens plus max_tokens {max_tokens:,} exceed {model}'s context of "
            f"{context:,} tokens: every long document would be refused by the API; lower it",
            path=path,
            key="job.max_document_tokens",
        )
    return max_document_tokens


def _effort(table: dict[str, Any], model: str, spec: ModelSpec | None, path: Path | None) -> str | None:
    """`job.effort`, when the model takes it."""
    effort = choice(table, "effort", EFFORTS, "", "job.", path) or None
    if effort is not None and spec is not None and effort not in spec.efforts:
        supported = ", ".join(spec.efforts) if spec.efforts else "none: leave effort out"
        raise JobError(
            f"{model} does not take effort {effort!r} (every request would be refused); it takes {supported}",
            path=path,
            key="job.effort",
        )
    return effort


def parse_job(
    data: dict[str, Any], *, path: Path | None = None, default_name: str = "job", model: str | None = None
) -> Job:
    """Validate a parsed job document; every problem names the file and the key.

    `model` (the command line's `--model`) replaces the job's model before anything is checked, so
    every check that depends on the model is made for the one that will run.
    """
    check_keys(data, frozenset({"job", "fields", "retry", "limits", "prices", "examples"}), "", path)
    table = data.get("job")
    if not isinstance(table, dict):
        raise JobError("missing [job] table", path=path, key="job")
    own_model = table.get("model", DEFAULT_MODEL)
    override = model
    if override is not None:
        table = table | {"model": override}
    check_keys(table, JOB_KEYS, "job.", path)
    name = expect(table, "name", str, "job.", path, "a string") if "name" in table else default_name
    try:
        model, spec, max_tokens, context = _model(table, path)
    except JobError as exc:
        if override is None or exc.key != "job.model":
            raise
        raise ConfigError(f"--model {override}: {exc.detail}") from None  # the command line's, not the file's
    prices = _prices(data, path)
    prices_for = None
    if prices and override is not None and not _same_model(override, own_model):
        prices, prices_for = (), str(own_model)  # negotiated or a new model's prices say nothing of another model
    instructions = _instructions(table, path)
    fields = parse_fields(data, path)
    timeout_s = _timeout_s(table, path)
    schema_retries = _schema_retries(table, path)
    effort = _effort(table, model, spec, path)
    retry = _retry_settings(data, path)
    max_document_tokens = _max_document_tokens(table, model, context, max_tokens, path)
    limits_table = subtable(data, "limits", LIMIT_KEYS, path)
    return Job(
        name=name,
        path=path,
        model=model,
        max_tokens=max_tokens,
        instructions=instructions,
        fields=fields,
        description=expect(table, "description", str, "job.", path, "a string") if "description" in table else "",
        stream=choice(table, "stream", STREAM_MODES, "auto", "job.", path),
        timeout_s=timeout_s,
        too_long=choice(table, "too_long", TOO_LONG_POLICIES, "truncate", "job.", path),
        truncate=choice(table, "truncate", TRUNCATE_KEEPS, "head", "job.", path),
        pdf=choice(table, "pdf", PDF_MODES, "auto", "job.", path),
        max_document_tokens=max_document_tokens,
        cache_ttl=choice(table, "cache_ttl", CACHE_TTLS, "", "job.", path) or None,
        cache_warmup=expect(table, "cache_warmup", bool, "job.", path, "true or false")
        if "cache_warmup" in table
        else True,
        batch_above=positive_int(table, "batch_above", "job.", path),
        batch_retry=choice(table, "batch_retry", BATCH_RETRIES, "batch", "job.", path),
        effort=effort,
        schema_retries=schema_retries,
        attachments=choice(table, "attachments", ATTACHMENT_MODES, "sections", "job.", path),
        retry=retry,
        prices=prices,
        prices_for=prices_for,
        examples=parse_examples(data, fields, path),
        rpm=positive_int(limits_table, "rpm", "limits.", path),
        itpm=positive_int(limits_table, "itpm", "limits.", path),
        otpm=positive_int(limits_table, "otpm", "limits.", path),
    )


def _same_model(a: str, b: object) -> bool:
    """Whether two names (ids or aliases) are one model."""
    if not isinstance(b, str):
        return False
    spec_a, spec_b = get_model(a), get_model(b)
    return a == b if spec_a is None or spec_b is None else spec_a.id == spec_b.id


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
