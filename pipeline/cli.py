"""The `docpipe` command line: parse options, call one library function, map errors to exit codes."""

from __future__ import annotations

import gc
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .cli_inspect import INSPECTION_COMMANDS
from .cli_output import fail
from .config import resolve_config
from .errors import EXIT_DOCUMENT_ERRORS, EXIT_INTERRUPTED, EXIT_OK, ConfigError, PipelineError
from .jobs import Job, load_job

if TYPE_CHECKING:
    from .summary import RunSummary

__all__ = ["entry", "main"]

# A run allocates a few hundred short-lived objects per request (SDK, HTTP and row objects); at the
# default threshold (700) the collector ran ~800 times over 2,000 requests and took a sixth of the
# process's CPU. Objects that live for the whole process are moved out of its sight first. Against
# 20,000, this threshold moved bench/throughput.py at C=512 from a median of 0.910 (0.892-0.912) to
# 0.913 (0.908-0.918) over eight runs each; the memory benchmark's peak went from 220 to 228 MB.
GC_GEN0_THRESHOLD = 100_000
_own_process = False  # set by `entry()`: the process is docpipe's alone


def _tune_gc() -> None:
    """When the process is docpipe's own (not a test runner or a notebook): fewer, cheaper collections."""
    if not _own_process:
        return
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


INTERRUPTED_MESSAGE = "docpipe: interrupted; finished rows are kept, rerun to resume"


def entry() -> None:
    """The `docpipe` executable (and `python -m pipeline`): `main` in a process of its own.

    From here until a run installs its own handlers (and again after it), SIGTERM is taken like
    Ctrl-C, so a signal that lands during start-up or the final summary ends the process with
    exit 130 and one line, never a traceback or the shell's 143.
    """
    global _own_process
    _own_process = True
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        code = main.main(standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):  # click turns Ctrl-C into Abort
        _ignore_late_signals()
        click.echo(INTERRUPTED_MESSAGE, err=True)
        code = EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    finally:  # also as a command's own sys.exit() passes
        _ignore_late_signals()
    sys.exit(code if isinstance(code, int) else 0)


def _ignore_late_signals() -> None:
    """The exit code is decided: a signal now (the interpreter restores the default handlers as it
    shuts down) must not turn it into death by signal, 143.

    CPython (3.11) also remembers a KeyboardInterrupt that escaped code run by `exec` of a string
    (as `dataclasses` does to build `__init__`) and, however the interrupt was handled, kills the
    process with SIGINT on exit instead of exiting 130. Any `exec` of a string that completes
    clears that mark; after SIG_IGN no new interrupt can set it again.

    Until both handlers are replaced, the other signal still raises KeyboardInterrupt: it is caught
    and the replacing done again, as many times as signals land.
    """
    while True:
        try:
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, signal.SIG_IGN)
            break
        except KeyboardInterrupt:
            continue
    exec("")  # clears the interpreter's "unhandled KeyboardInterrupt" mark, see above


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="docpipe")
def main() -> None:
    """Batch document processing on Claude's Messages API.

    \b
    Start with `docpipe init` (a commented job file); the job format is in the
    README's "Jobs" section. Environment:
      ANTHROPIC_API_KEY      the API key (or --offline: the built-in emulator)
      ANTHROPIC_BASE_URL     another endpoint (a proxy, or an emulator)
      DOCPIPE_CONCURRENCY, DOCPIPE_RPM, DOCPIPE_ITPM, DOCPIPE_OTPM   defaults for the run flags
      DOCPIPE_PROGRESS       auto, bar, log or off
      DOCPIPE_PRICES         a JSON file of prices per model (USD per million tokens)
      DOCPIPE_GRACE_S, DOCPIPE_UNREACHABLE_S, DOCPIPE_LOG_EVERY_S, DOCPIPE_BATCH_POLL_S
      DOCPIPE_EMULATOR_MODELS  ID=LIKE,...: --offline also serves these models
    """


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address to bind.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port (0 picks a free one).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for ids, content and faults.")
@click.option(
    "--faults",
    "faults_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Fault profile (JSON or TOML).",
)
@click.option("--latency-ms", default=0.0, show_default=True, type=float, help="Time to first token.")
@click.option("--per-token-ms", default=0.0, show_default=True, type=float, help="Time per output token.")
@click.option("--rpm", type=int, help="Requests per minute per key (default: unlimited).")
@click.option("--itpm", type=int, help="Input tokens per minute per key (default: unlimited).")
@click.option("--otpm", type=int, help="Output tokens per minute per key (default: unlimited).")
@click.option(
    "--batch-seconds", default=2.0, show_default=True, type=float, help="How long a message batch stays in_progress."
)
@click.option("--api-key", "api_keys", multiple=True, help="Accept only these keys (repeatable; default: any).")
@click.option("--serve-model", "served", multiple=True, metavar="ID=LIKE",
              help="Also serve model ID, behaving as LIKE (a model released after docpipe's table; repeatable; "
                   "--offline reads DOCPIPE_EMULATOR_MODELS=ID=LIKE,...).")
def emulator(
    host: str,
    port: int,
    seed: int,
    faults_path: Path | None,
    latency_ms: float,
    per_token_ms: float,
    rpm: int | None,
    itpm: int | None,
    otpm: int | None,
    batch_seconds: float,
    api_keys: tuple[str, ...],
    served: tuple[str, ...],
) -> None:
    """Serve the Anthropic API emulator on loopback until interrupted."""
    from .emulator import EmulatorConfig, FaultPlan, LatencyModel, Limits, load_fault_plan, serve
    from .emulator.config import served_models

    try:
        plan = load_fault_plan(faults_path, seed=seed) if faults_path else FaultPlan(seed=seed)
        config = EmulatorConfig(
            seed=seed,
            latency=LatencyModel(ttft_ms=latency_ms, per_token_ms=per_token_ms),
            limits=Limits(rpm=rpm, itpm=itpm, otpm=otpm),
            api_keys=frozenset(api_keys) if api_keys else None,
            batch_processing_s=batch_seconds,
            faults=plan,
            models=served_models(",".join(served)),
        )

        def ready(url: str) -> None:
            click.echo(f"docpipe emulator listening on {url} (seed {seed}); Ctrl-C to stop", err=True)

        _tune_gc()
        serve(config, host=host, port=port, on_ready=ready)
    except KeyboardInterrupt:
        return
    except PipelineError as exc:
        fail(exc)


@main.command(short_help="Run a job over a folder, a manifest or one document.")
@click.argument("job_file", metavar="JOB", type=click.Path(path_type=Path))
@click.argument("input_path", metavar="[INPUT]", required=False)
@click.option(
    "--out",
    "out_dir",
    required=True,
    metavar="DIR|URI",
    help="Output directory (a Parquet dataset), or object storage: s3://bucket/prefix, gs://...",
)
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="An --out in object storage: the local directory of its journal and lock "
                   "[default: one per URI under ~/.local/state/docpipe].")
@click.option("--model", help="Run this model instead of the job's (an id or an alias; part of the job's fingerprint).")
@click.option("--concurrency", type=click.IntRange(1, 4096), help="Requests in flight at most [default: 16].")
@click.option("--limit", type=click.IntRange(min=1), help="Process at most N documents not already done.")
@click.option("--offline", is_flag=True, help="Run against the built-in API emulator on loopback.")
@click.option("--dry-run", is_flag=True, help="Show what would be sent and what is already done; send nothing.")
@click.option("--include", multiple=True, help="Glob of files to take from a folder (repeatable).")
@click.option("--exclude", multiple=True, help="Glob of files to skip in a folder (repeatable).")
@click.option("--rpm", type=click.IntRange(min=1), help="Requests per minute (overrides the job).")
@click.option("--itpm", type=click.IntRange(min=1), help="Input tokens per minute (overrides the job).")
@click.option("--otpm", type=click.IntRange(min=1), help="Output tokens per minute (overrides the job).")
@click.option("--progress", type=click.Choice(["auto", "bar", "log", "off"]), help="Progress display [default: auto].")
@click.option(
    "--mode",
    type=click.Choice(["realtime", "batch", "auto"]),
    default="realtime",
    show_default=True,
    help="realtime: concurrent requests; batch: the Message Batches API at half the price (answers within 24 h); "
    "auto: batch from --batch-above documents to send.",
)
@click.option("--batch-above", type=click.IntRange(min=1), metavar="N",
              help="--mode auto: Message Batches from N documents to send [default: job.batch_above, else 1000].")
@click.option("--no-wait", is_flag=True, help="Batch mode: submit and exit; the next run collects the results.")
@click.option(
    "--max-cost",
    "max_cost_usd",
    type=click.FloatRange(min=0, min_open=True),
    metavar="USD",
    help="Start no request that could take this run's spend past USD (exit 6; rerun with more to go on).",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: this process; ray: a Ray Data pipeline, API actors sharing one rate limit (docpipe[ray]).",
)
@click.option("--address", "ray_address", metavar="ADDR", help="--engine ray: the Ray cluster to join [default: "
              "RAY_ADDRESS, else a local one].")
@click.option("--actors", "ray_actors", type=click.IntRange(min=1), metavar="N",
              help="--engine ray: API actors, each with --concurrency requests in flight [default: 2].")
def run(
    job_file: Path, input_path: str | None, out_dir: str, model: str | None, dry_run: bool, no_wait: bool, **flags: Any
) -> None:
    """Run JOB over INPUT (a folder, a JSONL, CSV or Parquet manifest, or one document) and write rows to --out.

    \b
    Exit codes: 0 every document ok; 1 finished, some documents in error; 2 usage or
    configuration error; 3 a fatal error stopped the run; 4 the output directory or the
    disk failed (the message says what to do); 5 batch mode with --no-wait: batches of an
    earlier run are still in progress (the next run collects them); 6 --max-cost reached
    (rerun with a higher budget to go on); 75 another run holds --out; 130 interrupted
    (rerun to resume).
    """
    from .runner import run as run_job
    from .transport import transport_for

    try:
        job = load_job(job_file, model=model)
        _warn_of_model(job)
        if input_path is None:
            raise ConfigError("missing INPUT: give a folder, a manifest (.jsonl, .csv, .parquet) or one document")
        local = _local_input(input_path, out_dir, flags["state_dir"])
        # `flags` are resolve_config's keywords, named alike: the other options of this command
        config = resolve_config(job, local, out_dir, dry_run=dry_run, wait=not no_wait, **flags)
        if dry_run:
            from .dryrun import dry_run as plan_run

            click.echo(plan_run(config))
            return
        _tune_gc()
        summary = run_job(config, transport=transport_for(config))
    except PipelineError as exc:
        fail(exc)
        return
    _tell(summary, config.out_label)
    sys.exit(summary.exit_code)


def _tell(summary: RunSummary, out_label: str) -> None:
    """The run's summary on stderr, then where its rows are and why it stopped, the error last."""
    click.echo(summary.describe(), err=True)
    saved = f" (summary: {summary.saved_to})" if summary.saved_to else ""
    click.echo(f"docpipe: results in {out_label.rstrip('/')}/{saved}", err=True)
    if summary.stop_note:
        click.echo(f"docpipe: stopped: {summary.stop_note}", err=True)
    if summary.fatal_error:  # last, where a person reading a cron log looks first
        click.echo(f"docpipe: error: {summary.fatal_error}", err=True)


@main.command(short_help="What a run would cost, realtime and in batches; sends no message.")
@click.argument("job_file", metavar="JOB", type=click.Path(path_type=Path))
@click.argument("input_path", metavar="INPUT")
@click.option("--out", "out_dir", metavar="DIR|URI",
              help="The output a run would use (a directory or s3://...): its done documents left out, its rows give "
                   "answer lengths.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="An --out in object storage: its local state directory [default: as `docpipe run`].")
@click.option("--offline", is_flag=True, help="Count tokens with the built-in API emulator.")
@click.option("--model", help="Estimate for this model instead of the job's (an id or an alias).")
@click.option("--concurrency", type=click.IntRange(1, 4096), help="Requests in flight at most [default: 16].")
@click.option("--limit", type=click.IntRange(min=1), help="At most N documents not already done.")
@click.option("--include", multiple=True, help="Glob of files to take from a folder (repeatable).")
@click.option("--exclude", multiple=True, help="Glob of files to skip in a folder (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the estimate as JSON.")
def estimate(
    job_file: Path,
    input_path: str,
    out_dir: str | None,
    state_dir: Path | None,
    offline: bool,
    concurrency: int | None,
    limit: int | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    as_json: bool,
    model: str | None,
) -> None:
    """Estimate what running JOB over INPUT costs, realtime and in batches; sends no Messages request.

    Input tokens are counted with the API's free count_tokens on a sample when ANTHROPIC_API_KEY is
    set (or with --offline), else estimated locally; the output says which.
    """
    import tempfile

    from .estimate import describe, estimate_run, to_json
    from .transport import transport_for

    try:
        job = load_job(job_file, model=model)
        _warn_of_model(job)
        with tempfile.TemporaryDirectory(prefix="docpipe-estimate-") as nowhere:
            out = out_dir or Path(nowhere) / "out"
            config = resolve_config(
                job, _local_input(input_path, out, state_dir), out, state_dir=state_dir, concurrency=concurrency,
                limit=limit,
                offline=offline, include=include, exclude=exclude, dry_run=True,
            )
            reachable = offline or config.api_key is not None  # resolve_config read the key and base URL
            data = estimate_run(config, transport=transport_for(config) if reachable else None)
    except PipelineError as exc:
        fail(exc)
        return
    click.echo(to_json(data) if as_json else describe(data))


@main.command(short_help="Write a commented job file to start from.")
@click.argument("name", default="job")
@click.option("--to", "to_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write it [default: NAME.toml in the current folder].")
def init(name: str, to_path: Path | None) -> None:
    """Write a commented job file to start from: every key, its default, what it does."""
    from .starter import starter_job

    path = to_path or Path(f"{name}.toml")
    try:
        text = starter_job(name, str(path))
        if path.exists():
            raise ConfigError(f"{path} exists: give another NAME or --to, docpipe does not overwrite a job file")
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    except PipelineError as exc:
        fail(exc)
        return
    click.echo(f"docpipe: wrote {path}; check it: docpipe check {path}; run it: docpipe run {path} INPUT --out DIR")


@main.command(short_help="Check a job (and its input) without sending anything.")
@click.argument("job_file", metavar="JOB", type=click.Path(path_type=Path))
@click.argument("input_path", metavar="[INPUT]", required=False)
@click.option("--model", help="Check for this model instead of the job's.")
def check(job_file: Path, input_path: str | None, model: str | None) -> None:
    """Check JOB (and INPUT, if given: every row read as a run reads it) without sending anything.

    Exit 0: valid. Exit 1: valid, but rows of INPUT would be error rows (listed). Exit 2: unusable.

    An INPUT in object storage is fetched into a temporary folder, read there, and removed.
    """
    import tempfile

    from .starter import check_job

    try:
        job = load_job(job_file, model=model)
        with tempfile.TemporaryDirectory(prefix="docpipe-check-") as scratch:
            local = _local_input(input_path, Path(scratch), None) if input_path is not None else None
            lines, rows_in_error = check_job(job, local)
    except PipelineError as exc:
        fail(exc)
        return
    click.echo("\n".join(lines))
    sys.exit(EXIT_DOCUMENT_ERRORS if rows_in_error else EXIT_OK)


def _warn_of_model(job: Job) -> None:
    """One warning line on stderr when the model changes what the figures mean (no prices, prices left out)."""
    if job.model_note:
        click.echo(f"docpipe: warning: {job.model_note}", err=True)


def _local_input(input_path: str, out: str | Path, state_dir: Path | None) -> Path:
    """INPUT as a local path: one in object storage is mirrored into the output's state directory first."""
    from .stores import location

    where = location(input_path, what="INPUT")
    if isinstance(where, Path):
        return where
    from .config import resolve_output
    from .remote_inputs import fetch_input

    state, _ = resolve_output(out, state_dir, env=os.environ)
    return fetch_input(where, state, echo=lambda line: click.echo(line, err=True))


for _command in INSPECTION_COMMANDS:
    main.add_command(_command)
