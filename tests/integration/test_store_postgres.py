"""The prediction store on a real Postgres (the compose platform's stand-in image, on the real
Docker engine): a version-1 store migrated by ``python -m workbench.store prepare`` as the
owner, then written by a role with INSERT on ``predictions`` and SELECT on the meta table only.
"""
from __future__ import annotations

import datetime as dt
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from _standins import build_standins

from workbench.store import PredictionLog, PredictionRecord, StoreSchemaError, schema

pytestmark = [pytest.mark.integration, pytest.mark.docker]
BASE_IMAGE = os.environ.get("WORKBENCH_BASE_IMAGE", "workbench-ci/debian-python:bookworm")

# The table as workbench releases before the meta table created it on Postgres (version 1).
V1_DDL = [
    "CREATE TABLE predictions (id BIGSERIAL PRIMARY KEY, request_id VARCHAR(64) NOT NULL, "
    "created_at TIMESTAMP WITH TIME ZONE NOT NULL, model_name VARCHAR(255) NOT NULL, "
    "n_rows INTEGER NOT NULL, inputs TEXT NOT NULL, outputs TEXT NOT NULL, "
    "latency_ms FLOAT)",
    "CREATE INDEX ix_predictions_model_name_created_at ON predictions (model_name, created_at)",
    "INSERT INTO predictions (request_id, created_at, model_name, n_rows, inputs, outputs) "
    "VALUES ('old-1', now(), 'm', 1, '{}', '[0]'), ('old-2', now(), 'm', 1, '{}', '[0]')",
]
WRITER_GRANTS = [
    "CREATE ROLE writer LOGIN PASSWORD '{password}'",
    "GRANT CONNECT ON DATABASE predictions TO writer",
    "GRANT USAGE ON SCHEMA public TO writer",
    "GRANT INSERT ON predictions TO writer",
]


@pytest.fixture(scope="module")
def postgres(docker_client: Any) -> Iterator[tuple[str, str]]:
    """A Postgres server on 127.0.0.1; yields (owner URL, writer password)."""
    image = build_standins(docker_client, BASE_IMAGE, only=["postgres"])["postgres"]
    password = secrets.token_urlsafe(12)
    container = docker_client.containers.run(
        image, detach=True, name=f"wb-store-pg-{secrets.token_hex(4)}",
        environment={"POSTGRES_USER": "owner", "POSTGRES_PASSWORD": password,
                     "POSTGRES_DB": "predictions"},
        ports={"5432/tcp": ("127.0.0.1", None)})
    try:
        deadline = time.monotonic() + 90
        while container.exec_run(["pg_isready", "--host", "127.0.0.1", "--username", "owner",
                                  "--dbname", "predictions"]).exit_code != 0:
            assert time.monotonic() < deadline, container.logs().decode()[-2000:]
            time.sleep(0.5)
        container.reload()
        port = container.ports["5432/tcp"][0]["HostPort"]
        yield f"postgresql+psycopg2://owner:{password}@127.0.0.1:{port}/predictions", password
    finally:
        container.remove(force=True, v=True)


def execute(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def record(request_id: str) -> PredictionRecord:
    return PredictionRecord(request_id, dt.datetime.now(dt.timezone.utc), "churn_v1_20240101",
                            ["x"], {"x": [1.0]}, [0], 1.0)


def prepare(url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench.store", "prepare", "--url", url],
                          capture_output=True, text=True, timeout=120)


def test_an_old_store_is_migrated_and_an_insert_only_role_writes_it(postgres) -> None:
    owner_url, password = postgres
    execute(owner_url, "DROP TABLE IF EXISTS predictions, workbench_store_meta",
            "DROP ROLE IF EXISTS writer", *V1_DDL,
            *(grant.format(password=password) for grant in WRITER_GRANTS))
    writer_url = sa.make_url(owner_url).set(username="writer", password=password)
    writer = writer_url.render_as_string(hide_password=False)

    # Not migrated yet: the writer role may not change the schema, and says what to run.
    with pytest.raises(StoreSchemaError, match=r"workbench\.store prepare"):
        schema.check_at_start(writer)

    done = prepare(owner_url)
    assert done.returncode == 0, done.stderr
    assert "migrated from schema version 1 to 2" in done.stdout
    assert prepare(owner_url).stdout.strip().endswith("current")
    # What the compose platform grants after prepare; and a CHECK the test's bad row breaks.
    execute(owner_url, "GRANT SELECT ON workbench_store_meta TO writer",
            "ALTER TABLE predictions ADD CONSTRAINT no_bad_rows CHECK (request_id <> 'bad-row')")

    assert schema.check_at_start(writer) is True
    log = PredictionLog(writer, flush_interval=0.05, retry_interval=0.05)
    for request_id in ("new-1", "new-2", "bad-row", "new-3"):
        log.submit(record(request_id))
    log.start()
    stats = log.close(timeout=10)
    assert (stats.written, stats.dropped, stats.write_errors) == (3, 1, 1)
    assert stats.last_error.startswith("IntegrityError: ")

    engine = sa.create_engine(owner_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, request_id FROM predictions ORDER BY id")).all()
    finally:
        engine.dispose()
    assert [r.request_id for r in rows] == ["old-1", "old-2", "new-1", "new-2", "new-3"]
    # The identity continues after the old serial's ids (a failed batch consumes some).
    ids = [r.id for r in rows]
    assert ids[:2] == [1, 2] and ids == sorted(set(ids))

    # The writer role cannot read what it wrote.
    with pytest.raises(sa.exc.ProgrammingError):
        execute(writer, "SELECT count(*) FROM predictions")


def test_a_foreign_table_is_refused_in_one_line(postgres) -> None:
    owner_url, _ = postgres
    execute(owner_url, "DROP TABLE IF EXISTS predictions, workbench_store_meta",
            "CREATE TABLE predictions (id SERIAL PRIMARY KEY, label TEXT)")
    done = prepare(owner_url)
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "not the workbench's" in done.stderr and "Traceback" not in done.stderr
