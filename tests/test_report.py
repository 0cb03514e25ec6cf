"""`docpipe report`: the folds it is built from, the page through the CLI, and the page in a real Chromium."""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
from collections import Counter
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result
from hypothesis import example, given
from hypothesis import strategies as st

from pipeline.cli import main
from pipeline.errors import ConfigError
from pipeline.fields import Field
from pipeline.report_data import (
    collect_report,
    distribution,
    percentiles,
    review_cells,
    review_field,
    review_order,
    value_counts,
)

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "documents"
TRIAGE = ROOT / "jobs" / "triage.toml"
TRUTH = ROOT / "sample_data" / "truth" / "triage_truth.csv"
HOSTILE_NAME = "<img src=x onerror=alert(1)>.txt"
CHARTS = ("chart-category", "chart-needs_action", "chart-confidence", "chart-run-cost", "chart-run-tokens",
          "chart-latency", "chart-confusion-category", "chart-confusion-needs_action")


# -- the folds -------------------------------------------------------------------------------------


def test_an_enum_lists_the_jobs_values_in_order_zeros_kept_and_unknown_values_after() -> None:
    field = Field("category", "enum", values=(("invoice", ""), ("contract", ""), ("other", "")))
    counts = value_counts(field, ["contract", "invoice", "contract", None, "legacy"])
    assert (("invoice", 1), ("contract", 2), ("other", 0), ("legacy", 1)) == counts.counts
    assert 1 == counts.missing


def test_a_boolean_counts_true_then_false() -> None:
    counts = value_counts(Field("needs_action", "boolean"), [False, False, True, None])
    assert (("true", 1), ("false", 2)) == counts.counts and 1 == counts.missing


def test_without_the_jobs_values_an_enum_is_ordered_by_count() -> None:
    counts = value_counts(Field("category", "enum"), ["b", "a", "b", "c", "b", "a"])
    assert ("b", "a", "c") == tuple(label for label, _ in counts.counts)


@given(st.lists(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False), min_size=1, max_size=200))
def test_percentiles_agree_with_numpy(values: list[float]) -> None:
    ordered = sorted(values)
    ours = percentiles(ordered, (0, 25, 50, 90, 99, 100))
    theirs = np.percentile(ordered, [0, 25, 50, 90, 99, 100])
    assert list(ours.values()) == pytest.approx(list(theirs), rel=1e-9, abs=1e-6)


@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6)),
                max_size=300))
@example([1.7120886998688722e308])  # one value near the largest float: its padded bin must stay finite
@example([-sys.float_info.max, -sys.float_info.max])
def test_a_distribution_bins_every_finite_value_once_and_counts_the_rest_as_missing(values: list[Any]) -> None:
    spread = distribution("x", values)
    finite = [value for value in values if value is not None and math.isfinite(value)]
    assert len(finite) == spread.count == sum(spread.counts)
    assert len(values) - len(finite) == spread.missing
    if finite:
        assert len(spread.edges) == len(spread.counts) + 1
        assert all(math.isfinite(edge) for edge in spread.edges)
        assert all(low < high for low, high in zip(spread.edges, spread.edges[1:], strict=False))  # drawable bars
        assert spread.edges[0] <= min(finite) and spread.edges[-1] >= max(finite)
        assert spread.minimum == min(finite) and spread.maximum == max(finite)
        assert 101 == len(spread.curve) and list(spread.curve) == sorted(spread.curve)
    else:
        assert () == spread.counts and spread.mean is None


@pytest.mark.parametrize("values", [[1e308, -1e308, 0.5], [-1.7976931348623157e308, 1.7976931348623157e308]])
def test_a_range_near_the_largest_float_still_bins_into_finite_increasing_edges(values: list[float]) -> None:
    spread = distribution("x", values)
    assert all(math.isfinite(edge) for edge in spread.edges) and len(values) == sum(spread.counts)
    assert all(low < high for low, high in zip(spread.edges, spread.edges[1:], strict=False))


@pytest.mark.parametrize("values", [[3, 3, 3], [0.69, 0.69], [1.0, 1.0000000000000002], [0.0, 5e-324]])
def test_equal_or_indistinguishable_values_fall_in_one_bin_around_them(values: list[float]) -> None:
    spread = distribution("x", values)
    assert (len(values),) == spread.counts and spread.edges[0] < min(values) <= max(values) < spread.edges[-1]


def test_the_review_list_is_lowest_first_unrated_before_rated_and_errors_left_out() -> None:
    doc_ids = ["high", "low", "unrated", "failed", "mid", "tie-b", "tie-a"]
    confidence = [0.9, 0.2, None, None, 0.5, 0.7, 0.7]
    answered = [True, True, True, False, True, True, True]
    order = review_order(confidence, doc_ids, answered, count=6)
    assert ["unrated", "low", "mid", "tie-a", "tie-b", "high"] == [doc_ids[i] for i in order]
    cells = review_cells([{"doc_id": "mid", "confidence": 0.5, "category": "x" * 500, "tags": ["a", "b"]}],
                         ("doc_id", "confidence", "category", "tags"))
    assert ("mid", "0.5", "a; b") == (cells[0]["doc_id"], cells[0]["confidence"], cells[0]["tags"])
    assert len(cells[0]["category"]) <= 200 and cells[0]["category"].endswith("...")


def test_the_review_field_is_a_confidence_field_or_the_one_named() -> None:
    fields = (Field("category", "enum"), Field("score", "integer"), Field("model_confidence", "number"))
    assert "model_confidence" == review_field(fields, None)
    assert "score" == review_field(fields, "score")
    assert review_field(fields[:2], None) is None
    with pytest.raises(ConfigError, match=r"--review-by category: not a numeric field .*score, model_confidence"):
        review_field(fields, "category")


# -- through the CLI -------------------------------------------------------------------------------


def invoke(args: list[str]) -> Result:
    """The CLI as a person runs it; any traceback fails the test (catch_exceptions=False)."""
    return CliRunner().invoke(main, args, env={"DOCPIPE_PROGRESS": "off", "ANTHROPIC_API_KEY": ""},
                              catch_exceptions=False)


@pytest.fixture(scope="module")
def output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample job offline over the sample corpus plus an empty file whose name is HTML (an error row the page
    must show as text); then a second run after one more document arrives: two runs, errors, every chart."""
    root = tmp_path_factory.mktemp("report")
    documents = root / "documents"
    shutil.copytree(SAMPLE, documents)
    (documents / HOSTILE_NAME).write_text("")
    out = root / "out"
    first = invoke(["run", str(TRIAGE), str(documents), "--out", str(out), "--offline"])
    assert 1 == first.exit_code, first.output  # the empty file is a document in error
    (documents / "late_arrival.txt").write_text("Complaint: parcel NW-77 arrived crushed. Please refund.\n")
    second = invoke(["run", str(TRIAGE), str(documents), "--out", str(out), "--offline"])
    assert 1 == second.exit_code, second.output
    return out


@pytest.fixture(scope="module")
def page(output: Path) -> Path:
    result = invoke(["report", str(output), "--truth", str(TRUTH), "--review", "7"])
    assert 0 == result.exit_code, result.output
    assert f"docpipe: report in {output / '_report.html'}" in result.output
    return output / "_report.html"


def test_the_report_holds_what_the_rows_hold(output: Path) -> None:
    """Counts, documents, errors and cost in the report are those a notebook computes from the output."""
    frame = pd.read_parquet(output)
    latest = frame.sort_values("created_at").groupby("doc_id").tail(1)
    answered = latest[latest.status == "ok"]
    report = collect_report(output)
    assert (len(latest), len(answered)) == (report.documents, report.ok)
    category = dict(next(counts for counts in report.counts if counts.name == "category").counts)
    assert Counter(answered.category.astype(str)) == {label: n for label, n in category.items() if n}
    assert report.cost_usd == pytest.approx(latest.cost_usd.sum(), abs=1e-6)
    assert 2 == len(report.runs) and [1, 1] == [run.errors for run in report.runs]  # the rerun retries the empty file
    assert [50, 1] == [run.ok for run in report.runs]
    assert {HOSTILE_NAME} == {doc["doc_id"] for group in report.errors for doc in group.documents}
    assert "confidence" == report.review_by
    lowest = answered.sort_values(["confidence", "doc_id"]).doc_id.head(20).tolist()
    assert lowest == [row["doc_id"] for row in report.review]


def test_the_page_has_every_section_and_chart_and_escapes_what_documents_bring(page: Path) -> None:
    html = page.read_text(encoding="utf-8")
    for anchor in ("overview", "fields", "evaluation", "review", "errors", "runs", "latency"):
        assert f'<section id="{anchor}">' in html
    for chart in CHARTS:
        assert f'id="{chart}"' in html
    assert escape(HOSTILE_NAME) in html and HOSTILE_NAME not in html
    assert "extraction_error" in html
    review = html.split('<section id="review">', 1)[1].split("</section>", 1)[0]
    assert 7 == review.count("<tr>") - 1  # --review 7, plus the header row


def test_the_page_needs_no_network(page: Path) -> None:
    html = page.read_text(encoding="utf-8")
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", html)
    assert not re.search(r"@import|url\(\s*['\"]?https?:", html)


def test_without_plotly_the_command_says_how_to_install_it(output: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "plotly", None)  # what `import plotly` meets when it is not installed
    result = invoke(["report", str(output), "--to", str(output.parent / "x.html")])
    assert 2 == result.exit_code
    assert "pip install 'docpipe[report]'" in result.output and "Traceback" not in result.output
    assert not (output.parent / "x.html").exists()


def test_a_report_where_it_cannot_be_written_names_the_path(output: Path, tmp_path: Path) -> None:
    target = tmp_path / "missing" / "report.html"
    result = invoke(["report", str(output), "--to", str(target)])
    assert 4 == result.exit_code
    assert str(target) in result.output and "--to" in result.output


def test_a_folder_that_is_no_output_is_refused(tmp_path: Path) -> None:
    result = invoke(["report", str(tmp_path)])
    assert 2 == result.exit_code and "not a docpipe output directory" in result.output


def test_a_part_without_an_optional_column_still_reports(output: Path, tmp_path: Path) -> None:
    """An output written before a column existed (here latency_ms and source) reads as empty there."""
    import pyarrow.parquet as pq

    old = tmp_path / "old"
    shutil.copytree(output, old)
    for part in old.glob("part-*.parquet"):
        table = pq.read_table(part)
        pq.write_table(table.drop_columns(["latency_ms", "source"]), part)
    result = invoke(["report", str(old), "--to", str(tmp_path / "r.html")])
    assert 0 == result.exit_code, result.output
    assert "No realtime answer" in (tmp_path / "r.html").read_text()


def test_an_output_with_only_error_rows_says_no_document_is_answered_yet(tmp_path: Path) -> None:
    """Nothing answered ok: the latency section says so, not that Message Batches were used."""
    manifest = tmp_path / "bad.jsonl"
    manifest.write_text('{"id": "a", "text": "   "}\n{"id": "b"}\n')
    out = tmp_path / "out"
    run = invoke(["run", str(TRIAGE), str(manifest), "--out", str(out), "--offline"])
    assert 1 == run.exit_code, run.output
    result = invoke(["report", str(out), "--to", str(tmp_path / "r.html")])
    assert 0 == result.exit_code, result.output
    page = (tmp_path / "r.html").read_text()
    assert "No document answered ok yet" in page and "Message Batches do not time" not in page


def test_review_by_a_field_that_is_not_numeric_is_refused(output: Path) -> None:
    result = invoke(["report", str(output), "--review-by", "category"])
    assert 2 == result.exit_code and "not a numeric field" in result.output


# -- in a real browser -----------------------------------------------------------------------------


def _chromium() -> str | None:
    found = next((shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None)
    if found is None and os.environ.get("DOCPIPE_BROWSER_TESTS") == "required":
        pytest.fail("DOCPIPE_BROWSER_TESTS=required but no Chromium is installed (apt-get install chromium)")
    return found


CHROMIUM = _chromium()
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]


def _hostile_report() -> Any:
    """A report whose field name, enum values and truth labels are plotly markup (plotly reads <b>, <br>, <a>)."""
    from pipeline.report_data import Report, ValueCounts

    name = '<a href="https://evil.example/login">m</a>'
    return Report(
        out="out", generated_at="2026-12-02T00:00:00+00:00", jobs=("j",), models=("m",), documents=2, ok=2, error=0,
        cost_usd=0.0, tokens={"input_tokens": 1}, runs=(), pending=(),
        counts=(ValueCounts(name, "enum", (("<b>bold</b><br>x", 1), ("&amp;", 1)), 0),),
        distributions=(distribution("score", [1e308, -1e308, 0.5]),), latency=None, errors=(), review_by=None,
        review=(), review_columns=(),
    )


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here: apt-get install chromium")
def test_in_chromium_labels_are_shown_as_written_never_as_markup(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from pipeline.report_html import render_html

    page = tmp_path / "hostile.html"
    page.write_text(render_html(_hostile_report()), encoding="utf-8")
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            tab = browser.new_page()
            tab.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            tab.on("pageerror", lambda error: problems.append(str(error)))
            tab.goto(page.as_uri(), wait_until="load")
            links = tab.locator("svg a").count()
            ticks = tab.locator(".xtick text").all_text_contents()
            title = tab.locator(".gtitle").first.text_content()
        finally:
            browser.close()
    assert [] == problems
    assert 0 == links
    assert ["<b>bold</b><br>x", "&amp;"] == ticks[:2]
    assert title is not None and title.startswith('<a href="https://evil.example/login">m</a>')


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here: apt-get install chromium")
def test_in_chromium_the_page_loads_offline_without_errors_and_draws_every_chart(page: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 900})
            tab.on("console", lambda message: problems.append(f"console {message.type}: {message.text}")
                   if message.type in ("error", "warning") else None)
            tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            tab.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
            tab.on("request", lambda request: problems.append(f"request: {request.url}")
                   if not request.url.startswith("file:") else None)
            tab.goto(page.as_uri(), wait_until="load")
            drawn = {chart: tab.locator(f"#{chart} .main-svg").count() for chart in CHARTS}
            bars = tab.locator("#chart-category .bars .point path").count()
            cells = tab.locator("#chart-confusion-category .hm, #chart-confusion-category image").count()
            hostile_shown = tab.get_by_text(HOSTILE_NAME, exact=False).count()
            tab.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert [] == problems
    assert all(count > 0 for count in drawn.values()), drawn
    assert 9 == bars  # one bar per category of the job, the empty one included
    assert cells > 0
    assert hostile_shown > 0  # the file name is shown as text, not run as markup
    assert (tmp_path / "report.png").stat().st_size > 50_000
