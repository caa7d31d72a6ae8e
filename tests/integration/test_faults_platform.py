"""Fault cases of the platforms, with real processes: what the user sees and what is kept.

- two ``workbench platform up`` (embedded) at once start one server;
- a base image the engine lacks (and cannot pull) is one line naming WORKBENCH_BASE_IMAGE.

The compose platform's faults (no credentials, superuser passwords in containers, the store's
roles) are in test_compose.py, beside the platform they need.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from workbench import _docker
from workbench.config import Settings
from workbench.platforms import EmbeddedPlatform
from workbench.platforms.embedded import group_members
from workbench.pytest_plugin import free_port

pytestmark = pytest.mark.integration


def _servers_on(port: int) -> list[int]:
    """Pids of live ``mlflow server`` processes started for ``port`` (the parent, not workers)."""
    found = []
    for process in psutil.process_iter():
        try:
            argv = process.cmdline()
            alive = process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            continue
        if alive and "mlflow" in argv and "server" in argv and "--port" in argv \
                and argv[argv.index("--port") + 1] == str(port):
            found.append(process.pid)
    return found


def _cli_env(tmp_path: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k != "MLFLOW_TRACKING_URI" and not k.startswith("WORKBENCH_")}
    env.update(WORKBENCH_HOME=str(tmp_path / ".workbench"), WORKBENCH_PORT=str(port),
               WORKBENCH_PROJECT_ROOT=str(tmp_path))
    return env


def test_two_platform_up_at_once_start_one_server(tmp_path: Path) -> None:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    env = _cli_env(tmp_path, port)
    platform = EmbeddedPlatform(Settings.from_env(
        environ={}, cwd=tmp_path, home=str(tmp_path / ".workbench"), port=port))
    command = [sys.executable, "-m", "workbench.cli", "platform", "up"]
    try:
        ups = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
        outputs = [up.communicate(timeout=240) for up in ups]
        for up, (out, err) in zip(ups, outputs):
            assert up.returncode == 0, err
            assert out.strip() == uri  # both report the one server
        servers = _servers_on(port)
        status = platform.status()
        assert status.running and status.healthy
        assert servers == [status.pid], f"expected one server, found {servers}"
        errs = [err for _, err in outputs]
        assert sum("starting mlflow server" in err for err in errs) == 1, errs
        assert sum(f"runs already (pid {status.pid})" in err for err in errs) == 1, errs
    finally:
        pid = platform.status().pid
        platform.down()
    assert pid is None or group_members(pid) == []
    deadline = time.monotonic() + 10
    while _servers_on(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _servers_on(port) == []


@pytest.mark.docker
def test_a_base_image_that_cannot_be_pulled_is_one_line_naming_the_setting(docker_client) -> None:
    missing = f"workbench-test/no-such-base:{os.urandom(3).hex()}"
    assert _docker.find_image(docker_client, missing) is None
    env = {**os.environ, "WORKBENCH_BASE_IMAGE": missing}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "image", "build", "serving"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert done.stdout == ""
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith(f"error: base image {missing} is not on the Docker engine and "
                                "cannot be pulled (")
    assert "WORKBENCH_BASE_IMAGE" in errors[0]
    assert "Traceback" not in done.stderr
    # The pull was tried, and said so, before the error.
    assert f"base image {missing} is not on the Docker engine; pulling it" in done.stderr
    assert time.monotonic() - started < 120
    assert _docker.find_image(docker_client, missing) is None


def test_platform_up_waits_for_the_lock_holder_and_then_starts(tmp_path: Path) -> None:
    import filelock

    port = free_port()
    platform = EmbeddedPlatform(Settings.from_env(
        environ={}, cwd=tmp_path, home=str(tmp_path / ".workbench"), port=port))
    platform.dir.mkdir(parents=True)
    holder = filelock.FileLock(platform.lock_file)
    holder.acquire()  # another `platform up`, in the middle of its start-up
    up = subprocess.Popen([sys.executable, "-m", "workbench.cli", "platform", "up"],
                          env=_cli_env(tmp_path, port), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(5)
        assert up.poll() is None, "up did not wait for the lock"
        assert _servers_on(port) == []  # nothing starts while the lock is held
        holder.release()
        out, err = up.communicate(timeout=240)
        assert up.returncode == 0, err
        assert out.strip() == f"http://127.0.0.1:{port}"
        assert f"holds {platform.lock_file}; waiting" in err
        assert _servers_on(port) == [platform.status().pid]
    finally:
        if holder.is_locked:
            holder.release()
        if up.poll() is None:
            up.kill()
            up.wait()
        platform.down()
    assert _servers_on(port) == []


@pytest.mark.docker
def test_compose_up_with_a_missing_platform_image_is_one_line_and_starts_nothing(
        docker_client, tmp_path: Path) -> None:
    from workbench.platforms.compose import init

    directory = tmp_path / "platform"
    env_file = init(directory)
    project = f"wbfault{os.urandom(3).hex()}"
    missing = f"workbench-test/no-such-tracking:{os.urandom(3).hex()}"
    text = env_file.read_text()
    text = text.replace("COMPOSE_PROJECT_NAME=mlops-workbench", f"COMPOSE_PROJECT_NAME={project}")
    env_file.write_text("".join(f"TRACKING_IMAGE={missing}\n" if line.startswith("TRACKING_IMAGE=")
                                else line + "\n" for line in text.splitlines()))
    done = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "platform", "up", "--compose", "--dir",
         str(directory)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and missing in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    # The images are checked before the platform starts: no container, no volume.
    label = {"label": f"com.docker.compose.project={project}"}
    assert docker_client.containers.list(all=True, filters=label) == []
    assert docker_client.volumes.list(filters=label) == []
