"""The policy scheduler for real: the process `platform up` starts, firing notebook jobs
against a real tracking server on schedules seconds apart; restarts, overlaps, missed fires;
bad policy files."""
from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from _notebooks import job_notebook

from workbench import lineage, tracking
from workbench.config import Settings
from workbench.naming import ModelName
from workbench.platforms import EmbeddedPlatform
from workbench.platforms.embedded import free_port
from workbench.policy.scheduler import HistoryEntry, history, read_state
from workbench.registry import Registry

pytestmark = pytest.mark.integration

TICK = '''model_ref = ""
input_path = ""
output_path = ""
current_path = ""
sleep = 0.0
'''
POLICY = """\
instance: tick
data: {{path: "data/tick_{{data_date}}.csv", label_column: y}}
schedules:
  batch: {{cron: "{batch}"}}
  drift: {{cron: "{drift}"}}
batch: {{notebook: notebooks/tick.ipynb, parameters: {{sleep: 0.0}}}}
drift: {{notebook: notebooks/tick.ipynb, parameters: {{sleep: {slow}}}}}
triggers: {{drift: false}}
misfire_grace_time: 600
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Settings, EmbeddedPlatform]]:
    """A project with a tick notebook and a champion of `tick`, its platform up without
    the scheduler (no policy yet); stopped, scheduler included, by pid afterwards."""
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "policies").mkdir()
    job_notebook(tmp_path / "notebooks" / "tick.ipynb", TICK,
                 "import time\ntime.sleep(sleep)\nprint('tick', model_ref)")
    settings = Settings.from_env(environ={}, cwd=tmp_path, home=str(tmp_path / ".workbench"),
                                 port=free_port())
    platform = EmbeddedPlatform(settings, workers=1)
    try:
        EmbeddedPlatform(settings, workers=1, scheduler=False).up()
        _champion(settings)
        yield settings, platform
    finally:
        platform.down()


def _champion(settings: Settings) -> None:
    from sklearn.linear_model import LogisticRegression

    registry = Registry(settings)
    X = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 3})
    name = ModelName("tick", "v1", "20240131")
    run_id = tracking.start_run(registry.client, "tick", str(name), {})
    registry.register(LogisticRegression().fit(X, X.a > 20), name, run_id=run_id,
                      input_example=X)
    registry.client.set_terminated(run_id)
    registry.promote(str(name), "champion", reason="test")


def _write_policy(settings: Settings, batch: str, drift: str, slow: float = 0.0) -> None:
    (settings.project_root / "policies" / "tick.yaml").write_text(
        POLICY.format(batch=batch, drift=drift, slow=slow))


def _wait(condition: Callable[[], list[HistoryEntry]], seconds: float, what: str
          ) -> list[HistoryEntry]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"no {what} within {seconds} s")


def _events(settings: Settings, job: str, event: str) -> list[HistoryEntry]:
    return [e for e in history(settings, job, 500) if e.event == event]


def test_scheduled_fires_are_jobs_survive_restarts_skip_overlaps_and_run_missed_once(project):
    settings, platform = project
    _write_policy(settings, batch="*/6 * * * * *", drift="*/2 * * * * *", slow=7)
    status = platform.up()
    scheduler_pid = status.scheduler_pid
    assert scheduler_pid is not None and psutil.pid_exists(scheduler_pid)
    assert "workbench.policy.scheduler" in psutil.Process(scheduler_pid).cmdline()

    # A fire is an ordinary job: a FINISHED run with its output notebook, tagged with the
    # policy and what triggered it.
    [first, *_] = _wait(lambda: _events(settings, "tick.batch", "finished"), 90, "batch fire")
    assert first.trigger == "schedule" and len(first.run_ids) == 1
    run = Registry(settings).client.get_run(first.run_ids[0])
    assert run.info.status == "FINISHED"
    assert run.data.tags["workbench.job"] == "true"
    assert run.data.tags["workbench.policy"] == "tick"
    assert run.data.tags["workbench.policy.job"] == "batch"
    assert run.data.tags["workbench.policy.trigger"] == "schedule"
    assert Path(run.data.tags[lineage.OUTPUT_NOTEBOOK]).is_file()
    assert run.data.params["model_ref"] == "tick_v1_20240131"

    # The slow job (7 s, every 2 s) is skipped while it runs, and the skip is recorded.
    [skip, *_] = _wait(lambda: _events(settings, "tick.drift", "skipped"), 60, "skipped fire")
    assert skip.detail == "the previous run of this job is still going"
    drift_runs = [Registry(settings).client.get_run(r) for e in
                  _events(settings, "tick.drift", "finished") for r in e.run_ids]
    spans = sorted((r.info.start_time, r.info.end_time) for r in drift_runs)
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans)), spans

    # Down stops both processes; the history stays; fires fall due while it is down.
    platform.down()
    assert not psutil.pid_exists(scheduler_pid) or psutil.Process(scheduler_pid).status() == \
        psutil.STATUS_ZOMBIE
    before = history(settings, "tick.batch", 500)
    stopped = dt.datetime.now(dt.timezone.utc)
    time.sleep(13)  # two batch fires (every 6 s) missed
    platform.up()
    restarted = read_state(settings)["started"]  # when the new scheduler process began
    after_restart = _wait(
        lambda: [e for e in history(settings, "tick.batch", 500)[len(before):]
                 if e.event == "finished"], 90, "batch fire after the restart")
    after = history(settings, "tick.batch", 500)
    assert after[:len(before)] == before  # kept across the restart
    started = [e for e in after[len(before):] if e.event == "started"]
    missed = [e for e in started if stopped.isoformat() < e.scheduled_for < restarted]
    assert len(missed) == 1, started  # the missed fires ran once, coalesced
    assert after_restart
    # No fire ran twice: every scheduled time started at most once.
    times = [e.scheduled_for for e in after if e.event == "started"]
    assert len(times) == len(set(times)), times


def test_list_run_now_and_pause_from_the_command_line(project):
    settings, platform = project
    _write_policy(settings, batch="0 5 1 * *", drift="0 6 1 * *")
    platform.up()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "MLFLOW_"))}
    env.update(settings.as_env(), WORKBENCH_PORT=str(settings.port))

    def workbench(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True,
                              text=True, env=env, cwd=settings.project_root, timeout=300)

    shown = workbench("schedule", "list", "--json")
    assert shown.returncode == 0, shown.stderr
    listed = json.loads(shown.stdout)
    assert [(j["id"], j["paused"]) for j in listed] == [("tick.batch", False), ("tick.drift", False)]
    assert listed[0]["next_run"].endswith("T05:00:00+00:00")

    done = workbench("schedule", "run-now", "tick.batch")
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["kind"] == "batch" and len(outcome["run_ids"]) == 1
    entries = history(settings, "tick.batch")
    assert [(e.event, e.trigger) for e in entries] == [("started", "run-now"), ("finished", "run-now")]
    assert entries[1].run_ids == tuple(outcome["run_ids"])

    assert workbench("schedule", "pause", "tick.drift").returncode == 0
    listed = json.loads(workbench("schedule", "list", "--json").stdout)
    assert listed[1]["paused"] and listed[1]["next_run"] is None
    unknown = workbench("schedule", "pause", "tick.nope")
    assert unknown.returncode == 1 and unknown.stderr.strip().splitlines() == [
        "error: no schedule 'tick.nope'; schedules: tick.batch, tick.drift"]


def test_a_bad_policy_file_is_one_line_exit_2_and_nothing_starts(tmp_path):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "churn.yaml").write_text(
        "instance: churn\ndata: {path: 'd/c_{data_date}.csv', label_column: y}\n"
        "schedules: {drift: {cron: '0 6 1 *'}}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "MLFLOW_"))}
    env.update(WORKBENCH_PROJECT_ROOT=str(tmp_path), WORKBENCH_PORT=str(free_port()))
    result = subprocess.run([sys.executable, "-m", "workbench.cli", "platform", "up"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: policies/churn.yaml: schedules.drift: bad cron expression "
                           "'0 6 1 *' (")
    assert line.endswith("use five fields: minute hour day month day-of-week, e.g. '0 6 1 * *'")
    assert not (tmp_path / ".workbench" / "platform" / "server.pid").exists()
    assert not (tmp_path / ".workbench" / "scheduler.db").exists()
