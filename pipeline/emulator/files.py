"""The Files API's store: uploaded files per API key, in memory, and their use in Messages requests.

What the API does (https://platform.claude.com/docs/en/build-with-claude/files, and the SDK's
`resources/files.py` and `types/file_metadata.py`): a file is uploaded once and referenced by its
`file_id` from `document` blocks (PDF and plain text) and `image` blocks (JPEG, PNG, GIF, WebP);
files persist until deleted, or until `expires_in_seconds` (3,600 to 7,776,000) after upload;
uploaded files are not downloadable (only files a tool or skill created are, and the emulator runs
neither); a file may be at most 500 MB.

The emulator keeps files in memory, bounded by `quota_bytes` over all keys together (1 GiB by
default, standing in for the organization's storage quota: an upload past it gets the same
`storage_quota_exceeded` 400 the SDK types). Files belong to the API key that uploaded them, as
batches do; `reset` forgets them all.

`resolve` puts a request's file references in place: each `{"type": "file", "file_id": ...}`
source becomes the base64 or text source holding the file's content, before validation. A file
referenced by id is therefore checked, counted, cached and read exactly as the same bytes sent
inline would be, and an unknown, deleted, expired or mistyped file is refused first.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .attachments import document_blocks
from .validation import ApiError, invalid

__all__ = ["FileStore", "StoredFile", "sniff_mime_type"]

MAX_FILE_BYTES = 500 * 1024 * 1024
DEFAULT_QUOTA_BYTES = 1024 * 1024 * 1024
MIN_EXPIRES_IN_S = 3_600
MAX_EXPIRES_IN_S = 7_776_000
MAX_LIST_IDS = 100
DOCUMENT_TYPES = ("application/pdf", "text/plain")
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
FORBIDDEN_FILENAME_CHARS = frozenset('<>:"|?*\\/') | frozenset(chr(code) for code in range(32))
MAGIC_NUMBERS = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniff_mime_type(data: bytes, filename: str, declared: str | None) -> str:
    """The file's MIME type: from its first bytes when they say, else as declared or by its name."""
    for magic, mime_type in MAGIC_NUMBERS:
        if data.startswith(magic):
            return mime_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if declared and declared != "application/octet-stream":
        return declared.split(";")[0].strip().lower()
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class StoredFile:
    """One uploaded file: its metadata and its bytes (and their base64 text, made once when used)."""

    id: str
    key: str
    filename: str
    mime_type: str
    data: bytes
    created_at: float
    expires_at: float | None
    seq: int  # upload order: list pages are cut by it, so a delete never moves a cursor
    _base64: str | None = field(default=None, repr=False)

    def base64(self) -> str:
        """The content as base64 text, computed once: every request using the file shares one string."""
        if self._base64 is None:
            self._base64 = base64.b64encode(self.data).decode("ascii")
        return self._base64

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "file",
            "id": self.id,
            "filename": self.filename,
            "mime_type": self.mime_type,
            "size_bytes": len(self.data),
            "created_at": _iso(self.created_at),
            "downloadable": False,
            "expires_at": _iso(self.expires_at) if self.expires_at is not None else None,
        }


def clean_filename(raw: str | None, mime_type: str) -> str:
    """The name the API keeps: the final path component, or `unnamed` plus the type's extension.

    SDK `types/file_upload_params.py` says so; names longer than 255 characters or with characters
    the Files API docs forbid (`<>:"|?*\\/` and control characters) are refused.
    """
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    if not name:
        name = "unnamed" + (mimetypes.guess_extension(mime_type) or "")
    if len(name) > 255:
        raise invalid("file: the filename must be 1 to 255 characters long")
    if any(char in FORBIDDEN_FILENAME_CHARS for char in name):
        raise invalid('file: the filename must not contain <, >, :, ", |, ?, *, \\, / or control characters')
    return name


def _page_token(seq: int) -> str:
    return "page_" + base64.urlsafe_b64encode(str(seq).encode()).decode().rstrip("=")


def _page_seq(token: str) -> int:
    """The upload position a `page_` cursor continues after, or a 400 for a cursor the store never gave."""
    if not token.startswith("page_"):
        raise invalid("page: invalid page cursor")
    body = token.removeprefix("page_")
    try:
        return int(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid("page: invalid page cursor") from None


class FileStore:
    """Every key's files, in upload order, with the storage bound of all of them together."""

    def __init__(self, *, quota_bytes: int = DEFAULT_QUOTA_BYTES, max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self.quota_bytes = quota_bytes
        self.max_file_bytes = max_file_bytes
        self._files: dict[str, StoredFile] = {}
        self._seq = 0
        self._stored_bytes = 0

    def clear(self) -> None:
        self._files.clear()
        self._seq = self._stored_bytes = 0

    def add(self, stored: StoredFile) -> StoredFile:
        """Keep an uploaded file, or refuse it when the storage quota would be passed."""
        if self._stored_bytes + len(stored.data) > self.quota_bytes:
            raise ApiError(
                400,
                "invalid_request_error",
                "Your organization's file storage quota is exhausted. Delete files to free up space, then retry.",
                details={"error_code": "storage_quota_exceeded"},
            )
        self._seq += 1
        stored.seq = self._seq
        self._files[stored.id] = stored
        self._stored_bytes += len(stored.data)
        return stored

    def get(self, file_id: str, key: str) -> StoredFile:
        stored = self._files.get(file_id)
        if stored is None or stored.key != key:
            raise ApiError(404, "not_found_error", f"File not found: {file_id}")
        return stored

    def delete(self, file_id: str, key: str) -> None:
        stored = self.get(file_id, key)
        del self._files[file_id]
        self._stored_bytes -= len(stored.data)

    def content(self, file_id: str, key: str, now: float) -> bytes:
        """A download: refused for every uploaded file, as the API refuses it (404 once expired)."""
        stored = self.get(file_id, key)
        if stored.expired(now):
            raise _expired(file_id)
        raise ApiError(
            400,
            "invalid_request_error",
            f"File {file_id} cannot be downloaded: only files created by skills or the code execution tool "
            "can be downloaded, not files you uploaded.",
            details={"error_code": "file_not_downloadable"},
        )

    def page(
        self, key: str, *, limit: int, page: str | None, ids: list[str] | None
    ) -> tuple[list[StoredFile], str | None]:
        """A page of the key's files, newest first, and the cursor of the next page (None at the end)."""
        mine = sorted((f for f in self._files.values() if f.key == key), key=lambda f: f.seq, reverse=True)
        if ids is not None:
            wanted = set(ids)
            return [f for f in mine if f.id in wanted], None
        if page is not None:
            after = _page_seq(page)
            mine = [f for f in mine if f.seq < after]
        selected = mine[:limit]
        return selected, (_page_token(selected[-1].seq) if len(mine) > limit else None)

    def resolve(self, body: Any, key: str, now: float) -> None:
        """Replace the file sources of a Messages body by the content they name (see the module doc)."""
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list):
            return
        for where, block in document_blocks(messages):
            source = block.get("source")
            if not isinstance(source, dict) or source.get("type") != "file":
                continue
            file_id = source.get("file_id")
            if not isinstance(file_id, str) or not file_id:
                raise invalid(f"{where}.source.file_id: Field required")
            block["source"] = self._source_for(block["type"], file_id, key, now, where)

    def _source_for(self, kind: str, file_id: str, key: str, now: float, where: str) -> dict[str, Any]:
        stored = self._files.get(file_id)
        if stored is None or stored.key != key:
            raise ApiError(404, "not_found_error", f"{where}.source.file_id: File not found: {file_id}")
        if stored.expired(now):
            raise _expired(file_id)
        allowed = DOCUMENT_TYPES if kind == "document" else IMAGE_TYPES
        if stored.mime_type not in allowed:
            raise invalid(
                f"{where}.source.file_id: File {file_id} has MIME type '{stored.mime_type}', which cannot be used "
                f"in a {kind} block (it takes {', '.join(allowed)})"
            )
        if stored.mime_type == "text/plain":
            return {"type": "text", "media_type": "text/plain", "data": stored.data.decode("utf-8", "replace")}
        return {"type": "base64", "media_type": stored.mime_type, "data": stored.base64()}


def _expired(file_id: str) -> ApiError:
    return ApiError(
        404,
        "not_found_error",
        f"File {file_id} has expired; its content is no longer available.",
        details={"error_code": "file_expired"},
    )
