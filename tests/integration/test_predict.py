"""Batch predictions with a registered instance, through the library and the CLI."""
from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from workbench import tracking
from workbench.demo.data import FEATURES, TARGET
from workbench.demo.training import build_pipeline
from workbench.errors import WorkbenchError
from workbench.naming import ModelName
from workbench.predict import predict_file

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def champion(registry, demo_data):
    frame = pd.read_csv(demo_data / "churn_20240131.csv")
    model = build_pipeline("logistic_regression", list(FEATURES)).fit(frame[list(FEATURES)], frame[TARGET])
    name = ModelName("predictme", "v1", "20240131")
    run_id = tracking.start_run(registry.client, name.instance, str(name), {})
    instance = registry.register(model, name, run_id=run_id, input_example=frame[list(FEATURES)])
    registry.promote(instance, "champion")
    return instance, model


def test_predict_file_adds_predictions_model_name_and_time(settings, registry, demo_data, champion, tmp_path):
    _, model = champion
    source = demo_data / "churn_20240331.csv"
    result = predict_file("predictme@champion", source, tmp_path / "scored.parquet", settings, registry)

    scored = pd.read_parquet(result.output)
    original = pd.read_csv(source)
    assert result.rows == len(original) == len(scored)
    assert list(scored.columns[: len(original.columns)]) == list(original.columns)
    assert set(scored.model_name) == {"predictme_v1_20240131"}
    assert scored.scored_at.nunique() == 1
    expected = model.predict(original[list(FEATURES)])
    assert (scored.prediction.to_numpy() == expected).all()
    assert scored.probability.between(0, 1).all()


def test_predict_cli_writes_csv(settings, demo_data, champion, tmp_path):
    env = {**os.environ, **settings.as_env()}
    out = tmp_path / "scored.csv"
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "predict", "predictme_v1_20240131",
                           "--input", str(demo_data / "churn_20240229.csv"), "--output", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "1500 rows scored by predictme_v1_20240131" in done.stdout
    assert "\r" not in done.stderr, done.stderr  # no progress bars redrawn over the workbench's lines
    assert len(pd.read_csv(out)) == 1500

    bad = subprocess.run([sys.executable, "-m", "workbench.cli", "predict", "predictme_v9_20240131",
                          "--input", str(demo_data / "churn_20240229.csv"), "--output", str(out)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 1 and bad.stderr.strip().startswith("error: 'predictme' has no alias")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_missing_columns_and_formats_are_clear_errors(settings, registry, demo_data, champion, tmp_path):
    partial = tmp_path / "partial.csv"
    pd.read_csv(demo_data / "churn_20240229.csv").drop(columns=["contract"]).to_csv(partial, index=False)
    with pytest.raises(WorkbenchError, match="lacks column\\(s\\) contract"):
        predict_file("predictme@champion", partial, tmp_path / "o.csv", settings, registry)
    with pytest.raises(WorkbenchError, match="unsupported output format"):
        predict_file("predictme@champion", partial, tmp_path / "o.xlsx", settings, registry)
    with pytest.raises(WorkbenchError, match="does not exist"):
        predict_file("predictme@champion", tmp_path / "none.csv", tmp_path / "o.csv", settings, registry)


@pytest.mark.parametrize("change, message", [
    (lambda f: f.assign(tenure_months=f.tenure_months.astype("float").where(f.index != 4)),
     r"'tenure_months' has 1 missing value\(s\) \(first in row 5\)"),
    (lambda f: f.assign(monthly_charges=f.monthly_charges.astype(str).where(f.index != 2, "unknown")),
     r"'monthly_charges' holds 'unknown' \(row 3\), not a number"),
    (lambda f: f.assign(tenure_months=f.tenure_months + 0.5),
     r"'tenure_months' holds [0-9]+\.5 \(row 1\).*whole numbers"),
])
def test_values_the_signature_refuses_are_one_line_and_nothing_is_written(
        settings, registry, demo_data, champion, tmp_path, change, message):
    source = tmp_path / "in.csv"
    change(pd.read_csv(demo_data / "churn_20240229.csv")).to_csv(source, index=False)
    out = tmp_path / "out" / "scored.csv"
    with pytest.raises(WorkbenchError, match=message) as raised:
        predict_file("predictme@champion", source, out, settings, registry)
    assert "\n" not in str(raised.value)
    assert not out.exists()


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("tenure_months,monthly_charges\n", "no rows"),
    ('a,b\n1,"unterminated\n', "not a readable CSV"),
])
def test_unreadable_tables_are_one_line(settings, registry, champion, tmp_path, content, message):
    source = tmp_path / "in.csv"
    source.write_text(content)
    with pytest.raises(WorkbenchError, match=message) as raised:
        predict_file("predictme@champion", source, tmp_path / "o.csv", settings, registry)
    assert "\n" not in str(raised.value) and str(source) in str(raised.value)
    assert not (tmp_path / "o.csv").exists()
