"""Fault injection for jobs, with real processes: a tracking server of the test's own that is
stopped or killed, Ctrl-C of a container job, jobs started from threads, local timeouts.

Each case asserts what the user sees (one ``error:`` line, the exit status) and what is kept
(the executed notebook, the run's status, no container left behind).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import nbformat
import pytest
from _notebooks import job_notebook

# The container fixtures of test_containers.py: a project uid 1000 can read, the image.
from test_containers import docker_settings, project, workbench_image

from workbench import lineage
from workbench.errors import JobKilled
from workbench.jobs import JobSpec, run_job
from workbench.platforms.embedded import free_port

pytestmark = pytest.mark.integration
CONTAINER_FIXTURES = (docker_settings, project, workbench_image)  # used by the docker case
RUN_LABEL = "org.mlops-workbench.job.run_id"


@dataclass
class Server:
    """An ``mlflow server`` of this test alone, in its own session so it can be killed."""

    uri: str
    process: subprocess.Popen

    def stop(self, signum: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signum)
            self.process.wait(timeout=30)


def _answers(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    store = tmp_path / "server"
    (store / "artifacts").mkdir(parents=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    with open(store / "server.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
             "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
             "--artifacts-destination", str(store / "artifacts"), "--serve-artifacts",
             "--workers", "1"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=store, env=env,
            start_new_session=True)
    running = Server(f"http://127.0.0.1:{port}", process)
    try:
        deadline = time.monotonic() + 120
        while not _answers(running.uri):
            assert process.poll() is None, (store / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the test's mlflow server did not start"
            time.sleep(0.5)
        yield running
    finally:
        running.stop(signal.SIGKILL)


def _cli_env(uri: str, root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "MLFLOW_"))}
    env.update(MLFLOW_TRACKING_URI=uri, WORKBENCH_PROJECT_ROOT=str(root),
               WORKBENCH_HOME=str(root / ".workbench"))
    return env


def _without_telemetry(environ: Any) -> dict[str, str]:
    return {k: v for k, v in environ.items() if not k.startswith("_MLFLOW_TELEMETRY")}


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


class _Lines:
    """Collects a process's stderr line by line while it runs."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            time.sleep(0.2)
        raise AssertionError(f"no line with {text!r} within {timeout} s:\n" + "\n".join(self.lines[-30:]))

    def text(self) -> str:
        self._thread.join(timeout=10)
        return "\n".join(self.lines)


def test_a_server_stopped_before_workbench_run_is_one_line_naming_it(server, tmp_path):
    notebook = job_notebook(tmp_path / "tiny.ipynb", "n = 1", "n + 1")
    server.stop()
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "run", str(notebook)],
                          capture_output=True, text=True, env=_cli_env(server.uri, tmp_path),
                          timeout=120)
    elapsed = time.monotonic() - started

    assert done.returncode == 1
    assert elapsed < 15, f"took {elapsed:.1f} s"
    assert "Traceback" not in done.stderr
    errors = _errors(done.stderr)
    assert len(errors) == 1 and server.uri in errors[0], done.stderr
    assert done.stderr.strip() == errors[0]
    assert not (tmp_path / ".workbench" / "jobs").exists()  # nothing was started


def test_a_server_killed_during_a_local_job_keeps_the_notebook_and_says_where(server, tmp_path):
    notebook = job_notebook(tmp_path / "long.ipynb", "seconds = 15",
                            "import time\ntime.sleep(seconds)", "print('the job got to the end')")
    job = subprocess.Popen([sys.executable, "-m", "workbench.cli", "run", str(notebook)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=_cli_env(server.uri, tmp_path))
    try:
        stderr = _Lines(job.stderr)
        stderr.wait_for("-> run", timeout=90)
        time.sleep(3)  # the kernel is in the sleeping cell
        server.stop(signal.SIGKILL)
        killed = time.monotonic()
        job.wait(timeout=120)
        stdout = job.stdout.read()
        after_kill = time.monotonic() - killed
    finally:
        if job.poll() is None:
            job.kill()
    text = stderr.text()

    assert job.returncode == 1, text
    assert stdout == ""
    assert "Traceback" not in text
    errors = _errors(text)
    assert len(errors) == 1, text
    assert server.uri in errors[0]
    kept = Path(errors[0].split("executed notebook: ", 1)[1].split(";")[0])
    assert kept.is_relative_to(tmp_path / ".workbench" / "jobs")
    executed = nbformat.read(kept, as_version=4)
    assert any("the job got to the end" in out.get("text", "")
               for cell in executed.cells for out in cell.get("outputs", []))
    # What was left of the sleep (about 12 s) plus a fast settlement, not MLflow's retries.
    assert after_kill < 45, f"took {after_kill:.1f} s after the kill"


def test_a_job_from_a_thread_finishes_and_leaves_os_environ_alone(settings, tmp_path):
    notebook = job_notebook(
        tmp_path / "threaded.ipynb", "n = 1",
        "import json, os\nfrom ipykernel.connect import get_connection_info\n"
        "print(json.dumps({'run': os.environ['MLFLOW_RUN_ID'], 'executor': os.environ['WORKBENCH_EXECUTOR'],"
        " 'transport': json.loads(get_connection_info())['transport']}))")
    before = dict(os.environ)
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(run_job(JobSpec(notebook, {"n": 2}), settings)))
    thread.start()
    thread.join(timeout=240)

    assert outcome and outcome[0].status == "FINISHED"
    # MLflow's telemetry keeps a session id of its own in os.environ; everything else is
    # exactly as it was.
    assert _without_telemetry(os.environ) == _without_telemetry(before)
    executed = nbformat.read(outcome[0].output_notebook, as_version=4)
    printed = json.loads(next(out["text"] for cell in executed.cells for out in cell.get("outputs", [])
                              if out.get("name") == "stdout"))
    # The job's environment reached the kernel (not this process), over IPC.
    assert printed == {"run": outcome[0].run_id, "executor": "local", "transport": "ipc"}


def test_a_local_timeout_from_a_thread_kills_the_job_without_sigalrm(settings, tmp_path):
    notebook = job_notebook(tmp_path / "stuck.ipynb", "seconds = 120",
                            "print('before the sleep', flush=True)", "import time\ntime.sleep(seconds)")
    alarms: list[int] = []

    def alarm(signum: int, frame: object) -> None:
        alarms.append(signum)

    previous = signal.signal(signal.SIGALRM, alarm)
    outcome: list[BaseException] = []

    def job() -> None:
        try:
            run_job(JobSpec(notebook, {}, timeout=5), settings)
        except BaseException as exc:
            outcome.append(exc)

    try:
        started = time.monotonic()
        thread = threading.Thread(target=job)
        thread.start()
        thread.join(timeout=180)
        elapsed = time.monotonic() - started
        assert signal.getsignal(signal.SIGALRM) is alarm  # nobody replaced ours
    finally:
        signal.signal(signal.SIGALRM, previous)

    assert alarms == []
    assert outcome and isinstance(outcome[0], JobKilled), outcome
    assert "timed out after 5 s" in str(outcome[0])
    assert elapsed < 60, f"took {elapsed:.1f} s"
    killed = outcome[0]
    assert mlflow.MlflowClient(settings.tracking_uri).get_run(killed.run_id).info.status == "KILLED"
    executed = nbformat.read(killed.output_notebook, as_version=4)
    assert any("before the sleep" in out.get("text", "")
               for cell in executed.cells for out in cell.get("outputs", []))


def test_job_output_has_the_workbench_lines_and_no_kernel_transport_warning(settings, tmp_path):
    notebook = job_notebook(tmp_path / "quiet.ipynb", "n = 1", "n + 1")
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "run", str(notebook)],
                          capture_output=True, text=True, env={**os.environ, **settings.as_env()},
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "job quiet.ipynb -> run" in done.stderr and "job finished in" in done.stderr
    assert "without encryption" not in done.stderr
    assert json.loads(done.stdout)["status"] == "FINISHED"


# -- containers ---------------------------------------------------------------------------------
@pytest.mark.docker
def test_ctrl_c_of_a_container_job_keeps_the_notebook_kills_the_run_and_removes_the_container(
        docker_client, workbench_image, docker_settings, project):
    notebook = job_notebook(project / "sleepy_in_container.ipynb", "seconds = 300",
                            "print('container job started', flush=True)",
                            "import time\ntime.sleep(seconds)")
    env = {**os.environ, **docker_settings.as_env()}
    job = subprocess.Popen(
        # By id: another checkout on the same engine may move the image's tag meanwhile.
        [sys.executable, "-m", "workbench.cli", "run", str(notebook), "--executor", "docker",
         "--image", workbench_image.id, "--experiment", "container-interrupts"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        stderr = _Lines(job.stderr)
        stderr.wait_for("container job started", timeout=240)
        time.sleep(2)  # into the sleeping cell
        job.send_signal(signal.SIGINT)
        job.wait(timeout=120)
    finally:
        if job.poll() is None:
            job.kill()
    text = stderr.text()

    assert job.returncode == 124, text
    assert "Traceback" not in text
    errors = _errors(text)
    assert len(errors) == 1 and "was killed: interrupted" in errors[0], text
    assert "without encryption" not in text  # the container's kernel runs over IPC too
    client = mlflow.MlflowClient(docker_settings.tracking_uri)
    experiment = client.get_experiment_by_name("container-interrupts")
    run = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])[0]
    assert run.info.status == "KILLED"
    kept = Path(run.data.tags[lineage.OUTPUT_NOTEBOOK])
    assert kept.is_relative_to(docker_settings.jobs_dir) and str(kept) in errors[0]
    executed = nbformat.read(kept, as_version=4)
    assert any("container job started" in out.get("text", "")
               for cell in executed.cells for out in cell.get("outputs", []))
    assert "container job started" in kept.with_suffix(".log").read_text()
    assert docker_client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run.info.run_id}"}) == []

