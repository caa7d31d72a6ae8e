"""End to end in a real browser: ``workbench lab`` with the Workbench sidebar, headless
Chromium (Debian's ``chromium`` and ``chromium-driver``) opening ``train.ipynb``, Run as job
with ``version = v3``, the job followed to FINISHED in the jobs panel, ``churn_v3_...`` found
in the models panel, its lineage opened, and a promotion to challenger with a reason; the
registry is checked with MlflowClient afterwards. Screenshots land in tests/artifacts/ (the
README shows two of them, copied to docs/images/).
"""
from __future__ import annotations

import shutil

import mlflow
import pytest
from _browser import ARTIFACTS, WAIT

from workbench.registry import Registry
from workbench.resources import shipped

pytestmark = [pytest.mark.integration, pytest.mark.browser]

JOB_WAIT = 300  # seconds: a kernel start, MLflow's import and a training on 2 cores


def test_run_as_job_then_promote_from_the_sidebar(settings, registry: Registry, lab, webdriver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, token, project = lab
    (project / "notebooks").mkdir()
    shutil.copy(shipped("notebooks") / "train.ipynb", project / "notebooks" / "train.ipynb")
    driver = webdriver
    wait = WebDriverWait(driver, WAIT)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def css(selector: str, timeout: float = WAIT):
        return WebDriverWait(driver, timeout).until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, selector)))

    def click(selector: str, timeout: float = WAIT) -> None:
        WebDriverWait(driver, timeout).until(
            ec.element_to_be_clickable((By.CSS_SELECTOR, selector))).click()

    try:
        driver.get(f"{base}/lab/tree/notebooks/train.ipynb?token={token}")
        wait.until(ec.presence_of_element_located(
            (By.XPATH, "//*[contains(@class, 'jp-StatusBar')]//*[contains(text(), 'Idle')]")))

        # Run as job from the notebook's toolbar: the dialog is pre-filled from the
        # parameters cell, one typed field per parameter.
        click(".jp-NotebookPanel-toolbar [data-command='workbench:run-as-job']")
        version = css("#wb-job-dialog input[name='version']")
        assert version.get_attribute("value") == "v1"
        assert css("#wb-job-dialog input[name='test_size']").get_attribute("data-type") == "float"
        version.send_keys(Keys.CONTROL, "a")
        version.send_keys("v3")
        driver.save_screenshot(str(ARTIFACTS / "lab-run-as-job.png"))
        click(".jp-Dialog .jp-mod-accept")

        # The sidebar opens on the job; it ends FINISHED in the jobs panel, log and all.
        css("#mlops-workbench-sidebar .wb-jobs-table")
        # A wider sidebar for the screenshots, as a user would drag it.
        from selenium.webdriver.common.action_chains import ActionChains

        handle = driver.find_element(By.CSS_SELECTOR, "#jp-main-split-panel > .lm-SplitPanel-handle")
        ActionChains(driver).drag_and_drop_by_offset(handle, 180, 0).perform()
        WebDriverWait(driver, JOB_WAIT).until(ec.presence_of_element_located(
            (By.CSS_SELECTOR, ".wb-jobs-table tr[data-status='FINISHED']")))
        css(".wb-job-detail[data-status='FINISHED']", timeout=30)
        log = css(".wb-job-detail .wb-log").text
        assert "-> run" in log

        # The models panel lists the new registered model once the job is done (the panel
        # reloads when it sees a job end), and shows the new instance.
        from selenium.webdriver.support.ui import Select

        wait.until(ec.presence_of_element_located(
            (By.CSS_SELECTOR, ".wb-model-select option[value='churn']")))
        Select(css(".wb-model-select")).select_by_value("churn")
        row = css(".wb-models-table tr[data-instance^='churn_v3_']", timeout=60)
        name = row.get_attribute("data-instance")
        driver.save_screenshot(str(ARTIFACTS / "lab-sidebar.png"))

        # Its lineage: data -> notebook -> run -> model version -> aliases -> drift.
        row.find_element(By.CSS_SELECTOR, "[data-action='lineage']").click()
        chain = css(".wb-lineage-chain")
        kinds = [li.get_attribute("data-kind")
                 for li in chain.find_elements(By.CSS_SELECTOR, ".wb-lineage-step")]
        assert kinds == ["data", "notebook", "run", "model", "aliases", "drift"]
        assert "churn_20240131.csv" in chain.text and name in chain.text
        driver.save_screenshot(str(ARTIFACTS / "lab-lineage.png"))

        # Promote it to challenger with a reason, from the sidebar.
        row = css(f".wb-models-table tr[data-instance='{name}']")
        row.find_element(By.CSS_SELECTOR, "[data-action='promote-challenger']").click()
        change = css(".jp-Dialog .wb-promotion-change").text
        assert change.endswith(f"-> {name}"), change
        css(".jp-Dialog .wb-reason").send_keys("try v3 against the champion")
        click(".jp-Dialog .jp-mod-accept")
        css(f".wb-models-table tr[data-instance='{name}'] .wb-badge-challenger", timeout=60)
        driver.save_screenshot(str(ARTIFACTS / "lab-promoted.png"))
    except Exception:
        driver.save_screenshot(str(ARTIFACTS / "lab-failure.png"))
        raise

    client = mlflow.MlflowClient(settings.tracking_uri)
    version = client.get_model_version_by_alias("churn", "challenger")
    assert version.tags["model_name"] == name
    assert version.run_id is not None and client.get_run(version.run_id).info.status == "FINISHED"
    history = registry.history("churn", "challenger")
    assert history[-1].to_name == name and history[-1].reason == "try v3 against the champion"
