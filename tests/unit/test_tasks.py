"""Tasks, the ``probability`` column and metric directions, on small real scikit-learn models."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from workbench import tasks
from workbench.config import Settings
from workbench.promotion import METRIC, check_gates
from workbench.registry import Instance


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=120), "b": rng.normal(size=120)})


def test_a_binary_classifier_gives_the_positive_class_probability(frame):
    y = (frame.a + frame.b > 0).map({True: "yes", False: "no"})
    model = LogisticRegression().fit(frame, y)
    predictions = model.predict(frame)
    got = tasks.probability(model, frame, predictions)
    # The last sorted class ("yes") whatever was predicted: roc_auc on logged rows needs it.
    assert list(model.classes_) == ["no", "yes"]
    np.testing.assert_allclose(got, model.predict_proba(frame)[:, 1])
    assert tasks.model_task(model) == tasks.CLASSIFICATION


def test_a_multiclass_classifier_gives_the_predicted_class_probability(frame):
    y = pd.cut(frame.a, [-np.inf, -0.5, 0.5, np.inf], labels=["low", "mid", "high"]).astype(str)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, y)
    predictions = model.predict(frame)
    proba = model.predict_proba(frame)
    got = tasks.probability(model, frame, predictions)
    column = [list(model.classes_).index(p) for p in predictions]
    np.testing.assert_allclose(got, proba[np.arange(len(frame)), column])
    # Not the last class's probability, which the old column gave whatever was predicted.
    assert not np.allclose(got, proba[:, -1])
    assert (got >= 1 / 3).all()
    assert tasks.model_task(model) == tasks.CLASSIFICATION


def test_unknown_predicted_classes_fall_back_to_the_row_maximum():
    proba = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    got = tasks.predicted_class_probability(proba, [0, 1, 2], np.array([2.0, "other"], dtype=object))
    np.testing.assert_allclose(got, [0.3, 0.6])  # 2.0 is class 2; "other" is no class
    np.testing.assert_allclose(tasks.predicted_class_probability(proba, None, None), [0.5, 0.6])
    with pytest.raises(ValueError, match="dimensions"):
        tasks.predicted_class_probability(np.zeros((2, 3, 1)), None, None)


def test_a_regressor_has_no_probability(frame):
    model = make_pipeline(StandardScaler(), LinearRegression()).fit(frame, frame.a * 3 + 1)
    assert tasks.probability(model, frame, model.predict(frame)) is None
    assert not tasks.has_probability(model)
    assert tasks.model_task(model) == tasks.REGRESSION
    assert tasks.model_task(object()) is None


def _instance(number: int, rmse: float, tags: dict[str, str] | None = None) -> Instance:
    return Instance(registered_model="price", number=number, full_name=f"price_v{number}_20240131",
                    model_version=f"v{number}", data_date="20240131", run_id=f"r{number}",
                    source="", tags=tags or {}, metrics={"rmse": rmse, "r2": 1 - rmse / 100})


def test_directions_by_name_setting_and_recorded_tag(tmp_path: Path):
    assert not tasks.default_greater_is_better("rmse")
    assert not tasks.default_greater_is_better("test_mae")
    assert not tasks.default_greater_is_better("custom_loss")
    assert tasks.default_greater_is_better("f1_macro")
    # Setting only the metric gives its direction; an explicit setting still wins.
    assert Settings.from_env(environ={}, cwd=tmp_path, primary_metric="rmse").greater_is_better \
        is False
    assert Settings.from_env(environ={"WORKBENCH_PRIMARY_METRIC": "mae",
                                      "WORKBENCH_GREATER_IS_BETTER": "true"},
                             cwd=tmp_path).greater_is_better is True
    auc_project = Settings.from_env(environ={}, cwd=tmp_path)
    recorded = {tasks.PRIMARY_METRIC_TAG: "score", tasks.GREATER_IS_BETTER_TAG: "false"}
    versions = [_instance(1, 3.0, recorded), _instance(2, 4.0, recorded)]
    # A custom metric the registrations recorded as lower-is-better, seen from a roc_auc project.
    assert tasks.greater_is_better("score", auc_project, versions) is False
    assert tasks.greater_is_better("score", auc_project) is True
    assert tasks.primary_metric(auc_project, versions) == "roc_auc"  # nobody has "score"
    rmse_tags = {tasks.PRIMARY_METRIC_TAG: "rmse", tasks.GREATER_IS_BETTER_TAG: "false"}
    assert tasks.primary_metric(auc_project, [_instance(1, 3.0, rmse_tags)]) == "rmse"


def test_the_gate_refuses_a_larger_rmse_when_lower_is_better(tmp_path: Path):
    settings = Settings.from_env(environ={}, cwd=tmp_path, primary_metric="rmse")
    champion = _instance(1, 50.0, {"champion": "x"})
    [failure] = check_gates(_instance(2, 55.0), champion, "champion", settings)
    assert failure.gate == METRIC
    assert failure.message == ("price_v2_20240131 has rmse 55.0000, worse than the champion "
                               "price_v1_20240131 (50.0000; lower is better)")
    assert check_gates(_instance(3, 45.0), champion, "champion", settings) == []
