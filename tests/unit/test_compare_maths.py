"""The comparison maths: pairing by request and row, agreement, unpaired rows, shift, latency."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency, ks_2samp

from workbench.monitoring.compare import (
    CATEGORICAL,
    NUMERIC,
    VECTOR,
    compare_predictions,
    ks_two_sample,
    prediction_kind,
    same,
)


def frame(rows: list[tuple[str, object]], latency: dict[str, float] | None = None,
          role: str = "primary") -> pd.DataFrame:
    """One row per predicted row: (request_id, prediction); latency per request."""
    latency = latency or {}
    return pd.DataFrame({
        "request_id": [r for r, _ in rows],
        "prediction": pd.Series([p for _, p in rows], dtype="object"),
        "latency_ms": [latency.get(r, 1.0) for r, _ in rows],
        "role": role,
    })


def test_rows_pair_by_request_and_position_and_the_rest_are_unpaired() -> None:
    a = frame([("r1", 0), ("r1", 1), ("r2", 1), ("r3", 0)])
    # r1 has one row more on B's side; r3 is A's alone; r4 is B's alone; B's order differs.
    b = frame([("r4", 1), ("r1", 0), ("r1", 0), ("r1", 1), ("r2", 1)], role="shadow")
    result = compare_predictions(a, b, a_name="churn_v1_20240131", b_name="churn_v2_20240131")
    assert result.paired == 3  # r1#0, r1#1, r2#0
    assert result.agreeing == 2  # r1#1: 1 against 0
    assert result.agreement == pytest.approx(2 / 3)
    assert (result.a.rows, result.a.unpaired, result.a.requests) == (4, 1, 3)
    assert (result.b.rows, result.b.unpaired, result.b.requests) == (5, 2, 3)
    assert result.a.roles == {"primary": 4} and result.b.roles == {"shadow": 5}
    assert result.kind == CATEGORICAL


def test_labels_agree_exactly_and_their_shift_is_a_chi_square_test() -> None:
    a = frame([(f"r{i}", label) for i, label in enumerate(["yes"] * 6 + ["no"] * 4)])
    b = frame([(f"r{i}", label) for i, label in enumerate(["yes"] * 3 + ["no"] * 7)])
    result = compare_predictions(a, b)
    assert result.paired == 10 and result.agreeing == 7
    shift = result.shift
    assert shift is not None and (shift.kind, shift.test) == (CATEGORICAL, "chi2")
    expected = chi2_contingency([[6, 4], [3, 7]], correction=False)
    assert shift.statistic == pytest.approx(expected.statistic)
    assert shift.p_value == pytest.approx(expected.pvalue)
    assert 0 < shift.js_distance < 1
    assert {label: (n_a, n_b) for label, n_a, n_b in shift.counts} == {"yes": (6, 3),
                                                                     "no": (4, 7)}
    # "1" is no 1; integers are labels
    assert not same("1", 1) and same(3, 3) and not same(3, 4)
    assert prediction_kind([0, 1, 1, None]) == CATEGORICAL


def test_identical_labels_agree_fully_with_no_shift() -> None:
    a = frame([(f"r{i}", i % 3) for i in range(30)])
    result = compare_predictions(a, a.copy())
    assert result.agreement == 1.0
    assert result.shift.statistic == pytest.approx(0.0) and result.shift.p_value == pytest.approx(1)
    assert result.shift.js_distance == pytest.approx(0.0, abs=1e-9)


def test_floats_agree_within_the_relative_tolerance() -> None:
    a = frame([("r1", 100.0), ("r2", 0.5), ("r3", 0.0), ("r4", 2.0), ("r5", None)])
    b = frame([("r1", 100.0 * (1 + 1e-9)), ("r2", 0.5 * (1 + 1e-3)), ("r3", 1e-15),
               ("r4", 2), ("r5", math.nan)])
    result = compare_predictions(a, b)
    # r1 within 1e-6, r2 off by 1e-3, r3 both (almost) zero, r4 the same number, r5 both missing
    assert (result.paired, result.agreeing) == (5, 4)
    assert result.kind == NUMERIC
    loose = compare_predictions(a, b, rtol=1e-2)
    assert loose.agreeing == 5 and loose.rtol == 1e-2
    assert not same(1.0, None) and same(None, math.nan)


def test_numeric_shift_is_the_two_sample_ks_statistic() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=400), rng.normal(0.5, size=400)
    a = frame([(f"r{i}", float(v)) for i, v in enumerate(x)])
    b = frame([(f"r{i}", float(v)) for i, v in enumerate(y)])
    result = compare_predictions(a, b)
    expected = ks_2samp(x, y, method="asymp")  # what stats.ks_pvalue computes
    assert result.agreeing == 0
    assert result.shift.test == "ks"
    assert result.shift.statistic == pytest.approx(expected.statistic)
    assert result.shift.p_value == pytest.approx(expected.pvalue, rel=1e-6)
    assert result.shift.mean_b - result.shift.mean_a == pytest.approx(0.5, abs=0.15)
    assert ks_two_sample(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0


def test_vectors_agree_element_by_element_and_get_no_shift() -> None:
    a = frame([("r1", [0.2, 0.8]), ("r2", [0.5, 0.5])])
    b = frame([("r1", [0.2, 0.8 + 1e-12]), ("r2", [0.6, 0.4])])
    result = compare_predictions(a, b)
    assert (result.kind, result.agreeing, result.shift) == (VECTOR, 1, None)
    assert not same([1, 2], [1, 2, 3]) and not same([1], 1)


def test_latency_percentiles_count_each_request_once() -> None:
    # r1 holds 99 rows at 10 ms; r2..r4 one row each: per request the median is 2 ms.
    rows = [("r1", 0)] * 99 + [("r2", 0), ("r3", 0), ("r4", 0)]
    a = frame(rows, latency={"r1": 10.0, "r2": 1.0, "r3": 2.0, "r4": 3.0})
    result = compare_predictions(a, a.copy())
    assert result.a.requests == 4
    assert result.a.latency_p50_ms == pytest.approx(2.5)
    assert result.a.latency_p99_ms == pytest.approx(np.percentile([10, 1, 2, 3], 99))


def test_nothing_paired_is_a_result_with_no_agreement() -> None:
    result = compare_predictions(frame([("r1", 0)]), frame([("r2", 0)]))
    assert (result.paired, result.agreement, result.kind, result.shift) == (0, None, None, None)
    assert (result.a.unpaired, result.b.unpaired) == (1, 1)
    assert result.as_dict()["agreement"] is None
