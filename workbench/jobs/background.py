"""Jobs started from a long-lived process (the Jupyter server), each in its own subprocess.

A background job is ``workbench run`` in a child process: the same command, checks, MLflow
run and output notebook as on the command line, and the same way to stop it. Cancelling sends
SIGINT, as Ctrl-C in a terminal does: the runner interrupts the kernel, papermill saves the
notebook up to the interrupted cell, the run ends KILLED and the CLI exits 124. Only a job that
has not stopped ``grace_s`` after that is killed (its process group), and its run marked
KILLED here. A subprocess rather than a thread because a job must be stoppable without
stopping the server, and papermill's kernel handling is not meant to share an event loop.

The manager keeps each job's log (the CLI's progress lines) and the progress of its cells in
memory while the server runs; the MLflow run and the output notebook are the record.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from workbench.config import Settings
from workbench.errors import JobKilled, ParameterError, WorkbenchError
from workbench.jobs.executors import executors
from workbench.jobs.params import check_parameters, declared_parameters

#: How the runner announces the job's run (``runner.run_job``'s first progress line).
_STARTED = re.compile(r"-> run (?P<run_id>[0-9a-f]+) \((?P<executor>[^)]+)\); output: (?P<output>.+)$")
#: papermill's progress bar: ``Executing:  40%|####      | 2/5 [...]``.
_BAR = re.compile(r"(?P<percent>\d+)%\|.*\| *(?P<done>\d+)/(?P<total>\d+)")
LOG_LINES = 2000
STATUSES = ("STARTING", "RUNNING", "FINISHED", "FAILED", "KILLED")


@dataclass
class BackgroundJob:
    """One job the manager started.

    Attributes:
        id: the manager's id (the MLflow run id is known once the run exists).
        status: STARTING (no run yet), RUNNING, then FINISHED, FAILED or KILLED.
        cells_done, cells_total: papermill's progress through the notebook's cells.
        error: the job's one-line error when it did not finish.
    """

    id: str
    notebook: Path
    parameters: dict[str, Any]
    executor: str
    timeout: float
    image: str | None
    started_at: float
    status: str = "STARTING"
    run_id: str | None = None
    output_notebook: str | None = None
    cells_done: int = 0
    cells_total: int = 0
    error: str | None = None
    ended_at: float | None = None
    cancel_requested: bool = False
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    lines_dropped: int = 0
    #: ``<instance>.<kind>`` for a policy job fired now (``workbench schedule run-now``).
    schedule: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        return self.status in ("FINISHED", "FAILED", "KILLED")

    def as_dict(self, log_from: int | None = None) -> dict[str, Any]:
        """JSON-ready; with ``log_from`` the log lines from that line number on."""
        data = {
            "id": self.id, "notebook": str(self.notebook), "parameters": self.parameters,
            "executor": self.executor, "timeout": self.timeout, "image": self.image,
            "status": self.status, "run_id": self.run_id,
            "output_notebook": self.output_notebook,
            "progress": {"done": self.cells_done, "total": self.cells_total},
            "error": self.error, "started_at": self.started_at, "ended_at": self.ended_at,
            "log_lines": self.lines_dropped + len(self.log), "schedule": self.schedule,
        }
        if log_from is not None:
            lines = list(self.log)
            data["log"] = lines[max(log_from - self.lines_dropped, 0):]
            data["log_from"] = max(log_from, self.lines_dropped)
        return data


class JobManager:
    """Starts, follows and cancels background jobs for one settings.

    Args:
        settings: the workbench settings (tracking URI, project root) the jobs run with.
        grace_s: how long a cancelled job has to save its notebook before it is killed.
    """

    def __init__(self, settings: Settings, grace_s: float = 60.0) -> None:
        self.settings = settings
        self.grace_s = grace_s
        self._jobs: dict[str, BackgroundJob] = {}
        self._lock = threading.Lock()

    def submit(self, notebook: Path, parameters: dict[str, Any], *, executor: str | None = None,
               timeout: float = 0.0, image: str | None = None) -> BackgroundJob:
        """Check the job, then start it; returns at once.

        Raises:
            ParameterError: a parameter the notebook does not declare, or of the wrong type,
                or a negative timeout (nothing is started).
            ConfigError: an unknown executor.
        """
        executor = executor or self.settings.executor
        if timeout < 0:
            raise ParameterError("timeout must be 0 (no limit) or a number of seconds",
                                 parameter="timeout")
        executors.get(executor)  # an unknown name is an error before anything starts
        checked = check_parameters(notebook, parameters, declared_parameters(notebook))
        job = BackgroundJob(id=uuid.uuid4().hex[:12], notebook=notebook, parameters=checked,
                            executor=executor, timeout=timeout, image=image,
                            started_at=time.time())
        command = [sys.executable, "-m", "workbench.cli", "run", str(notebook),
                   "--executor", executor, "-y", json.dumps(checked)]
        if timeout:
            command += ["--timeout", str(timeout)]
        if image:
            command += ["--image", image]
        return self._start(job, command)

    def run_schedule(self, ident: str) -> BackgroundJob:
        """Fire the policy job ``ident`` (``churn.drift``) now, as ``workbench schedule
        run-now`` does (it is that command, in the background); returns at once. The
        scheduler's history records it as run-now.

        Raises:
            PolicyError: a policy file has a problem.
            ScheduleNotFound: no policy has that job.
            JobBusy: the job runs already (the scheduler or another run-now).
        """
        from workbench.policy.scheduler import JobBusy, job_busy, policy_job
        from workbench.policy.schema import resolve_notebook

        policy, kind = policy_job(self.settings, ident)
        # This server's own run-now holds the lock only once its process has started.
        mine = any(j.schedule == ident and not j.done for j in self.jobs())
        if mine or job_busy(self.settings, ident):
            raise JobBusy(f"{ident} is running already (the scheduler or a run-now); wait "
                          "for it to finish")
        notebook = policy.notebook_job(kind)
        job = BackgroundJob(id=uuid.uuid4().hex[:12],
                            notebook=resolve_notebook(notebook.notebook, self.settings.project_root),
                            parameters=dict(notebook.parameters),
                            executor=notebook.executor or self.settings.executor,
                            timeout=notebook.timeout or 0.0, image=None, started_at=time.time(),
                            schedule=ident)
        return self._start(job, [sys.executable, "-m", "workbench.cli", "schedule", "run-now",
                                 ident])

    def _start(self, job: BackgroundJob, command: list[str]) -> BackgroundJob:
        env = {**os.environ, **self.settings.as_env(), "PYTHONUNBUFFERED": "1"}
        # Its own session: cancelling or killing it never reaches the server.
        job.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, env=env,
                                       cwd=self.settings.project_root, start_new_session=True)
        with self._lock:
            self._jobs[job.id] = job
        threading.Thread(target=self._follow, args=(job,), daemon=True,
                         name=f"workbench-job-{job.id}").start()
        return job

    def jobs(self) -> list[BackgroundJob]:
        """Every job of this manager, newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: -j.started_at)

    def get(self, job_id: str) -> BackgroundJob:
        """Raises: JobNotFound: no job has that id."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r} in this server (jobs live as long as it does; "
                              "their runs stay in MLflow)")
        return job

    def cancel(self, job_id: str) -> BackgroundJob:
        """Stop a job as Ctrl-C would (it ends KILLED, its notebook kept); returns at once.

        Raises:
            JobNotFound: no job has that id.
        """
        job = self.get(job_id)
        if job.done or job.process is None:
            return job
        job.cancel_requested = True
        _signal(job.process, signal.SIGINT, group=False)
        threading.Thread(target=self._kill_after_grace, args=(job,), daemon=True).start()
        return job

    def wait(self, job_id: str, timeout: float | None = None) -> BackgroundJob:
        """Block until the job is done (or ``timeout`` passes); for scripts and tests."""
        job = self.get(job_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not job.done and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)
        return job

    def shutdown(self) -> None:
        """Cancel every running job (the server is stopping)."""
        for job in self.jobs():
            if not job.done:
                self.cancel(job.id)

    # -- following a job ---------------------------------------------------------------------
    def _follow(self, job: BackgroundJob) -> None:
        process = job.process
        assert process is not None and process.stdout is not None and process.stderr is not None
        stdout: list[bytes] = []
        reader = threading.Thread(target=lambda: stdout.append(process.stdout.read()),  # type: ignore[union-attr]
                                  daemon=True)
        reader.start()
        self._read_log(job, process.stderr)
        code = process.wait()
        reader.join(timeout=10)
        result = _json_or_none(b"".join(stdout))
        if result:
            job.run_id = result.get("run_id", job.run_id)
            job.output_notebook = result.get("output_notebook", job.output_notebook)
        if code == 0:
            job.status = "FINISHED"
        else:
            job.status = "KILLED" if code in (JobKilled.exit_code, -signal.SIGKILL) else "FAILED"
            errors = [line for line in job.log if line.startswith("error: ")]
            job.error = errors[-1][len("error: "):] if errors else f"exit status {code}"
        job.ended_at = time.time()

    def _read_log(self, job: BackgroundJob, stream: IO[bytes]) -> None:
        pending = b""
        for chunk in iter(lambda: stream.read1(4096), b""):  # type: ignore[attr-defined]
            pending += chunk
            # tqdm redraws its bar with \r; each redraw is progress, not a log line.
            *lines, pending = re.split(rb"[\r\n]", pending)
            for raw in lines:
                self._line(job, raw.decode("utf-8", "replace").rstrip())
        if pending:
            self._line(job, pending.decode("utf-8", "replace").rstrip())

    def _line(self, job: BackgroundJob, line: str) -> None:
        if not line:
            return
        bar = _BAR.search(line)
        if bar:
            job.cells_done, job.cells_total = int(bar["done"]), int(bar["total"])
            return
        started = _STARTED.search(line)
        if started and job.run_id is None:
            job.run_id, job.output_notebook = started["run_id"], started["output"].strip()
            job.status = "RUNNING"
        if len(job.log) == job.log.maxlen:
            job.lines_dropped += 1
        job.log.append(line)

    def _kill_after_grace(self, job: BackgroundJob) -> None:
        process = job.process
        if process is None:
            return
        try:
            process.wait(timeout=self.grace_s)
            return
        except subprocess.TimeoutExpired:
            pass
        _signal(process, signal.SIGKILL, group=True)
        if job.run_id:
            from workbench.tracking import end_runs, make_client

            try:
                end_runs(make_client(self.settings), [job.run_id], "KILLED")
            except Exception as exc:  # the job is dead either way; say why the run is not
                job.log.append(f"warning: could not mark run {job.run_id} KILLED: {exc}")


class JobNotFound(WorkbenchError, LookupError):
    """No background job has that id."""


def _signal(process: subprocess.Popen[bytes], signum: int, group: bool) -> None:
    try:
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
    except (ProcessLookupError, PermissionError):
        pass


def _json_or_none(data: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(data.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return value if isinstance(value, dict) else None
