"""docpipe: batch document processing on Claude's Messages API, typed Parquet out, exactly once.

What notebooks and scripts call::

    import pipeline
    df = pipeline.load_results("results/triage")          # latest row per document

    job = pipeline.load_job(Path("jobs/triage.toml"))
    summary = pipeline.run(pipeline.resolve_config(job, Path("inbox"), Path("results/triage")))
"""

from __future__ import annotations

from .config import RunConfig, resolve_config
from .emulator import Emulator, EmulatorConfig
from .errors import (
    ConfigError,
    DocumentError,
    EmulatorError,
    EnvironmentFailure,
    ExtractionError,
    FatalRunError,
    JobError,
    ManifestError,
    OutputLockedError,
    PipelineError,
    RequestError,
    ResponseError,
    TransientError,
)
from .jobs import Field, Job, load_job
from .output import load_results
from .runner import RunSummary, dry_run, run

__all__ = [
    "ConfigError",
    "DocumentError",
    "Emulator",
    "EmulatorConfig",
    "EmulatorError",
    "EnvironmentFailure",
    "ExtractionError",
    "FatalRunError",
    "Field",
    "Job",
    "JobError",
    "ManifestError",
    "OutputLockedError",
    "PipelineError",
    "RequestError",
    "ResponseError",
    "RunConfig",
    "RunSummary",
    "TransientError",
    "dry_run",
    "load_job",
    "load_results",
    "resolve_config",
    "run",
]
