"""A variable set but empty (``QW_TARGET_RULE_CONFIDENCE=``) is one left out: the default.
Except the few where an empty value is what a secret that did not arrive looks like, or is
not development (``EmptyIsAValue``): those keep what they did before, said in their rows."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsError

from services.alerts.settings import AlertsSettings
from services.config_doc import NESTED, SECTIONS, empty_is_a_value, env_names
from shared.settings import REPO_ROOT, AuthSettings, DatabaseSettings, QualitySettings
from tests.unit.test_cli_settings_first import qwatch

KEPT = ["QW_DB_URL", "QW_ENV", "QW_ALERTS_WEBHOOK_URLS", "QW_ALERTS_WEBHOOK_SECRET"]


@pytest.fixture(autouse=True)
def _no_qw_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("QW_"):
            monkeypatch.delenv(name)


def _settings() -> list[tuple[type[BaseSettings], str, str]]:
    return [
        (cls, name, env)
        for _, cls in SECTIONS
        for env, name in zip(
            env_names(cls), [n for n in cls.model_fields if n not in NESTED], strict=True
        )
        if env not in KEPT
    ]


@pytest.mark.parametrize(("cls", "name", "env"), _settings(), ids=lambda x: str(x))
def test_an_empty_variable_is_an_unset_one(
    cls: type[BaseSettings], name: str, env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env, "")
    default = cls.model_fields[name].get_default(call_default_factory=True)
    assert getattr(cls(), name) == default


def test_the_trials_case_an_empty_target_rule_confidence_is_the_budgets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QW_TARGET_RULE_CONFIDENCE", "")
    assert QualitySettings().target_rule_confidence is None


def test_the_settings_whose_empty_value_is_a_value_are_these_and_documented() -> None:
    assert empty_is_a_value() == KEPT
    doc = (REPO_ROOT / "docs" / "configuration.md").read_text()
    assert "is the same as one left out: the default" in doc


def test_an_empty_qw_env_is_not_development(monkeypatch: pytest.MonkeyPatch) -> None:
    # as before: an environment of its own, with keys required and the development
    # placeholder secret refused; never development's relaxations by a variable come out empty
    monkeypatch.setenv("QW_ENV", "")
    assert AuthSettings().environment == ""
    with pytest.raises(ValidationError, match="known placeholder"):
        AlertsSettings()


def test_an_empty_database_url_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QW_DB_URL", "")
    with pytest.raises(ValidationError) as err:
        DatabaseSettings()
    (error,) = err.value.errors()
    assert error["loc"] == ("url",)
    assert "set but empty" in error["msg"]


def test_an_empty_webhook_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QW_ALERTS_WEBHOOK_SECRET", "")
    with pytest.raises(ValidationError, match="QW_ALERTS_WEBHOOK_SECRET is empty"):
        AlertsSettings()


def test_empty_webhook_urls_are_refused_not_read_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QW_ALERTS_WEBHOOK_URLS", "")
    with pytest.raises(SettingsError):
        AlertsSettings()
    monkeypatch.setenv("QW_ALERTS_WEBHOOK_URLS", "[]")
    assert AlertsSettings().webhook_urls == []


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"QW_ALERTS_WEBHOOK_URLS": ""}, "QW_ALERTS_WEBHOOK_URLS is set but empty"),
        ({"QW_DB_URL": ""}, "QW_DB_URL: set but empty"),
    ],
)
def test_a_refused_empty_variable_is_one_line_naming_it(env: dict[str, str], says: str) -> None:
    proc = qwatch("alerts", env=env)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("qwatch: invalid settings: ")
    assert says in line
