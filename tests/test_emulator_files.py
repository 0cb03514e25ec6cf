"""The Files API on the emulator: upload, list, metadata, download, delete, and files used in messages and batches."""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import pytest
from conftest import TEST_KEY
from test_extract import make_pdf

from pipeline.emulator import Emulator
from pipeline.emulator.files import FileStore, StoredFile
from pipeline.emulator.validation import ApiError

MODEL = "claude-haiku-5-5"
INVOICE = make_pdf(["Invoice 5120 from the Utrecht bakery for 300 loaves.", "Due on 2026-04-01."])
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC")


def document(file_id: str, kind: str = "document") -> list[dict[str, Any]]:
    block = {"type": kind, "source": {"type": "file", "file_id": file_id}}
    return [{"role": "user", "content": [block, {"type": "text", "text": "Summarise this."}]}]


def inline(data: bytes) -> list[dict[str, Any]]:
    source = {"type": "base64", "media_type": "application/pdf", "data": base64.b64encode(data).decode()}
    return [
        {
            "role": "user",
            "content": [{"type": "document", "source": source}, {"type": "text", "text": "Summarise this."}],
        }
    ]


def test_upload_answers_the_file_metadata(client: anthropic.Anthropic) -> None:
    """An upload answers FileMetadata: a file_ id, the kept name, the sniffed type, the size, not downloadable."""
    uploaded = client.files.upload(file=("reports/2026/invoice.pdf", INVOICE, "application/octet-stream"))
    assert uploaded.id.startswith("file_")
    assert ("invoice.pdf", "application/pdf", len(INVOICE)) == (
        uploaded.filename,
        uploaded.mime_type,
        uploaded.size_bytes,
    )
    assert (uploaded.type, uploaded.downloadable, uploaded.expires_at) == ("file", False, None)
    assert uploaded == client.files.retrieve_metadata(uploaded.id)


def test_expires_in_seconds_sets_expires_at_and_is_range_checked(client: anthropic.Anthropic) -> None:
    """`expires_in_seconds` puts expires_at that far after created_at; outside 3,600 to 7,776,000 it is a 400."""
    uploaded = client.files.upload(file=("a.pdf", INVOICE), expires_in_seconds=7200)
    assert uploaded.expires_at is not None
    assert 7200 == round((uploaded.expires_at - uploaded.created_at).total_seconds())
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.files.upload(file=("a.pdf", INVOICE), expires_in_seconds=60)
    assert caught.value.api_message.startswith("expires_in_seconds: ")


def test_a_filename_with_forbidden_characters_is_refused(client: anthropic.Anthropic) -> None:
    """A filename with characters the docs forbid is a 400 naming `file`."""
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.files.upload(file=('what?"now".pdf', INVOICE))
    assert caught.value.api_message.startswith("file: the filename must not contain")


def test_list_pages_newest_first_with_page_cursors(client: anthropic.Anthropic) -> None:
    """The list is newest first in pages of `limit`, chained by `page_` cursors; auto-pagination sees every file."""
    ids = [client.files.upload(file=(f"doc-{index}.pdf", INVOICE)).id for index in range(5)]
    first = client.files.list(limit=2)
    assert [f.id for f in first.data] == ids[::-1][:2]
    assert first.next_page is not None and first.next_page.startswith("page_")
    assert [f.id for f in client.files.list(limit=2)] == ids[::-1]
    last = client.files.list(limit=2, page=client.files.list(limit=2, page=first.next_page).next_page)
    assert ([f.id for f in last.data], last.next_page) == ([ids[0]], None)


def test_list_by_ids_is_one_page_of_the_visible_files(client: anthropic.Anthropic) -> None:
    """`ids` restricts the list to those files, silently leaving out deleted and unknown ones, in one page."""
    kept, deleted = (client.files.upload(file=(f"{name}.pdf", INVOICE)).id for name in ("kept", "deleted"))
    client.files.delete(deleted)
    listed = client.files.list(ids=[kept, deleted, "file_nope"])
    assert ([f.id for f in listed.data], listed.next_page) == ([kept], None)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"limit": 0}, "limit: Input should be between 1 and 1000"),
        ({"limit": 1001}, "limit: Input should be between 1 and 1000"),
        ({"page": "not-a-cursor"}, "page: invalid page cursor"),
        ({"ids": ["file_a"], "limit": 5}, "ids: ids cannot be combined with page or limit"),
        ({"ids": [f"file_{index}" for index in range(101)]}, "ids: at most 100 ids"),
    ],
    ids=["limit-0", "limit-1001", "bad-page", "ids-and-limit", "too-many-ids"],
)
def test_bad_list_parameters_are_refused(client: anthropic.Anthropic, options: dict[str, Any], fragment: str) -> None:
    """Out-of-range limits, cursors the API never gave and misused `ids` are 400s naming the parameter."""
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.files.list(**options)
    assert caught.value.api_message.startswith(fragment)


def test_uploaded_files_cannot_be_downloaded(client: anthropic.Anthropic) -> None:
    """Downloading an uploaded file is the API's `file_not_downloadable` 400."""
    uploaded = client.files.upload(file=("a.pdf", INVOICE))
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.files.download(uploaded.id)
    assert caught.value.error_code == "file_not_downloadable"


def test_a_deleted_file_is_gone_everywhere(client: anthropic.Anthropic) -> None:
    """After a delete, metadata, download and a message referencing the file are all 404s."""
    file_id = client.files.upload(file=("a.pdf", INVOICE)).id
    deleted = client.files.delete(file_id)
    assert (deleted.id, deleted.type) == (file_id, "file_deleted")
    for call in (client.files.retrieve_metadata, client.files.download, client.files.delete):
        with pytest.raises(anthropic.NotFoundError):
            call(file_id)
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model=MODEL, max_tokens=50, messages=document(file_id))
    assert caught.value.api_message == f"messages.0.content.0.source.file_id: File not found: {file_id}"


def test_an_unknown_file_id_in_count_tokens_is_a_404(client: anthropic.Anthropic) -> None:
    """count_tokens refuses an unknown file_id as Messages does, naming the field."""
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.count_tokens(model=MODEL, messages=document("file_011CNha8iCJcU1wXNR6q4V8w"))
    assert caught.value.api_message.startswith("messages.0.content.0.source.file_id: File not found")


def test_files_belong_to_the_key_that_uploaded_them(emulator: Emulator, make_client: Any) -> None:
    """Another API key cannot see, list or use a file."""
    owner, other = make_client(emulator), make_client(emulator, api_key=TEST_KEY + "-other")
    file_id = owner.files.upload(file=("a.pdf", INVOICE)).id
    with pytest.raises(anthropic.NotFoundError):
        other.files.retrieve_metadata(file_id)
    assert [] == list(other.files.list())
    with pytest.raises(anthropic.NotFoundError):
        other.messages.create(model=MODEL, max_tokens=50, messages=document(file_id))


def test_a_pdf_file_costs_what_the_same_pdf_inline_costs(client: anthropic.Anthropic) -> None:
    """A PDF referenced by file_id is counted, billed and read exactly as the same bytes sent as base64."""
    file_id = client.files.upload(file=("invoice.pdf", INVOICE)).id
    by_id = client.messages.count_tokens(model=MODEL, messages=document(file_id))
    assert client.messages.count_tokens(model=MODEL, messages=inline(INVOICE)).input_tokens == by_id.input_tokens
    message = client.messages.create(model=MODEL, max_tokens=200, messages=document(file_id))
    assert message.usage.input_tokens == by_id.input_tokens
    assert "Invoice 5120 from the Utrecht bakery" in next(b.text for b in message.content if b.type == "text")


def test_text_and_image_files_go_in_their_blocks(client: anthropic.Anthropic) -> None:
    """A text/plain file works as a document and a PNG as an image; the answer reads the text file."""
    text_id = client.files.upload(
        file=("notes.txt", b"Minutes of the Haarlem board meeting on roads.", "text/plain")
    ).id
    image_id = client.files.upload(file=("dot.png", PNG)).id
    message = client.messages.create(model=MODEL, max_tokens=100, messages=document(text_id))
    assert "Minutes of the Haarlem board meeting" in next(b.text for b in message.content if b.type == "text")
    client.messages.create(model=MODEL, max_tokens=20, messages=document(image_id, kind="image"))


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [("dot.png", PNG, "document"), ("a.pdf", INVOICE, "image")],
    ids=["png-in-document", "pdf-in-image"],
)
def test_a_file_of_the_wrong_type_for_its_block_is_refused(
    client: anthropic.Anthropic, name: str, data: bytes, kind: str
) -> None:
    """An image file in a document block, or a PDF in an image block, is a 400 naming `source.file_id`."""
    file_id = client.files.upload(file=(name, data)).id
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model=MODEL, max_tokens=20, messages=document(file_id, kind=kind))
    assert caught.value.api_message.startswith(f"messages.0.content.0.source.file_id: File {file_id} has MIME type")


def test_batches_read_files_when_their_requests_run(make_emulator: Any, make_client: Any) -> None:
    """A batch request referencing a file succeeds with its page cost; an unknown file_id is an errored result."""
    sdk = make_client(make_emulator(batch_processing_s=0))
    file_id = sdk.files.upload(file=("invoice.pdf", INVOICE)).id
    batch = sdk.messages.batches.create(
        requests=[
            {"custom_id": "known", "params": {"model": MODEL, "max_tokens": 50, "messages": document(file_id)}},
            {"custom_id": "unknown", "params": {"model": MODEL, "max_tokens": 50, "messages": document("file_x")}},
        ]
    )
    assert sdk.messages.batches.retrieve(batch.id).processing_status == "ended"
    results = {result.custom_id: result.result for result in sdk.messages.batches.results(batch.id)}
    counted = sdk.messages.count_tokens(model=MODEL, messages=document(file_id))
    assert results["known"].type == "succeeded"
    assert counted.input_tokens == results["known"].message.usage.input_tokens
    assert results["unknown"].type == "errored"
    assert results["unknown"].error.error.type == "not_found_error"


def test_an_upload_past_the_file_size_limit_is_a_413(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """A file over the per-file limit (500 MB, lowered here) is a 413 `request_too_large`."""
    emulator.state.files.max_file_bytes = len(INVOICE) - 1
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.files.upload(file=("a.pdf", INVOICE))
    assert (413, "request_too_large") == (caught.value.status_code, caught.value.type)


def test_an_upload_past_the_storage_quota_is_refused(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """Past the store's quota an upload is the `storage_quota_exceeded` 400; a delete frees the space."""
    emulator.state.files.quota_bytes = len(INVOICE) * 2
    first = client.files.upload(file=("a.pdf", INVOICE)).id
    client.files.upload(file=("b.pdf", INVOICE))
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.files.upload(file=("c.pdf", INVOICE))
    assert caught.value.error_code == "storage_quota_exceeded"
    client.files.delete(first)
    client.files.upload(file=("c.pdf", INVOICE))


def test_reset_forgets_files(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """The control plane's reset forgets every file."""
    file_id = client.files.upload(file=("a.pdf", INVOICE)).id
    emulator.control.reset()
    with pytest.raises(anthropic.NotFoundError):
        client.files.retrieve_metadata(file_id)


def test_files_calls_are_journaled_and_faults_can_target_them(emulator: Emulator, client: anthropic.Anthropic) -> None:
    """Journal entries of file calls say endpoint `files`; a rule with `endpoints = ["files"]` hits them."""
    client.files.upload(file=("a.pdf", INVOICE))
    assert "files" == emulator.control.requests()[-1]["endpoint"]
    emulator.control.set_faults([{"kind": "overloaded", "endpoints": ["files"]}])
    with pytest.raises(anthropic.OverloadedError):
        client.files.list()
    client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "Not a files call."}])


def test_an_expired_file_is_refused_in_messages_and_downloads() -> None:
    """After expires_at, using or downloading a file is the API's `file_expired` 404; its metadata stays."""
    store = FileStore()
    store.add(StoredFile("file_1", "key", "a.pdf", "application/pdf", INVOICE, 1000.0, 4600.0, 0))
    body = {"messages": document("file_1")}
    store.resolve(body, "key", 4599.0)
    for use in (
        lambda: store.resolve({"messages": document("file_1")}, "key", 4600.0),
        lambda: store.content("file_1", "key", 4600.0),
    ):
        with pytest.raises(ApiError) as caught:
            use()
        assert (404, {"error_code": "file_expired"}) == (caught.value.status, caught.value.details)
    assert store.get("file_1", "key").id == "file_1"
