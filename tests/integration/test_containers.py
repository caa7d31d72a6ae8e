"""Containers on a real Docker engine: the workbench image, container jobs against the real
tracking server, model images serving over HTTP, JupyterLab in a container.

Outside CI a machine without an engine skips these tests; with CI=true they fail instead,
so CI never passes without having built and run the images (.ci/run starts an engine with
../shared/ci/docker-sandbox up and sets WORKBENCH_BASE_IMAGE to the image it builds).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import nbformat
import pandas as pd
import pytest
from _notebooks import job_notebook

from workbench import _docker, lineage
from workbench.config import Settings
from workbench.demo.data import write_demo_data
from workbench.errors import JobFailed, JobKilled
from workbench.jobs import JobSpec, run_job
from workbench.naming import ModelName
from workbench.packaging import images
from workbench.packaging.model_image import package_model
from workbench.platforms.embedded import free_port
from workbench.predict import predict_file

pytestmark = [pytest.mark.integration, pytest.mark.docker]
REPO = Path(__file__).resolve().parents[2]
TRAIN = REPO / "notebooks" / "train.ipynb"
RUN_LABEL = "org.mlops-workbench.job.run_id"


@pytest.fixture(scope="session")
def project(settings: Settings) -> Iterator[Path]:
    """A project the container's user (uid 1000) can read, as a data scientist's would be;
    pytest's own temporary folders are private to root."""
    root = Path(tempfile.mkdtemp(prefix="workbench-container-project-"))
    root.chmod(0o755)
    (root / "setup.cfg").write_text("[workbench]\nexperiment = containers\n")
    write_demo_data(root / "data", months=("20240131",), rows=800)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_settings(settings: Settings, project: Path) -> Settings:
    return settings.replace(project_root=project, data_dir=project / "data",
                            base_image=os.environ.get("WORKBENCH_BASE_IMAGE", settings.base_image))


@pytest.fixture(scope="session")
def workbench_image(docker_client: Any, docker_settings: Settings) -> Any:
    # Built from this checkout every session: the dependency layers come from the engine's
    # cache after the first time, the workbench wheel is always the current code.
    built = images.build("workbench", docker_settings, client=docker_client)
    return docker_client.images.get(built.id)


@pytest.fixture(scope="session")
def serving_runtime(docker_client: Any, docker_settings: Settings) -> Any:
    built = images.build("serving", docker_settings, client=docker_client)
    return docker_client.images.get(built.id)


def _job_containers(client: Any, run_id: str) -> list[Any]:
    return client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})


def test_the_workbench_image_is_lab_and_job_runner_as_a_non_root_user(docker_client, workbench_image):
    assert workbench_image.attrs["Config"]["User"] == "workbench"
    assert workbench_image.labels[f"{images.LABEL_PREFIX}.image"] == "workbench"
    script = (
        "import json, subprocess, workbench, jupyterlab, ipywidgets, papermill, jupyterlab_widgets\n"
        "specs = json.loads(subprocess.run(['jupyter', 'kernelspec', 'list', '--json'],"
        " capture_output=True, text=True, check=True).stdout)\n"
        "print(json.dumps({'argv': specs['kernelspecs']['python3']['spec']['argv'],"
        " 'version': workbench.__version__}))\n"
    )
    out = json.loads(_docker.run_output(docker_client, workbench_image.id, ["python", "-c", script]))
    assert "--ext=workbench.preload" in out["argv"]  # the magics load in every kernel
    uid = _docker.run_output(docker_client, workbench_image.id, ["id", "-u"]).strip()
    assert uid == "1000"


def test_the_train_notebook_runs_as_a_container_job(docker_client, workbench_image, docker_settings,
                                                    project, registry, unique_instance):
    data = project / "data" / "churn_20240131.csv"
    lines: list[str] = []
    result = run_job(JobSpec(TRAIN, {"instance": unique_instance, "version": "v1",
                                     "data_date": "20240131", "data_path": str(data)},
                             executor="docker"), docker_settings, progress=lines.append,
                     show_progress=True)

    assert result.status == "FINISHED"
    # Streamed while it ran: papermill's bar, and the cells' own output.
    assert any("Executing:" in line and "cell/s" in line for line in lines)
    assert any("training rows" in line for line in lines)
    executed = nbformat.read(result.output_notebook, as_version=4)
    assert any(cell.get("outputs") for cell in executed.cells)
    run = registry.client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags[lineage.EXECUTOR] == "docker"
    assert tags["workbench.job.image"] == images.image_kind("workbench").tag
    assert tags["workbench.job.image_id"] == workbench_image.id
    assert tags["workbench.job.image_digest"]
    assert sorted(a.path for a in registry.client.list_artifacts(result.run_id, "job")) == sorted(
        [f"job/{result.output_notebook.name}", f"job/{result.output_notebook.with_suffix('.log').name}"])
    assert "training rows" in result.output_notebook.with_suffix(".log").read_text()

    instance = registry.resolve(f"{unique_instance}_v1_20240131")
    assert instance.run_id == result.run_id
    assert instance.tags[lineage.EXECUTOR] == "docker"
    assert instance.tags[lineage.DATA_PATH] == str(data)
    assert instance.tags[lineage.DATA_SHA256] == lineage.file_sha256(data)
    assert instance.tags[lineage.NOTEBOOK_PATH] == str(TRAIN)
    assert _job_containers(docker_client, result.run_id) == []  # removed afterwards


def test_a_failing_cell_in_a_container_fails_the_run_and_keeps_notebook_and_log(
        docker_client, workbench_image, docker_settings, project):
    notebook = job_notebook(project / "fails_in_container.ipynb", "month = 13",
                         "print('checking the month')",
                         "if month > 12:\n    raise ValueError(f'bad month {month}')")
    with pytest.raises(JobFailed) as raised:
        run_job(JobSpec(notebook, {}, executor="docker", experiment="container-failures"),
                docker_settings)
    failure = raised.value
    assert "cell [3] raised ValueError: bad month 13" in str(failure)
    assert "\n" not in str(failure)
    assert mlflow.MlflowClient(docker_settings.tracking_uri).get_run(failure.run_id).info.status == "FAILED"
    executed = nbformat.read(failure.output_notebook, as_version=4)
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors[0].evalue == "bad month 13"
    assert "checking the month" in failure.output_notebook.with_suffix(".log").read_text()
    assert _job_containers(docker_client, failure.run_id) == []


def test_a_container_job_past_its_timeout_is_killed(docker_client, workbench_image, docker_settings, project):
    notebook = job_notebook(project / "slow_in_container.ipynb", "seconds = 300",
                         "import time\ntime.sleep(seconds)")
    started = time.monotonic()
    with pytest.raises(JobKilled, match="timed out after 20 s") as raised:
        run_job(JobSpec(notebook, {}, executor="docker", timeout=20, experiment="container-timeouts"),
                docker_settings)
    assert time.monotonic() - started < 120
    assert mlflow.MlflowClient(docker_settings.tracking_uri).get_run(
        raised.value.run_id).info.status == "KILLED"
    # Interrupted, not killed outright: papermill saved the notebook up to the sleeping cell.
    executed = nbformat.read(raised.value.output_notebook, as_version=4)
    assert [o.ename for c in executed.cells for o in c.get("outputs", [])
            if o.output_type == "error"] == ["KeyboardInterrupt"]
    assert _job_containers(docker_client, raised.value.run_id) == []


def test_a_missing_image_is_refused_before_a_run_exists(docker_client, docker_settings, project):
    notebook = job_notebook(project / "tiny_in_container.ipynb", "n = 1", "n + 1")
    env = {**os.environ, **docker_settings.as_env()}
    done = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "run", str(notebook), "--executor", "docker",
         "--image", "no-such/image:1", "--experiment", "container-missing-image"],
        capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "error: image no-such/image:1 is not on the Docker engine; build or load it first")
    client = mlflow.MlflowClient(docker_settings.tracking_uri)
    assert client.get_experiment_by_name("container-missing-image") is None


def _wait_healthy(container: Any, port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        health = container.attrs["State"].get("Health", {}).get("Status")
        if container.status == "exited":
            pytest.fail("the model container exited:\n" + container.logs().decode()[-2000:])
        if health == "healthy":
            return
        time.sleep(1)
    pytest.fail(f"the model container did not become healthy (last: {health}):\n"
                + container.logs().decode()[-2000:])


def _post(url: str, payload: dict, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json",
               **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_a_packaged_model_serves_the_same_predictions_as_workbench_predict(
        docker_client, serving_runtime, docker_settings, register, unique_instance, tmp_path):
    name = ModelName(unique_instance, "v3", "20240131")
    instance = register(name, auc=0.8)
    lines: list[str] = []
    packaged = package_model(str(name), docker_settings, client=docker_client, progress=lines.append)

    assert packaged.tag == f"workbench-model/{unique_instance}:v3_20240131"
    # A thin layer: the model files and nothing else of any size.
    assert packaged.added_bytes <= packaged.model_bytes + 1_000_000
    assert packaged.environment == ()
    assert any(line.startswith("Step ") for line in lines)  # the build streamed
    image = docker_client.images.get(packaged.tag)
    labels = image.labels
    assert labels["org.mlops-workbench.model.full_name"] == str(name)
    assert labels["org.mlops-workbench.model.run_id"] == instance.run_id
    assert labels["org.mlops-workbench.model.mlflow_version"] == str(instance.number)
    assert labels["org.mlops-workbench.mlflow"] == mlflow.__version__
    assert labels.get("org.mlops-workbench.model.git_commit") == instance.tags.get(lineage.GIT_COMMIT)
    assert image.attrs["Config"]["User"] == "workbench"
    assert "/health" in " ".join(image.attrs["Config"]["Healthcheck"]["Test"])

    frame = pd.DataFrame({"a": [-1.5, -0.2, 0.3, 2.0, 0.01], "b": [0.1, 0.5, -0.7, 1.2, 0.0]})
    frame.to_csv(tmp_path / "input.csv", index=False)
    predict_file(str(name), tmp_path / "input.csv", tmp_path / "scored.csv", docker_settings)
    expected = pd.read_csv(tmp_path / "scored.csv")["prediction"].tolist()

    port = free_port()
    token = "image-token-7d1"  # the image takes it from its environment
    container = docker_client.containers.run(packaged.tag, detach=True,
                                             environment={"WORKBENCH_SERVE_TOKEN": token},
                                             ports={"8080/tcp": ("127.0.0.1", port)})
    try:
        _wait_healthy(container, port)  # the health check needs no token
        base = f"http://127.0.0.1:{port}"
        body = {"dataframe_split": frame.to_dict(orient="split")}
        with pytest.raises(urllib.error.HTTPError) as refused:
            _post(f"{base}/invocations", body)
        assert refused.value.code == 401
        served = _post(f"{base}/invocations", body, token)
        assert served["predictions"] == expected
        request = urllib.request.Request(f"{base}/metadata",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            metadata = json.loads(response.read())
        assert (metadata["full_name"], metadata["run_id"]) == (str(name), instance.run_id)
        with pytest.raises(urllib.error.HTTPError) as bad:
            _post(f"{base}/invocations", {"dataframe_split": {"columns": ["a"], "data": [[1.0]]}},
                  token)
        assert bad.value.code == 400
        container.reload()
        assert container.status == "running"  # a bad request does not stop the server
    finally:
        _docker.remove(container)


def test_workbench_lab_in_a_container_answers_on_loopback_with_a_token(
        docker_client, workbench_image, docker_settings):
    from workbench.lab import start_lab_container

    port = free_port()
    lab = start_lab_container(docker_settings, port=port)
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/api/status?token={lab.token}", timeout=5) as response:
                    status = response.status
                    break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(1)
        assert status == 200, lab.container.logs().decode()[-2000:]
        assert lab.url == f"http://127.0.0.1:{port}/lab?token={lab.token}"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=5)
        assert refused.value.code == 403
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/kernelspecs?token={lab.token}",
                                    timeout=10) as response:
            specs = json.loads(response.read())
        assert "--ext=workbench.preload" in specs["kernelspecs"]["python3"]["spec"]["argv"]
        # The Workbench is in the image: its server routes, its Lab extension, news off.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/workbench/api/status?token={lab.token}",
                                    timeout=30) as response:
            assert json.loads(response.read())["tracking_uri"]
        for plugin, key, value in (("@mlops-workbench/lab:plugin", "pollInterval", 2000),
                                   ("@jupyterlab/apputils-extension:notification", "fetchNews",
                                    "false")):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab/api/settings/{plugin}"
                                        f"?token={lab.token}", timeout=10) as response:
                schema = json.loads(response.read())["schema"]["properties"]
            assert schema[key]["default"] == value, plugin
    finally:
        lab.stop()
    assert docker_client.containers.list(all=True, filters={"id": lab.container.id}) == []


def test_a_model_needing_a_package_the_runtime_lacks_gets_an_environment_layer(
        docker_client, serving_runtime, docker_settings, unique_instance):
    from sklearn.linear_model import LogisticRegression

    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    mlflow.set_tracking_uri(docker_settings.tracking_uri)
    with mlflow.start_run(experiment_id=mlflow.create_experiment(unique_instance)):
        # A plain MLflow model (outside the naming convention) asking for a package the
        # serving runtime does not have.
        mlflow.sklearn.log_model(
            LogisticRegression().fit(X, [0, 0, 1, 1]), name="model", input_example=X,
            registered_model_name=unique_instance,
            pip_requirements=[f"scikit-learn=={_version('scikit-learn')}", "tabulate==0.9.0"])
    lines: list[str] = []
    packaged = package_model(f"models:/{unique_instance}/1", docker_settings, client=docker_client,
                             progress=lines.append)

    assert packaged.tag == f"workbench-model/{unique_instance}:1"
    assert packaged.environment == ("tabulate==0.9.0",)
    assert any("adding an environment layer" in line for line in lines)
    version = _docker.run_output(docker_client, packaged.tag, [
        "python", "-c", "import tabulate, sklearn; print(tabulate.__version__, sklearn.__version__)"])
    assert version.split() == ["0.9.0", _version("scikit-learn")]
    assert docker_client.images.get(packaged.tag).attrs["Config"]["User"] == "workbench"


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def test_mlops_package_with_image_builds_the_serving_image(
        shell, docker_client, serving_runtime, unique_instance, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_BASE_IMAGE", os.environ.get("WORKBENCH_BASE_IMAGE", "python:3.11-slim"))
    shell.run_cell("import pandas as pd\nfrom sklearn.linear_model import LogisticRegression\n"
                   "X = pd.DataFrame({'a': [0.0, 1.0, 2.0, 3.0]})\n"
                   "model = LogisticRegression().fit(X, [0, 0, 1, 1])", store_history=False)
    shell.run_line_magic("mlops_track", f"--instance {unique_instance} --version v1 "
                                        "--data-date 20240131 --no-autolog")
    instance = shell.run_line_magic("mlops_package", "model --input X --image")
    shell.run_line_magic("mlops_track", "--end")

    tag = f"workbench-model/{unique_instance}:v1_20240131"
    image = docker_client.images.get(tag)
    assert image.labels["org.mlops-workbench.model.run_id"] == instance.run_id
    out = capsys.readouterr().out
    assert f"mlops_package: packaged {unique_instance}_v1_20240131 as {tag}" in out
