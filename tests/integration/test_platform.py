"""The embedded platform against a real ``mlflow server`` process: start, stop, restart, and
the ``workbench platform`` commands in a real subprocess.

Each test has its own state directory and port and stops what it started, by pid.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from workbench.config import Settings
from workbench.errors import PortBusy
from workbench.platforms import EmbeddedPlatform
from workbench.platforms.embedded import group_members
from workbench.pytest_plugin import free_port

pytestmark = pytest.mark.integration


# -- helpers -------------------------------------------------------------------------------------
def _settings(tmp_path: Path, port: int) -> Settings:
    return Settings.from_env(environ={}, cwd=tmp_path, home=str(tmp_path / ".workbench"), port=port)


def _health(uri: str) -> int | None:
    """The HTTP status of ``<uri>/health``, or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def _servers_on(port: int) -> list[int]:
    """Pids of live processes whose command line is an ``mlflow server`` on ``port``."""
    found = []
    for process in psutil.process_iter():
        try:
            argv = process.cmdline()
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        if "mlflow" in argv and "server" in argv and str(port) in argv:
            found.append(process.pid)
    return found


@contextlib.contextmanager
def _listening_on(port: int):
    """Another process's listener on 127.0.0.1:port (SO_REUSEADDR: the port may be in TIME_WAIT)."""
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        yield squatter


def _dead_pid() -> int:
    process = subprocess.Popen(["sleep", "0"])
    process.wait()
    return process.pid


@pytest.fixture
def embedded(tmp_path: Path):
    """An EmbeddedPlatform on a free port in ``tmp_path``; stopped (by its pid file) afterwards."""
    port = free_port()
    platform = EmbeddedPlatform(_settings(tmp_path, port))
    try:
        yield platform
    finally:
        platform.down()


# -- library -------------------------------------------------------------------------------------
def test_lifecycle_restart_keeps_data_and_recovers_from_stale_pid_file(embedded: EmbeddedPlatform):
    import mlflow

    port = embedded.settings.port
    uri = f"http://127.0.0.1:{port}"
    home = embedded.settings.home

    before = embedded.status()
    assert not before.running and before.pid is None and before.note == ""

    status = embedded.up()
    assert status.running and status.healthy
    assert status.tracking_uri == uri
    pid = status.pid
    assert pid is not None and pid > 0
    assert _health(uri) == 200
    record = json.loads((home / "platform" / "server.pid").read_text())
    assert record["pid"] == pid and record["tracking_uri"] == uri

    again = embedded.up()  # idempotent: no second server
    assert again.running and again.pid == pid
    assert _servers_on(port) == [pid]
    assert embedded.status() == again

    members = group_members(pid)
    assert pid in members
    assert len(members) >= 3, f"expected server, uvicorn workers and job runner; got {members}"

    client = mlflow.MlflowClient(uri)
    experiment_id = client.create_experiment("platform-it")
    run = client.create_run(experiment_id)
    client.log_text(run.info.run_id, "hello from the integration test", "notes/hello.txt")
    client.set_terminated(run.info.run_id)
    landed = list((home / "platform" / "artifacts").rglob("hello.txt"))
    assert len(landed) == 1, "the proxied artifact store should hold the artifact"
    assert landed[0].read_text() == "hello from the integration test"
    assert (home / "platform" / "mlflow.db").is_file()
    assert embedded.logs().strip(), "server.log should have the server's output"

    stopped = embedded.down()
    assert not stopped.running and stopped.pid is None
    assert group_members(pid) == []
    assert _health(uri) is None
    assert not _port_answers(port)
    assert not (home / "platform" / "server.pid").exists()
    assert embedded.down().running is False  # down twice is harmless

    # The machine "restarted": a pid file names a process that is gone.
    dead = _dead_pid()
    (home / "platform" / "server.pid").write_text(json.dumps({"pid": dead, "tracking_uri": uri}))
    stale = embedded.status()
    assert not stale.running and not stale.healthy
    assert stale.pid == dead
    assert "stale" in stale.note

    lines: list[str] = []
    restarted = embedded.up(lines.append)
    assert any("stale" in line and "server.pid" in line for line in lines), lines
    assert restarted.running and restarted.healthy and restarted.pid not in (None, pid, dead)
    assert _health(uri) == 200

    # Data survives the restart: experiment, run and artifact come back through the server.
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("platform-it")
    assert experiment is not None and experiment.experiment_id == experiment_id
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    listed = [f.path for f in client.list_artifacts(run.info.run_id, "notes")]
    assert listed == ["notes/hello.txt"]
    local = client.download_artifacts(run.info.run_id, "notes/hello.txt", str(home.parent / "dl"))
    assert Path(local).read_text() == "hello from the integration test"

    new_pid = restarted.pid
    final = embedded.down()
    assert not final.running
    assert group_members(new_pid) == []
    assert not _port_answers(port)


def test_busy_port_is_one_line_and_leaves_nothing_running(embedded: EmbeddedPlatform):
    port = embedded.settings.port
    with _listening_on(port):
        with pytest.raises(PortBusy) as caught:
            embedded.up()
        message = str(caught.value)
        assert "\n" not in message
        assert str(port) in message and "--port" in message
        assert not embedded.pid_file.exists()
        assert not embedded.status().running
        assert _servers_on(port) == []


# -- CLI -----------------------------------------------------------------------------------------
def _cli(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        env=env, capture_output=True, text=True, timeout=timeout,
    )


def test_platform_cli_in_a_subprocess(tmp_path: Path, embedded: EmbeddedPlatform):
    port = embedded.settings.port
    uri = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items()
           if k != "MLFLOW_TRACKING_URI" and not k.startswith("WORKBENCH_")}
    env.update(WORKBENCH_HOME=str(tmp_path / ".workbench"), WORKBENCH_PORT=str(port),
               WORKBENCH_PROJECT_ROOT=str(tmp_path))

    status = _cli(env, "platform", "status")
    assert status.returncode == 1, status
    assert "not running" in status.stdout

    up = _cli(env, "platform", "up")
    assert up.returncode == 0, up.stderr
    assert up.stdout.strip() == uri
    assert "starting mlflow server" in up.stderr
    assert _health(uri) == 200
    pid = embedded.status().pid  # the CLI's server, seen through the same state directory
    assert pid is not None and _servers_on(port) == [pid]

    status = _cli(env, "platform", "status")
    assert status.returncode == 0, status
    assert f"running (pid {pid})" in status.stdout and uri in status.stdout

    as_json = _cli(env, "platform", "status", "--json")
    assert as_json.returncode == 0
    data = json.loads(as_json.stdout)
    assert data["running"] is True and data["healthy"] is True and data["pid"] == pid
    assert data["tracking_uri"] == uri

    logs = _cli(env, "platform", "logs")
    assert logs.returncode == 0 and logs.stdout.strip()

    down = _cli(env, "platform", "down")
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    assert group_members(pid) == []
    assert not _port_answers(port)

    status = _cli(env, "platform", "status")
    assert status.returncode == 1 and "not running" in status.stdout

    with _listening_on(port):
        busy = _cli(env, "platform", "up")
    assert busy.returncode == 1
    assert busy.stdout == ""
    lines = busy.stderr.splitlines()
    assert len(lines) == 1, busy.stderr
    assert lines[0].startswith("error:") and str(port) in lines[0] and "--port" in lines[0]
    assert _servers_on(port) == []
    assert not embedded.pid_file.exists()
