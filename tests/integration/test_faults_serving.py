"""Fault injection on `workbench serve`: real server processes, real HTTP, a real SQLite store.

Each case asserts what the user sees (exit status, one line) and what the store kept.

The SIGKILL loss bound comes from the writer's batching. The writer commits a batch at least
every ``flush_interval`` (sooner when ``batch_size`` records wait), and only records it has not
committed die with the process (a committed SQLite WAL transaction survives a killed process).
A record still uncommitted at the kill was submitted after the last batch was taken, which is
at most one flush interval plus one commit before the kill, and its 200 went out after it was
submitted. So the loss is at most the 200s answered in the last ``flush_interval`` + commit
time before the kill, plus one batch for a writer that fell behind. Whatever the load, it is
never more than the backlog's bound (``max_backlog``): the kill loses the backlog, no more.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from workbench import tracking
from workbench.naming import ModelName
from workbench.pytest_plugin import free_port
from workbench.store import SCHEMA_VERSION

pytestmark = pytest.mark.integration
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ONE_ROW = json.dumps({"dataframe_split": {"columns": COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2]]}}).encode()
# The writer's defaults (WORKBENCH_SERVE_LOG_BATCH_SIZE, WORKBENCH_SERVE_LOG_FLUSH_INTERVAL),
# set explicitly so the bound below is computed from what the server runs with.
BATCH_SIZE = 500
FLUSH_INTERVAL = 0.5
MAX_BACKLOG = 10_000
COMMIT_ALLOWANCE = 0.5   # seconds one commit may take on a busy 2-core machine
LOAD_THREADS = 4
LOAD_SECONDS = 3.0

# The table as workbench releases before the meta table created it (schema version 1).
V1_DDL = """
CREATE TABLE predictions (
    id INTEGER NOT NULL, request_id VARCHAR(64) NOT NULL, created_at DATETIME NOT NULL,
    model_name VARCHAR(255) NOT NULL, n_rows INTEGER NOT NULL, inputs TEXT NOT NULL,
    outputs TEXT NOT NULL, latency_ms FLOAT, PRIMARY KEY (id));
CREATE INDEX ix_predictions_model_name_created_at ON predictions (model_name, created_at);
INSERT INTO predictions (request_id, created_at, model_name, n_rows, inputs, outputs, latency_ms)
VALUES ('old-1', '2024-04-01 10:00:00.000000', 'faultserve_v1_20240101', 1,
        '{"columns":["x"],"data":[[1.0]]}', '[0]', 2.0);
"""


@pytest.fixture(scope="module")
def model_ref(registry) -> str:
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = COLUMNS
    name = ModelName("faultserve", "v1", "20240101")
    run_id = tracking.start_run(registry.client, name.instance, str(name), {})
    registry.register(LogisticRegression(max_iter=500).fit(X, y), name, run_id=run_id,
                      input_example=pd.DataFrame(X.head(3)))
    registry.client.set_terminated(run_id)
    return str(name)


def serve_command(ref: str, db: Path, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "workbench.cli", "serve", ref, "--port", str(port),
            "--log-url", f"sqlite:///{db}", *extra]


def server_env(settings, **extra: str) -> dict[str, str]:
    return {**os.environ, **settings.as_env(), "WORKBENCH_SERVE_LOG_BATCH_SIZE": str(BATCH_SIZE),
            "WORKBENCH_SERVE_LOG_FLUSH_INTERVAL": str(FLUSH_INTERVAL),
            "WORKBENCH_SERVE_LOG_MAX_BACKLOG": str(MAX_BACKLOG), **extra}


def start_server(settings, ref: str, db: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(serve_command(ref, db, port), env=server_env(settings),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, f"server exited: {process.stderr.read()[-3000:]}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as answer:
                if answer.status == 200:
                    return process, port
        except OSError:
            pass
        time.sleep(0.3)
    process.kill()
    raise AssertionError("server never became ready")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=30)


def stored(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]


def metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


class Load:
    """Concurrent 1-row requests from a thread pool until stopped; every answer timestamped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stopping = threading.Event()
        self.answers: list[tuple[float, int]] = []   # (monotonic time, status)
        self.failures = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(LOAD_THREADS)
        self._futures = [self._pool.submit(self._client) for _ in range(LOAD_THREADS)]

    def _client(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.stopping.is_set():
            try:
                connection.request("POST", "/invocations", ONE_ROW,
                                   {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                with self._lock:
                    self.answers.append((time.monotonic(), response.status))
            except (OSError, http.client.HTTPException):
                with self._lock:
                    self.failures += 1
                connection.close()
                if self.stopping.wait(0.05):
                    break
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.close()

    def finish(self) -> None:
        self.stopping.set()
        for future in self._futures:
            future.result(timeout=60)
        self._pool.shutdown()

    def ok_times(self) -> list[float]:
        with self._lock:
            return [at for at, status in self.answers if status == 200]


def test_sigkill_under_load_loses_at_most_one_flush_interval(settings, model_ref, tmp_path):
    db = tmp_path / "predictions.db"
    process, port = start_server(settings, model_ref, db)
    try:
        load = Load(port)
        time.sleep(LOAD_SECONDS)
        killed_at = time.monotonic()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        load.finish()
    finally:
        stop(process)
    ok = load.ok_times()
    kept = stored(db)
    lost = max(len(ok) - kept, 0)
    window = FLUSH_INTERVAL + COMMIT_ALLOWANCE
    recent = sum(1 for at in ok if at >= killed_at - window)
    bound = min(recent + BATCH_SIZE, MAX_BACKLOG)
    print(f"\nSIGKILL under load: {len(ok)} responses 200 in {LOAD_SECONDS:.0f} s "
          f"({len(ok) / LOAD_SECONDS:.0f}/s, {LOAD_THREADS} connections), {kept} predictions "
          f"in the store, {lost} lost; bound {bound} = {recent} answered in the last "
          f"{window:.1f} s + one batch of {BATCH_SIZE} (batch {BATCH_SIZE}, flush "
          f"{FLUSH_INTERVAL} s, backlog bound {MAX_BACKLOG})")
    assert process.returncode == -signal.SIGKILL
    assert len(ok) >= 50, "the load never got going"
    # Requests answered never exceed what was logged by more than the bound, and the store
    # never holds more than was answered plus the requests in flight at the kill.
    assert lost <= bound
    assert kept <= len(ok) + LOAD_THREADS


def test_sigterm_under_load_loses_nothing(settings, model_ref, tmp_path):
    db = tmp_path / "predictions.db"
    process, port = start_server(settings, model_ref, db)
    try:
        load = Load(port)
        time.sleep(LOAD_SECONDS)
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=60)
        load.finish()
    finally:
        stop(process)
    ok = load.ok_times()
    print(f"\nSIGTERM under load: {len(ok)} responses 200, {stored(db)} predictions stored")
    assert returncode in (0, -signal.SIGTERM)
    assert len(ok) >= 50
    assert stored(db) == len(ok)


def run_serve(settings, ref: str, db: Path, *extra: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(serve_command(ref, db, free_port(), *extra), env=server_env(settings, **env),
                          capture_output=True, text=True, timeout=120)


def assert_one_error_line(done: subprocess.CompletedProcess, *expected: str) -> str:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


def test_a_foreign_predictions_table_is_refused_at_start(settings, model_ref, tmp_path):
    db = tmp_path / "theirs.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE predictions (id INTEGER PRIMARY KEY, label TEXT, score REAL)")
        conn.execute("INSERT INTO predictions (label, score) VALUES ('theirs', 0.5)")
    started = time.monotonic()
    done = run_serve(settings, model_ref, db)
    assert time.monotonic() - started < 30
    assert_one_error_line(done, "predictions", "not the workbench's")
    with sqlite3.connect(db) as conn:  # left exactly as it was
        assert conn.execute("SELECT label, score FROM predictions").fetchall() == [("theirs", 0.5)]
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")] == [
            "predictions"]


@pytest.mark.parametrize("args, env, named", [
    (("--log-url", "not a url"), {}, "cannot be parsed"),
    (("--log-url", "postgresql+nosuchdriver://user:s3cret@db/predictions"), {}, "driver"),
    ((), {"WORKBENCH_SERVE_LOG_MAX_BACKLOG": "lots"}, "WORKBENCH_SERVE_LOG_MAX_BACKLOG"),
    ((), {"WORKBENCH_SERVE_LOG_FLUSH_INTERVAL": "-1"}, "WORKBENCH_SERVE_LOG_FLUSH_INTERVAL"),
    ((), {"WORKBENCH_SERVE_METADATA": "{not json"}, "WORKBENCH_SERVE_METADATA"),
    (("--max-rows", "0"), {}, "--max-rows"),
])
def test_bad_serving_input_is_one_line_and_a_non_zero_exit(settings, model_ref, tmp_path,
                                                          args, env, named):
    done = run_serve(settings, model_ref, tmp_path / "p.db", *args, **env)
    line = assert_one_error_line(done, named)
    assert "s3cret" not in line


def test_an_old_store_is_migrated_and_one_bad_row_costs_only_itself(settings, model_ref,
                                                                     tmp_path):
    db = tmp_path / "predictions.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(V1_DDL)
        # The store refuses one request id (an IntegrityError, as a CHECK would).
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON predictions "
                     "WHEN NEW.request_id = 'bad-row' "
                     "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
    process, port = start_server(settings, model_ref, db)
    try:
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT value FROM workbench_store_meta WHERE key = "
                                "'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
        ids = [f"good-{i}" for i in range(5)] + ["bad-row"] + [f"good-{i}" for i in range(5, 10)]

        def post(request_id: str) -> int:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations", data=ONE_ROW, method="POST",
                headers={"Content-Type": "application/json", "X-Request-ID": request_id})
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status

        # Concurrent, well inside one flush interval: they share a batch.
        with ThreadPoolExecutor(len(ids)) as pool:
            assert list(pool.map(post, ids)) == [200] * len(ids)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            values = metrics(port)
            if (values["workbench_prediction_log_written_total"]
                    + values["workbench_prediction_log_dropped_total"]) >= len(ids):
                break
            time.sleep(0.2)
        time.sleep(3 * FLUSH_INTERVAL)  # a writer retrying the bad row would count again
        values = metrics(port)
        assert values["workbench_prediction_log_written_total"] == len(ids) - 1
        assert values["workbench_prediction_log_write_errors_total"] == 1
        assert values["workbench_prediction_log_dropped_total"] == 1
        assert values["workbench_prediction_log_backlog"] == 0
        with sqlite3.connect(db) as conn:
            kept = [r[0] for r in conn.execute("SELECT request_id FROM predictions ORDER BY id")]
        assert kept[0] == "old-1" and sorted(kept[1:]) == sorted(i for i in ids if i != "bad-row")
        assert post("after-the-bad-row") == 200
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        finally:
            stop(process)
