"""Where a worker keeps its tables: a folder per Kafka cluster and consumer group under
QW_SCORER_DATA_DIR (services/scorer/app.py, ``state_dir``), and the settings that name it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.scorer import app as scorer_app
from services.scorer.app import state_dir
from services.scorer.settings import ScorerSettings
from shared.settings import KafkaSettings


def settings(tmp_path: Path, prefix: str = "", app_id: str = "qw-scorer") -> ScorerSettings:
    kafka = KafkaSettings(
        bootstrap="127.0.0.1:1", topic_prefix=prefix, replication_factor=1, min_insync_replicas=1
    )
    return ScorerSettings(data_dir=str(tmp_path / "s"), kafka=kafka, app_id=app_id)


def test_one_folder_per_cluster_and_group(tmp_path: Path) -> None:
    here = settings(tmp_path)
    assert state_dir(here, "Sv7_hlStRia7Ppn3LiwbfA") == (
        tmp_path / "s" / "cluster-Sv7_hlStRia7Ppn3LiwbfA" / "qw-scorer"
    )
    assert state_dir(settings(tmp_path, prefix="staging-"), "c1").name == "staging-qw-scorer"
    assert state_dir(settings(tmp_path, app_id="other"), "c1").name == "other"
    assert state_dir(here, "c1") != state_dir(here, "c2")


def test_without_a_safe_cluster_id_the_folder_is_named_by_a_hash(tmp_path: Path) -> None:
    here = settings(tmp_path)
    by_bootstrap = state_dir(here, None)
    assert by_bootstrap.parent.name.startswith("bootstrap-")
    assert by_bootstrap.parent.parent == tmp_path / "s"
    for unsafe in ("../../etc", "a/b", "", ".", "x" * 65):
        made = state_dir(here, unsafe)
        assert made.parent.parent == tmp_path / "s", unsafe
        assert made.parent.name.startswith("bootstrap-"), unsafe
    assert state_dir(here, "a/b") != state_dir(here, "a/c") != by_bootstrap


@pytest.mark.parametrize("app_id", ["", ".", "..", "-x", "a/b", "a b", "é", "x" * 101])
def test_an_app_id_that_cannot_name_a_group_and_a_folder_is_refused(
    tmp_path: Path, app_id: str
) -> None:
    with pytest.raises(ValidationError, match="QW_SCORER_APP_ID="):
        settings(tmp_path, app_id=app_id)


@pytest.mark.parametrize("app_id", ["qw-scorer", "a", "Scorer.v2_x", "9" * 100])
def test_app_ids_of_the_grammar_are_taken(tmp_path: Path, app_id: str) -> None:
    assert settings(tmp_path, app_id=app_id).app_id == app_id


def test_state_of_the_old_layout_is_named_once_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    here = settings(tmp_path)
    caplog.set_level(logging.WARNING, logger="services.scorer.app")
    scorer_app._note_old_layout(here)
    assert not caplog.records
    (tmp_path / "s" / "v1" / "tables").mkdir(parents=True)
    scorer_app._note_old_layout(here)
    (record,) = caplog.records
    assert str(tmp_path / "s" / "v1") in record.getMessage()
    assert "recovers its tables from the changelog" in record.getMessage()
