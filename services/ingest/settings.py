from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import KafkaSettings


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QW_INGEST_", frozen=True, extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    host: str = "127.0.0.1"
    port: int = 8001
    max_body_bytes: int = 16 * 1024 * 1024
    consumer_group: str = "qw-ingest"
    poll_max_records: int = 20000
    poll_timeout_ms: int = 200
    linger_ms: int = Field(
        default=500,
        ge=0,
        description="after the first message of a batch, wait up to this long for more: "
        "larger per-queue batches make the scorer's per-message cost negligible",
    )
