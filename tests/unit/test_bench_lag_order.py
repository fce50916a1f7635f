"""bench/lag_order.py on a few queues: both statistics catch a doubling, and the table
says so."""

from __future__ import annotations

import pytest

from bench import lag_order


def test_both_orders_catch_a_doubling_and_the_table_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert lag_order.main(["--trials", "4", "--rate", "2000", "--arl0", "20000"]) == 0
    out = capsys.readouterr().out
    assert "| as they arrive (the scorer) |" in out
    assert "| by decision time |" in out
    assert out.count("4/4 |") == 2, out


def test_the_flags_are_bounded() -> None:
    with pytest.raises(SystemExit):
        lag_order.main(["--trials", "0"])
    with pytest.raises(SystemExit):
        lag_order.main(["--arl0", "1e12"])
