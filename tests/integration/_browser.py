"""Real-browser fixtures shared by the browser tests: headless Chromium (Debian's ``chromium``
and ``chromium-driver``, never a downloaded one) and ``workbench lab`` on a free port.

Outside CI a machine without Chromium skips these tests; with CI=true they fail instead, so a
CI run never passes without having driven the browser (.ci/install-browser installs it).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _processes import stop_session

from workbench.config import Settings
from workbench.pytest_plugin import free_port

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
WAIT = 120  # seconds: a cold JupyterLab, a kernel start and MLflow's import on 2 cores


def _missing(what: str) -> None:
    # CI must drive the browser: a missing one there is a failure, not a skip.
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing; CI installs it with .ci/install-browser")
    pytest.skip(f"{what} is missing; install it with .ci/install-browser")


@pytest.fixture
def webdriver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Headless Chromium driven by Debian's chromedriver; never selenium-manager."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            _missing(str(path))
    try:
        from selenium import webdriver as selenium_webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium (pip install 'mlops-workbench[test]')")
    # Both paths are given, so selenium has nothing to look up; offline in case it tries.
    monkeypatch.setenv("SE_OFFLINE", "true")
    profile = tempfile.mkdtemp(prefix="workbench-chromium-")
    options = selenium_webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1500,1100",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    service = Service(executable_path=str(CHROMEDRIVER),
                      log_output=str(Path(profile) / "driver.log"))
    driver = selenium_webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()
        process = service.process
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def lab(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """``workbench lab`` on a free port over a project folder: (base URL, token, project)."""
    project = tmp_path / "project"
    project.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "JUPYTER"))}
    env.update(
        WORKBENCH_HOME=str(tmp_path / ".workbench"),
        WORKBENCH_PROJECT_ROOT=str(project),
        MLFLOW_TRACKING_URI=settings.tracking_uri,
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
        JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "lab-settings"),
    )
    (tmp_path / "jupyter-config").mkdir()
    (tmp_path / "jupyter-config" / "jupyter_server_config.json").write_text(json.dumps(
        {"LabApp": {"check_for_updates_class": "jupyterlab.NeverCheckForUpdate"}}))
    # No "get notified about Jupyter news?" toast over the board in the screenshot.
    notification = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false"}))
    log_path = tmp_path / "lab.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "lab", "--port", str(port), "--no-platform"],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=project,
        )
    try:
        token = _token(log_path, port, process)
        yield f"http://127.0.0.1:{port}", token, project
    finally:
        stop_session(process, grace=30)


def _token(log_path: Path, port: int, process: subprocess.Popen) -> str:
    """The token JupyterLab prints once it serves (waits for it, at most WAIT seconds)."""
    import time

    pattern = re.compile(rf"http://127\.0\.0\.1:{port}/lab\?token=([0-9a-f]+)")
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and process.poll() is None:
        match = pattern.search(log_path.read_text(errors="replace"))
        if match:
            return match.group(1)
        time.sleep(0.5)
    pytest.fail(f"workbench lab printed no 127.0.0.1 URL with a token:\n"
                f"{log_path.read_text(errors='replace')[-3000:]}")
