"""bench/index_lookups.py on small databases: with 10-bit filters in files small enough for
the cache, a lookup of an id that is not there reads almost no data block; with the store's
3-bit filters, about one such lookup in six a file does."""

from __future__ import annotations

import pytest

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
    measured = index_lookups.measure(ids=150_000, n_lookups=3_000, reps=1, seed=3)
    by_name = {layout.name: result for layout, result, _ in measured}
    store, tried = by_name["store"], by_name["tried"]
    assert tried.median("miss", "filter") < 5  # the filters stay in the cache
    assert tried.median("miss", "data") < 40  # ~1% false positives a file
    assert store.median("miss", "data") > 3 * max(tried.median("miss", "data"), 10)
    assert all(disk > 10e6 for _, _, disk in measured)


def test_the_command_prints_a_row_a_layout(capsys: pytest.CaptureFixture[str]) -> None:
    assert index_lookups.main(["--ids", "2000", "--lookups", "200", "--reps", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[2:5]] == ["store", "tried", "10-bit,"]
    assert out[-1].startswith("tried / store: a hit ")
    with pytest.raises(SystemExit):
        index_lookups.main(["--ids", "0"])
