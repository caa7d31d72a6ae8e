"""End to end in a real browser: ``workbench lab`` (JupyterLab on 127.0.0.1, token auth) with
the session's tracking server, a notebook that shows the ModelBoard, headless Chromium
(Debian's ``chromium`` and ``chromium-driver``) clicking promote and confirm, and the
registry checked afterwards. Screenshots land in tests/artifacts/.

Outside CI a machine without Chromium skips this test; with CI=true it fails instead, so a
CI run never passes without having driven the browser (.ci/install-browser installs it).
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from _browser import ARTIFACTS, WAIT

from workbench.monitoring.service import check_model_drift
from workbench.naming import ModelName
from workbench.registry import AUDIT_PREFIX, Registry

pytestmark = [pytest.mark.integration, pytest.mark.browser]

INSTANCE = "churn-board"  # one name for the screenshot to read well; only this test uses it


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
