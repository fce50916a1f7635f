from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import KafkaSettings


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QW_INGEST_", frozen=True, extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    host: str = Field(default="127.0.0.1", description="HTTP bind address")
    port: int = Field(default=8001, description="HTTP port")
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, description="largest accepted request body (413 above)"
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
