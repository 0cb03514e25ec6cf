"""The commands that read an output directory back: status, export, eval, compare, report, batches.

None of them takes the output's lock or sends a Messages request; `batches` asks the API about
batches not yet collected (and cancels them with --cancel). Each imports what it needs when it
runs, so `docpipe --help` pays for none of it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .cli_output import FiniteFloat, fail, refuse_inside_dataset, write_json
from .errors import ConfigError, PipelineError
from .jobs import load_job

__all__ = ["INSPECTION_COMMANDS"]


@click.command(short_help="The Message Batches of an output directory; --cancel them.")
@click.argument("out_dir", metavar="OUT")
@click.option("--cancel", is_flag=True, help="Cancel every batch not yet collected (answers already made are kept).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="An OUT in object storage: its state directory, where its batches are recorded "
                   "[default: as `docpipe run`].")
def batches(out_dir: str, cancel: bool, state_dir: Path | None) -> None:
    """List the Message Batches of an output directory: state, counts and cost.

    Batches not yet collected are looked up at the API when ANTHROPIC_API_KEY is set.
    """
    import os

    from .batch_report import report_batches
    from .stores import open_output
    from .transport import api_transport

    key = os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")
    transport = api_transport(api_key=key, base_url=os.environ.get("ANTHROPIC_BASE_URL")) if key else None

    try:
        view = open_output(out_dir, state_dir=state_dir)
        if view.state is None:
            raise ConfigError(f"no state directory for {out_dir} on this machine: its batches are recorded where it "
                              "runs (give --state-dir DIR)")
        click.echo(report_batches(view.state, transport=transport, cancel=cancel))
    except PipelineError as exc:
        fail(exc)


@click.command(short_help="What an output directory holds: runs, pending work, errors.")
@click.argument("out_dir", metavar="OUT")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="An OUT in object storage: its state directory on this machine [default: as `docpipe run`].")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option("--errors", "errors_listed", type=click.IntRange(min=0), default=5, show_default=True, metavar="N",
              help="Documents named per error type.")
def status(out_dir: str, state_dir: Path | None, as_json: bool, errors_listed: int) -> None:
    """What an output directory holds: its runs, what is pending, and its documents in error.

    Reads only: takes no lock and contacts no API, so it is safe beside a running run.
    """
    from .status import collect_status, describe, to_json
    from .stores import open_output

    try:
        report = collect_status(open_output(out_dir, state_dir=state_dir), errors_listed=errors_listed)
    except PipelineError as exc:
        fail(exc)
        return
    click.echo(to_json(report) if as_json else describe(report))


@click.command(short_help="The latest row per document as CSV or JSONL.")
@click.argument("out_dir", metavar="OUT")
@click.option("--format", "format_", type=click.Choice(["csv", "jsonl"]), required=True, help="Output format.")
@click.option("--to", "to", metavar="FILE", help="Write to FILE [default: stdout].")
@click.option("--all", "every_row", is_flag=True, help="Every row ever written, not only the latest per document.")
def export(out_dir: str, format_: str, to: str | None, every_row: bool) -> None:
    """Write the latest row per document (every row with --all) as CSV or JSONL, UTF-8, dates in ISO 8601."""
    from .export import export_rows
    from .stores import location, open_output

    try:
        target = location(to, what="--to") if to is not None else None
        if isinstance(target, str):
            raise ConfigError(f"--to {to}: the export goes to a local file; write it here, then copy it there")
        refuse_inside_dataset(target, "--to")
        written = export_rows(
            open_output(out_dir).parts,
            format=format_,
            to=target,
            sink=sys.stdout,
            every_row=every_row,
        )
    except PipelineError as exc:
        fail(exc)
        return
    if to is not None:
        click.echo(f"docpipe: {written} rows written to {to}", err=True)


@click.command(name="eval", short_help="Score an output against a truth file, field by field.")
@click.argument("out_dir", metavar="OUT")
@click.option("--truth", "truth_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Expected values: CSV, JSONL or Parquet with doc_id and some of the job's fields.")
@click.option("--job", "job_file", type=click.Path(dir_okay=False, path_type=Path),
              help="The job file: its enum values check the truth file [default: types from the output's schema].")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write it all as JSON.")
@click.option("--tolerance", type=FiniteFloat(min=0), default=0.1, show_default=True,
              help="A number within this share of the expected value counts as right.")
def eval_command(out_dir: str, truth_path: Path, job_file: Path | None, json_path: Path | None,
                 tolerance: float) -> None:
    """Score OUT's latest ok answers against a truth file: per field accuracy, matches, errors and overlap."""
    from .evaluation_io import evaluate_output
    from .evaluation_report import describe_evaluation, to_json
    from .stores import open_output

    try:
        refuse_inside_dataset(json_path, "--json")
        job = load_job(job_file) if job_file else None
        evaluation = evaluate_output(open_output(out_dir).parts, truth_path, job=job, tolerance=tolerance)
    except PipelineError as exc:
        fail(exc)
        return
    click.echo(describe_evaluation(evaluation))
    if json_path:
        write_json(json_path, to_json(evaluation))


@click.command(short_help="Two outputs side by side: agreement per field, cost and latency.")
@click.argument("out_a", metavar="OUT_A")
@click.argument("out_b", metavar="OUT_B")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write it all as JSON.")
@click.option("--limit", type=click.IntRange(min=0), default=5, show_default=True,
              help="Disagreeing documents shown per field.")
@click.option("--tolerance", type=FiniteFloat(min=0), default=0.1, show_default=True,
              help="Numbers within this share of A's value agree.")
def compare(out_a: str, out_b: str, json_path: Path | None, limit: int, tolerance: float) -> None:
    """Compare two outputs over the same documents (two jobs or two models): agreement per field, cost, latency."""
    from .evaluation_io import compare_outputs
    from .evaluation_report import describe_comparison, to_json
    from .stores import open_output

    try:
        refuse_inside_dataset(json_path, "--json")
        comparison = compare_outputs(open_output(out_a).parts, open_output(out_b).parts, tolerance=tolerance)
    except PipelineError as exc:
        fail(exc)
        return
    click.echo(describe_comparison(comparison, limit=limit))
    if json_path:
        write_json(json_path, to_json(comparison))


@click.command(short_help="One HTML page of an output: answers, errors, runs, latency.")
@click.argument("out_dir", metavar="OUT")
@click.option("--to", "to", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the page here [default: OUT/_report.html; report.html here for an OUT in object storage].")
@click.option("--truth", "truth_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Add the evaluation against this truth file (as `docpipe eval`).")
@click.option("--job", "job_file", type=click.Path(dir_okay=False, path_type=Path),
              help="The job file [default: the fields the output records].")
@click.option("--review-by", "review_by", metavar="FIELD",
              help="Numeric field whose lowest answers are listed to review first [default: a *confidence* field].")
@click.option("--review", "review_count", type=click.IntRange(min=0), default=20, show_default=True, metavar="N",
              help="Documents listed to review first.")
@click.option("--errors", "errors_listed", type=click.IntRange(min=0), default=50, show_default=True, metavar="N",
              help="Documents named per error type.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="An OUT in object storage: its state directory, for what is pending [default: as `docpipe run`].")
def report(out_dir: str, to: Path | None, truth_path: Path | None, job_file: Path | None, review_by: str | None,
           review_count: int, errors_listed: int, state_dir: Path | None) -> None:
    """Write one self-contained HTML page of OUT (it opens with no network): counts per enum field, numeric
    distributions, the documents to review first, errors, cost and tokens per run, latency percentiles,
    and with --truth the evaluation. Needs plotly: pip install 'docpipe[report]'."""
    from .report_data import collect_report
    from .report_html import render_html, write_page
    from .stores import open_output

    try:
        job = load_job(job_file) if job_file else None
        view = open_output(out_dir, state_dir=state_dir)
        target = to or (view.parts / "_report.html" if isinstance(view.parts, Path) else Path("report.html"))
        refuse_inside_dataset(target, "--to")
        page = render_html(collect_report(view, job=job, truth_path=truth_path, review_by=review_by,
                                          review_count=review_count, errors_listed=errors_listed))
        write_page(target, page)
    except PipelineError as exc:
        fail(exc)
        return
    click.echo(f"docpipe: report in {target} ({len(page.encode()) / 1e6:.1f} MB; open it in a browser)", err=True)


INSPECTION_COMMANDS = (status, export, eval_command, compare, report, batches)
