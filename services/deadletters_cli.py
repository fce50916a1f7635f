"""``qwatch deadletters``: read the dead-letter topic, and send its messages back after a fix.

Every stage that refuses input puts a record on ``qw.deadletter.v1`` (``shared/deadletter.py``:
the stage, the reason, where the message came from and its exact bytes). ``list`` shows
what was refused and why; ``replay`` sends the original bytes back where they came from
once the cause is fixed (a queue admitted, a producer corrected, a scorer bug fixed):

* a raw-topic message goes back to its raw topic with its key;
* an HTTP item (refused because its queue was not admitted) goes to the raw topic of its
  kind (``decision`` or ``verdict``), where ingest validates it like any other;
* an events-topic batch the scorer could not score goes back to the events topic, under its
  queue's key (a batch refused for a wrong key lands in its queue's partition this time; an
  item the scorer refused out of a batch is shown, not replayed: it came from past ingest).

Replaying is safe to repeat: ingest validates again (a message still bad is dead-lettered
again, with its reason) and the scorer counts each decision and verdict id once, so a
message sent twice is counted once. Without ``--yes``, ``replay`` only says what it would send.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared import codec, control
from shared.kafka import ensure_topics, make_producer
from shared.settings import KafkaSettings
from shared.topics import Topics, queue_key

deadletters_app = typer.Typer(
    name="deadletters",
    help="What was refused and why (qw.deadletter.v1), and replaying it after a fix.",
    no_args_is_help=True,
)

_DURATION = re.compile(r"([1-9][0-9]{0,5})([mhd])")
_UNIT = {"m": 60, "h": 3600, "d": 86400}
MAX_SCAN = 5_000_000  # records one command reads at most (the topic keeps 30 days)


def parse_since(value: str | None, now: datetime) -> datetime | None:
    """``30m``, ``6h``, ``7d`` back from now, or an RFC 3339 time with a zone; None: all."""
    if value is None:
        return None
    m = _DURATION.fullmatch(value.strip())
    if m:
        return now - timedelta(seconds=int(m.group(1)) * _UNIT[m.group(2)])
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise typer.BadParameter(
            f"{value[:60]!r}: a duration (30m, 6h, 7d) or an RFC 3339 time with a zone"
        )
    return at.astimezone(UTC)


@dataclass(frozen=True)
class Letter:
    """One dead-letter record, decoded."""

    offset: int
    at: str
    stage: str
    reason: str
    error_type: str
    source_topic: str | None
    key: str | None
    value: bytes | None

    def as_json(self) -> dict[str, Any]:
        return {
            "offset": self.offset, "dead_lettered_at": self.at, "stage": self.stage,
            "reason": self.reason, "error_type": self.error_type,
            "source_topic": self.source_topic, "key": self.key,
            "value_b64": base64.b64encode(self.value).decode() if self.value is not None else None,
        }  # fmt: skip


def decode(offset: int, raw: bytes | None) -> Letter | None:
    """A record as ``shared/deadletter.py`` writes it; None for anything else (the topic is
    internal, but a stray producer could write to it: such a record is skipped, not fatal)."""
    try:
        obj = codec.loads(raw) if raw is not None else None
    except ValueError:
        return None
    if not isinstance(obj, dict) or obj.get("v") != 1:
        return None
    try:
        value = base64.b64decode(obj["value_b64"], validate=True) if obj.get("value_b64") else None
    except (binascii.Error, TypeError):
        return None
    errors = obj.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else {}
    fields = (obj.get("stage"), obj.get("reason"), obj.get("dead_lettered_at"))
    if not all(isinstance(f, str) for f in fields):
        return None
    source, key = obj.get("source_topic"), obj.get("key")
    return Letter(
        offset=offset,
        at=str(obj["dead_lettered_at"]),
        stage=str(obj["stage"]),
        reason=str(obj["reason"]),
        error_type=str(first.get("type", "")) if isinstance(first, dict) else "",
        source_topic=source if isinstance(source, str) else None,
        key=key if isinstance(key, str) else None,
        value=value,
    )


@dataclass(frozen=True)
class Filter:
    since: datetime | None = None
    stage: str | None = None
    reason: str | None = None
    queue: str | None = None

    def __call__(self, letter: Letter) -> bool:
        return (
            (self.stage is None or letter.stage == self.stage)
            and (self.reason is None or self.reason.casefold() in letter.reason.casefold())
            and (self.queue is None or letter.key == self.queue)
        )


async def read_letters(kafka: KafkaSettings, keep: Filter) -> list[Letter]:
    """The dead-letter records (from ``keep.since`` on) up to the topic's end when called."""
    await ensure_topics(kafka)
    tp = TopicPartition(kafka.topics.deadletter, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, enable_auto_commit=False)
    await consumer.start()
    out: list[Letter] = []
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        start = (await consumer.beginning_offsets([tp]))[tp]
        if keep.since is not None:
            found = await consumer.offsets_for_times({tp: int(keep.since.timestamp() * 1000)})
            start = found[tp].offset if found.get(tp) is not None else end
        start = max(start, end - MAX_SCAN)
        consumer.seek(tp, start)
        position = start
        while position < end:
            polled = await consumer.getmany(tp, timeout_ms=2000, max_records=10_000)
            records = polled.get(tp, [])
            if not records:
                position = await consumer.position(tp)
                continue
            for rec in records:
                if rec.offset >= end:
                    break
                letter = decode(rec.offset, rec.value)
                if letter is not None and keep(letter):
                    out.append(letter)
            position = records[-1].offset + 1
    finally:
        await consumer.stop()
    return out


def target_of(letter: Letter, topics: Topics) -> str | None:
    """Where ``letter``'s message goes back to, or None when it cannot be replayed."""
    if letter.value is None:
        return None
    ours = {topics.decisions_raw, topics.verdicts_raw, topics.events}
    if letter.source_topic == topics.events:
        # a whole batch the scorer could not score goes back; an item it refused from a
        # batch (a producer writing past ingest) is not a batch, and is left on the topic
        try:
            control.decode_record(letter.value)
        except ValueError:
            return None
        return topics.events
    if letter.source_topic is not None:
        return letter.source_topic if letter.source_topic in ours else None
    try:
        item = codec.loads(letter.value)
    except ValueError:
        return None
    kind = item.get("kind") if isinstance(item, dict) else None
    return {"decision": topics.decisions_raw, "verdict": topics.verdicts_raw}.get(str(kind))


async def replay(kafka: KafkaSettings, letters: list[Letter]) -> Counter[str]:
    """Send each letter's original bytes to its target (acks as configured); per target."""
    sent: Counter[str] = Counter()
    producer = make_producer(kafka)
    await producer.start()
    try:
        futures = []
        for letter in letters:
            target = target_of(letter, kafka.topics)
            if target is None:
                continue
            key = letter.key.encode() if letter.key is not None else None
            if target == kafka.topics.events and letter.value is not None:
                # under its queue's key, whatever key it was refused under (the scorer
                # refuses a batch keyed otherwise: it would land on another partition)
                key = queue_key(control.decode_record(letter.value)["queue_id"])
            futures.append(await producer.send(target, letter.value, key=key))
            sent[target] += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


def _filter(since: str | None, stage: str | None, reason: str | None, queue: str | None) -> Filter:
    if stage is not None and stage not in ("ingest", "scorer"):
        raise typer.BadParameter(f"{stage[:30]!r}: ingest or scorer")
    return Filter(parse_since(since, datetime.now(UTC)), stage, reason, queue)


Since = Annotated[
    str | None, typer.Option(help="from 30m, 6h, 7d ago or an RFC 3339 time; default: all kept")
]
Stage = Annotated[str | None, typer.Option(help="ingest or scorer")]
Reason = Annotated[str | None, typer.Option(help="only reasons containing this text")]
Queue = Annotated[str | None, typer.Option(help="only this queue (the record's key)")]


@deadletters_app.command("list")
def list_letters(
    since: Since = None,
    stage: Stage = None,
    reason: Reason = None,
    queue: Queue = None,
    limit: Annotated[int, typer.Option(min=0, max=100_000, help="latest records shown")] = 20,
    json: Annotated[bool, typer.Option("--json", help="one JSON object a line, all kept")] = False,
) -> None:
    """Counts by stage and reason, then the latest records: when, where from, why."""
    from services.cli import _broker_answers, _kafka_refusals

    keep = _filter(since, stage, reason, queue)
    kafka = KafkaSettings()
    _broker_answers(kafka)
    with _kafka_refusals(quiet=True):
        letters = asyncio.run(read_letters(kafka, keep))
    if json:
        for letter in letters:
            typer.echo(codec.dumps(letter.as_json()).decode())
        return
    typer.echo(f"{len(letters)} dead letter(s)")
    kinds = Counter((x.stage, x.error_type or x.reason[:60]) for x in letters)
    for (where, what), n in kinds.most_common():
        typer.echo(f"{n:>9}  {where:<7} {what}")
    if letters and limit:
        typer.echo("")
        for x in letters[-limit:]:
            source = x.source_topic or "http"
            typer.echo(f"{x.at[:19]}  #{x.offset:<8} {x.stage:<7} {source:<22} {x.key or '-'}")
            typer.echo(f"    {x.reason[:300]}")


@deadletters_app.command("replay")
def replay_letters(
    since: Since = None,
    stage: Stage = None,
    reason: Reason = None,
    queue: Queue = None,
    yes: Annotated[bool, typer.Option("--yes", help="send them; without it, only count")] = False,
) -> None:
    """Send the original bytes back where they came from (raw topics, or the events topic
    for batches the scorer refused). Safe to repeat: ids are counted once."""
    from services.cli import _broker_answers, _kafka_refusals

    kafka = KafkaSettings()
    keep = _filter(since, stage, reason, queue)
    _broker_answers(kafka)
    with _kafka_refusals(quiet=True):
        letters = asyncio.run(read_letters(kafka, keep))
        targets = Counter(target_of(x, kafka.topics) for x in letters)
        skipped = targets.pop(None, 0)
        for topic, n in sorted(targets.items()):
            typer.echo(f"{n:>9}  -> {topic}")
        if skipped:
            typer.echo(
                f"{skipped:>9}  not replayable (no original bytes, or not from a topic of ours)"
            )
        if not yes:
            typer.echo(f"dry run: {sum(targets.values())} to replay; add --yes to send them")
            return
        sent = asyncio.run(replay(kafka, letters))
    typer.echo(f"replayed {sum(sent.values())} message(s)")
