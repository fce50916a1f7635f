"""Process plumbing every service shares: logging, HTTP serving, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI

T = TypeVar("T")


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, on uvloop's event loop when uvloop is installed (a dependency
    on Linux): it takes about a fifth less CPU per HTTP request than asyncio's own loop
    (bench/README.md, "Health API"), and ingest's raw-topic loop a little less too
    (bench/README.md, "uvloop under ingest and the scorer")."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a platform without uvloop
        return asyncio.run(main)
    return uvloop.run(main)


def use_uvloop() -> bool:
    """Make the event loops created from here on uvloop's (the Faust worker creates its
    own, and one for its consumer thread), when uvloop is installed; True if it is."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a platform without uvloop
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def server_stack() -> str:
    """The event loop and HTTP parser a service runs on, for its start-up log line."""
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    try:
        import httptools  # noqa: F401 - uvicorn's "auto" uses it when it is importable

        http = "httptools"
    except ImportError:  # pragma: no cover
        http = "h11"
    return f"{'uvloop' if loop == 'uvloop' else 'asyncio'} loop, {http} parser"


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    quiet_rebalance_heartbeats()


# aiokafka's words, at WARNING, for a heartbeat answered "rebalance in progress": a normal
# step of every rebalance (a worker joins or leaves), which the services say themselves at
# INFO. A warning on each one teaches operators to ignore warnings.
REBALANCING_HEARTBEAT = "Heartbeat failed for group %s because it is rebalancing"


class _RebalancingHeartbeat(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == REBALANCING_HEARTBEAT and record.levelno == logging.WARNING:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def quiet_rebalance_heartbeats() -> None:
    """Log aiokafka's rebalancing-heartbeat warning at DEBUG (its other heartbeat warnings,
    a lost coordinator or member, stay warnings). Idempotent; Faust's logging set-up keeps it
    (a logger's filter, not a handler's)."""
    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")
    if not any(isinstance(f, _RebalancingHeartbeat) for f in coordinator.filters):
        coordinator.addFilter(_RebalancingHeartbeat())


def http_server(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    return _Server(config)


def log_when_listening(
    server: uvicorn.Server, log: logging.Logger, message: str, *args: object
) -> asyncio.Task[None]:
    """Log ``message`` once ``server`` has bound its socket and serves, not before: a port
    already in use must not be preceded by a "listening" line. The caller cancels the task
    when it stops (a server that never binds never logs)."""

    async def wait() -> None:
        while not server.started:  # noqa: ASYNC110 - uvicorn sets a flag, has no event
            await asyncio.sleep(0.05)
        log.info(message, *args)

    return asyncio.create_task(wait(), name="listening-log")


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to the service (``run_until_signal``), so a
    SIGTERM drains every task of the process, not just the HTTP server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


_log = logging.getLogger("qwatch")
# what a service says when a signal stops it, and once it has (the scorer's worker too)
STOPPING = "%s received: stopping (what is in hand is finished first)"
STOPPED = "stopped"
INTERRUPTED = 130  # the shell's exit status for a command ended by Ctrl-C (128 + SIGINT)


async def run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)``; SIGINT/SIGTERM set ``stop`` so ``main`` can drain and return.
    The service says so at INFO, when the signal comes and once it has stopped (it was
    silent: an operator could not tell a clean stop from a hang or a crash)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if not stop.is_set():
            _log.info(STOPPING, sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_signal, sig)
    await main(stop)
    _log.info(STOPPED)


async def supervise(
    tasks: list[asyncio.Task[Any]], stop: asyncio.Event, on_stop: Callable[[], None]
) -> None:
    """Run a service's tasks until ``stop`` is set or one of them ends; then call
    ``on_stop`` (which tells the others to drain), wait for all, and re-raise the first
    failure, so a crashed consumer takes its process down instead of idling silently."""
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    on_stop()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    stopper.cancel()
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
            raise r
