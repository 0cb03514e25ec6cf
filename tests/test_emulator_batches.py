"""Message Batches on the emulator: the real lifecycle, results and listing, through the official SDK."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import timedelta
from typing import Any

import anthropic
import httpx2
import pytest
from conftest import TEST_KEY

MODEL = "claude-haiku-5-5"
SHORT_S = 0.3
LONG_S = 60.0
RETENTION = timedelta(days=29)  # results are downloadable for 29 days after creation (batch-processing docs)
TOPICS = ["invoices", "contracts", "tickets", "reports", "e-mails", "web pages", "receipts", "memos", "forms", "logs"]


def params(topic: str, **extra: Any) -> dict[str, Any]:
    text = f"This document is about {topic}. It has a few sentences of text. Nothing else is in it at all."
    return {"model": MODEL, "max_tokens": 200, "messages": [{"role": "user", "content": text}], **extra}


def batch_requests(count: int) -> list[dict[str, Any]]:
    return [{"custom_id": f"doc-{index}", "params": params(TOPICS[index])} for index in range(count)]


def ended(sdk: anthropic.Anthropic, batch_id: str) -> Any:
    """The batch if it has ended, else None (for `wait_until`)."""
    batch = sdk.messages.batches.retrieve(batch_id)
    return batch if batch.processing_status == "ended" else None


def counts(batch: Any) -> dict[str, int]:
    return batch.request_counts.model_dump()


def test_batch_moves_from_in_progress_to_ended_with_results(
    make_emulator: Any, make_client: Any, wait_until: Any
) -> None:
    """A batch is in_progress with only `processing` counted, then ended with every result and an absolute URL."""
    emu = make_emulator(batch_processing_s=SHORT_S)
    sdk = make_client(emu)
    created = sdk.messages.batches.create(requests=batch_requests(5))
    assert created.id.startswith("msgbatch_")
    assert (created.type, created.processing_status) == ("message_batch", "in_progress")
    assert counts(created) == {"processing": 5, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    assert (created.results_url, created.ended_at, created.cancel_initiated_at) == (None, None, None)
    assert timedelta(hours=24) == created.expires_at - created.created_at
    polled = sdk.messages.batches.retrieve(created.id)
    assert (polled.processing_status, polled.request_counts.processing) == ("in_progress", 5)

    batch = wait_until(lambda: ended(sdk, created.id), what="the batch to end")
    assert counts(batch) == {"processing": 0, "succeeded": 5, "errored": 0, "canceled": 0, "expired": 0}
    assert f"{emu.base_url}/v1/messages/batches/{created.id}/results" == batch.results_url
    assert batch.ended_at is not None
    assert batch.ended_at >= batch.created_at
    results = {result.custom_id: result.result for result in sdk.messages.batches.results(created.id)}
    assert {f"doc-{index}" for index in range(5)} == set(results)
    assert {"succeeded"} == {result.type for result in results.values()}


def test_batch_results_are_what_messages_create_answers(make_emulator: Any, make_client: Any, wait_until: Any) -> None:
    """Each succeeded result holds the same content a direct request would get, billed at the batch tier."""
    emu = make_emulator(batch_processing_s=SHORT_S)
    sdk = make_client(emu)
    created = sdk.messages.batches.create(requests=batch_requests(3))
    wait_until(lambda: ended(sdk, created.id), what="the batch to end")
    for result in sdk.messages.batches.results(created.id):
        assert result.result.type == "succeeded"
        direct = sdk.messages.create(**params(TOPICS[int(result.custom_id.removeprefix("doc-"))]))
        assert direct.content == result.result.message.content
        assert direct.usage.input_tokens == result.result.message.usage.input_tokens
        assert result.result.message.usage.service_tier == "batch"


def test_results_are_shuffled_but_deterministic_per_seed(make_emulator: Any, make_client: Any, wait_until: Any) -> None:
    """Results come back out of request order, in the same order on a fresh emulator with the same seed."""
    orders = []
    for _ in range(2):
        sdk = make_client(make_emulator(batch_processing_s=SHORT_S))
        created = sdk.messages.batches.create(requests=batch_requests(10))
        wait_until(lambda sdk=sdk, created=created: ended(sdk, created.id), what="the batch to end")
        orders.append([result.custom_id for result in sdk.messages.batches.results(created.id)])
    assert orders[0] == orders[1]
    assert [f"doc-{index}" for index in range(10)] != orders[0]
    assert sorted(orders[0]) == sorted(f"doc-{index}" for index in range(10))


def test_results_download_twice_identically_and_bill_once(
    make_emulator: Any, make_client: Any, wait_until: Any
) -> None:
    """Downloading results again gives the very same lines; each request is billed once."""
    emu = make_emulator(batch_processing_s=SHORT_S)
    sdk = make_client(emu)
    created = sdk.messages.batches.create(requests=batch_requests(4))
    wait_until(lambda: ended(sdk, created.id), what="the batch to end")
    first = [result.model_dump() for result in sdk.messages.batches.results(created.id)]
    second = [result.model_dump() for result in sdk.messages.batches.results(created.id)]
    assert first == second
    assert emu.control.stats()["messages_billed"] == 4


@pytest.mark.parametrize(
    ("bad_params", "error_type", "fragment"),
    [
        (params("bad", temperature=0.5), "invalid_request_error", "temperature: Extra inputs are not permitted"),
        (params("bad", stream=True), "invalid_request_error", "stream"),
        ({k: v for k, v in params("bad").items() if k != "max_tokens"}, "invalid_request_error", "max_tokens"),
        (params("bad", model="claude-nope-1"), "not_found_error", "claude-nope-1"),
    ],
    ids=["temperature", "stream", "no-max-tokens", "unknown-model"],
)
def test_invalid_params_give_an_errored_result_not_a_400(
    make_emulator: Any, make_client: Any, wait_until: Any, bad_params: dict[str, Any], error_type: str, fragment: str
) -> None:
    """Params are validated when processed: a bad request is an `errored` result, the others succeed."""
    sdk = make_client(make_emulator(batch_processing_s=SHORT_S))
    requests = [*batch_requests(2), {"custom_id": "bad-one", "params": bad_params}]
    created = sdk.messages.batches.create(requests=requests)
    assert created.request_counts.processing == 3
    batch = wait_until(lambda: ended(sdk, created.id), what="the batch to end")
    assert counts(batch) == {"processing": 0, "succeeded": 2, "errored": 1, "canceled": 0, "expired": 0}
    results = {result.custom_id: result.result for result in sdk.messages.batches.results(created.id)}
    errored = results["bad-one"]
    assert errored.type == "errored"
    assert ("error", error_type) == (errored.error.type, errored.error.error.type)
    assert fragment in errored.error.error.message


def test_errored_results_carry_a_request_id(make_emulator: Any, make_client: Any, wait_until: Any) -> None:
    """An errored line names the request id of its attempt (SDK `ErrorResponse.request_id`), one per error."""
    sdk = make_client(make_emulator(batch_processing_s=SHORT_S))
    requests = [{"custom_id": f"bad-{n}", "params": params("bad", temperature=0.5)} for n in range(2)]
    created = sdk.messages.batches.create(requests=[*batch_requests(1), *requests])
    wait_until(lambda: ended(sdk, created.id), what="the batch to end")
    results = {result.custom_id: result.result for result in sdk.messages.batches.results(created.id)}
    request_ids = [results[f"bad-{n}"].error.request_id for n in range(2)]
    assert all(re.fullmatch(r"req_[0-9A-Za-z]+", str(request_id)) for request_id in request_ids)
    assert request_ids[0] != request_ids[1]


@pytest.mark.parametrize(
    ("requests", "fragment"),
    [
        ([], "requests: List should have at least 1 item"),
        ([{"custom_id": "same", "params": params("a")}, {"custom_id": "same", "params": params("b")}], "duplicate"),
        ([{"custom_id": "has space", "params": params("a")}], "custom_id: String should match pattern"),
        ([{"custom_id": "x" * 65, "params": params("a")}], "custom_id: String should match pattern"),
    ],
    ids=["empty", "duplicate-id", "bad-id", "long-id"],
)
def test_bad_batch_envelope_is_a_400_on_create(
    make_emulator: Any, make_client: Any, requests: list[dict[str, Any]], fragment: str
) -> None:
    """The envelope (requests list, custom_id rules) is checked at create time."""
    emu = make_emulator()
    with pytest.raises(anthropic.BadRequestError) as caught:
        make_client(emu).messages.batches.create(requests=requests)
    assert fragment in (caught.value.api_message or "")
    assert emu.control.stats()["batches_created"] == 0


def test_results_of_an_unfinished_batch_are_not_available(make_emulator: Any, make_client: Any) -> None:
    """While a batch is in progress it has no results_url, so the SDK refuses to fetch results."""
    sdk = make_client(make_emulator(batch_processing_s=LONG_S))
    created = sdk.messages.batches.create(requests=batch_requests(2))
    with pytest.raises(anthropic.AnthropicError, match="No `results_url`"):
        sdk.messages.batches.results(created.id)


def test_results_are_jsonl_one_object_per_line(make_emulator: Any, make_client: Any, wait_until: Any) -> None:
    """The results body is `application/x-jsonl`: newline-terminated lines, no blank ones."""
    emu = make_emulator(batch_processing_s=SHORT_S)
    sdk = make_client(emu)
    created = sdk.messages.batches.create(requests=batch_requests(3))
    batch = wait_until(lambda: ended(sdk, created.id), what="the batch to end")
    response = httpx2.get(batch.results_url, headers={"x-api-key": TEST_KEY, "anthropic-version": "2026-10-21"})
    assert response.headers["content-type"] == "application/x-jsonl"
    assert response.text.endswith("\n")
    lines = response.text.split("\n")[:-1]
    assert len(lines) == 3
    assert all(line.startswith('{"custom_id": ') for line in lines)


def test_list_paginates_newest_first(make_emulator: Any, make_client: Any) -> None:
    """`batches.list(limit=2)` over five batches: pages of 2, 2, 1 with has_more, first_id and last_id."""
    emu = make_emulator(batch_processing_s=LONG_S)
    sdk = make_client(emu)
    created = [sdk.messages.batches.create(requests=batch_requests(1)).id for _ in range(5)]
    newest_first = created[::-1]

    page = sdk.messages.batches.list(limit=2)
    assert newest_first[:2] == [batch.id for batch in page.data]
    assert (True, newest_first[0], newest_first[1]) == (page.has_more, page.first_id, page.last_id)
    pages = [page]
    while pages[-1].has_next_page():
        pages.append(pages[-1].get_next_page())
    assert [len(p.data) for p in pages] == [2, 2, 1]
    assert (False, newest_first[4], newest_first[4]) == (pages[-1].has_more, pages[-1].first_id, pages[-1].last_id)

    assert newest_first == [batch.id for batch in sdk.messages.batches.list(limit=2)]


@pytest.mark.parametrize("cursor", ["after_id", "before_id"])
def test_a_cursor_naming_no_batch_is_a_400(make_emulator: Any, make_client: Any, cursor: str) -> None:
    """A cursor that is no batch of this key (unknown, deleted, another key's) is refused, not an empty page."""
    emu = make_emulator(batch_processing_s=LONG_S)
    sdk, other = make_client(emu), make_client(emu, api_key="sk-ant-another-workspace")
    mine = sdk.messages.batches.create(requests=batch_requests(1)).id
    theirs = other.messages.batches.create(requests=batch_requests(1)).id
    assert [mine] == [batch.id for batch in sdk.messages.batches.list()]
    for missing in ("msgbatch_013Zva2CMHLNnXjNJJKqJ2EF", theirs):
        with pytest.raises(anthropic.BadRequestError) as caught:
            sdk.messages.batches.list(**{cursor: missing})
        assert caught.value.type == "invalid_request_error"
        assert cursor in (caught.value.api_message or "")


def test_batch_is_archived_29_days_after_creation(make_emulator: Any, make_client: Any) -> None:
    """Past its retention a batch is still retrieved and listed, with `archived_at`, but its results are a 404."""
    emu = make_emulator(batch_processing_s=LONG_S)
    sdk = make_client(emu)
    created = sdk.messages.batches.create(requests=batch_requests(2))
    emu.state.clock.advance(RETENTION.total_seconds() - 3600)
    within = sdk.messages.batches.retrieve(created.id)
    assert (within.processing_status, within.archived_at) == ("ended", None)
    assert {"succeeded"} == {line.result.type for line in sdk.messages.batches.results(created.id)}
    emu.state.clock.advance(3600)
    archived = sdk.messages.batches.retrieve(created.id)
    assert archived.archived_at == created.created_at + RETENTION
    assert [archived.model_dump()] == [batch.model_dump() for batch in sdk.messages.batches.list()]
    with pytest.raises(anthropic.NotFoundError) as caught:
        sdk.messages.batches.results(created.id)
    assert "archived" in (caught.value.api_message or "")


def test_batches_belong_to_their_api_key(make_emulator: Any, make_client: Any) -> None:
    """Another key neither lists nor retrieves a batch it did not create."""
    emu = make_emulator(batch_processing_s=LONG_S)
    created = make_client(emu).messages.batches.create(requests=batch_requests(1))
    other = make_client(emu, api_key="sk-ant-another-workspace")
    assert list(other.messages.batches.list()) == []
    with pytest.raises(anthropic.NotFoundError):
        other.messages.batches.retrieve(created.id)


def test_cancel_goes_through_canceling_to_ended_with_canceled_results(
    make_emulator: Any, make_client: Any, wait_until: Any
) -> None:
    """Canceling a long batch: `canceling` at once, then `ended` with every request `canceled`."""
    sdk = make_client(make_emulator(batch_processing_s=LONG_S))
    created = sdk.messages.batches.create(requests=batch_requests(4))
    canceling = sdk.messages.batches.cancel(created.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None
    assert canceling.request_counts.processing == 4
    batch = wait_until(lambda: ended(sdk, created.id), what="the canceled batch to end")
    assert counts(batch) == {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 4, "expired": 0}
    assert {"canceled"} == {result.result.type for result in sdk.messages.batches.results(created.id)}


def test_delete_only_once_ended(make_emulator: Any, make_client: Any, wait_until: Any) -> None:
    """Deleting an unfinished batch is a 400; once ended it is deleted, and then it is gone."""
    sdk = make_client(make_emulator(batch_processing_s=LONG_S))
    created = sdk.messages.batches.create(requests=batch_requests(2))
    with pytest.raises(anthropic.BadRequestError):
        sdk.messages.batches.delete(created.id)
    sdk.messages.batches.cancel(created.id)
    wait_until(lambda: ended(sdk, created.id), what="the canceled batch to end")
    deleted = sdk.messages.batches.delete(created.id)
    assert (created.id, "message_batch_deleted") == (deleted.id, deleted.type)
    with pytest.raises(anthropic.NotFoundError):
        sdk.messages.batches.delete(created.id)
    with pytest.raises(anthropic.NotFoundError):
        sdk.messages.batches.retrieve(created.id)
    assert list(sdk.messages.batches.list()) == []


def test_batch_past_its_expiry_ends_with_expired_results(make_emulator: Any, make_client: Any, wait_until: Any) -> None:
    """When processing would outlast `expires_at`, the batch ends at expiry with its requests `expired`."""
    sdk = make_client(make_emulator(batch_processing_s=LONG_S, batch_expiry_s=0.2))
    created = sdk.messages.batches.create(requests=batch_requests(3))
    assert timedelta(seconds=0.2) == created.expires_at - created.created_at
    batch = wait_until(lambda: ended(sdk, created.id), what="the batch to expire")
    assert counts(batch) == {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 3}
    assert batch.ended_at == batch.expires_at
    assert {"expired"} == {result.result.type for result in sdk.messages.batches.results(created.id)}


def test_async_client_runs_a_batch_to_its_results(make_emulator: Any, make_async_client: Any) -> None:
    """The async client creates, polls and reads a batch the same way."""
    emu = make_emulator(batch_processing_s=SHORT_S)

    async def main() -> tuple[str, dict[str, str]]:
        async with make_async_client(emu) as sdk:
            created = await sdk.messages.batches.create(requests=batch_requests(3))
            deadline = time.monotonic() + 10
            batch = created
            while batch.processing_status != "ended":
                assert time.monotonic() < deadline, "the batch did not end within 10 s"
                await asyncio.sleep(0.02)
                batch = await sdk.messages.batches.retrieve(created.id)
            results = {r.custom_id: r.result.type async for r in await sdk.messages.batches.results(created.id)}
            return created.processing_status, results

    status_at_create, results = asyncio.run(main())
    assert status_at_create == "in_progress"
    assert results == {"doc-0": "succeeded", "doc-1": "succeeded", "doc-2": "succeeded"}
