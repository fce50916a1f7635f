"""Fixture files for the ``shared.analysis`` tests, written into pytest's ``tmp_path``."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# Montgomery, Introduction to Statistical Quality Control, 6th ed., Example 7.1 / Table 7.1:
# 30 samples of n = 50 orange-juice cans, number nonconforming.  Trial limits: p̄ = 0.2313,
# UCL = 0.4102, LCL = 0.0524; samples 15 and 23 (1-based) are above the UCL.
ORANGE_JUICE = [12, 15, 8, 10, 4, 7, 16, 9, 14, 10, 5, 6, 17, 12, 22,
                8, 10, 5, 13, 11, 20, 18, 24, 15, 9, 12, 7, 13, 9, 6]  # fmt: skip
DAY0 = datetime(2026, 10, 1, tzinfo=UTC)


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def verdict_rows(
    errors_per_day: Sequence[int],
    n: int | Sequence[int] = 50,
    *,
    queue: str = "oj",
    start: datetime = DAY0,
    step: timedelta = timedelta(days=1),
    **extra: Any,
) -> list[dict[str, Any]]:
    """One row per verdict: subgroup i has ``errors_per_day[i]`` incorrect of ``n`` (or n[i]).

    The incorrect verdicts are spread through the period (every k-th verdict), so a
    per-verdict chart does not see them all at once.
    """
    sizes = [n] * len(errors_per_day) if isinstance(n, int) else list(n)
    rows: list[dict[str, Any]] = []
    for i, (errors, size) in enumerate(zip(errors_per_day, sizes, strict=True)):
        bad = {round(j * size / errors) for j in range(errors)} if errors else set()
        for j in range(size):
            at = start + i * step + j * step / (size + 1)
            rows.append(
                {
                    "verdict_id": f"{queue}-{i}-{j}",
                    "queue_id": queue,
                    "reviewed_at": iso(at),
                    "correct": "false" if j in bad else "true",
                    **extra,
                }
            )
    return rows


def write_csv(
    path: Path, rows: Iterable[dict[str, Any]], columns: Sequence[str] | None = None
) -> Path:
    rows = list(rows)
    names = list(columns) if columns is not None else list(rows[0]) if rows else []
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=names, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_ndjson(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def orange_juice_csv(tmp_path: Path, name: str = "oj.csv") -> Path:
    return write_csv(tmp_path / name, verdict_rows(ORANGE_JUICE))
