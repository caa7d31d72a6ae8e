"""RunSummary.as_dict, which the runs route, `workbench runs --json` and the run browser send."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json

from workbench.tracking import RunSummary


def test_as_dict_has_every_field_with_iso_times_and_copies():
    started = dt.datetime(2024, 2, 1, 5, 30, tzinfo=dt.timezone.utc)
    run = RunSummary(run_id="a1", run_name="churn_a1", status="FINISHED", started_at=started,
                     params={"algorithm": "lr"}, metrics={"roc_auc": 0.8}, notebook="/p/t.ipynb",
                     output_notebook=None, url="http://mlflow.test/#/runs/a1",
                     experiment_id="1", tags={"workbench.job": "true"})
    data = run.as_dict()
    assert set(data) == {f.name for f in dataclasses.fields(RunSummary)}
    assert data["started_at"] == "2024-02-01T05:30:00+00:00" and data["ended_at"] is None
    assert data["params"] == {"algorithm": "lr"} and data["params"] is not run.params
    assert json.loads(json.dumps(data)) == data
