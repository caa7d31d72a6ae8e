"""Runs and their lineage tags, over an MlflowClient built from the settings.

Two ways in: the job runner drives runs through the client (it owns the run's life), the
notebook side (``%mlops_track``) uses MLflow's fluent API because autologging attaches to
the fluent active run. A job hands its run to the notebook through ``MLFLOW_RUN_ID``, so
the notebook resumes the job's run instead of starting another.
"""
from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench import client, lineage
from workbench.config import Settings
from workbench.errors import TrackingError, TrackingNotFound

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

INSTANCE_TAG = "workbench.instance"
MODEL_VERSION_TAG = "workbench.model_version"
DATA_DATE_TAG = "workbench.data_date"
TERMINAL_STATUSES = ("FINISHED", "FAILED", "KILLED")


def make_client(settings: Settings) -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def require_server(settings: Settings) -> None:
    """Fail in one line, at once, when an HTTP tracking server does not answer.

    Kept here for the callers that import it from ``tracking``; see :mod:`workbench.client`.

    Raises:
        TrackingError: the server does not answer ``/health``.
    """
    client.require_server(settings)


def ensure_experiment(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created when missing (restored when deleted)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(name)
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id


def start_run(
    client: MlflowClient,
    experiment: str,
    run_name: str | None,
    tags: Mapping[str, str],
    params: Mapping[str, Any] | None = None,
) -> str:
    """Create a RUNNING run with tags and params; returns its id."""
    run = client.create_run(ensure_experiment(client, experiment), run_name=run_name, tags=dict(tags))
    if params:
        from mlflow.entities import Param

        client.log_batch(
            run.info.run_id, params=[Param(str(k), _param_text(v)) for k, v in params.items()]
        )
    return run.info.run_id


def _param_text(value: Any) -> str:
    # MLflow caps a param value at 6000 characters; a long list is still worth recording.
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


def run_ui_url(settings: Settings, experiment_id: str, run_id: str) -> str:
    return f"{settings.tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


@dataclass(frozen=True)
class RunSummary:
    """One run of an experiment as the faces show it.

    Attributes:
        notebook: the notebook that ran (``workbench.notebook.path``), if recorded.
        output_notebook: a job's executed notebook (``workbench.job.output_notebook``).
        url: the run's page in the MLflow UI.
        tags: the run's tags without MLflow's own (``mlflow.*``): lineage, naming, job.
    """

    run_id: str
    run_name: str
    status: str
    started_at: dt.datetime | None
    params: dict[str, str]
    metrics: dict[str, float]
    notebook: str | None
    output_notebook: str | None
    url: str
    experiment_id: str = ""
    ended_at: dt.datetime | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO 8601 strings.

        Built field by field: ``dataclasses.asdict`` deep-copies every params, metrics and
        tags dict, which was most of what a page of the runs route spent of its own.
        """
        return {
            "run_id": self.run_id, "run_name": self.run_name, "status": self.status,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "params": dict(self.params), "metrics": dict(self.metrics),
            "notebook": self.notebook, "output_notebook": self.output_notebook, "url": self.url,
            "experiment_id": self.experiment_id,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "tags": dict(self.tags),
        }


@dataclass(frozen=True)
class RunPage:
    """One page of runs and the token of the next page (None on the last)."""

    runs: list[RunSummary]
    next_page_token: str | None


def _summary(run: Any, settings: Settings) -> RunSummary:
    info, data = run.info, run.data
    return RunSummary(
        run_id=info.run_id,
        run_name=info.run_name or info.run_id,
        status=info.status,
        started_at=_time(info.start_time),
        params=dict(data.params),
        metrics=dict(data.metrics),
        notebook=data.tags.get(lineage.NOTEBOOK_PATH),
        output_notebook=data.tags.get(lineage.OUTPUT_NOTEBOOK),
        url=run_ui_url(settings, info.experiment_id, info.run_id),
        experiment_id=info.experiment_id,
        ended_at=_time(info.end_time),
        tags={k: v for k, v in data.tags.items() if not k.startswith("mlflow.")},
    )


def _time(millis: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(millis / 1000, tz=dt.timezone.utc) if millis else None


def _experiment_ids(client: MlflowClient, settings: Settings,
                    experiments: Sequence[str] | None) -> list[str]:
    """Ids of the named experiments (all active ones when None).

    Raises:
        TrackingError: no experiment has one of the names.
    """
    if experiments is None:
        return [e.experiment_id for e in client.search_experiments()]
    ids = []
    for name in experiments:
        found = client.get_experiment_by_name(name)
        if found is None:
            names = sorted(e.name for e in client.search_experiments())
            raise TrackingNotFound(f"no experiment {name!r} at {settings.tracking_uri}; "
                                f"experiments: {', '.join(names) or 'none yet'}")
        ids.append(found.experiment_id)
    return ids


def list_runs(client: MlflowClient, settings: Settings, experiment: str,
              max_results: int = 1000) -> list[RunSummary]:
    """The runs of ``experiment`` (by name), newest first.

    Raises:
        TrackingError: no experiment has that name.
    """
    return search_runs(client, settings, [experiment], max_results=max_results).runs


def search_runs(client: MlflowClient, settings: Settings, experiments: Sequence[str] | None = None,
                *, status: str | None = None, filter_string: str = "",
                order_by: Sequence[str] = ("attributes.start_time DESC",),
                max_results: int = 1000, page_token: str | None = None,
                experiment_ids: Sequence[str] | None = None) -> RunPage:
    """One page of runs of ``experiments`` (by name; all when None), newest first.

    Args:
        experiment_ids: the experiments by id instead (saves a lookup per call).
        status: only runs in this status (RUNNING, FINISHED, FAILED, KILLED, SCHEDULED).
        filter_string: an MLflow search filter (``metrics.roc_auc > 0.8``), ANDed with status.
        order_by: MLflow order clauses.
        page_token: the ``next_page_token`` of the previous page.

    Raises:
        TrackingError: an unknown experiment or status; MlflowException: a bad filter.
    """
    ids = (list(experiment_ids) if experiment_ids is not None
           else _experiment_ids(client, settings, experiments))
    clauses = [filter_string] if filter_string.strip() else []
    if status:
        status = status.upper()
        if status not in (*TERMINAL_STATUSES, "RUNNING", "SCHEDULED"):
            raise TrackingError(f"status {status!r} is not one of RUNNING, SCHEDULED, "
                                f"{', '.join(TERMINAL_STATUSES)}")
        clauses.append(f"attributes.status = '{status}'")
    if not ids:
        return RunPage([], None)
    found = client.search_runs(ids, " and ".join(clauses), max_results=max_results,
                               order_by=list(order_by), page_token=page_token)
    return RunPage([_summary(run, settings) for run in found], found.token or None)


def get_run(client: MlflowClient, settings: Settings, run_id: str) -> RunSummary:
    """One run.

    Raises:
        TrackingError: no run has that id.
    """
    from workbench.client import is_not_found

    try:
        return _summary(client.get_run(run_id), settings)
    except Exception as exc:
        if is_not_found(exc):
            raise TrackingNotFound(f"no run {run_id!r} at {settings.tracking_uri}") from None
        raise


def stale_runs(client: MlflowClient, settings: Settings, experiments: Sequence[str] | None = None,
               older_than_s: float = 24 * 3600) -> list[RunSummary]:
    """RUNNING runs nobody will end: the process that started them on this machine is gone,
    or (started elsewhere, or before the process was recorded) they began more than
    ``older_than_s`` ago.

    Raises:
        TrackingError: an unknown experiment.
    """
    import socket

    import psutil

    host = socket.gethostname()
    cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=older_than_s)
    stale: list[RunSummary] = []
    token: str | None = None
    while True:
        page = search_runs(client, settings, experiments, status="RUNNING", page_token=token)
        for run in page.runs:
            where, _, pid = run.tags.get(lineage.PROCESS, "").rpartition(":")
            if where == host and pid.isdigit():
                if not psutil.pid_exists(int(pid)):
                    stale.append(run)
            elif run.started_at is None or run.started_at < cutoff:
                stale.append(run)
        token = page.next_page_token
        if not token:
            return stale


def end_runs(client: MlflowClient, run_ids: Sequence[str], status: str = "KILLED") -> list[str]:
    """End each run with ``status``; returns the ids ended (runs already ended are skipped).

    Raises:
        TrackingError: ``status`` is not terminal.
    """
    status = status.upper()
    if status not in TERMINAL_STATUSES:
        raise TrackingError(f"status {status!r} is not one of {', '.join(TERMINAL_STATUSES)}")
    ended = []
    for run_id in run_ids:
        if client.get_run(run_id).info.status in TERMINAL_STATUSES:
            continue
        client.set_terminated(run_id, status)
        ended.append(run_id)
    return ended


# -- the notebook side (fluent API) ----------------------------------------------------------
@dataclass(frozen=True)
class TrackedRun:
    """What ``%mlops_track`` reports about the run it started or resumed."""

    run_id: str
    experiment_id: str
    experiment: str
    run_name: str
    resumed: bool
    url: str


def track(
    settings: Settings,
    *,
    experiment: str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    notebook: Path | None = None,
    data: Path | None = None,
    autolog: bool = True,
    scoped: bool = False,
) -> TrackedRun:
    """Start the notebook's run or resume it (the active run, or a job's ``MLFLOW_RUN_ID``).

    An active run whose instance, version or data date differ from ``tags`` is ended and a
    new run started: one run per model instance. With ``scoped`` a new run is always
    started, nested under the active run or the job's run (``%%mlops_track``).

    Raises:
        TrackingError: the tracking server cannot be reached or refused a call (the message
            names it), or the data file is missing.
        MlflowException: "not found" (e.g. ``MLFLOW_RUN_ID`` names a deleted run).
    """
    import mlflow

    if data is not None and not data.is_file():
        raise TrackingError(f"data file {data} does not exist; pass the training table's path")
    require_server(settings)
    mlflow.set_tracking_uri(settings.tracking_uri)
    all_tags = dict(tags or {})
    all_tags.update(lineage.runtime_tags(os.environ.get("WORKBENCH_EXECUTOR", "notebook")))
    if notebook is not None:
        all_tags.update(lineage.notebook_tags(notebook))
    if data is not None:
        all_tags.update(lineage.data_tags(data))
    if run_name:
        all_tags["mlflow.runName"] = run_name

    with client.mlflow_errors(settings, "tracking the notebook's run"):
        active = mlflow.active_run()
        if active is not None and not scoped and _conflicts(active, all_tags):
            mlflow.end_run()
            active = None
        # MLflow consumes MLFLOW_RUN_ID on the first start_run; read it before.
        job_run_id = os.environ.get("MLFLOW_RUN_ID")
        if scoped:
            os.environ.pop("MLFLOW_RUN_ID", None)
            parent = active.info.run_id if active else job_run_id
            if parent is None:
                mlflow.set_experiment(experiment or settings.experiment)
            else:
                mlflow.set_experiment(experiment_id=mlflow.get_run(parent).info.experiment_id)
            run, resumed = mlflow.start_run(run_name=run_name, nested=bool(parent),
                                            parent_run_id=parent if not active else None), False
        elif active is not None:
            run, resumed = active, True
        elif job_run_id:
            # The job created the run in its experiment; follow it there.
            run, resumed = mlflow.start_run(run_id=job_run_id), True
        else:
            mlflow.set_experiment(experiment or settings.experiment)
            run, resumed = mlflow.start_run(run_name=run_name), False
        mlflow.set_tags(all_tags)
        if autolog:
            # Models are registered by %mlops_package under the naming convention, not here.
            mlflow.autolog(log_models=False, log_datasets=False, silent=True)
        experiment_name = mlflow.get_experiment(run.info.experiment_id).name
    info = run.info
    return TrackedRun(
        info.run_id, info.experiment_id, experiment_name, run_name or info.run_name, resumed,
        run_ui_url(settings, info.experiment_id, info.run_id),
    )


def _conflicts(run: Run, tags: Mapping[str, str]) -> bool:
    import mlflow

    # The active run object holds the tags it started with; later set_tags live on the server.
    current = mlflow.get_run(run.info.run_id).data.tags
    return any(
        key in tags and key in current and tags[key] != current[key]
        for key in (INSTANCE_TAG, MODEL_VERSION_TAG, DATA_DATE_TAG)
    )


def end_tracking(status: str = "FINISHED") -> str | None:
    """End the active fluent run with ``status``; returns its id (None if none was active)."""
    import mlflow

    status = status.upper()
    if status not in TERMINAL_STATUSES:
        raise TrackingError(f"status {status!r} is not one of {', '.join(TERMINAL_STATUSES)}")
    run = mlflow.active_run()
    if run is None:
        return None
    mlflow.end_run(status=status)
    return run.info.run_id


def active_run() -> Run | None:
    import mlflow

    return mlflow.active_run()

