"""Labels joined with logged predictions, and performance per window: the counting, the
windows and the metrics, over a real SQLite store written by the real PredictionLog (the
registry is a stand-in: nothing here talks to MLflow)."""
from __future__ import annotations

import datetime as dt
import json
import math
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from workbench.config import Settings
from workbench.errors import ConfigError, MonitoringError, NoCurrentData
from workbench.monitoring.labels import ingest_labels, key_text
from workbench.monitoring.performance import (
    compute_metric,
    evaluate_performance,
    judge,
    window_bounds,
)
from workbench.registry import Instance
from workbench.store import PredictionLog, PredictionRecord, sqlite_url

UTC = dt.timezone.utc
MODEL = "churn_v1_20240131"
SHADOW = "churn_v2_20240131"


def at(month: int, day: int = 10) -> dt.datetime:
    return dt.datetime(2024, month, day, 12, tzinfo=UTC)


def test_windows_are_calendar_windows_cut_to_the_range() -> None:
    bounds = window_bounds(dt.datetime(2023, 12, 15, tzinfo=UTC), at(2, 1), "month")
    assert [(label, start.day, end.month) for label, start, end, _ in bounds] == [
        ("2023-12", 15, 1), ("2024-01", 1, 2), ("2024-02", 1, 2)]
    assert bounds[-1][2] == at(2, 1)  # cut at `until`
    steps = [step for *_, step in bounds]
    assert steps == [(2023 - 1970) * 12 + 11, (2024 - 1970) * 12, (2024 - 1970) * 12 + 1]
    weeks = window_bounds(dt.datetime(2024, 4, 3, tzinfo=UTC), dt.datetime(2024, 4, 16, tzinfo=UTC),
                          "week")
    assert [label for label, *_ in weeks] == ["2024-04-01", "2024-04-08", "2024-04-15"]
    assert weeks[1][3] - weeks[0][3] == 1
    assert len(window_bounds(at(4, 1), at(4, 3), "day")) == 3  # noon to noon: 3 days touched
    with pytest.raises(MonitoringError, match="unknown window 'year'"):
        window_bounds(at(1), at(2), "year")
    with pytest.raises(MonitoringError, match="the range is empty"):
        window_bounds(at(2), at(1), "day")


def test_metrics_from_labels_predictions_and_scores() -> None:
    truth, predicted = [1, 0, 1, 0], [1, 0, 0, 0]
    assert compute_metric("accuracy", truth, predicted) == (0.75, None)
    assert compute_metric("recall", truth, predicted)[0] == 0.5
    value, _ = compute_metric("roc_auc", truth, predicted, [0.9, 0.2, 0.4, 0.3])
    assert value == 1.0
    # roc_auc ranks by the scores alone: without the predictions, the same value (text
    # labels too); every other metric needs them.
    assert compute_metric("roc_auc", truth, None, [0.9, 0.2, 0.4, 0.3]) == (1.0, None)
    assert compute_metric("roc_auc", ["1", "0", "1", "0"], None, [0.9, 0.2, 0.1, 0.3]) == (
        0.5, None)
    with pytest.raises(TypeError, match="accuracy needs the predictions"):
        compute_metric("accuracy", truth, None)
    # Text labels from a CSV against numbers the model logged: the same classes.
    assert compute_metric("accuracy", ["1", "0"], [1, 0]) == (1.0, None)
    # One class only: roc_auc is undefined, said in the note.
    value, note = compute_metric("roc_auc", [1, 1], [1, 0], [0.8, 0.3])
    assert value is None and "both classes" in (note or "")
    assert compute_metric("accuracy", [], []) == (None, "no labelled rows")
    assert compute_metric("rmse", [1.0, 3.0], [2.0, 2.0]) == (1.0, None)
    with pytest.raises(MonitoringError, match="needs the probability the model logged"):
        compute_metric("roc_auc", truth, predicted, [None] * 4)
    with pytest.raises(MonitoringError, match="cannot compute 'auc' from labels; use one of roc_auc"):
        compute_metric("auc", truth, predicted)


def test_multiclass_and_regression_metrics_and_their_directions(tmp_path: Path) -> None:
    from workbench.monitoring.performance import direction

    truth, predicted = ["a", "b", "c", "c"], ["a", "b", "b", "c"]
    assert compute_metric("accuracy", truth, predicted) == (0.75, None)
    f1_macro, _ = compute_metric("f1_macro", truth, predicted)
    assert f1_macro == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    # One logged probability per row (the predicted class's) cannot rank three classes.
    for metric in ("roc_auc", "log_loss"):
        with pytest.raises(MonitoringError, match=f"^{metric} needs every class's probability"):
            compute_metric(metric, truth, predicted, [0.9, 0.8, 0.5, 0.7])
    assert compute_metric("mae", [1.0, 3.0], [2.0, 5.0]) == (1.5, None)
    auc_project = Settings.from_env(environ={}, cwd=tmp_path)
    rmse_project = Settings.from_env(environ={}, cwd=tmp_path, primary_metric="rmse")
    assert direction("rmse", auc_project) is False and direction("mae", rmse_project) is False
    assert direction("rmse", rmse_project) is False and direction("f1_macro", rmse_project)


def test_the_rule_fires_below_the_threshold_or_beyond_the_margin() -> None:
    rule = {"metric": "roc_auc", "greater_is_better": True}
    assert judge(0.70, threshold=0.75, **rule) == (
        True, "roc_auc 0.7000 is below the threshold 0.7500")
    fired, why = judge(0.74, margin=0.05, baseline=0.80, **rule)
    assert fired and "0.0600 worse than the baseline 0.8000" in why
    assert judge(0.78, margin=0.05, baseline=0.80, threshold=0.7, **rule)[0] is False
    assert judge(None, threshold=0.9, **rule)[0] is False
    assert judge(0.3, threshold=0.2, metric="log_loss", greater_is_better=False) == (
        True, "log_loss 0.3000 is above the threshold 0.2000")


def test_ids_compare_as_text() -> None:
    assert [key_text(v) for v in (7, 7.0, "C-1", float("nan"), None)] == [
        "7", "7", "C-1", None, None]


# -- a store -----------------------------------------------------------------------------------
def _log(url: str, records: list[PredictionRecord], id_column: str | None = None) -> None:
    log = PredictionLog(url, flush_interval=0.02, id_column=id_column)
    log.start()
    for record in records:
        log.submit(record)
    stats = log.close(timeout=10)
    assert stats.written == len(records), stats


def _record(request_id: str, when: dt.datetime, customers: list[str], outputs: list[int],
            scores: list[float] | None, model: str = MODEL,
            role: str = "primary") -> PredictionRecord:
    return PredictionRecord(request_id, when, model, ["customer_id", "x"],
                            {"customer_id": customers, "x": [1.0] * len(customers)},
                            outputs, 1.0, role, scores)


@pytest.fixture(params=[None, "customer_id"], ids=["id-in-inputs", "id-logged"])
def logged_id(request: pytest.FixtureRequest) -> str | None:
    """The id column the writer was told (WORKBENCH_LABEL_ID_COLUMN): every join test runs on
    a store whose one-row records have the id logged beside them, and on one whose do not."""
    return request.param


@pytest.fixture
def store(tmp_path: Path, logged_id: str | None) -> str:
    """January: 4 customers scored by the champion and (as shadow) the challenger; February:
    4 more by the champion alone. Probabilities logged for the champion only."""
    url = sqlite_url(tmp_path / "p.db")
    _log(url, [
        _record("r1", at(1), ["a", "b"], [1, 0], [0.9, 0.2]),
        _record("r1", at(1), ["a", "b"], [1, 1], None, SHADOW, "shadow"),
        _record("r2", at(1, 20), ["c", "d"], [1, 0], [0.7, 0.4]),
        _record("r2", at(1, 20), ["c", "d"], [0, 0], None, SHADOW, "shadow"),
        _record("r3", at(2), ["e", "f", "g", "h"], [1, 0, 1, 0], [0.8, 0.1, 0.6, 0.3]),
        # One-row records: the id logged beside them when the writer was told the column.
        _record("r4", at(2, 12), ["i"], [1], [0.9]),
        _record("r5", at(2, 12), ["j"], [0], [0.35]),
    ], id_column=logged_id)
    return url


def _labels(tmp_path: Path, name: str, rows: dict[str, Any]) -> Path:
    path = tmp_path / name
    frame = pd.DataFrame(rows)
    if name.endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return path


def test_labels_join_every_predicted_row_carrying_the_id_and_count_the_rest(
        store: str, tmp_path: Path) -> None:
    path = _labels(tmp_path, "labels.csv", {
        "customer_id": ["a", "b", "c", "a", "b", "zz", None, "d"],
        "churned": [1, 0, 0, 1, 1, 1, 0, None],
    })
    done = ingest_labels(path, store, id_column="customer_id", label_column="churned",
                         received_at=at(3))
    # a, b, c matched (champion and shadow each), zz matched nothing; a and b twice (b's
    # second label differs); one row without an id and one (d) without a label.
    assert (done.rows, done.new_labels, done.matched, done.matched_rows) == (8, 4, 3, 6)
    assert (done.unmatched, done.duplicates, done.conflicting, done.missing) == (1, 2, 1, 2)
    assert done.by_model == {MODEL: 3, SHADOW: 3} and done.late == 0
    with sqlite3.connect(store.removeprefix("sqlite:///")) as conn:
        stored = conn.execute("SELECT id_value, label, model_name, prediction, score FROM labels "
                              "ORDER BY id_value, model_name").fetchall()
    assert ("b", "0", MODEL, "0", 0.2) in stored  # the first label kept, with the score
    assert ("zz", "1", None, None, None) in stored  # unmatched, kept

    # Given again: every id is a duplicate now (stored already), nothing is stored twice.
    again = ingest_labels(path, store, id_column="customer_id", label_column="churned",
                          received_at=at(3, 2))
    assert (again.new_labels, again.duplicates, again.matched_rows) == (0, 6, 0)


def test_an_unmatched_label_is_matched_when_its_prediction_is_logged(
        store: str, tmp_path: Path, logged_id: str | None) -> None:
    path = _labels(tmp_path, "early.parquet", {"customer_id": ["late-comer"], "label": [1]})
    first = ingest_labels(path, store, id_column="customer_id", received_at=at(3))
    assert (first.unmatched, first.matched) == (1, 0)
    _log(store, [_record("r9", at(3, 5), ["late-comer"], [1], [0.95])], logged_id)
    other = _labels(tmp_path, "more.csv", {"customer_id": ["e"], "label": [1]})
    second = ingest_labels(other, store, id_column="customer_id", received_at=at(3, 6))
    assert (second.new_labels, second.matched, second.rematched) == (1, 1, 1)
    assert second.by_model == {MODEL: 2}
    with sqlite3.connect(store.removeprefix("sqlite:///")) as conn:
        rows = conn.execute("SELECT prediction_id IS NULL, source FROM labels JOIN label_loads "
                            "d ON d.id = load_id WHERE id_value = 'late-comer'").fetchall()
    assert rows == [(0, str(path))]  # matched now, still credited to the file it came in


def test_a_load_of_nothing_new_matches_waiting_labels_and_records_no_load(
        store: str, tmp_path: Path, logged_id: str | None) -> None:
    path = _labels(tmp_path, "early.csv", {"customer_id": ["late-comer"], "label": [1]})
    ingest_labels(path, store, id_column="customer_id", received_at=at(3))
    _log(store, [_record("r9", at(3, 5), ["late-comer"], [1], [0.95])], logged_id)
    again = ingest_labels(path, store, id_column="customer_id", received_at=at(3, 6))
    assert (again.new_labels, again.duplicates, again.rematched) == (0, 1, 1)
    with sqlite3.connect(store.removeprefix("sqlite:///")) as conn:
        loads = conn.execute("SELECT source FROM label_loads").fetchall()
        rows = conn.execute("SELECT load_id, score FROM labels WHERE id_value = 'late-comer'"
                            ).fetchall()
    assert loads == [(str(path),)] and rows == [(1, 0.95)]


def test_labels_join_on_the_request_id(store: str, tmp_path: Path) -> None:
    path = _labels(tmp_path, "by_request.csv", {"request_id": ["r2", "nope"], "label": [1, 0]})
    done = ingest_labels(path, store, id_column="request_id", received_at=at(3))
    # r2 holds two rows, scored by two models: four predicted rows.
    assert (done.matched, done.matched_rows, done.unmatched) == (1, 4, 1)


def test_bad_label_files_are_one_line(store: str, tmp_path: Path) -> None:
    path = _labels(tmp_path, "l.csv", {"customer": ["a"], "label": [1]})
    cases = [
        (path, "customer_id", "label", "has no id column 'customer_id' (it has customer, label)"),
        (path, "customer", "churned", "has no label column 'churned'"),
        (tmp_path / "missing.csv", "customer_id", "label", "does not exist"),
        (tmp_path / "labels.txt", "customer_id", "label", "unsupported format"),
    ]
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    cases.append((broken, "customer_id", "label", "is not a readable Parquet file"))
    for source, id_column, label_column, message in cases:
        with pytest.raises(MonitoringError) as info:
            ingest_labels(source, store, id_column=id_column, label_column=label_column)
        assert message in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(NoCurrentData, match="no predictions logged"):
        ingest_labels(path, sqlite_url(tmp_path / "none.db"), id_column="customer")


# -- performance -------------------------------------------------------------------------------
class _Registry:
    """Resolves every reference to one instance; no MLflow."""

    def __init__(self, full_name: str) -> None:
        self.instance = Instance(registered_model="churn", number=1, full_name=full_name,
                                 model_version="v1", data_date="20240131", run_id=None,
                                 source="", metrics={"roc_auc": 0.9})

    def resolve(self, ref: Any) -> Instance:
        return self.instance


def _settings(tmp_path: Path, store: str, **values: str) -> Settings:
    return Settings.from_env(environ={}, cwd=tmp_path, prediction_store=store, **values)


def test_performance_per_window_and_late_labels(store: str, tmp_path: Path) -> None:
    labels = _labels(tmp_path, "jan.csv", {"customer_id": ["a", "b", "c", "d"],
                                           "label": [1, 0, 0, 0]})
    ingest_labels(labels, store, id_column="customer_id", received_at=at(2, 15))
    settings = _settings(tmp_path, store)
    report = evaluate_performance(MODEL, settings, since="2024-01-01", until="2024-02-29",
                                  registry=_Registry(MODEL), log=False, now=at(3, 1))  # type: ignore[arg-type]
    jan, feb = report.windows
    assert (jan.label, jan.rows, jan.labelled, jan.late) == ("2024-01", 4, 4, 0)
    # Scores a 0.9, b 0.2, c 0.7, d 0.4 for labels 1, 0, 0, 0: c outranks nothing else.
    assert jan.value == pytest.approx(1.0)
    assert (feb.rows, feb.labelled, feb.value) == (6, 0, None)
    assert report.latest is jan

    # February's labels arrive after that check evaluated February: late, and counted.
    feb_labels = _labels(tmp_path, "feb.csv", {"customer_id": ["e", "f", "g", "h", "i", "j"],
                                               "label": [0, 1, 1, 0, 1, 0]})
    done = ingest_labels(feb_labels, store, id_column="customer_id", received_at=at(3, 2))
    assert done.late == 6 and done.late_by_model == {MODEL: 6}
    again = evaluate_performance(MODEL, settings, since="2024-01-01", until="2024-02-29",
                                 registry=_Registry(MODEL), log=False, now=at(3, 3))  # type: ignore[arg-type]
    feb = again.windows[1]
    assert (feb.labelled, feb.late) == (6, 6)
    # Scores 0.8, 0.1, 0.6, 0.3, 0.9, 0.35 for 0, 1, 1, 0, 1, 0: 5 of 9 pairs ranked right.
    assert feb.value == pytest.approx(5 / 9)
    assert again.latest is feb

    # The shadow logged classes only: roc_auc is refused in one line, accuracy works.
    with pytest.raises(MonitoringError, match="logged as classes only"):
        evaluate_performance(SHADOW, settings, since="2024-01-01", until="2024-02-29",
                             registry=_Registry(SHADOW), log=False)  # type: ignore[arg-type]
    shadow = evaluate_performance(SHADOW, settings, since="2024-01-01", until="2024-02-29",
                                  metric="accuracy", registry=_Registry(SHADOW),  # type: ignore[arg-type]
                                  log=False, record=False)
    assert shadow.windows[0].value == pytest.approx(0.75)  # 1, 1, 0, 0 against 1, 0, 0, 0
    assert not math.isnan(shadow.windows[0].value or 0.0)

    with pytest.raises(NoCurrentData, match="no predictions of churn_v1_20240131 logged"):
        evaluate_performance(MODEL, settings, since="2024-06-01", until="2024-06-30",
                             registry=_Registry(MODEL), log=False)  # type: ignore[arg-type]


def test_a_store_without_labels_says_how_to_load_them(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "p.db")
    _log(url, [_record("r1", at(1), ["a"], [1], [0.9])])
    report = evaluate_performance(MODEL, _settings(tmp_path, url), since="2024-01-01",
                                  until="2024-01-31", registry=_Registry(MODEL),  # type: ignore[arg-type]
                                  log=False)
    assert report.latest is None and report.windows[0].rows == 1
    assert "workbench monitor labels" in report.notes[0]
    assert SimpleNamespace(**report.as_dict()["windows"][0]).labelled == 0


def test_one_row_records_join_whatever_their_columns_are_named(
        tmp_path: Path, logged_id: str | None) -> None:
    url = sqlite_url(tmp_path / "p.db")
    odd = ["data", 'x],"data":', "customer_id"]
    _log(url, [
        PredictionRecord("s1", at(1), MODEL, odd, {"data": [1.0], 'x],"data":': [2.0],
                                                   "customer_id": [7]}, ["yes"], 1.0),
        PredictionRecord("s2", at(1), MODEL, ["customer_id"], {"customer_id": ["8"]}, [[0.2, 0.8]],
                         1.0, scores=[[0.2, 0.8]]),
    ], logged_id)
    path = _labels(tmp_path, "l.csv", {"customer_id": [7, 8], "label": ["yes", "no"]})
    done = ingest_labels(path, url, id_column="customer_id", received_at=at(2))
    assert (done.matched, done.matched_rows) == (2, 2)
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        stored = conn.execute("SELECT id_value, prediction, score FROM labels "
                              "ORDER BY id_value").fetchall()
    assert stored == [("7", '"yes"', None), ("8", "[0.2,0.8]", 0.8)]


def test_ids_and_labels_with_quotes_backslashes_and_newlines_are_stored_as_given(
        tmp_path: Path, logged_id: str | None) -> None:
    # The labels reach SQLite as one JSON object: what JSON escapes must come back unchanged.
    url = sqlite_url(tmp_path / "p.db")
    odd = ['a"b', "c\\d", "e\nf", "ünï\u2028"]
    _log(url, [_record(f"r{n}", at(1), [key], [1], [0.5]) for n, key in enumerate(odd)],
         logged_id)
    labels = ['say "yes"', "back\\slash", "two\nlines", "ünï"]
    path = _labels(tmp_path, "odd.parquet", {"customer_id": odd, "label": labels})
    done = ingest_labels(path, url, id_column="customer_id", received_at=at(2))
    assert (done.matched, done.unmatched) == (4, 0)
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        stored = dict(conn.execute("SELECT id_value, label FROM labels").fetchall())
    assert {key: json.loads(label) for key, label in stored.items()} == dict(zip(odd, labels))
    again = ingest_labels(path, url, id_column="customer_id", received_at=at(2, 2))
    assert (again.new_labels, again.duplicates, again.conflicting) == (0, 4, 0)


def test_a_store_of_logged_and_unlogged_ids_joins_every_record(tmp_path: Path) -> None:
    # A store as it grows: records logged before the id column was set (one of one row, one
    # of two), then records with the id logged beside them (one-row: a whole float as its
    # integer; a batch: each row's id, prediction and score), and one logged under another id
    # column.
    url = sqlite_url(tmp_path / "p.db")
    _log(url, [_record("old", at(1), ["a"], [1], [0.9]),
               _record("old-batch", at(1), ["f", "g"], [0, 1], [0.15, 0.65])])
    _log(url, [
        _record("new", at(1, 2), ["b"], [0], [0.2]),
        _record("batch", at(1, 3), ["c", "d"], [1, 0], [0.8, 0.3]),
        PredictionRecord("whole", at(1, 4), MODEL, ["customer_id", "x"],
                         {"customer_id": [7.0], "x": [1.0]}, [1], 1.0, scores=[0.6]),
    ], id_column="customer_id")
    _log(url, [_record("other", at(1, 5), ["e"], [1], [0.7])], id_column="x")
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        logged = conn.execute("SELECT request_id, id_column, id_value, label_rows FROM "
                              "predictions ORDER BY id").fetchall()
    assert logged == [("old", None, None, None), ("old-batch", None, None, None),
                      ("new", "customer_id", "b", None),
                      ("batch", "customer_id", None, '[["c",1,0.8],["d",0,0.3]]'),
                      ("whole", "customer_id", "7", None), ("other", "x", "1", None)]
    path = _labels(tmp_path, "l.csv", {"customer_id": ["a", "b", "c", "d", "7", "e", "f", "g",
                                                       "zz"],
                                       "label": [1, 0, 1, 0, 1, 1, 0, 1, 0]})
    done = ingest_labels(path, url, id_column="customer_id", received_at=at(2))
    assert (done.matched, done.matched_rows, done.unmatched) == (8, 8, 1)
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        joined = {key: (index, prediction, score) for key, index, prediction, score in conn.execute(
            "SELECT id_value, row_index, prediction, score FROM labels WHERE prediction_id IS "
            "NOT NULL")}
    assert joined == {"a": (0, "1", 0.9), "b": (0, "0", 0.2), "c": (0, "1", 0.8),
                      "d": (1, "0", 0.3), "7": (0, "1", 0.6), "e": (0, "1", 0.7),
                      "f": (0, "0", 0.15), "g": (1, "1", 0.65)}
    # Joined on the other column, only its own record's logged id (and the inputs) count.
    by_x = ingest_labels(_labels(tmp_path, "x.csv", {"x": [1], "label": [1]}), url,
                         id_column="x", received_at=at(2))
    assert (by_x.matched, by_x.matched_rows) == (1, 8)
    with pytest.raises(ConfigError, match="longer than 64"):
        PredictionLog(url, id_column="c" * 65)


def test_a_logged_score_is_the_score_the_join_reads_from_the_json(tmp_path: Path) -> None:
    # The writer's score column and the join's SQL over the scores JSON follow one rule: the
    # same records, logged with and without the id beside them, store the same scores.
    # A batch record of all of them (its scores read by row from a staged table) too.
    shapes: list[Any] = [0.7, 1, [0.2, 0.8], [0.1, 0.2, 0.7], [], None, float("nan"),
                         float("inf"), True, "high", [[0.1, 0.9]], [0.3, None]]
    ids = [f"c{n}" for n in range(len(shapes))]
    stored = []
    for name, logged_id in (("one-row", None), ("one-row logged", "customer_id"),
                            ("batch", None), ("batch logged", "customer_id")):
        url = sqlite_url(tmp_path / f"{name}.db")
        _log(url, [PredictionRecord(f"r{n}", at(1), MODEL, ["customer_id"],
                                    {"customer_id": [f"c{n}"]}, [1], 1.0, scores=[shape])
                   for n, shape in enumerate(shapes)] if not name.startswith("batch") else [
            PredictionRecord("b", at(1), MODEL, ["customer_id"], {"customer_id": ids},
                             [1] * len(ids), 1.0, scores=shapes)], logged_id)
        path = _labels(tmp_path, "l.csv", {"customer_id": [f"c{n}" for n in range(len(shapes))],
                                           "label": [1] * len(shapes)})
        assert ingest_labels(path, url, id_column="customer_id").matched == len(shapes)
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            stored.append(conn.execute("SELECT id_value, score FROM labels ORDER BY "
                                       "prediction_id, row_index").fetchall())
    from_json, from_column, from_batch, from_rows = stored
    assert from_column == from_json == from_batch == from_rows
    assert [score for _id, score in from_json] == [0.7, 1.0, 0.8, 0.7, None, None, None, None,
                                                   None, None, None, None]


def test_roc_auc_of_a_model_that_logged_its_probability_as_the_prediction(
        tmp_path: Path) -> None:
    # No scores logged: the window's predictions are fetched after all, and ranked by.
    url = sqlite_url(tmp_path / "p.db")
    _log(url, [PredictionRecord(f"r{n}", at(1), MODEL, ["customer_id"], {"customer_id": [key]},
                                [probability], 1.0)
               for n, (key, probability) in enumerate(
                   [("a", 0.9), ("b", 0.2), ("c", 0.35), ("d", 0.4)])], "customer_id")
    path = _labels(tmp_path, "l.csv", {"customer_id": ["a", "b", "c", "d"], "label": [1, 0, 1, 0]})
    ingest_labels(path, url, id_column="customer_id", received_at=at(2))
    report = evaluate_performance(MODEL, _settings(tmp_path, url), since="2024-01-01",
                                  until="2024-01-31", registry=_Registry(MODEL),  # type: ignore[arg-type]
                                  log=False)
    assert report.windows[0].value == pytest.approx(0.75)  # a > b, d; c > b only
