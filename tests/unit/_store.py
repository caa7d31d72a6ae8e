"""Helpers for the prediction store's unit tests: records, a store under tmp_path, waiting."""
from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from workbench.store import PredictionRecord

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
