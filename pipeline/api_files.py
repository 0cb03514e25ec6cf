"""The Files API through the official SDK (`client.files`), as plain data.

`SdkFiles` implements `transport.FilesApi` over one `AsyncAnthropic` client of `api.ApiClient`
(routes and parameters: the SDK's `resources/files.py`; https://platform.claude.com/docs/en/build-with-claude/files).
Errors are translated by `api.translate_error`, as for a Messages request; a file the API does not
know (404) when deleting is taken as deleted already. The SDK's own retries are off: the callers decide.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic

from .api import translate_error
from .transport import StoredFile

__all__ = ["SdkFiles"]

LIST_PAGE = 100
TIMEOUT_S = 600.0  # a 32 MB upload on a slow link


class SdkFiles:
    """Upload, list and delete files through one SDK client."""

    def __init__(self, client: anthropic.AsyncAnthropic) -> None:
        self._client = client

    async def upload(self, data: bytes, *, filename: str, media_type: str, expires_in_s: int) -> str:
        try:
            stored = await self._client.files.upload(
                file=(filename, data, media_type), expires_in_seconds=expires_in_s, timeout=TIMEOUT_S
            )
        except Exception as exc:
            raise translate_error(exc) from None
        return str(stored.id)

    async def delete(self, file_id: str) -> None:
        try:
            await self._client.files.delete(file_id, timeout=TIMEOUT_S)
        except anthropic.NotFoundError:
            return  # gone already (deleted, or expired): what deleting wanted
        except Exception as exc:
            raise translate_error(exc) from None

    async def list(self) -> AsyncIterator[StoredFile]:
        try:
            async for item in self._client.files.list(limit=LIST_PAGE):
                yield StoredFile(id=item.id, filename=item.filename)
        except Exception as exc:
            raise translate_error(exc) from None
