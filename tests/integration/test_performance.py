"""Labels that arrive later, joined with REAL logged predictions, and the performance series on
a real mlflow server: batch predictions logged by `workbench predict --log` (through the real
PredictionLog), a real `workbench serve` process's traffic joined by request id, the CLI run
as subprocesses; late, duplicate and unmatched labels; a drop detected and gated."""
from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _serving import Server
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from workbench import tracking
from workbench.errors import PromotionRefused
from workbench.monitoring.performance import performance_trigger
from workbench.monitoring.service import MONITORED_VERSION_TAG, MONITORING_TAG
from workbench.naming import ModelName
from workbench.predict import predict_file
from workbench.store import sqlite_url

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
FEATURES = ["x1", "x2"]


def _cli(settings, store: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, **settings.as_env(), "WORKBENCH_PREDICTION_STORE": store,
                   **(env or {})}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True,
                          text=True, env=environment, timeout=300)


def _errors(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("error:")]


def _month(seed: int, month: str, rows: int = 300) -> pd.DataFrame:
    """Customers of one month: two features and the churn the features explain."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"customer_id": [f"C{month}-{i:04d}" for i in range(rows)],
                          "x1": rng.normal(size=rows), "x2": rng.normal(size=rows)})
    frame["churned"] = ((frame.x1 + 0.5 * frame.x2 + rng.normal(scale=0.5, size=rows)) > 0
                        ).astype(int)
    return frame


@pytest.fixture(scope="module")
def model(registry):
    """One instance trained on January's customers, roc_auc logged in its run."""
    instance = f"perf{uuid.uuid4().hex[:8]}"
    train = _month(1, "train", 600)
    fitted = LogisticRegression().fit(train[FEATURES], train.churned)
    name = ModelName(instance, "v1", "20240131")
    run_id = tracking.start_run(registry.client, instance, str(name), {})
    registry.client.log_metric(run_id, "roc_auc", 0.9)
    registered = registry.register(fitted, name, run_id=run_id, input_example=train[FEATURES])
    registry.client.set_terminated(run_id)
    return registered, fitted


def test_labels_joined_to_batch_predictions_give_the_series_and_catch_a_drop(
        settings, registry, model, tmp_path: Path) -> None:
    instance, _ = model
    store = sqlite_url(tmp_path / "predictions.db")
    scored_settings = settings.replace(prediction_store=store)
    jan, feb = _month(2, "202401"), _month(3, "202402")
    # January logged with the label id column set (each batch record's rows then carry their
    # id, prediction and score for the join), February without it (read from the inputs).
    for frame, logged_at, id_column in ((jan, dt.datetime(2024, 1, 20, tzinfo=UTC), "customer_id"),
                                        (feb, dt.datetime(2024, 2, 20, tzinfo=UTC), "")):
        path = tmp_path / f"{logged_at:%Y%m}.csv"
        frame.drop(columns="churned").to_csv(path, index=False)
        done = predict_file(instance.full_name, path, tmp_path / f"{logged_at:%Y%m}.out.parquet",
                            scored_settings.replace(label_id_column=id_column), registry,
                            log=True, logged_at=logged_at)
        assert done.logged == len(frame)
    with sqlite3.connect(store.removeprefix("sqlite:///")) as conn:
        keyed = conn.execute("SELECT strftime('%m', created_at), id_column, label_rows IS NOT "
                             "NULL, count(*) FROM predictions GROUP BY 1, 2, 3").fetchall()
    assert keyed == [("01", "customer_id", 1, 1), ("02", None, 0, 1)]
    # The same path from the command line: today's batch, logged at its scoring time.
    today = _month(4, "today", 50)
    today.drop(columns="churned").to_csv(tmp_path / "today.csv", index=False)
    done = _cli(settings, store, "predict", instance.full_name, "--input",
                str(tmp_path / "today.csv"), "--output", str(tmp_path / "today.out.csv"), "--log")
    assert done.returncode == 0, done.stderr
    assert "50 rows logged to the prediction store" in done.stderr

    # January's labels: every customer, three of them twice (one with another label), two
    # customers nobody scored, one row without a label.
    labels = jan[["customer_id", "churned"]]
    extra = pd.DataFrame({"customer_id": [jan.customer_id[0], jan.customer_id[1],
                                          jan.customer_id[2], "C999-0001", "C999-0002",
                                          "C202401-9999"],
                          "churned": [jan.churned[0], 1 - jan.churned[1], jan.churned[2], 1, 0,
                                      None]})
    labels_path = tmp_path / "jan_labels.parquet"
    pd.concat([labels, extra]).to_parquet(labels_path)
    done = _cli(settings, store, "monitor", "labels", str(labels_path), "--id-column",
                "customer_id", "--label-column", "churned", "--json")
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)
    assert counts["rows"] == len(jan) + 6
    assert (counts["matched"], counts["matched_rows"]) == (len(jan), len(jan))
    assert (counts["unmatched"], counts["duplicates"], counts["conflicting"]) == (2, 3, 1)
    assert (counts["missing"], counts["late"]) == (1, 0)
    assert counts["by_model"] == {instance.full_name: len(jan)}

    window = ("--since", "2024-01-01", "--until", "2024-02-29", "--window", "month")
    first = _cli(settings, store, "monitor", "performance", instance.full_name, *window, "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    january, february = report["windows"]
    assert (january["window"], january["rows"], january["labelled"]) == ("2024-01", 300, 300)
    assert january["value"] > 0.85 and report["metric"] == "roc_auc"
    assert (february["rows"], february["labelled"], february["value"]) == (300, 0, None)

    # February's labels arrive after February was evaluated: late. And they are the inverse
    # of what the features say (the customers' behaviour changed): the metric drops.
    feb_labels = feb[["customer_id"]].assign(churned=1 - feb.churned)
    feb_path = tmp_path / "feb_labels.csv"
    feb_labels.to_csv(feb_path, index=False)
    done = _cli(settings, store, "monitor", "labels", str(feb_path), "--id-column",
                "customer_id", "--label-column", "churned")
    assert done.returncode == 0, done.stderr
    table = {key.strip(): value.strip() for key, value in
             (line.rsplit("  ", 1) for line in done.stdout.splitlines()[1:])}
    assert table["late (window already evaluated)"] == str(len(feb))
    assert f"{instance.full_name}: 300 predicted rows labelled, 300 late" in done.stderr

    second = _cli(settings, store, "monitor", "performance", instance.full_name, *window)
    assert second.returncode == 0, second.stderr
    rows = {line.split()[0]: line.split() for line in second.stdout.splitlines()[1:3]}
    assert rows["2024-02"][3:6] == ["300", "300", "300"]  # rows, labelled, late
    feb_value = float(rows["2024-02"][6])
    assert feb_value < 0.2
    assert f"latest: roc_auc {feb_value:.4f} in 2024-02" in second.stdout

    # One performance run for the version, found again by the second check; a step a window.
    client = registry.client
    version = client.get_model_version(instance.registered_model, str(instance.number))
    assert version.tags["performance_window"] == "2024-02"
    assert float(version.tags["performance_value"]) == pytest.approx(feb_value, abs=1e-4)
    run = client.get_run(version.tags["performance_run_id"])
    assert run.data.tags[MONITORING_TAG] == "performance"
    assert run.data.tags[MONITORED_VERSION_TAG] == str(instance.number)
    history = client.get_metric_history(run.info.run_id, "performance.roc_auc")
    by_step = {}
    for point in history:
        by_step[point.step] = point.value
    jan_step, feb_step = (2024 - 1970) * 12, (2024 - 1970) * 12 + 1
    assert set(by_step) == {jan_step, feb_step}
    assert by_step[jan_step] > 0.85 and by_step[feb_step] == pytest.approx(feb_value, abs=1e-4)
    assert {p.timestamp for p in history if p.step == feb_step} == {
        int(dt.datetime(2024, 2, 1, tzinfo=UTC).timestamp() * 1000)}

    # The trigger a policy asks: below the threshold, and more than the margin under the
    # training run's roc_auc (0.9).
    checked = scored_settings
    verdict = performance_trigger(instance.full_name, checked, threshold=0.7, margin=0.05,
                                  since="2024-01-01", until="2024-02-29", log=False)
    assert verdict.fired and "below the threshold 0.7000" in verdict.reason
    assert (verdict.window, verdict.labelled, verdict.baseline) == ("2024-02", 300, 0.9)
    held = performance_trigger(instance.full_name, checked, threshold=0.05, since="2024-01-01",
                               until="2024-01-31", log=False)
    assert not held.fired and held.window == "2024-01"

    # The gate: with a floor set, the version can be neither challenger nor champion.
    gated = registry.__class__(settings.replace(performance_threshold=0.7))
    with pytest.raises(PromotionRefused) as refused:
        gated.promote(instance.full_name, "challenger")
    assert refused.value.gates == ("performance",)
    done = _cli(settings, store, "models", "promote", instance.full_name, "--alias", "champion",
                env={"WORKBENCH_PERFORMANCE_THRESHOLD": "0.7"})
    assert done.returncode == 1
    [line] = _errors(done)
    assert "below the threshold 0.7000" in line and "--force --reason" in line


def test_labels_joined_to_served_traffic_by_request_id(settings, registry, model,
                                                       tmp_path: Path) -> None:
    instance, fitted = model
    server = Server(settings, instance.full_name, tmp_path)
    try:
        frame = _month(5, "served", 40)
        for n, row in frame.iterrows():
            status, body, _ = server.post({"dataframe_split": {
                "columns": FEATURES, "data": [[row.x1, row.x2]]}},
                headers={"X-Request-ID": f"q{n}"})
            assert status == 200, body
    finally:
        assert server.stop() in (0, -15)
    store = server.log_url
    # Labels for 30 of the 40 requests, and for 2 requests never made.
    labels = pd.DataFrame({"request_id": [f"q{n}" for n in range(30)] + ["q900", "q901"],
                           "label": [*frame.churned[:30].tolist(), 1, 1]})
    labels.to_csv(tmp_path / "by_request.csv", index=False)
    done = _cli(settings, store, "monitor", "labels", str(tmp_path / "by_request.csv"),
                "--id-column", "request_id", "--json")
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)
    assert (counts["matched"], counts["unmatched"], counts["matched_rows"]) == (30, 2, 30)

    # The server logs each prediction's probability with it: roc_auc on served traffic is
    # the probabilities' roc_auc over the labelled requests...
    done = _cli(settings, store, "monitor", "performance", instance.full_name, "--since", "1d",
                "--window", "month", "--json")
    assert done.returncode == 0, done.stderr
    [window] = [w for w in json.loads(done.stdout)["windows"] if w["labelled"]]
    assert window["labelled"] == 30
    probability = fitted.predict_proba(frame[FEATURES])[:30, 1]
    assert window["value"] == pytest.approx(roc_auc_score(frame.churned[:30], probability))
    # ...and accuracy is the labelled rows' share the model got right.
    done = _cli(settings, store, "monitor", "performance", instance.full_name, "--since", "1d",
                "--window", "day", "--metric", "accuracy", "--json")
    assert done.returncode == 0, done.stderr
    windows = [w for w in json.loads(done.stdout)["windows"] if w["rows"]]
    assert sum(w["rows"] for w in windows) == 40 and sum(w["labelled"] for w in windows) == 30
    expected = float((fitted.predict(frame[FEATURES])[:30] == frame.churned[:30]).mean())
    labelled = [w for w in windows if w["labelled"]]
    assert sum(w["value"] * w["labelled"] for w in labelled) / 30 == pytest.approx(expected)


def test_a_server_told_the_id_column_logs_it_and_labels_join_on_it(settings, registry,
                                                                   tmp_path: Path) -> None:
    # A pipeline that takes the customer id among its inputs and drops it: the server is told
    # WORKBENCH_LABEL_ID_COLUMN and logs each request's id beside the record; the labels then
    # join on it, with --id-column taken from the same setting.
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline

    train = _month(6, "train", 400)
    fitted = make_pipeline(ColumnTransformer([("features", "passthrough", FEATURES)]),
                           LogisticRegression()).fit(train[["customer_id", *FEATURES]],
                                                     train.churned)
    name = ModelName(f"perfid{uuid.uuid4().hex[:6]}", "v1", "20240131")
    run_id = tracking.start_run(registry.client, name.instance, str(name), {})
    registered = registry.register(fitted, name, run_id=run_id,
                                   input_example=train[["customer_id", *FEATURES]])
    registry.client.set_terminated(run_id)
    env = {"WORKBENCH_LABEL_ID_COLUMN": "customer_id"}
    server = Server(settings, registered.full_name, tmp_path, env=env)
    frame = _month(7, "served", 30)
    try:
        for _, row in frame.iterrows():
            status, body, _ = server.post({"dataframe_split": {
                "columns": ["customer_id", *FEATURES],
                "data": [[row.customer_id, row.x1, row.x2]]}})
            assert status == 200, body
    finally:
        assert server.stop() in (0, -15)
    store = server.log_url
    with sqlite3.connect(store.removeprefix("sqlite:///")) as conn:
        logged = conn.execute("SELECT id_column, id_value FROM predictions ORDER BY id").fetchall()
    assert logged == [("customer_id", customer) for customer in frame.customer_id]

    frame[["customer_id", "churned"]].iloc[:25].to_csv(tmp_path / "labels.csv", index=False)
    done = _cli(settings, store, "monitor", "labels", str(tmp_path / "labels.csv"),
                "--label-column", "churned", "--json", env=env)
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout)
    assert (counts["id_column"], counts["matched"], counts["matched_rows"]) == (
        "customer_id", 25, 25)
    done = _cli(settings, store, "monitor", "performance", registered.full_name, "--since",
                "1d", "--window", "month", "--json")
    assert done.returncode == 0, done.stderr
    [window] = [w for w in json.loads(done.stdout)["windows"] if w["labelled"]]
    probability = fitted.predict_proba(frame[["customer_id", *FEATURES]])[:25, 1]
    assert window["labelled"] == 25
    assert window["value"] == pytest.approx(roc_auc_score(frame.churned[:25], probability))
    # Without the setting and without --id-column there is nothing to join on: one line.
    done = _cli(settings, store, "monitor", "labels", str(tmp_path / "labels.csv"))
    assert done.returncode == 2
    [line] = _errors(done)
    assert "--id-column" in line and "WORKBENCH_LABEL_ID_COLUMN" in line


def test_bad_input_is_one_line_and_exit_2(settings, model, tmp_path: Path) -> None:
    instance, _ = model
    store = sqlite_url(tmp_path / "empty.db")
    labels = tmp_path / "l.csv"
    pd.DataFrame({"customer": ["a"], "label": [1]}).to_csv(labels, index=False)
    unreadable = tmp_path / "u.parquet"
    unreadable.write_text("no parquet here")
    for args, message in (
            (("labels", str(labels), "--id-column", "customer_id"), "has no id column"),
            (("labels", str(labels), "--id-column", "customer", "--label-column", "y"),
             "has no label column 'y'"),
            (("labels", str(unreadable), "--id-column", "customer"), "not a readable Parquet"),
            (("labels", str(labels), "--id-column", "customer"), "no predictions logged"),
            (("performance", instance.full_name), "no predictions logged"),
            (("performance", "nosuch_v1_20240131"), "no registered model 'nosuch'"),
            (("performance", instance.full_name, "--metric", "auc"), "cannot compute 'auc'")):
        done = _cli(settings, store, "monitor", *args)
        assert done.returncode == 2, (args, done.stderr)
        errors = _errors(done)
        assert len(errors) == 1 and message in errors[0], (args, done.stderr)
        assert "Traceback" not in done.stderr
