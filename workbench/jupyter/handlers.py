"""The REST routes under ``/workbench/api/``: parse, call one library function, present.

Every handler is a jupyter_server ``APIHandler`` with ``@tornado.web.authenticated``: the
server's token or login is required, and a cookie-authenticated POST also needs Jupyter's
XSRF token (``APIHandler`` enforces it; a token in the ``Authorization`` header is exempt, as
everywhere in Jupyter). The blocking MLflow and papermill work runs on the extension's thread
pool, never on the event loop. Notebook paths are relative to the server's root and refused
outside it.

Errors are JSON ``{"error": kind, "message": one line, "field": name or null}``:
400 bad input (the field named), 403 a path outside the root, 404 nothing by that name,
409 a promotion gate refused (``gates`` lists them) or a policy job runs already, 502 the
tracking server failed.
"""
from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import tornado.web
from jupyter_server.base.handlers import APIHandler

from workbench import tracking
from workbench.errors import (
    ParameterError,
    PromotionRefused,
    TrackingError,
    WorkbenchError,
)
from workbench.jupyter.extension import STATE_KEY, WorkbenchState
from workbench.policy.scheduler import JobBusy, ScheduleNotFound

T = TypeVar("T")
PREFIX = "/workbench/api"
_ORDER = re.compile(r"^(attributes|metrics|params|tags)\.[\w.\- ]+?( (ASC|DESC))?$|"
                    r"^(start_time|end_time|run_name|status)( (ASC|DESC))?$", re.IGNORECASE)
_ALIASES = ("champion", "challenger")


class BadRequest(WorkbenchError):
    """A request field that is missing or of the wrong kind."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class OutsideRoot(WorkbenchError):
    """A path that leaves the server's root directory."""


def _status_of(error: BaseException) -> tuple[int, str, str | None]:
    """(HTTP status, error kind, field) for an exception a route raised."""
    if isinstance(error, BadRequest):
        return 400, "bad_request", error.field
    if isinstance(error, ParameterError):
        return 400, "bad_parameter", error.parameter
    if isinstance(error, OutsideRoot):
        return 403, "outside_root", "path"
    if isinstance(error, PromotionRefused):
        return 409, "promotion_refused", None
    if isinstance(error, JobBusy):
        return 409, "busy", "job"
    if isinstance(error, ScheduleNotFound):
        return 404, "not_found", "job"
    if isinstance(error, LookupError):
        return 404, "not_found", None
    if isinstance(error, TrackingError):
        return 502, "tracking", None
    if isinstance(error, WorkbenchError):
        return 400, "refused", None
    from workbench.client import is_not_found

    if is_not_found(error):
        return 404, "not_found", None
    if getattr(error, "error_code", None) == "INVALID_PARAMETER_VALUE":
        return 400, "bad_request", None
    return 500, "bug", None


def _json_route(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[None]]:
    """Authenticated, and every outcome JSON: the route's value, or one error line."""

    @tornado.web.authenticated
    @functools.wraps(method)
    async def wrapper(self: WorkbenchHandler, *args: Any, **kwargs: Any) -> None:
        try:
            result = await method(self, *args, **kwargs)
        except tornado.web.HTTPError:
            raise
        except Exception as error:
            self._fail(error)
            return
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(result, default=str))

    return wrapper  # type: ignore[return-value]


class WorkbenchHandler(APIHandler):
    """What every route shares: the state, the thread pool, request parsing."""

    @property
    def state(self) -> WorkbenchState:
        state: WorkbenchState = self.settings[STATE_KEY]
        return state

    async def blocking(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function(*args, **kwargs)`` on the thread pool (MLflow, papermill, files)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.state.pool,
                                          functools.partial(function, *args, **kwargs))

    def _fail(self, error: Exception) -> None:
        from workbench.boundary import describe

        status, kind, field = _status_of(error)
        if status == 500:
            self.log.exception("workbench: %s %s failed", self.request.method, self.request.path)
        message = (str(error) if isinstance(error, WorkbenchError) else
                   describe(error, f"{self.request.method} {self.request.path}",
                            settings=lambda: self.state.settings,
                            debug_hint="see the Jupyter server's log").message)
        body: dict[str, Any] = {"error": kind, "message": message.splitlines()[0] if message
                                else kind, "field": field}
        if isinstance(error, PromotionRefused):
            body.update(message=error.summary, gates=list(error.gates), alias=error.alias,
                        candidate=error.candidate)
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def body(self) -> dict[str, Any]:
        """The request's JSON object body.

        Raises:
            BadRequest: the body is not a JSON object.
        """
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise BadRequest("body", "the request body is not JSON; send a JSON object") from None
        if not isinstance(data, dict):
            raise BadRequest("body", "the request body must be a JSON object")
        return data

    def confined(self, path: str, field: str = "path") -> Path:
        """``path`` (relative to the server's root) as an absolute path inside the root.

        Raises:
            BadRequest: no path given. OutsideRoot: it leaves the root (``..``, a symlink,
            an absolute path elsewhere).
        """
        if not path or not isinstance(path, str):
            raise BadRequest(field, f"{field} is required: a notebook path relative to the "
                                    "server's root")
        root = self.state.root
        # Lab sends paths relative to the root; an absolute one must still lie inside it.
        resolved = (root / path).resolve()
        if not resolved.is_relative_to(root):
            raise OutsideRoot(f"{field} {path!r} is outside the server's root directory")
        return resolved

    def relative(self, path: str | None) -> str | None:
        """``path`` relative to the server's root (for Lab to open), None when outside."""
        if not path:
            return None
        try:
            return Path(path).resolve().relative_to(self.state.root).as_posix()
        except ValueError:
            return None


def _string(data: dict[str, Any], name: str, default: str | None = None) -> str | None:
    value = data.get(name, default)
    if value is not None and not isinstance(value, str):
        raise BadRequest(name, f"{name} must be a string")
    return value


# -- platform ------------------------------------------------------------------------------------
class StatusHandler(WorkbenchHandler):
    @_json_route
    async def get(self) -> dict[str, Any]:
        """The tracking server: its URI, whether it answers, the embedded platform's state."""
        return await self.blocking(_platform_status, self.state)


def _platform_status(state: WorkbenchState) -> dict[str, Any]:
    from workbench.client import answers

    settings = state.settings
    embedded = settings.tracking_uri == settings.embedded_tracking_uri
    status: dict[str, Any] = {"tracking_uri": settings.tracking_uri, "embedded": embedded,
                              "experiment": settings.experiment,
                              "primary_metric": settings.primary_metric,
                              "executor": settings.executor, "root": str(state.root)}
    if embedded:
        from workbench.platforms import EmbeddedPlatform

        platform = EmbeddedPlatform(settings).status()
        status.update(running=platform.running, healthy=platform.healthy, pid=platform.pid,
                      note=platform.note)
    else:
        healthy = answers(settings.tracking_uri)
        status.update(running=healthy, healthy=healthy, pid=None, note="")
    return status


class PlatformStartHandler(WorkbenchHandler):
    @_json_route
    async def post(self) -> dict[str, Any]:
        """Start the embedded platform (what `workbench platform up` does)."""
        settings = self.state.settings
        if settings.tracking_uri != settings.embedded_tracking_uri:
            raise BadRequest("tracking_uri", f"the tracking server {settings.tracking_uri} is "
                                             "not the embedded platform; start it where it runs")
        from workbench.platforms import EmbeddedPlatform

        await self.blocking(EmbeddedPlatform(settings).up)
        return await self.blocking(_platform_status, self.state)


# -- runs ----------------------------------------------------------------------------------------
class ExperimentsHandler(WorkbenchHandler):
    @_json_route
    async def get(self) -> list[dict[str, Any]]:
        def experiments() -> list[dict[str, Any]]:
            client = tracking.make_client(self.state.settings)
            return [{"id": e.experiment_id, "name": e.name} for e in client.search_experiments()]

        return await self.blocking(experiments)


class RunsHandler(WorkbenchHandler):
    @_json_route
    async def get(self) -> dict[str, Any]:
        """Runs, newest first: ``experiment`` (repeatable), ``status``, ``filter`` (MLflow
        search syntax), ``order`` (repeatable, e.g. ``metrics.roc_auc DESC``), ``notebook``
        (the runs of one notebook), ``max`` (1-1000), ``page_token``."""
        experiments = self.get_arguments("experiment") or None
        orders = self.get_arguments("order") or ["attributes.start_time DESC"]
        for order in orders:
            if not _ORDER.match(order):
                raise BadRequest("order", f"order {order!r} is not 'metrics.NAME DESC' or "
                                          "'attributes.start_time ASC'")
        raw_max = self.get_argument("max", "50")
        if not raw_max.isdigit() or not 1 <= int(raw_max) <= 1000:
            raise BadRequest("max", f"max must be a whole number from 1 to 1000, not {raw_max!r}")
        filter_string = self.get_argument("filter", "")
        notebook = self.get_argument("notebook", "")
        if notebook:
            path = str(self.confined(notebook, "notebook")).replace("'", "\\'")
            clause = f"tags.`workbench.notebook.path` = '{path}'"
            filter_string = f"{filter_string} and {clause}" if filter_string.strip() else clause
        settings = self.state.settings
        status = self.get_argument("status", None)
        page_token = self.get_argument("page_token", None) or None

        def page_of() -> dict[str, Any]:
            # One trip to the thread pool for the page, its conversion included: the event
            # loop neither waits twice nor converts 50 runs itself.
            ids = self.state.experiment_ids(experiments)
            page = tracking.search_runs(
                tracking.make_client(settings), settings, status=status,
                filter_string=filter_string, order_by=orders, max_results=int(raw_max),
                page_token=page_token, experiment_ids=ids)
            relative = functools.lru_cache(maxsize=None)(self.relative)  # a page shares notebooks
            return {"runs": [self._run(r, relative) for r in page.runs],
                    "next_page_token": page.next_page_token}

        try:
            return await self.blocking(page_of)
        except Exception as error:
            if getattr(error, "error_code", None) == "INVALID_PARAMETER_VALUE":
                first = (str(error).splitlines() or [""])[0]
                raise BadRequest("filter", f"filter {filter_string!r} is not an MLflow search "
                                           f"filter: {first}") from error
            raise

    def _run(self, run: tracking.RunSummary,
             relative: Callable[[str | None], str | None] | None = None) -> dict[str, Any]:
        relative = relative or self.relative
        data = run.as_dict()
        data["notebook_path"] = relative(run.notebook)
        data["output_notebook_path"] = relative(run.output_notebook)
        return data


class RunHandler(RunsHandler):
    @_json_route
    async def get(self, run_id: str) -> dict[str, Any]:
        """One run: params, metrics, lineage tags, artifacts and the output notebook."""
        settings = self.state.settings

        def one() -> dict[str, Any]:
            client = tracking.make_client(settings)
            run = tracking.get_run(client, settings, run_id)
            artifacts = _artifacts(client, run_id)
            return {**self._run(run), "artifacts": artifacts}

        return await self.blocking(one)


def _artifacts(client: Any, run_id: str, path: str | None = None, depth: int = 2
               ) -> list[dict[str, Any]]:
    found = []
    for item in client.list_artifacts(run_id, path):
        found.append({"path": item.path, "is_dir": item.is_dir, "size": item.file_size})
        if item.is_dir and depth > 1:
            found.extend(_artifacts(client, run_id, item.path, depth - 1))
    return found


class RunEndHandler(WorkbenchHandler):
    @_json_route
    async def post(self, run_id: str) -> dict[str, Any]:
        """End a RUNNING run (the notebook's, from the sidebar) with ``status``."""
        status = (_string(self.body(), "status", "FINISHED") or "FINISHED").upper()
        if status not in tracking.TERMINAL_STATUSES:
            raise BadRequest("status", f"status must be one of "
                                       f"{', '.join(tracking.TERMINAL_STATUSES)}, not {status!r}")
        settings = self.state.settings

        def end() -> dict[str, Any]:
            client = tracking.make_client(settings)
            tracking.get_run(client, settings, run_id)  # 404 before anything else
            ended = tracking.end_runs(client, [run_id], status)
            return {"run_id": run_id, "status": status, "ended": bool(ended)}

        return await self.blocking(end)


# -- models --------------------------------------------------------------------------------------
class ModelsHandler(WorkbenchHandler):
    @_json_route
    async def get(self) -> list[str]:
        """The registered models (model instances' families: ``churn``)."""
        return await self.blocking(lambda: self.state.registry.registered_models())


class ModelHandler(WorkbenchHandler):
    @_json_route
    async def get(self, name: str) -> dict[str, Any]:
        """Every instance of ``name`` (aliases, metrics, drift status, links) and its
        promotion history, oldest first."""
        registry = self.state.registry

        def model() -> dict[str, Any]:
            from workbench import tasks

            instances = registry.list_instances(name)
            history = registry.history(name)
            # The metric the versions rank by and its direction, as the board and `models
            # compare` have them (a regression model seen from a roc_auc project: rmse, lower).
            metric = tasks.primary_metric(registry.settings, instances)
            return {"name": name, "primary_metric": metric,
                    "greater_is_better": tasks.greater_is_better(metric, registry.settings,
                                                                 instances),
                    "instances": [_instance(registry, i, self.relative) for i in instances],
                    "history": [r.as_dict() for r in history]}

        return await self.blocking(model)


def _instance(registry: Any, instance: Any, relative: Callable[[str | None], str | None]
              ) -> dict[str, Any]:
    from workbench import lineage
    from workbench.promotion import DRIFT_CHECKED_AT_TAG, drift_status

    data = instance.as_dict()
    data.update(label=instance.label, drift_status=drift_status(instance),
                drift_checked_at=instance.tags.get(DRIFT_CHECKED_AT_TAG),
                ui_url=registry.ui_url(instance), run_url=registry.run_url(instance),
                notebook_path=relative(instance.tags.get(lineage.NOTEBOOK_PATH)))
    return data


class LineageHandler(WorkbenchHandler):
    @_json_route
    async def get(self, name: str, number: str) -> dict[str, Any]:
        """One instance's lineage, source to today: data -> notebook and commit -> run ->
        model version -> aliases -> drift checks (each with its link)."""
        registry = self.state.registry
        settings = self.state.settings

        def lineage_of() -> dict[str, Any]:
            from workbench import lineage
            from workbench.promotion import DRIFT_CHECKED_AT_TAG, drift_status

            instance = registry.resolve(f"models:/{name}/{number}")
            tags = instance.tags
            run = None
            if instance.run_id:
                run = tracking.get_run(tracking.make_client(settings), settings, instance.run_id)
            history = [r.as_dict() for r in registry.history(name)
                       if instance.number in (r.to_version, r.from_version)]
            return {
                "instance": _instance(registry, instance, self.relative),
                "data": {"path": tags.get(lineage.DATA_PATH), "sha256": tags.get(lineage.DATA_SHA256),
                         "rows": tags.get(lineage.DATA_ROWS),
                         "lab_path": self.relative(tags.get(lineage.DATA_PATH))},
                "notebook": {"path": tags.get(lineage.NOTEBOOK_PATH),
                             "sha256": tags.get(lineage.NOTEBOOK_SHA256),
                             "lab_path": self.relative(tags.get(lineage.NOTEBOOK_PATH)),
                             "git_commit": tags.get(lineage.GIT_COMMIT),
                             "git_dirty": tags.get(lineage.GIT_DIRTY),
                             "executor": tags.get(lineage.EXECUTOR)},
                "run": ({"run_id": run.run_id, "name": run.run_name, "status": run.status,
                         "url": run.url,
                         "output_notebook_path": self.relative(run.output_notebook)}
                        if run else None),
                "model_version": {"uri": instance.uri, "label": instance.label,
                                  "url": registry.ui_url(instance)},
                "aliases": list(instance.promotion_aliases),
                "promotions": history,
                "drift": {"status": drift_status(instance),
                          "checked_at": tags.get(DRIFT_CHECKED_AT_TAG)},
            }

        return await self.blocking(lineage_of)


class PromoteHandler(WorkbenchHandler):
    @_json_route
    async def post(self) -> dict[str, Any]:
        """Point ``alias`` at ``ref``: 409 with the failed gates, or ``override`` with a
        ``reason`` (the same ``Registry.promote`` as `workbench models promote`)."""
        data = self.body()
        ref = _string(data, "ref")
        if not ref:
            raise BadRequest("ref", "ref is required: an instance (churn_v2_20240131) or "
                                    "models:/churn/3")
        alias = _string(data, "alias", "champion")
        if alias not in _ALIASES:
            raise BadRequest("alias", f"alias must be champion or challenger, not {alias!r}")
        override = data.get("override", False)
        if not isinstance(override, bool):
            raise BadRequest("override", "override must be true or false")
        reason = _string(data, "reason", "") or ""
        promotion = await self.blocking(self.state.registry.promote, ref, alias, reason=reason,
                                        override=override)
        return {"alias": promotion.alias, "current": promotion.current.label,
                "previous": promotion.previous.label if promotion.previous else None,
                "by": promotion.by, "reason": promotion.reason,
                "overridden": list(promotion.overridden),
                "record": promotion.record.as_dict() if promotion.record else None}


# -- notebooks and jobs --------------------------------------------------------------------------
class ParametersHandler(WorkbenchHandler):
    @_json_route
    async def get(self) -> dict[str, Any]:
        """The notebook's parameters (from its ``parameters`` cell), with their types."""
        from workbench.jobs.executors import executors
        from workbench.jobs.params import parameter_fields

        notebook = self.confined(self.get_argument("path", ""))
        fields = await self.blocking(parameter_fields, notebook)
        return {"path": self.relative(str(notebook)), "parameters": fields,
                "executors": executors.names(), "executor": self.state.settings.executor}


class JobsHandler(WorkbenchHandler):
    @_json_route
    async def get(self) -> list[dict[str, Any]]:
        return [self._job(job) for job in self.state.jobs.jobs()]

    @_json_route
    async def post(self) -> dict[str, Any]:
        """Submit a job: ``path``, ``parameters`` (typed JSON values), ``executor``,
        ``timeout`` (seconds), ``image``. 400 names the first bad field."""
        data = self.body()
        notebook = self.confined(_string(data, "path") or "")
        parameters = data.get("parameters", {})
        if not isinstance(parameters, dict):
            raise BadRequest("parameters", "parameters must be an object of name: value")
        timeout = data.get("timeout", 0)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
            raise BadRequest("timeout", "timeout must be 0 (no limit) or a number of seconds")
        executor = _string(data, "executor")
        image = _string(data, "image") or None
        job = await self.blocking(self.state.jobs.submit, notebook, parameters,
                                  executor=executor or None, timeout=float(timeout), image=image)
        self.set_status(202)
        return self._job(job)

    def _job(self, job: Any, log_from: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = job.as_dict(log_from)
        data["notebook_path"] = self.relative(data["notebook"])
        data["output_notebook_path"] = self.relative(data["output_notebook"])
        return data


class JobHandler(JobsHandler):
    @_json_route
    async def get(self, job_id: str) -> dict[str, Any]:
        """One job with its log from line ``log_from`` on (poll with the last ``log_lines``)."""
        raw = self.get_argument("log_from", "0")
        if not raw.isdigit():
            raise BadRequest("log_from", f"log_from must be a line number, not {raw!r}")
        return self._job(self.state.jobs.get(job_id), int(raw))

    @_json_route
    async def delete(self, job_id: str) -> dict[str, Any]:
        return self._job(self.state.jobs.cancel(job_id))


class JobCancelHandler(JobsHandler):
    @_json_route
    async def post(self, job_id: str) -> dict[str, Any]:
        """Cancel: SIGINT as Ctrl-C; the run ends KILLED and the output notebook is kept."""
        return self._job(self.state.jobs.cancel(job_id))


# -- schedules and proposals (the retraining policies) -------------------------------------------
class SchedulesHandler(WorkbenchHandler):
    @_json_route
    async def get(self) -> list[dict[str, Any]]:
        """Every schedule of the policies: cron, time zone, next fire time, paused (the same
        ``list_schedules`` as `workbench schedule list`)."""
        from workbench.policy.scheduler import list_schedules

        jobs = await self.blocking(list_schedules, self.state.settings)
        return [{**j.as_dict(), "policy_path": self.relative(j.policy_file)} for j in jobs]


class SchedulePauseHandler(WorkbenchHandler):
    @_json_route
    async def post(self, job: str) -> dict[str, Any]:
        """Pause ``job`` (``churn.drift``) until resumed; 404 when no policy schedules it."""
        from workbench.policy.scheduler import pause_schedule

        paused = await self.blocking(pause_schedule, self.state.settings, job)
        return paused.as_dict()


class ScheduleResumeHandler(WorkbenchHandler):
    @_json_route
    async def post(self, job: str) -> dict[str, Any]:
        """Resume ``job`` from its next fire time after now."""
        from workbench.policy.scheduler import resume_schedule

        resumed = await self.blocking(resume_schedule, self.state.settings, job)
        return resumed.as_dict()


class ScheduleRunNowHandler(JobsHandler):
    @_json_route
    async def post(self, job: str) -> dict[str, Any]:
        """Fire ``job`` now (`workbench schedule run-now` in the background): 202 with the
        background job (it shows in the jobs list, with its log); 409 when it runs already."""
        started = await self.blocking(self.state.jobs.run_schedule, job)
        self.set_status(202)
        return self._job(started)


class ScheduleHistoryHandler(WorkbenchHandler):
    @_json_route
    async def get(self) -> list[dict[str, Any]]:
        """What the scheduler did, oldest first: the newest ``limit`` (1-500) entries, of
        ``job`` or of every job."""
        from workbench.policy.scheduler import history

        raw = self.get_argument("limit", "50")
        if not raw.isdigit() or not 1 <= int(raw) <= 500:
            raise BadRequest("limit", f"limit must be a whole number from 1 to 500, not {raw!r}")
        job = self.get_argument("job", "") or None
        entries = await self.blocking(history, self.state.settings, job, int(raw))
        return [e.as_dict() for e in entries]


class ProposalsHandler(WorkbenchHandler):
    @_json_route
    async def get(self) -> list[dict[str, Any]]:
        """The retrain proposals of ``instance``, oldest first (the same ``list_proposals``
        as `workbench policy proposals`)."""
        from workbench.policy.proposals import list_proposals

        instance = self.get_argument("instance", "")
        if not instance:
            raise BadRequest("instance", "instance is required: the registered model a policy "
                                         "retrains (churn)")
        proposals = await self.blocking(list_proposals, self.state.settings, instance,
                                        self.state.registry)
        return [p.as_dict() for p in proposals]


def routes() -> list[tuple[str, type[WorkbenchHandler]]]:
    """The URL patterns (the server adds its base URL)."""
    name = r"(?P<name>[^/]+)"
    job = r"(?P<job>[^/]+)"
    return [
        (f"{PREFIX}/status", StatusHandler),
        (f"{PREFIX}/platform/start", PlatformStartHandler),
        (f"{PREFIX}/experiments", ExperimentsHandler),
        (f"{PREFIX}/runs", RunsHandler),
        (rf"{PREFIX}/runs/(?P<run_id>[0-9a-f]+)", RunHandler),
        (rf"{PREFIX}/runs/(?P<run_id>[0-9a-f]+)/end", RunEndHandler),
        (f"{PREFIX}/models", ModelsHandler),
        (f"{PREFIX}/promote", PromoteHandler),
        (rf"{PREFIX}/models/{name}", ModelHandler),
        (rf"{PREFIX}/models/{name}/(?P<number>\d+)/lineage", LineageHandler),
        (f"{PREFIX}/notebooks/parameters", ParametersHandler),
        (f"{PREFIX}/jobs", JobsHandler),
        (rf"{PREFIX}/jobs/(?P<job_id>[0-9a-f]+)", JobHandler),
        (rf"{PREFIX}/jobs/(?P<job_id>[0-9a-f]+)/cancel", JobCancelHandler),
        (f"{PREFIX}/schedules", SchedulesHandler),
        (f"{PREFIX}/schedules/history", ScheduleHistoryHandler),
        (rf"{PREFIX}/schedules/{job}/pause", SchedulePauseHandler),
        (rf"{PREFIX}/schedules/{job}/resume", ScheduleResumeHandler),
        (rf"{PREFIX}/schedules/{job}/run-now", ScheduleRunNowHandler),
        (f"{PREFIX}/proposals", ProposalsHandler),
    ]
