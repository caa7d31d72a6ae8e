"""Drift monitoring against a real mlflow server: profiles at registration, the CLI, MLflow."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from workbench import tracking
from workbench.demo.data import DRIFTED_FEATURES, FEATURES, TARGET, demo_data_path, write_demo_data
from workbench.demo.training import build_pipeline
from workbench.monitoring.profile import PROFILE_FILE
from workbench.monitoring.service import (
    DRIFT_CHECKED_AT_TAG,
    DRIFT_RUN_TAG,
    DRIFT_STATUS_TAG,
    MONITORED_MODEL_TAG,
    MONITORED_VERSION_TAG,
    check_model_drift,
    load_profile,
)
from workbench.naming import ModelName
from workbench.registry import PROFILE_TAG
from workbench.store import PredictionLog, PredictionRecord, sqlite_url

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc


def _cli(settings, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **settings.as_env(), **(env or {})}
    return subprocess.run([sys.executable, "-m", "workbench.cli", "monitor", "drift", *args],
                          capture_output=True, text=True, env=full_env, timeout=180)


def _error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def months(settings, demo_data) -> dict[str, Path]:
    write_demo_data(settings.data_dir, months=("20240430",), rows=1500)
    return {m: demo_data_path(settings.data_dir, m) for m in ("20240131", "20240229", "20240430")}


@pytest.fixture(scope="module")
def churn(registry, months):
    """churn trained on January and registered through Registry.register (profile included)."""
    instance = f"mon{uuid.uuid4().hex[:8]}"
    name = ModelName(instance, "v1", "20240131")
    january = pd.read_csv(months["20240131"])
    X, y = january[list(FEATURES)], january[TARGET]
    model = build_pipeline("logistic_regression", list(FEATURES)).fit(X, y)
    run_id = tracking.start_run(registry.client, instance, str(name), {})
    registered = registry.register(model, name, run_id=run_id, input_example=X)
    registry.client.set_terminated(run_id)
    return registered, model


def test_register_stores_the_profile_with_the_model(settings, registry, churn):
    instance, _ = churn
    assert instance.tags[PROFILE_TAG] == PROFILE_FILE
    location = registry.client.get_model_version_download_uri(instance.registered_model,
                                                              str(instance.number))
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repository = get_artifact_repository(location, tracking_uri=settings.tracking_uri)
    files = {Path(f.path).name for f in repository.list_artifacts()}
    assert {PROFILE_FILE, "MLmodel"} <= files  # it travels with the model
    profile = load_profile(instance, registry)
    assert profile.names == list(FEATURES) and profile.rows == 1500
    assert profile.feature("contract").kind == "categorical"
    assert profile.feature("total_charges").missing > 0
    assert profile.prediction is not None and profile.prediction.count == 1500
    # A classifier of 0 and 1: its predictions are two classes, not numbers.
    assert profile.prediction.kind == "categorical"
    assert set(profile.prediction.categories) == {"0", "1"}


def test_february_does_not_drift(settings, churn, months):
    instance, _ = churn
    result = _cli(settings, instance.full_name, "--current", str(months["20240229"]))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["feature", "kind", "status", "psi", "test", "statistic", "p_value",
                                "js", "missing"]
    assert len(lines) == 1 + len(FEATURES) + 1 + 1  # header, features, predictions, verdict
    assert lines[-1].startswith(("verdict: ok:", "verdict: warn:")), lines[-1]
    assert all(line.split()[2] != "drift" for line in lines[1:-1])


def test_april_drifts_on_the_drifted_features_only_and_is_logged(settings, registry, churn, months):
    instance, _ = churn
    result = _cli(settings, instance.full_name, "--current", str(months["20240430"]), "--json")
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert summary["verdict"] == "drift"
    assert set(summary["drifted"]) == set(DRIFTED_FEATURES)
    assert summary["model"] == instance.full_name and summary["current_rows"] == 1500
    errors = _error_lines(result)
    assert len(errors) == 1 and f"{instance.full_name}: drift in" in errors[0]

    version = registry.client.get_model_version(instance.registered_model, str(instance.number))
    assert version.tags[DRIFT_STATUS_TAG] == "drift"
    checked = dt.datetime.fromisoformat(version.tags[DRIFT_CHECKED_AT_TAG])
    assert abs(dt.datetime.now(UTC) - checked) < dt.timedelta(minutes=5)
    run_id = version.tags[DRIFT_RUN_TAG]
    assert run_id == summary["run_id"]

    run = registry.client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[MONITORED_MODEL_TAG] == instance.full_name
    assert run.data.tags[MONITORED_VERSION_TAG] == str(instance.number)
    training = registry.client.get_run(instance.run_id)
    assert run.info.experiment_id == training.info.experiment_id  # the instance's experiment
    assert run.data.metrics["drift.features_drifted"] == len(DRIFTED_FEATURES)
    assert run.data.metrics["psi.monthly_charges"] > 0.25
    artifacts = {f.path for f in registry.client.list_artifacts(run_id)}
    assert {"drift_report.html", "drift_summary.json"} <= artifacts
    mlflow.set_tracking_uri(settings.tracking_uri)
    logged = mlflow.artifacts.load_dict(f"runs:/{run_id}/drift_summary.json")
    assert logged["drifted"] == summary["drifted"]
    page = mlflow.artifacts.load_text(f"runs:/{run_id}/drift_report.html")
    assert page.count("data:image/png;base64,") == len(FEATURES) + 1
    first = min(page.index(f'<figure id="{name}">') for name in DRIFTED_FEATURES)
    assert all(page.index(f'<figure id="{name}">') > first for name in ("age", "tenure_months"))


def test_a_model_without_profile_is_refused_in_one_line(settings, unique_instance, months):
    january = pd.read_csv(months["20240131"])
    X = january[["tenure_months", "age"]]
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_experiment(unique_instance)
    with mlflow.start_run():
        mlflow.sklearn.log_model(LogisticRegression().fit(X, january[TARGET]), name="model",
                                 registered_model_name=unique_instance)
    result = _cli(settings, f"models:/{unique_instance}/1", "--current", str(months["20240229"]))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = _error_lines(result)
    assert len(errors) == 1 and "has no reference profile" in errors[0], result.stderr


@pytest.mark.parametrize("ref, message", [
    ("nosuchmodel_v1_20240131", "no registered model 'nosuchmodel'"),
    ("churn_v1_20240230", "data_date"),
])
def test_an_unknown_model_is_bad_input(settings, months, ref, message):
    result = _cli(settings, ref, "--current", str(months["20240229"]))
    assert result.returncode == 2, result.stderr
    errors = _error_lines(result)
    assert len(errors) == 1 and message in errors[0]


def test_columns_that_do_not_match_the_signature_are_bad_input(settings, churn, months, tmp_path):
    instance, _ = churn
    partial = tmp_path / "partial.csv"
    pd.read_csv(months["20240229"]).drop(columns=["contract", "age"]).to_csv(partial, index=False)
    result = _cli(settings, instance.full_name, "--current", str(partial))
    assert result.returncode == 2, result.stderr
    errors = _error_lines(result)
    assert len(errors) == 1 and "lacks column(s) age, contract of the model's signature" in errors[0]

    both = _cli(settings, instance.full_name, "--current", str(partial), "--since", "2024-01-01")
    assert both.returncode == 2 and "not both" in _error_lines(both)[0]
    missing = _cli(settings, instance.full_name, "--current", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and "does not exist" in _error_lines(missing)[0]


@pytest.fixture(scope="module")
def store(churn, months, tmp_path_factory) -> str:
    """February predictions logged in early March, April's in early May, others' in May too."""
    instance, model = churn
    url = sqlite_url(tmp_path_factory.mktemp("store") / "p.db")
    log = PredictionLog(url, flush_interval=0.05)
    log.start()
    for month, day, name in (("20240229", dt.datetime(2024, 3, 2, tzinfo=UTC), instance.full_name),
                             ("20240430", dt.datetime(2024, 5, 2, tzinfo=UTC), instance.full_name),
                             ("20240131", dt.datetime(2024, 5, 3, tzinfo=UTC), "other_v1_20240131")):
        frame = pd.read_csv(months[month])[list(FEATURES)]
        predictions = model.predict(frame)
        for n, start in enumerate(range(0, len(frame), 100)):
            chunk = frame.iloc[start:start + 100]
            log.submit(PredictionRecord(
                request_id=f"{month}-{n}", created_at=day + dt.timedelta(minutes=n),
                model_name=name, columns=list(FEATURES),
                inputs={c: chunk[c].tolist() for c in FEATURES},
                outputs=predictions[start:start + 100].tolist(), latency_ms=1.0,
            ))
    stats = log.close()
    assert stats.written == 45 and stats.dropped == 0
    return url


def test_logged_predictions_in_a_window_are_the_current_data(settings, churn, store):
    instance, _ = churn
    env = {"WORKBENCH_PREDICTION_STORE": store}
    may = _cli(settings, instance.full_name, "--since", "2024-05-01", "--json", env=env)
    assert may.returncode == 1, may.stderr
    summary = json.loads(may.stdout)
    assert summary["current_rows"] == 1500  # April's rows only: not the other model's
    assert set(summary["drifted"]) == set(DRIFTED_FEATURES)
    assert summary["since"] == "2024-05-01T00:00:00+00:00" and "prediction store" in summary["source"]
    assert summary["prediction"]["current_count"] == 1500

    march = _cli(settings, instance.full_name, "--since", "2024-03-01", "--until", "2024-03-31",
                 env=env)
    assert march.returncode == 0, march.stderr
    assert march.stdout.splitlines()[-1].startswith(("verdict: ok", "verdict: warn"))


def test_a_window_without_predictions_is_bad_input(settings, churn, store, tmp_path):
    instance, _ = churn
    result = _cli(settings, instance.full_name, "--since", "2024-06-01",
                  env={"WORKBENCH_PREDICTION_STORE": store})
    assert result.returncode == 2, result.stderr
    errors = _error_lines(result)
    assert len(errors) == 1
    assert f"no predictions of {instance.full_name} logged from 2024-06-01" in errors[0]
    # A store nobody wrote to yet is no different.
    empty = _cli(settings, instance.full_name,
                 env={"WORKBENCH_PREDICTION_STORE": sqlite_url(tmp_path / "empty.db")})
    assert empty.returncode == 2 and "no predictions" in _error_lines(empty)[0]


def test_the_library_call_with_a_frame_and_thresholds(settings, registry, churn, months, tmp_path):
    instance, _ = churn
    april = pd.read_csv(months["20240430"])
    from workbench.monitoring.drift import Thresholds

    lenient = Thresholds(psi_warn=5, psi_drift=9, ks_warn=0.9, ks_drift=0.95, js_warn=0.9,
                         js_drift=0.95)
    check = check_model_drift(instance.full_name, settings, current=april, thresholds=lenient,
                              registry=registry, report_dir=tmp_path, log=False)
    assert check.verdict == "ok" and check.run_id is None
    assert check.report_html == tmp_path / "drift_report.html" and check.summary_json.is_file()
    assert json.loads(check.summary_json.read_text())["thresholds"]["psi_drift"] == 9
    check.raise_for_drift()  # ok: nothing raised


def test_monitor_notebook_runs_as_a_scheduled_job(settings, churn, months):
    """monitor.ipynb through `workbench run`: ok on February; fail_on_drift fails April's job."""
    from workbench.errors import JobFailed
    from workbench.jobs import JobSpec, run_job

    notebook = Path(__file__).resolve().parents[2] / "notebooks" / "monitor.ipynb"
    instance, _ = churn
    ok = run_job(JobSpec(notebook, {"model_ref": instance.full_name,
                                    "current_path": str(months["20240229"]), "fail_on_drift": "true"}),
                 settings)
    assert ok.status == "FINISHED"
    with pytest.raises(JobFailed, match="DriftDetected") as raised:
        run_job(JobSpec(notebook, {"model_ref": instance.full_name,
                                   "current_path": str(months["20240430"]), "fail_on_drift": "true"}),
                settings)
    assert raised.value.output_notebook.is_file()
