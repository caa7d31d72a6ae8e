"""Jobs: real notebooks executed by papermill in real kernels, tracked on a real server."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import nbformat
import pytest
from _notebooks import job_notebook

from workbench import lineage
from workbench.errors import ConfigError, JobFailed, JobKilled, ModelNotFound, ParameterError
from workbench.jobs import JobSpec, run_job

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
TRAIN = REPO / "notebooks" / "train.ipynb"


def _runs(settings, experiment: str):
    client = mlflow.MlflowClient(settings.tracking_uri)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id])


def test_train_notebook_as_a_job_registers_an_instance_with_lineage(settings, demo_data, registry, unique_instance):
    data = demo_data / "churn_20240229.csv"
    result = run_job(JobSpec(TRAIN, {
        "instance": unique_instance, "version": "v2", "data_date": "20240229",
        "data_path": str(data), "algorithm": "gradient_boosting",
    }), settings)

    assert result.status == "FINISHED"
    assert result.output_notebook.is_file() and result.output_notebook.is_relative_to(settings.home)
    client = registry.client
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == unique_instance
    tags = run.data.tags
    assert tags[lineage.NOTEBOOK_PATH] == str(TRAIN)
    assert tags[lineage.NOTEBOOK_SHA256] == lineage.file_sha256(TRAIN)
    assert tags[lineage.EXECUTOR] == "local"
    assert tags[lineage.DATA_ROWS] == "1500" and tags[lineage.DATA_PATH] == str(data)
    assert lineage.GIT_DIRTY in tags and tags[lineage.WORKBENCH_VERSION]
    assert run.data.params["algorithm"] == "gradient_boosting"
    assert run.data.params["data_date"] == "20240229"  # a string: not turned into an int
    assert {"roc_auc", "accuracy"} <= set(run.data.metrics)
    logged = [a.path for a in client.list_artifacts(result.run_id, "job")]
    # The notebook, and the kernel's own log when its process wrote anything.
    assert f"job/{result.output_notebook.name}" in logged
    assert set(logged) <= {f"job/{result.output_notebook.name}",
                           f"job/{result.output_notebook.with_suffix('.log').name}"}

    instance = registry.resolve(f"{unique_instance}_v2_20240229")
    assert instance.run_id == result.run_id
    assert instance.tags[lineage.DATA_SHA256] == lineage.file_sha256(data)
    assert instance.tags[lineage.NOTEBOOK_SHA256] == lineage.file_sha256(TRAIN)


def test_a_failing_cell_fails_the_run_keeps_the_notebook_and_registers_nothing(settings, tmp_path, registry, unique_instance):
    notebook = job_notebook(
        tmp_path / "fails.ipynb", f'instance = "{unique_instance}"',
        "%load_ext workbench\n"
        "import pandas as pd\nfrom sklearn.dummy import DummyClassifier\n"
        "X = pd.DataFrame({'a': [1.0, 2.0, 3.0, 4.0]}); model = DummyClassifier().fit(X, [0, 1, 0, 1])",
        "%mlops_track --instance {instance} --version v1 --data-date 20240131",
        "%mlops_package model --input X",
        "raise RuntimeError('the data looks wrong')",
    )
    with pytest.raises(JobFailed) as raised:
        run_job(JobSpec(notebook, {}), settings)
    failure = raised.value
    assert "RuntimeError: the data looks wrong" in str(failure)
    assert "\n" not in str(failure)
    assert f"removed the model version(s) it registered: {unique_instance}_v1_20240131" in str(failure)
    assert mlflow.MlflowClient(settings.tracking_uri).get_run(failure.run_id).info.status == "FAILED"
    executed = nbformat.read(failure.output_notebook, as_version=4)
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors and errors[0].evalue == "the data looks wrong"
    with pytest.raises(ModelNotFound):
        registry.resolve(f"{unique_instance}_v1_20240131")


def test_the_cli_exits_non_zero_with_one_line_for_a_failing_job(settings, tmp_path):
    notebook = job_notebook(tmp_path / "boom.ipynb", "n = 1", "assert n == 2, 'n must be 2'")
    env = {**os.environ, **settings.as_env()}
    failed = subprocess.run([sys.executable, "-m", "workbench.cli", "run", str(notebook), "-p", "n", "3"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert failed.returncode == 1
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "AssertionError: n must be 2" in errors[0]

    ok = subprocess.run([sys.executable, "-m", "workbench.cli", "run", str(notebook), "-p", "n", "2"],
                        capture_output=True, text=True, env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["status"] == "FINISHED"


def test_a_timeout_kills_the_job_and_marks_the_run_killed(settings, tmp_path):
    notebook = job_notebook(tmp_path / "slow.ipynb", "seconds = 60", "import time\ntime.sleep(seconds)")
    with pytest.raises(JobKilled, match="timed out after 4 s") as raised:
        run_job(JobSpec(notebook, {}, timeout=4), settings)
    assert mlflow.MlflowClient(settings.tracking_uri).get_run(raised.value.run_id).info.status == "KILLED"
    assert raised.value.output_notebook.is_file()


@pytest.mark.parametrize("parameters, message", [
    ({"no_such": 1}, "has no parameter 'no_such'"),
    ({"seed": "forty-two"}, "parameter 'seed' expects int"),
    ({"data_date": 20240131}, "parameter 'data_date' expects str"),
])
def test_bad_parameters_are_refused_before_anything_starts(settings, unique_instance, parameters, message):
    with pytest.raises(ParameterError, match=message):
        run_job(JobSpec(TRAIN, parameters, experiment=unique_instance), settings)
    assert _runs(settings, unique_instance) == []


def test_an_unknown_executor_is_refused_before_anything_starts(settings, unique_instance):
    with pytest.raises(ConfigError, match="unknown executor 'k8s'; available: docker, local"):
        run_job(JobSpec(TRAIN, {}, executor="k8s", experiment=unique_instance), settings)
    assert _runs(settings, unique_instance) == []


def test_a_dead_tracking_server_is_one_line_at_once(tmp_path):
    notebook = job_notebook(tmp_path / "tiny.ipynb", "n = 1", "n + 1")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "MLFLOW_"))}
    env.update(WORKBENCH_PROJECT_ROOT=str(tmp_path), MLFLOW_TRACKING_URI="http://127.0.0.1:9")
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "run", str(notebook)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    # One line naming the server (its hint on how to start one is the tracking module's).
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("error: no tracking server answers at http://127.0.0.1:9;")
    assert not (tmp_path / ".workbench" / "jobs").exists()


def test_ctrl_c_marks_the_run_killed_and_keeps_thejob_notebook(settings, tmp_path):
    import signal
    import time

    notebook = job_notebook(tmp_path / "sleepy.ipynb", "seconds = 120",
                         "print('started', flush=True)", "import time\ntime.sleep(seconds)")
    env = {**os.environ, **settings.as_env()}
    job = subprocess.Popen([sys.executable, "-m", "workbench.cli", "run", str(notebook)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        client = mlflow.MlflowClient(settings.tracking_uri)
        deadline = time.monotonic() + 60
        runs = []
        while time.monotonic() < deadline and not runs:
            time.sleep(0.5)
            runs = _runs(settings, settings.experiment)
            runs = [r for r in runs if r.info.run_name.startswith("sleepy-")]
        assert runs, "the job never created its run"
        time.sleep(4)  # let the kernel reach the sleeping cell
        job.send_signal(signal.SIGINT)
        _, stderr = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 124, stderr[-2000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "was killed: interrupted" in errors[0]
    # The stopped kernel's last words are in its log beside the notebook, not on the terminal.
    assert "Traceback" not in stderr
    run = client.get_run(runs[0].info.run_id)
    assert run.info.status == "KILLED"
    assert Path(run.data.tags[lineage.OUTPUT_NOTEBOOK]).is_file()
