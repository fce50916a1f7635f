"""Read a verdicts file as columns, streaming: the loader of ``qwatch analyze`` at scale.

:func:`shared.analysis.load.load_verdicts` keeps the whole file, a dict per record and a
:class:`~shared.analysis.load.VerdictRow` per verdict: about 1 KB a verdict.  This module
reads the same files (CSV, NDJSON, Parquet, ``.gz``) line by line (Parquet batch by batch)
and keeps, per verdict, only what the charts need: the group (an ``int32`` code), the time
(``int64`` microseconds since the epoch, UTC) and the outcome (one byte), plus two 64-bit
hashes of the ``verdict_id`` for the duplicate check: about 30 bytes a verdict while
reading, so 10 million verdicts fit in a few hundred MB.

It accepts and refuses exactly what :mod:`shared.analysis.load` does, with the same
messages, and reports the same problem first when a file has several (the tests compare the
two on generated files): a value that cannot be read is looked at again by
:func:`~shared.analysis.load.parse_row` itself, so only well-formed values take the fast
path.  What it adds are bounds a streaming reader needs: a line longer than
:data:`MAX_LINE_BYTES` is refused instead of read into memory.

CSV is read in bulk where it can be (:mod:`shared.analysis.bulk`: numpy on each chunk;
the rows and chunks it leaves are read as before), which is what makes 10 million rows a
matter of seconds; Parquet likewise, batch by batch from its typed or text columns
(``_parquet_fast``); and NDJSON, each line decoded by orjson and a chunk's records read as
columns (``_JsonRows``), a line orjson decodes otherwise than ``json`` (or refuses) and every
record the columns cannot say read by ``json`` and ``parse_row`` in its place.

Repeated ``verdict_id`` values are found by a 128-bit fingerprint of the id's UTF-8 bytes:
an id of at most 8 bytes is its own (its bytes as a word, and its length: exact); a longer
one gets two independent 64-bit hashes, and two different ids would have to collide in both
for a verdict to be dropped wrongly, a chance of about n² / 2¹²⁹ (10⁻²⁵ for 10 million
verdicts).
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Literal, overload

import numpy as np
import numpy.typing as npt
import orjson

from shared.analysis.bulk import Fields, TextColumn, iso_micros, split_lines, text_column, words
from shared.analysis.errors import InputError
from shared.analysis.load import (
    _FALSE,
    _OUTCOMES,
    _TRUE,
    EARLIEST,
    LATEST,
    MAX_LINE_BYTES,
    RANDOM,
    LoadOptions,
    VerdictRow,
    _blank,
    _read_correct,
    _Where,
    check_columns,
    detect_format,
    load_notes,
    looks_like,
    micro_times,
    no_verdicts,
    open_parquet,
    parquet_batches,
    parse_row,
    read_csv_header,
)

__all__ = [
    "EPOCH",
    "MAX_LINE_BYTES",
    "US",
    "Int64s",
    "VerdictColumns",
    "load_columns",
    "micros_to_datetime",
]

READ_BYTES = MAX_LINE_BYTES
"""How much of the file is read at a time (at most ``MAX_LINE_BYTES``; the tests make it
small, to put chunk boundaries everywhere)."""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
_EARLIEST_US = (EARLIEST - EPOCH) // US
_LATEST_US = (LATEST - EPOCH) // US
_GROUP_COLUMN = {"queue": "queue_id", "site": "site_id", "policy": "policy_id"}
_BOM = b"\xef\xbb\xbf"
_ID_SALT = b"\x00qwatch-dedup"

Int64s = npt.NDArray[np.int64]
# a text column's bytes (64 NULs after them) and, per row, where its value starts and ends
Span = tuple[npt.NDArray[np.uint8], Int64s, Int64s]
# a correct column, per row: says incorrect; says correct or incorrect; is blank (outcome says)
Correct = tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]


@dataclass(frozen=True, slots=True)
class VerdictColumns:
    """The verdicts that count, as columns (file order), and what was left out.

    Attributes:
        by: the grouping the codes are for (``queue``, ``site`` or ``policy``).
        names: the group name of each code (``"(no site_id)"`` for rows without one).
        valued: per code, whether the rows had a value in the group column.
        group: the code of each verdict (int32).
        time: when each verdict was given, microseconds since 1970-01-01 UTC (int64).
        incorrect: each verdict's outcome (bool).
        rows_read, columns, left_out_by_sample_type, duplicates, notes: as in
            :class:`~shared.analysis.load.Verdicts`.
    """

    by: str
    names: tuple[str, ...]
    valued: tuple[bool, ...]
    group: npt.NDArray[np.int32]
    time: Int64s
    incorrect: npt.NDArray[np.bool_]
    rows_read: int
    columns: tuple[str, ...]
    left_out_by_sample_type: Mapping[str, int]
    duplicates: int
    notes: tuple[str, ...]

    @property
    def rows_used(self) -> int:
        return int(self.time.size)


# --------------------------------------------------------------------------------------------
# Lines: bounded, decoded, errors located as a whole-file decode would
# --------------------------------------------------------------------------------------------


class _Lines:
    """The text of a (possibly gzipped) UTF-8 file in chunks of whole lines (~``READ_BYTES``
    each)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.line = 0  # lines before the chunk being cut
        self.offset = 0  # bytes before the chunk being cut, BOM excluded (as utf-8-sig counts)
        self.nonblank = False
        self.failed = False
        # where reading is, kept here so that drain() goes on from the last chunk given:
        self._pending = b""  # the unfinished line after the last newline read
        self._ended = False
        self._start = True
        self._head = b""  # the file's first bytes: what they say it is, if it does not decode
        try:
            self.file: gzip.GzipFile | IO[bytes] = (
                gzip.open(path, "rb")  # noqa: SIM115  # closed by close(), as the reader ends
                if path.suffix.lower() == ".gz"
                else path.open("rb")
            )
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc}") from exc

    def close(self) -> None:
        self.file.close()

    def _read(self) -> bytes:
        try:
            return self.file.read(READ_BYTES)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            self.failed = True
            raise InputError(f"cannot read {self.path}: {exc}") from exc

    def _too_long(self) -> InputError:
        self.failed = True
        return InputError(
            # (the file is named by whoever shows it: analyze's "FILE: line N ...")
            f"line {self.line + 1} is longer than {MAX_LINE_BYTES:,} bytes; no verdict is that "
            "long (a free-text column? leave out of the export the columns QualityWatch does not "
            "read: docs/events.md lists those it does)"
        )

    @overload
    def chunks(self, raw: Literal[False] = False) -> Iterator[str]: ...
    @overload
    def chunks(self, raw: Literal[True]) -> Iterator[bytes]: ...

    def chunks(self, raw: bool = False) -> Iterator[str] | Iterator[bytes]:
        """Decoded text (``raw``: the bytes, checked to be UTF-8), each chunk ending with
        ``\n`` but the last; a second call goes on after the last chunk the first gave.

        A line longer than :data:`MAX_LINE_BYTES` is refused: a line inside one block is
        shorter than a block, so only the line carried over from the previous block (the
        first of a chunk) and the unfinished tail can be longer.
        """
        while True:
            block = b"" if self._ended else self._read()
            if self._start:
                self._head = block[:8]
            if self._start and block.startswith(_BOM):
                block = block[3:]
            self._start = False
            self._ended = not block
            data = self._pending + block if block else self._pending
            if not data:
                return
            if block:
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    if len(data) > MAX_LINE_BYTES:
                        raise self._too_long()
                    self._pending = data
                    continue
                piece, self._pending = data[:cut], data[cut:]
            else:
                piece, self._pending = data, b""
            first = piece.find(b"\n")
            if (first if first >= 0 else len(piece)) > MAX_LINE_BYTES:
                raise self._too_long()
            try:
                text = piece.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.failed = True
                line = self.line + piece.count(b"\n", 0, exc.start) + 1
                raise InputError(
                    f"{self.path.name} is not UTF-8 text "
                    f"(line {line}, byte {self.offset + exc.start}: {exc.reason})"
                    + looks_like(self.path, self._head)
                ) from exc
            if not self.nonblank and text.strip():
                self.nonblank = True
            # (counted before it is given: the reader may stop inside it, and drain() goes on)
            self.offset += len(piece)
            self.line += piece.count(b"\n")
            yield piece if raw else text

    def empty_error(self) -> InputError:
        return InputError(f"{self.path.name} is empty")

    def drain(self) -> None:
        """Read the rest of the file for what the whole-file reader reports first: an
        undecodable byte or an unreadable (gzip) stream."""
        if self.failed:
            return
        for _ in self.chunks():
            pass


# --------------------------------------------------------------------------------------------
# Columns under construction
# --------------------------------------------------------------------------------------------


class _Builder:
    """Validated verdicts appended as columns (the fast path) or via ``parse_row``."""

    def __init__(self, options: LoadOptions, by: str) -> None:
        self.options = options
        self.by_column = _GROUP_COLUMN[by]
        self.codes: dict[str | None, int] = {}
        self.group = array("i")
        self.time = array("q")
        self.incorrect = bytearray()
        self.blank_sample_types = 0  # rows whose sample_type is blank: random, as live
        self.has_id = bytearray()
        self.id_hash = array("q")
        self.id_hash2 = array("q")
        self.left_out: Counter[str] = Counter()
        self.decisions = 0  # decision rows skipped (an export for qwatch backfill)

    def code(self, value: str | None) -> int:
        code = self.codes.get(value)
        if code is None:
            code = self.codes[value] = len(self.codes)
        return code

    def add(
        self,
        group: str | None,
        micros: int,
        incorrect: bool,
        sample_type: str | None,
        verdict_id: str | None,
    ) -> None:
        if sample_type is None:
            self.blank_sample_types += 1
        elif sample_type != RANDOM and not self.options.all_samples:
            self.left_out[sample_type] += 1
            return
        self.group.append(self.code(group))
        self.time.append(micros)
        self.incorrect.append(incorrect)
        if verdict_id is None:
            self.has_id.append(0)
            self.id_hash.append(0)
            self.id_hash2.append(0)
        else:
            self.has_id.append(1)
            first, second = _fingerprint(verdict_id.encode("utf-8", "surrogatepass"))
            self.id_hash.append(first)
            self.id_hash2.append(second)

    def add_row(self, row: VerdictRow | None) -> None:
        """A row validated by the reference ``parse_row`` (the slow path); None: a decision
        row, skipped."""
        if row is None:
            self.decisions += 1
            return
        self.add(
            getattr(row, self.by_column),
            (row.reviewed_at - EPOCH) // US,
            row.incorrect,
            row.sample_type,
            row.verdict_id,
        )

    def finish(
        self, has_sample_type: bool, rows_read: int, columns: tuple[str, ...], source: str
    ) -> VerdictColumns:
        group = np.frombuffer(self.group, dtype=np.int32) if self.group else _empty(np.int32)
        time = np.frombuffer(self.time, dtype=np.int64) if self.time else _empty(np.int64)
        incorrect = np.frombuffer(self.incorrect, dtype=np.bool_)
        keep = np.ones(time.size, dtype=np.bool_)
        duplicates = 0
        has_id = np.frombuffer(self.has_id, dtype=np.bool_) & keep
        if has_id.any():
            rows = np.flatnonzero(has_id)
            h1 = np.frombuffer(self.id_hash, dtype=np.int64)[rows]
            order = np.argsort(h1, kind="stable")  # stable: equal ids stay in file order
            h1 = h1[order]
            tied = np.flatnonzero(h1[1:] == h1[:-1])  # order[k + 1] has the first hash of k
            del h1
            if tied.size:
                # only rows in a run of equal first hashes need the second one
                members = np.unique(np.concatenate((tied, tied + 1)))
                picked = rows[order[members]]
                h2 = np.frombuffer(self.id_hash2, dtype=np.int64)[picked]
                h1 = np.frombuffer(self.id_hash, dtype=np.int64)[picked]
                sub = np.lexsort((h2, h1))  # members are in file order within a hash: stable
                s1, s2 = h1[sub], h2[sub]
                repeat = np.zeros(sub.size, dtype=np.bool_)
                repeat[1:] = (s1[1:] == s1[:-1]) & (s2[1:] == s2[:-1])
                dropped = picked[sub[repeat]]
                duplicates = int(dropped.size)
                keep[dropped] = False
            del order, tied, rows
        del has_id
        rows_read -= self.decisions  # (the verdict rows)
        notes = load_notes(has_sample_type, self.options.all_samples, self.left_out, rows_read,
                           duplicates, self.blank_sample_types, self.decisions)  # fmt: skip
        if not keep.any():
            no_verdicts(source, rows_read, self.decisions, bool(self.left_out))
        if not keep.all():
            group, time, incorrect = group[keep], time[keep], incorrect[keep]
        else:
            group, time, incorrect = group.copy(), time.copy(), incorrect.copy()
        self.group = self.time = array("q")
        self.incorrect = self.has_id = bytearray()
        self.id_hash = self.id_hash2 = array("q")
        names = [""] * len(self.codes)
        valued = [False] * len(self.codes)
        for value, code in self.codes.items():
            names[code] = value if value is not None else f"(no {self.by_column})"
            valued[code] = value is not None
        return VerdictColumns(
            by=next(k for k, v in _GROUP_COLUMN.items() if v == self.by_column),
            names=tuple(names),
            valued=tuple(valued),
            group=group,
            time=time,
            incorrect=incorrect,
            rows_read=rows_read,
            columns=columns,
            left_out_by_sample_type=dict(self.left_out),
            duplicates=duplicates,
            notes=tuple(notes),
        )


def _fingerprint(ident: bytes) -> tuple[int, int]:
    """The two 64-bit numbers that stand for a verdict id (UTF-8) in the duplicate check.

    An id of at most 8 bytes is its own fingerprint (its bytes as a little-endian word, and
    its length): exact, and what :mod:`shared.analysis.bulk` computes for a whole column at
    once.  A longer one gets two independent hashes.
    """
    if len(ident) <= 8:
        value = int.from_bytes(ident, "little")
        return (value - (1 << 64) if value >= 1 << 63 else value), len(ident)
    return hash(ident), hash(ident + _ID_SALT)


def _empty(dtype: Any) -> Any:
    return np.zeros(0, dtype=dtype)


# --------------------------------------------------------------------------------------------
# The loader
# --------------------------------------------------------------------------------------------


def load_columns(
    path: Path, options: LoadOptions | None = None, by: str = "queue"
) -> VerdictColumns:
    """Read and validate a verdicts file into columns grouped ``by`` queue, site or policy.

    Accepts, refuses and reports exactly as :func:`~shared.analysis.load.load_verdicts`.

    Raises:
        InputError: as :func:`~shared.analysis.load.load_verdicts`, and for a line longer
            than :data:`MAX_LINE_BYTES`.
    """
    options = options or LoadOptions()
    file_format = detect_format(path, options.file_format)
    if not path.is_file():
        raise InputError(f"{'not a file' if path.exists() else 'no such file'}: {path}")
    builder = _Builder(options, by)
    if file_format == "parquet":
        return _load_parquet(path, options, builder)
    lines = _Lines(path)
    try:
        try:
            if file_format == "csv":
                return _load_csv(path, lines, options, builder)
            return _load_ndjson(path, lines, options, builder)
        except InputError:
            lines.drain()  # an undecodable byte anywhere is reported first, as load_verdicts does
            raise
    finally:
        lines.close()


def _finish_checks(
    builder: _Builder,
    source: str,
    rows_read: int,
    header: tuple[str, ...],
    fixed: bool,
    pending: InputError | None,
) -> VerdictColumns:
    if not rows_read:
        raise InputError(f"{source} has no verdict rows")
    check_columns(header, builder.options.time_column, source, fixed)
    if pending is not None:
        raise pending
    return builder.finish("sample_type" in header, rows_read, header, source)


def _load_csv(path: Path, lines: _Lines, options: LoadOptions, builder: _Builder) -> VerdictColumns:
    blocks = lines.chunks(raw=True)
    first = next(blocks, b"")
    header_end = first.find(b"\n")
    header = first[:header_end]
    if header_end < 0 or b'"' in header or b"\r" in header or b"\x00" in header:
        # a header the fast split might read otherwise: the csv module reads the whole file
        whole = _csv_reader(itertools.chain((first,), blocks))
        reader = _CsvRows(path, options, builder, whole)
        reader.rows(whole)
    else:
        reader = _CsvRows(path, options, builder, csv.reader([header.decode("utf-8")]))
        reader.line = 1
        for block in itertools.chain((first[header_end + 1 :],), blocks):
            if not reader.bulk(block):
                reader.rows(_csv_reader(itertools.chain((block,), blocks)))
                break
    if not lines.nonblank:
        raise lines.empty_error()
    return _finish_checks(
        builder, path.name, reader.rows_read, reader.columns, True, reader.pending
    )


def _csv_reader(blocks: Iterator[bytes]) -> Iterator[list[str]]:
    # io.StringIO(newline="") splits at \r, \n and \r\n, as load_verdicts' reader does
    return csv.reader(
        itertools.chain.from_iterable(
            io.StringIO(block.decode("utf-8"), newline="") for block in blocks
        )
    )


class _CsvRows:
    """The CSV rows after the header: in bulk where :mod:`shared.analysis.bulk` can read them,
    else row by row (a row the bulk parse leaves, or the rest of the file after a chunk it
    cannot split), with the reference's checks and messages either way."""

    def __init__(
        self, path: Path, options: LoadOptions, builder: _Builder, header: Iterator[list[str]]
    ) -> None:
        self.builder = builder
        self.options = options
        self.columns = columns = read_csv_header(header, f"{path.name} is empty")  # no line at all
        self.width = width = len(columns)
        self.line = 0  # lines before the rows being read
        self.rows_read = 0
        self.pending: InputError | None = None
        where = {name: i for i, name in enumerate(columns)}  # the last of repeated blank names
        try:
            check_columns(columns, options.time_column, path.name, True)
            self.columns_ok = True
        except InputError:
            self.columns_ok = False

        def index(name: str) -> int:
            return where.get(name, width)  # width: past every row, so "no value"

        self.iq, self.it, self.ic = index("queue_id"), index(options.time_column), index("correct")
        self.ist, self.iv = index("sample_type"), index("verdict_id")
        self.ig = index(builder.by_column)
        # `outcome` beside `correct`: a row where they disagree is refused (parse_row); `kind`
        # (an export of decisions and verdicts, as backfill reads): a decision row is refused
        self.io, self.ik = index("outcome"), index("kind")
        indices = (self.iq, self.it, self.ic, self.ist, self.iv, self.ig, self.io, self.ik)
        self.top = max(i for i in indices if i < width) if self.columns_ok else width

    def rows(self, reader: Iterator[list[str]]) -> None:
        """Every row of ``reader`` (the rest of the file), row by row."""
        row = self.row
        try:
            for values in reader:
                row(self.line + reader.line_num, values)  # type: ignore[attr-defined]
        except csv.Error as exc:
            line = self.line + reader.line_num  # type: ignore[attr-defined]
            raise InputError(f"line {line}: not valid CSV ({exc})") from exc

    def row(self, line: int, values: list[str]) -> None:
        """One row, as the reference reads it (a fast path for well-formed rows, inlined)."""
        if not values or (not values[0].strip() and all(not v.strip() for v in values)):
            return  # blank line
        width = self.width
        if len(values) > width:
            raise InputError(
                f"line {line}: {len(values)} values but the header has {width} "
                f"columns (an unquoted comma?)"
            )
        self.rows_read += 1
        if self.pending is not None or not self.columns_ok:
            return
        builder = self.builder
        ik = self.ik
        if ik < len(values) and values[ik].strip().lower() == "decision":
            builder.decisions += 1  # (as parse_row: skipped, whatever its other cells)
            return
        if len(values) > self.top:
            ic, ist, iv, ig, io, ik = self.ic, self.ist, self.iv, self.ig, self.io, self.ik
            queue = values[self.iq].strip()
            word = values[ic].strip().lower() if ic < width else ""
            if not word and io < width:  # a blank correct: the outcome says it
                said = _OUTCOMES.get(values[io].strip().lower())
                word = "" if said is None else "false" if said else "true"
            try:
                parsed = datetime.fromisoformat(values[self.it].strip())
                if parsed.utcoffset() is None and self.options.assume_utc:
                    parsed = parsed.replace(tzinfo=UTC)
                micros = (parsed - EPOCH) // US if parsed.utcoffset() is not None else -(1 << 63)
            except (ValueError, TypeError, OverflowError):
                micros = -(1 << 63)
            if (
                queue
                and _EARLIEST_US <= micros < _LATEST_US
                and (word in _TRUE or word in _FALSE)
                and (io >= width or _agrees(values[io], word in _FALSE))
                and (ik >= width or values[ik].strip().lower() != "decision")
            ):
                sample = values[ist].strip().lower() if ist < width else ""
                value = (values[ig].strip() if ig < width else "") or None
                ident = values[iv].strip() if iv < width else ""
                builder.add(value, micros, word in _FALSE, sample or None, ident or None)
                return
        try:
            builder.add_row(parse_row(line, dict(zip(self.columns, values, strict=False)),
                                      self.options, "line"))  # fmt: skip
        except InputError as exc:
            self.pending = exc

    def bulk(self, chunk: bytes) -> bool:
        """The rows of ``chunk`` (whole lines), in bulk; ``False`` (nothing read) if the chunk
        needs the csv module."""
        if not chunk:
            return True  # the header was the whole first chunk
        fields = split_lines(chunk, self.width)
        if fields is None:
            return False
        lines = fields.ends.size
        fast = _Fast.read(self, fields) if self.columns_ok and self.pending is None else None
        slow = (
            np.arange(lines)
            if fast is None
            else np.setdiff1d(np.arange(lines), fast.lines, assume_unique=True)
        )
        done = 0  # fast rows taken so far
        for line in [*slow.tolist(), lines]:
            if fast is not None:
                upto = int(np.searchsorted(fast.lines, line))
                if upto > done:
                    if self.pending is None:
                        fast.take(self.builder, done, upto)
                    self.rows_read += upto - done
                    done = upto
            if line < lines:
                text = chunk[int(fields.starts[line]) : int(fields.ends[line])].decode("utf-8")
                self.row(self.line + line + 1, text.split(","))
        self.line += lines
        return True


@dataclass(frozen=True, slots=True)
class _Fast:
    """The rows of a chunk that the bulk parse read, as columns (file order)."""

    lines: Int64s  # the line (in the chunk) of each row
    group: npt.NDArray[np.int32]
    time: Int64s
    incorrect: npt.NDArray[np.bool_]
    unsampled: npt.NDArray[np.bool_]
    left_out: Int64s  # -1, or the index in left_out_names of a sample type not counted
    left_out_names: list[str]
    has_id: npt.NDArray[np.bool_]
    hash1: Int64s
    hash2: Int64s

    @classmethod
    def read(cls, rows: _CsvRows, fields: Fields) -> _Fast | None:
        width = rows.width
        if not fields.regular.size:
            return None
        data = fields.data
        time, ok = iso_micros(
            data, *fields.field(rows.it), _EARLIEST_US, _LATEST_US, rows.options.assume_utc
        )
        if rows.ic < width:
            correct = _spelled_correct(text_column(data, *fields.field(rows.ic)))
        else:  # no correct column: every row says it in outcome
            none = np.zeros(ok.size, dtype=np.bool_)
            correct = none, none, ~none
        columns = {
            "queue_id": rows.iq, "outcome": rows.io, "kind": rows.ik, "sample_type": rows.ist,
            "verdict_id": rows.iv, rows.builder.by_column: rows.ig,
        }  # fmt: skip

        def span(name: str) -> Span | None:
            index = columns[name]
            return (data, *fields.field(index)) if index < width else None

        return cls.build(fields.regular, time, ok, correct, span, rows.options, rows.builder)

    @classmethod
    def build(
        cls,
        lines: Int64s,
        time: Int64s,
        ok: npt.NDArray[np.bool_],
        correct: Correct,
        span: Callable[[str], Span | TextColumn | None],
        options: LoadOptions,
        builder: _Builder,
    ) -> _Fast:
        """The rows (``lines``) whose time was read (``ok``), whose ``correct`` (or, where it
        is blank, ``outcome``) says whether they are incorrect, and whose text columns, read
        from their bytes or by distinct value (``span``: None for a column the file lacks;
        the verdict id from its bytes), are what the reference reads them as; the others are
        left to it."""

        def text(name: str) -> TextColumn | None:
            found = span(name)
            return found if isinstance(found, TextColumn) or found is None else text_column(*found)

        incorrect, readable, blank = correct
        queue = text("queue_id")
        assert queue is not None  # (a required column)
        ok &= ~queue.long & np.array([bool(v.strip()) for v in queue.values])[queue.code]
        outcome = text("outcome")
        if outcome is None:
            ok &= readable
        else:
            # per distinct value: -2 blank, -1 unreadable, else whether it says incorrect
            said = [
                _OUTCOMES.get(v.strip().lower(), -1) if v.strip() else -2 for v in outcome.values
            ]
            said_code = np.array(said, dtype=np.int8)[outcome.code]
            # a readable correct with a blank outcome or one that agrees (parse_row refuses
            # one that does not); a blank correct with a readable outcome, which then says it
            from_outcome = blank & (said_code >= 0)
            ok &= ~outcome.long & (
                (readable & ((said_code == -2) | (said_code == incorrect))) | from_outcome
            )
            incorrect = np.where(from_outcome, said_code == 1, incorrect)
        row_kind = text("kind")
        if row_kind is not None:  # a decision row: parse_row refuses it, at its line
            decision = np.array([v.strip().lower() == "decision" for v in row_kind.values])
            ok &= ~row_kind.long & ~decision[row_kind.code]
        left_out_names: list[str] = []
        sample = text("sample_type")
        if sample is not None:
            ok &= ~sample.long
            kinds = [v.strip().lower() for v in sample.values]
            unsampled = np.array([not kind for kind in kinds])[sample.code]
            counted = [
                -1 if not kind or kind == RANDOM or options.all_samples else 0 for kind in kinds
            ]
            for i, kind in enumerate(kinds):
                if counted[i] == 0:
                    counted[i] = len(left_out_names)
                    left_out_names.append(kind)
            left_out = np.array(counted, dtype=np.int64)[sample.code]
        else:
            unsampled = np.ones(ok.size, dtype=np.bool_)
            left_out = np.full(ok.size, -1, dtype=np.int64)
        group = text(builder.by_column)
        if group is not None:
            ok &= ~group.long
            codes = np.array(
                [builder.code(v.strip() or None) for v in group.values], dtype=np.int32
            )
            group_code = codes[group.code]
        else:
            group_code = np.full(ok.size, builder.code(None), dtype=np.int32)
        take = np.flatnonzero(ok)
        counted_rows = take[left_out[take] < 0]
        has_id = np.zeros(take.size, dtype=np.bool_)
        hash1 = np.zeros(take.size, dtype=np.int64)
        hash2 = np.zeros(take.size, dtype=np.int64)
        id_span = span("verdict_id")
        assert not isinstance(id_span, TextColumn)  # (its bytes are its fingerprint)
        if id_span is not None and counted_rows.size:
            data, start, end = id_span
            where = np.searchsorted(take, counted_rows)
            start, end = start[counted_rows], end[counted_rows]
            length = end - start
            edges = np.stack((data[start], data[np.maximum(end - 1, start)]), axis=1)
            # plain: nothing at either end that str.strip strips
            plain = np.logical_and.reduce((edges > 0x20) & (edges < 0x7F), axis=1)
            short = plain & (length > 0) & (length <= 8)
            hash1[where] = np.where(short, words(data, start, end).view(np.int64), 0)
            hash2[where] = np.where(short, length, 0)
            has_id[where] = short
            for i in np.flatnonzero(~short & (length > 0)).tolist():
                ident = data[int(start[i]) : int(end[i])].tobytes()
                if not plain[i]:
                    ident = ident.decode("utf-8").strip().encode("utf-8")
                if ident:
                    has_id[where[i]] = True
                    hash1[where[i]], hash2[where[i]] = _fingerprint(ident)
        return cls(
            lines=lines[take],
            group=group_code[take],
            time=time[take],
            incorrect=incorrect[take],
            unsampled=unsampled[take],
            left_out=left_out[take],
            left_out_names=left_out_names,
            has_id=has_id,
            hash1=hash1,
            hash2=hash2,
        )

    def take(self, builder: _Builder, lo: int, hi: int) -> None:
        """Rows ``lo`` to ``hi`` into the builder (the sample types not counted: counted)."""
        left_out = self.left_out[lo:hi]
        counted = left_out < 0
        if not counted.all():
            for index, count in enumerate(np.bincount(left_out[~counted]).tolist()):
                if count:
                    builder.left_out[self.left_out_names[index]] += count
        keep = slice(lo, hi) if counted.all() else np.flatnonzero(counted) + lo
        builder.group.frombytes(self.group[keep].tobytes())
        builder.time.frombytes(self.time[keep].tobytes())
        builder.incorrect += self.incorrect[keep].tobytes()
        builder.blank_sample_types += int(np.count_nonzero(self.unsampled[lo:hi]))
        builder.has_id += self.has_id[keep].tobytes()
        builder.id_hash.frombytes(self.hash1[keep].tobytes())
        builder.id_hash2.frombytes(self.hash2[keep].tobytes())


def _load_ndjson(
    path: Path, lines: _Lines, options: LoadOptions, builder: _Builder
) -> VerdictColumns:
    reader = _JsonRows(options, builder)
    for chunk in lines.chunks(raw=True):
        reader.chunk(chunk)
    if not lines.nonblank:
        raise lines.empty_error()
    return _finish_checks(
        builder, path.name, reader.rows_read, tuple(reader.seen), False, reader.pending
    )


_NOT_TEXT = object()
"""Stands for an unhashable value (a list, an object) where text goes: refused, as any
value but a string or null is."""


class _JsonRows:
    """The NDJSON lines, a chunk at a time: each line decoded by orjson, the records' fields
    read as columns (``_Fast.build``, as the CSV chunks are), and every record the columns do
    not say read the reference way (``json.loads``, ``parse_row``) in its place.

    orjson decodes what ``json.loads`` decodes to the same values, with these exceptions
    (measured on orjson 3.13; the tests hold them): it refuses ``NaN``, ``Infinity``, numbers
    beyond the double range and lone surrogates, which ``json`` reads, and it reads an integer
    beyond 64 bits as a float.  So a chunk with a line orjson refuses (or a blank one) is
    decoded line by line, the refused lines by ``json``, whose records are then read the
    reference way; and every record read the reference way is decoded again by ``json``: a
    float from orjson may have been a big integer, and the reference shows the value in its
    message.  A record on the fast path has only strings, nulls, booleans, 0 and 1 in the
    fields read, which both decode alike.  Each line is decoded by itself (not the chunk as
    one JSON array): a line must be one JSON value, whatever its neighbours hold.
    """

    def __init__(self, options: LoadOptions, builder: _Builder) -> None:
        self.options = options
        self.builder = builder
        self.seen: dict[str, None] = {}  # the keys of every record, in order of first use
        self.rows_read = 0
        self.pending: InputError | None = None  # the first row refused (reported at the end)
        self.line = 0  # lines before the chunk being read

    def chunk(self, chunk: bytes) -> None:
        """The records of ``chunk`` (whole lines, split at ``\\n`` only: U+2028 is legal
        inside JSON text, and the reference splits so)."""
        parts = chunk.split(b"\n")
        if chunk.endswith(b"\n"):
            parts.pop()
        first = self.line
        self.line += len(parts)
        numbers: list[int] | None = None  # each record's line (None: record i is line i)
        forced: npt.NDArray[np.bool_] | None = None  # records decoded by json: slow path
        try:
            records: list[Any] = list(map(orjson.loads, parts))
        except orjson.JSONDecodeError:  # a blank line, or one orjson refuses
            records, numbers, forced = self._line_by_line(parts, first)
        else:
            if set(map(type, records)) - {dict}:
                at = next(i for i, r in enumerate(records) if type(r) is not dict)
                raise _not_an_object(first + at + 1, json.loads(parts[at].decode("utf-8")))
        self.rows_read += len(records)
        # the keys in order of first use; those of the first record when the others have no
        # other (the common case, and a set union is a third of the cost of the ordered one)
        keys = dict.fromkeys(records[0] if records else ())
        if set().union(*records) != keys.keys():
            keys = dict.fromkeys(itertools.chain.from_iterable(records))
        self.seen.update(keys)
        if self.pending is not None or not records:
            return  # (the rest of the file is still decoded: a later bad line is reported first)
        fast = self._fast(records, keys, forced)
        slow = (
            range(len(records))
            if fast is None
            else np.setdiff1d(np.arange(len(records)), fast.lines, assume_unique=True).tolist()
        )
        done = 0  # fast rows taken so far
        for i in [*slow, len(records)]:
            if fast is not None:
                upto = int(np.searchsorted(fast.lines, i))
                if upto > done and self.pending is None:
                    fast.take(self.builder, done, upto)
                done = upto
            if i < len(records) and self.pending is None:
                number = first + i + 1 if numbers is None else numbers[i]
                record = json.loads(parts[number - first - 1].decode("utf-8"))
                try:
                    self.builder.add_row(parse_row(number, record, self.options, "line"))
                except InputError as exc:
                    self.pending = exc

    @staticmethod
    def _line_by_line(
        parts: list[bytes], first: int
    ) -> tuple[list[Any], list[int], npt.NDArray[np.bool_]]:
        """The records of a chunk orjson could not decode whole, line by line as the
        reference reads them: blank lines skipped, the first line ``json`` refuses (or that
        is not an object) reported; with each record's line, and which ``json`` decoded."""
        records: list[Any] = []
        numbers: list[int] = []
        forced: list[bool] = []
        for number, raw in enumerate(parts, start=first + 1):
            try:
                record = orjson.loads(raw)  # (never a blank line: it holds a value)
                by_json = False
            except orjson.JSONDecodeError:
                text = raw.decode("utf-8")
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise InputError(f"line {number}: not valid JSON ({exc.msg})") from exc
                by_json = True
            if type(record) is not dict:
                raise _not_an_object(number, record if by_json else json.loads(raw.decode()))
            records.append(record)
            numbers.append(number)
            forced.append(by_json)
        return records, numbers, np.array(forced, dtype=np.bool_)

    def _fast(
        self,
        records: list[dict[str, Any]],
        keys: Mapping[str, None],
        forced: npt.NDArray[np.bool_] | None,
    ) -> _Fast | None:
        """The records whose fields say their verdict as ``parse_row`` would read it, read as
        columns; None (every record the reference way) if no record has a queue or a time."""
        options, builder = self.options, self.builder
        if "queue_id" not in keys or options.time_column not in keys:
            return None

        def column(name: str) -> list[Any] | None:
            """The field of every record (None where it has none); None if no record has it."""
            return list(map(dict.get, records, itertools.repeat(name))) if name in keys else None

        time_values = column(options.time_column)
        assert time_values is not None
        time, ok = iso_micros(*_json_span(time_values)[0], _EARLIEST_US, _LATEST_US,
                              options.assume_utc)  # fmt: skip
        if forced is not None:
            ok &= ~forced
        texts: dict[str, TextColumn | Span | None] = {}
        for name in dict.fromkeys(
            ("queue_id", "outcome", "kind", "sample_type", builder.by_column)
        ):
            values = column(name)
            if values is None:
                texts[name] = None
                continue
            found, other = _json_text(values)
            if name != "kind":  # (a kind that is not text is ignored, as the reference does)
                ok &= ~other  # a number or a list where text goes: the reference refuses it
            texts[name] = found
        ids = column("verdict_id")
        texts["verdict_id"] = None
        if ids is not None:
            texts["verdict_id"], other = _json_span(ids)
            ok &= ~other
        for name in ("site_id", "policy_id", "error_type"):  # (read only to be refused)
            values = column(name)
            if values is not None and name not in texts:
                ok &= ~_not_text(values)
        correct_values = column("correct")
        if correct_values is not None:
            correct = _json_correct(correct_values)
        else:  # every record says it in outcome
            none = np.zeros(len(records), dtype=np.bool_)
            correct = none, none, ~none
        return _Fast.build(np.arange(len(records)), time, ok, correct, texts.__getitem__,
                           options, builder)  # fmt: skip


def _not_an_object(number: int, value: object) -> InputError:
    """A line that is JSON but not an object (``value``: as ``json`` decodes it)."""
    return InputError(
        f"line {number}: expected one JSON object per line, got {type(value).__name__}"
    )


def _coded(values: list[Any]) -> tuple[list[Any], Int64s]:
    """The distinct values (in order of first use) and, per row, the index of its value: the
    fields of a chunk are judged once per distinct value.  An unhashable value (a list, an
    object) stands as ``_NOT_TEXT``.  (Equal values of different types share a code: 1, 1.0
    and true, which no text field takes and ``correct`` reads alike.)"""
    n = len(values)
    index: defaultdict[Any, int] = defaultdict(itertools.count().__next__)  # a code per new value
    try:
        code = np.fromiter(map(index.__getitem__, values), dtype=np.int64, count=n)
    except TypeError:
        index.clear()
        index.default_factory = itertools.count().__next__
        hashable = [v if v is None or type(v) in (str, bool, int, float) else _NOT_TEXT
                    for v in values]  # fmt: skip
        code = np.fromiter(map(index.__getitem__, hashable), dtype=np.int64, count=n)
    return list(index), code


def _json_text(values: list[Any]) -> tuple[TextColumn, npt.NDArray[np.bool_]]:
    """A text field of each record by distinct value (null: blank), and the records where it
    is something else than a string or null."""
    distinct, code = _coded(values)
    column = TextColumn(
        [v if type(v) is str else "" for v in distinct],
        code,
        np.zeros(code.size, dtype=np.bool_),
    )
    other = np.array([v is not None and type(v) is not str for v in distinct], dtype=np.bool_)
    return column, other[code]


def _not_text(values: list[Any]) -> npt.NDArray[np.bool_]:
    """The records whose field is something else than a string or null (looked at once per
    distinct value where every value is one of those)."""
    try:
        if all(v is None or type(v) is str for v in dict.fromkeys(values)):
            return np.zeros(len(values), dtype=np.bool_)
    except TypeError:  # (a list or an object)
        pass
    return np.fromiter((v is not None and type(v) is not str for v in values), dtype=np.bool_,
                       count=len(values))  # fmt: skip


def _json_span(values: list[Any]) -> tuple[Span, npt.NDArray[np.bool_]]:
    """A text field of each record as UTF-8 bytes and where each value starts and ends (null,
    or something else than a string: empty), and the records where it is something else
    than a string or null; for the fields of mostly distinct values (the time, the id)."""
    n = len(values)
    try:
        joined = "".join(values)  # (every value a string: the common case)
        texts = values
        other = np.zeros(n, dtype=np.bool_)
    except TypeError:
        texts = [v if type(v) is str else "" for v in values]
        other = np.fromiter((v is not None and type(v) is not str for v in values),
                            dtype=np.bool_, count=n)  # fmt: skip
        joined = "".join(texts)
    if joined.isascii():
        data = joined.encode("ascii")
        length = np.fromiter(map(len, texts), dtype=np.int64, count=n)
    else:  # (a lone surrogate comes from json, on a record read the reference way)
        encoded = [t.encode("utf-8", "surrogatepass") for t in texts]
        data = b"".join(encoded)
        length = np.fromiter(map(len, encoded), dtype=np.int64, count=n)
    end = np.cumsum(length)
    return (np.frombuffer(data + bytes(64), dtype=np.uint8), end - length, end), other


_NOWHERE = _Where("line", 0)


def _json_correct(values: list[Any]) -> Correct:
    """A ``correct`` field of each record as ``Correct``: each distinct value judged by the
    reference's own reading (text, a boolean, 0 or 1; null or blank text: blank)."""
    distinct, code = _coded(values)
    said = np.zeros((len(distinct), 3), dtype=np.bool_)  # incorrect, readable, blank
    for i, value in enumerate(distinct):
        if _blank(value):
            said[i, 2] = True
            continue
        try:
            said[i, 0] = _read_correct(value, _NOWHERE)
            said[i, 1] = True
        except InputError:
            pass  # (the reference refuses it, at its line)
    per_row = said[code]
    return per_row[:, 0], per_row[:, 1], per_row[:, 2]


def _spelled_correct(correct: TextColumn) -> Correct:
    """A text ``correct`` column as ``Correct``."""
    spelled = [v.strip().lower() for v in correct.values]
    readable = np.array([w in _TRUE or w in _FALSE for w in spelled])[correct.code]
    blank = np.array([not w for w in spelled])[correct.code]
    return (
        np.array([w in _FALSE for w in spelled])[correct.code],
        ~correct.long & readable,
        ~correct.long & blank,
    )


def _agrees(outcome: str, incorrect: bool) -> bool:
    """An ``outcome`` beside a valid ``correct``: blank, or saying the same (otherwise
    :func:`~shared.analysis.load.parse_row` judges the row: it refuses it)."""
    word = outcome.strip().lower()
    return not word or _OUTCOMES.get(word) is incorrect


def _load_parquet(path: Path, options: LoadOptions, builder: _Builder) -> VerdictColumns:
    """Batch by batch: the rows ``_parquet_fast`` reads from the columns, the others (and
    every row of a batch it does not take) as the reference reads them, in file order."""
    rows_read = 0
    pending: InputError | None = None
    try:
        handle = open_parquet(path)  # (its row groups checked before any row is read)
        columns = tuple(str(name) for name in handle.schema_arrow.names)
        try:
            check_columns(columns, options.time_column, path.name, True)
            columns_ok = True
        except InputError:
            columns_ok = False  # (reported by _finish_checks, after every row is read)
        # (a cell past the bound, or a batch of too much text, ends the read at once, as
        # the reference refuses it)
        batches: Iterator[Any] = parquet_batches(handle, PARQUET_BATCH_ROWS, path.name)
        for raw in batches:
            batch = micro_times(raw)  # (as the reference reads them: load.py)
            n = batch.num_rows
            fast = (
                _parquet_fast(batch, options, builder) if columns_ok and pending is None else None
            )
            if fast is None:
                records = batch.to_pylist()  # (every row converted: pyarrow's errors first)
                slow = np.arange(n)
            else:
                records = None
                slow = np.setdiff1d(np.arange(n), fast.lines, assume_unique=True)
            done = 0  # fast rows taken so far
            for i in [*slow.tolist(), n]:
                if fast is not None:
                    upto = int(np.searchsorted(fast.lines, i))
                    if upto > done:
                        if pending is None:
                            fast.take(builder, done, upto)
                        rows_read += upto - done
                        done = upto
                if i < n:
                    rows_read += 1
                    record = records[i] if records is not None else batch.slice(i, 1).to_pylist()[0]
                    if pending is None:
                        try:
                            builder.add_row(parse_row(rows_read, record, options, "row"))
                        except InputError as exc:
                            pending = exc
    except InputError:
        raise
    except Exception as exc:  # pyarrow raises its own error types; report any of them
        raise InputError(f"cannot read {path.name} as Parquet: {exc}") from exc
    return _finish_checks(builder, path.name, rows_read, columns, True, pending)


PARQUET_BATCH_ROWS = 65_536

# The column types whose values pyarrow always converts to Python (the reference converts
# every row of the file first, so a value it cannot convert is its error, wherever it is):
# a batch with a column of another type (dates, times, nested) is read the reference way.
_PLAIN_ARROW = ("string", "large_string", "boolean", "integer", "floating", "decimal", "binary",
                "large_binary", "null")  # fmt: skip


def _parquet_fast(batch: Any, options: LoadOptions, builder: _Builder) -> _Fast | None:
    """The rows of a record batch read from its columns, as ``_Fast.build`` reads the CSV
    ones: text columns from their bytes, the time as an ISO 8601 text (the bulk parser) or a
    timestamp (its integer), ``correct`` as text, a boolean or 0/1; None (the whole batch
    the reference way) for a column of another type than the reference reads there."""
    pa = _pyarrow()

    n = batch.num_rows
    schema = batch.schema
    by_name = {name: i for i, name in enumerate(schema.names)}
    if n == 0 or len(by_name) != len(schema.names):
        return None  # (a repeated column name: the reference's dict keeps the last)

    def plain(kind: Any) -> bool:
        if pa.types.is_dictionary(kind):  # (pandas' categories)
            kind = kind.value_type
        return any(getattr(pa.types, f"is_{t}")(kind) for t in _PLAIN_ARROW)

    time_column = options.time_column
    for name, kind in zip(schema.names, schema.types, strict=True):
        if name != time_column and not plain(kind):
            return None
    spans: dict[str, Span | None] = {}
    for name in ("queue_id", "outcome", "sample_type", "verdict_id", "site_id", "policy_id",
                 "error_type", builder.by_column, "kind"):  # fmt: skip
        if name not in by_name:
            spans[name] = None
            continue
        column = batch.column(by_name[name])
        found = _arrow_span(column)
        if found is None:
            if name == "kind" and not _text_type(column.type):
                spans[name] = None  # a kind that is not text: ignored, as the reference does
                continue
            return None  # a number where text goes (the reference refuses it), or a NUL
        spans[name] = found
    read = _arrow_time(batch.column(by_name[time_column]), options)
    if read is None:
        return None
    time, ok = read
    if "correct" in by_name:
        found_correct = _arrow_correct(batch.column(by_name["correct"]))
        if found_correct is None:
            return None
        correct = found_correct
    else:  # every row says it in outcome
        none = np.zeros(n, dtype=np.bool_)
        correct = none, none, ~none
    return _Fast.build(np.arange(n), time, ok, correct, spans.__getitem__, options, builder)


def _text_type(kind: Any) -> bool:
    """A string column (or pandas' categories of strings)."""
    pa = _pyarrow()
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _arrow_span(column: Any) -> Span | None:
    """A text column's bytes and each row's start and end in them (a null: empty), or None
    for a column that is not text, or holds a NUL (the bulk readers' fixed-width cells would
    drop it)."""
    pa = _pyarrow()

    n = len(column)
    if pa.types.is_dictionary(column.type) and _text_type(column.type):
        column = column.cast(column.type.value_type)  # (pandas' categories: their values)
    if pa.types.is_null(column.type):
        none = np.zeros(n, dtype=np.int64)
        return np.zeros(64, dtype=np.uint8), none, none.copy()
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return None
    width = np.int64 if pa.types.is_large_string(column.type) else np.int32
    _, offsets_buffer, data_buffer = column.buffers()
    at = np.frombuffer(offsets_buffer, dtype=width)[column.offset : column.offset + n + 1]
    offsets: Int64s = at.astype(np.int64)
    low, high = int(offsets[0]), int(offsets[-1])
    body = (
        np.frombuffer(data_buffer, dtype=np.uint8)[low:high]
        if data_buffer is not None
        else np.zeros(0, dtype=np.uint8)
    )
    if body.size and not body.all():
        return None
    data = np.concatenate((body, np.zeros(64, dtype=np.uint8)))
    start: Int64s = offsets[:-1] - low
    end: Int64s = offsets[1:] - low
    if column.null_count:
        end = np.where(np.asarray(column.is_valid()), end, start).astype(np.int64)  # null: blank
    return data, start, end


_PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1}


def _pyarrow() -> Any:
    """pyarrow (installed: the file was opened with it), untyped."""
    import importlib

    return importlib.import_module("pyarrow")


def _arrow_time(column: Any, options: LoadOptions) -> tuple[Int64s, npt.NDArray[np.bool_]] | None:
    """Microseconds since the epoch (UTC) and which rows have a time the reference reads as
    that instant within its bounds; None for a column of another type."""
    pa = _pyarrow()

    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        found = _arrow_span(column)
        if found is None:
            return None
        return iso_micros(*found, _EARLIEST_US, _LATEST_US, options.assume_utc)
    if not pa.types.is_timestamp(kind):
        return None
    valid = np.asarray(column.is_valid())
    values = np.asarray(column.cast(pa.int64()).fill_null(0))
    per = _PER_UNIT.get(kind.unit)
    if per is None:  # (nanoseconds were truncated to microseconds before: micro_times)
        return None
    ok = valid & (values >= _EARLIEST_US // per) & (values <= _LATEST_US // per)
    micros = np.where(ok, values, 0) * per
    if kind.tz is None and not options.assume_utc:
        ok &= False  # a naive time: the reference says so
    ok &= (micros >= _EARLIEST_US) & (micros < _LATEST_US)
    return micros.astype(np.int64), ok


def _arrow_correct(column: Any) -> Correct | None:
    """A ``correct`` column of text, booleans or 0/1 (a null: blank) as ``Correct``; None
    for another type."""
    pa = _pyarrow()

    kind = column.type
    valid = np.asarray(column.is_valid())
    if pa.types.is_boolean(kind):
        said = np.asarray(column.fill_null(True), dtype=np.bool_)
        return ~said, valid, ~valid
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):  # (pandas: 1.0 and 0.0)
        values = np.asarray(column.cast(pa.float64()).fill_null(-1.0))
        return values == 0, valid & ((values == 0) | (values == 1)), ~valid
    found = _arrow_span(column)  # (text, or all null)
    if found is None:
        return None
    return _spelled_correct(text_column(*found))


def micros_to_datetime(micros: int) -> datetime:
    """The aware UTC datetime of microseconds since the epoch."""
    return EPOCH + timedelta(microseconds=micros)
