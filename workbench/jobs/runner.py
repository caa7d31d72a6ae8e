"""Run a notebook as a job: check, track, execute, keep the output, settle the run.

The order matters: parameters and the executor are checked before a run exists, so bad
input costs nothing; once the run exists, every way out (success, failing cell, timeout,
Ctrl-C, crash) leaves the output notebook logged and the run in a terminal status.
"""
from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from workbench import lineage
from workbench.config import Settings
from workbench.errors import JobFailed, JobKilled, TrackingError, WorkbenchError
from workbench.jobs.executors import JobTimeout, executors
from workbench.jobs.params import check_parameters, declared_parameters, parse_literal
from workbench.jobs.spec import JobResult, JobSpec, PreparedJob
from workbench.jobs.tracking import ClientTracker, JobTracker
from workbench.tracking import make_client, require_server, run_ui_url

if TYPE_CHECKING:
    from mlflow import MlflowClient

Progress = Callable[[str], None]
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
            the output notebook shows the error.
        JobKilled: timeout or interrupt; the run is KILLED.
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
            **executor_tags}
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
    status, failure = "FINISHED", None
    try:
        extra_tags = executor.execute(job, progress, show_progress)
        if extra_tags:
            tracker.set_tags(run_id, extra_tags)
    except JobTimeout as exc:
        status, failure = "KILLED", str(exc)
    except KeyboardInterrupt:
        status, failure = "KILLED", "interrupted"
    except Exception as exc:
        status, failure = "FAILED", _describe(exc)
    duration = time.monotonic() - started

    removed = tracker.finish(run_id, output, status)
    if status == "FINISHED":
        return JobResult(run_id, experiment_id, status, output, duration, url)

    removed_note = f"; removed the model version(s) it registered: {', '.join(removed)}" if removed else ""
    message = (
        f"job {notebook.name} {'was killed' if status == 'KILLED' else 'failed'}: {failure}; "
        f"run {run_id} is {status}; executed notebook: {output}{removed_note}"
    )
    raise (JobKilled if status == "KILLED" else JobFailed)(message, output, run_id)


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
