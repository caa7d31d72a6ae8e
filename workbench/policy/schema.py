"""The retraining policy of one model instance, as a file: ``policies/<instance>.yaml``.

A policy says where each period's data is, when the platform retrains, scores and checks
the instance, what makes it retrain early, and what a retrained candidate may become without
a human. It is read with pydantic (unknown keys are errors, values are typed), then checked
against the project: the notebooks exist, the parameters it sets are parameters of those
notebooks and of the right type (``workbench.jobs.params``), the cron expressions parse, the
instance name keeps the naming rules (``workbench.naming``). ``check_policy_file`` returns every
problem as one line; ``load_policy`` raises :class:`PolicyError` with all of them.

Example (every key but ``instance``, ``data.path`` and ``data.label_column`` has a default)::

    instance: churn
    timezone: Europe/Amsterdam
    data:
      path: data/churn_{data_date}.csv
      next_data_date: month_end
      label_column: churned
    schedules:
      drift: {cron: "0 6 1 * *"}
      batch: {cron: "0 5 1 * *"}
    triggers:
      drift: true
      performance: {below: 0.80, drop: 0.03, window: month}
    retrain: {version: champion, parameters: {test_size: 0.25, seed: 42}}
    promotion: {challenger: auto, champion: manual}
"""
from __future__ import annotations

import datetime as dt
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from workbench.errors import InvalidModelName, ParameterError, WorkbenchError
from workbench.naming import check_instance, check_version, format_data_date

#: The kinds of scheduled job a policy can name, in the order a period is handled.
JOB_KINDS = ("batch", "drift", "performance", "retrain")
#: Parameters the scheduler sets itself on each notebook (the policy may not set them).
AUTOMATIC_PARAMETERS = {
    "retrain": ("instance", "version", "data_date", "data_path"),
    "batch": ("model_ref", "input_path", "output_path"),
    "drift": ("model_ref", "current_path"),
}
NEWEST_LABELLED = "newest_labelled"
CHAMPION = "champion"
DEFAULT_POLICIES_DIR = "policies"


class PolicyError(WorkbenchError):
    """A policy file cannot be used; ``problems`` holds one line per error (exit status 2)."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems) if len(problems) < 2
                         else f"{len(problems)} problems: " + "; ".join(problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Schedule(_Strict):
    """When a job runs: a five-field cron expression in a time zone (the policy's by default)."""

    cron: str
    timezone: str | None = None


class DataSpec(_Strict):
    """Where the data of each period is and how the period a job works on is chosen.

    Attributes:
        path: a path pattern with ``{data_date}`` (``YYYYMMDD``), relative to the project root.
        next_data_date: ``month_end`` (the last month end before the fire's day), ``week_end``
            (the last Sunday before it) or ``day`` (the day before it).
        label_column: the column holding the ground truth; a period is *labelled* when its
            file has that column with values in it.
    """

    path: str
    next_data_date: Literal["month_end", "week_end", "day"] = "month_end"
    label_column: str

    @field_validator("path")
    @classmethod
    def _one_placeholder(cls, value: str) -> str:
        fields = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
        if fields != ["data_date"]:
            raise ValueError(f"path {value!r} must hold {{data_date}} exactly once and no other "
                             "placeholder (e.g. data/churn_{data_date}.csv)")
        return value


class PerformanceTrigger(_Strict):
    """Retrain when the primary metric on labelled predictions decays.

    Attributes:
        metric: the metric (default: the settings' ``primary_metric``).
        below: fire when the latest window's value is below this.
        drop: fire when it fell by more than this since the previous window (the margin).
        window: the window the metric is computed over (``month``, ``week``, ``day``).
    """

    metric: str | None = None
    below: float | None = None
    drop: float | None = Field(default=None, gt=0)
    window: Literal["month", "week", "day"] = "month"


class Triggers(_Strict):
    """What makes the policy propose a retrain besides the retrain schedule."""

    drift: bool = True
    performance: PerformanceTrigger | None = None


class NotebookJob(_Strict):
    """A notebook a scheduled job runs, with extra parameters for its ``parameters`` cell."""

    notebook: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    executor: str | None = None
    timeout: float = 0.0


class RetrainJob(NotebookJob):
    """Which version is retrained (``champion``: the champion's, or ``v<N>``) with which notebook."""

    notebook: str = "notebooks/train.ipynb"
    version: str = CHAMPION

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if value != CHAMPION:
            try:
                check_version(value)
            except InvalidModelName as exc:
                raise ValueError(f"{exc} or 'champion'") from None
        return value


class BatchJob(NotebookJob):
    notebook: str = "notebooks/batch_predict.ipynb"


class DriftJob(NotebookJob):
    notebook: str = "notebooks/monitor.ipynb"


class Evaluation(_Strict):
    """What champion and candidate are judged on, the same rows for both.

    Attributes:
        data: ``newest_labelled`` (the newest period, up to the one retrained on, whose file
            has labels) or a ``YYYYMMDD`` data_date.
        holdout: the share of a period the train notebook holds out (its ``test_size``);
            when the evaluation period is the one the candidate was trained on, only those
            held-out rows are scored, split as the notebook splits them (same ``seed``).
        seed: the split's seed (the train notebook's ``seed``).
        traffic_since: window of logged traffic the two are compared on (agreement rate).
        lookback: how many periods back ``newest_labelled`` searches.
    """

    data: str = NEWEST_LABELLED
    holdout: float = Field(default=0.25, gt=0, lt=1)
    seed: int = 42
    traffic_since: str = "30d"
    lookback: int = Field(default=12, ge=1)

    @field_validator("data")
    @classmethod
    def _data(cls, value: str) -> str:
        return value if value == NEWEST_LABELLED else format_data_date(value)


class PromotionRule(_Strict):
    """What a candidate may become without a human: ``auto`` or ``manual`` per alias."""

    challenger: Literal["auto", "manual"] = "auto"
    champion: Literal["auto", "manual"] = "manual"


class Policy(_Strict):
    """The retraining policy of one model instance (see the module docstring)."""

    instance: str
    timezone: str = "UTC"
    data: DataSpec
    schedules: dict[Literal["retrain", "batch", "drift", "performance"], Schedule] = Field(
        default_factory=dict)
    triggers: Triggers = Field(default_factory=Triggers)
    retrain: RetrainJob = Field(default_factory=RetrainJob)
    batch: BatchJob = Field(default_factory=BatchJob)
    drift: DriftJob = Field(default_factory=DriftJob)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    promotion: PromotionRule = Field(default_factory=PromotionRule)
    #: Seconds after its due time a missed fire still runs (once, coalesced) at start-up.
    misfire_grace_time: int = Field(default=3600, ge=1)

    @field_validator("instance")
    @classmethod
    def _instance(cls, value: str) -> str:
        try:
            return check_instance(value)
        except InvalidModelName as exc:
            raise ValueError(str(exc)) from None

    def schedule_timezone(self, kind: str) -> str:
        schedule = self.schedules[kind]  # type: ignore[index]
        return schedule.timezone or self.timezone

    def data_path(self, data_date: str, project_root: Path) -> Path:
        """The file of period ``data_date`` (absolute)."""
        path = Path(self.data.path.format(data_date=data_date))
        return path if path.is_absolute() else project_root / path

    def notebook_job(self, kind: str) -> NotebookJob:
        job: NotebookJob = getattr(self, kind)
        return job

    def data_date_at(self, when: dt.datetime) -> str:
        """The period a job fired at ``when`` works on (in the policy's time zone)."""
        return period_before(when.astimezone(zone(self.timezone)).date(), self.data.next_data_date)

    def previous_data_date(self, data_date: str) -> str:
        """The period before ``data_date``."""
        day = dt.datetime.strptime(data_date, "%Y%m%d").date()
        return period_before(day, self.data.next_data_date)


def period_before(day: dt.date, rule: str) -> str:
    """``YYYYMMDD`` of the last period end strictly before ``day`` under ``rule``."""
    if rule == "day":
        return format_data_date(day - dt.timedelta(days=1))
    if rule == "week_end":  # Sunday ends a week
        back = (day.weekday() + 1) % 7 or 7
        return format_data_date(day - dt.timedelta(days=back))
    # The fire's own month is not over yet: the month before is the last complete one.
    return format_data_date(day.replace(day=1) - dt.timedelta(days=1))


def zone(name: str) -> dt.tzinfo:
    """The time zone ``name`` (IANA, e.g. ``Europe/Amsterdam``).

    Raises:
        ValueError: no such time zone.
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name like 'UTC' or "
                         "'Europe/Amsterdam')") from None


def cron_trigger(schedule: Schedule, default_timezone: str) -> Any:
    """APScheduler's CronTrigger for ``schedule``.

    Five fields are crontab's (minute hour day month day-of-week); six put seconds first
    (``*/5 * * * * *``: every five seconds, for tests and demos). Day-of-week names
    (``mon-fri``) read the same everywhere; numbers follow APScheduler (0 is Monday).

    Raises:
        ValueError: the expression does not parse, or the time zone is unknown.
    """
    from apscheduler.triggers.cron import CronTrigger

    tz = zone(schedule.timezone or default_timezone)
    fields = schedule.cron.split()
    try:
        if len(fields) == 6:
            second, minute, hour, day, month, day_of_week = fields
            return CronTrigger(second=second, minute=minute, hour=hour, day=day, month=month,
                               day_of_week=day_of_week, timezone=tz)
        return CronTrigger.from_crontab(schedule.cron, timezone=tz)
    except (ValueError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ValueError(f"bad cron expression {schedule.cron!r} ({first}); use five fields: "
                         "minute hour day month day-of-week, e.g. '0 6 1 * *'") from None


def resolve_notebook(notebook: str, project_root: Path) -> Path:
    """The notebook a policy names: under the project root, else the shipped one of that
    name for ``notebooks/<name>`` (as ``workbench demo`` finds them)."""
    from workbench import resources

    path = Path(notebook)
    if path.is_absolute():
        return path
    if (project_root / path).is_file() or path.parent != Path("notebooks"):
        return project_root / path
    try:
        return resources.notebook(path.name, project_root)
    except WorkbenchError:
        return project_root / path


# -- reading and checking -------------------------------------------------------------------------
@dataclass(frozen=True)
class PolicyFile:
    """A policy and the file it came from."""

    path: Path
    policy: Policy


def policy_files(project_root: Path, directory: str | Path = DEFAULT_POLICIES_DIR) -> list[Path]:
    """The ``*.yaml`` / ``*.yml`` files of the policies folder, sorted (none when it is missing)."""
    folder = Path(directory)
    folder = folder if folder.is_absolute() else project_root / folder
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in {".yaml", ".yml"} and p.is_file())


def check_policy_file(path: Path, project_root: Path) -> tuple[Policy | None, list[str]]:
    """Read and check one policy file.

    Returns:
        The policy (None when it could not be read into one) and one line per problem, each
        starting with the file's name; no problems means it can be scheduled.
    """
    shown = _shown(path, project_root)
    try:
        data = _read_yaml(path)
    except WorkbenchError as exc:
        return None, [f"{shown}: {exc}"]
    try:
        policy = Policy.model_validate(data)
    except ValidationError as error:
        return None, [f"{shown}: {_location(e['loc'])}: {_message(e)}"
                      for e in error.errors(include_url=False)]
    problems = [f"{shown}: {line}" for line in _project_problems(policy, path, project_root)]
    return policy, problems


def load_policy(path: Path, project_root: Path) -> Policy:
    """The checked policy in ``path``.

    Raises:
        PolicyError: with one line per problem.
    """
    policy, problems = check_policy_file(path, project_root)
    if problems or policy is None:
        raise PolicyError(problems or [f"{path}: cannot be read"])
    return policy


def load_policies(project_root: Path, files: Iterable[Path] | None = None,
                  directory: str | Path = DEFAULT_POLICIES_DIR) -> list[PolicyFile]:
    """Every policy (of ``files``, or of the policies folder), all checked before any is used.

    Raises:
        PolicyError: any file has a problem (all problems of all files), or two files name
            the same instance.
    """
    paths = list(files) if files is not None else policy_files(project_root, directory)
    loaded: list[PolicyFile] = []
    problems: list[str] = []
    for path in paths:
        policy, found = check_policy_file(path, project_root)
        problems += found
        if policy is not None and not found:
            loaded.append(PolicyFile(path, policy))
    seen: dict[str, Path] = {}
    for item in loaded:
        other = seen.setdefault(item.policy.instance, item.path)
        if other != item.path:
            problems.append(f"{_shown(item.path, project_root)}: instance "
                            f"{item.policy.instance!r} has a policy already in "
                            f"{_shown(other, project_root)}; keep one policy per instance")
    if problems:
        raise PolicyError(problems)
    return loaded


def _project_problems(policy: Policy, path: Path, project_root: Path) -> list[str]:
    """What the schema cannot see: time zones, cron expressions, notebooks and parameters."""
    problems: list[str] = []
    try:
        zone(policy.timezone)
    except ValueError as exc:
        problems.append(f"timezone: {exc}")
    for kind, schedule in policy.schedules.items():
        try:
            cron_trigger(schedule, policy.timezone if not problems else "UTC")
        except ValueError as exc:
            problems.append(f"schedules.{kind}: {exc}")
    performance = policy.triggers.performance
    if performance is not None and performance.below is None and performance.drop is None:
        problems.append("triggers.performance: set below (a threshold) or drop (a margin), or both")
    if (performance is None) != ("performance" not in policy.schedules):
        problems.append("triggers.performance and schedules.performance go together: the "
                        "schedule says when the champion's metric is checked, the trigger what "
                        "proposes a retrain; set both or neither")
    for kind in ("retrain", "batch", "drift"):
        problems += [f"{kind}: {line}" for line in _notebook_problems(
            kind, policy.notebook_job(kind), project_root)]
    return problems


def _notebook_problems(kind: str, job: NotebookJob, project_root: Path) -> list[str]:
    from workbench.jobs.params import check_parameters, declared_parameters

    notebook = resolve_notebook(job.notebook, project_root)
    if not notebook.is_file():
        return [f"unknown notebook {job.notebook!r} (no such file under {project_root})"]
    try:
        declared = declared_parameters(notebook)
    except ParameterError as exc:
        return [str(exc)]
    problems: list[str] = []
    automatic = AUTOMATIC_PARAMETERS[kind]
    missing = [name for name in automatic if name not in declared]
    if missing:
        problems.append(f"{notebook.name} has no parameter {', '.join(map(repr, missing))}, which "
                        f"the scheduler sets for a {kind} job; it declares: {', '.join(declared)}")
    clash = sorted(set(job.parameters) & set(automatic))
    if clash:
        problems.append(f"parameters: {', '.join(map(repr, clash))} set by the scheduler "
                        "(from the period and the model); remove them from the policy")
    try:
        check_parameters(notebook, {k: v for k, v in job.parameters.items() if k not in clash},
                         declared)
    except ParameterError as exc:
        problems.append(f"parameters: {exc}")
    return problems


def _read_yaml(path: Path) -> Mapping[str, Any]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkbenchError(f"cannot be read ({exc.strerror or exc.__class__.__name__})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise WorkbenchError(f"is not valid YAML{where}; fix the file") from None
    if not isinstance(data, dict):
        raise WorkbenchError("must be a YAML mapping (instance: ..., data: ..., schedules: ...)")
    return data


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top)"


def _message(error: Mapping[str, Any]) -> str:
    kind, message = error.get("type", ""), str(error.get("msg", ""))
    if kind == "extra_forbidden":
        return "unknown key; see the policy schema in the README"
    if kind == "missing":
        return "required; add it"
    # pydantic prefixes the messages of validators' ValueErrors.
    return message.removeprefix("Value error, ")


def _shown(path: Path, project_root: Path) -> str:
    try:
        return str(path.resolve().relative_to(project_root.resolve()))
    except ValueError:
        return str(path)
