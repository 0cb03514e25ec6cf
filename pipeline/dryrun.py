"""The dry run: what a run would send and what is already done, as text; sends nothing, writes nothing."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator

from .budget import Budget
from .config import RunConfig
from .ledger import DoneLedger, load_ledger
from .output import output_schema
from .plans import Planner
from .prepare import Preparer, Work
from .sources import manifest_metadata_columns, open_source
from .summary import journal_line, skipped_line, unchanged_line

__all__ = ["dry_run", "would_send"]


def would_send(config: RunConfig, skipped: Counter[str]) -> tuple[DoneLedger, Preparer, Iterator[Work]]:
    """The works a run would take from its input, read-only: the done ledger applied, at most `--limit`.

    The ledger reads the journal without recovering it, so nothing is written. Shared by the dry run
    and `docpipe estimate`. `skipped` counts the folder files left out, by extension.
    """
    job = config.job
    schema = output_schema(job, manifest_metadata_columns(config.input_path))  # a bad manifest fails here too
    ledger = load_ledger(config.out_dir, job, schema=schema, parts=config.parts)
    preparer = Preparer(job, ledger)
    works = preparer.works(open_source(config.input_path, include=config.include, exclude=config.exclude,
                                       skipped=skipped))
    return ledger, preparer, works if config.limit is None else itertools.islice(works, config.limit)


def _projections(config: RunConfig, inputs: list[int], planner: Planner) -> list[str]:
    """The expected cost, realtime and batch, on the local estimate (`docpipe estimate` counts with the API)."""
    from .estimate import ASSUMED_OUTPUT_SHARE, project

    lines = []
    for mode in ("realtime", "batch"):
        projection = project(
            config.job, mode=mode, inputs=inputs, worst_inputs=inputs, prefix_tokens=planner.prefix_estimate,
            output_per_document=config.job.max_tokens * ASSUMED_OUTPUT_SHARE,
            cacheable=planner.prefix_cacheable(), concurrency=config.concurrency,
        )
        lines.append(
            f"  {mode}: expected ${projection.expected_usd:.4f} with caching, answers assumed "
            f"{ASSUMED_OUTPUT_SHARE:.0%} of max_tokens (`docpipe estimate` counts tokens with the API)"
        )
    return lines


def dry_run(config: RunConfig, *, max_listed: int = 50) -> str:
    """What a run would send and what is already done, as text; sends nothing, writes nothing."""
    job = config.job
    planner = Planner(job, mode=config.mode)  # the estimate a run's request would carry
    listed: list[str] = []
    to_send = requests = errors = estimated_input = 0
    ceiling = 0.0
    inputs: list[int] = []
    worst = Budget(None, job.model, batch=config.mode == "batch", prices=job.prices)  # what --max-cost would reserve
    skipped: Counter[str] = Counter()
    ledger, preparer, works = would_send(config, skipped)
    for work in works:
        if work.error is not None:
            errors += 1
            line = f"  error  {work.ref.doc_id}: {work.error.message}"
        else:
            estimates = planner.request_estimates(work.ref.doc_id, work.payload) if work.payload is not None else [0]
            to_send += 1
            requests += len(estimates)
            tokens = sum(estimates)
            estimated_input += tokens
            inputs.extend(estimates)
            ceiling += sum(worst.worst_case_usd(request, job.max_tokens) for request in estimates)
            how = "  (truncated)" if work.truncated else ""
            if len(estimates) > 1:
                how = f"  (in {len(estimates) - 1} pieces, then one request combining their answers)"
            elif work.input_kind == "pdf":
                how = f"  (the PDF itself, {work.pages} page(s))"
            line = f"  send   {work.ref.doc_id}  ~{tokens:,} input tokens{how}"
        if len(listed) < max_listed:
            listed.append(line)
    shown = f" (first {max_listed} listed)" if to_send + errors > max_listed else ""
    header = [
        f"docpipe: dry run of job {job.name!r} (fingerprint {job.fingerprint}) over {config.input_path}",
        f"  model {job.model}, max_tokens {job.max_tokens}, {'streamed' if planner.stream else 'non-streaming'}, "
        f"fields: {', '.join(f.name for f in job.fields)}",
        f"  would send {to_send} document(s) in {requests} request(s), ~{estimated_input:,} input tokens before "
        f"caching; cost at most ${ceiling:.4f} (every input token at the dearest input price, cache writes included, "
        "and every answer at max_tokens)",
        f"  {preparer.already_done} already done (same content, same job fingerprint): not sent again",
        *([f"  {journal_line(ledger.journal_rows)}"] if ledger.journal_rows else []),
        *([f"  {unchanged_line(preparer.errors_unchanged)}"] if preparer.errors_unchanged else []),
        *([f"  {skipped_line(skipped)}"] if skipped else []),
        *([f"  {note}"] if (note := planner.cache_note()) else []),
        *_projections(config, inputs, planner),
        f"  {errors} would be error rows before any request{shown}:" if errors else f"  no input errors{shown}:",
    ]
    return "\n".join(header + listed)
