"""A faithful Anthropic API emulator on loopback.

Start it from the command line (`docpipe emulator --port 8765`) or in-process::

    with Emulator(EmulatorConfig(seed=7)) as emulator:
        client = anthropic.Anthropic(api_key="sk-test", base_url=emulator.base_url)

The in-process emulator runs its own event loop in a background thread, binds a free loopback port
and stops cleanly on exit. `docs/emulator.md` lists what is emulated and what is not.

Importing the package is cheap: asyncio, aiohttp and the HTTP server are imported when an
emulator starts, not before.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..errors import EmulatorError
from .config import EmulatorConfig, LatencyModel
from .control import EmulatorControl
from .faults import FaultPlan, FaultRule, load_fault_plan
from .ratelimit import Limits
from .state import EmulatorState

if TYPE_CHECKING:
    import asyncio

    from aiohttp import web

__all__ = [
    "Emulator",
    "EmulatorConfig",
    "EmulatorControl",
    "FaultPlan",
    "FaultRule",
    "LatencyModel",
    "Limits",
    "load_fault_plan",
    "serve",
]

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 10.0
# On stop, requests still in flight (a fault-injected hang, say) get this long before they are cut.
SHUTDOWN_GRACE_S = 1.0


def _check_loopback(host: str) -> None:
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
        raise EmulatorError(f"the emulator binds loopback addresses only, not {host!r}")


async def _start(state: EmulatorState, host: str, port: int) -> tuple[web.AppRunner, int]:
    from aiohttp import web  # the server loads when an emulator starts, not when the package is imported

    from .server import build_app

    runner = web.AppRunner(build_app(state), access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_S)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
    await site.start()
    addresses = runner.addresses
    bound = addresses[0][1] if addresses else port
    return runner, int(bound)


class Emulator:
    """The emulator in a background thread, as a context manager yielding itself."""

    def __init__(self, config: EmulatorConfig | None = None, *, host: str = LOOPBACK, port: int = 0) -> None:
        _check_loopback(host)
        self.config = config or EmulatorConfig()
        self.state = EmulatorState(self.config)
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def control(self) -> EmulatorControl:
        return EmulatorControl(self.base_url)

    def _run(self) -> None:
        import asyncio

        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._runner, self.port = loop.run_until_complete(_start(self.state, self.host, self.port))
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._runner.cleanup())
            leftover = asyncio.all_tasks(loop)  # handlers still sleeping in a fault past the grace period
            for task in leftover:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
            loop.close()

    def start(self) -> Emulator:
        self._thread = threading.Thread(target=self._run, name="docpipe-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise EmulatorError("the emulator did not start within 10 s")
        if self._error is not None:
            raise EmulatorError(
                f"the emulator could not start on {self.host}:{self.port}: {self._error}"
            ) from self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop = self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(config: EmulatorConfig, *, host: str = LOOPBACK, port: int = 8765, on_ready: Any = None) -> None:
    """Run the emulator in the foreground until interrupted (the `docpipe emulator` command)."""
    _check_loopback(host)
    import asyncio

    async def main() -> None:
        runner, bound = await _start(EmulatorState(config), host, port)
        if on_ready is not None:
            on_ready(f"http://{host}:{bound}")
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    except OSError as exc:
        raise EmulatorError(f"the emulator could not listen on {host}:{port}: {exc.strerror}") from exc
