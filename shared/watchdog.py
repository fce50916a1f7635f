"""Make "stopping" mean stopped: end the process if a graceful shutdown hangs."""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

FATAL_EXIT_CODE = 70  # EX_SOFTWARE


def exit_hard_after(seconds: float, code: int = FATAL_EXIT_CODE) -> threading.Timer:
    """End the process with ``code`` in ``seconds`` unless it has ended by then; a daemon
    thread, so it fires even if the event loop is blocked."""

    def _exit() -> None:
        log.critical("the worker did not stop within %.0fs of a fatal error; exiting", seconds)
        logging.shutdown()
        os._exit(code)

    timer = threading.Timer(seconds, _exit)
    timer.daemon = True
    timer.start()
    return timer
