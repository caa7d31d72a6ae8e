"""The widgets driven like a user would (ticks, click()), against a real mlflow server.

Every check reads the registry afterwards: where the aliases point, which audit tags the
promotion wrote, and that a refused promotion changed nothing.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError

from workbench import tracking
from workbench.errors import ModelNotFound
from workbench.monitoring.service import check_model_drift
from workbench.naming import ModelName
from workbench.registry import AUDIT_PREFIX, Instance, Registry
from workbench.widgets import ModelBoard, RunBrowser

pytestmark = pytest.mark.integration


def _frame(rows: int = 300, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(shift, 1, rows), "b": rng.normal(shift, 1, rows)})


def _audit(registry: Registry, instance: Instance) -> dict[str, str]:
    tags = registry.client.get_model_version(instance.registered_model, str(instance.number)).tags
    return {k[len(AUDIT_PREFIX) + 1:]: v for k, v in tags.items() if k.startswith(AUDIT_PREFIX)}


def test_board_promotes_after_confirmation_and_leaves_an_audit_trail(registry, register,
                                                                     unique_instance):
    v1 = register(ModelName(unique_instance, "v1", "20240131"), 0.70)
    v2 = register(ModelName(unique_instance, "v2", "20240131"), 0.80)
    v3 = register(ModelName(unique_instance, "v3", "20240131"), None)
    registry.promote(v1, "champion", reason="first", by="alice")

    board = ModelBoard(unique_instance, registry=registry)
    assert [i.full_name for i in board.rows] == [v2.full_name, v1.full_name, v3.full_name]
    assert "/project/notebooks/train.ipynb" in board.grid.children[-1].value  # created by
    assert board.holder("champion").number == v1.number

    board.checkboxes[v2.number].value = True
    assert "+0.1000" in board.comparison.value
    board.promote_buttons["champion"].click()
    assert f"champion: {v1.full_name} -&gt; {v2.full_name}" in board.confirm_text.value
    assert registry.resolve(f"{unique_instance}@champion").number == v1.number  # not yet
    board.reason.value = "better roc_auc"
    board.confirm_button.click()

    assert registry.resolve(f"{unique_instance}@champion").number == v2.number
    audit = _audit(registry, v2)
    assert audit["champion.reason"] == "better roc_auc"
    assert audit["champion.replaced"] == v1.full_name
    assert audit["champion.override"] == "-"
    assert audit["champion.by"] and audit["champion.at"]
    assert "champion.retired_at" in _audit(registry, v1)
    assert f"{v1.full_name} -&gt; {v2.full_name}" in board.message.value
    assert board.holder("champion").number == v2.number  # the board re-read the registry
    # The history under the board, newest first, as the registry keeps it.
    assert [(r.from_version, r.to_version) for r in board.records] == [
        (None, v1.number), (v1.number, v2.number)]
    newest = board.history.value.split("<tr>")[2]
    assert "better roc_auc" in newest and str(v2.full_name) in newest


def test_board_shows_gate_refusals_and_promotes_only_with_an_override_and_reason(
        registry, register, unique_instance, settings):
    champion = register(ModelName(unique_instance, "v1", "20240131"), 0.80)
    candidate = register(ModelName(unique_instance, "v2", "20240131"), 0.75)
    registry.promote(champion, "champion", by="alice")
    # A real drift check on shifted data: monitoring tags the version drift_status=drift.
    check = check_model_drift(candidate, settings, current=_frame(shift=3.0, seed=9),
                              registry=registry, report_dir=settings.home / "widget-drift")
    assert check.result.verdict == "drift"

    board = ModelBoard(candidate.full_name, registry=registry)
    assert board.selected == [candidate.number]
    assert sum(">drift</span>" in str(getattr(c, "value", "")) for c in board.grid.children) == 1

    board.promote_buttons["challenger"].click()  # the drift gate holds for challenger too
    board.confirm_button.click()
    assert "Refused:" in board.message.value and "found drift" in board.message.value
    board.cancel_button.click()

    board.promote_buttons["champion"].click()
    assert "gate <b>metric</b>" in board.confirm_text.value
    board.confirm_button.click()
    assert "worse than the champion" in board.message.value
    assert "workbench-error" in board.message._dom_classes
    assert registry.resolve(f"{unique_instance}@champion").number == champion.number
    with pytest.raises(ModelNotFound):
        registry.resolve(f"{unique_instance}@challenger")

    board.override.value = True
    board.confirm_button.click()
    assert "needs a reason" in board.message.value
    assert registry.resolve(f"{unique_instance}@champion").number == champion.number

    board.reason.value = "April drift is seasonal; roc_auc measured on older data"
    board.confirm_button.click()
    assert registry.resolve(f"{unique_instance}@champion").number == candidate.number
    audit = _audit(registry, candidate)
    assert audit["champion.override"] == "metric,drift"
    assert audit["champion.reason"] == "April drift is seasonal; roc_auc measured on older data"
    assert board.last_promotion is not None
    assert board.last_promotion.overridden == ("metric", "drift")


def test_run_browser_lists_filters_and_links_runs(registry, register, unique_instance, settings):
    register(ModelName(unique_instance, "v1", "20240131"), 0.70, {"algorithm": "logistic"})
    register(ModelName(unique_instance, "v2", "20240131"), 0.80, {"algorithm": "boosting"})
    failed = tracking.start_run(registry.client, unique_instance, "broken", {})
    registry.client.set_terminated(failed, "FAILED")

    browser = RunBrowser(unique_instance, registry=registry)
    assert [r.run_name for r in browser.visible] == [
        "broken", f"{unique_instance}_v2_20240131", f"{unique_instance}_v1_20240131"]
    assert f"{settings.tracking_uri}/#/experiments/" in browser.table.value
    assert "algorithm=boosting" in browser.table.value and "0.8000" in browser.table.value

    browser.filter_box.value = "algorithm=log"
    assert [r.run_name for r in browser.visible] == [f"{unique_instance}_v1_20240131"]
    browser.filter_text = ""
    browser.status = "FAILED"
    assert [r.run_id for r in browser.visible] == [failed]


def test_mlops_track_board_shows_the_tracked_instance(shell, registry, register, unique_instance):
    v1 = register(ModelName(unique_instance, "v1", "20240131"), 0.70)
    with pytest.raises(UsageError, match="no tracked instance"):
        shell.run_line_magic("mlops_track", "--board")
    shell.run_line_magic("mlops_track", f"--instance {unique_instance} --version v2 "
                                        "--data-date 20240131 --no-autolog")
    board = shell.run_line_magic("mlops_track", "--board")
    assert isinstance(board, ModelBoard)
    assert board.registered_model == unique_instance
    assert [i.number for i in board.rows] == [v1.number]
    shell.run_line_magic("mlops_track", "--end")
    with pytest.raises(UsageError, match="no registered model 'nosuch'"):
        shell.run_line_magic("mlops_track", "--board --instance nosuch")
