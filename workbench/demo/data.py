"""Synthetic customer-churn tables, one per monthly ``data_date``, with drift at a known month.

The data is generated locally and deterministically (never downloaded), so every machine
sees the same demo. Months before :data:`DRIFT_STARTS` are independent draws from one
distribution; from :data:`DRIFT_STARTS` on, exactly the features in
:data:`DRIFTED_FEATURES` change:

- ``monthly_charges`` rises by 25% (a price increase),
- ``usage_gb`` falls by 35%,
- ``contract`` moves toward month-to-month (50% -> 74% of customers).

``total_charges`` does not drift: past months were billed at the old price. Every other
feature keeps its distribution, so a drift test should flag exactly these three.

The churn label always comes from the same logistic function of the features (covariate
shift, not concept shift), so the churn rate rises from about 25% to about 32% with the
drift. The function holds two interactions (month-to-month customers who call support a
lot, new fiber customers) and a U-shaped age effect, which give tree models an edge over a
linear one.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import WorkbenchError
from workbench.naming import check_data_date

DEMO_MONTHS: tuple[str, ...] = (
    "20240131",
    "20240229",
    "20240331",
    "20240430",
    "20240531",
    "20240630",
)
DRIFT_STARTS: str = "20240430"

NUMERIC_FEATURES: tuple[str, ...] = (
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "support_calls",
    "usage_gb",
    "age",
)
CATEGORICAL_FEATURES: tuple[str, ...] = ("contract", "payment_method", "internet_service")
FEATURES: tuple[str, ...] = NUMERIC_FEATURES + CATEGORICAL_FEATURES
TARGET: str = "churned"
ID_COLUMN: str = "customer_id"
DRIFTED_FEATURES: tuple[str, ...] = ("monthly_charges", "usage_gb", "contract")

CONTRACTS: tuple[str, ...] = ("month-to-month", "one-year", "two-year")
PAYMENT_METHODS: tuple[str, ...] = (
    "electronic-check",
    "mailed-check",
    "bank-transfer",
    "credit-card",
)
INTERNET_SERVICES: tuple[str, ...] = ("fiber", "dsl", "wireless")

# Distribution parameters; the *_DRIFT values apply from DRIFT_STARTS on.
_CONTRACT_P = (0.50, 0.25, 0.25)
_CONTRACT_P_DRIFT = (0.74, 0.15, 0.11)
_PAYMENT_P = (0.34, 0.18, 0.24, 0.24)
_INTERNET_P = (0.44, 0.36, 0.20)
_CHARGE_BY_INTERNET = (80.0, 55.0, 45.0)
_USAGE_BY_INTERNET = (220.0, 120.0, 60.0)
_CHARGES_FACTOR_DRIFT = 1.25
_USAGE_FACTOR_DRIFT = 0.65
_MISSING_TOTAL_RATE = 0.02


def demo_data_path(data_dir: Path, data_date: str) -> Path:
    """Where the demo table for ``data_date`` lives inside ``data_dir``."""
    return Path(data_dir) / f"churn_{data_date}.csv"


def generate_month(data_date: str, rows: int = 5000, seed: int = 7) -> pd.DataFrame:
    """One month of synthetic churn data, identical for identical arguments.

    Args:
        data_date: the month's cut-off, ``YYYYMMDD`` (e.g. ``20240131``).
        rows: number of customers.
        seed: base seed; combined with ``data_date`` so each month gets its own draw.

    Returns:
        A frame with ``customer_id``, the :data:`FEATURES` and :data:`TARGET`.

    Raises:
        InvalidModelName: ``data_date`` is not a real ``YYYYMMDD`` date.
        WorkbenchError: ``rows`` is not a positive integer or ``seed`` is negative.
    """
    check_data_date(data_date)
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 1:
        raise WorkbenchError(f"rows must be a positive integer, got {rows!r}; pass e.g. rows=5000")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise WorkbenchError(f"seed must be a non-negative integer, got {seed!r}; pass e.g. seed=7")
    rows = int(rows)
    # Seeding from (seed, date) makes months differ while staying reproducible.
    rng = np.random.default_rng([int(seed), int(data_date)])
    drifted = data_date >= DRIFT_STARTS  # YYYYMMDD strings sort like dates

    tenure = np.minimum(72, rng.gamma(1.3, 18.0, rows)).astype(np.int64)
    contract_idx = rng.choice(3, size=rows, p=_CONTRACT_P_DRIFT if drifted else _CONTRACT_P)
    payment_idx = rng.choice(4, size=rows, p=_PAYMENT_P)
    internet_idx = rng.choice(3, size=rows, p=_INTERNET_P)

    charges = np.asarray(_CHARGE_BY_INTERNET)[internet_idx] + rng.normal(0.0, 15.0, rows)
    base_charges = np.clip(charges, 18.0, None)  # the price before any increase
    charges = np.round(base_charges * (_CHARGES_FACTOR_DRIFT if drifted else 1.0), 2)

    # Past months were billed at the old price and only part of the current month at the
    # new one, so a price increase barely moves total_charges: it does not drift.
    total = np.round(tenure * base_charges + rng.uniform(0.0, 1.0, rows) * charges, 2)
    total[rng.random(rows) < _MISSING_TOTAL_RATE] = np.nan

    support_calls = rng.poisson(1.0 + 0.6 * (internet_idx == 0), rows).astype(np.int64)
    usage = np.asarray(_USAGE_BY_INTERNET)[internet_idx] * rng.lognormal(0.0, 0.45, rows)
    if drifted:
        usage = usage * _USAGE_FACTOR_DRIFT
    usage = np.round(usage, 1)
    age = np.clip(np.round(rng.normal(44.0, 14.0, rows)), 18, 85).astype(np.int64)

    month_to_month = contract_idx == 0
    # Coefficients tuned so a linear model reaches ROC AUC ~0.77 and boosted trees ~0.83.
    logit = (
        -2.05
        + np.asarray((0.35, -0.25, -0.8))[contract_idx]
        - 0.045 * tenure
        + 0.01 * (charges - 65.0)
        + 0.3 * support_calls
        - 0.002 * (usage - 150.0)
        + 0.45 * (payment_idx == 0)
        + 0.8 * ((age - 44.0) / 14.0) ** 2  # U-shape: the young and the old churn more
        + 1.6 * (month_to_month & (support_calls >= 3))
        + 1.2 * ((internet_idx == 0) & (tenure < 12))
    )
    churned = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)

    width = max(5, len(str(rows)))
    return pd.DataFrame(
        {
            ID_COLUMN: [f"C{data_date[:6]}-{i:0{width}d}" for i in range(1, rows + 1)],
            "tenure_months": tenure,
            "monthly_charges": charges,
            "total_charges": total,
            "support_calls": support_calls,
            "usage_gb": usage,
            "age": age,
            "contract": np.asarray(CONTRACTS)[contract_idx].tolist(),
            "payment_method": np.asarray(PAYMENT_METHODS)[payment_idx].tolist(),
            "internet_service": np.asarray(INTERNET_SERVICES)[internet_idx].tolist(),
            TARGET: churned,
        }
    )


def write_demo_data(
    data_dir: Path,
    months: Sequence[str] = DEMO_MONTHS,
    rows: int = 5000,
    seed: int = 7,
    progress: Callable[[str], None] = lambda _: None,
) -> list[Path]:
    """Write ``data_dir/churn_{data_date}.csv`` for each month; rerunning rewrites the same bytes.

    Args:
        data_dir: folder for the tables; created when missing.
        months: the ``data_date`` of each table.
        rows: customers per month.
        seed: base seed, see :func:`generate_month`.
        progress: called with one line per written file.

    Returns:
        The written paths, in the order of ``months``.

    Raises:
        InvalidModelName: a month is not a real ``YYYYMMDD`` date.
        WorkbenchError: ``rows``/``seed`` are invalid, or the folder or a file cannot be written.
    """
    data_dir = Path(data_dir)
    # Validate every month before writing anything, so a typo leaves no partial set.
    for data_date in months:
        check_data_date(data_date)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkbenchError(
            f"cannot create data folder {data_dir}: {exc.strerror or exc}; choose a writable folder"
        ) from exc
    paths: list[Path] = []
    for data_date in months:
        frame = generate_month(data_date, rows=rows, seed=seed)
        path = demo_data_path(data_dir, data_date)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            # Write then rename, so a reader never sees a half-written table.
            frame.to_csv(tmp, index=False, lineterminator="\n")
            tmp.replace(path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise WorkbenchError(
                f"cannot write {path}: {exc.strerror or exc}; choose a writable data folder"
            ) from exc
        paths.append(path)
        progress(f"wrote {path} ({len(frame)} rows, data_date {data_date})")
    return paths
