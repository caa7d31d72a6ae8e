"""The drift check from counts (what the Spark engine computes) against the check from values.

``NumericCounts.from_values`` buckets values as Spark's Bucketizer does; the figures of
``check_drift_counts`` must be ``check_drift``'s: PSI, chi-square, Jensen-Shannon and missing
rates equal, KS equal on exact profiles and within the profile's resolution otherwise.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from workbench.monitoring.drift import (
    CategoryCounts,
    NumericCounts,
    bucket_splits,
    check_drift,
    check_drift_counts,
    count_points,
)
from workbench.monitoring.profile import NUMERIC, build_profile, category_counts


def _frames(seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def frame(n: int, shift: float, month_to_month: float) -> pd.DataFrame:
        charges = rng.normal(70 + shift, 20, n)
        charges[rng.random(n) < 0.03] = np.nan
        return pd.DataFrame({
            "tenure": rng.integers(0, 72, n),                     # few distinct: exact CDF
            "charges": charges,                                   # many: interpolated CDF
            "calls": rng.poisson(1.5 + shift / 20, n).astype("float64"),
            "contract": rng.choice(["m2m", "1y", "2y"], n,
                                   p=[month_to_month, (1 - month_to_month) / 2,
                                      (1 - month_to_month) / 2]),
            "flag": rng.random(n) < 0.3,
        })

    return frame(4000, 0.0, 0.5), frame(3000, 6.0, 0.7)


def _counts(profile, frame: pd.DataFrame) -> dict:
    counts = {}
    for fp in profile.features:
        if fp.kind == NUMERIC:
            counts[fp.name] = NumericCounts.from_values(frame[fp.name].to_numpy("float64"),
                                                        count_points(fp))
        else:
            counts[fp.name] = CategoryCounts(len(frame), category_counts(frame[fp.name]))
    return counts


def test_counts_give_the_figures_of_the_values():
    reference, current = _frames()
    predictions = (reference.charges.fillna(70) > 75).astype(int)
    profile = build_profile(reference, predictions)
    assert profile.feature("tenure").cdf_exact and not profile.feature("charges").cdf_exact
    current_predictions = (current.charges.fillna(70) > 75).astype(int)

    by_values = check_drift(profile, current, current_predictions)
    by_counts = check_drift_counts(
        profile, _counts(profile, current), len(current),
        NumericCounts.from_values(current_predictions.to_numpy("float64"),
                                  count_points(profile.prediction)))

    assert by_counts.verdict == by_values.verdict
    assert by_counts.drifted == by_values.drifted and by_counts.warned == by_values.warned
    pairs = [(by_values.prediction, by_counts.prediction)] + [
        (a, next(b for b in by_counts.features if b.name == a.name)) for a in by_values.features]
    for a, b in pairs:
        assert (a.status, a.current_count) == (b.status, b.current_count), a.name
        for stat in ("psi", "chi2_statistic", "chi2_pvalue", "js_distance",
                     "current_missing_rate"):
            x, y = getattr(a, stat), getattr(b, stat)
            assert (x is None and y is None) or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12), \
                (a.name, stat, x, y)
        if a.kind == NUMERIC:
            fp = profile.prediction if a.name == "prediction" else profile.feature(a.name)
            limit = 1e-12 if fp.cdf_exact else 1.0 / len(fp.cdf_x)
            assert abs(a.ks_statistic - b.ks_statistic) <= limit, (a.name, a.ks_statistic,
                                                                   b.ks_statistic)


def test_ks_from_counts_is_exact_on_exact_profiles_with_ties_and_gaps():
    rng = np.random.default_rng(11)
    for _ in range(25):
        reference = pd.DataFrame({"x": rng.integers(0, 12, 300).astype("float64")})
        current = pd.DataFrame({"x": rng.integers(-3, 15, 200) + rng.choice([0, 0.5], 200)})
        profile = build_profile(reference)
        fp = profile.feature("x")
        values = check_drift(profile, current).features[0].ks_statistic
        counted = NumericCounts.from_values(current.x.to_numpy(), count_points(fp))
        assert counted.ks_statistic(fp) == pytest.approx(values, abs=1e-12)


def test_buckets_separate_below_at_and_above_each_point():
    points = np.array([1.0, 2.0, 2.5])
    splits = bucket_splits(points)
    assert splits[0] == -np.inf and splits[-1] == np.inf and np.all(np.diff(splits) > 0)
    counts = NumericCounts.from_values(np.array([0.5, 1.0, 1.0, 2.0, 2.2, 9.0, np.nan, np.inf]),
                                       points)
    assert counts.rows == 8 and counts.count == 6 and not counts.integral
    assert counts.below(points).tolist() == [1, 3, 5]
    assert counts.upto(points).tolist() == [3, 4, 5]
    assert counts.quantile(0.0) == 0.5 and counts.quantile(1.0) == 9.0
