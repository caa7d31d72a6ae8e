"""Reference profiles: a compact summary of the training data, stored with the model version.

A drift check compares current data with this profile, never with the training data, so
the profile keeps exactly what the statistics in :mod:`workbench.monitoring.drift` need:

- numeric features: the reference CDF at up to ``cdf_points`` points (every distinct value
  when there are no more than that, so the CDF is exact; quantiles otherwise, between
  which the CDF is interpolated linearly), the counts in ``bins`` quantile bins for PSI,
  and mean, std, min and max for people;
- categorical features: the counts of the ``max_categories`` most frequent categories and
  the count of the rest;
- every feature: the number of values and of missing ones;
- the model's predictions on the same frame, profiled like a feature.

Pure: numpy and pandas only, no I/O. The JSON form round-trips exactly.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.errors import ProfileError

if TYPE_CHECKING:
    import pandas as pd

PROFILE_FORMAT = 1
PROFILE_FILE = "reference_profile.json"
PREDICTION = "prediction"
NUMERIC = "numeric"
CATEGORICAL = "categorical"
KINDS = (NUMERIC, CATEGORICAL)

DEFAULT_CDF_POINTS = 1000
DEFAULT_BINS = 10
DEFAULT_MAX_CATEGORIES = 50


@dataclass(frozen=True)
class FeatureProfile:
    """The reference distribution of one column.

    Attributes:
        name: the column (``prediction`` for the model's output).
        kind: ``numeric`` or ``categorical``.
        count: non-missing values (for numeric columns: finite values).
        missing: missing values (NaN, None, and for numeric columns +-inf).
        bin_edges: numeric: inner edges of the PSI bins; bins are right-closed,
            ``(-inf, e0], (e0, e1], ..., (e_last, inf)``.
        bin_counts: numeric: reference values per bin, ``len(bin_edges) + 1`` of them.
        cdf_x: numeric: increasing points at which the reference CDF is known.
        cdf_counts: numeric: reference values ``<=`` each point.
        cdf_exact: numeric: ``cdf_x`` holds every distinct value, so the CDF is an exact
            step function; otherwise it is interpolated linearly between the points.
        mean, std, min, max: numeric summaries (None without values).
        categories: categorical: label -> count, most frequent first. Labels are strings;
            integral numbers are written without a decimal point (``1``, not ``1.0``).
        other: categorical: values of the categories beyond ``categories``.
    """

    name: str
    kind: str
    count: int
    missing: int
    bin_edges: tuple[float, ...] = ()
    bin_counts: tuple[int, ...] = ()
    cdf_x: tuple[float, ...] = ()
    cdf_counts: tuple[int, ...] = ()
    cdf_exact: bool = True
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    categories: dict[str, int] = field(default_factory=dict)
    other: int = 0

    @property
    def rows(self) -> int:
        return self.count + self.missing

    @property
    def missing_rate(self) -> float:
        return self.missing / self.rows if self.rows else 0.0

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "kind": self.kind, "count": self.count,
                                "missing": self.missing}
        if self.kind == NUMERIC:
            data.update(
                bin_edges=list(self.bin_edges), bin_counts=list(self.bin_counts),
                cdf_x=list(self.cdf_x), cdf_counts=list(self.cdf_counts),
                cdf_exact=self.cdf_exact, mean=self.mean, std=self.std, min=self.min,
                max=self.max,
            )
        else:
            data.update(categories=dict(self.categories), other=self.other)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureProfile:
        """The profile ``as_dict`` wrote.

        Raises:
            ProfileError: a field is missing or has the wrong type or shape.
        """
        try:
            kind = str(data["kind"])
            if kind not in KINDS:
                raise ValueError(f"kind {kind!r}")
            common: dict[str, Any] = dict(name=str(data["name"]), kind=kind,
                                          count=int(data["count"]), missing=int(data["missing"]))
            if kind == CATEGORICAL:
                categories = {str(k): int(v) for k, v in dict(data.get("categories") or {}).items()}
                profile = cls(**common, categories=categories, other=int(data.get("other", 0)))
            else:
                profile = cls(
                    **common,
                    bin_edges=tuple(float(v) for v in data["bin_edges"]),
                    bin_counts=tuple(int(v) for v in data["bin_counts"]),
                    cdf_x=tuple(float(v) for v in data["cdf_x"]),
                    cdf_counts=tuple(int(v) for v in data["cdf_counts"]),
                    cdf_exact=bool(data["cdf_exact"]),
                    mean=_optional_float(data.get("mean")), std=_optional_float(data.get("std")),
                    min=_optional_float(data.get("min")), max=_optional_float(data.get("max")),
                )
        except (KeyError, TypeError, ValueError) as exc:
            name = data.get("name", "?") if isinstance(data, Mapping) else "?"
            raise ProfileError(f"reference profile: feature {name!r} is malformed ({exc})") from exc
        profile._check()
        return profile

    def _check(self) -> None:
        if self.kind == NUMERIC and (
            len(self.bin_counts) != len(self.bin_edges) + 1
            or len(self.cdf_x) != len(self.cdf_counts)
            or (self.count and not self.cdf_x)
        ):
            raise ProfileError(f"reference profile: feature {self.name!r} has inconsistent bins "
                               "or CDF points; rebuild the profile")


@dataclass(frozen=True)
class ReferenceProfile:
    """What a model's training data looked like, feature by feature, plus its predictions.

    Attributes:
        features: one profile per input column, in the frame's column order.
        prediction: the profile of the model's predictions on the frame (None when the
            model's output was not one value per row).
        rows: rows in the reference frame.
        created_at: when the profile was built (ISO 8601, UTC).
        format: the JSON layout's version.
    """

    features: tuple[FeatureProfile, ...]
    prediction: FeatureProfile | None
    rows: int
    created_at: str
    format: int = PROFILE_FORMAT

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> FeatureProfile:
        """The profile of column ``name``.

        Raises:
            KeyError: no such feature.
        """
        for profile in self.features:
            if profile.name == name:
                return profile
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "created_at": self.created_at,
            "rows": self.rows,
            "features": [f.as_dict() for f in self.features],
            "prediction": self.prediction.as_dict() if self.prediction else None,
        }

    def to_json(self) -> str:
        """Strict JSON (no NaN), compact."""
        return json.dumps(self.as_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> ReferenceProfile:
        """The profile ``to_json`` wrote.

        Raises:
            ProfileError: the text is not JSON, or not a profile this version can read.
        """
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ProfileError(f"reference profile is not valid JSON ({exc})") from exc
        if not isinstance(data, dict) or not isinstance(data.get("features"), list):
            raise ProfileError("reference profile has no feature list; rebuild the profile")
        version = data.get("format")
        if version != PROFILE_FORMAT:
            raise ProfileError(f"reference profile format {version!r} is not supported (this "
                               f"workbench reads format {PROFILE_FORMAT}); rebuild the profile")
        prediction = data.get("prediction")
        try:
            rows = int(data["rows"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError("reference profile has no row count; rebuild the profile") from exc
        return cls(
            features=tuple(FeatureProfile.from_dict(f) for f in data["features"]),
            prediction=FeatureProfile.from_dict(prediction) if prediction else None,
            rows=rows,
            created_at=str(data.get("created_at", "")),
            format=version,
        )


def build_profile(
    frame: pd.DataFrame,
    predictions: Any = None,
    numeric: Iterable[str] | None = None,
    categorical: Iterable[str] | None = None,
    *,
    cdf_points: int = DEFAULT_CDF_POINTS,
    bins: int = DEFAULT_BINS,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    prediction_kind: str | None = None,
) -> ReferenceProfile:
    """Profile every column of ``frame`` and, when given, the model's ``predictions`` on it.

    Args:
        frame: the reference (training) frame, one column per model input.
        predictions: one prediction per row (array, Series, list or a one-column frame);
            anything else (several outputs per row) is left out of the profile.
        numeric: columns to profile as numeric; the others' kinds are inferred.
        categorical: columns to profile as categorical; the others' kinds are inferred.
            Inferred: numbers and datetimes are numeric, everything else (text, booleans,
            pandas categoricals) categorical.
        cdf_points: most points kept of a numeric CDF (the KS test's resolution is about
            ``1 / cdf_points``).
        bins: quantile bins per numeric feature for PSI.
        max_categories: categories kept per categorical feature; the rest count as other.
        prediction_kind: how to profile the predictions (see :func:`kind_of_predictions`); None:
            inferred from their values, as a feature's kind is.

    Returns:
        The profile.

    Raises:
        ProfileError: a named column is missing, named twice, or a numeric one holds text;
            ``predictions`` has a different length than ``frame``; or a size is not positive.
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise ProfileError(
            f"a reference profile needs a pandas DataFrame, not {type(frame).__name__}")
    if min(cdf_points, bins, max_categories) < 1:
        raise ProfileError("cdf_points, bins and max_categories must be at least 1")
    numeric = [str(c) for c in numeric or ()]
    categorical = [str(c) for c in categorical or ()]
    columns = [str(c) for c in frame.columns]
    if len(set(columns)) != len(columns):
        raise ProfileError("the reference frame has duplicate column names; rename them")
    both = sorted(set(numeric) & set(categorical))
    unknown = [c for c in (*numeric, *categorical) if c not in columns]
    if both or unknown:
        what = (f"column(s) {', '.join(both)} named both numeric and categorical" if both
                else f"column(s) {', '.join(unknown)} not in the frame")
        raise ProfileError(f"cannot profile: {what}; the frame has {', '.join(columns)}")

    features = []
    for name, column in zip(columns, frame.columns):
        series = frame[column]
        kind = (NUMERIC if name in numeric else CATEGORICAL if name in categorical
                else infer_kind(series))
        features.append(profile_column(series, name, kind, cdf_points=cdf_points, bins=bins,
                                       max_categories=max_categories))
    prediction = None
    series = prediction_series(predictions)
    if series is not None:
        if len(series) != len(frame):
            raise ProfileError(f"{len(series)} predictions for {len(frame)} reference rows; "
                               "pass the model's predictions on the same frame")
        prediction = profile_column(series, PREDICTION, prediction_kind or infer_kind(series),
                                    cdf_points=cdf_points, bins=bins,
                                    max_categories=max_categories)
    return ReferenceProfile(
        features=tuple(features), prediction=prediction, rows=len(frame),
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


def kind_of_predictions(task: str | None) -> str | None:
    """How a model's predictions are profiled, from its task (see :mod:`workbench.tasks`): a
    classifier's as categories, whatever its classes are (0 and 1 are two classes, not two
    numbers: their shift is a change of shares, not of a distribution's shape); a regressor's
    as numbers; None (the task is not known): as their values look."""
    from workbench.tasks import CLASSIFICATION, REGRESSION

    return {CLASSIFICATION: CATEGORICAL, REGRESSION: NUMERIC}.get(task or "")


def infer_kind(series: pd.Series) -> str:
    """``numeric`` for numbers and datetimes (not booleans), ``categorical`` otherwise."""
    from pandas.api import types

    dtype = series.dtype
    if types.is_bool_dtype(dtype):
        return CATEGORICAL
    if types.is_numeric_dtype(dtype) or types.is_datetime64_any_dtype(dtype):
        return NUMERIC
    return CATEGORICAL


def profile_column(series: pd.Series, name: str, kind: str, *, cdf_points: int = DEFAULT_CDF_POINTS,
                   bins: int = DEFAULT_BINS,
                   max_categories: int = DEFAULT_MAX_CATEGORIES) -> FeatureProfile:
    """The profile of one column as ``kind``.

    Raises:
        ProfileError: ``kind`` is unknown, or a numeric column holds text.
    """
    if kind == NUMERIC:
        return _numeric_profile(series, name, cdf_points, bins)
    if kind == CATEGORICAL:
        return _categorical_profile(series, name, max_categories)
    raise ProfileError(f"unknown feature kind {kind!r}; use one of {', '.join(KINDS)}")


def numeric_values(series: pd.Series, name: str) -> np.ndarray:
    """The column as float64, NaN where missing or not finite.

    Datetimes become seconds since the epoch.

    Raises:
        ProfileError: the column holds values that are not numbers.
    """
    import pandas as pd
    from pandas.api import types

    dtype = series.dtype
    if types.is_datetime64_any_dtype(dtype):
        nat = series.isna().to_numpy()
        values = series.to_numpy(dtype="datetime64[ns]").astype("int64").astype("float64") / 1e9
        values[nat] = np.nan
        return values
    if not types.is_numeric_dtype(dtype) or types.is_bool_dtype(dtype):
        converted = pd.to_numeric(series, errors="coerce")
        bad = converted.isna() & series.notna()
        if bad.any():
            example = series[bad].iloc[0]
            raise ProfileError(f"column {name!r} holds {example!r}, not a number")
        series = converted
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    if not values.flags.writeable:
        values = values.copy()
    values[~np.isfinite(values)] = np.nan
    return values


def category_counts(series: pd.Series) -> dict[str, int]:
    """Counts by normalised label, most frequent first (ties by label); missing left out."""
    counts = series.value_counts(dropna=True, sort=False)
    merged: dict[str, int] = {}
    # Only the distinct values are normalised: fast on millions of rows.
    for value, count in zip(counts.index.tolist(), counts.to_numpy().tolist()):
        label = category_label(value)
        merged[label] = merged.get(label, 0) + int(count)
    return dict(sorted(merged.items(), key=lambda item: (-item[1], item[0])))


def category_label(value: Any) -> str:
    """The string a category is stored under: ``1`` for 1 and 1.0, ``True`` for booleans."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)) and math.isfinite(value) \
            and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def prediction_series(predictions: Any) -> pd.Series | None:
    """Predictions as a Series, one value per row; None when absent or not one per row."""
    import pandas as pd

    if predictions is None:
        return None
    if isinstance(predictions, pd.DataFrame):
        if predictions.shape[1] != 1:
            return None
        return predictions.iloc[:, 0].reset_index(drop=True)
    if isinstance(predictions, pd.Series):
        return predictions.reset_index(drop=True)
    try:
        array = np.asarray(predictions)
    except (ValueError, TypeError):
        return None
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        return None
    return pd.Series(array)


def reference_cdf(profile: FeatureProfile) -> tuple[np.ndarray, np.ndarray]:
    """The CDF points of a numeric profile: ``x`` and ``F(x)`` (fractions)."""
    x = np.asarray(profile.cdf_x, dtype="float64")
    p = np.asarray(profile.cdf_counts, dtype="float64") / max(profile.count, 1)
    return x, p


def evaluate_cdf(profile: FeatureProfile, t: np.ndarray) -> np.ndarray:
    """The reference CDF at ``t``: a step function when exact, else linear between points."""
    x, p = reference_cdf(profile)
    if not len(x):
        return np.zeros(len(t))
    if profile.cdf_exact:
        return np.concatenate(([0.0], p))[np.searchsorted(x, t, side="right")]
    return np.interp(t, x, p, left=0.0, right=1.0)


# -- building ---------------------------------------------------------------------------------
def _numeric_profile(series: pd.Series, name: str, cdf_points: int, bins: int) -> FeatureProfile:
    values = numeric_values(series, name)
    finite = np.sort(values[~np.isnan(values)])
    n = len(finite)
    missing = len(values) - n
    if n == 0:
        return FeatureProfile(name, NUMERIC, 0, missing, bin_edges=(), bin_counts=(0,))
    last_of_run = np.flatnonzero(np.r_[finite[1:] != finite[:-1], True])
    if len(last_of_run) <= cdf_points:
        x, counts, exact = finite[last_of_run], last_of_run + 1, True
    else:
        positions = np.unique(np.round(np.linspace(0, n - 1, cdf_points)).astype(np.int64))
        # Seven significant digits halve the JSON and move the CDF by far less than 1/n.
        inner = [float(f"{v:.7g}") for v in finite[positions[1:-1]].tolist()]
        x = np.unique([finite[0], *inner, finite[-1]])  # the ends stay exact
        counts, exact = np.searchsorted(finite, x, side="right"), False
    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    edges = edges[edges < finite[-1]]  # a bin that only the maximum could fill is no bin
    bin_counts = np.diff(np.concatenate(([0], np.searchsorted(finite, edges, side="right"), [n])))
    return FeatureProfile(
        name, NUMERIC, n, missing,
        bin_edges=tuple(edges.tolist()), bin_counts=tuple(int(c) for c in bin_counts),
        cdf_x=tuple(x.tolist()), cdf_counts=tuple(int(c) for c in counts), cdf_exact=exact,
        mean=float(finite.mean()), std=float(finite.std()), min=float(finite[0]),
        max=float(finite[-1]),
    )


def _categorical_profile(series: pd.Series, name: str, max_categories: int) -> FeatureProfile:
    counts = category_counts(series)
    kept = dict(list(counts.items())[:max_categories])
    count = sum(counts.values())
    return FeatureProfile(name, CATEGORICAL, count, int(len(series) - count), categories=kept,
                          other=count - sum(kept.values()))


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


