"""Any model the API serves: the model table is knowledge, not a gate; `--model` overrides the job's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import SEED
from test_cli_run import SAMPLE, TRIAGE, invoke

import pipeline
from pipeline.emulator import Emulator, EmulatorConfig
from pipeline.emulator.config import MODELS_ENV, served_models
from pipeline.errors import JobError
from pipeline.jobs import load_job, parse_job
from pipeline.models import get_model
from pipeline.pricing import PriceSheet, model_prices

NEW_MODEL = "claude-sonnet-6-0-20261125"  # released after this docpipe: the API serves it, the table does not know it


def _job(**job: Any) -> dict[str, Any]:
    table = {"name": "t", "model": NEW_MODEL, "instructions": "Classify."} | job
    return {"job": table, "fields": [{"name": "label", "type": "string", "description": "A label."}]}


def test_a_model_the_table_does_not_know_is_accepted_with_its_limits_from_the_job() -> None:
    """An unknown model loads; the job's context_window and max_output_tokens are checked when given."""
    job = parse_job(_job())
    assert NEW_MODEL == job.model and job.model_note is not None and "cost_usd is null" in job.model_note
    with pytest.raises(JobError, match="exceeds claude-sonnet-6-0-20261125's maximum output of 2000 tokens"):
        parse_job(_job(max_tokens=4000, max_output_tokens=2000))
    with pytest.raises(JobError, match="context of 50,000 tokens"):
        parse_job(_job(max_document_tokens=60_000, context_window=50_000))


def test_a_retired_model_is_still_refused_and_a_known_one_still_checked() -> None:
    """What the table knows it still says: a known model's limits are checked at load."""
    with pytest.raises(JobError, match="maximum output"):
        parse_job(_job(model="claude-haiku-5-5", max_tokens=10_000_000))


def test_an_unknown_model_is_priced_from_the_job_with_the_api_cache_multipliers() -> None:
    """[prices] with input and output prices is enough: cache prices follow the API's multipliers; else no price."""
    assert model_prices(NEW_MODEL) is None
    sheet = model_prices(NEW_MODEL, (("input_usd", 4.0), ("output_usd", 20.0)))
    assert PriceSheet(
        input_usd=4.0, output_usd=20.0, cache_write_5m_usd=5.0, cache_write_1h_usd=8.0, cache_read_usd=0.4
    ) == sheet
    assert model_prices(NEW_MODEL, (("input_usd", 4.0),)) is None  # half a price is no price


SERVED = served_models(f"{NEW_MODEL}=claude-sonnet-5-5")  # the emulator, as the API, serves a model the table lacks


def test_a_run_on_a_new_model_writes_rows_with_null_cost_and_says_why(tmp_path: Path) -> None:
    """--model with an id the table does not know: all ok, cost_usd null, one warning, and the summary says it."""
    out = tmp_path / "out"
    with Emulator(EmulatorConfig(seed=SEED, models=SERVED)) as emulator:
        result = invoke(["run", str(TRIAGE), str(SAMPLE / "emails"), "--out", str(out), "--model", NEW_MODEL], emulator)
    assert 0 == result.exit_code, result.output
    rows = pipeline.load_results(out)
    assert {"ok"} == set(rows.status) and {NEW_MODEL} == set(rows.model)
    assert rows.cost_usd.isna().all()
    warnings = [line for line in result.stderr.splitlines() if line.startswith("docpipe: warning: model")]
    assert 1 == len(warnings) and "not in docpipe's model table" in warnings[0]
    summary = json.loads(next((out / "_runs").glob("*.json")).read_text())
    assert (NEW_MODEL, True) == (summary["model"], "cost_usd is null" in summary["model_note"])


def test_model_flag_is_part_of_the_fingerprint_and_a_priced_new_model_has_costs(
    tmp_path: Path,
) -> None:
    """--model changes the fingerprint (a rerun with another model asks again); [prices] prices the job's new model."""
    job = tmp_path / "priced.toml"
    job.write_text(TRIAGE.read_text().replace('model = "claude-haiku-5-5"', f'model = "{NEW_MODEL}"', 1)
                   + "\n[prices]\ninput_usd = 4.0\noutput_usd = 20.0\n")
    out = tmp_path / "out"
    docs = SAMPLE / "invoices"
    with Emulator(EmulatorConfig(seed=SEED, models=SERVED)) as emulator:
        first = invoke(["run", str(job), str(docs), "--out", str(out), "--model", "claude-haiku-5-5"], emulator)
        assert 0 == first.exit_code, first.output
        other = invoke(["run", str(job), str(docs), "--out", str(tmp_path / "other")], emulator)
        assert 0 == other.exit_code, other.output
    assert load_job(job).fingerprint != load_job(job, model="claude-haiku-5-5").fingerprint
    rows = pipeline.load_results(tmp_path / "other")
    assert {NEW_MODEL} == set(rows.model) and (rows.cost_usd > 0).all()
    assert "[prices] are for" in first.output  # the new model's prices are not Haiku's
    assert "no prices" not in other.output  # priced by the job: only the limits are the API's


def test_offline_serves_the_models_named_in_the_environment(tmp_path: Path) -> None:
    """DOCPIPE_EMULATOR_MODELS=ID=LIKE: --offline runs a model the table does not know, as the README shows."""
    out = tmp_path / "out"
    result = invoke(["run", str(TRIAGE), str(SAMPLE / "emails"), "--out", str(out), "--model", NEW_MODEL,
                     "--offline"], ANTHROPIC_API_KEY="", **{MODELS_ENV: f"{NEW_MODEL}=claude-sonnet-5-5"})
    assert 0 == result.exit_code, result.output
    rows = pipeline.load_results(out)
    assert {NEW_MODEL} == set(rows.model) and rows.cost_usd.isna().all()
    refused = invoke(["run", str(TRIAGE), str(SAMPLE / "emails"), "--out", str(tmp_path / "o2"), "--model", NEW_MODEL,
                      "--offline"], ANTHROPIC_API_KEY="")
    assert 3 == refused.exit_code  # not served: the API answers 404 for the model before any message


def test_the_emulator_lists_and_describes_a_served_model(tmp_path: Path) -> None:
    """GET /v1/models lists it, GET /v1/models/{id} gives its limits (those of the model it behaves as)."""
    import anthropic

    with Emulator(EmulatorConfig(seed=SEED, models=SERVED)) as emulator:
        client = anthropic.Anthropic(api_key="k", base_url=emulator.base_url, max_retries=0)
        listed = [model.id for model in client.models.list(limit=100)]
        info = client.models.retrieve(NEW_MODEL)
        client.close()
    like = get_model("claude-sonnet-5-5")
    assert like is not None and NEW_MODEL in listed
    assert (like.max_input_tokens, like.max_output_tokens) == (info.max_input_tokens, info.max_tokens)


@pytest.mark.parametrize(("text", "message"), [
    ("claude-x", "write ID=LIKE"),
    ("claude-x=claude-nothing", "write ID=LIKE"),
    ("claude-haiku-5-5=claude-sonnet-5-5", "already in docpipe's model table"),
])
def test_a_bad_served_model_is_refused_naming_it(text: str, message: str) -> None:
    from pipeline.errors import EmulatorError

    with pytest.raises(EmulatorError, match=message):
        served_models(text)


def test_a_bad_served_model_in_the_environment_names_the_variable(tmp_path: Path) -> None:
    result = invoke(["run", str(TRIAGE), str(SAMPLE / "emails"), "--out", str(tmp_path / "out"), "--offline"],
                    ANTHROPIC_API_KEY="", **{MODELS_ENV: "claude-x"})
    assert 2 == result.exit_code
    assert f"{MODELS_ENV}: served model 'claude-x': write ID=LIKE" in result.output


def test_compare_shows_an_unpriced_model_as_unknown_never_as_free(tmp_path: Path) -> None:
    """A model priced nowhere has null costs: compare says "unknown" and writes null, not a $0 that looks cheaper."""
    priced, unpriced = tmp_path / "priced", tmp_path / "unpriced"
    for out, model in ((priced, []), (unpriced, ["--model", NEW_MODEL])):
        result = invoke(["run", str(TRIAGE), str(SAMPLE / "emails"), "--out", str(out), "--offline", *model],
                        ANTHROPIC_API_KEY="", **{MODELS_ENV: f"{NEW_MODEL}=claude-sonnet-5-5"})
        assert 0 == result.exit_code, result.output
    report = tmp_path / "compare.json"
    result = invoke(["compare", str(priced), str(unpriced), "--json", str(report)])
    assert 0 == result.exit_code, result.output
    cost_line = next(line for line in result.output.splitlines() if line.lstrip().startswith("cost, "))
    assert "$0.0" in cost_line and "unknown (no price for the model)" in cost_line
    data = json.loads(report.read_text())
    assert data["a"]["cost_usd"] > 0 and data["b"]["cost_usd"] is None and data["b"]["cost_per_document_usd"] is None


def test_the_jobs_prices_are_for_its_own_model_not_for_another_run_by_model() -> None:
    """[prices] price the job's model; --model naming another leaves them out and says so; the same model keeps them."""
    data = {"job": {"name": "t", "instructions": "Classify.", "model": "claude-haiku-5-5"},
            "fields": [{"name": "category", "type": "enum", "values": ["a", "b"]}],
            "prices": {"input_usd": 0.01, "output_usd": 0.01}}
    own = parse_job(data)
    # the alias in the job, its dated id on the command line: one model
    aliased = data | {"job": data["job"] | {"model": "claude-haiku-4-5"}}
    alias_of_own = parse_job(aliased, model="claude-haiku-4-5-20251001")
    other = parse_job(data, model="claude-sonnet-5-5")
    assert own.prices and own.prices == alias_of_own.prices and alias_of_own.prices_for is None
    assert () == other.prices and "claude-haiku-5-5" == other.prices_for
    assert other.model_note is not None and "[prices] are for 'claude-haiku-5-5'" in other.model_note
    sheet = model_prices(other.model, other.prices)
    assert sheet is not None and sheet == model_prices("claude-sonnet-5-5")  # the table's list prices


def test_a_retired_model_given_by_model_is_blamed_on_the_option_not_the_job_file() -> None:
    result = invoke(["check", str(TRIAGE), "--model", "claude-sonnet-4-5"])
    assert 2 == result.exit_code
    assert "--model claude-sonnet-4-5: model 'claude-sonnet-4-5' is retired" in result.output
    assert "[job.model]" not in result.output


def test_estimate_and_the_dry_run_warn_that_the_jobs_prices_are_left_out(tmp_path: Path) -> None:
    """The commands people plan spending with say it too, not only the run."""
    job = tmp_path / "priced.toml"
    job.write_text(TRIAGE.read_text() + "\n[prices]\ninput_usd = 0.01\noutput_usd = 0.02\n")
    docs = str(SAMPLE / "invoices")
    for args in (["estimate", str(job), docs, "--offline"], ["run", str(job), docs, "--out", str(tmp_path / "o"),
                                                              "--dry-run"]):
        result = invoke([*args, "--model", "claude-sonnet-5-5"], ANTHROPIC_API_KEY="")
        assert 0 == result.exit_code, result.output
        assert "warning: the job's [prices] are for 'claude-haiku-5-5'" in result.stderr
    capped = invoke(["run", str(job), docs, "--out", str(tmp_path / "c"), "--offline", "--model", NEW_MODEL,
                     "--max-cost", "1"], ANTHROPIC_API_KEY="")
    assert 2 == capped.exit_code and "give them in a DOCPIPE_PRICES file" in capped.output
