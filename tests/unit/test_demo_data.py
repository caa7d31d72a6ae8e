"""The synthetic churn data: deterministic, typed, learnable, drifting exactly as documented."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency, ks_2samp
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from workbench.demo.data import (
    CATEGORICAL_FEATURES,
    DEMO_MONTHS,
    DRIFT_STARTS,
    DRIFTED_FEATURES,
    FEATURES,
    NUMERIC_FEATURES,
    TARGET,
    demo_data_path,
    generate_month,
    write_demo_data,
)
from workbench.errors import InvalidModelName, WorkbenchError

REFERENCE = DEMO_MONTHS[0]
BEFORE_DRIFT = [m for m in DEMO_MONTHS[1:] if m < DRIFT_STARTS]
FROM_DRIFT = [m for m in DEMO_MONTHS if m >= DRIFT_STARTS]
STABLE_FEATURES = [f for f in FEATURES if f not in DRIFTED_FEATURES]


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return {m: generate_month(m) for m in DEMO_MONTHS}


def psi(expected: pd.Series, actual: pd.Series, bins: int = 10) -> float:
    """Population stability index; numeric columns are binned on the reference's deciles."""
    if pd.api.types.is_numeric_dtype(expected):
        e = expected.dropna().to_numpy(float)
        a = actual.dropna().to_numpy(float)
        # Integer columns repeat quantiles; unique edges keep every bin non-empty.
        edges = np.unique(np.quantile(e, np.linspace(0, 1, bins + 1)))
        edges[0], edges[-1] = -np.inf, np.inf
        pe = np.histogram(e, edges)[0] / len(e)
        pa = np.histogram(a, edges)[0] / len(a)
    else:
        categories = sorted(set(expected) | set(actual))
        pe = expected.value_counts(normalize=True).reindex(categories, fill_value=0).to_numpy()
        pa = actual.value_counts(normalize=True).reindex(categories, fill_value=0).to_numpy()
    pe, pa = np.clip(pe, 1e-4, None), np.clip(pa, 1e-4, None)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def p_value(expected: pd.Series, actual: pd.Series) -> float:
    """KS test for numeric columns, chi-square on the category counts otherwise."""
    if pd.api.types.is_numeric_dtype(expected):
        return float(ks_2samp(expected.dropna(), actual.dropna()).pvalue)
    table = pd.concat([expected.value_counts(), actual.value_counts()], axis=1).fillna(0)
    return float(chi2_contingency(table.to_numpy()).pvalue)


def pipeline(classifier: object) -> Pipeline:
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    columns = make_column_transformer(
        (numeric, list(NUMERIC_FEATURES)),
        (OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL_FEATURES)),
    )
    return make_pipeline(columns, classifier)


def test_constants_are_consistent() -> None:
    assert FEATURES == NUMERIC_FEATURES + CATEGORICAL_FEATURES
    assert DRIFT_STARTS in DEMO_MONTHS
    assert set(DRIFTED_FEATURES) <= set(FEATURES)
    assert BEFORE_DRIFT and FROM_DRIFT and STABLE_FEATURES
    assert TARGET == "churned"


def test_same_arguments_give_identical_frames() -> None:
    pd.testing.assert_frame_equal(generate_month("20240131"), generate_month("20240131"))
    pd.testing.assert_frame_equal(
        generate_month("20240229", rows=300, seed=3), generate_month("20240229", rows=300, seed=3)
    )


def test_other_month_or_seed_gives_other_rows(frames: dict[str, pd.DataFrame]) -> None:
    jan, feb = frames["20240131"], frames["20240229"]
    assert not jan[list(FEATURES)].equals(feb[list(FEATURES)])
    assert not set(jan["customer_id"]) & set(feb["customer_id"])
    other_seed = generate_month("20240131", seed=8)
    assert not jan[list(FEATURES)].equals(other_seed[list(FEATURES)])


def test_schema_and_dtypes(frames: dict[str, pd.DataFrame]) -> None:
    frame = frames[REFERENCE]
    assert list(frame.columns) == ["customer_id", *FEATURES, TARGET]
    assert len(frame) == 5000
    assert frame["customer_id"].is_unique
    assert pd.api.types.is_string_dtype(frame["customer_id"])
    for column in ("tenure_months", "support_calls", "age", TARGET):
        assert frame[column].dtype == np.int64, column
    for column in ("monthly_charges", "total_charges", "usage_gb"):
        assert frame[column].dtype == np.float64, column
    for column in CATEGORICAL_FEATURES:
        assert pd.api.types.is_string_dtype(frame[column]), column
    assert set(frame["contract"]) == {"month-to-month", "one-year", "two-year"}
    assert 2 <= frame["payment_method"].nunique() <= 6
    assert 2 <= frame["internet_service"].nunique() <= 6
    assert set(frame[TARGET]) == {0, 1}
    assert frame["tenure_months"].between(0, 72).all()
    assert frame["age"].between(18, 100).all()
    assert (frame["monthly_charges"] > 0).all() and (frame["usage_gb"] >= 0).all()
    assert (frame["support_calls"] >= 0).all()


def test_rows_argument_is_respected() -> None:
    frame = generate_month("20240131", rows=123)
    assert len(frame) == 123 and frame["customer_id"].is_unique


def test_missing_values_only_in_total_charges(frames: dict[str, pd.DataFrame]) -> None:
    for month, frame in frames.items():
        missing = frame.isna().mean()
        assert 0.01 <= missing["total_charges"] <= 0.03, month
        assert missing.drop("total_charges").eq(0).all(), month


def test_churn_rate_in_range(frames: dict[str, pd.DataFrame]) -> None:
    for month, frame in frames.items():
        rate = frame[TARGET].mean()
        if month < DRIFT_STARTS:
            assert 0.20 <= rate <= 0.30, (month, rate)
        else:
            # The drift moves customers toward riskier profiles, so more of them churn.
            assert 0.20 <= rate <= 0.40, (month, rate)


@pytest.mark.parametrize("month", BEFORE_DRIFT)
def test_no_drift_before_drift_starts(frames: dict[str, pd.DataFrame], month: str) -> None:
    reference, current = frames[REFERENCE], frames[month]
    for feature in FEATURES:
        assert psi(reference[feature], current[feature]) < 0.1, feature
        assert p_value(reference[feature], current[feature]) > 1e-3, feature


@pytest.mark.parametrize("month", FROM_DRIFT)
def test_drift_from_drift_starts_in_drifted_features_only(
    frames: dict[str, pd.DataFrame], month: str
) -> None:
    reference, current = frames[REFERENCE], frames[month]
    for feature in FEATURES:
        score = psi(reference[feature], current[feature])
        p = p_value(reference[feature], current[feature])
        if feature in DRIFTED_FEATURES:
            assert score > 0.2 or p < 1e-6, (feature, score, p)
        else:
            assert score < 0.1 and p > 1e-3, (feature, score, p)


def test_monthly_charges_rise_and_usage_falls(frames: dict[str, pd.DataFrame]) -> None:
    before, after = frames[REFERENCE], frames[DRIFT_STARTS]
    ratio = after["monthly_charges"].mean() / before["monthly_charges"].mean()
    assert ratio == pytest.approx(1.25, abs=0.05)
    assert after["usage_gb"].mean() < 0.8 * before["usage_gb"].mean()
    month_to_month = [(f["contract"] == "month-to-month").mean() for f in (before, after)]
    assert month_to_month[1] - month_to_month[0] > 0.1


@pytest.mark.parametrize("bad", ["2024-01-31", "20240230", "202401", "abcdefgh", ""])
def test_bad_data_date_raises(bad: str) -> None:
    with pytest.raises(InvalidModelName):
        generate_month(bad)


@pytest.mark.parametrize("kwargs", [{"rows": 0}, {"rows": -5}, {"rows": 1.5}, {"seed": -1}])
def test_bad_rows_or_seed_raise(kwargs: dict[str, float]) -> None:
    with pytest.raises(WorkbenchError):
        generate_month("20240131", **kwargs)  # type: ignore[arg-type]


def test_demo_data_path() -> None:
    assert demo_data_path(Path("data"), "20240131") == Path("data") / "churn_20240131.csv"


def test_write_demo_data_writes_every_month(tmp_path: Path) -> None:
    data_dir = tmp_path / "nested" / "data"
    lines: list[str] = []
    paths = write_demo_data(data_dir, rows=200, progress=lines.append)
    assert paths == [demo_data_path(data_dir, m) for m in DEMO_MONTHS]
    assert all(p.is_file() for p in paths)
    assert len(lines) == len(DEMO_MONTHS)
    assert sorted(p.name for p in data_dir.iterdir()) == sorted(p.name for p in paths)


def test_write_demo_data_round_trips_and_is_idempotent(tmp_path: Path) -> None:
    months = ("20240131", "20240430")
    paths = write_demo_data(tmp_path, months=months, rows=300, seed=11)
    first = [p.read_bytes() for p in paths]
    assert write_demo_data(tmp_path, months=months, rows=300, seed=11) == paths
    assert [p.read_bytes() for p in paths] == first
    for month, path in zip(months, paths):
        pd.testing.assert_frame_equal(pd.read_csv(path), generate_month(month, rows=300, seed=11))


def test_write_demo_data_with_a_bad_month_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(InvalidModelName):
        write_demo_data(tmp_path / "data", months=("20240131", "20241331"))
    assert not (tmp_path / "data").exists()


def test_write_demo_data_into_a_file_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    with pytest.raises(WorkbenchError, match="cannot create data folder"):
        write_demo_data(blocker, months=("20240131",), rows=10)


def test_models_learn_the_churn_signal(frames: dict[str, pd.DataFrame]) -> None:
    train, test = frames["20240131"], frames["20240229"]
    X, y = train[list(FEATURES)], train[TARGET]
    linear = pipeline(LogisticRegression(max_iter=1000)).fit(X, y)
    trees = pipeline(HistGradientBoostingClassifier(random_state=0)).fit(X, y)
    linear_auc = roc_auc_score(test[TARGET], linear.predict_proba(test[list(FEATURES)])[:, 1])
    trees_auc = roc_auc_score(test[TARGET], trees.predict_proba(test[list(FEATURES)])[:, 1])
    assert 0.7 <= linear_auc <= 0.9
    assert trees_auc >= linear_auc


def test_all_months_generate_fast() -> None:
    import time

    start = time.perf_counter()
    for month in DEMO_MONTHS:
        generate_month(month)
    assert time.perf_counter() - start < 2.0
