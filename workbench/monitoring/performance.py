"""A model version's performance on the labels that arrived for its logged predictions.

``evaluate_performance`` cuts a time range into calendar windows (day, week, month; UTC),
counts the predicted rows the model logged in each and the rows with a joined label (see
:mod:`~workbench.monitoring.labels`), and computes a metric per window (the settings'
primary metric unless told otherwise). It records each evaluated window in the prediction
store (a label that arrives later for one of them is *late*), logs the series to the model
version's performance monitoring run (one run per version, found again on every check:
step = the window's ordinal, timestamp = its start), and tags the version with the latest
value (``performance_value``, ``performance_metric``, ``performance_window``), which the
promotion gate reads.

``performance_trigger`` is what a retraining policy asks: did the latest value fall below a
threshold, or more than a margin below a baseline (the version's training metric unless
given)? ``judge`` is the same rule as a pure function.

Probability metrics (``roc_auc``, ``log_loss``) need the probability the model logged: the
``scores`` that ``workbench predict --log`` and the REST server (for a scikit-learn classifier)
log with each prediction. For traffic logged without them (a model of the user's own
``PythonModel``, records from before the server logged scores) a class metric (``accuracy``,
``f1``...) is what can be computed, and asking for ``roc_auc`` says so in one line. A
multiclass model logs its predicted class's probability, not every class's: its metrics are
class metrics (``accuracy``, ``f1_macro``, ``balanced_accuracy``; ``f1``/``precision``/
``recall`` are macro averages there). Regression metrics (``rmse``, ``mae``, ``mse``, ``r2``)
read labels and predictions as numbers; their direction comes from
:func:`workbench.tasks.greater_is_better` (``rmse`` and ``mae``: lower is better).
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from workbench import tasks
from workbench.config import Settings
from workbench.errors import MonitoringError, NoCurrentData, WorkbenchError
from workbench.progress import Progress
from workbench.promotion import (
    PERFORMANCE_CHECKED_AT_TAG,
    PERFORMANCE_METRIC_TAG,
    PERFORMANCE_RUN_TAG,
    PERFORMANCE_VALUE_TAG,
    PERFORMANCE_WINDOW_TAG,
)

if TYPE_CHECKING:
    import numpy as np
    from mlflow import MlflowClient
    from sqlalchemy.engine import Connection

    from workbench.registry import Instance, Registry

WINDOWS = ("day", "week", "month")
PROBABILITY_METRICS = ("roc_auc", "log_loss")
CLASS_METRICS = ("accuracy", "balanced_accuracy", "f1", "f1_macro", "precision", "recall")
REGRESSION_METRICS = ("rmse", "mse", "mae", "r2")
METRICS = PROBABILITY_METRICS + CLASS_METRICS + REGRESSION_METRICS
PERFORMANCE = "performance"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)



@dataclass(frozen=True)
class PerformanceWindow:
    """One window's figures.

    Attributes:
        label: ``2024-04`` (month), ``2024-04-01`` (day, or the Monday a week starts).
        start, end: the window's bounds (UTC; ``end`` exclusive), cut to the checked range.
        step: the window's ordinal since 1970 (months, weeks or days): the MLflow step.
        rows: predicted rows the model logged in it.
        labelled: of those, rows with a joined label.
        late: of those, labels that arrived after an earlier check had evaluated the window.
        value: the metric on the labelled rows; None when it cannot be computed (no labels,
            or one class only for a ranking metric; ``note`` says which).
    """

    label: str
    start: dt.datetime
    end: dt.datetime
    step: int
    rows: int
    labelled: int
    late: int
    value: float | None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"window": self.label, "start": self.start.isoformat(),
                "end": self.end.isoformat(), "step": self.step, "rows": self.rows,
                "labelled": self.labelled, "late": self.late, "value": self.value,
                "note": self.note}


@dataclass(frozen=True)
class PerformanceReport:
    """A performance check of one model version over a range of windows."""

    model: Instance
    model_name: str
    metric: str
    greater_is_better: bool
    window: str
    since: dt.datetime
    until: dt.datetime
    windows: tuple[PerformanceWindow, ...]
    checked_at: dt.datetime
    run_id: str | None = None
    run_url: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def latest(self) -> PerformanceWindow | None:
        """The newest window with a value."""
        return next((w for w in reversed(self.windows) if w.value is not None), None)

    def as_dict(self) -> dict[str, Any]:
        latest = self.latest
        return {
            "model": self.model.label, "model_name": self.model_name, "metric": self.metric,
            "greater_is_better": self.greater_is_better, "window": self.window,
            "since": self.since.isoformat(), "until": self.until.isoformat(),
            "checked_at": self.checked_at.isoformat(),
            "windows": [w.as_dict() for w in self.windows],
            "latest": latest.as_dict() if latest else None,
            "run_id": self.run_id, "run_url": self.run_url, "notes": list(self.notes),
        }


@dataclass(frozen=True)
class PerformanceVerdict:
    """Whether a performance trigger fired, and the figures it judged.

    Attributes:
        fired: the latest value is below ``threshold``, or more than ``margin`` below
            ``baseline`` (in the metric's direction).
        reason: one sentence: why it fired, or why not.
        model: the checked instance's label.
        metric: the metric judged.
        value: the latest window's value (None: nothing to judge, never fires).
        window: that window's label.
        labelled: labelled rows in that window.
        baseline: what ``margin`` is measured from (the training run's metric by default).
        threshold, margin: the rule's figures (None: that part is off).
        run_id: the performance monitoring run the series was logged to.
    """

    fired: bool
    reason: str
    model: str
    metric: str
    value: float | None
    window: str | None
    labelled: int
    baseline: float | None
    threshold: float | None
    margin: float | None
    run_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


# -- the rule ----------------------------------------------------------------------------------
def judge(value: float | None, *, metric: str, greater_is_better: bool,
          threshold: float | None = None, margin: float | None = None,
          baseline: float | None = None) -> tuple[bool, str]:
    """The performance rule: (fired, why) for the latest ``value``.

    Fires when ``value`` is worse than ``threshold``, or worse than ``baseline`` by more than
    ``margin`` ("worse" in the metric's direction). A missing value, or a part whose figure
    is None, never fires.
    """
    if value is None or not math.isfinite(value):
        return False, f"no {metric} to judge (no labelled rows in the latest window)"
    sign = 1.0 if greater_is_better else -1.0
    word = "below" if greater_is_better else "above"
    if threshold is not None and sign * (value - threshold) < 0:
        return True, f"{metric} {value:.4f} is {word} the threshold {threshold:.4f}"
    if margin is not None and baseline is not None and math.isfinite(baseline):
        drop = sign * (baseline - value)
        if drop > margin:
            return True, (f"{metric} {value:.4f} is {drop:.4f} worse than the baseline "
                          f"{baseline:.4f} (margin {margin:.4f})")
    parts = []
    if threshold is not None:
        parts.append(f"threshold {threshold:.4f}")
    if margin is not None and baseline is not None:
        parts.append(f"baseline {baseline:.4f} - margin {margin:.4f}")
    return False, f"{metric} {value:.4f} holds ({', '.join(parts) or 'no rule set'})"


def direction(metric: str, settings: Settings) -> bool:
    """Whether greater is better for ``metric``: the settings say so for the primary metric,
    its name for the others (``rmse``, ``mae``, ``log_loss`` are lower-is-better)."""
    return tasks.greater_is_better(metric, settings)


# -- windows -----------------------------------------------------------------------------------
def window_bounds(since: dt.datetime, until: dt.datetime,
                  window: str) -> list[tuple[str, dt.datetime, dt.datetime, int]]:
    """(label, start, end, step) of each calendar window overlapping [since, until), UTC,
    cut to that range.

    Raises:
        MonitoringError: an unknown window, or an empty range.
    """
    if window not in WINDOWS:
        raise MonitoringError(f"unknown window {window!r}; use one of {', '.join(WINDOWS)}")
    if since >= until:
        raise MonitoringError(f"the range is empty: since {since.isoformat()} is not before "
                              f"until {until.isoformat()}")
    out = []
    start = _floor(since, window)
    while start < until:
        end = _next(start, window)
        label = start.strftime("%Y-%m") if window == "month" else start.strftime("%Y-%m-%d")
        out.append((label, max(start, since), min(end, until), _step(start, window)))
        start = end
    return out


def _floor(moment: dt.datetime, window: str) -> dt.datetime:
    day = moment.astimezone(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "month":
        return day.replace(day=1)
    if window == "week":
        return day - dt.timedelta(days=day.weekday())
    return day


def _next(start: dt.datetime, window: str) -> dt.datetime:
    if window == "month":
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start + dt.timedelta(days=7 if window == "week" else 1)


def _step(start: dt.datetime, window: str) -> int:
    if window == "month":
        return (start.year - 1970) * 12 + start.month - 1
    days = (start - _EPOCH).days
    return (days + 3) // 7 if window == "week" else days  # 1970-01-01 was a Thursday


# -- metrics -----------------------------------------------------------------------------------
def compute_metric(metric: str, y_true: Sequence[Any], y_pred: Sequence[Any] | None,
                   y_score: Sequence[float | None] | None = None) -> tuple[float | None, str | None]:
    """``metric`` on one window's labelled rows: (value, note why there is none).

    Args:
        y_true: the labels (a list, or a numpy array: numbers stay vectorised).
        y_pred: the logged predictions; None for ``roc_auc`` when every row has its
            probability (the ranking needs nothing else).
        y_score: the logged probabilities (None or NaN where none was logged).

    Raises:
        MonitoringError: an unknown metric; a probability metric without logged
            probabilities; predictions a regression metric cannot read as numbers.
    """
    import numpy as np

    if metric not in METRICS:
        raise MonitoringError(f"cannot compute {metric!r} from labels; use one of "
                              f"{', '.join(METRICS)} (--metric, or the primary_metric setting)")
    if not len(y_true):
        return None, "no labelled rows"
    if y_pred is None and metric != "roc_auc":
        raise TypeError(f"{metric} needs the predictions")
    from sklearn import metrics as m

    if metric in REGRESSION_METRICS:
        try:
            truth = np.asarray(y_true, dtype=float)
            predicted = np.asarray(y_pred, dtype=float)
        except (TypeError, ValueError):
            raise MonitoringError(f"{metric} needs numbers, and the labels or predictions "
                                  "are not; use a class metric such as accuracy") from None
        if metric == "r2":
            if len(truth) < 2:
                return None, "r2 needs at least two labelled rows"
            return float(m.r2_score(truth, predicted)), None
        if metric == "mae":
            return float(m.mean_absolute_error(truth, predicted)), None
        mse = float(m.mean_squared_error(truth, predicted))
        return (math.sqrt(mse) if metric == "rmse" else mse), None
    truth_a, predicted_a = _comparable(y_true, [] if y_pred is None else y_pred)
    present = _classes(truth_a)
    if metric in PROBABILITY_METRICS:
        scores = _scores(metric, y_score, predicted_a)
        if metric == "roc_auc":
            if len(present) < 2:
                return None, f"roc_auc needs both classes among the labels (only {present[0]!r})"
            if len(present) > 2:
                raise _multiclass(metric, len(present))
            return float(m.roc_auc_score(truth_a == present[-1], scores)), None
        classes = _classes(np.concatenate([truth_a, predicted_a]))
        if len(classes) > 2:
            raise _multiclass(metric, len(classes))
        positive = classes[-1]
        return float(m.log_loss(truth_a == positive, scores, labels=[False, True])), None
    if metric == "accuracy":
        return float(m.accuracy_score(truth_a, predicted_a)), None
    if metric == "balanced_accuracy":
        return float(m.balanced_accuracy_score(truth_a, predicted_a)), None
    if metric == "f1_macro":
        return float(m.f1_score(truth_a, predicted_a, average="macro", zero_division=0.0)), None
    scorer = {"f1": m.f1_score, "precision": m.precision_score, "recall": m.recall_score}[metric]
    classes = _classes(np.concatenate([truth_a, predicted_a]))
    if len(classes) <= 2:
        return float(scorer(truth_a, predicted_a, pos_label=classes[-1], average="binary",
                            zero_division=0.0)), None
    return float(scorer(truth_a, predicted_a, average="macro", zero_division=0.0)), None


def _multiclass(metric: str, classes: int) -> MonitoringError:
    # A multiclass model logs one probability per row, its predicted class's: the other
    # classes' probabilities, which roc_auc and log_loss need, are not there.
    return MonitoringError(
        f"{metric} needs every class's probability, and {classes} classes were logged with "
        "one probability each (the predicted class's); use accuracy, f1_macro or "
        "balanced_accuracy for a multiclass model")


def _comparable(truth: Sequence[Any], predicted: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predictions as two comparable arrays: numbers as floats (bools as 0/1,
    "1" and 1 alike), else text on both sides (a CSV's "1" and a logged 1 are one class)."""
    import numpy as np

    try:
        return np.asarray(truth, dtype=float), np.asarray(predicted, dtype=float)
    except (TypeError, ValueError):
        pass

    def norm(value: Any) -> str:
        if isinstance(value, bool):
            return str(int(value))
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    return (np.asarray([norm(v) for v in truth], dtype=object),
            np.asarray([norm(v) for v in predicted], dtype=object))


def _classes(values: np.ndarray) -> list[Any]:
    """The distinct values, sorted (numbers numerically, text as text)."""
    import numpy as np

    if values.dtype.kind == "f":
        return [float(v) for v in np.unique(values)]
    return sorted(set(values.tolist()), key=str)


def _scores(metric: str, y_score: Sequence[float | None] | None,
            predicted: np.ndarray) -> np.ndarray:
    import numpy as np

    if y_score is not None:
        scores = np.asarray([np.nan if s is None else s for s in y_score], dtype=float) \
            if not isinstance(y_score, np.ndarray) else y_score.astype(float)
        if len(scores) and not np.isnan(scores).any():
            return scores
    # A model whose prediction is itself a probability (a regressor on 0/1, a pyfunc that
    # returns predict_proba) logged it as the prediction.
    if predicted.dtype.kind == "f" and ((predicted >= 0) & (predicted <= 1)).all() and bool(
            (predicted % 1 != 0).any()):
        return predicted
    raise MonitoringError(
        f"{metric} needs the probability the model logged, and these predictions were logged "
        "as classes only (a model without predict_proba, or records logged before the "
        "server logged probabilities); use --metric accuracy (or f1), or score the data with "
        "`workbench predict --log`")


# -- the check ---------------------------------------------------------------------------------
def evaluate_performance(
    ref: str | Instance,
    settings: Settings,
    *,
    since: str | dt.datetime = "90d",
    until: str | dt.datetime | None = None,
    window: str = "month",
    metric: str | None = None,
    registry: Registry | None = None,
    log: bool = True,
    record: bool = True,
    now: dt.datetime | None = None,
    progress: Progress | None = None,
) -> PerformanceReport:
    """The metric per window on the labels joined to ``ref``'s logged predictions.

    Args:
        ref: full name, ``instance@alias`` or ``models:/`` URI.
        settings: tracking server, prediction store, primary metric and its direction.
        since, until: the range (see :func:`~workbench.monitoring.service.parse_time`);
            ``until`` defaults to ``now``.
        window: ``day``, ``week`` or ``month`` (calendar windows, UTC).
        metric: default ``settings.primary_metric``.
        registry: built from ``settings`` when omitted.
        log: log the series to the version's performance run and tag the version.
        record: record the evaluated windows in the store (later labels for them are late).
        now: the check's time (default: the clock); a simulated clock sets it.
        progress: called with a line per step.

    Raises:
        UnknownMonitoredModel: ``ref`` names no model.
        NoCurrentData: no predictions of the model logged in the range, or no labels stored.
        MonitoringError: any other reason the check cannot be made (bad range, window or
            metric; the store or the tracking server cannot be reached).
    """
    from workbench.monitoring.service import parse_time

    say = progress or (lambda _line: None)
    checked_at = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    start = parse_time(since)
    end = parse_time(until, end_of_day=True) if until else checked_at
    bounds = window_bounds(start, end, window)
    from mlflow.exceptions import MlflowException

    try:
        return _evaluate(ref, settings, start, end, window, bounds, metric, registry, log,
                         record, checked_at, say)
    except MonitoringError:
        raise
    except WorkbenchError as exc:
        raise MonitoringError(str(exc)) from exc
    except MlflowException as exc:
        raise MonitoringError(f"the tracking server at {settings.tracking_uri} refused a call "
                              f"({str(exc).strip().splitlines()[0][:300]})") from exc


def _evaluate(ref: str | Instance, settings: Settings, start: dt.datetime, end: dt.datetime,
              window: str, bounds: list[tuple[str, dt.datetime, dt.datetime, int]],
              metric: str | None, registry: Registry | None, log: bool, record: bool,
              checked_at: dt.datetime, say: Progress) -> PerformanceReport:
    import sqlalchemy as sa

    from workbench.monitoring.labels import open_store
    from workbench.monitoring.service import resolve_model
    from workbench.registry import Registry
    from workbench.store.engine import one_line
    from workbench.store.reader import bulk_objects

    if log:
        from workbench.tracking import require_server

        require_server(settings)
    registry = registry or Registry(settings)
    instance = resolve_model(registry, ref)
    metric = metric or settings.primary_metric
    if metric not in METRICS:
        compute_metric(metric, [], [])  # raises the one line naming the metrics
    name = instance.full_name or instance.uri
    engine, shown = open_store(settings.prediction_store_url, writer=record)
    say(f"reading predictions and labels of {name} from {shown}, {start.isoformat()} to "
        f"{end.isoformat()}")
    try:
        with engine.begin() as conn, bulk_objects():
            windows = _windows(conn, name, metric, bounds, shown, start, end)
            if record:
                _record(conn, name, metric, windows, checked_at)
    except sa.exc.SQLAlchemyError as exc:
        raise MonitoringError(f"cannot read the prediction store {shown}: "
                              f"{one_line(exc)}") from exc
    finally:
        engine.dispose()
    notes: list[str] = []
    if not any(w.labelled for w in windows):
        notes.append(f"no labels joined to {name}'s predictions in the range; load them with "
                     "`workbench monitor labels FILE --id-column ...`")
    report = PerformanceReport(instance, name, metric, direction(metric, settings), window,
                               start, end, tuple(windows), checked_at, notes=tuple(notes))
    if log:
        report = _log(registry.client, report, settings)
        say(f"performance logged to {report.run_url}")
    return report


def _windows(conn: Connection, name: str, metric: str,
             bounds: list[tuple[str, dt.datetime, dt.datetime, int]], shown: str,
             start: dt.datetime, end: dt.datetime) -> list[PerformanceWindow]:
    import sqlalchemy as sa

    from workbench.store import schema
    from workbench.store.engine import utc

    inspector = sa.inspect(conn)
    if not inspector.has_table(schema.TABLE_NAME):
        raise NoCurrentData(f"no predictions logged in {shown}")
    p = schema.predictions_table
    # Window by window, each a range of the (model, time) indexes: the store counts the rows
    # and hands over only the labelled rows of that window, no time is parsed in Python.
    logged = [conn.execute(sa.select(sa.func.count(), sa.func.sum(p.c.n_rows)).where(
        p.c.model_name == name, p.c.created_at >= utc(w_start), p.c.created_at < utc(w_end)))
        .one() for _label, w_start, w_end, _step in bounds]
    if not any(records for records, _rows in logged):
        raise NoCurrentData(f"no predictions of {name} logged from {start.isoformat()} to "
                            f"{end.isoformat()} in {shown}; widen the range (--since/--until) "
                            "or check WORKBENCH_PREDICTION_STORE")
    if not inspector.has_table(schema.LABELS_TABLE_NAME):
        raise NoCurrentData(f"no labels stored in {shown}; load them with "
                            "`workbench monitor labels FILE --id-column ...`")
    out = []
    for (label, w_start, w_end, step), (_records, rows) in zip(bounds, logged):
        # Each window's labels, predictions and scores come back as three JSON arrays built
        # by the database (the stored values are JSON already; a missing score is null), in
        # one row: handing over a third of a million rows one by one cost more than the
        # metric itself.
        # roc_auc ranks by the probabilities alone: the predictions are fetched only when a
        # row lacks one (then all arrays again, in one statement, so their rows stay aligned).
        ranked = metric == "roc_auc"
        window = (conn, name, utc(w_start), utc(w_end))
        labelled, late_count, scored, truths, scores, *predictions = _labelled(
            *window, with_predictions=not ranked)
        if ranked and scored < labelled:
            labelled, late_count, scored, truths, scores, *predictions = _labelled(
                *window, with_predictions=True)
        if labelled:
            truth: Any = _decode(truths)
            predicted: Any = _decode(predictions[0]) if predictions else None
            score: Any = _decode_scores(scores)
            value, note = compute_metric(metric, truth, predicted, score)
        else:
            value, note = None, "no labelled rows"
        out.append(PerformanceWindow(label, w_start, w_end, step, int(rows or 0),
                                     int(labelled), int(late_count or 0), value, note))
    return out


def _labelled(conn: Connection, name: str, start: dt.datetime | None, end: dt.datetime | None,
              *, with_predictions: bool) -> Any:
    """One window's labelled rows of model ``name``: (rows, late rows, rows with a score, the
    labels, the scores, and with ``with_predictions`` the predictions), each array as the JSON
    text the database builds."""
    import sqlalchemy as sa

    from workbench.store.schema import labels_table as t

    return conn.execute(sa.select(
        sa.func.count(), sa.func.sum(sa.case((t.c.late, 1), else_=0)), sa.func.count(t.c.score),
        _json_array(conn, t.c.label),
        _json_array(conn, sa.func.coalesce(sa.cast(t.c.score, sa.Text), "null")),
        *([_json_array(conn, t.c.prediction)] if with_predictions else [])).where(
            t.c.model_name == name, t.c.prediction_id.is_not(None), t.c.predicted_at >= start,
            t.c.predicted_at < end)).one()


def _json_array(conn: Connection, column: Any) -> Any:
    """SQL of a JSON array of ``column``'s values (each JSON text) over the selected rows."""
    import sqlalchemy as sa

    if conn.dialect.name == "postgresql":
        joined = sa.func.string_agg(column, ",")
    else:
        joined = sa.func.group_concat(column, ",")
    return (sa.literal("[", sa.Text) + sa.type_coerce(sa.func.coalesce(joined, ""), sa.Text)
            + sa.literal("]", sa.Text))


def _decode(text: str) -> np.ndarray:
    """A JSON array as a numpy array: floats when every value is a number (not a boolean),
    else the decoded values."""
    import numpy as np

    values = np.asarray(orjson.loads(text))
    return values.astype(float) if values.dtype.kind in "iuf" else values.astype(object)


def _decode_scores(text: str) -> np.ndarray:
    """The scores' JSON array as floats, null as NaN (Postgres writes a stored NaN or
    infinity as text JSON has no word for: those are read one by one)."""
    import numpy as np

    try:
        return np.asarray(orjson.loads(text), dtype=float)
    except orjson.JSONDecodeError:
        return np.asarray([math.nan if v == "null" else float(v) for v in text[1:-1].split(",")],
                          dtype=float)


def _record(conn: Connection, name: str, metric: str, windows: list[PerformanceWindow],
            checked_at: dt.datetime) -> None:
    import sqlalchemy as sa

    from workbench.store import schema

    schema.ensure(conn)
    conn.execute(sa.insert(schema.windows_table), [
        {"model_name": name, "metric": metric, "window_start": w.start, "window_end": w.end,
         "evaluated_at": checked_at, "rows": w.rows, "labelled": w.labelled, "value": w.value}
        for w in windows])


# -- MLflow ------------------------------------------------------------------------------------
def performance_run(client: MlflowClient, instance: Instance, settings: Settings) -> str:
    """The version's performance monitoring run: found by its tags, else created.

    Raises:
        MlflowException: the tracking server refuses the calls.
    """
    return _performance_run(client, instance, settings)[0]


def _performance_run(client: MlflowClient, instance: Instance,
                     settings: Settings) -> tuple[str, bool]:
    """(run id, whether it was created now)."""
    from workbench.monitoring.service import (
        MONITORED_REGISTERED_MODEL_TAG,
        MONITORED_VERSION_TAG,
        MONITORING_TAG,
        monitoring_experiment,
        monitoring_tags,
    )

    experiment_id = monitoring_experiment(client, instance, settings)
    found = client.search_runs(
        [experiment_id],
        filter_string=(f"tags.`{MONITORING_TAG}` = '{PERFORMANCE}' and "
                       f"tags.`{MONITORED_REGISTERED_MODEL_TAG}` = "
                       f"'{_quoted(instance.registered_model)}' and "
                       f"tags.`{MONITORED_VERSION_TAG}` = '{instance.number}'"),
        order_by=["attributes.start_time ASC"], max_results=1)
    if found:
        return str(found[0].info.run_id), False
    name = instance.full_name or f"{instance.registered_model}-v{instance.number}"
    run = client.create_run(experiment_id, run_name=f"performance-{name}",
                            tags=monitoring_tags(instance, PERFORMANCE))
    return str(run.info.run_id), True


def _log(client: MlflowClient, report: PerformanceReport, settings: Settings) -> PerformanceReport:
    import dataclasses

    from mlflow.entities import Metric

    from workbench.monitoring.service import _link_model
    from workbench.tracking import run_ui_url

    instance = report.model
    run_id, created = _performance_run(client, instance, settings)
    experiment_id = client.get_run(run_id).info.experiment_id
    # Monthly series under performance.*; other windows under performance.<window>.*, so
    # steps of different lengths never share a series.
    prefix = "performance." if report.window == "month" else f"performance.{report.window}."
    metrics = []
    for w in report.windows:
        stamp = int(w.start.timestamp() * 1000)
        metrics += [Metric(f"{prefix}rows", w.rows, stamp, w.step),
                    Metric(f"{prefix}labelled_rows", w.labelled, stamp, w.step),
                    Metric(f"{prefix}late_labels", w.late, stamp, w.step)]
        if w.value is not None and math.isfinite(w.value):
            metrics.append(Metric(f"{prefix}{report.metric}", w.value, stamp, w.step))
    try:
        for chunk in range(0, len(metrics), 900):
            client.log_batch(run_id, metrics=metrics[chunk:chunk + 900])
        if created:
            _link_model(client, run_id, instance)
        latest = report.latest
        version = str(instance.number)
        tags = {PERFORMANCE_METRIC_TAG: report.metric, PERFORMANCE_RUN_TAG: run_id,
                PERFORMANCE_CHECKED_AT_TAG: report.checked_at.isoformat(timespec="seconds")}
        if latest is not None and latest.value is not None:
            tags.update({PERFORMANCE_VALUE_TAG: f"{latest.value:.6g}",
                         PERFORMANCE_WINDOW_TAG: latest.label})
        for key, value in tags.items():
            client.set_model_version_tag(instance.registered_model, version, key, value)
        client.set_terminated(run_id, "FINISHED")
    except Exception as exc:
        raise MonitoringError(f"cannot log the performance to run {run_id}: "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from exc
    return dataclasses.replace(report, run_id=run_id,
                               run_url=run_ui_url(settings, experiment_id, run_id))


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


# -- the trigger -------------------------------------------------------------------------------
def performance_trigger(
    ref: str | Instance,
    settings: Settings,
    *,
    metric: str | None = None,
    threshold: float | None = None,
    margin: float | None = None,
    baseline: float | None = None,
    since: str | dt.datetime = "90d",
    until: str | dt.datetime | None = None,
    window: str = "month",
    registry: Registry | None = None,
    log: bool = True,
    now: dt.datetime | None = None,
    progress: Progress | None = None,
) -> PerformanceVerdict:
    """Check ``ref``'s performance and judge the latest window (see :func:`judge`).

    Args:
        metric: the metric judged (default: the ``primary_metric`` setting).
        threshold: fire when the latest value is worse than this.
        margin: fire when the latest value is worse than ``baseline`` by more than this.
        baseline: default: ``ref``'s training run's value of ``metric`` (None when it has
            none: the margin part is then off).
        since, until, window, registry, log, now, progress: as for
            :func:`evaluate_performance`.

    Returns:
        The verdict; a missing value (no labels yet) does not fire.

    Raises:
        Everything :func:`evaluate_performance` raises, except NoCurrentData (nothing
        logged or labelled in the range), which is a verdict that did not fire.
    """
    from workbench.monitoring.service import resolve_model
    from workbench.registry import Registry

    registry = registry or Registry(settings)
    instance = resolve_model(registry, ref)
    metric = metric or settings.primary_metric
    if baseline is None:
        baseline = instance.metrics.get(metric)
    greater = direction(metric, settings)
    try:
        report = evaluate_performance(instance, settings, since=since, until=until,
                                      window=window, metric=metric, registry=registry, log=log,
                                      now=now, progress=progress)
    except NoCurrentData as exc:
        return PerformanceVerdict(False, f"nothing to judge: {exc}", instance.label, metric,
                                  None, None, 0, baseline, threshold, margin)
    latest = report.latest
    fired, reason = judge(latest.value if latest else None, metric=metric,
                          greater_is_better=greater, threshold=threshold, margin=margin,
                          baseline=baseline)
    return PerformanceVerdict(
        fired, f"{instance.label}: {reason}" + (f" in {latest.label}" if latest else ""),
        instance.label, metric, latest.value if latest else None,
        latest.label if latest else None, latest.labelled if latest else 0, baseline,
        threshold, margin, report.run_id)


__all__ = [
    "METRICS",
    "WINDOWS",
    "PerformanceReport",
    "PerformanceVerdict",
    "PerformanceWindow",
    "compute_metric",
    "evaluate_performance",
    "judge",
    "performance_run",
    "performance_trigger",
    "window_bounds",
]
