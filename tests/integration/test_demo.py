"""`workbench demo`: the whole cycle from one command, twice in a row, on its own platform."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import mlflow
import pytest

from workbench.pytest_plugin import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


# Two whole cycles (each about 2 minutes on a quiet machine, serving and the policy's clock
# included) outgrow the suite's 600 s per test on a loaded 2-core machine.
@pytest.mark.timeout(1500)
def test_demo_runs_the_whole_cycle_twice(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "MLFLOW_"))}
    env.update(WORKBENCH_PROJECT_ROOT=str(tmp_path), WORKBENCH_PORT=str(port))
    demo = [sys.executable, "-m", "workbench.cli", "demo"]
    try:
        first = subprocess.run(demo, capture_output=True, text=True, env=env, timeout=600)
        assert first.returncode == 0, first.stderr[-3000:]
        assert "churn_v1_20240131" in first.stdout and "churn_v2_20240131" in first.stdout
        assert "5000 requests (0 errors)" in first.stdout and "; 5000 predictions logged" in first.stdout
        # The policy on the simulated clock: March is fine, April drifts and proposes a retrain.
        assert "churn.drift  20240331: ok" in first.stdout
        assert "churn.drift  20240430: drift" in first.stdout
        assert "  -> proposal churn_v2_20240430: " in first.stdout
        assert "Batch predictions: 5000 rows" in first.stdout  # April's, by the batch job
        assert f"http://127.0.0.1:{port}" in first.stdout
        assert sorted(p.name for p in (tmp_path / "data").iterdir())[0] == "churn_20240131.csv"
        assert (tmp_path / "policies" / "churn.yaml").is_file()

        client = mlflow.MlflowClient(f"http://127.0.0.1:{port}")
        versions = client.search_model_versions("name = 'churn'")
        names = sorted(v.tags["model_name"] for v in versions)
        assert names == ["churn_v1_20240131", "churn_v2_20240131", "churn_v2_20240229",
                         "churn_v2_20240430"]
        tags = client.get_registered_model("churn").tags
        history = [json.loads(v) for k, v in tags.items() if k.startswith("workbench.history.")]
        assert history and all(record["overridden"] == [] for record in history)  # no gate overridden
        proposals = sorted((json.loads(v) for k, v in tags.items()
                            if k.startswith("workbench.proposal.")), key=lambda p: p["id"])
        assert [p["candidate"] for p in proposals] == ["churn_v2_20240229", "churn_v2_20240430"]
        april = proposals[1]
        assert april["trigger"].startswith("drift: churn_v2_") and april["data_date"] == "20240430"
        # Judged on the same rows: April's held-out rows, both metrics measured there.
        assert april["evaluation"].startswith("20240430: churn_20240430.csv, 1250 labelled rows")
        assert april["rows"] == 1250 and april["candidate_value"] and april["champion_value"]
        assert april["agreement"] is not None and april["agreement_rows"] == 5000
        assert april["decision"] in ("champion", "challenger")
        holder = client.get_model_version_by_alias("churn", april["decision"])
        assert holder.tags["model_name"] == "churn_v2_20240430"
        batch_runs = client.search_runs([client.get_experiment_by_name("churn-batch").experiment_id])
        assert [r.info.status for r in batch_runs] == ["FINISHED", "FINISHED"]
        assert {r.data.tags["workbench.policy.trigger"] for r in batch_runs} == {"demo clock"}
        # The clock's fires are in the scheduler's history, at their simulated times.
        shown = subprocess.run([sys.executable, "-m", "workbench.cli", "schedule", "history",
                                "--json"], capture_output=True, text=True, env=env, timeout=120)
        fires = [(e["job_id"], e["event"], e["scheduled_for"]) for e in json.loads(shown.stdout)
                 if e["trigger"] == "demo clock"]
        assert [f for f in fires if f[1] == "finished"] == [
            ("churn.batch", "finished", "2024-04-01T05:00:00+00:00"),
            ("churn.drift", "finished", "2024-04-01T06:00:00+00:00"),
            ("churn.batch", "finished", "2024-05-01T05:00:00+00:00"),
            ("churn.drift", "finished", "2024-05-01T06:00:00+00:00")]

        second = subprocess.run(demo, capture_output=True, text=True, env=env, timeout=600)
        assert second.returncode == 0, second.stderr[-3000:]
        assert "registered already" in second.stderr
        assert len(client.search_model_versions("name = 'churn'")) == 4
    finally:
        subprocess.run([sys.executable, "-m", "workbench.cli", "platform", "down"], env=env,
                       capture_output=True, timeout=120)
