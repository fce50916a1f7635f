from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import KafkaSettings, QualitySettings, Settings, default_state_dir, name_in

APP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class ScorerSettings(Settings):
    """How the scorer builds subgroups, baselines and signals. See docs/configuration.md."""

    model_config = SettingsConfigDict(env_prefix="QW_SCORER_")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    app_id: str = Field(
        default="qw-scorer",
        description="Faust app id: after QW_TOPIC_PREFIX, the consumer group and the start of "
        "the changelog topic's name; 1-100 of the letters, digits, '.', '_' and '-', the first "
        "a letter or digit",
    )
    data_dir: str = Field(
        description="where the worker keeps its tables, in a folder per Kafka cluster and "
        "consumer group (cluster-<id>/<group>)",
        default_factory=lambda: str(default_state_dir() / "scorer"),
    )

    subgroup_seconds: int = Field(default=3600, ge=60, description="p-chart subgroup period")
    grace_seconds: int = Field(
        default=6 * 3600,
        ge=0,
        description="how long after a subgroup ends (event time) verdicts may still arrive "
        "before the subgroup is closed and charted",
    )
    phase1_subgroups: int = Field(default=24, ge=2, description="Phase I length, in subgroups")
    baseline_p: dict[str, Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=dict,
        description="configured baseline error rate per queue; queues not named use Phase I",
    )
    min_subgroup_n: int = Field(default=20, ge=1, description="smaller subgroups are not charted")
    sigma_limits: float | None = Field(
        default=None,
        gt=0,
        description="p-chart alarm level as a one-sided normal tail (3.5 -> alpha 0.00023); "
        "unset: the tail that spends the p-chart's share of the false-alarm budget (10% of a "
        "queue's share, over its subgroups a day: 4.31 sigma at the defaults)",
    )
    ewma_lambda: float = Field(description="EWMA smoothing constant", default=0.2, gt=0, le=1)
    ewma_l: float = Field(
        description="EWMA limit width in standard deviations of the statistic", default=3.2, gt=0
    )
    ewma_alerts: bool = Field(
        default=False,
        description="raise a breach when the hourly EWMA crosses its limit (it is charted "
        "either way); outside the false-alarm budget: on small binomial subgroups its "
        "normal-theory limit alarms far more often than designed (about 12 false alarms a day "
        "over 500 queues at L = 3.2, measured by bench/fleet.py)",
    )
    cusum_shift_up: float = Field(
        default=2.0,
        gt=1.0,
        le=10.0,
        description="the live upper Bernoulli CUSUM is tuned to detect the baseline error rate "
        "times this (2.0: a doubling); 1 < x <= 10",
    )
    cusum_shift_down: float = Field(
        default=0.25,
        ge=0.01,
        le=0.9,
        description="the live lower Bernoulli CUSUM is tuned to detect the baseline error "
        "rate times this (0.25: errors down to a quarter, often a broken QA feed); 0.01-0.9",
    )
    false_alarms_per_day: float = Field(
        default=1.0,
        gt=0.0,
        le=1000.0,
        description="the false-alarm budget: expected false alarms a day across all queues, "
        "shared equally by the expected queues and, within a queue, 60% to the upper CUSUM, "
        "20% to the lower, 10% to the p-chart and 10% to the below-target rule; each queue's "
        "CUSUM design follows from its share and the queue's measured verdict rate",
    )
    expected_queues: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description="how many queues the whole wall charts (all scorer workers together): "
        "the budget is split by this; too low spends more than the budget, too high makes "
        "the CUSUMs slower than they could be",
    )
    sites_per_queue: int = Field(
        default=32,
        ge=1,
        le=1000,
        description="sites a queue counts by name in its subgroups and snapshots (per-site "
        "accuracy); the counts of any further site are summed as `(other)` until a named site "
        "has had no decision or verdict in the retained week",
    )
    decision_ttl_seconds: int = Field(
        description="how long decisions (for the join) and counted verdict ids are kept",
        default=7 * 86400,
        ge=3600,
    )
    pending_ttl_seconds: int = Field(
        description="how long a verdict waits for its decision", default=7 * 86400, ge=3600
    )
    pending_max: int = Field(
        default=10_000,
        ge=0,
        description="verdicts a queue holds while waiting for their decisions; beyond, "
        "they are dropped and counted (the queue's decisions are not arriving)",
    )
    rocksdb_block_cache_mb: int = Field(
        default=8,
        ge=1,
        le=65536,
        description="RocksDB block cache per owned partition, in MiB; with the write "
        "buffers, what bounds the scorer's memory (the operating system's page cache keeps "
        "hot state files too, outside the process). Taken at every start (before 2026-12-05 a "
        "restarted worker used 8 MiB); each database's RocksDB LOG file says it ('capacity :')",
    )
    rocksdb_write_buffer_mb: int = Field(
        default=4,
        ge=1,
        le=4096,
        description="RocksDB write buffer (memtable) per owned partition, in MiB; up to 3 are held",
    )
    snapshot_interval_s: float = Field(
        description="least wall time between two snapshots of a queue", default=1.0, ge=0
    )
    commit_interval_s: float = Field(
        default=2.8,
        ge=0.1,
        le=60,
        description="how often the worker commits its input offsets while messages flow "
        "(Faust's commit interval; a worker with no message for 0.5 s commits at once): what "
        "a restarted worker resumes from; shorter means less to read again after a crash, at "
        "more CPU an event (a commit flushes the producer and checkpoints the tables: 1 s cost "
        "~15% more CPU in bench/pipeline.py)",
    )

    @field_validator("app_id")
    @classmethod
    def _app_id_is_a_name(cls, app_id: str) -> str:
        # it names a consumer group, a topic and a folder (app.state_dir): the topic-name
        # characters, and never "." or ".." as a path step
        return name_in(
            APP_ID, app_id, "QW_SCORER_APP_ID", "cannot name the scorer's group and changelog: "
            "use 1-100 of the letters A-Z and a-z, the digits, '.', '_' and '-', the first a "
            "letter or digit",
        )  # fmt: skip

    @model_validator(mode="after")
    def _pending_within_decision_ttl(self) -> ScorerSettings:
        # a released verdict is known as counted for decision_ttl; were it to wait longer
        # than that, it could wait again after a restart
        if self.pending_ttl_seconds > self.decision_ttl_seconds:
            raise ValueError(
                "QW_SCORER_PENDING_TTL_SECONDS must not exceed QW_SCORER_DECISION_TTL_SECONDS "
                f"({self.pending_ttl_seconds} > {self.decision_ttl_seconds})"
            )
        return self
