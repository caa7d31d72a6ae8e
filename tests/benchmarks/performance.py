"""Label join and windowed performance over a large prediction store.

Run by hand: ``python tests/benchmarks/performance.py [--rows N] [--rows-per-record R]
[--repeat K] [--no-anchor] [--floor] [--unlogged-id]``.

Builds an SQLite prediction store holding N logged predicted rows (default 1,000,000) of one
model over three months, R rows per record (default 1: the server's shape, one request one
row; 1000 is ``workbench predict --log``'s), each with a ``customer_id`` and nine demo-like
features among its inputs and a logged probability, and the ``customer_id`` logged beside each
record as a writer with ``WORKBENCH_LABEL_ID_COLUMN=customer_id`` logs it (``--unlogged-id``:
as one without that setting logs it, so the join parses every record's inputs); then a Parquet
file of N labels keyed by ``customer_id``. Building them is not timed. The timed steps,
each K times (default 3) on a fresh copy of the store, median and best reported:

- ``ingest_labels``: read the labels file, join every label to its logged predicted row (the
  id taken from the logged inputs), count, store the N joined rows in the ``labels`` table;
- ``evaluate_performance`` (``log=False``: no MLflow; the evaluated windows are recorded in
  the store): rows and labelled rows per month and roc_auc per month.

The anchor (``--no-anchor`` skips it) is the plain way without the labels table: read the
logged predictions with ``workbench.store.read_predictions``, ``pandas.merge`` the labels on,
and ``sklearn.metrics.roc_auc_score`` per month; it stores nothing. Progress goes to stderr, the
markdown table and a PASS/FAIL line for the issue's target (join + performance under 5 s) to
stdout.

``--floor`` adds what each part of the join costs in SQLite on the same store, with ``sqlite3``
alone (no workbench code, each step on a fresh copy, median of K): staging the labels as the
workbench does, then the join's INSERT ... SELECT and its commit built up from the least it can
store (the label and the predicted row) to the workbench's whole row, one part at a time, and
the row version 4 of the store schema stored, then the same with the id read from a column
written at logging time instead of the JSON inputs, with the load's id column, time and file
in a table of their own (a load id on each row), and with the score read from a column written
at logging time (the row version 5 stores). Staging plus the smallest join plus the measured
``evaluate_performance`` is the floor of a join that stores one row per label in the store's
database.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# This folder holds packaging.py, which would shadow the `packaging` library MLflow imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from workbench.config import Settings  # noqa: E402
from workbench.monitoring.labels import ingest_labels  # noqa: E402
from workbench.monitoring.performance import evaluate_performance  # noqa: E402
from workbench.registry import Instance  # noqa: E402
from workbench.store import prepare, read_predictions, schema, sqlite_url  # noqa: E402
from workbench.store.writer import PredictionRecord, _encode  # noqa: E402

MODEL = "churn_v2_20240131"
TARGET_S = 5.0
START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
SPAN_S = 90 * 86400


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class _Registry:
    def __init__(self) -> None:
        self.instance = Instance("churn", 1, MODEL, "v2", "20240131", None, "")

    def resolve(self, ref: Any) -> Instance:
        return self.instance


def build(folder: Path, rows: int, per_record: int, logged_id: bool) -> tuple[str, Path]:
    """The store and the labels file (not timed); ``logged_id``: the writer was told the id
    column (``WORKBENCH_LABEL_ID_COLUMN=customer_id``) and logged each one-row record's id."""
    rng = np.random.default_rng(13)
    customers = np.array([f"C{i:08d}" for i in range(rows)])
    score = rng.random(rows)
    churned = (rng.random(rows) < score).astype(int)  # labels that follow the score: AUC ~0.83
    features = {
        "tenure_months": rng.integers(0, 72, rows), "monthly_charges": rng.normal(70, 20, rows),
        "total_charges": rng.normal(2000, 800, rows), "support_calls": rng.poisson(2, rows),
        "usage_gb": rng.gamma(2, 60, rows), "age": rng.integers(18, 90, rows),
        "contract": rng.choice(["month-to-month", "one-year", "two-year"], rows),
        "payment_method": rng.choice(["electronic-check", "mailed-check", "credit-card"], rows),
        "internet_service": rng.choice(["fiber", "dsl", "wireless"], rows),
    }
    offsets = np.sort(rng.integers(0, SPAN_S, rows // per_record + 1))
    url = sqlite_url(folder / "predictions.db")
    prepare(url)
    engine = schema.create_engine(url, writer=True)
    columns = ["customer_id", *features]
    say(f"writing {rows:,} logged rows ({per_record} per record) ...")
    started = time.perf_counter()
    batch: list[dict[str, Any]] = []
    with engine.begin() as conn:
        for n, first in enumerate(range(0, rows, per_record)):
            part = slice(first, min(first + per_record, rows))
            inputs = {"customer_id": customers[part].tolist(),
                      **{name: values[part].tolist() for name, values in features.items()}}
            batch.append(_encode(PredictionRecord(
                f"req-{n}", START + dt.timedelta(seconds=int(offsets[n])), MODEL, columns,
                inputs, (score[part] >= 0.5).astype(int).tolist(), 1.0,
                scores=score[part].tolist()), "customer_id" if logged_id else None))
            if len(batch) == 20_000:
                conn.execute(sa.insert(schema.insert_target), batch)
                batch = []
        if batch:
            conn.execute(sa.insert(schema.insert_target), batch)
    engine.dispose()
    say(f"  {time.perf_counter() - started:.0f} s")
    labels = folder / "labels.parquet"
    pd.DataFrame({"customer_id": customers, "churned": churned}).to_parquet(labels)
    return url, labels


CPU: dict[str, list[float]] = {}


def timed(label: str, repeat: int, setup: Any, step: Any) -> list[float]:
    """Wall seconds of each round; the process's CPU seconds go to ``CPU[label]`` (the steps
    are single-threaded, so on a shared machine CPU time is what the step costs alone)."""
    times = []
    for n in range(repeat):
        arg = setup()
        started, cpu = time.perf_counter(), time.process_time()
        step(arg)
        times.append(time.perf_counter() - started)
        CPU.setdefault(label, []).append(time.process_time() - cpu)
        say(f"{label} {n + 1}/{repeat}: {times[-1]:.2f} s wall, {CPU[label][-1]:.2f} s CPU")
    return times


def anchor(url: str, labels: Path) -> None:
    from sklearn.metrics import roc_auc_score

    logged = read_predictions(url, MODEL)
    truth = pd.read_parquet(labels)
    merged = logged.merge(truth, on="customer_id", how="inner")
    # read_predictions has no scores: the anchor ranks by the logged class, as it can.
    for _, month in merged.groupby(merged.created_at.dt.strftime("%Y-%m")):
        roc_auc_score(month.churned, month.prediction.astype(int))


# The join as the workbench runs it, built up column by column (sqlite3 alone): what each part
# of a stored label row costs. e: the record's id in its JSON inputs, k: the staged labels,
# s: the row's score in its JSON scores.
_KEY = ("substr(CASE WHEN e.type = 'real' AND e.value = CAST(e.value AS INTEGER) THEN "
        "CAST(CAST(e.value AS INTEGER) AS TEXT) ELSE e.value END, 1, 255)")
_SCORE = "CASE s.type WHEN 'real' THEN s.value WHEN 'integer' THEN CAST(s.value AS REAL) END"
_SCORES = (" LEFT JOIN json_each(p.scores, '$[0]') s ON s.key IS NULL OR s.key = "
           "json_array_length(p.scores, '$[0]') - 1")
_FLOOR_STEPS: list[tuple[str, str, str, str]] = [
    # (what is added, columns, their SQL, key)
    ("(label, predicted row) only", "label, prediction_id", "k.label, p.id", "e.value"),
    ("+ the id compared as the workbench compares it (whole floats as integers)",
     "label, prediction_id", "k.label, p.id", _KEY),
    ("+ id, model, prediction time", "id_value, label, prediction_id, model_name, predicted_at",
     "k.id_value, k.label, p.id, p.model_name, p.created_at", _KEY),
    ("+ the (model, time) index performance reads by", "", "", _KEY),
    ("+ the prediction (JSON outputs)", "id_value, label, prediction_id, model_name, "
     "predicted_at, prediction", "k.id_value, k.label, p.id, p.model_name, p.created_at, "
     "p.outputs -> '$[0]'", _KEY),
    ("+ the score (JSON scores)", "id_value, label, prediction_id, model_name, predicted_at, "
     "prediction, score", "k.id_value, k.label, p.id, p.model_name, p.created_at, "
     f"p.outputs -> '$[0]', {_SCORE}", _KEY),
    ("+ the load's id column, time and file on every row (the version-4 row)",
     "id_column, id_value, label, received_at, source, prediction_id, row_index, model_name, "
     "predicted_at, prediction, score, late", "'customer_id', k.id_value, k.label, "
     "'2024-04-30 12:00:00.000000', '/tmp/labels/2024-04.parquet', p.id, 0, p.model_name, "
     f"p.created_at, p.outputs -> '$[0]', {_SCORE}, 0", _KEY),
    ("the version-4 row, the id a column written at logging time", "", "", "p.id_key"),
    ("the same, the load's constants in a table of their own (a load id on each row)",
     "id_column, id_value, label, prediction_id, row_index, model_name, predicted_at, "
     "prediction, score, late", "1, k.id_value, k.label, p.id, 0, p.model_name, p.created_at, "
     f"p.outputs -> '$[0]', {_SCORE}, 0", "p.id_key"),
    ("the same, the score a column written at logging time too (the version-5 row)", "",
     "1, k.id_value, k.label, p.id, 0, p.model_name, p.created_at, p.outputs -> '$[0]', "
     "p.score, 0", "p.id_key"),
]


def floor(pristine: Path, labels: Path, repeat: int) -> dict[str, float]:
    """Medians of staging the labels and of the join built up step by step (see the module
    docstring), each on a fresh copy of the store, each join with its commit."""
    import sqlite3

    import orjson

    work = pristine.with_name("floor.db")
    keyed = pristine.with_name("keyed.db")
    shutil.copyfile(pristine, keyed)
    with sqlite3.connect(keyed) as conn:  # not timed: the id as a column of its own
        conn.execute("ALTER TABLE predictions ADD COLUMN id_key TEXT")
        conn.execute("UPDATE predictions SET id_key = inputs ->> '$.data[0][0]'")
    medians: dict[str, float] = {}
    columns = expressions = ""
    for n, (name, added_columns, added_sql, key) in enumerate(
            [("stage the labels (read the file, one JSON object into a keyed table)", "", "",
              ""), *_FLOOR_STEPS]):
        columns, expressions = added_columns or columns, added_sql or expressions
        indexed = n >= 4
        times = []
        for _ in range(repeat):
            shutil.copyfile(keyed if key == "p.id_key" else pristine, work)
            for suffix in ("-wal", "-shm"):
                work.with_name(work.name + suffix).unlink(missing_ok=True)
            conn = sqlite3.connect(work, isolation_level=None)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-131072"):
                conn.execute(f"PRAGMA {pragma}")
            conn.execute("BEGIN")
            conn.execute("CREATE TEMPORARY TABLE k (id_value TEXT PRIMARY KEY, label TEXT NOT "
                         "NULL) WITHOUT ROWID")
            conn.execute(f"CREATE TABLE j ({_LABEL_COLUMNS})")
            if indexed:
                conn.execute("CREATE INDEX j_model_time ON j (model_name, predicted_at)")
            started = time.perf_counter()
            frame = pd.read_parquet(labels)
            conn.execute("INSERT INTO k SELECT key, value FROM json_each(?)", (orjson.dumps(dict(
                zip(frame.customer_id.tolist(), frame.churned.astype(str).tolist()))).decode(),))
            if key:  # the join's steps are timed from the staged labels on
                started = time.perf_counter()
                ids = "" if key == "p.id_key" else (
                    " CROSS JOIN json_each(p.inputs, '$.data[0][0]') e")
                conn.execute(f"INSERT INTO j ({columns}) SELECT {expressions} FROM predictions p"
                             f"{ids} CROSS JOIN k{_SCORES if _SCORE in expressions else ''} WHERE "
                             f"k.id_value = {key}")
                conn.execute("COMMIT")
            times.append(time.perf_counter() - started)
            conn.close()
        medians[name] = statistics.median(times)
        say(f"floor: {name}: {medians[name]:.2f} s")
    return medians


_LABEL_COLUMNS = ("id INTEGER PRIMARY KEY, id_column TEXT, id_value TEXT, label TEXT, received_at "
                  "TEXT, source TEXT, prediction_id INTEGER, row_index INTEGER, model_name TEXT, "
                  "predicted_at TEXT, prediction TEXT, score REAL, late INTEGER")


def main() -> None:
    import mlflow  # noqa: F401  (imported once up front, as the CLI has it, not in a timed step)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rows-per-record", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-anchor", action="store_true")
    parser.add_argument("--floor", action="store_true")
    parser.add_argument("--unlogged-id", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wb-perf-bench-") as tmp:
        folder = Path(tmp)
        url, labels = build(folder, args.rows, args.rows_per_record, not args.unlogged_id)
        pristine = folder / "predictions.db"
        work = folder / "work.db"
        work_url = sqlite_url(work)

        def fresh() -> None:
            shutil.copyfile(pristine, work)

        settings = Settings.from_env(environ={}, cwd=folder, prediction_store=work_url)
        join = timed("ingest_labels", args.repeat, fresh, lambda _: ingest_labels(
            labels, work_url, id_column="customer_id", label_column="churned"))
        report = evaluate_performance(MODEL, settings, since=START, until=START + dt.timedelta(
            seconds=SPAN_S), registry=_Registry(), log=False)  # type: ignore[arg-type]
        windows = timed("evaluate_performance", args.repeat, lambda: None, lambda _:
                        evaluate_performance(MODEL, settings, since=START,
                                             until=START + dt.timedelta(seconds=SPAN_S),
                                             registry=_Registry(), log=False))  # type: ignore[arg-type]
        plain = (timed("anchor (read_predictions + merge + roc_auc)", 1, lambda: None,
                       lambda _: anchor(url, labels)) if not args.no_anchor else None)
        least = floor(pristine, labels, args.repeat) if args.floor else None
    med_join, med_perf = statistics.median(join), statistics.median(windows)
    cpu_join = statistics.median(CPU["ingest_labels"])
    cpu_perf = statistics.median(CPU["evaluate_performance"])
    total = med_join + med_perf
    print(f"\n{args.rows:,} logged rows, {args.rows_per_record} per record, the id "
          f"{'read from the inputs' if args.unlogged_id else 'logged beside each record'}, "
          f"{len(report.windows)} monthly windows, {args.repeat} rounds; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end\n")
    print("| step | median s (wall) | best s (wall) | median s (CPU) |")
    print("|---|---|---|---|")
    print(f"| ingest_labels (join + store {args.rows:,} labels) | {med_join:.2f} | "
          f"{min(join):.2f} | {cpu_join:.2f} |")
    print(f"| evaluate_performance (rows, labelled, roc_auc per month) | {med_perf:.2f} | "
          f"{min(windows):.2f} | {cpu_perf:.2f} |")
    print(f"| **total** | **{total:.2f}** | {min(join) + min(windows):.2f} | "
          f"{cpu_join + cpu_perf:.2f} |")
    if plain:
        anchor_cpu = CPU["anchor (read_predictions + merge + roc_auc)"][0]
        print(f"| anchor: read_predictions + merge + roc_auc (stores nothing) | {plain[0]:.2f} "
              f"| {plain[0]:.2f} | {anchor_cpu:.2f} |")
        print(f"\nanchor / total: {plain[0] / total:.1f}x wall, "
              f"{anchor_cpu / (cpu_join + cpu_perf):.1f}x CPU")
    print("\n| window | rows | labelled | roc_auc |")
    print("|---|---|---|---|")
    for w in report.windows:
        print(f"| {w.label} | {w.rows:,} | {w.labelled:,} | "
              f"{'-' if w.value is None else format(w.value, '.4f')} |")
    if least:
        print("\n| the label join built up in SQLite (sqlite3 alone, with its commit) | median s "
              "(wall) |")
        print("|---|---|")
        for name, seconds in least.items():
            print(f"| {name} | {seconds:.2f} |")
        stage, *joins = least.values()
        print(f"\nfloor of a join storing a row per label: staging {stage:.2f} + the smallest "
              f"join {joins[0]:.2f} + evaluate_performance {med_perf:.2f} = "
              f"{stage + joins[0] + med_perf:.2f} s (target < {TARGET_S} s); the version-4 "
              f"row: {joins[-4]:.2f} s, {joins[-3]:.2f} s with the id a column of its own, "
              f"{joins[-2]:.2f} s with the load's constants in a table of their own too, "
              f"{joins[-1]:.2f} s with the score a column too (the version-5 row)")
    verdict = "PASS" if total < TARGET_S else "FAIL"
    print(f"\n{verdict}: label join + windowed performance {total:.2f} s wall, "
          f"{cpu_join + cpu_perf:.2f} s CPU (target < {TARGET_S} s)")


if __name__ == "__main__":
    main()
