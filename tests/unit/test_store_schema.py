"""The prediction store's schema version: created, migrated from version 1, foreign refused."""
from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from _store import record, stored_rows

from workbench.store import (
    SCHEMA_VERSION,
    PredictionLog,
    StoreSchemaError,
    prepare,
    schema,
    sqlite_url,
)

# The table as workbench releases before the meta table created it (schema version 1).
V1_DDL = """
CREATE TABLE predictions (
    id INTEGER NOT NULL, request_id VARCHAR(64) NOT NULL, created_at DATETIME NOT NULL,
    model_name VARCHAR(255) NOT NULL, n_rows INTEGER NOT NULL, inputs TEXT NOT NULL,
    outputs TEXT NOT NULL, latency_ms FLOAT, PRIMARY KEY (id));
CREATE INDEX ix_predictions_model_name_created_at ON predictions (model_name, created_at);
INSERT INTO predictions (request_id, created_at, model_name, n_rows, inputs, outputs, latency_ms)
VALUES ('old-1', '2024-04-01 10:00:00.000000', 'churn_v1_20240101', 1,
        '{"columns":["x"],"data":[[1.0]]}', '[0]', 2.0);
"""


# The same table at schema version 2: the meta table and the created_at index, no role.
V2_DDL = V1_DDL + """
CREATE INDEX ix_predictions_created_at ON predictions (created_at);
CREATE TABLE workbench_store_meta (key VARCHAR(64) NOT NULL, value VARCHAR(255) NOT NULL,
                                   PRIMARY KEY (key));
INSERT INTO workbench_store_meta (key, value) VALUES ('schema_version', '2');
"""


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "p.db"
    return path


def version_row(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT key, value FROM workbench_store_meta").fetchall()


def indexes(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[1] for row in conn.execute("PRAGMA index_list(predictions)")}


def test_an_empty_store_is_created_at_the_current_version(db: Path) -> None:
    assert prepare(sqlite_url(db)) == (None, SCHEMA_VERSION)
    assert version_row(db) == [("schema_version", str(SCHEMA_VERSION))]
    assert prepare(sqlite_url(db)) == (SCHEMA_VERSION, SCHEMA_VERSION)  # idempotent


def test_a_version_1_store_is_migrated_and_keeps_its_rows(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.executescript(V1_DDL)
    assert schema.check_at_start(sqlite_url(db)) is True  # what `workbench serve` runs
    assert version_row(db) == [("schema_version", str(SCHEMA_VERSION))]
    assert "ix_predictions_created_at" in indexes(db)
    log = PredictionLog(sqlite_url(db), flush_interval=0.02)
    log.start()
    log.submit(record(1))
    stats = log.close(timeout=5)
    assert (stats.written, stats.write_errors) == (1, 0)
    assert [row[0] for row in stored_rows(db)] == ["old-1", "req-1"]


def columns(db: Path) -> list[tuple]:
    """(name, type, not null, default) of each column of ``predictions``."""
    with sqlite3.connect(db) as conn:
        return [tuple(row[1:5]) for row in conn.execute("PRAGMA table_info(predictions)")]


def roles(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT request_id, role FROM predictions ORDER BY id").fetchall()


def test_a_version_1_store_gets_the_role_column_too(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.executescript(V1_DDL)
    assert prepare(sqlite_url(db)) == (1, SCHEMA_VERSION)
    assert ("role", "VARCHAR(16)", 1, "'primary'") in columns(db)
    assert roles(db) == [("old-1", "primary")]


def test_a_version_2_store_is_migrated_to_3_with_the_old_rows_primary(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.executescript(V2_DDL)
    assert schema.check_at_start(sqlite_url(db)) is True
    assert version_row(db) == [("schema_version", str(SCHEMA_VERSION))]
    assert ("role", "VARCHAR(16)", 1, "'primary'") in columns(db)
    log = PredictionLog(sqlite_url(db), flush_interval=0.02)
    log.start()
    log.submit(record(1))
    log.submit(dataclasses.replace(record(1, model="churn_v2_20240101"), role="shadow"))
    stats = log.close(timeout=5)
    assert (stats.written, stats.write_errors) == (2, 0)
    assert roles(db) == [("old-1", "primary"), ("req-1", "primary"), ("req-1", "shadow")]
    # A row inserted without the role (an older writer's INSERT) reads as primary.
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO predictions (request_id, created_at, model_name, n_rows, "
                     "inputs, outputs) VALUES ('bare', '2024-05-01', 'm', 1, '{}', '[0]')")
    assert roles(db)[-1] == ("bare", "primary")
    assert prepare(sqlite_url(db)) == (SCHEMA_VERSION, SCHEMA_VERSION)


# The same table at schema version 3: the role column.
V3_DDL = V2_DDL.replace("'schema_version', '2'", "'schema_version', '3'") + """
ALTER TABLE predictions ADD COLUMN role VARCHAR(16) NOT NULL DEFAULT 'primary';
"""


def tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master "
                                               "WHERE type = 'table'")}


def test_a_version_3_store_gets_scores_and_the_label_tables(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.executescript(V3_DDL)
    assert {"labels", "performance_windows"}.isdisjoint(tables(db))
    assert prepare(sqlite_url(db)) == (3, SCHEMA_VERSION)
    assert {"labels", "performance_windows"} <= tables(db)
    assert ("scores", "TEXT", 0, None) in columns(db)
    log = PredictionLog(sqlite_url(db), flush_interval=0.02)
    log.start()
    log.submit(dataclasses.replace(record(1), scores=[0.25]))
    assert log.close(timeout=5).written == 1
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT request_id, role, scores FROM predictions "
                              "ORDER BY id").fetchall()
    assert stored == [("old-1", "primary", None), ("req-1", "primary", "[0.25]")]
    assert prepare(sqlite_url(db)) == (SCHEMA_VERSION, SCHEMA_VERSION)


# The labels table at schema version 4: each row repeats its load's id column, time and file.
V4_LABELS_DDL = """
DROP TABLE labels;
DROP TABLE label_loads;
CREATE TABLE labels (
    id INTEGER NOT NULL, id_column VARCHAR(64) NOT NULL, id_value VARCHAR(255) NOT NULL,
    label TEXT NOT NULL, received_at DATETIME NOT NULL, source VARCHAR(255) NOT NULL,
    prediction_id BIGINT, row_index INTEGER, model_name VARCHAR(255), predicted_at DATETIME,
    prediction TEXT, score FLOAT, late BOOLEAN DEFAULT 0 NOT NULL, PRIMARY KEY (id));
CREATE INDEX ix_labels_model_name_predicted_at ON labels (model_name, predicted_at);
INSERT INTO labels (id_column, id_value, label, received_at, source, prediction_id, row_index,
                    model_name, predicted_at, prediction, score)
VALUES ('customer_id', 'a', '1', '2024-05-02 00:00:00.000000', 'jan.csv', 1, 0, 'm',
        '2024-05-01 00:00:00.000000', '0', 0.25),
       ('customer_id', 'zz', '0', '2024-05-02 00:00:00.000000', 'jan.csv', NULL, NULL, NULL,
        NULL, NULL, NULL),
       ('plan', 'basic', '1', '2024-05-03 00:00:00.000000', 'plans.csv', NULL, NULL, NULL,
        NULL, NULL, NULL);
ALTER TABLE predictions DROP COLUMN id_value;
ALTER TABLE predictions DROP COLUMN id_column;
ALTER TABLE predictions DROP COLUMN score;
ALTER TABLE predictions DROP COLUMN label_rows;
UPDATE workbench_store_meta SET value = '4';
"""


def test_a_version_4_store_gets_the_logged_columns_and_its_labels_their_loads(db: Path) -> None:
    from workbench.monitoring.labels import ingest_labels

    prepare(sqlite_url(db))
    with sqlite3.connect(db) as conn:  # back to version 4, with labels of two loads stored
        conn.execute("INSERT INTO predictions (request_id, created_at, model_name, n_rows, "
                     "inputs, outputs, scores) VALUES ('old-1', '2024-05-01', 'm', 1, "
                     "'{\"columns\":[\"customer_id\"],\"data\":[[\"a\"]]}', '[0]', '[0.25]')")
        conn.executescript(V4_LABELS_DDL)
    assert schema.check_at_start(sqlite_url(db)) is True  # what `workbench serve` runs
    assert version_row(db) == [("schema_version", str(SCHEMA_VERSION))]
    assert columns(db)[-4:] == [("id_column", "VARCHAR(64)", 0, None),
                                ("id_value", "VARCHAR(255)", 0, None), ("score", "FLOAT", 0, None),
                                ("label_rows", "TEXT", 0, None)]
    with sqlite3.connect(db) as conn:
        loads = conn.execute("SELECT id, id_column, received_at, source FROM label_loads "
                             "ORDER BY id").fetchall()
        labels = conn.execute("SELECT load_id, id_value, label, score FROM labels "
                              "ORDER BY id").fetchall()
        label_columns = {row[1] for row in conn.execute("PRAGMA table_info(labels)")}
    assert loads == [(1, "customer_id", "2024-05-02 00:00:00.000000", "jan.csv"),
                     (2, "plan", "2024-05-03 00:00:00.000000", "plans.csv")]
    assert labels == [(1, "a", "1", 0.25), (1, "zz", "0", None), (2, "basic", "1", None)]
    assert {"id_column", "received_at", "source"}.isdisjoint(label_columns)

    # The writer logs the new columns; the labels stored before still count: 'a' is a
    # duplicate, and 'zz', waiting since jan.csv, matches its prediction now.
    log = PredictionLog(sqlite_url(db), flush_interval=0.02, id_column="customer_id")
    log.start()
    log.submit(dataclasses.replace(record(1), columns=["customer_id"],
                                   inputs={"customer_id": ["zz"]}, scores=[[0.4, 0.6]]))
    assert log.close(timeout=5).written == 1
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT request_id, id_column, id_value, score FROM predictions "
                              "ORDER BY id").fetchall()
    assert stored == [("old-1", None, None, None), ("req-1", "customer_id", "zz", 0.6)]
    file = db.with_name("more.csv")
    file.write_text("customer_id,label\na,1\nb,0\n")
    done = ingest_labels(file, sqlite_url(db), id_column="customer_id")
    assert (done.new_labels, done.duplicates, done.rematched, done.unmatched) == (1, 1, 1, 1)
    with sqlite3.connect(db) as conn:
        zz = conn.execute("SELECT source, score FROM labels JOIN label_loads d ON d.id = "
                          "load_id WHERE id_value = 'zz'").fetchall()
    assert zz == [("jan.csv", 0.6)]  # matched now, still credited to the load it came in


def test_a_version_5_store_that_lost_its_label_tables_gets_them_back(db: Path) -> None:
    prepare(sqlite_url(db))
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE labels")
    engine = schema.create_engine(sqlite_url(db), writer=True)
    try:
        with engine.begin() as conn:
            assert schema.read_state(conn) == schema.SchemaState(5, False)
    finally:
        engine.dispose()
    assert prepare(sqlite_url(db)) == (5, 5)
    assert "labels" in tables(db)


def test_a_version_2_store_is_not_migrated_by_a_writer_that_may_not(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.executescript(V2_DDL)
    engine = schema.create_engine(sqlite_url(db), writer=True)
    try:
        with engine.begin() as conn:
            assert schema.read_state(conn) == schema.SchemaState(2, True)
            with pytest.raises(StoreSchemaError, match=r"version 2, .*workbench\.store prepare"):
                schema.ensure(conn, create=False)
    finally:
        engine.dispose()
    assert "role" not in [column[0] for column in columns(db)]


def test_a_version_3_store_without_the_role_column_is_refused(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.executescript(V2_DDL.replace("'schema_version', '2'", "'schema_version', '3'"))
    with pytest.raises(StoreSchemaError, match="lacks column\\(s\\) role of schema version 3"):
        prepare(sqlite_url(db))


def test_a_foreign_predictions_table_is_refused_and_left_alone(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE predictions (id INTEGER PRIMARY KEY, label TEXT, score REAL)")
    with pytest.raises(StoreSchemaError, match="not the workbench's") as info:
        schema.check_at_start(sqlite_url(db))
    assert "\n" not in str(info.value)
    with sqlite3.connect(db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master "
                                                 "WHERE type = 'table'")}
        columns = [row[1] for row in conn.execute("PRAGMA table_info(predictions)")]
    assert tables == {"predictions"} and columns == ["id", "label", "score"]


def test_a_newer_or_unreadable_version_is_refused(db: Path) -> None:
    prepare(sqlite_url(db))
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE workbench_store_meta SET value = ?", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreSchemaError, match="newer than this workbench"):
        prepare(sqlite_url(db))
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE workbench_store_meta SET value = 'banana'")
    with pytest.raises(StoreSchemaError, match="no schema version"):
        prepare(sqlite_url(db))


def test_a_writer_that_may_not_migrate_says_to_run_prepare(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.executescript(V1_DDL)
    engine = schema.create_engine(sqlite_url(db), writer=True)
    try:
        with engine.begin() as conn, pytest.raises(StoreSchemaError,
                                                   match=r"workbench\.store prepare"):
            schema.ensure(conn, create=False)
    finally:
        engine.dispose()
    assert "ix_predictions_created_at" not in indexes(db)


def test_a_store_that_does_not_answer_is_no_start_up_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    assert schema.check_at_start(f"sqlite:///{tmp_path}/file/p.db") is False


def run_prepare(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_PREDICTION_STORE"}
    return subprocess.run([sys.executable, "-m", "workbench.store", "prepare", *args],
                          capture_output=True, text=True, timeout=120, env=env)


def test_the_prepare_command_creates_migrates_and_refuses_in_one_line(tmp_path: Path) -> None:
    fresh, old, foreign = tmp_path / "fresh.db", tmp_path / "old.db", tmp_path / "foreign.db"
    with sqlite3.connect(old) as conn:
        conn.executescript(V1_DDL)
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE predictions (label TEXT)")

    done = run_prepare("--url", sqlite_url(fresh))
    assert done.returncode == 0 and "created" in done.stdout, done.stderr
    done = run_prepare("--url", sqlite_url(old))
    assert done.returncode == 0 and "migrated from schema version 1" in done.stdout, done.stderr
    old_v2 = tmp_path / "v2.db"
    with sqlite3.connect(old_v2) as conn:
        conn.executescript(V2_DDL)
    done = run_prepare("--url", sqlite_url(old_v2))
    assert done.returncode == 0, done.stderr
    assert f"migrated from schema version 2 to {SCHEMA_VERSION}" in done.stdout
    for url in (sqlite_url(foreign), "postgresql+nosuchdriver://u:s3cret@h/db", "not a url"):
        done = run_prepare("--url", url)
        assert done.returncode == 1, url
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
        assert "Traceback" not in done.stderr and "s3cret" not in done.stderr
    assert run_prepare().returncode == 2  # no URL: a usage error
