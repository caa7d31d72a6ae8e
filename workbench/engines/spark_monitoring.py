"""Drift checks on Spark: the current data counted by Spark aggregations.

The drift statistics need, per numeric feature, how many current values fall below and at
each point of the reference profile's CDF and bin edges
(:func:`~workbench.monitoring.drift.count_points`), and per categorical feature the count
of each category. One Spark job, one pass over the data, computes all of them: Spark
projects the columns (a cast to double, a category's label), and ``mapInArrow`` counts each
partition's Arrow batches with numpy in the Python workers: each numeric column's buckets
(Bucketizer's left-closed buckets between the points), with each bucket's lowest and
highest value for the report's plots, and each categorical column's values. What comes
back to the driver is a few thousand rows per partition whatever the data's size; the
statistics themselves are :func:`~workbench.monitoring.drift.check_drift_counts`, the
pandas path's own code.

Counting in numpy rather than in Spark's SQL aggregation: a SQL ``groupBy`` of (column,
bucket) needs one row per value (the numeric columns' values unpivoted), about 3 s per
million rows on two cores; sorting a batch's values and ``searchsorted`` of the bucket
boundaries costs a few milliseconds per 100,000 values.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import tempfile
from collections.abc import Iterator, Mapping
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
    kind_of_predictions,
)
from workbench.registry import Instance
from workbench.tasks import TASK_TAG

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from workbench.progress import Progress

Counts = NumericCounts | CategoryCounts


def count_columns(frame: DataFrame, columns: Mapping[str, np.ndarray | None]
                  ) -> tuple[int, dict[str, Counts]]:
    """Count ``frame``'s columns in one Spark job, one pass over the data.

    Spark projects each column to what is counted (a numeric one cast to double, a
    categorical one to its label's text, or to a double for numbers, labelled on the driver
    as pandas' path labels them), and ``mapInArrow`` counts each partition's Arrow batches
    with numpy (:func:`_count_partition`): a few thousand rows per partition come back,
    whatever the data's size, and are summed on the driver.

    Args:
        frame: the data.
        columns: column -> the points to count a numeric column at (see
            :func:`~workbench.monitoring.drift.count_points`), or None for a categorical one.

    Returns:
        The rows, and per column its :class:`NumericCounts` or :class:`CategoryCounts`.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from workbench.engines.spark import _col, arrow_batches_of

    names = list(columns)
    if not names:
        return frame.count(), {}
    kinds = {field.name: field.dataType for field in frame.schema.fields}
    splits: dict[int, np.ndarray] = {}
    projected = []
    for i, name in enumerate(names):
        column, kind, points = _col(name), kinds[name], columns[name]
        if points is not None:
            splits[i] = bucket_splits(points)
            value = column.cast("double")
        elif isinstance(kind, T.BooleanType):
            value = F.when(column, "True").when(~column, "False")
        elif isinstance(kind, T.NumericType):
            value = column.cast("double")
        else:
            value = column.cast("string")
        projected.append(value.alias(f"c{i}"))
    counter = functools.partial(_count_partition, splits=splits)
    with arrow_batches_of(frame.sparkSession, COUNT_BATCH_ROWS):
        counted = frame.select(*projected).mapInArrow(counter, _COUNTED_SCHEMA).toArrow()
    table = counted.to_pandas()
    rows = int(table.loc[table["f"] < 0, "n"].sum())
    result: dict[str, Counts] = {}
    for i, name in enumerate(names):
        entries = table[table["f"] == i]
        if i in splits:
            result[name] = _numeric(rows, splits[i], entries)
        else:
            result[name] = _categories(rows, entries)
    return rows, result


#: Rows per Arrow batch while counting (Spark's default is 10,000): each batch costs the
#: counter work per bucket as well as per value, which larger batches amortise (measured:
#: 0.41 s per million rows at 10,000 rows a batch, 0.15 s at 100,000, 7 numeric columns of
#: 8,000 buckets); a batch of 100,000 rows of a few columns is some megabytes.
COUNT_BATCH_ROWS = 100_000


#: What :func:`_count_partition` yields: per numeric column one row per non-empty bucket
#: (``k``: count, lowest and highest value, non-integral values), per categorical column
#: one row per value (``ks`` text or ``kd`` number), and one row (``f`` -1) of all rows.
_COUNTED_SCHEMA = ("f int, k long, n long, lo double, hi double, ni long, ks string, "
                   "kd double")


def _count_partition(batches: Iterator[Any], splits: Mapping[int, np.ndarray]
                     ) -> Iterator[Any]:
    """One partition's counts (runs in Spark's Python workers; see :data:`_COUNTED_SCHEMA`).

    A numeric column's finite values are sorted per batch, so each bucket's (Bucketizer's
    left-closed ``[splits[k], splits[k + 1])``) count, lowest and highest value come from
    ``searchsorted`` on the sorted values; counts are kept per bucket across the batches.
    Categorical values are counted with Arrow's ``value_counts`` and grouped at the end.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    sums = {i: np.zeros(len(s) - 1, dtype="int64") for i, s in splits.items()}
    lows = {i: np.full(len(s) - 1, np.inf) for i, s in splits.items()}
    highs = {i: np.full(len(s) - 1, -np.inf) for i, s in splits.items()}
    nonintegral = dict.fromkeys(splits, 0)
    found: dict[int, list[Any]] = {}
    rows = 0
    for batch in batches:
        rows += batch.num_rows
        for position in range(batch.num_columns):
            i = int(batch.schema.field(position).name[1:])
            array = batch.column(position)
            if i not in splits:
                found.setdefault(i, []).append(pc.value_counts(array))
                continue
            values = array.to_numpy(zero_copy_only=False)
            values = np.sort(values[np.isfinite(values)])
            if not len(values):
                continue
            # Where each bucket starts in the sorted values: counts, lows and highs at once.
            edges = np.searchsorted(values, splits[i], side="left")
            edges[-1] = len(values)  # the last bucket is closed (+inf)
            counts = np.diff(edges)
            full = counts > 0
            sums[i] += counts
            lows[i][full] = np.minimum(lows[i][full], values[edges[:-1][full]])
            highs[i][full] = np.maximum(highs[i][full], values[edges[1:][full] - 1])
            nonintegral[i] += int(np.count_nonzero(values != np.floor(values)))
    columns: dict[str, list[Any]] = {key: [] for key in ("f", "k", "n", "lo", "hi", "ni")}
    for i in splits:
        (kept,) = np.nonzero(sums[i])
        columns["f"].append(np.full(len(kept), i, dtype="int32"))
        columns["k"].append(kept.astype("int64"))
        columns["n"].append(sums[i][kept])
        columns["lo"].append(lows[i][kept])
        columns["hi"].append(highs[i][kept])
        columns["ni"].append(np.where(np.arange(len(kept)) == 0, nonintegral[i], 0))
    numeric = {key: np.concatenate(parts) if parts else np.array([], dtype="int64")
               for key, parts in columns.items()}
    size = len(numeric["f"])
    if size:
        yield pa.RecordBatch.from_pydict({
            "f": pa.array(numeric["f"], pa.int32()), "k": pa.array(numeric["k"], pa.int64()),
            "n": pa.array(numeric["n"], pa.int64()), "lo": pa.array(numeric["lo"], pa.float64()),
            "hi": pa.array(numeric["hi"], pa.float64()),
            "ni": pa.array(numeric["ni"], pa.int64()),
            "ks": pa.nulls(size, pa.string()), "kd": pa.nulls(size, pa.float64())})
    for i, parts in found.items():
        grouped = pa.Table.from_arrays(
            [pa.concat_arrays([p.field("values") for p in parts]),
             pa.concat_arrays([p.field("counts") for p in parts])], names=["v", "n"]) \
            .group_by("v", use_threads=False).aggregate([("n", "sum")])
        values, counts = grouped.column("v"), grouped.column("n_sum").cast(pa.int64())
        text = pa.types.is_string(values.type) or pa.types.is_large_string(values.type)
        size = len(values)
        yield pa.RecordBatch.from_pydict({
            "f": pa.array(np.full(size, i, dtype="int32")), "k": pa.nulls(size, pa.int64()),
            "n": counts.combine_chunks(), "lo": pa.nulls(size, pa.float64()),
            "hi": pa.nulls(size, pa.float64()), "ni": pa.nulls(size, pa.int64()),
            "ks": values.combine_chunks().cast(pa.string()) if text
            else pa.nulls(size, pa.string()),
            "kd": pa.nulls(size, pa.float64()) if text
            else values.combine_chunks().cast(pa.float64())})
    yield pa.RecordBatch.from_pydict({
        "f": pa.array([-1], pa.int32()), "k": pa.nulls(1, pa.int64()),
        "n": pa.array([rows], pa.int64()), "lo": pa.nulls(1, pa.float64()),
        "hi": pa.nulls(1, pa.float64()), "ni": pa.nulls(1, pa.int64()),
        "ks": pa.nulls(1, pa.string()), "kd": pa.nulls(1, pa.float64())})


def _numeric(rows: int, splits: np.ndarray, entries: pd.DataFrame) -> NumericCounts:
    buckets = len(splits) - 1
    counts = np.zeros(buckets, dtype="int64")
    lows = np.full(buckets, np.nan)
    highs = np.full(buckets, np.nan)
    if len(entries):
        by_bucket = entries.groupby("k").agg(n=("n", "sum"), lo=("lo", "min"),
                                             hi=("hi", "max"))
        at = by_bucket.index.to_numpy(dtype="int64")
        counts[at] = by_bucket["n"].to_numpy(dtype="int64")
        lows[at] = by_bucket["lo"].to_numpy(dtype="float64")
        highs[at] = by_bucket["hi"].to_numpy(dtype="float64")
    nonintegral = int(entries["ni"].fillna(0).sum())
    return NumericCounts(rows, splits, counts, lows, highs, nonintegral == 0)


def _categories(rows: int, entries: pd.DataFrame) -> CategoryCounts:
    merged: dict[str, int] = {}
    for text, number, n in zip(entries["ks"], entries["kd"], entries["n"]):
        if isinstance(text, str):
            label = text
        elif number is not None and not np.isnan(number):
            label = category_label(float(number))
        else:
            continue  # missing
        merged[label] = merged.get(label, 0) + int(n)
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
                     max_categories: int = DEFAULT_MAX_CATEGORIES,
                     prediction_kind: str | None = None) -> ReferenceProfile:
    """The reference profile of ``frame``'s ``columns`` (and its ``prediction`` column), as
    :func:`~workbench.monitoring.profile.build_profile` builds it from a pandas frame.

    Two Spark jobs: the first gets each numeric column's moments, approximate distinct count
    and approximate quantiles (``percentile_approx``); the second counts (see
    :func:`count_columns`): categories, every value of a numeric column with at most
    ``cdf_points`` distinct values (whose profile is then exact, as pandas' is), and the
    values at or below the quantiles of the others (whose CDF points are then within about
    1e-4 of the exact quantiles, and their counts exact).

    ``prediction_kind`` is how the predictions are profiled (see
    :func:`~workbench.monitoring.profile.kind_of_predictions`); None: by the column's type.

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
        if name == prediction and prediction_kind == CATEGORICAL:
            return False  # a classifier's classes, even when they are numbers
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
                return profile_on_spark(scored, columns, PREDICTION, prediction_kind=(
                    kind_of_predictions(instance.tags.get(TASK_TAG))))
        except WorkbenchError:
            raise
        except Exception as exc:
            raise WorkbenchError(f"profiling on Spark failed: {spark_message(exc)}") from exc
        finally:
            scored.unpersist()


__all__ = ["check_schema_for_profile", "count_columns", "drift_on_spark",
           "profile_dataset_on_spark", "profile_on_spark"]
