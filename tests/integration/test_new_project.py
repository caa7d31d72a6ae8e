"""`workbench new` on real data, then the project's whole cycle.

For a wine classifier (three classes) and a diabetes regressor (both frames ship with
scikit-learn; nothing is downloaded): render the project from a CSV with `workbench new`, run
its train notebook as a job (`workbench run`, a real kernel) against the session's real
tracking server, run the project's own tests in a subprocess (its unit tests, and nbval over
its four notebooks against the throwaway platform its pytest plugin starts), promote the
instance (the metric gate, in the project's direction), serve one request with a real
`workbench serve` process, and check drift on a shifted copy of the data (exit status 1).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from _serving import Server

from workbench.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DATA_DATE = "20240131"


def _clean_env(tmp_path: Path) -> dict[str, str]:
    """This process's environment without the workbench's and MLflow's settings (the test
    session's platform exports them), and a template repository of the test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "MLFLOW_"))}
    env["WORKBENCH_TEMPLATE_REPOSITORY"] = str(tmp_path / "template-repo")
    return env


def _workbench(cwd: Path, env: dict[str, str], *args: str,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _cycle(settings: Settings, tmp_path: Path, frame: pd.DataFrame, instance: str,
           shift: dict[str, float]) -> dict[str, float]:
    """Run the cycle; return how long each step took (printed with -s)."""
    times: dict[str, float] = {}
    data = tmp_path / f"{instance}.csv"
    frame.to_csv(data, index=False)
    env = _clean_env(tmp_path)
    start = time.monotonic()
    made = _workbench(tmp_path, env, "new", "project", "--instance", instance, "--data",
                      str(data), "--target", "target", "--data-date", DATA_DATE)
    times["new"] = time.monotonic() - start
    assert made.returncode == 0, made.stderr
    project = tmp_path / "project"
    assert made.stdout.strip() == str(project)

    # The project's commands talk to the session's tracking server; its state is its own.
    on_server = {**env, "MLFLOW_TRACKING_URI": settings.tracking_uri,
                 "WORKBENCH_PORT": str(settings.port)}
    start = time.monotonic()
    trained = _workbench(project, on_server, "run", "notebooks/train.ipynb", timeout=600)
    times["train job"] = time.monotonic() - start
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert json.loads(trained.stdout)["status"] == "FINISHED"
    name = f"{instance}_v1_{DATA_DATE}"
    shown = _workbench(project, on_server, "models", "show", name)
    assert shown.returncode == 0 and name in shown.stdout, shown.stderr

    # The project's own tests: unit tests of src/ and nbval over its notebooks, on a
    # throwaway platform its pytest plugin starts (not the session's).
    start = time.monotonic()
    tested = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider"],
                            cwd=project, env=env, capture_output=True, text=True, timeout=900)
    times["project pytest"] = time.monotonic() - start
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-2000:]
    for notebook in ("explore", "train", "batch_predict", "monitor"):  # nbval's ids: explore::ipynb
        assert re.search(rf"notebooks/{notebook}\S*::Cell \d+ PASSED", tested.stdout), notebook
    assert "tests/test_training.py::" in tested.stdout

    start = time.monotonic()
    promoted = _workbench(project, on_server, "models", "promote", name, "--reason", "first")
    assert promoted.returncode == 0, promoted.stderr

    row = frame.drop(columns="target").head(1)
    server = Server(settings, f"{instance}@champion", tmp_path)
    try:
        status, body, _ = server.post({"dataframe_split": json.loads(
            row.to_json(orient="split", index=False))})
    finally:
        server.stop()
    times["promote + serve"] = time.monotonic() - start
    assert status == 200 and len(body["predictions"]) == 1, body

    start = time.monotonic()
    shifted = frame.drop(columns="target").assign(
        **{column: frame[column] + by for column, by in shift.items()})
    shifted.to_csv(tmp_path / "shifted.csv", index=False)
    drift = _workbench(project, on_server, "monitor", "drift", f"{instance}@champion",
                       "--current", str(tmp_path / "shifted.csv"), "--json")
    times["drift"] = time.monotonic() - start
    assert drift.returncode == 1, drift.stderr
    summary = json.loads(drift.stdout)
    assert summary["verdict"] == "drift" and set(shift) <= set(summary["drifted"])
    print(f"{instance}: " + ", ".join(f"{step} {seconds:.0f} s" for step, seconds in times.items()))
    return {**times, "body": body["predictions"][0]}


@pytest.mark.timeout(1200)
def test_a_wine_classifier_project_from_new_to_drift(settings, tmp_path):
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    result = _cycle(settings, tmp_path, frame, "wine-new",
                    {"alcohol": 2.0, "proline": 600.0})
    assert result["body"] in (0, 1, 2)


@pytest.mark.timeout(1200)
def test_a_diabetes_regressor_project_from_new_to_drift(settings, tmp_path):
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    result = _cycle(settings, tmp_path, frame, "diabetes-new", {"bmi": 0.06, "s5": 0.05})
    assert isinstance(result["body"], float)
    # The project's direction: rmse, lower is better (its setup.cfg's [workbench] section).
    cfg = (tmp_path / "project" / "setup.cfg").read_text()
    assert "primary_metric = rmse" in cfg and "greater_is_better = false" in cfg
