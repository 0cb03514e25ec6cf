"""The run summary: what a run did, for people (printed) and for monitoring (`<out>/_runs/<run_id>.json`)."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import EXIT_OK, EnvironmentFailure
from .journal import JournalDamage
from .progress import Tally

if TYPE_CHECKING:
    from .stores import PartStore

__all__ = ["RunSummary", "new_run_id", "percentile", "report_damage", "unpriced", "write_summary"]

RUNS_DIR = "_runs"
JOURNAL_DAMAGE_LISTED = 20  # damaged journal lines named in the summary; all are counted


@dataclass
class RunSummary:
    """What a run did, for people (printed) and monitoring (`<out>/_runs/<run_id>.json`)."""

    run_id: str
    job: str
    job_fingerprint: str
    backend: str
    started_at: str
    wall_s: float = 0.0
    transport_open_s: float = 0.0  # of wall_s: opening the transport at the first request (the SDK's import)
    documents: int = 0
    ok: int = 0
    errors: int = 0
    already_done: int = 0
    errors_unchanged: int = 0  # manifest rows failing as the last run recorded: still in error, not written again
    errors_by_type: dict[str, int] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    priced_rows: int = 0  # rows with a cost
    unpriced_rows: int = 0  # rows that spent tokens at a price docpipe does not know (cost_usd null)
    requests_sent: int = 0
    retries: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    rate_limit_pauses: int = 0
    concurrency_decreases: int = 0
    recovered_rows: int = 0
    journal_damaged_lines: int = 0  # journal lines recovery could not read (the first are in journal_damage)
    journal_damage: list[str] = field(default_factory=list)  # "<segment> line <n>: <why>"
    journal_quarantined: list[str] = field(default_factory=list)  # segments moved to _wal/quarantine/
    skipped_files: dict[str, int] = field(default_factory=dict)  # folder files not of a document type, by extension
    mode: str = "realtime"  # or "batch" (Message Batches)
    mode_reason: str | None = None  # --mode auto: why this mode
    batches_submitted: int = 0  # batches this run created, follow-ups included
    batch_requests: int = 0  # requests in them
    batch_requests_resubmitted: int = 0  # of those, errored or expired requests sent again in a follow-up
    batches_collected: int = 0  # batches whose results this run wrote as rows
    batches_pending: int = 0  # batches still in progress at the API when the run ended
    batches_pending_from_earlier: int = 0  # of those, created by an earlier run
    cache_note: str | None = None  # the shared prefix is too short to be cached
    model: str | None = None  # the model the run asked (the job's, or --model)
    model_note: str | None = None  # a model docpipe's table does not know: what that means for the run
    budget_note: str | None = None  # the model's context window is smaller than the job's budget assumed
    max_cost_usd: float | None = None  # --max-cost
    stop_note: str | None = None  # why a run stopped that is not an error (the budget), and what to do
    already_in_batches: int = 0  # documents not sent because a batch of this directory holds them
    native_pdfs: int = 0  # rows of PDFs sent as the file itself (input_kind pdf)
    chunked: int = 0  # rows of documents answered in pieces (request_count over 1)
    chunked_requests: int = 0  # the requests those took, the combining ones included
    truncated: int = 0  # rows of documents cut to the job's budget
    fit_by_count: int = 0  # documents over the budget by the local estimate, sent whole as count_tokens fit them
    files_uploaded: int = 0  # PDFs uploaded through the Files API (and deleted once done)
    files_cleaned: int = 0  # files an earlier, killed run left uploaded, deleted by this one
    stopped: str | None = None  # "fatal", "environment", "interrupted" or None
    fatal_error: str | None = None
    exit_code: int = EXIT_OK
    saved_to: str | None = None  # where this summary was saved, None when the disk refused it
    unsaved_reason: str | None = None

    def count(self, row: Mapping[str, Any]) -> None:
        """Fold one written row into the totals: the summary is what the rows say, nothing kept beside them."""
        self.documents += 1
        self.input_tokens += row.get("input_tokens") or 0
        self.output_tokens += row.get("output_tokens") or 0
        self.cache_read_tokens += row.get("cache_read_tokens") or 0
        self.cache_write_tokens += row.get("cache_write_tokens") or 0
        cost = row.get("cost_usd")
        if cost is not None:
            self.cost_usd += cost
            self.priced_rows += 1
        elif unpriced(row):
            self.unpriced_rows += 1
        self.native_pdfs += row.get("input_kind") == "pdf"
        self.truncated += bool(row.get("truncated"))
        if (row.get("request_count") or 1) > 1:
            self.chunked += 1
            self.chunked_requests += row["request_count"]
        if row["status"] == "ok":
            self.ok += 1
        else:
            self.errors += 1
            kind = str(row.get("error_type"))
            self.errors_by_type[kind] = self.errors_by_type.get(kind, 0) + 1

    def tally(self, skipped: int) -> Tally:
        """What the progress display shows: this run's rows, and `skipped` documents done before."""
        tokens = self.input_tokens + self.cache_read_tokens + self.cache_write_tokens + self.output_tokens
        return Tally(
            done=self.documents + skipped,
            ok=self.ok,
            errors=self.errors,
            skipped=skipped,
            tokens=tokens,
            cost_usd=self.cost_usd,
            unpriced=self.unpriced_rows,
        )

    def to_json(self) -> str:
        data = asdict(self)
        if self.unpriced_rows and not self.priced_rows:
            data["cost_usd"] = None  # the total of unknown costs is unknown, not $0
        return json.dumps(data, indent=2)

    def cost_text(self) -> str:
        if self.unpriced_rows and not self.priced_rows:
            return "cost unknown (no prices for the model)"
        unpriced = f" (and {self.unpriced_rows} row(s) at an unknown price)" if self.unpriced_rows else ""
        return f"cost ${self.cost_usd:.4f}{unpriced}"

    def describe(self) -> str:
        lines = [
            f"docpipe: run {self.run_id} of job {self.job!r} ({self.backend}) "
            f"{'stopped: ' + self.stopped if self.stopped else 'finished'} in {self.wall_s:.1f} s",
            f"  documents: {self.documents} seen, {self.ok} ok, {self.errors} errors, {self.already_done} already done"
            + (f", {self.errors_unchanged} errors unchanged (not written again)" if self.errors_unchanged else ""),
            f"  tokens: {self.input_tokens:,} input, {self.output_tokens:,} output, {self.cache_read_tokens:,} "
            f"cache read, {self.cache_write_tokens:,} cache write; {self.cost_text()}",
        ]
        if self.mode != "batch" or self.requests_sent:
            lines.append(
                f"  requests: {self.requests_sent} sent, {self.retries} retried; latency p50 "
                f"{_ms(self.latency_p50_ms)}, p95 {_ms(self.latency_p95_ms)}"
            )
        if self.mode_reason:
            lines.append(f"  mode: {self.mode} ({self.mode_reason})")
        if self.mode == "batch":
            lines.append(f"  {_batch_line(self)}")
        if inputs := _inputs_line(self):
            lines.append(f"  {inputs}")
        if self.model_note:
            lines.append(f"  {self.model_note}")
        if self.cache_note:
            lines.append(f"  {self.cache_note}")
        if self.budget_note:
            lines.append(f"  {self.budget_note}")
        if self.errors_by_type:
            kinds = ", ".join(f"{kind}: {count}" for kind, count in sorted(self.errors_by_type.items()))
            lines.append(f"  errors by type: {kinds}")
        if self.skipped_files:
            lines.append(f"  {skipped_line(self.skipped_files)}")
        if self.recovered_rows:
            lines.append(f"  recovered {self.recovered_rows} rows from the journal of an interrupted run")
        if self.journal_damaged_lines:
            lines += [f"  {damage_line(self.journal_damaged_lines, self.journal_quarantined)}"]
            lines += [f"    {damage}" for damage in self.journal_damage]
        if self.unsaved_reason:
            saved = "could not be saved" if self.saved_to is None else f"was saved in {self.saved_to} only"
            lines.append(f"  this summary {saved}: {self.unsaved_reason}")
        return "\n".join(lines)


def _batch_line(summary: RunSummary) -> str:
    """Batch mode's line: batches submitted, collected and still in progress."""
    again = summary.batch_requests_resubmitted
    resubmitted = f", {again:,} of them resubmitted" if again else ""
    parts = [
        f"batches: {summary.batches_submitted} submitted ({summary.batch_requests:,} requests{resubmitted}), "
        f"{summary.batches_collected} collected"
    ]
    if summary.already_in_batches:
        parts.append(f"{summary.already_in_batches:,} documents not sent again: already in this directory's batches")
    if summary.batches_pending:
        parts.append(f"{summary.batches_pending} still in progress: rerun to collect them")
    return "; ".join(parts)


def skipped_line(skipped: Mapping[str, int]) -> str:
    """The files a folder walk left out for their type, and how to take them."""
    total = sum(skipped.values())
    kinds = ", ".join(f"{suffix}: {count}" for suffix, count in sorted(skipped.items()))
    files = f"{total} file{'s' if total != 1 else ''}"
    return f"skipped {files} docpipe does not read ({kinds}); --include takes a file of another type anyway"


def journal_line(rows: int) -> str:
    """What a dry run counted from the journal of an interrupted run (the next run publishes it)."""
    counted = f"{rows} row{'s' if rows != 1 else ''}"
    return f"{counted} in the journal of an interrupted run counted as written (the next run publishes them)"


def unchanged_line(errors: int) -> str:
    """Manifest rows that fail exactly as their last recorded row says."""
    counted = f"{errors} error{'s' if errors != 1 else ''}"
    return f"{counted} unchanged since last recorded (same manifest row, same job): not written again"


def damage_line(damaged_lines: int, quarantined: list[str]) -> str:
    """What recovery could not read, and where the damaged segments are kept."""
    segments = ", ".join(quarantined)
    return (
        f"journal: {damaged_lines} damaged line{'s' if damaged_lines != 1 else ''} could not be recovered "
        f"(the other lines were); kept for inspection in _wal/quarantine/: {segments}"
    )


def report_damage(summary: RunSummary, damaged: list[JournalDamage]) -> None:
    """Journal damage goes into the summary and, at once, to stderr: a person should look."""
    summary.journal_damaged_lines = len(damaged)
    summary.journal_damage = [str(damage) for damage in damaged[:JOURNAL_DAMAGE_LISTED]]
    summary.journal_quarantined = sorted({damage.segment for damage in damaged})
    print(f"docpipe: warning: {damage_line(len(damaged), summary.journal_quarantined)}", file=sys.stderr)
    for damage in summary.journal_damage:
        print(f"docpipe: warning:   {damage}", file=sys.stderr)
    if len(damaged) > JOURNAL_DAMAGE_LISTED:
        print(f"docpipe: warning:   ... and {len(damaged) - JOURNAL_DAMAGE_LISTED} more", file=sys.stderr)


def _ms(value: float | None) -> str:
    return f"{value:.0f} ms" if value is not None else "n/a"


def new_run_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def unpriced(row: Mapping[str, Any]) -> bool:
    """Whether a row used tokens at a price docpipe does not know: its cost is unknown, not $0."""
    return row.get("cost_usd") is None and bool(
        row.get("input_tokens") or row.get("output_tokens") or row.get("cache_read_tokens")
    )


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 1)


def write_summary(out_dir: Path, summary: RunSummary, *, store: PartStore | None = None) -> None:
    """Save the summary as `_runs/<run_id>.json`; on a failing disk, say where it could not go instead.

    With the parts in object storage, the summary is also uploaded beside them (`<uri>/_runs/`), so
    that `docpipe status` on the URI shows the runs from any machine.
    """
    runs = out_dir / RUNS_DIR
    final = runs / f"{summary.run_id}.json"
    temporary = runs / f".{summary.run_id}.json.tmp"
    summary.saved_to = str(final)
    try:
        runs.mkdir(parents=True, exist_ok=True)
        temporary.write_text(summary.to_json(), encoding="utf-8")
        os.replace(temporary, final)
    except OSError as exc:
        summary.saved_to = None
        summary.unsaved_reason = f"{exc.strerror or exc} ({exc.filename or runs})"
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
    if store is not None:
        try:
            store.write_text(f"{RUNS_DIR}/{summary.run_id}.json", summary.to_json())
            _upload_missing(runs, store)
        except EnvironmentFailure as exc:
            summary.unsaved_reason = f"it was not uploaded beside the parts (the next run uploads it): {exc}"


def _upload_missing(runs: Path, store: PartStore) -> None:
    """Upload the summaries of earlier runs that could not be uploaded then (the store was down)."""
    uploaded = set(store.names("", ".json", folder=RUNS_DIR))
    for path in sorted(runs.glob("*.json")):
        if path.name not in uploaded:
            with contextlib.suppress(OSError):
                store.write_text(f"{RUNS_DIR}/{path.name}", path.read_text(encoding="utf-8"))


def _inputs_line(summary: RunSummary) -> str | None:
    """How documents were sent, where it was not one text request each; None when every one was."""
    parts = []
    if summary.native_pdfs:
        parts.append(f"{summary.native_pdfs} PDF(s) sent as the file itself")
    if summary.chunked:
        parts.append(f"{summary.chunked} in pieces ({summary.chunked_requests} requests)")
    if summary.truncated:
        parts.append(f"{summary.truncated} truncated")
    if summary.fit_by_count:
        parts.append(f"{summary.fit_by_count} sent whole (count_tokens: within the budget the local estimate passed)")
    if summary.files_uploaded:
        parts.append(f"{summary.files_uploaded} PDF(s) uploaded through the Files API")
    if summary.files_cleaned:
        parts.append(f"{summary.files_cleaned} file(s) left by a killed run deleted")
    return "inputs: " + ", ".join(parts) if parts else None
