"""A regressor and a multiclass classifier through the whole cycle, as a notebook drives it.

Real parts: the session's mlflow server, an IPython shell running the magics a training
notebook runs (``%mlops_track``, ``%mlops_package``), ``predict_file``, a real ``workbench
serve`` process, the drift check and ``workbench models compare`` as a subprocess. The data
ship with scikit-learn (diabetes, wine): nothing is downloaded.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from _serving import Server
from sklearn.datasets import load_diabetes, load_wine
from sklearn.model_selection import train_test_split

from workbench import tasks
from workbench.config import Settings
from workbench.errors import PromotionRefused
from workbench.monitoring.profile import CATEGORICAL, NUMERIC
from workbench.monitoring.service import check_model_drift, load_profile
from workbench.predict import predict_file
from workbench.registry import Registry

pytestmark = pytest.mark.integration

TRAIN = """
import mlflow
import numpy as np
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

model = {model}.fit(X_train, y_train)
error = model.predict(X_test) - y_test
mlflow.log_metric("rmse", float(np.sqrt((error ** 2).mean())))
mlflow.log_metric("mae", float(np.abs(error).mean()))
"""


def _run(shell, cell: str) -> None:
    result = shell.run_cell(cell)
    assert result.success, result.error_in_exec or result.error_before_exec


def _project(settings: Settings, monkeypatch: pytest.MonkeyPatch, metric: str) -> Settings:
    """The project's primary metric set the way a project sets it: only the metric, its
    direction follows from its name. The magics read the environment on first use."""
    monkeypatch.setenv("WORKBENCH_PRIMARY_METRIC", metric)
    return Settings.from_env(environ={**settings.as_env(), "WORKBENCH_PRIMARY_METRIC": metric,
                                      "WORKBENCH_PORT": str(settings.port)},
                             cwd=settings.project_root)


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **settings.as_env(), "WORKBENCH_PORT": str(settings.port)}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_regressor_trains_registers_promotes_serves_and_is_checked_for_drift(
        shell, settings, unique_instance, tmp_path, monkeypatch):
    project = _project(settings, monkeypatch, "rmse")
    assert project.primary_metric == "rmse" and project.greater_is_better is False
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    shell.push({"X_train": X_train, "X_test": X_test, "y_train": y_train, "y_test": y_test})
    candidates = {"v1": "make_pipeline(StandardScaler(), Ridge(alpha=3000.0))",  # shrunk hard: worse
                  "v2": "DummyRegressor()",  # predicts the mean: the worst rmse
                  "v3": "make_pipeline(StandardScaler(), Ridge(alpha=300.0))"}
    for version, model in candidates.items():
        _run(shell, f"%mlops_track --instance {unique_instance} --version {version} "
                    "--data-date 20240131")
        _run(shell, TRAIN.format(model=model))
        _run(shell, "%mlops_package model --input X_train")
    _run(shell, "%mlops_track --end")

    registry = Registry(project)
    v1, v2, v3 = (registry.resolve(f"{unique_instance}_{v}_20240131") for v in candidates)
    assert v3.metrics["rmse"] < v1.metrics["rmse"] < v2.metrics["rmse"]
    # Registration: a signature, a numeric prediction profile, the task and the direction.
    assert v3.tags[tasks.TASK_TAG] == tasks.REGRESSION
    assert (v3.tags[tasks.PRIMARY_METRIC_TAG], v3.tags[tasks.GREATER_IS_BETTER_TAG]) == (
        "rmse", "false")
    profile = load_profile(v3, registry)
    assert profile.prediction is not None and profile.prediction.kind == NUMERIC
    assert [f.name for f in profile.features] == list(X.columns)

    # The metric gate with rmse, lower is better: the worse candidate is refused.
    registry.promote(v1, "champion")
    with pytest.raises(PromotionRefused) as refused:
        registry.promote(v2, "champion")
    assert refused.value.gates == ("metric",) and "lower is better" in refused.value.summary
    assert registry.promote(v3, "champion").current.number == v3.number

    # Ranked lowest rmse first, also by a CLI whose project has the default metric (roc_auc):
    # the versions' recorded direction says which way rmse points.
    listed = _cli(settings, "models", "list", unique_instance)
    assert listed.returncode == 0 and listed.stdout.split()[5] == "rmse", listed.stderr
    compared = _cli(settings, "models", "compare", unique_instance)
    assert compared.returncode == 0, compared.stderr
    lines = compared.stdout.splitlines()
    assert "rmse (lower is better)" in lines[0]
    assert [line.split()[1] for line in lines[1:]] == [v.full_name for v in (v3, v1, v2)]

    # Batch predictions: numbers, no probability column.
    test_file, scored_file = tmp_path / "test.csv", tmp_path / "scored.csv"
    X_test.to_csv(test_file, index=False)
    batch = predict_file(f"{unique_instance}@champion", test_file, scored_file, settings=project)
    scored = pd.read_csv(scored_file)
    assert batch.rows == len(X_test) and "probability" not in scored.columns
    expected = shell.user_ns["model"].predict(X_test)
    np.testing.assert_allclose(scored["prediction"], expected, rtol=1e-6)

    # Serving: predictions only, the same numbers.
    server = Server(settings, f"{unique_instance}@champion", tmp_path)
    try:
        status, body, _ = server.post({"dataframe_split": json.loads(
            X_test.head(2).to_json(orient="split", index=False))})
    finally:
        server.stop()
    assert status == 200 and list(body) == ["predictions"]
    np.testing.assert_allclose(body["predictions"], expected[:2], rtol=1e-6)

    # Drift of the numeric predictions: KS and PSI, not categories.
    shifted = X_test.assign(bmi=X_test.bmi + 0.06, s5=X_test.s5 + 0.05)
    check = check_model_drift(f"{unique_instance}@champion", project, current=shifted,
                              report_dir=tmp_path / "drift", log=False)
    prediction = check.result.prediction
    assert prediction is not None and prediction.kind == NUMERIC
    assert prediction.ks_statistic is not None and prediction.psi is not None
    assert prediction.chi2_statistic is None and prediction.status == "drift"
    assert check.verdict == "drift"


def test_a_multiclass_classifier_scores_its_predicted_class_probability(
        shell, settings, unique_instance, tmp_path, monkeypatch):
    project = _project(settings, monkeypatch, "f1_macro")
    assert project.greater_is_better is True
    data = load_wine(as_frame=True)
    X = data.data
    y = data.target.map(dict(enumerate(data.target_names))).astype(str)  # class_0, ...
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0,
                                                        stratify=y)
    shell.push({"X_train": X_train, "X_test": X_test, "y_train": y_train, "y_test": y_test})
    _run(shell, f"%mlops_track --instance {unique_instance} --version v1 --data-date 20240131")
    _run(shell, """
import mlflow
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05)).fit(X_train, y_train)
mlflow.log_metric("f1_macro", f1_score(y_test, model.predict(X_test), average="macro"))
mlflow.log_metric("accuracy", accuracy_score(y_test, model.predict(X_test)))
""")
    _run(shell, "%mlops_package model --input X_train")
    _run(shell, "%mlops_track --end")
    model = shell.user_ns["model"]
    registry = Registry(project)
    v1 = registry.resolve(f"{unique_instance}_v1_20240131")
    assert v1.tags[tasks.TASK_TAG] == tasks.CLASSIFICATION
    profile = load_profile(v1, registry)
    assert profile.prediction is not None and profile.prediction.kind == CATEGORICAL
    registry.promote(v1, "champion")

    # probability: the predicted class's, not the last class's.
    test_file, scored_file = tmp_path / "wine.csv", tmp_path / "scored.parquet"
    X_test.to_csv(test_file, index=False)
    predict_file(f"{unique_instance}@champion", test_file, scored_file, settings=project)
    scored = pd.read_parquet(scored_file)
    proba = model.predict_proba(X_test)
    column = [list(model.classes_).index(p) for p in scored["prediction"]]
    np.testing.assert_allclose(scored["probability"], proba[np.arange(len(X_test)), column])
    assert not np.allclose(scored["probability"], proba[:, -1])
    assert set(scored["prediction"]) == set(data.target_names)

    server = Server(settings, f"{unique_instance}@champion", tmp_path)
    try:
        status, body, _ = server.post({"dataframe_split": json.loads(
            X_test.head(3).to_json(orient="split", index=False))})
    finally:
        server.stop()
    assert status == 200 and body == {"predictions": scored["prediction"].head(3).tolist()}

    shifted = X_test.assign(alcohol=X_test.alcohol + 2.0, proline=X_test.proline * 1.8)
    check = check_model_drift(f"{unique_instance}@champion", project, current=shifted,
                              report_dir=tmp_path / "drift", log=False)
    assert check.verdict == "drift"
    assert check.result.prediction is not None and check.result.prediction.kind == CATEGORICAL
