"""Exec probe of the scorer pod: the scorer is a Faust worker with no HTTP server.

    python -I scorer_probe.py live     the worker process (`qwatch scorer`) runs: not a
                                       zombie, not stopped
    python -I scorer_probe.py ready    live, and its network namespace holds an established
                                       TCP connection (the worker's only peers are the brokers)

Exit 0 when the check passes, 1 with the reason on stdout (the kubelet shows it in the pod's
events). Standard library only: it runs with the image's Python, mounted from the ConfigMap
qualitywatch-probes. ``--proc DIR`` and ``--pid N`` exist for tests.

What it cannot see: a worker whose event loop hangs while its process and connections stay up.
A heartbeat file touched by the worker would catch that; the scorer writes none yet.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# /proc/<pid>/stat states of a process that will not do any more work.
_DEAD_STATES = frozenset("ZXxTt")
# /proc/net/tcp{,6} "st" column: 01 is ESTABLISHED.
_ESTABLISHED = "01"


def is_scorer(argv: list[str]) -> bool:
    """``python .../qwatch scorer`` (a console script) or ``qwatch scorer``."""
    for i, arg in enumerate(argv[:-1]):
        if Path(arg).name == "qwatch" and argv[i + 1] == "scorer":
            return True
    return False


def process_state(proc: Path, pid: int) -> str | None:
    """The one-letter state of a process, None when it does not exist."""
    try:
        stat = (proc / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # "pid (comm) S ...": comm may hold spaces and parentheses, the state follows the last ")".
    rest = stat.rpartition(")")[2].split()
    return rest[0] if rest else None


def find_scorer(proc: Path, pid: int | None) -> int | None:
    pids = [pid] if pid is not None else [int(p.name) for p in proc.iterdir() if p.name.isdigit()]
    for candidate in sorted(pids):
        try:
            raw = (proc / str(candidate) / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if is_scorer(raw.decode("utf-8", errors="replace").split("\0")):
            return candidate
    return None


def established_connections(proc: Path, pid: int) -> int:
    count = 0
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / str(pid) / "net" / table).read_text(encoding="ascii").splitlines()
        except OSError:
            continue
        for line in lines[1:]:  # the first line is the header
            fields = line.split()
            if len(fields) > 3 and fields[3] == _ESTABLISHED:
                count += 1
    return count


def check(mode: str, proc: Path, pid: int | None) -> tuple[bool, str]:
    found = find_scorer(proc, pid)
    if found is None:
        return False, "no `qwatch scorer` process"
    state = process_state(proc, found)
    if state is None or state in _DEAD_STATES:
        return False, f"scorer pid {found} is in state {state}"
    if mode == "live":
        return True, f"scorer pid {found} is running (state {state})"
    connections = established_connections(proc, found)
    if connections == 0:
        return False, f"scorer pid {found} runs but has no established TCP connection to Kafka"
    return True, f"scorer pid {found} is running with {connections} established connection(s)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="liveness and readiness of the scorer pod")
    ap.add_argument("mode", choices=["live", "ready"])
    ap.add_argument("--proc", type=Path, default=Path("/proc"), help="procfs root (tests)")
    ap.add_argument("--pid", type=int, default=None, help="check this process only (tests)")
    args = ap.parse_args(argv)
    ok, why = check(args.mode, args.proc, args.pid)
    print(("ok: " if ok else "FAIL: ") + why)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
