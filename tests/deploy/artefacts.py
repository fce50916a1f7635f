"""Loading the deploy artefacts, and the metric names they may use.

Shared by the tests in this folder: no services, no network, only files and the metric
declarations in ``services/alerts/metrics.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from services.alerts.metrics import Metrics
from services.ingest.metrics import IngestMetrics

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_FILE = REPO / "docker-compose.yml"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
RULE_FILES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
RULE_TEST_FILES = sorted((DEPLOY / "prometheus" / "tests").glob("*.yml"))
OPERATIONS_DOC = REPO / "docs" / "operations.md"

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# Series Prometheus itself writes for every scrape target; rules may use them.
PROMETHEUS_SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

# Sample names each metric type exposes (prometheus-client appends these to the family name).
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}


def unavailable(what: str) -> None:
    """A tool the test needs is missing: fail under CI=true, skip elsewhere."""
    if IN_CI:
        pytest.fail(f"{what} (CI=true: a missing tool fails the test, never skips it)")
    pytest.skip(what)


def require_tool(binary: str, package: str) -> str:
    """The path of ``binary``; when missing, fail under CI=true and skip elsewhere."""
    path = shutil.which(binary)
    if path is None:
        unavailable(f"{binary} not found: apt-get install -y --no-install-recommends {package}")
    assert path is not None
    return path


def exported_families() -> dict[str, str]:
    """Every metric family the alerts service and ingest can expose (Prometheus scrapes
    both, deploy/prometheus/prometheus.yml), name to type, from fresh registries."""
    out: dict[str, str] = {}
    for create in (Metrics.create, IngestMetrics.create):
        registry = CollectorRegistry()
        create(registry)
        out.update({family.name: family.type for family in registry.collect()})
    return out


def exported_series_names() -> frozenset[str]:
    """Every series name the alerts service and ingest can expose."""
    return frozenset(
        name + suffix for name, kind in exported_families().items() for suffix in _SUFFIXES[kind]
    )


# ---------------------------------------------------------------- PromQL identifiers

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$\w+")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
# An identifier not preceded by a word/number character and not called as a function.
_IDENT = re.compile(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = frozenset(
    {
        "and", "or", "unless", "atan2", "by", "without", "on", "ignoring", "group_left",
        "group_right", "offset", "bool", "inf", "nan",
    }
)  # fmt: skip
_LABEL_VALUES = re.compile(r"\s*label_values\(\s*(?P<expr>.+?)\s*,\s*[A-Za-z_]\w*\s*\)\s*", re.S)
_QUERY_RESULT = re.compile(r"\s*query_result\(\s*(?P<expr>.+)\s*\)\s*", re.S)


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: its identifiers that are not functions,
    keywords, label names, strings, durations or Grafana variables."""
    text = _STRING.sub(" ", expr)
    text = _GRAFANA_VAR.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    return {m for m in _IDENT.findall(text) if m.lower() not in _KEYWORDS}


def variable_query_expr(query: str) -> str | None:
    """The PromQL inside a Grafana Prometheus variable query, if it has one."""
    for pattern in (_LABEL_VALUES, _QUERY_RESULT):
        m = pattern.fullmatch(query)
        if m:
            return m.group("expr")
    if query.strip().startswith(("label_values(", "label_names(", "metrics(")):
        return None  # label_values(label), label_names(), metrics(regex): no selector
    return query


# ---------------------------------------------------------------- files


def dashboard_exprs(path: Path) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and variable query of a dashboard."""
    dash = load_json(path)
    out: list[tuple[str, str]] = []
    for panel in iter_panels(dash["panels"]):
        for target in panel.get("targets", []):
            if "expr" in target:
                out.append(
                    (
                        f"panel {panel['id']} {panel.get('title')!r} {target['refId']}",
                        target["expr"],
                    )
                )
    for var in dash.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        expr = variable_query_expr(query)
        if expr is not None:
            out.append((f"variable ${var['name']}", expr))
    return out


def load_yaml(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict), f"{path}: expected a YAML mapping"
    return doc


def load_json(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict), f"{path}: expected a JSON object"
    return doc


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def rules(path: Path) -> Iterator[dict[str, Any]]:
    for group in load_yaml(path)["groups"]:
        yield from group["rules"]
