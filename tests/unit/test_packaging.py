"""Packaging logic that needs no Docker engine: Dockerfile rendering, requirement checks,
image tags, wheelhouse pins, the docker executor's mounts and failure reports."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import ClassVar

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
        labels: ClassVar[dict[str, str]] = {images.PACKAGES_LABEL: images._packages_label(house)}

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


# -- base image pull (fake engine) ---------------------------------------------------------------
class _FakeImages:
    def __init__(self, present: set[str]) -> None:
        self.present = present

    def get(self, ref: str) -> object:
        import docker

        if ref not in self.present:
            raise docker.errors.ImageNotFound(f"No such image: {ref}")
        return type("Image", (), {"id": f"sha256:{ref}", "labels": {}, "attrs": {}})()


class _FakeApi:
    def __init__(self, images: _FakeImages, chunks: list[dict], error: Exception | None) -> None:
        self.images, self.chunks, self.error = images, chunks, error
        self.pulled: list[tuple[str, str]] = []

    def pull(self, repository: str, tag: str, stream: bool, decode: bool):
        assert stream and decode  # progress is streamed, never awaited in silence
        self.pulled.append((repository, tag))
        if self.error is not None:
            raise self.error
        yield from self.chunks
        if not any("error" in chunk for chunk in self.chunks):
            self.images.present.add(f"{repository}:{tag}")


class _FakeClient:
    def __init__(self, present: set[str] = frozenset(), chunks: list[dict] = (),
                 error: Exception | None = None) -> None:
        self.images = _FakeImages(set(present))
        self.api = _FakeApi(self.images, list(chunks), error)


def test_a_missing_base_image_is_pulled_with_progress_lines() -> None:
    chunks = [{"status": "Pulling from library/python", "id": "3.11-slim"},
              {"status": "Downloading", "id": "a1", "progress": "[=>   ] 1MB/9MB"},
              {"status": "Downloading", "id": "a1", "progress": "[===> ] 5MB/9MB"},
              {"status": "Pull complete", "id": "a1"},
              {"status": "Status: Downloaded newer image for python:3.11-slim"}]
    client = _FakeClient(chunks=chunks)
    lines: list[str] = []
    image = _docker.ensure_image(client, "python:3.11-slim", what="base image",
                                 progress=lines.append)
    assert image.id == "sha256:python:3.11-slim"
    assert client.api.pulled == [("python", "3.11-slim")]
    assert lines[0] == "base image python:3.11-slim is not on the Docker engine; pulling it"
    assert lines[1:] == ["  3.11-slim: Pulling from library/python", "  a1: Downloading",
                         "  a1: Pull complete",
                         "  Status: Downloaded newer image for python:3.11-slim"]


def test_an_image_on_the_engine_is_not_pulled() -> None:
    client = _FakeClient(present={"python:3.11-slim"})
    _docker.ensure_image(client, "python:3.11-slim")
    assert client.api.pulled == []


@pytest.mark.parametrize("failure", ["stream", "api"])
def test_a_failed_base_image_pull_is_one_line_naming_the_setting(
        failure: str, tmp_path: Path) -> None:
    import docker

    from workbench.config import Settings
    from workbench.errors import ImageNotFound

    if failure == "stream":
        client = _FakeClient(chunks=[{"error": "pull access denied for nosuch/base\nretry",
                                      "errorDetail": {"message": "pull access denied"}}])
    else:
        client = _FakeClient(error=docker.errors.APIError("500 Server Error: registry down"))
    settings = Settings.from_env(environ={}, cwd=tmp_path, base_image="nosuch/base:1")
    with pytest.raises(ImageNotFound) as caught:
        images.build("serving", settings, client=client)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("base image nosuch/base:1 is not on the Docker engine and cannot be "
                              "pulled (")
    assert message.endswith("set WORKBENCH_BASE_IMAGE to a Python 3.11 image the engine has "
                            "(or can pull)")
    assert client.api.pulled == [("nosuch/base", "1")]


def test_platform_images_of_another_tag_must_be_there(tmp_path: Path) -> None:
    from workbench.config import Settings
    from workbench.errors import ImageNotFound

    settings = Settings.from_env(environ={}, cwd=tmp_path)
    client = _FakeClient(present={"team/tracking:3"})
    images.ensure_platform_images({"tracking": "team/tracking:3"}, settings, client=client)
    with pytest.raises(ImageNotFound) as caught:
        images.ensure_platform_images({"workbench": "team/lab:3"}, settings, client=client)
    assert "team/lab:3" in str(caught.value)
    assert images.image_kind("workbench").tag in str(caught.value)
    assert client.api.pulled == []  # the platform's own images are built, never pulled
