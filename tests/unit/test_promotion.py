"""Promotion gates as pure functions over Instance values."""
from __future__ import annotations

from pathlib import Path

import pytest

from workbench.config import Settings
from workbench.errors import ConfigError
from workbench.promotion import DRIFT, METRIC, check_gates, configured_gates
from workbench.registry import Instance


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
    assert configured_gates(_settings(tmp_path)) == (METRIC, DRIFT)
    only_drift = _settings(tmp_path, promotion_gates=" Drift ")
    assert configured_gates(only_drift) == (DRIFT,)
    assert check_gates(_instance(2, auc=0.1), _instance(1, auc=0.9), "champion", only_drift) == []
    assert configured_gates(_settings(tmp_path, promotion_gates="")) == ()
    with pytest.raises(ConfigError, match="unknown gate.*accuracy"):
        configured_gates(_settings(tmp_path, promotion_gates="metric,accuracy"))
