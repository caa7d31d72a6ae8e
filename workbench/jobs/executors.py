"""Executors: where a prepared job's notebook runs. A registry maps names to executors so
that a new one (``docker``) plugs in without touching callers, like papermill's engines.

An executor runs the notebook and writes the output notebook; it raises
``papermill.PapermillExecutionError`` when a cell fails, ``JobTimeout`` past the deadline
and lets ``KeyboardInterrupt`` through. The runner owns the MLflow run and the statuses.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

from workbench.errors import ConfigError
from workbench.jobs.spec import JobSpec, PreparedJob

if TYPE_CHECKING:
    from workbench.config import Settings

Progress = Callable[[str], None]


class JobTimeout(Exception):
    """The job ran past its timeout."""


class Executor(Protocol):
    name: str

    def check(self, spec: JobSpec, settings: Settings) -> dict[str, str]:
        """Check what the executor needs before the job's run exists (nothing is started
        when this raises); return run tags that describe where the job will run."""

    def execute(self, job: PreparedJob, progress: Progress, show_progress: bool) -> dict[str, str]:
        """Run the job; return extra run tags (e.g. the image id a container used)."""


class ExecutorRegistry:
    """Name -> executor factory; ``executors.register("docker", DockerExecutor)``."""

    def __init__(self) -> None:
        self._factories: dict[str, Callable[[], Executor]] = {}

    def register(self, name: str, factory: Callable[[], Executor]) -> None:
        self._factories[name] = factory

    def get(self, name: str) -> Executor:
        try:
            return self._factories[name]()
        except KeyError:
            raise ConfigError(
                f"unknown executor {name!r}; available: {', '.join(sorted(self._factories))}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._factories)


class LocalExecutor:
    """papermill in this process, in a fresh kernel on this machine."""

    name = "local"

    def check(self, spec: JobSpec, settings: Settings) -> dict[str, str]:
        return {}

    def execute(self, job: PreparedJob, progress: Progress, show_progress: bool) -> dict[str, str]:
        import papermill

        with _environment(job.env), _deadline(job.timeout):
            papermill.execute_notebook(
                str(job.notebook),
                str(job.output_notebook),
                parameters=job.parameters,
                kernel_name=job.kernel_name,
                cwd=str(job.cwd),
                progress_bar=show_progress,
                # Per-cell backstop where the whole-job alarm cannot be armed (not main thread).
                execution_timeout=int(job.timeout) + 1 if job.timeout else None,
            )
        return {}


@contextlib.contextmanager
def _environment(changes: dict[str, str]) -> Iterator[None]:
    # The kernel inherits this process's environment when papermill starts it; that is the
    # only way papermill offers to hand a kernel the run id and tracking URI.
    saved = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise JobTimeout in the main thread after ``seconds`` (0: no deadline)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise JobTimeout(f"timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _docker_executor() -> Executor:
    # Imported on use: the docker SDK is an optional extra.
    from workbench.jobs.docker_executor import DockerExecutor

    return DockerExecutor()


executors = ExecutorRegistry()
executors.register("local", LocalExecutor)
executors.register("docker", _docker_executor)
