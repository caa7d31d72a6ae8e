"""The Spark engine on a real ``local[2]`` session and on a real standalone cluster.

A model registered on the real tracking server scores a multi-file Parquet dataset on both;
the rows equal the streaming local engine's, and the work ran in more than one Python worker
process. The drift check and the reference profile on Spark give the pandas path's figures.
Bad input (no data files, a schema the signature refuses, an unreachable master, no Java)
is one line.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from workbench import tracking
from workbench.demo.data import FEATURES, TARGET, generate_month
from workbench.demo.training import build_pipeline
from workbench.engines.spark import predict_spark
from workbench.engines.spark_monitoring import profile_dataset_on_spark
from workbench.errors import WorkbenchError
from workbench.monitoring.profile import NUMERIC
from workbench.monitoring.service import _profile_locally, check_model_drift, load_profile
from workbench.naming import ModelName
from workbench.predict import predict_file
from workbench.pytest_plugin import free_port
from workbench.registry import Registry

pytestmark = [pytest.mark.integration, pytest.mark.spark]


def _register(registry, name: ModelName, model, example: pd.DataFrame):
    run_id = tracking.start_run(registry.client, name.instance, str(name), {})
    instance = registry.register(model, name, run_id=run_id, input_example=example)
    registry.client.set_terminated(run_id)
    return instance


@pytest.fixture(scope="module")
def champion(registry, demo_data):
    frame = pd.read_csv(demo_data / "churn_20240131.csv")
    model = build_pipeline("gradient_boosting", list(FEATURES)).fit(frame[list(FEATURES)],
                                                                    frame[TARGET])
    return _register(registry, ModelName("sparkme", "v1", "20240131"), model,
                     frame[list(FEATURES)])


class WhoScored(mlflow.pyfunc.PythonModel):
    """Predicts the id of the process that scored the row."""

    def predict(self, context, model_input, params=None):
        return np.full(len(model_input), os.getpid(), dtype="int64")


@pytest.fixture(scope="module")
def who_scored(registry):
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # executors cannot import tests
    example = pd.DataFrame({"a": [0.1, 0.2], "b": [1.0, 2.0]})
    return _register(registry, ModelName("whoscored", "v1", "20240131"), WhoScored(), example)


def _parts(frame: pd.DataFrame, folder: Path, files: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n, part in enumerate(np.array_split(np.arange(len(frame)), files)):
        frame.iloc[part].to_parquet(folder / f"part-{n:03d}.parquet", index=False)
    return folder


@pytest.fixture(scope="module")
def march(demo_data, tmp_path_factory) -> Path:
    return _parts(pd.read_csv(demo_data / "churn_20240331.csv"),
                  tmp_path_factory.mktemp("march"), 4)


@pytest.fixture(scope="module")
def drifted(tmp_path_factory) -> tuple[Path, Path]:
    """May (after the demo's drift), as a folder of 3 files and as one file."""
    frame = generate_month("20240531", rows=1500)
    folder = tmp_path_factory.mktemp("may")
    frame.to_parquet(folder / "may.parquet", index=False)
    return _parts(frame, folder / "parts", 3), folder / "may.parquet"


def test_spark_scores_like_the_local_engine_row_for_row(spark, settings, registry, champion,
                                                        march, tmp_path):
    local = predict_file(champion, march, tmp_path / "local.parquet", settings, registry)
    lines: list[str] = []
    on_spark = predict_spark(champion, march, tmp_path / "spark", settings, registry,
                             spark=spark, progress=lines.append)

    assert on_spark.rows == local.rows == 1500
    assert len(list((tmp_path / "spark").glob("part-*.parquet"))) >= 2
    a = pd.read_parquet(local.output).sort_values("customer_id", ignore_index=True)
    b = pd.read_parquet(on_spark.output).sort_values("customer_id", ignore_index=True)
    assert list(b.columns) == list(a.columns)
    assert (b.prediction.to_numpy() == a.prediction.to_numpy()).all()
    np.testing.assert_allclose(b.probability.to_numpy(), a.probability.to_numpy(), rtol=1e-12)
    for column in [*FEATURES, "customer_id", "model_name"]:
        assert a[column].astype(str).tolist() == b[column].astype(str).tolist(), column
    assert set(b.scored_at) == {on_spark.scored_at.isoformat(timespec="seconds")}
    assert any(line.startswith("spark stage ") for line in lines) or spark.conf.get(
        "spark.master").startswith("local")


@pytest.fixture(scope="module")
def wine_and_diabetes(registry, tmp_path_factory):
    """A multiclass classifier with text classes and a regressor, with their test rows."""
    from sklearn.datasets import load_diabetes, load_wine
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    wine = load_wine(as_frame=True)
    labels = wine.target.map(dict(enumerate(wine.target_names))).astype(str)
    diabetes = load_diabetes(as_frame=True)
    models = {
        "wine": (make_pipeline(StandardScaler(), LogisticRegression(C=0.05)), wine.data, labels),
        "diabetes": (make_pipeline(StandardScaler(), Ridge()), diabetes.data, diabetes.target),
    }
    out = {}
    for kind, (model, X, y) in models.items():
        instance = _register(registry, ModelName(f"spark{kind}", "v1", "20240131"),
                             model.fit(X, y), X)
        out[kind] = (instance, _parts(X, tmp_path_factory.mktemp(kind), 2))
    return out


@pytest.mark.parametrize("kind", ["wine", "diabetes"])
def test_multiclass_and_regression_score_on_spark_like_the_local_engine(
        spark, settings, registry, wine_and_diabetes, kind, tmp_path):
    instance, data = wine_and_diabetes[kind]
    local = predict_file(instance, data, tmp_path / "local.parquet", settings, registry)
    on_spark = predict_spark(instance, data, tmp_path / "spark", settings, registry, spark=spark)
    a = pd.read_parquet(local.output)
    b = pd.read_parquet(on_spark.output)
    key = [c for c in a.columns if c not in ("prediction", "probability", "model_name",
                                             "scored_at")]  # the features identify the rows
    a, b = (f.sort_values(key, ignore_index=True) for f in (a, b))
    assert list(b.columns) == list(a.columns)
    if kind == "wine":  # the predicted class's probability, the same helper on both engines
        assert (b.prediction.to_numpy() == a.prediction.to_numpy()).all()
        np.testing.assert_allclose(b.probability.to_numpy(), a.probability.to_numpy(), rtol=1e-12)
        assert (a.probability >= 1 / 3).all()
    else:  # a regressor: numbers, no probability column
        assert "probability" not in a.columns
        np.testing.assert_allclose(b.prediction.to_numpy(), a.prediction.to_numpy(), rtol=1e-12)


def test_rows_are_scored_in_several_python_worker_processes(spark, settings, registry,
                                                            who_scored, tmp_path):
    frame = pd.DataFrame({"a": np.linspace(0, 1, 4000), "b": np.linspace(1, 2, 4000)})
    scored = predict_spark(who_scored, _parts(frame, tmp_path / "in", 4), tmp_path / "out",
                           settings, registry, spark=spark)
    out = pd.read_parquet(scored.output)
    assert len(out) == 4000
    assert out.prediction.nunique() >= 2, "every task ran in one Python worker"
    assert os.getpid() not in set(out.prediction)  # not on the driver


def test_drift_on_spark_has_the_pandas_figures(spark, settings, champion, drifted, tmp_path):
    folder, single = drifted
    by_pandas = check_model_drift(champion, settings, current=single, log=False,
                                  report_dir=tmp_path / "pandas")
    by_spark = check_model_drift(champion, settings, current=folder, log=False, engine="spark",
                                 spark=spark, report_dir=tmp_path / "spark")
    a, b = by_pandas.result, by_spark.result
    assert a.verdict == b.verdict == "drift"
    assert a.drifted == b.drifted and a.warned == b.warned and b.current_rows == 1500
    profile = load_profile(champion, Registry(settings))
    profile_cdf_points = {f.name: len(f.cdf_x) for f in (*profile.features, profile.prediction)
                          if f.kind == NUMERIC}
    for x, y in zip(a.checks, (next(c for c in b.checks if c.name == x.name) for x in a.checks)):
        assert x.status == y.status, x.name
        for stat in ("psi", "chi2_statistic", "chi2_pvalue", "js_distance",
                     "current_missing_rate", "reference_missing_rate"):
            expected = getattr(x, stat)
            assert getattr(y, stat) == (None if expected is None else pytest.approx(
                expected, rel=1e-9, abs=1e-12)), (x.name, stat)
        if x.kind == NUMERIC:
            assert abs(x.ks_statistic - y.ks_statistic) <= 1 / profile_cdf_points[x.name], x.name
    assert by_spark.report_html.is_file()


def test_profile_on_spark_matches_the_pandas_profile(spark, settings, champion, march):
    local = _profile_locally(champion, settings, march, lambda _line: None)
    on_spark = profile_dataset_on_spark(champion, march, settings, spark=spark)
    assert on_spark.rows == local.rows and on_spark.names == local.names
    for a, b in zip((*local.features, local.prediction), (*on_spark.features, on_spark.prediction)):
        assert (a.kind, a.count, a.missing) == (b.kind, b.count, b.missing), a.name
        if a.kind == NUMERIC and a.cdf_exact:
            assert b.cdf_exact and a.cdf_x == b.cdf_x and a.cdf_counts == b.cdf_counts, a.name
            assert a.bin_counts == b.bin_counts, a.name
        elif a.kind == NUMERIC:
            assert b.mean == pytest.approx(a.mean) and b.std == pytest.approx(a.std), a.name
            assert (a.min, a.max) == (b.min, b.max), a.name
        else:
            assert a.categories == b.categories and a.other == b.other, a.name


@pytest.mark.parametrize("spoil, message", [
    (lambda f: f.drop(columns="contract"), r"lacks column\(s\) contract"),
    (lambda f: f.assign(monthly_charges=f.monthly_charges.astype(str)),
     r"'monthly_charges' holds string values, not numbers"),
])
def test_a_schema_the_signature_refuses_is_one_line(spark, settings, registry, champion, march,
                                                    tmp_path, spoil, message):
    spoilt = _parts(spoil(pd.read_parquet(march)), tmp_path / "in", 2)
    with pytest.raises(WorkbenchError, match=message) as raised:
        predict_spark(champion, spoilt, tmp_path / "out", settings, registry, spark=spark)
    assert "\n" not in str(raised.value) and not (tmp_path / "out").exists()


def test_a_folder_without_data_files_is_one_line(spark, settings, registry, champion, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "_SUCCESS").write_text("")
    with pytest.raises(WorkbenchError, match="holds no data files"):
        predict_spark(champion, tmp_path / "in", tmp_path / "out", settings, registry,
                      spark=spark)
    assert not (tmp_path / "out").exists()


# -- the command line: no session of the tests' own ---------------------------------------------
def _workbench(args: list[str], settings, env: dict[str, str] | None = None,
               timeout: float = 300) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True,
                          text=True, env=env or {**os.environ, **settings.as_env()},
                          timeout=timeout)
    return done, time.monotonic() - started


def test_an_unreachable_master_is_one_line_within_seconds(spark_ready, settings, champion,
                                                          march, tmp_path):
    master = f"spark://127.0.0.1:{free_port()}"
    done, elapsed = _workbench(["predict", champion.full_name, "--input", str(march),
                                "--output", str(tmp_path / "out"), "--engine", "spark",
                                "--master", master], settings)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and lines[-1].startswith("error: cannot reach the Spark master")
    assert master in lines[-1] and "Traceback" not in done.stderr
    assert elapsed < 30, f"{elapsed:.1f} s"
    assert not (tmp_path / "out").exists()


def test_without_java_the_spark_engine_says_what_to_install(spark_ready, settings, champion,
                                                            march, tmp_path):
    env = {**os.environ, **settings.as_env()}
    env.pop("JAVA_HOME", None)
    env["PATH"] = str(Path(sys.executable).parent)  # python, and no java
    done, _ = _workbench(["predict", champion.full_name, "--input", str(march), "--output",
                          str(tmp_path / "out"), "--engine", "spark"], settings, env)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert "needs Java" in lines[0] and "mlops-workbench[spark]" in lines[0]


def test_the_cli_scores_on_spark_and_shows_its_stages(spark_ready, settings, champion, march,
                                                      tmp_path):
    # As a user runs it without activating the virtualenv: its bin folder is not on PATH, so
    # the Python workers must be given this interpreter (the first python3 on PATH may lack
    # pandas and the model's libraries).
    here = Path(sys.executable).parent
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != here)
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_PYTHON", "VIRTUAL_ENV")}
    done, _ = _workbench(["predict", champion.full_name, "--input", str(march / "*.parquet"),
                          "--output", str(tmp_path / "out"), "--engine", "spark", "--master",
                          "local[2]", "--conf", "spark.sql.shuffle.partitions=4"], settings,
                         env={**env, **settings.as_env(), "PATH": path})
    assert done.returncode == 0, done.stderr
    assert f"1500 rows scored by {champion.label}" in done.stdout
    assert "spark stage " in done.stderr and "\r" not in done.stderr
    assert len(pd.read_parquet(tmp_path / "out")) == 1500


def test_monitor_profile_stores_a_profile_for_a_model_registered_without_one(settings, registry,
                                                                             demo_data,
                                                                             tmp_path):
    from workbench.monitoring.service import profile_model

    frame = pd.read_csv(demo_data / "churn_20240131.csv")
    model = build_pipeline("logistic_regression", list(FEATURES)).fit(frame[list(FEATURES)],
                                                                      frame[TARGET])
    bare = _register(registry, ModelName("profileme", "v1", "20240131"), model, None)
    assert "workbench.profile" not in bare.tags
    stored = profile_model(bare, settings, demo_data / "churn_20240131.csv")
    assert not stored.replaced and stored.profile.rows == len(frame)
    again = profile_model(bare.full_name, settings, demo_data / "churn_20240131.csv")
    assert again.replaced
    check = check_model_drift(bare.full_name, settings, current=demo_data / "churn_20240229.csv",
                              log=False, report_dir=tmp_path)
    assert check.result.verdict in ("ok", "warn") and check.result.prediction is not None
