"""Offline analysis of QA verdict files: the engine behind ``qwatch analyze``.

A QA manager's deep dive: read a file of verdicts, chart each queue (or site, or policy)
with the charts of :mod:`shared.stats`, and show the result as tables, JSON or a plot.

* :mod:`~shared.analysis.load` — read CSV / NDJSON / Parquet into validated rows.
* :mod:`~shared.analysis.charts` — grouping, subgroups, baselines and charts (pure).
* :mod:`~shared.analysis.render` — terminal tables, the JSON document, the plot.
* :mod:`~shared.analysis.cli` — the command-line entry point used by ``services/cli.py``.
* :mod:`~shared.analysis.errors` — the errors, all subclasses of ``AnalysisError``.

See the "Deep dive" section of ``docs/statistics.md``.
"""
