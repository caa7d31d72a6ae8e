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


def test_a_folder_streams_in_batches_with_the_columns_of_one_file(settings, registry, demo_data,
                                                                  champion, tmp_path):
    whole = pd.read_csv(demo_data / "churn_20240331.csv")
    folder = tmp_path / "parts"
    folder.mkdir()
    for n, start in enumerate(range(0, len(whole), 400)):
        whole.iloc[start:start + 400].to_parquet(folder / f"part-{n:02d}.parquet", index=False)
    lines: list[str] = []
    streamed = predict_file("predictme@champion", folder, tmp_path / "streamed.parquet", settings,
                            registry, batch_rows=128, progress=lines.append)
    at_once = predict_file("predictme@champion", demo_data / "churn_20240331.csv",
                           tmp_path / "at_once.parquet", settings, registry)

    assert streamed.rows == at_once.rows == len(whole) and streamed.files == 4
    a, b = pd.read_parquet(streamed.output), pd.read_parquet(at_once.output)
    assert list(a.columns) == list(b.columns)
    pd.testing.assert_frame_equal(a.drop(columns="scored_at"), b.drop(columns="scored_at"))
    assert lines[-1] == f"scored {len(whole):,} rows"


def test_a_bad_value_in_a_later_file_names_the_file_and_writes_nothing(settings, registry,
                                                                      demo_data, champion,
                                                                      tmp_path):
    whole = pd.read_csv(demo_data / "churn_20240229.csv")
    folder = tmp_path / "parts"
    folder.mkdir()
    whole.iloc[:700].to_csv(folder / "a.csv", index=False)
    late = whole.iloc[700:].reset_index(drop=True)
    late["monthly_charges"] = late.monthly_charges.astype(object)
    late.loc[5, "monthly_charges"] = "unknown"
    late.to_csv(folder / "b.csv", index=False)
    out = tmp_path / "out.csv"
    with pytest.raises(WorkbenchError, match=r"b\.csv: .*'monthly_charges' holds 'unknown' "
                                             r"\(row 6\)") as raised:
        predict_file("predictme@champion", str(folder / "*.csv"), out, settings, registry,
                     batch_rows=100)
    assert "\n" not in str(raised.value)
    assert not out.exists() and not list(tmp_path.glob(".out.csv.*"))
