"""Settings shared by every service: Kafka and the database.

Read from the environment (prefix ``QW_``) when a settings object is built, never at import
time. Each service has its own settings class that nests these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.topics import Topics

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_state_dir() -> Path:
    return REPO_ROOT / "var"


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="QW_KAFKA_", frozen=True, extra="ignore", populate_by_name=True
    )

    bootstrap: str = Field(default="127.0.0.1:9092", description="host:port[,host:port]")
    topic_prefix: str = Field(
        description="prefix of every topic and consumer group (environments or test runs sharing a cluster)",
        default="",
        validation_alias="QW_TOPIC_PREFIX",
    )
    partitions: int = Field(
        description="partitions of the topics QualityWatch creates (a queue's data stays on one)",
        default=4,
        ge=1,
        le=1024,
    )
    client_id: str = Field(default="qualitywatch", description="Kafka client id prefix")
    replication_factor: int = Field(
        default=3,
        ge=1,
        description="replicas of each partition of the topics QualityWatch creates (topics "
        "that exist are left as they are); needs that many brokers: 1 on the local single-node "
        "broker",
    )
    min_insync_replicas: int = Field(
        default=2,
        ge=1,
        description="min.insync.replicas of the topics QualityWatch creates: an acks=all write "
        "succeeds only once this many replicas hold it; at most QW_KAFKA_REPLICATION_FACTOR, "
        "1 on the local single-node broker",
    )
    connect_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="how long a service waits at start for the broker to answer; then it ends "
        "with one line naming the address it tried (exit 2)",
    )
    acks: Literal["all", "1", "0"] = Field(
        default="all",
        description="producer acknowledgements: all (every in-sync replica, idempotent "
        "producers), 1 (the leader only) or 0 (none); 1 and 0 turn idempotence off and can lose "
        "acknowledged events when a broker fails",
    )

    @model_validator(mode="after")
    def _min_insync_fits_replication(self) -> Self:
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"QW_KAFKA_MIN_INSYNC_REPLICAS={self.min_insync_replicas} exceeds "
                f"QW_KAFKA_REPLICATION_FACTOR={self.replication_factor}: no write with acks=all "
                "could ever succeed; set QW_KAFKA_MIN_INSYNC_REPLICAS to at most the "
                "replication factor (1 and 1 on a single broker)"
            )
        return self

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.topic_prefix, partitions=self.partitions)

    def as_env(self) -> dict[str, str]:
        """The environment that gives a child process (a ``qwatch`` service started by the
        demo, a benchmark or a test) these same settings."""
        prefix = str(self.model_config.get("env_prefix", ""))
        env = {}
        for name, field in type(self).model_fields.items():
            alias = field.validation_alias
            var = alias if isinstance(alias, str) else (prefix + name).upper()
            env[var] = str(getattr(self, name))
        return env


class QualitySettings(BaseSettings):
    """Quality targets the scorer raises breaches against and the alerts service resolves
    and scores against: one setting, so the two can never disagree."""

    model_config = SettingsConfigDict(env_prefix="QW_", frozen=True, extra="ignore")

    accuracy_target: float = Field(
        default=0.90,
        gt=0,
        lt=1,
        description="accuracy target (random-sample QA) of the below-target breach, its "
        "resolution and the health score",
    )
    target_confidence: float = Field(
        default=0.95,
        gt=0.5,
        lt=1,
        description="confidence of the Wilson bound compared with the target: a queue is "
        "below target when the upper bound of its 24h accuracy is",
    )


class AuthSettings(BaseSettings):
    """API keys (``shared/apikeys.py``), read by both HTTP services and ``qwatch keys``."""

    model_config = SettingsConfigDict(env_prefix="QW_API_", frozen=True, extra="ignore")

    keys_file: Path = Field(
        default_factory=lambda: default_state_dir() / "api-keys.json",
        description="the API key file (hashes only); `qwatch keys create` writes it; in "
        "Kubernetes mount it from a Secret",
    )
    protect_reads: bool = Field(
        default=False, description="require a key with scope 'read' on the health API too"
    )
    environment: str = Field(
        default="development",
        validation_alias="QW_ENV",
        description="outside development, keys are required on every mutating endpoint",
    )


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QW_DB_", frozen=True, extra="ignore")

    url: str = Field(
        default_factory=lambda: f"sqlite+aiosqlite:///{default_state_dir() / 'qualitywatch.db'}",
        description="SQLAlchemy async URL; postgresql+psycopg://... in production",
    )
