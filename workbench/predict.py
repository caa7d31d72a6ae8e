"""Batch predictions: score a table with a registered model instance.

The output is the input plus ``prediction`` (and ``probability`` for classifiers that
have one), ``model_name`` and ``scored_at`` columns, so every scored row says which
instance scored it and when. The batch notebook calls ``predict_file``.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.config import Settings
from workbench.errors import WorkbenchError
from workbench.registry import Instance, Registry

if TYPE_CHECKING:
    import pandas as pd

_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class BatchPrediction:
    """What ``predict_file`` wrote."""

    output: Path
    rows: int
    model: Instance
    scored_at: dt.datetime


class LoadedModel:
    """A registered instance loaded once, ready to score frames."""

    def __init__(self, instance: Instance, settings: Settings) -> None:
        import mlflow

        mlflow.set_tracking_uri(settings.tracking_uri)
        self.instance = instance
        self.pyfunc = mlflow.pyfunc.load_model(instance.uri)
        self._raw = _unwrap(self.pyfunc)
        signature = self.pyfunc.metadata.get_input_schema()
        self.input_columns = signature.input_names() if signature is not None else None

    def predict(self, frame: pd.DataFrame, scored_at: dt.datetime | None = None) -> pd.DataFrame:
        """``frame`` with prediction, probability (when available), model_name, scored_at.

        Raises:
            WorkbenchError: columns the model needs are missing from ``frame``.
        """
        features = frame
        if self.input_columns:
            missing = [c for c in self.input_columns if c not in frame.columns]
            if missing:
                raise WorkbenchError(
                    f"input lacks column(s) {', '.join(missing)} that "
                    f"{self.instance.label} was trained on"
                )
            features = frame[self.input_columns]
        out = frame.copy()
        out["prediction"] = self.pyfunc.predict(features)
        if self._raw is not None and hasattr(self._raw, "predict_proba"):
            out["probability"] = self._raw.predict_proba(features)[:, -1]
        out["model_name"] = self.instance.label
        out["scored_at"] = (scored_at or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds")
        return out


def _unwrap(pyfunc: Any) -> Any:
    try:
        raw = pyfunc.unwrap_python_model()
    except Exception:
        try:
            raw = pyfunc.get_raw_model()
        except Exception:
            return None
    return raw


def read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame.

    Raises:
        WorkbenchError: missing file or unsupported extension.
    """
    import pandas as pd

    kind = _FORMATS.get(path.suffix.lower())
    if kind is None:
        raise WorkbenchError(f"{path}: unsupported format; use .csv or .parquet")
    if not path.is_file():
        raise WorkbenchError(f"input file {path} does not exist")
    return pd.read_csv(path) if kind == "csv" else pd.read_parquet(path)


def write_table(frame: pd.DataFrame, path: Path) -> None:
    kind = _FORMATS.get(path.suffix.lower())
    if kind is None:
        raise WorkbenchError(f"{path}: unsupported output format; use .csv or .parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


def predict_frame(
    ref: str | Instance, frame: pd.DataFrame, settings: Settings | None = None,
    registry: Registry | None = None,
) -> pd.DataFrame:
    """Score ``frame`` with the instance ``ref`` names (full name, alias or ``models:/``)."""
    settings = settings or Settings.from_env()
    registry = registry or Registry(settings)
    return LoadedModel(registry.resolve(ref), settings).predict(frame)


def predict_file(
    ref: str | Instance, input_path: Path | str, output_path: Path | str,
    settings: Settings | None = None, registry: Registry | None = None,
) -> BatchPrediction:
    """Score a CSV/Parquet file and write the scored table (CSV or Parquet, by extension).

    Raises:
        InvalidModelName, ModelNotFound: ``ref`` is malformed or unknown.
        WorkbenchError: unreadable input, unsupported format, missing columns.
    """
    settings = settings or Settings.from_env()
    registry = registry or Registry(settings)
    input_path, output_path = Path(input_path), Path(output_path)
    if _FORMATS.get(output_path.suffix.lower()) is None:
        raise WorkbenchError(f"{output_path}: unsupported output format; use .csv or .parquet")
    frame = read_table(input_path)
    model = LoadedModel(registry.resolve(ref), settings)
    scored_at = dt.datetime.now(dt.timezone.utc)
    scored = model.predict(frame, scored_at)
    write_table(scored, output_path)
    return BatchPrediction(output_path, len(scored), model.instance, scored_at)
