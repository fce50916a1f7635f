"""The public API of shared.stats: everything in __all__ exists, and no I/O is imported."""

from __future__ import annotations

import subprocess
import sys

import shared.stats


def test_all_names_resolve() -> None:
    for name in shared.stats.__all__:
        assert hasattr(shared.stats, name), name


def test_no_kafka_database_or_http_imports() -> None:
    code = (
        "import sys, shared.stats\n"
        "bad = {'faust', 'aiokafka', 'sqlalchemy', 'fastapi', 'httpx', 'prometheus_client'}\n"
        "print(sorted(bad & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
