"""The prediction log: batched background writes, a bounded backlog, reading back for monitoring."""
from __future__ import annotations

import datetime as dt
import json
import math
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import event

from workbench.errors import ConfigError
from workbench.serving.prediction_log import (
    LogStats,
    PredictionLog,
    PredictionRecord,
    read_predictions,
    sqlite_url,
)

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)


def record(i: int = 0, *, model: str = "churn_v1_20240101", rows: int = 1,
           at: dt.datetime | None = None) -> PredictionRecord:
    return PredictionRecord(
        request_id=f"req-{i}",
        created_at=at or T0 + dt.timedelta(seconds=i),
        model_name=model,
        columns=["x", "plan"],
        inputs={"x": [float(i + r) for r in range(rows)], "plan": ["basic"] * rows},
        outputs=[i % 2] * rows,
        latency_ms=1.5,
    )


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def stored_rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT request_id, created_at, model_name, n_rows, inputs, "
                            "outputs, latency_ms FROM predictions ORDER BY id").fetchall()


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


# --------------------------------------------------------------------------- writing


def test_sqlite_url_is_absolute_and_creates_the_folder(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "a" / "b" / "p.db")
    assert url == f"sqlite:///{(tmp_path / 'a' / 'b' / 'p.db').resolve().as_posix()}"
    assert (tmp_path / "a" / "b").is_dir()


def test_records_are_written_with_all_fields(make_log, db: Path) -> None:
    log = make_log()
    log.start()
    paris = dt.timezone(dt.timedelta(hours=2))
    assert log.submit(PredictionRecord(
        request_id="r1", created_at=dt.datetime(2024, 5, 1, 14, 0, tzinfo=paris),
        model_name="churn_v2_20240131", columns=["x", "plan"],
        inputs={"x": [1.5, math.nan], "plan": ["basic", "pro"]},
        outputs=np.array([0.25, 0.75]), latency_ms=3.25))
    assert log.flush(timeout=5)

    assert stored_rows(db) == [(
        "r1", "2024-05-01 12:00:00.000000", "churn_v2_20240131", 2,
        '{"columns":["x","plan"],"data":[[1.5,"basic"],[null,"pro"]]}', "[0.25,0.75]", 3.25)]
    assert log.stats() == LogStats(backlog=0, dropped=0, written=1, write_errors=0,
                                   last_error=None)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        indexes = [row[1] for row in conn.execute("PRAGMA index_list(predictions)")]
    assert "ix_predictions_model_name_created_at" in indexes


def test_a_record_that_cannot_be_encoded_is_dropped_alone(make_log, db: Path) -> None:
    log = make_log()
    log.start()
    bad = PredictionRecord("bad", T0, "m", [], {}, [object()], 1.0)
    assert log.submit(record(1)) and log.submit(bad) and log.submit(record(2))
    assert log.flush(timeout=5)
    stats = log.stats()
    assert (stats.written, stats.dropped, stats.backlog) == (2, 1, 0)
    assert stats.last_error.startswith("TypeError: ")
    assert [row[0] for row in stored_rows(db)] == ["req-1", "req-2"]


def test_writes_are_batched(make_log, db: Path) -> None:
    # A long interval: only full batches (and the final flush) trigger writes.
    log = make_log(batch_size=100, flush_interval=10)
    commits = []
    event.listen(log.engine, "commit", lambda conn: commits.append(1))
    log.start()
    for i in range(1000):
        log.submit(record(i))
    assert log.flush(timeout=10)
    assert log.stats().written == 1000
    assert len(stored_rows(db)) == 1000
    assert 10 <= len(commits) <= 12


def test_submit_never_waits_for_the_writer(make_log, db: Path) -> None:
    log = make_log(max_backlog=50_000)
    # Not started: submit only queues, so the backlog holds every record.
    assert all(log.submit(record(i)) for i in range(20_000))
    assert log.stats() == LogStats(backlog=20_000, dropped=0, written=0, write_errors=0,
                                   last_error=None)
    log.start()
    assert log.flush(timeout=30)
    assert log.stats() == LogStats(backlog=0, dropped=0, written=20_000, write_errors=0,
                                   last_error=None)
    assert len(stored_rows(db)) == 20_000


def test_a_full_backlog_drops_and_counts(make_log) -> None:
    log = make_log(max_backlog=10)
    accepted = [log.submit(record(i)) for i in range(15)]
    assert accepted == [True] * 10 + [False] * 5
    assert (log.stats().backlog, log.stats().dropped) == (10, 5)


def test_store_down_keeps_predictions_cheap_and_bounded_then_drains(make_log, db: Path) -> None:
    log = make_log(batch_size=10, max_backlog=50)
    log.start()
    submitted = 0
    accepted: list[str] = []

    def submit(i: int) -> None:
        nonlocal submitted
        submitted += 1
        if log.submit(record(i)):
            accepted.append(f"req-{i}")
        assert log.stats().backlog <= 50

    for i in range(20):
        submit(i)
    assert log.flush(timeout=5)
    assert log.stats().written == 20

    # The folder goes away and a file takes its place: connecting now fails.
    folder = db.parent
    folder.rename(folder.with_name("store.away"))
    folder.write_text("not a folder")
    for i in range(20, 120):
        submit(i)
    stats = log.stats()
    assert (stats.backlog, stats.dropped) == (50, 50)  # a held batch counts toward the bound
    wait_for(lambda: log.stats().write_errors > 0)
    stats = log.stats()
    assert stats.last_error.startswith("OperationalError: ")
    assert "\n" not in stats.last_error and "req-" not in stats.last_error
    assert log.flush(timeout=0.2) is False
    assert log.stats().written == 20

    # The store comes back: the backlog drains, nothing accepted is lost or duplicated.
    folder.unlink()
    folder.with_name("store.away").rename(folder)
    assert log.flush(timeout=5)
    stats = log.stats()
    assert stats.backlog == 0
    assert stats.written + stats.dropped == submitted
    assert [row[0] for row in stored_rows(db)] == accepted


def test_start_never_fails_on_a_store_that_cannot_be_reached(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    log = PredictionLog(f"sqlite:///{tmp_path}/file/p.db", retry_interval=0.05,
                        flush_interval=0.02)
    log.start()
    assert log.submit(record(1))
    wait_for(lambda: log.stats().write_errors > 0)
    stats = log.close(timeout=0.2)
    assert (stats.backlog, stats.dropped, stats.written) == (0, 1, 0)


def test_close_flushes_pending_records_and_is_idempotent(make_log, db: Path) -> None:
    log = make_log(flush_interval=10)
    log.start()
    for i in range(5):
        log.submit(record(i))
    stats = log.close()
    assert stats == LogStats(backlog=0, dropped=0, written=5, write_errors=0, last_error=None)
    assert len(stored_rows(db)) == 5
    assert log.close() == stats
    assert log.submit(record(9)) is False
    assert log.stats().dropped == 1
    with pytest.raises(RuntimeError):
        log.start()


def test_close_gives_up_within_its_timeout_while_the_store_is_down(make_log, db: Path) -> None:
    log = make_log(batch_size=10)
    log.start()
    db.parent.rmdir()
    db.parent.write_text("")
    for i in range(25):
        log.submit(record(i))
    stats = log.close(timeout=0.3)
    assert (stats.backlog, stats.written, stats.dropped) == (0, 0, 25)
    assert stats.write_errors > 0


def test_bad_settings_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        PredictionLog("not a url")
    with pytest.raises(ConfigError):
        PredictionLog("sqlite://")
    with pytest.raises(ConfigError):
        PredictionLog(sqlite_url(tmp_path / "p.db"), batch_size=0)
    with pytest.raises(ConfigError, match="cannot be used") as info:
        PredictionLog("postgresql+nosuchdriver://user:s3cret@host/db")
    assert "s3cret" not in str(info.value)


def test_the_module_stays_lean() -> None:
    code = ("import sys, workbench.serving.prediction_log; "
            "print(sorted(m for m in ('mlflow', 'IPython', 'click', 'fastapi', 'starlette', "
            "'flask', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out.replace("'", '"')) == []


# --------------------------------------------------------------------------- reading


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
    assert list(frame.columns) == ["request_id", "created_at", "model_name", "x", "plan",
                                   "prediction", "latency_ms"]
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
    base = ["request_id", "created_at", "model_name", "prediction", "latency_ms"]
    assert list(read_predictions(logged, model_name="nope").columns) == base
    missing = tmp_path / "none" / "p.db"
    frame = read_predictions(f"sqlite:///{missing}")
    assert frame.empty and list(frame.columns) == base
    assert not missing.exists()
    assert isinstance(frame, pd.DataFrame)
