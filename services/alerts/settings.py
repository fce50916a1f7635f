from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import DatabaseSettings, KafkaSettings, QualitySettings


class AlertsSettings(BaseSettings):
    """Alert delivery and the health API. See docs/configuration.md."""

    model_config = SettingsConfigDict(
        env_prefix="QW_ALERTS_", frozen=True, extra="ignore", populate_by_name=True
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    host: str = Field(default="127.0.0.1", description="HTTP bind address")
    port: int = Field(default=8002, description="HTTP port (health API and /metrics)")
    consumer_group: str = Field(
        default="qw-alerts", description="consumer group of the alerts consumer"
    )
    environment: str = Field(
        description="development, staging or production; outside development a real webhook secret is required",
        default="development",
        validation_alias="QW_ENV",
    )

    webhook_urls: list[str] = Field(
        default_factory=list,
        description="generic JSON webhook receivers, a JSON list in the environment",
    )
    webhook_secret: SecretStr = Field(
        default=SecretStr("change-me"), description="HMAC-SHA256 key of the webhook signature"
    )
    webhook_timeout_s: float = Field(
        default=5.0, gt=0, description="the longest one delivery attempt may take, all included"
    )
    webhook_concurrency: int = Field(
        default=8,
        ge=1,
        description="delivery attempts one replica has in flight; it claims only as many due "
        "deliveries as it has free slots",
    )
    webhook_lease_s: float = Field(
        default=30.0,
        gt=0,
        description="how long a claimed delivery is reserved for the replica that claimed it "
        "(a replica that dies holds its deliveries this long); more than "
        "QW_ALERTS_WEBHOOK_TIMEOUT_S: the rest is the time to claim and to record the result",
    )
    webhook_give_up_after_s: float = Field(
        default=86400.0,
        gt=0,
        description="a delivery still failing this long after the alert is marked failed",
    )
    webhook_backoff_base_s: float = Field(
        description="first retry delay (doubles each attempt, jittered)", default=1.0, gt=0
    )
    webhook_backoff_max_s: float = Field(description="longest retry delay", default=300.0, gt=0)

    resolve_after_subgroups: int = Field(
        default=3, ge=1, description="SPC alerts resolve after this many in-control subgroups"
    )
    min_sample: int = Field(default=30, ge=1, description="below this 24h n: insufficient data")
    stale_after_s: float = Field(default=300.0, gt=0, description="wall seconds without snapshot")
    lag_groups: list[str] = Field(
        default_factory=lambda: ["qw-scorer", "qw-ingest", "qw-alerts"],
        description="consumer groups whose lag is exported",
    )

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> AlertsSettings:
        if self.webhook_lease_s < self.webhook_timeout_s + 1:
            raise ValueError(
                "QW_ALERTS_WEBHOOK_LEASE_S must exceed QW_ALERTS_WEBHOOK_TIMEOUT_S by at least "
                "1 s (the time to claim a delivery and record its result)"
            )
        return self

    @model_validator(mode="after")
    def _no_placeholder_secret_in_production(self) -> AlertsSettings:
        if self.environment != "development" and self.webhook_secret.get_secret_value() in {
            "",
            "change-me",
        }:
            raise ValueError("QW_ALERTS_WEBHOOK_SECRET must be set outside development")
        return self
