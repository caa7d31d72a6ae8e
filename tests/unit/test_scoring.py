"""Predictions and probabilities in one pass (workbench.scoring): the same predictions as the
model's own predict, row for row, and the probability workbench.tasks defines; the batch
engines' scorer takes that path for a scikit-learn classifier and keeps MLflow's checks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from workbench import scoring, tasks
from workbench.errors import WorkbenchError


def _frame(rows: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame({"x": rng.normal(size=rows), "y": rng.integers(0, 5, rows),
                         "kind": rng.choice(["a", "b", "c"], rows)})


def _pipeline(model: object) -> Pipeline:
    return Pipeline([("prep", ColumnTransformer([("num", StandardScaler(), ["x", "y"]),
                                                 ("cat", OneHotEncoder(), ["kind"])])),
                     ("model", model)])


TARGETS = {
    "binary ints": lambda f: (f.x + (f.kind == "a") > 0.2).astype(int).to_numpy(),
    "three strings": lambda f: np.where(f.x > 0.4, "high", np.where(f.x < -0.4, "low", "mid")),
}
MODELS = {
    "hist gradient boosting": lambda: HistGradientBoostingClassifier(max_iter=20, random_state=0),
    "random forest": lambda: RandomForestClassifier(n_estimators=15, random_state=0),
    "decision tree": lambda: DecisionTreeClassifier(max_depth=4, random_state=0),
    "logistic regression (two passes of the model)": lambda: LogisticRegression(max_iter=500),
}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("kind", MODELS)
def test_one_pass_gives_the_models_own_predictions_and_the_tasks_probability(target: str,
                                                                             kind: str) -> None:
    frame = _frame()
    model = _pipeline(MODELS[kind]()).fit(frame, TARGETS[target](frame))
    score = scoring.one_pass(model)
    assert score is not None
    predictions, probability = score(frame)
    expected = model.predict(frame)
    assert predictions.dtype == expected.dtype
    assert (predictions == expected).all()
    assert np.allclose(probability, tasks.probability(model, frame, expected))


def test_a_bare_classifier_scores_and_a_regressor_or_nothing_does_not() -> None:
    frame = _frame()
    bare = HistGradientBoostingClassifier(max_iter=10).fit(frame[["x", "y"]], frame.y > 2)
    predictions, probability = scoring.one_pass(bare)(frame[["x", "y"]])  # type: ignore[misc]
    assert (predictions == bare.predict(frame[["x", "y"]])).all()
    assert np.allclose(probability, bare.predict_proba(frame[["x", "y"]])[:, 1])
    regressor = _pipeline(HistGradientBoostingRegressor(max_iter=5)).fit(frame, frame.x)
    assert scoring.one_pass(regressor) is None
    assert scoring.one_pass(None) is None


class _Deciding:
    """A final step whose predict says which rows it was asked about."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def predict(self, rows: np.ndarray) -> np.ndarray:
        self.asked.extend(int(r) for r in rows[:, 0])
        return np.full(len(rows), "decided")


def test_rows_whose_best_classes_tie_are_left_to_the_models_predict() -> None:
    classes = np.array(["no", "yes", "maybe"], dtype=object)
    proba = np.array([[0.2, 0.7, 0.1],          # clear: yes
                      [0.45, 0.45, 0.1],        # a tie: predict decides
                      [0.1, 0.3, 0.6],          # clear: maybe
                      [0.3, 0.35, 0.35 - 1e-12]])  # a tie within rounding: predict decides
    final = _Deciding()
    prepared = np.arange(4).reshape(4, 1)
    predictions = scoring._argmax_predictions(final, prepared, proba, classes)
    assert predictions.tolist() == ["yes", "decided", "maybe", "decided"]
    assert final.asked == [1, 3]


def test_the_batch_scorer_takes_one_pass_and_keeps_mlflows_checks(tmp_path: Path) -> None:
    import mlflow

    from workbench.predict import ModelScorer
    from workbench.registry.model_io import save_model

    frame = _frame()
    model = _pipeline(HistGradientBoostingClassifier(max_iter=10)).fit(frame, frame.x > 0)
    save_model(model, tmp_path / "model", frame)
    scorer = ModelScorer(mlflow.pyfunc.load_model(str(tmp_path / "model")), "m")
    # The one-pass path needs MLflow's input enforcement where the scorer looks for it: if an
    # MLflow upgrade moves it, scoring still works (two passes) but this says so.
    assert scorer._one_pass is not None
    predictions, probability = scorer.outputs(frame)
    assert (np.asarray(predictions) == model.predict(frame)).all()
    assert np.allclose(probability, model.predict_proba(frame)[:, 1])
    # MLflow's enforcement still runs first: an integer column with a fraction is refused
    # (by the workbench's own check, naming the row) and text where numbers belong too.
    with pytest.raises(WorkbenchError, match="'y'"):
        scorer.outputs(frame.assign(y=frame.y + 0.5))
    with pytest.raises(WorkbenchError, match="'x'"):
        scorer.outputs(frame.assign(x="many"))
    # ...and what only MLflow's enforcement checks: numbers where the signature has text.
    with pytest.raises(WorkbenchError, match="cannot score this input"):
        scorer.outputs(frame.assign(kind=1))
