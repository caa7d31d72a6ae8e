"""Drift statistics: PSI, Kolmogorov-Smirnov, chi-square and Jensen-Shannon.

Pure functions over counts, fractions and sorted values; no report data, no I/O. The
chi-square test and the Jensen-Shannon distance are scipy's; the KS p-value is scipy's
distribution of the two-sample statistic. Only two things are computed here: PSI (a
formula scipy does not have) and the KS statistic against a reference profile's CDF
(scipy's ``ks_2samp`` needs the training values, which a profile does not keep).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from workbench.monitoring.profile import FeatureProfile, evaluate_cdf, reference_cdf

PSI_EPSILON = 1e-4
# Past this effective sample size the asymptotic Kolmogorov distribution matches kstwo to
# many digits, and kstwo.sf costs up to half a second per column for small statistics.
_KS_EXACT_LIMIT = 10_000

Vector = Sequence[float] | np.ndarray


def psi(reference: Vector, current: Vector, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of two distributions over the same bins.

    ``sum((c - r) * ln(c / r))`` with fractions floored at ``epsilon`` so that empty bins
    count instead of dividing by zero.

    Args:
        reference, current: fractions per bin (each summing to 1), same length.
        epsilon: the floor of a fraction.
    """
    r = np.maximum(np.asarray(reference, dtype="float64"), epsilon)
    c = np.maximum(np.asarray(current, dtype="float64"), epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def ks_statistic(fp: FeatureProfile, current_sorted: np.ndarray) -> float:
    """Largest gap between the reference CDF of ``fp`` and the ECDF of the current values.

    Exact (equal to ``scipy.stats.ks_2samp``) when the profile's CDF is exact; otherwise
    against the CDF interpolated between the stored quantiles.

    Args:
        fp: a numeric profile with values.
        current_sorted: the current finite values, sorted ascending, at least one.
    """
    c = current_sorted
    m = len(c)
    x, p = reference_cdf(fp)
    # Both CDFs at the reference points (right limits).
    gap = float(np.max(np.abs(p - np.searchsorted(c, x, side="right") / m))) if len(x) else 0.0
    # At the last of each run of equal current values: the current ECDF's right limit.
    last = np.flatnonzero(np.r_[c[1:] != c[:-1], True])
    reference_at = evaluate_cdf(fp, c[last])
    gap = max(gap, float(np.max(np.abs(reference_at - (last + 1) / m))))
    if not fp.cdf_exact:
        # The interpolated CDF is continuous: between two current values the gap is largest
        # just before the next jump of the ECDF, so compare with its left limits too.
        first = np.r_[0, last[:-1] + 1]
        gap = max(gap, float(np.max(np.abs(evaluate_cdf(fp, c[first]) - first / m))))
    return gap


def ks_pvalue(statistic: float, n: int, m: int) -> float:
    """Two-sided p-value of a two-sample KS statistic (scipy's asymptotic method).

    Returns:
        The p-value in [0, 1]; NaN when a side has no values.
    """
    if n <= 0 or m <= 0:
        return float("nan")
    large, small = max(n, m), min(n, m)
    effective = round(large * small / (large + small))
    if effective > _KS_EXACT_LIMIT:
        from scipy.special import kolmogorov

        return float(min(1.0, max(0.0, kolmogorov(statistic * math.sqrt(effective)))))
    from scipy.stats import kstwo

    return float(min(1.0, max(0.0, kstwo.sf(statistic, effective))))


def chi_square(reference_counts: Vector, current_counts: Vector) -> tuple[float, float]:
    """Chi-square test of homogeneity of two count vectors over the same categories.

    ``scipy.stats.chi2_contingency([reference, current], correction=False)``: no Yates
    correction, so two categories are tested like more. Categories empty on both sides
    are left out (scipy refuses a zero expected count).

    Returns:
        The statistic and its p-value (0 and 1 with fewer than two categories or an empty
        side: there is nothing to test).
    """
    from scipy.stats import chi2_contingency

    table = np.vstack([np.asarray(reference_counts, dtype="float64"),
                       np.asarray(current_counts, dtype="float64")])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or np.any(table.sum(axis=1) == 0):
        return 0.0, 1.0
    outcome = chi2_contingency(table, correction=False)
    return float(outcome.statistic), float(outcome.pvalue)


def js_distance(reference: Vector, current: Vector) -> float:
    """Jensen-Shannon distance (base 2: 0 same, 1 disjoint) of two distributions.

    ``scipy.spatial.distance.jensenshannon(reference, current, base=2)``; counts or
    fractions, each side is normalised.

    Raises:
        ValueError: a side sums to zero (no distribution).
    """
    from scipy.spatial.distance import jensenshannon

    p = np.asarray(reference, dtype="float64")
    q = np.asarray(current, dtype="float64")
    if not p.sum() > 0 or not q.sum() > 0:
        raise ValueError("a Jensen-Shannon distance needs two non-empty distributions")
    with np.errstate(invalid="ignore"):
        distance = float(jensenshannon(p, q, base=2))
    # Equal distributions can round to a divergence of -1e-17, whose square root is NaN.
    return 0.0 if math.isnan(distance) else distance


__all__ = ["PSI_EPSILON", "chi_square", "js_distance", "ks_pvalue", "ks_statistic", "psi"]
