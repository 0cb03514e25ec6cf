"""Richer prompts: document details named in the instructions, and few-shot examples in the cached prefix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_cli_run import TRIAGE, invoke

import pipeline
from pipeline.details import placeholders
from pipeline.emulator import Emulator
from pipeline.errors import JobError
from pipeline.jobs import parse_job
from pipeline.requests import system_prompt

FIELDS = [
    {"name": "category", "type": "enum", "description": "Kind.", "values": {"invoice": "A bill.", "other": "Else."}},
    {"name": "due", "type": "date", "description": "When it is due.", "required": False},
    {"name": "tags", "type": "list", "description": "Tags."},
]


def _job(instructions: str = "Classify.", **data: Any) -> dict[str, Any]:
    return {"job": {"name": "t", "instructions": instructions}, "fields": FIELDS} | data


def test_details_are_names_in_braces_and_nothing_else() -> None:
    """`{customer}` is a detail; JSON in the instructions, doubled braces and odd names are text."""
    text = 'For {customer} (priority {priority}), answer like {"a": 1}; {{literal}}; {customer} again; {9x}'
    assert ["customer", "priority"] == placeholders(text)


def test_the_cached_prefix_names_details_but_carries_no_value() -> None:
    """The system prompt keeps `{customer}` as written and says where its value is; without details, as before."""
    plain = parse_job(_job())
    named = parse_job(_job("Route the document of {customer}."))
    assert "document_details" not in system_prompt(plain)
    assert "{customer}" in system_prompt(named) and "<document_details>" in system_prompt(named)


def test_examples_go_in_the_prefix_checked_against_the_fields() -> None:
    """[[examples]]: an input and its answer, validated as an answer is, placed in the system prompt."""
    import datetime

    example = {"input": "Invoice 7 from Acme, due 1 May.", "output": {
        "category": "invoice", "due": datetime.date(2026, 5, 1), "tags": ["acme"]}}
    job = parse_job(_job(examples=[example]))
    prompt = system_prompt(job)
    assert "## Examples" in prompt and "Invoice 7 from Acme" in prompt
    assert '{"category": "invoice", "due": "2026-05-01", "tags": ["acme"]}' in prompt
    assert job.fingerprint != parse_job(_job()).fingerprint  # examples change the answer


@pytest.mark.parametrize(
    ("output", "key"),
    [
        ({"category": "receipt", "tags": []}, "examples[0].output.category"),  # not one of the enum's values
        ({"category": "invoice", "tags": [], "colour": "red"}, "examples[0].output.colour"),  # no such field
        ({"tags": []}, "examples[0].output.category"),  # a required field left out
        ({"category": "invoice", "tags": "acme"}, "examples[0].output.tags"),  # a list as a string
    ],
)
def test_an_example_that_does_not_fit_the_job_is_refused_naming_where(output: dict[str, Any], key: str) -> None:
    with pytest.raises(JobError) as caught:
        parse_job(_job(examples=[{"input": "A document.", "output": output}]))
    assert key == caught.value.key


@pytest.mark.parametrize(
    ("tables", "key"),
    [
        ('[[fields]]\nname = "category"\ntype = "enum"\nvalues = ["a", "b"]\n'
         '[[examples]]\noutput = {category = "a"}\n', "examples[0].input"),  # an example with no document text
        ('[[fields]]\ntype = "string"\n', "fields[0].name"),  # a field with no name
    ],
)
def test_a_missing_key_is_an_error_naming_it_not_a_crash(tables: str, key: str, tmp_path: Path) -> None:
    """A key the job needs and lacks: `docpipe check` exits 2 with one line naming it, no traceback."""
    job = tmp_path / "job.toml"
    job.write_text('[job]\nname = "t"\ninstructions = "Classify."\n' + tables)
    result = invoke(["check", str(job)])
    assert 2 == result.exit_code, result.output
    assert f"[{key}] missing" in result.output and "Traceback" not in result.output


def test_each_request_carries_its_documents_details_and_every_request_shares_the_prefix(
    emulator: Emulator, tmp_path: Path
) -> None:
    """`{customer}` and `{file_name}`: each request gives its own values; the prefix is read from the cache."""
    job = tmp_path / "routed.toml"
    job.write_text(TRIAGE.read_text().replace(
        "You triage documents", "Documents come from {customer} ({file_name}). You triage documents", 1
    ))
    manifest = tmp_path / "m.jsonl"
    rows = [
        {"id": f"d{i}", "text": f"Invoice {i} for 40 EUR, due in 30 days. " * 3, "customer": f"Customer {i} & Co"}
        for i in range(4)
    ]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    emulator.control.set_faults([
        {"kind": "slow_first_byte", "seconds": 0, "match": f"customer: Customer {i} & Co\\nfile_name: m.jsonl:{i + 1}"}
        for i in range(4)
    ])
    out = tmp_path / "out"
    result = invoke(["run", str(job), str(manifest), "--out", str(out), "--concurrency", "2"], emulator)
    assert 0 == result.exit_code, result.output
    marked = [entry for entry in emulator.control.requests() if entry.get("fault") == "slow_first_byte"]
    assert 4 == len(marked)  # every request held its own document's details
    frame = pipeline.load_results(out)
    assert (frame.cache_read_tokens > 0).sum() >= 3  # one shared prefix: written once, read by the others


def test_a_detail_the_manifest_lacks_is_refused_before_anything_is_sent(emulator: Emulator, tmp_path: Path) -> None:
    """`{region}` with a manifest that has no region column: exit 2 naming it and what the manifest has."""
    job = tmp_path / "regional.toml"
    job.write_text(TRIAGE.read_text().replace("You triage documents", "For the {region} office: you triage documents"))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"id": "a", "text": "An invoice.", "customer": "Acme"}) + "\n")
    result = invoke(["run", str(job), str(manifest), "--out", str(tmp_path / "out")], emulator)
    assert 2 == result.exit_code, result.output
    assert "{region}" in result.output and "customer" in result.output and "file_name" in result.output
    assert 0 == emulator.control.stats()["requests"]["total"]
