"""`workbench demo`: the whole cycle from one command, twice in a row, on its own platform."""
from __future__ import annotations

import os
import subprocess
import sys

import mlflow
import pytest

from workbench.pytest_plugin import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_runs_the_whole_cycle_twice(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "MLFLOW_"))}
    env.update(WORKBENCH_PROJECT_ROOT=str(tmp_path), WORKBENCH_PORT=str(port))
    demo = [sys.executable, "-m", "workbench.cli", "demo"]
    try:
        first = subprocess.run(demo, capture_output=True, text=True, env=env, timeout=600)
        assert first.returncode == 0, first.stderr[-3000:]
        assert "churn_v1_20240131" in first.stdout and "churn_v2_20240131" in first.stdout
        assert "Batch predictions: 5000 rows" in first.stdout
        assert "5000 requests (0 errors)" in first.stdout and "; 5000 predictions logged" in first.stdout
        assert "20240331 (the predictions served): ok" in first.stdout
        assert "20240430 (a file): drift drifted features: monthly_charges, usage_gb, contract" in first.stdout
        assert "-> retrain v2 on 20240430" in first.stdout
        assert f"http://127.0.0.1:{port}" in first.stdout
        assert sorted(p.name for p in (tmp_path / "data").iterdir())[0] == "churn_20240131.csv"

        client = mlflow.MlflowClient(f"http://127.0.0.1:{port}")
        versions = client.search_model_versions("name = 'churn'")
        names = sorted(v.tags["model_name"] for v in versions)
        assert len(names) == 3 and names[0] == "churn_v1_20240131"
        champion = client.get_model_version_by_alias("churn", "champion")
        assert champion.tags["drift_status"] == "drift"  # April, the last check
        challenger = client.get_model_version_by_alias("churn", "challenger")
        # The champion is the better January model's configuration, retrained on February.
        assert champion.tags["data_date"] == "20240229"
        assert champion.tags["model_version"] != challenger.tags["model_version"]
        batch_runs = client.search_runs([client.get_experiment_by_name("churn-batch").experiment_id])
        assert [r.info.status for r in batch_runs] == ["FINISHED"]

        second = subprocess.run(demo, capture_output=True, text=True, env=env, timeout=600)
        assert second.returncode == 0, second.stderr[-3000:]
        assert "registered already" in second.stderr
        assert len(client.search_model_versions("name = 'churn'")) == 3
    finally:
        subprocess.run([sys.executable, "-m", "workbench.cli", "platform", "down"], env=env,
                       capture_output=True, timeout=120)
