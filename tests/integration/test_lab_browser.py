"""End to end in a real browser: ``workbench lab`` with the Workbench sidebar, headless
Chromium (Debian's ``chromium`` and ``chromium-driver``) opening ``train.ipynb``, Run as job
from the file browser's context menu (the dialog for that file), then from the notebook's
toolbar with ``version = v3``, the job followed to FINISHED in the jobs panel, ``churn_v3_...``
found in the models panel, its lineage opened, a promotion to challenger with a reason, two
runs compared, and the project's policy paused in the Schedules panel; the registry and the
schedule store are checked with the library afterwards. Screenshots land in tests/artifacts/
(the README shows some of them, copied to docs/images/).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pytest
from _browser import ARTIFACTS, WAIT

from workbench.config import Settings
from workbench.policy.scheduler import list_schedules
from workbench.registry import Registry
from workbench.resources import shipped

pytestmark = [pytest.mark.integration, pytest.mark.browser]

JOB_WAIT = 300  # seconds: a kernel start, MLflow's import and a training on 2 cores


POLICY = Path(__file__).resolve().parents[2] / "policies" / "churn.yaml"


def _two_runs(settings: Settings) -> list[str]:
    """Two finished runs that differ in one parameter and one metric, to compare."""
    client = mlflow.MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.experiment)
    experiment_id = (experiment.experiment_id if experiment is not None
                     else client.create_experiment(settings.experiment))
    ids = []
    for name, algorithm, auc in (("compare-a", "lr", 0.71), ("compare-b", "hgb", 0.78)):
        run = client.create_run(experiment_id, run_name=name)
        client.log_param(run.info.run_id, "algorithm", algorithm)
        client.log_param(run.info.run_id, "seed", "42")
        client.log_metric(run.info.run_id, "roc_auc", auc)
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    return ids


def test_run_as_job_then_promote_from_the_sidebar(settings, registry: Registry, lab, webdriver,
                                                  tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, token, project = lab
    (project / "notebooks").mkdir()
    shutil.copy(shipped("notebooks") / "train.ipynb", project / "notebooks" / "train.ipynb")
    (project / "policies").mkdir()
    shutil.copy(POLICY, project / "policies" / "churn.yaml")
    compared = _two_runs(settings)
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

        # Run as job from the file browser's context menu: the dialog of the file clicked
        # (cancelled here; the toolbar's below runs the job, through the same command).
        from selenium.webdriver.common.action_chains import ActionChains

        notebook = ("//li[contains(@class, 'jp-DirListing-item')][@data-file-type='notebook']"
                    "[.//*[text()='train.ipynb']]")
        folder = "//li[contains(@class, 'jp-DirListing-item')][.//*[text()='notebooks']]"
        listing = wait.until(ec.presence_of_element_located((By.XPATH, f"{notebook} | {folder}")))
        if listing.get_attribute("data-file-type") != "notebook":  # the browser is at the root
            ActionChains(driver).double_click(listing).perform()
        item = wait.until(ec.visibility_of_element_located((By.XPATH, notebook)))
        ActionChains(driver).context_click(item).perform()
        click(".lm-Menu-item[data-command='workbench:run-as-job']")
        css("#wb-job-dialog input[name='version']")
        title = css(".jp-Dialog .jp-Dialog-header").text
        assert "Run train.ipynb as a job" in title, title
        click(".jp-Dialog .jp-mod-reject")
        wait.until(ec.invisibility_of_element_located((By.CSS_SELECTOR, ".jp-Dialog")))

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
        # The platform's status: the tracking server answers.
        assert settings.tracking_uri in css("#wb-status .wb-status-line.wb-status-ok").text
        # A wider sidebar for the screenshots, as a user would drag it.
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

        # Compare two runs: tick both, the parameter and metric that differ stand out.
        for run_id in compared:
            box = css(f".wb-runs-table tr[data-run-id='{run_id}'] .wb-compare-box")
            driver.execute_script("arguments[0].scrollIntoView()", box)
            box.click()
        comparison = css(".wb-compare-table")
        differs = [e.text for e in comparison.find_elements(By.CSS_SELECTOR, ".wb-differs")]
        assert differs == ["param algorithm", "metric roc_auc"], differs

        # The Schedules panel: the project's policy, its next fire times; pause one, and
        # Run now asks first (declined here: test_lab_schedules runs one).
        drift = css("#wb-schedules tr[data-schedule='churn.drift']")
        driver.execute_script("arguments[0].scrollIntoView()", css("#wb-schedules"))
        assert css("#wb-schedules tr[data-schedule='churn.batch']").get_attribute(
            "data-paused") == "false"
        drift.find_element(By.CSS_SELECTOR, "[data-action='pause-schedule']").click()
        css("#wb-schedules tr[data-schedule='churn.drift'][data-paused='true']", timeout=60)
        click("#wb-schedules tr[data-schedule='churn.batch'] [data-action='run-now']")
        assert "Run churn.batch now?" in css(".jp-Dialog .jp-Dialog-header").text
        click(".jp-Dialog .jp-mod-reject")
        wait.until(ec.invisibility_of_element_located((By.CSS_SELECTOR, ".jp-Dialog")))
        driver.execute_script("arguments[0].scrollIntoView()", css("#wb-schedules"))
        driver.save_screenshot(str(ARTIFACTS / "lab-schedules.png"))
    except Exception:
        driver.save_screenshot(str(ARTIFACTS / "lab-failure.png"))
        raise

    client = mlflow.MlflowClient(settings.tracking_uri)
    version = client.get_model_version_by_alias("churn", "challenger")
    assert version.tags["model_name"] == name
    assert version.run_id is not None and client.get_run(version.run_id).info.status == "FINISHED"
    history = registry.history("churn", "challenger")
    assert history[-1].to_name == name and history[-1].reason == "try v3 against the champion"
    lab_settings = Settings.from_env(environ={"WORKBENCH_HOME": str(tmp_path / ".workbench"),
                                              "WORKBENCH_PROJECT_ROOT": str(project),
                                              "MLFLOW_TRACKING_URI": settings.tracking_uri})
    assert [(j.id, j.paused) for j in list_schedules(lab_settings)] == [
        ("churn.batch", False), ("churn.drift", True)]
