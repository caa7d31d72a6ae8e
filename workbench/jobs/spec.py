"""What a job is: a notebook, its parameters, where it runs, and what it produced.

Also the contract between the runner and an executor (``Executor``, ``Progress``,
``JobTimeout``), so executors and the runner depend on this module and not on each other.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from workbench.progress import Progress

if TYPE_CHECKING:
    from workbench.config import Settings

"""Receives one line of progress for the user (the CLI prints it on stderr)."""


class JobTimeout(Exception):
    """The job ran past its timeout (raised by an executor; the runner marks the run KILLED)."""


@dataclass(frozen=True)
class JobSpec:
    """A request to run a notebook as a job.

    Attributes:
        notebook: the notebook to execute (its ``parameters`` cell defines what can be set).
        parameters: values for the ``parameters`` cell; strings from the command line are
            converted to the type of the notebook's default.
        executor: name of a registered executor (``local``, ``docker``).
        experiment: MLflow experiment of the job's run; defaults to the ``instance``
            parameter when the notebook has one, else the settings' experiment.
        timeout: seconds before the job is killed (0: no limit).
        kernel_name: Jupyter kernel to run in (the notebook's own by default).
        image: container image, for executors that run one.
        tags: extra tags for the job's run (a scheduled job's policy and trigger).
    """

    notebook: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    executor: str = "local"
    experiment: str | None = None
    timeout: float = 0.0
    kernel_name: str | None = None
    image: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PreparedJob:
    """A checked job, ready for an executor: everything resolved to concrete values."""

    notebook: Path
    output_notebook: Path
    parameters: dict[str, Any]
    env: dict[str, str]
    cwd: Path
    timeout: float
    kernel_name: str | None
    image: str | None


@dataclass(frozen=True)
class JobResult:
    """A finished job: its run, status and executed notebook."""

    run_id: str
    experiment_id: str
    status: str
    output_notebook: Path
    duration_s: float
    url: str


class Executor(Protocol):
    """Where a prepared job's notebook runs.

    An executor runs the notebook and writes the output notebook whichever way the job
    ends; it raises ``papermill.PapermillExecutionError`` (or an exception with ``ename``,
    ``evalue`` and ``exec_count``) when a cell fails, ``JobTimeout`` past the deadline, and
    lets ``KeyboardInterrupt`` through after stopping what it started. The runner owns the
    MLflow run and the statuses.
    """

    name: str

    def check(self, spec: JobSpec, settings: Settings) -> dict[str, str]:
        """Check what the executor needs before the job's run exists (nothing is started
        when this raises); return run tags that describe where the job will run."""

    def execute(self, job: PreparedJob, progress: Progress, show_progress: bool) -> dict[str, str]:
        """Run the job; return extra run tags (e.g. the image id a container used)."""
