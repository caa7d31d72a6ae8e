"""Settling a job's run: the job's own failure is what is reported, every settling step is
tried, and a failed or killed job leaves no model version behind, whatever MLflow does.

The tracker is the real ``ClientTracker`` over a fake MlflowClient that fails on demand;
the executor is a fake that fails like papermill does.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest

from workbench import lineage
from workbench.config import Settings
from workbench.errors import ConfigError, JobFailed, JobKilled
from workbench.jobs import runner
from workbench.jobs.executors import ExecutorRegistry
from workbench.jobs.spec import JobSpec, JobTimeout, PreparedJob
from workbench.jobs.tracking import ClientTracker, Settlement

RUN_ID = "0123456789abcdef0123456789abcdef"


class CellError(Exception):
    """Shaped like papermill's PapermillExecutionError: what the runner reads of a cell."""

    def __init__(self, ename: str, evalue: str, exec_count: int) -> None:
        super().__init__(f"{ename}: {evalue}")
        self.ename, self.evalue, self.exec_count = ename, evalue, exec_count


@dataclass
class Version:
    name: str
    version: str
    tags: dict[str, str]


@dataclass
class FakeClient:
    """The MlflowClient calls ClientTracker makes; ``broken`` names the ones that raise."""

    versions: list[Version] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if name in self.broken:
            raise RuntimeError(f"API request to endpoint {name} failed with error code 503")

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self._call("set_tag", run_id, key, value)

    def log_artifact(self, run_id: str, path: str, artifact_path: str | None = None) -> None:
        self._call("log_artifact", run_id, path)

    def set_terminated(self, run_id: str, status: str) -> None:
        self._call("set_terminated", run_id, status)

    def search_model_versions(self, query: str) -> list[Version]:
        self._call("search_model_versions", query)
        return list(self.versions)

    def delete_model_version(self, name: str, version: str) -> None:
        self._call("delete_model_version", name, version)
        self.versions = [v for v in self.versions if (v.name, v.version) != (name, version)]


class FakeTracker(ClientTracker):
    def start(self, experiment: str, run_name: str, tags: Any, params: Any) -> tuple[str, str]:
        return RUN_ID, "7"


class FakeExecutor:
    name = "fake"

    def __init__(self, outcome: BaseException | None) -> None:
        self.outcome = outcome

    def check(self, spec: JobSpec, settings: Settings) -> dict[str, str]:
        return {}

    def execute(self, job: PreparedJob, progress: Any, show_progress: bool) -> dict[str, str]:
        job.output_notebook.write_text("{}")  # what papermill saves, whichever way it ends
        if self.outcome is not None:
            raise self.outcome
        return {"workbench.job.extra": "1"}


def _notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "P",
                                                           "language": "python"}})
    params = nbformat.v4.new_code_cell("n = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("n + 1")]
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """run_job with the fake executor and a ClientTracker over a fake client."""
    settings = Settings.from_env(environ={}, cwd=tmp_path, home=str(tmp_path / "home"))
    monkeypatch.setattr(runner, "require_server", lambda settings: None)
    notebook = _notebook(tmp_path / "train.ipynb")

    def run(outcome: BaseException | None, client: FakeClient, tracker: Any = None):
        registry = ExecutorRegistry()
        registry.register("fake", lambda: FakeExecutor(outcome))
        monkeypatch.setattr(runner, "executors", registry)
        return runner.run_job(JobSpec(notebook, {}, executor="fake"), settings,
                              tracker=tracker or FakeTracker(client))  # type: ignore[arg-type]

    return run


def _registered() -> list[Version]:
    return [Version("churn", "3", {"model_name": "churn_v1_20240131"}),
            Version("churn", "4", {"model_name": "churn_v2_20240131"})]


def test_a_failing_cell_is_reported_when_ending_the_run_raises_and_its_versions_go(job):
    client = FakeClient(versions=_registered(), broken={"set_terminated", "log_artifact"})
    cell = CellError("ValueError", "bad month 13\nmore detail", 3)
    with pytest.raises(JobFailed) as raised:
        job(cell, client)
    message = str(raised.value)
    assert message.startswith("job train.ipynb failed: cell [3] raised ValueError: bad month 13;")
    assert "\n" not in message
    assert f"run {RUN_ID} could not be marked FAILED" in message
    assert "cannot mark the run FAILED: RuntimeError" in message
    assert "removed the model version(s) it registered: churn_v1_20240131, churn_v2_20240131" in message
    assert raised.value.__cause__ is cell  # the job's own failure, chained
    assert client.versions == []
    assert raised.value.output_notebook.is_file() and str(raised.value.output_notebook) in message


def test_a_killed_job_removes_its_versions_even_when_nothing_else_can_be_recorded(job):
    client = FakeClient(versions=_registered(), broken={"set_tag", "log_artifact", "set_terminated"})
    with pytest.raises(JobKilled, match=r"was killed: timed out after 5 s; .* could not be marked KILLED"):
        job(JobTimeout("timed out after 5 s"), client)
    assert client.versions == []


def test_ctrl_c_is_a_killed_run_with_its_versions_removed(job):
    client = FakeClient(versions=_registered())
    with pytest.raises(JobKilled) as raised:
        job(KeyboardInterrupt(), client)
    assert f"was killed: interrupted; run {RUN_ID} is KILLED" in str(raised.value)
    assert ("set_terminated", (RUN_ID, "KILLED")) in client.calls
    assert client.versions == []


def test_one_version_that_cannot_be_removed_does_not_keep_the_others(job):
    client = FakeClient(versions=_registered())
    original = client.delete_model_version

    def delete(name: str, version: str) -> None:
        if version == "3":
            raise RuntimeError("permission denied")
        original(name, version)

    client.delete_model_version = delete  # type: ignore[method-assign]
    with pytest.raises(JobFailed) as raised:
        job(CellError("KeyError", "'x'", 2), client)
    assert "cannot remove model version churn_v1_20240131: RuntimeError: permission denied" in str(raised.value)
    assert "removed the model version(s) it registered: churn_v2_20240131" in str(raised.value)
    assert [v.version for v in client.versions] == ["3"]


def test_a_tracker_that_fails_outright_still_reports_the_cell(job):
    class DeadTracker(FakeTracker):
        def finish(self, *args: Any, **kwargs: Any) -> Settlement:
            raise ConnectionError("the tracking helper process ended unexpectedly")

    with pytest.raises(JobFailed) as raised:
        job(CellError("ZeroDivisionError", "division by zero", 4), FakeClient(),
            DeadTracker(FakeClient()))
    message = str(raised.value)
    assert message.startswith("job train.ipynb failed: cell [4] raised ZeroDivisionError: division by zero;")
    assert "could not be marked FAILED (ConnectionError: the tracking helper process ended" in message


def test_a_job_that_ran_but_whose_run_cannot_be_ended_is_not_a_success(job):
    client = FakeClient(broken={"set_terminated"})
    with pytest.raises(JobFailed, match=f"ran to the end, but its run {RUN_ID} could not be finished"):
        job(None, client)


def test_a_successful_job_logs_the_notebook_and_the_executor_tags_and_removes_nothing(job):
    client = FakeClient(versions=_registered())
    result = job(None, client)
    assert result.status == "FINISHED"
    tags = {args[1]: args[2] for name, args in client.calls if name == "set_tag"}
    assert tags == {"workbench.job.extra": "1", lineage.OUTPUT_NOTEBOOK: str(result.output_notebook)}
    assert ("log_artifact", (RUN_ID, str(result.output_notebook))) in client.calls
    assert len(client.versions) == 2


def test_executors_load_lazily_by_dotted_name():
    registry = ExecutorRegistry()
    registry.register("local", "workbench.jobs.executors:LocalExecutor")
    registry.register("broken", "workbench.jobs.no_such_module:Executor")
    assert registry.get("local").name == "local"
    with pytest.raises(ConfigError, match=r"executor 'broken' .* cannot be loaded"):
        registry.get("broken")
    with pytest.raises(ConfigError, match="unknown executor 'k8s'; available: broken, local"):
        registry.get("k8s")


def test_importing_the_jobs_package_imports_no_docker_code():
    code = ("import sys, workbench.jobs; from workbench.jobs import executors; "
            "print(executors.names()); "
            "print(sorted(m for m in sys.modules if 'docker' in m or m.startswith(('papermill', 'jupyter_client'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names, loaded = done.stdout.splitlines()
    assert "'docker'" in names and "'local'" in names
    assert loaded == "[]"
