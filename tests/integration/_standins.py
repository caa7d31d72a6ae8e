"""Locally built stand-ins for the registry images the compose platform uses, for engines that
cannot pull: Postgres, an S3 server in place of MinIO, pgAdmin (platform/ci/*/Dockerfile).

Each build context is assembled in a temporary folder (the Dockerfile, its scripts and, for the
Python ones, a wheelhouse resolved on the host) and hashed; an image already tagged with the
same hash is reused, so only the first test session on a machine pays for the builds.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from workbench import _docker
from workbench.errors import DockerError, WheelhouseError
from workbench.packaging import wheelhouse

REPO = Path(__file__).resolve().parents[2]
SOURCES = REPO / "platform" / "ci"
CONTEXT_LABEL = "org.mlops-workbench.context-sha256"
STANDINS = ("postgres", "s3", "pgadmin")

# The servers' own versions are pinned (their dependencies float): a new release on the index
# should not change what CI runs until someone bumps it here and watches the tests pass.
MOTO_VERSION = "5.2.5"
MOTO = f"moto[server]=={MOTO_VERSION}"
PGADMIN = "9.18"
PGADMIN_REQUIREMENTS = (f"pgadmin4=={PGADMIN}", "gunicorn")

Progress = Callable[[str], None]


def build_standins(client: Any, base_image: str, progress: Progress = lambda _: None,
                   only: Iterable[str] = STANDINS) -> dict[str, str]:
    """Build (or reuse) the stand-in images on ``base_image``.

    Args:
        client: a docker client (``workbench._docker.get_client()``).
        base_image: the local Debian + Python image every stand-in starts from.
        only: which of ``STANDINS`` to build.

    Returns:
        Stand-in name -> image tag, e.g. ``{"postgres": "workbench-ci/postgres:15"}``.

    Raises:
        ImageBuildFailed: a build failed (the error carries the log's last lines).
        WheelhouseError: the host could not resolve a stand-in's Python packages.
    """
    wanted = list(only)
    unknown = set(wanted) - set(STANDINS)
    if unknown:
        raise ValueError(f"no stand-in named {', '.join(sorted(unknown))}; choose from {STANDINS}")
    base = _docker.get_image(client, base_image, "run ../shared/ci/docker-sandbox up")
    python_version = ""
    if {"s3", "pgadmin"} & set(wanted):
        # The wheels must fit the interpreter the images run, not the host's.
        command = ["python3", "-c", "import platform; print(platform.python_version())"]
        python_version = _docker.run_output(client, base_image, command).strip()

    tags = {}
    for name in wanted:
        with tempfile.TemporaryDirectory(prefix=f"standin-{name}-") as folder:
            context = Path(folder)
            for source in (SOURCES / name).iterdir():
                shutil.copy2(source, context / source.name)
            if name == "postgres":
                tag = "workbench-ci/postgres:15"
            elif name == "s3":
                tag = f"workbench-ci/s3:moto-{MOTO_VERSION}"
                house = wheelhouse.resolve([MOTO], python_version, pins={}, progress=progress)
                _copy_wheels(house.path, context / "wheels")
            else:
                tag = f"workbench-ci/pgadmin:{PGADMIN}"
                _copy_wheels(_pgadmin_wheels(python_version, progress), context / "wheels")
            tags[name] = _build(client, context, tag, base_image, base.id, progress)
    return tags


def _build(client: Any, context: Path, tag: str, base_image: str, base_id: str,
           progress: Progress) -> str:
    # The base image's id is part of the hash: a rebuilt base must rebuild what stands on it.
    digest = _context_hash(context, extra=f"{base_image}\n{base_id}")
    existing = _docker.find_image(client, tag)
    if existing is not None and existing.labels.get(CONTEXT_LABEL) == digest:
        progress(f"stand-ins: {tag} is up to date")
        return tag
    progress(f"stand-ins: building {tag}")
    built = _docker.build_image(client, context, tag, buildargs={"BASE_IMAGE": base_image},
                                labels={CONTEXT_LABEL: digest}, progress=progress)
    if existing is not None and existing.id != built.id:
        # The image this build replaced (ours: it carries the label) would otherwise linger
        # untagged after every change to a Dockerfile; one still used by a container stays.
        try:
            with _docker.api_errors(f"remove the previous {tag}"):
                client.images.remove(existing.id)
        except DockerError as exc:
            progress(f"stand-ins: {exc}")
    return tag


def _context_hash(context: Path, extra: str) -> str:
    digest = hashlib.sha256(extra.encode())
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(context)).encode() + b"\0")
        # The executable bit matters to the image (entrypoints), the timestamps do not.
        digest.update(b"x" if os.access(path, os.X_OK) else b"-")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _copy_wheels(source: Path, destination: Path) -> None:
    destination.mkdir()
    for path in [*source.glob("*.whl"), source / wheelhouse.REQUIREMENTS_FILE]:
        try:
            os.link(path, destination / path.name)  # the wheelhouse cache is usually on this disk
        except OSError:
            shutil.copy2(path, destination / path.name)


def _pgadmin_wheels(python_version: str, progress: Progress) -> Path:
    """A wheelhouse for pgAdmin, built with ``pip wheel`` on the host.

    ``wheelhouse.resolve`` downloads wheels only, and some of pgAdmin's dependencies
    (jsonformatter, Flask-Principal, ...) are published only as sdists; they are pure Python,
    so building them here gives the wheels the image needs. ``pip wheel`` resolves for the
    host's interpreter, which is therefore required to have the image's Python minor version.
    """
    host = "{}.{}".format(*sys.version_info[:2])
    image = ".".join(python_version.split(".")[:2])
    if host != image:
        raise WheelhouseError(
            f"the pgAdmin stand-in's wheels are built with the host's Python {host}, "
            f"but the base image has Python {python_version}; run the tests with Python {image}"
        )
    key = hashlib.sha256("\n".join([image, *PGADMIN_REQUIREMENTS]).encode()).hexdigest()[:16]
    folder = wheelhouse.cache_root() / f"pgadmin-{key}"
    if (folder / ".complete").exists():
        progress(f"wheelhouse: cached ({folder})")
        return folder
    shutil.rmtree(folder, ignore_errors=True)  # an interrupted earlier attempt
    folder.mkdir(parents=True)
    progress(f"wheelhouse: building pgAdmin's wheels on the host into {folder}")
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
               "--wheel-dir", str(folder), *PGADMIN_REQUIREMENTS]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
        raise WheelhouseError(f"pip wheel {' '.join(PGADMIN_REQUIREMENTS)} failed on the host "
                              f"(exit {result.returncode}): {(errors or ['no output'])[0]}")
    requirements = "".join(f"{r}\n" for r in PGADMIN_REQUIREMENTS)
    (folder / wheelhouse.REQUIREMENTS_FILE).write_text(requirements)
    (folder / ".complete").write_text("")
    progress(f"wheelhouse: {len(list(folder.glob('*.whl')))} wheels for pgAdmin")
    return folder
