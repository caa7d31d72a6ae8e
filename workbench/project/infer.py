"""What a project's model reads and predicts, inferred from a data file.

``read_table`` reads a CSV or Parquet file; ``infer_plan`` decides, from the target column and
the others, the task (classification or regression), the numeric and categorical feature
columns, the columns left out (and why) and the primary metric with its direction. Every
decision can be overridden; a choice that does not fit the data is a one-line
:class:`~workbench.errors.ProjectError`. Pure functions over a pandas frame, no other I/O
than reading the file.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from workbench.errors import ProjectError
from workbench.tasks import default_greater_is_better

Task = Literal["classification", "regression"]
TASKS: tuple[Task, ...] = ("classification", "regression")
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}

#: Metrics the rendered project's evaluation logs, per task (directions: workbench.tasks).
#: ``f1`` is the positive class's and is logged for two classes only; ``f1_macro`` always.
METRICS: dict[Task, tuple[str, ...]] = {
    "classification": ("roc_auc", "accuracy", "balanced_accuracy", "f1", "f1_macro", "log_loss"),
    "regression": ("rmse", "mae", "r2"),
}
#: Metrics that need the probability of every class: served and batch predictions of a model
#: with more than two classes carry one probability per row, so these cannot judge it later.
_BINARY_ONLY = ("roc_auc", "log_loss", "f1")
#: A numeric target with at most this many distinct whole values is read as classes.
MAX_CLASSES_INFERRED = 20
#: A classification target may have at most this many classes.
MAX_CLASSES = 100
#: A text column with more distinct values than this share of the rows is left out (free text
#: or an identifier would one-hot into as many columns as rows).
MAX_CATEGORY_SHARE = 0.5


@dataclass(frozen=True)
class ColumnPlan:
    """What the model of a project reads and predicts.

    Attributes:
        target: the column the model predicts.
        task: ``classification`` or ``regression``.
        numeric: feature columns imputed and scaled.
        categorical: feature columns one-hot encoded.
        ignored: columns that are not features, each with the reason.
        classes: how many classes the target has (classification), else None.
        primary_metric: the metric models are compared and promoted on.
        greater_is_better: its direction.
        rows: rows in the file.
    """

    target: str
    task: Task
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    ignored: dict[str, str] = field(default_factory=dict)
    classes: int | None = None
    primary_metric: str = "roc_auc"
    greater_is_better: bool = True
    rows: int = 0

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    def describe(self) -> str:
        """One line: task, target, features, metric."""
        kind = (f"{self.classes}-class classification" if self.task == "classification"
                else "regression")
        left = f"; left out: {', '.join(f'{c} ({why})' for c, why in self.ignored.items())}" \
            if self.ignored else ""
        return (f"{kind} of {self.target!r} from {len(self.numeric)} numeric and "
                f"{len(self.categorical)} categorical column(s); primary metric "
                f"{self.primary_metric} ({'higher' if self.greater_is_better else 'lower'} is "
                f"better){left}")


def read_table(path: Path) -> Any:
    """The table in ``path`` (``.csv`` or ``.parquet``) as a pandas DataFrame.

    Raises:
        ProjectError: no such file, an unknown format, a file that does not parse, or one
            with no rows.
    """
    import pandas as pd

    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ProjectError(f"data file {path}: unsupported format {path.suffix or '(none)'!r}; "
                           "use a .csv or .parquet file")
    if not path.is_file():
        raise ProjectError(f"data file {path} does not exist; pass an existing .csv or .parquet "
                           "file to --data")
    try:
        frame = pd.read_csv(path) if kind == "csv" else pd.read_parquet(path)
    except Exception as exc:  # pandas and pyarrow raise many kinds for a broken file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ProjectError(f"data file {path} cannot be read as {kind.upper()} ({first}); "
                           "check the file") from None
    if frame.empty or len(frame.columns) < 2:
        raise ProjectError(f"data file {path} has {len(frame)} row(s) and {len(frame.columns)} "
                           "column(s); it needs rows, a target column and at least one feature")
    return frame


def infer_plan(frame: Any, target: str, task: str | None = None,
               numeric: Sequence[str] | None = None, categorical: Sequence[str] | None = None,
               metric: str | None = None) -> ColumnPlan:
    """Decide task, features and metric for predicting ``target`` from ``frame``.

    Args:
        frame: the data (a pandas DataFrame).
        target: the column to predict.
        task: ``classification`` or ``regression``; inferred when None (text, booleans and
            whole numbers with at most 20 distinct values are classes; other numbers a
            regression target).
        numeric: the numeric feature columns; inferred from the remaining columns when None.
        categorical: the categorical feature columns; likewise.
        metric: the primary metric; by default ``roc_auc`` for two classes, ``f1_macro``
            for more, ``rmse`` for regression.

    Raises:
        ProjectError: the target is not a column or has no values, the task does not fit it,
            a named feature is not a column (or is the target, or not numeric for
            ``numeric``), no feature is left, or the metric is not one of the task's.
    """
    columns = [str(c) for c in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    if target not in columns:
        raise ProjectError(f"target column {target!r} is not in the data; its columns are: "
                           f"{_listing(columns)}")
    y = frame[target].dropna()
    if y.empty:
        raise ProjectError(f"target column {target!r} has no values; choose a column with labels")
    chosen: Task = _task(y, target, task)
    classes = int(y.nunique()) if chosen == "classification" else None

    ignored: dict[str, str] = {}
    named = [*(numeric or ()), *(categorical or ())]
    for name in named:
        if name not in columns:
            raise ProjectError(f"feature column {name!r} is not in the data; its columns are: "
                               f"{_listing(columns)}")
        if name == target:
            raise ProjectError(f"{target!r} is the target; it cannot also be a feature")
    for name in numeric or ():
        if not _is_number(frame[name]):
            raise ProjectError(f"column {name!r} holds {frame[name].dtype} values, not numbers; "
                               "pass it as a categorical column")
    rest = [c for c in columns if c != target and c not in named]
    found_numeric = list(numeric) if numeric is not None else []
    found_categorical = list(categorical) if categorical is not None else []
    for name in rest:
        kind, why = _column_kind(frame[name], name, len(frame))
        if kind == "numeric" and numeric is None:
            found_numeric.append(name)
        elif kind == "categorical" and categorical is None:
            found_categorical.append(name)
        elif kind is None:
            ignored[name] = why
    if not found_numeric and not found_categorical:
        raise ProjectError(f"no feature column left besides the target {target!r}"
                           + (f" (left out: {_listing(list(ignored))})" if ignored else "")
                           + "; pass --numeric or --categorical")
    primary = metric or _default_metric(chosen, classes)
    if primary not in METRICS[chosen]:
        raise ProjectError(f"metric {primary!r} is not one a {chosen} project logs; choose from "
                           f"{', '.join(METRICS[chosen])}")
    if classes is not None and classes > 2 and primary in _BINARY_ONLY:
        raise ProjectError(f"metric {primary!r} cannot be the primary metric of {classes} "
                           "classes (predictions carry one probability per row); choose "
                           "f1_macro, accuracy or balanced_accuracy")
    return ColumnPlan(target=target, task=chosen, numeric=tuple(found_numeric),
                      categorical=tuple(found_categorical), ignored=ignored, classes=classes,
                      primary_metric=primary, greater_is_better=default_greater_is_better(primary),
                      rows=len(frame))


def _task(y: Any, target: str, task: str | None) -> Task:
    if task is not None and task not in TASKS:
        raise ProjectError(f"task {task!r} is unknown; use classification or regression")
    number = _is_number(y)
    distinct = int(y.nunique())
    whole = number and bool((y.astype(float) % 1 == 0).all())
    if task == "regression":
        if not number:
            example = str(y.iloc[0])[:40]
            raise ProjectError(f"target {target!r} holds text (e.g. {example!r}); regression "
                               "needs numbers: use --task classification, or another target")
        return "regression"
    if task == "classification":
        if number and not whole and distinct > MAX_CLASSES_INFERRED:
            raise ProjectError(f"target {target!r} holds {distinct} distinct fractional numbers, "
                               "not classes: use --task regression")
    elif not number or y.dtype == bool or (whole and distinct <= MAX_CLASSES_INFERRED):
        task = "classification"
    else:
        return "regression"
    if distinct < 2:
        raise ProjectError(f"target {target!r} has a single class ({str(y.iloc[0])!r}); a classifier "
                           "needs at least two")
    if distinct > MAX_CLASSES:
        raise ProjectError(f"target {target!r} has {distinct} classes (at most {MAX_CLASSES}); "
                           "use --task regression for a quantity")
    return "classification"


def _column_kind(column: Any, name: str, rows: int) -> tuple[str | None, str]:
    import pandas as pd

    values = column.dropna()
    if values.empty:
        return None, "empty"
    if pd.api.types.is_datetime64_any_dtype(column):
        return None, "a date; derive features from it in features.py"
    distinct = int(values.nunique())
    if distinct < 2:
        return None, "constant"
    if _is_number(column) and column.dtype != bool:
        if (pd.api.types.is_integer_dtype(column) and distinct == rows and rows > 20
                and name.lower().rstrip("_").endswith("id")):
            return None, "an identifier"
        return "numeric", ""
    if distinct == rows and rows > 20:
        return None, "an identifier (every value distinct)"
    if distinct > max(MAX_CATEGORY_SHARE * rows, 50):
        return None, f"text with {distinct} distinct values"
    return "categorical", ""


def _is_number(column: Any) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(column))


def _default_metric(task: Task, classes: int | None) -> str:
    if task == "regression":
        return "rmse"
    return "roc_auc" if classes == 2 else "f1_macro"


def _listing(names: Sequence[str], most: int = 12) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")
