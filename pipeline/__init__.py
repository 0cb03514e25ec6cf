"""docpipe: batch document processing on Claude's Messages API, typed Parquet out, exactly once.

What notebooks and scripts call::

    import pipeline
    df = pipeline.load_results("results/triage")          # latest row per document
    scores = pipeline.evaluate_output(Path("results/triage"), Path("truth.csv"))  # against expected values

    job = pipeline.load_job(Path("jobs/triage.toml"))
    summary = pipeline.run(pipeline.resolve_config(job, Path("inbox"), Path("results/triage")))
    summary = pipeline.run_on_ray(pipeline.resolve_config(job, Path("inbox"), Path("out")), actors=4)  # docpipe[ray]

Names other than the errors are imported when first used (PEP 562): `import pipeline` and `docpipe --help` load neither
the SDK nor pyarrow, and a signal during start-up reaches docpipe's own handlers within
milliseconds instead of after a second of imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (  # light: no third-party imports
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

if TYPE_CHECKING:
    from .config import RunConfig, resolve_config
    from .dryrun import dry_run
    from .emulator import Emulator, EmulatorConfig
    from .evaluation_io import compare_outputs, evaluate_output
    from .jobs import Field, Job, load_job
    from .ray_engine import run_on_ray
    from .results import load_results
    from .runner import run
    from .summary import RunSummary

# public name -> the module that defines it, imported on first use
_HOMES: dict[str, str] = {
    "Emulator": ".emulator",
    "EmulatorConfig": ".emulator",
    "Field": ".jobs",
    "Job": ".jobs",
    "load_job": ".jobs",
    "RunConfig": ".config",
    "resolve_config": ".config",
    "load_results": ".results",
    "evaluate_output": ".evaluation_io",
    "compare_outputs": ".evaluation_io",
    "RunSummary": ".summary",
    "dry_run": ".dryrun",
    "run": ".runner",
    "run_on_ray": ".ray_engine",
}

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
    "compare_outputs",
    "dry_run",
    "evaluate_output",
    "load_job",
    "load_results",
    "resolve_config",
    "run",
    "run_on_ray",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value  # once resolved, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
