"""Reading the prediction store back: one row per predicted row, windows, chunks."""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from _store import T0

from workbench.store import PredictionLog, PredictionRecord, read_predictions, sqlite_url


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store" / "predictions.db"


@pytest.fixture
def make_log(db: Path) -> Iterator[Callable[..., PredictionLog]]:
    logs: list[PredictionLog] = []

    def make(**options: float) -> PredictionLog:
        options = {"flush_interval": 0.02, "retry_interval": 0.05, **options}
        log = PredictionLog(sqlite_url(db), **options)
        logs.append(log)
        return log

    yield make
    for log in logs:
        log.close(timeout=1)


@pytest.fixture
def logged(make_log, db: Path) -> str:
    log = make_log()
    log.start()
    log.submit(PredictionRecord("a", T0, "churn_v1_20240101", ["x", "plan"],
                                {"x": [1.0, math.nan], "plan": ["basic", None]}, [0, 1], 2.0))
    log.submit(PredictionRecord("b", T0 + dt.timedelta(hours=1), "churn_v2_20240201", ["x"],
                                {"x": [3.0]}, [[0.1, 0.9]], 4.0))
    log.submit(PredictionRecord("c", T0 + dt.timedelta(hours=2), "churn_v1_20240101",
                                ["x", "plan"], {"x": [5.0], "plan": ["pro"]}, [1], 6.0))
    assert log.flush(timeout=5)
    return sqlite_url(db)


def test_read_predictions_gives_one_row_per_predicted_row(logged: str) -> None:
    frame = read_predictions(logged)
    assert list(frame.columns) == ["request_id", "created_at", "model_name", "role", "x",
                                   "plan", "prediction", "latency_ms"]
    assert frame["role"].tolist() == ["primary"] * 4
    assert frame["request_id"].tolist() == ["a", "a", "b", "c"]
    assert frame["created_at"].tolist() == [T0, T0, T0 + dt.timedelta(hours=1),
                                            T0 + dt.timedelta(hours=2)]
    assert str(frame["created_at"].dt.tz) == "UTC"
    assert frame["model_name"].tolist() == ["churn_v1_20240101"] * 2 + [
        "churn_v2_20240201", "churn_v1_20240101"]
    assert frame["x"].dtype == "float64"
    assert frame["x"].iloc[0] == 1.0 and math.isnan(frame["x"].iloc[1])
    assert frame["x"].iloc[2:].tolist() == [3.0, 5.0]
    assert frame["plan"].iloc[0] == "basic" and frame["plan"].iloc[[1, 2]].isna().all()
    assert frame["prediction"].tolist() == [0, 1, [0.1, 0.9], 1]
    assert frame["latency_ms"].tolist() == [2.0, 2.0, 4.0, 6.0]


def test_read_predictions_keeps_an_all_nan_column_numeric(make_log, db: Path) -> None:
    log = make_log()
    log.start()
    log.submit(PredictionRecord("a", T0, "m", ["x"], {"x": [math.nan, math.nan]}, [1, 2], 1.0))
    assert log.flush(timeout=5)
    frame = read_predictions(sqlite_url(db))
    assert frame["x"].dtype == "float64" and frame["x"].isna().all()


def test_read_predictions_filters_by_model_and_time_window(logged: str) -> None:
    v1 = read_predictions(logged, model_name="churn_v1_20240101")
    assert v1["request_id"].tolist() == ["a", "a", "c"]
    window = read_predictions(logged, since=T0 + dt.timedelta(minutes=30),
                              until=T0 + dt.timedelta(hours=2))
    assert window["request_id"].tolist() == ["b"]
    # Naive bounds are UTC; other zones are converted.
    later = read_predictions(logged, since=dt.datetime(2024, 5, 1, 15, 30,
                                                       tzinfo=dt.timezone(dt.timedelta(hours=2))))
    assert later["request_id"].tolist() == ["c"]
    assert read_predictions(logged, since=dt.datetime(2024, 5, 1, 13, 30))[
        "request_id"].tolist() == ["c"]


def test_read_predictions_is_empty_when_nothing_matches(logged: str, tmp_path: Path) -> None:
    base = ["request_id", "created_at", "model_name", "role", "prediction", "latency_ms"]
    assert list(read_predictions(logged, model_name="nope").columns) == base
    missing = tmp_path / "none" / "p.db"
    frame = read_predictions(f"sqlite:///{missing}")
    assert frame.empty and list(frame.columns) == base
    assert not missing.exists()
    assert isinstance(frame, pd.DataFrame)


def test_chunked_reads_give_the_same_frame(logged: str) -> None:
    whole = read_predictions(logged)
    chunked = read_predictions(logged, chunk_size=1)
    pd.testing.assert_frame_equal(whole, chunked)


def test_read_predictions_filters_by_role(make_log, db: Path) -> None:
    log = make_log()
    log.start()
    log.submit(PredictionRecord("a", T0, "churn_v1_20240101", ["x"], {"x": [1.0, 2.0]}, [0, 1],
                                2.0))
    log.submit(PredictionRecord("a", T0, "churn_v2_20240201", ["x"], {"x": [1.0, 2.0]}, [1, 1],
                                0.5, role="shadow"))
    assert log.flush(timeout=5)
    url = sqlite_url(db)
    every = read_predictions(url)
    assert every["role"].tolist() == ["primary", "primary", "shadow", "shadow"]
    shadow = read_predictions(url, role="shadow")
    assert shadow["model_name"].tolist() == ["churn_v2_20240201"] * 2
    assert shadow["prediction"].tolist() == [1, 1] and shadow["latency_ms"].tolist() == [0.5] * 2
    assert read_predictions(url, model_name="churn_v1_20240101", role="shadow").empty


def test_a_store_not_yet_migrated_reads_as_primary_and_stays_unmigrated(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "v2.db"
    with sqlite3.connect(db) as conn:
        conn.executescript("""
            CREATE TABLE predictions (id INTEGER PRIMARY KEY, request_id VARCHAR(64) NOT NULL,
                created_at DATETIME NOT NULL, model_name VARCHAR(255) NOT NULL,
                n_rows INTEGER NOT NULL, inputs TEXT NOT NULL, outputs TEXT NOT NULL,
                latency_ms FLOAT);
            CREATE TABLE workbench_store_meta (key VARCHAR(64) PRIMARY KEY, value VARCHAR(255));
            INSERT INTO workbench_store_meta VALUES ('schema_version', '2');
            INSERT INTO predictions (request_id, created_at, model_name, n_rows, inputs,
                outputs, latency_ms) VALUES ('old', '2024-05-01 12:00:00.000000', 'm', 1,
                '{"columns":["x"],"data":[[1.0]]}', '[7]', 1.0);
        """)
    frame = read_predictions(sqlite_url(db))
    assert frame["role"].tolist() == ["primary"] and frame["prediction"].tolist() == [7]
    assert read_predictions(sqlite_url(db), role="primary")["request_id"].tolist() == ["old"]
    assert read_predictions(sqlite_url(db), role="shadow").empty
    with sqlite3.connect(db) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(predictions)")]
        assert "role" not in columns
        assert conn.execute("SELECT value FROM workbench_store_meta").fetchone() == ("2",)


def test_an_input_column_named_role_is_prefixed(make_log, db: Path) -> None:
    log = make_log()
    log.start()
    log.submit(PredictionRecord("a", T0, "m", ["role", "x"], {"role": ["admin"], "x": [1.0]},
                                [1], 1.0, role="shadow"))
    assert log.flush(timeout=5)
    frame = read_predictions(sqlite_url(db))
    assert frame["input_role"].tolist() == ["admin"] and frame["role"].tolist() == ["shadow"]
