"""Job kernels: a fresh kernel per job, given the job's environment, over IPC, under a deadline.

Nothing here touches this process's ``os.environ`` or its signal handlers, so a job can be
started from any thread (a widget callback, a notebook's kernel). The environment reaches the
kernel through its kernel manager, the deadline is a watchdog thread that interrupts and then
kills the kernel process.

``python -m workbench.jobs.kernel ARGS`` is papermill's command line with these kernels as
the ``workbench`` engine; container jobs run it.
"""
from __future__ import annotations

import asyncio
import gc
import math
import os
import signal
import threading
import traceback as tb
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from papermill.engines import NBClientEngine
from traitlets import CaselessStrEnum, Dict, Unicode

from workbench.jobs.spec import JobTimeout, PreparedJob

ENGINE = "workbench"
# Seconds between the interrupt at the deadline and the kill: time for the running cell to
# raise KeyboardInterrupt and for papermill to save the notebook up to that cell.
GRACE_S = 5.0


class JobKernelManager(AsyncKernelManager):
    """The kernel manager of job kernels.

    The kernel talks to papermill over IPC (Unix sockets in Jupyter's runtime folder) instead
    of TCP on the loopback: no port is open to other local users, and ipykernel has no reason
    to warn about unencrypted TCP in the job's output. The kernel's environment is this
    process's plus ``job_env``. The kernel process's own output (ipykernel's log, what C
    code writes; not the cells' output, which goes to the notebook) is appended to
    ``kernel_log`` when set, so it does not interleave with the workbench's lines.
    ``for_job`` makes the subclass one job uses.
    """

    transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)
    job_env = Dict(key_trait=Unicode(), value_trait=Unicode()).tag(config=True)
    kernel_log = Unicode("").tag(config=True)

    @staticmethod
    def on_start(manager: JobKernelManager) -> None:
        """Called with the manager once its kernel runs."""

    @classmethod
    def for_job(cls, env: Mapping[str, str], on_start: Callable[[JobKernelManager], None],
                kernel_log: str = "") -> type[JobKernelManager]:
        """A subclass whose kernels get ``env``, write to ``kernel_log`` and report to
        ``on_start``.

        nbclient creates the manager from a class (and deep-copies its configuration, which
        a callback does not survive), so the job's values travel as class attributes.
        """
        return type("JobKernelManager", (cls,), {
            "job_env": Dict(default_value=dict(env), key_trait=Unicode(), value_trait=Unicode()),
            "on_start": staticmethod(on_start),
            "kernel_log": Unicode(kernel_log),
        })

    # AsyncKernelManager's start_kernel is a coroutine where KernelManager's is not.
    async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
        if self.transport == "ipc":
            # One socket path per kernel: jupyter_client's default is relative to the working
            # folder and shared by every kernel started there.
            from jupyter_core.paths import jupyter_runtime_dir

            runtime = jupyter_runtime_dir()
            os.makedirs(runtime, exist_ok=True)
            self.ip = os.path.join(runtime, f"workbench-job-{uuid.uuid4().hex[:12]}-ipc")
        kw["env"] = {**os.environ, **kw.get("env", {}), **self.job_env}
        if not self.kernel_log:
            await super().start_kernel(**kw)
        else:
            # The kernel keeps its own descriptor; a job kernel is never restarted, so this
            # handle is not needed after the start.
            with open(self.kernel_log, "ab") as log:
                kw["stdout"] = kw["stderr"] = log
                await super().start_kernel(**kw)
        self.on_start(self)


class JobEngine(NBClientEngine):
    """papermill's nbclient engine, running the notebook in a ``JobKernelManager`` kernel."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        kwargs.setdefault("kernel_manager_class", JobKernelManager)
        return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)


class Watchdog:
    """Stops a job's kernel once ``seconds`` have passed (0: never).

    First an interrupt, as Jupyter's interrupt button does: the running cell raises
    KeyboardInterrupt and papermill saves the notebook up to that cell. A kernel still busy
    ``grace`` seconds later is killed. Use it as a context manager around the execution and
    hand ``attach`` to the kernel manager as its ``on_start``.
    """

    def __init__(self, seconds: float, grace: float = GRACE_S) -> None:
        self.seconds, self.grace = seconds, grace
        self.expired = threading.Event()
        self._done = threading.Event()
        self._manager: Any = None
        self._thread: threading.Thread | None = None

    def attach(self, manager: Any) -> None:
        self._manager = manager
        if self.expired.is_set():  # the deadline passed while the kernel was starting
            self._signal(signal.SIGKILL)

    def __enter__(self) -> Watchdog:
        if self.seconds:
            self._thread = threading.Thread(target=self._watch, name="workbench-job-watchdog",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self) -> None:
        if self._done.wait(self.seconds):
            return
        self.expired.set()
        self._signal(signal.SIGINT)
        if not self._done.wait(self.grace):
            self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        process = getattr(getattr(self._manager, "provisioner", None), "process", None)
        if process is None or process.poll() is not None:
            return
        try:
            # jupyter_client starts the kernel as the leader of its own session, so its
            # group is the kernel and whatever the notebook started.
            os.killpg(process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def execute(job: PreparedJob, show_progress: bool) -> None:
    """Run ``job``'s notebook with papermill in a fresh job kernel; write its output notebook
    and, beside it, the kernel's own log.

    Raises:
        JobTimeout: the job ran past ``job.timeout`` (the notebook is saved up to there).
        papermill.PapermillExecutionError: a cell raised.
        KeyboardInterrupt: passed through; papermill saves the notebook and stops the kernel.
    """
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    watchdog = Watchdog(job.timeout)
    try:
        with watchdog, _LoopErrorsToLog(kernel_log(job)):
            papermill.execute_notebook(
                str(job.notebook),
                str(job.output_notebook),
                parameters=job.parameters,
                kernel_name=job.kernel_name,
                cwd=str(job.cwd),
                progress_bar=show_progress,
                kernel_manager_class=JobKernelManager.for_job(
                    job.env, watchdog.attach, str(kernel_log(job))),
                # nbclient's own per-cell limit backs the watchdog up: no cell may outlast
                # the job, its interrupt and its kill.
                execution_timeout=math.ceil(job.timeout + 2 * GRACE_S) if job.timeout else None,
            )
    except (CellTimeoutError, DeadKernelError) as exc:
        if watchdog.expired.is_set() or isinstance(exc, CellTimeoutError):
            raise JobTimeout(f"timed out after {job.timeout:g} s") from exc
        raise
    except Exception as exc:
        if watchdog.expired.is_set():
            raise JobTimeout(f"timed out after {job.timeout:g} s") from exc
        raise
    finally:
        log = kernel_log(job)
        if log.is_file() and not log.stat().st_size:
            log.unlink()  # a quiet kernel leaves no empty file behind


class _LoopErrorsToLog:
    """Write what nbclient's event loop reports about its own tasks to ``log``.

    When a job is interrupted (Ctrl-C, the watchdog), nbclient's pending cell task wakes up
    during the kernel's shutdown and ends with ``DeadKernelError``; nobody awaits it any more,
    so asyncio reports "Task exception was never retrieved" with a traceback on stderr, at
    whatever moment the task is collected. That is the stopped kernel's last word: it belongs
    in the kernel's log beside the notebook, not among the workbench's lines. The loop is the
    one ``run_sync`` uses in this thread (none to adjust when a loop is already running here:
    nbclient then runs in a thread of its own).
    """

    def __init__(self, log: Path) -> None:
        self.log = log
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: Any = None

    def __enter__(self) -> _LoopErrorsToLog:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            from jupyter_core.utils import ensure_event_loop

            self._loop = ensure_event_loop()
            self._previous = self._loop.get_exception_handler()
            self._loop.set_exception_handler(self._handle)
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if self._loop is None:
            return
        if exc_type is not None:
            # Leaving on an interrupt or a failure: the exception's traceback still holds the
            # frames that hold the abandoned task, so it is collected (and reported) only after
            # the exception is handled, after this block. The handler stays for that report;
            # the next job's block replaces it.
            return
        gc.collect()  # report abandoned tasks now, while this handler is in place
        self._loop.set_exception_handler(self._previous)

    def _handle(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        lines = [str(context.get("message", "event loop error"))]
        if isinstance(error, BaseException):
            lines += tb.format_exception(error)
        try:
            with open(self.log, "a", encoding="utf-8") as out:
                out.write("\n".join(line.rstrip("\n") for line in lines) + "\n")
        except OSError:
            # No log to write to: fall back to asyncio's own report rather than lose it.
            (self._previous or type(loop).default_exception_handler)(loop, context)


def kernel_log(job: PreparedJob) -> Path:
    """Where a local job's kernel process writes its own output: beside the output notebook
    (the runner logs it to the run with the notebook)."""
    return job.output_notebook.with_suffix(".log")


def main(argv: Sequence[str] | None = None) -> None:
    """papermill's command line, with ``--engine workbench`` running job kernels."""
    from papermill.cli import papermill as papermill_cli
    from papermill.engines import papermill_engines

    papermill_engines.register(ENGINE, JobEngine)
    papermill_cli.main(args=list(argv) if argv is not None else None, prog_name="papermill")


if __name__ == "__main__":
    main()
