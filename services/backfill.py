"""``qwatch backfill``: load an export of past decisions and verdicts into the raw topics, so
a new installation learns its baselines from history instead of a day of Phase I.

One event per row, in the formats ``qwatch analyze`` reads: CSV (a header row; blank cells
are absent fields), NDJSON (one JSON object per line) or Parquet; ``.gz`` text files are
read as they stream. A row is a decision or a verdict as in docs/events.md: its ``kind``
column says which, or, without one, a ``verdict_id`` makes it a verdict and a
``decision_id`` alone a decision.

Each row is checked against the same event models ingest uses before it is sent, so a bad
export is found at once: a bad row is written, with its row number and the reason, to a
rejects file beside the checkpoint, and the load goes on (``--max-rejects`` ends it early).
Good rows go to ``qw.decisions.raw.v1`` / ``qw.verdicts.raw.v1`` keyed by queue, as an
upstream system sends them: ingest, the scorer and everything after see live traffic.

**Resumable.** A checkpoint per file (``var/backfill/``) records how many rows the broker
has acknowledged, written every few seconds and when the load stops. Ctrl-C (or SIGTERM)
waits for what is in flight, writes the checkpoint and exits 130: the same command resumes
after the last acknowledged row, so nothing is sent twice. After a crash (SIGKILL, power)
the load resumes from the last checkpoint and re-sends at most a few seconds of rows: the
scorer counts each decision and verdict id once, so the counts stay exact. A file that
changed since its checkpoint (size or modification time) is refused until ``--restart``.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gzip
import hashlib
import io
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol, cast

from pydantic import ValidationError

from shared import codec
from shared.analysis.load import detect_format, import_parquet
from shared.events import Decision, Verdict
from shared.settings import KafkaSettings
from shared.topics import queue_key

INTERRUPTED = 130  # the shell's code for a command ended by Ctrl-C
CHECKPOINT_EVERY_S = 2.0
IN_FLIGHT = 20_000  # sends awaited at least this often
_INTS = frozenset({"v", "severity", "moderator_tenure_days"})


class BackfillError(Exception):
    """The file cannot be loaded as asked: one line saying why."""


@dataclass(slots=True)
class Checkpoint:
    """How far a file was loaded: ``rows`` data rows acknowledged (sent or rejected)."""

    file: str
    size: int
    mtime_ns: int
    rows: int = 0
    sent: int = 0
    rejected: int = 0
    done: bool = False

    @staticmethod
    def path_for(folder: Path, file: Path) -> Path:
        digest = hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:12]
        return folder / f"{file.name}.{digest}.json"

    @classmethod
    def load_or_new(cls, path: Path, file: Path, *, restart: bool) -> Checkpoint:
        st = file.stat()
        fresh = cls(str(file.resolve()), st.st_size, st.st_mtime_ns)
        if restart or not path.exists():
            return fresh
        try:
            old = cls(**json.loads(path.read_text()))
        except (ValueError, TypeError) as exc:
            raise BackfillError(
                f"{path}: not a checkpoint ({exc}); --restart starts over"
            ) from None
        if (old.size, old.mtime_ns) != (fresh.size, fresh.mtime_ns):
            raise BackfillError(
                f"{file} changed since its checkpoint {path} (size or modification time): "
                "--restart loads it from the first row again"
            )
        return old

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, path)  # a crash leaves the old checkpoint or the new one, whole


@dataclass(slots=True)
class Row:
    number: int  # 1-based, data rows only
    event: dict[str, Any] | None  # None: unreadable, ``problem`` says why
    problem: str | None = None


def _text(path: Path) -> IO[str]:
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")  # noqa: SIM115 (the wrapper closes it)
    return io.TextIOWrapper(cast(IO[bytes], raw), encoding="utf-8", newline="")


def _csv_value(name: str, value: str) -> Any:
    if name in _INTS and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.isoformat()  # naive: refused by the model with its own words
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


def read_rows(path: Path, fmt: str) -> Iterator[Row]:
    """Every data row of the file as an event dict (or why it is not one), in file order."""
    if fmt == "parquet":
        parquet = import_parquet()
        try:
            reader = parquet.ParquetFile(path)
        except Exception as exc:
            raise BackfillError(f"cannot read {path.name} as Parquet: {exc}") from exc
        number = 0
        for batch in reader.iter_batches(batch_size=10_000):
            for rec in batch.to_pylist():
                number += 1
                yield Row(number, {k: _plain(v) for k, v in rec.items() if v is not None})
        return
    with _text(path) as stream:
        if fmt == "csv":
            reader_ = csv.reader(stream)
            header = next(reader_, None)
            if header is None:
                return
            header = [h.strip() for h in header]
            for number, cells in enumerate(reader_, start=1):
                if len(cells) != len(header):
                    yield Row(number, None, f"{len(cells)} cells for {len(header)} columns")
                    continue
                yield Row(number, {
                    k: _csv_value(k, v) for k, v in zip(header, cells, strict=True) if v != ""
                })  # fmt: skip
            return
        number = 0
        for line in stream:
            if not line.strip():
                continue
            number += 1
            try:
                obj = codec.loads(line.encode())
            except ValueError as exc:
                yield Row(number, None, f"not JSON: {exc}")
                continue
            if not isinstance(obj, dict):
                yield Row(number, None, f"a row must be a JSON object, not {type(obj).__name__}")
                continue
            yield Row(number, obj)


def classify(event: dict[str, Any]) -> type[Decision] | type[Verdict]:
    kind = event.get("kind")
    if kind == "decision" or (kind is None and "verdict_id" not in event):
        return Decision
    if kind == "verdict" or (kind is None and "verdict_id" in event):
        return Verdict
    raise ValueError(f"kind {kind!r}: expected decision or verdict")


def check(event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The event's kind and the event to send (with ``kind``), or ``ValueError`` saying why
    it is not a valid decision or verdict (the models of shared/events.py)."""
    model = classify(event)
    try:
        model.model_validate(event)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "row"
        raise ValueError(f"{where}: {first['msg']}") from None
    kind = "decision" if model is Decision else "verdict"
    return kind, {**event, "kind": kind}


@dataclass(slots=True)
class Progress:
    file: Path
    rows: int = 0
    sent: int = 0
    rejected: int = 0
    total: int | None = None  # data rows in the file, when known
    t0: float = 0.0  # time.monotonic() when this run started on the file
    rows0: int = 0  # rows done before this run (the checkpoint)

    @property
    def rate(self) -> float:
        """Rows per second in this run."""
        return (self.rows - self.rows0) / max(time.monotonic() - self.t0, 1e-9)


def count_rows(path: Path, fmt: str) -> int | None:
    """Data rows in the file, for the progress bar: Parquet's metadata; the lines of a plain
    text file (fast, no parsing); None for a compressed one."""
    if fmt == "parquet":
        return int(import_parquet().ParquetFile(path).metadata.num_rows)
    if path.suffix == ".gz":
        return None
    lines, last = 0, b"\n"
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    lines += last != b"\n"  # a last line without a newline
    return max(0, lines - 1) if fmt == "csv" else lines


class Reporter(Protocol):
    def progress(self, prog: Progress) -> None: ...

    def finished(self, prog: Progress, cp: Checkpoint, rejects: Path) -> None: ...


async def load_file(
    path: Path,
    kafka: KafkaSettings,
    *,
    checkpoint_path: Path,
    rejects_path: Path,
    restart: bool = False,
    max_rejects: int = 1000,
    rate: float = 0.0,
    stop: asyncio.Event | None = None,
    reporter: Reporter | None = None,
) -> Checkpoint:
    """Load one file (from its checkpoint on); returns the checkpoint as saved. Stops early,
    with everything acknowledged and saved, when ``stop`` is set."""
    fmt = detect_format(path)
    cp = Checkpoint.load_or_new(checkpoint_path, path, restart=restart)
    prog = Progress(path, cp.rows, cp.sent, cp.rejected, t0=time.monotonic(), rows0=cp.rows)
    if cp.done:
        if reporter is not None:
            reporter.finished(prog, cp, rejects_path)
        return cp
    topics = kafka.topics
    from shared.kafka import ensure_topics, make_producer

    prog.total = count_rows(path, fmt)
    await ensure_topics(kafka)
    producer = make_producer(kafka, linger_ms=20)
    await producer.start()
    pending: list[asyncio.Future[Any]] = []
    last_save = started = time.monotonic()
    base = cp.rows
    rejects: IO[str] | None = None

    async def settle() -> None:
        nonlocal last_save
        await asyncio.gather(*pending)
        pending.clear()
        cp.rows, cp.sent, cp.rejected = prog.rows, prog.sent, prog.rejected
        cp.save(checkpoint_path)
        last_save = time.monotonic()
        if reporter is not None:
            reporter.progress(prog)

    try:
        for row in read_rows(path, fmt):
            if row.number <= cp.rows:
                continue  # loaded before the checkpoint
            if stop is not None and stop.is_set():
                break
            problem = row.problem
            if problem is None and row.event is not None:
                try:
                    kind, event = check(row.event)
                except ValueError as exc:
                    problem = str(exc)
                else:
                    topic = topics.decisions_raw if kind == "decision" else topics.verdicts_raw
                    pending.append(await producer.send(
                        topic, codec.dumps(event), key=queue_key(event["queue_id"])
                    ))  # fmt: skip
                    prog.sent += 1
            if problem is not None:
                if rejects is None:
                    rejects_path.parent.mkdir(parents=True, exist_ok=True)
                    rejects = rejects_path.open("a", encoding="utf-8")
                rejects.write(json.dumps({"row": row.number, "reason": problem}) + "\n")
                prog.rejected += 1
            prog.rows = row.number
            if prog.rejected > max_rejects:
                await settle()
                raise BackfillError(
                    f"{path.name}: more than {max_rejects} rows rejected (the reasons are in "
                    f"{rejects_path}); fix the export, or raise --max-rejects"
                )
            if rate > 0:
                ahead = (prog.rows - base) / rate - (time.monotonic() - started)
                if ahead > 0.01:
                    await asyncio.sleep(ahead)
            if len(pending) >= IN_FLIGHT or time.monotonic() - last_save >= CHECKPOINT_EVERY_S:
                await settle()
        else:
            cp.done = True
        await settle()
    finally:
        if rejects is not None:
            rejects.close()
        with contextlib.suppress(Exception):
            await producer.stop()
    if reporter is not None:
        reporter.finished(prog, cp, rejects_path)
    return cp


async def run_backfill(
    files: list[Path],
    kafka: KafkaSettings,
    *,
    state_dir: Path,
    restart: bool = False,
    max_rejects: int = 1000,
    rate: float = 0.0,
    reporter: Reporter | None = None,
) -> int:
    """Load ``files`` in order; returns the exit code: 0, or 130 when interrupted (the
    checkpoints are saved: the same command resumes)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for file in files:
            cp_path = Checkpoint.path_for(state_dir, file)
            cp = await load_file(
                file, kafka, checkpoint_path=cp_path,
                rejects_path=cp_path.with_suffix(".rejects.ndjson"), restart=restart,
                max_rejects=max_rejects, rate=rate, stop=stop, reporter=reporter,
            )  # fmt: skip
            if not cp.done:
                return INTERRUPTED
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


class RichReporter:
    """A progress bar per file on a terminal (rows, rate, ETA); a line every few seconds
    otherwise."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import (
            Progress as Bar,
        )

        self.console = Console(stderr=True, soft_wrap=True)  # piped: one line per message
        self.bar = Bar(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} rows/s"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), console=self.console, transient=False,
        )  # fmt: skip
        self.tasks: dict[Path, Any] = {}
        self.live = self.console.is_terminal
        if self.live:
            self.bar.start()

    def progress(self, prog: Progress) -> None:
        rate = prog.rate
        if not self.live:
            total = f"/{prog.total:,}" if prog.total is not None else ""
            self.console.print(
                f"{prog.file.name}: {prog.rows:,}{total} rows, {prog.sent:,} sent, "
                f"{prog.rejected:,} rejected, {rate:,.0f} rows/s", highlight=False,
            )  # fmt: skip
            return
        task = self.tasks.get(prog.file)
        if task is None:
            task = self.tasks[prog.file] = self.bar.add_task(
                prog.file.name, total=prog.total, completed=prog.rows, rate="0"
            )
        self.bar.update(task, completed=prog.rows, rate=f"{rate:,.0f}")

    def finished(self, prog: Progress, cp: Checkpoint, rejects: Path) -> None:
        if prog.file in self.tasks:
            self.progress(prog)
        where = f"; rejected rows and why: {rejects}" if cp.rejected else ""
        if cp.done:
            self.console.print(
                f"{prog.file.name}: loaded, {cp.rows:,} rows: {cp.sent:,} events sent, "
                f"{cp.rejected:,} rejected{where}", highlight=False,
            )  # fmt: skip
        else:
            self.console.print(
                f"{prog.file.name}: stopped after {cp.rows:,} rows ({cp.sent:,} sent, all "
                f"acknowledged); run the same command to resume{where}", highlight=False,
            )  # fmt: skip

    def close(self) -> None:
        if self.live:
            self.bar.stop()
