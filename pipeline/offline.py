"""`--offline`: the run's transport is docpipe's emulator on loopback, booted when the run opens it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from .transport import (
    ApiResponse,
    BatchApi,
    FilesApi,
    Transport,
    TransportFactory,
    TransportOptions,
    api_transport,
    batches_of,
    files_of,
)

__all__ = ["OFFLINE_API_KEY", "offline_transport"]

OFFLINE_API_KEY = "sk-docpipe-offline"


class _EmulatedApi:
    """A transport to an emulator it owns: closing it stops the emulator too."""

    def __init__(self, transport: Transport, emulator: Any) -> None:
        self._transport = transport
        self._emulator = emulator

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    @property
    def batches(self) -> BatchApi:
        return batches_of(self._transport)

    async def create(
        self,
        params: dict[str, Any],
        *,
        stream: bool,
        timeout_s: float,
        document_id: str | None = None,
        on_started: Callable[[], None] | None = None,
    ) -> ApiResponse:
        return await self._transport.create(
            params, stream=stream, timeout_s=timeout_s, document_id=document_id, on_started=on_started
        )

    @property
    def files(self) -> FilesApi:
        return files_of(self._transport)

    async def count_tokens(self, params: dict[str, Any]) -> int:
        return int(await self._transport.count_tokens(params))  # type: ignore[attr-defined]

    async def model_limits(self, model: str) -> tuple[int, int | None]:
        return await self._transport.model_limits(model)  # type: ignore[attr-defined, no-any-return]

    async def aclose(self) -> None:
        try:
            await self._transport.aclose()
        finally:
            await asyncio.to_thread(self._emulator.stop)


def offline_transport() -> TransportFactory:
    """The emulator with its default configuration, one per run, answering through the real SDK. It also serves
    the models `DOCPIPE_EMULATOR_MODELS` names (`ID=LIKE,...`): a run on a model docpipe's table does not know."""

    def open_transport(options: TransportOptions) -> Transport:
        from .emulator import Emulator, EmulatorConfig
        from .emulator.config import MODELS_ENV, served_models

        served = served_models(os.environ.get(MODELS_ENV, ""), source=MODELS_ENV)
        emulator = Emulator(EmulatorConfig(models=served)).start()
        try:
            transport = api_transport(api_key=OFFLINE_API_KEY, base_url=emulator.base_url)(options)
        except BaseException:
            emulator.stop()
            raise
        return _EmulatedApi(transport, emulator)

    return open_transport
