"""The transport to Claude's API through the official SDK: the only module that imports `anthropic`.

`ApiClient.create()` sends one request, non-streaming or streamed (`messages.stream()` and
`get_final_message()`, same result either way), and returns the message as plain data. Every SDK
exception is translated here into docpipe's tree, which is what the retry layer and the runner
reason about:

- `TransientError`: worth another attempt (429 with its retry-after and rate-limit headers, 529,
  5xx, a dropped connection, a timeout, an error event or a cut connection in the middle of a
  stream), marked `no_response` when no HTTP response came at all;
- `RequestError`: this document's request will fail again as it is (400, 413...);
- `FatalRunError`: every request will fail (401, 403, 402, an unknown model, a spend limit).

Retrying is an allowlist: only the failures named above are a `TransientError`. An exception the
translation does not know (a response the SDK could not validate, a bug) is a `RequestError` of
type `client_error`: the document is recorded in error, not retried, and the next run tries it.

The SDK's own retries are off (`max_retries=0`): retrying is the job of `retry.py` alone.
"""

from __future__ import annotations

import email.utils
import html
import json
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import anthropic
import httpx2
from opentelemetry import trace

from .api_http import AioHttpClient
from .errors import FatalRunError, PipelineError, RequestError, TransientError
from .transport import ApiResponse, ConnectedObserver, HeadersObserver

if TYPE_CHECKING:
    from .api_batches import SdkBatches
    from .api_files import SdkFiles

__all__ = ["ApiClient", "ApiResponse", "HeadersObserver", "translate_error"]

SPEND_LIMIT_CODES = frozenset({"enforced_spend_limit_reached", "spend_limit_reached", "workspace_spend_limit_reached"})
# Retried besides every 5xx (529 overloaded included): request timeout, conflict, rate limit.
RETRIED_STATUSES = frozenset({408, 409, 429})
# Connections are spread over several clients of at most this many: at 512 connections one client
# (one connection pool) did measurably worse than 32 small ones, with httpcore's pool (which scans
# every connection on each send and close) and, less so, with aiohttp's. The clients share one TLS
# context, so each costs no certificate loading.
CONNECTIONS_PER_SHARD = 16
# What count_tokens takes of a Messages request (SDK 2.x `messages.count_tokens` parameters).
COUNTED_FIELDS = frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config"})
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_HTML_TAG = re.compile(r"<[^>]*>")


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The server's retry instruction: `retry-after-ms`, else `retry-after` in seconds or as a date."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(raw) if raw else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _rate_limit_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The `anthropic-ratelimit-*` headers of a response, the rest left out."""
    return {name.lower(): value for name, value in headers.items() if name.lower().startswith("anthropic-ratelimit-")}


def _status_message(exc: anthropic.APIStatusError) -> str:
    """The API's own message; for a proxy's HTML page, its title: the raw markup helps nobody."""
    message = exc.api_message if isinstance(getattr(exc, "api_message", None), str) else None
    if message is None:
        body = exc.body
        message = body.strip()[:200] if isinstance(body, str) and body.strip() else exc.message
        if isinstance(body, str) and body.lstrip()[:1] == "<":
            title = _HTML_TITLE.search(body)
            text = title.group(1) if title and title.group(1).strip() else _HTML_TAG.sub(" ", body)
            message = " ".join(html.unescape(text).split())[:200]
    message = str(message).strip()
    # The fatal and 413 messages go on with ". <what to do>": one full stop, not two (an ellipsis stays).
    return message[:-1] if message.endswith(".") and not message.endswith("..") else message


def translate_error(exc: Exception, *, document_id: str | None = None, timeout_s: float | None = None) -> PipelineError:
    """docpipe's exception for an SDK exception (see the module docstring).

    Only the failures named here are a `TransientError`; an exception this function does not know
    is a `RequestError` (`client_error`), which the retry layer does not retry.
    """
    if isinstance(exc, anthropic.APIStatusError):
        return _translate_status(exc, document_id=document_id)
    after = f" after {timeout_s:g} s" if timeout_s else ""
    if isinstance(exc, anthropic.APITimeoutError):
        if isinstance(exc.__cause__, httpx2.ConnectTimeout):
            return TransientError(
                f"connecting to the API timed out{after}",
                error_type="timeout",
                no_response=True,
                document_id=document_id,
            )
        return TransientError(f"request timed out{after}", error_type="timeout", document_id=document_id)
    if isinstance(exc, anthropic.APIConnectionError):
        return TransientError(
            f"connection to the API failed: {exc.__cause__ or exc}",
            error_type="connection_error",
            no_response=True,
            document_id=document_id,
        )
    # Raised by the HTTP layer while a stream is being read: the SDK wraps only what happens before
    # the response starts.
    if isinstance(exc, httpx2.TimeoutException):
        return TransientError(
            f"the stream stalled{after} without a byte", error_type="timeout", document_id=document_id
        )
    if isinstance(exc, httpx2.TransportError):
        return TransientError(
            f"the connection dropped mid-stream: {type(exc).__name__}: {exc}",
            error_type="connection_error",
            document_id=document_id,
        )
    # Not on the list: retrying what nobody named could repeat a billed request or hide a bug. The
    # document is recorded in error, and the next run tries it again.
    return RequestError(
        f"unexpected client error, not retried: {type(exc).__name__}: {exc}",
        error_type="client_error",
        document_id=document_id,
    )


def _fatal_status(
    status: int, error_type: str | None, error_code: object, message: str, request_id: str | None
) -> FatalRunError | None:
    """The run-stopping errors: every request will fail the same way (401, 402, 403, 404, a spend limit)."""
    if status == 401:
        return FatalRunError(
            f"the API rejected the API key (401 {error_type or 'authentication_error'}: {message}). "
            "Check ANTHROPIC_API_KEY, or run with --offline against the built-in emulator.",
            request_id=request_id,
        )
    if status == 402:
        return FatalRunError(
            f"billing problem (402): {message}. Check the organisation's billing settings.", request_id=request_id
        )
    if status == 403:
        return FatalRunError(
            f"permission denied (403): {message}. The key's workspace may not allow this model.", request_id=request_id
        )
    if status == 404 and "file" in message.lower():
        return None  # a file a request names is gone (deleted, expired): that request's failure, not the run's
    if status == 404:
        return FatalRunError(
            f"not found (404): {message}. Check the job's model name against `GET /v1/models`.", request_id=request_id
        )
    if error_code in SPEND_LIMIT_CODES or (status in (400, 429) and "spend limit" in message.lower()):
        return FatalRunError(
            f"the organisation's spend limit is reached ({status}): {message}. "
            "Raise the limit in the Console, then rerun: finished documents are not paid for again.",
            request_id=request_id,
        )
    return None


def _translate_status(exc: anthropic.APIStatusError, *, document_id: str | None) -> PipelineError:
    """An HTTP error response (or an error event mid-stream): fatal, retried, or this document's."""
    status = exc.status_code
    request_id = exc.request_id
    error_type = exc.type if isinstance(getattr(exc, "type", None), str) else None
    message = _status_message(exc)
    headers = exc.response.headers
    if status == 200:  # an `event: error` in the middle of a stream
        return TransientError(
            f"the stream failed mid-way: {error_type or 'error'}: {message}",
            error_type=error_type or "stream_error",
            status=status,
            document_id=document_id,
            request_id=request_id,
        )
    fatal = _fatal_status(status, error_type, getattr(exc, "error_code", None), message, request_id)
    if fatal is not None:
        return fatal

    def request_error(text: str, kind: str) -> RequestError:
        """This document's request will fail again as it is."""
        return RequestError(text, error_type=kind, status=status, document_id=document_id, request_id=request_id)

    if status == 400 and "prompt is too long" in message:
        return request_error(
            f"400 {error_type or 'invalid_request_error'}: {message}. The document is longer than docpipe's "
            "estimate; lower job.max_document_tokens so it is cut to fit.",
            error_type or "invalid_request_error",
        )
    if status == 413:
        return request_error(
            f"request too large for the API (413): {message}. Lower job.max_document_tokens or split the document.",
            "request_too_large",
        )
    should_retry = headers.get("x-should-retry")
    if status in RETRIED_STATUSES or status >= 500 or should_retry == "true":
        if should_retry == "false":
            return request_error(f"{status} {error_type or 'error'}: {message}", error_type or str(status))
        return TransientError(
            f"{status} {error_type or 'error'}: {message}",
            error_type=error_type or ("overloaded_error" if status == 529 else "api_error"),
            status=status,
            retry_after_s=_retry_after_s(headers),
            rate_limit_headers=_rate_limit_headers(headers),
            document_id=document_id,
            request_id=request_id,
        )
    return request_error(f"{status} {error_type or 'error'}: {message}", error_type or "invalid_request_error")


def _message_data(body: bytes, request_id: str | None, document_id: str | None) -> dict[str, Any]:
    """A 200 response's body as a message dict; a body that is not one is worth another attempt."""
    try:
        message = json.loads(body)
    except ValueError:
        message = None
    if (
        not isinstance(message, dict)
        or message.get("type") != "message"
        or not isinstance(message.get("content"), list)
        or not all(isinstance(block, dict) for block in message["content"])
        or not isinstance(message.get("usage"), dict)
    ):
        raise TransientError(
            "the API answered 200 with a body that is not a message",
            error_type="invalid_response",
            document_id=document_id,
            request_id=request_id,
        )
    return message


def _has_tracer_provider() -> bool:
    """Whether the process set up OpenTelemetry tracing (in code or through OTEL_PYTHON_TRACER_PROVIDER)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


class ApiClient:
    """`AsyncAnthropic` clients with retries off, sized for the worker pool, observed for rate-limit headers.

    Requests go to the least busy of ceil(max_connections / 16) clients (see CONNECTIONS_PER_SHARD).
    Each sends through the SDK's aiohttp transport (`DefaultAioHttpClient`, the `anthropic[aiohttp]`
    extra): sending a burst of 512 requests took 0.74 ms of CPU per request on new connections and
    0.43 ms on open ones, against 1.02 and 0.72 ms through the default httpx transport. The SDK's
    OpenTelemetry spans are turned off only when the process has no tracer provider, when they
    would record nothing.
    A non-streamed response is decoded straight from its JSON body: the message as plain data is
    all docpipe needs, and building the SDK's typed model only to dump it again cost more CPU than
    the rest of a request's handling.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        max_connections: int = 256,
        on_headers: HeadersObserver | None = None,
        on_connected: ConnectedObserver | None = None,
    ) -> None:
        """`on_headers` sees every response's headers; `on_connected` hears of every connection the API accepts."""
        self._on_headers = on_headers
        shards = max(1, -(-max_connections // CONNECTIONS_PER_SHARD))
        per_shard = -(-max_connections // shards)
        tls = httpx2.create_ssl_context()
        tracing: Literal[False] | None = None if _has_tracer_provider() else False  # None: the SDK's default
        self._clients = [
            anthropic.AsyncAnthropic(
                api_key=api_key,
                base_url=base_url,
                max_retries=0,
                open_telemetry=tracing,
                http_client=AioHttpClient(
                    verify=tls,
                    limits=httpx2.Limits(max_connections=per_shard, max_keepalive_connections=per_shard),
                    on_connected=on_connected,
                ),
            )
            for _ in range(shards)
        ]
        self._in_flight = [0] * shards

    @property
    def base_url(self) -> str:
        """Where requests go: `ANTHROPIC_BASE_URL`, the SDK's default, or the one given."""
        return str(self._clients[0].base_url).rstrip("/")

    @property
    def batches(self) -> SdkBatches:
        """The Message Batches API, through the first client (`api_batches.py`)."""
        from .api_batches import SdkBatches

        return SdkBatches(self._clients[0])

    @property
    def files(self) -> SdkFiles:
        """The Files API, through the first client (`api_files.py`)."""
        from .api_files import SdkFiles

        return SdkFiles(self._clients[0])

    async def model_limits(self, model: str) -> tuple[int, int | None]:
        """The model's context window and maximum output, as `GET /v1/models/{model}` reports them
        (SDK `types/model_info.py`: `max_input_tokens`, `max_tokens`)."""
        try:
            info = await self._clients[0].models.retrieve(model)
        except Exception as exc:
            raise translate_error(exc) from None
        if info.max_input_tokens is None:
            raise PipelineError(f"GET /v1/models/{model} gives no max_input_tokens")
        return int(info.max_input_tokens), None if info.max_tokens is None else int(info.max_tokens)

    async def count_tokens(self, params: dict[str, Any]) -> int:
        """The input tokens of a Messages request, as `POST /v1/messages/count_tokens` counts them (free)."""
        body = {key: value for key, value in params.items() if key in COUNTED_FIELDS}
        try:
            counted = await self._clients[0].messages.count_tokens(**body)
        except Exception as exc:
            raise translate_error(exc) from None
        return int(counted.input_tokens)

    def _observe(self, headers: Mapping[str, str]) -> None:
        if self._on_headers is not None:
            self._on_headers(headers)

    async def create(
        self,
        params: dict[str, Any],
        *,
        stream: bool,
        timeout_s: float,
        document_id: str | None = None,
        on_started: Callable[[], None] | None = None,
    ) -> ApiResponse:
        """Send one Messages request; raise TransientError, RequestError or FatalRunError on failure."""
        in_flight = self._in_flight
        shard = in_flight.index(min(in_flight))
        client = self._clients[shard]
        in_flight[shard] += 1
        try:
            if stream:
                async with client.messages.stream(**params, timeout=timeout_s) as events:
                    self._observe(events.response.headers)
                    if on_started is not None:
                        on_started()
                    final = await events.get_final_message()
                    request_id = events.response.headers.get("request-id")
                message = final.model_dump(mode="json")
            else:
                raw = await client.messages.with_raw_response.create(**params, timeout=timeout_s)
                self._observe(raw.headers)
                message = _message_data(await raw.read(), raw.headers.get("request-id"), document_id)
                request_id = raw.headers.get("request-id")
        except anthropic.APIStatusError as exc:
            self._observe(exc.response.headers)
            raise translate_error(exc, document_id=document_id, timeout_s=timeout_s) from None
        except PipelineError:
            raise
        except Exception as exc:  # the SDK's, its transport's, or one nobody named: translate_error decides
            raise translate_error(exc, document_id=document_id, timeout_s=timeout_s) from None
        finally:
            in_flight[shard] -= 1
        return ApiResponse(message, request_id, stream)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.close()
