"""The widgets' logic without a browser or a server: a fake registry, clicks via click()."""
from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from workbench import tracking
from workbench.config import Settings
from workbench.errors import OverrideNeedsReason, PromotionRefused
from workbench.promotion import check_gates
from workbench.registry import HistoryRecord, Instance, Promotion
from workbench.tracking import RunSummary
from workbench.widgets import ModelBoard, RunBrowser
from workbench.widgets.board import VERSION_SORT


class FakeRegistry:
    """The slice of Registry the widgets use, in memory, with the real promotion gates."""

    def __init__(self, settings: Settings, instances: list[Instance]) -> None:
        self.settings = settings
        self.instances = {i.number: i for i in instances}
        self.calls: list[tuple[int, str, str, bool]] = []
        self.records: list[HistoryRecord] = []

    def history(self, registered_model: str, alias: str | None = None) -> list[HistoryRecord]:
        return [r for r in self.records if alias in (None, r.alias)]

    def list_instances(self, registered_model: str) -> list[Instance]:
        return sorted(self.instances.values(), key=lambda i: -i.number)

    def resolve(self, ref: str | Instance) -> Instance:
        if isinstance(ref, Instance):
            return self.instances[ref.number]
        return next(i for i in self.instances.values() if ref in (i.full_name, i.uri))

    def _holder(self, alias: str) -> Instance | None:
        return next((i for i in self.instances.values() if alias in i.aliases), None)

    def check_promotion(self, ref: str | Instance, alias: str = "champion"):
        return check_gates(self.resolve(ref), self._holder(alias), alias, self.settings)

    def promote(self, ref: str | Instance, alias: str = "champion", *, reason: str = "",
                by: str | None = None, override: bool = False) -> Promotion:
        self.calls.append((self.resolve(ref).number, alias, reason, override))
        if override and not reason.strip():
            raise OverrideNeedsReason("an override needs a reason")
        failures = self.check_promotion(ref, alias)
        if failures and not override:
            raise PromotionRefused(failures[0].message, tuple(f.gate for f in failures), alias,
                                   self.resolve(ref).label)
        target, previous = self.resolve(ref), self._holder(alias)
        self.records.append(HistoryRecord(
            id=f"{len(self.records):04d}", action="promote", alias=alias,
            from_version=previous.number if previous else None,
            from_name=previous.label if previous else None, to_version=target.number,
            to_name=target.label, by=by or "tester", at=f"2024-05-0{len(self.records) + 1}",
            reason=reason, overridden=tuple(f.gate for f in failures)))
        if previous is not None:
            self.instances[previous.number] = dataclasses.replace(
                previous, aliases=tuple(a for a in previous.aliases if a != alias))
        self.instances[target.number] = dataclasses.replace(
            self.instances[target.number], aliases=(*self.instances[target.number].aliases, alias))
        return Promotion(alias, self.instances[target.number], previous, by or "tester", reason,
                         tuple(f.gate for f in failures))

    def ui_url(self, instance: Instance) -> str:
        return f"http://mlflow.test/#/models/{instance.registered_model}/versions/{instance.number}"

    def run_url(self, instance: Instance) -> str | None:
        return None


def _instance(number: int, auc: float | None, aliases: tuple[str, ...] = (),
              drift: str | None = None) -> Instance:
    return Instance(
        registered_model="churn", number=number, full_name=f"churn_v{number}_20240131",
        model_version=f"v{number}", data_date="20240131", run_id=f"run{number}", source="",
        aliases=aliases, tags={"drift_status": drift} if drift else {},
        metrics={**({"roc_auc": auc} if auc is not None else {}), "f1": 0.5},
    )


@pytest.fixture
def registry(tmp_path: Path) -> FakeRegistry:
    settings = Settings.from_env(environ={}, cwd=tmp_path)
    return FakeRegistry(settings, [
        _instance(1, 0.80, aliases=("champion",)),
        _instance(2, 0.85),
        _instance(3, 0.70, drift="drift"),
        _instance(4, None),
    ])


def test_rows_sort_by_the_primary_metric_best_first_and_missing_last(registry):
    board = ModelBoard("churn", registry=registry)
    assert board.sort_by == "roc_auc" and board.descending
    assert [i.number for i in board.rows] == [2, 1, 3, 4]
    board.descending = False
    assert [i.number for i in board.rows] == [3, 1, 2, 4]
    board.sort_by = VERSION_SORT
    assert [i.number for i in board.rows] == [1, 2, 3, 4]
    assert set(board.sort_dropdown.options) == {"roc_auc", "f1", VERSION_SORT}
    # The grid shows the rows in that order: a header row, then one checkbox per row.
    checkboxes = [c for c in board.grid.children if "workbench-select" in c._dom_classes]
    assert checkboxes == [board.checkboxes[n] for n in (1, 2, 3, 4)]
    assert "champion churn_v1_20240131" in board.title.value


def test_ticking_rows_selects_them_and_compares_with_the_champion(registry):
    board = ModelBoard("churn", registry=registry)
    assert all(b.disabled for b in board.promote_buttons.values())
    board.checkboxes[2].value = True
    assert board.selected == [2]
    assert not board.promote_buttons["champion"].disabled
    assert "champion churn_v1_20240131" in board.comparison.value
    assert "+0.0500" in board.comparison.value  # 0.85 against the champion's 0.80
    board.selected = [2, 3]
    assert board.checkboxes[3].value and board.promote_buttons["champion"].disabled
    assert "-0.1000" in board.comparison.value
    board.checkboxes[2].value = False
    assert board.selected == [3]


def test_a_full_name_selects_that_instance(registry):
    board = ModelBoard("churn_v2_20240131", registry=registry)
    assert board.registered_model == "churn" and board.selected == [2]
    assert board.checkboxes[2].value


def test_promote_asks_for_confirmation_then_moves_the_alias(registry):
    board = ModelBoard("churn", registry=registry)
    board.selected = [2]
    board.promote_buttons["champion"].click()
    assert board.pending == "champion"
    assert board.confirm_box.layout.display != "none"
    assert "champion: churn_v1_20240131 -&gt; churn_v2_20240131" in board.confirm_text.value
    assert registry.calls == []  # nothing changes before the confirmation

    board.cancel_button.click()
    assert board.pending == "" and board.confirm_box.layout.display == "none"
    assert registry.calls == []

    board.promote_buttons["champion"].click()
    board.reason.value = "better roc_auc"
    board.confirm_button.click()
    assert registry.calls == [(2, "champion", "better roc_auc", False)]
    assert board.pending == "" and board.confirm_box.layout.display == "none"
    assert board.holder("champion").number == 2  # the board re-read the registry
    assert "champion: churn_v1_20240131 -&gt; churn_v2_20240131" in board.message.value
    assert "workbench-error" not in board.message._dom_classes
    assert board.last_promotion is not None and board.last_promotion.previous.number == 1


def test_a_gate_refusal_is_shown_and_can_be_overridden_with_a_reason(registry):
    board = ModelBoard("churn", registry=registry)
    board.selected = [3]  # worse than the champion and drifted
    board.promote_buttons["champion"].click()
    assert "gate <b>metric</b>" in board.confirm_text.value
    assert "gate <b>drift</b>" in board.confirm_text.value
    board.confirm_button.click()
    assert "Refused:" in board.message.value and "worse than the champion" in board.message.value
    assert "workbench-error" in board.message._dom_classes
    assert board.pending == "champion" and board.override.layout.display != "none"
    assert board.holder("champion").number == 1

    board.override.value = True
    board.confirm_button.click()  # an override without a reason is refused too
    assert "needs a reason" in board.message.value and board.holder("champion").number == 1

    board.reason.value = "drift is seasonal"
    board.confirm_button.click()
    assert registry.calls[-1] == (3, "champion", "drift is seasonal", True)
    assert board.holder("champion").number == 3
    assert "overrode the metric, drift gate" in board.message.value


def test_the_board_shows_the_history_newest_first_and_refreshes_it(registry):
    board = ModelBoard("churn", registry=registry)
    assert "No promotions yet" in board.history.value
    board.selected = [2]
    board.promote_buttons["champion"].click()
    board.reason.value = "better roc_auc"
    board.confirm_button.click()
    board.selected = [3]
    board.promote_buttons["champion"].click()
    board.override.value = True
    board.reason.value = "drift is seasonal"
    board.confirm_button.click()

    rows = board.history.value.split("<tr>")[2:]  # after the header row
    assert len(rows) == 2
    assert "churn_v3_20240131" in rows[0] and "metric, drift" in rows[0]  # newest first
    assert "churn_v1_20240131" in rows[1] and "better roc_auc" in rows[1]
    assert [r.to_version for r in board.records] == [2, 3]


def test_challenger_only_has_the_drift_gate(registry):
    board = ModelBoard("churn", registry=registry)
    board.selected = [4]  # no metric at all: fine for a challenger
    board.promote_buttons["challenger"].click()
    assert "challenger: (none) -&gt; churn_v4_20240131" in board.confirm_text.value
    board.confirm_button.click()
    assert board.holder("challenger").number == 4


def test_asking_without_one_selected_instance_is_refused(registry):
    board = ModelBoard("churn", registry=registry)
    with pytest.raises(ValueError, match="exactly one"):
        board.ask("champion")
    board.selected = [2]
    with pytest.raises(ValueError, match="not one of"):
        board.ask("production")
    board.ask("challenger")
    board.selected = [1, 2]  # the confirmation no longer matches what is selected
    assert board.pending == ""


def _run(run_id: str, status: str, params: dict[str, str], auc: float, output: str | None = None):
    return RunSummary(run_id=run_id, run_name=f"churn_{run_id}", status=status,
                      started_at=dt.datetime(2024, 2, 1, tzinfo=dt.timezone.utc), params=params,
                      metrics={"roc_auc": auc}, notebook="/elsewhere/train.ipynb",
                      output_notebook=output, url=f"http://mlflow.test/#/runs/{run_id}")


def test_run_browser_filters_by_text_and_status(registry, monkeypatch, tmp_path):
    output = tmp_path / ".workbench" / "jobs" / "train-out.ipynb"
    runs = [_run("a1", "FINISHED", {"algorithm": "logistic_regression"}, 0.8, str(output)),
            _run("b2", "FAILED", {"algorithm": "gradient_boosting"}, 0.7)]
    monkeypatch.setattr(tracking, "list_runs", lambda client, settings, experiment: runs)
    registry.client = None
    browser = RunBrowser("churn", registry=registry)
    assert [r.run_id for r in browser.visible] == ["a1", "b2"]
    assert 'href="http://mlflow.test/#/runs/a1"' in browser.table.value
    assert 'href="/lab/tree/.workbench/jobs/train-out.ipynb"' in browser.table.value
    assert "algorithm=gradient_boosting" in browser.table.value
    assert "0.8000" in browser.table.value

    browser.filter_box.value = "GRADIENT"
    assert [r.run_id for r in browser.visible] == ["b2"]
    assert "a1" not in browser.table.value and "1 of 2 run(s)" in browser.title.value
    browser.filter_text = ""
    browser.status_dropdown.value = "FINISHED"
    assert [r.run_id for r in browser.visible] == ["a1"]


def test_a_regression_board_ranks_lower_errors_first_from_a_roc_auc_project(tmp_path):
    from workbench import tasks

    recorded = {tasks.PRIMARY_METRIC_TAG: "rmse", tasks.GREATER_IS_BETTER_TAG: "false"}

    def version(number: int, rmse: float, aliases: tuple[str, ...] = ()) -> Instance:
        return Instance(registered_model="price", number=number,
                        full_name=f"price_v{number}_20240131", model_version=f"v{number}",
                        data_date="20240131", run_id=f"run{number}", source="", aliases=aliases,
                        tags=recorded, metrics={"rmse": rmse, "r2": 1 - rmse / 100})

    # The board's project has the default primary metric (roc_auc): the versions say rmse.
    settings = Settings.from_env(environ={}, cwd=tmp_path)
    registry = FakeRegistry(settings, [version(1, 50.0, ("champion",)), version(2, 45.0),
                                       version(3, 60.0)])
    board = ModelBoard("price", registry=registry)
    assert board.sort_by == "rmse" and not board.descending
    assert [i.number for i in board.rows] == [2, 1, 3]
    assert "rmse &darr;" in board.grid.children[4].value and "lower is better" in \
        board.grid.children[4].value
    board.sort_by = "r2"  # a score: best first is largest first
    assert board.descending and [i.number for i in board.rows] == [2, 1, 3]
    board.selected = [2]
    # 45 against the champion's 50: lower, so better (green), on both metrics.
    assert '<span style="color:#2e7d32">-5.0000</span>' in board.comparison.value
    assert '<span style="color:#2e7d32">+0.0500</span>' in board.comparison.value
