"""What a model's outputs mean: its task, its ``probability`` column, its metrics' direction.

One place for the rules that ``predict`` (the local and the Spark engines), registration,
the promotion gate, ``models compare`` and the board share, so none of them assumes a
binary classifier:

- **task**: ``classification`` for a scikit-learn classifier (or any model with
  ``predict_proba``), ``regression`` for a regressor; None when it cannot be told (a
  ``PythonModel`` of the user's own).
- **probability**: a binary classifier's is the positive class's (the last of its sorted
  ``classes_``, as ``roc_auc`` on logged traffic expects); a classifier with more than two
  classes gets the probability of the class it *predicted* (its confidence in the row's
  ``prediction``), one column whatever the number of classes; a regressor has none.
- **direction**: whether greater is better for a metric. The project's setting
  (``greater_is_better``) rules for its own primary metric; for any other metric the
  direction a model version recorded when it was registered (tags
  :data:`PRIMARY_METRIC_TAG`, :data:`GREATER_IS_BETTER_TAG`), so a board opened in a
  project with another primary metric still orders a regression model's ``rmse`` right;
  else the metric's name (``rmse``, ``mae``, ``log_loss``... are lower-is-better).

No MLflow import; numpy only inside the functions that need it.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from workbench.config import Settings
    from workbench.registry.types import Instance

CLASSIFICATION, REGRESSION = "classification", "regression"
TASKS = (CLASSIFICATION, REGRESSION)
#: Model version tags written at registration (see ``Registry.register``).
TASK_TAG = "workbench.task"
PRIMARY_METRIC_TAG = "workbench.primary_metric"
GREATER_IS_BETTER_TAG = "workbench.greater_is_better"
#: Metrics where a smaller value is the better model (errors and losses).
LOWER_IS_BETTER = frozenset({
    "log_loss", "logloss", "rmse", "mse", "mae", "mape", "msle", "rmsle", "max_error",
    "median_absolute_error", "mean_absolute_error", "mean_squared_error",
    "root_mean_squared_error", "mean_absolute_percentage_error", "brier_score",
    "brier_score_loss", "hamming_loss", "zero_one_loss", "error_rate",
})

#: Metrics where a larger value is the better model (scores).
HIGHER_IS_BETTER = frozenset({
    "accuracy", "balanced_accuracy", "f1", "f1_macro", "f1_weighted", "precision", "recall",
    "roc_auc", "pr_auc", "average_precision", "r2", "explained_variance",
})


def direction_known(metric: str) -> bool:
    """Whether ``metric``'s name tells its direction (a known score or error)."""
    name = _bare(metric)
    return name in HIGHER_IS_BETTER or not default_greater_is_better(metric)


def _bare(metric: str) -> str:
    name = metric.strip().lower()
    for prefix in ("test_", "val_", "validation_", "eval_"):
        name = name.removeprefix(prefix)
    return name


def default_greater_is_better(metric: str) -> bool:
    """Whether greater is better for ``metric``, judged by its name alone.

    ``rmse``, ``mae``, ``log_loss`` and the other names in :data:`LOWER_IS_BETTER` (also with
    a ``test_``/``val_``/``validation_`` prefix, or ``_loss``/``_error`` at the end) are
    lower-is-better; every other metric is greater-is-better.
    """
    name = _bare(metric)
    return not (name in LOWER_IS_BETTER or name.endswith(("_loss", "_error")))


def recorded_direction(metric: str, instances: Iterable[Instance]) -> bool | None:
    """The direction the instances' registrations recorded for ``metric`` (the most common
    one when they disagree); None when none recorded one for it."""
    votes = Counter(
        i.tags.get(GREATER_IS_BETTER_TAG, "").lower() == "true" for i in instances
        if i.tags.get(PRIMARY_METRIC_TAG) == metric
        and i.tags.get(GREATER_IS_BETTER_TAG, "").lower() in ("true", "false"))
    return votes.most_common(1)[0][0] if votes else None


def greater_is_better(metric: str, settings: Settings,
                      instances: Iterable[Instance] = ()) -> bool:
    """Whether greater is better for ``metric`` (see the module's docstring for the order:
    the settings for their primary metric, then the versions' tags, then the name)."""
    if metric == settings.primary_metric:
        return settings.greater_is_better
    recorded = recorded_direction(metric, instances)
    return default_greater_is_better(metric) if recorded is None else recorded


def primary_metric(settings: Settings, instances: Iterable[Instance] = ()) -> str:
    """The metric to rank ``instances`` by: the settings' primary metric when any of them
    has it, else the primary metric most of them recorded at registration (a regression
    model seen from a project whose primary metric is ``roc_auc``), else the settings'."""
    instances = list(instances)
    if not instances or any(settings.primary_metric in i.metrics for i in instances):
        return settings.primary_metric
    recorded = Counter(i.tags[PRIMARY_METRIC_TAG] for i in instances
                       if i.tags.get(PRIMARY_METRIC_TAG) in i.metrics)
    return recorded.most_common(1)[0][0] if recorded else settings.primary_metric


def direction_word(greater: bool) -> str:
    """``higher is better`` or ``lower is better``."""
    return "higher is better" if greater else "lower is better"


def model_task(model: Any) -> str | None:
    """``classification``, ``regression`` or None (cannot be told) for a fitted model.

    A scikit-learn estimator says so itself (``is_classifier``/``is_regressor``, which see
    through pipelines); any other model is a classifier when it has ``predict_proba``.
    """
    from sklearn.base import is_classifier, is_regressor

    try:
        if is_classifier(model):
            return CLASSIFICATION
        if is_regressor(model):
            return REGRESSION
    except Exception:  # an object whose tags cannot be read: judge by its methods
        pass
    return CLASSIFICATION if has_probability(model) else None


def has_probability(model: Any) -> bool:
    """Whether ``model`` gives class probabilities (a pipeline ending in a regressor does not:
    scikit-learn hides ``predict_proba`` there)."""
    try:
        return model is not None and hasattr(model, "predict_proba")
    except Exception:  # an available_if check that itself raises
        return False


def probability(model: Any, features: Any, predictions: Any) -> np.ndarray | None:
    """The ``probability`` column for ``predictions`` of ``model`` on ``features``.

    None for a model without ``predict_proba`` (a regressor). See
    :func:`predicted_class_probability` for what the value is.

    Raises:
        ValueError, TypeError, KeyError: the model refused ``features`` (its own errors).
    """
    if not has_probability(model):
        return None
    return predicted_class_probability(model.predict_proba(features),
                                       getattr(model, "classes_", None), predictions)


def predicted_class_probability(proba: Any, classes: Any, predictions: Any) -> np.ndarray:
    """One probability per row from a ``predict_proba`` matrix.

    Two classes (or one column): the last column, the positive class's probability (the
    binary convention ``roc_auc`` relies on). More than two: the probability of the class in
    the row's prediction, found in ``classes`` (the model's ``classes_``, in the matrix's
    column order); where a prediction is not among ``classes`` (a model whose ``predict``
    relabels its output) or ``classes`` is unknown, the largest probability of the row,
    which is the predicted class's for every argmax classifier.

    Args:
        proba: ``(rows, classes)`` probabilities.
        classes: the class of each column, or None.
        predictions: the predicted class per row (a sequence, array, Series or one-column
            frame).

    Raises:
        ValueError: ``proba`` is not a rows-by-classes matrix, or the row counts differ.
    """
    import numpy as np

    matrix = np.asarray(proba, dtype="float64")
    if matrix.ndim == 1:
        return matrix
    if matrix.ndim != 2:
        raise ValueError(f"predict_proba gave an array of {matrix.ndim} dimensions, not rows "
                         "by classes")
    if matrix.shape[1] <= 2:
        return matrix[:, -1]
    best = matrix.max(axis=1)
    if classes is None or predictions is None:
        return best
    predicted = np.asarray(getattr(predictions, "values", predictions)).reshape(len(matrix), -1)
    if predicted.shape[1] != 1:
        return best
    index = _class_index(predicted[:, 0], np.asarray(classes))
    rows = np.arange(len(matrix))
    return np.where(index >= 0, matrix[rows, np.maximum(index, 0)], best)


def _class_index(predicted: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The column of each prediction's class in ``classes`` (-1: none)."""
    import numpy as np

    index = np.full(len(predicted), -1, dtype="int64")
    if len(classes) <= _VECTOR_CLASSES:
        try:
            # One vectorised comparison per class rather than a Python lookup per row
            # (500,000 rows, three classes: about 30 ms for numbers, 180 ms for text here).
            for n, value in enumerate(classes):
                index[np.asarray(predicted == value, dtype=bool)] = n
            return index
        except (TypeError, ValueError):
            index[:] = -1
    column = {_key(c): n for n, c in enumerate(classes.tolist())}
    return np.fromiter((column.get(_key(p), -1) for p in predicted.tolist()),
                       dtype="int64", count=len(predicted))


_VECTOR_CLASSES = 64


def _key(value: Any) -> Any:
    # 1, 1.0 and np.int64(1) name one class; text stays text.
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


__all__ = [
    "CLASSIFICATION",
    "GREATER_IS_BETTER_TAG",
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "PRIMARY_METRIC_TAG",
    "REGRESSION",
    "TASKS",
    "TASK_TAG",
    "default_greater_is_better",
    "direction_known",
    "direction_word",
    "greater_is_better",
    "model_task",
    "predicted_class_probability",
    "primary_metric",
    "probability",
    "recorded_direction",
]
