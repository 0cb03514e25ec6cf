"""The Files API endpoints: upload, list, metadata, download and delete under `/v1/files`.

Routes and parameters are the SDK's (`resources/files.py`: `client.files.upload/list/
retrieve_metadata/download/delete`); the store and its rules are `files.py`. The SDK sends these
requests without an `anthropic-beta` header (the Files API is no longer a beta in SDK 2.x), and the
emulator accepts them with or without `files-api-2025-04-14`. Uploads are `multipart/form-data`
with a `file` part and an optional `expires_in_seconds` part.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .api_errors import refuse_extra
from .files import (
    MAX_EXPIRES_IN_S,
    MAX_LIST_IDS,
    MIN_EXPIRES_IN_S,
    StoredFile,
    clean_filename,
    sniff_mime_type,
)
from .http_base import Endpoint
from .paging import page_limit
from .validation import ApiError, invalid

__all__ = ["MULTIPART_OVERHEAD_BYTES", "FilesEndpoint", "Part", "parse_multipart"]

MULTIPART_OVERHEAD_BYTES = 64 * 1024  # boundaries and part headers around the file's bytes, at most
_PARAM_RE = re.compile(r';\s*([\w*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))')


@dataclass(frozen=True)
class Part:
    """One part of a multipart/form-data body."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def _params(header: str) -> dict[str, str]:
    found = _PARAM_RE.finditer(header)
    return {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3).strip() for m in found}


def _part(section: bytes) -> Part:
    head, separator, data = section.partition(b"\r\n\r\n")
    if not separator:
        raise invalid("There was an error parsing the body: a multipart part has no header block")
    headers: dict[str, str] = {}
    for line in head.decode("utf-8", "replace").split("\r\n"):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    disposition = _params(";" + headers.get("content-disposition", "").partition(";")[2])
    return Part(disposition.get("name", ""), disposition.get("filename"), headers.get("content-type"), data)


def parse_multipart(raw: bytes, content_type: str) -> list[Part]:
    """The parts of a multipart/form-data body, or a 400 for a body that is not one."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise invalid("Content-Type: the Files API takes multipart/form-data uploads")
    boundary = _params(";" + content_type.partition(";")[2]).get("boundary")
    if not boundary:
        raise invalid("Content-Type: multipart/form-data needs a boundary")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    sections = (b"\r\n" + raw).split(delimiter)
    parts: list[Part] = []
    for section in sections[1:]:
        if section.startswith(b"--"):
            return parts
        parts.append(_part(section.removeprefix(b"\r\n")))
    raise invalid("There was an error parsing the body: the multipart body has no closing boundary")


def _expires_in(part: Part | None) -> int | None:
    if part is None:
        return None
    try:
        seconds = int(part.data.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise invalid("expires_in_seconds: Input should be a valid integer") from None
    if not MIN_EXPIRES_IN_S <= seconds <= MAX_EXPIRES_IN_S:
        raise invalid(f"expires_in_seconds: Input should be between {MIN_EXPIRES_IN_S} and {MAX_EXPIRES_IN_S}")
    return seconds


def _list_query(query: Any) -> tuple[int, str | None, list[str] | None]:
    """`limit`, `page` and `ids` of a list call, checked as the SDK's `FileListParams` describe them."""
    ids = list(dict.fromkeys(query.getall("ids[]", []) + query.getall("ids", []))) or None
    if ids is not None and ("page" in query or "limit" in query):
        raise invalid("ids: ids cannot be combined with page or limit")
    if ids is not None and len(ids) > MAX_LIST_IDS:
        raise invalid(f"ids: at most {MAX_LIST_IDS} ids may be given")
    return page_limit(query), query.get("page"), ids


class FilesEndpoint(Endpoint):
    """`/v1/files` and the routes under it."""

    def _too_large(self) -> ApiError:
        limit_mb = self.state.files.max_file_bytes // (1024 * 1024)
        return ApiError(413, "request_too_large", f"File too large: a file may be at most {limit_mb} MB.")

    async def _read_upload(self, request: web.Request) -> list[Part]:
        limit = self.state.files.max_file_bytes + MULTIPART_OVERHEAD_BYTES
        if request.content_length is not None and request.content_length > limit:
            raise self._too_large()
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise self._too_large() from None
        return parse_multipart(raw, request.headers.get("content-type", ""))

    async def files_upload(self, request: web.Request) -> web.Response:
        async def action(key: str, version: str) -> Any:
            parts = {part.name: part for part in await self._read_upload(request)}
            refuse_extra(parts, ("file", "expires_in_seconds"))
            file = parts.get("file")
            if file is None or file.filename is None:
                raise invalid("file: Field required")
            if len(file.data) > self.state.files.max_file_bytes:
                raise self._too_large()
            expires_in = _expires_in(parts.get("expires_in_seconds"))
            now = time.time()
            mime_type = sniff_mime_type(file.data, file.filename, file.content_type)
            stored = StoredFile(
                id=self.state.new_id("file"),
                key=key,
                filename=clean_filename(file.filename, mime_type),
                mime_type=mime_type,
                data=file.data,
                created_at=now,
                expires_at=now + expires_in if expires_in is not None else None,
                seq=0,
            )
            return self.state.files.add(stored).to_json()

        return await self._call(request, "files", action)

    async def files_list(self, request: web.Request) -> web.Response:
        async def action(key: str, version: str) -> Any:
            limit, page, ids = _list_query(request.query)
            files, next_page = self.state.files.page(key, limit=limit, page=page, ids=ids)
            return {"data": [f.to_json() for f in files], "next_page": next_page}

        return await self._call(request, "files", action)

    async def files_retrieve(self, request: web.Request) -> web.Response:
        async def action(key: str, version: str) -> Any:
            return self.state.files.get(request.match_info["file_id"], key).to_json()

        return await self._call(request, "files", action)

    async def files_download(self, request: web.Request) -> web.Response:
        async def action(key: str, version: str) -> Any:
            data = self.state.files.content(request.match_info["file_id"], key, time.time())
            return web.Response(body=data, content_type="application/octet-stream")

        return await self._call(request, "files", action)

    async def files_delete(self, request: web.Request) -> web.Response:
        async def action(key: str, version: str) -> Any:
            file_id = request.match_info["file_id"]
            self.state.files.delete(file_id, key)
            return {"id": file_id, "type": "file_deleted"}

        return await self._call(request, "files", action)
