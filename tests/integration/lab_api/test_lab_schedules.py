"""The schedules and proposals routes on a project with a policy, its real scheduler process
running beside the tracking server (as `workbench platform up` starts them)."""
from __future__ import annotations

import asyncio
import time

import mlflow
import psutil
import pytest
from test_lab_api import _json
from test_scheduler import _write_policy, project  # noqa: F401 (its fixture)

from workbench.config import Settings
from workbench.platforms import EmbeddedPlatform
from workbench.policy.proposals import Proposal
from workbench.policy.scheduler import history, read_state

pytestmark = pytest.mark.integration


@pytest.fixture
def policy_project(project: tuple[Settings, EmbeddedPlatform],  # noqa: F811 (the fixture)
                   monkeypatch: pytest.MonkeyPatch) -> Settings:
    """test_scheduler's project (a tick notebook, a champion of `tick`) with the tick policy
    (fires far away: the 1st of the month), its platform and scheduler up, and the
    environment a `workbench lab` on it would have."""
    settings, platform = project
    _write_policy(settings, batch="0 5 1 * *", drift="0 6 1 * *")
    assert platform.up().scheduler_pid is not None
    for key, value in settings.as_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("WORKBENCH_PORT", str(settings.port))
    return settings


@pytest.fixture
def jp_server_config(policy_project: Settings) -> dict:
    return {"ServerApp": {"jpserver_extensions": {"workbench.jupyter": True}}}


async def test_schedules_pause_resume_run_now_history_and_proposals(jp_fetch, policy_project):
    settings = policy_project
    scheduler = psutil.Process(read_state(settings)["pid"])

    code, listed = await _json(jp_fetch, "schedules")
    assert code == 200
    assert [(j["id"], j["paused"]) for j in listed] == [("tick.batch", False), ("tick.drift", False)]
    assert listed[0]["next_run"].endswith("T05:00:00+00:00") and listed[0]["cron"] == "0 5 1 * *"

    # Pause and resume are kept in the store the running scheduler reads.
    code, paused = await _json(jp_fetch, "schedules", "tick.drift", "pause", method="POST")
    assert code == 200 and paused["paused"] and paused["next_run"] is None
    _, listed = await _json(jp_fetch, "schedules")
    assert [j["paused"] for j in listed] == [False, True]
    code, resumed = await _json(jp_fetch, "schedules", "tick.drift", "resume", method="POST")
    assert code == 200 and not resumed["paused"]
    assert resumed["next_run"].endswith("T06:00:00+00:00")
    assert scheduler.is_running()

    for action in ("pause", "resume", "run-now"):
        code, body = await _json(jp_fetch, "schedules", "tick.nope", action, method="POST")
        assert code == 404 and body["field"] == "job", action
        assert "tick.nope" in body["message"] and "\n" not in body["message"]

    # Run now: `workbench schedule run-now` in the background, a job with its log; a second
    # one while it runs is refused.
    code, job = await _json(jp_fetch, "schedules", "tick.batch", "run-now", method="POST")
    assert code == 202 and job["schedule"] == "tick.batch"
    code, busy = await _json(jp_fetch, "schedules", "tick.batch", "run-now", method="POST")
    assert code == 409 and busy["field"] == "job" and "tick.batch" in busy["message"]
    deadline = time.monotonic() + 180
    while job["status"] not in ("FINISHED", "FAILED", "KILLED") and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        _, job = await _json(jp_fetch, "jobs", job["id"], params={"log_from": "0"})
    assert job["status"] == "FINISHED", job.get("log")
    run = mlflow.MlflowClient(settings.tracking_uri).get_run(job["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["workbench.policy.trigger"] == "run-now"

    code, entries = await _json(jp_fetch, "schedules", "history",
                                params={"job": "tick.batch", "limit": "10"})
    assert code == 200
    assert [(e["event"], e["trigger"]) for e in entries] == [("started", "run-now"),
                                                            ("finished", "run-now")]
    assert entries[1]["run_ids"] == [job["run_id"]]
    assert entries == [e.as_dict() for e in history(settings, "tick.batch", 10)]
    for limit in ("0", "501", "ten"):
        code, body = await _json(jp_fetch, "schedules", "history", params={"limit": limit})
        assert code == 400 and body["field"] == "limit", limit

    code, proposals = await _json(jp_fetch, "proposals", params={"instance": "tick"})
    assert code == 200 and proposals == []
    # A proposal as the policy records it (a registered-model tag; making a real one
    # retrains, which test_policy does).
    made = Proposal(id="20240301T050000-0001", instance="tick", trigger="drift: tick_v1_20240131",
                    data_date="20240229", candidate="tick_v2_20240229", champion="tick_v1_20240131",
                    metric="roc_auc", candidate_value=0.81, champion_value=0.74, evaluation="x",
                    rows=300, agreement=None, agreement_rows=0, decision="challenger",
                    reason="better on the same rows", at="2024-03-01T05:00:00+00:00")
    mlflow.MlflowClient(settings.tracking_uri).set_registered_model_tag(
        "tick", made.tag_key, made.to_json())
    code, proposals = await _json(jp_fetch, "proposals", params={"instance": "tick"})
    assert code == 200 and proposals == [made.as_dict()]
    code, body = await _json(jp_fetch, "proposals")
    assert code == 400 and body["field"] == "instance"
    code, body = await _json(jp_fetch, "proposals", params={"instance": "nope"})
    assert code == 404
