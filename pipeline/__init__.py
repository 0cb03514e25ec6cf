"""docpipe: batch document processing on Claude's Messages API, typed Parquet out, exactly once."""

from __future__ import annotations

from .errors import (
    ConfigError,
    DocumentError,
    EmulatorError,
    ExtractionError,
    FatalRunError,
    JobError,
    ManifestError,
    OutputLockedError,
    PipelineError,
    ResponseError,
)

__all__ = [
    "ConfigError",
    "DocumentError",
    "EmulatorError",
    "ExtractionError",
    "FatalRunError",
    "JobError",
    "ManifestError",
    "OutputLockedError",
    "PipelineError",
    "ResponseError",
]
