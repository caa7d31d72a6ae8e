"""The workbench's exceptions: one root, subclasses that carry what a caller needs.

Faces turn these into one line: the CLI prints ``error: <message>`` and exits non-zero, the
magics raise ``UsageError``. Every message says what is wrong and how to fix it.
"""
from __future__ import annotations

from pathlib import Path


class WorkbenchError(Exception):
    """Root of every error the workbench raises on purpose."""

    exit_code = 1


class ConfigError(WorkbenchError):
    """A setting has a value that cannot be used."""


class InvalidModelName(WorkbenchError, ValueError):
    """A model name or reference breaks the naming convention.

    Attributes:
        part: which part is wrong (``instance``, ``version``, ``data_date`` or ``name``).
    """

    def __init__(self, message: str, part: str = "name") -> None:
        super().__init__(message)
        self.part = part


class ModelNotFound(WorkbenchError, LookupError):
    """A model reference resolves to nothing in the registry."""


class ModelAlreadyRegistered(WorkbenchError):
    """A full model name is registered already; full names are immutable."""


class UnsupportedModel(WorkbenchError, TypeError):
    """An object that the registry does not know how to log."""


class PlatformError(WorkbenchError):
    """The tracking platform cannot be started, reached or stopped."""


class PortBusy(PlatformError):
    """Another process listens on the port the platform wants."""


class TrackingError(WorkbenchError):
    """A tracking call (run start, resume, end) cannot be done."""


class ParameterError(WorkbenchError):
    """Job parameters do not match the notebook's ``parameters`` cell."""

    exit_code = 2


class JobFailed(WorkbenchError):
    """A job's notebook raised in a cell.

    Attributes:
        output_notebook: where the executed notebook, error included, was saved.
        run_id: the job's MLflow run, now FAILED.
    """

    def __init__(self, message: str, output_notebook: Path, run_id: str | None) -> None:
        super().__init__(message)
        self.output_notebook = output_notebook
        self.run_id = run_id


class JobKilled(JobFailed):
    """A job ran past its timeout or was interrupted; its run is KILLED."""

    exit_code = 124


class MissingDependency(WorkbenchError, ImportError):
    """An optional extra is not installed."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed; install it with: pip install 'mlops-workbench[{extra}]'"
        )
        self.package = package
        self.extra = extra
