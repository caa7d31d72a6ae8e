"""Batch predictions: score a table with a registered model instance.

The output is the input plus ``prediction`` (and ``probability`` for classifiers that
have one), ``model_name`` and ``scored_at`` columns, so every scored row says which
instance scored it and when. The batch notebook calls ``predict_file``.

With ``log=True`` the scored rows also go to the prediction store (all input columns, so an
id column such as ``customer_id`` is there for ``workbench monitor labels`` to join ground
truth on; the prediction and the probability), through the same ``PredictionLog`` the server
writes with, in records of up to :data:`LOG_RECORD_ROWS` rows.

Bad input is one :class:`~workbench.errors.WorkbenchError` line naming the file, column and
row at fault (a malformed CSV, a column the signature types differently, missing values in
an integer column), and nothing is written: the output appears whole or not at all.
"""
from __future__ import annotations

import datetime as dt
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.config import Settings
from workbench.errors import WorkbenchError
from workbench.registry import Instance, Registry

if TYPE_CHECKING:
    import pandas as pd

_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
LOG_RECORD_ROWS = 1000
_ADDED_COLUMNS = ("prediction", "probability", "model_name", "scored_at")


@dataclass(frozen=True)
class BatchPrediction:
    """What ``predict_file`` wrote."""

    output: Path
    rows: int
    model: Instance
    scored_at: dt.datetime
    logged: int = 0


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
        # column -> MLflow type name, for the columns the signature types (not tensors)
        self.input_types: dict[str, str] = (
            {str(c.name): getattr(c.type, "name", str(c.type)) for c in signature.inputs
             if c.name is not None}
            if signature is not None and not signature.is_tensor_spec() else {})

    def predict(self, frame: pd.DataFrame, scored_at: dt.datetime | None = None) -> pd.DataFrame:
        """``frame`` with prediction, probability (when available), model_name, scored_at.

        Raises:
            WorkbenchError: columns the model needs are missing from ``frame``, hold values
                of another type than its signature says, or the model cannot score them.
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
        for column, kind in self.input_types.items():
            _check_column(features[column], kind, self.instance.label)
        out = frame.copy()
        from mlflow.exceptions import MlflowException

        try:
            out["prediction"] = self.pyfunc.predict(features)
            if self._raw is not None and hasattr(self._raw, "predict_proba"):
                out["probability"] = self._raw.predict_proba(features)[:, -1]
        except (MlflowException, ValueError, TypeError, KeyError) as error:
            # The signature's enforcement (MlflowException) or the model itself (an unseen
            # category, a wrong dtype) refused these rows: bad input, said in one line.
            full = str(getattr(error, "message", None) or error)
            # MLflow's schema errors quote the data and the schema first; the reason is last.
            text = full.rsplit("Error: ", 1)[-1].strip().splitlines()
            raise WorkbenchError(
                f"{self.instance.label} cannot score this input ({type(error).__name__}: "
                f"{text[0][:200] if text else 'no detail'}); check the columns' values and types"
            ) from error
        out["model_name"] = self.instance.label
        out["scored_at"] = (scored_at or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds")
        return out


_NUMBER_TYPES = {"integer", "long", "float", "double"}


def _check_column(values: pd.Series, kind: str, label: str) -> None:
    """One line for the first value in ``values`` that the signature's ``kind`` refuses.

    MLflow's own enforcement says the same in a paragraph that quotes the whole schema; this
    names the column, the row and the value.

    Raises:
        WorkbenchError: a non-number in a numeric column, or a gap in an integer one.
    """
    import pandas as pd

    if kind not in _NUMBER_TYPES:
        return
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        numbers = pd.to_numeric(values, errors="coerce")
        bad = values[numbers.isna() & values.notna()]
        if not bad.empty:
            raise WorkbenchError(
                f"column {values.name!r} holds {_shown(bad.iloc[0])} (row {_row(bad.index[0])}), not a "
                f"number; {label} takes {kind} values there")
        values = numbers
    if kind in {"integer", "long"} and values.isna().any():
        gaps = values[values.isna()]
        raise WorkbenchError(
            f"column {values.name!r} has {len(gaps)} missing value(s) (first in row "
            f"{_row(gaps.index[0])}); {label} takes whole numbers there: fill or drop them")
    if kind in {"integer", "long"} and not pd.api.types.is_integer_dtype(values):
        fractional = values[(values % 1) != 0]
        if not fractional.empty:
            raise WorkbenchError(
                f"column {values.name!r} holds {_shown(fractional.iloc[0])} (row "
                f"{_row(fractional.index[0])}); {label} takes whole numbers there")


def _shown(value: Any) -> str:
    # numpy scalars print as np.float64(6.5); the user wrote 6.5.
    return repr(value.item() if hasattr(value, "item") else value)


def _row(index: Any) -> str:
    # A frame read from a file has a RangeIndex: row 1 is the first line after the header.
    return str(index + 1) if isinstance(index, numbers.Integral) else repr(index)


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
        WorkbenchError: missing file, unsupported extension, or a file that cannot be read
            as its extension says (the parser's reason, with its line number, is named).
    """
    import pandas as pd

    kind = _FORMATS.get(path.suffix.lower())
    if kind is None:
        raise WorkbenchError(f"{path}: unsupported format; use .csv or .parquet")
    if not path.is_file():
        raise WorkbenchError(f"input file {path} does not exist")
    try:
        frame = pd.read_csv(path) if kind == "csv" else pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise WorkbenchError(f"{path} is empty; it needs a header line and rows") from None
    except (ValueError, OSError, UnicodeDecodeError) as error:
        # pandas' ParserError is a ValueError; pyarrow's ArrowInvalid too; a binary file
        # given as CSV is a UnicodeDecodeError.
        text = str(error).strip().splitlines()
        raise WorkbenchError(
            f"{path} is not a readable {kind.upper() if kind == 'csv' else 'Parquet'} file "
            f"({text[0][:200] if text else type(error).__name__}); fix the file") from None
    if frame.empty:
        raise WorkbenchError(f"{path} has no rows to score")
    return frame


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` whole or not at all (a temporary file, then a rename).

    Raises:
        WorkbenchError: unsupported extension.
    """
    kind = _FORMATS.get(path.suffix.lower())
    if kind is None:
        raise WorkbenchError(f"{path}: unsupported output format; use .csv or .parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Beside the target (same file system, so the rename is atomic), with the usual mode.
    name = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if kind == "csv":
            frame.to_csv(name, index=False)
        else:
            frame.to_parquet(name, index=False)
        os.replace(name, path)
    except BaseException:
        name.unlink(missing_ok=True)
        raise


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
    settings: Settings | None = None, registry: Registry | None = None, *,
    log: bool = False, logged_at: dt.datetime | None = None,
) -> BatchPrediction:
    """Score a CSV/Parquet file and write the scored table (CSV or Parquet, by extension).

    Args:
        log: also log the scored rows to the prediction store (``settings``).
        logged_at: the logged predictions' time (default: when they were scored); a
            simulated clock (the demo's months) sets it.

    Raises:
        InvalidModelName, ModelNotFound: ``ref`` is malformed or unknown.
        WorkbenchError: unreadable input, unsupported format, missing columns, or (with
            ``log``) rows the prediction store did not take.
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
    logged = (log_predictions(scored, model.instance, settings, logged_at or scored_at)
              if log else 0)
    return BatchPrediction(output_path, len(scored), model.instance, scored_at, logged)


def log_predictions(scored: pd.DataFrame, instance: Instance, settings: Settings,
                    created_at: dt.datetime) -> int:
    """Write ``LoadedModel.predict``'s output to the prediction store, as the server would
    (under the instance's full name, role ``primary``), with the probabilities as scores.

    Returns:
        The rows logged.

    Raises:
        WorkbenchError: the store could not take every record within a minute (nothing is
            half-said: the message gives how many were written).
    """
    import uuid

    from workbench.store.writer import PredictionLog, PredictionRecord

    columns = [str(c) for c in scored.columns if c not in _ADDED_COLUMNS]
    batch = uuid.uuid4().hex[:12]
    prediction_log = PredictionLog(settings.prediction_store_url, batch_size=50,
                                   max_backlog=max(10_000, len(scored) // LOG_RECORD_ROWS + 1))
    prediction_log.start()
    records = 0
    for start in range(0, len(scored), LOG_RECORD_ROWS):
        part = scored.iloc[start:start + LOG_RECORD_ROWS]
        prediction_log.submit(PredictionRecord(
            request_id=f"batch-{batch}-{start // LOG_RECORD_ROWS}", created_at=created_at,
            model_name=instance.full_name or instance.uri, columns=columns,
            inputs={c: part[c].tolist() for c in columns}, outputs=part["prediction"].tolist(),
            latency_ms=0.0,
            scores=part["probability"].tolist() if "probability" in part else None))
        records += 1
    stats = prediction_log.close(timeout=60)
    if stats.written != records:
        raise WorkbenchError(
            f"the prediction store took {stats.written} of {records} records of {len(scored)} "
            f"scored rows ({stats.last_error or 'timed out'}); the scored file is written, "
            "check WORKBENCH_PREDICTION_STORE and score again with --log")
    return len(scored)
