"""Faults of drift checks against a real mlflow server: names matplotlib and HTML would
misread, and reports that cannot be written.

Each case asserts what the user sees (exit status, one line) and what the monitoring run
keeps (its status and the reason tag).
"""
from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from workbench import tracking
from workbench.errors import MonitoringError
from workbench.monitoring import report
from workbench.monitoring.service import (
    DRIFT_RUN_TAG,
    DRIFT_STATUS_TAG,
    FAILURE_TAG,
    MONITORED_MODEL_TAG,
    check_model_drift,
)
from workbench.naming import ModelName

pytestmark = pytest.mark.integration

# "$_$" is a ValueError in matplotlib's math text; "$x$" would be drawn as an italic x.
NUMERIC = ("fee $_$", "price $x$ usd")
CATEGORY = "plan $ tier"
LABELS = ("$5 plan", "a$b^$c", "pro_$ <b>")
UNSEEN = "$new <b>"
FEATURES = (*NUMERIC, CATEGORY)


def _frame(rng: np.random.Generator, rows: int, shift: float = 0.0) -> pd.DataFrame:
    frame = pd.DataFrame({name: rng.normal(shift, 1.0, rows) for name in NUMERIC})
    frame[CATEGORY] = rng.choice(LABELS, rows)
    return frame


def _cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **settings.as_env()}
    return subprocess.run([sys.executable, "-m", "workbench.cli", "monitor", "drift", *args],
                          capture_output=True, text=True, env=env, timeout=180)


def _error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def _monitoring_runs(registry, instance) -> dict[str, object]:
    experiment = registry.client.get_run(instance.run_id).info.experiment_id
    runs = registry.client.search_runs(
        [experiment], filter_string=f"tags.`{MONITORED_MODEL_TAG}` = '{instance.full_name}'")
    return {run.info.run_id: run for run in runs}


def _new_run(registry, instance, before: dict[str, object]):
    new = [run for run_id, run in _monitoring_runs(registry, instance).items()
           if run_id not in before]
    assert len(new) == 1, f"expected one new monitoring run, found {len(new)}"
    return new[0]


@pytest.fixture(scope="module")
def dollar_model(registry):
    """A model whose feature and category names hold dollars, carets, backslashes, markup."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(11)
    train = _frame(rng, 800)
    target = (train["fee $_$"] + (train[CATEGORY] == "$5 plan") > 0.5).astype(int)
    model = make_pipeline(
        ColumnTransformer([("categories", OneHotEncoder(handle_unknown="ignore"), [CATEGORY])],
                          remainder="passthrough"),
        LogisticRegression(max_iter=500),
    ).fit(train, target)
    instance = f"dollar{uuid.uuid4().hex[:8]}"
    name = ModelName(instance, "v1", "20240131")
    run_id = tracking.start_run(registry.client, instance, str(name), {})
    registered = registry.register(model, name, run_id=run_id, input_example=train)
    registry.client.set_terminated(run_id)
    return registered


@pytest.fixture(scope="module")
def shifted_csv(tmp_path_factory) -> Path:
    current = _frame(np.random.default_rng(12), 600)
    current["fee $_$"] = current["fee $_$"] + 1.0
    current.loc[current.index[:120], CATEGORY] = UNSEEN
    path = tmp_path_factory.mktemp("current") / "current $ data.csv"
    current.to_csv(path, index=False)
    return path


def test_a_drift_check_on_names_with_dollars_logs_a_report_that_shows_them_literally(
        settings, registry, dollar_model, shifted_csv):
    instance = dollar_model
    before = _monitoring_runs(registry, instance)
    result = _cli(settings, instance.full_name, "--current", str(shifted_csv), "--json")
    assert result.returncode == 1, result.stderr  # drift found: a result, not a failure
    assert "Traceback" not in result.stderr
    errors = _error_lines(result)
    assert len(errors) == 1 and "fee $_$" in errors[0], result.stderr
    summary = json.loads(result.stdout)
    assert "fee $_$" in summary["drifted"] and CATEGORY in summary["drifted"]
    category = next(f for f in summary["features"] if f["name"] == CATEGORY)
    assert category["new_categories"] == [UNSEEN]

    run = _new_run(registry, instance, before)
    assert run.info.run_id == summary["run_id"] and run.info.status == "FINISHED"
    assert FAILURE_TAG not in run.data.tags
    version = registry.client.get_model_version(instance.registered_model, str(instance.number))
    assert version.tags[DRIFT_RUN_TAG] == run.info.run_id and version.tags[DRIFT_STATUS_TAG] == "drift"

    mlflow.set_tracking_uri(settings.tracking_uri)
    page = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/drift_report.html")
    for name in FEATURES:
        assert f'<figure id="{html.escape(name)}">' in page, name
        assert f"<td>{html.escape(name)}</td>" in page, name
    assert html.escape(UNSEEN) in page and "<b>" not in page
    assert page.count("data:image/png;base64,") == len(FEATURES) + 1  # and the predictions


def test_a_report_folder_that_cannot_be_made_fails_the_run_in_one_line(
        settings, registry, dollar_model, shifted_csv, tmp_path):
    instance = dollar_model
    version_before = registry.client.get_model_version(instance.registered_model,
                                                       str(instance.number)).tags
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    before = _monitoring_runs(registry, instance)
    result = _cli(settings, instance.full_name, "--current", str(shifted_csv),
                  "--report-dir", str(blocker / "reports"))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = _error_lines(result)
    assert len(errors) == 1, result.stderr
    assert f"cannot write the drift report into {blocker / 'reports'}" in errors[0]

    run = _new_run(registry, instance, before)
    assert run.info.status == "FAILED"
    assert run.info.run_id in errors[0] and "marked FAILED" in errors[0]
    assert run.data.tags[FAILURE_TAG].startswith("cannot write the drift report into")
    assert not registry.client.list_artifacts(run.info.run_id)
    # The model version still points at the last check that worked.
    after = registry.client.get_model_version(instance.registered_model, str(instance.number)).tags
    assert after.get(DRIFT_RUN_TAG) == version_before.get(DRIFT_RUN_TAG)


def test_a_renderer_that_fails_ends_the_run_failed_with_the_reason(
        settings, registry, dollar_model, shifted_csv, tmp_path, monkeypatch):
    instance = dollar_model

    def broken(check, dpi=80):
        raise ValueError(f"cannot draw {check.name}")

    monkeypatch.setattr(report, "figure_png", broken)
    before = _monitoring_runs(registry, instance)
    with pytest.raises(MonitoringError, match="cannot render the drift report") as raised:
        check_model_drift(instance.full_name, settings, current=shifted_csv, registry=registry,
                          report_dir=tmp_path)
    assert raised.value.exit_code == 2
    run = _new_run(registry, instance, before)
    assert run.info.status == "FAILED"
    assert "ValueError" in run.data.tags[FAILURE_TAG]
    assert not (tmp_path / report.REPORT_FILE).exists()


def test_an_interrupted_report_ends_the_run_killed(settings, registry, dollar_model, shifted_csv,
                                                   tmp_path, monkeypatch):
    instance = dollar_model

    def interrupted(check, dpi=80):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "figure_png", interrupted)
    before = _monitoring_runs(registry, instance)
    with pytest.raises(KeyboardInterrupt):
        check_model_drift(instance.full_name, settings, current=shifted_csv, registry=registry,
                          report_dir=tmp_path)
    run = _new_run(registry, instance, before)
    assert run.info.status == "KILLED"
    assert run.data.tags[FAILURE_TAG] == "the drift check was interrupted"
