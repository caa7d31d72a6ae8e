"""The scheduler's store against the policies (SQLite job store, no job runs), and its history."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from workbench.config import Settings
from workbench.errors import WorkbenchError
from workbench.policy.scheduler import (
    History,
    JobBusy,
    PolicyScheduler,
    daemon_env,
    job_lock,
    store_editor,
    store_engine,
)
from workbench.policy.schema import load_policies

POLICY = """\
instance: churn
data: {{path: "data/churn_{{data_date}}.csv", label_column: churned}}
schedules:
  drift: {{cron: "{drift}"}}
  batch: {{cron: "0 5 1 * *"}}
"""


@pytest.fixture
def project(tmp_path: Path) -> Settings:
    (tmp_path / "policies").mkdir()
    write(tmp_path, drift="0 6 1 * *")
    return Settings.from_env(environ={}, cwd=tmp_path, home=str(tmp_path / ".workbench"))


def write(root: Path, **values: str) -> None:
    (root / "policies" / "churn.yaml").write_text(POLICY.format(**values))


def editor_jobs(settings: Settings) -> dict[str, object]:
    with store_editor(settings) as editor:
        return {job.id: job for job in editor.jobs()}


def test_jobs_are_kept_in_the_store_with_their_next_fire_time_and_pause(project):
    jobs = editor_jobs(project)
    assert sorted(jobs) == ["churn.batch", "churn.drift"]
    drift = jobs["churn.drift"]
    assert drift.stored and not drift.paused and drift.next_run.day == 1 and drift.next_run.hour == 6
    with store_editor(project) as editor:
        assert editor.pause("churn.drift").paused
    # A new process (a restart) finds the job paused, the other unchanged.
    again = editor_jobs(project)
    assert again["churn.drift"].paused and again["churn.batch"].next_run == jobs["churn.batch"].next_run
    with store_editor(project) as editor:
        assert editor.resume("churn.drift").next_run == drift.next_run
        with pytest.raises(WorkbenchError, match=r"no schedule 'churn\.retrain'"):
            editor.pause("churn.retrain")


def test_an_unchanged_job_keeps_its_past_due_time_a_changed_one_is_rescheduled(project):
    editor_jobs(project)
    past = dt.datetime(2024, 5, 1, 6, tzinfo=dt.timezone.utc)
    with store_editor(project) as editor:
        # As if the platform had been down over the fire time: it is still due at start-up.
        editor.scheduler.modify_job("churn.drift", next_run_time=past)
        assert editor.sync() == []
        assert editor.scheduler.get_job("churn.drift").next_run_time == past
    write(project.project_root, drift="30 7 * * *")
    service = PolicyScheduler(project, load_policies(project.project_root))
    service.start(run_jobs=False)
    try:
        assert service.sync() == ["changed churn.drift"]
        moved = service.scheduler.get_job("churn.drift").next_run_time
        assert moved > dt.datetime.now(dt.timezone.utc) and (moved.hour, moved.minute) == (7, 30)
    finally:
        service.shutdown()
    with store_editor(project) as editor:
        moved = editor.scheduler.get_job("churn.drift").next_run_time
        assert moved > dt.datetime.now(dt.timezone.utc) and (moved.hour, moved.minute) == (7, 30)
    (project.project_root / "policies" / "churn.yaml").unlink()
    service = PolicyScheduler(project, load_policies(project.project_root))
    service.start(run_jobs=False)
    try:
        assert sorted(service.sync()) == ["removed churn.batch", "removed churn.drift"]
    finally:
        service.shutdown()


def test_history_rows_are_appended_and_read_oldest_first(project):
    engine = store_engine(project)
    history = History(engine)
    history.record("churn.drift", "started")
    history.record("churn.drift", "finished", run_ids=("a", "b"), detail="ok")
    history.record("churn.batch", "skipped", detail="the previous run of this job is still going")
    entries = History(engine).entries("churn.drift")
    assert [e.event for e in entries] == ["started", "finished"]
    assert entries[1].run_ids == ("a", "b")
    assert [e.job_id for e in History(engine).entries(limit=2)] == ["churn.drift", "churn.batch"]
    engine.dispose()


def test_one_job_runs_once_at_a_time_across_processes(project):
    with job_lock(project, "churn.drift"):
        with pytest.raises(JobBusy, match=r"churn\.drift is running already"):
            with job_lock(project, "churn.drift"):
                pass
        with job_lock(project, "churn.batch"):
            pass


def test_the_scheduler_process_gets_every_setting(project):
    settings = project.replace(promotion_gates="drift", webhook_secret="k",
                               spark_conf={"spark.sql.shuffle.partitions": "4"})
    env = daemon_env(settings)
    assert env["WORKBENCH_PROMOTION_GATES"] == "drift"
    assert env["WORKBENCH_WEBHOOK_SECRET"] == "k"
    again = Settings.from_env(environ=env, cwd=Path("/"))
    assert again.project_root == settings.project_root and again.home == settings.home
    assert again.scheduler_store_url == settings.scheduler_store_url
    assert again.spark_conf == {"spark.sql.shuffle.partitions": "4"}
    assert again.performance_threshold is None


class _Proposed:
    run_ids = ("train-run",)

    def __init__(self, trigger: str, tags: dict[str, str]) -> None:
        self.trigger, self.tags = trigger, tags

    def summary(self) -> str:
        return f"proposal after {self.trigger}"


@pytest.fixture
def fakes(monkeypatch):
    """run_policy_job's collaborators: the notebook job, the registry reads, the proposal."""
    from types import SimpleNamespace

    from workbench.policy import proposals, scheduler

    calls: dict[str, list] = {"jobs": [], "proposals": []}
    verdict = {"drift": "drift"}

    def notebook_job(policy, kind, parameters, experiment, tags, settings, say):
        calls["jobs"].append((kind, parameters, experiment, tags))
        return f"{kind}-run"

    def propose(policy, settings, data_date, *, trigger, tags, progress):
        calls["proposals"].append((data_date, trigger, tags))
        return _Proposed(trigger, tags)

    monkeypatch.setattr(scheduler, "_notebook_job", notebook_job)
    monkeypatch.setattr(proposals, "champion_of",
                        lambda policy, settings: SimpleNamespace(label="churn_v2_20240229"))
    monkeypatch.setattr(proposals, "drift_verdict", lambda instance, settings: verdict["drift"])
    monkeypatch.setattr(proposals, "propose", propose)
    return calls, verdict


def test_a_drift_verdict_proposes_a_retrain_of_the_same_period(project, fakes):
    from workbench.policy.scheduler import run_policy_job
    from workbench.policy.schema import load_policy

    calls, verdict = fakes
    policy = load_policy(project.project_root / "policies" / "churn.yaml", project.project_root)
    at = dt.datetime(2024, 5, 1, 6, tzinfo=dt.timezone.utc)
    outcome = run_policy_job(policy, "drift", project, at=at, trigger="schedule")
    [(kind, parameters, experiment, tags)] = calls["jobs"]
    assert (kind, experiment) == ("drift", "churn-monitoring")
    assert parameters == {"model_ref": "churn_v2_20240229",
                          "current_path": str(project.project_root / "data" / "churn_20240430.csv")}
    assert tags["workbench.policy"] == "churn" and tags["workbench.policy.trigger"] == "schedule"
    assert tags["workbench.policy.data_date"] == "20240430"
    [(data_date, trigger, retrain_tags)] = calls["proposals"]
    assert data_date == "20240430" and trigger == "drift: churn_v2_20240229 on 20240430"
    assert retrain_tags["workbench.policy.job"] == "retrain"
    assert retrain_tags["workbench.policy.trigger"] == trigger
    assert outcome.verdict == "drift" and outcome.run_ids == ("drift-run", "train-run")

    verdict["drift"] = "ok"
    calls["proposals"].clear()
    assert run_policy_job(policy, "drift", project, at=at).proposal is None
    assert calls["proposals"] == []


def test_the_performance_job_goes_through_the_seam(project, fakes):
    from types import SimpleNamespace

    from workbench.policy.scheduler import run_policy_job
    from workbench.policy.schema import load_policy

    calls, _ = fakes
    path = project.project_root / "policies" / "churn.yaml"
    path.write_text(path.read_text() + '  performance: {cron: "0 7 * * mon"}\n'
                    "triggers: {performance: {below: 0.8}}\n")
    policy = load_policy(path, project.project_root)
    seen = []

    def check(ref, settings, **kwargs):
        seen.append((ref, kwargs))
        return SimpleNamespace(fired=kwargs["threshold"] > 0.79, reason="roc_auc 0.78 < 0.80")

    at = dt.datetime(2024, 5, 6, 7, tzinfo=dt.timezone.utc)
    outcome = run_policy_job(policy, "performance", project, at=at, performance_trigger=check)
    assert seen == [("churn@champion", {"metric": "roc_auc", "threshold": 0.8, "margin": None,
                                         "window": "month"})]
    assert outcome.verdict == "decay"
    assert calls["proposals"][0][1] == "performance: roc_auc 0.78 < 0.80"
