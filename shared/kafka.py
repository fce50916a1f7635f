"""Small aiokafka helpers every service uses: topic creation and client construction."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    InvalidReplicationFactorError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
    for_code,
)

from shared.settings import KafkaSettings
from shared.topics import TopicSpec

log = logging.getLogger(__name__)


class BrokerUnreachableError(TimeoutError):
    """No broker answered at the configured address in time; ``bootstrap`` is the address."""

    def __init__(self, bootstrap: str, timeout: float, last: Exception | None) -> None:
        reason = f": {last}" if last else ""
        super().__init__(f"no Kafka broker answered at {bootstrap} within {timeout:g} s{reason}")
        self.bootstrap = bootstrap
        self.timeout = timeout


class TopicCreationError(RuntimeError):
    """The cluster refused to create QualityWatch's topics; the message says what to change."""


async def ensure_topics(settings: KafkaSettings, specs: list[TopicSpec] | None = None) -> None:
    """Create the topics that do not exist yet, with the configured replication factor and
    min.insync.replicas. Idempotent, safe to call from every service; topics that exist are
    left as they are. Raises ``TopicCreationError`` when the cluster refuses a topic."""
    specs = specs if specs is not None else settings.topics.specs()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, client_id=settings.client_id)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if not missing:
            return
        new = []
        for s in missing:
            config = {"min.insync.replicas": str(settings.min_insync_replicas)}
            if s.retention_ms is not None:
                config["retention.ms"] = str(s.retention_ms)
            if s.compact:
                config["cleanup.policy"] = "compact"
            if s.max_message_bytes is not None:
                config["max.message.bytes"] = str(s.max_message_bytes)
            new.append(
                NewTopic(s.name, s.partitions, settings.replication_factor, topic_configs=config)
            )
        # aiokafka hands back the broker's answer per topic rather than raising it
        response = (await admin.create_topics(new)).to_object()
        refused = {
            e["topic"]: (for_code(e["error_code"]), e["error_message"])
            for e in response["topic_errors"]
            # another service was first: fine
            if e["error_code"] not in (0, TopicAlreadyExistsError.errno)
        }
        if refused:
            brokers = len((await admin.describe_cluster())["brokers"])
            raise TopicCreationError(_refusal_message(settings, refused, brokers))
        log.info(
            "created topics %s (replication factor %d, min.insync.replicas %d)",
            [s.name for s in missing], settings.replication_factor, settings.min_insync_replicas,
        )  # fmt: skip
    finally:
        await admin.close()


#: Kafka's default max.message.bytes (a record batch's size, 1 MiB and the 12 bytes of its
#: offset and length): a topic's limit when the broker does not say it
DEFAULT_MAX_MESSAGE_BYTES = 1_048_588


async def message_limits(settings: KafkaSettings, topics: Sequence[str]) -> dict[str, int]:
    """Each topic's max.message.bytes as the broker applies it (the topic's own setting, or
    the broker's default); ``DEFAULT_MAX_MESSAGE_BYTES`` for one the broker does not
    describe (no such topic, or not allowed to)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, client_id=settings.client_id)
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, t, configs={"max.message.bytes": ""})
                for t in topics
            ]
        )
    finally:
        await admin.close()
    limits = dict.fromkeys(topics, DEFAULT_MAX_MESSAGE_BYTES)
    for response in responses:
        for resource in response.to_object()["resources"]:
            if resource["error_code"] != 0 or resource["resource_name"] not in limits:
                continue
            for entry in resource["config_entries"]:
                if entry["config_names"] == "max.message.bytes" and entry["config_value"]:
                    limits[resource["resource_name"]] = int(entry["config_value"])
    return limits


def _refusal_message(
    settings: KafkaSettings, refused: dict[str, tuple[type[Exception], str | None]], brokers: int
) -> str:
    first = min(refused)
    what = f"topic {first}" + (f" and {len(refused) - 1} more" if len(refused) > 1 else "")
    where = f"cannot create {what} at {settings.bootstrap}"
    if any(error is InvalidReplicationFactorError for error, _ in refused.values()):
        n = settings.replication_factor
        return (
            f"{where}: QW_KAFKA_REPLICATION_FACTOR={n} needs {n} brokers and the cluster has "
            f"{brokers} (on the local single-node broker set QW_KAFKA_REPLICATION_FACTOR=1 "
            "QW_KAFKA_MIN_INSYNC_REPLICAS=1)"
        )
    error, detail = refused[first]
    return f"{where}: {error.__name__}: {detail}"


async def group_progress(settings: KafkaSettings, group: str, topic: str) -> tuple[int, int]:
    """(offsets the consumer group has committed, end offsets) summed over the topic's
    partitions: how far a group is through a backlog."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    probe = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap)
    await admin.start()
    await probe.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        ends = await probe.end_offsets(tps)
        committed = await admin.list_consumer_group_offsets(group)
        done = sum(max(0, committed[tp].offset) for tp in tps if tp in committed)
        return done, sum(ends.values())
    finally:
        await probe.stop()
        await admin.close()


async def group_members(settings: KafkaSettings, group: str, timeout: float = 5.0) -> int | None:
    """How many processes are in consumer group ``group`` now (``group`` with the topic
    prefix, as ``make_consumer`` names it): 0 when none is, None when the broker does not
    say within ``timeout`` seconds (unreachable, or an answer of a form not known here)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, client_id=settings.client_id)
    try:
        with quiet_client_logs():
            async with asyncio.timeout(timeout):
                await admin.start()
                responses = await admin.describe_consumer_groups([settings.topic_prefix + group])
    except (KafkaError, OSError, TimeoutError):
        return None
    finally:
        await admin.close()
    for response in responses:
        # (error code, group id, state, protocol type, protocol, members, ...); a group
        # nobody joined yet is "Dead" with no member
        for described in getattr(response, "groups", ()):
            if len(described) > 5 and described[0] == 0 and isinstance(described[5], list):
                return len(described[5])
    return None


def make_consumer(
    settings: KafkaSettings, group: str, *topics: str, **overrides: object
) -> AIOKafkaConsumer:
    """A group consumer that commits only when told to (after the side effects), starts
    from the earliest offset of a new group, and notices a dead peer within seconds."""
    options: dict[str, object] = {
        "bootstrap_servers": settings.bootstrap,
        "client_id": f"{settings.client_id}-{group}",
        "group_id": settings.topic_prefix + group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": 10_000,
        "heartbeat_interval_ms": 1_000,
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


#: The most a QualityWatch producer sends in one request (aiokafka's max_request_size): a
#: message larger than this is refused by the producer itself, whatever the topic allows
MAX_REQUEST_BYTES = 8 * 1024 * 1024


def make_producer(settings: KafkaSettings, **overrides: object) -> AIOKafkaProducer:
    """A producer tuned for throughput with durability: with the default ``acks=all``
    idempotent (no duplicates on retry), lz4-free. Kafka allows idempotence only with
    acks=all, so ``QW_KAFKA_ACKS`` 1 or 0 turns it off."""
    durable = settings.acks == "all"
    options: dict[str, object] = {
        "bootstrap_servers": settings.bootstrap,
        "client_id": settings.client_id,
        "acks": "all" if durable else int(settings.acks),
        "enable_idempotence": durable,
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "max_request_size": MAX_REQUEST_BYTES,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


@contextlib.contextmanager
def quiet_client_logs() -> Iterator[None]:
    """aiokafka logs every refused connection at ERROR; while probing, or in a command that
    reports the failure itself in one line, that is noise."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


#: A wait for the broker longer than this is said once (``wait_for_broker``'s ``waiting``)
BROKER_NOTE_AFTER_S = 3.0


async def wait_for_broker(
    settings: KafkaSettings,
    timeout: float | None = None,
    waiting: Callable[[float], object] | None = None,
) -> str | None:
    """Block until the cluster answers a metadata request and return its cluster id (None
    from a broker too old to say it), or raise ``BrokerUnreachableError`` (a
    ``TimeoutError``) after ``timeout`` seconds (default: ``QW_KAFKA_CONNECT_TIMEOUT_S``).
    ``waiting``, if the broker has not answered after ``BROKER_NOTE_AFTER_S``, is called
    once with the seconds the wait may still take (a command says it is waiting: a silent
    minute looks like a hang)."""
    limit = settings.connect_timeout_s if timeout is None else timeout
    note = None
    if waiting is not None and limit > BROKER_NOTE_AFTER_S:
        note = asyncio.get_running_loop().call_later(
            BROKER_NOTE_AFTER_S, waiting, limit - BROKER_NOTE_AFTER_S
        )
    try:
        with quiet_client_logs():
            return await _wait_for_broker(settings, limit)
    finally:
        if note is not None:
            note.cancel()


async def _wait_for_broker(settings: KafkaSettings, timeout: float) -> str | None:
    deadline = asyncio.get_running_loop().time() + timeout
    last: Exception | None = None
    while asyncio.get_running_loop().time() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
        try:
            await admin.start()
            cluster = (await admin.describe_cluster()).get("cluster_id")
            return cluster if isinstance(cluster, str) and cluster else None
        except (KafkaConnectionError, OSError) as exc:
            last = exc
        finally:
            await admin.close()
        await asyncio.sleep(0.5)
    raise BrokerUnreachableError(settings.bootstrap, timeout, last)


# Waiting, at start, until the topics a service reads have a leader that serves them.
#
# A topic just created (a fresh broker, a new prefix) is named in the cluster's metadata with
# its leader a moment before that broker serves the partition: a consumer that asks for its
# offsets in that moment is answered ``NotLeaderForPartitionError``, which aiokafka's fetcher
# logs at ERROR ("Failed fetch offsets ...") before retrying and succeeding. An ERROR on a
# healthy start teaches operators to ignore errors, so a reader first asks every partition it
# reads for its beginning offset with a probe of its own, quietly and for a bounded time, and
# reads nothing before they all answered (ingest's raw topics; the admitted-queues topic that
# ingest, backfill and ``qwatch queues`` read: shared/admission.py).
LEADERS_NOTE_AFTER_S = 5.0  # a wait longer than this is said at INFO, once


class TopicNotServedError(TopicCreationError):
    """A topic's partitions still had no leader serving them at the end of the wait; the
    message names the topic, the broker and the setting that bounds the wait. (A
    ``TopicCreationError``: ``qwatch`` ends with its message in one line, exit 1.)"""


async def wait_for_leaders(
    kafka: KafkaSettings, topics: Sequence[str], timeout: float | None = None
) -> dict[str, list[int]]:
    """Return every partition of ``topics`` (by topic, in order) once each answers an offsets
    request from its leader; raise ``TopicNotServedError`` after ``timeout`` s (default
    ``QW_KAFKA_CONNECT_TIMEOUT_S``). aiokafka's own logs are held back meanwhile: the wait
    reports its outcome itself."""
    if not topics:
        return {}
    timeout = kafka.connect_timeout_s if timeout is None else timeout
    loop = asyncio.get_running_loop()
    started = loop.time()
    names = ", ".join(dict.fromkeys(topics))
    note = loop.call_later(
        LEADERS_NOTE_AFTER_S,
        log.info,
        "waiting up to %g s for a leader to serve every partition of %s",
        timeout,
        names,
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap, client_id=kafka.client_id)
    probe = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap,
        client_id=f"{kafka.client_id}-leaders",
        enable_auto_commit=False,
    )
    try:
        with quiet_client_logs():
            try:
                async with asyncio.timeout(timeout):
                    await admin.start()
                    await probe.start()
                    served = await _served(admin, probe, topics)
            except TimeoutError:
                raise TopicNotServedError(
                    f"no leader served every partition of {names} at {kafka.bootstrap} "
                    f"within {timeout:g} s (QW_KAFKA_CONNECT_TIMEOUT_S); is the cluster "
                    "healthy? (its brokers' logs say why a partition has no leader)"
                ) from None
            finally:
                await probe.stop()
                await admin.close()
    finally:
        note.cancel()
    log.debug("%s served after %.2f s", names, loop.time() - started)
    return served


async def _served(
    admin: AIOKafkaAdminClient, probe: AIOKafkaConsumer, topics: Sequence[str]
) -> dict[str, list[int]]:
    """Every partition of ``topics``, once each answered its beginning offset."""
    while True:
        # a topic the metadata does not name yet is not described: describing it would
        # create it on a broker with auto.create.topics.enable (the local one)
        if set(topics) <= set(await admin.list_topics()):
            described = await admin.describe_topics(list(topics))
            if all(t["error_code"] == 0 and t["partitions"] for t in described):
                break
        await asyncio.sleep(0.1)
    tps = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
    served: dict[str, list[int]] = {}
    for tp in sorted(tps):
        served.setdefault(tp.topic, []).append(tp.partition)
    # retries quietly (at DEBUG) while a leader it asks is not serving yet, up to its
    # request timeout; the caller's timeout bounds the whole wait
    while True:
        try:
            await probe.beginning_offsets(tps)
            return served
        except KafkaTimeoutError:
            await asyncio.sleep(0.1)
