from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from services.ingest.admission import read_queue_file
from shared.settings import KafkaSettings, Settings


class IngestSettings(Settings):
    model_config = SettingsConfigDict(env_prefix="QW_INGEST_")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    host: str = Field(default="127.0.0.1", description="HTTP bind address")
    port: int = Field(default=8001, description="HTTP port")
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1, description="largest accepted request body (413 above)"
    )
    max_inflight_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1,
        description="most bytes of request bodies one process holds at once, across requests "
        "(read, being validated or waiting for the broker); a request that would pass it is "
        "refused with 503 and Retry-After, so a flood of large bodies, or a broker that is "
        "slow to take them, costs a bounded amount of memory. At least "
        "QW_INGEST_MAX_BODY_BYTES",
    )
    max_items: int = Field(
        default=10_000,
        ge=1,
        description="most items (events) in one request body: more is refused with 413 before "
        "any item is validated (a body of tiny items under the byte limit held millions)",
    )
    consumer_group: str = Field(
        default="qw-ingest", description="consumer group of the raw-topic validator"
    )
    poll_max_records: int = Field(default=20000, description="largest micro-batch of raw messages")
    poll_timeout_ms: int = Field(
        default=200, description="wait for the first message of a micro-batch"
    )
    linger_ms: int = Field(
        default=500,
        ge=0,
        description="after the first message of a batch, wait up to this long for more: "
        "larger per-queue batches make the scorer's per-message cost negligible",
    )
    verdict_lead_s: float = Field(
        default=60.0,
        ge=0.0,
        le=86400.0,
        description="while this process's decision partitions have a backlog, verdicts "
        "(reviewed_at) more than this many seconds of event time ahead of the decisions "
        "read (decided_at) wait in hand, their partition paused, until the decisions catch "
        "up: in a catch-up or a backfill the verdicts topic, with fewer messages, would run "
        "hours ahead of its decisions, overflow the scorer's bound on verdicts waiting "
        "(QW_SCORER_PENDING_MAX), which drops them, and move the scorer's clock past "
        "decisions to come. 0 turns it off",
    )
    decision_lead_s: float = Field(
        default=60.0,
        ge=0.0,
        le=86400.0,
        description="while this process's verdict partitions have a backlog, decisions "
        "(decided_at) more than this many seconds of event time ahead of the verdicts read "
        "(reviewed_at) wait in hand, their partition paused, until the verdicts catch up: "
        "read from a backlog, one fetch can hold a day of a small operation's decisions and "
        "none of its verdicts, and the scorer's clock would pass their subgroups' grace "
        "before the verdicts arrive, counting them late instead of in the baselines. 0 "
        "turns it off",
    )
    max_age_days: int = Field(
        default=400,
        ge=1,
        le=36500,
        description="event times older than this many days are refused (past_timestamp), and "
        "any before 2000-01-01: a time from long ago would open a subgroup there. Raise it "
        "for a backfill of older history",
    )
    queues: Literal["admitted", "allowlist", "open"] = Field(
        default="admitted",
        description="which queues are taken: admitted (the static list plus queues admitted at "
        "run time with PUT /v1/queues/{id}, scope admin), allowlist (the static list only) or "
        "open (any, up to QW_INGEST_QUEUES_OPEN_MAX per process); an event of any other queue "
        "goes to the dead-letter topic. The default is admitted: nothing from outside creates "
        "a queue (its state, series and tile), and onboarding one is an operator's call, not "
        "a redeploy (docs/operations.md, 'Known queues')",
    )
    queues_allow: list[str] = Field(
        default_factory=list,
        description="the static list: queue ids or globs (`*`, `?`, `[...]`), a JSON list, e.g. "
        '["spam-*", "hate-en"]',
    )
    queues_file: Path | None = Field(
        default=None,
        description="more of the static list: a file of queue ids or globs, one a line (`#` "
        "comments), read at start",
    )
    queues_open_max: int = Field(
        default=1000,
        ge=1,
        description="open mode: the most distinct queues one ingest process takes",
    )

    @model_validator(mode="after")
    def _one_body_fits(self) -> IngestSettings:
        if self.max_inflight_bytes < self.max_body_bytes:
            raise ValueError(
                f"QW_INGEST_MAX_INFLIGHT_BYTES ({self.max_inflight_bytes}) is less than "
                f"QW_INGEST_MAX_BODY_BYTES ({self.max_body_bytes}): a body at the limit could "
                "never be taken"
            )
        return self

    @field_validator("queues_file")
    @classmethod
    def _queues_file_exists(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"{path}: no such file (the static list of queues)")
        return path

    def queue_patterns(self) -> list[str]:
        """The static list: ``queues_allow`` and the file's lines."""
        extra = read_queue_file(self.queues_file.read_text()) if self.queues_file else []
        return [*self.queues_allow, *extra]
