"""Saving a model in MLflow format: skops for scikit-learn, cloudpickle only where it must.

A skops file holds data and a list of the types it needs; loading it imports those types and
runs no code of the file's own. The types a model needs beyond skops's defaults are computed
from the dumped bytes (``skops.io.get_untrusted_types``) and written into the MLmodel file,
which is how MLflow's loader knows to trust them. A model that skops cannot save, or whose
types name code that only exists in the saving process (``__main__``, lambdas, local
classes), and every ``mlflow.pyfunc.PythonModel`` fall back to cloudpickle: loading those
runs code, which is why the registry records the format on the model version.
"""
from __future__ import annotations

import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import UnsupportedModel, WorkbenchError

if TYPE_CHECKING:
    import pandas as pd

SKOPS, CLOUDPICKLE = "skops", "cloudpickle"


@dataclass(frozen=True)
class SavedModel:
    """What :func:`save_model` wrote.

    Attributes:
        serialization: ``skops`` or ``cloudpickle``.
        outputs: the model's predictions on the input example (None without one).
        trusted_types: the types a skops file needs beyond skops's defaults.
    """

    serialization: str
    outputs: Any
    trusted_types: tuple[str, ...] = ()


def save_model(model: Any, path: Path, input_example: pd.DataFrame | None) -> SavedModel:
    """Save ``model`` in MLflow format with a signature and pinned requirements.

    Raises:
        UnsupportedModel: ``model`` is neither a scikit-learn estimator nor a
            ``mlflow.pyfunc.PythonModel``.
        WorkbenchError: the model raised on ``input_example``.
    """
    import mlflow.pyfunc

    is_pyfunc = isinstance(model, mlflow.pyfunc.PythonModel)
    if not (is_pyfunc or _is_sklearn(model)):
        raise UnsupportedModel(
            f"cannot register a {type(model).__module__}.{type(model).__name__}: pass a "
            "scikit-learn estimator or pipeline, or an mlflow.pyfunc.PythonModel"
        )
    signature, outputs = _signature(model, input_example, is_pyfunc)
    example = input_example.head(3) if input_example is not None else None
    if is_pyfunc:
        mlflow.pyfunc.save_model(
            str(path), python_model=model, signature=signature, input_example=example,
            pip_requirements=_pinned(["pandas", "numpy", "cloudpickle"]),
        )
        return SavedModel(CLOUDPICKLE, outputs)
    trusted = skops_trusted_types(model)
    if trusted is not None:
        try:
            _save_sklearn(model, path, signature, example, SKOPS, list(trusted))
            return SavedModel(SKOPS, outputs, trusted)
        except Exception:
            # skops refused the object (or could not load it back): cloudpickle keeps it.
            shutil.rmtree(path, ignore_errors=True)
    _save_sklearn(model, path, signature, example, CLOUDPICKLE, None)
    return SavedModel(CLOUDPICKLE, outputs)


def skops_trusted_types(model: Any) -> tuple[str, ...] | None:
    """The types a skops file of ``model`` needs trusted, or None when skops cannot keep it.

    None when skops cannot dump the object, or when a type names code that a loading
    process cannot import (defined in ``__main__``, a lambda or a function's local).
    """
    import skops.io

    try:
        data = skops.io.dumps(model)
        untrusted = skops.io.get_untrusted_types(data=data)
    except Exception:
        return None
    if any(t.startswith("__main__.") or "<lambda>" in t or "<locals>" in t for t in untrusted):
        return None
    return tuple(sorted(untrusted))


def _save_sklearn(model: Any, path: Path, signature: Any, example: Any, serialization: str,
                  trusted: list[str] | None) -> None:
    import mlflow.sklearn

    extra = ["skops"] if serialization == SKOPS else ["cloudpickle"]
    with _quiet_mlflow_sklearn():
        mlflow.sklearn.save_model(
            model, str(path), signature=signature, input_example=example,
            pip_requirements=_pinned(["scikit-learn", "pandas", "numpy", "scipy", *extra]),
            serialization_format=serialization, skops_trusted_types=trusted,
        )


class _quiet_mlflow_sklearn:
    """Silence MLflow's "cloudpickle runs code" warning: the registry records it as a tag."""

    def __enter__(self) -> None:
        self._logger = logging.getLogger("mlflow.sklearn")
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self._logger.setLevel(self._level)


def _signature(model: Any, input_example: pd.DataFrame | None, is_pyfunc: bool
               ) -> tuple[Any, Any]:
    if input_example is None:
        return None, None
    from mlflow.models import infer_signature

    try:
        with warnings.catch_warnings():
            # MLflow's hint about integer columns and missing values: the serving side
            # reports a null in an integer column clearly, so the hint is noise here.
            warnings.filterwarnings("ignore", message=".*[Ii]nteger column", category=UserWarning)
            outputs = model.predict(None, input_example) if is_pyfunc else model.predict(input_example)
            return infer_signature(input_example, outputs), outputs
    except Exception as exc:
        raise WorkbenchError(
            f"cannot infer a signature: the model raised {exc.__class__.__name__} on the "
            f"input frame ({exc}); pass the frame the model was trained on"
        ) from exc


def save_profile(path: Path, frame: pd.DataFrame, outputs: Any, task: str | None = None) -> bool:
    """Write the reference profile of ``frame`` (and ``outputs``, profiled as ``task``'s
    predictions) into the model folder.

    Returns:
        Whether it was written; a frame that cannot be profiled gives a warning instead.
    """
    from workbench.monitoring.profile import build_profile, kind_of_predictions

    try:
        profile = build_profile(frame, outputs, prediction_kind=kind_of_predictions(task))
    except Exception as exc:
        warnings.warn(f"no reference profile stored, drift checks will refuse this model: "
                      f"{exc.__class__.__name__}: {exc}", UserWarning, stacklevel=3)
        return False
    (path / profile_file()).write_text(profile.to_json(), encoding="utf-8")
    return True


def profile_file() -> str:
    # Imported here: the profile module needs numpy, which `import workbench.registry` avoids.
    from workbench.monitoring.profile import PROFILE_FILE

    return PROFILE_FILE


def _is_sklearn(model: Any) -> bool:
    try:
        from sklearn.base import BaseEstimator
    except ImportError:
        return False
    return isinstance(model, BaseEstimator)


def _pinned(packages: list[str]) -> list[str]:
    # Pinned from this environment instead of MLflow's inference, which re-imports the model
    # in a subprocess (seconds per registration) to guess the same list.
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ["mlflow-skinny", *packages]:
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            if package == "mlflow-skinny":
                pins.append("mlflow")
    return pins
