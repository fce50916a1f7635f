"""``tests.conftest.need_module``: an optional package a test needs fails the test under
CI=true (a missing install step must not pass as skips) and skips it elsewhere."""

from __future__ import annotations

import pytest

from tests import conftest


def test_a_package_that_is_there_is_returned() -> None:
    assert conftest.need_module("json").dumps([1]) == "[1]"


@pytest.mark.parametrize(("ci", "outcome"), [(True, "fail"), (False, "skip")])
def test_a_missing_package_fails_under_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: bool, outcome: str
) -> None:
    monkeypatch.setattr(conftest, "IN_CI", ci)
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected) as caught:
        conftest.need_module("qualitywatch_no_such_package")
    assert "qualitywatch_no_such_package is not installed" in str(caught.value)
    assert ("never skips" in str(caught.value)) is ci
