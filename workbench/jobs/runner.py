"""Run a notebook as a job: check, track, execute, keep the output, settle the run.

The order matters: parameters and the executor are checked before a run exists, so bad
input costs nothing; once the run exists, every way out (success, failing cell, timeout,
Ctrl-C, crash) keeps the output notebook on disk and tries every settling step: log the
notebook, set the terminal status, remove what a failed job registered. What the job did
is what is reported; a settling step that fails is added to that message, never put in
its place.
"""
from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench import lineage
from workbench.config import Settings
from workbench.errors import JobFailed, JobKilled, TrackingError, WorkbenchError
from workbench.jobs.executors import executors
from workbench.jobs.params import check_parameters, declared_parameters, parse_literal
from workbench.jobs.spec import JobResult, JobSpec, JobTimeout, PreparedJob
from workbench.jobs.tracking import ClientTracker, JobTracker, Settlement
from workbench.progress import Progress
from workbench.tracking import make_client, require_server, run_ui_url

if TYPE_CHECKING:
    from mlflow import MlflowClient

JOB_TAG = "workbench.job"


def run_job(
    spec: JobSpec,
    settings: Settings,
    *,
    client: MlflowClient | None = None,
    tracker: JobTracker | None = None,
    progress: Progress = lambda _: None,
    show_progress: bool = False,
) -> JobResult:
    """Execute ``spec`` and return its result.

    The job's run is kept through ``tracker`` (an MlflowClient in this process by default;
    the CLI passes a BackgroundTracker).

    Raises:
        ParameterError: parameters do not match the notebook (nothing was started).
        ConfigError: unknown executor, or one that cannot run this job (nothing was started).
        DockerError: the docker executor has no engine or image (nothing was started).
        TrackingError: the tracking server cannot be reached (nothing was started).
        JobFailed: a cell raised; the run is FAILED, models it registered are removed,
            the output notebook shows the error. Also when the job ran to the end but its
            run could not be finished (the message says what failed and where the output
            notebook is).
        JobKilled: timeout or interrupt; the run is KILLED and what it registered removed.

    Whichever is raised chains the job's own exception (``__cause__``); a settling step that
    failed is named in the message after the job's failure.
    """
    notebook = spec.notebook.resolve()
    declared = declared_parameters(notebook)
    parameters = check_parameters(notebook, spec.parameters, declared)
    executor = executors.get(spec.executor)
    experiment = spec.experiment or _default_experiment(declared, parameters, settings)
    require_server(settings)
    executor_tags = executor.check(spec, settings)
    if tracker is None:
        tracker = ClientTracker(client if client is not None else make_client(settings))

    tags = {JOB_TAG: "true", **lineage.notebook_tags(notebook), **lineage.runtime_tags(executor.name),
            **executor_tags, **spec.tags}
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        run_id, experiment_id = tracker.start(experiment, f"{notebook.stem}-{stamp}", tags, parameters)
    except Exception as exc:
        raise TrackingError(
            f"cannot create the job's run at {settings.tracking_uri} ({_describe(exc)}); "
            "start the platform with `workbench platform up` or set MLFLOW_TRACKING_URI"
        ) from exc
    output = settings.jobs_dir / notebook.stem / f"{stamp}_{run_id[:8]}.ipynb"
    output.parent.mkdir(parents=True, exist_ok=True)
    job = PreparedJob(
        notebook=notebook,
        output_notebook=output,
        parameters=parameters,
        env={
            **settings.as_env(),
            "MLFLOW_RUN_ID": run_id,
            "MLFLOW_EXPERIMENT_ID": experiment_id,
            "WORKBENCH_EXECUTOR": executor.name,
            "WORKBENCH_NOTEBOOK": str(notebook),
        },
        cwd=settings.project_root,
        timeout=spec.timeout or settings.job_timeout,
        kernel_name=spec.kernel_name,
        image=spec.image,
    )
    url = run_ui_url(settings, experiment_id, run_id)
    progress(f"job {notebook.name} -> run {run_id} ({executor.name}); output: {output}")

    started = time.monotonic()
    status, failure = "FINISHED", ""
    cause: BaseException | None = None
    extra_tags: dict[str, str] = {}
    try:
        extra_tags = executor.execute(job, progress, show_progress) or {}
    except JobTimeout as exc:
        status, failure, cause = "KILLED", str(exc), exc
    except KeyboardInterrupt as exc:
        status, failure, cause = "KILLED", "interrupted", exc
    except Exception as exc:
        status, failure, cause = "FAILED", _describe(exc), exc
    duration = time.monotonic() - started

    settlement = _settle(tracker, settings, run_id, output, status, extra_tags)
    if status == "FINISHED" and settlement.terminated:
        for problem in settlement.problems:  # e.g. the notebook could not be uploaded
            progress(f"warning: {problem}")
        return JobResult(run_id, experiment_id, status, output, duration, url)
    message = _message(notebook, run_id, output, status, failure, settlement)
    raise (JobKilled if status == "KILLED" else JobFailed)(message, output, run_id) from cause


def _settle(tracker: JobTracker, settings: Settings, run_id: str, output: Path, status: str,
            tags: dict[str, str]) -> Settlement:
    """Finish the run; never raises: what cannot be done is in the settlement's problems."""
    try:
        # A server that died during the job: say so at once, not after MLflow's retries.
        require_server(settings)
        return tracker.finish(run_id, output, status, tags)
    except Exception as exc:
        return Settlement(problems=(_describe(exc),))


def _message(notebook: Path, run_id: str, output: Path, status: str, failure: str,
             settlement: Settlement) -> str:
    if status == "FINISHED":
        head = f"job {notebook.name} ran to the end, but its run {run_id} could not be finished"
    else:
        verb = "was killed" if status == "KILLED" else "failed"
        state = f"is {status}" if settlement.terminated else f"could not be marked {status}"
        head = f"job {notebook.name} {verb}: {failure}; run {run_id} {state}"
    problems = f" ({'; '.join(settlement.problems)})" if settlement.problems else ""
    removed = (f"; removed the model version(s) it registered: {', '.join(settlement.removed)}"
               if settlement.removed else "")
    kept = (f"executed notebook: {output}" if output.is_file()
            else f"no executed notebook was written (expected at {output})")
    return f"{head}{problems}; {kept}{removed}"


def _default_experiment(declared: dict[str, dict[str, Any]], parameters: dict[str, Any],
                        settings: Settings) -> str:
    # One experiment per model instance: the notebook's `instance` parameter names it.
    if isinstance(parameters.get("instance"), str):
        return parameters["instance"]
    default = declared.get("instance", {}).get("default")
    value = parse_literal(default) if isinstance(default, str) else None
    return value if isinstance(value, str) and value else settings.experiment


def _describe(exc: BaseException) -> str:
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        cell = getattr(exc, "exec_count", None)
        where = f"cell [{cell}] raised " if cell else ""
        return f"{where}{ename}: {str(evalue).strip().splitlines()[0] if evalue else ''}".strip()
    if isinstance(exc, WorkbenchError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0] if text else ''}"
