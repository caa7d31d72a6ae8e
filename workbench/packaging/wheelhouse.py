"""Wheelhouses: the Python side of an image, resolved on the host.

Images install with ``pip install --no-index`` from wheels the host resolved, so a build
needs no package index (containers on many machines cannot reach one) and installs exactly
the versions the data scientist's notebooks ran with: every requirement is constrained to
the version installed here. A wheelhouse is cached by a hash of what it was asked for.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from workbench._version import __version__
from workbench.errors import WheelhouseError
from workbench.progress import Progress

DISTRIBUTION = "mlops-workbench"
REQUIREMENTS_FILE = "requirements.txt"
_COMPLETE = ".complete"

# What `workbench serve` needs inside a serving image; the workbench package itself goes in
# with --no-deps, so JupyterLab, papermill and the MLflow server stay out of it.
SERVING_REQUIREMENTS = (
    "mlflow-skinny", "scikit-learn", "pandas", "numpy", "scipy", "cloudpickle", "skops",
    "fastapi", "uvicorn[standard]", "orjson", "prometheus-client", "SQLAlchemy",
    "click", "python-dotenv", "PyYAML", "pydantic-settings",  # workbench.config
    "psycopg2-binary",  # the compose platform's prediction store is Postgres
)
# The compose platform's tracking server: MLflow with its basic-auth app, its Postgres driver,
# and boto3 for the S3-compatible artifact store it proxies.
TRACKING_REQUIREMENTS = ("mlflow[auth]", "psycopg2-binary", "boto3")


@dataclass(frozen=True)
class Wheelhouse:
    """A folder of wheels and the requirements file to install from it."""

    path: Path
    requirements: tuple[str, ...]

    @property
    def wheels(self) -> list[Path]:
        return sorted(self.path.glob("*.whl"))

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.wheels)


def workbench_requirements(extras: Iterable[str] = ("docker",)) -> tuple[str, ...]:
    """The workbench package's own requirements (with ``extras``), as installed here."""
    from packaging.requirements import Requirement

    wanted = set(extras)
    out = []
    for text in metadata.requires(DISTRIBUTION) or []:
        requirement = Requirement(text)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": e}) for e in wanted):
            requirement.marker = None
            out.append(str(requirement))
    return tuple(out)


def installed_versions() -> dict[str, str]:
    """Normalized distribution name -> version, for this interpreter's environment."""
    from packaging.utils import canonicalize_name

    versions: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and canonicalize_name(name) != DISTRIBUTION:
            versions[str(canonicalize_name(name))] = dist.version
    return versions


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mlops-workbench" / "wheelhouse"


def resolve(
    requirements: Iterable[str],
    python_version: str,
    *,
    pins: dict[str, str] | None = None,
    cache: Path | None = None,
    progress: Progress = lambda _: None,
) -> Wheelhouse:
    """Wheels for ``requirements`` and all their dependencies, pinned to ``pins``, for the
    image's Python ``python_version`` (e.g. ``3.11.2``).

    Args:
        requirements: requirement strings (``pandas``, ``uvicorn[standard]>=0.30``).
        python_version: the full Python version of the image the wheels go into; a pinned
            version that does not support it is left free (pip picks one that does).
        pins: name -> version constraints; default: what this environment has installed.
        cache: wheelhouse cache folder (default ``~/.cache/mlops-workbench/wheelhouse``).

    Raises:
        WheelhouseError: pip could not resolve or download them.
    """
    requirements = tuple(requirements)
    pins = installed_versions() if pins is None else pins
    pins = {name: version for name, version in pins.items()
            if _supports(name, version, python_version)}
    constraints = "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))
    key = hashlib.sha256(
        "\n".join([python_version, *requirements, constraints]).encode()
    ).hexdigest()[:16]
    folder = (cache or cache_root()) / key
    if (folder / _COMPLETE).exists():
        progress(f"wheelhouse: cached ({folder})")
        return Wheelhouse(folder, requirements)

    if folder.exists():
        shutil.rmtree(folder)  # an interrupted earlier attempt
    folder.mkdir(parents=True)
    (folder / REQUIREMENTS_FILE).write_text("".join(f"{r}\n" for r in requirements))
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write(constraints)
    progress(f"wheelhouse: resolving {len(requirements)} requirements on the host into {folder}")
    try:
        # Wheels only: nothing is compiled on the host for an image, and pip can then
        # resolve for the image's Python instead of the host's.
        _pip("download", "--only-binary=:all:", "--python-version", python_version,
             "--dest", str(folder), "--constraint", handle.name,
             "--requirement", str(folder / REQUIREMENTS_FILE), progress=progress)
    except WheelhouseError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        os.unlink(handle.name)
    (folder / _COMPLETE).write_text("")
    house = Wheelhouse(folder, requirements)
    progress(f"wheelhouse: {len(house.wheels)} wheels, {house.size_bytes() / 1e6:.0f} MB")
    return house


def _supports(name: str, version: str, python_version: str) -> bool:
    """Whether the installed ``name`` (at ``version``) declares support for that Python."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        requires = metadata.metadata(name)["Requires-Python"]
        if metadata.version(name) != version or not requires:
            return True
        return SpecifierSet(requires).contains(python_version, prereleases=True)
    except (metadata.PackageNotFoundError, InvalidSpecifier, KeyError):
        return True


def package_wheel(destination: Path, progress: Progress = lambda _: None) -> Path:
    """The workbench package as a wheel in ``destination``: built from the source checkout
    when there is one (an editable install), else the released wheel of this version."""
    checkout = Path(__file__).resolve().parents[2]
    destination.mkdir(parents=True, exist_ok=True)
    if (checkout / "setup.cfg").is_file() and (checkout / "workbench").is_dir():
        progress(f"wheelhouse: building the workbench wheel from {checkout}")
        _pip("wheel", "--no-deps", "--wheel-dir", str(destination),
             str(checkout), progress=progress)
    else:
        _pip("download", "--no-deps", "--only-binary=:all:", "--dest", str(destination),
             f"{DISTRIBUTION}=={__version__}", progress=progress)
    wheels = sorted(destination.glob("mlops_workbench-*.whl"))
    if not wheels:
        raise WheelhouseError(f"pip produced no mlops_workbench wheel in {destination}")
    return wheels[-1]


def _pip(*args: str, progress: Progress) -> None:
    command = [sys.executable, "-m", "pip", *args, "--quiet", "--disable-pip-version-check"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [line.strip() for line in (result.stderr or result.stdout).splitlines()
                 if line.strip() and not line.startswith(("WARNING", "hint:"))]
        errors = [line for line in lines if line.lower().startswith("error")] or lines[-1:] or ["no output"]
        raise WheelhouseError(
            f"pip {args[0]} failed on the host (exit {result.returncode}): "
            f"{errors[0]}; the host needs the package index "
            "(or a --find-links folder) to resolve image dependencies"
        )
