"""``qwatch backfill``: load an export of past decisions and verdicts into the raw topics, so
a new installation learns its baselines from history instead of a day of Phase I.

One event per row, in the formats ``qwatch analyze`` reads: CSV (a header row), NDJSON (one
JSON object per line) or Parquet; ``.gz`` text files are read as they stream. In every
format an empty cell (``""`` or null) is an absent field. A row is a decision or a verdict
as in docs/events.md: its ``kind`` column says which, or, without one, a ``verdict_id``
makes it a verdict and a ``decision_id`` alone a decision. A file that is not one of these
(a directory, an unknown extension, not UTF-8 text, no data row) ends the command with one
line and exit status 2: before anything is sent, as every file's first rows are read first
(and a text file is read through once, as UTF-8, before any of its rows is sent, so a bad
byte further on stops the command before that file's load begins). The bounds are
analyze's (shared/analysis/load.py): a line longer than ``MAX_LINE_BYTES`` (1 MiB) is
refused so, as are a Parquet row group of more than ``MAX_ROW_GROUP_BYTES`` (1 GiB)
uncompressed, before any row of the file is read, and a Parquet text or binary cell longer
than ``MAX_LINE_BYTES``, when its batch is reached: before any row of the batch is sent.

Each row is checked as ingest checks a raw message before it is sent (``validate_raw``: the
event models, and event times neither in the future nor older than
``QW_INGEST_MAX_AGE_DAYS``), so a row ingest would dead-letter is found at once: it is
written, with its row number and ingest's reason, to a rejects file beside the checkpoint,
and the load goes on; so is a row whose message its raw topic would refuse as too large
(the topic's max.message.bytes, read from the broker when the load begins). More than ``--max-rejects`` rejected rows, or a file of which no row
was sent, stops the command (exit 1): the files are loaded in time order, and loading the
next one would put its events ahead of the missing ones. Good rows go to
``qw.decisions.raw.v1`` / ``qw.verdicts.raw.v1`` keyed by queue, as an upstream system
sends them: ingest, the scorer and everything after see live traffic.

**Resumable.** A checkpoint per file (``var/backfill/``) records how many rows the broker
has acknowledged, written every few seconds and when the load stops. Ctrl-C (or SIGTERM)
waits for what is in flight, writes the checkpoint and exits 130: the same command resumes
after the last acknowledged row, so nothing is sent twice. After a crash (SIGKILL, power)
the load resumes from the last checkpoint and re-sends at most a few seconds of rows: the
scorer counts each decision and verdict id once, so the counts stay exact. A file that
changed since its checkpoint (size or modification time) is refused until ``--restart``; a
file already loaded is skipped, and said to be (``--restart`` loads it again).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gzip
import hashlib
import json
import math
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Generator, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeVar

from services.ingest.admission import QueuePolicy
from services.ingest.validation import (
    MAX_AGE_DAYS,
    EventKind,
    ItemError,
    floor_for,
    validate_raw,
)
from shared import codec
from shared.analysis.errors import InputError
from shared.analysis.load import (
    MAX_LINE_BYTES,
    FileFormat,
    check_header,
    csv_refusal,
    detect_format,
    looks_like,
    micro_times,
    open_parquet,
    parquet_batches,
)
from shared.runtime import INTERRUPTED
from shared.settings import KafkaSettings
from shared.topics import queue_key

BAD_INPUT = 2  # a file that is not an export backfill can read, as for analyze
CHECKPOINT_EVERY_S = 2.0
IN_FLIGHT = 20_000  # sends awaited at least this often
CSV_FIELD_CHARS = csv.field_size_limit()  # the csv module's bound on a field (131,072)
SKIP_YIELD_ROWS = 10_000  # rows skipped to a checkpoint between two looks at Ctrl-C
READ_THROUGH_SAY_S = 2.0  # a read-through before the load said to be one after this long
# what a record batch of one message adds to its key and value, at most: the batch header
# (61 bytes) and the record's varints and attributes (32); a topic's max.message.bytes
# bounds the whole batch
RECORD_OVERHEAD = 93
_INTS = frozenset({"v", "severity", "moderator_tenure_days"})
_BOM = b"\xef\xbb\xbf"
# the lines read_rows skips: blank ones, and in CSV those of blank cells (quoted or not)
_BLANK_LINE = {
    "ndjson": re.compile(rb"^[ \t\r\f\v]*\n", re.MULTILINE),
    "csv": re.compile(rb'^(?:[ \t\r\f\v]|"[ \t\r\f\v]*"|,)*\n', re.MULTILINE),
}
_TIME_RANGE = frozenset({"future_timestamp", "past_timestamp"})  # ingest's, value in the words
_T = TypeVar("_T")

if TYPE_CHECKING:
    from rich.console import Console


class BackfillError(Exception):
    """The file cannot be loaded as asked: one line saying why. ``code`` is the command's
    exit status: ``BAD_INPUT`` (2) for a file that is not an export it can read (not a
    file, an unknown format, not UTF-8, empty), 1 for a load that ran and failed."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


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
    def path_for(folder: Path, file: Path, kafka: KafkaSettings) -> Path:
        """The checkpoint of ``file`` loaded to ``kafka``'s raw topics: one per file *and*
        destination (the broker's address and the two raw topics, so the topic prefix), so
        a load into another cluster or prefix starts from its first row, whatever was loaded
        elsewhere. (A destination written two ways, ``localhost`` and ``127.0.0.1``, is
        loaded twice: harmless, the scorer counts each id once; a skipped row is not.)"""
        topics = kafka.topics
        where = (
            f"{file.resolve()}\n{kafka.bootstrap}\n{topics.decisions_raw}\n{topics.verdicts_raw}"
        )
        digest = hashlib.sha256(where.encode()).hexdigest()[:12]
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


def _gzipped(path: Path) -> bool:
    return path.suffix.lower() == ".gz"  # as detect_format reads the name


def _too_long(path: Path, line: int) -> BackfillError:
    return BackfillError(
        f"{path.name}: line {line:,} is longer than {MAX_LINE_BYTES:,} bytes; no decision or "
        "verdict is that long (a free-text column? leave out of the export the columns "
        "QualityWatch does not read: docs/events.md lists those it does)",
        BAD_INPUT,
    )


def _lines(path: Path) -> Iterator[str]:
    """The lines of a (``.gz``: gzipped) UTF-8 text file, with their line ends, decoded one
    at a time as they stream: a byte that is not UTF-8 ends the file with one line naming
    the file, the line and the byte (analyze's words: shared/analysis/load.py), and so does
    a line longer than ``MAX_LINE_BYTES`` (its line end excluded), read no further."""
    try:
        with gzip.open(path, "rb") if _gzipped(path) else path.open("rb") as raw:
            offset = 0  # bytes before this line, a BOM excluded (as utf-8-sig counts)
            number = 0
            head = b""  # the file's first bytes: what they say it is, if it does not decode
            # (a BOM and a line end past the bound: a line of the bound is read whole)
            while data := raw.readline(MAX_LINE_BYTES + len(_BOM) + 1):
                number += 1
                if number == 1:
                    head = data[:8]
                if number == 1 and data.startswith(_BOM):
                    data = data[len(_BOM) :]
                if len(data) - data.endswith(b"\n") > MAX_LINE_BYTES:
                    raise _too_long(path, number)
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise BackfillError(
                        f"{path.name} is not UTF-8 text (line {number}, byte "
                        f"{offset + exc.start}: {exc.reason})" + looks_like(path, head),
                        BAD_INPUT,
                    ) from None
                yield text
                offset += len(data)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise BackfillError(f"cannot read {path}: {exc}", BAD_INPUT) from None


def _present(value: Any) -> bool:
    """One rule for every format: an empty cell (CSV ``""``, a Parquet null or ``""``, a
    JSON null or ``""``) is an absent field."""
    return value is not None and value != ""


# an integer cell as a CSV writes one: ASCII digits (str.isdigit also takes '²', and int()
# takes other scripts' digits), at most 18 (int() refuses past 4,300); anything else stays
# text, for the model to refuse in its words ("must be a JSON integer")
_INT_CELL = re.compile(r"[ \t]*-?[0-9]{1,18}[ \t]*")


def _csv_value(name: str, value: str) -> Any:
    if name in _INTS and _INT_CELL.fullmatch(value):
        return int(value)
    return value


def _typed_value(name: str, value: Any) -> Any:
    """A Parquet cell or an NDJSON value as its event field: an integer field typed as text
    (a CSV read into a table with every column a string; an exporter that writes numbers as
    strings) is read as a CSV cell is, and one typed as a float (pandas makes an integer
    column with gaps float64; JSON writers may write 4.0) is taken when it is a whole number;
    anything else is left to the model to refuse in its own words."""
    if name in _INTS:
        if isinstance(value, str):
            return _csv_value(name, value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.isoformat()  # naive: refused by the model with its own words
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


def _csv_records(path: Path) -> Iterator[list[str]]:
    """The records of a CSV file: its header, then every data record but those of blank
    cells (a blank line: no row, as analyze reads it). A quoted field may hold line ends: a
    record is one or more lines. ``BackfillError`` (``BAD_INPUT``) naming the line for what
    the csv module refuses (a field longer than its limit, 131,072 characters)."""
    reader = csv.reader(_lines(path))
    try:
        header = next(reader, None)
        if header is None:
            return
        yield header
        for cells in reader:
            if any(c.strip() for c in cells):
                yield cells
    except csv.Error as exc:
        raise BackfillError(
            f"{path.name}: line {reader.line_num}: {csv_refusal(exc)}", BAD_INPUT
        ) from None


def read_rows(path: Path, fmt: str) -> Generator[Row, None, None]:
    """Every data row of the file as an event dict (or why it is not one), in file order.
    ``BackfillError`` (``BAD_INPUT``) for a file that cannot be read as ``fmt`` (not UTF-8,
    not gzip, not Parquet) or that has no data row."""
    number = 0
    if fmt == "parquet":
        try:
            reader = open_parquet(path)  # (its row groups checked before a row is read)
            # a cell past the bound, or a batch of too much text, stops the load before any
            # row of its batch is sent
            for batch in parquet_batches(reader, 10_000, path.name):
                for rec in micro_times(batch).to_pylist():  # (ns: to the microsecond)
                    number += 1
                    yield Row(
                        number, {k: _typed_value(k, v) for k, v in rec.items() if _present(v)}
                    )
        except InputError as exc:  # the bounds (shared/analysis/load.py): analyze's words
            raise BackfillError(str(exc), BAD_INPUT) from None
        except Exception as exc:  # pyarrow raises its own error types; report any of them
            raise BackfillError(f"cannot read {path.name} as Parquet: {exc}", BAD_INPUT) from None
        if number == 0:
            raise BackfillError(f"{path.name} has no rows", BAD_INPUT)
        return
    if fmt == "csv":
        records = _csv_records(path)
        header = next(records, None)
        if header is None:
            raise BackfillError(f"{path.name} is empty", BAD_INPUT)
        header = [h.strip() for h in header]
        try:
            check_header(header)  # (analyze's words: which cell would be the value?)
        except InputError as exc:
            raise BackfillError(f"{path.name}: {exc}", BAD_INPUT) from None
        if not any(header):  # a first line of blank cells: no header
            if next(records, None) is None:
                raise BackfillError(f"{path.name} is empty", BAD_INPUT)  # (analyze's words)
            raise BackfillError(
                f"{path.name}: line 1 is blank; a CSV export's first line is its header row "
                "(the column names)",
                BAD_INPUT,
            )
        for cells in records:
            number += 1
            if len(cells) != len(header):
                yield Row(number, None, f"{len(cells)} cells for {len(header)} columns")
                continue
            yield Row(number, {
                k: _csv_value(k, v) for k, v in zip(header, cells, strict=True) if _present(v)
            })  # fmt: skip
        if number == 0:
            raise BackfillError(f"{path.name} has a header row but no data rows", BAD_INPUT)
        return
    for line in _lines(path):
        if not line.strip():
            continue
        number += 1
        try:
            obj = codec.loads(line)
        except ValueError as exc:
            yield Row(number, None, f"not JSON: {exc}")
            continue
        if not isinstance(obj, dict):
            yield Row(number, None, f"a row must be a JSON object, not {type(obj).__name__}")
            continue
        yield Row(number, {k: _typed_value(k, v) for k, v in obj.items() if _present(v)})
    if number == 0:
        raise BackfillError(f"{path.name} is empty", BAD_INPUT)


def preflight(path: Path) -> FileFormat:
    """The file's format, once it is known to be a file of that format with a first data
    row; else ``BackfillError`` (``BAD_INPUT``) saying why. Cheap: reads the first rows."""
    if path.is_dir():
        raise BackfillError(
            f"{path} is a directory: name the export files in it (e.g. {path}/*.csv)", BAD_INPUT
        )
    if not path.is_file():
        raise BackfillError(
            f"{path}: {'not a regular file' if path.exists() else 'no such file'}", BAD_INPUT
        )
    try:
        fmt = detect_format(path)
    except InputError:  # its words name analyze's --format, which backfill has not
        raise BackfillError(
            f"cannot tell the format of {path.name!r} from its extension: name it .csv, "
            ".ndjson, .jsonl or .parquet (.csv.gz, .ndjson.gz when gzipped)",
            BAD_INPUT,
        ) from None
    try:
        rows = read_rows(path, fmt)
        try:
            next(rows)
        finally:
            rows.close()
    except InputError as exc:  # pyarrow is not installed
        raise BackfillError(str(exc), BAD_INPUT) from None
    return fmt


def classify(event: dict[str, Any]) -> EventKind:
    kind = event.get("kind")
    if kind == "decision" or (kind is None and "verdict_id" not in event):
        return "decision"
    if kind == "verdict" or (kind is None and "verdict_id" in event):
        return "verdict"
    raise ValueError(f"kind {kind!r}: expected decision or verdict")


def check(event: dict[str, Any], max_age_days: int = MAX_AGE_DAYS) -> tuple[EventKind, bytes]:
    """The event's kind and the message to send, or ``ValueError`` saying why ingest would
    refuse it: ingest's own check of a raw message (``validate_raw``: the event models and
    the time range, ``max_age_days`` being QW_INGEST_MAX_AGE_DAYS) and ingest's reason,
    with the offending values and, for a time too old, the setting that takes it."""
    kind = classify(event)
    try:
        value = codec.dumps({**event, "kind": kind})
    except TypeError as exc:  # a Parquet type JSON has not (bytes, decimal...)
        for name, value in event.items():
            try:
                codec.dumps(value)
            except TypeError:
                raise ValueError(
                    f"{name}: a Parquet {type(value).__name__} value, which an event cannot "
                    f"hold (value {value!r}); export the column as text (a string column)"
                ) from None
        raise ValueError(f"not an event: {exc}") from None
    floor = floor_for(max_age_days)
    result = validate_raw(value, kind, floor=floor)
    if not isinstance(result, ItemError):
        return kind, value
    shown = [
        f"{e['loc'][0]}={_shown(event[e['loc'][0]])}"
        for e in result.errors
        if e["type"] not in _TIME_RANGE and len(e["loc"]) == 1 and e["loc"][0] in event
    ]
    reason = result.reason() + (f" (value {', '.join(shown)})" if shown else "")
    if any(e["type"] == "past_timestamp" and "MAX_AGE" in e["msg"] for e in result.errors):
        reason += (
            f"; to load older history raise QW_INGEST_MAX_AGE_DAYS (now {max_age_days}) for "
            "ingest and for this command, then load the file again with --restart"
        )
    raise ValueError(reason)


SHOWN_CHARS = 200  # of a refused value, in a reason
SHOWN_QUEUES = 20  # queues not admitted, named in the line that ends a load
REFUSED_KEPT = 1000  # ... and kept to be named (a load of a million queues: no more)


def _shown(value: Any) -> str:
    """A refused value as a reason shows it: its repr, cut short past ``SHOWN_CHARS``."""
    text = repr(value)
    if len(text) <= SHOWN_CHARS:
        return text
    return f"{text[:SHOWN_CHARS]}... ({len(text):,} characters)"


@dataclass(slots=True)
class Progress:
    file: Path
    rows: int = 0
    sent: int = 0
    rejected: int = 0
    total: int | None = None  # data rows in the file, when known
    t0: float = 0.0  # time.monotonic() when this run started on the file
    rows0: int = 0  # rows done before this run (the checkpoint)
    limit: float = 0.0  # --rate (0: none)

    @property
    def rate(self) -> float:
        """Rows per second in this run (the ETA's: at most --rate, which the first rows,
        sent at once, run ahead of)."""
        rate = (self.rows - self.rows0) / max(time.monotonic() - self.t0, 1e-9)
        return min(rate, self.limit) if self.limit > 0 else rate

    def left(self) -> str:
        """The time left at this run's rate, as ``"1:02:03 left"``; ``""`` while it cannot
        be told (a gzipped file's rows are not counted first; no row done yet)."""
        rate = self.rate
        if self.total is None or self.rows <= self.rows0 or rate <= 0:
            return ""
        if time.monotonic() - self.t0 < 1.0:
            return ""  # (a rate of a few rows in the first instants says nothing yet)
        seconds = math.ceil(max(self.total - self.rows, 0) / rate)
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d} left"


class ReadStoppedError(Exception):
    """``count_rows`` was told to stop before it read the file through."""


def _parquet_read_through(path: Path, stopped: Callable[[], bool]) -> int:
    """The rows of a Parquet file, its text and binary cells checked against the bound
    (``check_parquet_cells``, batch by batch: no row is converted)."""
    try:
        reader = open_parquet(path)
        for _batch in parquet_batches(reader, 10_000, path.name):
            if stopped():
                raise ReadStoppedError
        return int(reader.metadata.num_rows)
    except ReadStoppedError:
        raise
    except InputError as exc:  # the bounds (shared/analysis/load.py): analyze's words
        raise BackfillError(str(exc), BAD_INPUT) from None
    except Exception as exc:  # pyarrow raises its own error types; report any of them
        raise BackfillError(f"cannot read {path.name} as Parquet: {exc}", BAD_INPUT) from None


def _never() -> bool:
    return False


def count_rows(path: Path, fmt: str, stopped: Callable[[], bool] = _never) -> int:
    """Data rows in the file, for the progress bar: Parquet's metadata; the lines of a text
    file (``.gz``: decompressed), read through once before any row of it is sent, and
    decoded as UTF-8 on the way (in blocks of whole lines, no parsing), so that a byte that
    is not UTF-8 anywhere in it stops the load before it begins, in ``_lines``' words. A
    Parquet file's text and binary columns are read through the same way, so that a cell
    past ``MAX_LINE_BYTES`` anywhere stops the load before it begins (the load checks each
    batch again: the file may change in between). ``ReadStoppedError`` once ``stopped()`` says
    so (asked between blocks: a read-through of gigabytes takes a minute or more, and runs
    on a thread of its own while Ctrl-C is taken)."""
    if fmt == "parquet":
        return _parquet_read_through(path, stopped)
    lines, rest, offset = 0, b"", 0  # offset: bytes before ``rest`` (a BOM excluded)
    blank = 0  # blank lines: no row (the progress bar's total counts rows)
    quoted = False  # a CSV file with a quote: its records are counted by the csv module
    try:
        with gzip.open(path, "rb") if _gzipped(path) else path.open("rb") as f:
            first = True
            # blocks of the bound: a line between two line ends of a block is shorter than
            # the bound, so only the first (begun in ``rest``) and the last can be longer
            while chunk := f.read(MAX_LINE_BYTES):
                if stopped():
                    raise ReadStoppedError
                if first and chunk.startswith(_BOM):
                    chunk = chunk[len(_BOM) :]
                first = False
                data = rest + chunk
                cut = data.rfind(b"\n") + 1  # (a block of whole lines: no character split)
                if cut and data.find(b"\n") > MAX_LINE_BYTES:
                    raise _too_long(path, lines + 1)
                _utf8(path, data[:cut], lines, offset)
                # a quote, or a line longer than a field may be: the csv module decides
                quoted = quoted or (
                    fmt == "csv" and (b'"' in chunk or _longest_line(data[:cut]) > CSV_FIELD_CHARS)
                )
                lines += data.count(b"\n", 0, cut)
                blank += len(_BLANK_LINE[fmt].findall(data, 0, cut))
                offset += cut
                rest = data[cut:]
                if len(rest) > MAX_LINE_BYTES:  # (not read further: a line too long)
                    raise _too_long(path, lines + 1)
            _utf8(path, rest, lines, offset)
            quoted = quoted or (fmt == "csv" and len(rest) > CSV_FIELD_CHARS)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise BackfillError(f"cannot read {path}: {exc}", BAD_INPUT) from None
    if quoted:  # (a quoted field may hold line ends, or be longer than the csv module takes)
        records = -1  # (the header)
        for _ in _csv_records(path):
            records += 1
            if records % 256 == 0 and stopped():  # (a record may be megabytes)
                raise ReadStoppedError
        return max(0, records)
    lines += bool(rest) and not _BLANK_LINE[fmt].fullmatch(rest + b"\n")  # (no newline at the end)
    rows = lines - blank
    return max(0, rows - 1) if fmt == "csv" else rows


def _longest_line(block: bytes) -> int:
    """The length of the longest line of ``block`` (whole lines), its line end included."""
    import numpy as np  # (the line ends found at C speed: a block holds thousands)

    ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 0x0A)
    if ends.size == 0:
        return len(block)
    return int(max(ends[0] + 1, np.diff(ends).max(initial=0)))


def _utf8(path: Path, block: bytes, lines_before: int, offset: int) -> None:
    try:
        block.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = lines_before + block.count(b"\n", 0, exc.start) + 1
        raise BackfillError(
            f"{path.name} is not UTF-8 text (line {line}, byte {offset + exc.start}: "
            f"{exc.reason})" + (looks_like(path, block) if offset == 0 else ""),
            BAD_INPUT,
        ) from None


class Reporter(Protocol):
    def progress(self, prog: Progress) -> None: ...

    def finished(self, prog: Progress, cp: Checkpoint, rejects: Path) -> None: ...

    def already_loaded(self, file: Path, cp: Checkpoint, rejects: Path) -> None: ...

    def resuming(self, file: Path, cp: Checkpoint) -> None: ...

    def reading(self, file: Path) -> None: ...

    def error(self, message: str) -> None: ...

    def note(self, message: str) -> None: ...


async def load_file(
    path: Path,
    kafka: KafkaSettings,
    *,
    checkpoint_path: Path,
    rejects_path: Path,
    restart: bool = False,
    max_rejects: int = 1000,
    max_age_days: int = MAX_AGE_DAYS,
    rate: float = 0.0,
    stop: asyncio.Event | None = None,
    reporter: Reporter | None = None,
    refusal: Callable[[str], str | None] | None = None,
) -> Checkpoint:
    """Load one file (from its checkpoint on); returns the checkpoint as saved. Stops early,
    with everything acknowledged and saved, when ``stop`` is set. ``BackfillError`` for a
    file it cannot read (``preflight``), more than ``max_rejects`` rows rejected, or a file
    loaded to its end without one row sent (every row rejected). ``refusal``: why ingest
    would refuse a queue (``queue_refusal``), None for one it takes."""
    fmt = preflight(path)
    cp = Checkpoint.load_or_new(checkpoint_path, path, restart=restart)
    prog = Progress(
        path, cp.rows, cp.sent, cp.rejected, t0=time.monotonic(), rows0=cp.rows, limit=rate
    )
    if cp.done:  # nothing to send: say so, not "loaded"
        if reporter is not None:
            reporter.already_loaded(path, cp, rejects_path)
        return cp
    topics = kafka.topics
    from aiokafka.errors import MessageSizeTooLargeError

    from shared.kafka import ensure_topics, make_producer, message_limits

    if cp.rejected > max_rejects:  # stopped there before: not one more row, the same words
        raise BackfillError(_too_many(path, max_rejects, _first_reject(rejects_path), rejects_path))
    if cp.rows == 0:
        _forget(rejects_path)  # (a load from the start: its own rejects only)
    elif reporter is not None:
        reporter.resuming(path, cp)
    loop = asyncio.get_running_loop()
    # said only of a read-through that takes a while (a large or gzipped file)
    say = loop.call_later(READ_THROUGH_SAY_S, reporter.reading, path) if reporter else None
    try:
        prog.total = await asyncio.to_thread(count_rows, path, fmt, stop.is_set if stop else _never)
    except ReadStoppedError:  # Ctrl-C before the load began: nothing sent, the checkpoint as it was
        if reporter is not None:
            reporter.finished(prog, cp, rejects_path)
        return cp
    finally:
        if say is not None:
            say.cancel()
    await ensure_topics(kafka)
    limits = await message_limits(kafka, [topics.decisions_raw, topics.verdicts_raw])
    producer = make_producer(kafka, linger_ms=20)
    await producer.start()
    # (row, topic, message bytes, acknowledgement), in row order
    pending: list[tuple[int, str, int, asyncio.Future[Any]]] = []
    last_save = started = prog.t0 = time.monotonic()  # (the rate: of sending, not set-up)
    base = cp.rows
    rejects: IO[str] | None = None
    first_reject = ""  # of this run: "row N: reason", for the line that ends a failed load
    rejected_rows: list[int] = []  # of this run, in order
    refused: dict[str, None] = {}  # queues ingest would refuse, as first met (an ordered set)

    def reject(row: int, problem: str) -> None:
        nonlocal rejects, first_reject
        if rejects is None:
            rejects_path.parent.mkdir(parents=True, exist_ok=True)
            # a load from the first row starts the rejects anew; a resumed one adds
            rejects = rejects_path.open("w" if base == 0 else "a", encoding="utf-8")
        rejects.write(json.dumps({"row": row, "reason": problem}) + "\n")
        rejected_rows.append(row)
        prog.rejected += 1
        first_reject = first_reject or f"row {row:,}: {problem}"

    def back_to(row: int) -> None:
        """Forget this run's rows from ``row`` on (a send failed there): the checkpoint
        says the rows before it, and the same command goes on from it, rejects included."""
        nonlocal rejects
        prog.sent -= sum(1 for r, *_ in pending if r >= row)
        dropped = sum(1 for r in rejected_rows if r >= row)
        if dropped:
            assert rejects is not None
            rejects.close()
            rejects = None
            kept = [
                line
                for line in rejects_path.read_text(encoding="utf-8").splitlines(keepends=True)
                if json.loads(line)["row"] < row
            ]
            rejects_path.write_text("".join(kept), encoding="utf-8")
            prog.rejected -= dropped
        prog.rows = row - 1
        cp.done = False

    async def settle() -> None:
        nonlocal last_save
        acks = await asyncio.gather(*(ack for *_, ack in pending), return_exceptions=True)
        failed = next(
            (
                (row, topic, size, ack)
                for (row, topic, size, _), ack in zip(pending, acks, strict=True)
                if isinstance(ack, BaseException)
            ),
            None,
        )
        if failed is not None:
            row, topic, size, exc = failed
            back_to(row)
        pending.clear()
        cp.rows, cp.sent, cp.rejected = prog.rows, prog.sent, prog.rejected
        cp.save(checkpoint_path)
        last_save = time.monotonic()
        if reporter is not None:
            reporter.progress(prog)
        if failed is None:
            return
        if isinstance(exc, MessageSizeTooLargeError):  # a limit not as the broker described it
            raise BackfillError(
                f"{path.name}: row {row:,}: the broker refused its event ({size:,} bytes of "
                f"JSON) as too large for {topic}, whose max.message.bytes was said to be "
                f"{limits[topic]:,}; the load stopped after row {row - 1:,}: leave the event's "
                "largest column out of the export, or raise the topic's max.message.bytes, "
                "then run the same command"
            )
        raise exc

    try:
        skipping = cp.rows > 0
        for row in read_rows(path, fmt):
            if row.number <= cp.rows:  # loaded before the checkpoint
                if row.number % SKIP_YIELD_ROWS == 0:
                    await asyncio.sleep(0)  # (Ctrl-C is taken on the event loop)
                    if stop is not None and stop.is_set():
                        break
                continue
            if skipping:  # the rate and the ETA: from here, not from the rows skipped
                skipping = False
                last_save = started = prog.t0 = time.monotonic()
            if stop is not None and stop.is_set():
                break
            problem = row.problem
            if problem is None and row.event is not None:
                try:
                    kind, value = check(row.event, max_age_days)
                except ValueError as exc:
                    problem = str(exc)
                else:
                    queue = row.event["queue_id"]
                    problem = refusal(queue) if refusal is not None else None
                    if problem is not None and len(refused) < REFUSED_KEPT:
                        refused.setdefault(queue)
                    topic = topics.decisions_raw if kind == "decision" else topics.verdicts_raw
                    key = queue_key(queue)
                    if problem is None:
                        problem = _too_large(row.event, value, key, topic, limits[topic])
                    if problem is None:
                        ack = await producer.send(topic, value, key=key)
                        pending.append((row.number, topic, len(value), ack))
                        prog.sent += 1
            if problem is not None:
                reject(row.number, problem)
            prog.rows = row.number
            if prog.rejected > max_rejects:
                await settle()
                raise BackfillError(
                    _too_many(path, max_rejects, first_reject, rejects_path, list(refused))
                )
            if rate > 0:
                ahead = (prog.rows - base) / rate - (time.monotonic() - started)
                if ahead > 0.01:
                    if stop is None:
                        await asyncio.sleep(ahead)
                    else:  # Ctrl-C ends the wait, however slow the rate
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), ahead)
            if len(pending) >= IN_FLIGHT or time.monotonic() - last_save >= CHECKPOINT_EVERY_S:
                await settle()
        else:
            cp.done = True
        await settle()
    except BackfillError:  # e.g. a byte that is not UTF-8: keep what was sent before it
        await settle()
        raise
    finally:
        if rejects is not None:
            rejects.close()
        with contextlib.suppress(Exception):
            await producer.stop()
    if cp.done and cp.sent == 0:  # not "loaded": the same command stops here again
        cp.done = False
        cp.save(checkpoint_path)
        first = f" (the first: {first_reject})" if first_reject else ""
        every = "its one row was" if cp.rows == 1 else f"all {cp.rows:,} rows were"
        raise BackfillError(
            f"{path.name}: no row sent: {every} rejected{first}; all the "
            f"reasons are in {rejects_path}{_refused_queues(list(refused))}; fix the export "
            "(or what the reason names), then load it again with --restart"
        )
    if reporter is not None:
        reporter.finished(prog, cp, rejects_path)
    return cp


def _too_large(
    event: dict[str, Any], value: bytes, key: bytes, topic: str, limit: int
) -> str | None:
    """Why the message cannot be sent to ``topic`` (its max.message.bytes is ``limit``; the
    producer's own bound, ``MAX_REQUEST_BYTES``, applies whatever the topic allows), naming
    the largest column; None when it fits."""
    from shared.kafka import MAX_REQUEST_BYTES

    bound = min(limit, MAX_REQUEST_BYTES)
    room = bound - RECORD_OVERHEAD - len(key)
    if len(value) <= room:
        return None
    if limit <= MAX_REQUEST_BYTES:
        why, raise_it = (
            f"its max.message.bytes is {limit:,}",
            ", or raise the topic's max.message.bytes",
        )
    else:
        why, raise_it = f"{MAX_REQUEST_BYTES:,}, the most a QualityWatch producer sends", ""
    sizes = {n: len(codec.dumps(v)) for n, v in event.items()}
    name = max(sizes, key=sizes.__getitem__)
    if sizes[name] >= len(value) - room:
        fix = f"leave that column out of the export{raise_it}"
    else:
        fix = (
            "leaving it out is not enough: leave out the columns QualityWatch does not read "
            f"(docs/events.md lists those it does){raise_it}"
        )
    return (
        f"the event is {len(value):,} bytes of JSON and {topic} takes at most {room:,} "
        f"({why}); its largest column, {name!r}, holds {sizes[name]:,}: {fix}"
    )


def _forget(path: Path) -> None:
    path.unlink(missing_ok=True)


def _first_reject(rejects_path: Path) -> str:
    """The first line of a rejects file as "row N: reason" ("" if none can be read)."""
    try:
        with rejects_path.open(encoding="utf-8") as f:
            first = json.loads(f.readline())
        return f"row {int(first['row']):,}: {first['reason']}"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def _refused_queues(queues: Sequence[str]) -> str:
    """The queues of a load's rows that ingest would refuse, for the line that ends it: the
    first reason says what admits one, and this names them all (``SHOWN_QUEUES`` of them)."""
    if not queues:
        return ""
    more = len(queues) - SHOWN_QUEUES
    names = " ".join(queues[:SHOWN_QUEUES]) + (
        f" and {more:,}{'+' if len(queues) >= REFUSED_KEPT else ''} more" if more > 0 else ""
    )
    return f"; the rows of {_n(len(queues), 'queue')} not admitted were rejected: {names}"


def _too_many(
    path: Path, max_rejects: int, first_reject: str, rejects_path: Path, queues: Sequence[str] = ()
) -> str:
    first = f"the first: {first_reject}; " if first_reject else ""
    return (
        f"{path.name}: more than {max_rejects:,} rows rejected, so the load stops here ({first}"
        f"all the reasons are in {rejects_path}{_refused_queues(queues)}). Rejected rows are sent only by a load with "
        "--restart: fix what the reasons say (the export, or e.g. admit the queue), then load "
        "the file again with --restart; or, to go on without the rejected rows, run the same "
        "command with a higher --max-rejects"
    )


async def run_backfill(
    files: list[Path],
    kafka: KafkaSettings,
    *,
    state_dir: Path,
    restart: bool = False,
    max_rejects: int = 1000,
    max_age_days: int | None = None,
    rate: float = 0.0,
    reporter: Reporter | None = None,
    queues: QueuePolicy | None = None,
    ingest_group: str | None = None,
) -> int:
    """Load ``files`` in order; returns the exit code: 0; 130 when interrupted (the
    checkpoints are saved: the same command resumes); or, after one line on the reporter
    (else stderr) saying why, ``BAD_INPUT`` (2) for a file it cannot read, before any file
    is loaded, and 1 for a file whose load failed (too many rejects, none sent): the files
    after it are not loaded, since their order matters (docs/operations.md, "Backfill").
    ``max_age_days``: QW_INGEST_MAX_AGE_DAYS, read from the environment as ingest reads it
    when None. ``queues``: ingest's queue admission (``queue_refusal``); None: not checked.
    The admitted queues are read from the broker only when some file has rows left to send
    (not on a rerun after a complete load), after Ctrl-C is taken: Ctrl-C while they are
    read stops the command (130) with nothing sent, and a broker failure there is one line
    (``queue_refusal``). ``ingest_group``: ingest's consumer group (without the topic
    prefix); a load that may send a row first asks whether anyone is in it, and says what
    that means when nobody is (``no_ingest``). None: not asked."""
    say = reporter.error if reporter is not None else _stderr
    try:
        for file in files:
            preflight(file)  # every file, before the first is loaded
        if max_age_days is None:
            from services.ingest.settings import IngestSettings

            max_age_days = IngestSettings().max_age_days
    except BackfillError as exc:
        say(str(exc))
        return exc.code
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        refusal = None
        # the admitted queues are a broker round trip: only for a load that may send a row
        if queues is not None and any(to_send(f, state_dir, kafka, restart=restart) for f in files):
            refusal = await _unless_stopped(queue_refusal(kafka, queues), stop)
            if stop.is_set():
                say(
                    "stopped while reading the admitted queues, before the load began: "
                    "nothing was sent; run the same command to load the files"
                )
                return INTERRUPTED
        if ingest_group is not None and any(
            to_send(f, state_dir, kafka, restart=restart) for f in files
        ):
            from shared.kafka import group_members

            members = await _unless_stopped(group_members(kafka, ingest_group), stop)
            if members == 0 and reporter is not None:
                reporter.note(no_ingest(kafka.topic_prefix + ingest_group))
        for file in files:
            cp_path = Checkpoint.path_for(state_dir, file, kafka)
            cp = await load_file(
                file, kafka, checkpoint_path=cp_path,
                rejects_path=cp_path.with_suffix(".rejects.ndjson"), restart=restart,
                max_rejects=max_rejects, max_age_days=max_age_days, rate=rate, stop=stop,
                reporter=reporter, refusal=refusal,
            )  # fmt: skip
            if not cp.done:
                return INTERRUPTED
    except BackfillError as exc:
        say(str(exc))
        return exc.code
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def to_send(file: Path, state_dir: Path, kafka: KafkaSettings, *, restart: bool) -> bool:
    """Whether the load may send rows of ``file`` to ``kafka``: not when its checkpoint says
    it is loaded there (``load_file`` then says so and sends nothing; the broker need not be
    asked anything). A checkpoint it cannot take (changed file, not a checkpoint) counts as
    rows to send: ``load_file`` says why, in its turn."""
    if restart:
        return True
    try:
        path = Checkpoint.path_for(state_dir, file, kafka)
        cp = Checkpoint.load_or_new(path, file, restart=False)
    except (BackfillError, OSError):
        return True
    return not cp.done


async def _unless_stopped(work: Coroutine[Any, Any, _T], stop: asyncio.Event) -> _T | None:
    """``work``'s result, or None once ``stop`` is set (Ctrl-C) before it ends: it is then
    cancelled, and waited for (a broker client it opened is closed)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # (this coroutine cancelled: the work too)
        task.cancel()
        raise
    finally:
        stopped.cancel()
    if not stop.is_set():
        return task.result()  # (its error, if it failed)
    task.cancel()
    await asyncio.wait({task})  # its end: a client it opened closed (no error raised here)
    if not task.cancelled():
        task.exception()  # (ended by an error as it was stopped: the stop is what is said)
    return None


async def queue_refusal(
    kafka: KafkaSettings, queues: QueuePolicy
) -> Callable[[str], str | None] | None:
    """Why ingest would refuse a queue's events (None: it takes them), decided as ingest
    decides (``QueuePolicy``: its mode and static list, from the settings this command
    reads, and the queues admitted at run time, read here from the admitted-queues topic).
    A row of such a queue would be dead-lettered by ingest; the backfill rejects it instead,
    with ingest's reason. None in open mode, where each ingest process counts its own.
    ``BackfillError`` (one line) when the broker fails to answer: exit status 2 when it
    cannot be reached (as the command says of a broker it cannot reach), else 1."""
    if queues.mode == "open":
        return None
    if queues.runtime_admission:
        from aiokafka.errors import KafkaConnectionError, KafkaError

        from shared.admission import AdmissionLog
        from shared.kafka import TopicCreationError, ensure_topics

        try:
            await ensure_topics(kafka)
            log = AdmissionLog(kafka, queues.apply)
            try:
                await log.start()
            finally:
                await log.stop()
        except (KafkaError, TopicCreationError, OSError, TimeoutError) as exc:
            unreachable = isinstance(exc, KafkaConnectionError | OSError | TimeoutError)
            reason = " ".join(str(exc).split()) or type(exc).__name__  # (one line)
            raise BackfillError(
                f"cannot read the admitted queues ({kafka.topics.queues}) from the Kafka broker "
                f"at {kafka.bootstrap} (QW_KAFKA_BOOTSTRAP): {reason}; nothing was sent",
                2 if unreachable else 1,
            ) from None

    def refusal(queue_id: str) -> str | None:
        if queues.how(queue_id, take=False) is not None:
            return None
        return (
            f"{queues.refusal(queue_id)}; ingest would dead-letter its events (this command "
            "checks queues with the QW_INGEST_QUEUES settings it is given, as ingest does)"
        )

    return refusal


def no_ingest(group: str) -> str:
    """What a load sent while no ingest process reads the raw topics means, and the cure."""
    return (
        f"no ingest process is reading the raw topics now (its consumer group {group} has "
        "no member): the rows wait there, counted only once ingest and the scorer run. To "
        "watch them counted as they are sent, start those first (Ctrl-C now stops this load; "
        'the same command resumes it): docs/operations.md, "Backfill"'
    )


def _n(count: int, noun: str) -> str:
    """``1 row``, ``2 rows``, ``1,000 rows``."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _stderr(message: str) -> None:
    print(f"qwatch: {message}", file=sys.stderr)


class RichReporter:
    """A progress bar per file on a terminal (rows, rate, ETA); a line every few seconds
    otherwise. A load that stops (Ctrl-C, an error such as --max-rejects) ends the bar
    before its line, so that the line is the last thing on the terminal. ``console``: where
    to write (tests); stderr by default."""

    def __init__(self, console: Console | None = None, *, restart: bool = False) -> None:
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

        # piped: one line per message
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.bar = Bar(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} rows/s"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), console=self.console, transient=False,
        )  # fmt: skip
        self.tasks: dict[Path, Any] = {}
        # the command ran with --restart: the same command would start again from row 1
        self.again = "the same command without --restart" if restart else "the same command"
        self._said: tuple[Path, int, int, int] | None = None  # the last progress line's
        self.live = self.console.is_terminal
        self._drawing = self.live  # the bar is on the terminal, redrawn until stopped
        if self.live:
            self.bar.start()

    def progress(self, prog: Progress) -> None:
        rate = prog.rate
        if not self.live:
            said = (prog.file, prog.rows, prog.sent, prog.rejected)
            if said == self._said:
                return  # (a stop settles twice: its line once)
            self._said = said
            total = f"/{prog.total:,}" if prog.total is not None else ""
            left = prog.left()
            # (a rate of the first instants says nothing yet)
            speed = f", {rate:,.0f} rows/s" if time.monotonic() - prog.t0 >= 1.0 else ""
            self._say(
                f"{prog.file.name}: {prog.rows:,}{total} rows, {prog.sent:,} sent, "
                f"{prog.rejected:,} rejected{speed}" + (f", {left}" if left else "")
            )
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
            task = self.tasks.pop(prog.file, None)
            if task is not None:  # its line replaces its bar: a load ends on its lines
                self.bar.remove_task(task)
                self.bar.refresh()  # (else the line is printed above the bar last drawn)
            self._say(
                f"{prog.file.name}: loaded, {_n(cp.rows, 'row')}: {_n(cp.sent, 'event')} sent, "
                f"{cp.rejected:,} rejected{where}"
            )
        else:
            self._stop_bar()  # else rich draws the bar again below the line
            self._say(
                f"{prog.file.name}: stopped after {_n(cp.rows, 'row')} ({cp.sent:,} sent, "
                f"{cp.rejected:,} rejected, all acknowledged); run {self.again} to "
                f"resume{where}"
            )

    def already_loaded(self, file: Path, cp: Checkpoint, rejects: Path) -> None:
        where = f"; rejected rows and why: {rejects}" if cp.rejected else ""
        self._say(
            f"{file.name}: already loaded (its checkpoint: {_n(cp.rows, 'row')}, "
            f"{_n(cp.sent, 'event')} sent, {cp.rejected:,} rejected{where}): nothing sent now; "
            "--restart loads it again"
        )

    def reading(self, file: Path) -> None:
        self._say(
            f"{file.name}: reading it through before the load begins (a line too long or a "
            "byte that is not UTF-8 anywhere in it stops the load before any row is sent)"
        )

    def resuming(self, file: Path, cp: Checkpoint) -> None:
        self._say(
            f"{file.name}: resuming after row {cp.rows:,} (its checkpoint: "
            f"{_n(cp.sent, 'event')} sent, {cp.rejected:,} rejected); --restart loads it from "
            "the first row"
        )

    def error(self, message: str) -> None:
        self._stop_bar()  # the command ends with this line (--max-rejects...): the last one
        self._say(f"qwatch: {message}")

    def note(self, message: str) -> None:
        """A line the load goes on after (a bar drawn goes on below it)."""
        self._say(f"qwatch: {message}")

    def _say(self, line: str) -> None:
        self.console.print(line, highlight=False, markup=False)  # a file name is no markup

    def _stop_bar(self) -> None:
        """End the bar where it stands (its last state stays on the terminal): a line
        printed while it runs goes above it, and the bar is drawn again below."""
        if self._drawing:
            self._drawing = False
            self.bar.stop()

    def close(self) -> None:
        self._stop_bar()
