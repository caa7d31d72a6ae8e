"""The magics' error boundary in a real IPython shell, with the library faked."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from mlflow.exceptions import MlflowException

from workbench import tracking
from workbench.config import Settings


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.delenv("WORKBENCH_DEBUG", raising=False)
    ip = InteractiveShell.instance()
    from workbench.magics import register

    register(ip, Settings.from_env(environ={"MLFLOW_TRACKING_URI": "http://127.0.0.1:5999"},
                                   cwd=tmp_path))
    yield ip
    InteractiveShell.clear_instance()


def _track_raises(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    def track(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(tracking, "track", track)


def test_mlflow_error_is_a_one_line_usage_error_naming_the_server(shell, monkeypatch):
    _track_raises(monkeypatch, MlflowException("quota exceeded", error_code="INTERNAL_ERROR"))
    with pytest.raises(UsageError) as raised:
        shell.run_line_magic("mlops_track", "--instance churn")
    message = str(raised.value)
    assert "\n" not in message and "http://127.0.0.1:5999" in message
    assert "%mlops_track" in message


def test_unexpected_error_is_one_line_saying_it_is_a_bug(shell, monkeypatch):
    _track_raises(monkeypatch, AttributeError("'NoneType' object has no attribute 'info'"))
    with pytest.raises(UsageError) as raised:
        shell.run_line_magic("mlops_track", "--instance churn")
    message = str(raised.value)
    assert "\n" not in message
    assert "AttributeError" in message and "bug" in message and "WORKBENCH_DEBUG=1" in message


def test_debug_lets_the_original_error_through(shell, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DEBUG", "1")
    _track_raises(monkeypatch, AttributeError("boom"))
    with pytest.raises(AttributeError, match="boom"):
        shell.run_line_magic("mlops_track", "--instance churn")


def test_the_users_own_cell_error_is_theirs(shell, monkeypatch):
    tracked = tracking.TrackedRun("run-1", "1", "x", "run", False, "http://ui")
    monkeypatch.setattr(tracking, "track", lambda *a, **k: tracked)
    ended: list[str] = []
    monkeypatch.setattr(tracking, "end_tracking", lambda status="FINISHED": ended.append(status))
    with pytest.raises(ZeroDivisionError):
        shell.run_cell_magic("mlops_track", "--experiment x", "1 / 0")
    assert ended == ["FAILED"]


def test_package_checks_the_server_before_registering(shell, monkeypatch):
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from workbench import client

    class Run:
        class info:
            run_id = "run-1"

    monkeypatch.setattr(tracking, "active_run", lambda: Run())
    monkeypatch.setattr(client, "answers", lambda uri, timeout=0: False)
    frame = pd.DataFrame({"a": [0.0, 1.0, 0.0, 1.0]})
    shell.user_ns.update(model=LogisticRegression().fit(frame, [0, 1, 0, 1]))
    with pytest.raises(UsageError, match=r"no tracking server answers at http://127\.0\.0\.1:5999"):
        shell.run_line_magic("mlops_package", "model --name churn_v1 --data-date 20240131")
