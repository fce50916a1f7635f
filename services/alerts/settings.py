from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from services.alerts.webhook_policy import (
    DEFAULT_SCHEDULE,
    DEVELOPMENT_SECRET,
    check_url,
    parse_schedule,
    parse_secrets,
    quote_url,
)
from shared.settings import (
    DatabaseSettings,
    EmptyIsAValue,
    Environment,
    KafkaSettings,
    QualitySettings,
    Settings,
)


class AlertsSettings(Settings):
    """Alert delivery and the health API. See docs/configuration.md."""

    model_config = SettingsConfigDict(env_prefix="QW_ALERTS_", populate_by_name=True)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    host: str = Field(default="127.0.0.1", description="HTTP bind address")
    port: int = Field(default=8002, description="HTTP port (health API and /metrics)")
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="largest accepted request body (413 above, refused from its "
        "Content-Length before reading, or once that many bytes were read); the largest "
        "legitimate one, a health batch of 500 ids, is about 70 KB",
    )
    consumer_group: str = Field(
        default="qw-alerts", description="consumer group of the alerts consumer"
    )
    environment: Environment = Field(
        description="development, staging or production; outside development a real webhook "
        "secret (32+ random bytes) is required (set but empty is not development)",
        default="development",
        validation_alias="QW_ENV",
    )

    # -- direct webhooks (Standard Webhooks): docs/operations.md, "Webhook contract" --------
    webhook_urls: Annotated[list[str], EmptyIsAValue()] = Field(
        default_factory=list,
        description="generic JSON webhook receivers, a JSON list in the environment; http(s) "
        "only, and no loopback, link-local, private or unspecified address unless "
        "QW_ALERTS_WEBHOOK_ALLOW_PRIVATE_NETWORKS. Set but empty is refused (a Secret that "
        "did not arrive), not read as none: `[]` is none",
    )
    webhook_secret: Annotated[SecretStr, EmptyIsAValue()] = Field(
        default=SecretStr(DEVELOPMENT_SECRET),
        description="Standard Webhooks signing secrets, whsec_<base64>, space separated: each "
        "one signs every delivery (rotation: add the new one first, remove the old one once "
        "receivers have switched); outside development at least 32 random bytes. Set but "
        "empty is refused, never the development placeholder",
    )
    webhook_allow_private_networks: bool = Field(
        default=False,
        description="allow webhook URLs on loopback, link-local, private and unspecified "
        "addresses (a receiver on this host, tests, the demo); checked at startup and at "
        "every connection",
    )
    webhook_retry_schedule: str = Field(
        default=DEFAULT_SCHEDULE,
        description="delays before each retry after the first attempt, e.g. `5s 5m 30m 2h` "
        "(units ms, s, m, h; at most 20 delays, each at most 24h, 7 days in all); a delivery "
        "still failing after the last is marked failed",
    )
    webhook_retry_after_max_s: float = Field(
        default=3600.0,
        ge=0,
        le=86400,
        description="the longest Retry-After of a 429 or 503 answer that is honoured (a "
        "longer one waits this long)",
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
    webhook_idle_claim_s: float = Field(
        default=5.0,
        ge=0.5,
        le=60,
        description="with nothing known to be due, the outbox is claimed this often (0.5-60 s): "
        "rows another replica wrote, leases that ran out. Rows this process writes and retries "
        "that come due are claimed at once (a claim is a write transaction on the loop the "
        "health API answers from)",
    )

    @model_validator(mode="after")
    def _webhooks_are_safe(self) -> AlertsSettings:
        # mode="after" and messages that never quote a secret, nor the parts of a URL that
        # may hold a token (quote_url): the URL is named by its position and as given
        parse_secrets(
            self.webhook_secret.get_secret_value(), production=self.environment != "development"
        )
        parse_schedule(self.webhook_retry_schedule)
        for i, url in enumerate(self.webhook_urls):
            why = check_url(url, allow_private=self.webhook_allow_private_networks)
            if why is not None:
                raise ValueError(f"QW_ALERTS_WEBHOOK_URLS[{i}] {quote_url(url)} {why}")
        return self

    def webhook_keys(self) -> list[bytes]:
        return parse_secrets(
            self.webhook_secret.get_secret_value(), production=self.environment != "development"
        )

    # -- end of direct webhooks ----------------------------------------------------------------

    # -- Alertmanager (services/alerts/alertmanager.py) -------------------------------------
    alertmanager_urls: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="Alertmanager base URLs (at most 10; http or https, no credentials, a path "
        "prefix allowed), a JSON list in the environment; each gets every firing and resolved alert "
        'on /api/v2/alerts. Empty (the default): nothing is pushed. E.g. ["http://am1:9093"]',
    )
    alertmanager_resend_s: float = Field(
        default=60.0,
        ge=5,
        le=3600,
        description="firing alerts are re-sent this often (5-3600 s); each push says they end 4 times "
        "this later (endsAt), so Alertmanager keeps them while pushes keep coming and resolves "
        "them on its own if no replica pushes for that long",
    )
    alertmanager_resolve_hold_s: float = Field(
        default=60.0,
        ge=0,
        le=900,
        description="a resolved incident's alert stays active in Alertmanager this long (0-900 s; "
        "endsAt = resolution + this), so that it still inhibits Prometheus' QueueSPCBreachFiring "
        "on the same signals until Prometheus has scraped qw_alerts_firing dropping and "
        "evaluated its rule (scrape + evaluation interval, 15 s each in the shipped "
        "prometheus.yml); without it the inhibition lifts first and the rule pages again",
    )
    alertmanager_poll_s: float = Field(
        default=2.0,
        ge=0.2,
        le=60,
        description="how often the alert table is read for new or resolved alerts (0.2-60 s; "
        "a change is pushed at once, not at the next resend)",
    )
    alertmanager_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="the longest one push to one Alertmanager may take (at most 60 s)",
    )
    alertmanager_teams: str = Field(
        default="",
        max_length=8000,
        description="the `team` label by queue: comma-separated `glob=team` pairs, first match "
        "wins, e.g. `spam-*=trust-spam,cse-*=child-safety`. A glob is 1-128 of the queue id "
        "characters plus `*` and `?`; a team is 1-63 of `a-z 0-9 _ -`, starting with a letter "
        "or digit; at most 200 pairs",
    )
    alertmanager_default_team: str = Field(
        default="quality",
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="the `team` label of a queue that no QW_ALERTS_ALERTMANAGER_TEAMS glob matches",
    )
    alertmanager_public_url: str = Field(
        default="",
        max_length=500,
        description="this service's URL as people reach it, for each alert's health page link "
        "and generatorURL (default: http://QW_ALERTS_HOST:QW_ALERTS_PORT)",
    )
    alertmanager_runbook_url: str = Field(
        default="docs/operations.md",
        max_length=500,
        description="the runbook page; each alert links to its section (`#<alertname>`)",
    )

    @field_validator("alertmanager_urls")
    @classmethod
    def _alertmanager_urls_are_http(cls, urls: list[str]) -> list[str]:
        for url in urls:
            cls._check_http_url("QW_ALERTS_ALERTMANAGER_URLS", url)
        if len(set(urls)) != len(urls):
            raise ValueError("QW_ALERTS_ALERTMANAGER_URLS lists a URL twice")
        return [u.rstrip("/") for u in urls]

    @field_validator("alertmanager_public_url")
    @classmethod
    def _public_url_is_http(cls, url: str) -> str:
        if url:
            cls._check_http_url("QW_ALERTS_ALERTMANAGER_PUBLIC_URL", url)
        return url.rstrip("/")

    @field_validator("alertmanager_teams")
    @classmethod
    def _teams_parse(cls, value: str) -> str:
        cls.parse_team_map(value)
        return value

    @property
    def team_map(self) -> tuple[tuple[str, str], ...]:
        """QW_ALERTS_ALERTMANAGER_TEAMS parsed: (glob, team) pairs in order."""
        return self.parse_team_map(self.alertmanager_teams)

    @property
    def public_url(self) -> str:
        return self.alertmanager_public_url or f"http://{self.host}:{self.port}"

    @staticmethod
    def parse_team_map(value: str) -> tuple[tuple[str, str], ...]:
        """``glob=team,glob=team`` -> pairs; ValueError saying which pair is wrong and why."""
        import re

        name, most = "QW_ALERTS_ALERTMANAGER_TEAMS", 200
        if not value.strip():
            return ()
        items = value.split(",")
        if len(items) > most:
            raise ValueError(f"{name}: {len(items)} pairs, at most {most}")
        pairs: list[tuple[str, str]] = []
        for i, item in enumerate(items, 1):
            glob, eq, team = (part.strip() for part in item.partition("="))
            if not eq:
                raise ValueError(f"{name} pair {i} {item.strip()!r}: expected glob=team")
            if not re.fullmatch(r"[A-Za-z0-9._:*?-]{1,128}", glob):
                raise ValueError(
                    f"{name} pair {i}: glob {glob!r} must be 1-128 of A-Z a-z 0-9 . _ : - * ?"
                )
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", team):
                raise ValueError(
                    f"{name} pair {i}: team {team!r} must be 1-63 of a-z 0-9 _ -, starting "
                    "with a letter or digit"
                )
            pairs.append((glob, team))
        return tuple(pairs)

    @staticmethod
    def _check_http_url(name: str, url: str) -> None:
        from urllib.parse import urlsplit

        if len(url) > 500:
            raise ValueError(f"{name}: a URL longer than 500 characters")
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"{name}: {quote_url(url)} is not an http(s) URL with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError(f"{name}: {quote_url(url)}: credentials in the URL are not supported")
        if parts.query or parts.fragment:
            raise ValueError(f"{name}: {quote_url(url)} must have no query or fragment")
        try:
            parts.port  # noqa: B018 - raises on a port out of range
        except ValueError as exc:
            raise ValueError(f"{name}: {quote_url(url)}: {exc}") from None

    resolve_after_subgroups: int = Field(
        default=3, ge=1, description="SPC alerts resolve after this many in-control subgroups"
    )
    retired_min_sample: str | None = Field(
        default=None,
        alias="QW_ALERTS_MIN_SAMPLE",
        exclude=True,
        description="retired: QW_MIN_SAMPLE, which the scorer's below-target rule shares",
    )
    stale_after_s: float = Field(default=300.0, gt=0, description="wall seconds without snapshot")
    lag_groups: list[str] = Field(
        default_factory=lambda: ["qw-scorer", "qw-ingest", "qw-alerts"],
        description="consumer groups whose lag is exported",
    )
    wall_max_streams: int = Field(
        default=32, ge=1, le=10_000,
        description="live wall pages (server-sent event streams) served at once; one more "
        "gets 503",
    )  # fmt: skip
    wall_refresh_s: float = Field(
        default=2.0, ge=0.2, le=300,
        description="how often the wall recomputes its tiles (once for every open page) and "
        "pushes what changed",
    )  # fmt: skip

    @property
    def min_sample(self) -> int:
        """Below this 24h n, insufficient data (QW_MIN_SAMPLE, shared with the scorer)."""
        return self.quality.min_sample

    @model_validator(mode="after")
    def _min_sample_is_shared_now(self) -> AlertsSettings:
        if self.retired_min_sample is not None:
            raise ValueError(
                "QW_ALERTS_MIN_SAMPLE is retired: set QW_MIN_SAMPLE, which the scorer's "
                "below-target breach uses too (they disagreed: a breach on 20 verdicts beside "
                "a health of 'too few to say')"
            )
        return self

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> AlertsSettings:
        if self.webhook_lease_s < self.webhook_timeout_s + 1:
            raise ValueError(
                "QW_ALERTS_WEBHOOK_LEASE_S must exceed QW_ALERTS_WEBHOOK_TIMEOUT_S by at least "
                "1 s (the time to claim a delivery and record its result)"
            )
        return self
