"""Batch predictions: score a table with a registered model instance.

The output is the input plus ``prediction`` (and ``probability`` for classifiers that
have one), ``model_name`` and ``scored_at`` columns, so every scored row says which
instance scored it and when. The batch notebook calls ``predict_file``.

``probability`` (see :func:`workbench.tasks.probability`): a binary classifier's positive
class's probability (the last of its sorted classes: what ``roc_auc`` on logged predictions
needs); for more than two classes the probability of the class in ``prediction`` (the
model's confidence in it); a regressor has no ``probability`` column.

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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench import tasks
from workbench.config import Settings
from workbench.engines.local import (
    DEFAULT_BATCH_ROWS,
    FORMATS,
    TableWriter,
    iter_frames,
    reading,
    resolve_dataset,
)
from workbench.errors import WorkbenchError
from workbench.registry import Instance, Registry
from workbench.scoring import one_pass

if TYPE_CHECKING:
    import pandas as pd

LOG_RECORD_ROWS = 1000
_ADDED_COLUMNS = ("prediction", "probability", "model_name", "scored_at")


@dataclass(frozen=True)
class BatchPrediction:
    """What ``predict_file`` wrote."""

    output: Path
    rows: int
    model: Instance
    scored_at: dt.datetime
    files: int = 1
    logged: int = 0


class ModelScorer:
    """A loaded pyfunc model that scores frames: the signature's checks, then the model.

    The Spark engine's workers build one from the model files they were shipped (they
    have no registry); :class:`LoadedModel` builds one from a registered instance.

    Attributes:
        pyfunc: the MLflow pyfunc model.
        label: the model's name in messages and in the ``model_name`` column.
        input_columns: the signature's columns (None without a signature).
        input_types: column -> MLflow type name, for the columns the signature types.
    """

    def __init__(self, pyfunc: Any, label: str) -> None:
        self.pyfunc = pyfunc
        self.label = label
        self._raw = _unwrap(pyfunc)
        # Predictions and probabilities in one pass of the pipeline (and of the model, for
        # the tree ensembles), for a scikit-learn classifier whose input MLflow can check.
        self._one_pass = _one_pass(pyfunc, self._raw)
        signature = pyfunc.metadata.get_input_schema()
        self.input_columns = signature.input_names() if signature is not None else None
        # column -> MLflow type name, for the columns the signature types (not tensors)
        self.input_types: dict[str, str] = (
            {str(c.name): getattr(c.type, "name", str(c.type)) for c in signature.inputs
             if c.name is not None}
            if signature is not None and not signature.is_tensor_spec() else {})

    @property
    def has_probability(self) -> bool:
        """Whether the scored table gets a ``probability`` column."""
        return tasks.has_probability(self._raw)

    def outputs(self, frame: pd.DataFrame) -> tuple[Any, Any]:
        """The predictions on ``frame`` and their probability (see
        :func:`workbench.tasks.probability`: the positive class's for two classes, the
        predicted class's for more; None when the model has no ``predict_proba``).

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
                    f"{self.label} was trained on"
                )
            features = frame[self.input_columns]
        for column, kind in self.input_types.items():
            _check_column(features[column], kind, self.label)
        from mlflow.exceptions import MlflowException

        try:
            if self._one_pass is not None:
                predictions, probability = self._one_pass(features)
            else:
                predictions = self.pyfunc.predict(features)
                probability = tasks.probability(self._raw, features, predictions)
        except (MlflowException, ValueError, TypeError, KeyError) as error:
            # The signature's enforcement (MlflowException) or the model itself (an unseen
            # category, a wrong dtype) refused these rows: bad input, said in one line.
            full = str(getattr(error, "message", None) or error)
            # MLflow's schema errors quote the data and the schema first; the reason is last.
            text = full.rsplit("Error: ", 1)[-1].strip().splitlines()
            raise WorkbenchError(
                f"{self.label} cannot score this input ({type(error).__name__}: "
                f"{text[0][:200] if text else 'no detail'}); check the columns' values and types"
            ) from error
        return predictions, probability

    def predict(self, frame: pd.DataFrame, scored_at: dt.datetime | None = None) -> pd.DataFrame:
        """``frame`` with prediction, probability (when available), model_name, scored_at.

        Raises:
            WorkbenchError: see :meth:`outputs`.
        """
        predictions, probability = self.outputs(frame)
        out = frame.copy()
        out["prediction"] = predictions
        if probability is not None:
            out["probability"] = probability
        out["model_name"] = self.label
        out["scored_at"] = scored_at_text(scored_at or dt.datetime.now(dt.timezone.utc))
        return out


class LoadedModel(ModelScorer):
    """A registered instance loaded once, ready to score frames.

    Args:
        instance: the instance.
        settings: the tracking server its files come from.
        source: where its files are when they were downloaded already (default: its URI).
    """

    def __init__(self, instance: Instance, settings: Settings, source: str | None = None) -> None:
        import mlflow

        mlflow.set_tracking_uri(settings.tracking_uri)
        self.instance = instance
        super().__init__(mlflow.pyfunc.load_model(source or instance.uri), instance.label)


def scored_at_text(moment: dt.datetime) -> str:
    """The ``scored_at`` column's value: ISO 8601 to the second."""
    return moment.isoformat(timespec="seconds")


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


def _one_pass(pyfunc: Any, raw: Any) -> Callable[[Any], tuple[Any, Any]] | None:
    """What ``pyfunc.predict`` does first (the signature's enforcement), then the model's
    predictions and probabilities computed together (:func:`workbench.scoring.one_pass`); None
    when the model is not a scikit-learn classifier or this MLflow does not have its checks
    where the workbench looks (then the model is scored through ``pyfunc.predict``, its
    probabilities in a second pass)."""
    score = one_pass(raw)
    if score is None or "sklearn" not in getattr(pyfunc.metadata, "flavors", {}):
        return None
    try:  # MLflow's own step (pinned below 3.18 in setup.cfg); checked by the unit tests
        from mlflow.pyfunc import _validate_prediction_input
    except ImportError:
        return None
    schema, params = pyfunc.metadata.get_input_schema(), pyfunc.metadata.get_params_schema()
    flavor = getattr(pyfunc, "loader_module", None) or "mlflow.sklearn"

    def enforced(features: Any) -> tuple[Any, Any]:
        return score(_validate_prediction_input(features, None, schema, params, flavor)[0])

    return enforced


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

    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise WorkbenchError(f"{path}: unsupported format; use .csv or .parquet")
    if not path.is_file():
        raise WorkbenchError(f"input file {path} does not exist")
    with reading(path, kind):
        frame = pd.read_csv(path) if kind == "csv" else pd.read_parquet(path)
    if frame.empty:
        raise WorkbenchError(f"{path} has no rows to score")
    return frame


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` whole or not at all (a temporary file, then a rename).

    Raises:
        WorkbenchError: unsupported extension.
    """
    with TableWriter(path) as writer:
        writer.write(frame)


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
    batch_rows: int = DEFAULT_BATCH_ROWS, progress: Callable[[str], None] | None = None,
    log: bool = False, logged_at: dt.datetime | None = None,
) -> BatchPrediction:
    """Score a dataset and write the scored table (CSV or Parquet, by extension).

    The streaming local engine: the input (a CSV/Parquet file, a folder of them or a glob)
    is read ``batch_rows`` at a time, each batch scored and appended to the output, so
    memory stays flat however large the input; the output appears whole or not at all.

    Args:
        ref: full name, ``instance@alias`` or ``models:/`` URI.
        input_path: a file, a folder (every CSV or Parquet file in it) or a glob.
        output_path: the scored table, ``.csv`` or ``.parquet``.
        settings, registry: built from the environment when omitted.
        batch_rows: rows per batch (Parquet row groups are split to this size).
        progress: called with a line now and then: rows done of rows in total.

    Args:
        log: also log the scored rows to the prediction store (``settings``).
        logged_at: the logged predictions' time (default: when they were scored); a
            simulated clock (the demo's months) sets it.

    Raises:
        InvalidModelName, ModelNotFound: ``ref`` is malformed or unknown.
        WorkbenchError: unreadable input, unsupported format, missing columns, values the
            model's signature refuses (the file and row are named); nothing is written;
            or (with ``log``) rows the prediction store did not take.
    """
    settings = settings or Settings.from_env()
    registry = registry or Registry(settings)
    output_path = Path(output_path)
    if FORMATS.get(output_path.suffix.lower()) is None:
        raise WorkbenchError(f"{output_path}: unsupported output format; use .csv or .parquet")
    dataset = resolve_dataset(input_path)
    total = dataset.total_rows()
    model = LoadedModel(registry.resolve(ref), settings)
    scored_at = dt.datetime.now(dt.timezone.utc)
    report = RowProgressLines(progress, total, approximate=dataset.kind == "csv")
    with TableWriter(output_path) as writer:
        for path, frame in iter_frames(dataset, batch_rows):
            if frame.empty:
                continue
            try:
                writer.write(model.predict(frame, scored_at))
            except WorkbenchError as error:
                if len(dataset.files) == 1:
                    raise
                raise WorkbenchError(f"{path}: {error}") from error
            report(writer.rows)
        if writer.rows == 0:
            raise WorkbenchError(f"{dataset.source} has no rows to score")
    report(writer.rows, final=True)
    # Logged once the output is whole: a failed run logs nothing. The scored table is read
    # back batch by batch, so logging keeps the engine's flat memory.
    logged = (log_predictions(output_path, model.instance, settings, logged_at or scored_at,
                              batch_rows) if log else 0)
    return BatchPrediction(output_path, writer.rows, model.instance, scored_at,
                           len(dataset.files), logged)


class RowProgressLines:
    """Turns rows done into a line at most every ``every_s`` seconds (and a last one)."""

    def __init__(self, progress: Callable[[str], None] | None, total: int | None,
                 approximate: bool = False, every_s: float = 2.0, verb: str = "scored") -> None:
        self._say, self._total, self._approximate = progress, total, approximate
        self._every, self._verb = every_s, verb
        self._last = time.monotonic()

    def __call__(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if self._say is None or (not final and now - self._last < self._every):
            return
        self._last = now
        if final:
            self._say(f"{self._verb} {done:,} rows")
        elif self._total:
            about = "~" if self._approximate else ""
            self._say(f"{self._verb} {done:,} of {about}{self._total:,} rows "
                      f"({min(done / self._total, 1.0):.0%})")
        else:
            self._say(f"{self._verb} {done:,} rows")


def log_predictions(scored_table: Path, instance: Instance, settings: Settings,
                    created_at: dt.datetime, batch_rows: int = DEFAULT_BATCH_ROWS) -> int:
    """Write a scored table (``predict_file``'s output) to the prediction store, as the
    server would (under the instance's full name, role ``primary``), with the probabilities
    as scores.

    Returns:
        The rows logged.

    Raises:
        WorkbenchError: the store could not take every record within a minute (nothing is
            half-said: the message gives how many were written).
    """
    import uuid

    from workbench.store.writer import PredictionLog, PredictionRecord

    batch = uuid.uuid4().hex[:12]
    # A small backlog keeps memory flat: a full one makes the loop wait for the writer.
    prediction_log = PredictionLog(settings.prediction_store_url, batch_size=50, max_backlog=100,
                                   id_column=settings.label_id_column or None)
    prediction_log.start()
    records = rows = 0
    try:
        for _, scored in iter_frames(resolve_dataset(scored_table), batch_rows):
            columns = [str(c) for c in scored.columns if c not in _ADDED_COLUMNS]
            for start in range(0, len(scored), LOG_RECORD_ROWS):
                part = scored.iloc[start:start + LOG_RECORD_ROWS]
                record = PredictionRecord(
                    request_id=f"batch-{batch}-{records}", created_at=created_at,
                    model_name=instance.full_name or instance.uri, columns=columns,
                    inputs={c: part[c].tolist() for c in columns},
                    outputs=part["prediction"].tolist(), latency_ms=0.0,
                    scores=part["probability"].tolist() if "probability" in part else None)
                # The backlog is bounded: wait for room rather than drop a batch's records.
                while not prediction_log.submit(record):
                    if not prediction_log.flush(timeout=60):
                        break
                records += 1
            rows += len(scored)
    finally:
        stats = prediction_log.close(timeout=60)
    if stats.written != records:
        raise WorkbenchError(
            f"the prediction store took {stats.written} of {records} records of {rows} "
            f"scored rows ({stats.last_error or 'timed out'}); the scored file is written, "
            "check WORKBENCH_PREDICTION_STORE and score again with --log")
    return rows
