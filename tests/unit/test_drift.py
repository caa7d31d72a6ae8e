"""Drift statistics and reference profiles: pure, checked against scipy on small data."""
from __future__ import annotations

import datetime as dt
import itertools
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from workbench.errors import (
    DriftDetected,
    MonitoringError,
    NoCurrentData,
    ProfileError,
    SchemaMismatch,
    WorkbenchError,
)
from workbench.monitoring.drift import DRIFT, OK, WARN, Thresholds, check_drift
from workbench.monitoring.profile import (
    CATEGORICAL,
    NUMERIC,
    ReferenceProfile,
    build_profile,
    category_label,
    evaluate_cdf,
    kind_of_predictions,
)
from workbench.monitoring.report import render_html, summary_json
from workbench.monitoring.service import DriftCheck, parse_time
from workbench.monitoring.stats import chi_square, js_distance, ks_pvalue, ks_statistic, psi
from workbench.registry import Instance


def _frames(seed: int = 0, rows: int = 600, shift: float = 0.0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x": rng.normal(shift, 1.0, rows),
        "n": rng.poisson(2.0 + shift, rows),
        "c": rng.choice(["a", "b", "c"], rows, p=[0.5, 0.3, 0.2]),
    })


# -- the statistics against scipy ----------------------------------------------------------------
@pytest.mark.parametrize("shift", [0.0, 0.15, 0.6])
def test_ks_matches_scipy_when_the_profile_is_exact(shift):
    reference, current = _frames(1, 700), _frames(2, 400, shift)
    profile = build_profile(reference)
    for name in ("x", "n"):  # continuous, and integers with many ties
        fp = profile.feature(name)
        assert fp.cdf_exact
        d = ks_statistic(fp, np.sort(current[name].to_numpy(dtype=float)))
        expected = stats.ks_2samp(reference[name], current[name], method="asymp")
        assert d == pytest.approx(expected.statistic, abs=1e-12)
        pvalue = ks_pvalue(d, fp.count, len(current))
        assert pvalue == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


def test_ks_from_interpolated_quantiles_is_within_the_grid_resolution():
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({"x": rng.gamma(2.0, 3.0, 50_000)})
    fp = build_profile(reference, cdf_points=500).feature("x")
    assert not fp.cdf_exact and len(fp.cdf_x) <= 500
    for shift in (0.0, 0.3, 2.0):
        current = rng.gamma(2.0, 3.0, 3000) + shift
        d = ks_statistic(fp, np.sort(current))
        assert d == pytest.approx(stats.ks_2samp(reference.x, current).statistic, abs=2.5 / 500)


def test_reference_cdf_is_a_step_function_when_exact_and_continuous_otherwise():
    exact = build_profile(pd.DataFrame({"v": [1, 1, 2, 5]})).feature("v")
    assert list(evaluate_cdf(exact, np.array([0.0, 1.0, 1.5, 2.0, 4.9, 5.0, 9.0]))) == \
        [0.0, 0.5, 0.5, 0.75, 0.75, 1.0, 1.0]
    smooth = build_profile(pd.DataFrame({"v": np.arange(101.0)}), cdf_points=11).feature("v")
    at = evaluate_cdf(smooth, np.array([-1.0, 5.0, 200.0]))
    assert at == pytest.approx([0.0, 6.0 / 101, 1.0], abs=0.01)


def test_chi_square_matches_scipy_including_a_category_unseen_in_training():
    reference, current = [50, 30, 20, 0], [40, 30, 25, 5]
    statistic, pvalue = chi_square(reference, current)
    expected = stats.chi2_contingency(np.array([reference, current])[:, [0, 1, 2, 3]], correction=False)
    assert statistic == pytest.approx(expected.statistic)
    assert pvalue == pytest.approx(expected.pvalue)
    # A category empty on both sides is not a category.
    assert chi_square([5, 5, 0], [4, 6, 0]) == pytest.approx(chi_square([5, 5], [4, 6]))
    assert chi_square([10], [3]) == (0.0, 1.0)


def test_js_distance_and_psi_match_scipy():
    p, q = np.array([0.5, 0.3, 0.2]), np.array([0.3, 0.3, 0.4])
    assert js_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2))
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert js_distance(p, p) == 0.0
    # PSI is the symmetric Kullback-Leibler divergence.
    assert psi(p, q) == pytest.approx(stats.entropy(q, p) + stats.entropy(p, q))
    assert psi(p, p) == 0.0
    # An empty bin counts through the floor instead of dividing by zero.
    empty_bin = psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2])
    assert np.isfinite(empty_bin) and empty_bin > 1


def test_numeric_psi_uses_the_stored_bins():
    reference, current = _frames(1, 1000), _frames(2, 800, 0.3)
    profile = build_profile(reference)
    fp = profile.feature("x")
    assert len(fp.bin_edges) == 9 and sum(fp.bin_counts) == 1000
    edges = np.array([-np.inf, *fp.bin_edges, np.inf])
    bins = list(itertools.pairwise(edges))
    ref = np.array([((reference.x > lo) & (reference.x <= hi)).mean() for lo, hi in bins])
    cur = np.array([((current.x > lo) & (current.x <= hi)).mean() for lo, hi in bins])
    row = next(f for f in check_drift(profile, current).features if f.name == "x")
    assert row.psi == pytest.approx(psi(ref, cur))


# -- statuses, thresholds and the verdict -----------------------------------------------------------
def test_same_distribution_is_ok_and_a_shift_drifts_only_where_it_happens():
    reference = _frames(1, 2000)
    profile = build_profile(reference)
    same = check_drift(profile, _frames(2, 2000))
    assert same.verdict == OK and same.drifted == () and same.warned == ()

    shifted = _frames(3, 2000)
    shifted["x"] = shifted["x"] + 0.8
    result = check_drift(profile, shifted)
    assert result.verdict == DRIFT and result.drifted == ("x",)
    x = result.features[0]  # drifted first
    assert x.name == "x" and x.status == DRIFT and x.psi > 0.25 and x.ks_pvalue < 1e-10
    assert any(reason.startswith("psi") for reason in x.reasons)
    assert result.summary_line().startswith("drift: 1 of 3 features drifted (x)")


def test_thresholds_grade_warn_and_drift_and_are_configurable():
    profile = build_profile(_frames(1, 3000))
    current = _frames(2, 3000)
    current["x"] = current["x"] + 0.17  # PSI about 0.02, KS D about 0.07 (p about 2e-6)
    default = check_drift(profile, current)
    x = next(f for f in default.features if f.name == "x")
    assert x.status == WARN and default.verdict == WARN and x.psi < 0.1
    assert x.reasons == (f"ks p {x.ks_pvalue:.2g} < 0.01, D {x.ks_statistic:.3f} >= 0.05",)

    strict = check_drift(profile, current, thresholds=Thresholds(psi_warn=0.01, psi_drift=0.02))
    assert "x" in strict.drifted
    lenient = Thresholds.from_mapping({"ks_warn": "0.5", "ks_drift": 0.9, "psi_warn": 0.5,
                                       "psi_drift": 0.9, "missing_warn": 0.5, "missing_drift": 0.9})
    assert check_drift(profile, current, thresholds=lenient).verdict == OK

    # Two drifted features needed: one gives warn.
    assert check_drift(profile, current, thresholds=Thresholds(psi_warn=0.01, psi_drift=0.02,
                                                               min_drifted_features=2)).verdict == WARN


def test_thresholds_defaults_validation_and_yaml():
    t = Thresholds()
    assert (t.psi_warn, t.psi_drift, t.ks_pvalue, t.chi2_pvalue) == (0.1, 0.25, 0.01, 0.01)
    assert Thresholds.from_yaml("psi_drift: 0.3\nmin_drifted_features: 2\n", {"psi_warn": "0.2"}) == \
        Thresholds(psi_warn=0.2, psi_drift=0.3, min_drifted_features=2)
    assert Thresholds.from_yaml("") == Thresholds()
    for bad in ({"nope": 1}, {"psi_warn": "high"}, {"psi_warn": 0.5, "psi_drift": 0.2},
                {"ks_pvalue": 0}, {"min_drifted_features": 0}, {"js_warn": True}):
        with pytest.raises(MonitoringError) as raised:
            Thresholds.from_mapping(bad)
        assert raised.value.exit_code == 2
    with pytest.raises(MonitoringError, match="mapping"):
        Thresholds.from_yaml("- 1\n- 2\n")
    with pytest.raises(MonitoringError, match="YAML"):
        Thresholds.from_yaml("psi: [")


def test_a_classifiers_predictions_are_profiled_as_classes_whatever_their_type():
    reference = _frames(1, 2000)
    classes = (reference.x > 1).astype(int)  # a classifier of 0 and 1
    assert kind_of_predictions("classification") == CATEGORICAL
    assert kind_of_predictions("regression") == NUMERIC and kind_of_predictions(None) is None
    profile = build_profile(reference, classes, prediction_kind=kind_of_predictions(
        "classification"))
    assert profile.prediction is not None and profile.prediction.kind == CATEGORICAL
    assert profile.prediction.categories == {"0": int((classes == 0).sum()),
                                              "1": int((classes == 1).sum())}
    # The current predictions come back from the store as numbers (1.0): the same classes.
    same = check_drift(profile, _frames(1, 2000), classes.astype(float))
    assert same.prediction.kind == CATEGORICAL and same.prediction.status == OK
    assert same.prediction.chi2_statistic is not None and same.prediction.ks_statistic is None
    shifted = check_drift(profile, _frames(1, 2000), np.ones(2000))
    assert shifted.prediction.status == DRIFT and shifted.verdict == DRIFT


def test_drifted_predictions_make_the_verdict_drift():
    reference = _frames(1, 2000)
    profile = build_profile(reference, (reference.x > 1).astype(int))
    assert profile.prediction is not None and profile.prediction.kind == NUMERIC
    current = _frames(2, 2000)
    result = check_drift(profile, current, np.ones(len(current), dtype=int))
    assert result.drifted == () and result.prediction.status == DRIFT and result.verdict == DRIFT
    assert "predictions drift" in result.summary_line()
    # No current predictions: the check says so instead of guessing.
    alone = check_drift(profile, current)
    assert alone.prediction is None and alone.verdict == OK
    assert "no current predictions" in alone.notes[0]


# -- missing values and categories ----------------------------------------------------------------
def test_missing_values_are_left_out_of_the_distribution_and_their_rate_is_checked():
    reference, current = _frames(1, 1000), _frames(2, 1000)
    reference.loc[reference.index[:20], "x"] = np.nan
    current.loc[current.index[:150], "x"] = np.nan
    current.loc[current.index[:10], "c"] = None
    profile = build_profile(reference)
    fp = profile.feature("x")
    assert (fp.count, fp.missing, fp.missing_rate) == (980, 20, pytest.approx(0.02))
    x = next(f for f in check_drift(profile, current).features if f.name == "x")
    assert x.reference_missing_rate == pytest.approx(0.02)
    assert x.current_missing_rate == pytest.approx(0.15)
    assert x.status == DRIFT and any("missing rate 2.0% -> 15.0%" in r for r in x.reasons)
    expected = stats.ks_2samp(reference.x.dropna(), current.x.dropna(), method="asymp")
    assert x.ks_statistic == pytest.approx(expected.statistic)
    c = next(f for f in check_drift(profile, current).features if f.name == "c")
    assert c.current_missing_rate == pytest.approx(0.01) and c.current_count == 990

    # Infinity is no number to compare: it counts as missing.
    inf = build_profile(pd.DataFrame({"v": [1.0, np.inf, 2.0, -np.inf]})).feature("v")
    assert (inf.count, inf.missing) == (2, 2)


def test_unseen_categories_are_reported_and_drift():
    reference = _frames(1, 1000)
    current = _frames(2, 1000)
    current.loc[current.index[:200], "c"] = "brand-new"
    profile = build_profile(reference)
    c = next(f for f in check_drift(profile, current).features if f.name == "c")
    assert c.status == DRIFT and c.new_categories == ("brand-new",)
    assert any("20.0% in categories unseen in training (brand-new)" in r for r in c.reasons)
    counts = current.c.value_counts()
    ref_counts = reference.c.value_counts()
    table = [[ref_counts.get(k, 0) for k in ("a", "b", "c", "brand-new")],
             [counts.get(k, 0) for k in ("a", "b", "c", "brand-new")]]
    expected = stats.chi2_contingency(np.array(table), correction=False)
    assert c.chi2_statistic == pytest.approx(expected.statistic)
    expected_js = jensenshannon(np.array(table[0]) / 1000, np.array(table[1]) / 1000, base=2)
    assert c.js_distance == pytest.approx(expected_js)
    assert "brand-new" in c.distribution.labels


def test_rare_categories_share_one_bucket_and_labels_are_normalised():
    reference = pd.DataFrame({"k": [f"k{i}" for i in range(60)] * 2 + ["k0"] * 10})
    fp = build_profile(reference, max_categories=5).feature("k")
    assert len(fp.categories) == 5 and next(iter(fp.categories)) == "k0"
    assert fp.other == 130 - sum(fp.categories.values())
    # Integral numbers are one category whatever their type (the prediction store hands back
    # floats and objects).
    assert category_label(1.0) == category_label(np.int64(1)) == "1" and category_label(True) == "True"
    codes = build_profile(pd.DataFrame({"code": pd.Series(["1", "2", "2"])}))
    current = pd.DataFrame({"code": pd.Series([1.0, 2.0, 2.0, None], dtype=object)})
    assert check_drift(codes, current).features[0].psi == pytest.approx(0.0)


# -- profiles ---------------------------------------------------------------------------------------
def test_profile_json_round_trip_and_kinds():
    frame = _frames(1, 300)
    frame["flag"] = frame.x > 0
    frame["when"] = pd.date_range("2024-01-01", periods=300, freq="h")
    frame["grade"] = pd.Categorical(np.where(frame.x > 0, "hi", "lo"))
    frame.loc[3, "x"] = np.nan
    profile = build_profile(frame, frame.n * 2.5)
    text = profile.to_json()
    assert ReferenceProfile.from_json(text) == profile
    assert json.loads(text)["format"] == 1 and "NaN" not in text
    kinds = {f.name: f.kind for f in profile.features}
    assert kinds == {"x": NUMERIC, "n": NUMERIC, "c": CATEGORICAL, "flag": CATEGORICAL,
                     "when": NUMERIC, "grade": CATEGORICAL}
    assert profile.rows == 300 and profile.prediction.name == "prediction"

    forced = build_profile(frame[["n", "c"]], numeric=[], categorical=["n"])
    assert forced.feature("n").kind == CATEGORICAL
    with pytest.raises(ProfileError, match="not in the frame"):
        build_profile(frame, numeric=["missing"])
    with pytest.raises(ProfileError, match=r"'c' holds '[abc]', not a number"):
        build_profile(frame[["c"]], numeric=["c"])
    with pytest.raises(ProfileError, match="2 predictions for 300"):
        build_profile(frame, [1, 2])
    # Several outputs per row are not profiled.
    assert build_profile(frame[["x"]], np.zeros((300, 2))).prediction is None


def test_a_profile_that_cannot_be_read_says_so():
    for text, message in (("{", "not valid JSON"), ("[]", "no feature list"),
                          ('{"format": 99, "features": [], "rows": 1}', "format 99"),
                          ('{"format": 1, "features": [{"name": "x"}], "rows": 1}', "malformed")):
        with pytest.raises(ProfileError, match=message) as raised:
            ReferenceProfile.from_json(text)
        assert raised.value.exit_code == 2


def test_profile_stays_compact_on_large_frames():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"f{i}": rng.normal(size=100_000) for i in range(5)})
    profile = build_profile(frame)
    assert all(len(f.cdf_x) <= 1000 for f in profile.features)
    assert len(profile.to_json()) < 100_000


# -- bad input ------------------------------------------------------------------------------------
def test_current_data_that_does_not_match_is_refused():
    profile = build_profile(_frames(1, 100))
    with pytest.raises(SchemaMismatch, match=r"lacks column\(s\) c of the model's signature") as raised:
        check_drift(profile, _frames(2, 100).drop(columns=["c"]))
    assert raised.value.missing == ("c",) and raised.value.exit_code == 2
    with pytest.raises(NoCurrentData):
        check_drift(profile, _frames(2, 100).iloc[:0])
    text = _frames(2, 100).astype({"x": object})
    text.loc[0, "x"] = "abc"
    with pytest.raises(SchemaMismatch, match="'x' holds 'abc', not a number; the model's"):
        check_drift(profile, text)
    numbers = _frames(2, 100).assign(c=1.5)
    with pytest.raises(SchemaMismatch, match="'c' holds numbers"):
        check_drift(profile, numbers)
    # Extra columns are fine; so are numbers stored as objects (the prediction store's way).
    loose = _frames(2, 100).assign(extra=1).astype({"x": object})
    assert check_drift(profile, loose).current_rows == 100


# -- report, summary and the verdict as an error -------------------------------------------------------
def _result():
    reference = _frames(1, 500)
    current = _frames(2, 500)
    current["x"] = current["x"] + 1.0
    return check_drift(build_profile(reference, reference.n), current, current.n)


def test_report_html_has_the_table_and_one_plot_per_feature_drifted_first():
    result = _result()
    page = render_html(result, {"model": "churn_v1_20240131", "run": "http://mlflow/#/runs/1"})
    assert page.startswith("<!DOCTYPE html>") and "churn_v1_20240131" in page
    assert page.count("data:image/png;base64,") == 4  # x, n, c and the predictions
    assert page.index('<figure id="x">') < page.index('<figure id="n">')
    assert '<a href="http://mlflow/#/runs/1">' in page
    summary = json.loads(summary_json(result, {"model": "m"}))
    assert summary["model"] == "m" and summary["verdict"] == DRIFT and summary["drifted"] == ["x"]
    assert {f["name"] for f in summary["features"]} == {"x", "n", "c"}
    assert summary["thresholds"]["psi_drift"] == 0.25


def test_raise_for_drift(tmp_path):
    result = _result()
    instance = Instance("churn", 1, "churn_v1_20240131", "v1", "20240131", None, "models:/m-1")
    check = DriftCheck(instance, result, "file x.csv", dt.datetime.now(dt.timezone.utc),
                       tmp_path / "r.html", tmp_path / "s.json", "run1", "http://mlflow/#/runs/run1")
    with pytest.raises(DriftDetected, match="churn_v1_20240131: drift in x; report: http://ml") as raised:
        check.raise_for_drift()
    assert raised.value.exit_code == 1 and raised.value.drifted == ("x",)
    assert raised.value.run_id == "run1"
    assert isinstance(raised.value, WorkbenchError)
    calm = DriftCheck(instance, check_drift(build_profile(_frames(1)), _frames(2)), "f",
                      check.checked_at, check.report_html, check.summary_json)
    calm.raise_for_drift()  # ok: nothing raised


def test_parse_time():
    utc = dt.timezone.utc
    assert parse_time("2024-04-30") == dt.datetime(2024, 4, 30, tzinfo=utc)
    assert parse_time("20240430", end_of_day=True) == dt.datetime(2024, 5, 1, tzinfo=utc)
    assert parse_time("2024-04-30T12:30") == dt.datetime(2024, 4, 30, 12, 30, tzinfo=utc)
    assert parse_time("2024-04-30T12:30+02:00") == dt.datetime(2024, 4, 30, 10, 30, tzinfo=utc)
    assert parse_time("2024-04-30T12:30", end_of_day=True).hour == 12  # a time is a time
    week = dt.datetime.now(utc) - parse_time("7d")
    assert dt.timedelta(days=7) - dt.timedelta(seconds=5) < week < dt.timedelta(days=7, seconds=5)
    with pytest.raises(MonitoringError, match="cannot read 'yesterday'"):
        parse_time("yesterday")
