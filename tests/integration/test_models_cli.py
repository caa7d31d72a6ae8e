"""`workbench models list|show|compare|promote` through a real subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from workbench import tracking
from workbench.naming import ModelName

pytestmark = pytest.mark.integration


def _cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **settings.as_env()}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120)


@pytest.fixture
def two_instances(registry, unique_instance):
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"a": rng.normal(size=100)})
    y = (X.a > 0).astype(int)
    for version, auc in (("v1", 0.71), ("v2", 0.88)):
        name = ModelName(unique_instance, version, "20240131")
        run_id = tracking.start_run(registry.client, unique_instance, str(name), {})
        registry.client.log_metric(run_id, "roc_auc", auc)
        registry.register(LogisticRegression().fit(X, y), name, run_id=run_id, input_example=X)
    return unique_instance


def test_list_compare_promote_show(settings, two_instances):
    instance = two_instances
    listed = _cli(settings, "models", "list", instance)
    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.splitlines()
    assert rows[0].split()[:6] == ["name", "model", "mlflow", "version", "data_date", "roc_auc"]
    assert rows[1].startswith(f"{instance}_v2_20240131") and "0.8800" in rows[1]

    compared = _cli(settings, "models", "compare", instance)
    assert compared.returncode == 0, compared.stderr
    assert compared.stdout.splitlines()[1].split()[:2] == ["1", f"{instance}_v2_20240131"]

    promoted = _cli(settings, "models", "promote", f"{instance}_v2_20240131", "--reason", "best auc")
    assert promoted.returncode == 0 and promoted.stdout.strip() == f"champion -> {instance}_v2_20240131"
    # v1 is worse on roc_auc: the metric gate refuses it, in one line that says how to override.
    refused = _cli(settings, "models", "promote", f"{instance}_v1_20240131")
    assert refused.returncode == 1 and refused.stdout == ""
    assert len(refused.stderr.strip().splitlines()) == 1
    assert (f"error: champion not moved to {instance}_v1_20240131: {instance}_v1_20240131 has "
            f"roc_auc 0.7100, worse than the champion {instance}_v2_20240131") in refused.stderr
    assert "--force --reason TEXT" in refused.stderr
    no_reason = _cli(settings, "models", "promote", f"{instance}_v1_20240131", "--force")
    assert no_reason.returncode == 1 and "needs a reason" in no_reason.stderr
    again = _cli(settings, "models", "promote", f"{instance}_v1_20240131", "--force",
                 "--reason", "rollback")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == (f"champion -> {instance}_v1_20240131 (was {instance}_v2_20240131)"
                                    " [overrode the metric gate]")

    shown = json.loads(_cli(settings, "models", "show", f"{instance}@champion").stdout)
    assert shown["full_name"] == f"{instance}_v1_20240131"
    assert shown["model_version"] == "v1" and shown["data_date"] == "20240131"
    assert "champion" in shown["aliases"] and shown["ui"].endswith(f"/#/models/{instance}/versions/1")
    as_json = json.loads(_cli(settings, "models", "list", instance, "--json").stdout)
    assert [i["full_name"] for i in as_json] == [f"{instance}_v2_20240131", f"{instance}_v1_20240131"]


@pytest.mark.parametrize("args, message", [
    (("models", "show", "churn_v1_2024"), "data_date '2024' is not YYYYMMDD"),
    (("models", "show", "nosuch@champion"), "no registered model 'nosuch'"),
    (("models", "list", "nosuch"), "no registered model 'nosuch'"),
])
def test_bad_references_are_one_line(settings, args, message):
    done = _cli(settings, *args)
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: ") and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_history_and_rollback(settings, two_instances):
    instance = two_instances
    v1, v2 = f"{instance}_v1_20240131", f"{instance}_v2_20240131"
    empty = _cli(settings, "models", "history", instance, "--json")
    assert empty.returncode == 0 and json.loads(empty.stdout) == []
    for ref, reason in ((v1, "first"), (v2, "best auc")):
        done = _cli(settings, "models", "promote", ref, "--reason", reason)
        assert done.returncode == 0, done.stderr

    no_reason = _cli(settings, "models", "rollback", instance)
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr  # a usage error
    rolled = _cli(settings, "models", "rollback", instance, "--reason", "v2 mispredicts")
    assert rolled.returncode == 0, rolled.stderr
    # v1 is worse on roc_auc: the rollback goes ahead and says it bypassed the gate.
    assert rolled.stdout.strip() == f"champion -> {v1} (was {v2}) [bypassed the metric gate]"
    shown = json.loads(_cli(settings, "models", "show", f"{instance}@champion").stdout)
    assert shown["full_name"] == v1 and shown["serialization"] == "skops"

    history = _cli(settings, "models", "history", instance, "--json")
    assert history.returncode == 0, history.stderr
    records = json.loads(history.stdout)
    assert [(r["action"], r["alias"], r["from"], r["to"], r["reason"], r["overridden"])
            for r in records] == [
        ("promote", "champion", None, v1, "first", []),
        ("promote", "champion", v1, v2, "best auc", []),
        ("rollback", "champion", v2, v1, "v2 mispredicts", ["metric"]),
    ]
    assert all(r["by"] and r["at"] and r["id"] for r in records)
    table = _cli(settings, "models", "history", instance)
    lines = table.stdout.splitlines()
    assert table.returncode == 0 and lines[0].split() == [
        "when", "action", "alias", "from", "to", "by", "overridden", "reason"]
    assert len(lines) == 4 and lines[3].split()[1:5] == ["rollback", "champion", v2, v1]

    # v1 replaced nothing: one line saying so, exit 1, and the alias stays.
    again = _cli(settings, "models", "rollback", instance, "--reason", "once more")
    assert again.returncode == 1 and again.stderr.startswith("error: ")
    assert len(again.stderr.strip().splitlines()) == 1 and "nothing to roll back to" in again.stderr
    assert len(json.loads(_cli(settings, "models", "history", instance, "--json").stdout)) == 3
    missing = _cli(settings, "models", "history", f"{instance}-none")
    assert missing.returncode == 1 and "no registered model" in missing.stderr
