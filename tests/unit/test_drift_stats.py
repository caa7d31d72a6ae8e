"""The drift statistics against values worked out by hand (no scipy on the expected side)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from workbench.monitoring.profile import build_profile
from workbench.monitoring.stats import chi_square, js_distance, ks_pvalue, ks_statistic, psi


def test_psi_of_two_bins_is_a_quarter_of_ln_3():
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5) = 0.25 (ln 2 + ln 1.5)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(3), rel=1e-12)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(psi([0.25, 0.75], [0.5, 0.5]))
    # An empty bin is floored at epsilon: (0.5 - 1e-4) ln(0.5 / 1e-4) on that bin.
    floored = psi([0.5, 0.5, 0.0], [0.5, 0.0, 0.5], epsilon=1e-4)
    assert floored == pytest.approx(2 * (0.5 - 1e-4) * math.log(0.5 / 1e-4), rel=1e-12)


def test_chi_square_of_small_tables_by_hand():
    # Expected 15 in each cell: 4 * (5 ** 2 / 15); one degree of freedom, no Yates correction.
    statistic, pvalue = chi_square([10, 20], [20, 10])
    assert statistic == pytest.approx(20 / 3, rel=1e-12)
    assert pvalue == pytest.approx(math.erfc(math.sqrt(statistic / 2)), rel=1e-9)
    # Expected 20 in each cell: (100 + 0 + 100) * 2 / 20; with two degrees the p-value is e^(-x/2).
    statistic, pvalue = chi_square([10, 20, 30], [30, 20, 10])
    assert statistic == pytest.approx(20.0, rel=1e-12)
    assert pvalue == pytest.approx(math.exp(-10.0), rel=1e-9)
    # Proportional rows are homogeneous.
    assert chi_square([10, 20, 30], [20, 40, 60]) == pytest.approx((0.0, 1.0))


def test_chi_square_with_nothing_to_test():
    assert chi_square([10], [3]) == (0.0, 1.0)  # one category
    assert chi_square([10, 0], [3, 0]) == (0.0, 1.0)  # the other empty on both sides
    assert chi_square([0, 0], [3, 4]) == (0.0, 1.0)  # no reference counts
    assert chi_square([5, 5, 0], [4, 6, 0]) == pytest.approx(chi_square([5, 5], [4, 6]))


def test_js_distance_by_hand():
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert js_distance([0.2, 0.8], [0.2, 0.8]) == 0.0
    # p = (1, 0), q = (1/2, 1/2), m = (3/4, 1/4):
    # KL(p||m) = log2(4/3), KL(q||m) = (log2(2/3) + log2(2)) / 2.
    divergence = (math.log2(4 / 3) + (math.log2(2 / 3) + 1) / 2) / 2
    assert js_distance([1, 0], [0.5, 0.5]) == pytest.approx(math.sqrt(divergence), rel=1e-12)
    # Counts or fractions: each side is normalised; the distance is symmetric.
    assert js_distance([10, 0], [3, 3]) == pytest.approx(js_distance([1, 0], [0.5, 0.5]))
    assert js_distance([0.5, 0.5], [1, 0]) == pytest.approx(js_distance([1, 0], [0.5, 0.5]))
    with pytest.raises(ValueError, match="non-empty"):
        js_distance([0, 0], [1, 1])


def test_ks_statistic_against_an_exact_profile_by_hand():
    fp = build_profile(pd.DataFrame({"v": [1.0, 2.0, 3.0, 4.0]})).feature("v")
    assert fp.cdf_exact
    # Reference CDF at 4 is 1, current ECDF of (3, 4, 5, 6) is 0.5 there.
    assert ks_statistic(fp, np.array([3.0, 4.0, 5.0, 6.0])) == pytest.approx(0.5)
    assert ks_statistic(fp, np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(0.0)
    assert ks_statistic(fp, np.array([10.0])) == pytest.approx(1.0)  # disjoint


def test_ks_pvalue_on_large_samples_is_the_kolmogorov_series():
    # n = m = 40,000 (effective 20,000): Q(l) = 2 sum_k (-1)^(k-1) exp(-2 k^2 l^2).
    d, n = 0.01, 40_000
    lam = d * math.sqrt(n * n / (2 * n))
    series = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 50))
    assert ks_pvalue(d, n, n) == pytest.approx(series, rel=1e-9)
    assert ks_pvalue(0.0, 100, 100) == 1.0
    assert ks_pvalue(1.0, 100, 100) == pytest.approx(0.0, abs=1e-100)
    assert math.isnan(ks_pvalue(0.2, 0, 10))
