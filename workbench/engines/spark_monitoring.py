"""Drift checks on Spark: the current data counted by Spark aggregations.

The drift statistics need, per numeric feature, how many current values fall below and at
each point of the reference profile's CDF and bin edges
(:func:`~workbench.monitoring.drift.count_points`), and per categorical feature the count
of each category. Two Spark jobs compute all of them, each one ``groupBy`` of native
expressions: every numeric column is bucketed at those points
(``pyspark.ml.feature.Bucketizer``), every row becomes one small entry per numeric column
(``inline`` of an array of structs) keyed by (column, bucket), with each bucket's lowest and
highest value for the report's plots; the second job counts the categorical columns' values
the same way. What comes back to the driver is a few thousand rows whatever the data's
size; the statistics themselves are :func:`~workbench.monitoring.drift.check_drift_counts`,
the pandas path's own code.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.config import Settings
from workbench.errors import ProfileError, SchemaMismatch, WorkbenchError
from workbench.monitoring.drift import (
    CategoryCounts,
    DriftResult,
    NumericCounts,
    Thresholds,
    bucket_splits,
    check_drift_counts,
    count_points,
    numeric_labels,
)
from workbench.monitoring.profile import (
    CATEGORICAL,
    DEFAULT_BINS,
    DEFAULT_CDF_POINTS,
    DEFAULT_MAX_CATEGORIES,
    NUMERIC,
    PREDICTION,
    FeatureProfile,
    ReferenceProfile,
    category_label,
)
from workbench.registry import Instance

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from workbench.engines.spark import Progress

Counts = NumericCounts | CategoryCounts


def count_columns(frame: DataFrame, columns: Mapping[str, np.ndarray | None]
                  ) -> tuple[int, dict[str, Counts]]:
    """Count ``frame``'s columns: one Spark job for the numeric ones, one for the others.

    Args:
        frame: the data.
        columns: column -> the points to count a numeric column at (see
            :func:`~workbench.monitoring.drift.count_points`), or None for a categorical one.

    Returns:
        The rows, and per column its :class:`NumericCounts` or :class:`CategoryCounts`.
    """
    from pyspark.ml.feature import Bucketizer
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from workbench.engines.spark import _col

    names = list(columns)
    kinds = {field.name: field.dataType for field in frame.schema.fields}
    work = frame
    splits: dict[int, np.ndarray] = {}
    for i, name in enumerate(names):
        points = columns[name]
        if points is None:
            continue
        value = _col(name).cast("double")
        finite = F.when(F.isnan(value) | (F.abs(value) == F.lit(float("inf"))), F.lit(None)) \
            .otherwise(value)
        work = work.withColumn(f"__v{i}", finite) \
            .withColumn(f"__n{i}", F.coalesce(F.col(f"__v{i}"), F.lit(float("nan"))))
        splits[i] = bucket_splits(points)
    if splits:
        # handleInvalid="keep": missing values (NaN here) go to one extra bucket.
        work = Bucketizer(splitsArray=[s.tolist() for s in splits.values()],
                          inputCols=[f"__n{i}" for i in splits],
                          outputCols=[f"__b{i}" for i in splits],
                          handleInvalid="keep").transform(work)
    # Numeric columns: one entry per row and column, grouped on two primitive keys (the
    # column, the bucket) with fixed-width results, which Spark's fast hash aggregation
    # takes. A text key or a text result (a category's label) sends the whole aggregation to
    # a slower path, so the categorical columns, few and narrow, are counted by a second job.
    numbers = [F.struct(F.lit(i).alias("f"), F.col(f"__b{i}").cast("long").alias("k"),
                        F.col(f"__v{i}").alias("v"),
                        F.when(F.col(f"__v{i}") != F.floor(F.col(f"__v{i}")), 1).otherwise(0)
                        .alias("ni"))
               for i in splits]
    counted = []
    if numbers:
        counted += (work.select(F.inline(F.array(*numbers))).groupBy("f", "k")
                    .agg(F.count(F.lit(1)).alias("n"), F.min("v").alias("lo"),
                         F.max("v").alias("hi"), F.sum("ni").alias("ni"))
                    .collect())
    labels = []
    no_text, no_number = F.lit(None).cast("string"), F.lit(None).cast("double")
    for i, name in enumerate(names):
        if i in splits:
            continue
        column, kind = _col(name), kinds[name]
        if isinstance(kind, T.BooleanType):
            key, number = F.when(column, "True").when(~column, "False"), no_number
        elif isinstance(kind, T.NumericType):
            # Labelled on the driver as pandas' path labels them (1.0 -> "1").
            key, number = no_text, column.cast("double")
        else:
            key, number = column.cast("string"), no_number
        labels.append(F.struct(F.lit(i).alias("f"), key.alias("ks"), number.alias("kd")))
    if labels:
        counted += (frame.select(F.inline(F.array(*labels))).groupBy("f", "ks", "kd")
                    .agg(F.count(F.lit(1)).alias("n")).collect())
    by_feature: dict[int, list[Any]] = {i: [] for i in range(len(names))}
    for row in counted:
        by_feature[row["f"]].append(row)
    rows = sum(int(r["n"]) for r in by_feature[0]) if names else frame.count()
    result: dict[str, Counts] = {}
    for i, name in enumerate(names):
        if i in splits:
            result[name] = _numeric(rows, splits[i], by_feature[i])
        else:
            result[name] = _categories(rows, by_feature[i])
    return rows, result


def _numeric(rows: int, splits: np.ndarray, entries: list[Any]) -> NumericCounts:
    buckets = len(splits) - 1
    counts = np.zeros(buckets, dtype="int64")
    lows = np.full(buckets, np.nan)
    highs = np.full(buckets, np.nan)
    nonintegral = 0
    for entry in entries:
        bucket = int(entry["k"])
        if bucket >= buckets:  # the missing values' bucket
            continue
        counts[bucket] = int(entry["n"])
        lows[bucket], highs[bucket] = entry["lo"], entry["hi"]
        nonintegral += int(entry["ni"] or 0)
    return NumericCounts(rows, splits, counts, lows, highs, nonintegral == 0)


def _categories(rows: int, entries: list[Any]) -> CategoryCounts:
    merged: dict[str, int] = {}
    for entry in entries:
        if entry["ks"] is not None:
            label = str(entry["ks"])
        elif entry["kd"] is not None and not np.isnan(entry["kd"]):
            label = category_label(float(entry["kd"]))
        else:
            continue  # missing
        merged[label] = merged.get(label, 0) + int(entry["n"])
    return CategoryCounts(rows, dict(sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))))


def check_schema_for_profile(frame: DataFrame, profile: ReferenceProfile) -> None:
    """``validate_frame``'s checks on a Spark frame.

    Raises:
        SchemaMismatch: profiled columns are missing, a numeric one holds text that is not
            a number, or a categorical one holds numbers where the reference has text.
    """
    from pyspark.sql import types as T

    from workbench.engines.spark import _col

    kinds = {field.name: field.dataType for field in frame.schema.fields}
    missing = tuple(name for name in profile.names if name not in kinds)
    if missing:
        raise SchemaMismatch(
            f"current data lacks column(s) {', '.join(missing)} of the model's signature "
            f"({', '.join(profile.names)})", missing)
    for fp in profile.features:
        kind = kinds[fp.name]
        if fp.kind == NUMERIC and isinstance(kind, T.StringType):
            column = _col(fp.name)
            bad = frame.where(column.isNotNull() & column.cast("double").isNull()) \
                .select(column).limit(1).collect()
            if bad:
                raise SchemaMismatch(f"column {fp.name!r} holds {bad[0][0]!r}, not a number; "
                                     "the model's reference has numbers there")
        if fp.kind == CATEGORICAL and isinstance(kind, T.NumericType) and fp.categories \
                and not numeric_labels(fp):
            raise SchemaMismatch(
                f"column {fp.name!r} holds numbers where the model's reference has categories "
                f"({', '.join(list(fp.categories)[:3])}...)")


def drift_on_spark(
    profile: ReferenceProfile, instance: Instance, current: Path | str, settings: Settings,
    thresholds: Thresholds, *, master: str | None = None, conf: Mapping[str, str] | None = None,
    spark: SparkSession | None = None, progress: Progress | None = None,
) -> tuple[DriftResult, str]:
    """The drift check of ``current`` (a file, folder, glob or URI) against ``profile``.

    The data's ``prediction`` column is taken as the model's predictions; without one the
    model scores the data (``spark_udf``) within the same job.

    Returns:
        The result, and the note to add when the model could not score the data (or "").

    Raises:
        NoCurrentData: the data has no rows.
        SchemaMismatch: see :func:`check_schema_for_profile`.
        WorkbenchError: Spark is missing, cannot start or cannot read the data.
    """
    from workbench.engines.spark import StageProgress, read_dataset, session_for, spark_message

    say = progress or (lambda _line: None)
    with tempfile.TemporaryDirectory(prefix="workbench-spark-drift-") as tmp, \
            session_for(settings, master, conf, spark, say) as session:
        frame = read_dataset(session, current)
        check_schema_for_profile(frame, profile)
        note = ""
        checked = profile.prediction is not None and PREDICTION not in profile.names
        if checked and PREDICTION not in frame.columns:
            try:
                frame = _scored(session, frame, instance, settings, Path(tmp), say)
            except WorkbenchError as exc:
                checked = False
                note = (f"{instance.label} could not score the current data ({exc}), so the "
                        "predictions were not checked; add a prediction column to check them")
        columns: dict[str, np.ndarray | None] = {
            fp.name: count_points(fp) if fp.kind == NUMERIC else None for fp in profile.features}
        if checked and profile.prediction is not None:
            columns[PREDICTION] = (count_points(profile.prediction)
                                   if profile.prediction.kind == NUMERIC else None)
        say(f"counting {len(columns)} columns on {session.conf.get('spark.master')}")
        try:
            with StageProgress(session, say):
                rows, counts = count_columns(frame, columns)
        except WorkbenchError:
            raise
        except Exception as exc:
            raise WorkbenchError(f"the drift check on Spark failed: {spark_message(exc)}") \
                from exc
    predictions = counts.pop(PREDICTION) if checked else None
    result = check_drift_counts(profile, counts, rows, predictions, thresholds)
    return result, note


def _scored(session: SparkSession, frame: DataFrame, instance: Instance, settings: Settings,
            workdir: Path, say: Progress) -> DataFrame:
    from workbench.engines.spark import download_model, score_frame
    from workbench.predict import LoadedModel

    say(f"scoring the current data with {instance.label} (it has no prediction column)")
    model_dir = download_model(instance, settings, workdir)
    model = LoadedModel(instance, settings, source=str(model_dir))
    return score_frame(session, frame, model, model_dir, workdir,
                       dt.datetime.now(dt.timezone.utc))




# -- reference profiles ----------------------------------------------------------------------
def profile_on_spark(frame: DataFrame, columns: list[str], prediction: str | None = None, *,
                     cdf_points: int = DEFAULT_CDF_POINTS, bins: int = DEFAULT_BINS,
                     max_categories: int = DEFAULT_MAX_CATEGORIES) -> ReferenceProfile:
    """The reference profile of ``frame``'s ``columns`` (and its ``prediction`` column), as
    :func:`~workbench.monitoring.profile.build_profile` builds it from a pandas frame.

    Two Spark jobs: the first gets each numeric column's moments, approximate distinct count
    and approximate quantiles (``percentile_approx``); the second counts (see
    :func:`count_columns`): categories, every value of a numeric column with at most
    ``cdf_points`` distinct values (whose profile is then exact, as pandas' is), and the
    values at or below the quantiles of the others (whose CDF points are then within about
    1e-4 of the exact quantiles, and their counts exact).

    Raises:
        ProfileError: a named column is missing.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from workbench.engines.spark import _col

    kinds = {field.name: field.dataType for field in frame.schema.fields}
    wanted = [*columns, *([prediction] if prediction else [])]
    absent = [c for c in wanted if c not in kinds]
    if absent:
        raise ProfileError(f"cannot profile: column(s) {', '.join(absent)} not in the data; "
                           f"it has {', '.join(kinds)}")

    def numeric(name: str) -> bool:
        kind = kinds[name]
        return (isinstance(kind, (T.NumericType, T.TimestampType, T.DateType, T.TimestampNTZType))
                and not isinstance(kind, T.BooleanType))

    numerics = [c for c in wanted if numeric(c)]
    positions = np.linspace(0.0, 1.0, cdf_points).tolist()
    quantiles = np.linspace(0.0, 1.0, bins + 1)[1:-1].tolist()
    first = []
    for i, name in enumerate(numerics):
        value = _col(name).cast("double")
        v = F.when(F.isnan(value) | (F.abs(value) == F.lit(float("inf"))), F.lit(None)) \
            .otherwise(value)
        first += [F.count(v).alias(f"n{i}"), F.avg(v).alias(f"mean{i}"),
                  F.stddev_pop(v).alias(f"std{i}"), F.min(v).alias(f"min{i}"),
                  F.max(v).alias(f"max{i}"), F.approx_count_distinct(v).alias(f"d{i}"),
                  F.percentile_approx(v, positions, _ACCURACY).alias(f"q{i}"),
                  F.percentile_approx(v, quantiles or [0.5], _ACCURACY).alias(f"e{i}")]
    moments = frame.agg(*first).collect()[0] if first else None

    counted: dict[str, np.ndarray | None] = {}
    few: set[str] = set()
    for i, name in enumerate(numerics):
        assert moments is not None
        if not moments[f"n{i}"]:
            counted[name] = np.array([])
        elif isinstance(kinds[name], T.NumericType) \
                and moments[f"d{i}"] <= cdf_points * _DISTINCT_MARGIN:
            few.add(name)
            counted[name] = None  # every value counted, as categories
        else:
            points = _quantile_points(moments[f"q{i}"], moments[f"min{i}"], moments[f"max{i}"])
            counted[name] = np.unique(np.concatenate([points, moments[f"e{i}"]]))
    for name in wanted:
        counted.setdefault(name, None)
    rows, counts = count_columns(frame, counted)

    features = []
    for name in wanted:
        kind = NUMERIC if name in numerics else CATEGORICAL
        found = counts[name]
        if kind == NUMERIC:
            i = numerics.index(name)
            assert moments is not None
            summary = (moments[f"mean{i}"], moments[f"std{i}"], moments[f"min{i}"],
                       moments[f"max{i}"])
            profile = (_exact_numeric(name, found, summary, cdf_points, bins)
                       if name in few and isinstance(found, CategoryCounts) else None)
            if profile is None:
                if name in few:  # more distinct values than approx_count_distinct said
                    points = _quantile_points(moments[f"q{i}"], summary[2], summary[3])
                    _, again = count_columns(frame, {name: np.unique(np.concatenate(
                        [points, moments[f"e{i}"]]))})
                    found = again[name]
                profile = _quantile_numeric(name, found, summary,
                                            moments[f"q{i}"], moments[f"e{i}"])
        else:
            assert isinstance(found, CategoryCounts)
            kept = dict(list(found.counts.items())[:max_categories])
            total = sum(found.counts.values())
            profile = FeatureProfile(name, CATEGORICAL, total, rows - total, categories=kept,
                                     other=total - sum(kept.values()))
        features.append(profile)
    predicted = None
    if prediction:
        predicted = dataclasses.replace(features.pop(), name=PREDICTION)
    return ReferenceProfile(
        features=tuple(features), prediction=predicted, rows=rows,
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))


_ACCURACY = 100_000
#: approx_count_distinct errs by about 5%: columns up to this much over cdf_points are
#: counted value by value, and profiled by quantiles only if they really have more.
_DISTINCT_MARGIN = 1.2


def _quantile_points(quantiles: list[float], low: float, high: float) -> np.ndarray:
    # As build_profile keeps them: seven significant digits inside, the ends exact.
    inner = [float(f"{v:.7g}") for v in quantiles[1:-1]]
    return np.unique([low, *inner, high])


def _exact_numeric(name: str, counts: CategoryCounts, summary: tuple[Any, ...],
                   cdf_points: int, bins: int) -> FeatureProfile | None:
    values = np.array([float(label) for label in counts.counts], dtype="float64")
    if len(values) > cdf_points:
        return None
    order = np.argsort(values)
    values = values[order]
    per_value = np.array(list(counts.counts.values()), dtype="int64")[order]
    cumulative = np.cumsum(per_value)
    n = int(cumulative[-1])

    def order_statistic(k: np.ndarray) -> np.ndarray:
        return values[np.searchsorted(cumulative, k, side="right")]

    # numpy's default (linear) quantile of the n sorted values, without materialising them.
    h = (n - 1) * np.linspace(0.0, 1.0, bins + 1)[1:-1]
    below = np.floor(h).astype("int64")
    low, high = order_statistic(below), order_statistic(np.minimum(below + 1, n - 1))
    edges = np.unique(low + (high - low) * (h - below))
    edges = edges[edges < values[-1]]
    inside = cumulative[np.searchsorted(values, edges, side="right") - 1] if len(edges) else []
    bin_counts = np.diff(np.concatenate(([0], inside, [n])))
    mean, std, smallest, largest = summary
    return FeatureProfile(
        name, NUMERIC, n, counts.rows - n, bin_edges=tuple(edges.tolist()),
        bin_counts=tuple(int(c) for c in bin_counts), cdf_x=tuple(values.tolist()),
        cdf_counts=tuple(int(c) for c in cumulative), cdf_exact=True, mean=float(mean),
        std=float(std), min=float(smallest), max=float(largest))


def _quantile_numeric(name: str, counts: Counts, summary: tuple[Any, ...],
                      quantiles: list[float], edges_found: list[float]) -> FeatureProfile:
    mean, std, smallest, largest = summary
    if not isinstance(counts, NumericCounts) or counts.count == 0:
        return FeatureProfile(name, NUMERIC, 0, counts.rows, bin_edges=(), bin_counts=(0,))
    n = counts.count
    x = _quantile_points(quantiles, smallest, largest)
    edges = np.unique(np.asarray(edges_found, dtype="float64"))
    edges = edges[edges < largest]
    bin_counts = np.diff(np.concatenate(([0], counts.upto(edges), [n])))
    return FeatureProfile(
        name, NUMERIC, n, counts.rows - n, bin_edges=tuple(edges.tolist()),
        bin_counts=tuple(int(c) for c in bin_counts), cdf_x=tuple(x.tolist()),
        cdf_counts=tuple(int(c) for c in counts.upto(x)), cdf_exact=False, mean=float(mean),
        std=float(std), min=float(smallest), max=float(largest))




def profile_dataset_on_spark(
    instance: Instance, data: Path | str, settings: Settings, *, master: str | None = None,
    conf: Mapping[str, str] | None = None, spark: SparkSession | None = None,
    progress: Progress | None = None,
) -> ReferenceProfile:
    """The reference profile of a dataset (file, folder, glob or URI) and of ``instance``'s
    predictions on it, built by Spark.

    Raises:
        WorkbenchError: Spark is missing or fails, the data lacks the model's columns.
    """
    from pyspark import StorageLevel

    from workbench.engines.spark import (
        StageProgress,
        download_model,
        read_dataset,
        score_frame,
        session_for,
        spark_message,
    )
    from workbench.predict import LoadedModel

    say = progress or (lambda _line: None)
    with tempfile.TemporaryDirectory(prefix="workbench-spark-profile-") as tmp, \
            session_for(settings, master, conf, spark, say) as session:
        workdir = Path(tmp)
        model_dir = download_model(instance, settings, workdir)
        model = LoadedModel(instance, settings, source=str(model_dir))
        frame = read_dataset(session, data)
        columns = model.input_columns or [c for c in frame.columns if c != PREDICTION]
        scored = score_frame(session, frame.select(*columns), model, model_dir, workdir,
                             dt.datetime.now(dt.timezone.utc))
        # Two jobs read the scored rows: score them once.
        scored = scored.select(*columns, PREDICTION).persist(StorageLevel.MEMORY_AND_DISK)
        say(f"profiling {len(columns)} columns and the predictions on "
            f"{session.conf.get('spark.master')}")
        try:
            with StageProgress(session, say):
                return profile_on_spark(scored, columns, PREDICTION)
        except WorkbenchError:
            raise
        except Exception as exc:
            raise WorkbenchError(f"profiling on Spark failed: {spark_message(exc)}") from exc
        finally:
            scored.unpersist()


__all__ = ["check_schema_for_profile", "count_columns", "drift_on_spark",
           "profile_dataset_on_spark", "profile_on_spark"]
