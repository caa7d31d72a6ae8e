"""The probability the server logs with each prediction: one pass through a pipeline's
transforms gives what the pipeline's own predict and predict_proba give."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from workbench.scoring import one_pass


def _frame(rows: int = 60) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.normal(size=rows), "kind": rng.choice(["a", "b", "c"], rows)})
    return frame, np.where(frame.x > 0.3, "high", np.where(frame.x < -0.3, "low", "mid"))


def _pipeline() -> Pipeline:
    return Pipeline([("prep", ColumnTransformer([("num", StandardScaler(), ["x"]),
                                                 ("cat", OneHotEncoder(), ["kind"])])),
                     ("model", LogisticRegression(max_iter=500))])


def test_a_binary_pipeline_logs_the_positive_class_probability() -> None:
    frame, target = _frame()
    model = _pipeline().fit(frame, target == "high")
    predictions, scores = one_pass(model)(frame)  # type: ignore[misc]
    assert (predictions == model.predict(frame)).all()
    assert np.allclose(scores, model.predict_proba(frame)[:, 1])


def test_a_multiclass_pipeline_logs_the_predicted_class_probability() -> None:
    frame, target = _frame()
    model = _pipeline().fit(frame, target)
    predictions, scores = one_pass(model)(frame)  # type: ignore[misc]
    assert (predictions == model.predict(frame)).all()
    proba = model.predict_proba(frame)
    picked = proba[np.arange(len(frame)), [list(model.classes_).index(p) for p in predictions]]
    assert np.allclose(scores, picked)


def test_a_plain_classifier_scores_and_a_regressor_or_pyfunc_does_not() -> None:
    frame, target = _frame()
    plain = LogisticRegression().fit(frame[["x"]], target == "low")
    predictions, scores = one_pass(plain)(frame[["x"]])  # type: ignore[misc]
    assert np.allclose(scores, plain.predict_proba(frame[["x"]])[:, 1])
    assert (predictions == plain.predict(frame[["x"]])).all()
    assert one_pass(RandomForestRegressor(n_estimators=3).fit(frame[["x"]], frame.x)) is None
    assert one_pass(None) is None
