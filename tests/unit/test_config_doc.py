from __future__ import annotations

from pathlib import Path

from services.config_doc import SECTIONS, env_names, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_docs_configuration_is_the_generated_reference() -> None:
    assert DOC.read_text() == render(), (
        "regenerate: .venv/bin/qwatch config > docs/configuration.md"
    )


def test_every_setting_is_documented_with_its_variable() -> None:
    text = DOC.read_text()
    for _, cls in SECTIONS:
        for env in env_names(cls):
            assert f"`{env}`" in text
