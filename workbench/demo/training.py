"""The example churn model: feature selection, pipelines per algorithm, evaluation.

Kept out of the notebook so that the train notebook reads as the process (track, fit,
evaluate, register) and this code is unit-tested once.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from workbench.demo.data import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES
from workbench.errors import WorkbenchError

ALGORITHMS = ("logistic_regression", "gradient_boosting", "random_forest")


def select_features(spec: str | Sequence[str]) -> list[str]:
    """``"all"`` or a comma-separated list (or a list) of feature columns.

    Raises:
        WorkbenchError: a name that is not a feature.
    """
    if isinstance(spec, str):
        names = list(FEATURES) if spec.strip() == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    else:
        names = list(spec)
    unknown = [n for n in names if n not in FEATURES]
    if unknown or not names:
        raise WorkbenchError(
            f"unknown feature(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(FEATURES)}"
        )
    return names


def build_pipeline(
    algorithm: str, columns: Sequence[str], hyperparameters: Mapping[str, Any] | None = None,
    seed: int = 42,
) -> Any:
    """A scikit-learn pipeline: impute + scale numerics, one-hot categoricals, then the model.

    Raises:
        WorkbenchError: unknown algorithm or hyperparameter.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    models = {
        "logistic_regression": lambda: LogisticRegression(max_iter=1000),
        "gradient_boosting": lambda: HistGradientBoostingClassifier(random_state=seed),
        "random_forest": lambda: RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1),
    }
    if algorithm not in models:
        raise WorkbenchError(f"unknown algorithm {algorithm!r}; choose from {', '.join(ALGORITHMS)}")
    estimator = models[algorithm]()
    try:
        estimator.set_params(**dict(hyperparameters or {}))
    except ValueError as exc:
        raise WorkbenchError(f"bad hyperparameters for {algorithm}: {exc}") from exc
    numeric = [c for c in columns if c in NUMERIC_FEATURES]
    categorical = [c for c in columns if c in CATEGORICAL_FEATURES]
    preprocess = ColumnTransformer([
        ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
    ])
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


def evaluate(model: Any, X: Any, y: Any) -> dict[str, float]:
    """Hold-out metrics: roc_auc (the primary metric), accuracy, f1, log_loss."""
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    probability = model.predict_proba(X)[:, 1]
    predicted = (probability >= 0.5).astype(int)
    return {
        "roc_auc": float(roc_auc_score(y, probability)),
        "accuracy": float(accuracy_score(y, predicted)),
        "f1": float(f1_score(y, predicted)),
        "log_loss": float(log_loss(y, probability)),
    }
