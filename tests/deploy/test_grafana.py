"""The Grafana dashboards and provisioning are well formed and fit together.

No Grafana server runs here; these are the structural checks a reviewer would otherwise do
by eye: unique ids, a layout inside 24 columns, every query on the provisioned Prometheus,
health colours matching the bands of ``services.alerts.health``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.alerts.health import band_for
from tests.deploy.artefacts import (
    COMPOSE_FILE,
    DASHBOARDS,
    DEPLOY,
    iter_panels,
    load_json,
    load_yaml,
)

PROVISIONING = DEPLOY / "grafana" / "provisioning"
# Grafana colour names used for the health bands, and the band each means.
BAND_COLOURS = {"green": "green", "orange": "amber", "red": "red"}


def _datasource() -> dict[str, Any]:
    (ds,) = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert isinstance(ds, dict)
    return ds


def _panels(path: Path) -> list[dict[str, Any]]:
    return list(iter_panels(load_json(path)["panels"]))


def test_there_is_a_dashboard() -> None:
    assert [p.name for p in DASHBOARDS] == ["qualitywatch.json"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_identity_and_variables(path: Path) -> None:
    dash = load_json(path)
    assert dash["uid"]
    assert len(dash["uid"]) <= 40
    assert dash["title"]
    assert dash.get("id") is None, "provisioned dashboards must not carry a database id"
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["datasource"]["current"]["value"] == _datasource()["uid"]
    assert variables["queue"]["type"] == "query"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_panels_are_well_formed(path: Path) -> None:
    panels = _panels(path)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in panels:
        gp = p["gridPos"]
        assert gp["x"] >= 0, f"panel {p['id']} is left of the grid"
        assert gp["x"] + gp["w"] <= 24, f"panel {p['id']} is wider than the grid's 24 columns"
        assert gp["w"] > 0
        assert gp["h"] > 0
        if p["type"] == "row":
            continue
        assert p.get("title"), f"panel {p['id']} has no title"
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        targets = p.get("targets", [])
        assert targets, f"panel {p['title']!r} has no query"
        ref_ids = [t["refId"] for t in targets]
        assert len(ref_ids) == len(set(ref_ids)), f"panel {p['title']!r}: duplicate refIds"
        for t in targets:
            assert t.get("expr", "").strip(), f"panel {p['title']!r} {t['refId']}: empty expr"
            assert t.get("datasource", p["datasource"]) == p["datasource"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_brief_panels_are_present(path: Path) -> None:
    panels = _panels(path)
    exprs = " ".join(t["expr"] for p in panels for t in p.get("targets", []))
    titles = " ".join(p.get("title", "") for p in panels).lower()
    for needle in (
        "health",
        "accuracy 24h",
        "p-chart",
        "ewma",
        "breaches",
        "firing",
        "lag",
        "webhook",
    ):
        assert needle in titles, f"no panel about {needle!r}"
    for series in ('qw_queue_pchart_ucl{queue="$queue"}', 'qw_queue_ewma_ucl{queue="$queue"}'):
        assert series in exprs, f"{series} is not charted for the $queue variable"


def _health_thresholds(path: Path) -> list[list[dict[str, Any]]]:
    """Threshold steps of every panel or field override that colours the health score."""
    out = []
    for p in _panels(path):
        exprs = [t["expr"] for t in p.get("targets", [])]
        if exprs == ["sort(qw_queue_health_score)"] or exprs == ["qw_queue_health_score"]:
            out.append(p["fieldConfig"]["defaults"]["thresholds"]["steps"])
        for o in p.get("fieldConfig", {}).get("overrides", []):
            if o["matcher"]["options"] == "Health":
                out.extend(
                    pr["value"]["steps"] for pr in o["properties"] if pr["id"] == "thresholds"
                )
    return out


def _colour_at(steps: list[dict[str, Any]], score: float) -> str:
    colour = steps[0]["color"]
    for step in steps[1:]:
        if score >= step["value"]:
            colour = step["color"]
    return str(colour)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_health_colours_follow_the_health_bands(path: Path) -> None:
    all_steps = _health_thresholds(path)
    assert len(all_steps) >= 2, "expected the health stat grid and the table's Health column"
    for steps in all_steps:
        for score in (0.0, 30.0, 59.9, 60.0, 70.0, 79.9, 80.0, 95.0, 100.0):
            assert BAND_COLOURS[_colour_at(steps, score)] == band_for(score), score


def test_datasource_provisioning_points_at_compose_prometheus() -> None:
    ds = _datasource()
    assert ds["type"] == "prometheus"
    assert ds["url"] == "http://prometheus:9090"
    assert ds["access"] == "proxy"


def test_dashboard_provider_path_is_mounted_by_compose() -> None:
    (provider,) = load_yaml(PROVISIONING / "dashboards" / "qualitywatch.yml")["providers"]
    assert provider["type"] == "file"
    grafana = load_yaml(COMPOSE_FILE)["services"]["grafana"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"]}
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
