"""What a job is: a notebook, its parameters, where it runs, and what it produced."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class JobSpec:
    """A request to run a notebook as a job.

    Attributes:
        notebook: the notebook to execute (its ``parameters`` cell defines what can be set).
        parameters: values for the ``parameters`` cell; strings from the command line are
            converted to the type of the notebook's default.
        executor: name of a registered executor (``local``; ``docker`` later).
        experiment: MLflow experiment of the job's run; defaults to the ``instance``
            parameter when the notebook has one, else the settings' experiment.
        timeout: seconds before the job is killed (0: no limit).
        kernel_name: Jupyter kernel to run in (the notebook's own by default).
        image: container image, for executors that run one.
    """

    notebook: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    executor: str = "local"
    experiment: str | None = None
    timeout: float = 0.0
    kernel_name: str | None = None
    image: str | None = None


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
