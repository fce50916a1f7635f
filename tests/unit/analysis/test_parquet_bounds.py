"""A Parquet file is bounded as a text file is (shared/analysis/load.py): a text or binary
cell longer than ``MAX_LINE_BYTES`` (the bound on a CSV or NDJSON line) is refused, naming
the file, the row and the column, and a row group of more than ``MAX_ROW_GROUP_BYTES``
uncompressed is refused before it is read. A cell of any size was read whole."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from shared.analysis import load
from shared.analysis.errors import InputError
from shared.analysis.load import MAX_LINE_BYTES, load_verdicts
from tests.conftest import need_module

from .helpers import verdict_rows

pa = need_module("pyarrow")
pq = need_module("pyarrow.parquet")

LONG = MAX_LINE_BYTES + 1


def rows(n: int = 4) -> list[dict[str, Any]]:
    return verdict_rows([1], n=n, site_id="dublin")


def write(path: Path, table: Any, **kw: Any) -> Path:
    pq.write_table(table, path, **kw)
    return path


def refusal(path: Path) -> str:
    with pytest.raises(InputError) as caught:
        load_verdicts(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


def too_long(source: str, row: int, column: str, length: int = LONG) -> str:
    return (
        f"{source}: row {row}, column {column!r}: a value of {length:,} bytes, more than the "
        f"{MAX_LINE_BYTES:,} a cell may hold (as a CSV or NDJSON line); no field of a verdict "
        "or a decision is that long"
    )


def test_the_text_formats_and_parquet_share_one_bound() -> None:
    from shared.analysis import columnar

    # (columnar.py's own constant until it imports this one: the same number meanwhile)
    assert columnar.MAX_LINE_BYTES == load.MAX_LINE_BYTES == 1 << 20


def test_a_text_cell_past_the_bound_is_refused_naming_file_row_and_column(
    tmp_path: Path,
) -> None:
    data = rows()
    data[2]["site_id"] = "x" * LONG
    f = write(tmp_path / "v.parquet", pa.Table.from_pylist(data))
    assert refusal(f) == too_long("v.parquet", 3, "site_id")
    # a column the reader ignores is bounded too: it is read (into memory) all the same
    data[2]["site_id"] = "dublin"
    for row in data:
        row["notes"] = "ok"
    data[1]["notes"] = "é" * (MAX_LINE_BYTES // 2 + 1)  # bytes, not characters, count
    data[3]["notes"] = "x" * LONG
    g = write(tmp_path / "w.parquet", pa.Table.from_pylist(data))
    assert refusal(g) == too_long("w.parquet", 2, "notes", MAX_LINE_BYTES + 2)


def test_a_cell_of_exactly_the_bound_is_read(tmp_path: Path) -> None:
    data = rows()
    data[0]["site_id"] = "x" * MAX_LINE_BYTES
    f = write(tmp_path / "v.parquet", pa.Table.from_pylist(data))
    assert load_verdicts(f).rows[0].site_id == "x" * MAX_LINE_BYTES


def test_binary_dictionary_and_later_row_groups_are_bounded(tmp_path: Path) -> None:
    data = rows(6)
    table = pa.Table.from_pylist(data)
    blob = pa.array([b"ok"] * 5 + [b"x" * LONG], pa.binary())
    f = write(tmp_path / "b.parquet", table.append_column("blob", blob))
    assert refusal(f) == too_long("b.parquet", 6, "blob")
    # pandas' categories: a dictionary column, bounded by the value each row points at
    sites = pa.array(["dublin"] * 4 + ["y" * LONG] * 2).dictionary_encode()
    table = table.set_column(table.schema.get_field_index("site_id"), "site_id", sites)
    g = write(tmp_path / "d.parquet", table, row_group_size=2)  # rows 5, 6: the third group
    assert pa.types.is_dictionary(pq.read_schema(g).field("site_id").type)
    assert pq.ParquetFile(g).metadata.num_row_groups == 3
    assert refusal(g) == too_long("d.parquet", 5, "site_id")


def test_the_first_long_cell_in_file_order_is_named() -> None:
    """Row first, then the column order; the rows of every chunk numbered from
    ``first_row`` (a batch further on in the file)."""
    long = "x" * LONG
    table = pa.Table.from_batches(
        [
            pa.record_batch({"a": ["1", "2"], "b": ["1", long]}),
            pa.record_batch({"a": [long, "4"], "b": [long, "4"]}),
        ]
    )
    with pytest.raises(InputError) as caught:
        load.check_parquet_cells(table, 1, "t.parquet")
    assert str(caught.value) == too_long("t.parquet", 2, "b")
    later = table.slice(2)
    assert later.column("a").num_chunks == 1
    with pytest.raises(InputError) as caught:
        load.check_parquet_cells(later, 10_001, "t.parquet")
    assert str(caught.value) == too_long("t.parquet", 10_001, "a")
    # numbers, nulls and nested columns are not cells this bound reads
    load.check_parquet_cells(
        pa.table({"n": [1, None], "s": [None, "x"], "l": [["x" * 10], None]}), 1, "t.parquet"
    )


def test_an_absurd_row_group_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = write(tmp_path / "g.parquet", pa.Table.from_pylist(rows(6)), row_group_size=4)
    meta = pq.read_metadata(f)
    first, second = meta.row_group(0).total_byte_size, meta.row_group(1).total_byte_size
    assert second < first
    monkeypatch.setattr(load, "MAX_ROW_GROUP_BYTES", second)  # (1 GiB of test file: no)
    read: list[object] = []
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", lambda self, **kw: read.append(self))
    assert refusal(f) == (
        f"g.parquet: row group 1 of 2 (rows 1 to 4) is {first:,} bytes uncompressed, more "
        f"than the {second:,} read at once; write the file again with smaller row groups "
        "(e.g. pyarrow's row_group_size=100_000)"
    )
    assert read == []  # refused from the metadata: not one row read


def test_analyze_refuses_a_long_parquet_cell_as_the_reference_does(tmp_path: Path) -> None:
    from shared.analysis.columnar import load_columns

    data = rows()
    data[2]["verdict_id"] = "x" * LONG
    f = write(tmp_path / "v.parquet", pa.Table.from_pylist(data))
    with pytest.raises(InputError) as caught:
        load_columns(f)
    assert str(caught.value) == refusal(f)


def bomb(path: Path, n: int) -> Path:
    """A few kilobytes that say ``n`` cells of a value just under the cell bound: one value
    in a dictionary-encoded column, and ``n`` indices to it."""
    table = pa.Table.from_pylist(rows(1) * n)
    # (written from a dictionary array: the test process never holds the decoded cells)
    big = pa.DictionaryArray.from_arrays(
        pa.array([0] * n, pa.int32()), pa.array(["x" * (MAX_LINE_BYTES - 100)])
    )
    return write(path, table.set_column(table.schema.get_field_index("site_id"), "site_id", big))


def test_a_value_repeated_through_a_dictionary_is_refused_by_both_readers(
    tmp_path: Path,
) -> None:
    """Each cell is within the bound and the row group is ~1 MB encoded, yet the 300 rows
    decode to 300 MB of text (pyarrow decoded them at once; 20,000 rows: 20 GB): refused, by
    both readers, in the same words, naming the rows."""
    from shared.analysis.columnar import load_columns

    f = bomb(tmp_path / "b.parquet", 300)  # (300 MB, should the bound be lost)
    assert f.stat().st_size < 100_000  # (the other columns: ids of their own)
    expected = re.fullmatch(
        r"b\.parquet: rows 1 to 300 hold ([0-9,]+) bytes of text, more than the "
        rf"{load.MAX_BATCH_TEXT_BYTES:,} read at once \(a value repeated through a "
        r"dictionary-encoded column\?\); no export of verdicts or decisions holds that much in "
        r"so few rows",
        refusal(f),
    )
    assert expected is not None, refusal(f)
    assert int(expected[1].replace(",", "")) > 300 * (MAX_LINE_BYTES - 100)
    with pytest.raises(InputError) as caught:
        load_columns(f)
    assert str(caught.value) == expected[0]


def test_the_refusal_comes_before_anything_is_decoded(tmp_path: Path) -> None:
    """20 GB of text from a file of ~1 kB, in a process allowed 6 GiB of address space: the
    one-line refusal, not an allocation that fails (or, without the limit, succeeds)."""
    import resource
    import subprocess
    import sys

    f = bomb(tmp_path / "b.parquet", 20_000)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))

    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "analyze", str(f)],
        capture_output=True, text=True, timeout=300, preexec_fn=limit, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert "b.parquet: rows 1 to 20,000 hold 20,9" in done.stderr, done.stderr[-2000:]
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize("store_schema", [True, False])
def test_a_repeated_value_inside_a_list_column_is_refused_too(
    tmp_path: Path, store_schema: bool
) -> None:
    """The same bomb one level down: 300 rows of a list of a cell of almost 1 MiB, one value
    in the file. Written with pyarrow's schema, the lists came back as dictionaries and their
    conversion failed with an empty message; without it (another writer), they were decoded
    (20,000 rows of 10 such cells: 20 GB)."""
    from shared.analysis.columnar import load_columns

    n = 300  # (300 MB, should the bound be lost: the test fails without the machine's memory)
    table = pa.Table.from_pylist(rows(1) * n)
    values = pa.DictionaryArray.from_arrays(
        pa.array([0] * n, pa.int32()), pa.array(["x" * (MAX_LINE_BYTES - 100)])
    )
    lists = pa.ListArray.from_arrays(pa.array(range(n + 1), pa.int32()), values)
    f = write(tmp_path / "n.parquet", table.append_column("tags", lists), store_schema=store_schema)
    said = refusal(f)
    assert said.startswith("n.parquet: rows 1 to 300 hold "), said
    assert f"more than the {load.MAX_BATCH_TEXT_BYTES:,} read at once" in said
    with pytest.raises(InputError) as caught:
        load_columns(f)
    assert str(caught.value) == said


def test_a_small_list_column_of_a_dictionary_is_read_as_before(tmp_path: Path) -> None:
    """Nested columns are decoded (any dictionary in them too): a list column of a few
    repeated words reads as lists of text, and both readers agree."""
    from shared.analysis.columnar import load_columns

    data = rows(6)
    table = pa.Table.from_pylist(data)
    words = pa.DictionaryArray.from_arrays(pa.array([0, 1] * 6, pa.int32()), pa.array(["a", "b"]))
    lists = pa.ListArray.from_arrays(pa.array(range(0, 13, 2), pa.int32()), words)
    f = write(tmp_path / "ok.parquet", table.append_column("tags", lists))
    handle = load.open_parquet(f)
    (batch,) = load.parquet_batches(handle, 100, f.name)
    assert batch.column("tags").to_pylist() == [["a", "b"]] * 6
    assert len(load_verdicts(f).rows) == 6
    load_columns(f)  # (the extra column ignored by both)


def plain_rows(f: Path) -> list[dict[str, Any]]:
    """The rows as a read without dictionaries gives them (pyarrow's own, whole)."""
    return list(pq.read_table(f).to_pylist())


def bounded_rows(f: Path, batch: int = 65_536) -> list[dict[str, Any]]:
    handle = load.open_parquet(f)
    return [row for b in load.parquet_batches(handle, batch, f.name) for row in b.to_pylist()]


def test_what_the_bound_reads_is_what_a_plain_read_gives(tmp_path: Path) -> None:
    """A trial of the bound found regressions, each a file read before it: a map column
    (no kernel flattened it), a dictionary of one long value among empty ones (the decode
    reserved the mean length for every row: 19.6 GB for a batch), fixed-size binary, and
    row groups of two rows (a batch each, 60x slower). Each now reads as pyarrow reads it."""
    n = 3_000
    base = pa.Table.from_pylist(rows(1) * n)
    cases: dict[str, tuple[Any, dict[str, Any]]] = {
        "map": (
            pa.MapArray.from_arrays(
                pa.array(range(0, 2 * n + 1, 2), pa.int32()),
                pa.array([f"k{i % 7}" for i in range(2 * n)]),
                pa.array([i % 5 for i in range(2 * n)], pa.int32()),
            ),
            {},
        ),
        "skewed": (
            pa.DictionaryArray.from_arrays(
                pa.array([0] * (n - 1) + [1], pa.int32()), pa.array(["", "x" * 600_000])
            ),
            {},
        ),
        "fixed": (pa.array([b"0123456789abcdef"] * n, pa.binary(16)), {}),
        "small groups": (pa.array([f"s{i % 3}" for i in range(n)]), {"row_group_size": 2}),
        "list of struct": (
            pa.array([[{"a": f"w{i % 4}", "b": i}] * (i % 3) for i in range(n)]),
            {"store_schema": False},
        ),
    }
    for name, (column, kw) in cases.items():
        f = write(tmp_path / f"{name}.parquet", base.append_column("extra", column), **kw)
        assert bounded_rows(f) == plain_rows(f), name
        assert bounded_rows(f, batch=1_000) == plain_rows(f), name
        load_verdicts(f)  # (the extra column ignored)


def test_a_fixed_size_binary_column_is_read_in_batches_of_its_bound(tmp_path: Path) -> None:
    """pyarrow decodes fixed-size binary whatever it is told: the batch shrinks so that its
    values stay within the bound, and values wider than a cell may be are refused from the
    schema."""
    n = 50
    table = pa.Table.from_pylist(rows(1) * n)
    wide = pa.array([b"x" * 4096] * n, pa.binary(4096))
    f = write(tmp_path / "w.parquet", table.append_column("w", wide))
    handle = load.open_parquet(f)
    assert handle.qw_max_batch_rows == load.MAX_BATCH_TEXT_BYTES // 4096
    assert bounded_rows(f) == plain_rows(f)
    too_wide = pa.array([b"x" * (MAX_LINE_BYTES + 1)] * 2, pa.binary(MAX_LINE_BYTES + 1))
    g = write(
        tmp_path / "g.parquet", pa.Table.from_pylist(rows(1) * 2).append_column("w", too_wide)
    )
    assert refusal(g) == (
        f"g.parquet: column 'w' holds values of {MAX_LINE_BYTES + 1:,} bytes each, more than "
        f"the {MAX_LINE_BYTES:,} a cell may hold (as a CSV or NDJSON line); no field of a "
        "verdict or a decision is that long"
    )


def test_a_list_column_of_too_many_values_is_refused_from_the_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small values in a list column run-length encode to nothing: 196 million int8 zeros
    in 459 kB decoded to 3.5 GB. The values of a column of a group are counted from the
    metadata before any row is read."""
    n = 100
    lists = pa.array([[0] * 50] * n, pa.list_(pa.int8()))
    f = write(tmp_path / "l.parquet", pa.Table.from_pylist(rows(1) * n).append_column("l", lists))
    monkeypatch.setattr(load, "MAX_GROUP_VALUES", 4_999)  # (67 million in a test: no)
    assert refusal(f) == (
        "l.parquet: row group 1 of 1 (rows 1 to 100): column 'l.list.element' holds 5,000 "
        "values, more than the 4,999 read at once (a list column of many values?); no export "
        "of verdicts or decisions has them"
    )
    monkeypatch.setattr(load, "MAX_GROUP_VALUES", 5_000)
    load_verdicts(f)
