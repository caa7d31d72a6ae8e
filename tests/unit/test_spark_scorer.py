"""The wrapper the Spark engine hands to spark_udf: saved as MLflow saves it and loaded in
a fresh process, as a Python worker loads it (no JVM is started)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from workbench.engines._scorer import save_scorer, travels_in_memory
from workbench.predict import ModelScorer

# A worker's view: the wrapper loaded by MLflow, one batch scored; it says whether skops loaded.
WORKER = """
import sys
import pandas as pd
import mlflow.pyfunc
model = mlflow.pyfunc.load_model(sys.argv[1])
out = model.predict(pd.read_parquet(sys.argv[2]))
out.to_parquet(sys.argv[3])
print("skops loaded" if "skops.io" in sys.modules else "skops not loaded")
"""


class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input["x"].to_numpy() * 2


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame({"x": rng.normal(size=60), "y": rng.normal(size=60)})


def _worker(scorer_dir: Path, frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    frame.to_parquet(scorer_dir.parent / "in.parquet")
    done = subprocess.run([sys.executable, "-c", WORKER, str(scorer_dir),
                           str(scorer_dir.parent / "in.parquet"),
                           str(scorer_dir.parent / "out.parquet")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return pd.read_parquet(scorer_dir.parent / "out.parquet"), done.stdout.strip().splitlines()[-1]


def test_a_scikit_learn_model_travels_inside_the_wrapper(tmp_path, frame):
    from workbench.registry.model_io import save_model

    estimator = LogisticRegression().fit(frame, frame.x > 0)
    model_dir = tmp_path / "model"
    save_model(estimator, model_dir, input_example=frame.head())
    pyfunc = mlflow.pyfunc.load_model(str(model_dir))
    assert travels_in_memory(pyfunc)
    save_scorer(tmp_path / "scorer", ModelScorer(pyfunc, "m"), model_dir)
    assert not (tmp_path / "scorer" / "artifacts").exists()  # no files of the model shipped

    out, loaded = _worker(tmp_path / "scorer", frame)
    expected, probability = ModelScorer(pyfunc, "m").outputs(frame)
    assert out.prediction.tolist() == list(expected)
    np.testing.assert_allclose(out.probability.to_numpy(), probability, rtol=1e-12)
    assert loaded == "skops not loaded"  # the worker unpickled the driver's estimator


def test_another_model_travels_as_its_files(tmp_path, frame):
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the worker cannot import tests
    mlflow.pyfunc.save_model(str(tmp_path / "model"), python_model=Doubler(),
                             pip_requirements=[])
    pyfunc = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    assert not travels_in_memory(pyfunc)
    save_scorer(tmp_path / "scorer", ModelScorer(pyfunc, "m"), tmp_path / "model")

    out, _loaded = _worker(tmp_path / "scorer", frame)
    np.testing.assert_allclose(out.prediction.to_numpy(), frame.x.to_numpy() * 2)
    assert "probability" not in out.columns
