"""Promotion gates as pure functions over Instance values; the history and rollback logic."""
from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from mlflow.exceptions import MlflowException

from workbench.config import Settings
from workbench.errors import ConfigError, ModelNotFound, OverrideNeedsReason, TrackingError
from workbench.promotion import DRIFT, METRIC, PERFORMANCE, check_gates, configured_gates
from workbench.registry import HISTORY_PREFIX, HistoryRecord, Instance, Registry
from workbench.registry.types import PROMOTE, ROLLBACK, history_from_tags, rollback_source


def _settings(tmp_path: Path, **overrides: str) -> Settings:
    return Settings.from_env(environ={}, cwd=tmp_path, **overrides)


def _instance(number: int, auc: float | None = None, drift: str | None = None) -> Instance:
    return Instance(
        registered_model="churn", number=number, full_name=f"churn_v{number}_20240131",
        model_version=f"v{number}", data_date="20240131", run_id=f"run{number}", source="",
        tags={"drift_status": drift, "drift_checked_at": "2024-05-01T00:00:00"} if drift else {},
        metrics={"roc_auc": auc} if auc is not None else {},
    )


def test_a_worse_champion_is_refused_and_a_better_or_equal_one_passes(tmp_path):
    settings = _settings(tmp_path)
    champion = _instance(1, auc=0.80)
    [failure] = check_gates(_instance(2, auc=0.75), champion, "champion", settings)
    assert failure.gate == METRIC
    assert failure.message == ("churn_v2_20240131 has roc_auc 0.7500, worse than the champion "
                               "churn_v1_20240131 (0.8000; higher is better)")
    assert check_gates(_instance(3, auc=0.80), champion, "champion", settings) == []
    assert check_gates(_instance(4, auc=0.81), champion, "champion", settings) == []


def test_the_metric_direction_comes_from_the_settings(tmp_path):
    settings = _settings(tmp_path, primary_metric="roc_auc", greater_is_better="false")
    champion = _instance(1, auc=0.30)
    assert check_gates(_instance(2, auc=0.20), champion, "champion", settings) == []
    [failure] = check_gates(_instance(3, auc=0.40), champion, "champion", settings)
    assert "lower is better" in failure.message


def test_missing_metrics_and_missing_champions(tmp_path):
    settings = _settings(tmp_path)
    # No champion yet, or a champion without the metric: nothing to be worse than.
    assert check_gates(_instance(2, auc=0.1), None, "champion", settings) == []
    assert check_gates(_instance(2, auc=0.1), _instance(1), "champion", settings) == []
    # A candidate without the metric cannot show it is not worse.
    [failure] = check_gates(_instance(2), _instance(1, auc=0.8), "champion", settings)
    assert failure.gate == METRIC and "has no roc_auc" in failure.message


def test_drift_gates_champion_and_challenger_and_metric_only_champion(tmp_path):
    settings = _settings(tmp_path)
    drifted = _instance(2, auc=0.5, drift="drift")
    holder = _instance(1, auc=0.9)
    assert [f.gate for f in check_gates(drifted, holder, "champion", settings)] == [METRIC, DRIFT]
    [failure] = check_gates(drifted, holder, "challenger", settings)
    assert failure.gate == DRIFT
    assert failure.message == ("the last drift check of churn_v2_20240131 "
                               "(2024-05-01T00:00:00) found drift")
    assert check_gates(_instance(3, auc=0.5, drift="ok"), holder, "challenger", settings) == []
    assert check_gates(_instance(3, auc=0.5, drift="warn"), None, "champion", settings) == []


def test_re_pointing_an_alias_at_its_holder_is_not_gated(tmp_path):
    holder = _instance(1, auc=0.5, drift="drift")
    assert check_gates(holder, holder, "champion", _settings(tmp_path)) == []


def test_gates_are_configurable(tmp_path):
    assert configured_gates(_settings(tmp_path)) == (METRIC, DRIFT, PERFORMANCE)
    only_drift = _settings(tmp_path, promotion_gates=" Drift ")
    assert configured_gates(only_drift) == (DRIFT,)
    assert check_gates(_instance(2, auc=0.1), _instance(1, auc=0.9), "champion", only_drift) == []
    assert configured_gates(_settings(tmp_path, promotion_gates="")) == ()
    with pytest.raises(ConfigError, match=r"unknown gate.*accuracy"):
        configured_gates(_settings(tmp_path, promotion_gates="metric,accuracy"))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_nan_or_infinite_metric_is_refused_with_one_line(tmp_path, value):
    settings = _settings(tmp_path)
    [failure] = check_gates(_instance(2, auc=value), _instance(1, auc=0.8), "champion", settings)
    assert failure.gate == METRIC
    assert "not a finite number" in failure.message and "\n" not in failure.message
    # Against a champion whose metric is NaN there is nothing to be worse than.
    assert check_gates(_instance(2, auc=0.5), _instance(1, auc=float("nan")), "champion",
                       settings) == []


# -- the promotion history ---------------------------------------------------------------------
def _record(n: int, alias: str, frm: int | None, to: int, action: str = PROMOTE,
            when: dt.datetime | None = None) -> HistoryRecord:
    when = when or dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=n)
    return HistoryRecord(
        id=HistoryRecord.new_id(when), action=action, alias=alias, from_version=frm,
        from_name=f"churn_v{frm}_20240131" if frm else None, to_version=to,
        to_name=f"churn_v{to}_20240131", by="bob", at=when.isoformat(), reason=f"r{n}",
    )


def test_history_comes_back_oldest_first_whatever_the_tag_order():
    records = [_record(n, "champion", n, n + 1) for n in range(1, 6)]
    tags = {r.tag_key: r.to_json() for r in reversed(records)}
    tags["workbench.convention"] = "{instance}_{version}_{data_date}"
    tags[f"{HISTORY_PREFIX}broken"] = "not json"  # a damaged record is skipped, not fatal
    assert history_from_tags(tags) == records
    # Two records in the same microsecond still get distinct keys.
    now = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
    assert HistoryRecord.new_id(now) != HistoryRecord.new_id(now)


def test_history_round_trips_and_filters_by_alias():
    champion = _record(1, "champion", None, 1)
    challenger = dataclasses.replace(_record(2, "challenger", None, 2), overridden=("drift",))
    tags = {r.tag_key: r.to_json() for r in (champion, challenger)}
    assert history_from_tags(tags, "challenger") == [challenger]
    data = challenger.as_dict()
    assert (data["alias"], data["from"], data["to"], data["overridden"]) == (
        "challenger", None, "churn_v2_20240131", ["drift"])
    assert set(data) >= {"by", "at", "reason", "action", "from_version", "to_version"}


def test_rollback_walks_back_through_promotions_not_rollbacks():
    # champion: 1 -> 2 -> 3, then rolled back to 2.
    history = [_record(1, "champion", None, 1), _record(2, "champion", 1, 2),
               _record(3, "champion", 2, 3), _record(4, "challenger", None, 3)]
    assert rollback_source(history, "champion", 3) == history[2]  # back to 2
    history.append(_record(5, "champion", 3, 2, action=ROLLBACK))
    # A second rollback goes on to 1, it does not undo the first.
    source = rollback_source(history, "champion", 2)
    assert source == history[1] and source.from_version == 1
    # The first promotion replaced nothing: nothing to roll back to.
    assert rollback_source(history, "champion", 1) is None
    assert rollback_source(history, "challenger", 3) is None
    assert rollback_source(history, "champion", None) is None


def test_re_promoting_the_holder_is_not_a_rollback_point():
    history = [_record(1, "champion", 1, 2), _record(2, "champion", 2, 2)]
    assert rollback_source(history, "champion", 2) == history[0]


# -- promote and rollback over a fake client -----------------------------------------------------
class _FakeClient:
    """The MlflowClient calls promote and rollback make, in memory, with a call log."""

    def __init__(self, aucs: dict[int, float]) -> None:
        self.aliases: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self.version_tags: dict[int, dict[str, str]] = {n: {} for n in aucs}
        self.aucs = aucs
        self.calls: list[str] = []
        self.fail_alias = False

    def get_registered_model(self, name: str) -> Any:
        return SimpleNamespace(name=name, aliases=dict(self.aliases), tags=dict(self.tags))

    def get_model_version(self, name: str, number: str) -> Any:
        n = int(number)
        if n not in self.aucs:
            raise MlflowException("no such version", error_code="RESOURCE_DOES_NOT_EXIST")
        return SimpleNamespace(
            name=name, version=number, run_id=f"run{n}", source="", creation_timestamp=0,
            aliases=[a for a, v in self.aliases.items() if v == number],
            tags={"model_name": f"churn_v{n}_20240131", **self.version_tags[n]})

    def get_run(self, run_id: str) -> Any:
        n = int(run_id[3:])
        return SimpleNamespace(data=SimpleNamespace(metrics={"roc_auc": self.aucs[n]}, params={}),
                               info=SimpleNamespace(experiment_id="1"))

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        assert key not in self.tags, "a history record is never overwritten"
        self.calls.append("record")
        self.tags[key] = value

    def set_registered_model_alias(self, name: str, alias: str, number: str) -> None:
        if self.fail_alias:
            raise MlflowException("database is locked", error_code="INTERNAL_ERROR")
        self.calls.append(f"alias {alias}={number}")
        self.aliases[alias] = number

    def set_model_version_tag(self, name: str, number: str, key: str, value: str) -> None:
        self.version_tags[int(number)][key] = value


def _registry(tmp_path: Path, client: _FakeClient) -> Registry:
    return Registry(_settings(tmp_path), client=client)  # type: ignore[arg-type]


def test_the_record_is_written_before_the_alias_moves(tmp_path):
    client = _FakeClient({1: 0.7, 2: 0.8})
    registry = _registry(tmp_path, client)
    registry.promote("models:/churn/1", reason="first", by="alice")
    promotion = registry.promote("models:/churn/2", reason="better", by="bob")
    assert client.calls == ["record", "alias champion=1", "record", "alias champion=2"]
    assert promotion.record is not None and promotion.record.from_version == 1
    assert [r.to_version for r in registry.history("churn")] == [1, 2]

    client.fail_alias = True  # the move fails: the attempt stays recorded, the error says so
    with pytest.raises(TrackingError, match="moving churn@champion"):
        registry.promote("models:/churn/1", reason="again", override=True)
    assert len(registry.history("churn")) == 3 and client.aliases["champion"] == "2"


def test_rollback_moves_back_records_it_and_says_which_gates_it_bypassed(tmp_path):
    client = _FakeClient({1: 0.7, 2: 0.8, 3: 0.9})
    registry = _registry(tmp_path, client)
    for n in (1, 2, 3):
        registry.promote(f"models:/churn/{n}", reason=f"v{n}", by="alice")
    with pytest.raises(OverrideNeedsReason):
        registry.rollback("churn", reason=" ")
    back = registry.rollback("churn", reason="v3 mispredicts", by="carol")
    assert client.aliases["champion"] == "2"
    # v2 is worse than v3 on roc_auc: the rollback goes ahead and records the bypass.
    assert back.overridden == ("metric",) and back.previous is not None
    last = registry.history("churn")[-1]
    assert (last.action, last.from_version, last.to_version, last.by, last.reason,
            last.overridden) == (ROLLBACK, 3, 2, "carol", "v3 mispredicts", ("metric",))
    registry.rollback("churn", reason="v2 too")
    assert client.aliases["champion"] == "1"
    with pytest.raises(ModelNotFound, match="nothing to roll back to"):
        registry.rollback("churn", reason="and again")
    with pytest.raises(ModelNotFound, match="nothing holds churn@challenger"):
        registry.rollback("churn", "challenger", reason="no challenger")


def test_the_metric_gate_compares_metrics_on_the_same_rows_when_given_them(tmp_path):
    from workbench.promotion import SameData

    settings = _settings(tmp_path)
    champion = _instance(1, auc=0.836)  # measured on January's test rows
    candidate = _instance(2, auc=0.826)  # on February's: apples and oranges
    assert [f.gate for f in check_gates(candidate, champion, "champion", settings)] == [METRIC]
    same = SameData("roc_auc", candidate=0.84, current=0.83, current_number=1, rows=1250,
                    data="20240229: churn_20240229.csv, 1250 labelled rows")
    assert check_gates(candidate, champion, "champion", settings, same) == []
    worse = dataclasses.replace(same, candidate=0.80)
    [failure] = check_gates(candidate, champion, "champion", settings, worse)
    assert failure.message == (
        "churn_v2_20240131 has roc_auc 0.8000 on the same 1250 rows (20240229: "
        "churn_20240229.csv, 1250 labelled rows), worse than the champion churn_v1_20240131 "
        "(0.8300; higher is better)")
    # Measured against another instance than the holder, or another metric: not used.
    assert check_gates(candidate, champion, "champion", settings,
                       dataclasses.replace(same, current_number=7))[0].gate == METRIC
    assert check_gates(candidate, champion, "champion", settings,
                       dataclasses.replace(same, metric="f1"))[0].gate == METRIC
    nan = dataclasses.replace(same, candidate=float("nan"))
    assert "not a finite number" in check_gates(candidate, champion, "champion", settings, nan)[0].message
    # The drift gate still holds whatever the metric says.
    drifted = _instance(3, auc=0.9, drift="drift")
    assert [f.gate for f in check_gates(drifted, champion, "champion", settings,
                                        dataclasses.replace(same))] == [DRIFT]
def _measured(number: int, value: float | None, metric: str = "roc_auc",
              auc: float = 0.8) -> Instance:
    """An instance whose last performance check on labels gave ``value``."""
    tags = ({"performance_metric": metric, "performance_value": str(value),
             "performance_window": "2024-04"} if value is not None else {})
    return dataclasses.replace(_instance(number, auc=auc), tags=tags)


def test_the_performance_gate_refuses_below_the_threshold_for_both_aliases(tmp_path):
    settings = _settings(tmp_path, performance_threshold="0.75")
    low = _measured(2, 0.70)
    for alias in ("champion", "challenger"):
        [failure] = check_gates(low, None, alias, settings)
        assert failure.gate == PERFORMANCE
        assert failure.message == ("churn_v2_20240131 has roc_auc 0.7000 on labelled "
                                   "predictions (2024-04), below the threshold 0.7500")
    assert check_gates(_measured(3, 0.80), None, "champion", settings) == []
    # Never measured on labels, or measured on another metric: nothing shows it is worse.
    assert check_gates(_measured(4, None), None, "champion", settings) == []
    assert check_gates(_measured(5, 0.1, metric="accuracy"), None, "champion", settings) == []


def test_the_performance_gate_refuses_a_champion_worse_than_the_holder_by_the_margin(tmp_path):
    settings = _settings(tmp_path, performance_margin="0.05")
    holder = _measured(1, 0.85)
    [failure] = check_gates(_measured(2, 0.79), holder, "champion", settings)
    assert failure.gate == PERFORMANCE
    assert "0.0600 worse than the champion churn_v1_20240131 (0.8500, 2024-04; margin " \
           "0.0500)" in failure.message
    assert check_gates(_measured(3, 0.81), holder, "champion", settings) == []
    # A challenger is meant to be tried while weaker: the margin does not hold for it.
    assert check_gates(_measured(4, 0.50), holder, "challenger", settings) == []
    # Lower is better: the drop is measured the other way.
    lower = _settings(tmp_path, performance_margin="0.05", greater_is_better="false")
    assert [f.gate for f in check_gates(_measured(5, 0.95, auc=0.1), _measured(1, 0.85, auc=0.1),
                                        "champion", lower)] == [PERFORMANCE]
    # The default margin (0.02) is on; an unset threshold is off.
    default = _settings(tmp_path)
    assert default.performance_threshold is None and default.performance_margin == 0.02
    assert [f.gate for f in check_gates(_measured(6, 0.82), holder, "champion", default)] == [
        PERFORMANCE]


def test_a_bad_performance_setting_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"performance_threshold.*is not a number"):
        _settings(tmp_path, performance_threshold="high")
