"""The Spark engine's checks that need no Spark (no JVM is started); its settings are in
test_config.py."""
from __future__ import annotations

import sys

import pytest

from workbench.engines.spark import check_master, require_spark
from workbench.errors import MissingDependency, WorkbenchError
from workbench.pytest_plugin import free_port


def test_without_pyspark_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspark", None)
    with pytest.raises(MissingDependency, match=r"pip install 'mlops-workbench\[spark\]'"):
        require_spark()


def test_a_master_that_does_not_answer_is_said_at_once():
    master = f"spark://127.0.0.1:{free_port()}"
    with pytest.raises(WorkbenchError, match="cannot reach the Spark master") as raised:
        check_master(master, timeout=2)
    assert master in str(raised.value) and "\n" not in str(raised.value)
    check_master("local[2]")  # nothing to reach


def test_partition_counts_summed_over_partitions_equal_counting_the_values():
    """The drift check's per-partition counter (run in Spark's Python workers), fed Arrow
    batches directly: its counts, lows, highs and categories, summed over two partitions,
    are those of all the values at once."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from workbench.engines.spark_monitoring import (
        _COUNTED_SCHEMA,
        _categories,
        _count_partition,
        _numeric,
    )
    from workbench.monitoring.drift import NumericCounts, bucket_splits

    rng = np.random.default_rng(7)
    values = np.round(rng.normal(50, 10, 5000), 1)
    values[[3, 30, 300]] = [np.nan, np.inf, -np.inf]
    points = np.unique(np.concatenate([np.quantile(values[np.isfinite(values)],
                                                   np.linspace(0, 1, 40)), [50.0, 1e9]]))
    words = rng.choice(["a", "b", "c", None], 5000)
    numbers = rng.choice([1.0, 2.0, np.nan], 5000)

    def batches(rows: slice) -> list[pa.RecordBatch]:
        return [pa.RecordBatch.from_pydict({
            "c0": pa.array(values[a:a + 700], mask=np.arange(a, min(a + 700, 5000)) == 7),
            "c1": pa.array(list(words[a:a + 700]), pa.string()),
            "c2": pa.array(numbers[a:a + 700])})
            for a in range(rows.start, rows.stop, 700)]

    splits = bucket_splits(points)
    out = [b for part in (slice(0, 2100), slice(2100, 5000), slice(0, 0))
           for b in _count_partition(iter(batches(part)), splits={0: splits})]
    assert all(len(b.schema) == len(_COUNTED_SCHEMA.split(",")) for b in out)
    table = pa.Table.from_batches(out).to_pandas()
    rows = int(table.loc[table.f < 0, "n"].sum())
    assert rows == 5000

    got = _numeric(rows, splits, table[table.f == 0])
    values[7] = np.nan  # the null
    expected = NumericCounts.from_values(values, points)
    np.testing.assert_array_equal(got.counts, expected.counts)
    np.testing.assert_array_equal(got.lows, expected.lows)
    np.testing.assert_array_equal(got.highs, expected.highs)
    assert got.integral == expected.integral is False
    words_counted = _categories(rows, table[table.f == 1])
    assert words_counted.counts == pd.Series(words).value_counts().to_dict()
    numbers_counted = _categories(rows, table[table.f == 2])
    assert numbers_counted.counts == {"1": int((numbers == 1).sum()),
                                      "2": int((numbers == 2).sum())}


def test_parquet_with_fewer_row_groups_than_cores_is_spread_over_the_cores(tmp_path):
    import types

    import pandas as pd

    from workbench.engines.spark import scoring_tasks

    session = types.SimpleNamespace(sparkContext=types.SimpleNamespace(defaultParallelism=2))
    frame = pd.DataFrame({"a": range(3000)})
    frame.to_parquet(tmp_path / "one.parquet", row_group_size=3000)
    (tmp_path / "many").mkdir()
    frame.to_parquet(tmp_path / "many" / "three.parquet", row_group_size=1000)
    frame.to_csv(tmp_path / "one.csv", index=False)
    assert scoring_tasks(session, tmp_path / "one.parquet") == 2
    assert scoring_tasks(session, tmp_path / "many") == 0
    assert scoring_tasks(session, tmp_path / "one.csv") == 0
    assert scoring_tasks(session, "s3a://bucket/data") == 0
    session.sparkContext.defaultParallelism = 1
    assert scoring_tasks(session, tmp_path / "one.parquet") == 0


def test_the_drivers_first_rows_of_local_parquet_are_read_without_spark(tmp_path):
    import pandas as pd

    from workbench.engines.spark import first_rows

    folder = tmp_path / "in"
    folder.mkdir()
    pd.DataFrame({"a": range(150), "b": ["x"] * 150}).to_parquet(folder / "part-0.parquet")
    pd.DataFrame({"a": range(500, 510), "b": ["y"] * 10}).to_parquet(folder / "part-1.parquet")
    sample = first_rows(folder)
    assert sample is not None and list(sample.a) == list(range(100))
    assert list(sample.columns) == ["a", "b"]
    assert list(first_rows(folder / "part-1.parquet", rows=3).a) == [500, 501, 502]
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "t.csv", index=False)
    assert first_rows(tmp_path / "t.csv") is None  # Spark's own sample has its inferred types
    assert first_rows("s3a://bucket/data") is None
