"""Predictions and their probability from a scikit-learn classifier in one pass.

Every engine logs or writes a ``probability`` beside each prediction (see
:func:`workbench.tasks.probability`). Asked naively, a pipeline answers ``predict`` and
``predict_proba`` each from the start: its transforms run twice, and so does the model.
:func:`one_pass` gives a function computing both from one run of the transforms, and, for
the classifiers whose ``predict`` is the argmax of the scores ``predict_proba`` is monotonic
in (:data:`ARGMAX_CLASSIFIERS`: the tree ensembles, the demo's HistGradientBoosting among
them), from one run of the model: the prediction is the class of the largest probability.

A row whose two best classes are within :data:`TIE` of each other is a tie that rounding may
have decided differently from ``predict`` (each estimator breaks ties its own way), so those
rows, if any, are predicted by the model's own ``predict``: the predictions are
``predict``'s, row for row.

The serving runtime and the batch engines (local, streaming, Spark) share it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workbench import tasks

#: scikit-learn classifiers whose ``predict`` is the argmax of their class scores, which
#: ``predict_proba`` is a monotonic function of (the forests' and trees' ``predict`` call
#: ``predict_proba`` itself; the boosting models take the argmax of their raw scores, and
#: the sigmoid and softmax keep the order).
ARGMAX_CLASSIFIERS = frozenset({
    "HistGradientBoostingClassifier", "GradientBoostingClassifier", "RandomForestClassifier",
    "ExtraTreesClassifier", "DecisionTreeClassifier", "ExtraTreeClassifier",
})
#: Probabilities this close to each other count as a tie: ``predict`` decides those rows.
TIE = 1e-9

Scoring = Callable[[Any], "tuple[Any, Any]"]


def one_pass(estimator: Any) -> Scoring | None:
    """A function from features to ``(predictions, probability)`` for a scikit-learn
    classifier (a pipeline or a bare estimator); None for anything else (a regressor, a
    model that is not scikit-learn's), which the caller scores its usual way.

    The probability is :func:`workbench.tasks.predicted_class_probability`'s.
    """
    if estimator is None or not tasks.has_probability(estimator):
        return None
    steps = getattr(estimator, "steps", None)
    head = estimator[:-1] if isinstance(steps, list) and len(steps) > 1 else None
    final = estimator[-1] if head is not None else estimator
    if not tasks.has_probability(final):
        return None
    classes = getattr(final, "classes_", None)
    argmax = (type(final).__name__ in ARGMAX_CLASSIFIERS
              and type(final).__module__.startswith("sklearn.")
              and getattr(final, "n_outputs_", 1) == 1 and classes is not None)

    def score(features: Any) -> tuple[Any, Any]:
        prepared = head.transform(features) if head is not None else features
        proba = final.predict_proba(prepared)
        predictions = (_argmax_predictions(final, prepared, proba, classes) if argmax
                       else final.predict(prepared))
        return predictions, tasks.predicted_class_probability(proba, classes, predictions)

    return score


def _argmax_predictions(final: Any, prepared: Any, proba: Any, classes: Any) -> Any:
    """``final.predict(prepared)`` from its probabilities: the class of each row's largest
    one, and ``predict`` itself for the rows where the two largest tie (see :data:`TIE`)."""
    import numpy as np

    matrix = np.asarray(proba, dtype="float64")
    if matrix.ndim != 2 or matrix.shape[1] != len(classes) or matrix.shape[1] < 2:
        return final.predict(prepared)
    predictions = np.asarray(classes).take(np.argmax(matrix, axis=1))
    if matrix.shape[1] == 2:
        gap = np.abs(matrix[:, 1] - matrix[:, 0])
    else:
        top = np.partition(matrix, -2, axis=1)
        gap = top[:, -1] - top[:, -2]
    tied = np.flatnonzero(gap <= TIE)
    if tied.size:
        rows = prepared.iloc[tied] if hasattr(prepared, "iloc") else prepared[tied]
        predictions[tied] = final.predict(rows)
    return predictions


__all__ = ["ARGMAX_CLASSIFIERS", "TIE", "Scoring", "one_pass"]
