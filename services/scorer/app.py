"""The scorer's Faust worker: thin glue around ``services.scorer.core.Scorer``.

One agent consumes ``qw.events.v1`` (batches of one queue's events, and control records such
as a baseline reset), hands each to the pure ``Scorer``, makes its state durable and sends what it produced. State lives in one
changelogged table on the events topic's partitions (``state``: one record per queue, and
write-once chunks of decisions, counted verdict ids and waiting verdicts; see
``services/scorer/chunks.py``), stored in RocksDB with its chunk index
(``services/scorer/store.py``). One table, so one ordered changelog per partition: the
exactly-once argument in ``core.py`` rests on it.

Per message:
1. already applied (a replay after a crash or rebalance)? write again what it wrote (the
   local store can be ahead of the changelog after a crash), and skip;
2. ``process``; a batch that raises goes to the dead-letter topic whole, with the reason,
   and the scorer goes on;
3. rejected items go to the dead-letter topic, acknowledged before step 4 (a replay of an
   applied message would not reject them again);
4. ``commit``: chunks, then the queue record with the position and the outbox;
5. the outbox (closed subgroups, revisions, breaches, baseline changes) is sent; each acknowledgement lets the
   queue's next commit drop its entry, or, first, the next message of its partition
   (``Scorer.prune_acked``, before step 2); after a restart, what is left is sent again
   (consumers upsert by key, so a repeat changes nothing);
6. a snapshot when the throttle allows; a timer flushes the ones it held back.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import re
import sys
import threading
import time
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.tables import TableManager
from faust.types.tuples import Message as FaustMessage

from services.scorer import cusum
from services.scorer.core import Horizons, Position, Scorer
from services.scorer.index import ChunkIndex
from services.scorer.settings import ScorerSettings
from services.scorer.store import STORE_URL, JsonValues
from shared import codec, control, deadletter
from shared.collector import settle_gc
from shared.runtime import STOPPED, STOPPING, use_uvloop
from shared.topics import queue_key
from shared.watchdog import exit_hard_after

log = logging.getLogger(__name__)


class RevokedError(Exception):
    """The message's partition was revoked while the agent had it in hand."""


class PromptTableManager(TableManager):
    """Faust's table manager without the second it sleeps before it starts the tables.

    faust-streaming 0.15's ``TableManager.on_start`` sleeps 1 s first, for tables an app
    defines once it runs; the worker's one table is defined with the app (``create_app``),
    before it starts. The sleep delayed every start and restart by a second before the
    worker joined its group (it was half of the worker's start-up after its imports)."""

    # Faust's lines (Starting..., Stopping...) where Faust's own go, at QW_LOG_LEVEL: mode
    # names a service's logger after its module, and this module's logs at INFO
    logger = logging.getLogger("faust.tables.manager.prompt")

    async def on_start(self) -> None:
        # faust-streaming 0.15 internals: TableManager._update_channels, .recovery
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


#: After a fatal send failure, how long Faust's own shutdown may take before the process
#: ends itself (a stop stuck in a commit or a flush must not leave a worker that neither
#: works nor exits: nothing more can be acknowledged anyway, and the state it leaves is
#: what a SIGKILL leaves, which a restart recovers exactly).
FATAL_EXIT_GRACE_S = 30.0
#: A worker that has handled no message for this long, with every message it handled
#: acknowledged, commits its input offsets then, not at the next commit interval.
QUIET_COMMIT_S = 0.5
#: The most a record the worker sends may be: the producer's request size and the
#: changelog's max.message.bytes (the events and dead-letter topics allow as much).
SEND_MAX_BYTES = 8 * 1024 * 1024
#: A refused message larger than this is dead-lettered without its bytes (base64 and the
#: record around them would pass SEND_MAX_BYTES), with where it stays on the topic.
DEAD_LETTER_VALUE_MAX = (SEND_MAX_BYTES - 64 * 1024) * 3 // 4


# A worker's tables are a cache of its changelog, and the persisted offsets in them are
# offsets of that changelog on one cluster. Kept under QW_SCORER_DATA_DIR alone, they were
# read again by a worker pointed at another cluster or topic prefix with the same folder: it
# crashed on recovery (an offset past the new changelog's end) or, worse, replayed the new
# changelog onto the old state from the old offset. So the folder is per cluster (its id, or
# the bootstrap list from a broker too old to say it) and per consumer group (prefix + app id).
CLUSTER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def state_dir(settings: ScorerSettings, cluster_id: str | None) -> Path:
    """Where this worker keeps its tables: ``QW_SCORER_DATA_DIR/cluster-<id>/<group>``."""
    if cluster_id is not None and CLUSTER_ID.fullmatch(cluster_id):
        cluster = f"cluster-{cluster_id}"
    else:  # (an id that is no safe folder name is hashed like a bootstrap list)
        named = cluster_id if cluster_id is not None else settings.kafka.bootstrap
        cluster = "bootstrap-" + hashlib.sha256(named.encode()).hexdigest()[:16]
    return Path(settings.data_dir) / cluster / (settings.kafka.topic_prefix + settings.app_id)


def _note_old_layout(settings: ScorerSettings) -> None:
    """Say once that state kept in the layout before ``state_dir`` is no longer read."""
    old = Path(settings.data_dir) / "v1"
    if (old / "tables").is_dir():
        log.warning(
            "state in %s (the layout before one folder per cluster and group) is not read: "
            "this worker recovers its tables from the changelog; remove %s to free its space",
            old.resolve(), old.resolve(),
        )  # fmt: skip


def create_app(settings: ScorerSettings, cluster_id: str | None = None) -> faust.App:
    """The worker's Faust app; its tables in ``state_dir(settings, cluster_id)`` (cluster_id
    as ``shared.kafka.wait_for_broker`` gives it; None: named by the bootstrap list)."""
    topics = settings.kafka.topics
    datadir = state_dir(settings, cluster_id)
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.kafka.topic_prefix + settings.app_id,
        broker=[f"kafka://{h}" for h in settings.kafka.bootstrap.split(",")],
        # RocksDB (rocksdict) with the chunk index in it: services/scorer/store.py
        store=STORE_URL,
        datadir=str(datadir),
        topic_partitions=settings.kafka.partitions,
        topic_replication_factor=settings.kafka.replication_factor,
        # a standby would replay every changelog record into a second store; a moved
        # partition is recovered from its changelog instead (docs/operations.md)
        table_standby_replicas=0,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_request_timeout=40.0,
        producer_acks=-1 if settings.kafka.acks == "all" else int(settings.kafka.acks),
        # True hangs the agent after a restart (faust-streaming 0.15); a batch in hand
        # during a revocation is guarded by Scorer.generation instead
        stream_wait_empty=False,
        # messages are batches of up to MAX_EVENTS_PER_MESSAGE events (100s of KB): fetch
        # several per partition per round trip
        consumer_max_fetch_size=16 * 1024 * 1024,
        producer_linger=0.005,
        broker_commit_interval=settings.commit_interval_s,
        # as every QualityWatch producer (shared/kafka.py): a dead letter carries a refused
        # batch whole. State records are far smaller by construction (chunks.MAX_RECORD_BYTES)
        producer_max_request_size=SEND_MAX_BYTES,
        key_serializer="raw",
        value_serializer="raw",
        TableManager=PromptTableManager,
    )
    events = app.topic(topics.events, key_type=bytes, value_type=bytes)
    snapshots = app.topic(topics.snapshots, key_type=bytes, value_type=bytes)
    breaches = app.topic(topics.breaches, key_type=bytes, value_type=bytes)
    subgroups = app.topic(topics.subgroups, key_type=bytes, value_type=bytes)
    baselines = app.topic(topics.baselines, key_type=bytes, value_type=bytes)
    deadletter_topic = app.topic(topics.deadletter, key_type=bytes, value_type=bytes)
    outbox_topics = {"subgroup": subgroups, "breach": breaches, "baseline": baselines}
    # The app's default serializer is raw bytes (the topics carry our own orjson). The
    # table's serializers follow its key and value types (Faust 0.11+: not its schema): keys
    # JSON, values bytes, JSON the scorer encodes once (JsonValues: the same bytes to RocksDB
    # and to the changelog, where Faust's json serializer encoded every value twice)
    table = app.Table(
        "state",
        value_type=bytes,
        # the changelog is created like the other topics (docs/operations.md, "Kafka
        # durability"): an acks=all write needs min.insync.replicas copies; and it accepts
        # what the producer may send (a topic that exists keeps its own configuration)
        extra_topic_configs={
            "min.insync.replicas": str(settings.kafka.min_insync_replicas),
            "max.message.bytes": str(SEND_MAX_BYTES),
        },
        # Faust's defaults (a 2 GiB block cache and 3 x 64 MiB memtables per partition)
        # would let memory grow with the state for a long time; these bound it
        # (bench/recovery.py rss)
        options={
            "block_cache_size": settings.rocksdb_block_cache_mb * 2**20,
            "write_buffer_size": settings.rocksdb_write_buffer_mb * 2**20,
            "max_write_buffer_number": 3,
        },
    )
    # Faust's commit flushes its producer first, but the buffer's flush gives up once no
    # message left it for 0.1 s and the input offsets are committed anyway (faust-streaming
    # 0.15, ProducerBuffer.flush_atmost), so a committed offset does not prove the
    # changelog records before it are durable. The agent therefore acknowledges a message
    # itself, once its changelog records are: the futures of the table's changelog sends
    # are captured here. (Within a commit, that flush waits only for what the buffer held
    # when the commit began: bound_commit_flush.)
    changelog_sends: list[Any] = []
    send_changelog = table.send_changelog

    def _captured(*args: Any, **kwargs: Any) -> Any:
        fut = send_changelog(*args, **kwargs)
        changelog_sends.append(fut)
        return fut

    table.send_changelog = _captured  # type: ignore[method-assign]
    bound_commit_flush(app)
    guard_event_path_check(app)
    store = table.data
    assert isinstance(store, ChunkIndex), f"the table's store has no chunk index: {store!r}"
    scorer = Scorer(settings, JsonValues(table), index=store, durable_at_once=False)
    app.qw_scorer = scorer  # type: ignore[attr-defined]
    # ready: the table is recovered for the current assignment (nothing may read it while
    # partitions move: a cache or index built from a half-recovered table would be stale);
    # recovered: flush every owned queue once
    ready, recovered = asyncio.Event(), asyncio.Event()

    def _rebalancing(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        log.debug("partitions moving (%s)", signal)
        ready.clear()
        scorer.invalidate()  # cached state may belong to partitions this worker lost

    def _recovered(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        log.debug("table recovered")
        scorer.invalidate()  # drop anything read while the table was being recovered
        recovered.set()
        ready.set()
        _say_ready()

    # what the log says at the default level (cli.scorer): a line when a rebalance assigns
    # partitions, and one when the worker is ready to score them
    said: dict[str, Any] = {"owned": None, "ready": False}

    def _say_assigned(sender: Any, /, assigned: Any = (), *args: Any, **kwargs: Any) -> None:
        topic = events.get_topic_name()
        owned = {tp.partition for tp in assigned if tp.topic == topic}
        log.info("%s", rebalance_line(topic, said["owned"], owned))
        said.update(owned=owned, ready=False)

    where = f"state in {datadir.resolve()}, broker {settings.kafka.bootstrap}"

    def _say_ready() -> None:
        if said["ready"]:
            return  # (once per assignment)
        said["ready"] = True
        topic = events.get_topic_name()
        try:
            owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == topic}
            total = app.consumer.topic_partitions(topic) or settings.kafka.partitions
        except Exception:  # a log line must not fail a rebalance
            log.debug("cannot read the assignment for the ready line", exc_info=True)
            return
        log.info("%s", ready_line(topic, owned, total, where))

    app.on_partitions_revoked.connect(_rebalancing)
    app.on_partitions_assigned.connect(_rebalancing)
    app.on_partitions_assigned.connect(_say_assigned)
    app.on_rebalance_complete.connect(_recovered)

    def _acked(queue_id: str, seq: int, fut: Any) -> None:
        scorer.acked(queue_id, seq)

    async def send_outbox(queue_id: str) -> None:
        for entry in scorer.unsent(queue_id):
            await outbox_topics[entry.kind].send(
                key=entry.key, value=entry.value, callback=partial(_acked, queue_id, entry.seq)
            )

    async def send_snapshot(queue_id: str) -> None:
        snap = scorer.snapshot_if_due(queue_id, time.time())
        if snap is not None:
            await snapshots.send(key=queue_key(queue_id), value=codec.dumps(snap))

    async def dead_letter(msg: Any, key: Any, value: bytes, reason: str) -> Any:
        copied: bytes | None = value
        if len(value) > DEAD_LETTER_VALUE_MAX:
            # base64 makes it a third larger: past the topic's and the producer's limit, a
            # refused send would stop the worker at this message after every restart
            copied = None
            reason = (
                f"{reason} (the message, {len(value)} bytes, is too large to copy here: "
                f"it stays at {msg.topic} partition {msg.partition} offset {msg.offset})"
            )
        body = deadletter.record(
            stage="scorer", reason=reason, value=copied, source_topic=msg.topic,
            partition=msg.partition, offset=msg.offset, key=key,
        )  # fmt: skip
        return await deadletter_topic.send(key=key, value=body)

    # Acknowledgements go in input order: faust-streaming 0.15 commits past a message
    # that is not acknowledged yet when the one after it is (Consumer._new_offset accepts
    # a gap of one after the committed offset).
    acking: set[asyncio.Future[None]] = set()
    last_ack: list[asyncio.Future[None] | None] = [None]
    fatal: list[threading.Timer] = []
    # for commit_when_quiet: when the last message was handed to the agent (monotonic), and
    # whether a message was acknowledged since the last commit it made
    last_message: list[float] = [0.0]
    uncommitted: list[bool] = [False]

    async def ack_when_durable(
        event: Any,
        sends: list[Any],
        before: asyncio.Future[None] | None,
        committed: tuple[str, Horizons] | None,
    ) -> None:
        try:
            if sends:
                await asyncio.gather(*sends)
                if committed is not None:
                    scorer.mark_durable(*committed)
            if before is not None:
                await before
        except Exception as exc:
            # A state write or dead letter the broker refused: nothing from here on may be
            # acknowledged, and waiting would stall the commit silently. Stop the worker; a
            # restart replays from the committed offset.
            log.critical("a changelog or dead-letter send failed; stopping: %r", exc)
            if not fatal:
                fatal.append(exit_hard_after(FATAL_EXIT_GRACE_S))
            await app.crash(exc)
            raise
        event.ack()
        uncommitted[0] = True

    # The next offset expected per partition of the events topic, whose offsets are
    # contiguous (no compaction, no transactions). faust-streaming 0.15 can drop messages
    # while its flow is suspended around a rebalance (Consumer._drain_messages marks them
    # read all the same, so they never come again). The agent reads such a gap itself,
    # straight from the broker, scores it in order, and acknowledges it to faust's
    # consumer so that the committed offset can move past it.
    expected: dict[int, int] = {}

    def _forget_positions(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        expected.clear()

    app.on_partitions_assigned.connect(_forget_positions)
    app.on_partitions_revoked.connect(_forget_positions)

    async def read_gap(tp: Any, start: int, end: int) -> tuple[int, list[Any]]:
        """The records at offsets ``start``..``end - 1`` of ``tp`` that the broker still
        holds, read straight from it: (the first offset it holds, those records). Offsets
        below the log's start were deleted (its retention) before this worker read them."""
        reader = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka.bootstrap, enable_auto_commit=False,
            client_id=f"{settings.kafka.client_id}-scorer-gap",
        )  # fmt: skip
        await reader.start()
        try:
            part = TopicPartition(tp.topic, tp.partition)
            reader.assign([part])
            log_start = (await reader.beginning_offsets([part]))[part]
            start = max(start, min(log_start, end))
            if start >= end:
                return start, []
            reader.seek(part, start)
            records: list[Any] = []
            deadline = time.monotonic() + 60
            while len(records) < end - start:
                if time.monotonic() > deadline:
                    # not acknowledged, so the committed offset stays before the gap
                    raise RuntimeError(f"cannot read offsets {start}-{end - 1} of {tp}")
                got = await reader.getmany(part, timeout_ms=2000, max_records=end - start)
                records += [r for r in got.get(part, []) if start <= r.offset < end]
        finally:
            await reader.stop()
        return start, records

    async def lost_input(tp: Any, start: int, end: int) -> None:
        """Offsets ``start``..``end - 1`` of ``tp`` were deleted by the broker before this
        worker read them (a backlog older or larger than the topic's retention): their events
        cannot be counted. Said in the log and in the dead-letter topic (counted in
        ``qw_deadletters{stage="scorer"}``; the record written before going on), then marked
        as a gap in faust's offsets, so that the committed offset moves past them, in input
        order, instead of waiting for offsets that no longer exist."""
        reason = (
            f"offsets {start}-{end - 1} of {tp.topic} partition {tp.partition} ({end - start} "
            "messages) were deleted by the broker (its retention) before the scorer read them: "
            "their events are not counted"
        )
        log.error("%s", reason)
        body = deadletter.record(
            stage="scorer", reason=reason, value=None, source_topic=tp.topic,
            partition=tp.partition, offset=start,
        )  # fmt: skip
        await (await deadletter_topic.send(key=None, value=body))
        # faust-streaming 0.15 internal: the offsets it counts as acknowledged once every
        # offset before them is (how it steps over a compacted topic's holes): one interval,
        # however many offsets were lost
        await app.consumer._add_gap(tp, start, end - 1)  # type: ignore[attr-defined]

    def gap_event(tp: Any, record: Any) -> Any:
        msg = FaustMessage(
            record.topic, record.partition, record.offset, record.timestamp / 1000.0,
            record.timestamp_type, record.headers, record.key, record.value, None, tp=tp,
        )  # fmt: skip
        return SimpleNamespace(
            message=msg, key=record.key, value=record.value,
            ack=lambda: app.consumer.ack(msg),
        )  # fmt: skip

    async def first_expected(tp: Any, offset: int) -> int:
        """Where this partition's input resumes after an assignment: the group's committed
        offset, as faust's consumer holds it (and will commit past, one message at a time);
        the partition's start when nothing is committed yet. A message faust drops right
        after an assignment is then a gap like any other (the scale-out test lost one when
        the first delivered message was taken as the start)."""
        # faust-streaming 0.15 internal: the offset its commits count from
        committed = app.consumer._committed_offset.get(tp)  # type: ignore[attr-defined]
        if committed is None:
            earliest = await app.consumer.earliest_offsets(tp)
            committed = earliest.get(tp)
        return offset if committed is None else int(committed)

    async def fill_gap(msg: Any) -> None:
        """Score the offsets of this partition that faust skipped, before ``msg``."""
        want = expected.get(msg.partition)
        if want is None:
            want = await first_expected(msg.tp, msg.offset)
        if msg.offset > want:
            first, records = await read_gap(msg.tp, want, msg.offset)
            if first > want:
                await lost_input(msg.tp, want, first)
            if records:
                log.warning(
                    "offsets %s-%s of %s were not delivered; read them directly",
                    first, msg.offset - 1, msg.tp,
                )  # fmt: skip
            for record in records:
                await handle(gap_event(msg.tp, record))
        expected[msg.partition] = max(want, msg.offset + 1)

    async def handle(event: Any) -> None:
        last_message[0] = time.monotonic()
        changelog_sends.clear()
        committed: tuple[str, Horizons] | None = None
        revoked = False
        try:
            committed = await score_one(event)
        except RevokedError:
            # not acknowledged: the partition's new owner scores it from the committed offset
            log.info("%s moved to another worker while in hand; left to it", event.message.tp)
            revoked = True
        finally:
            sends = list(changelog_sends)
            changelog_sends.clear()
        if revoked:
            return
        task = asyncio.ensure_future(ack_when_durable(event, sends, last_ack[0], committed))
        last_ack[0] = task
        acking.add(task)
        task.add_done_callback(acking.discard)

    @app.agent(events)
    async def score(stream: Any) -> None:
        async for event in stream.noack().events():
            await fill_gap(event.message)
            await handle(event)

    async def score_one(event: Any) -> tuple[str, Horizons] | None:
        """Score one message; returns the queue and horizons of the record it committed."""
        msg = event.message
        try:
            # an event batch, or a control record (a baseline reset: shared/control.py),
            # keyed by its queue (another key would put it beside another state of it)
            batch = control.decode_input(
                event.value, event.key, msg.partition, app.consumer.topic_partitions(msg.topic)
            )
        except ValueError as exc:
            changelog_sends.append(await dead_letter(msg, event.key, event.value, str(exc)))
            return None
        queue_id = batch["queue_id"]
        position: Position = (msg.partition, msg.offset)
        while True:
            # after a wait, the partition may belong to another worker now: writing its
            # table from here would put records into a changelog another worker owns
            if msg.tp not in app.consumer.assignment():
                raise RevokedError(msg.tp)
            generation = scorer.generation
            try:
                # acknowledged outputs of the partition's other queues leave their records
                # now (the table is written only while handling a message of its partition)
                scorer.prune_acked(position, queue_id)
            except Exception:
                scorer.rollback()
                log.exception("cannot prune acknowledged outputs of partition %s", msg.partition)
                generation = scorer.generation
            try:
                if scorer.applied(queue_id, position):
                    # the local store may hold writes its changelog never got (a crash
                    # after the store write, before the send): write them again
                    log.debug("replay of %s at %s: applied before", queue_id, position)
                    scorer.reemit(queue_id, position)
                    return None
                out = scorer.process(batch, time.time(), position, msg.timestamp)
            except Exception as exc:  # a bug or a poison batch must not stop the queue
                log.exception("scoring %s at %s failed; dead-lettered", queue_id, position)
                # (rollback drops the in-memory state and so moves the generation itself:
                # comparing with the generation from before it would retry the same batch,
                # and dead-letter it again, forever)
                scorer.rollback()
                reason = f"scorer: {type(exc).__name__}: {exc}"[:2000]
                await (await dead_letter(msg, event.key, event.value, reason))
                # Never scored again here: a move of the partition while the dead letter
                # was in flight leaves the message to its new owner (not acknowledged);
                # otherwise it is recorded as skipped, once, from the table as it is.
                if msg.tp not in app.consumer.assignment():
                    raise RevokedError(msg.tp) from exc
                try:
                    scorer.skip(queue_id, position)
                except Exception:
                    scorer.rollback()
                    log.exception("cannot record %s at %s as skipped", queue_id, position)
                return None
            if out.rejected:
                sent = [
                    await dead_letter(msg, event.key, codec.dumps(item), reason)
                    for item, reason in out.rejected
                ]
                await asyncio.gather(*sent)
                if scorer.generation != generation:
                    continue  # state was reloaded meanwhile: apply again from it
            horizons = scorer.commit(queue_id)
            await send_outbox(queue_id)
            await send_snapshot(queue_id)
            return queue_id, horizons

    @app.timer(interval=QUIET_COMMIT_S)  # type: ignore[untyped-decorator]
    async def commit_when_quiet() -> None:
        """Commit the input offsets once the worker has worked through its input: the
        commit interval (QW_SCORER_COMMIT_INTERVAL_S) paces commits while messages flow,
        and a burst's last offsets waited for it, up to 2.8 s, with nothing left to do."""
        if (
            uncommitted[0]
            and ready.is_set()
            and not acking
            and time.monotonic() - last_message[0] >= QUIET_COMMIT_S
        ):
            uncommitted[0] = False
            await app.consumer.commit()

    @app.timer(interval=max(0.2, min(settings.snapshot_interval_s, 1.0)))  # type: ignore[untyped-decorator]
    async def flush() -> None:
        """Deferred snapshots; after a restart or rebalance, every owned queue's outbox
        and snapshot once."""
        if not ready.is_set():
            return
        if recovered.is_set():
            recovered.clear()
            owned = {
                tp.partition
                for tp in app.consumer.assignment()
                if tp.topic == events.get_topic_name()
            }
            for queue_id in scorer.queues():
                if scorer.state(queue_id).applied[0] in owned:
                    await send_outbox(queue_id)
                    scorer.mark_dirty(queue_id)
        for snap in scorer.due_snapshots(time.time()):
            await snapshots.send(key=queue_key(snap.queue_id), value=codec.dumps(snap))

    return app


def partition_list(partitions: Iterable[int]) -> str:
    """``0-3, 6`` for the partitions 0, 1, 2, 3 and 6; ``none`` for none."""
    runs: list[list[int]] = []
    for p in sorted(set(partitions)):
        if runs and p == runs[-1][1] + 1:
            runs[-1][1] = p
        else:
            runs.append([p, p])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs) or "none"


def ready_line(topic: str, owned: set[int], total: int, where: str) -> str:
    """The scorer's line once its table is recovered for the partitions it owns."""
    if not owned:
        return (
            f"scorer ready but idle: no partition of {topic} is assigned to this worker "
            f"(more workers than its {total} partitions?); {where}"
        )
    scoring = f"partitions {partition_list(owned)} of {topic} ({total} in all)"
    return f"scorer ready: scoring {scoring}; {where}"


def rebalance_line(topic: str, before: set[int] | None, after: set[int]) -> str:
    """The scorer's line when a rebalance assigns it partitions (``before``: None at start)."""
    if after:
        line = f"partitions {partition_list(after)} of {topic} assigned"
    else:
        line = f"no partition of {topic} assigned"
    if before is not None:
        moved = [
            f"{word} {partition_list(ps)}"
            for word, ps in (("gained", after - before), ("lost", before - after))
            if ps
        ]
        line = f"rebalance: {line} ({', '.join(moved) or 'unchanged'})"
    return f"{line}; recovering their state" if after else line


#: set while Faust's consumer commits input offsets (bound_commit_flush)
_COMMITTING: contextvars.ContextVar[bool] = contextvars.ContextVar("committing", default=False)


def bound_commit_flush(app: faust.App) -> None:
    """Make the producer flush that precedes each commit of input offsets wait only for
    what was sent before the commit began, instead of until the producer's buffer is empty.

    faust-streaming 0.15 flushes the producer before each commit
    (``Consumer._commit_offsets``), and its buffer's flush returns only once the buffer has
    been empty, or idle, for 0.1 s. While the agent works through a backlog it keeps that
    buffer full, so the commit waited for the end of the backlog: a worker catching up
    committed nothing (Faust: "Timer commit is overlapping"), its consumer lag looked
    stuck, and a crash read the whole backlog again. The commit needs no flush at all: the
    agent acknowledges a message only once its own changelog records are durable
    (``ack_when_durable``), so every offset it commits is already safe.

    Within a commit, the flush waits until as many messages as the buffer held when it
    began, and the one its sender may have in hand, have been handed to aiokafka (or until
    none left for 0.1 s, as Faust's own flush does), then for aiokafka's flush of the
    batches it holds then. Every other flush (on a revocation, before recovery, at
    shutdown) is Faust's own, full one. Installed once the app runs (the consumer and the
    producer exist then; a commit before that flushes in full, as before)."""
    conf = app.conf
    guarantee = getattr(conf.processing_guarantee, "value", conf.processing_guarantee)
    if conf.producer_threaded or guarantee == "exactly_once":
        return  # (the bounded flush reads the plain producer's buffer: neither mode is used)

    async def install() -> None:
        # faust-streaming 0.15 internals: Producer.buffer and ._producer (the
        # AIOKafkaProducer), Consumer._commit_offsets
        producer: Any = app.producer
        consumer: Any = app.consumer
        full_flush, commit_offsets = producer.flush, consumer._commit_offsets
        buffer = producer.buffer

        async def flush() -> None:
            if not _COMMITTING.get():
                await full_flush()
                return
            await buffer.flush_atmost(buffer.size + 1)
            inner = producer._producer
            if inner is not None:
                await inner.flush()

        async def committing(*args: Any, **kwargs: Any) -> Any:
            token = _COMMITTING.set(True)
            try:
                return await commit_offsets(*args, **kwargs)
            finally:
                _COMMITTING.reset(token)

        producer.flush = flush
        consumer._commit_offsets = committing

    app.task(install)


def awaiting_reset(consumer: Any, tp: Any) -> bool:
    """Whether aiokafka holds no position for ``tp`` now: it is awaiting an offset reset
    (its fetch asked for an offset the broker no longer holds), or is not assigned."""
    # faust-streaming 0.15 / aiokafka 0.14 internals: the thread's AIOKafkaConsumer, its
    # fetcher's subscription state (what faust's own check reads)
    inner = consumer._thread._ensure_consumer()
    assignment = inner._fetcher._subscriptions.subscription.assignment
    state = assignment.state_value(TopicPartition(tp.topic, tp.partition))
    return state is None or not state.has_valid_position


def guard_event_path_check(app: faust.App) -> None:
    """Keep Faust's livelock check from crashing the worker on a partition that aiokafka
    is resetting.

    faust-streaming 0.15 checks every few commit intervals that each assigned partition is
    fetched, processed and committed (``verify_event_path``), reading aiokafka's position
    for it; aiokafka asserts that position exists. It does not while the partition awaits an
    offset reset: for the moment between a fetch finding its offset deleted by the broker
    (retention) and the reset to the log's new start. A check that fell in that moment
    raised AssertionError and the worker exited 1 (seen once, in the retention test, 2026-
    12-05). The check only logs; it is skipped for such a partition, and for one whose
    position vanishes while it reads it (the consumer thread resets it concurrently)."""

    async def install() -> None:
        consumer: Any = app.consumer
        verify = consumer.verify_event_path

        def verified(now: float, tp: Any) -> None:
            if awaiting_reset(consumer, tp):
                return
            try:
                verify(now, tp)
            except AssertionError:
                if not awaiting_reset(consumer, tp):
                    raise
                log.debug("%s: livelock check skipped, its offset is being reset", tp)

        consumer.verify_event_path = verified

    app.task(install)


class _Worker(faust.Worker):
    """Faust's worker, saying at INFO when a signal stops it, as ingest and alerts do
    (shared.runtime.run_until_signal): Faust's own line is below the default level."""

    def _schedule_shutdown(self, signal: Any) -> None:
        if not self._signal_stop_time:
            log.info(STOPPING, signal.name)
        super()._schedule_shutdown(signal)


def make_worker(app: faust.App, loglevel: str) -> faust.Worker:
    """Faust's worker for ``app``, without its start-up spinner when standard output is not
    a terminal: the spinner writes terminal codes (hide the cursor, backspaces) that end up
    in a log file as they are."""
    worker = _Worker(
        app, loglevel=loglevel, quiet=True, redirect_stdouts=False, stdout=sys.stdout
    )  # (stdout: mode's default is the sys.stdout of its import)
    isatty = getattr(worker.stdout, "isatty", None)
    if not (callable(isatty) and isatty()):
        worker.spinner = None  # (Faust checks it before each use)
    return worker


def run_worker(
    settings: ScorerSettings, loglevel: str = "warning", cluster_id: str | None = None
) -> None:
    """Run the worker in the foreground until SIGINT/SIGTERM (``cluster_id``: as for
    ``create_app``)."""
    _note_old_layout(settings)
    use_uvloop()  # (before the app: it takes its loop when made)
    app = create_app(settings, cluster_id)
    app.finalize()
    settle_gc()  # (imports and the app made: shared/collector.py)
    # Faust warns each time table writes wait for its changelog producer: flow control
    # working as designed, not a problem worth a log line per batch.
    logging.getLogger("faust.transport.producer").setLevel(logging.ERROR)
    worker = make_worker(app, loglevel)
    # the first design's scipy import, while the worker joins its group (not mid-input)
    cusum.import_in_background()
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code in (None, 0) and worker._signal_stop_time:
            log.info(STOPPED)  # (a clean stop on a signal, as ingest and alerts say it)
        raise
