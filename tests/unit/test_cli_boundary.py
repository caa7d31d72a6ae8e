"""The CLI's error boundary: every error one line on stderr, a traceback only with --debug."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from mlflow.exceptions import MlflowException

from workbench import cli
from workbench.errors import ModelNotFound


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    for name in ("WORKBENCH_PROJECT_ROOT", "WORKBENCH_PORT", "WORKBENCH_HOST"):
        monkeypatch.delenv(name, raising=False)
    # setenv, not delenv: `--debug` sets the variable and monkeypatch must take it away again
    # (and so for what main() sets by default).
    monkeypatch.setenv("WORKBENCH_DEBUG", "0")
    for name in ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"):
        monkeypatch.setenv(name, os.environ.get(name, ""))
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    return tmp_path


@pytest.fixture
def command_raising(monkeypatch: pytest.MonkeyPatch) -> Callable[[BaseException], None]:
    """Add a `workbench boom` command that raises the given exception."""
    def add(error: BaseException) -> None:
        @click.command("boom")
        def boom() -> None:
            raise error

        monkeypatch.setitem(cli.cli.commands, "boom", boom)

    return add


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_mlflow_error_is_one_line_naming_the_server(project, command_raising, capsys):
    command_raising(MlflowException("INTERNAL_ERROR: database is locked",
                                    error_code="INTERNAL_ERROR"))
    status, out, err = run(["boom"], capsys)
    assert status != 0
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "http://127.0.0.1:5999" in err and "workbench boom" in err
    assert "Traceback" not in err and out == ""


def test_connection_error_says_the_server_is_down_and_how_to_start_it(project, command_raising,
                                                                         capsys):
    import requests

    command_raising(requests.exceptions.ConnectionError("Max retries exceeded with url"))
    status, _, err = run(["boom"], capsys)
    assert status != 0 and err.count("\n") == 1
    assert "no tracking server answers at http://127.0.0.1:5999" in err
    assert "MLFLOW_TRACKING_URI" in err  # the hint for a non-embedded server


def test_workbench_error_keeps_its_message_and_exit_code(project, command_raising, capsys):
    command_raising(ModelNotFound("no model churn_v9_20240131; see `workbench models list`"))
    status, _, err = run(["boom"], capsys)
    assert status == ModelNotFound.exit_code
    assert err == "error: no model churn_v9_20240131; see `workbench models list`\n"


def test_unexpected_error_is_one_line_saying_it_is_a_bug(project, command_raising, capsys):
    command_raising(KeyError("oops"))
    status, _, err = run(["boom"], capsys)
    assert status != 0 and err.count("\n") == 1
    assert "KeyError" in err and "bug" in err and "--debug" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_debug_shows_the_traceback(project, command_raising, capsys, monkeypatch, how):
    command_raising(MlflowException("boom", error_code="INTERNAL_ERROR"))
    if how == "environment":
        monkeypatch.setenv("WORKBENCH_DEBUG", "1")
        argv = ["boom"]
    else:
        argv = ["--debug", "boom"]
    status, _, err = run(argv, capsys)
    assert status != 0
    assert "Traceback (most recent call last)" in err
    assert err.rstrip().splitlines()[-1].startswith("error: ")


def test_bad_setting_is_one_line(project, command_raising, capsys, monkeypatch):
    command_raising(RuntimeError("not reached"))
    monkeypatch.setenv("WORKBENCH_PORT", "five")
    status, _, err = run(["predict", "churn@champion", "--input", "a.csv", "--output", "b.csv"],
                         capsys)
    assert status != 0 and err.count("\n") == 1
    assert "WORKBENCH_PORT" in err and "an integer" in err


def test_unknown_setting_is_a_warning_line(project, capsys, monkeypatch):
    monkeypatch.setenv("WORKBENCH_PRIMARY_METRC", "f1")
    status, _, err = run(["predict", "x", "--input", "a.csv", "--output", "b.csv"], capsys)
    assert "warning: WORKBENCH_PRIMARY_METRC" in err and "WORKBENCH_PRIMARY_METRIC" in err
    assert status != 0  # and the (down) server is still said


@pytest.mark.parametrize("argv", [
    ["models", "list"],
    ["models", "show", "churn@champion"],
    ["models", "compare", "churn"],
    ["models", "promote", "churn_v1_20240131"],
    ["predict", "churn@champion", "--input", "a.csv", "--output", "b.csv"],
    ["package", "churn@champion"],
    ["monitor", "drift", "churn@champion"],
    ["monitor", "compare", "churn@champion", "churn@challenger"],
    ["monitor", "replay", "churn@challenger"],
    ["serve", "churn@champion"],
])
def test_commands_that_need_the_server_check_it_first(project, capsys, monkeypatch, argv):
    from workbench import client

    probed: list[str] = []

    def down(uri: str, timeout: float = client.PROBE_TIMEOUT_S) -> bool:
        probed.append(uri)
        return False

    monkeypatch.setattr(client, "answers", down)
    status, out, err = run(argv, capsys)
    assert probed == ["http://127.0.0.1:5999"]
    assert status == (2 if argv[0] == "monitor" else 1) and out == ""
    assert err == ("error: no tracking server answers at http://127.0.0.1:5999; start the "
                   "platform that serves it (`workbench platform up --compose`) or point "
                   "MLFLOW_TRACKING_URI at one that runs\n")
    assert not (project / "b.csv").exists()


def test_help_works_with_the_server_down(project, capsys, monkeypatch):
    from workbench import client

    monkeypatch.setattr(client, "answers", lambda uri, timeout=0: False)
    cli.main(["models", "list", "--help"])  # returns: no error, no exit status
    out, err = capsys.readouterr()
    assert "Usage" in out and err == ""


def test_mlflow_http_retries_are_short_unless_the_user_set_them():
    import os
    import subprocess
    import sys

    # Read back through MLflow's own parsers: a value of the wrong type would break every call.
    code = ("import workbench; from mlflow import environment_variables as e; "
            "e.MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get(); e.MLFLOW_HTTP_REQUEST_BACKOFF_JITTER.get(); "
            "print(e.MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), e.MLFLOW_HTTP_REQUEST_TIMEOUT.get())")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_")}
    ours = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.split()
    assert int(ours[0]) <= 3 and float(ours[1]) <= 30
    theirs = subprocess.run([sys.executable, "-c", code],
                            env={**env, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "9"},
                            capture_output=True, text=True, check=True).stdout.split()
    assert theirs[0] == "9"
