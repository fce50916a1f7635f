"""Settings shared by every service: Kafka and the database.

Read from the environment (prefix ``QW_``) when a settings object is built, never at import
time. Each service has its own settings class that nests these.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
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

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.topic_prefix, partitions=self.partitions)


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


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QW_DB_", frozen=True, extra="ignore")

    url: str = Field(
        default_factory=lambda: f"sqlite+aiosqlite:///{default_state_dir() / 'qualitywatch.db'}",
        description="SQLAlchemy async URL; postgresql+psycopg://... in production",
    )
