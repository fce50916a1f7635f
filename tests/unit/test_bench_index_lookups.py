"""bench/index_lookups.py on small databases: with 10-bit filters in files small enough for
the cache, a lookup of an id that is not there reads almost no data block; with the store's
3-bit filters, about one such lookup in six a file does."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from rocksdict import Rdict

from bench import index_lookups
from services.scorer import store as rocks


def test_the_store_opens_its_databases_with_the_layout_measured_as_its_own() -> None:
    store = index_lookups.LAYOUTS[0]
    o = rocks.BoundedRocksDBOptions(block_cache_size=8 << 20, use_rocksdict=True)
    assert (store.block_size, store.bloom_bits, store.target_file_bytes) == (
        o.block_size, o.bloom_bits, o.target_file_bytes,
    )  # fmt: skip
    assert (o.block_size, o.bloom_bits, o.target_file_bytes) == (16 << 10, 3, 64 << 20)


def test_absent_ids_read_almost_no_data_block_with_10_bit_filters_that_fit() -> None:
    # 150,000 entries: ~20 MB, several flushed files and a compaction below level 0
    measured, batched = index_lookups.measure(ids=150_000, n_lookups=3_000, reps=1, seed=3)
    by_name = {layout.name: result for layout, result, _ in measured}
    store, tried = by_name["store"], by_name["tried"]
    assert tried.median("miss", "filter") < 5  # the filters stay in the cache
    assert tried.median("miss", "data") < 40  # ~1% false positives a file
    assert store.median("miss", "data") > 3 * max(tried.median("miss", "data"), 10)
    assert all(disk > 10e6 for _, _, disk in measured)
    assert list(batched) == [name for name, _ in index_lookups.BATCH_WAYS]
    assert all(wall > 0 and cpu > 0 for wall, cpu in batched.values())


def test_the_command_prints_a_row_a_layout(capsys: pytest.CaptureFixture[str]) -> None:
    assert index_lookups.main(["--ids", "2000", "--lookups", "200", "--reps", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[2:5]] == ["store", "tried", "10-bit,"]
    assert out[5].startswith("tried / store: a hit ")
    assert [line[:22].strip() for line in out[-4:-1]] == [
        "a get per id", "one MultiGet", "two halves at once",
    ]  # fmt: skip
    assert out[-1].startswith("wall against a get per id: one MultiGet ")
    with pytest.raises(SystemExit):
        index_lookups.main(["--ids", "0"])
    with pytest.raises(SystemExit):
        index_lookups.main(["--batch", "0"])


def test_settle_warns_only_when_it_stops_waiting_for_work_still_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = Rdict(str(tmp_path / "db"), options=index_lookups.options(index_lookups.LAYOUTS[0]))
    try:
        index_lookups.settle(db, timeout=0.0)  # an empty database: nothing to wait for
        assert capsys.readouterr().out == ""
    finally:
        db.close()
    always_compacting = SimpleNamespace(property_int_value=lambda name: 1)
    index_lookups.settle(always_compacting, timeout=0.3)  # type: ignore[arg-type]
    assert capsys.readouterr().out.startswith("warning: compactions still running after 0 s")
