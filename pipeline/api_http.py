"""The HTTP client under the SDK: its aiohttp transport, with TCP keepalive and connection reports.

Part of the SDK seam (`api.py`): `_AioHttpClient` is what `api.ApiClient` hands each `AsyncAnthropic`.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import aiohttp
import anthropic
import httpx2

from .transport import ConnectedObserver

__all__ = ["KEEPALIVE_OPTIONS", "AioHttpClient"]


def _keepalive_options() -> list[tuple[int, int, int]]:
    """The TCP keepalive the SDK's own httpx client sets on every socket: probes after 60 s idle."""
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 60), ("TCP_KEEPCNT", 5)):
        option = getattr(socket, name, None)
        if option is not None:
            options.append((socket.IPPROTO_TCP, option, value))
    if getattr(socket, "TCP_KEEPIDLE", None) is None and hasattr(socket, "TCP_KEEPALIVE"):  # macOS
        options.append((socket.IPPROTO_TCP, socket.TCP_KEEPALIVE, 60))
    return options


KEEPALIVE_OPTIONS = _keepalive_options()


def _keepalive_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    family, kind, proto = addr_info[:3]
    sock = socket.socket(family=family, type=kind, proto=proto)
    for level, option, value in KEEPALIVE_OPTIONS:
        with contextlib.suppress(OSError):  # an option this platform's sockets refuse
            sock.setsockopt(level, option, value)
    return sock


class AioHttpClient(anthropic.DefaultAioHttpClient):
    """The SDK's aiohttp client, its sockets with the keepalive that the SDK's httpx client sets.

    Without it, a connection waiting minutes for a long non-streamed answer sends nothing, and a
    NAT or load balancer with an idle timeout may drop it unseen: the request then times out and is
    retried, and may be billed twice. The SDK's transport builds its aiohttp session when the first
    request goes out, from its `client` factory when it has one; the factory given here builds the
    same connector (pool size, keepalive expiry, TLS context) with a socket factory added.
    Transports for proxies from the environment are left as the SDK makes them.

    The session also reports every new connection (`on_connected`): a connection the API accepted
    proves it reachable, even while the answers on it are minutes away.
    """

    def __init__(self, *args: Any, on_connected: ConnectedObserver | None = None, **kwargs: Any) -> None:
        self._on_connected = on_connected
        super().__init__(*args, **kwargs)

    def _trace_configs(self) -> list[aiohttp.TraceConfig]:
        observer = self._on_connected
        if observer is None:
            return []

        async def connected(*_: Any) -> None:
            observer()

        tracing = aiohttp.TraceConfig()
        tracing.on_connection_create_end.append(connected)
        return [tracing]

    def _init_transport(self, *args: Any, **kwargs: Any) -> httpx2.AsyncBaseTransport:
        transport = super()._init_transport(*args, **kwargs)
        limits, tls = getattr(transport, "limits", None), getattr(transport, "ssl_context", None)
        if isinstance(limits, httpx2.Limits) and getattr(transport, "client", False) is None:

            def session() -> aiohttp.ClientSession:
                connector = aiohttp.TCPConnector(
                    limit=limits.max_connections or 0,
                    keepalive_timeout=limits.keepalive_expiry,
                    ssl=tls if tls is not None else True,
                    socket_factory=_keepalive_socket,
                )
                return aiohttp.ClientSession(connector=connector, trace_configs=self._trace_configs())

            transport.client = session  # type: ignore[attr-defined]
        return transport
