"""The scorer ends itself after a fatal send failure even if Faust's shutdown hangs
(``shared.watchdog``, armed by ``services/scorer/app.py``)."""

from __future__ import annotations

import subprocess
import sys

from shared.watchdog import FATAL_EXIT_CODE

HANGS = """
import time
from shared.watchdog import exit_hard_after
exit_hard_after(0.3)
time.sleep(60)  # a shutdown that never returns, with the interpreter's main thread stuck
"""


def test_a_stuck_worker_exits_with_the_fatal_code() -> None:
    proc = subprocess.run([sys.executable, "-c", HANGS], capture_output=True, timeout=120)
    assert proc.returncode == FATAL_EXIT_CODE, proc.stderr.decode()[-2000:]
    assert b"did not stop within" in proc.stderr


def test_a_worker_that_ends_in_time_keeps_its_own_code() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from shared.watchdog import exit_hard_after\n"
         "exit_hard_after(30)\nraise SystemExit(3)"],
        capture_output=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr.decode()[-2000:]
