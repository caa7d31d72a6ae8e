"""End to end in a real browser: ``workbench lab`` (JupyterLab on 127.0.0.1, token auth) with
the session's tracking server, a notebook that shows the ModelBoard, headless Chromium
(Debian's ``chromium`` and ``chromium-driver``) clicking promote and confirm, and the
registry checked afterwards. Screenshots land in tests/artifacts/.

Outside CI a machine without Chromium skips this test; with CI=true it fails instead, so a
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

import nbformat
import pytest
from _processes import stop_session

from workbench.config import Settings
from workbench.monitoring.service import check_model_drift
from workbench.naming import ModelName
from workbench.pytest_plugin import free_port
from workbench.registry import AUDIT_PREFIX, Registry

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
INSTANCE = "churn-board"  # one name for the screenshot to read well; only this test uses it
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


def _notebook(project: Path) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (workbench)",
                                       "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(
        "from workbench.widgets import ModelBoard\n\n"
        f'ModelBoard("{INSTANCE}")'
    )]
    path = project / "promote.ipynb"
    nbformat.write(notebook, path)
    return path


def test_promote_from_the_board_in_jupyterlab(settings, registry: Registry, register, lab,
                                              webdriver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    v1 = register(ModelName(INSTANCE, "v1", "20240131"), 0.8123,
                  extra={"f1": 0.6012, "accuracy": 0.7710})
    v2 = register(ModelName(INSTANCE, "v2", "20240131"), 0.8391,
                  extra={"f1": 0.6408, "accuracy": 0.7925})
    v3 = register(ModelName(INSTANCE, "v2", "20240229"), 0.8302,
                  extra={"f1": 0.6350, "accuracy": 0.7874})
    registry.promote(v1, "champion", reason="first model", by="alice")
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(5)
    # Real drift checks give the drift column its values: v1 on like data, v3 on shifted data.
    for instance, shift in ((v1, 0.0), (v3, 2.5)):
        check_model_drift(instance, settings, registry=registry,
                          current=pd.DataFrame({"a": rng.normal(shift, 1, 400),
                                                "b": rng.normal(shift, 1, 400)}),
                          report_dir=settings.home / "browser-drift" / str(instance.number))

    base, token, project = lab
    _notebook(project)
    driver = webdriver
    wait = WebDriverWait(driver, WAIT)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        driver.get(f"{base}/lab/tree/promote.ipynb?token={token}")
        # The kernel is up once the status bar says so; then run the cell as a user would.
        wait.until(ec.presence_of_element_located(
            (By.XPATH, "//*[contains(@class, 'jp-StatusBar')]//*[contains(text(), 'Idle')]")))
        editor = wait.until(ec.element_to_be_clickable(
            (By.CSS_SELECTOR, ".jp-Notebook .jp-CodeCell .cm-content")))
        editor.click()
        editor.send_keys(Keys.SHIFT, Keys.ENTER)

        wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".workbench-model-board")))
        select = wait.until(ec.element_to_be_clickable(
            (By.CSS_SELECTOR, f".workbench-select-v{v2.number} input")))
        select.click()
        wait.until(ec.text_to_be_present_in_element(
            (By.CSS_SELECTOR, ".workbench-comparison"), f"{v2.full_name} vs champion"))
        promote = wait.until(ec.element_to_be_clickable(
            (By.CSS_SELECTOR, ".workbench-promote-champion")))
        promote.click()
        wait.until(ec.text_to_be_present_in_element(
            (By.CSS_SELECTOR, ".workbench-confirm-text"),
            f"champion: {v1.full_name} -> {v2.full_name}"))
        reason = driver.find_element(By.CSS_SELECTOR, ".workbench-reason input")
        reason.send_keys("best roc_auc on January")
        driver.save_screenshot(str(ARTIFACTS / "model-board.png"))

        driver.find_element(By.CSS_SELECTOR, ".workbench-confirm-button").click()
        wait.until(ec.text_to_be_present_in_element(
            (By.CSS_SELECTOR, ".workbench-message"), f"-> {v2.full_name}"))
        driver.save_screenshot(str(ARTIFACTS / "model-board-promoted.png"))
    except Exception:
        driver.save_screenshot(str(ARTIFACTS / "model-board-failure.png"))
        (ARTIFACTS / "model-board-failure.html").write_text(driver.page_source)
        raise

    champion = registry.resolve(f"{INSTANCE}@champion")
    assert champion.number == v2.number
    tags = champion.tags
    assert tags[f"{AUDIT_PREFIX}.champion.reason"] == "best roc_auc on January"
    assert tags[f"{AUDIT_PREFIX}.champion.replaced"] == v1.full_name
    assert tags[f"{AUDIT_PREFIX}.champion.override"] == "-"
    assert tags[f"{AUDIT_PREFIX}.champion.by"] and tags[f"{AUDIT_PREFIX}.champion.at"]
    assert f"{AUDIT_PREFIX}.champion.retired_at" in registry.resolve(str(v1.full_name)).tags
    assert (ARTIFACTS / "model-board.png").stat().st_size > 10_000
