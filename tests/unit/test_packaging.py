"""Packaging logic that needs no Docker engine: Dockerfile rendering, requirement checks,
image tags, wheelhouse pins, the docker executor's mounts and failure reports."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from workbench import _docker
from workbench.errors import ConfigError, DockerError
from workbench.jobs.docker_executor import ContainerCellError, _check_readable, _failure, _mounts
from workbench.jobs.executors import executors
from workbench.jobs.spec import PreparedJob
from workbench.packaging import images, wheelhouse
from workbench.packaging.dockerfile import ModelImageSpec, render_model_dockerfile
from workbench.packaging.model_image import image_tag, unmet_requirements
from workbench.registry import Instance

RUNTIME = "mlops-workbench/serving:0.1.0"


def _instance(full_name: str | None = "churn_v2_20240131", model: str = "churn") -> Instance:
    return Instance(registered_model=model, number=7, full_name=full_name,
                    model_version="v2" if full_name else None,
                    data_date="20240131" if full_name else None, run_id="abc", source="x")


def test_model_dockerfile_is_a_thin_layer_on_the_runtime() -> None:
    text = render_model_dockerfile(ModelImageSpec(
        runtime_image=RUNTIME, labels={"org.mlops-workbench.model.full_name": "churn_v2_20240131"},
        metadata={"full_name": "churn_v2_20240131"}))
    lines = text.splitlines()
    assert [line for line in lines if line.startswith("FROM ")] == [f"FROM {RUNTIME}"]
    # One layer with content: the model files; the rest is metadata.
    assert [line.split()[0] for line in lines if line.split() and line.split()[0] in
            {"COPY", "RUN", "ADD"}] == ["COPY"]
    assert "COPY model/ /opt/model/" in lines
    assert "EXPOSE 8080" in lines
    assert "USER root" not in text
    assert any(line.startswith("HEALTHCHECK ") for line in lines)
    assert "/health" in text
    cmd = json.loads(next(line for line in lines if line.startswith("CMD "))[4:])
    assert cmd == ["workbench", "serve", "/opt/model", "--host", "0.0.0.0", "--port", "8080"]


def test_model_dockerfile_quotes_labels_and_metadata() -> None:
    text = render_model_dockerfile(ModelImageSpec(
        runtime_image=RUNTIME, labels={"b.label": 'say "hi" for $HOME\nnow', "a.label": "x"},
        metadata={"source": "models:/churn/7", "run_id": None}))
    assert 'a.label="x"' in text
    assert 'b.label="say \\"hi\\" for \\$HOME now"' in text
    assert text.index("a.label") < text.index("b.label")  # sorted: stable output
    env = next(line for line in text.splitlines() if line.startswith("ENV WORKBENCH_SERVE_METADATA="))
    quoted = env.split("=", 1)[1]
    assert json.loads(json.loads(quoted)) == {"run_id": None, "source": "models:/churn/7"}


def test_environment_stage_installs_from_wheels_and_copies_the_environment_back() -> None:
    text = render_model_dockerfile(ModelImageSpec(runtime_image=RUNTIME, environment=True))
    lines = text.splitlines()
    assert lines.count(f"FROM {RUNTIME} AS environment") == 1
    assert "--no-index" in text and "COPY env/ /tmp/env/" in lines
    final = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM "))]
    assert final == f"FROM {RUNTIME}"
    assert "COPY --from=environment /opt/workbench /opt/workbench" in lines
    # The final stage runs as the runtime's non-root user: USER root is only in the stage.
    assert lines.index("USER root") < lines.index(final)


@pytest.mark.parametrize(("requirements", "unmet"), [
    (["mlflow-skinny==3.17.2", "scikit-learn==1.9.1", "cloudpickle==3.1.3"], []),
    (["mlflow==3.17.2"], []),  # plain MLflow models ask for mlflow; serving needs the skinny half
    (["scikit-learn==1.5.0"], ["scikit-learn==1.5.0"]),
    (["xgboost>=2"], ["xgboost>=2"]),
    (["# a comment", "", "-r other.txt", "pandas>=2  # inline"], []),
    (["pywin32==306; sys_platform == 'win32'"], []),
    (["not a requirement!!"], ["not a requirement!!"]),
])
def test_unmet_requirements(requirements: list[str], unmet: list[str]) -> None:
    installed = {"mlflow-skinny": "3.17.2", "scikit-learn": "1.9.1", "cloudpickle": "3.1.3",
                 "pandas": "3.1.1"}
    assert unmet_requirements(requirements, installed) == unmet


def test_image_tag_follows_the_naming_convention() -> None:
    assert image_tag(_instance()) == "workbench-model/churn:v2_20240131"
    assert image_tag(_instance(None, "Iris Classifier")) == "workbench-model/iris-classifier:7"


def test_runtime_packages_label_round_trips(tmp_path: Path) -> None:
    for name in ("mlflow_skinny-3.17.2-py3-none-any.whl", "PyYAML-6.0.2-cp311-cp311-x.whl"):
        (tmp_path / name).write_bytes(b"")
    house = wheelhouse.Wheelhouse(tmp_path, ("mlflow-skinny",))

    class Image:
        labels = {images.PACKAGES_LABEL: images._packages_label(house)}

    assert images.installed_packages(Image()) == {"mlflow-skinny": "3.17.2", "pyyaml": "6.0.2"}


def test_workbench_requirements_include_the_docker_extra_not_the_test_one() -> None:
    names = {r.split(">")[0].split("<")[0].split("=")[0].split("[")[0].lower()
             for r in wheelhouse.workbench_requirements(("docker",))}
    assert {"mlflow", "jupyterlab", "papermill", "ipywidgets", "docker"} <= names
    assert "pytest" not in names and "nbval" not in names


def test_pins_that_do_not_support_the_image_python_are_left_free() -> None:
    # pip itself declares a Requires-Python; a Python far below it is not supported.
    from importlib.metadata import version

    assert wheelhouse._supports("pip", version("pip"), "3.11.7")
    assert not wheelhouse._supports("pip", version("pip"), "2.7.18")
    assert wheelhouse._supports("pip", "0.0.1", "2.7.18")  # not the installed version: no data


def test_network_options() -> None:
    assert _docker.network_options("http://127.0.0.1:5000") == {"network_mode": "host"}
    assert _docker.network_options("http://localhost:5000") == {"network_mode": "host"}
    assert _docker.network_options("http://mlflow:5000") == {}
    assert _docker.network_options("http://127.0.0.1:5000", "platform_default") == {
        "network": "platform_default"}


def test_unknown_image_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="workbench, serving"):
        images.image_kind("jupyter")


def test_no_engine_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/absent.sock")
    with pytest.raises(DockerError) as caught:
        _docker.get_client(timeout=5)
    message = str(caught.value)
    assert "\n" not in message
    assert f"unix://{tmp_path}/absent.sock" in message and "start Docker" in message


def test_docker_is_a_registered_executor() -> None:
    assert executors.names() == ["docker", "local"]
    assert executors.get("docker").name == "docker"


def _job(tmp_path: Path, notebook: Path, data_dir: Path) -> PreparedJob:
    return PreparedJob(notebook=notebook, output_notebook=tmp_path / "out.ipynb", parameters={},
                       env={"WORKBENCH_DATA_DIR": str(data_dir)}, cwd=tmp_path / "project",
                       timeout=0, kernel_name=None, image=None)


def test_mounts_are_read_only_at_the_same_paths(tmp_path: Path) -> None:
    project, shipped, data = tmp_path / "project", tmp_path / "shipped", tmp_path / "data"
    for folder in (project / "notebooks", shipped, data):
        folder.mkdir(parents=True)
    inside = _mounts(_job(tmp_path, project / "notebooks" / "train.ipynb", project / "data"))
    assert inside == {str(project): {"bind": str(project), "mode": "ro"}}
    outside = _mounts(_job(tmp_path, shipped / "train.ipynb", data))
    assert set(outside) == {str(project), str(shipped), str(data)}
    assert all(m["mode"] == "ro" and m["bind"] == path for path, m in outside.items())


@pytest.mark.skipif(os.geteuid() == 1000, reason="the container's own uid reads everything")
def test_unreadable_project_is_refused_before_the_job_starts() -> None:
    # Not tmp_path: pytest keeps that private (0700), which is the case under test.
    private = Path(tempfile.mkdtemp(prefix="workbench-private-"))
    (private / "project").mkdir()
    try:
        with pytest.raises(ConfigError, match=r"uid 1000, which cannot read .*private.*chmod o\+rx"):
            _check_readable(private / "project")
        private.chmod(0o755)
        _check_readable(private / "project")
    finally:
        shutil.rmtree(private)


def test_failure_names_the_cell_that_raised(tmp_path: Path) -> None:
    output = tmp_path / "out.ipynb"
    output.write_text(json.dumps({"cells": [
        {"cell_type": "code", "execution_count": 1, "outputs": []},
        {"cell_type": "code", "execution_count": 2, "outputs": [
            {"output_type": "error", "ename": "ValueError", "evalue": "bad month", "traceback": []}]},
    ]}))
    error = _failure(output, 1, ["log line"])
    assert isinstance(error, ContainerCellError)
    assert (error.ename, error.evalue, error.exec_count) == ("ValueError", "bad month", 2)
    missing = _failure(tmp_path / "absent.ipynb", 137, ["starting", "Killed", ""])
    assert str(missing) == "the job container exited with status 137: Killed"
