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


class PromotionRefused(WorkbenchError):
    """A promotion gate failed; the alias stays where it was.

    Attributes:
        gates: the names of the gates that failed (``metric``, ``drift``, ``performance``).
        alias: the alias that was not moved.
        candidate: the label of the instance that was refused.
        summary: what is wrong, without the hint on how to override (faces give their own).
    """

    def __init__(self, summary: str, gates: tuple[str, ...], alias: str, candidate: str,
                 hint: str = "to promote it anyway, override the gate with a reason") -> None:
        super().__init__(f"{summary}; {hint}" if hint else summary)
        self.summary = summary
        self.gates = gates
        self.alias = alias
        self.candidate = candidate


class OverrideNeedsReason(WorkbenchError, ValueError):
    """A promotion gate override was asked for without saying why."""


class PlatformError(WorkbenchError):
    """The tracking platform cannot be started, reached or stopped."""


class PortBusy(PlatformError):
    """Another process listens on the port the platform wants."""


class TrackingError(WorkbenchError):
    """A tracking call (run start, resume, end) cannot be done."""


class TrackingNotFound(TrackingError, LookupError):
    """No run or experiment has that id or name."""


class ParameterError(WorkbenchError):
    """Job parameters do not match the notebook's ``parameters`` cell.

    Attributes:
        parameter: the parameter (or request field) at fault, when there is one.
    """

    exit_code = 2

    def __init__(self, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


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


class MonitoringError(WorkbenchError):
    """A drift check (or a comparison, a label join, a performance check) cannot be made from
    what it was given (exit status 2).

    The drift command keeps exit status 1 for "drift found", so every reason a check cannot
    run at all (bad input, an unreachable store) exits with 2.
    """

    exit_code = 2


class UnknownMonitoredModel(MonitoringError, ModelNotFound):
    """The model a drift check names does not exist (or the reference is malformed)."""


class ProfileError(MonitoringError, ValueError):
    """A reference profile cannot be built from a frame, or a stored one cannot be read."""


class ProfileNotFound(MonitoringError, LookupError):
    """A model version has no reference profile to check drift against."""


class NoCurrentData(MonitoringError):
    """There is nothing to compare: an empty file, or no predictions in the time window."""


class SchemaMismatch(MonitoringError, ValueError):
    """Current data lacks the model's input columns, or holds a different kind of value.

    Attributes:
        missing: input columns the current data lacks.
    """

    def __init__(self, message: str, missing: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.missing = missing


class DriftDetected(WorkbenchError):
    """A drift check's verdict is ``drift`` (exit status 1).

    Attributes:
        drifted: the names of the drifted features (``prediction`` for the model's output).
        run_id: the monitoring run that holds the report, when one was logged.
    """

    def __init__(self, message: str, drifted: tuple[str, ...] = (),
                 run_id: str | None = None) -> None:
        super().__init__(message)
        self.drifted = drifted
        self.run_id = run_id


class DockerError(WorkbenchError):
    """The Docker engine cannot be reached, or refused a request."""


class ImageNotFound(DockerError, LookupError):
    """An image a command needs is not on the engine; the message says how to build it."""


class ImageBuildFailed(DockerError):
    """``docker build`` failed.

    Attributes:
        image: the tag that was being built.
        log_tail: the last lines of the build log, where the cause usually is.
    """

    def __init__(self, message: str, image: str, log_tail: str) -> None:
        super().__init__(f"{message}\n--- last lines of the build log ---\n{log_tail}")
        self.image = image
        self.log_tail = log_tail


class WheelhouseError(WorkbenchError):
    """The host could not resolve the wheels an image installs (pip failed)."""


class ProjectError(WorkbenchError):
    """``workbench new`` or ``workbench template update`` cannot do what was asked: a folder
    in the way, a data file that cannot be read, a target or task that does not fit (exit
    status 2; nothing was written)."""

    exit_code = 2
