"""The policy scheduler: APScheduler 3.x with its job store on the platform's database.

One scheduler process per platform (``workbench platform up`` starts it beside the tracking
server: ``python -m workbench.policy.scheduler``). It loads the policy files, keeps one
APScheduler job per schedule (``<instance>.<kind>``: ``churn.drift``) in a
``SQLAlchemyJobStore`` (table ``workbench_schedule_jobs`` in ``settings.scheduler_store_url``:
SQLite under the state directory on the embedded platform, Postgres on the compose one), and
records what every fire did in a table of its own (``workbench_schedule_history``) from the
scheduler's events: started, finished, failed, missed, skipped.

What APScheduler guarantees here, with every job's defaults ``coalesce=True``,
``max_instances=1`` and the policy's ``misfire_grace_time``:

- schedules and their next fire times live in the database, so they survive restarts; a job
  whose stored trigger is unchanged keeps its next fire time across a restart (it is not added
  again), so a fire missed while the platform was down is still due at start-up and runs
  **once** (coalesced) if it is less than the grace time late, and is recorded ``missed``
  otherwise;
- a fire that comes round while the previous run of the same job is still going is skipped
  (recorded ``skipped``). A per-job file lock extends that to ``workbench schedule run-now``,
  which runs in the command's own process.

Every fire is an ordinary workbench job (:func:`workbench.jobs.run_job`, the executor the
policy or the settings name), its run tagged with the policy and what triggered it; see
:func:`run_policy_job`.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.config import ENV_PREFIX, Settings
from workbench.errors import WorkbenchError
from workbench.policy.schema import (
    JOB_KINDS,
    Policy,
    PolicyError,
    PolicyFile,
    cron_trigger,
    load_policies,
    policy_files,
    resolve_notebook,
)
from workbench.progress import Progress

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler
    from sqlalchemy.engine import Engine

    from workbench.policy.proposals import Proposal

log = logging.getLogger("workbench.policy")

JOBS_TABLE = "workbench_schedule_jobs"
HISTORY_TABLE = "workbench_schedule_history"
#: Seconds between two looks at the job store: pause, resume and policy edits made by other
#: processes are seen within this, whatever the next fire time was when the loop slept.
POLL_S = 2.0
#: Run tags of a policy's jobs.
POLICY_TAG = "workbench.policy"
POLICY_JOB_TAG = "workbench.policy.job"
TRIGGER_TAG = "workbench.policy.trigger"
POLICY_DATA_DATE_TAG = "workbench.policy.data_date"
FIRED_AT_TAG = "workbench.policy.fired_at"
SCHEDULE, RUN_NOW = "schedule", "run-now"
#: What the job store keeps as each job's function: a reference by name, the same whether this
#: module runs as the scheduler process (``__main__``) or is imported.
FIRE_REF = "workbench.policy.scheduler:fire"
#: The file the scheduler process writes once its jobs are in the store (platform up waits).
STATE_FILE = "scheduler.state"


class JobBusy(WorkbenchError):
    """The job runs already (in the scheduler or in another ``run-now``)."""


class ScheduleNotFound(WorkbenchError, LookupError):
    """No policy has a schedule (or job) of that name."""


# -- what a fire did -----------------------------------------------------------------------------
@dataclass(frozen=True)
class FireOutcome:
    """What one fire of a policy job did.

    Attributes:
        job_id: ``<instance>.<kind>``.
        kind: ``batch``, ``drift``, ``performance`` or ``retrain``.
        trigger: ``schedule``, ``run-now``, or what the caller says (the demo's clock).
        data_date: the period it worked on.
        run_ids: the MLflow runs of the jobs it ran.
        verdict: the drift or performance verdict, for those kinds.
        proposal: the retrain proposal it made, if any.
        note: one line for the history.
    """

    job_id: str
    kind: str
    trigger: str
    data_date: str
    run_ids: tuple[str, ...] = ()
    verdict: str | None = None
    proposal: Proposal | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "kind": self.kind, "trigger": self.trigger,
                "data_date": self.data_date, "run_ids": list(self.run_ids),
                "verdict": self.verdict, "note": self.note,
                "proposal": self.proposal.as_dict() if self.proposal else None}


def job_id(instance: str, kind: str) -> str:
    return f"{instance}.{kind}"


# -- the jobs ------------------------------------------------------------------------------------
def run_policy_job(
    policy: Policy,
    kind: str,
    settings: Settings,
    *,
    at: dt.datetime | None = None,
    trigger: str = SCHEDULE,
    progress: Progress | None = None,
    performance_trigger: Callable[..., Any] | None = None,
) -> FireOutcome:
    """Do what ``policy``'s ``kind`` job does when it fires at ``at`` (default: now).

    ``batch`` scores the period's data with the champion (the batch notebook), ``drift``
    checks it against the champion's profile (the monitor notebook) and proposes a retrain
    when the verdict is ``drift`` and the drift trigger is on, ``performance`` asks
    :func:`workbench.policy.proposals.performance_verdict` and proposes a retrain when it
    fires, ``retrain`` proposes one. The scheduler calls this with the wall clock; the demo
    with its simulated dates.

    Raises:
        WorkbenchError: a job failed (``JobFailed``: its run is FAILED), the champion is
            missing, the tracking server is down; a proposal that was made is recorded first.
    """
    from workbench.policy import proposals

    if kind not in JOB_KINDS:
        raise WorkbenchError(f"unknown policy job {kind!r}; one of {', '.join(JOB_KINDS)}")
    say = progress or log.info
    when = at or dt.datetime.now(dt.timezone.utc)
    data_date = policy.data_date_at(when)
    ident = job_id(policy.instance, kind)
    tags = {POLICY_TAG: policy.instance, POLICY_JOB_TAG: kind, TRIGGER_TAG: trigger,
            POLICY_DATA_DATE_TAG: data_date, FIRED_AT_TAG: when.isoformat(timespec="seconds")}
    say(f"{ident}: {trigger} at {when:%Y-%m-%d %H:%M %Z}; period {data_date}")

    def retrain(why: str) -> Proposal:
        # The retrain job's run says it is the retrain, and why it was made.
        return proposals.propose(policy, settings, data_date, trigger=why, progress=say,
                                 tags={**tags, POLICY_JOB_TAG: "retrain", TRIGGER_TAG: why[:250]})

    if kind == "retrain":
        proposal = retrain(f"{trigger}: retrain")
        return FireOutcome(ident, kind, trigger, data_date, proposal.run_ids, None, proposal,
                           proposal.summary())
    if kind == "performance":
        verdict = proposals.performance_verdict(policy, settings, data_date,
                                                check=performance_trigger)
        say(f"{ident}: {verdict.reason}")
        if not verdict.fired:
            return FireOutcome(ident, kind, trigger, data_date, (), "ok", None, verdict.reason)
        proposal = retrain(f"performance: {verdict.reason}")
        return FireOutcome(ident, kind, trigger, data_date, proposal.run_ids, "decay", proposal,
                           proposal.summary())

    champion = proposals.champion_of(policy, settings)
    data_path = policy.data_path(data_date, settings.project_root)
    job = policy.notebook_job(kind)
    if kind == "batch":
        output = settings.home / "predictions" / f"{policy.instance}_{data_date}_scored.csv"
        parameters = {"model_ref": champion.label, "input_path": str(data_path),
                      "output_path": str(output), **job.parameters}
        experiment = f"{policy.instance}-batch"
    else:
        parameters = {"model_ref": champion.label, "current_path": str(data_path),
                      **job.parameters}
        experiment = f"{policy.instance}-monitoring"
    run_id = _notebook_job(policy, kind, parameters, experiment, tags, settings, say)
    if kind == "batch":
        return FireOutcome(ident, kind, trigger, data_date, (run_id,), None, None,
                           f"{champion.label} scored {data_path.name}")
    drift = proposals.drift_verdict(champion, settings)
    say(f"{ident}: drift check of {champion.label} on {data_date}: {drift}")
    if drift != "drift" or not policy.triggers.drift:
        return FireOutcome(ident, kind, trigger, data_date, (run_id,), drift, None,
                           f"{champion.label} on {data_date}: {drift}")
    proposal = retrain(f"drift: {champion.label} on {data_date}")
    return FireOutcome(ident, kind, trigger, data_date, (run_id, *proposal.run_ids), drift,
                       proposal, proposal.summary())


def _notebook_job(policy: Policy, kind: str, parameters: dict[str, Any], experiment: str,
                  tags: dict[str, str], settings: Settings, say: Progress) -> str:
    from workbench.jobs import JobSpec, run_job

    job = policy.notebook_job(kind)
    spec = JobSpec(notebook=resolve_notebook(job.notebook, settings.project_root),
                   parameters=parameters, executor=job.executor or settings.executor,
                   experiment=experiment, timeout=job.timeout, tags=tags)
    return run_job(spec, settings, progress=say).run_id


def fire(policy_file: str, kind: str) -> dict[str, Any]:
    """The function APScheduler stores (by reference) and calls for each fire.

    It reads the settings and the policy file afresh, so an edited policy applies from the
    next fire on, and holds the job's lock while it runs.

    Returns:
        The :class:`FireOutcome` as a dict (the history records it), or ``{"skipped": why}``
        when the job runs elsewhere.
    """
    settings = Settings.from_env()
    from workbench.policy.schema import load_policy

    policy = load_policy(Path(policy_file), settings.project_root)
    try:
        with job_lock(settings, job_id(policy.instance, kind)):
            return run_policy_job(policy, kind, settings, trigger=SCHEDULE).as_dict()
    except JobBusy as busy:
        return {"skipped": str(busy)}


@contextmanager
def job_lock(settings: Settings, ident: str) -> Iterator[None]:
    """Hold the job's lock, or raise at once when another process holds it.

    Raises:
        JobBusy: the job runs already.
    """
    import filelock

    folder = settings.home / "scheduler" / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(folder / f"{ident}.lock")
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise JobBusy(f"{ident} is running already (the scheduler or a run-now holds "
                      f"{lock.lock_file}); wait for it to finish") from None
    try:
        yield
    finally:
        lock.release()


# -- the history table ---------------------------------------------------------------------------
@dataclass(frozen=True)
class HistoryEntry:
    """One thing that happened to a scheduled job."""

    id: int
    job_id: str
    event: str
    trigger: str
    scheduled_for: str
    recorded_at: str
    run_ids: tuple[str, ...]
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "job_id": self.job_id, "event": self.event,
                "trigger": self.trigger, "scheduled_for": self.scheduled_for,
                "recorded_at": self.recorded_at, "run_ids": list(self.run_ids),
                "detail": self.detail}


class History:
    """The scheduler's own table: one row per event of a scheduled job, never updated."""

    def __init__(self, engine: Engine) -> None:
        from sqlalchemy import Column, Integer, MetaData, String, Table, Text

        self.engine = engine
        self.table = Table(
            HISTORY_TABLE, MetaData(),
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("job_id", String(191), nullable=False, index=True),
            Column("event", String(16), nullable=False),
            Column("trigger", String(32), nullable=False),
            Column("scheduled_for", String(40), nullable=False),
            Column("recorded_at", String(40), nullable=False),
            Column("run_ids", Text, nullable=False),
            Column("detail", Text, nullable=False),
        )
        self.table.create(engine, checkfirst=True)

    def record(self, ident: str, event: str, *, trigger: str = SCHEDULE,
               scheduled_for: dt.datetime | None = None, run_ids: tuple[str, ...] = (),
               detail: str = "") -> None:
        now = dt.datetime.now(dt.timezone.utc)
        with self.engine.begin() as connection:
            connection.execute(self.table.insert().values(
                job_id=ident, event=event, trigger=trigger,
                scheduled_for=_iso(scheduled_for or now), recorded_at=_iso(now),
                run_ids=",".join(run_ids), detail=detail[:2000]))

    def entries(self, ident: str | None = None, limit: int = 50) -> list[HistoryEntry]:
        """The newest ``limit`` entries (of one job), oldest first."""
        from sqlalchemy import select

        query = select(self.table).order_by(self.table.c.id.desc()).limit(limit)
        if ident:
            query = query.where(self.table.c.job_id == ident)
        with self.engine.begin() as connection:
            rows = list(connection.execute(query))
        return [HistoryEntry(r.id, r.job_id, r.event, r.trigger, r.scheduled_for, r.recorded_at,
                             tuple(filter(None, r.run_ids.split(","))), r.detail)
                for r in reversed(rows)]


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


def store_engine(settings: Settings) -> Engine:
    """An engine on the scheduler's database (created when it is an SQLite file)."""
    from sqlalchemy import create_engine

    url = settings.scheduler_store_url
    options: dict[str, Any] = {}
    if url.startswith("sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True)
        # The scheduler and a command line write at once now and then: wait, do not fail.
        options["connect_args"] = {"timeout": 30}
    return create_engine(url, **options)


# -- the scheduler -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScheduledJob:
    """A schedule of a policy and its state in the job store."""

    id: str
    instance: str
    kind: str
    cron: str
    timezone: str
    policy_file: str
    next_run: dt.datetime | None
    paused: bool
    stored: bool

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "instance": self.instance, "kind": self.kind, "cron": self.cron,
                "timezone": self.timezone, "policy_file": self.policy_file,
                "next_run": _iso(self.next_run) if self.next_run else None,
                "paused": self.paused, "stored": self.stored}


@dataclass
class PolicyScheduler:
    """APScheduler over the policies' schedules.

    Args:
        settings: the state directory, the scheduler store, the project root.
        policies: the checked policies (``load_policies``).
        workers: threads that run fires (different jobs run at once; one job never twice).
    """

    settings: Settings
    policies: list[PolicyFile]
    workers: int = 4
    scheduler: BackgroundScheduler | None = None
    history: History | None = None
    _engine: Any = field(default=None, repr=False)

    def start(self, *, run_jobs: bool = True) -> None:
        """Start APScheduler (paused), bring the store in line with the policies, then run.

        ``run_jobs=False`` leaves it paused: a command line edits the store with it and
        never runs a job.
        """
        from apscheduler.events import (
            EVENT_JOB_ERROR,
            EVENT_JOB_EXECUTED,
            EVENT_JOB_MAX_INSTANCES,
            EVENT_JOB_MISSED,
            EVENT_JOB_SUBMITTED,
        )
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        self._engine = store_engine(self.settings)
        self.history = History(self._engine)
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self._engine, tablename=JOBS_TABLE)},
            executors={"default": ThreadPoolExecutor(self.workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
            timezone=dt.timezone.utc,
        )
        if run_jobs:
            self.scheduler.add_listener(
                self._on_event, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR
                | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        self.scheduler.start(paused=True)
        if run_jobs:
            self.sync()
            self.scheduler.resume()

    def shutdown(self, wait: bool = False) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=wait)
        if self._engine is not None:
            self._engine.dispose()

    def wakeup(self) -> None:
        if self.scheduler is not None:
            self.scheduler.wakeup()

    # -- keeping the store in line with the policies -----------------------------------------
    def desired(self) -> dict[str, tuple[PolicyFile, str]]:
        return {job_id(item.policy.instance, kind): (item, kind)
                for item in self.policies for kind in item.policy.schedules}

    def sync(self) -> list[str]:
        """Add, change and remove stored jobs so they match the policies; returns what changed.

        A job whose trigger, arguments and grace time are unchanged is left alone, keeping
        its next fire time (a fire missed while down is then still due) and its pause.
        """
        scheduler = self._require()
        changes: list[str] = []
        wanted = self.desired()
        for ident, (item, kind) in wanted.items():
            policy = item.policy
            trigger = cron_trigger(policy.schedules[kind], policy.timezone)  # type: ignore[index]
            args = (str(item.path.resolve()), kind)
            grace = policy.misfire_grace_time
            current = scheduler.get_job(ident)
            if current is None:
                scheduler.add_job(FIRE_REF, trigger, id=ident, name=ident, args=args,
                                  misfire_grace_time=grace, replace_existing=True)
                changes.append(f"added {ident}")
                continue
            same_trigger = str(current.trigger) == str(trigger)
            if (same_trigger and tuple(current.args) == args and current.func_ref == FIRE_REF
                    and current.misfire_grace_time == grace):
                continue
            scheduler.modify_job(ident, func=FIRE_REF, args=args, misfire_grace_time=grace)
            if not same_trigger:
                if current.next_run_time is None:  # paused: keep it paused
                    scheduler.modify_job(ident, trigger=trigger)
                else:
                    scheduler.reschedule_job(ident, trigger=trigger)
            changes.append(f"changed {ident}")
        for job in scheduler.get_jobs():
            if job.id not in wanted:
                scheduler.remove_job(job.id)
                changes.append(f"removed {job.id}")
        for line in changes:
            log.info("schedule: %s", line)
        return changes

    def jobs(self) -> list[ScheduledJob]:
        """Every schedule of the policies, with its next fire time from the store."""
        scheduler = self._require()
        out = []
        for ident, (item, kind) in sorted(self.desired().items()):
            schedule = item.policy.schedules[kind]  # type: ignore[index]
            stored = scheduler.get_job(ident)
            next_run = stored.next_run_time if stored is not None else None
            out.append(ScheduledJob(ident, item.policy.instance, kind, schedule.cron,
                                    item.policy.schedule_timezone(kind), str(item.path),
                                    next_run, stored is not None and next_run is None,
                                    stored is not None))
        return out

    def pause(self, ident: str) -> ScheduledJob:
        self._stored(ident)
        self._require().pause_job(ident)
        return self._job(ident)

    def resume(self, ident: str) -> ScheduledJob:
        self._stored(ident)
        self._require().resume_job(ident)
        return self._job(ident)

    def _job(self, ident: str) -> ScheduledJob:
        return next(j for j in self.jobs() if j.id == ident)

    def _stored(self, ident: str) -> None:
        if ident not in self.desired():
            known = ", ".join(sorted(self.desired())) or "none (no policy has schedules)"
            raise ScheduleNotFound(f"no schedule {ident!r}; schedules: {known}")
        if self._require().get_job(ident) is None:
            # Not in the store yet (the scheduler never ran with this policy): add it now.
            self.sync()

    def _require(self) -> BackgroundScheduler:
        if self.scheduler is None:
            raise WorkbenchError("the scheduler is not started")
        return self.scheduler

    # -- history from the scheduler's events ---------------------------------------------------
    def _on_event(self, event: Any) -> None:
        from apscheduler.events import (
            EVENT_JOB_ERROR,
            EVENT_JOB_EXECUTED,
            EVENT_JOB_MAX_INSTANCES,
            EVENT_JOB_MISSED,
            EVENT_JOB_SUBMITTED,
        )

        history = self.history
        if history is None:
            return
        try:
            if event.code == EVENT_JOB_SUBMITTED:
                history.record(event.job_id, "started", scheduled_for=event.scheduled_run_times[-1])
            elif event.code == EVENT_JOB_MAX_INSTANCES:
                history.record(event.job_id, "skipped", scheduled_for=event.scheduled_run_times[-1],
                               detail="the previous run of this job is still going")
            elif event.code == EVENT_JOB_MISSED:
                history.record(event.job_id, "missed", scheduled_for=event.scheduled_run_time,
                               detail="due while the scheduler was not running, later than "
                                      "its misfire grace time")
            elif event.code == EVENT_JOB_EXECUTED:
                retval = event.retval if isinstance(event.retval, Mapping) else {}
                if "skipped" in retval:
                    history.record(event.job_id, "skipped", scheduled_for=event.scheduled_run_time,
                                   detail=str(retval["skipped"]))
                else:
                    history.record(event.job_id, "finished", scheduled_for=event.scheduled_run_time,
                                   run_ids=tuple(retval.get("run_ids", ())),
                                   detail=str(retval.get("note", "")))
            elif event.code == EVENT_JOB_ERROR:
                history.record(event.job_id, "failed", scheduled_for=event.scheduled_run_time,
                               run_ids=_run_ids_of(event.exception),
                               detail=_first_line(event.exception))
        except Exception:  # the history must never stop the scheduler
            log.exception("cannot record the history of %s", getattr(event, "job_id", "?"))


def _run_ids_of(error: BaseException | None) -> tuple[str, ...]:
    run_id = getattr(error, "run_id", None)
    return (run_id,) if run_id else ()


def _first_line(error: BaseException | None) -> str:
    if error is None:
        return ""
    if isinstance(error, WorkbenchError):
        return str(error).strip().splitlines()[0][:500] if str(error).strip() else type(error).__name__
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:400] if text else ''}"


# -- what the command line uses -------------------------------------------------------------------
@contextmanager
def store_editor(settings: Settings, files: list[Path] | None = None) -> Iterator[PolicyScheduler]:
    """A paused scheduler on the store, for listing, pausing and resuming from a command.

    The store is brought in line with the policy files first (as the scheduler process does
    at start), so a schedule shows its next fire time before the scheduler ever ran.

    Raises:
        PolicyError: a policy file has a problem (nothing is changed).
    """
    policies = load_policies(settings.project_root, files, settings.policies_dir)
    editor = PolicyScheduler(settings, policies, workers=1)
    editor.start(run_jobs=False)
    try:
        editor.sync()
        yield editor
    finally:
        editor.shutdown()
    _nudge(settings)


def list_schedules(settings: Settings) -> list[ScheduledJob]:
    """Every schedule of the policies with its next fire time and whether it is paused.

    Raises:
        PolicyError: a policy file has a problem.
    """
    if not policy_files(settings.project_root, settings.policies_dir):
        return []  # nothing to list: no store is created, no scheduler woken (Lab asks often)
    with store_editor(settings) as editor:
        return editor.jobs()


def pause_schedule(settings: Settings, ident: str) -> ScheduledJob:
    """Pause ``ident`` until resumed; kept in the store, across restarts (the running
    scheduler sees it at once).

    Raises:
        PolicyError: a policy file has a problem. ScheduleNotFound: no such schedule.
    """
    with store_editor(settings) as editor:
        return editor.pause(ident)


def resume_schedule(settings: Settings, ident: str) -> ScheduledJob:
    """Resume ``ident`` from its next fire time after now.

    Raises:
        PolicyError: a policy file has a problem. ScheduleNotFound: no such schedule.
    """
    with store_editor(settings) as editor:
        return editor.resume(ident)


def history(settings: Settings, ident: str | None = None, limit: int = 50) -> list[HistoryEntry]:
    engine = store_engine(settings)
    try:
        return History(engine).entries(ident, limit)
    finally:
        engine.dispose()


def run_now(settings: Settings, ident: str, progress: Progress | None = None) -> FireOutcome:
    """Fire ``ident`` now in this process, as the scheduler would, and record it.

    Raises:
        PolicyError: a policy file has a problem.
        WorkbenchError: no such schedule; the job runs already (``JobBusy``); the job failed.
    """
    policy, kind = policy_job(settings, ident)
    return fire_and_record(settings, policy, kind, trigger=RUN_NOW, progress=progress)


def policy_job(settings: Settings, ident: str) -> tuple[Policy, str]:
    """The policy and job kind ``ident`` (``churn.drift``) names, scheduled or not.

    Raises:
        PolicyError: a policy file has a problem.
        ScheduleNotFound: no policy has that job.
    """
    policies = load_policies(settings.project_root, None, settings.policies_dir)
    found = {job_id(p.policy.instance, kind): p for p in policies for kind in JOB_KINDS}
    if ident not in found:
        raise ScheduleNotFound(f"no policy job {ident!r}; jobs: "
                               f"{', '.join(sorted(found)) or 'none'}")
    return found[ident].policy, ident.rsplit(".", 1)[1]


def job_busy(settings: Settings, ident: str) -> bool:
    """Whether ``ident`` runs now (the scheduler or a run-now holds its lock)."""
    try:
        with job_lock(settings, ident):
            return False
    except JobBusy:
        return True


def fire_and_record(settings: Settings, policy: Policy, kind: str, *, trigger: str,
                    at: dt.datetime | None = None, progress: Progress | None = None
                    ) -> FireOutcome:
    """Run ``policy``'s ``kind`` job in this process under its lock, recorded in the history
    as the scheduler records its own fires (``run-now``; the demo's simulated clock).

    Raises:
        JobBusy: the job runs already.
        WorkbenchError: the job failed (recorded ``failed`` first).
    """
    ident = job_id(policy.instance, kind)
    engine = store_engine(settings)
    try:
        record = History(engine)
        with job_lock(settings, ident):
            record.record(ident, "started", trigger=trigger, scheduled_for=at)
            try:
                outcome = run_policy_job(policy, kind, settings, at=at, trigger=trigger,
                                         progress=progress)
            except BaseException as error:
                record.record(ident, "failed", trigger=trigger, scheduled_for=at,
                              run_ids=_run_ids_of(error), detail=_first_line(error))
                raise
            record.record(ident, "finished", trigger=trigger, scheduled_for=at,
                          run_ids=outcome.run_ids, detail=outcome.note)
            return outcome
    finally:
        engine.dispose()


def _nudge(settings: Settings) -> None:
    """Wake the running scheduler process (if any) so it sees a change to the store now."""
    import psutil

    record = read_state(settings)
    if record is None:
        return
    try:
        process = psutil.Process(int(record["pid"]))
        # A stale state file may name a pid reused by another process: SIGHUP would end it.
        if "workbench.policy.scheduler" in process.cmdline():
            process.send_signal(signal.SIGHUP)
    except (psutil.Error, ValueError, KeyError, TypeError):
        pass


def state_file(settings: Settings) -> Path:
    return settings.home / "platform" / STATE_FILE


def read_state(settings: Settings) -> dict[str, Any] | None:
    try:
        record = json.loads(state_file(settings).read_text())
        return record if isinstance(record, dict) else None
    except (OSError, ValueError):
        return None


def daemon_env(settings: Settings) -> dict[str, str]:
    """The variables that give the scheduler process these settings (every field)."""
    env = settings.as_env()
    for name in Settings.model_fields:
        if name in {"project_root", "tracking_password", "webhook_secret", "tracking_uri"}:
            continue
        value = getattr(settings, name)
        if value is None:  # unset (a threshold that is off): the default says so again
            continue
        env[ENV_PREFIX + name.upper()] = (json.dumps(value) if isinstance(value, dict)
                                          else str(value))
    secret = settings.webhook_secret.get_secret_value()
    if secret:
        env[ENV_PREFIX + "WEBHOOK_SECRET"] = secret
    return env


# -- the process ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """``python -m workbench.policy.scheduler``: run the policies' schedules until SIGTERM.

    SIGHUP reloads the policy files and wakes the scheduler. Exit status 2 when a policy
    file has a problem (one line each on stderr; nothing is scheduled).
    """
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    try:
        policies = load_policies(settings.project_root, None, settings.policies_dir)
    except PolicyError as error:
        for line in error.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    service = PolicyScheduler(settings, policies)
    stop, reload = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: reload.set())
    service.start()
    path = state_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": os.getpid(), "jobs": sorted(service.desired()),
                                "started": dt.datetime.now(dt.timezone.utc).isoformat()}))
    log.info("scheduler running (pid %d) with %d schedule(s) of %d polic(ies); store %s",
             os.getpid(), len(service.desired()), len(policies),
             _shown_url(settings.scheduler_store_url))
    try:
        while not stop.wait(POLL_S):
            if reload.is_set():
                reload.clear()
                try:
                    service.policies = load_policies(settings.project_root, None,
                                                     settings.policies_dir)
                    service.sync()
                except PolicyError as error:
                    log.error("policies not reloaded: %s", error)
            service.wakeup()
    finally:
        log.info("scheduler stopping")
        service.shutdown(wait=False)
        try:
            if (read_state(settings) or {}).get("pid") == os.getpid():
                path.unlink()
        except OSError:
            pass
    return 0


def _shown_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    sys.exit(main())
