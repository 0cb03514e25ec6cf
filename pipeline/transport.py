"""What docpipe asks of Claude's API, as a protocol: the seam every executor sends through.

An executor never builds an API client. It is handed a `TransportFactory` and opens the transport
with its own options (how many connections, who hears the response headers and new connections),
so the run decides *what* is sent and the factory decides *where*:

- `api_transport(api_key=..., base_url=...)`: the API through the official SDK (`api.ApiClient`;
  `api.py`, `api_http.py` and `api_batches.py` are the only modules that import `anthropic`). The
  SDK is imported when the run opens the transport, after the output directory's lock is taken,
  so a run that must leave at once does not pay it.
- `offline.offline_transport()`: the same client against docpipe's emulator, booted on loopback
  when the transport opens and stopped when it closes (`--offline`).
- Tests pass their own factory, or one of these pointed at an emulator they control.

The protocol holds what the executors use: one Messages request, non-streamed or streamed,
answered as plain data, and its errors translated into docpipe's tree (`TransientError`,
`RequestError`, `FatalRunError`); and, for the batch executor, the Message Batches API as
`transport.batches` (`BatchApi`: create, retrieve, list, cancel, results streamed a line at a time).
Token counting and the Files API join it with the executors that need them (see
docs/architecture.md).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .config import RunConfig

__all__ = [
    "POOL_MARGIN",
    "ApiResponse",
    "BatchApi",
    "BatchInfo",
    "BatchResult",
    "BatchTransport",
    "ConnectedObserver",
    "FilesApi",
    "HeadersObserver",
    "OnFirstUse",
    "StoredFile",
    "Transport",
    "TransportFactory",
    "TransportOptions",
    "api_transport",
    "batches_of",
    "files_of",
    "transport_for",
]

POOL_MARGIN = 8  # connections beyond --concurrency: a slow close need not hold up the next request
HeadersObserver = Callable[[Mapping[str, str]], None]
ConnectedObserver = Callable[[], None]


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """One successful response as plain data."""

    message: dict[str, Any]
    request_id: str | None
    streamed: bool


@dataclass(frozen=True, slots=True)
class BatchInfo:
    """A Message Batch as the API reports it (`processing_status`, `request_counts`, RFC 3339 times)."""

    id: str
    processing_status: str  # in_progress | canceling | ended
    counts: Mapping[str, int]  # processing, succeeded, errored, canceled, expired
    created_at: str
    ended_at: str | None = None
    expires_at: str | None = None
    archived_at: str | None = None

    @property
    def ended(self) -> bool:
        return self.processing_status == "ended"

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One line of a batch's results: `kind` is succeeded, errored, canceled or expired."""

    custom_id: str
    kind: str
    message: dict[str, Any] | None = None  # succeeded: the Message as plain data
    error_type: str | None = None  # errored: the inner error's type (invalid_request_error, api_error...)
    error_message: str | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file the Files API holds."""

    id: str
    filename: str


class FilesApi(Protocol):
    """The Files API; errors are translated as for `Transport.create`."""

    async def upload(self, data: bytes, *, filename: str, media_type: str, expires_in_s: int) -> str:
        """Upload `data`; its `file_id`."""
        ...

    async def delete(self, file_id: str) -> None:
        """Delete a file; one the API does not know is taken as deleted."""
        ...

    def list(self) -> AsyncIterator[StoredFile]:
        """Every file of the workspace, a page at a time."""
        ...


class BatchApi(Protocol):
    """The Message Batches API; errors are translated as for `Transport.create`."""

    async def create(self, requests: list[dict[str, Any]]) -> BatchInfo:
        """Create one batch of `{"custom_id", "params"}` requests."""
        ...

    async def retrieve(self, batch_id: str) -> BatchInfo: ...

    def list(self) -> AsyncIterator[BatchInfo]:
        """Every batch of the workspace, newest first, a page at a time."""
        ...

    async def cancel(self, batch_id: str) -> BatchInfo: ...

    def results(self, batch_id: str) -> AsyncIterator[BatchResult]:
        """An ended batch's results, streamed a line at a time, in any order."""
        ...


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """What the executor needs of a transport it opens."""

    max_connections: int
    on_headers: HeadersObserver | None = None  # sees every response's headers (rate-limit feedback)
    on_connected: ConnectedObserver | None = None  # hears of every connection the API accepts (reachability)


class Transport(Protocol):
    """An open connection to the API (or something that answers like it)."""

    @property
    def base_url(self) -> str:
        """Where requests go, for messages that must name it."""
        ...

    async def create(
        self,
        params: dict[str, Any],
        *,
        stream: bool,
        timeout_s: float,
        document_id: str | None = None,
        on_started: Callable[[], None] | None = None,
    ) -> ApiResponse:
        """Send one Messages request; raise TransientError, RequestError or FatalRunError on failure.

        `on_started` is called once the response has begun (a stream's response has arrived, before
        its events): the moment a cache entry it writes becomes readable.
        """
        ...

    async def aclose(self) -> None: ...


class BatchTransport(Transport, Protocol):
    """A transport that also reaches the Message Batches API."""

    @property
    def batches(self) -> BatchApi: ...


TransportFactory = Callable[[TransportOptions], Transport]


def api_transport(*, api_key: str | None, base_url: str | None) -> TransportFactory:
    """The API through the official SDK; `ANTHROPIC_BASE_URL` applies when `base_url` is None."""

    def open_transport(options: TransportOptions) -> Transport:
        from .api import ApiClient

        return ApiClient(
            api_key=api_key,
            base_url=base_url,
            max_connections=options.max_connections,
            on_headers=options.on_headers,
            on_connected=options.on_connected,
        )

    return open_transport


def transport_for(config: RunConfig) -> TransportFactory:
    """The transport a configuration names: docpipe's emulator with `--offline`, else the API."""
    if config.offline:
        from .offline import offline_transport

        return offline_transport()
    return api_transport(api_key=config.api_key, base_url=config.base_url)


def files_of(transport: Transport) -> FilesApi:
    """The transport's Files API; a transport without one cannot upload PDFs."""
    files = getattr(transport, "files", None)
    if files is None:
        from .errors import FatalRunError

        raise FatalRunError(f"the transport to {transport.base_url} cannot upload files")
    return files  # type: ignore[no-any-return]


def batches_of(transport: Transport) -> BatchApi:
    """The transport's Message Batches API; a transport without one cannot run `--mode batch`."""
    batches = getattr(transport, "batches", None)
    if batches is None:
        from .errors import FatalRunError

        raise FatalRunError(f"the transport to {transport.base_url} cannot send Message Batches")
    return batches  # type: ignore[no-any-return]


class OnFirstUse:
    """A transport opened by its first request: a run with nothing to send pays for no SDK import.

    A rerun over a million documents already done opens no connection and imports neither the SDK
    nor aiohttp; closing a transport never opened does nothing.
    """

    def __init__(
        self, factory: TransportFactory, options: TransportOptions, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._factory = factory
        self._options = options
        self._clock = clock
        self._opened: Transport | None = None
        self.open_s = 0.0  # how long opening took (the SDK's import, mostly): a benchmark leaves it out

    def _transport(self) -> Transport:
        if self._opened is None:
            started = self._clock()
            self._opened = self._factory(self._options)
            self.open_s = self._clock() - started
        return self._opened

    @property
    def opened(self) -> bool:
        return self._opened is not None

    @property
    def base_url(self) -> str:
        return self._transport().base_url

    @property
    def batches(self) -> BatchApi:
        return batches_of(self._transport())

    @property
    def files(self) -> FilesApi:
        return files_of(self._transport())

    async def create(
        self,
        params: dict[str, Any],
        *,
        stream: bool,
        timeout_s: float,
        document_id: str | None = None,
        on_started: Callable[[], None] | None = None,
    ) -> ApiResponse:
        return await self._transport().create(
            params, stream=stream, timeout_s=timeout_s, document_id=document_id, on_started=on_started
        )

    async def model_limits(self, model: str) -> tuple[int, int | None]:
        """The model's context window and maximum output, as the API reports them; `PipelineError` when the
        transport cannot say."""
        reader = getattr(self._transport(), "model_limits", None)
        if reader is None:
            from .errors import PipelineError

            raise PipelineError(f"the transport to {self.base_url} cannot describe models")
        window, max_output = await reader(model)
        return int(window), max_output

    async def count_tokens(self, params: dict[str, Any]) -> int:
        """The request's input tokens as the API counts them; `PipelineError` when the transport cannot count."""
        counter = getattr(self._transport(), "count_tokens", None)
        if counter is None:
            from .errors import PipelineError

            raise PipelineError(f"the transport to {self.base_url} cannot count tokens")
        return int(await counter(params))

    async def aclose(self) -> None:
        if self._opened is not None:
            await self._opened.aclose()
