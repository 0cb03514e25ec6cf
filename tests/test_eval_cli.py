"""End to end: `docpipe eval` and `docpipe compare` over real offline runs of the sample job."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from pipeline.cli import main

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "documents"
TRIAGE = ROOT / "jobs" / "triage.toml"
TRUTH = ROOT / "sample_data" / "truth" / "triage_truth.csv"
SONNET = "claude-sonnet-5-5"


def invoke(args: list[str]) -> Result:
    """The CLI as a person runs it; any traceback fails the test (catch_exceptions=False)."""
    environment = {"DOCPIPE_PROGRESS": "off", "ANTHROPIC_API_KEY": ""}
    return CliRunner().invoke(main, args, env=environment, catch_exceptions=False)


def run_offline(job: Path, out: Path, *include: str) -> None:
    globs = [argument for pattern in include for argument in ("--include", pattern)]
    result = invoke(["run", str(job), str(SAMPLE), "--out", str(out), "--offline", *globs])
    assert 0 == result.exit_code, result.output


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample job over the corpus offline, with its model and with Sonnet; and two runs over disjoint folders."""
    root = tmp_path_factory.mktemp("eval")
    sonnet_job = root / "triage_sonnet.toml"
    sonnet_job.write_text(TRIAGE.read_text().replace('model = "claude-haiku-5-5"', f'model = "{SONNET}"'))
    paths = {"haiku": root / "haiku", "sonnet": root / "sonnet", "emails": root / "emails", "tickets": root / "tickets"}
    run_offline(TRIAGE, paths["haiku"])
    run_offline(sonnet_job, paths["sonnet"])
    run_offline(TRIAGE, paths["emails"], "emails/*.txt")
    run_offline(TRIAGE, paths["tickets"], "tickets/*")
    return {**paths, "root": root}


def truth_rows() -> list[dict[str, str]]:
    with open(TRUTH, newline="") as handle:
        return list(csv.DictReader(handle))


def test_truth_file_is_small_and_names_sample_documents() -> None:
    """The truth file: 15 to 25 distinct documents of the corpus, with the job's values."""
    rows = truth_rows()
    assert 15 <= len(rows) <= 25
    assert len(rows) == len({row["doc_id"] for row in rows})
    assert all((SAMPLE / row["doc_id"]).is_file() for row in rows)
    assert {row["needs_action"] for row in rows} <= {"true", "false", ""}


def test_eval_prints_the_table_and_writes_json_whose_counts_match_the_truth_file(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    """Every truth row is scored; each field is compared on exactly the rows that label it."""
    report = tmp_path / "eval.json"
    result = invoke(["eval", str(runs["haiku"]), "--truth", str(TRUTH), "--json", str(report)])
    assert 0 == result.exit_code, result.output
    rows = truth_rows()
    assert f"truth rows: {len(rows)}; scored (an ok row): {len(rows)}; missing (no ok row): 0" in result.stdout
    assert "category: confusion matrix (rows: expected, columns: answered)" in result.stdout
    data = json.loads(report.read_text())
    assert (len(rows), len(rows), [], 50 - len(rows)) == (
        data["truth_rows"], data["scored"], data["missing"], data["unlabelled"]
    )
    by_field = {field["name"]: field for field in data["fields"]}
    assert ["category", "needs_action"] == list(by_field)
    for name, field in by_field.items():
        labelled = sum(1 for row in rows if row[name])
        assert labelled == field["compared"]
        assert labelled == sum(value["support"] for value in field["values"])
        assert labelled - field["matched"] == len(field["disagreements"])
        assert field["metrics"]["accuracy"] == pytest.approx(field["matched"] / labelled)


def test_eval_reads_jsonl_and_parquet_truth_files_alike(runs: dict[str, Path], tmp_path: Path) -> None:
    """The same truth as CSV, JSONL (nulls for empty cells) and Parquet gives the same scores."""
    records = [
        {"doc_id": row["doc_id"], "category": row["category"] or None,
         "needs_action": {"true": True, "false": False}.get(row["needs_action"])}
        for row in truth_rows()
    ]
    jsonl = tmp_path / "truth.jsonl"
    jsonl.write_text("".join(json.dumps(record) + "\n" for record in records))
    parquet = tmp_path / "truth.parquet"
    pq.write_table(pa.Table.from_pylist(records), parquet)
    scores = []
    for truth in (TRUTH, jsonl, parquet):
        report = tmp_path / f"{truth.suffix}.json"
        result = invoke(["eval", str(runs["haiku"]), "--truth", str(truth), "--json", str(report),
                         "--job", str(TRIAGE)])
        assert 0 == result.exit_code, result.output
        scores.append(json.loads(report.read_text())["fields"])
    assert scores[0] == scores[1] == scores[2]


def test_eval_scores_every_field_type_of_the_job(runs: dict[str, Path], tmp_path: Path) -> None:
    """Numbers, strings and lists from a CSV (a list as `;`-separated items) are scored with their own measures."""
    truth = tmp_path / "truth.csv"
    truth.write_text(
        "doc_id,confidence,summary,key_points\n"
        'emails/thank_you.txt,0.5,A thank-you note.,"Pinecrest; thanks"\n'
        'emails/hr_holiday_policy.txt,,,"[""PTO rises to 20 days""]"\n'
    )
    report = tmp_path / "eval.json"
    result = invoke(["eval", str(runs["haiku"]), "--truth", str(truth), "--json", str(report)])
    assert 0 == result.exit_code, result.output
    fields = {field["name"]: field for field in json.loads(report.read_text())["fields"]}
    assert {"confidence": 1, "summary": 1, "key_points": 2} == {name: f["compared"] for name, f in fields.items()}
    assert {"mae", "within_tolerance"} == set(fields["confidence"]["metrics"])
    assert {"normalised", "exact"} == set(fields["summary"]["metrics"])
    assert {"jaccard", "item_precision", "item_recall"} == set(fields["key_points"]["metrics"])
    assert "mean Jaccard" in result.stdout


def test_eval_counts_truth_rows_the_output_has_not_answered(runs: dict[str, Path], tmp_path: Path) -> None:
    """Over a run of the e-mails only, the other truth rows are missing and named."""
    report = tmp_path / "eval.json"
    result = invoke(["eval", str(runs["emails"]), "--truth", str(TRUTH), "--json", str(report)])
    assert 0 == result.exit_code, result.output
    data = json.loads(report.read_text())
    emails = [row["doc_id"] for row in truth_rows() if row["doc_id"].startswith("emails/") and
              row["doc_id"].endswith(".txt")]
    assert (len(emails), len(truth_rows()) - len(emails), 0) == (
        data["scored"], len(data["missing"]), data["missing_in_error"]
    )
    assert "tickets/ticket_20455_billing_dispute.json" in data["missing"]


def test_compare_two_models_shows_agreement_and_cost_side_by_side(runs: dict[str, Path], tmp_path: Path) -> None:
    """Haiku against Sonnet over the same 50 documents: per-field agreement, both models, both costs."""
    report = tmp_path / "compare.json"
    result = invoke(["compare", str(runs["haiku"]), str(runs["sonnet"]), "--json", str(report), "--limit", "2"])
    assert 0 == result.exit_code, result.output
    assert "documents answered by both: 50" in result.stdout
    assert "claude-haiku-5-5" in result.stdout and SONNET in result.stdout
    assert "cost per document" in result.stdout and "latency p95" in result.stdout
    data = json.loads(report.read_text())
    assert (50, ["claude-haiku-5-5"], [SONNET]) == (data["shared"], data["a"]["models"], data["b"]["models"])
    assert ["category", "summary", "confidence", "key_points", "needs_action"] == [f["name"] for f in data["fields"]]
    assert all(50 == field["compared"] for field in data["fields"])
    assert data["b"]["cost_usd"] > data["a"]["cost_usd"] > 0  # Sonnet's list price is twenty times Haiku's
    assert data["a"]["cost_per_document_usd"] == pytest.approx(data["a"]["cost_usd"] / 50)
    for field in data["fields"]:
        if field["disagreements"]:
            assert f"{field['name']}: {len(field['disagreements'])} document(s) disagree" in result.stdout


def test_compare_of_an_output_with_itself_agrees_everywhere(runs: dict[str, Path]) -> None:
    """Every field agrees on every document, and no disagreement is listed."""
    result = invoke(["compare", str(runs["haiku"]), str(runs["haiku"])])
    assert 0 == result.exit_code, result.output
    assert "accuracy 1.000" in result.stdout and "disagree" not in result.stdout


@pytest.mark.parametrize(
    ("truth_text", "suffix", "message"),
    [
        ("id,category\nemails/thank_you.txt,other\n", ".csv", "has no 'doc_id' column"),
        ("doc_id,colour\nemails/thank_you.txt,red\n", ".csv", "column 'colour' is not a field of the job"),
        ("doc_id,category\nemails/thank_you.txt,other\nemails/payment_reminder.txt,spam\n", ".csv",
         "row 2 (emails/payment_reminder.txt): field 'category' is 'spam', not one of"),
        ("doc_id,needs_action\nemails/thank_you.txt,maybe\n", ".csv", "row 1 (emails/thank_you.txt): field "
         "'needs_action' is 'maybe', not true or false"),
        ('{"doc_id": "a", "category": "other"}\n{"doc_id": "a", "category": "hr"}\n', ".jsonl",
         "line 2: doc_id 'a' appears twice"),
        ("doc_id\tcategory\n", ".tsv", "a truth file is .csv, .jsonl, .parquet"),
        ("doc_id,confidence\nemails/thank_you.txt,nan\n", ".csv", "field 'confidence' is nan, not a finite number"),
        ('{"doc_id": "emails/thank_you.txt", "key_points": "one"}\n', ".jsonl",
         "line 1 (emails/thank_you.txt): field 'key_points' should be a list of strings"),
    ],
)
def test_eval_refuses_a_bad_truth_file_with_exit_2(
    runs: dict[str, Path], tmp_path: Path, truth_text: str, suffix: str, message: str
) -> None:
    """A truth file without doc_id, with a column the job lacks or a value the job refuses: one line, exit 2."""
    truth = tmp_path / f"truth{suffix}"
    truth.write_text(truth_text)
    result = invoke(["eval", str(runs["haiku"]), "--truth", str(truth), "--job", str(TRIAGE)])
    assert 2 == result.exit_code
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_without_the_job_the_fields_the_output_records_check_the_truth_file(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    """Parts record the job's fields and enum values: a value the job lacks is refused with no --job too."""
    truth = tmp_path / "truth.csv"
    truth.write_text("doc_id,category\nemails/thank_you.txt,spam\n")
    result = invoke(["eval", str(runs["haiku"]), "--truth", str(truth)])
    assert 2 == result.exit_code
    assert "field 'category' is 'spam', not one of" in result.stderr
    from pipeline.evaluation_io import output_fields

    fields = output_fields(runs["haiku"])
    assert ["category", "summary", "confidence", "key_points", "needs_action"] == [field.name for field in fields]
    assert "invoice" == fields[0].values[0][0]


def test_eval_and_compare_refuse_a_missing_output_with_exit_2(runs: dict[str, Path], tmp_path: Path) -> None:
    """A missing OUT, or one no run has written to, is a usage error naming it."""
    nowhere = tmp_path / "nowhere"
    result = invoke(["eval", str(nowhere), "--truth", str(TRUTH)])
    assert (2, f"docpipe: error: {nowhere}: no such output directory\n") == (result.exit_code, result.stderr)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke(["compare", str(runs["haiku"]), str(empty)])
    assert 2 == result.exit_code
    assert f"no results in {empty}" in result.stderr


def test_eval_with_a_job_whose_fields_the_output_lacks_is_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    """--job must be the output's job: a field it lacks is named."""
    other_job = ROOT / "jobs" / "contract_review.toml"
    result = invoke(["eval", str(runs["haiku"]), "--truth", str(TRUTH), "--job", str(other_job)])
    assert 2 == result.exit_code
    assert "is not an output of job" in result.stderr


def test_compare_refuses_outputs_with_no_document_in_common(runs: dict[str, Path]) -> None:
    """Two runs over disjoint documents cannot be compared: exit 2, saying so."""
    result = invoke(["compare", str(runs["emails"]), str(runs["tickets"])])
    assert 2 == result.exit_code
    assert "have no document in common" in result.stderr


@pytest.mark.parametrize("tolerance", ["nan", "inf", "-0.1"])
def test_a_tolerance_that_is_not_a_finite_number_at_least_0_is_refused(runs: dict[str, Path], tolerance: str) -> None:
    """nan passes click's range checks and would score every number wrong and write invalid JSON: exit 2."""
    commands = (["eval", str(runs["haiku"]), "--truth", str(TRUTH)],
                ["compare", str(runs["haiku"]), str(runs["sonnet"])])
    for args in commands:
        result = invoke([*args, "--tolerance", tolerance])
        assert 2 == result.exit_code, result.output
        assert "Invalid value for '--tolerance'" in result.output


def test_a_truth_file_naming_no_document_of_the_output_is_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    """Ids of another scheme (a manifest's ids against a folder run): exit 2 showing one id of each, not 0 scores."""
    truth = tmp_path / "t.csv"
    truth.write_text("doc_id,category\ninvoice-0001,invoice\ninvoice-0002,contract\n")
    result = invoke(["eval", str(runs["haiku"]), "--truth", str(truth)])
    assert 2 == result.exit_code, result.output
    assert "none of its 2 doc_id(s) is a document of" in result.output and "'invoice-0001'" in result.output
