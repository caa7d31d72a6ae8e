"""The magics in a real IPython shell, tracking to a real mlflow server."""
from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from sklearn.linear_model import LogisticRegression

from workbench import lineage, tracking

pytestmark = pytest.mark.integration


def _run(run_id: str):
    return mlflow.MlflowClient().get_run(run_id)


def test_track_then_package_registers_an_instance_with_lineage(shell, demo_data, unique_instance, registry, capsys):
    data = demo_data / "churn_20240131.csv"
    shell.run_line_magic(
        "mlops_track", f"--instance {unique_instance} --version v3 --data-date 20240131 --data {data}")
    run = mlflow.active_run()
    assert run is not None
    tags = _run(run.info.run_id).data.tags
    assert tags[tracking.INSTANCE_TAG] == unique_instance
    assert tags["mlflow.runName"] == f"{unique_instance}_v3_20240131"
    assert tags[lineage.DATA_PATH] == str(data.resolve())
    assert tags[lineage.DATA_ROWS] == "1500"
    assert len(tags[lineage.DATA_SHA256]) == 64
    assert tags[lineage.EXECUTOR] == "notebook"
    assert _run(run.info.run_id).info.experiment_id == mlflow.get_experiment_by_name(unique_instance).experiment_id

    frame = pd.read_csv(data)[["tenure_months", "monthly_charges"]]
    shell.user_ns.update(X=frame, model=LogisticRegression().fit(frame, pd.read_csv(data).churned))
    instance = shell.run_line_magic("mlops_package", "model --input X")
    out = capsys.readouterr().out
    assert f"registered {unique_instance}_v3_20240131" in out and "/#/models/" in out
    assert instance.run_id == run.info.run_id
    assert instance.tags[lineage.DATA_SHA256] == tags[lineage.DATA_SHA256]

    shell.run_line_magic("mlops_track", "--end")
    assert mlflow.active_run() is None
    assert _run(run.info.run_id).info.status == "FINISHED"
    with pytest.raises(UsageError, match="immutable"):  # same name again, even from a new run
        shell.run_line_magic("mlops_track", f"--instance {unique_instance} --version v3 --data-date 20240131")
        shell.run_line_magic("mlops_package", "model --input X")


@pytest.mark.parametrize("line, message", [
    ("--instance Churn --version v1 --data-date 20240131", "instance 'Churn'"),
    ("--instance churn --version 1 --data-date 20240131", "version '1'"),
    ("--instance churn --version v1 --data-date 20240231", "not a real calendar date"),
    ("--instance churn --data /no/such/file.csv", "does not exist"),
])
def test_track_errors_are_one_line_usage_errors(shell, line, message):
    with pytest.raises(UsageError, match=message) as raised:
        shell.run_line_magic("mlops_track", line)
    assert "\n" not in str(raised.value)
    assert mlflow.active_run() is None


def test_package_errors_are_one_line_usage_errors(shell, unique_instance):
    with pytest.raises(UsageError, match="no variable 'nothing'"):
        shell.run_line_magic("mlops_package", "nothing --name x_v1 --data-date 20240131")
    shell.user_ns["model"] = LogisticRegression()
    with pytest.raises(UsageError, match="no active run"):
        shell.run_line_magic("mlops_package", f"model --name {unique_instance}_v1 --data-date 20240131")
    shell.run_line_magic("mlops_track", f"--instance {unique_instance}")
    with pytest.raises(UsageError, match="data_date"):
        shell.run_line_magic("mlops_package", f"model --name {unique_instance}_v1")
    shell.user_ns["thing"] = object()
    with pytest.raises(UsageError, match="cannot register"):
        shell.run_line_magic("mlops_package", f"thing --name {unique_instance}_v1 --data-date 20240131")


def test_cell_magic_scopes_a_run_and_marks_it_failed_when_the_cell_raises(shell, unique_instance):
    shell.run_cell_magic("mlops_track", f"--experiment {unique_instance}", "ok_value = 41 + 1")
    assert shell.user_ns["ok_value"] == 42
    assert mlflow.active_run() is None
    experiment = mlflow.get_experiment_by_name(unique_instance)
    with pytest.raises(ZeroDivisionError):
        shell.run_cell_magic("mlops_track", f"--experiment {unique_instance}", "x = 1\n1 / 0")
    assert mlflow.active_run() is None
    runs = mlflow.search_runs([experiment.experiment_id], output_format="list", order_by=["start_time ASC"])
    assert [r.info.status for r in runs] == ["FINISHED", "FAILED"]


def test_end_with_status_and_resume(shell, unique_instance):
    shell.run_line_magic("mlops_track", f"--instance {unique_instance} --version v1 --data-date 20240131")
    first = mlflow.active_run().info.run_id
    shell.run_line_magic("mlops_track", f"--instance {unique_instance} --version v1 --data-date 20240131")
    assert mlflow.active_run().info.run_id == first  # same instance: the run is resumed
    shell.run_line_magic("mlops_track", f"--instance {unique_instance} --version v2 --data-date 20240131")
    second = mlflow.active_run().info.run_id
    assert second != first and _run(first).info.status == "FINISHED"
    shell.run_line_magic("mlops_track", "--status FAILED")
    assert _run(second).info.status == "FAILED"
    with pytest.raises(UsageError, match="no active run"):
        shell.run_line_magic("mlops_track", "--end")


def test_a_dead_tracking_server_is_a_one_line_usage_error(env_for, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    ip = InteractiveShell.instance()
    try:
        ip.run_line_magic("load_ext", "workbench")
        with pytest.raises(UsageError, match=r"no tracking server answers at http://127\.0\.0\.1:9"):
            ip.run_line_magic("mlops_track", "--instance churn")
        assert mlflow.active_run() is None
    finally:
        InteractiveShell.clear_instance()


def _magics(shell):
    return shell.magics_manager.registry["WorkbenchMagics"]


def test_package_input_as_numpy_array_gets_the_models_feature_names(shell, demo_data, unique_instance):
    frame = pd.read_csv(demo_data / "churn_20240131.csv")
    features = frame[["tenure_months", "monthly_charges"]]
    shell.user_ns.update(model=LogisticRegression().fit(features, frame.churned),
                         X=features.to_numpy())
    shell.run_line_magic("mlops_track", f"--instance {unique_instance} --version v1 --data-date 20240131")
    instance = shell.run_line_magic("mlops_package", "model --input X")
    loaded = mlflow.pyfunc.load_model(instance.uri)
    assert loaded.metadata.get_input_schema().input_names() == ["tenure_months", "monthly_charges"]


@pytest.mark.parametrize("value, message", [
    ("np.ones((5, 2))", "without column names"),   # fitted on an array: no true names exist
    ("np.ones((5, 3))", "has 3 columns"),
    ("np.ones(5)", "not a table"),
    ("[1, 2, 3]", "not a table"),
])
def test_package_input_that_is_no_frame_is_a_one_line_usage_error(shell, unique_instance, value,
                                                                  message):
    import numpy as np

    shell.user_ns.update(np=np, X=eval(value, {"np": np}),
                         named=LogisticRegression().fit(pd.DataFrame({"a": [0, 1, 0, 1], "b": [1, 0, 1, 0]}),
                                                        [0, 1, 0, 1]),
                         bare=LogisticRegression().fit(np.array([[0, 1], [1, 0], [0, 1], [1, 0]]),
                                                       [0, 1, 0, 1]))
    model = "bare" if "without" in message else "named"
    shell.run_line_magic("mlops_track", f"--instance {unique_instance} --version v1 --data-date 20240131")
    with pytest.raises(UsageError, match=message) as raised:
        shell.run_line_magic("mlops_package", f"{model} --input X")
    assert "\n" not in str(raised.value)
    # nothing registered
    assert not mlflow.MlflowClient().search_registered_models(f"name = '{unique_instance}'")


def test_package_with_the_server_gone_is_one_line_in_seconds(shell, unique_instance):
    import time

    shell.user_ns["model"] = LogisticRegression().fit(pd.DataFrame({"a": [0, 1]}), [0, 1])
    shell.run_line_magic("mlops_track", f"--instance {unique_instance} --version v1 --data-date 20240131")
    magics = _magics(shell)
    magics._settings = magics.settings.replace(tracking_uri="http://127.0.0.1:9")
    magics._registry = None
    started = time.monotonic()
    with pytest.raises(UsageError, match=r"no tracking server answers at http://127\.0\.0\.1:9") as raised:
        shell.run_line_magic("mlops_package", "model")
    assert time.monotonic() - started < 5
    assert "\n" not in str(raised.value)


def test_a_failing_cell_ends_the_tracked_run_failed(shell, unique_instance, capsys):
    shell.run_cell(f"%mlops_track --instance {unique_instance} --version v1 --data-date 20240131")
    run_id = mlflow.active_run().info.run_id
    result = shell.run_cell("%mlops_package nothing")  # a magic refusing, as in train.ipynb
    assert not result.success
    assert mlflow.active_run() is None
    assert _run(run_id).info.status == "FAILED"
    assert f"run {run_id} ended FAILED" in capsys.readouterr().out

    # A run the user started without %mlops_track is theirs: left RUNNING.
    own = mlflow.start_run(experiment_id=_run(run_id).info.experiment_id)
    assert not shell.run_cell("1 / 0").success
    assert mlflow.active_run() is not None and _run(own.info.run_id).info.status == "RUNNING"
    mlflow.end_run()


def test_ending_the_run_on_error_can_be_turned_off(shell, unique_instance):
    shell.run_cell("%config WorkbenchMagics.end_run_on_error = False")
    shell.run_cell(f"%mlops_track --instance {unique_instance}")
    run_id = mlflow.active_run().info.run_id
    assert not shell.run_cell("1 / 0").success
    assert _run(run_id).info.status == "RUNNING"
    shell.run_cell("%mlops_track --end")
    assert _run(run_id).info.status == "FINISHED"


def test_load_ext_after_the_kernel_preloaded_the_magics_is_silent(shell, capsys):
    magics = shell.magics_manager.registry["WorkbenchMagics"]
    shell.extension_manager.loaded.discard("workbench")  # as a kernel that preloaded it
    shell.extension_manager.load_extension("workbench.preload")
    capsys.readouterr()
    assert shell.run_cell("%load_ext workbench").success
    assert capsys.readouterr().out == ""
    assert shell.magics_manager.registry["WorkbenchMagics"] is magics  # not registered twice
    assert len([f for f in shell.events.callbacks["post_run_cell"]
                if getattr(f, "__self__", None) is magics]) == 1
