"""The one exception tree of docpipe.

Every error docpipe raises on purpose derives from `PipelineError`; the CLI turns each branch into
a message and an exit code at the edge::

    PipelineError
    ├── ConfigError               bad usage or configuration; the run never starts   (exit 2)
    │   ├── JobError              a job file is invalid (path, key)
    │   └── ManifestError         a manifest cannot be read at all (path, line)
    ├── DocumentError             one document failed; it becomes an error row, the run goes on
    │   ├── ExtractionError       its text could not be extracted (empty, binary, encrypted PDF...)
    │   ├── ResponseError         the API answered, but not usefully (refusal, schema mismatch)
    │   └── RequestError          the API refused or failed this document's request (400, 413...)
    │       └── TransientError    worth another attempt: 429, 529, 5xx, dropped connection, timeout
    ├── FatalRunError             the whole run must stop: bad key, spend limit, unknown model,
    │                             no response from the API for DOCPIPE_UNREACHABLE_S   (exit 3)
    ├── EnvironmentFailure        the machine around the run failed: the output directory cannot
    │                             be written (disk full, read-only), holds a corrupt or foreign
    │                             file, or an input became unreadable mid-run          (exit 4)
    ├── OutputLockedError         another run holds the output directory               (exit 75)
    └── EmulatorError             the built-in API emulator was misconfigured or failed to start (exit 2)

Each class carries its exit code (`exit_code`); the codes are named once, here (`EXIT_*`), for the
CLI, the runner's summary and the README's table alike; `tests/test_errors.py` holds this drawing,
`docpipe run --help` and the README's table to them. Exit 1 is not an error class: it is a run that
finished with some documents in error, which the next run retries.

Exceptions carry the context a person needs to act: the document id and path, the request id, the
file and key of a bad job. Their `str()` never contains an API key. A document error's message
becomes a row's `error_message`, so it is always text UTF-8 can encode: a file name's undecodable
byte or a lone surrogate in it is shown escaped (`pipeline.surrogates`).
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from pathlib import Path

from .surrogates import escape_surrogates

__all__ = [
    "EXIT_BUDGET",
    "EXIT_DOCUMENT_ERRORS",
    "EXIT_ENVIRONMENT",
    "EXIT_FATAL",
    "EXIT_INTERRUPTED",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_PENDING",
    "EXIT_USAGE",
    "ConfigError",
    "DocumentError",
    "EmulatorError",
    "EnvironmentFailure",
    "ExtractionError",
    "FatalRunError",
    "JobError",
    "ManifestError",
    "OutputLockedError",
    "PipelineError",
    "RequestError",
    "ResponseError",
    "TransientError",
]


EXIT_OK = 0  # every document ok
EXIT_DOCUMENT_ERRORS = 1  # finished; some documents in error, retried by the next run
EXIT_USAGE = 2  # usage or configuration error: nothing was sent
EXIT_FATAL = 3  # a fatal error stopped the run: bad key, spend limit, unknown model, API unreachable
EXIT_ENVIRONMENT = 4  # the output directory, the disk or an input failed: a person must look
EXIT_PENDING = 5  # batch mode, --no-wait: batches of an earlier run still in progress; the next run collects them
EXIT_BUDGET = 6  # --max-cost reached: no request started past it; a rerun with a higher budget goes on
EXIT_LOCKED = 75  # EX_TEMPFAIL: another run holds the output directory; the next run catches up
EXIT_INTERRUPTED = 130  # SIGINT or SIGTERM; the next run resumes


class PipelineError(Exception):
    """Root of every error docpipe raises on purpose."""

    exit_code = EXIT_FATAL  # an error not given a code of its own stops the run


class ConfigError(PipelineError):
    """Bad usage or configuration, found before any request is sent."""

    exit_code = EXIT_USAGE


class JobError(ConfigError):
    """A job file is invalid: names the file, the key and what was expected."""

    def __init__(self, message: str, *, path: Path | str | None = None, key: str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.key = key
        self.detail = message  # what is wrong, without the file and the key
        where = ""
        if self.path is not None:
            where = f"{self.path}: "
        if key:
            where += f"[{key}] "
        super().__init__(f"{where}{message}")


class ManifestError(ConfigError):
    """A manifest cannot be used at all (missing, unreadable, no `id` column)."""

    def __init__(self, message: str, *, path: Path | str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        where = f"{self.path}" + (f", line {line}" if line is not None else "")
        super().__init__(f"{where}: {message}")


class DocumentError(PipelineError):
    """One document failed. The runner records it as an error row and carries on."""

    error_type = "document_error"

    def __init__(
        self,
        message: str,
        *,
        document_id: str | None = None,
        path: Path | str | None = None,
        request_id: str | None = None,
    ) -> None:
        message = escape_surrogates(message)
        self.message = message
        self.document_id = document_id
        self.path = str(path) if path is not None else None
        self.request_id = request_id
        super().__init__(message)


class ExtractionError(DocumentError):
    """The document's text could not be extracted (empty, binary, encrypted, corrupt...)."""

    error_type = "extraction_error"
    EMPTY = "empty document"  # the message for a document with no text at all, wherever that is found


class ResponseError(DocumentError):
    """The API answered but the answer is unusable: a refusal, or JSON that fails the job's schema."""

    error_type = "response_error"

    def __init__(
        self,
        message: str,
        *,
        error_type: str = "response_error",
        document_id: str | None = None,
        path: Path | str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, document_id=document_id, path=path, request_id=request_id)
        self.error_type = error_type


class RequestError(DocumentError):
    """The API refused or failed the request for one document; `error_type` is the API's."""

    def __init__(
        self,
        message: str,
        *,
        error_type: str,
        status: int | None = None,
        document_id: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, document_id=document_id, request_id=request_id)
        self.error_type = error_type
        self.status = status


class TransientError(RequestError):
    """A failure worth retrying.

    `retry_after_s` is the server's instruction, when it gave one; `rate_limit_headers` the
    response's `anthropic-ratelimit-*` headers (a 429's say whether a bucket is really empty);
    `no_response` is true when no HTTP response came at all (refused, reset before the status
    line, a connect timeout): the API may be unreachable rather than unhappy with this request.
    """

    def __init__(
        self,
        message: str,
        *,
        error_type: str,
        status: int | None = None,
        retry_after_s: float | None = None,
        rate_limit_headers: Mapping[str, str] | None = None,
        no_response: bool = False,
        document_id: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, error_type=error_type, status=status, document_id=document_id, request_id=request_id)
        self.retry_after_s = retry_after_s
        self.rate_limit_headers: Mapping[str, str] = rate_limit_headers or {}
        self.no_response = no_response


class FatalRunError(PipelineError):
    """An error that dooms every remaining document (401, 403, spend limit, unknown model, an API unreachable)."""

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        self.request_id = request_id
        super().__init__(message)


class EnvironmentFailure(PipelineError):
    """The machine around the run failed: names the path, the cause and what to do.

    Disk full, a read-only or non-writable output directory, a corrupt or foreign Parquet file in
    it, an input that became unreadable mid-run. Unlike a document error, rerunning will not help
    until a person has acted, so it has an exit code of its own.
    """

    exit_code = EXIT_ENVIRONMENT

    def __init__(self, message: str, *, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        super().__init__(" ".join(message.split()))  # one line, whatever a library's message held

    @classmethod
    def from_os_error(
        cls, exc: OSError, *, doing: str, path: Path | str, advice: str | None = None
    ) -> EnvironmentFailure:
        """One line from an OSError: what docpipe was doing, the path, the cause and what to do."""
        where = exc.filename if isinstance(exc.filename, str) and exc.filename else str(path)
        cause = exc.strerror or str(exc)
        what_to_do = advice or _OS_ADVICE.get(exc.errno or 0, "check the path and its disk, then rerun")
        return cls(f"cannot {doing} {where}: {cause}; {what_to_do}", path=where)


_OS_ADVICE = {
    errno.ENOSPC: "free space on its disk, then rerun: finished rows are kept and not paid for again",
    errno.EDQUOT: "raise the disk quota or free space, then rerun: finished rows are kept and not paid for again",
    errno.EROFS: "its file system is read-only: remount it read-write, or give another --out",
    errno.EACCES: "this user may not write there: fix its permissions, or give another --out",
    errno.EPERM: "this user may not write there: fix its permissions, or give another --out",
    errno.EIO: "the disk reported an I/O error: check it, then rerun",
}


class OutputLockedError(PipelineError):
    """Another live run holds the lock on the output directory."""

    exit_code = EXIT_LOCKED


class EmulatorError(PipelineError):
    """The built-in emulator could not start, or its configuration (fault rules...) is invalid."""

    exit_code = EXIT_USAGE
