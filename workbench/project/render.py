"""Render a data scientist's project from the copier template, and update it later.

copier updates a rendered project by a three-way merge between the template version it was
rendered from, the newest version and the project as it is now. That needs the template in a
git repository with versions, and the template ships inside the Python package, which is
not one. So each user has a **template repository** (``Settings.template_repository``, by
default ``mlops-workbench/template`` in the user's data directory): before rendering or
updating, the template source (``Settings.template_source``, by default the packaged one) is
copied into it, and when that changed anything it is committed and tagged with the workbench's
version (``0.4.0``; ``0.4.0.post1``, ``.post2``... when the same version publishes other
content: an edited or a team's template). Projects are rendered from that repository at that
tag, so their ``.copier-answers.yml`` records its path and the tag they were made from, and
``workbench template update`` merges from there to the tag just published.

Nothing is written until every input is checked, and the project is rendered beside its
destination and moved into place at the end: a failure leaves no half-made folder.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench._version import __version__
from workbench.config import Settings
from workbench.errors import InvalidModelName, ProjectError
from workbench.naming import check_instance, format_data_date
from workbench.project.infer import ColumnPlan, infer_plan, read_table

#: The template shipped in the package.
PACKAGED_TEMPLATE = Path(__file__).resolve().parent / "template"
ANSWERS_FILE = ".copier-answers.yml"
#: Who commits when git has no identity configured (said in the result, never silently).
FALLBACK_IDENTITY = ("mlops-workbench", "mlops-workbench@localhost")
#: The line copier puts before the project's side of a conflict (conflict="inline").
CONFLICT_MARKER = "<<<<<<< before updating"
_EXAMPLE_ROWS = 1000


@dataclass(frozen=True)
class NewProject:
    """A rendered project.

    Attributes:
        path: its folder.
        instance: the model instance it trains.
        plan: the columns, task and metric of its model.
        data_file: the training data, inside the project.
        data_date: its cut-off (``YYYYMMDD``), the default ``data_date`` of the notebooks.
        example_data: the data was generated (no ``--data``).
        template_version: the template tag it was rendered from (``0.4.0``).
        commit: its first git commit.
        fallback_identity: git had no user configured; the first commit is by
            :data:`FALLBACK_IDENTITY`.
    """

    path: Path
    instance: str
    plan: ColumnPlan
    data_file: Path
    data_date: str
    example_data: bool
    template_version: str
    commit: str
    fallback_identity: bool


@dataclass(frozen=True)
class TemplateUpdate:
    """What ``workbench template update`` did.

    Attributes:
        path: the project.
        old_version: the template tag it was on.
        new_version: the tag it is on now (the same when there was nothing to do).
        changed: files the update changed (uncommitted: review and commit them).
        conflicts: changed files holding copier's conflict markers, to resolve by hand.
    """

    path: Path
    old_version: str
    new_version: str
    changed: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()

    @property
    def updated(self) -> bool:
        return self.old_version != self.new_version


def new_project(path: Path, instance: str, settings: Settings, *, data: Path | None = None,
                target: str | None = None, task: str | None = None,
                numeric: Sequence[str] | None = None, categorical: Sequence[str] | None = None,
                metric: str | None = None, data_date: str | dt.date | None = None,
                progress: Callable[[str], None] = lambda _: None) -> NewProject:
    """Render a project for ``instance`` into ``path``, with its data, and commit it.

    Args:
        path: the new project's folder (missing or empty).
        instance: the model instance (a lowercase slug, the naming rules').
        settings: where the template and its repository are.
        data: a ``.csv`` or ``.parquet`` file to train on (copied into ``data/raw``);
            without it the project gets example data of ``task``.
        target: the column to predict (required with ``data``).
        task: ``classification`` or ``regression``; inferred from the target when None.
        numeric: numeric feature columns (default: inferred).
        categorical: categorical feature columns (default: inferred).
        metric: the primary metric (default: by task, see ``infer_plan``).
        data_date: the data's cut-off (default: today).
        progress: receives a line per step.

    Raises:
        ProjectError: ``instance`` breaks the naming rules or ``data_date`` is no date;
            ``path`` is a file or a folder that is not empty; ``data`` without
            ``target`` or the reverse; the data cannot be read, has no such target, or the
            task does not fit it; git is missing; copier or git fail (nothing is left).
    """
    try:
        check_instance(instance)
        date = format_data_date(data_date or dt.date.today())
    except InvalidModelName as exc:  # bad input like the others: exit status 2
        raise ProjectError(str(exc)) from None
    path = Path(path).expanduser().absolute()
    if path.is_file() or (path.is_dir() and any(path.iterdir())):
        raise ProjectError(f"{path} exists and is not empty; choose a new folder (workbench new "
                           "never writes over files)")
    if data is not None and target is None:
        raise ProjectError("--data needs --target: the column of the file the model predicts")
    if target is not None and data is None:
        raise ProjectError("--target needs --data: the file to train on (without both, the "
                           "project gets example data)")
    _require_git()
    if data is not None and target is not None:
        frame = read_table(Path(data))
        plan = infer_plan(frame, target, task, numeric, categorical, metric)
        suffix = Path(data).suffix.lower().replace(".pq", ".parquet")
    else:
        frame = example_frame(task or "classification")
        plan = infer_plan(frame, "target", task or "classification", numeric, categorical, metric)
        suffix = ".csv"
    progress(plan.describe())

    source = settings.template_source or PACKAGED_TEMPLATE
    repository = template_repository(settings)
    version = publish_template(source, repository)
    answers = {
        "instance": instance, "package": instance.replace("-", "_"), "task": plan.task,
        "target": plan.target, "numeric": list(plan.numeric), "categorical": list(plan.categorical),
        "primary_metric": plan.primary_metric, "greater_is_better": plan.greater_is_better,
        "data_date": date, "data_suffix": suffix, "workbench_version": __version__,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        progress(f"rendering the template {version} from {repository}")
        _copier_copy(repository, staging, answers, version)
        data_file = staging / "data" / "raw" / f"{instance}_{date}{suffix}"
        if data is not None:
            shutil.copy2(data, data_file)  # byte for byte: lineage's sha256 is the user's file's
        else:
            frame.to_csv(data_file, index=False)
        fallback = _git_init_and_commit(staging, f"New {instance} project from the mlops-workbench "
                                                 f"template {version}")
        commit = _git(staging, "rev-parse", "HEAD").strip()
        if path.is_dir():
            path.rmdir()  # empty, checked above
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return NewProject(path=path, instance=instance, plan=plan,
                      data_file=path / data_file.relative_to(staging), data_date=date,
                      example_data=data is None,
                      template_version=version, commit=commit, fallback_identity=fallback)


def update_project(path: Path, settings: Settings) -> TemplateUpdate:
    """Bring the project in ``path`` to the newest template version with copier's update.

    The user's changes are kept (a three-way merge); where both changed the same lines,
    copier writes conflict markers and says so. The result is left uncommitted.

    Raises:
        ProjectError: ``path`` was not made by ``workbench new`` (no answers file), is not a
            git repository or has uncommitted changes, the template repository lacks the
            version it was rendered from, or copier fails.
    """
    import yaml

    path = Path(path).expanduser().absolute()
    answers_file = path / ANSWERS_FILE
    if not answers_file.is_file():
        raise ProjectError(f"{path} has no {ANSWERS_FILE}: it was not made by `workbench new` (or "
                           "run this in the project's folder)")
    answers = yaml.safe_load(answers_file.read_text(encoding="utf-8")) or {}
    old = str(answers.get("_commit", ""))
    if not (path / ".git").exists():
        raise ProjectError(f"{path} is not a git repository; copier's update merges through git: "
                           "run `git init` and commit the project first")
    if _git(path, "status", "--porcelain").strip():
        raise ProjectError(f"{path} has uncommitted changes; commit or stash them first (the "
                           "update is a merge, and your changes must be safe in git)")
    source = settings.template_source or PACKAGED_TEMPLATE
    repository = template_repository(settings)
    new = publish_template(source, repository)
    if old == new:
        return TemplateUpdate(path, old, new)
    if old not in _git(repository, "tag", "--list").split():
        raise ProjectError(f"{path} was rendered from template {old or '(unknown)'}, which "
                           f"{repository} does not hold (made on another machine?); copier's "
                           "update needs that version to merge from")
    _copier_update(repository, path, new)
    changed = tuple(line[3:].strip() for line in _git(path, "status", "--porcelain").splitlines()
                    if line.strip())
    conflicts = tuple(name for name in changed if _has_conflict(path / name))
    return TemplateUpdate(path, old, new, changed, conflicts)


# -- the template repository ---------------------------------------------------------------------
def template_repository(settings: Settings) -> Path:
    """Where the template's versions are kept for this user."""
    if settings.template_repository is not None:
        return settings.template_repository
    from platformdirs import user_data_dir

    return Path(user_data_dir("mlops-workbench")) / "template"


def publish_template(source: Path, repository: Path) -> str:
    """Commit ``source`` into ``repository`` as a new tagged version when it differs from the
    newest one; return the newest version's tag.

    Two processes publishing at once take turns (a file lock beside the repository).

    Raises:
        ProjectError: ``source`` holds no copier template, or git fails.
    """
    from filelock import FileLock

    source = Path(source)
    if not (source / "copier.yml").is_file():
        raise ProjectError(f"template source {source} has no copier.yml; point "
                           "WORKBENCH_TEMPLATE_SOURCE at a copier template folder")
    repository.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(repository) + ".lock"):
        if not (repository / ".git").is_dir():
            repository.mkdir(exist_ok=True)
            _git(repository, "init", "-q", "-b", "main")
        for child in repository.iterdir():
            if child.name != ".git":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        shutil.copytree(source, repository, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".git"))
        _git(repository, "add", "-A")
        if _git(repository, "rev-parse", "--verify", "-q", "HEAD", check=False).strip() and \
                not _git(repository, "status", "--porcelain").strip():
            current = _git(repository, "tag", "--points-at", "HEAD").split()
            if current:
                return current[0]
        tag = _next_tag(_git(repository, "tag", "--list").split())
        _git(repository, "commit", "-q", "--allow-empty", "-m",
             f"template {tag} from {source} (mlops-workbench {__version__})",
             identity=FALLBACK_IDENTITY)
        _git(repository, "tag", tag)
        return tag


def _next_tag(existing: Sequence[str]) -> str:
    """The workbench's version for new content, ``.post<N>`` after it when taken."""
    from packaging.version import InvalidVersion, Version

    base = Version(__version__).base_version
    taken: list[Version] = []
    for name in existing:
        try:
            version = Version(name)
        except InvalidVersion:
            continue
        if version.base_version == base:
            taken.append(version)
    if not taken:
        return base
    return f"{base}.post{max(v.post or 0 for v in taken) + 1}"


# -- example data --------------------------------------------------------------------------------
def example_frame(task: str, rows: int = _EXAMPLE_ROWS, seed: int = 0) -> Any:
    """Example data of ``task``: six numeric features, one categorical, a ``target``.

    Raises:
        ProjectError: an unknown task.
    """
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification, make_regression

    if task == "classification":
        X, y = make_classification(n_samples=rows, n_features=6, n_informative=4, n_redundant=1,
                                   random_state=seed)
    elif task == "regression":
        X, y = make_regression(n_samples=rows, n_features=6, n_informative=4, noise=10.0,
                               random_state=seed)
    else:
        raise ProjectError(f"task {task!r} is unknown; use classification or regression")
    frame = pd.DataFrame(X.round(4), columns=[f"x{i}" for i in range(1, 7)])
    # A categorical column that carries signal, so the one-hot path is trained too.
    frame["segment"] = np.select([X[:, 0] < -0.5, X[:, 0] > 0.5], ["low", "high"], "mid")
    frame["target"] = y if task == "classification" else np.round(y, 3)
    return frame


# -- copier and git ------------------------------------------------------------------------------
def _copier_copy(repository: Path, destination: Path, answers: dict[str, Any],
                 version: str) -> None:
    from copier import run_copy
    from copier.errors import CopierError

    try:
        run_copy(str(repository), destination, data=answers, vcs_ref=version, defaults=True,
                 overwrite=True, quiet=True, unsafe=False, cleanup_on_error=False)
    except CopierError as exc:
        raise ProjectError(f"copier could not render the template: {_first_line(exc)}") from exc


def _copier_update(repository: Path, project: Path, version: str) -> None:
    from copier import Worker
    from copier.errors import CopierError

    try:
        # The repository as the source (not the path in the answers file), so a project
        # whose answers name another machine's repository still updates from this one's.
        with Worker(src_path=str(repository), dst_path=project, defaults=True, overwrite=True,
                    vcs_ref=version, quiet=False, unsafe=False, conflict="inline",
                    data={"workbench_version": __version__}) as worker:
            worker.run_update()
    except CopierError as exc:
        raise ProjectError(f"copier could not update {project}: {_first_line(exc)}") from exc


def _git_init_and_commit(folder: Path, message: str) -> bool:
    """``git init`` and a first commit of everything; whether the fallback identity was used."""
    _git(folder, "init", "-q", "-b", "main")
    _git(folder, "add", "-A")
    configured = all(_git(folder, "config", "--get", key, check=False).strip()
                     for key in ("user.name", "user.email"))
    _git(folder, "commit", "-q", "-m", message,
         identity=None if configured else FALLBACK_IDENTITY)
    return not configured


def _git(folder: Path, *args: str, identity: tuple[str, str] | None = None,
         check: bool = True) -> str:
    command = ["git"]
    if identity is not None:
        command += ["-c", f"user.name={identity[0]}", "-c", f"user.email={identity[1]}"]
    done = subprocess.run([*command, *args], cwd=folder, capture_output=True, text=True)
    if check and done.returncode != 0:
        detail = _first_line(done.stderr or done.stdout or f"exit status {done.returncode}")
        raise ProjectError(f"git {args[0]} failed in {folder}: {detail}")
    return done.stdout


def _require_git() -> None:
    if shutil.which("git") is None:
        raise ProjectError("git is not installed; workbench new keeps the template's versions "
                           "and the project in git (install git, e.g. apt-get install git)")


def _has_conflict(path: Path) -> bool:
    try:
        return path.is_file() and CONFLICT_MARKER in path.read_text(encoding="utf-8",
                                                                    errors="replace")
    except OSError:
        return False


def _first_line(error: object) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
