"""``qwatch queues``: admit, list and remove the queues ingest takes (``shared/admission.py``).

These write the admitted-queues topic directly, with the broker's trust (like ``qwatch keys``
with the key file's); over HTTP, ``PUT``/``DELETE /v1/queues/{id}`` on ingest does the same
with an API key of scope ``admin``.
"""

from __future__ import annotations

import asyncio
import getpass
from typing import Annotated, Any

import typer

from shared import admission
from shared.ids import KEY_ID_DESCRIPTION, is_key_id
from shared.kafka import ensure_topics, make_producer
from shared.settings import KafkaSettings

queues_app = typer.Typer(
    name="queues",
    help="The queues ingest takes events of (QW_INGEST_QUEUES=admitted).",
    no_args_is_help=True,
)


def _ids(queue_ids: list[str]) -> list[str]:
    bad = [q for q in queue_ids if not is_key_id(q)]
    if bad:
        raise typer.BadParameter(f"{bad[0]!r} is not a queue id ({KEY_ID_DESCRIPTION})")
    return queue_ids


async def read_admitted(kafka: KafkaSettings) -> dict[str, dict[str, Any]]:
    """Every queue admitted at run time, with its record, as ingest reads them."""
    await ensure_topics(kafka)
    found: dict[str, dict[str, Any]] = {}

    def apply(queue_id: str, record: dict[str, Any] | None) -> None:
        if record is None:
            found.pop(queue_id, None)
        else:
            found[queue_id] = record

    log = admission.AdmissionLog(kafka, apply)
    try:
        await log.start()
    finally:
        await log.stop()
    return found


@queues_app.command("admit")
def admit(queue_id: Annotated[list[str], typer.Argument(help="one or more queue ids")]) -> None:
    """Admit queues for every ingest process (takes effect within a second)."""
    from services.cli import _broker_answers, _kafka_refusals

    by = f"qwatch queues admit ({getpass.getuser()})"
    kafka = KafkaSettings()
    _broker_answers(kafka)
    with _kafka_refusals(quiet=True):
        n = asyncio.run(admission.admit_all(kafka, _ids(queue_id), by))
    typer.echo(f"admitted {n} queue(s)")


@queues_app.command("list")
def list_queues() -> None:
    """The queues admitted at run time: id, when, by whom (the static list is ingest's
    QW_INGEST_QUEUES_ALLOW and QW_INGEST_QUEUES_FILE)."""
    from services.cli import _broker_answers, _kafka_refusals

    kafka = KafkaSettings()
    _broker_answers(kafka)
    with _kafka_refusals(quiet=True):
        found = asyncio.run(read_admitted(kafka))
    for q, rec in sorted(found.items()):
        typer.echo(f"{q:<40} {rec.get('admitted_at', '?')}  {rec.get('admitted_by', '?')}")
    if not found:  # (said on stderr: a script reading the list gets an empty one)
        typer.echo(
            f"no queue admitted at run time ({kafka.topics.queues}); ingest's static list is "
            "QW_INGEST_QUEUES_ALLOW and QW_INGEST_QUEUES_FILE; admit one with 'qwatch queues "
            "admit QUEUE'",
            err=True,
        )


@queues_app.command("remove")
def remove(queue_id: Annotated[list[str], typer.Argument(help="one or more queue ids")]) -> None:
    """Remove run-time admissions: ingest refuses those queues' events from then on."""
    from services.cli import _broker_answers, _kafka_refusals

    kafka = KafkaSettings()
    _broker_answers(kafka)

    async def go() -> None:
        await ensure_topics(kafka)
        producer = make_producer(kafka)
        await producer.start()
        try:
            for q in _ids(queue_id):
                await admission.remove(producer, kafka, q)
        finally:
            await producer.stop()

    with _kafka_refusals(quiet=True):
        asyncio.run(go())
    typer.echo(f"removed {len(queue_id)} queue(s)")
