"""The pyfunc model the Spark engine hands to ``mlflow.pyfunc.spark_udf``.

It carries the registered model and scores with :class:`workbench.predict.ModelScorer`, the
local engine's own code: the same signature checks, the same ``prediction`` and, where the
model has ``predict_proba``, the same ``probability``, as one frame that spark_udf turns into
a struct column. Executors need the workbench installed (``env_manager="local"``: they run
the driver's Python environment).

A scikit-learn model travels as the driver's loaded pyfunc, pickled inside this wrapper
(which MLflow pickles in any case): the driver loaded it from the registry's skops file,
checked against its trusted types, and each Python worker then unpickles the estimator
instead of loading skops (whose import lists every scikit-learn estimator) and checking the
model's requirements again, seconds of CPU per worker. Other models travel as their files
(an artifact of this wrapper, so MLflow ships both to the executors together), loaded by
each worker: a custom pyfunc may read its artifacts from paths on the driver's disk.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow.pyfunc
import pandas as pd
from mlflow.pyfunc import PythonModel

if TYPE_CHECKING:
    from workbench.predict import ModelScorer

MODEL_ARTIFACT = "model"


def travels_in_memory(pyfunc: Any) -> bool:
    """Whether the loaded ``pyfunc`` is the whole model (a scikit-learn one: the estimator,
    nothing read from disk later), so that the wrapper can carry it pickled."""
    return getattr(pyfunc, "loader_module", None) == "mlflow.sklearn"


def save_scorer(path: Path, model: ModelScorer, model_dir: Path) -> None:
    """Save the wrapper of the loaded ``model`` at ``path``: carrying the model itself when it
    travels in memory, else with ``model_dir`` (its files) as the wrapper's artifact."""
    in_memory = travels_in_memory(model.pyfunc)
    mlflow.pyfunc.save_model(
        str(path), python_model=SparkScorer(model.label, model.pyfunc if in_memory else None),
        artifacts=None if in_memory else {MODEL_ARTIFACT: str(model_dir)}, pip_requirements=[])


class SparkScorer(PythonModel):
    """Scores a frame with the wrapped model: ``prediction`` and maybe ``probability``."""

    def __init__(self, label: str, model: Any = None) -> None:
        """``model``: the loaded pyfunc to carry (see :func:`travels_in_memory`), or None
        when the model's files are this wrapper's ``MODEL_ARTIFACT``."""
        self.label = label
        self._model = model
        self._scorer: Any = None

    def load_context(self, context: Any) -> None:
        from workbench.predict import ModelScorer

        # Once per Python worker: spark_udf caches the loaded scorer in the process. The
        # driver warned about the model's requirements already.
        inner = self._model if self._model is not None else mlflow.pyfunc.load_model(
            context.artifacts[MODEL_ARTIFACT], suppress_warnings=True)
        self._scorer = ModelScorer(inner, self.label)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        import numpy as np

        predictions, probability = self._scorer.outputs(model_input)
        if isinstance(predictions, pd.DataFrame) and predictions.shape[1] == 1:
            predictions = predictions.iloc[:, 0]
        values = np.asarray(predictions)
        out = pd.DataFrame({"prediction": values.reshape(len(model_input), -1)[:, 0]
                            if values.ndim == 2 and values.shape[1] == 1 else values})
        if probability is not None:
            out["probability"] = np.asarray(probability, dtype="float64")
        return out
