"""translate_error: real SDK exceptions, built from real HTTP responses, into docpipe's tree."""



from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import pytest

from pipeline.api import translate_error
from pipeline.errors import FatalRunError, PipelineError, RequestError, TransientError
from pipeline.retry import is_retryable

KEY = "sk-ant-api03-translate-error-secret-0123456789"
URL = "http://x/v1/messages"


@pytest.fixture(scope="module")
def sdk() -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key=KEY, base_url="http://x", max_retries=0) as client:
        yield client


def _request() -> httpx2.Request:
    return httpx2.Request("POST", URL, headers={"x-api-key": KEY, "content-type": "application/json"})


def _body(error_type: str, message: str, error_code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": error_type, "message": message}
    if error_code is not None:
        error["details"] = {"error_code": error_code}
    return {"type": "error", "error": error, "request_id": "req_body"}


def _status_error(
    sdk: anthropic.Anthropic,
    status: int,
    *,
    body: dict[str, Any] | None = None,
    text: str | None = None,
    headers: dict[str, str] | None = None,
) -> anthropic.APIStatusError:
    """The exception the SDK raises for this HTTP response (through its own status-error factory)."""
    all_headers = {"request-id": "req_123", **(headers or {})}
    if body is not None:
        response = httpx2.Response(status, json=body, headers=all_headers, request=_request())
    else:
        response = httpx2.Response(status, text=text or "", headers=all_headers, request=_request())
    return sdk._make_status_error_from_response(response)


FATAL_RESPONSES: list[tuple[str, int, dict[str, Any], str]] = [
    ("401", 401, _body("authentication_error", "invalid x-api-key"), "ANTHROPIC_API_KEY"),
    ("402", 402, _body("billing_error", "payment required"), "billing"),
    ("403", 403, _body("permission_error", "not allowed to use this model"), "403"),
    ("404", 404, _body("not_found_error", "model: claude-nope"), "GET /v1/models"),
    (
        "429-spend-limit",
        429,
        _body("rate_limit_error", "You have reached your specified API usage limits.", "enforced_spend_limit_reached"),
        "spend limit",
    ),
]
FATAL = [pytest.param(status, body, hint, id=name) for name, status, body, hint in FATAL_RESPONSES]


@pytest.mark.parametrize(("status", "body", "hint"), FATAL)
def test_errors_that_doom_the_run_are_fatal(
    sdk: anthropic.Anthropic, status: int, body: dict[str, Any], hint: str
) -> None:
    """401, 402, 403, 404 and a spend-limit 429 stop the run: FatalRunError with the request id and a hint."""
    error = translate_error(_status_error(sdk, status, body=body, headers={"retry-after": "2"}), document_id="d")
    assert isinstance(error, FatalRunError)
    assert "req_123" == error.request_id
    assert hint in str(error)


def test_plain_429_is_transient_with_its_retry_after(sdk: anthropic.Anthropic) -> None:
    """A rate-limit 429 is retried, after exactly its retry-after."""
    exc = _status_error(sdk, 429, body=_body("rate_limit_error", "slow down"), headers={"retry-after": "2"})
    error = translate_error(exc, document_id="doc-1")
    assert isinstance(error, TransientError)
    assert (2.0, 429, "rate_limit_error", "doc-1", "req_123") == (
        error.retry_after_s,
        error.status,
        error.error_type,
        error.document_id,
        error.request_id,
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"retry-after-ms": "1500", "retry-after": "2"}, 1.5, id="ms-wins"),
        pytest.param({"retry-after": "0"}, 0.0, id="zero"),
        pytest.param({}, None, id="absent"),
        pytest.param({"retry-after": "Thu, 01 Jan 1970 00:00:00 GMT"}, 0.0, id="http-date-in-the-past"),
    ],
)
def test_retry_after_forms(sdk: anthropic.Anthropic, headers: dict[str, str], expected: float | None) -> None:
    """retry-after-ms takes precedence; an HTTP date in the past means no wait; none means the default."""
    error = translate_error(_status_error(sdk, 429, body=_body("rate_limit_error", "slow"), headers=headers))
    assert isinstance(error, TransientError)
    assert expected == error.retry_after_s


@pytest.mark.parametrize(
    ("status", "body", "error_type"),
    [
        pytest.param(529, _body("overloaded_error", "Overloaded"), "overloaded_error", id="529"),
        pytest.param(500, _body("api_error", "Internal server error"), "api_error", id="500"),
        pytest.param(502, None, "api_error", id="502-no-json"),
        pytest.param(503, None, "api_error", id="503-no-json"),
        pytest.param(504, _body("timeout_error", "upstream timeout"), "timeout_error", id="504"),
        pytest.param(408, _body("timeout_error", "request timeout"), "timeout_error", id="408"),
        pytest.param(409, _body("api_error", "conflict"), "api_error", id="409"),
    ],
)
def test_overload_and_server_errors_are_transient(
    sdk: anthropic.Anthropic, status: int, body: dict[str, Any] | None, error_type: str
) -> None:
    """529, 5xx (JSON or not), 408 and 409 are worth another attempt."""
    exc = _status_error(sdk, status, body=body, text="<html>Bad Gateway</html>")
    error = translate_error(exc, document_id="d")
    assert isinstance(error, TransientError)
    assert (status, error_type) == (error.status, error.error_type)


def test_bad_request_is_not_transient(sdk: anthropic.Anthropic) -> None:
    """A 400 would fail again: RequestError (not TransientError) with the API's type and message."""
    exc = _status_error(sdk, 400, body=_body("invalid_request_error", "max_tokens: must be positive"))
    error = translate_error(exc, document_id="doc-4")
    assert type(error) is RequestError
    assert (400, "invalid_request_error", "doc-4", "req_123") == (
        error.status,
        error.error_type,
        error.document_id,
        error.request_id,
    )
    assert "max_tokens: must be positive" in str(error)


def test_should_retry_false_overrides_a_retryable_status(sdk: anthropic.Anthropic) -> None:
    """x-should-retry: false on a 500 makes it a plain RequestError."""
    exc = _status_error(sdk, 500, body=_body("api_error", "nope"), headers={"x-should-retry": "false"})
    assert type(translate_error(exc)) is RequestError


def test_too_large_with_an_html_body(sdk: anthropic.Anthropic) -> None:
    """A 413 from a proxy (HTML body) is RequestError request_too_large, telling what to change."""
    html = "<html><head><title>413 Request Entity Too Large</title></head><body>nginx</body></html>"
    exc = _status_error(sdk, 413, text=html, headers={"content-type": "text/html"})
    error = translate_error(exc, document_id="big")
    assert type(error) is RequestError
    assert ("request_too_large", 413, "big") == (error.error_type, error.status, error.document_id)
    assert "max_document_tokens" in str(error)


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("<html><head><title>413 Request Entity Too Large</title></head><body>nginx</body></html>",
         "request too large for the API (413): 413 Request Entity Too Large. Lower"),
        ("<html><head><title> </title></head><body><h1>Payload &amp; headers too large</h1></body></html>",
         "request too large for the API (413): Payload & headers too large. Lower"),
        ("<html><body>Too large...</body></html>", "request too large for the API (413): Too large.... Lower"),
    ],
)
def test_an_html_error_page_becomes_its_text(sdk: anthropic.Anthropic, page: str, expected: str) -> None:
    """A proxy's page is its title (or, without one, its text), entities decoded, one full stop before the advice."""
    exc = _status_error(sdk, 413, text=page, headers={"content-type": "text/html"})
    assert str(translate_error(exc)).startswith(expected)


def test_timeout_is_transient() -> None:
    """An APITimeoutError is a TransientError of type timeout, naming the timeout."""
    error = translate_error(anthropic.APITimeoutError(request=_request()), document_id="d", timeout_s=60)
    assert isinstance(error, TransientError)
    assert ("timeout", "d") == (error.error_type, error.document_id)
    assert "60 s" in str(error)


def test_connection_error_is_transient() -> None:
    """An APIConnectionError (a dropped socket) is a TransientError of type connection_error."""
    exc = anthropic.APIConnectionError(request=_request())
    exc.__cause__ = httpx2.RemoteProtocolError("Server disconnected without sending a response.")
    error = translate_error(exc, document_id="d")
    assert isinstance(error, TransientError)
    assert "connection_error" == error.error_type
    assert "Server disconnected" in str(error)


def _every_translation(sdk: anthropic.Anthropic) -> list[PipelineError]:
    statuses: list[tuple[int, dict[str, Any] | None]] = [(status, body) for _, status, body, _ in FATAL_RESPONSES] + [
        (400, _body("invalid_request_error", "bad")),
        (413, None),
        (429, _body("rate_limit_error", "slow")),
        (500, None),
        (529, _body("overloaded_error", "Overloaded")),
    ]
    errors = [translate_error(_status_error(sdk, status, body=body, text="oops")) for status, body in statuses]
    errors.append(translate_error(anthropic.APITimeoutError(request=_request())))
    errors.append(translate_error(anthropic.APIConnectionError(request=_request())))
    errors.append(translate_error(RuntimeError("unexpected")))
    return errors


def test_no_message_contains_the_api_key(sdk: anthropic.Anthropic) -> None:
    """Whatever the error, docpipe's message never contains the key the request carried."""
    errors = _every_translation(sdk)
    assert 13 == len(errors)
    for error in errors:
        assert KEY not in str(error)
        assert KEY not in repr(error)


@pytest.mark.parametrize(
    ("exc", "error_type", "fragment"),
    [
        (httpx2.ReadTimeout("timed out"), "timeout", "the stream stalled after 30 s"),
        (httpx2.ReadError("connection reset"), "connection_error", "dropped mid-stream: ReadError: connection reset"),
        (httpx2.RemoteProtocolError("peer closed"), "connection_error", "dropped mid-stream: RemoteProtocolError"),
    ],
)
def test_http_errors_while_a_stream_is_read_are_transient(exc: Exception, error_type: str, fragment: str) -> None:
    """The SDK leaves errors raised while a stream is iterated as httpx2's own; they are retried like drops."""
    error = translate_error(exc, document_id="d1", timeout_s=30)
    assert isinstance(error, TransientError)
    assert error_type == error.error_type
    assert fragment in error.message


def _unknown_errors() -> list[Exception]:
    response = httpx2.Response(200, json={"type": "message"}, request=_request())
    return [
        anthropic.APIResponseValidationError(response=response, body={"type": "message"}),
        anthropic.APIError("an error the SDK did not classify", _request(), body=None),
        RuntimeError("unexpected"),
        ValueError("a bug"),
    ]


@pytest.mark.parametrize("exc", _unknown_errors(), ids=lambda exc: type(exc).__name__)
def test_an_unknown_error_is_a_document_error_that_is_not_retried(exc: Exception) -> None:
    """Only named failures are retried: any other exception is this document's client_error, raised at once."""
    error = translate_error(exc, document_id="d1", timeout_s=30)
    assert isinstance(error, RequestError)
    assert not isinstance(error, TransientError)
    assert ("client_error", "d1") == (error.error_type, error.document_id)
    assert type(exc).__name__ in error.message
    assert not is_retryable(error)
