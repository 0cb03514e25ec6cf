"""`docpipe estimate`: what a run will cost, realtime and in batches, before anything is sent.

For the documents a run would send (the done ledger of `--out` applied, as a run applies it):

- **Input tokens**: docpipe's local estimate of each request, calibrated by the API's free
  `count_tokens` on a sample of the requests when the API is reachable (the output says which).
- **Output tokens**: the mean of this job's earlier ok rows in the output directory (same job
  fingerprint), else a stated assumption (`ASSUMED_OUTPUT_SHARE` of `max_tokens`); the ceiling at
  `max_tokens` is shown beside it.
- **Prompt caching**: the shared prefix is written once and read by every other request in realtime
  (the cache warm-up), and written by each of the first `BATCH_CACHE_WAVE` requests of a batch,
  which are processed at once on a cold cache; a prefix under the model's minimum is never cached.
- **Cost**: expected (the above) and worst case (what `--max-cost` reserves: every input token at
  the dearest input price, `max_tokens` out), both with the batch discount for batch mode.
- **Time**: at the configured rate limits, and at `--concurrency` with this job's earlier latency.

The model is a pure function (`project`) of those counts, so a benchmark can hold it against the
rows a run actually wrote (`bench/cost.py`).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .budget import Budget
from .config import RunConfig
from .errors import PipelineError
from .jobs import Job
from .models import get_model
from .plans import Planner
from .pricing import TokenUsage, cost_usd, model_prices
from .transport import TransportFactory, TransportOptions

if TYPE_CHECKING:
    from .parts import Parts

__all__ = ["Projection", "estimate_run", "project"]

SAMPLE_REQUESTS = 20  # requests counted with count_tokens to calibrate the local estimate
ASSUMED_OUTPUT_SHARE = 0.25  # of max_tokens, when no earlier row says how long answers are
BATCH_CACHE_WAVE = 16  # requests of a batch assumed processed at once (the emulator's model, docs/emulator.md)


@dataclass(frozen=True, slots=True)
class Projection:
    """What one mode of a run is expected to cost."""

    mode: str
    documents: int
    input_tokens: int
    cache_write_tokens: int
    cache_read_tokens: int
    output_tokens: int
    expected_usd: float
    worst_usd: float


def project(
    job: Job, *, mode: str, inputs: Sequence[int], worst_inputs: Sequence[int], prefix_tokens: int,
    output_per_document: float, cacheable: bool, concurrency: int,
) -> Projection:
    """Expected and worst-case cost of one request per document.

    `inputs` are each request's expected input tokens (prefix included); `worst_inputs` what
    `--max-cost` would reserve for each (docpipe's local, high estimate). A model's long-prompt tier
    applies per request, so requests over its threshold are priced apart from the others.
    """
    documents = len(inputs)
    if documents == 0:
        return Projection(mode, 0, 0, 0, 0, 0, 0.0, 0.0)
    batch = mode == "batch"
    if not cacheable:
        writes = 0
    elif batch:
        writes = min(documents, BATCH_CACHE_WAVE)  # the first wave finds the cache cold; the rest read
    elif job.cache_warmup or concurrency <= 1:
        writes = 1
    else:
        writes = min(concurrency, documents)
    reads = documents - writes if cacheable else 0
    ttl = job.cache_ttl or ("1h" if batch else "5m")
    spec = model_prices(job.model, job.prices)
    threshold = spec.long_prompt_threshold_tokens if spec is not None else None
    long = [tokens for tokens in inputs if threshold is not None and tokens > threshold]
    groups = [group for group in ([t for t in inputs if threshold is None or t <= threshold], long) if group]
    expected = 0.0
    for group in groups:  # the average request of a group, times its size: the tier is decided per request
        count, cached = len(group), prefix_tokens if cacheable else 0
        per_request = TokenUsage(
            input_tokens=round(sum(group) / count) - cached,
            output_tokens=round(output_per_document),
            cache_read_tokens=round(cached * reads / documents),
            cache_write_5m_tokens=round(cached * writes / documents) if ttl == "5m" else 0,
            cache_write_1h_tokens=round(cached * writes / documents) if ttl == "1h" else 0,
        )
        expected += (cost_usd(job.model, per_request, batch=batch, prices=job.prices) or 0.0) * count
    ceiling = Budget(None, job.model, batch=batch, prices=job.prices)
    worst = sum(ceiling.worst_case_usd(tokens, job.max_tokens) for tokens in worst_inputs)
    cached_total = documents * prefix_tokens if cacheable else 0
    return Projection(
        mode, documents, sum(inputs) - cached_total, writes * prefix_tokens if cacheable else 0,
        reads * prefix_tokens, round(documents * output_per_document), round(expected, 6), round(worst, 6),
    )


async def _count(transport: TransportFactory, params: list[dict[str, Any]]) -> list[int]:
    opened = transport(TransportOptions(max_connections=4))
    try:
        counter = getattr(opened, "count_tokens", None)
        if counter is None:
            raise PipelineError("the transport cannot count tokens")
        return [await counter(p) for p in params]
    finally:
        await opened.aclose()


def _earlier(out_dir: Parts, job: Job) -> tuple[float | None, float | None, int]:
    """Mean output tokens and median latency of this job's earlier ok rows in `out_dir`, and how many."""
    import pyarrow.compute as pc

    from .parts import part_files
    from .results import load_table

    if not part_files(out_dir):
        return None, None, 0
    table = load_table(out_dir, columns=["status", "job_fingerprint", "output_tokens", "latency_ms"])
    mine = table.filter(pc.and_(pc.equal(table["status"], "ok"), pc.equal(table["job_fingerprint"], job.fingerprint)))
    if not len(mine):
        return None, None, 0
    latency = pc.approximate_median(mine["latency_ms"]).as_py()
    return float(pc.mean(mine["output_tokens"]).as_py()), latency, len(mine)


def estimate_run(config: RunConfig, *, transport: TransportFactory | None) -> dict[str, Any]:
    """The estimate as data (`describe` turns it into text); `transport` None: no count_tokens."""
    from .dryrun import would_send

    job = config.job
    planner = Planner(job)
    skipped: Counter[str] = Counter()
    documents = errors = local = 0
    locals_: list[int] = []
    in_pieces: list[int] = []  # the requests of chunked documents: sent through Messages even in batch mode
    sample: list[dict[str, Any]] = []
    sample_local = 0
    _, preparer, works = would_send(config, skipped)
    for work in works:
        if work.error is not None or work.payload is None:
            errors += 1
            continue
        documents += 1
        estimates = planner.request_estimates(work.ref.doc_id, work.payload)  # a chunked one's pieces and reduce
        local += sum(estimates)
        (in_pieces if len(estimates) > 1 else locals_).extend(estimates)
        if len(sample) < SAMPLE_REQUESTS:
            ref = work.ref
            details = planner.details_for(ref.doc_id, ref.source, ref.metadata, work.size, work.mtime_ns)
            for spec in planner.plan(ref.doc_id, work.payload, details=details)[: SAMPLE_REQUESTS - len(sample)]:
                sample.append(spec.params)
                sample_local += spec.estimated_input_tokens
    ratio, counted_by = _calibration(transport, sample, sample_local)
    input_tokens = round(local * ratio)
    prefix_tokens = round(planner.prefix_estimate * ratio)
    output_mean, latency_ms, output_source = _output_per_document(config, job)
    model = get_model(job.model)
    cacheable = job.cache_ttl != "off" and (model is None or prefix_tokens >= model.cache_min_tokens)
    def projected(mode: str, locals_of: list[int]) -> Projection:
        return project(
            job, mode=mode, inputs=[round(tokens * ratio) for tokens in locals_of], worst_inputs=locals_of,
            prefix_tokens=prefix_tokens, output_per_document=output_mean, cacheable=cacheable,
            concurrency=config.concurrency,
        )

    unpriced = model_prices(job.model, job.prices) is None  # a model docpipe has no prices for: unknown, not $0
    projections = [
        _plus(projected("realtime", locals_ + in_pieces)),
        _plus(projected("batch", locals_), projected("realtime", in_pieces), mode="batch"),
    ]
    return {
        "job": job.name, "model": job.model, "documents": documents, "errors_before_sending": errors,
        "already_done": preparer.already_done, "input_tokens": input_tokens, "prefix_tokens": prefix_tokens,
        "input_counted_by": counted_by, "output_tokens_per_document": round(output_mean, 1),
        "output_source": output_source, "output_ceiling_per_document": job.max_tokens, "cacheable": cacheable,
        "latency_p50_ms": latency_ms, "concurrency": config.concurrency,
        "rate_limits": {"rpm": config.rpm, "itpm": config.itpm, "otpm": config.otpm},
        "projections": [_unpriced(asdict(p)) if unpriced else asdict(p) for p in projections],
        "prices_known": not unpriced,
    }


def _calibration(
    transport: TransportFactory | None, sample: list[dict[str, Any]], sample_local: int
) -> tuple[float, str]:
    """count_tokens over the sample against docpipe's local estimate of it: (the ratio, how the input was counted)."""
    if transport is None or not sample:
        return 1.0, "docpipe's local estimate (no API reachable: set ANTHROPIC_API_KEY or use --offline)"
    try:
        counted = asyncio.run(_count(transport, sample))
    except PipelineError as exc:
        return 1.0, f"docpipe's local estimate (count_tokens failed: {exc})"
    ratio = sum(counted) / sample_local
    return ratio, f"count_tokens on {len(sample)} request(s), applied to the local estimate (x{ratio:.2f})"


def _output_per_document(config: RunConfig, job: Job) -> tuple[float, float | None, str]:
    """Output tokens a document takes (this job's earlier rows in --out, else a share of max_tokens), the
    latency of those rows, and where the figure comes from."""
    output_mean, latency_ms, earlier_rows = _earlier(config.parts, job)
    if output_mean is None:
        share = f"assumed: {ASSUMED_OUTPUT_SHARE:.0%} of max_tokens (no earlier rows of this job in --out)"
        return job.max_tokens * ASSUMED_OUTPUT_SHARE, latency_ms, share
    return output_mean, latency_ms, f"the mean of {earlier_rows} earlier ok row(s) of this job"


def _unpriced(projection: dict[str, Any]) -> dict[str, Any]:
    return projection | {"expected_usd": None, "worst_usd": None}


def _plus(*projections: Projection, mode: str | None = None) -> Projection:
    """Projections of parts of a run added up (a batch run sends its chunked documents' requests at once)."""
    first = projections[0]
    return Projection(
        mode or first.mode,
        *(
            round(sum(getattr(p, name) for p in projections), 6) if name.endswith("_usd")
            else sum(getattr(p, name) for p in projections)
            for name in ("documents", "input_tokens", "cache_write_tokens", "cache_read_tokens", "output_tokens",
                         "expected_usd", "worst_usd")
        ),
    )


def _wall(data: dict[str, Any], projection: dict[str, Any]) -> str:
    limits, documents = data["rate_limits"], projection["documents"]
    bounds = []
    if limits["rpm"]:
        bounds.append(documents / limits["rpm"] * 60)
    if limits["itpm"]:
        bounds.append((projection["input_tokens"] + projection["cache_write_tokens"]) / limits["itpm"] * 60)
    if limits["otpm"]:
        bounds.append(projection["output_tokens"] / limits["otpm"] * 60)
    latency = data["latency_p50_ms"]
    if latency:
        bounds.append(documents / data["concurrency"] * latency / 1000)
    if not bounds:
        return "unknown (no rate limits configured, no earlier latency in --out)"
    return f"about {max(bounds) / 60:.1f} min"


def describe(data: dict[str, Any]) -> str:
    """The estimate as the text `docpipe estimate` prints."""
    lines = [
        f"docpipe: estimate of job {data['job']!r} ({data['model']}): {data['documents']:,} document(s) to send, "
        f"{data['already_done']:,} already done, {data['errors_before_sending']:,} error(s) before sending",
        f"  input: {data['input_tokens']:,} tokens ({data['input_counted_by']}); shared prefix "
        f"{data['prefix_tokens']:,} tokens{'' if data['cacheable'] else ', too short to be cached'}",
        f"  output: {data['output_tokens_per_document']:,} tokens a document ({data['output_source']}); "
        f"ceiling {data['output_ceiling_per_document']:,} (max_tokens)",
    ]
    for projection in data["projections"]:
        batch_time = "most batches end within 1 h, all in 24 h"
        when = _wall(data, projection) if projection["mode"] == "realtime" else batch_time
        if projection["expected_usd"] is None:
            cost = f"cost unknown: no prices for {data['model']} ([prices] in the job, or DOCPIPE_PRICES)"
        else:
            cost = f"expected ${projection['expected_usd']:.4f}, worst case ${projection['worst_usd']:.4f}"
        lines.append(
            f"  {projection['mode']:>8}: {cost} (cache: {projection['cache_write_tokens']:,} written, "
            f"{projection['cache_read_tokens']:,} read); time: {when}"
        )
    return "\n".join(lines)


def to_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2)
