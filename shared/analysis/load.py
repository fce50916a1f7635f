"""Read a file of QA verdicts (CSV, NDJSON, Parquet) into typed, validated rows.

One verdict per row.  Required: ``queue_id``, a timestamp column (``reviewed_at`` unless
named otherwise) in ISO 8601 with a time zone, and either ``correct`` (true/false, 1/0,
yes/no) or ``outcome`` (correct/incorrect).  Optional: ``site_id``, ``policy_id``,
``error_type``, ``sample_type``, ``verdict_id``.  Other columns are ignored.

* Only **random** samples estimate accuracy without bias, so when a ``sample_type`` column
  is present only the rows whose sample type is ``random`` are kept, unless
  ``all_samples`` is set; the result says how many rows were left out and why.  A blank
  sample type is ``random``, as the live pipeline reads a verdict without one.
* ``correct`` and ``outcome`` may both be given; a row where they disagree is refused.
* The text columns (``queue_id``, ``site_id``...) hold strings: in NDJSON (or Parquet) a
  number there is refused, as the live pipeline refuses it.
* When a ``verdict_id`` column is present, repeated ids (a verdict delivered twice) are
  counted once: the first row is kept.
* A naive timestamp (no offset) is an error, because a moderation operation spans time
  zones; ``assume_utc`` reads naive timestamps as UTC instead.  Timestamps must lie between
  0001-01-02 and 9999-12-30 UTC (so that no time-zone conversion overflows).

Every problem is an :class:`~shared.analysis.errors.InputError` naming the line (row for
Parquet), the column and the bad value.  Parquet needs ``pyarrow``; without it the error
says so.  Files ending in ``.gz`` are decompressed on the fly.

A Parquet file is bounded as a text file is (the bounds ``qwatch backfill`` applies too,
with the same words): a text or binary cell longer than :data:`MAX_LINE_BYTES` (the bound
on a CSV or NDJSON line) is refused, naming the row and the column, and so, before any of
it is read, is a row group of more than :data:`MAX_ROW_GROUP_BYTES` uncompressed
(:func:`check_parquet_row_groups`, :func:`check_parquet_cells`), and a batch of rows whose
text adds up to more than :data:`MAX_BATCH_TEXT_BYTES`, before it is decoded
(:func:`open_parquet`, :func:`parquet_batches`: the one way the readers read Parquet).
"""

from __future__ import annotations

import csv
import gzip
import importlib
import io
import json
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any, Literal, NoReturn, get_args

from shared.analysis.errors import InputError

__all__ = [
    "FORMATS",
    "MAX_LINE_BYTES",
    "MAX_ROW_GROUP_BYTES",
    "FileFormat",
    "LoadOptions",
    "VerdictRow",
    "Verdicts",
    "check_columns",
    "check_parquet_cells",
    "check_parquet_row_groups",
    "detect_format",
    "import_parquet",
    "load_notes",
    "load_verdicts",
    "open_parquet",
    "parquet_batches",
    "parse_records",
    "parse_row",
    "read_csv_header",
]

FileFormat = Literal["csv", "ndjson", "parquet"]
FORMATS: tuple[str, ...] = get_args(FileFormat)

MAX_LINE_BYTES = 1 << 20
"""A line (CSV or NDJSON) or a Parquet text or binary cell longer than 1 MiB is refused: no
verdict or decision is that long, and a file of one enormous line (or cell) would otherwise
be read whole into memory. The one place for it (this module imports no other reader):
``qwatch analyze``'s columnar reader (:mod:`shared.analysis.columnar`) and ``qwatch
backfill`` import it."""

MAX_ROW_GROUP_BYTES = 1 << 30
"""A Parquet row group of more than 1 GiB uncompressed (its metadata's ``total_byte_size``)
is refused before it is read: pyarrow reads a row group's column chunks at once, so one
absurd row group is that much memory at once. Writers' defaults are far below it (pyarrow:
at most 1 Mi rows a group, a few hundred bytes a row here; Spark: 128 MiB; DuckDB: 122,880
rows); a file above it can be written again with smaller groups (pyarrow's
``row_group_size``)."""

MAX_BATCH_TEXT_BYTES = 256 << 20
"""The most text and binary one batch of Parquet rows may decode to (its cells' lengths,
summed), checked before the batch is decoded. A dictionary-encoded column holds each
distinct value once: a file of 1.3 kB said 20,000 cells of a value just under
:data:`MAX_LINE_BYTES`, its row group ~1 MB (:data:`MAX_ROW_GROUP_BYTES` counts encoded
pages), and decoding it asked for 20 GB. Text and binary columns are read as dictionaries
(:func:`open_parquet`) and their size summed from the indices (:func:`parquet_batches`); a
batch of real verdicts or decisions (65,536 rows at most, a few hundred bytes each) is far
below the bound."""

MAX_GROUP_VALUES = 1 << 26
"""The most values a column of a Parquet row group may hold (its metadata's ``num_values``,
list elements counted): a flat column holds one a row, and writers' row groups hold at most
about a million rows; a list column of run-length-encoded small values said 196 million
in a file of 459 kB, 3.5 GB decoded."""

_EXTENSIONS: dict[str, FileFormat] = {
    ".csv": "csv",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".parquet": "parquet",
    ".pq": "parquet",
}

# (1.0 and 0.0: pandas writes a 0/1 column with gaps as floats)
_TRUE = frozenset({"true", "t", "1", "1.0", "yes", "y"})
_FALSE = frozenset({"false", "f", "0", "0.0", "no", "n"})
_OUTCOMES = {"correct": False, "incorrect": True}
RANDOM = "random"
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, tzinfo=UTC)
"""Timestamps must lie in [EARLIEST, LATEST) UTC: a day inside what :class:`datetime` can
hold, so that converting them to any time zone (``--tz``) and flooring them to a period
cannot overflow."""
_OUT_OF_RANGE = "out of range: timestamps must lie between 0001-01-02 and 9999-12-30 UTC"


@dataclass(frozen=True, slots=True)
class VerdictRow:
    """One QA verdict, validated.

    Attributes:
        line: where it is in the file (line number for CSV and NDJSON, row for Parquet).
        queue_id: the queue of the reviewed decision.
        reviewed_at: when the verdict was given (timezone-aware, UTC).
        incorrect: ``True`` when QA found the decision incorrect (an error).
        site_id, policy_id, error_type, sample_type, verdict_id: optional context.
    """

    line: int
    queue_id: str
    reviewed_at: datetime
    incorrect: bool
    site_id: str | None = None
    policy_id: str | None = None
    error_type: str | None = None
    sample_type: str | None = None
    verdict_id: str | None = None


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """How to read the file.

    Attributes:
        file_format: ``csv``, ``ndjson`` or ``parquet``; ``None`` picks it from the extension.
        time_column: the column holding the verdict time.
        assume_utc: read timestamps without an offset as UTC instead of rejecting them.
        all_samples: keep every sample type, not only ``random``.
    """

    file_format: FileFormat | None = None
    time_column: str = "reviewed_at"
    assume_utc: bool = False
    all_samples: bool = False


@dataclass(frozen=True, slots=True)
class Verdicts:
    """The verdicts that count, and what was left out.

    Attributes:
        rows: the verdicts used, in file order.
        rows_read: data rows in the file.
        columns: the columns found.
        left_out_by_sample_type: rows not counted for accuracy, per sample type.
        duplicates: rows dropped because their ``verdict_id`` was seen before.
        notes: plain-words remarks for the report (what was filtered and why).
    """

    rows: tuple[VerdictRow, ...]
    rows_read: int
    columns: tuple[str, ...]
    left_out_by_sample_type: Mapping[str, int]
    duplicates: int
    notes: tuple[str, ...]


def detect_format(path: Path, requested: str | None = None) -> FileFormat:
    """The file format: ``requested`` if given, else from the extension (``.gz`` ignored)."""
    if path.is_dir():  # (its extension, or its opening, would say something else)
        raise InputError(f"{path} is a directory, not a file: name the export file in it")
    if requested is not None:
        wanted = requested.strip().lower()
        if wanted == "jsonl":
            wanted = "ndjson"
        for name in FORMATS:
            if name == wanted:
                return name  # type: ignore[return-value]  # narrowed by the loop
        raise InputError(f"unknown format {requested!r}; use one of {', '.join(FORMATS)}")
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    if suffixes and suffixes[-1] in _EXTENSIONS:
        return _EXTENSIONS[suffixes[-1]]
    raise InputError(
        f"cannot tell the format of {path.name!r} from its extension; name it .csv, .ndjson, "
        f".jsonl or .parquet, or pass --format {'|'.join(FORMATS)}"
    )


def load_verdicts(path: Path, options: LoadOptions | None = None) -> Verdicts:
    """Read and validate a verdicts file (see the module docstring).

    Raises:
        InputError: the file is missing, unreadable, empty, lacks a required column, or a row
            has a value that cannot be read.
    """
    options = options or LoadOptions()
    file_format = detect_format(path, options.file_format)
    if not path.is_file():
        raise InputError(f"{'not a file' if path.exists() else 'no such file'}: {path}")
    columns: tuple[str, ...] | None
    records: list[tuple[int, Record]]
    if file_format == "parquet":
        columns, records = _parquet_records(path)
        where = "row"
    else:
        try:
            raw = path.read_bytes()
            if path.suffix.lower() == ".gz":
                raw = gzip.decompress(raw)
            text = raw.decode("utf-8-sig")
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise InputError(f"cannot read {path}: {exc}") from exc
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise InputError(
                f"{path.name} is not UTF-8 text (line {line}, byte {exc.start}: {exc.reason})"
                + looks_like(path, raw)
            ) from exc
        if not text.strip():
            raise InputError(f"{path.name} is empty")
        where = "line"
        if file_format == "csv":
            columns, records = _csv_records(io.StringIO(text, newline=""))
        else:
            columns, records = _ndjson_records(
                text.split("\n")
            )  # not splitlines: U+2028 is legal JSON
    return parse_records(records, columns, options, source=path.name, where=where)


# --------------------------------------------------------------------------------------------
# Readers: (line, record) pairs
# --------------------------------------------------------------------------------------------

Record = Mapping[str, object]


def _csv_records(stream: IO[str]) -> tuple[tuple[str, ...] | None, list[tuple[int, Record]]]:
    reader = csv.reader(stream)
    columns = read_csv_header(reader, "the file is empty")
    records: list[tuple[int, Record]] = []
    try:
        for values in reader:
            line = reader.line_num
            if not values or all(not v.strip() for v in values):
                continue  # blank line
            if len(values) > len(columns):
                raise InputError(
                    f"line {line}: {len(values)} values but the header has {len(columns)} "
                    f"columns (an unquoted comma?)"
                )
            record: dict[str, object] = dict(zip(columns, values, strict=False))
            records.append((line, record))
    except csv.Error as exc:
        raise InputError(f"line {reader.line_num}: {csv_refusal(exc)}") from exc
    return columns, records


_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"


def looks_like(path: Path, head: bytes) -> str:
    """For a text file that does not decode as UTF-8: what its first bytes say it is, when
    they say gzip or Parquet (a clause to add to the refusal, or "")."""
    if head.startswith(_GZIP_MAGIC) and path.suffix.lower() != ".gz":
        return (
            f"; it looks gzip-compressed (it starts with bytes {_GZIP_MAGIC.hex(' ')}): "
            f"name it {path.name}.gz"
        )
    if head.startswith(_PARQUET_MAGIC):
        return f"; it looks like a Parquet file (it starts with PAR1): name it {path.stem}.parquet"
    return ""


def csv_refusal(exc: csv.Error) -> str:
    """What the csv module's refusal means to whoever made the file. Its words for a
    carriage return outside quotes ("do you need to open the file in universal-newline
    mode?") speak to a programmer; the file's maker needs to know what to change."""
    if "new-line character seen in unquoted field" in str(exc):
        return (
            "not valid CSV: a carriage return (CR) outside quotes; lines must end in LF or "
            "CRLF (a file whose lines end in CR alone, as old Mac exports do, converts with "
            "tr '\\r' '\\n' < old.csv > new.csv), and a value holding a line end must be quoted"
        )
    if "field larger than field limit" in str(exc):
        return (
            f"not valid CSV: a field longer than {csv.field_size_limit():,} characters (a "
            "free-text column? leave out of the export the columns QualityWatch does not read: "
            "docs/events.md lists those it does)"
        )
    return f"not valid CSV ({exc})"


def read_csv_header(reader: Iterator[list[str]], empty: str) -> tuple[str, ...]:
    """The column names of a CSV file (line 1), stripped; ``empty`` if there is no line."""
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(empty) from None
    except csv.Error as exc:
        raise InputError(f"line 1: {csv_refusal(exc)}") from exc
    columns = tuple(name.strip() for name in header)
    check_header(columns)
    return columns


def check_header(columns: Iterable[str]) -> None:
    """``InputError`` for a CSV header that names a column twice (which cell is the value?)."""
    repeated = sorted(name for name, count in Counter(columns).items() if count > 1 and name)
    if repeated:
        raise InputError(f"line 1: the header repeats column(s) {', '.join(map(repr, repeated))}")


def _ndjson_records(lines: Iterable[str]) -> tuple[None, list[tuple[int, Record]]]:
    records: list[tuple[int, Record]] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"line {number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(value, dict):
            raise InputError(
                f"line {number}: expected one JSON object per line, got {type(value).__name__}"
            )
        records.append((number, value))
    return None, records


def import_parquet() -> Any:
    """``pyarrow.parquet``, or the error that says how to get it. Its memory comes from the
    system allocator, which gives each batch's memory back as the batch goes, unless
    ARROW_DEFAULT_MEMORY_POOL says otherwise (read when pyarrow is first imported): with
    pyarrow's default, mimalloc, 10 M rows of Parquet peaked at 973 MiB in ``qwatch analyze``
    instead of about 840 (bench/README.md)."""
    if "pyarrow" not in sys.modules:
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    try:
        return importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise InputError(
            "reading Parquet needs pyarrow, which is not installed (pip install pyarrow, or the parquet extra); "
            "or export the file as CSV or NDJSON"
        ) from None


def micro_times(data: Any) -> Any:
    """A Parquet table or record batch with its nanosecond timestamps truncated to the
    microsecond: a Python datetime holds microseconds (pyarrow refuses to convert a time
    that is not a whole one, with a message about pandas), and digits past the sixth of a
    text time are truncated too, as ``datetime.fromisoformat`` does."""
    pa = importlib.import_module("pyarrow")
    for i, field in enumerate(data.schema):
        if pa.types.is_timestamp(field.type) and field.type.unit == "ns":
            micro = pa.timestamp("us", tz=field.type.tz)
            data = data.set_column(i, field.name, data.column(i).cast(micro, safe=False))
    return data


def check_parquet_row_groups(metadata: Any, source: str) -> None:
    """``InputError`` for a Parquet file (``metadata``: its ``FileMetaData``) with a row group
    of more than :data:`MAX_ROW_GROUP_BYTES` uncompressed, naming it and its rows; call it
    before reading any row. ``source``: the file name, for the message.

    The size is the encoded one (the pages before compression): a dictionary-encoded column
    of repeated values decodes to more, which :func:`parquet_batches` bounds per cell and per
    batch. So does a list column of many small values (run-length encoded, 196 million of
    them in a file of 459 kB): a column of a group may hold at most
    :data:`MAX_GROUP_VALUES` values, counted from the metadata too."""
    before = 0  # rows in the row groups before this one
    for i in range(metadata.num_row_groups):
        group = metadata.row_group(i)
        size, rows = int(group.total_byte_size), int(group.num_rows)
        where = f"{source}: row group {i + 1} of {metadata.num_row_groups} (rows {before + 1} to {before + rows})"
        if size > MAX_ROW_GROUP_BYTES:
            raise InputError(
                f"{where} is {size:,} bytes uncompressed, more than the "
                f"{MAX_ROW_GROUP_BYTES:,} read at once; write the file again with smaller row "
                "groups (e.g. pyarrow's row_group_size=100_000)"
            )
        for j in range(group.num_columns):
            column = group.column(j)
            if int(column.num_values) > MAX_GROUP_VALUES:
                raise InputError(
                    f"{where}: column {column.path_in_schema!r} holds {int(column.num_values):,} "
                    f"values, more than the {MAX_GROUP_VALUES:,} read at once (a list column "
                    "of many values?); no export of verdicts or decisions has them"
                )
        before += rows


def open_parquet(path: Path) -> Any:
    """``pyarrow.parquet.ParquetFile`` of ``path`` with its text and binary columns read as
    dictionaries (not decoded: :func:`parquet_batches` bounds what they decode to), its row
    groups checked (:func:`check_parquet_row_groups`) before any row is read."""
    parquet = import_parquet()
    pa = importlib.import_module("pyarrow")
    leaves = parquet.ParquetFile(path).schema  # (every column's leaves, nested ones too)
    texts = [  # (pyarrow reads a fixed-size binary leaf decoded whatever it is told)
        leaves.column(i).path
        for i in range(len(leaves))
        if leaves.column(i).physical_type == "BYTE_ARRAY"
    ]
    handle = parquet.ParquetFile(path, read_dictionary=texts or None)
    check_parquet_row_groups(handle.metadata, path.name)
    # fixed-size binary columns decode to their width a row, in pyarrow's reader: the batch
    # is made small enough for them to stay within MAX_BATCH_TEXT_BYTES
    widths = [
        (field.name, field.type.byte_width)
        for field in handle.schema_arrow
        if pa.types.is_fixed_size_binary(field.type)
    ]
    for name, width in widths:
        if width > MAX_LINE_BYTES:
            raise InputError(
                f"{path.name}: column {name!r} holds values of {width:,} bytes each, more than "
                f"the {MAX_LINE_BYTES:,} a cell may hold (as a CSV or NDJSON line); no field of "
                "a verdict or a decision is that long"
            )
    handle.qw_max_batch_rows = MAX_BATCH_TEXT_BYTES // max(1, sum(w for _, w in widths))
    return handle


def parquet_batches(handle: Any, batch_size: int, source: str) -> Iterator[Any]:
    """The record batches of a file opened by :func:`open_parquet`, in order, each with
    every bound checked before it is decoded (its cells: :func:`check_parquet_cells`; its
    text in all: :data:`MAX_BATCH_TEXT_BYTES`) and then decoded (no dictionary column left:
    the types a plain read gives). ``source``: the file name, for the messages."""
    pa = importlib.import_module("pyarrow")
    pc = importlib.import_module("pyarrow.compute")
    batch_size = max(1, min(batch_size, getattr(handle, "qw_max_batch_rows", batch_size)))
    first = 1  # the number of the batch's first row
    pending: list[Any] = []  # (read as dictionaries, pyarrow gives a batch per row group at
    rows = 0  # most: small row groups are checked and decoded together, batch_size at once)

    def flush() -> Any:
        table = pa.Table.from_batches(pending).unify_dictionaries().combine_chunks()
        check_parquet_cells(table, first, source)
        total = sum(_text_bytes(pa, pc, column.chunk(0)) for column in table.columns)
        if total > MAX_BATCH_TEXT_BYTES:
            raise InputError(
                f"{source}: rows {first:,} to {first + table.num_rows - 1:,} hold {total:,} "
                f"bytes of text, more than the {MAX_BATCH_TEXT_BYTES:,} read at once (a value "
                "repeated through a dictionary-encoded column?); no export of verdicts or "
                "decisions holds that much in so few rows"
            )
        decoded = [_decoded(pa, pc, column.chunk(0)) for column in table.columns]
        return pa.RecordBatch.from_arrays(decoded, names=table.schema.names)

    for raw in handle.iter_batches(batch_size=batch_size):
        pending.append(raw)
        rows += raw.num_rows
        if rows >= batch_size:
            yield flush()
            first += rows
            pending, rows = [], 0
    if pending:
        yield flush()


# the most a decode may ask of the allocator at once: pyarrow reserves a dictionary's mean
# value length for every row it decodes, which for a dictionary of one long value among
# empty ones is far more than the rows hold (a batch of 65,536 rows asked for 19.6 GB)
DECODE_RESERVE_BYTES = 64 << 20


def _decoded(pa: Any, pc: Any, array: Any) -> Any:
    """``array`` with every dictionary in it decoded (the type a plain read gives), a slice
    at a time so that no reservation passes :data:`DECODE_RESERVE_BYTES`."""
    kind = array.type
    if not _holds_dictionary(pa, kind):
        return array
    if pa.types.is_dictionary(kind):
        values = _decoded(pa, pc, array.dictionary)
        mean = _text_bytes(pa, pc, values) / max(1, len(values))
        step = max(1, int(DECODE_RESERVE_BYTES // max(1.0, mean)))
        parts = [pc.take(values, array.indices.slice(i, step)) for i in range(0, len(array), step)]
        return pa.concat_arrays(parts) if parts else pc.take(values, array.indices)
    mask = array.is_null() if array.null_count else None
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_map(kind):
        offsets = array.offsets
        start = offsets[0].as_py()
        based = pc.subtract(offsets, start).cast(offsets.type) if start else offsets
        if pa.types.is_map(kind):
            keys, items = _decoded(pa, pc, array.keys), _decoded(pa, pc, array.items)
            return pa.MapArray.from_arrays(based, keys, items, mask=mask)
        values = _decoded(pa, pc, array.flatten())
        make = pa.ListArray if pa.types.is_list(kind) else pa.LargeListArray
        return make.from_arrays(based, values, mask=mask)
    if pa.types.is_fixed_size_list(kind):
        values = _decoded(pa, pc, array.flatten())
        return pa.FixedSizeListArray.from_arrays(values, kind.list_size, mask=mask)
    if pa.types.is_struct(kind):
        fields = [_decoded(pa, pc, f) for f in array.flatten()]
        return pa.StructArray.from_arrays(fields, names=[f.name for f in kind], mask=mask)
    return array.cast(_plain(pa, kind))  # (a type the above does not take apart)


def _holds_dictionary(pa: Any, kind: Any) -> bool:
    return bool(kind != _plain(pa, kind))


def _text_bytes(pa: Any, pc: Any, array: Any) -> int:
    """The bytes of text and binary ``array`` decodes to, at any depth (a list's values, a
    struct's fields, a dictionary's values as often as its indices name them), from the
    lengths alone: nothing is decoded."""
    kind = array.type
    lengths = _cell_lengths(pa, pc, array)
    if lengths is not None:  # (text, binary, or a dictionary of them)
        return int(pc.sum(lengths).as_py() or 0)
    if pa.types.is_dictionary(kind):  # of a nested type (rare): at most all its values a row
        return len(array) * _text_bytes(pa, pc, array.dictionary)
    if pa.types.is_map(kind):  # (no list_flatten kernel for a map)
        return _text_bytes(pa, pc, array.keys) + _text_bytes(pa, pc, array.items)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return _text_bytes(pa, pc, array.flatten())  # (the values the slice's rows hold)
    if pa.types.is_struct(kind):
        return sum(_text_bytes(pa, pc, field) for field in array.flatten())
    return 0


def _plain(pa: Any, kind: Any) -> Any:
    """``kind`` with every dictionary in it replaced by its value type: what a read without
    dictionaries gives (a cast to it decodes them)."""
    if pa.types.is_dictionary(kind):
        return _plain(pa, kind.value_type)
    if pa.types.is_map(kind):
        return pa.map_(
            _plain(pa, kind.key_type), pa.field(kind.item_field.name, _plain(pa, kind.item_type))
        )
    if pa.types.is_list(kind):
        return pa.list_(pa.field(kind.value_field.name, _plain(pa, kind.value_type)))
    if pa.types.is_large_list(kind):
        return pa.large_list(pa.field(kind.value_field.name, _plain(pa, kind.value_type)))
    if pa.types.is_fixed_size_list(kind):
        field = pa.field(kind.value_field.name, _plain(pa, kind.value_type))
        return pa.list_(field, kind.list_size)
    if pa.types.is_struct(kind):
        return pa.struct([f.with_type(_plain(pa, f.type)) for f in kind])
    return kind


def check_parquet_cells(data: Any, first_row: int, source: str) -> None:
    """``InputError`` for a text or binary cell of a Parquet table or record batch
    (``data``) longer than :data:`MAX_LINE_BYTES`, the bound on a CSV or NDJSON line: the
    first such cell in file order (in a row, the first column), named by its row (``first_row``
    is the number of ``data``'s first row, 1-based) and column. Call it before any row of
    ``data`` is used. Text and binary columns are checked (dictionary-encoded ones too, by
    their values); a nested column is bounded by its row group only
    (:func:`check_parquet_row_groups`)."""
    found: tuple[int, str, int] | None = None  # (index in data, column, length)
    for name, column in zip(data.column_names, data.columns, strict=True):
        at = _first_long_cell(column)
        if at is not None and (found is None or at[0] < found[0]):  # (a tie: the first column)
            found = (at[0], str(name), at[1])
    if found is not None:
        index, name, length = found
        raise InputError(
            f"{source}: row {first_row + index}, column {name!r}: a value of {length:,} bytes, "
            f"more than the {MAX_LINE_BYTES:,} a cell may hold (as a CSV or NDJSON line); no "
            "field of a verdict or a decision is that long"
        )


def _first_long_cell(column: Any) -> tuple[int, int] | None:
    """The index in ``column`` (an Arrow array or chunked array) of its first cell longer
    than :data:`MAX_LINE_BYTES`, and that cell's length in bytes; None if it has none, or
    is not a text or binary column."""
    pa = importlib.import_module("pyarrow")
    pc = importlib.import_module("pyarrow.compute")
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    offset = 0  # rows in the chunks before this one
    for chunk in chunks:
        lengths = _cell_lengths(pa, pc, chunk)
        if lengths is None:
            return None  # (a column's chunks share its type)
        too_long = pc.greater(lengths, MAX_LINE_BYTES)  # (a null cell: null, not true)
        if pc.any(too_long).as_py():
            index = int(pc.index(too_long, True).as_py())
            return offset + index, int(lengths[index].as_py())
        offset += len(chunk)
    return None


def _cell_lengths(pa: Any, pc: Any, array: Any) -> Any:
    """Each cell's length in bytes (null for a null cell), or None for an array that is not
    text or binary. Vectorised: no cell is converted to a Python value."""
    kind = array.type
    if pa.types.is_dictionary(kind):  # each row's value's length: its index into the values
        values = _cell_lengths(pa, pc, array.dictionary)
        return None if values is None else pc.take(values, array.indices)
    views = {"is_string_view": pa.large_string(), "is_binary_view": pa.large_binary()}
    for test, wide in views.items():  # (no kernel takes a view's lengths; pyarrow >= 16)
        if getattr(pa.types, test, lambda _: False)(kind):
            return pc.binary_length(array.cast(wide))
    if (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_fixed_size_binary(kind)
    ):
        return pc.binary_length(array)
    return None


def _parquet_records(path: Path) -> tuple[tuple[str, ...], list[tuple[int, Record]]]:
    try:
        handle = open_parquet(path)
        columns = tuple(str(name) for name in handle.schema_arrow.names)
        rows = [  # (each batch checked before any of its rows becomes Python values)
            row
            for batch in parquet_batches(handle, 65_536, path.name)
            for row in micro_times(batch).to_pylist()
        ]
    except InputError:
        raise
    except Exception as exc:  # pyarrow raises its own error types; report any of them
        raise InputError(f"cannot read {path.name} as Parquet: {exc}") from exc
    return columns, [(i, row) for i, row in enumerate(rows, start=1)]


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def parse_records(
    records: Iterable[tuple[int, Record]],
    columns: Iterable[str] | None,
    options: LoadOptions | None = None,
    *,
    source: str = "input",
    where: str = "line",
) -> Verdicts:
    """Validate raw records into :class:`Verdicts` (pure; the readers feed it).

    Args:
        records: ``(line, record)`` pairs in file order.
        columns: the header, when the format has one (CSV, Parquet); ``None`` for NDJSON,
            whose columns are the keys seen.
        options: time column, naive-time policy and sample filter.
        source: the file name, for messages.
        where: ``"line"`` or ``"row"``, for messages.
    """
    options = options or LoadOptions()
    records = list(records)
    if not records:
        raise InputError(f"{source} has no verdict rows")
    if columns is None:
        seen: dict[str, None] = {}
        for _, record in records:
            seen.update(dict.fromkeys(record))
        header = tuple(seen)
    else:
        header = tuple(columns)
    check_columns(header, options.time_column, source, columns is not None)
    has_sample_type = "sample_type" in header

    rows: list[VerdictRow] = []
    left_out: Counter[str] = Counter()
    ids: set[str] = set()
    duplicates = 0
    blank_sample_types = 0
    decisions = 0
    for line, record in records:
        row = parse_row(line, record, options, where)
        if row is None:
            decisions += 1
            continue
        if row.sample_type is None:
            blank_sample_types += 1  # random, as the live pipeline reads it
        elif has_sample_type and not options.all_samples and row.sample_type != RANDOM:
            left_out[row.sample_type] += 1
            continue
        if row.verdict_id is not None:
            if row.verdict_id in ids:
                duplicates += 1
                continue
            ids.add(row.verdict_id)
        rows.append(row)

    read = len(records) - decisions
    notes = load_notes(
        has_sample_type, options.all_samples, left_out, read, duplicates, blank_sample_types,
        decisions,
    )  # fmt: skip
    if not rows:
        no_verdicts(source, read, decisions, bool(left_out))
    return Verdicts(
        rows=tuple(rows),
        rows_read=read,
        columns=header,
        left_out_by_sample_type=dict(left_out),
        duplicates=duplicates,
        notes=tuple(notes),
    )


def load_notes(
    has_sample_type: bool,
    all_samples: bool,
    left_out: Mapping[str, int],
    rows_read: int,
    duplicates: int,
    blank_sample_types: int,
    decisions: int = 0,
) -> list[str]:
    """The plain-words remarks on what loading filtered and why (shared by both loaders).

    ``rows_read``: the verdict rows read; ``blank_sample_types``: those whose sample type
    is blank (counted as random); ``decisions``: the decision rows skipped.
    """
    notes: list[str] = []
    if decisions:
        notes.append(
            f"{decisions:,} decision row(s) skipped (kind 'decision': an export for qwatch "
            "backfill; analyze reads its verdicts)"
        )
    if not has_sample_type:
        notes.append("no sample_type column: every verdict is taken as a random sample")
    elif all_samples:
        notes.append(
            "--all-samples: every sample type counts (targeted and appeal samples are biased "
            "by design, so the error rate is not the queue's accuracy)"
        )
    elif left_out:
        detail = ", ".join(f"{name} {count:,}" for name, count in sorted(left_out.items()))
        notes.append(
            f"only random samples count for accuracy: {sum(left_out.values()):,} of "
            f"{rows_read:,} verdicts left out ({detail}); --all-samples includes them"
        )
    else:
        notes.append("only random samples count for accuracy (all rows are random samples)")
    if has_sample_type and not all_samples and blank_sample_types:
        notes.append(
            f"{blank_sample_types:,} verdict(s) without a sample_type counted as random samples "
            "(the live pipeline's default)"
        )
    if duplicates:
        notes.append(f"{duplicates:,} repeated verdict_id row(s) counted once (first kept)")
    return notes


def no_verdicts(source: str, read: int, decisions: int, left_out: bool) -> NoReturn:
    """The file left nothing to analyse: say why (shared by both loaders)."""
    if not read and decisions:
        rows = (
            "its one row is a decision"
            if decisions == 1
            else f"all {decisions:,} rows are decisions"
        )
        raise InputError(
            f"{source}: no verdict rows to analyse: {rows} (kind 'decision'; analyze reads QA "
            "verdicts)"
        )
    hint = " (only random samples count; --all-samples includes the others)" if left_out else ""
    raise InputError(f"{source}: no verdicts left to analyse{hint}")


def check_columns(header: tuple[str, ...], time_column: str, source: str, fixed: bool) -> None:
    present = set(header)
    missing = [name for name in ("queue_id", time_column) if name not in present]
    if "correct" not in present and "outcome" not in present:
        missing.append("correct (true/false) or outcome (correct/incorrect)")
    if missing:
        kind = "columns" if fixed else "fields"
        found = ", ".join(header) if header else "none"
        raise InputError(
            f"{source} lacks the required {kind} {'; '.join(missing)} (found: {found})"
            + ("; choose the time column with --time-column" if time_column not in present else "")
        )


@dataclass(frozen=True, slots=True)
class _Where:
    """Where a value came from, for error messages."""

    unit: str
    line: int

    def error(self, column: str, value: object, why: str) -> InputError:
        return InputError(
            f"{self.unit} {self.line}, column {column!r}: {why} (value {shown(value)})"
        )

    def missing(self, column: str) -> InputError:
        return InputError(f"{self.unit} {self.line}, column {column!r}: no value")


def shown(value: object) -> str:
    """A value as the user wrote it: text quoted, a time or date in ISO 8601, a boolean as
    JSON has it (not Python's ``datetime.datetime(2026, 9, 1, 0, 0)`` or ``True``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):  # (a datetime is a date)
        return value.isoformat()
    return repr(value)


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def parse_row(line: int, record: Record, options: LoadOptions, unit: str) -> VerdictRow | None:
    """The verdict of a row, validated; None for a decision row (kind 'decision': an
    export for qwatch backfill holds both kinds, and analyze reads the verdicts)."""
    where = _Where(unit, line)

    def text(column: str) -> str | None:
        value = record.get(column)
        if _blank(value):
            return None
        if isinstance(value, str):
            return value.strip()
        # not a number either: the live pipeline takes strings only, and is 7 the queue
        # "7" or "07"?
        raise where.error(column, value, "expected a string")

    kind = record.get("kind")  # (other values, say a content kind, are ignored as before)
    if isinstance(kind, str) and kind.strip().lower() == "decision":
        return None
    queue_id = text("queue_id")
    if queue_id is None:
        raise where.missing("queue_id")
    sample_type = text("sample_type")
    return VerdictRow(
        line=line,
        queue_id=queue_id,
        reviewed_at=_timestamp(record.get(options.time_column), options, where),
        incorrect=_incorrect(record, where),
        site_id=text("site_id"),
        policy_id=text("policy_id"),
        error_type=text("error_type"),
        sample_type=None if sample_type is None else sample_type.lower(),
        verdict_id=text("verdict_id"),
    )


def _timestamp(value: object, options: LoadOptions, where: _Where) -> datetime:
    column = options.time_column
    if _blank(value):
        raise where.missing(column)
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise where.error(
                column, value, "not an ISO 8601 timestamp (e.g. 2026-11-02T10:15:00Z)"
            ) from None
    else:
        raise where.error(column, value, "expected an ISO 8601 timestamp string")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        if not options.assume_utc:
            raise where.error(
                column,
                value,
                "the timestamp has no time zone; add one (e.g. 2026-11-02T10:15:00Z) "
                "or pass --assume-utc",
            )
        parsed = parsed.replace(tzinfo=UTC)
    try:
        utc = parsed.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise where.error(column, value, _OUT_OF_RANGE)
    return utc


def _incorrect(record: Record, where: _Where) -> bool:
    correct, outcome = record.get("correct"), record.get("outcome")
    said = None if _blank(correct) else _read_correct(correct, where)
    found = None if _blank(outcome) else _read_outcome(outcome, where)
    if said is None:
        if found is None:
            raise InputError(
                f"{where.unit} {where.line}: neither 'correct' nor 'outcome' has a value"
            )
        return found
    if found is not None and found != said:
        # neither column can be preferred silently: one of them is wrong
        raise InputError(
            f"{where.unit} {where.line}: 'correct' and 'outcome' disagree "
            f"(correct {shown(correct)}, outcome {shown(outcome)})"
        )
    return said


def _read_correct(value: object, where: _Where) -> bool:
    """Whether a ``correct`` value (not blank) says incorrect."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float) and value in (0, 1):  # (1.0 and 0.0 too, as pandas has them)
        return value == 0
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return False
        if word in _FALSE:
            return True
    raise where.error("correct", value, "expected true/false, 1/0 or yes/no")


def _read_outcome(value: object, where: _Where) -> bool:
    """Whether an ``outcome`` value (not blank) says incorrect."""
    if isinstance(value, str) and value.strip().lower() in _OUTCOMES:
        return _OUTCOMES[value.strip().lower()]
    raise where.error("outcome", value, "expected correct or incorrect")
