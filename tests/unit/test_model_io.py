"""Model files without a server: skops where it can keep the model, cloudpickle where not."""
from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from workbench.errors import UnsupportedModel
from workbench.registry.model_io import CLOUDPICKLE, SKOPS, save_model, skops_trusted_types


def _frame() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=120), "b": rng.normal(size=120)})
    return X, (X.a > 0).astype(int)


class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input["a"] * 2


def _first_column(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["a"]]


@pytest.mark.parametrize("model, serialization, trusted", [
    (LogisticRegression(), SKOPS, ()),
    (HistGradientBoostingClassifier(max_iter=5), SKOPS,
     ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",)),
    # A module-level function is imported by name when loading: skops keeps it, trusted.
    (make_pipeline(FunctionTransformer(_first_column), LogisticRegression()), SKOPS,
     (f"{__name__}._first_column",)),
    # A lambda exists only in the saving process: cloudpickle must carry its code.
    (make_pipeline(FunctionTransformer(lambda f: f[["a"]]), LogisticRegression()), CLOUDPICKLE,
     ()),
], ids=["linear", "trees", "function", "lambda"])
def test_sklearn_models_are_skops_unless_skops_cannot_keep_them(tmp_path: Path, model,
                                                               serialization, trusted):
    X, y = _frame()
    model.fit(X, y)
    saved = save_model(model, tmp_path / "model", X)
    assert (saved.serialization, saved.trusted_types) == (serialization, trusted)
    flavor = mlflow.models.Model.load(str(tmp_path / "model")).flavors["sklearn"]
    assert flavor["serialization_format"] == serialization
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    assert list(loaded.predict(X)) == list(model.predict(X))
    assert list(saved.outputs) == list(model.predict(X))


def test_a_python_model_is_cloudpickle_and_anything_else_is_refused(tmp_path: Path):
    X, _ = _frame()
    saved = save_model(Doubler(), tmp_path / "model", X)
    assert saved.serialization == CLOUDPICKLE
    assert list(mlflow.pyfunc.load_model(str(tmp_path / "model")).predict(X)) == list(X.a * 2)
    with pytest.raises(UnsupportedModel, match="scikit-learn"):
        save_model(object(), tmp_path / "other", X)
    assert skops_trusted_types(lambda: None) is None
