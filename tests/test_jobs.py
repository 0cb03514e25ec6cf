"""Job files: loading, validation with the file and the key, the output schema and the fingerprint."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import JobError
from pipeline.jobs import Job, RetrySettings, load_job, parse_job

JOBS_DIR = Path(__file__).resolve().parent.parent / "jobs"
SHIPPED = ("triage.toml", "contract_review.toml")

VALID_JOB = """
[job]
name = "t"
instructions = "Label the document."

[[fields]]
name = "label"
type = "enum"
values = { a = "first", b = "second" }
"""


def _write(tmp_path: Path, text: str, name: str = "job.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _base_data() -> dict[str, Any]:
    return {
        "job": {"name": "t", "model": "claude-haiku-5-5", "max_tokens": 1024, "instructions": "Label it."},
        "fields": [
            {"name": "label", "type": "enum", "values": {"a": "first", "b": "second"}},
            {"name": "summary", "type": "string", "max_words": 20},
            {"name": "score", "type": "number"},
        ],
    }


@pytest.mark.parametrize("file_name", SHIPPED)
def test_shipped_job_files_load(file_name: str) -> None:
    """Every job file shipped in jobs/ loads, with the fields its TOML declares, in order."""
    path = JOBS_DIR / file_name
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    job = load_job(path)
    assert raw["job"]["name"] == job.name
    assert raw["job"]["model"] == job.model
    assert raw["job"]["max_tokens"] == job.max_tokens
    assert [f["name"] for f in raw["fields"]] == [f.name for f in job.fields]
    assert path == job.path


@pytest.mark.parametrize("file_name", SHIPPED)
def test_output_schema_is_a_closed_object_with_every_field_required(file_name: str) -> None:
    """The answer schema is an object, additionalProperties false, every field listed and required."""
    job = load_job(JOBS_DIR / file_name)
    schema = job.output_schema()
    names = [f.name for f in job.fields]
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert names == schema["required"]
    assert names == list(schema["properties"])


@pytest.mark.parametrize("file_name", SHIPPED)
def test_enum_schema_lists_values_and_describes_each(file_name: str) -> None:
    """An enum property lists its values and describes each as a `- value: text` line."""
    path = JOBS_DIR / file_name
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    properties = load_job(path).output_schema()["properties"]
    enums = [f for f in raw["fields"] if f["type"] == "enum"]
    assert enums
    for field in enums:
        prop = properties[field["name"]]
        assert prop["type"] == "string"
        assert list(field["values"]) == prop["enum"]
        lines = prop["description"].splitlines()
        assert field["description"] == lines[0]
        for value, text in field["values"].items():
            assert f"- {value}: {text}" in lines


@pytest.mark.parametrize("file_name", SHIPPED)
def test_max_words_is_stated_in_the_description(file_name: str) -> None:
    """A string field's max_words ends its description as `At most N words.`."""
    path = JOBS_DIR / file_name
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    properties = load_job(path).output_schema()["properties"]
    limited = [f for f in raw["fields"] if "max_words" in f]
    assert limited
    for field in limited:
        expected = f"{field['description']} At most {field['max_words']} words."
        assert expected == properties[field["name"]]["description"]


def test_date_list_and_optional_field_schemas() -> None:
    """date is a string of format date, list an array of strings, required = false is nullable."""
    data = _base_data()
    data["fields"] = [
        {"name": "when", "type": "date"},
        {"name": "tags", "type": "list", "max_items": 3},
        {"name": "note", "type": "string", "required": False},
    ]
    properties = parse_job(data).output_schema()["properties"]
    assert properties["when"] == {"type": "string", "format": "date", "description": "An ISO 8601 date (YYYY-MM-DD)."}
    assert properties["tags"] == {"type": "array", "items": {"type": "string"}, "description": "At most 3 items."}
    assert properties["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}


def test_enum_values_given_as_a_list_have_plain_lines() -> None:
    """Enum values given as a list of strings are listed as `- value` lines, without a dangling colon."""
    data = _base_data()
    data["fields"] = [{"name": "label", "type": "enum", "description": "Kind.", "values": ["a", "b"]}]
    prop = parse_job(data).output_schema()["properties"]["label"]
    assert prop["enum"] == ["a", "b"]
    assert prop["description"] == "Kind.\nOne of:\n- a\n- b"


def test_defaults_apply_when_keys_are_absent(tmp_path: Path) -> None:
    """A minimal job takes the documented defaults, and its name from the file name when not given."""
    text = VALID_JOB.replace('name = "t"\n', "", 1)
    job = load_job(_write(tmp_path, text, "minimal.toml"))
    assert job.name == "minimal"
    assert job.model == "claude-haiku-5-5"
    assert job.max_tokens == 1024
    assert (job.stream, job.too_long, job.cache_ttl, job.effort, job.schema_retries) == (
        "auto",
        "truncate",
        None,  # by mode: 5m realtime, 1h in batches
        None,
        2,
    )
    assert RetrySettings() == job.retry
    assert (job.rpm, job.itpm, job.otpm) == (None, None, None)


def test_retry_and_limits_tables_are_read(tmp_path: Path) -> None:
    """[retry] and [limits] set the retry bounds and the rate limits."""
    text = VALID_JOB + (
        "\n[retry]\nmax_attempts = 3\nmax_time_s = 10\ninitial_backoff_s = 0\nmax_backoff_s = 2.5\n"
        "\n[limits]\nrpm = 50\nitpm = 40000\notpm = 8000\n"
    )
    job = load_job(_write(tmp_path, text))
    assert RetrySettings(max_attempts=3, max_time_s=10.0, initial_backoff_s=0.0, max_backoff_s=2.5) == job.retry
    assert (job.rpm, job.itpm, job.otpm) == (50, 40000, 8000)


FIELD = '[[fields]]\nname = "label"\ntype = "string"\n'
JOB_HEAD = '[job]\ninstructions = "Do it."\n'


def _job(extra: str = "", fields: str = FIELD, tail: str = "") -> str:
    return f"{JOB_HEAD}{extra}\n{fields}\n{tail}"


INVALID_JOBS = [
    pytest.param(FIELD, "job", id="missing-job-table"),
    pytest.param('job = "triage"\n' + FIELD, "job", id="job-not-a-table"),
    pytest.param(_job('colour = "red"\n'), "job.colour", id="unknown-job-key"),
    pytest.param(_job(tail="[extra]\nx = 1\n"), "extra", id="unknown-table"),
    pytest.param(_job('model = " "\n'), "job.model", id="blank-model"),
    pytest.param(_job('model = "claude-nonexistent-9"\nmax_tokens = 9000\nmax_output_tokens = 8192\n'),
                 "job.max_tokens", id="unknown-model-over-its-stated-output"),
    pytest.param(_job("model = 5\n"), "job.model", id="model-not-a-string"),
    pytest.param(_job('model = "claude-sonnet-4-5"\n'), "job.model", id="retired-model"),
    pytest.param(_job('model = "claude-haiku-4-5"\neffort = "low"\n'), "job.effort", id="effort-on-a-model-without"),
    pytest.param(_job('model = "claude-sonnet-4-6"\neffort = "xhigh"\n'), "job.effort", id="effort-the-model-lacks"),
    pytest.param(
        _job('model = "claude-haiku-4-5"\nmax_tokens = 64001\n'), "job.max_tokens", id="max-tokens-over-model"
    ),
    pytest.param(_job("max_tokens = 0\n"), "job.max_tokens", id="max-tokens-zero"),
    pytest.param(_job('max_tokens = "1024"\n'), "job.max_tokens", id="max-tokens-string"),
    pytest.param(_job("max_tokens = true\n"), "job.max_tokens", id="max-tokens-bool"),
    pytest.param(_job("max_tokens = 10.5\n"), "job.max_tokens", id="max-tokens-float"),
    pytest.param('[job]\nname = "t"\n' + FIELD, "job.instructions", id="missing-instructions"),
    pytest.param('[job]\ninstructions = "  \\n "\n' + FIELD, "job.instructions", id="blank-instructions"),
    pytest.param("[job]\ninstructions = 3\n" + FIELD, "job.instructions", id="instructions-not-a-string"),
    pytest.param(_job(fields=""), "fields", id="no-fields"),
    pytest.param("fields = []\n" + _job(fields=""), "fields", id="empty-fields"),
    pytest.param(_job(fields='[[fields]]\nname = "Label"\ntype = "string"\n'), "fields[0].name", id="bad-name-case"),
    pytest.param(_job(fields='[[fields]]\nname = "1st"\ntype = "string"\n'), "fields[0].name", id="bad-name-digit"),
    pytest.param(_job(fields='[[fields]]\nname = "a-b"\ntype = "string"\n'), "fields[0].name", id="bad-name-dash"),
    pytest.param(_job(fields='[[fields]]\nname = "status"\ntype = "string"\n'), "fields[0].name", id="reserved-status"),
    pytest.param(_job(fields='[[fields]]\nname = "doc_id"\ntype = "string"\n'), "fields[0].name", id="reserved-doc-id"),
    pytest.param(_job(fields=FIELD + FIELD), "fields[1].name", id="duplicate-field"),
    pytest.param(_job(fields='[[fields]]\nname = "label"\n'), "fields[0].type", id="field-missing-type"),
    pytest.param(_job(fields='[[fields]]\ntype = "string"\n'), "fields[0].name", id="field-missing-name"),
    pytest.param(_job(fields='[[fields]]\nname = "x"\ntype = "float"\n'), "fields[0].type", id="unknown-field-type"),
    pytest.param(_job(fields='[[fields]]\nname = "x"\ntype = ["string"]\n'), "fields[0].type", id="field-type-a-list"),
    pytest.param(_job(fields=FIELD + "colour = 1\n"), "fields[0].colour", id="unknown-field-key"),
    pytest.param(_job(fields=FIELD + "description = 1\n"), "fields[0].description", id="field-description-int"),
    pytest.param(_job(fields='[[fields]]\nname = "x"\ntype = "enum"\n'), "fields[0].values", id="enum-no-values"),
    pytest.param(
        _job(fields='[[fields]]\nname = "x"\ntype = "enum"\nvalues = { a = "only" }\n'),
        "fields[0].values",
        id="enum-one-value",
    ),
    pytest.param(
        _job(fields='[[fields]]\nname = "x"\ntype = "enum"\nvalues = ["a"]\n'), "fields[0].values", id="enum-one-list"
    ),
    pytest.param(
        _job(fields='[[fields]]\nname = "x"\ntype = "enum"\nvalues = ["a", "a"]\n'),
        "fields[0].values",
        id="enum-duplicate-values",
    ),
    pytest.param(
        _job(fields='[[fields]]\nname = "x"\ntype = "enum"\nvalues = [1, 2]\n'), "fields[0].values", id="enum-numbers"
    ),
    pytest.param(
        _job(fields='[[fields]]\nname = "x"\ntype = "enum"\nvalues = { a = 1, b = 2 }\n'),
        "fields[0].values",
        id="enum-descriptions-not-strings",
    ),
    pytest.param(_job(fields=FIELD + 'values = ["a", "b"]\n'), "fields[0].values", id="values-on-string"),
    pytest.param(_job(fields=FIELD + 'items = "string"\n'), "fields[0].items", id="items-on-string"),
    pytest.param(
        _job(fields='[[fields]]\nname = "x"\ntype = "list"\nitems = "number"\n'), "fields[0].items", id="items-number"
    ),
    pytest.param(
        _job(fields='[[fields]]\nname = "x"\ntype = "number"\nmax_words = 5\n'),
        "fields[0].max_words",
        id="max-words-on-number",
    ),
    pytest.param(_job(fields=FIELD + "max_words = 0\n"), "fields[0].max_words", id="max-words-zero"),
    pytest.param(_job(fields=FIELD + "max_items = 3\n"), "fields[0].max_items", id="max-items-on-string"),
    pytest.param(_job(fields=FIELD + 'required = "yes"\n'), "fields[0].required", id="required-not-bool"),
    pytest.param(_job('stream = "sometimes"\n'), "job.stream", id="bad-stream"),
    pytest.param(_job("stream = true\n"), "job.stream", id="stream-bool"),
    pytest.param(_job('too_long = "skip"\n'), "job.too_long", id="bad-too-long"),
    pytest.param(_job('cache_ttl = "10m"\n'), "job.cache_ttl", id="bad-cache-ttl"),
    pytest.param(_job("cache_ttl = 5\n"), "job.cache_ttl", id="cache-ttl-int"),
    pytest.param(_job('attachments = "inline"\n'), "job.attachments", id="bad-attachments"),
    pytest.param(_job('effort = "extreme"\n'), "job.effort", id="bad-effort"),
    pytest.param(_job("timeout_s = -1\n"), "job.timeout_s", id="negative-timeout"),
    pytest.param(_job("timeout_s = 0\n"), "job.timeout_s", id="zero-timeout"),
    pytest.param(_job('timeout_s = "60"\n'), "job.timeout_s", id="timeout-string"),
    pytest.param(_job("timeout_s = true\n"), "job.timeout_s", id="timeout-bool"),
    pytest.param(_job("max_document_tokens = -5\n"), "job.max_document_tokens", id="negative-max-document-tokens"),
    pytest.param(_job("schema_retries = -1\n"), "job.schema_retries", id="negative-schema-retries"),
    pytest.param(_job("schema_retries = false\n"), "job.schema_retries", id="schema-retries-bool"),
    pytest.param(_job("name = 7\n"), "job.name", id="name-not-a-string"),
    pytest.param(_job("description = 7\n"), "job.description", id="description-not-a-string"),
    pytest.param(_job(tail="[retry]\ntries = 3\n"), "retry.tries", id="unknown-retry-key"),
    pytest.param(_job(tail="[retry]\nmax_attempts = 0\n"), "retry.max_attempts", id="retry-zero-attempts"),
    pytest.param(_job(tail='[retry]\nmax_time_s = "long"\n'), "retry.max_time_s", id="retry-time-string"),
    pytest.param(_job(tail="[retry]\ninitial_backoff_s = -1\n"), "retry.initial_backoff_s", id="retry-negative-wait"),
    pytest.param(_job(tail="[limits]\nburst = 3\n"), "limits.burst", id="unknown-limits-key"),
    pytest.param(_job(tail="[limits]\nrpm = 0\n"), "limits.rpm", id="limits-zero"),
    pytest.param(_job(tail='[limits]\nitpm = "lots"\n'), "limits.itpm", id="limits-string"),
    pytest.param(_job(tail="[limits]\notpm = true\n"), "limits.otpm", id="limits-bool"),
    pytest.param('retry = "fast"\n' + _job(), "retry", id="retry-not-a-table"),
    pytest.param("limits = 5\n" + _job(), "limits", id="limits-not-a-table"),
    pytest.param('fields = ["label"]\n' + JOB_HEAD, "fields[0]", id="field-not-a-table"),
]


@pytest.mark.parametrize(("text", "key"), INVALID_JOBS)
def test_invalid_job_names_the_file_and_the_key(tmp_path: Path, text: str, key: str) -> None:
    """An invalid job file raises JobError whose message names the file path and the offending key."""
    path = _write(tmp_path, text)
    with pytest.raises(JobError) as excinfo:
        load_job(path)
    error = excinfo.value
    assert (path, key) == (error.path, error.key)
    assert str(error).startswith(f"{path}: [{key}] ")


def test_valid_base_for_invalid_cases_loads(tmp_path: Path) -> None:
    """The skeleton the invalid cases are built from is itself valid (so each case fails for its own reason)."""
    job = load_job(_write(tmp_path, _job(tail="[retry]\nmax_attempts = 2\n[limits]\nrpm = 5\n")))
    assert (job.fields[0].name, job.fields[0].type) == ("label", "string")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("[job\ninstructions = 1", "not valid TOML", id="invalid-toml"),
        pytest.param(b"\xff\xfe\x00garbage", "cannot read job file", id="not-utf8"),
    ],
)
def test_unreadable_job_file_names_the_file(tmp_path: Path, text: str | bytes, expected: str) -> None:
    """A file that is not TOML (or not text) raises JobError naming the file."""
    path = tmp_path / "broken.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(JobError) as excinfo:
        load_job(path)
    assert path == excinfo.value.path
    assert str(excinfo.value).startswith(f"{path}: {expected}")


def test_missing_job_file_names_the_file(tmp_path: Path) -> None:
    """A job file that does not exist raises JobError naming the path."""
    path = tmp_path / "nope.toml"
    with pytest.raises(JobError) as excinfo:
        load_job(path)
    assert f"{path}: job file not found" == str(excinfo.value)


def test_fingerprint_is_stable_for_the_same_content(tmp_path: Path) -> None:
    """The same job content gives the same 16-hex-digit fingerprint, wherever the file lives."""
    first = load_job(_write(tmp_path, VALID_JOB, "a.toml"))
    (tmp_path / "other").mkdir()
    second = load_job(_write(tmp_path / "other", VALID_JOB, "a.toml"))
    assert first.fingerprint == second.fingerprint
    assert first.fingerprint == parse_job(tomllib.loads(VALID_JOB), default_name="a").fingerprint
    assert len(first.fingerprint) == 16
    int(first.fingerprint, 16)


def _edit(change: Callable[[dict[str, Any]], None]) -> Job:
    data = copy.deepcopy(_base_data())
    change(data)
    return parse_job(data)


ANSWER_CHANGES: list[Any] = [
    pytest.param(lambda d: d["job"].update(instructions="Label it carefully."), id="instructions"),
    pytest.param(lambda d: d["job"].update(model="claude-sonnet-5-5"), id="model"),
    pytest.param(lambda d: d["job"].update(max_tokens=2048), id="max_tokens"),
    pytest.param(lambda d: d["job"].update(too_long="error"), id="too_long"),
    pytest.param(lambda d: d["job"].update(max_document_tokens=5000), id="max_document_tokens"),
    pytest.param(lambda d: d["job"].update(effort="low"), id="effort"),
    pytest.param(lambda d: d["job"].update(attachments="documents"), id="attachments"),
    pytest.param(lambda d: d["fields"][0]["values"].update(c="third"), id="schema-enum-value"),
    pytest.param(lambda d: d["fields"][0].update(description="The label."), id="schema-description"),
    pytest.param(lambda d: d["fields"][1].update(max_words=21), id="schema-max-words"),
    pytest.param(lambda d: d["fields"].append({"name": "extra", "type": "boolean"}), id="schema-new-field"),
    pytest.param(lambda d: d["fields"][2].update(type="integer"), id="schema-type"),
]
NEUTRAL_CHANGES: list[Any] = [
    pytest.param(lambda d: d["job"].update(timeout_s=5), id="timeout_s"),
    pytest.param(lambda d: d.update(retry={"max_attempts": 2, "max_time_s": 9, "initial_backoff_s": 0}), id="retry"),
    pytest.param(lambda d: d.update(limits={"rpm": 10, "itpm": 1000, "otpm": 100}), id="limits"),
]


def test_attachments_default_to_sections_and_keep_the_fingerprint() -> None:
    """`attachments` is "sections" unless set; spelling out the default leaves the fingerprint as it was."""
    default = parse_job(_base_data())
    spelled = _edit(lambda d: d["job"].update(attachments="sections"))
    assert ("sections", default.fingerprint) == (spelled.attachments, spelled.fingerprint)
    assert "documents" == _edit(lambda d: d["job"].update(attachments="documents")).attachments


@pytest.mark.parametrize("change", ANSWER_CHANGES)
def test_fingerprint_changes_with_what_changes_the_answer(change: Callable[[dict[str, Any]], None]) -> None:
    """Editing the instructions, model, max_tokens, schema or truncation policy changes the fingerprint."""
    assert parse_job(_base_data()).fingerprint != _edit(change).fingerprint


@pytest.mark.parametrize("change", NEUTRAL_CHANGES)
def test_fingerprint_ignores_timeouts_retries_and_limits(change: Callable[[dict[str, Any]], None]) -> None:
    """Editing the timeout, the [retry] bounds or the [limits] leaves the fingerprint unchanged."""
    edited = _edit(change)
    assert parse_job(_base_data()) != edited
    assert parse_job(_base_data()).fingerprint == edited.fingerprint


def _optional_fields(count: int) -> dict[str, Any]:
    data = _base_data()
    data["fields"] = [{"name": f"field_{index}", "type": "string", "required": False} for index in range(count)]
    return data


def test_at_most_sixteen_fields_may_be_optional() -> None:
    """17 optional fields (17 `anyOf` unions, over the API's limit of 16) is a JobError naming the 17th."""
    assert 16 == sum(not field.required for field in parse_job(_optional_fields(16)).fields)
    with pytest.raises(JobError) as excinfo:
        parse_job(_optional_fields(17))
    assert "fields[16].required" in str(excinfo.value)
    assert "at most 16 fields may be optional" in str(excinfo.value)


def test_reserved_field_names_are_exactly_the_output_columns() -> None:
    """A job field may not take the name of any column docpipe writes itself (and no other name is reserved)."""
    from pipeline.columns import RESERVED_COLUMNS
    from pipeline.output import BASE_COLUMNS, TRAILING_COLUMNS

    assert {name for name, _, _ in BASE_COLUMNS + TRAILING_COLUMNS} == set(RESERVED_COLUMNS)


def test_an_error_in_a_field_names_the_field_as_well_as_its_place() -> None:
    """`[fields[1].type] field 'urgency': ...`: found in the file by its name, not only by counting tables."""
    text = _job(fields=FIELD + '[[fields]]\nname = "urgency"\ntype = "colour"\n')
    with pytest.raises(JobError) as caught:
        parse_job(tomllib.loads(text))
    assert "fields[1].type" == caught.value.key
    assert "[fields[1].type] field 'urgency': expected one of" in str(caught.value)
