"""`docpipe status OUT`: what an output directory holds, read at a glance, without changing it.

The report is built from what the directory keeps, and nothing else: the run summaries
(`_runs/*.json`), the latest row per document in the parts, and what is waiting to be published
or collected (the journal `_wal/`, the batch records `_batches/`, the pieces journal
`_pieces.jsonl`, the uploads record `_files.jsonl`). It only reads: no lock is taken, the journal
is counted and never recovered, and the SDK is not imported, so it is safe beside a running run
(which it may then show half-way) and fast enough for a prompt or a cron line.

`collect_status` gathers the report as plain data (`OutputStatus`); `describe` renders it for a
person and `to_json` for a script. A record that cannot be read becomes a line in `problems`,
never a failure of the report: the command is most needed when something is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, PipelineError
from .journal import WAL_DIR
from .lock import LOCK_NAME
from .pieces import PIECES_FILE
from .status_pending import Pending, collect_pending, pending_lines
from .stores import OutputView, PartStore
from .submissions import BATCH_DIR
from .summary import RUNS_DIR
from .uploads import FILES_RECORD

__all__ = [
    "DEFAULT_ERRORS_LISTED",
    "RUNS_LISTED",
    "OutputStatus",
    "check_output_dir",
    "collect_status",
    "describe",
    "group_errors",
    "latest_rows",
    "money",
    "read_lock_holder",
    "read_runs",
    "to_json",
]

DEFAULT_ERRORS_LISTED = 5  # documents named per error type
RUNS_LISTED = 20  # the newest runs shown; older ones are counted
MESSAGE_CHARS = 160  # an error message is shown on one line, cut to this
PART_GLOB = "part-*.parquet"
ROW_COLUMNS = ["doc_id", "status", "error_type", "error_message", "created_at"]
TOKEN_KINDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
_MARKERS = (RUNS_DIR, WAL_DIR, BATCH_DIR, PIECES_FILE, FILES_RECORD, LOCK_NAME)


@dataclass(slots=True)
class RunLine:
    """One run, as its saved summary tells it."""

    run_id: str
    job: str | None
    started_at: str | None
    wall_s: float | None
    mode: str | None
    ok: int
    errors: int
    already_done: int
    tokens: int  # all four kinds below together
    cost_usd: float | None  # None: the run spent tokens at a price docpipe does not know
    exit_code: int | None
    stopped: str  # finished, fatal, environment, interrupted, budget, waiting (batches pending)
    note: str | None = None  # the fatal error or the stop note
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(slots=True)
class ErrorGroup:
    """The documents whose latest row is an error of one type: how many, and the first few."""

    error_type: str
    count: int
    documents: list[dict[str, str]]  # {"doc_id", "error_message"}, message on one line
    more: int


@dataclass(slots=True)
class OutputStatus:
    """The whole report."""

    out: str
    runs: list[RunLine]
    older_runs: int
    pending: Pending
    documents: int
    ok: int
    error: int
    errors: list[ErrorGroup]
    lock_holder: str | None = None  # the lock file's contents: a run holds it, or one was killed
    rows_readable: bool = True  # False: a part could not be read (the counts above are then zero; see problems)
    problems: list[str] = field(default_factory=list)


def check_output_dir(out_dir: Path | PartStore) -> None:
    """A `ConfigError` (exit 2) naming the path unless it is a docpipe output directory."""
    if isinstance(out_dir, PartStore):
        if not out_dir.names("part-", ".parquet") and not out_dir.names("", ".json", folder=RUNS_DIR):
            raise ConfigError(f"{out_dir} is not a docpipe output (no parts and no run summaries there)")
        return
    if not out_dir.exists():
        raise ConfigError(f"no output directory at {out_dir}")
    if not out_dir.is_dir():
        raise ConfigError(f"{out_dir} is not a directory (give the --out directory of a run)")
    if not any((out_dir / name).exists() for name in _MARKERS) and not any(out_dir.glob(PART_GLOB)):
        raise ConfigError(f"{out_dir} is not a docpipe output directory (no parts, run summaries or journal)")


# -- runs ------------------------------------------------------------------------------------------


def how_stopped(summary: Mapping[str, Any]) -> str:
    """One word for how a run ended, from its summary."""
    stopped = summary.get("stopped")
    if isinstance(stopped, str) and stopped:
        return stopped
    if summary.get("exit_code") == 6 or summary.get("stop_note"):
        return "budget"
    if summary.get("exit_code") == 5:
        return "waiting"
    return "finished"


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def run_line(summary: Mapping[str, Any], *, name: str) -> RunLine:
    """A saved summary as a run line; missing fields are left empty, never guessed."""
    kinds = {key: _int(summary.get(key)) for key in TOKEN_KINDS}
    wall_s, cost = summary.get("wall_s"), summary.get("cost_usd")
    exit_code = summary.get("exit_code")
    return RunLine(
        run_id=str(summary.get("run_id") or name),
        job=summary.get("job") if isinstance(summary.get("job"), str) else None,
        started_at=summary.get("started_at") if isinstance(summary.get("started_at"), str) else None,
        wall_s=float(wall_s) if isinstance(wall_s, int | float) else None,
        mode=summary.get("mode") if isinstance(summary.get("mode"), str) else None,
        ok=_int(summary.get("ok")),
        errors=_int(summary.get("errors")),
        already_done=_int(summary.get("already_done")),
        tokens=sum(kinds.values()),
        cost_usd=round(float(cost), 6) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
        exit_code=exit_code if isinstance(exit_code, int) else None,
        stopped=how_stopped(summary),
        note=summary.get("fatal_error") or summary.get("stop_note"),
        **kinds,
    )


def _stored_runs(store: PartStore, problems: list[str]) -> list[RunLine]:
    """The run summaries uploaded beside the parts of a remote output, oldest first."""
    runs: list[tuple[str, str, RunLine]] = []
    for name in store.names("", ".json", folder=RUNS_DIR):
        try:
            value = json.loads(store.read_bytes(f"{RUNS_DIR}/{name}"))
        except (OSError, ValueError) as exc:
            problems.append(f"run summary {RUNS_DIR}/{name} unreadable: {one_line(str(exc))}")
            continue
        if isinstance(value, dict):
            run = run_line(value, name=name.removesuffix(".json"))
            runs.append((run.started_at or "", name, run))
    return [run for _, _, run in sorted(runs, key=lambda entry: entry[:2])]


def read_runs(out_dir: Path | PartStore, problems: list[str]) -> list[RunLine]:
    """The saved runs, oldest first: by start (a second's resolution), then by when the summary was saved."""
    if isinstance(out_dir, PartStore):
        return _stored_runs(out_dir, problems)
    runs: list[tuple[str, int, RunLine]] = []
    folder = out_dir / RUNS_DIR
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
            saved_ns = path.stat().st_mtime_ns
        except (OSError, ValueError) as exc:
            problems.append(f"run summary {RUNS_DIR}/{path.name} unreadable: {one_line(str(exc))}")
            continue
        if not isinstance(value, dict):
            problems.append(f"run summary {RUNS_DIR}/{path.name} is not one docpipe wrote")
            continue
        run = run_line(value, name=path.stem)
        runs.append((run.started_at or "", saved_ns, run))
    return [run for _, _, run in sorted(runs, key=lambda entry: entry[:2])]


# -- rows ------------------------------------------------------------------------------------------


def one_line(text: str, *, limit: int = MESSAGE_CHARS) -> str:
    """Text on one line, whitespace folded, cut to `limit` characters."""
    folded = " ".join(text.split())
    return folded if len(folded) <= limit else folded[: limit - 3] + "..."


def latest_rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The latest row per document (by created_at; on a tie the later row read), as `load_results` keeps."""
    latest: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        doc_id = row["doc_id"]
        kept = latest.get(doc_id)
        created = row.get("created_at")
        if kept is None or kept.get("created_at") is None or (created is not None and created >= kept["created_at"]):
            latest[doc_id] = row
    return latest


def group_errors(latest: Mapping[str, Mapping[str, Any]], *, listed: int) -> list[ErrorGroup]:
    """Documents in error by error_type, largest group first, the first `listed` ids of each (sorted)."""
    by_type: dict[str, list[Mapping[str, Any]]] = {}
    for doc_id in sorted(latest):
        row = latest[doc_id]
        if row.get("status") != "ok":
            by_type.setdefault(str(row.get("error_type") or "unknown"), []).append(row)
    groups = [
        ErrorGroup(
            error_type=kind,
            count=len(rows),
            documents=[
                {"doc_id": row["doc_id"], "error_message": one_line(str(row.get("error_message") or ""))}
                for row in rows[:listed]
            ],
            more=max(0, len(rows) - listed),
        )
        for kind, rows in by_type.items()
    ]
    return sorted(groups, key=lambda group: (-group.count, group.error_type))


def _read_rows(out_dir: Path | PartStore, problems: list[str]) -> list[dict[str, Any]]:
    if isinstance(out_dir, Path) and not any(out_dir.glob(PART_GLOB)):
        return []
    from .results import load_table  # pyarrow, paid only when there are parts to read

    try:
        table = load_table(out_dir, columns=ROW_COLUMNS)
    except PipelineError as exc:
        problems.append(f"the rows cannot be read: {exc}")
        return []
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


def read_lock_holder(out_dir: Path) -> str | None:
    try:
        text = (out_dir / LOCK_NAME).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    if not text:
        return None
    try:
        holder = json.loads(text)
    except ValueError:
        return one_line(text)
    if not isinstance(holder, dict):
        return one_line(text)
    pid, host, since = holder.get("pid"), holder.get("host"), holder.get("started_at")
    return f"run {holder.get('run_id')} (pid {pid} on {host}, since {since})"


# -- the report ------------------------------------------------------------------------------------


def collect_status(out: OutputView | Path, *, errors_listed: int = DEFAULT_ERRORS_LISTED) -> OutputStatus:
    """Everything `docpipe status` shows; raises `ConfigError` unless `out` is a docpipe output directory.

    Of a remote output, the runs are those uploaded beside its parts, and what is pending is read from
    this machine's state directory for it, when there is one."""
    view = out if isinstance(out, OutputView) else OutputView(out, out)
    out_dir = view.parts
    check_output_dir(out_dir)
    problems: list[str] = []
    runs = read_runs(out_dir, problems)
    pending = collect_pending(view.state, problems) if view.state is not None else Pending()
    if view.state is None:
        problems.append(f"no state directory for {out_dir} on this machine: its journal and batches are not shown "
                        "(give --state-dir DIR)")
    unreadable_before = len(problems)
    latest = latest_rows(_read_rows(out_dir, problems))
    ok = sum(1 for row in latest.values() if row.get("status") == "ok")
    return OutputStatus(
        out=str(out_dir),
        runs=runs[-RUNS_LISTED:],
        older_runs=max(0, len(runs) - RUNS_LISTED),
        pending=pending,
        documents=len(latest),
        ok=ok,
        error=len(latest) - ok,
        errors=group_errors(latest, listed=errors_listed),
        lock_holder=read_lock_holder(view.state) if view.state is not None else None,
        rows_readable=len(problems) == unreadable_before,
        problems=problems,
    )


def to_json(status: OutputStatus) -> str:
    """The report as one JSON object."""
    return json.dumps(asdict(status), indent=2, ensure_ascii=False)


def _run_text(run: RunLine) -> str:
    when = run.started_at or "?"
    took = f"{run.wall_s:.1f} s" if run.wall_s is not None else "?"
    code = "?" if run.exit_code is None else str(run.exit_code)
    text = (
        f"  {when}  {run.run_id}  {run.stopped} (exit {code}) in {took}: {run.ok} ok, {run.errors} errors, "
        f"{run.already_done} already done; {run.tokens:,} tokens, {money(run.cost_usd)}"
    )
    if run.mode and run.mode != "realtime":
        text += f" [{run.mode}]"
    return text + (f"\n      {one_line(run.note)}" if run.note else "")


def money(cost_usd: float | None) -> str:
    """A cost for a person: dollars to a hundredth of a cent, or 'cost unknown' (a model with no known price)."""
    return "cost unknown" if cost_usd is None else f"${cost_usd:.4f}"


def describe(status: OutputStatus) -> str:
    """The report for a person at a terminal."""
    lines = [f"docpipe: {status.out}"]
    if status.lock_holder:
        lines.append(f"  lock held or left by {status.lock_holder}: a run is in progress, or was killed")
    older = f" ({status.older_runs} older not shown)" if status.older_runs else ""
    lines.append(f"runs: {len(status.runs) + status.older_runs}, newest last{older}")
    lines += [_run_text(run) for run in status.runs] or ["  none recorded"]
    lines.append("pending:")
    lines += pending_lines(status.pending)
    if status.rows_readable:
        lines.append(f"documents: {status.documents} (latest row each): {status.ok} ok, {status.error} error")
    else:
        lines.append("documents: the rows cannot be read (see problems)")
    for group in status.errors:
        lines.append(f"  {group.error_type}: {group.count}")
        lines += [f"    {doc['doc_id']}: {doc['error_message']}" for doc in group.documents]
        if group.more:
            lines.append(f"    ... and {group.more} more")
    if status.problems:
        lines.append("problems:")
        lines += [f"  {problem}" for problem in status.problems]
    return "\n".join(lines)
