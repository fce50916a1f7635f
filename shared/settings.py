"""Settings shared by every service: Kafka and the database.

Read from the environment (prefix ``QW_``) when a settings object is built, never at import
time. Each service has its own settings class that nests these.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from shared.ids import is_key_id
from shared.topics import Topics

REPO_ROOT = Path(__file__).resolve().parent.parent
SITE_TARGETS_MAX = 10_000
# where a site's accuracy target comes from: QW_SITE_TARGETS by queue and site, by site, or
# the queue's own target
TargetSource = Literal["queue_site", "site", "queue"]


def default_state_dir() -> Path:
    return REPO_ROOT / "var"


def local_state_dir() -> Path:
    """The state root of what runs on this machine from the project's own tools (the
    deploy/local scripts, ``qwatch run``): QW_STATE_DIR as those scripts read it (relative
    to the working directory; unset or empty: <repo>/var). Read when called."""
    return Path(os.environ.get("QW_STATE_DIR") or default_state_dir()).resolve()


class EmptyIsAValue:
    """Marks a setting (``Annotated[..., EmptyIsAValue()]``) whose empty environment value
    is given to its validators as it is, not read as unset: where an empty value is what a
    secret that failed to arrive looks like (the database URL, the webhook secret and
    receivers) or means something else today (QW_ENV)."""


class _EmptyIsUnset(EnvSettingsSource):
    """The environment, an empty variable read as an unset one (its default), except for
    the settings marked ``EmptyIsAValue``."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        value, key, is_complex = super().get_field_value(field, field_name)
        if value == "" and not any(isinstance(m, EmptyIsAValue) for m in field.metadata):
            value = None
        return value, key, is_complex


class Settings(BaseSettings):
    """The base of every settings class: frozen, other variables ignored, and an empty
    environment variable the same as an unset one (``QW_TARGET_RULE_CONFIDENCE=`` is the
    default), but for the settings marked ``EmptyIsAValue`` (docs/configuration.md)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _EmptyIsUnset(settings_cls), dotenv_settings, file_secret_settings


# QW_ENV: an empty value stays a value, as it was before empty meant unset: an environment
# that is not development (keys required, a real webhook secret), never development's
# relaxations because a variable came out empty
Environment = Annotated[str, EmptyIsAValue()]


def refuse_empty(value: str, unset: str) -> str:
    """``value`` of an ``EmptyIsAValue`` setting, refused when it is empty (a field
    validator's error names the variable); ``unset`` says what leaving it out does."""
    if value == "":
        raise ValueError(f"set but empty, which this setting does not read as unset: {unset}")
    return value


TOPIC_PREFIX_MAX = 100


def name_in(grammar: re.Pattern[str], value: str, setting: str, refusal: str) -> str:
    """``value`` when ``grammar`` takes it whole; else ``ValueError`` in one line: the setting,
    the value (its first 120 characters) and ``refusal`` (what it cannot be and what to use).
    The one check of the settings that name topics, groups and folders."""
    if not grammar.fullmatch(value):
        raise ValueError(f"{setting}={value[:120]!r} {refusal}")
    return value


TOPIC_PREFIX = re.compile(rf"[A-Za-z0-9._-]{{0,{TOPIC_PREFIX_MAX}}}")


class KafkaSettings(Settings):
    model_config = SettingsConfigDict(env_prefix="QW_KAFKA_", populate_by_name=True)

    bootstrap: str = Field(default="127.0.0.1:9092", description="host:port[,host:port]")
    topic_prefix: str = Field(
        description="prefix of every topic and consumer group (environments or test runs "
        "sharing a cluster): at most 100 of the letters, digits, '.', '_' and '-'",
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

    @field_validator("topic_prefix")
    @classmethod
    def _topic_prefix_is_a_topic_name(cls, prefix: str) -> str:
        # every topic and consumer group name starts with it: Kafka allows only these
        # characters in a topic name, and at most 249 of them with the longest suffix
        return name_in(
            TOPIC_PREFIX, prefix, "QW_TOPIC_PREFIX", "cannot start a Kafka topic name: use at "
            f"most {TOPIC_PREFIX_MAX} of the letters A-Z and a-z, the digits, '.', '_' and '-'",
        )  # fmt: skip

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


class QualitySettings(Settings):
    """Quality targets the scorer raises breaches against and the alerts service resolves
    and scores against: one setting, so the two can never disagree."""

    model_config = SettingsConfigDict(env_prefix="QW_")

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
        description="confidence of the Wilson intervals of accuracy the health API and the "
        "wall show (the below-target rule's bound is QW_TARGET_RULE_CONFIDENCE's)",
    )
    target_rule_confidence: float | None = Field(
        default=None,
        gt=0.5,
        lt=1,
        description="one-sided confidence of the exact (Clopper-Pearson) upper bound the "
        "below-target rule compares with the target (a queue or site is below target with "
        "confidence when that bound of its 24h accuracy is under it); unset: the rule's share "
        "of the false-alarm budget (10% of a queue's share, over its looks a day, one per "
        "subgroup: 99.9992% at the defaults, a tail of 8.3e-6); set: that confidence, outside "
        "the budget",
    )
    min_sample: int = Field(
        default=30,
        ge=1,
        le=1_000_000,
        description="random QA verdicts in 24h below which nothing is said of a queue (or a "
        "site) against its target: the health is insufficient_data, no site is below target "
        "and the scorer raises no below-target breach",
    )

    site_targets: dict[str, float] = Field(
        default_factory=dict,
        description="accuracy targets of partner sites (contracts), a JSON map: `site` for "
        "that site in every queue, `queue/site` for one queue's site (it wins), e.g. "
        '`{"manila": 0.92, "hate-en/manila": 0.95}`; a site not named has the queue\'s target '
        f"(QW_ACCURACY_TARGET). Ids in the key-id grammar; targets in (0, 1); at most "
        f"{SITE_TARGETS_MAX}. The health API reports each site against its target",
    )

    @field_validator("site_targets", mode="before")
    @classmethod
    def _site_targets_are_valid(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value  # pydantic refuses it as not a map
        if len(value) > SITE_TARGETS_MAX:
            raise ValueError(f"{len(value)} site targets, at most {SITE_TARGETS_MAX}")
        for key, target in value.items():
            queue, slash, site = str(key).rpartition("/")
            if not is_key_id(site) or (slash and not is_key_id(queue)):
                raise ValueError(
                    f"key {str(key)[:200]!r}: expected `site` or `queue/site`, each a key id "
                    "(an ASCII letter or digit, then letters, digits, `._:-`; 1-128)"
                )
            if isinstance(target, bool) or not isinstance(target, int | float):
                raise ValueError(f"{key!r}: the target must be a number, not {target!r}")
            if not 0 < target < 1:
                raise ValueError(f"{key!r}: the target {target!r} must be in (0, 1), e.g. 0.95")
        return value

    def site_target(self, queue_id: str, site: str) -> tuple[float, TargetSource]:
        """The accuracy target of ``site`` in ``queue_id``, and where it comes from."""
        target = self.site_targets.get(f"{queue_id}/{site}")
        if target is not None:
            return target, "queue_site"
        target = self.site_targets.get(site)
        if target is not None:
            return target, "site"
        return self.accuracy_target, "queue"


class AuthSettings(Settings):
    """API keys (``shared/apikeys.py``), read by both HTTP services and ``qwatch keys``."""

    model_config = SettingsConfigDict(env_prefix="QW_API_")

    keys_file: Path = Field(
        default_factory=lambda: default_state_dir() / "api-keys.json",
        description="the API key file (hashes only); `qwatch keys create` writes it; in "
        "Kubernetes mount it from a Secret",
    )
    protect_reads: bool = Field(
        default=False, description="require a key with scope 'read' on the health API too"
    )
    environment: Environment = Field(
        default="development",
        validation_alias="QW_ENV",
        description="outside development, keys are required on every mutating endpoint "
        "(set but empty is not development)",
    )


class DatabaseSettings(Settings):
    model_config = SettingsConfigDict(env_prefix="QW_DB_")

    url: Annotated[str, EmptyIsAValue()] = Field(
        default_factory=lambda: f"sqlite+aiosqlite:///{default_state_dir() / 'qualitywatch.db'}",
        description="SQLAlchemy async URL; postgresql+psycopg://... in production. Set but "
        "empty is refused (a Secret that did not arrive), not the local SQLite file",
    )

    @field_validator("url")
    @classmethod
    def _url_is_not_empty(cls, url: str) -> str:
        return refuse_empty(url, "leave it out for the local SQLite file, or give a SQLAlchemy URL")
