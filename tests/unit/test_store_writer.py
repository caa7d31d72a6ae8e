"""The prediction writer: batched background writes, a bounded backlog, permanent errors."""
from __future__ import annotations

import dataclasses
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
import pytest
from _store import T0, record, stored_rows, wait_for
from sqlalchemy import event

from workbench.errors import ConfigError
from workbench.store import (
    LogStats,
    PredictionLog,
    PredictionRecord,
    sqlite_url,
)


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
        assert conn.execute("SELECT role FROM predictions").fetchall() == [("primary",)]
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


def test_the_role_is_stored_and_an_unknown_one_drops_its_record_alone(make_log,
                                                                        db: Path) -> None:
    log = make_log()
    log.start()
    shadow = dataclasses.replace(record(1, model="churn_v3_20240131"), request_id="req-0",
                                 role="shadow")
    odd = dataclasses.replace(record(2), role="canary")
    assert log.submit(record(0)) and log.submit(shadow) and log.submit(odd)
    assert log.flush(timeout=5)
    stats = log.stats()
    assert (stats.written, stats.dropped) == (2, 1)
    assert stats.last_error.startswith("ValueError: ")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT request_id, model_name, role FROM predictions ORDER BY id"
                            ).fetchall() == [("req-0", "churn_v1_20240101", "primary"),
                                             ("req-0", "churn_v3_20240131", "shadow")]


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
    code = ("import sys, workbench.store; "
            "print(sorted(m for m in ('mlflow', 'IPython', 'click', 'fastapi', 'starlette', "
            "'flask', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out.replace("'", '"')) == []




# --------------------------------------------------------------------------- permanent errors


def reject_request_ids(db: Path, *request_ids: str) -> None:
    """A trigger that makes the store refuse rows with these request ids (an IntegrityError,
    as a CHECK or a foreign key would)."""
    from workbench.store import prepare

    prepare(sqlite_url(db))
    quoted = ", ".join(f"'{rid}'" for rid in request_ids)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON predictions "
                     f"WHEN NEW.request_id IN ({quoted}) "
                     "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")


def test_one_bad_row_costs_only_itself(make_log, db: Path) -> None:
    reject_request_ids(db, "req-3")
    log = make_log(batch_size=10, flush_interval=10)
    for i in range(10):
        log.submit(record(i))
    log.start()  # one full batch of ten, the fourth of which the store refuses
    assert log.flush(timeout=5)
    stats = log.stats()
    assert (stats.written, stats.dropped, stats.write_errors, stats.backlog) == (9, 1, 1, 0)
    assert stats.last_error.startswith("IntegrityError: ")
    assert [row[0] for row in stored_rows(db)] == [f"req-{i}" for i in range(10) if i != 3]


def test_a_batch_of_several_chunks_is_one_transaction(make_log, db: Path) -> None:
    # The writer inserts a batch chunk by chunk (CHUNK_ROWS rows, yielding the CPU between
    # chunks); a row refused in a later chunk must not leave the earlier chunks committed
    # twice, nor cost more than itself.
    from workbench.store.writer import CHUNK_ROWS

    size = 3 * CHUNK_ROWS + 5
    reject_request_ids(db, f"req-{2 * CHUNK_ROWS + 1}")
    log = make_log(batch_size=size, flush_interval=10)
    commits = []
    event.listen(log.engine, "commit", lambda conn: commits.append(1))
    for i in range(2 * size):
        log.submit(record(i))
    log.start()
    assert log.flush(timeout=10)
    stats = log.stats()
    assert (stats.written, stats.dropped, stats.write_errors) == (2 * size - 1, 1, 1)
    ids = [row[0] for row in stored_rows(db)]
    assert ids == [f"req-{i}" for i in range(2 * size) if i != 2 * CHUNK_ROWS + 1]
    # The clean second batch took a single commit.
    assert len(commits) == (size - 1) + 1  # row by row for the first batch, then one


def test_a_permanent_error_is_never_retried(make_log, db: Path) -> None:
    reject_request_ids(db, *(f"req-{i}" for i in range(5)))
    log = make_log(batch_size=5, retry_interval=0.01)
    log.start()
    for i in range(8):
        log.submit(record(i))
    assert log.flush(timeout=5)
    time.sleep(0.2)  # a writer retrying would keep counting
    stats = log.stats()
    assert (stats.written, stats.dropped, stats.write_errors) == (3, 5, 5)


def test_a_foreign_predictions_table_rejects_every_row_once(make_log, db: Path) -> None:
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE predictions (id INTEGER PRIMARY KEY, label TEXT, score REAL)")
    log = make_log(retry_interval=0.01)
    log.start()
    for i in range(4):
        log.submit(record(i))
    assert log.flush(timeout=5)
    time.sleep(0.2)
    stats = log.stats()
    assert (stats.written, stats.dropped, stats.write_errors, stats.backlog) == (0, 4, 4, 0)
    assert stats.last_error.startswith("StoreSchemaError: ")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM predictions").fetchone() == (0,)
