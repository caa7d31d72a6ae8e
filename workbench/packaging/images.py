"""The workbench's own images: ``workbench`` (JupyterLab + job runner) and ``serving`` (the
runtime model images are layered on), two targets of ``images/workbench/Dockerfile``. This
module assembles a build context for a target (the wheels its requirements resolve to on
the host, the workbench wheel) and builds it through the SDK.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench import _docker
from workbench._version import __version__
from workbench.config import Settings
from workbench.errors import ConfigError
from workbench.packaging import wheelhouse
from workbench.progress import Progress
from workbench.resources import shipped

LABEL_PREFIX = "org.mlops-workbench"
# The runtime image lists what it has installed, so packaging can tell whether a model's
# requirements are met without starting a container.
PACKAGES_LABEL = f"{LABEL_PREFIX}.packages"
PYTHON_LABEL = f"{LABEL_PREFIX}.python"


@dataclass(frozen=True)
class ImageKind:
    """One of the workbench's images: its Dockerfile target, tag and Python requirements."""

    name: str
    repository: str
    requirements: Callable[[], tuple[str, ...]]
    description: str
    dockerfile: str = "workbench/Dockerfile"  # under images/
    target: str | None = None

    @property
    def tag(self) -> str:
        return f"{self.repository}:{__version__}"


IMAGES = {
    "workbench": ImageKind(
        "workbench", "mlops-workbench/workbench",
        lambda: wheelhouse.workbench_requirements(("docker", "postgres")),
        "JupyterLab with the workbench; runs container jobs", target="workbench",
    ),
    "serving": ImageKind(
        "serving", "mlops-workbench/serving",
        lambda: wheelhouse.SERVING_REQUIREMENTS,
        "the runtime model images are built on", target="serving",
    ),
    "tracking": ImageKind(
        "tracking", "mlops-workbench/tracking",
        lambda: wheelhouse.TRACKING_REQUIREMENTS,
        "the compose platform's MLflow tracking server", dockerfile="tracking/Dockerfile",
    ),
}


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    id: str
    size_bytes: int
    seconds: float


def image_kind(name: str) -> ImageKind:
    try:
        return IMAGES[name]
    except KeyError:
        raise ConfigError(f"unknown image {name!r}; choose one of: {', '.join(IMAGES)}") from None


def build(name: str, settings: Settings, *, client: Any = None,
          progress: Progress = lambda _: None) -> BuiltImage:
    """Build the image ``name`` (``workbench`` or ``serving``) on ``settings.base_image``.

    Raises:
        ConfigError: unknown image name.
        WheelhouseError: the host could not resolve the wheels.
        DockerError, ImageBuildFailed: no engine, or a build step failed.
    """
    kind = image_kind(name)
    client = client or _docker.get_client()
    started = time.monotonic()
    _docker.ensure_image(client, settings.base_image, what="base image", progress=progress, hint=(
        "set WORKBENCH_BASE_IMAGE to a Python 3.11 image the engine has (or can pull)"))
    python_version = _docker.run_output(client, settings.base_image, [
        "python3", "-c", "import platform; print(platform.python_version())"]).strip()
    house = wheelhouse.resolve(kind.requirements(), python_version, progress=progress)
    with tempfile.TemporaryDirectory(prefix=f"workbench-{name}-context-") as tmp:
        context = Path(tmp)
        _assemble_context(context, kind, house, progress)
        progress(f"building {kind.tag} ({kind.description}) FROM {settings.base_image}")
        image = _docker.build_image(
            client, context, kind.tag,
            target=kind.target,
            buildargs={"BASE_IMAGE": settings.base_image,
                       "PYTHON_VERSION": ".".join(python_version.split(".")[:2])},
            labels={
                f"{LABEL_PREFIX}.image": name,
                PYTHON_LABEL: python_version,
                f"{LABEL_PREFIX}.version": __version__,
                f"{LABEL_PREFIX}.base-image": settings.base_image,
                PACKAGES_LABEL: _packages_label(house),
            },
            progress=progress,
        )
    image.tag(kind.repository, "latest")
    built = BuiltImage(kind.tag, image.id, int(image.attrs.get("Size", 0)), time.monotonic() - started)
    progress(f"built {built.tag} ({built.id[:19]}, {built.size_bytes / 1e6:.0f} MB) "
             f"in {built.seconds:.0f} s")
    return built


def ensure(name: str, settings: Settings, *, client: Any = None,
           progress: Progress = lambda _: None) -> Any:
    """The image ``name`` of this workbench version, built first when the engine lacks it."""
    client = client or _docker.get_client()
    image = _docker.find_image(client, image_kind(name).tag)
    if image is None:
        progress(f"{image_kind(name).tag} is not built yet; building it (once)")
        build(name, settings, client=client, progress=progress)
        image = _docker.get_image(client, image_kind(name).tag)
    return image


def ensure_platform_images(references: Mapping[str, str], settings: Settings, *,
                           client: Any = None, progress: Progress = lambda _: None) -> None:
    """Make the workbench's own images a platform runs present on the engine.

    Args:
        references: image name (``tracking``, ``workbench``) -> the reference the platform
            runs (``ComposePlatform.workbench_images()``). This version's tag is built when
            missing; any other reference must be on the engine already.

    Raises:
        ConfigError: unknown image name.
        ImageNotFound: a reference that is not this version's tag is missing.
        WheelhouseError, DockerError, ImageBuildFailed: a build failed.
    """
    client = client or _docker.get_client()
    for name, reference in references.items():
        kind = image_kind(name)
        if reference == kind.tag:
            ensure(name, settings, client=client, progress=progress)
        else:
            _docker.get_image(client, reference, hint=(
                f"build it, or set the platform's .env to {kind.tag}, which "
                "`workbench platform up --compose` builds"))


def installed_packages(image: Any) -> dict[str, str]:
    """What a runtime image says it has installed: normalized name -> version."""
    text = (image.labels or {}).get(PACKAGES_LABEL, "")
    pairs = (item.split("==", 1) for item in text.split() if "==" in item)
    return {name: version for name, version in pairs}


def _assemble_context(context: Path, kind: ImageKind, house: wheelhouse.Wheelhouse,
                      progress: Progress) -> None:
    # The Dockerfile and what it COPYs from its own folder (e.g. the tracking entrypoint).
    source = shipped("images") / kind.dockerfile
    for path in source.parent.iterdir():
        if path.is_file():
            shutil.copy(path, context / ("Dockerfile" if path == source else path.name))
    wheels = context / "wheels"
    wheels.mkdir()
    for wheel in house.wheels:
        _link_or_copy(wheel, wheels / wheel.name)
    shutil.copy(house.path / wheelhouse.REQUIREMENTS_FILE, wheels / wheelhouse.REQUIREMENTS_FILE)
    wheelhouse.package_wheel(context / "package", progress)


def _packages_label(house: wheelhouse.Wheelhouse) -> str:
    # Wheel file names start with the normalized name and the version: name-version-...
    pairs = []
    for wheel in house.wheels:
        name, version = wheel.name.split("-")[:2]
        pairs.append(f"{name.lower().replace('_', '-')}=={version}")
    return " ".join(sorted(pairs))


def _link_or_copy(source: Path, target: Path) -> None:
    # A hard link costs nothing; the cache may sit on another filesystem than /tmp.
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
