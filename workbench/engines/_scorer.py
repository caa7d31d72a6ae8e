"""The pyfunc model the Spark engine hands to ``mlflow.pyfunc.spark_udf``.

It wraps a registered model's files (an artifact of this model, so MLflow ships both to
the executors together) and scores with :class:`workbench.predict.ModelScorer`, the local
engine's own code: the same signature checks, the same ``prediction`` and, where the model
has ``predict_proba``, the same ``probability``, as one frame that spark_udf turns into a
struct column. Executors need the workbench installed (``env_manager="local"``: they run
the driver's Python environment).
"""
from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.pyfunc import PythonModel

MODEL_ARTIFACT = "model"


class SparkScorer(PythonModel):
    """Scores a frame with the wrapped model: ``prediction`` and maybe ``probability``."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._scorer: Any = None

    def load_context(self, context: Any) -> None:
        from workbench.predict import ModelScorer

        # Once per Python worker: spark_udf caches the loaded scorer in the process.
        inner = mlflow.pyfunc.load_model(context.artifacts[MODEL_ARTIFACT])
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
