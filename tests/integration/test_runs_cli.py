"""`workbench runs list|stale|end` through a real subprocess, on a real tracking server."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from workbench import lineage, tracking

pytestmark = pytest.mark.integration


def _cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **settings.as_env()}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_stale_running_runs_are_listed_and_ended(settings, registry, unique_instance):
    client = registry.client
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    host = socket.gethostname()
    dead = tracking.start_run(client, unique_instance, "dead-kernel",
                              {lineage.PROCESS: f"{host}:{gone}"})
    alive = tracking.start_run(client, unique_instance, "live-kernel",
                               {lineage.PROCESS: f"{host}:{os.getpid()}"})
    done = tracking.start_run(client, unique_instance, "done", {})
    client.set_terminated(done, "FINISHED")

    listed = _cli(settings, "runs", "list", "-e", unique_instance, "--status", "running", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {r["run_id"] for r in json.loads(listed.stdout)} == {dead, alive}

    stale = _cli(settings, "runs", "stale", "-e", unique_instance)
    assert stale.returncode == 0, stale.stderr
    assert dead in stale.stdout and alive not in stale.stdout
    assert client.get_run(dead).info.status == "RUNNING"  # listing ends nothing

    ended = _cli(settings, "runs", "stale", "-e", unique_instance, "--end", "FAILED")
    assert ended.returncode == 0, ended.stderr
    assert client.get_run(dead).info.status == "FAILED"
    assert client.get_run(alive).info.status == "RUNNING"

    by_id = _cli(settings, "runs", "end", alive, done)
    assert by_id.returncode == 0, by_id.stderr
    assert f"{alive} KILLED" in by_id.stdout and f"{done} already ended" in by_id.stdout
    assert client.get_run(alive).info.status == "KILLED"
    assert client.get_run(done).info.status == "FINISHED"


def test_an_unknown_experiment_is_one_line(settings):
    result = _cli(settings, "runs", "list", "-e", "no-such-experiment")
    assert result.returncode != 0
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and "no experiment 'no-such-experiment'" in errors[0]
